"""The outside view and the inside view compared port by port: the heart of the audit.

Pure: (external host, internal view, host facts) -> one PortReport per (proto, port) that
either view has open or listening, each with at least one verdict and the evidence behind
it. A port whose verdict cannot be decided gets UNKNOWN with the reason, never a guess.
The result depends on what the inputs say, never on the order they say it in.

`HostFacts` is the hook for evidence beyond the two views (bind probes, NAT rules,
integrity checks, which listing tools ran). Without it the verdicts that need such
evidence (HIDDEN_LISTENER, FORWARDED, MODIFIED_BINARY, TOOLS_DISAGREE) are never given:
absence of evidence stays EXTERNAL_ONLY, or no verdict at all.

SERVICE_PROCESS_MISMATCH compares nmap's -sV service with the listening process by a
small table (SERVICE_PROCESSES below): only a process the table recognises is judged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from fleetaudit import addresses, services
from fleetaudit.models import (
    BindState,
    ExternalHost,
    ExternalPort,
    InternalView,
    ListenerEvidence,
    PortReport,
    ProcessInfo,
    Proto,
    Severity,
    Socket,
    ToolsDisagreement,
    Verdict,
    VerdictKind,
)
from fleetaudit.parsers.process import SUSPICIOUS_DIRS

OPEN_STATES = {"open"}
# What -sV reports when it identified nothing, with method="probed" all the same.
UNIDENTIFIED = frozenset({"tcpwrapped", "unknown"})
# Paths to recognise in an exe, never to write to.

# nmap's services table names several ports differently for one protocol (8080 is
# "http-proxy", 8000 "http-alt"); -sV names the protocol. Compare families, not labels.
_SERVICE_FAMILIES = {
    "http-alt": "http", "http-proxy": "http", "www": "http", "www-http": "http",
    "https-alt": "https", "ldapssl": "ldaps",
    "microsoft-ds": "smb", "netbios-ssn": "smb",
}
# -sV names what runs inside TLS and says tunnel="ssl" beside it: imaps on 993 is "imap"
# through ssl (nmap 7.93 on a TLS-wrapped IMAP greeting; a Sagem router's telnetd on 992
# in tests/fixtures/nmap-corpus). A protocol with a TLS port of its own is that service;
# any other one (mysql over TLS) stays itself.
_OVER_TLS = {
    "http": "https", "imap": "imaps", "pop3": "pop3s", "smtp": "smtps", "ldap": "ldaps",
    "ftp": "ftps", "telnet": "telnets", "domain": "domain-s",
}

# --- which processes fit which service (SERVICE_PROCESS_MISMATCH) --------------------------
#
# Process names are executable basenames, lower-cased, version suffix dropped
# (python3.11 -> python, apache2 -> apache, php-fpm8.2 -> php-fpm). The table is small on
# purpose: only a process *recognised* somewhere below is judged. A name listed nowhere (a
# custom daemon, a renamed copy) proves nothing either way; UNOWNED_BINARY and
# SUSPICIOUS_PATH are what catch those.
_WEB_SERVERS = frozenset({"nginx", "apache", "httpd", "lighttpd", "caddy", "traefik",
                          "varnishd", "squid", "uwsgi", "openresty"})
SERVICE_PROCESSES: Mapping[str, frozenset[str]] = {
    "ssh": frozenset({"sshd", "dropbear", "tinysshd"}),
    "http": _WEB_SERVERS,
    "https": _WEB_SERVERS,
    "ftp": frozenset({"vsftpd", "proftpd", "pure-ftpd"}),
    "telnet": frozenset({"telnetd", "in.telnetd", "utelnetd"}),
    "smtp": frozenset({"exim", "sendmail", "smtpd"}),
    "domain": frozenset({"named", "dnsmasq", "unbound", "systemd-resolved", "coredns",
                         "pdns_server", "knotd"}),
    "mysql": frozenset({"mysqld", "mariadbd"}),
    "postgresql": frozenset({"postgres", "postmaster"}),
    "redis": frozenset({"redis-server"}),
}
# A TLS service is judged by the processes of the protocol inside it (vsftpd serves ftps).
_INSIDE_TLS = {tls: plain for plain, tls in _OVER_TLS.items()}
HTTP_FAMILIES = frozenset({"http", "https"})
# An ordinary web app (Flask, Express, Tomcat, Rails, Mojolicious) is an interpreter serving
# http: that fits. An interpreter answering as sshd does not.
INTERPRETERS = frozenset({"python", "node", "nodejs", "java", "ruby", "php", "perl"})
# Fit no service: socat or a shell answering on a service port is the shape of a backdoor.
RELAYS_AND_SHELLS = frozenset({"socat", "nc", "ncat", "netcat", "nc.openbsd", "nc.traditional",
                               "sh", "bash", "dash", "zsh", "ksh", "ash"})
# Fit every service: socket activation (ssh.socket makes PID 1 the listener on :22) and
# forwarders, where what answers is decided behind them.
ANY_SERVICE = frozenset({"systemd", "inetd", "xinetd", "docker-proxy", "rootlessport",
                         "rootlesskit", "slirp4netns", "pasta", "kube-proxy", "haproxy",
                         "envoy", "stunnel"})
# One binary, many programs: argv[0] says which one is running.
MULTI_CALL = frozenset({"busybox", "toybox"})
_KNOWN = frozenset().union(*SERVICE_PROCESSES.values(), INTERPRETERS, RELAYS_AND_SHELLS,
                           ANY_SERVICE)
_VERSION_SUFFIX = re.compile(r"[-_.]?\d[\d.]*$")


# --- the hook: evidence later collectors will provide ------------------------------------
#
# Structural, so whatever model the collector settles on (models.BindResult, NatForward,
# IntegrityResult as drafted) fits without reconcile importing it.


class BindEvidence(Protocol):
    """A bind() tried on the host: in use while no tool lists a listener hides one."""

    @property
    def proto(self) -> Proto: ...
    @property
    def port(self) -> int: ...
    @property
    def address(self) -> str: ...
    @property
    def in_use(self) -> bool: ...
    @property
    def detail(self) -> str | None: ...


class NatEvidence(Protocol):
    """A DNAT/REDIRECT rule sending (proto, port) arriving on this host elsewhere."""

    @property
    def proto(self) -> Proto: ...
    @property
    def port(self) -> int: ...
    @property
    def destination(self) -> str: ...
    @property
    def rule(self) -> str: ...


class IntegrityEvidence(Protocol):
    """A package manager's check of one file (md5 against dpkg's md5sums, rpm -V); status
    "modified" is what MODIFIED_BINARY needs."""

    @property
    def path(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def detail(self) -> str | None: ...


@dataclass(frozen=True)
class HostFacts:
    """Evidence beyond the two views, all optional; `disagreements` are the listeners one
    full listing (ss, netstat, /proc/net) showed and another omitted."""

    bind_probes: Sequence[BindEvidence] = ()
    nat_rules: Sequence[NatEvidence] = ()
    integrity: Sequence[IntegrityEvidence] = ()
    disagreements: Sequence[ToolsDisagreement] = ()


# --- reconciliation ----------------------------------------------------------------------


def facts_from_view(internal: InternalView | None) -> HostFacts:
    """The evidence the internal view itself carries: bind probes, NAT rules, integrity
    checks and disagreements between listings."""
    if internal is None:
        return HostFacts()
    return HostFacts(
        bind_probes=[b for b in internal.bind_results if b.state is not BindState.ERROR],
        nat_rules=internal.nat_forwards,
        integrity=[p.integrity for p in internal.processes if p.integrity is not None],
        disagreements=internal.disagreements,
    )


def reconcile_host(
    external: ExternalHost | None,
    internal: InternalView | None,
    *,
    scanned_address: str,
    external_missing: str | None = None,
    internal_missing: str | None = None,
    facts: HostFacts | None = None,
    not_scanned: str | None = None,
    imported: bool = False,
) -> list[PortReport]:
    """Judge every port of one host; `*_missing` say why a view is absent; `facts` default
    to what the internal view carries.

    `not_scanned` (why the host could not be scanned at all: reached only through a jump
    host) makes every port UNKNOWN for that reason: without an outside view, even a
    loopback-only listener's reachability is not something this audit observed.
    `imported`: the outside view was read from a report (--nmap-xml), whose port list no
    listing could widen; a listener outside it is said to be outside the imported scan."""
    facts = facts if facts is not None else facts_from_view(internal)
    processes: dict[int, ProcessInfo] = {}
    for proc in sorted(internal.processes if internal else [], key=_json):
        processes.setdefault(proc.pid, proc)  # duplicates: one chosen by content, not order
    sockets: dict[tuple[Proto, int], list[Socket]] = {}
    for sock in sorted((_canonical_socket(s) for s in internal.sockets) if internal else [],
                       key=_socket_key):
        sockets.setdefault((sock.proto, sock.port), []).append(sock)
    listed: dict[tuple[Proto, int], ExternalPort] = {}
    for ext_port in sorted(external.ports if external else [],
                           key=lambda p: (p.state not in OPEN_STATES, _json(p))):
        listed.setdefault((ext_port.proto, ext_port.port), ext_port)
    keys = {k for k, p in listed.items() if p.state in OPEN_STATES} | set(sockets)
    integrity = _integrity_by_path(facts.integrity)

    reports = []
    for proto, port in sorted(keys):
        found = sockets.get((proto, port), [])
        ext = listed.get((proto, port))
        listeners = [ev for sock in found for ev in _evidence(sock, processes)]
        reachable = [ev for sock in found if serves_address(sock, scanned_address)
                     for ev in _evidence(sock, processes)]
        if not_scanned:
            verdicts = [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.INFO,
                                message=not_scanned,
                                evidence=[_describe_socket(s) for s in found])]
        else:
            verdicts = _port_verdicts(
                proto, port, ext, found, external, scanned_address, facts,
                external_missing or ("no scan result for this host" if external is None
                                     else None),
                internal_missing or ("no internal view for this host" if internal is None
                                     else None),
                imported,
            )
        verdicts += _tools_disagree(proto, port, facts.disagreements)
        verdicts += _mismatch_verdicts(ext, reachable)
        verdicts += _binary_verdicts(listeners, integrity)
        if not verdicts:
            verdicts = [_consistent(ext, listeners)]
        reports.append(PortReport(proto=proto, port=port, external=ext, listeners=listeners,
                                  verdicts=verdicts))
    return reports


def _json(model: BaseModel) -> str:
    return model.model_dump_json()


def _socket_key(sock: Socket) -> tuple[str, str, str, str]:
    return (sock.address, sock.scope or "", sock.source.value, _json(sock))


def _canonical_socket(sock: Socket) -> Socket:
    owners = sorted(sock.owners, key=lambda o: (o.pid, -1 if o.fd is None else o.fd, o.command))
    return sock if owners == sock.owners else sock.model_copy(update={"owners": owners})


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
    return addresses.serves(sock.address, address)


def is_loopback_address(address: str) -> bool:
    """Whether a bound address is loopback only; wildcards and names count as routable."""
    return addresses.is_loopback(address)


def describe_external(ext: ExternalPort) -> str:
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
    if name.startswith("ssl/"):  # nmap's other spelling of a tunnel: ssl/imap
        name, tunnel = name[4:], "ssl"
    if tunnel == "ssl":
        name = _OVER_TLS.get(name, name)
    return _SERVICE_FAMILIES.get(name, name)


def probed_service(ext: ExternalPort | None) -> str | None:
    """The service family nmap *identified* on an open port; a port-table guess is None,
    and so are "tcpwrapped" (closed on us without a byte) and "unknown"."""
    if ext is None or ext.state not in OPEN_STATES or ext.method != "probed":
        return None
    family = service_family(ext.service, ext.tunnel)
    return None if family in UNIDENTIFIED else family


def _port_verdicts(
    proto: Proto, port: int, ext: ExternalPort | None, found: list[Socket],
    external: ExternalHost | None, scanned_address: str, facts: HostFacts,
    external_missing: str | None, internal_missing: str | None, imported: bool = False,
) -> list[Verdict]:
    facts_seen = [describe_external(ext)] if ext else []
    facts_seen += [_describe_socket(s) for s in found]
    reachable = [s for s in found if serves_address(s, scanned_address)]
    loopback_only = bool(found) and all(s.is_loopback for s in found)

    if internal_missing and ext and ext.state in OPEN_STATES:
        return [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.LOW,
                        message=f"open outside; inside not seen: {internal_missing}",
                        evidence=facts_seen), *_nonstandard(ext)]
    if loopback_only and not (ext and ext.state in OPEN_STATES):
        return [Verdict(kind=VerdictKind.LOCAL_ONLY, severity=Severity.INFO,
                        message="bound to loopback only: not reachable from the network",
                        evidence=facts_seen)]
    if ext is not None and ext.state in OPEN_STATES:
        if not reachable:
            return [*_unexplained_open(proto, port, found, facts_seen, facts),
                    *_nonstandard(ext)]
        return _nonstandard(ext)
    if external_missing:
        return [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.LOW,
                        message=f"listening inside; outside not seen: {external_missing}",
                        evidence=facts_seen)]
    assert external is not None
    gap = next((g for g in external.not_probed if g.proto is proto and g.port == port), None)
    if ext is None and gap is not None:
        return [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.INFO,
                        message=f"{port}/{proto.value} not probed from outside: {gap.reason}",
                        evidence=facts_seen)]
    if ext is None and not external.was_scanned(proto, port):
        return [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.INFO,
                        message=f"listening inside; {_unscanned(proto, port, external, imported)}",
                        evidence=facts_seen)]
    if not reachable:
        bound = ", ".join(sorted({s.address for s in found}))
        return [Verdict(kind=VerdictKind.UNKNOWN, severity=Severity.INFO,
                        message=f"listening on {bound}, not on the scanned address "
                                f"{scanned_address}", evidence=facts_seen)]
    state = ext.state if ext else external.unlisted_state(proto) or "not open"
    return [Verdict(kind=VerdictKind.FILTERED, severity=Severity.LOW,
                    message=f"listening on a routable address but {state} from the scanner",
                    evidence=[*facts_seen, f"nmap: {port}/{proto.value} {state}"] if not ext
                    else facts_seen)]


def _unscanned(proto: Proto, port: int, external: ExternalHost, imported: bool) -> str:
    """Why the outside view has nothing on a port: the scan's own words where it has them."""
    where = f"{port}/{proto.value}"
    if external.timed_out:
        return f"the scan of this host hit --host-timeout before {where} was looked at"
    if imported:
        return f"{where} is not in the imported scan (--nmap-xml)"
    return f"{where} was not in the scan's port list"


