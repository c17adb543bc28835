"""Run nmap (through python-nmap) and turn its XML into a ScanRun: the external view.

This is one of the two modules that touch the network. Everything that decides what
nmap is allowed to do lives here, in `nmap_command_line`, so a ``--dry-run`` prints
exactly what would run: targets must be literal IP addresses (no DNS ever: ``-n`` is
always on, name resolution happened earlier, under the caller's control), and extra
options come from a short allowlist of timing and intensity knobs, so that nothing can
add targets (-iL, -iR, a stray address), resolve names (-R, --dns-servers), spoof
(-S, -D), write files (-o*) or run scripts (--script).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nmap  # python-nmap

from fleetaudit.errors import (
    ConfigError,
    NmapNotFoundError,
    ParseError,
    ScanError,
    UnsafeTargetError,
)
from fleetaudit.models import Proto, ScanRun
from fleetaudit.parsers.nmap import parse_nmap_services, parse_nmap_xml

__all__ = [
    "ALLOWED_OPTIONS",
    "MIN_NMAP_VERSION",
    "check_route",
    "find_nmap",
    "load_default_services",
    "nmap_command_line",
    "nmap_services_path",
    "scan",
    "validate_targets",
]

INSTALL_HINT = "install it: apt-get install nmap"
MIN_NMAP_VERSION = (7, 0)

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
_TIMING_TEMPLATE = re.compile(r"-T[0-5]")
_PORT_ITEM = re.compile(r"(?:(?P<proto>[TU]):)?(?P<first>\d{1,5})(?:-(?P<last>\d{1,5}))?")
_SCOPE_ID = re.compile(r"[A-Za-z0-9_.-]+")


# --- validation (pure) ---------------------------------------------------------------


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
    if len({ipaddress.ip_address(t).version for t in out}) > 1:
        raise ScanError("IPv4 and IPv6 targets must be scanned in separate runs (nmap -6)")
    return out


def _validate_ports(ports: str) -> tuple[str, bool]:
    """nmap's -p syntax restricted to numbers, ranges and T:/U: prefixes; says if UDP."""
    spec = ports.replace(" ", "")
    udp = False
    for item in spec.split(","):
        m = _PORT_ITEM.fullmatch(item)
        if m is None:
            raise ConfigError(f"bad port list {ports!r}: use numbers, ranges and T:/U:")
        first = int(m["first"])
        last = int(m["last"]) if m["last"] else first
        if not 0 <= first <= last <= 65535:
            raise ConfigError(f"bad port range {item!r} in {ports!r}")
        udp = udp or m["proto"] == "U"
    return spec, udp


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


@dataclass(frozen=True)
class _Plan:
    targets: list[str]
    ports: str | None
    args: list[str]
    scan_type: str


def _plan(
    targets: Sequence[str],
    ports: str | None,
    *,
    version_light: bool,
    extra_args: Sequence[str],
    privileged: bool | None,
) -> _Plan:
    ips = validate_targets(targets)
    if privileged is None:
        privileged = os.geteuid() == 0
    spec, udp = _validate_ports(ports) if ports is not None else (None, False)
    if udp and not privileged:
        raise ConfigError("a UDP scan (U: ports) needs root")
    extras = _validate_extra(extra_args)
    if "--version-light" in extras:
        version_light = True
        extras.remove("--version-light")
    args = ["-n", "-Pn", "-sS" if privileged else "-sT"]
    if udp:
        args.append("-sU")
    args.append("-sV")
    if version_light:
        args.append("--version-light")
    if ipaddress.ip_address(ips[0]).version == 6:
        args.append("-6")
    args += extras
    scan_type = ("syn" if privileged else "connect") + (",udp" if udp else "")
    return _Plan(targets=ips, ports=spec, args=args, scan_type=scan_type)


