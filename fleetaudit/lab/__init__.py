"""The lab fleet: real sshd hosts in network namespaces behind one bridge, with planted cases.

The project's own test bed. Needs root; touches nothing but what it records in its state
directory, and only ever routes to its own bridge.

Importing the package loads only its state (names, defaults): `up`, `down` and
`check_route` load the lab's machinery (asyncssh among it) on first use, so the command
line can show `lab up --help` without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from fleetaudit.lazy import lazy_attributes

if TYPE_CHECKING:
    from fleetaudit.lab.fleet import down, up
    from fleetaudit.lab.net import check_route

_LAZY = {"down": "fleetaudit.lab.fleet", "up": "fleetaudit.lab.fleet",
         "check_route": "fleetaudit.lab.net"}


__getattr__ = lazy_attributes(__name__, _LAZY)


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