def _unexplained_open(proto: Proto, port: int, found: list[Socket], seen: list[str],
                      facts: HostFacts) -> list[Verdict]:
    """Open outside, no listener inside on that address: refined by NAT rules and bind probes.

    A bind probe proves a hidden listener only where no visible socket could be what
    holds the port.
    """
    probes = sorted((p for p in facts.bind_probes if (p.proto, p.port) == (proto, port)),
                    key=lambda p: (p.address, p.in_use, p.detail or ""))
    nat = sorted((r for r in facts.nat_rules if (r.proto, r.port) == (proto, port)),
                 key=lambda r: (r.destination, r.rule))
    probe_facts = [_describe_probe(p) for p in probes]
    busy = [p for p in probes if p.in_use and not any(_explains(s, p.address) for s in found)]
    verdicts: list[Verdict] = []
    if busy:
        verdicts.append(Verdict(
            kind=VerdictKind.HIDDEN_LISTENER, severity=Severity.CRITICAL,
            message="open from outside and the port is in use inside, but no tool lists "
                    "a listener on it: a listener hidden from the tools",
            evidence=[*seen, *probe_facts]))
    if nat:
        destinations = ", ".join(dict.fromkeys(r.destination for r in nat))
        verdicts.append(Verdict(
            kind=VerdictKind.FORWARDED, severity=Severity.LOW,
            message=f"open from outside and forwarded to {destinations} by a NAT rule; "
                    "whatever answers there was not audited here",
            evidence=[*seen, *(f"nat: {r.rule}" for r in nat), *probe_facts]))
    if not verdicts:
        why = ("no listener inside" if not found else
               "the listeners inside are not bound to the scanned address")
        verdicts.append(Verdict(
            kind=VerdictKind.EXTERNAL_ONLY, severity=Severity.HIGH,
            message=f"open from outside but {why}: hidden listener, port forward or a "
                    "lying tool", evidence=[*seen, *probe_facts]))
    return verdicts


