"""The external view: nmap from outside, as a fast, bounded, two-phase fleet scan.

    command   what nmap may do, every argv (pure)
    plan      single pass or two phases; discovery results -> version batches; merging (pure)
    nmap_run  finding and running nmap through python-nmap (blocking, the network edge)
    engine    the pipelined fleet scan and --dry-run lines (async)
    imported  --nmap-xml: reports made elsewhere, matched to the inventory
    evidence  raw XML of each nmap process, written beside the results
"""

from fleetaudit.models import Proto
from fleetaudit.scan.command import (
    ALLOWED_OPTIONS,
    NmapJob,
    PortSelection,
    Profile,
    ScanSettings,
    discovery_job,
    make_settings,
    parse_port_spec,
    single_job,
    validate_targets,
    version_job,
)
from fleetaudit.scan.engine import (
    FleetScan,
    canonical,
    discovery_jobs,
    dry_run_lines,
    is_privileged,
    scan_fleet,
    scan_jobs,
)
from fleetaudit.scan.evidence import write_nmap_evidence
from fleetaudit.scan.imported import import_nmap_xml
from fleetaudit.scan.nmap_run import (
    MIN_NMAP_VERSION,
    check_nmap_version,
    check_route,
    find_nmap,
    load_default_services,
    nmap_services_path,
)
from fleetaudit.scan.plan import VersionBatch, plan_version_batches, single_pass

__all__ = [
    "ALLOWED_OPTIONS",
    "MIN_NMAP_VERSION",
    "FleetScan",
    "NmapJob",
    "PortSelection",
    "Profile",
    "Proto",
    "ScanSettings",
    "VersionBatch",
    "canonical",
    "check_nmap_version",
    "check_route",
    "discovery_job",
    "discovery_jobs",
    "dry_run_lines",
    "find_nmap",
    "import_nmap_xml",
    "is_privileged",
    "load_default_services",
    "make_settings",
    "nmap_services_path",
    "parse_port_spec",
    "plan_version_batches",
    "scan_fleet",
    "scan_jobs",
    "single_job",
    "single_pass",
    "validate_targets",
    "version_job",
    "write_nmap_evidence",
]
