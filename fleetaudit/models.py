"""The contract between layers: every value that crosses a module boundary is one of these.

Pure data, no I/O. results.json is `AuditResults.model_dump_json()`, so field
names here are a public interface: rename nothing without a migration.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from fleetaudit import addresses

Port = Annotated[int, Field(ge=0, le=65535)]
# 2: `timings`, `resumed_hosts` and `drift` (issues 13, 15). A version-1 file reads the
# same (the new fields take their defaults); a reader of version 1 refuses a version-2
# file by its number, clearly, rather than by an unknown field.
RESULTS_SCHEMA_VERSION = 2


class Model(BaseModel):
    """Frozen and strict about unknown fields, so a typo is an error, not a silent default."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Proto(StrEnum):
    TCP = "tcp"
    UDP = "udp"


# --- inventory -------------------------------------------------------------


class Connection(StrEnum):
    SSH = "ssh"
    LOCAL = "local"


class InventoryHost(Model):
    """One host as the inventory describes it; what it leaves unsaid is SSH's to decide.

    `port` and `user` stay None unless the inventory sets them, so ssh_config's Port and
    User (else 22 and the local user) apply as they do for Ansible: never a silent root.
    """

    name: str
    # What SSH is asked to reach: ansible_host, else the name (ssh_config may map it on).
    address: str
    port: Port | None = None
    user: str | None = None
    key_file: str | None = None
    groups: list[str] = []
    connection: Connection = Connection.SSH
    # Refuse to scan this host unless the kernel routes it through this interface
    # (the lab sets it to its bridge, so a lab run can never scan anything else).
    route_dev: str | None = None
    # Run every batch as `sudo -n [-u become_user] sh -s` (Ansible's ansible_become): the
    # login user reads what it may, sudo gives the rest; no password is ever sent.
    become: bool = False
    become_user: str | None = None
    # OpenSSH ProxyJump: `[user@]host[:port][,...]`, from ansible_ssh_common_args or
    # ansible_ssh_extra_args (`-J` or `-o ProxyJump=`); ssh_config may add one too.
    jump: str | None = None
    # The effective variables, as `ansible-inventory --list` shows them in hostvars.
    variables: dict[str, JsonValue] = {}
    # Where each connection field came from: field -> "FILE:LINE VARIABLE".
    origins: dict[str, str] = {}
    # Things the user should know about this host's entry (a templated variable...).
    notes: list[str] = []
    # Variables fleetaudit needs but cannot use as written (a Jinja template, an
    # unsupported connection): the host is listed, never contacted.
    unresolved: list[str] = []


class InventoryGroup(Model):
    name: str
    hosts: list[str] = []  # direct members, in the order the sources named them
    children: list[str] = []


class Inventory(Model):
    source: str
    hosts: list[InventoryHost]
    groups: list[InventoryGroup] = []
    warnings: list[str] = []


# --- running commands ------------------------------------------------------


class CommandResult(Model):
    """What one exec request returned; bytes are decoded by the caller's parser."""

    command: str
    exit_status: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool = False


# --- internal view -----------------------------------------------------------


class ListenerSource(StrEnum):
    SS = "ss"
    NETSTAT = "netstat"
    PROC_NET = "proc_net"
    LSOF = "lsof"


class SocketOwner(Model):
    command: str
    pid: int
    fd: int | None = None


class Socket(Model):
    """A listening TCP socket or a bound UDP socket, as one local tool reported it."""

    proto: Proto
    address: str
    port: Port
    scope: str | None = None
    owners: list[SocketOwner] = []
    source: ListenerSource
    # /proc/net gives the socket's inode (the link to its owners' fds) and its uid.
    inode: int | None = None
    uid: int | None = None

    @property
    def is_loopback(self) -> bool:
        return addresses.is_loopback(self.address)


class PackageOwner(Model):
    manager: str
    name: str
    version: str | None = None


class PackageLookup(Model):
    """Who owns one path; `owner` None with a `manager` means 'not owned by any package'."""

    path: str
    manager: str | None
    owner: PackageOwner | None


class MappedFile(Model):
    """A file mapped into a process (/proc/PID/maps); `suspicious` says why it stands out."""

    path: str
    deleted: bool = False
    suspicious: str | None = None


class ContainerRef(Model):
    """The container a process runs in, as its cgroup path names it."""

    runtime: str
    id: str