def _explains(sock: Socket, probed: str) -> bool:
    """Whether a visible socket alone makes a bind on `probed` fail: a wildcard bind
    collides with any listener on the port, a specific one with its own address or a
    wildcard."""
    return probed.strip("[]") in addresses.WILDCARDS or serves_address(sock, probed)


def _describe_probe(probe: BindEvidence) -> str:
    state = "in use" if probe.in_use else "free"
    detail = f" ({probe.detail})" if probe.detail else ""
    return f"bind probe: {probe.proto.value} {probe.address}:{probe.port} {state}{detail}"


def _nonstandard(ext: ExternalPort) -> list[Verdict]:
    found = probed_service(ext)
    why = services.nonstandard(found, ext.proto, ext.port) if found else None
    if why is None:
        return []
    evidence = [describe_external(ext)]
    if found is not None and found in services.WELL_KNOWN:
        evidence.append(f"{found}'s usual port: {services.usual_ports(found)}")
    owner = services.owner_of(ext.proto, ext.port)
    if owner is not None and owner != found:
        evidence.append(f"{ext.port}/{ext.proto.value} is {owner}'s port")
    return [Verdict(kind=VerdictKind.NONSTANDARD_PORT, severity=Severity.MEDIUM,
                    message=why, evidence=evidence)]


