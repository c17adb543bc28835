"""The lab fleet: real sshd hosts in network namespaces behind one bridge, with planted cases.

The project's own test bed. Needs root; touches nothing but what it records in its state
directory, and only ever routes to its own bridge.
"""

from fleetaudit.lab.fleet import down, up
from fleetaudit.lab.net import check_route
from fleetaudit.lab.state import (
    DEFAULT_BRIDGE,
    DEFAULT_STATE_DIR,
    DEFAULT_SUBNET,
    LabHost,
    LabInfo,
    LabUser,
    Plant,
    load_info,
)

__all__ = [
    "DEFAULT_BRIDGE",
    "DEFAULT_STATE_DIR",
    "DEFAULT_SUBNET",
    "LabHost",
    "LabInfo",
    "LabUser",
    "Plant",
    "check_route",
    "down",
    "load_info",
    "up",
]
