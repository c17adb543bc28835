"""Kept so `fleetaudit.scanner.check_route` (the lab's route guard) and older imports work.

The scanner lives in the `fleetaudit.scan` package; see its docstring.
"""

from fleetaudit.scan import (
    MIN_NMAP_VERSION,
    check_route,
    find_nmap,
    load_default_services,
    make_settings,
    scan_fleet,
    validate_targets,
)

__all__ = [
    "MIN_NMAP_VERSION",
    "check_route",
    "find_nmap",
    "load_default_services",
    "make_settings",
    "scan_fleet",
    "validate_targets",
]
