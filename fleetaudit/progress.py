"""What an audit tells whoever watches it, as it goes: the scan's nmap processes and each
host's collection and result. Pure: no terminal, no rich (fleetaudit.cli_progress draws it).

A fleet of thousands is minutes of work; without these a run is silent until its end.
`run_audit(progress=...)` and `scan_fleet(progress=...)` call an `AuditObserver` at each
event, from the event loop's thread; its methods must return at once (they run between
the audit's own steps). The base class ignores every event, so an observer overrides only
what it shows, and the audit calls it without checking for None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleetaudit.models import HostResult, ScanRun

__all__ = ["AuditObserver", "NmapStep", "ScanPhase", "open_ports"]


class ScanPhase(StrEnum):
    """What an nmap process does (fleetaudit.scan: NmapJob.phase)."""

    DISCOVERY = "discovery"  # which ports are open, on every target
    VERSION = "version"  # -sV on what discovery found open, or what a listing added
    SINGLE = "single"  # both at once, for a handful of hosts


@dataclass(frozen=True)
class NmapStep:
    """One nmap process as progress sees it."""

    name: str  # its name in results.json's scan and in DIR/nmap/NAME.xml
    phase: ScanPhase
    proto: str  # tcp or udp
    targets: tuple[str, ...]  # addresses: a host may be in several processes of a phase
    # -sV processes: the (host, port) pairs it identifies; discovery: 0 (the ports are a
    # list, the same on every host, not work known to be there).
    ports: int = 0
    command: str = ""

    @property
    def hosts(self) -> int:
        return len(self.targets)


class AuditObserver:
    """Every event of an audit, in the order they come; each does nothing here."""

    def audit_started(self, hosts: int, scanned: int, contacted: int) -> None:
        """Targets resolved: `hosts` in all, `scanned` addresses for nmap (0: --nmap-xml or
        nothing to scan), `contacted` hosts about to be collected."""

    def scan_planned(self, steps: Sequence[NmapStep]) -> None:
        """The processes the scan starts with (discovery, or single passes); the version
        processes come as discovery finds open ports."""

    def nmap_started(self, step: NmapStep) -> None:
        """A process is running (it waited for its turn until now)."""

    def nmap_done(self, step: NmapStep, open_found: int, failure: str | None) -> None:
        """A process ended: the open ports it reported (discovery: found; -sV:
        identified), and why it failed, if it did (its hosts keep what others found)."""

    def scan_done(self, failure: str | None) -> None:
        """The whole scan ended (or failed: `failure`); not called when there is none."""

    def host_started(self, name: str, address: str) -> None:
        """A host's collection began: connecting."""

    def host_collected(self, name: str, failure: str | None) -> None:
        """A host's collection ended, read or not (`failure`); it may wait for its scan."""

    def host_done(self, result: HostResult) -> None:
        """A host's result is reconciled and judged (also for hosts never contacted)."""


def open_ports(run: ScanRun | None) -> int:
    """The open ports an nmap process reported, over all its hosts."""
    if run is None:
        return 0
    return sum(1 for host in run.hosts for port in host.ports if port.state == "open")
