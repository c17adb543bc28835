"""What nmap is allowed to do, as pure functions: targets, port lists, profiles, argv.

Every nmap command line fleetaudit runs is built here, so ``--dry-run`` prints exactly
what would run. Targets must be literal IP addresses (``-n`` is always on: no DNS
ever, names were resolved earlier under the caller's control; a CIDR or a range is
refused, since an inventory host is one address). Extra options come from a short
allowlist of timing and intensity knobs, so that nothing can add targets (-iL, -iR, a
stray address), resolve names (-R, --dns-servers), spoof (-S, -D), write files (-o*)
or run scripts (--script).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from fleetaudit.errors import ConfigError, ScanError, UnsafeTargetError
from fleetaudit.models import Proto

__all__ = [
    "ALLOWED_OPTIONS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "NmapJob",
    "PortSelection",
    "Profile",
    "ScanSettings",
    "discovery_job",
    "make_settings",
    "parse_port_spec",
    "single_job",
    "validate_targets",
    "version_job",
]

QUICK_TOP_PORTS = 1000
UDP_TOP_PORTS = 100
DEFAULT_BATCH_SIZE = 256
DEFAULT_CONCURRENCY = 4
# Discovery is packet-bound and nmap backs off hard when it believes probes were lost.
# Measured on the 50-host lab (2 CPUs, all TCP ports): one process 48 s; two at once
# 33-44 s, but 212 s once while other work loaded the machine; four at once 40 s or
# 234 s. One discovery process at a time is as robust as plain nmap; -sV processes
# (mostly waiting on banners) still run beside it. See benchmarks/README.md.
DEFAULT_DISCOVERY_CONCURRENCY = 1
MIN_SPLIT_BATCH = 16  # below this, one process for the lot beats splitting
# Up to this many targets, one `nmap -sV` per protocol does discovery and -sV itself
# (see plan.single_pass): with so few hosts the open ports rarely exceed the 20 service
# probes nmap runs at once, so a second process (startup, probe database, port re-check:
# 0.2-0.7 s measured on 3 hosts) would be pure cost. From 5 hosts on, -sV parallelism
# sized to what discovery found open is worth that second process.
SINGLE_PASS_MAX_HOSTS = 4
MAX_BATCH_SIZE = 4096
# nmap runs at most 20 service probes at once (at -T3) whatever the group size: with
# ~6 s of silence to wait on every port where the client speaks first (HTTP), that
# queue is what makes -sV slow. We open up to this many at once instead.
MAX_VERSION_PARALLELISM = 256
NMAP_DEFAULT_MAX_PARALLELISM = 100
DEFAULT_VERSION_HOST_TIMEOUT = "10m"
# After a discovery batch, how long its version phase waits for the hosts' own listings
# (the first SSH round, started at the same time) before it goes on with the profile's
# ports; a listing that comes later gets a small -sV pass of its own (engine._inside_pass),
# which runs beside the version phase. Round 1 usually lands before discovery ends; on
# 200 lab hosts collected 50 at a time the last ones came 2.5 s after it, and the whole
# version phase waited for them (benchmarks/audit_bench.py timings).
LISTING_WAIT = 1.0

_TIME = r"\d+(?:\.\d+)?(?:ms|s|m|h)?"
_COUNT = r"\d+"
# option -> regex its value must match (None: a flag without a value).
ALLOWED_OPTIONS: Mapping[str, str | None] = {
    "--version-all": None,
    "--version-light": None,
    "--version-intensity": r"[0-9]",
    "--defeat-rst-ratelimit": None,
    "--max-retries": _COUNT,
    "--host-timeout": _TIME,
    "--scan-delay": _TIME,
    "--max-scan-delay": _TIME,
    "--initial-rtt-timeout": _TIME,
    "--min-rtt-timeout": _TIME,
    "--max-rtt-timeout": _TIME,
    "--min-rate": r"\d+(?:\.\d+)?",
    "--max-rate": r"\d+(?:\.\d+)?",
    "--min-parallelism": _COUNT,
    "--max-parallelism": _COUNT,
    "--min-hostgroup": _COUNT,
    "--max-hostgroup": _COUNT,
}
_VERSION_OPTIONS = frozenset({"--version-all", "--version-light", "--version-intensity"})
_TIMING_TEMPLATE = re.compile(r"-T[0-5]")
_PORT_ITEM = re.compile(r"(?:(?P<proto>[TU]):)?(?P<first>\d{1,5})(?:-(?P<last>\d{1,5}))?")
_SCOPE_ID = re.compile(r"[A-Za-z0-9_.-]+")


class Profile(StrEnum):
    """quick: top 1000 TCP ports, light -sV; standard: every TCP port; full: + top UDP."""

    QUICK = "quick"
    STANDARD = "standard"
    FULL = "full"


# --- targets ---------------------------------------------------------------------------


def validate_targets(targets: Sequence[str]) -> list[str]:
    """Targets as canonical IP strings, deduplicated in order; anything else is refused.

    A hostname would make nmap resolve it (outside our control, and possibly to
    something else than what the caller checked), a CIDR or range would widen the scan.
    """
    seen: set[str] = set()
    out: list[str] = []
    for target in targets:
        try:
            ip = ipaddress.ip_address(target)
        except ValueError:
            raise UnsafeTargetError(
                f"refusing to scan {target!r}: targets must be single IP addresses "
                "(resolve names and expand ranges before scanning)"
            ) from None
        if ip.is_unspecified or ip.is_multicast or str(ip) == "255.255.255.255":
            raise UnsafeTargetError(f"refusing to scan {target!r}: not a host address")
        scope = ip.scope_id if isinstance(ip, ipaddress.IPv6Address) else None
        if scope is not None and not _SCOPE_ID.fullmatch(scope):
            raise UnsafeTargetError(f"refusing to scan {target!r}: odd IPv6 scope id")
        canonical = str(ip)
        if canonical not in seen:
            seen.add(canonical)
            out.append(canonical)
    if not out:
        raise ScanError("no targets to scan")
    return out


def ip_version(target: str) -> int:
    return ipaddress.ip_address(target).version


# --- ports -----------------------------------------------------------------------------


def parse_port_spec(spec: str) -> dict[Proto, list[tuple[int, int]]]:
    """nmap's -p syntax restricted to numbers, ranges and T:/U: prefixes, per protocol.

    As in nmap, a prefix holds until the next one ("T:22,80,U:53": 80 is TCP). Unlike
    nmap, items before any prefix are TCP only (nmap would also scan them as UDP when a
    UDP scan runs): write U: for UDP. Ranges come back merged and sorted.
    """
    text = spec.replace(" ", "")
    found: dict[Proto, list[tuple[int, int]]] = {}
    proto = Proto.TCP
    for item in text.split(","):
        m = _PORT_ITEM.fullmatch(item)
        if m is None:
            raise ConfigError(f"bad port list {spec!r}: use numbers, ranges and T:/U:")
        if m["proto"]:
            proto = Proto.UDP if m["proto"] == "U" else Proto.TCP
        first = int(m["first"])
        last = int(m["last"]) if m["last"] else first
        if not 0 <= first <= last <= 65535:
            raise ConfigError(f"bad port range {item!r} in {spec!r}")
        found.setdefault(proto, []).append((first, last))
    return {p: _merge_ranges(r) for p, r in found.items()}


def _merge_ranges(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def format_ports(ports: Sequence[int]) -> str:
    """Sorted port numbers as a compact nmap list ("22,80-82")."""
    return ",".join(
        str(a) if a == b else f"{a}-{b}" for a, b in _merge_ranges([(p, p) for p in ports])
    )


@dataclass(frozen=True)
class PortSelection:
    """The ports one discovery run covers, for one protocol: nmap's top N, or ranges."""

    proto: Proto
    top: int | None = None
    ranges: tuple[tuple[int, int], ...] = ()

    def describe(self) -> str:
        if self.top is not None:
            return f"top {self.top} {self.proto.value.upper()} ports"
        return f"{self.proto.value.upper()} " + ",".join(
            str(a) if a == b else f"{a}-{b}" for a, b in self.ranges
        )