def nmap_command_line(
    targets: Sequence[str],
    ports: str | None = None,
    *,
    version_light: bool = False,
    extra_args: Sequence[str] = (),
    privileged: bool | None = None,
    nmap_path: str = "nmap",
) -> list[str]:
    """The exact argv `scan` runs, in python-nmap's order (for --dry-run and for tests).

    ``privileged`` None means "as this process": SYN scan for root, connect scan
    otherwise. ``ports`` None leaves nmap's default, its top 1000 ports. Raises
    UnsafeTargetError or ConfigError without running anything.
    """
    plan = _plan(
        targets,
        ports,
        version_light=version_light,
        extra_args=extra_args,
        privileged=privileged,
    )
    port_args = ["-p", plan.ports] if plan.ports is not None else []
    return [nmap_path, "-oX", "-", *plan.targets, *port_args, *plan.args]


# --- nmap on disk ----------------------------------------------------------------------


def find_nmap(nmap_path: str | None = None) -> str:
    """Absolute path of the nmap binary, or NmapNotFoundError with how to install it."""
    found = shutil.which(nmap_path or "nmap")
    if found is None:
        where = f"at {nmap_path!r}" if nmap_path else "in PATH"
        raise NmapNotFoundError(f"nmap not found {where}; {INSTALL_HINT}")
    return found


def nmap_services_path(nmap_bin: str) -> Path | None:
    """nmap's own nmap-services, looked up where nmap itself looks for its data."""
    candidates: list[Path] = []
    if os.environ.get("NMAPDIR"):
        candidates.append(Path(os.environ["NMAPDIR"]))
    candidates.append(Path.home() / ".nmap")
    candidates.append(Path(nmap_bin).resolve().parent.parent / "share" / "nmap")
    candidates += [Path("/usr/share/nmap"), Path("/usr/local/share/nmap")]
    for directory in candidates:
        path = directory / "nmap-services"
        try:
            if path.is_file():
                return path
        except OSError:  # e.g. HOME still /root after dropping privileges: skip, as nmap does
            continue
    return None


def load_default_services(nmap_bin: str) -> dict[tuple[Proto, int], str]:
    """nmap's port -> service table; a missing or unreadable file means no defaults."""
    path = nmap_services_path(nmap_bin)
    if path is None:
        return {}
    try:
        return parse_nmap_services(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}


