"""`--host-key-policy`'s choices, apart from fleetaudit.transport (asyncssh): the command
line needs the enum to build `--help`, which must not load an SSH library to say so."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["HostKeyPolicy"]


class HostKeyPolicy(StrEnum):
    STRICT = "strict"
    ACCEPT_NEW = "accept-new"
    OFF = "off"