def _tools_disagree(proto: Proto, port: int,
                    disagreements: Sequence[ToolsDisagreement]) -> list[Verdict]:
    """A listener one full listing shows and another omits: one of the tools is lying."""
    mine = sorted((d for d in disagreements if (d.proto, d.port) == (proto, port)), key=_json)
    if not mine:
        return []
    said = ", ".join(sorted({s.value for d in mine for s in d.listed_by}))
    silent = ", ".join(sorted({s.value for d in mine for s in d.missing_from}))
    return [Verdict(kind=VerdictKind.TOOLS_DISAGREE, severity=Severity.HIGH,
                    message=f"listed by {said} but not by {silent}",
                    evidence=[f"{', '.join(s.value for s in d.listed_by)}: {d.proto.value} "
                              f"{d.address}:{d.port}; absent from "
                              f"{', '.join(s.value for s in d.missing_from)}" for d in mine])]


# --- the process behind the port ---------------------------------------------------------


def _base_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1].lower()
    return _VERSION_SUFFIX.sub("", base) or base


def process_name(proc: ProcessInfo) -> str | None:
    """The name a process is judged by: its executable's basename (the kernel's word).

    argv[0]'s basename stands in only for a multi-call binary (busybox) or an unreadable
    exe, and never when it is a rewritten process title ("sshd: /usr/sbin/sshd -D"):
    a title is whatever the process chose to write.
    """
    exe_name = _base_name(proc.exe) if proc.exe else None
    if exe_name is not None and exe_name not in MULTI_CALL:
        return exe_name
    argv0 = proc.cmdline[0] if proc.cmdline else ""
    if argv0 and not any(c.isspace() for c in argv0) and not argv0.endswith(":"):
        return _base_name(argv0)
    return exe_name


