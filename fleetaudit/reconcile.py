"""The outside view and the inside view compared port by port: the heart of the audit.

Pure: (external host, internal view) -> one PortReport per (proto, port) that either
view has open or listening, each with at least one verdict and the evidence behind it.
A port whose verdict cannot be decided gets UNKNOWN with the reason, never a guess.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from fleetaudit.models import (
    ExternalHost,
    ExternalPort,
    InternalView,
    ListenerEvidence,
    PortReport,
    ProcessInfo,
    Proto,
    Severity,
    Socket,
    Verdict,
    VerdictKind,
)

OPEN_STATES = {"open"}
SUSPICIOUS_DIRS = ("/tmp/", "/dev/shm/", "/var/tmp/", "/run/shm/")

# nmap's services table names several ports differently for one protocol (8080 is
# "http-proxy", 8000 "http-alt"); -sV names the protocol. Compare families, not labels.
_SERVICE_FAMILIES = {
    "http-alt": "http", "http-proxy": "http", "www": "http", "www-http": "http",
    "https-alt": "https", "ssl/http": "https", "ssl/https": "https",
    "ssl/imap": "imaps", "ssl/pop3": "pop3s", "ssl/smtp": "smtps",
    "microsoft-ds": "smb", "netbios-ssn": "smb",
}


def reconcile_host(
    external: ExternalHost | None,
    internal: InternalView | None,
    *,
    scanned_address: str,
    external_missing: str | None = None,
    internal_missing: str | None = None,
) -> list[PortReport]:
    """Judge every port of one host; `*_missing` say why a view is absent."""
    processes = {p.pid: p for p in internal.processes} if internal else {}
    sockets: dict[tuple[Proto, int], list[Socket]] = {}
    for sock in internal.sockets if internal else []:
        sockets.setdefault((sock.proto, sock.port), []).append(sock)
    listed = {(p.proto, p.port): p for p in external.ports} if external else {}
    keys = {k for k, p in listed.items() if p.state in OPEN_STATES} | set(sockets)

    reports = []
    for proto, port in sorted(keys):
        found = sockets.get((proto, port), [])
        ext = listed.get((proto, port))
        listeners = [ev for sock in found for ev in _evidence(sock, processes)]
        verdicts = _port_verdicts(
            proto, port, ext, found, external, scanned_address,
            external_missing or ("no scan result for this host" if external is None else None),
            internal_missing or ("no internal view for this host" if internal is None else None),
        )
        verdicts += _binary_verdicts(listeners)
        if not verdicts:
            verdicts = [_consistent(ext, listeners)]
        reports.append(PortReport(proto=proto, port=port, external=ext, listeners=listeners,
                                  verdicts=verdicts))
    return reports


def _evidence(sock: Socket, processes: dict[int, ProcessInfo]) -> list[ListenerEvidence]:
    if not sock.owners:
        return [ListenerEvidence(address=sock.address, scope=sock.scope, source=sock.source)]
    return [
        ListenerEvidence(address=sock.address, scope=sock.scope, source=sock.source,
                         pid=owner.pid, process=processes.get(owner.pid))
        for owner in sock.owners
    ]


def serves_address(sock: Socket, address: str) -> bool:
    """Whether a socket accepts connections sent to `address` (the one nmap scanned)."""
    bound = sock.address.strip("[]")
    if bound in ("*", "0.0.0.0", "::"):
        # A v6 wildcard also takes IPv4 unless bindv6only is set (Linux default: off).
        return bound != "0.0.0.0" or ":" not in address
    try:
        bound_ip = ipaddress.ip_address(bound)
        target = ipaddress.ip_address(address)
    except ValueError:
        return bound == address
    if isinstance(bound_ip, ipaddress.IPv6Address) and bound_ip.ipv4_mapped is not None:
        bound_ip = bound_ip.ipv4_mapped
    return bound_ip == target


def _describe_external(ext: ExternalPort) -> str:
    what = " ".join(x for x in (ext.service, ext.product, ext.version, ext.extrainfo) if x)
    how = f" (reason {ext.reason})" if ext.reason else ""
    return f"nmap: {ext.port}/{ext.proto.value} {ext.state} {what}".rstrip() + how


def _describe_socket(sock: Socket) -> str:
    owners = ", ".join(f"{o.command} pid {o.pid}" for o in sock.owners) or "no PID visible"
    scope = f"%{sock.scope}" if sock.scope else ""
    return f"{sock.source.value}: {sock.proto.value} {sock.address}{scope}:{sock.port} ({owners})"


def service_family(name: str | None, tunnel: str | None = None) -> str | None:
    if not name:
        return None
    name = name.lower().rstrip("?")
    if tunnel == "ssl" and name == "http":
        name = "https"
    return _SERVICE_FAMILIES.get(name, name)


def _port_verdicts(
    proto: Proto, port: int, ext: ExternalPort | None, found: list[Socket],
    external: ExternalHost | None, scanned_address: str,
    external_missing: str | None, internal_missing: str | None,
) -> list[Verdict]:
    facts = [_describe_external(ext)] if ext else []
    facts += [_describe_socket(s) for s in found]
    reachable = [s for s in found if serves_address(s, scanned_address)]
    loopback_only = bool(found) and all(s.is_loopback for s in found)

    if internal_missing and ext and ext.state in OPEN_STATES:
        return [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.LOW,
                        message=f"open outside; inside not seen: {internal_missing}",
                        evidence=facts)] + _nonstandard(ext)
    if loopback_only and not (ext and ext.state in OPEN_STATES):
        return [Verdict(kind=VerdictKind.LOCAL_ONLY, severity=Severity.INFO,
                        message="bound to loopback only: not reachable from the network",
                        evidence=facts)]
    if ext is not None and ext.state in OPEN_STATES:
        if not reachable:
            why = ("no listener inside" if not found else
                   "the listeners inside are not bound to the scanned address")
            return [Verdict(kind=VerdictKind.EXTERNAL_ONLY, severity=Severity.HIGH,
                            message=f"open from outside but {why}: hidden listener, "
                                    "port forward or a lying tool",
                            evidence=facts)] + _nonstandard(ext)
        return _nonstandard(ext)
    if external_missing:
        return [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.LOW,
                        message=f"listening inside; outside not seen: {external_missing}",
                        evidence=facts)]
    assert external is not None
    if ext is None and not external.was_scanned(proto, port):
        return [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.INFO,
                        message=f"listening inside; {port}/{proto.value} was not in the "
                                "scan's port list", evidence=facts)]
    if not reachable:
        bound = ", ".join(sorted({s.address for s in found}))
        return [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.INFO,
                        message=f"listening on {bound}, not on the scanned address "
                                f"{scanned_address}", evidence=facts)]
    state = ext.state if ext else external.unlisted_state(proto) or "not open"
    return [Verdict(kind=VerdictKind.FILTERED, severity=Severity.LOW,
                    message=f"listening on a routable address but {state} from the scanner",
                    evidence=[*facts, f"nmap: {port}/{proto.value} {state}"] if not ext
                    else facts)]


def _nonstandard(ext: ExternalPort) -> list[Verdict]:
    found = service_family(ext.service, ext.tunnel)
    default = service_family(ext.default_service)
    if ext.method != "probed" or not found or not default or found == default:
        return []
    return [Verdict(
        kind=VerdictKind.NONSTANDARD_PORT, severity=Severity.MEDIUM,
        message=f"{ext.service} identified on {ext.port}/{ext.proto.value}, "
                f"whose default service is {ext.default_service}",
        evidence=[_describe_external(ext),
                  f"default service of {ext.port}/{ext.proto.value}: {ext.default_service}"],
    )]


def _binary_verdicts(listeners: Iterable[ListenerEvidence]) -> list[Verdict]:
    verdicts: list[Verdict] = []
    seen: set[tuple[VerdictKind, int]] = set()
    for ev in listeners:
        proc = ev.process
        if ev.pid is None:
            verdicts.append(Verdict(
                kind=VerdictKind.UNKNOWN, severity=Severity.LOW,
                message="no PID visible for this socket (not privileged, or another namespace)",
                evidence=[f"{ev.source.value}: {ev.address} without owner"]))
            continue
        if proc is None or not proc.exe:
            continue
        chain = [f"pid {proc.pid} exe {proc.exe}" + (" (deleted)" if proc.exe_deleted else "")]
        for kind, severity, message in _judge_process(proc):
            if (kind, proc.pid) not in seen:
                seen.add((kind, proc.pid))
                verdicts.append(Verdict(kind=kind, severity=severity, message=message,
                                        evidence=chain))
    return verdicts


def _judge_process(proc: ProcessInfo) -> list[tuple[VerdictKind, Severity, str]]:
    exe = proc.exe or ""
    found: list[tuple[VerdictKind, Severity, str]] = []
    if proc.exe_deleted:
        found.append((VerdictKind.DELETED_BINARY, Severity.HIGH,
                      f"{exe} was deleted after the process started"))
    if proc.package_manager and proc.package is None:
        found.append((VerdictKind.UNOWNED_BINARY, Severity.HIGH,
                      f"{exe} belongs to no {proc.package_manager} package"))
    if exe.startswith(SUSPICIOUS_DIRS) or "/." in exe:
        found.append((VerdictKind.SUSPICIOUS_PATH, Severity.HIGH,
                      f"{exe} runs from a temporary or hidden directory"))
    return found


def _consistent(ext: ExternalPort | None, listeners: list[ListenerEvidence]) -> Verdict:
    procs = sorted({f"{ev.process.exe} (pid {ev.pid})" for ev in listeners
                    if ev.process and ev.process.exe})
    what = f"{ext.service or 'unidentified service'}" if ext else "listener"
    return Verdict(
        kind=VerdictKind.CONSISTENT, severity=Severity.INFO,
        message=f"{what} open outside and served by {', '.join(procs) or 'a listener'} inside",
        evidence=([_describe_external(ext)] if ext else [])
        + [f"{ev.source.value}: {ev.address} pid {ev.pid}" for ev in listeners],
    )