# --- options ---------------------------------------------------------------------------


def _validate_extra(extra_args: Sequence[str]) -> list[str]:
    out: list[str] = []
    args = list(extra_args)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if _TIMING_TEMPLATE.fullmatch(arg):
            out.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name not in ALLOWED_OPTIONS:
            raise ConfigError(
                f"nmap option {arg!r} is not allowed; allowed: -T0..-T5, "
                + ", ".join(sorted(ALLOWED_OPTIONS))
            )
        pattern = ALLOWED_OPTIONS[name]
        if pattern is None:
            if eq:
                raise ConfigError(f"nmap option {name} takes no value")
            out.append(name)
            continue
        if not eq:
            if i >= len(args):
                raise ConfigError(f"nmap option {name} needs a value")
            value = args[i]
            i += 1
        if not re.fullmatch(pattern, value):
            raise ConfigError(f"bad value {value!r} for nmap option {name}")
        out += [name, value]
    return out


def _split_version_options(extras: list[str]) -> tuple[list[str], list[str]]:
    """(options for every nmap run, options that only mean something with -sV)."""
    common: list[str] = []
    version: list[str] = []
    i = 0
    while i < len(extras):
        name = extras[i]
        takes_value = name in ALLOWED_OPTIONS and ALLOWED_OPTIONS[name] is not None
        chunk = extras[i : i + (2 if takes_value else 1)]
        (version if name in _VERSION_OPTIONS else common).extend(chunk)
        i += len(chunk)
    return common, version