class IntegrityStatus(StrEnum):
    OK = "ok"
    MODIFIED = "modified"
    MISSING = "missing"
    UNKNOWN = "unknown"


class IntegrityResult(Model):
    """A package manager's check of one file (its md5 against dpkg's md5sums, rpm -V);
    `detail` says what differed or why it could not be checked."""

    path: str
    status: IntegrityStatus
    manager: str | None = None
    detail: str | None = None


class ProcessInfo(Model):
    pid: int
    exe: str | None = None
    exe_deleted: bool = False
    cmdline: list[str] = []
    uid: int | None = None
    user: str | None = None
    package: PackageOwner | None = None
    package_manager: str | None = None
    errors: list[str] = []
    name: str | None = None  # /proc/PID/status Name: the comm, settable by the process
    ppid: int | None = None
    started_at: datetime | None = None
    cwd: str | None = None
    sha256: str | None = None  # of the file read through /proc/PID/exe (deleted ones too)
    libraries: list[MappedFile] = []
    env_names: list[str] = []
    systemd_unit: str | None = None
    container: ContainerRef | None = None
    netns: str | None = None  # "net:[4026531840]"
    foreign_netns: bool = False  # not the host's own network namespace
    integrity: IntegrityResult | None = None


class BindState(StrEnum):
    IN_USE = "in_use"
    FREE = "free"
    ERROR = "error"


class BindResult(Model):
    """bind() tried on a wildcard address and closed at once: in use with no listener listed
    means something hides one."""

    proto: Proto
    port: Port
    address: str
    state: BindState
    detail: str | None = None

    @property
    def in_use(self) -> bool:
        return self.state is BindState.IN_USE


class NatForward(Model):
    """A DNAT/REDIRECT rule sending (proto, port..port_last) arriving here elsewhere.

    `to_address` None is REDIRECT (this host); `to_port` None keeps the port; a range
    of either end has its last port in `*_last`. `daddr` is the rule's destination match
    (the rule applies only to packets for that address).
    """

    proto: Proto
    port: Port
    port_last: Port | None = None
    kind: str  # "dnat" | "redirect"
    to_address: str | None = None
    to_port: Port | None = None
    to_port_last: Port | None = None
    daddr: str | None = None
    family: str  # "ipv4" | "ipv6" | "inet"
    chain: str
    tool: str  # "iptables-save" | "ip6tables-save" | "nft"
    rule: str

    def covers(self, proto: Proto, port: int) -> bool:
        return proto == self.proto and self.port <= port <= (self.port_last or self.port)

    @property
    def destination(self) -> str:
        host = self.to_address or "(this host)"
        if ":" in host:
            host = f"[{host}]"
        if self.to_port is None:
            return host
        ports = f"{self.to_port}-{self.to_port_last}" if self.to_port_last else f"{self.to_port}"
        return f"{host}:{ports}"


class SystemFacts(Model):
    """Per-host facts the process probes are read against (boot time, tick rate, netns)."""

    boot_time: datetime | None = None
    clk_tck: int = 100
    netns: str | None = None
    bindv6only: bool | None = None
    euid: int | None = None
    sudo: bool | None = None  # `sudo -n true` worked; None when sudo is absent
    os_id: str | None = None
    os_version_id: str | None = None


class CoverageGap(Model):
    """Part of the internal view that is missing or incomplete, and how it failed.

    `source`: "listing" (ss, netstat), "proc_net", "cross_check" (listings against
    /proc/net, the rootkit check), "process_chain", "packages" or "session" (the round
    itself ended early: every later read is missing).
    """

    source: str
    reason: str


class Coverage(Model):
    """What the internal view could see: sources run, with what privilege, tools missing,
    and what is incomplete (any gap makes the host `partial`)."""

    sources: list[str] = []
    privileged: bool | None = None
    missing_tools: list[str] = []
    notes: list[str] = []
    gaps: list[CoverageGap] = []


class ToolsDisagreement(Model):
    """A listener one full listing shows and another omits: evidence that a tool lies
    (or that the socket came or went between the two reads)."""

    proto: Proto
    port: Port
    address: str
    listed_by: list[ListenerSource]
    missing_from: list[ListenerSource]


