"""The two-phase scan plan and the merging of its results, as pure functions.

Phase 1 (discovery) finds open ports without -sV; phase 2 runs -sV only on what is
open. A fleet of a handful of hosts skips the split (`single_pass`): one `nmap -sV`
per protocol does both. Hosts are grouped by their set of open ports; groups share one nmap process
when the union of their ports costs nothing extra: every port a host gets only
because another host has it open must be one this host answered "closed" (an
immediate RST), never a filtered one nmap would have to wait out.

The host's own listing (collected over SSH at the same time) widens its scan: every port
it shows on a non-loopback address that the profile's list missed (`ports_to_add`) joins
that host's -sV run, or a small pass of its own (`inside_batches`), so that no routable
listener of a collected host goes unprobed because of the profile.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from fleetaudit.models import (
    ExternalHost,
    ExternalPort,
    ExtraPorts,
    NotProbed,
    PortRange,
    Proto,
    ScanRun,
    Socket,
)
from fleetaudit.scan.command import ScanSettings, ip_version

__all__ = [
    "VERSION_STATES",
    "Listing",
    "ProcessResult",
    "VersionBatch",
    "combine_hosts",
    "inside_batches",
    "inside_ports",
    "mark_not_probed",
    "merge_version",
    "plan_version_batches",
    "ports_to_add",
    "ports_to_identify",
    "single_pass",
    "split_batches",
    "summarize",
]

# The states nmap itself hands to its service scan.
VERSION_STATES = frozenset({"open", "open|filtered"})
# A shared batch may scan at most this many ports; a host with more open ports (a
# firewall answering SYN-ACK on everything) is kept to batches of its own kind.
MAX_UNION_PORTS = 128
# At most this many (host, port) probes per version process: beyond it another process
# running at the same time is faster than a longer queue in one.
MAX_BATCH_PROBES = 512

NOT_REPORTED = "listed inside, not reported by the scan of it"

# What a host's own listing says it listens on from the network: (protocol, port).
Listing = frozenset[tuple[Proto, int]]


def inside_ports(sockets: Iterable[Socket]) -> Listing:
    """Every (protocol, port) a listing shows on a non-loopback address (wildcards, any
    IPv4 or IPv6 address, whatever the scanned one): the floor of that host's scan.

    A socket bound to another address than the scanned one is included too: probing it
    costs one RST, and the report then says what the scanner saw there rather than
    that the port was never looked at.
    """
    return frozenset((s.proto, s.port) for s in sockets if s.port > 0 and not s.is_loopback)


def ports_to_add(host: ExternalHost, listing: Listing, proto: Proto) -> frozenset[int]:
    """The listed `proto` ports this host's scan has not covered: none for a host that is
    not up or hit --host-timeout (its -sV would only time out again)."""
    if host.status != "up" or host.timed_out:
        return frozenset()
    seen = {p.port for p in host.ports if p.proto is proto}
    return frozenset(port for q, port in listing
                     if q is proto and port not in seen and not host.was_scanned(proto, port))


def mark_not_probed(host: ExternalHost, proto: Proto, ports: Iterable[int],
                    reason: str) -> ExternalHost:
    """The host with `ports` recorded as listed inside but not probed, and why."""
    known = {(n.proto, n.port) for n in host.not_probed}
    added = [NotProbed(proto=proto, port=p, reason=reason) for p in sorted(set(ports))
             if (proto, p) not in known]
    return host.model_copy(update={"not_probed": [*host.not_probed, *added]}) if added else host


def split_batches(targets: Sequence[str], batch_size: int) -> list[list[str]]:
    """Targets in order, cut into as few batches of at most ``batch_size`` as possible,
    of even sizes (250 hosts by 200 gives 125 + 125, not 200 + 50)."""
    if not targets:
        return []
    count = math.ceil(len(targets) / max(1, batch_size))
    base, extra = divmod(len(targets), count)
    out: list[list[str]] = []
    start = 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        out.append(list(targets[start : start + size]))
        start += size
    return out


def single_pass(targets: Sequence[str], settings: ScanSettings) -> bool:
    """Whether one `nmap -sV` per protocol (and address family) should replace the two phases.

    Yes when there are at most ``settings.single_pass_max_hosts`` targets (distinct IPs)
    and each address family fits in one discovery batch. Two phases then mean one
    discovery and one version process in a row, and the second one's start, service-probe
    database and port re-check (0.2-0.7 s) overlap nothing; its gain, -sV parallelism sized
    to the open ports, needs more open ports than nmap's own 20 probes at once, which a
    handful of hosts rarely has. What the single pass gives up: a process killed during
    -sV loses its hosts' discovery results too (nmap writes a host when it is done).
    """
    if not targets or len(targets) > settings.single_pass_max_hosts:
        return False
    per_family = Counter(ip_version(t) for t in targets)
    return all(settings.discovery_batch_size(n) >= n for n in per_family.values())


def ports_to_identify(host: ExternalHost, proto: Proto) -> frozenset[int]:
    """The ports of `proto` that -sV should look at: open (and UDP open|filtered)."""
    if host.status != "up":
        return frozenset()
    return frozenset(p.port for p in host.ports if p.proto is proto and p.state in VERSION_STATES)


def _answers_closed(host: ExternalHost, proto: Proto, port: int) -> bool:
    """True when discovery saw `port` closed on `host`: scanning it again costs one RST."""
    for p in host.ports:
        if p.proto is proto and p.port == port:
            return p.state == "closed"
    return host.was_scanned(proto, port) and host.unlisted_state(proto) == "closed"


@dataclass(frozen=True)
class VersionBatch:
    """One phase-2 nmap process: these hosts, the union of their open ports."""

    targets: tuple[str, ...]
    ports: tuple[int, ...]
    probes: int  # (host, port) pairs actually open, i.e. service probes to run


@dataclass
class _Open:
    hosts: list[ExternalHost] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)
    probes: int = 0
    alone: bool = False  # a process of its own (see plan_version_batches' `alone`)


def _fits(batch: _Open, group: _Open, proto: Proto, max_hosts: int, max_union: int) -> bool:
    if batch.alone or group.alone:
        return False
    if len(batch.hosts) + len(group.hosts) > max_hosts:
        return False
    if batch.probes + group.probes > MAX_BATCH_PROBES:
        return False
    if proto is Proto.UDP:  # a closed UDP port answers at the target's ICMP rate: slow
        return batch.ports == group.ports
    union = batch.ports | group.ports
    if len(union) > max_union:
        return False
    return all(
        _answers_closed(h, proto, port)
        for members, extra in ((batch.hosts, group.ports - batch.ports),
                               (group.hosts, batch.ports - group.ports))
        for h in members
        for port in extra
    )


def plan_version_batches(
    hosts: Iterable[ExternalHost], proto: Proto, max_hosts: int,
    max_union: int = MAX_UNION_PORTS, extra: Mapping[str, frozenset[int]] | None = None,
    *, alone: bool = False,
) -> list[VersionBatch]:
    """Phase-2 batches from phase-1 results: every host up with open `proto` ports, once.

    ``extra`` (host address -> ports its own listing shows and discovery did not cover,
    `ports_to_add`) joins each host's own set. Hosts with the same set form a group
    (split when larger than ``max_hosts``); groups are packed first-fit, largest first,
    into batches where `_fits` allows (``max_union`` 0: never, one process per distinct
    set). An extra port is never given to another host: discovery did not scan it there,
    so it may be filtered. ``alone``: a host with extra ports gets a process of its own
    (the per-host variant benchmarks/README.md measured against equal-set batches).
    Deterministic: the same discovery gives the same plan.
    """
    extra = extra or {}
    by_set: dict[tuple[frozenset[int], str], list[ExternalHost]] = {}
    for host in hosts:
        added = extra.get(host.address, frozenset()) if host.status == "up" else frozenset()
        wanted = ports_to_identify(host, proto) | added
        if wanted:
            by_set.setdefault((wanted, host.address if alone and added else ""),
                              []).append(host)
    groups: list[_Open] = []
    for (ports, single), members in by_set.items():
        members = sorted(members, key=lambda h: h.address)
        per_chunk = max(1, min(max_hosts, MAX_BATCH_PROBES // len(ports)))
        for i in range(0, len(members), per_chunk):
            chunk = members[i : i + per_chunk]
            groups.append(_Open(hosts=chunk, ports=set(ports), probes=len(chunk) * len(ports),
                                alone=bool(single)))
    groups.sort(key=lambda g: (-len(g.hosts), sorted(g.ports), g.hosts[0].address))
    batches: list[_Open] = []
    for group in groups:
        for batch in batches:
            if _fits(batch, group, proto, max_hosts, max_union):
                batch.hosts += group.hosts
                batch.ports |= group.ports
                batch.probes += group.probes
                break
        else:
            batches.append(_Open(hosts=list(group.hosts), ports=set(group.ports),
                                 probes=group.probes, alone=group.alone))
    return [
        VersionBatch(targets=tuple(sorted((h.address for h in b.hosts), key=_ip_key)),
                     ports=tuple(sorted(b.ports)), probes=b.probes)
        for b in batches
    ]


def inside_batches(wanted: Mapping[str, frozenset[int]], max_hosts: int, *,
                   alone: bool = False) -> list[VersionBatch]:
    """-sV processes for ports only the hosts' listings named (no discovery of them ran):
    one per set of hosts with equal port lists (``alone``: one per host), never a port
    for a host that did not list it. Empty sets are skipped; deterministic."""
    by_set: dict[tuple[frozenset[int], str], list[str]] = {}
    for address, ports in wanted.items():
        if ports:
            by_set.setdefault((frozenset(ports), address if alone else ""), []).append(address)
    out: list[VersionBatch] = []
    for (ports, _), members in sorted(by_set.items(),
                                      key=lambda kv: (-len(kv[1]), sorted(kv[0][0]), kv[0][1])):
        members = sorted(members, key=_ip_key)
        per_chunk = max(1, min(max_hosts, MAX_BATCH_PROBES // len(ports)))
        for i in range(0, len(members), per_chunk):
            chunk = members[i : i + per_chunk]
            out.append(VersionBatch(targets=tuple(chunk), ports=tuple(sorted(ports)),
                                    probes=len(chunk) * len(ports)))
    return out


def _ip_key(address: str) -> tuple[int, ...]:
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return tuple(int(p) for p in parts)
    return (1 << 16, *address.encode())


# --- merging -----------------------------------------------------------------------------


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((t for t in (a, b) if t is not None), default=None)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return min((t for t in (a, b) if t is not None), default=None)


def merge_version(
    base: ExternalHost,
    version: ExternalHost | None,
    proto: Proto,
    asked: Iterable[int],
    failure: str | None = None,
) -> ExternalHost:
    """Discovery's view of a host, with -sV's findings on the `asked` ports laid over it.

    Discovery stays the authority on states, scanned ranges and summaries of the ports it
    covered; -sV adds what each open port runs. An asked port discovery did not cover
    (one the host's own listing added) takes its state from the -sV run, which scanned
    it, and joins `scanned`. When -sV did not finish for this host (its process failed,
    was cut short, or the host hit --host-timeout) the open ports stay, unnamed but for
    nmap's port-table guess, and the host says why in `errors`. An asked port that no
    run covered is marked not probed with that reason (`mark_not_probed`), so its verdict
    says what happened to it rather than that no scan asked for it.
    """
    asked_set = set(asked)
    listed = {p.port for p in base.ports if p.proto is proto}
    fresh = sorted(p for p in asked_set if p not in listed and not base.was_scanned(proto, p))
    numbers = format_list(sorted(asked_set), proto)
    if version is None or version.timed_out:
        why = (failure or "nmap did not report this host") if version is None else (
            "the host hit --host-timeout")
        note = f"service detection on {numbers} did not finish ({why}): open ports kept, " \
               "services not identified"
        return mark_not_probed(base.model_copy(update={"errors": [*base.errors, note]}),
                               proto, fresh,
                               f"listed inside; its service detection did not finish ({why})")
    found = {p.port: p for p in version.ports if p.proto is proto}
    errors = list(base.errors)
    ports: list[ExternalPort] = []
    for port in base.ports:
        if port.proto is not proto or port.port not in asked_set:
            ports.append(port)
            continue
        seen = found.get(port.port)
        if seen is None:
            errors.append(f"{port.port}/{proto.value}: {port.state} in discovery, not listed "
                          "by service detection: kept unidentified")
            ports.append(port)
            continue
        if seen.state != port.state and seen.state not in VERSION_STATES:
            errors.append(f"{port.port}/{proto.value}: {port.state} in discovery, "
                          f"{seen.state} in service detection moments later")
        ports.append(seen)
    covered: list[int] = []
    missed: list[int] = []
    unlisted = version.unlisted_state(proto)
    for number in fresh:
        seen = found.get(number)
        if seen is None and version.was_scanned(proto, number) and unlisted is not None:
            seen = ExternalPort(proto=proto, port=number, state=unlisted)
        if seen is None:
            errors.append(f"{number}/{proto.value}: {NOT_REPORTED}")
            missed.append(number)
            continue
        ports.append(seen)
        covered.append(number)
    scanned = dict(base.scanned)
    if covered:
        ports.sort(key=lambda p: (p.proto.value, p.port))
        scanned[proto] = [*scanned.get(proto, []),
                          *(PortRange(first=p, last=p) for p in covered)]
    errors += [e for e in version.errors if e not in errors]
    merged = base.model_copy(update={
        "ports": ports,
        "errors": errors,
        "scanned": scanned,
        "finished_at": _later(base.finished_at, version.finished_at),
    })
    return mark_not_probed(merged, proto, missed, NOT_REPORTED)


def format_list(ports: Sequence[int], proto: Proto) -> str:
    shown = ",".join(str(p) for p in ports[:10])
    more = f" and {len(ports) - 10} more" if len(ports) > 10 else ""
    return f"{proto.value} {shown}{more}"


def with_proto(host: ExternalHost, proto: Proto) -> ExternalHost:
    """A one-protocol run's summaries, labelled with that protocol before runs are merged.

    Older nmap does not say which protocol an <extraports> counts; once a TCP and a UDP
    run are merged that would be ambiguous.
    """
    extra = [e if e.proto is not None else e.model_copy(update={"proto": proto})
             for e in host.extraports]
    return host.model_copy(update={"extraports": extra})


def combine_hosts(views: Sequence[ExternalHost]) -> ExternalHost:
    """Several runs' views of one address as one host; a later view wins on the same port.

    Up when any view saw it up (a host that dropped every UDP probe was still there
    for TCP); summaries are kept per protocol, scanned ranges are unioned.
    """
    first = views[0]
    if len(views) == 1:
        return first
    up = [v for v in views if v.status == "up"]
    status_from = up[0] if up else first
    ports: dict[tuple[Proto, int], ExternalPort] = {}
    extra: list[ExtraPorts] = []
    scanned: dict[Proto, list[PortRange]] = {}
    errors: list[str] = []
    not_probed: dict[tuple[Proto, int], NotProbed] = {}
    started = finished = None
    for view in views:
        for gap in view.not_probed:
            not_probed.setdefault((gap.proto, gap.port), gap)
        for port in view.ports:
            ports[(port.proto, port.port)] = port
        extra += view.extraports
        for proto, ranges in view.scanned.items():
            scanned[proto] = scanned.get(proto, []) + list(ranges)
        errors += [e for e in view.errors if e not in errors]
        started = _earlier(started, view.started_at)
        finished = _later(finished, view.finished_at)
    return ExternalHost(
        address=first.address,
        status=status_from.status,
        reason=status_from.reason,
        ports=[ports[k] for k in sorted(ports, key=lambda k: (k[0].value, k[1]))],
        extraports=extra,
        scanned=scanned,
        started_at=started,
        finished_at=finished,
        timed_out=any(v.timed_out for v in views),
        errors=errors,
        not_probed=[not_probed[k] for k in sorted(not_probed, key=lambda k: (k[0].value, k[1]))],
    )


# --- the run as a whole ------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessResult:
    """One nmap process as it ended: its report (None if unusable) and why it failed."""

    name: str
    command: str
    run: ScanRun | None
    failure: str | None
    xml: bytes


def summarize(
    processes: Sequence[ProcessResult],
    hosts: Mapping[str, ExternalHost],
    failed: Mapping[str, str],
    *,
    profile: str | None,
    privileged: bool | None,
    scan_type: str | None,
) -> ScanRun:
    """The fleet's ScanRun: every process's command and problems, every host merged."""
    runs = [p.run for p in processes if p.run is not None]
    errors: list[str] = []
    for proc in processes:
        if proc.failure:
            errors.append(f"{proc.name}: {proc.failure}")
        if proc.run is not None:
            errors += [f"{proc.name}: {e}" for e in proc.run.errors]
    complete = (not failed and all(p.failure is None and p.run is not None and p.run.complete
                                   for p in processes))
    started = min((r.started_at for r in runs if r.started_at), default=None)
    finished = max((r.finished_at for r in runs if r.finished_at), default=None)
    commands = [p.command for p in processes]
    return ScanRun(
        command=commands[0] if commands else "",
        nmap_version=next((r.nmap_version for r in runs if r.nmap_version), None),
        started_at=started,
        finished_at=finished,
        scan_type=scan_type,
        hosts=[hosts[a] for a in sorted(hosts, key=_ip_key)],
        errors=errors,
        complete=complete,
        source="scan",
        profile=profile,
        privileged=privileged,
        commands=commands,
        evidence=[f"{p.name}.xml" for p in processes if p.xml],
    )