def identified_services(proc: ProcessInfo) -> frozenset[str]:
    """Service families the process is known by name to serve (forwarders and interpreters
    excluded: what they serve is not in their name)."""
    name = process_name(proc)
    return frozenset(svc for svc, names in SERVICE_PROCESSES.items() if name in names)


def _judged_as(family: str) -> str:
    return family if family in SERVICE_PROCESSES else _INSIDE_TLS.get(family, family)


def process_fits(family: str, proc: ProcessInfo) -> bool | None:
    """Whether the process can be serving `family`: None when the table cannot tell."""
    family = _judged_as(family)
    name = process_name(proc)
    if family not in SERVICE_PROCESSES or name is None or name not in _KNOWN:
        return None
    return (name in ANY_SERVICE or name in SERVICE_PROCESSES[family]
            or (family in HTTP_FAMILIES and name in INTERPRETERS))


def _mismatch_verdicts(ext: ExternalPort | None,
                       listeners: Iterable[ListenerEvidence]) -> list[Verdict]:
    """The service nmap identified against the processes serving the scanned address."""
    family = probed_service(ext)
    if ext is None or family is None:
        return []
    verdicts: list[Verdict] = []
    judged: set[int] = set()
    for ev in listeners:
        proc = ev.process
        if proc is None or proc.pid in judged:
            continue
        judged.add(proc.pid)
        if process_fits(family, proc) is not False:
            continue
        name = process_name(proc)
        expected = sorted(SERVICE_PROCESSES[_judged_as(family)]
                          | (INTERPRETERS if family in HTTP_FAMILIES else frozenset()))
        hint = (": an SSH remote forward (ssh -R) looks like this" if name == "sshd" else "")
        verdicts.append(Verdict(
            kind=VerdictKind.SERVICE_PROCESS_MISMATCH,
            severity=Severity.HIGH if name in RELAYS_AND_SHELLS else Severity.MEDIUM,
            message=f"nmap identified {ext.service} but the listener is {name} "
                    f"(pid {proc.pid}){hint}",
            evidence=[describe_external(ext), describe_process(proc),
                      f"{family} fits: {', '.join(expected)} (or a socket activator/forwarder)"],
        ))
    return verdicts