@dataclass(frozen=True)
class ScanSettings:
    """A validated scan plan, before any target is known: what each phase will do."""

    profile: Profile
    selections: tuple[PortSelection, ...]  # TCP first: its results come back soonest
    privileged: bool
    version_light: bool
    common_args: tuple[str, ...]
    version_args: tuple[str, ...]
    batch_size: int
    concurrency: int  # nmap processes at once, both phases together
    version_host_timeout: str | None
    union_ports: int = 128  # see plan.plan_version_batches; 0 = one process per open-port set
    discovery_concurrency: int = DEFAULT_DISCOVERY_CONCURRENCY  # of `concurrency`
    single_pass_max_hosts: int = SINGLE_PASS_MAX_HOSTS  # see plan.single_pass; 0 = never
    listing_wait: float = LISTING_WAIT  # seconds; see LISTING_WAIT
    # Inside-listed ports: one -sV process per host instead of one per set of hosts with
    # equal port lists (measured slower: benchmarks/README.md); kept for the benchmark.
    inside_per_host: bool = False

    def discovery_batch_size(self, targets: int) -> int:
        """Hosts per discovery process: at most `batch_size`, and small enough that the
        discovery slots all get work (their results then reach -sV sooner)."""
        spread = math.ceil(targets / max(1, min(self.discovery_concurrency, self.concurrency)))
        return max(1, min(self.batch_size, max(spread, MIN_SPLIT_BATCH)))

    @property
    def scan_type(self) -> str:
        tcp = "syn" if self.privileged else "connect"
        protos = {s.proto for s in self.selections}
        return ",".join(([tcp] if Proto.TCP in protos else []) +
                        (["udp"] if Proto.UDP in protos else []))


