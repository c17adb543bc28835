"""Drift: what changed between two audits of one fleet, port by port and binary by binary.

Pure (no I/O). Each run is first reduced to a `Snapshot`: per host and port, what was
seen outside (nmap's state and service) and inside (where it listens, and each
listening process's chain: exe, sha256, package and version, user, unit), plus the
active findings. `compare` diffs two snapshots into a `Drift`. The history store keeps
snapshots, so a diff of two stored runs is the same computation as a diff of two
results.json files.

PIDs and start times are kept (the history shows which process it was) but never
compared: they change at every restart and say nothing about what is exposed. A side
is compared only where both runs saw it (a host unreachable now says so once, instead
of closing all its ports), and a port counts as closed outside only where nmap looked.

A sha256 that changed while the package version did not is what a replaced binary
looks like: a high finding of its own kind (BINARY_REPLACED). With a package upgrade
it is an expected change (BINARY_UPGRADED), shown, never a finding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from fleetaudit.models import (
    HostStatus,
    Port,
    PortRange,
    Proto,
    Severity,
)

if TYPE_CHECKING:
    from fleetaudit.models import AuditResults, HostResult, PortReport

# HostStatus values that mean nothing was read on the host (as the report's audit status).
NOT_REACHED = frozenset({HostStatus.UNREACHABLE, HostStatus.AUTH_FAILED,
                         HostStatus.HOST_KEY_REJECTED, HostStatus.HOST_DOWN})
OPEN = "open"
BINARY_REPLACED_RULE = "BINARY_REPLACED"


class Model(BaseModel):
    """As fleetaudit.models.Model: frozen, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- snapshots: what one run saw, without the noise -------------------------------------


class RunRef(Model):
    """A run as the history names it: its id, its inventory and when it started."""

    run_id: str
    inventory: str
    started_at: datetime


class ProcessObs(Model):
    """One process listening on a port, as its chain describes it (PIDs: noise)."""

    exe: str | None = None
    sha256: str | None = None
    package: str | None = None
    version: str | None = None
    user: str | None = None
    unit: str | None = None
    deleted: bool = False
    pids: list[int] = []

    @property
    def who(self) -> str:
        """`exe (user)`, what a reader recognises a process by."""
        exe = self.exe or "(no executable visible)"
        return f"{exe} ({self.user})" if self.user else exe


class PortObs(Model):
    """One port of one host: nmap's state and service outside, the listeners inside."""

    proto: Proto
    port: Port
    outside: str | None = None  # nmap's state; None: nmap did not list it
    service: str | None = None  # service, product, version, extra info, as one string
    addresses: list[str] = []  # where it listens inside; empty: no listener listed
    processes: list[ProcessObs] = []
    verdicts: list[str] = []

    @property
    def open_outside(self) -> bool:
        return self.outside == OPEN

    @property
    def listening(self) -> bool:
        return bool(self.addresses)


class FindingObs(Model):
    """An active finding (waived ones are not drift: someone decided about them)."""

    id: str
    rule: str
    severity: Severity
    proto: Proto | None = None
    port: Port | None = None
    message: str


class HostObs(Model):
    name: str
    address: str
    status: HostStatus
    reached: bool  # something was read on it
    outside: bool  # an external view exists and was not cut short
    inside: bool  # its listening sockets were listed in full
    scanned: str = ""  # nmap's port ranges, "tcp:1-1000,1723;udp:53": where closed means closed
    compliant: bool | None = None
    ports: list[PortObs] = []
    findings: list[FindingObs] = []

    def scanned_port(self, proto: Proto, port: int) -> bool:
        return any(r.first <= port <= r.last for r in parse_ranges(self.scanned).get(proto, []))


class Snapshot(Model):
    """What one run saw, in a canonical order: hosts by name, ports by (proto, port)."""

    run: RunRef
    finished_at: datetime
    tool_version: str
    policy: str | None = None
    hosts_total: int
    hosts_compliant: int
    findings_active: int
    hosts: list[HostObs] = []


# --- drift: what changed ---------------------------------------------------------------


class Side(StrEnum):
    OUTSIDE = "outside"
    INSIDE = "inside"


