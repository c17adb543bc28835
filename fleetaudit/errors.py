"""One tree of errors, so callers catch exactly the level they can handle.

    FleetAuditError                 anything fleetaudit raises on purpose
    +-- ConfigError                 the user's input is wrong (exit code 2)
    |   +-- InventoryError          inventory file unreadable or invalid
    |   +-- PolicyError             policy file unreadable or invalid (names file, line, field)
    |   +-- ReportWriteError        the report could not be written (the previous one is kept)
    |   +-- JournalError            the run's journal cannot be started, or resumed from
    +-- ParseError                  a command's output is not what its parser knows
    +-- TransportError              a host could not be reached or talked to
    |   +-- ConnectError            no TCP/SSH session (refused, timeout, DNS)
    |   +-- AuthError               the host refused our credentials
    |   +-- HostKeyError            the host key is unknown or does not match
    |   |   +-- HostKeyChangedError the key differs from the one on record (a finding too)
    |   +-- CommandError            a command could not be run or timed out
    |       +-- RoundCutError       a script stopped part way (keeps what arrived)
    +-- ScanError                   nmap could not produce a usable scan
    |   +-- NmapNotFoundError       nmap is missing or too old
    |   +-- UnsafeTargetError       a target is outside what we may scan
    +-- LabError                    the lab fleet could not be built or torn down

Per-host errors (TransportError, ParseError, and a ScanError for one batch) are
caught by the orchestrator and recorded as that host's outcome; only
ConfigError and whole-run ScanErrors end a run.
"""

from __future__ import annotations


class FleetAuditError(Exception):
    """Base of every error fleetaudit raises on purpose."""


class ConfigError(FleetAuditError):
    """The user's input (options, inventory, policy) is wrong."""


class InventoryError(ConfigError):
    """The inventory file cannot be read or does not validate."""


class PolicyError(ConfigError):
    """The policy file cannot be read or does not validate."""


class ReportWriteError(ConfigError):
    """The report could not be put in place; the previous report there is unchanged.

    `saved` is where this run's results.json was kept instead, if anywhere.
    """

    def __init__(self, message: str, saved: str | None = None) -> None:
        super().__init__(message)
        self.saved = saved


class JournalError(ConfigError):
    """The run's journal (RUN_DIR/journal.jsonl) cannot be written, or read for --resume."""


class ParseError(FleetAuditError):
    """A command's output does not have the shape its parser expects."""


class TransportError(FleetAuditError):
    """A host could not be reached or talked to."""


class ConnectError(TransportError):
    """No session could be opened (refused, timed out, no route, DNS)."""


class AuthError(TransportError):
    """The host refused our credentials."""


class HostKeyError(TransportError):
    """The host key is unknown or differs from the one on record."""


class HostKeyChangedError(HostKeyError):
    """The host offered a key other than the one on record: a possible man-in-the-middle,
    so a security finding as well as an unreachable host. Fingerprints as ssh shows them."""

    def __init__(self, message: str, *, offered: str, recorded: list[str],
                 known_hosts: str) -> None:
        super().__init__(message)
        self.offered, self.recorded, self.known_hosts = offered, recorded, known_hosts


class CommandError(TransportError):
    """A command could not be started, or ran past its time limit."""


class RoundCutError(CommandError):
    """A script stopped part way (time limit, connection lost); `output` is what arrived
    before, so the sections that finished are still evidence."""

    def __init__(self, message: str, output: bytes = b"") -> None:
        super().__init__(message)
        self.output = output


class ScanError(FleetAuditError):
    """nmap could not produce a usable scan."""


class NmapNotFoundError(ScanError):
    """nmap is not installed, or is too old to be trusted."""


class UnsafeTargetError(ScanError):
    """A target is outside what this run is allowed to scan."""


class LabError(FleetAuditError):
    """The lab fleet could not be built, checked or torn down."""