def make_settings(
    profile: Profile | str = Profile.QUICK,
    ports: str | None = None,
    *,
    privileged: bool,
    extra_args: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    version_host_timeout: str | None = DEFAULT_VERSION_HOST_TIMEOUT,
    discovery_concurrency: int = DEFAULT_DISCOVERY_CONCURRENCY,
    single_pass_max_hosts: int = SINGLE_PASS_MAX_HOSTS,
) -> ScanSettings:
    """Check a profile, an optional explicit port list and extra options; ConfigError if wrong.

    ``ports`` replaces the profile's port choice (the profile still sets the version
    intensity). A UDP scan needs raw sockets: ``full``, or U: ports, as non-root is a
    ConfigError rather than a scan that silently skips UDP.
    """
    try:
        profile = Profile(profile)
    except ValueError:
        raise ConfigError(
            f"unknown scan profile {profile!r}; use one of: "
            + ", ".join(p.value for p in Profile)
        ) from None
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"scan batch size must be 1 to {MAX_BATCH_SIZE}, not {batch_size}")
    if not 1 <= concurrency <= 64:
        raise ConfigError(f"scan concurrency must be 1 to 64 nmap processes, not {concurrency}")
    if not 1 <= discovery_concurrency <= concurrency:
        raise ConfigError(f"discovery concurrency must be 1 to {concurrency} (the scan "
                          f"concurrency), not {discovery_concurrency}")
    if not 0 <= single_pass_max_hosts <= MAX_BATCH_SIZE:
        raise ConfigError(f"single-pass limit must be 0 to {MAX_BATCH_SIZE} hosts, "
                          f"not {single_pass_max_hosts}")
    if version_host_timeout is not None and not re.fullmatch(_TIME, version_host_timeout):
        raise ConfigError(f"bad host timeout {version_host_timeout!r}")
    selections: list[PortSelection]
    if ports is not None:
        by_proto = parse_port_spec(ports)
        selections = [PortSelection(proto=p, ranges=tuple(r)) for p, r in
                      sorted(by_proto.items(), key=lambda kv: kv[0] != Proto.TCP)]
    elif profile is Profile.QUICK:
        selections = [PortSelection(proto=Proto.TCP, top=QUICK_TOP_PORTS)]
    else:
        selections = [PortSelection(proto=Proto.TCP, ranges=((1, 65535),))]
        if profile is Profile.FULL:
            selections.append(PortSelection(proto=Proto.UDP, top=UDP_TOP_PORTS))
    if not privileged and any(s.proto is Proto.UDP for s in selections):
        why = "profile 'full' scans UDP" if ports is None else "the U: ports are a UDP scan"
        raise ConfigError(
            f"{why}, which needs root (raw sockets): run as root, or use "
            "--profile standard / TCP ports only"
        )
    common, version = _split_version_options(_validate_extra(extra_args))
    light = profile is Profile.QUICK
    if "--version-light" in version:
        light = True
        version.remove("--version-light")
    return ScanSettings(
        profile=profile,
        selections=tuple(selections),
        privileged=privileged,
        version_light=light,
        common_args=tuple(common),
        version_args=tuple(version),
        batch_size=batch_size,
        concurrency=concurrency,
        version_host_timeout=version_host_timeout,
        discovery_concurrency=discovery_concurrency,
        single_pass_max_hosts=single_pass_max_hosts,
    )


# --- command lines -----------------------------------------------------------------------


@dataclass(frozen=True)
class NmapJob:
    """One nmap process: argv is exactly what python-nmap runs (``nmap -oX - TARGETS ...``)."""

    name: str
    phase: str  # "discovery" | "version" | "single" (both at once, see single_job)
    proto: Proto
    targets: tuple[str, ...]
    ports: str | None  # -p, or None when args select ports (--top-ports)
    args: tuple[str, ...]

    def argv(self, nmap_path: str = "nmap") -> list[str]:
        port_args = ["-p", self.ports] if self.ports is not None else []
        return [nmap_path, "-oX", "-", *self.targets, *port_args, *self.args]


def _scan_flag(proto: Proto, privileged: bool) -> str:
    if proto is Proto.UDP:
        return "-sU"
    return "-sS" if privileged else "-sT"