class ChangeKind(StrEnum):
    OPENED = "opened"
    CLOSED = "closed"
    SERVICE_CHANGED = "service_changed"
    ADDRESS_CHANGED = "address_changed"
    PROCESS_CHANGED = "process_changed"  # another executable listens
    USER_CHANGED = "user_changed"  # the same executable, run by another user
    BINARY_REPLACED = "binary_replaced"  # sha256 changed, package version did not: high
    BINARY_UPGRADED = "binary_upgraded"  # sha256 and package version changed: expected
    FINDING_NEW = "finding_new"
    FINDING_RESOLVED = "finding_resolved"


# What `--fail-on-change` fails on: something new listens or answers, or a binary changed.
FAILING = frozenset({ChangeKind.OPENED, ChangeKind.PROCESS_CHANGED, ChangeKind.BINARY_REPLACED,
                     ChangeKind.BINARY_UPGRADED})


class Change(Model):
    kind: ChangeKind
    side: Side | None = None
    before: str | None = None
    after: str | None = None
    message: str
    # A finding this change is (BINARY_REPLACED, with its own stable id) or is about.
    severity: Severity | None = None
    finding_id: str | None = None

    @property
    def fails(self) -> bool:
        return self.kind in FAILING


class PortDrift(Model):
    proto: Proto
    port: Port
    changes: list[Change]

    @property
    def label(self) -> str:
        return f"{self.port}/{self.proto.value}"


class HostEvent(StrEnum):
    ADDED = "added"  # in the inventory now, not before
    GONE = "gone"  # in the inventory before, not now
    UNREACHABLE = "unreachable"  # audited before, nothing could be read now
    BACK = "back"  # unreachable before, audited now


class HostDrift(Model):
    host: str
    address: str
    event: HostEvent | None = None
    ports: list[PortDrift] = []
    changes: list[Change] = []  # host-wide: findings without a port
    still_open: int = 0  # active findings in both runs


class TrendPoint(Model):
    run_id: str
    started_at: datetime
    hosts_total: int
    hosts_compliant: int
    findings_active: int

    @property
    def percent(self) -> int:
        if self.hosts_total <= 0:
            return 100
        return max(0, min(100, round(100 * self.hosts_compliant / self.hosts_total)))


class Drift(Model):
    """What changed since `baseline`, host by host (only hosts with something to say),
    and the compliance trend over the last runs of the inventory, this one last."""

    baseline: RunRef
    current: RunRef
    hosts: list[HostDrift] = []
    findings_new: int = 0
    findings_resolved: int = 0
    findings_still_open: int = 0
    trend: list[TrendPoint] = []

    @property
    def changes(self) -> list[tuple[HostDrift, PortDrift | None, Change]]:
        """Every change, with its host and port (None: a host-wide one)."""
        out: list[tuple[HostDrift, PortDrift | None, Change]] = []
        for host in self.hosts:
            out += [(host, port, c) for port in host.ports for c in port.changes]
            out += [(host, None, c) for c in host.changes]
        return out

    @property
    def changed(self) -> bool:
        return bool(self.hosts)

    @property
    def fails(self) -> bool:
        """Something new opened or a binary changed: what `--fail-on-change` exits 1 on."""
        return any(c.fails for _, _, c in self.changes)

    def with_trend(self, trend: Sequence[TrendPoint]) -> Drift:
        return self.model_copy(update={"trend": list(trend)})


# --- building snapshots ----------------------------------------------------------------