class InternalView(Model):
    sockets: list[Socket] = []
    processes: list[ProcessInfo] = []
    tools: list[str] = []
    missing_tools: list[str] = []
    errors: list[str] = []
    system: SystemFacts | None = None
    bind_results: list[BindResult] = []
    nat_forwards: list[NatForward] = []
    coverage: Coverage | None = None
    disagreements: list[ToolsDisagreement] = []


# --- external view -----------------------------------------------------------


class PortRange(Model):
    first: Port
    last: Port


class ExternalPort(Model):
    """One port as nmap reported it: its state and why, and what -sV made of it.

    `method` "probed" means nmap's probes recognised the service; "table" is only the
    nmap-services guess for the port number. `fingerprint` is nmap's raw ``servicefp``
    (what an unrecognised service answered, hostile data); `fingerprint_decoded` is the
    same made readable by `decode_service_fingerprint`, for display only.
    """

    proto: Proto
    port: Port
    state: str
    reason: str | None = None
    reason_ttl: int | None = None
    service: str | None = None
    product: str | None = None
    version: str | None = None
    extrainfo: str | None = None
    ostype: str | None = None
    hostname: str | None = None
    devicetype: str | None = None
    tunnel: str | None = None
    method: str | None = None
    confidence: int | None = None
    cpes: list[str] = []
    fingerprint: str | None = None
    fingerprint_decoded: str | None = None
    default_service: str | None = None


class ExtraPorts(Model):
    """nmap's summary of the ports it did not list one by one ('997 closed')."""

    proto: Proto | None = None
    state: str
    count: int


class NotProbed(Model):
    """A port the host's own listing showed that the scan could not probe, and why
    (a UDP listener when the scan was not root): a stated gap, not a silent one."""

    proto: Proto
    port: Port
    reason: str


class ExternalHost(Model):
    """One host as nmap saw it; `errors` say what of its scan is missing (cut short, timed out).

    `timed_out`: nmap's --host-timeout stopped this host; nmap then drops every port of
    it, so `scanned` is empty rather than claiming the ports were closed.
    """

    address: str
    status: str
    reason: str | None = None
    ports: list[ExternalPort] = []
    extraports: list[ExtraPorts] = []
    scanned: dict[Proto, list[PortRange]] = {}
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timed_out: bool = False
    errors: list[str] = []
    not_probed: list[NotProbed] = []

    def was_scanned(self, proto: Proto, port: int) -> bool:
        return any(r.first <= port <= r.last for r in self.scanned.get(proto, []))

    def unlisted_state(self, proto: Proto) -> str | None:
        """State of a scanned port nmap did not list, when its summary makes it unambiguous."""
        states = {e.state for e in self.extraports if e.proto in (None, proto)}
        return states.pop() if len(states) == 1 else None


class ScanRun(Model):
    """The external view of a run: one or several nmap processes, or XML read from files.

    `command` is the first nmap command line, `commands` all of them in start order.
    `source` is "scan" (nmap ran here) or "import" (``--nmap-xml``: `imported` names the
    files, `ignored_hosts` the addresses in them that are not in the inventory).
    `evidence` names the raw XML files kept with the results, one per nmap process.
    """

    command: str
    nmap_version: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    scan_type: str | None = None
    hosts: list[ExternalHost] = []
    errors: list[str] = []
    complete: bool = True
    source: str = "scan"
    profile: str | None = None
    privileged: bool | None = None
    commands: list[str] = []
    evidence: list[str] = []
    imported: list[str] = []
    ignored_hosts: list[str] = []


# --- verdicts and results -----------------------------------------------------


class VerdictKind(StrEnum):
    CONSISTENT = "CONSISTENT"
    NONSTANDARD_PORT = "NONSTANDARD_PORT"
    SERVICE_PROCESS_MISMATCH = "SERVICE_PROCESS_MISMATCH"
    EXTERNAL_ONLY = "EXTERNAL_ONLY"
    HIDDEN_LISTENER = "HIDDEN_LISTENER"
    FORWARDED = "FORWARDED"
    FILTERED = "FILTERED"
    LOCAL_ONLY = "LOCAL_ONLY"
    UNOWNED_BINARY = "UNOWNED_BINARY"
    DELETED_BINARY = "DELETED_BINARY"
    MODIFIED_BINARY = "MODIFIED_BINARY"
    SUSPICIOUS_PATH = "SUSPICIOUS_PATH"
    TOOLS_DISAGREE = "TOOLS_DISAGREE"
    UNKNOWN = "UNKNOWN"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class Verdict(Model):
    kind: VerdictKind
    severity: Severity
    message: str
    evidence: list[str] = []


