"""The external view: nmap from outside, as a fast, bounded, two-phase fleet scan.

    command   what nmap may do, every argv (pure)
    plan      single pass or two phases; discovery results -> version batches; merging (pure)
    nmap_run  finding and running nmap through python-nmap (blocking, the network edge)
    engine    the pipelined fleet scan and --dry-run lines (async)
    imported  --nmap-xml: reports made elsewhere, matched to the inventory
    evidence  raw XML of each nmap process, written beside the results

Importing the package loads only the pure modules (command, plan): the others, which
run nmap (subprocess, python-nmap), load on first use, so pure code may import
`fleetaudit.scan.command` without pulling the network edge in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetaudit.addresses import canonical
from fleetaudit.lazy import lazy_attributes
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
from fleetaudit.scan.plan import VersionBatch, plan_version_batches, single_pass

if TYPE_CHECKING:
    from fleetaudit.guard import check_route
    from fleetaudit.scan.engine import (
        FleetScan,
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
        find_nmap,
        load_default_services,
        nmap_services_path,
    )

_LAZY = {
    "FleetScan": "fleetaudit.scan.engine", "discovery_jobs": "fleetaudit.scan.engine",
    "dry_run_lines": "fleetaudit.scan.engine", "is_privileged": "fleetaudit.scan.engine",
    "scan_fleet": "fleetaudit.scan.engine", "scan_jobs": "fleetaudit.scan.engine",
    "write_nmap_evidence": "fleetaudit.scan.evidence",
    "import_nmap_xml": "fleetaudit.scan.imported",
    "MIN_NMAP_VERSION": "fleetaudit.scan.nmap_run",
    "check_nmap_version": "fleetaudit.scan.nmap_run", "find_nmap": "fleetaudit.scan.nmap_run",
    "load_default_services": "fleetaudit.scan.nmap_run",
    "nmap_services_path": "fleetaudit.scan.nmap_run",
    "check_route": "fleetaudit.guard",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


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