def run_id(results: AuditResults) -> str:
    """A stable id for a run: its start time, and a digest of what identifies it, so a
    results.json imported later gets the id it was recorded under."""
    started = as_utc(results.started_at)
    key = "\x1f".join((results.inventory, started.isoformat(),
                       as_utc(results.finished_at).isoformat(), results.tool_version))
    return f"{started:%Y%m%dT%H%M%SZ}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def as_utc(value: datetime) -> datetime:
    """Aware UTC (a naive time is taken as UTC), so runs from anywhere sort and compare."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ref(results: AuditResults) -> RunRef:
    return RunRef(run_id=run_id(results), inventory=results.inventory,
                  started_at=as_utc(results.started_at))


def snapshot(results: AuditResults) -> Snapshot:
    hosts = sorted((_host(h) for h in results.hosts), key=lambda h: h.name)
    fleet = next((c for c in results.compliance if c.group is None), None)
    return Snapshot(
        run=ref(results),
        finished_at=as_utc(results.finished_at),
        tool_version=results.tool_version,
        policy=results.policy,
        hosts_total=fleet.hosts_total if fleet else len(results.hosts),
        hosts_compliant=fleet.hosts_compliant if fleet else 0,
        findings_active=sum(len(h.findings) for h in hosts),
        hosts=hosts,
    )


def trend_point(snap: Snapshot) -> TrendPoint:
    return TrendPoint(run_id=snap.run.run_id, started_at=snap.run.started_at,
                      hosts_total=snap.hosts_total, hosts_compliant=snap.hosts_compliant,
                      findings_active=snap.findings_active)


def _host(host: HostResult) -> HostObs:
    external, internal = host.external, host.internal
    listing_gap = internal is not None and internal.coverage is not None and any(
        g.source in ("listing", "session") for g in internal.coverage.gaps)
    return HostObs(
        name=host.name,
        address=host.address,
        status=host.status,
        reached=not (host.status in NOT_REACHED and internal is None),
        outside=external is not None and not external.timed_out and bool(external.scanned),
        inside=internal is not None and not listing_gap,
        scanned=format_ranges(external.scanned) if external is not None else "",
        compliant=host.compliant,
        ports=sorted((_port(host, p) for p in host.ports), key=lambda p: (p.proto, p.port)),
        findings=sorted((FindingObs(id=f.id, rule=f.rule, severity=f.severity, proto=f.proto,
                                    port=f.port, message=f.message)
                         for f in host.findings if f.active), key=lambda f: f.id),
    )


def _port(host: HostResult, report: PortReport) -> PortObs:
    x = report.external
    service = None
    if x is not None:
        words = [w for w in (x.service, x.product, x.version, x.extrainfo) if w]
        service = " ".join(words) or None
    chains = {p.pid: p for p in host.internal.processes} if host.internal else {}
    found: dict[tuple[str | None, str | None, str | None], ProcessObs] = {}
    for ev in report.listeners:
        process = ev.process or (chains.get(ev.pid) if ev.pid is not None else None)
        if process is None:
            continue
        key = (process.exe, process.user or (str(process.uid) if process.uid is not None
                                              else None), process.sha256)
        seen = found.get(key)
        if seen is None:
            found[key] = ProcessObs(
                exe=process.exe, sha256=process.sha256,
                package=process.package.name if process.package else None,
                version=process.package.version if process.package else None,
                user=key[1], unit=process.systemd_unit, deleted=process.exe_deleted,
                pids=[process.pid])
        elif process.pid not in seen.pids:
            found[key] = seen.model_copy(update={"pids": sorted([*seen.pids, process.pid])})
    return PortObs(
        proto=report.proto, port=report.port,
        outside=x.state if x is not None else None, service=service,
        addresses=sorted({ev.address for ev in report.listeners}),
        processes=sorted(found.values(), key=_process_order),
        verdicts=sorted({v.kind.value for v in report.verdicts}),
    )


def _process_order(p: ProcessObs) -> tuple[str, str, str]:
    return (p.exe or "", p.user or "", p.sha256 or "")


def format_ranges(scanned: dict[Proto, list[PortRange]]) -> str:
    parts = []
    for proto in sorted(scanned):
        ranges = ",".join(str(r.first) if r.first == r.last else f"{r.first}-{r.last}"
                          for r in scanned[proto])
        parts.append(f"{proto.value}:{ranges}")
    return ";".join(parts)


def parse_ranges(text: str) -> dict[Proto, list[PortRange]]:
    out: dict[Proto, list[PortRange]] = {}
    for part in filter(None, text.split(";")):
        proto, _, ranges = part.partition(":")
        for item in filter(None, ranges.split(",")):
            first, _, last = item.partition("-")
            out.setdefault(Proto(proto), []).append(
                PortRange(first=int(first), last=int(last or first)))
    return out


# --- comparing -------------------------------------------------------------------------


def drift_between(old: AuditResults, new: AuditResults) -> Drift:
    """What changed from `old` to `new` (two results of one inventory)."""
    return compare(snapshot(old), snapshot(new))


def compare(old: Snapshot, new: Snapshot, trend: Sequence[TrendPoint] = ()) -> Drift:
    before = {h.name: h for h in old.hosts}
    after = {h.name: h for h in new.hosts}
    hosts: list[HostDrift] = []
    new_count = resolved = still = 0
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None and now is not None:
            hosts.append(HostDrift(host=name, address=now.address, event=HostEvent.ADDED))
            continue
        if now is None and was is not None:
            hosts.append(HostDrift(host=name, address=was.address, event=HostEvent.GONE))
            continue
        assert was is not None and now is not None
        host = compare_hosts(was, now)
        new_count += sum(c.kind is ChangeKind.FINDING_NEW for c in _all(host))
        resolved += sum(c.kind is ChangeKind.FINDING_RESOLVED for c in _all(host))
        still += host.still_open
        if host.event is not None or host.ports or host.changes:
            hosts.append(host)
    return Drift(baseline=old.run, current=new.run, hosts=hosts, findings_new=new_count,
                 findings_resolved=resolved, findings_still_open=still, trend=list(trend))


def _all(host: HostDrift) -> Iterable[Change]:
    for port in host.ports:
        yield from port.changes
    yield from host.changes


def compare_hosts(was: HostObs, now: HostObs) -> HostDrift:
    event = None
    if was.reached and not now.reached:
        event = HostEvent.UNREACHABLE
    elif now.reached and not was.reached:
        event = HostEvent.BACK
    old_ports = {(p.proto, p.port): p for p in was.ports}
    new_ports = {(p.proto, p.port): p for p in now.ports}
    old_findings = {f.id: f for f in was.findings}
    new_findings = {f.id: f for f in now.findings}
    ports: list[PortDrift] = []
    host_changes: list[Change] = []
    by_port: dict[tuple[Proto, int], list[Change]] = {}
    for key in sorted(old_ports.keys() | new_ports.keys()):
        changes = compare_ports(was, now, key, old_ports.get(key), new_ports.get(key))
        if changes:
            by_port[key] = changes
    # Findings: new ones always; resolved ones only where the host was seen again in full
    # (a finding that vanished with an unreachable host is not resolved).
    for fid in sorted(new_findings.keys() - old_findings.keys()):
        f = new_findings[fid]
        _place(by_port, host_changes, f, Change(
            kind=ChangeKind.FINDING_NEW, after=f.rule, severity=f.severity, finding_id=f.id,
            message=f"{f.rule} ({f.severity.value}): {f.message}"))
    if now.status is HostStatus.OK:
        for fid in sorted(old_findings.keys() - new_findings.keys()):
            f = old_findings[fid]
            _place(by_port, host_changes, f, Change(
                kind=ChangeKind.FINDING_RESOLVED, before=f.rule, finding_id=f.id,
                message=f"{f.rule} ({f.severity.value}): {f.message}"))
    for (proto, port), changes in sorted(by_port.items()):
        ports.append(PortDrift(proto=proto, port=port, changes=changes))
    return HostDrift(host=now.name, address=now.address, event=event, ports=ports,
                     changes=host_changes,
                     still_open=len(old_findings.keys() & new_findings.keys()))


def _place(by_port: dict[tuple[Proto, int], list[Change]], host_changes: list[Change],
           finding: FindingObs, change: Change) -> None:
    if finding.proto is not None and finding.port is not None:
        by_port.setdefault((finding.proto, finding.port), []).append(change)
    else:
        host_changes.append(change)


def compare_ports(was_host: HostObs, now_host: HostObs, key: tuple[Proto, int],
                  was: PortObs | None, now: PortObs | None) -> list[Change]:
    """The changes of one port between two observations of its host."""
    proto, port = key
    changes: list[Change] = []
    # Outside: comparable where both scans covered the port (listed, or in nmap's ranges).
    if was_host.outside and now_host.outside and _covered(was_host, was, proto, port) \
            and _covered(now_host, now, proto, port):
        old_open = was is not None and was.open_outside
        new_open = now is not None and now.open_outside
        if new_open and not old_open:
            changes.append(Change(
                kind=ChangeKind.OPENED, side=Side.OUTSIDE,
                before=was.outside if was else None, after=OPEN,
                message=f"open from outside{_service_words(now)}"))
        elif old_open and not new_open:
            changes.append(Change(
                kind=ChangeKind.CLOSED, side=Side.OUTSIDE, before=OPEN,
                after=now.outside if now else None,
                message="no longer open from outside"
                + (f" (now {now.outside})" if now and now.outside else "")))
        elif old_open and new_open and was and now and was.service != now.service:
            changes.append(Change(
                kind=ChangeKind.SERVICE_CHANGED, side=Side.OUTSIDE, before=was.service,
                after=now.service,
                message=f"service was {was.service or 'unidentified'}, "
                        f"now {now.service or 'unidentified'}"))
    if was_host.inside and now_host.inside:
        changes += _inside(was_host, now_host, proto, port, was, now)
    return changes


def _covered(host: HostObs, obs: PortObs | None, proto: Proto, port: int) -> bool:
    return (obs is not None and obs.outside is not None) or host.scanned_port(proto, port)


def _service_words(obs: PortObs | None) -> str:
    return f": {obs.service}" if obs is not None and obs.service else ""


def _inside(was_host: HostObs, now_host: HostObs, proto: Proto, port: int,
            was: PortObs | None, now: PortObs | None) -> list[Change]:
    old_listen = was is not None and was.listening
    new_listen = now is not None and now.listening
    if new_listen and not old_listen:
        assert now is not None
        return [Change(kind=ChangeKind.OPENED, side=Side.INSIDE,
                       after=", ".join(now.addresses),
                       message=f"now listening on {', '.join(now.addresses)}"
                               f"{_by(now.processes)}")]
    if old_listen and not new_listen:
        assert was is not None
        return [Change(kind=ChangeKind.CLOSED, side=Side.INSIDE,
                       before=", ".join(was.addresses),
                       message=f"no longer listening{_by(was.processes)}")]
    if not (old_listen and new_listen and was and now):
        return []
    changes: list[Change] = []
    if was.addresses != now.addresses:
        changes.append(Change(
            kind=ChangeKind.ADDRESS_CHANGED, side=Side.INSIDE,
            before=", ".join(was.addresses), after=", ".join(now.addresses),
            message=f"listens on {', '.join(now.addresses)}, "
                    f"was {', '.join(was.addresses)}"))
    if not (was.processes and now.processes):
        return changes  # a side without visible processes says nothing about them
    old_exes = {p.exe for p in was.processes}
    new_exes = {p.exe for p in now.processes}
    if old_exes != new_exes:
        changes.append(Change(
            kind=ChangeKind.PROCESS_CHANGED, side=Side.INSIDE,
            before=_whos(was.processes), after=_whos(now.processes),
            message=f"now served by {_whos(now.processes)}, was {_whos(was.processes)}"))
    else:
        old_users = {(p.exe, p.user) for p in was.processes}
        new_users = {(p.exe, p.user) for p in now.processes}
        if old_users != new_users:
            changes.append(Change(
                kind=ChangeKind.USER_CHANGED, side=Side.INSIDE,
                before=_whos(was.processes), after=_whos(now.processes),
                message=f"now run as {_users(now.processes)}, was {_users(was.processes)}"))
    for exe in sorted(e for e in old_exes & new_exes if e is not None):
        changes += _binary(now_host, proto, port, exe,
                           [p for p in was.processes if p.exe == exe],
                           [p for p in now.processes if p.exe == exe])
    return changes


def _binary(host: HostObs, proto: Proto, port: int, exe: str,
            was: list[ProcessObs], now: list[ProcessObs]) -> list[Change]:
    old_hashes = {p.sha256 for p in was if p.sha256}
    new_hashes = {p.sha256 for p in now if p.sha256}
    if not old_hashes or not new_hashes or old_hashes == new_hashes:
        return []  # unknown on one side, or unchanged
    old_versions = {(p.package, p.version) for p in was}
    new_versions = {(p.package, p.version) for p in now}
    before, after = ", ".join(sorted(old_hashes)), ", ".join(sorted(new_hashes))
    if old_versions != new_versions:
        return [Change(
            kind=ChangeKind.BINARY_UPGRADED, side=Side.INSIDE, before=before, after=after,
            message=f"{exe} changed with its package: {_versions(old_versions)} -> "
                    f"{_versions(new_versions)} (an expected change)")]
    return [Change(
        kind=ChangeKind.BINARY_REPLACED, side=Side.INSIDE, before=before, after=after,
        severity=Severity.HIGH,
        finding_id=binary_finding_id(host.name, proto, port, exe),
        message=f"{exe} has another sha256 while its package version "
                f"({_versions(new_versions)}) did not change: a replaced binary")]


def binary_finding_id(host: str, proto: Proto, port: int, exe: str) -> str:
    """Stable across runs, like a policy finding's id (rule, host, proto, port, exe)."""
    key = "\x1f".join((BINARY_REPLACED_RULE, host, proto.value, str(port), exe))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _versions(pairs: set[tuple[str | None, str | None]]) -> str:
    shown = sorted(f"{name} {version}" if version else (name or "no package")
                   for name, version in pairs)
    return ", ".join(shown)