def _family_args(targets: Sequence[str]) -> list[str]:
    versions = {ip_version(t) for t in targets}
    if len(versions) > 1:
        raise ScanError("IPv4 and IPv6 targets must be scanned in separate runs (nmap -6)")
    return ["-6"] if versions == {6} else []


def discovery_job(
    name: str, targets: Sequence[str], selection: PortSelection, settings: ScanSettings,
) -> NmapJob:
    """Phase 1: which ports are open, no -sV. ``-v`` makes nmap list down hosts, with why.

    All the batch's hosts form one nmap host group (--min-hostgroup), so nmap works on
    all of them at once instead of its default small first groups.
    """
    ips = validate_targets(targets)
    ports, select = _selection_args(selection)
    args = [
        "-n", "-Pn", "-v", _scan_flag(selection.proto, settings.privileged), *select,
        *_family_args(ips), "--min-hostgroup", str(len(ips)), *settings.common_args,
    ]
    return NmapJob(name=name, phase="discovery", proto=selection.proto, targets=tuple(ips),
                   ports=ports, args=tuple(args))


def _selection_args(selection: PortSelection) -> tuple[str | None, list[str]]:
    """(-p value, other port-selecting args) for a discovery-style run."""
    if selection.top is not None:
        return None, ["--top-ports", str(selection.top)]
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in selection.ranges), []


def single_job(
    name: str, targets: Sequence[str], selection: PortSelection, settings: ScanSettings,
) -> NmapJob:
    """Both phases in one process, for a fleet small enough (plan.single_pass): discovery's
    options plus -sV, the version intensity and --host-timeout of phase 2.

    nmap then runs -sV on the ports it found open, with its own 20 parallel probes; a host
    that hits --host-timeout loses its ports too (nmap lists none), which the parser says.
    """
    ips = validate_targets(targets)
    ports, select = _selection_args(selection)
    args = ["-n", "-Pn", "-v", _scan_flag(selection.proto, settings.privileged), "-sV"]
    if settings.version_light:
        args.append("--version-light")
    args += [*select, *_family_args(ips), "--min-hostgroup", str(len(ips))]
    if settings.version_host_timeout is not None:
        args += ["--host-timeout", settings.version_host_timeout]
    args += [*settings.common_args, *settings.version_args]
    return NmapJob(name=name, phase="single", proto=selection.proto, targets=tuple(ips),
                   ports=ports, args=tuple(args))


def version_parallelism(probes: int) -> int:
    return max(20, min(probes, MAX_VERSION_PARALLELISM))


def version_job(
    name: str, targets: Sequence[str], proto: Proto, ports: Sequence[int],
    settings: ScanSettings, probes: int,
) -> NmapJob:
    """Phase 2: -sV on the ports discovery found open, all probes of the batch at once.

    ``probes`` is how many (host, port) pairs need identifying; nmap's service scan
    gets that many parallel probes (at least its own default of 20, at most
    MAX_VERSION_PARALLELISM). --host-timeout bounds a tarpit: a host that hits it loses
    only its service names, since discovery already recorded its ports.
    """
    ips = validate_targets(targets)
    if not ports:
        raise ScanError(f"{name}: no ports to identify")
    par = version_parallelism(probes)
    args = ["-n", "-Pn", _scan_flag(proto, settings.privileged), "-sV"]
    if settings.version_light:
        args.append("--version-light")
    args += [*_family_args(ips), "--min-hostgroup", str(len(ips)), "--min-parallelism", str(par)]
    if par > NMAP_DEFAULT_MAX_PARALLELISM:
        args += ["--max-parallelism", str(par)]  # nmap's own cap would undercut the minimum
    if settings.version_host_timeout is not None:
        args += ["--host-timeout", settings.version_host_timeout]
    args += [*settings.common_args, *settings.version_args]
    return NmapJob(name=name, phase="version", proto=proto, targets=tuple(ips),
                   ports=format_ports(sorted(set(ports))), args=tuple(args))