def check_route(address: str, route_dev: str) -> None:
    """Raise UnsafeTargetError unless the kernel sends packets for `address` via `route_dev`.

    Asked of the kernel (``ip route get``, a local lookup that sends nothing) rather than
    computed, so policy routing or a route added later cannot take a scan elsewhere.
    Blocking: call it in a thread.
    """
    (ip,) = validate_targets([address])
    ip_bin = shutil.which("ip")
    if ip_bin is None:
        raise UnsafeTargetError(f"cannot check how {ip} is routed: 'ip' (iproute2) is missing")
    try:
        done = subprocess.run(
            [ip_bin, "-j", "route", "get", ip.split("%", 1)[0]],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        routes = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        raise UnsafeTargetError(f"cannot check how {ip} is routed: {exc}") from None
    if not routes:
        detail = done.stderr.strip() or "no route"
        raise UnsafeTargetError(f"cannot check how {ip} is routed: {detail}")
    dev = routes[0].get("dev") if isinstance(routes[0], dict) else None
    if dev != route_dev:
        raise UnsafeTargetError(
            f"{ip} is routed via {dev or 'nothing'}, not {route_dev}: refusing to scan it"
        )


# --- running -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    xml: bytes
    failure: str | None  # what python-nmap raised, if it raised
    stderr: list[str]  # nmap's stderr lines that were not warnings


def _run_nmap(nmap_bin: str, plan: _Plan, timeout: float | None) -> _Outcome:
    """Blocking: python-nmap runs nmap and waits; called in a worker thread."""
    try:
        scanner = nmap.PortScanner(nmap_search_path=(nmap_bin,))
    except nmap.PortScannerError as exc:
        raise NmapNotFoundError(
            f"{nmap_bin} does not run as nmap ({exc.value}); {INSTALL_HINT}"
        ) from None
    version = scanner.nmap_version()
    if tuple(version) < MIN_NMAP_VERSION:
        wanted = ".".join(map(str, MIN_NMAP_VERSION))
        raise NmapNotFoundError(f"nmap {version[0]}.{version[1]} is older than {wanted}")
    failure: str | None = None
    stderr: list[str] = []
    try:
        scanner.scan(
            hosts=" ".join(plan.targets),
            ports=plan.ports,
            arguments=shlex.join(plan.args),
            timeout=timeout or 0,
        )
        errors = scanner.scaninfo().get("error", [])
        # python-nmap repeats the whole stderr once per non-warning line.
        stderr = list(dict.fromkeys(line.strip() for e in errors for line in e.splitlines()))
    except nmap.PortScannerTimeout:
        raise ScanError(f"nmap ran longer than {timeout} s and was killed") from None
    except nmap.PortScannerError as exc:
        # python-nmap could not read the XML: it raises nmap's stderr, or the output itself.
        value = exc.value.decode(errors="replace") if isinstance(exc.value, bytes) else exc.value
        value = str(value).strip()
        if value.startswith("<") or not value:
            failure = "python-nmap could not read nmap's XML"
        else:
            failure = value
            stderr = list(dict.fromkeys(line.strip() for line in value.splitlines()))
    except (AssertionError, AttributeError, KeyError) as exc:
        # python-nmap's own dict builder trips over XML it did not expect; ours decides.
        failure = f"python-nmap: {exc!r}"
    raw = scanner.get_nmap_last_output()
    # Before a scan ran, python-nmap holds the text of `nmap -V` (a str): not a report.
    return _Outcome(raw if isinstance(raw, bytes) else b"", failure, [s for s in stderr if s])


def _unscoped(address: str) -> str:
    """An address without its IPv6 scope, canonical when it parses (nmap drops scopes)."""
    bare = address.split("%", 1)[0]
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare


async def scan(
    targets: Sequence[str],
    *,
    ports: str | None = None,
    version_light: bool = False,
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
    nmap_path: str | None = None,
) -> tuple[ScanRun, bytes]:
    """Scan IP targets with nmap -sV; return the parsed run and nmap's raw XML (evidence).

    A run nmap cut short still comes back, with ``complete=False`` and the reasons in
    ``errors``; ScanError only when there is nothing usable. ``timeout`` kills nmap
    (python-nmap then keeps no output). Cancelling the task does not stop nmap: the
    worker thread runs it to the end or to ``timeout``.
    """
    plan = _plan(
        targets,
        ports,
        version_light=version_light,
        extra_args=extra_args,
        privileged=None,
    )
    nmap_bin = find_nmap(nmap_path)
    defaults = await asyncio.to_thread(load_default_services, nmap_bin)
    outcome = await asyncio.to_thread(_run_nmap, nmap_bin, plan, timeout)
    if not outcome.xml.strip():
        raise ScanError(f"nmap produced no XML: {outcome.failure or 'no output'}")
    try:
        run = parse_nmap_xml(outcome.xml, defaults)
    except ParseError as exc:
        detail = f" (nmap said: {outcome.failure})" if outcome.failure else ""
        raise ScanError(f"nmap output is not a usable report: {exc}{detail}") from exc
    if not run.hosts and not run.complete:
        raise ScanError("nmap failed: " + "; ".join(run.errors))

    errors = list(run.errors)
    errors += [f"nmap stderr: {line}" for line in outcome.stderr]
    if run.complete:
        reported = {_unscoped(h.address) for h in run.hosts}
        missing = [t for t in plan.targets if _unscoped(t) not in reported]
        errors += [f"{t}: missing from nmap's report" for t in missing]
    update: dict[str, object] = {"errors": errors}
    if run.scan_type is None:
        update["scan_type"] = plan.scan_type
    return run.model_copy(update=update), outcome.xml