def _whos(processes: list[ProcessObs]) -> str:
    return ", ".join(sorted({p.who for p in processes}))


def _users(processes: list[ProcessObs]) -> str:
    return ", ".join(sorted({p.user or "unknown user" for p in processes}))


def _by(processes: list[ProcessObs]) -> str:
    return f" ({_whos(processes)})" if processes else ""


# --- the history of one port -----------------------------------------------------------


class Sighting(Model):
    """A port of a host across runs: when first and last seen, by what, when it changed."""

    host: str
    proto: Proto
    port: Port
    first_seen: RunRef
    last_seen: RunRef
    runs_seen: int
    runs_total: int  # runs in which the host was reached
    processes: list[str] = []  # `exe (user)`, in the order they appeared
    changed_in: list[tuple[RunRef, list[Change]]] = []


@dataclass
class _Seen:
    first: RunRef
    last: RunRef
    seen: int = 0
    who: list[str] = field(default_factory=list)
    changes: list[tuple[RunRef, list[Change]]] = field(default_factory=list)


def timeline(snapshots: Sequence[Snapshot], host: str | None = None,
             port: tuple[Proto | None, int] | None = None) -> list[Sighting]:
    """Every (host, port) seen open outside or listening inside in these runs (oldest
    first), optionally of one host and one port (proto None: either). A change is
    counted against the last run in which the host was reached."""
    ordered = sorted(snapshots, key=lambda s: (s.run.started_at, s.run.run_id))
    state: dict[tuple[str, Proto, int], _Seen] = {}
    last_obs: dict[str, HostObs] = {}
    reached: dict[str, int] = {}
    for snap in ordered:
        for h in snap.hosts:
            if host is not None and h.name != host:
                continue
            reached[h.name] = reached.get(h.name, 0) + h.reached
            previous = last_obs.get(h.name)
            ports = {(p.proto, p.port): p for p in h.ports if _wanted(p, port)}
            old = {(p.proto, p.port): p for p in previous.ports if _wanted(p, port)} \
                if previous else {}
            for key in sorted(ports.keys() | old.keys()):
                now = ports.get(key)
                entry = state.get((h.name, *key))
                if now is not None and (now.open_outside or now.listening):
                    if entry is None:
                        entry = state[(h.name, *key)] = _Seen(snap.run, snap.run)
                    entry.last = snap.run
                    entry.seen += 1
                    entry.who += [p.who for p in now.processes if p.who not in entry.who]
                if entry is not None and previous is not None:
                    changes = compare_ports(previous, h, key, old.get(key), now)
                    if changes:
                        entry.changes.append((snap.run, changes))
            if h.reached:
                last_obs[h.name] = h
    return [Sighting(host=name, proto=proto, port=number, first_seen=e.first,
                     last_seen=e.last, runs_seen=e.seen, runs_total=reached.get(name, 0),
                     processes=e.who, changed_in=e.changes)
            for (name, proto, number), e in sorted(state.items())]


def _wanted(obs: PortObs, port: tuple[Proto | None, int] | None) -> bool:
    if port is None:
        return True
    proto, number = port
    return obs.port == number and (proto is None or obs.proto == proto)