def describe_process(proc: ProcessInfo) -> str:
    argv0 = f" argv[0] {proc.cmdline[0]!r}" if proc.cmdline else ""
    deleted = " (deleted)" if proc.exe_deleted else ""
    return f"pid {proc.pid} exe {proc.exe or '(unreadable)'}{deleted}{argv0}"


def _integrity_by_path(
    checks: Iterable[IntegrityEvidence],
) -> dict[str, list[IntegrityEvidence]]:
    by_path: dict[str, list[IntegrityEvidence]] = {}
    for check in sorted(checks, key=lambda c: (c.path, str(c.status), c.detail or "")):
        by_path.setdefault(check.path, []).append(check)
    return by_path


def _binary_verdicts(listeners: Iterable[ListenerEvidence],
                     integrity: Mapping[str, list[IntegrityEvidence]]) -> list[Verdict]:
    listeners = list(listeners)
    owned = {(ev.address, ev.scope) for ev in listeners if ev.pid is not None}
    verdicts: list[Verdict] = []
    seen: set[tuple[VerdictKind, int]] = set()
    for ev in listeners:
        proc = ev.process
        if ev.pid is None and (ev.address, ev.scope) in owned:
            continue  # /proc/net names no owners; another tool named this socket's
        if ev.pid is None:
            verdicts.append(Verdict(
                kind=VerdictKind.UNKNOWN, severity=Severity.LOW,
                message="no PID visible for this socket (not privileged, or another namespace)",
                evidence=[f"{ev.source.value}: {ev.address} without owner"]))
            continue
        if proc is None or not proc.exe:
            continue
        chain = [f"pid {proc.pid} exe {proc.exe}" + (" (deleted)" if proc.exe_deleted else "")]
        for kind, severity, message, extra in _judge_process(proc, integrity):
            if (kind, proc.pid) not in seen:
                seen.add((kind, proc.pid))
                verdicts.append(Verdict(kind=kind, severity=severity, message=message,
                                        evidence=chain + extra))
    return verdicts


# One fact, one sentence: the policy's package_owned states these facts too, in these
# words, so a finding that merges both states each once.
def deleted_message(proc: ProcessInfo) -> str:
    return f"{proc.exe} (pid {proc.pid}) was deleted after it started"


def unowned_message(proc: ProcessInfo) -> str:
    return f"{proc.exe} (pid {proc.pid}) belongs to no {proc.package_manager} package"


def _judge_process(
    proc: ProcessInfo, integrity: Mapping[str, list[IntegrityEvidence]],
) -> list[tuple[VerdictKind, Severity, str, list[str]]]:
    exe = proc.exe or ""
    found: list[tuple[VerdictKind, Severity, str, list[str]]] = []
    if proc.exe_deleted:
        found.append((VerdictKind.DELETED_BINARY, Severity.HIGH, deleted_message(proc), []))
    if proc.package_manager and proc.package is None:
        found.append((VerdictKind.UNOWNED_BINARY, Severity.HIGH, unowned_message(proc), []))
    modified = [c for c in integrity.get(exe, []) if c.status == "modified"]
    if modified:
        found.append((VerdictKind.MODIFIED_BINARY, Severity.HIGH,
                      f"{exe} differs from what its package installed",
                      [f"integrity: {c.detail or c.path + ' modified'}" for c in modified]))
    if exe.startswith(SUSPICIOUS_DIRS) or "/." in exe:
        found.append((VerdictKind.SUSPICIOUS_PATH, Severity.HIGH,
                      f"{exe} runs from a temporary or hidden directory", []))
    return found


def _consistent(ext: ExternalPort | None, listeners: list[ListenerEvidence]) -> Verdict:
    procs = sorted({f"{ev.process.exe} (pid {ev.pid})" for ev in listeners
                    if ev.process and ev.process.exe})
    what = f"{ext.service or 'unidentified service'}" if ext else "listener"
    return Verdict(
        kind=VerdictKind.CONSISTENT, severity=Severity.INFO,
        message=f"{what} open outside and served by {', '.join(procs) or 'a listener'} inside",
        evidence=([describe_external(ext)] if ext else [])
        + [f"{ev.source.value}: {ev.address} pid {ev.pid}" for ev in listeners],
    )