class ListenerEvidence(Model):
    address: str
    scope: str | None = None
    source: ListenerSource
    pid: int | None = None
    process: ProcessInfo | None = None


class PortReport(Model):
    proto: Proto
    port: Port
    external: ExternalPort | None = None
    listeners: list[ListenerEvidence] = []
    verdicts: list[Verdict] = []


class HostStatus(StrEnum):
    OK = "ok"
    # Reached and collected, but a listing, the process chains or the cross-check of the
    # listings is incomplete (Coverage.gaps says which and why): never compliant.
    PARTIAL = "partial"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    HOST_KEY_REJECTED = "host_key_rejected"
    COLLECTION_FAILED = "collection_failed"
    SCAN_FAILED = "scan_failed"
    HOST_DOWN = "host_down"


class Stage(StrEnum):
    CONNECT = "connect"
    COLLECT = "collect"
    SCAN = "scan"


class HostError(Model):
    stage: Stage
    message: str


class Waiver(Model):
    """A documented exception to a rule, until a date; an expired one stops applying."""

    rule: str
    host: str | None = None
    proto: Proto | None = None
    port: Port | None = None
    reason: str
    owner: str
    expires: date


class Finding(Model):
    """One problem on a port (or a host), with every rule and verdict that flags it;
    `rule` is the first of `rules`, and `id` (from it) is stable across runs."""

    id: str
    rule: str
    rules: list[str] = []  # every rule of the problem, `rule` first (older files: empty)
    severity: Severity
    host: str
    proto: Proto | None = None
    port: Port | None = None
    message: str
    evidence: list[str] = []
    remediation: str | None = None
    waiver: Waiver | None = None
    waiver_expired: bool = False

    @property
    def active(self) -> bool:
        return self.waiver is None or self.waiver_expired

    @property
    def named_rules(self) -> list[str]:
        """Every rule of the problem (a finding from an older results.json names one)."""
        return self.rules or [self.rule]


class RuleOutcome(Model):
    rule: str
    passed: bool
    findings: int = 0


class ComplianceSummary(Model):
    """Compliance of one group (or the fleet, group None) against the policy."""

    group: str | None = None
    hosts_total: int
    hosts_compliant: int
    rules: list[RuleOutcome] = []


class HostKeyChange(Model):
    """The host offered an SSH key other than the one on record: a possible
    man-in-the-middle (or a reinstalled host), judged as the HOST_KEY_CHANGED finding."""

    offered: str  # fingerprints, as ssh prints them (SHA256:...)
    recorded: list[str] = []
    known_hosts: str


class HostResult(Model):
    name: str
    address: str
    groups: list[str] = []
    status: HostStatus
    errors: list[HostError] = []
    ports: list[PortReport] = []
    internal: InternalView | None = None
    external: ExternalHost | None = None
    findings: list[Finding] = []
    compliant: bool | None = None
    host_key_changed: HostKeyChange | None = None


class PhaseTiming(Model):
    """Where a run's time went: one phase (an nmap process, a collection round across
    the fleet, judging, ...), in seconds from the run's start, so a slow audit can be
    explained from its results.json without running it again.

    For a phase that every host goes through (a collection round), `hosts` says how
    many did, and `median`/`slowest` how long one host took in it.
    """

    phase: str  # "prepare", "scan", "collect", "final", "judge"
    name: str  # "tcp-discovery-01", "round 1", ...
    start: float
    end: float
    hosts: int | None = None
    median: float | None = None
    slowest: float | None = None


class AuditResults(Model):
    schema_version: int = RESULTS_SCHEMA_VERSION
    tool_version: str
    inventory: str
    started_at: datetime
    finished_at: datetime
    scan: ScanRun | None = None
    policy: str | None = None
    hosts: list[HostResult] = []
    compliance: list[ComplianceSummary] = []
    timings: list[PhaseTiming] = []
    # Set when the run was resumed (--resume): how many hosts came from its journal.
    resumed_hosts: int = 0
    # What changed since an earlier run of the inventory (fleetaudit.drift); None: not compared.
    drift: _drift.Drift | None = None


# Last: fleetaudit.drift's models are built from this module's (resolved on first use).
from fleetaudit import drift as _drift  # noqa: E402
