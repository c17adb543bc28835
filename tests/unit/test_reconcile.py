"""Verdicts from small hand-built models: reconcile is pure, so fakes are fair here."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.models import (
    ExternalHost,
    ExternalPort,
    ExtraPorts,
    InternalView,
    ListenerSource,
    PackageOwner,
    PortRange,
    ProcessInfo,
    Proto,
    Severity,
    Socket,
    SocketOwner,
    ToolsDisagreement,
    VerdictKind,
)
from fleetaudit.parsers.nmap import parse_nmap_xml
from fleetaudit.reconcile import (
    HostFacts,
    identified_services,
    is_loopback_address,
    process_fits,
    process_name,
    reconcile_host,
    serves_address,
    service_family,
)

ADDR = "10.99.0.11"
NMAP_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "nmap-corpus"
TCP = Proto.TCP
SSHD = ProcessInfo(pid=100, exe="/usr/sbin/sshd", cmdline=["sshd: /usr/sbin/sshd -D"], uid=0,
                   user="root", package=PackageOwner(manager="dpkg", name="openssh-server"),
                   package_manager="dpkg")
NGINX = ProcessInfo(pid=200, exe="/usr/sbin/nginx",
                    cmdline=["nginx: master process /usr/sbin/nginx"], uid=0, user="root",
                    package=PackageOwner(manager="dpkg", name="nginx-core"),
                    package_manager="dpkg")


def ext(port, state="open", service="ssh", default="ssh", method="probed", proto=TCP, **kw):
    return ExternalPort(proto=proto, port=port, state=state, service=service, method=method,
                        default_service=default, **kw)


def host(*ports, scanned=((1, 1000),), extra="closed"):
    return ExternalHost(address=ADDR, status="up", ports=list(ports),
                        extraports=[ExtraPorts(state=extra, count=900)],
                        scanned={TCP: [PortRange(first=a, last=b) for a, b in scanned]})


def sock(port, address="0.0.0.0", pid=100, proto=TCP):
    owners = [SocketOwner(command="x", pid=pid, fd=3)] if pid else []
    return Socket(proto=proto, address=address, port=port, owners=owners,
                  source=ListenerSource.SS)


def view(*sockets, processes=(SSHD,)):
    return InternalView(sockets=list(sockets), processes=list(processes))


def kinds(reports, port):
    [report] = [r for r in reports if r.port == port]
    return [v.kind for v in report.verdicts]


def test_consistent_when_views_agree():
    reports = reconcile_host(host(ext(22)), view(sock(22)), scanned_address=ADDR)
    assert kinds(reports, 22) == [VerdictKind.CONSISTENT]
    assert reports[0].listeners[0].process == SSHD


def test_ssh_on_port_24_is_nonstandard_and_nothing_else():
    reports = reconcile_host(host(ext(24, default="priv-mail")), view(sock(24)),
                             scanned_address=ADDR)
    assert kinds(reports, 24) == [VerdictKind.NONSTANDARD_PORT]
    # nmap's name for 24 (priv-mail) is not "the service of port 24" to any reader
    assert reports[0].verdicts[0].message == "ssh on 24/tcp; ssh's port is 22/tcp"


@pytest.mark.parametrize(("service", "port", "proto", "message", "tunnel"), [
    ("ssh", 22, Proto.TCP, None, None),
    ("ssh", 2222, Proto.TCP, "ssh on 2222/tcp; ssh's port is 22/tcp", None),
    ("http", 8000, Proto.TCP, None, None),  # web servers roam
    ("http", 9000, Proto.TCP, None, None),  # cslistener in nmap's table: no one's port
    ("https", 8443, Proto.TCP, None, None),
    ("http", 22, Proto.TCP, "http on 22/tcp, which is ssh's port", None),
    ("ssh", 443, Proto.TCP, "ssh on 443/tcp, which is https's port", None),
    ("telnet", 2323, Proto.TCP, "telnet on 2323/tcp; telnet's port is 23/tcp", None),
    ("mysql", 3307, Proto.TCP, "mysql on 3307/tcp; mysql's port is 3306/tcp", None),
    ("redis", 6380, Proto.TCP, "redis on 6380/tcp; redis's port is 6379/tcp", None),
    ("domain", 53, Proto.UDP, None, None),
    ("vnc", 5901, Proto.TCP, None, None),
    ("elite", 31337, Proto.TCP, None, None),  # nmap's name for 31337 is no well-known service
    ("irc", 6667, Proto.TCP, None, None),  # not in the table: not judged
    # -sV names the protocol inside TLS, tunnel="ssl": on its TLS port it is that service
    ("http", 443, Proto.TCP, None, "ssl"),
    ("imap", 993, Proto.TCP, None, "ssl"),
    ("pop3", 995, Proto.TCP, None, "ssl"),
    ("smtp", 465, Proto.TCP, None, "ssl"),  # smtps, also called submissions
    ("ldap", 636, Proto.TCP, None, "ssl"),
    ("ftp", 990, Proto.TCP, None, "ssl"),
    ("telnet", 992, Proto.TCP, None, "ssl"),
    ("domain", 853, Proto.TCP, None, "ssl"),  # DNS over TLS
    ("imap", 143, Proto.TCP, None, None),  # STARTTLS on the plain port: no tunnel
    ("imap", 10993, Proto.TCP, "imaps on 10993/tcp; imaps's port is 993/tcp", "ssl"),
    ("imap", 443, Proto.TCP, "imaps on 443/tcp, which is https's port", "ssl"),
    ("mysql", 3306, Proto.TCP, None, "ssl"),  # no TLS port of its own: still mysql
])
def test_nonstandard_port_table(service, port, proto, message, tunnel):
    reports = reconcile_host(host(ext(port, service=service, proto=proto, tunnel=tunnel),
                                  scanned=((1, 65535),)),
                             view(sock(port, proto=proto)), scanned_address=ADDR)
    nonstandard = [v for r in reports for v in r.verdicts
                   if v.kind is VerdictKind.NONSTANDARD_PORT]
    assert [v.message for v in nonstandard] == ([message] if message else [])


def test_a_tls_wrapped_service_on_its_tls_port_in_a_real_report():
    # python-libnmap's full_sudo5.xml (nmap 5.21, -A): a Sagem router's telnetd over TLS on
    # 992, reported as service "telnet" with tunnel "ssl". That is telnets on its own port.
    run = parse_nmap_xml((NMAP_CORPUS / "full_sudo5.xml").read_bytes())
    [router] = [h for h in run.hosts if h.address == "192.168.1.1"]
    [telnets] = [p for p in router.ports if p.port == 992]
    assert (telnets.service, telnets.tunnel, telnets.method) == ("telnet", "ssl", "probed")
    assert service_family(telnets.service, telnets.tunnel) == "telnets"
    reports = reconcile_host(router, None, scanned_address=router.address)
    [report] = [r for r in reports if r.port == 992]
    assert VerdictKind.NONSTANDARD_PORT not in [v.kind for v in report.verdicts]


def test_service_from_the_table_alone_proves_nothing():
    reports = reconcile_host(host(ext(24, service="priv-mail", default="priv-mail",
                                      method="table")), view(sock(24)), scanned_address=ADDR)
    assert kinds(reports, 24) == [VerdictKind.CONSISTENT]


@pytest.mark.parametrize("service", ["tcpwrapped", "unknown"])
def test_probed_but_unidentified_is_not_a_service(service):
    # Real nmap 7.93 output on a port that accepts and closes: service tcpwrapped,
    # method probed. That identifies nothing: neither NONSTANDARD_PORT nor a mismatch.
    proc = ProcessInfo(pid=7, exe="/usr/bin/socat")
    reports = reconcile_host(host(ext(2024, service=service, default="xinuexpansion4")),
                             view(sock(2024, pid=7), processes=[proc]), scanned_address=ADDR)
    assert kinds(reports, 2024) == [VerdictKind.CONSISTENT]


def test_http_on_8080_is_the_http_family():
    assert service_family("http-proxy") == service_family("http") == "http"
    assert service_family("http", tunnel="ssl") == "https"
    # Served by a web server: the port's table name differs, the protocol does not.
    reports = reconcile_host(host(ext(8080, service="http", default="http-proxy")),
                             view(sock(8080, pid=200), processes=[NGINX]), scanned_address=ADDR)
    assert kinds(reports, 8080) == [VerdictKind.CONSISTENT]


def test_http_served_by_sshd_is_a_mismatch():
    # This test's data once served http from sshd and called it CONSISTENT.
    reports = reconcile_host(host(ext(8080, service="http", default="http-proxy")),
                             view(sock(8080)), scanned_address=ADDR)
    assert kinds(reports, 8080) == [VerdictKind.SERVICE_PROCESS_MISMATCH]


def test_open_outside_with_no_listener_is_external_only():
    reports = reconcile_host(host(ext(31337, service="unknown", default=None)), view(),
                             scanned_address=ADDR)
    assert kinds(reports, 31337) == [VerdictKind.EXTERNAL_ONLY]


def test_open_outside_but_only_loopback_inside_is_external_only():
    reports = reconcile_host(host(ext(80, service="http", default="http")),
                             view(sock(80, address="127.0.0.1")), scanned_address=ADDR)
    assert kinds(reports, 80) == [VerdictKind.EXTERNAL_ONLY]


def test_listener_on_wildcard_not_open_outside_is_filtered():
    reports = reconcile_host(host(ext(8443, state="filtered", service="https-alt",
                                      default="https-alt", method="table")),
                             view(sock(8443)), scanned_address=ADDR)
    assert kinds(reports, 8443) == [VerdictKind.FILTERED]


def test_unlisted_scanned_port_takes_the_extraports_state():
    reports = reconcile_host(host(extra="filtered"), view(sock(443)), scanned_address=ADDR)
    assert kinds(reports, 443) == [VerdictKind.FILTERED]
    assert "filtered" in reports[0].verdicts[0].message


def test_loopback_listener_is_local_only():
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        reports = reconcile_host(host(), view(sock(8081, address=address)), scanned_address=ADDR)
        assert kinds(reports, 8081) == [VerdictKind.LOCAL_ONLY], address


def test_port_outside_the_scan_list_is_unknown_not_filtered():
    reports = reconcile_host(host(scanned=((1, 1000),)), view(sock(40000)),
                             scanned_address=ADDR)
    assert kinds(reports, 40000) == [VerdictKind.UNKNOWN]
    assert "not in the scan" in reports[0].verdicts[0].message


def test_udp_listener_without_udp_scan_is_unknown():
    reports = reconcile_host(host(), view(sock(53, proto=Proto.UDP)), scanned_address=ADDR)
    assert kinds(reports, 53) == [VerdictKind.UNKNOWN]


def test_unowned_binary_is_reported_with_the_nonstandard_port():
    rogue = ProcessInfo(pid=7, exe="/opt/x/kworker", package_manager="dpkg", package=None)
    reports = reconcile_host(host(ext(24, default="priv-mail")),
                             view(sock(24, pid=7), processes=[rogue]), scanned_address=ADDR)
    assert kinds(reports, 24) == [VerdictKind.NONSTANDARD_PORT, VerdictKind.UNOWNED_BINARY]


def test_unknown_package_manager_is_not_unowned():
    proc = ProcessInfo(pid=7, exe="/opt/x/kworker", package_manager=None)
    reports = reconcile_host(host(ext(22)), view(sock(22, pid=7), processes=[proc]),
                             scanned_address=ADDR)
    assert kinds(reports, 22) == [VerdictKind.CONSISTENT]


def test_deleted_and_temporary_binaries():
    proc = ProcessInfo(pid=7, exe="/tmp/.x/kworker", exe_deleted=True, package_manager="dpkg")
    reports = reconcile_host(host(ext(22)), view(sock(22, pid=7), processes=[proc]),
                             scanned_address=ADDR)
    assert kinds(reports, 22) == [VerdictKind.DELETED_BINARY, VerdictKind.UNOWNED_BINARY,
                                  VerdictKind.SUSPICIOUS_PATH]


def test_socket_without_pid_is_unknown_not_consistent():
    reports = reconcile_host(host(ext(22)), view(sock(22, pid=None)), scanned_address=ADDR)
    assert kinds(reports, 22) == [VerdictKind.UNKNOWN]


def test_missing_views_give_unknown_with_the_reason():
    reports = reconcile_host(host(ext(22)), None, scanned_address=ADDR,
                             internal_missing="connection refused")
    assert kinds(reports, 22) == [VerdictKind.UNKNOWN]
    assert "connection refused" in reports[0].verdicts[0].message
    reports = reconcile_host(None, view(sock(22)), scanned_address=ADDR,
                             external_missing="nmap not installed")
    assert kinds(reports, 22) == [VerdictKind.UNKNOWN]
    assert "nmap not installed" in reports[0].verdicts[0].message


def test_listener_on_another_address_is_unknown():
    reports = reconcile_host(host(), view(sock(22, address="10.99.0.99")), scanned_address=ADDR)
    assert kinds(reports, 22) == [VerdictKind.UNKNOWN]


def test_closed_ports_nmap_listed_with_no_listener_are_left_out():
    reports = reconcile_host(host(ext(23, state="closed")), view(), scanned_address=ADDR)
    assert reports == []


def test_serves_address():
    assert serves_address(sock(1, address="::"), ADDR)
    assert serves_address(sock(1, address="*"), ADDR)
    assert not serves_address(sock(1, address="0.0.0.0"), "2001:db8::1")
    assert serves_address(sock(1, address="::ffff:10.99.0.11"), ADDR)
    assert not serves_address(sock(1, address="127.0.0.1"), ADDR)


# --- SERVICE_PROCESS_MISMATCH ------------------------------------------------------------

MISMATCH = VerdictKind.SERVICE_PROCESS_MISMATCH
OK = VerdictKind.CONSISTENT
JAVA = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"


@pytest.mark.parametrize(
    ("service", "tunnel", "exe", "argv", "expected", "severity"),
    [
        # what the brief names
        ("ssh", None, "/usr/sbin/sshd", ["sshd: /usr/sbin/sshd -D"], OK, None),
        ("ssh", None, "/usr/sbin/nginx", ["nginx: master process"], MISMATCH, Severity.MEDIUM),
        ("ssh", None, "/usr/bin/socat", ["socat", "tcp-l:22,fork", "exec:/bin/sh"], MISMATCH,
         Severity.HIGH),
        ("ssh", None, "/opt/tools/socat", ["/opt/tools/socat"], MISMATCH, Severity.HIGH),
        ("ssh", None, "/usr/bin/bash", ["bash"], MISMATCH, Severity.HIGH),
        ("http", None, "/usr/sbin/sshd", ["sshd: root@notty"], MISMATCH, Severity.MEDIUM),
        # interpreters serving the http family are an ordinary web app
        ("http", None, "/usr/bin/python3.11", ["/usr/bin/python3", "app.py"], OK, None),
        ("http", None, "/usr/bin/node", ["node", "server.js"], OK, None),
        ("http", None, JAVA, ["java", "-jar", "app.jar"], OK, None),
        ("http", None, "/usr/bin/ruby3.1", ["puma 6.4 (tcp://0.0.0.0:80)"], OK, None),
        ("http", None, "/usr/bin/php8.2", ["php", "-S", "0.0.0.0:80"], OK, None),
        ("http", None, "/usr/bin/perl5.36.0", ["perl", "app.pl"], OK, None),
        ("http", "ssl", "/usr/bin/python3.11", ["python3"], OK, None),
        ("http", "ssl", "/usr/sbin/apache2", ["/usr/sbin/apache2", "-k", "start"], OK, None),
        # ...but an interpreter answering as ssh does not fit
        ("ssh", None, "/usr/bin/python3.11", ["python3", "honeypot.py"], MISMATCH,
         Severity.MEDIUM),
        # socket activation and forwarders fit whatever is behind them
        ("ssh", None, "/usr/lib/systemd/systemd", ["/sbin/init"], OK, None),
        ("http", None, "/usr/bin/docker-proxy", ["/usr/bin/docker-proxy", "-proto"], OK, None),
        # a name the table does not know proves nothing
        ("ssh", None, "/opt/x/kworker", ["/opt/x/kworker"], OK, None),
        # a service the table does not know is not judged, even for socat
        ("vnc", None, "/usr/bin/socat", ["socat"], OK, None),
        # multi-call binaries are judged by argv[0]
        ("ssh", None, "/bin/busybox", ["nc", "-lp", "22"], MISMATCH, Severity.HIGH),
        ("http", None, "/bin/busybox", ["httpd", "-f"], OK, None),
        # the exe is the kernel's word: an argv[0] that claims to be sshd changes nothing
        ("ssh", None, "/usr/bin/socat", ["/usr/sbin/sshd"], MISMATCH, Severity.HIGH),
        # exe unreadable: argv[0] stands in, a rewritten title does not
        ("http", None, None, ["/usr/sbin/sshd", "-D"], MISMATCH, Severity.MEDIUM),
        ("http", None, None, ["sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"], OK,
         None),
    ],
)
def test_service_process_mismatch_table(service, tunnel, exe, argv, expected, severity):
    proc = ProcessInfo(pid=7, exe=exe, cmdline=argv)
    default = "https" if tunnel == "ssl" else service
    port = {"ssh": 22, "http": 8080, "vnc": 5900}[service]  # each on a port of its own
    reports = reconcile_host(host(ext(port, service=service, default=default, tunnel=tunnel)),
                             view(sock(port, pid=7), processes=[proc]), scanned_address=ADDR)
    assert kinds(reports, port) == [expected]
    verdict = reports[0].verdicts[0]
    if severity is not None:
        assert verdict.severity == severity
        assert f"pid 7 exe {exe or '(unreadable)'}" in "\n".join(verdict.evidence)


def test_mismatch_names_the_ssh_remote_forward():
    reports = reconcile_host(host(ext(8080, service="http", default="http-proxy")),
                             view(sock(8080)), scanned_address=ADDR)
    assert "ssh -R" in reports[0].verdicts[0].message
    assert "nginx" in reports[0].verdicts[0].evidence[-1]


def test_mismatch_needs_a_probed_service():
    proc = ProcessInfo(pid=7, exe="/usr/bin/socat")
    reports = reconcile_host(host(ext(22, method="table")),
                             view(sock(22, pid=7), processes=[proc]), scanned_address=ADDR)
    assert kinds(reports, 22) == [OK]


def test_mismatch_judges_only_listeners_on_the_scanned_address():
    # The loopback socat is not what nmap talked to; the port is EXTERNAL_ONLY, nothing more.
    proc = ProcessInfo(pid=7, exe="/usr/bin/socat")
    reports = reconcile_host(host(ext(22)), view(sock(22, address="127.0.0.1", pid=7),
                                                 processes=[proc]), scanned_address=ADDR)
    assert kinds(reports, 22) == [VerdictKind.EXTERNAL_ONLY]


def test_mismatch_comes_with_the_other_verdicts():
    proc = ProcessInfo(pid=7, exe="/tmp/socat", package_manager="dpkg")
    reports = reconcile_host(host(ext(24, default="priv-mail")),
                             view(sock(24, pid=7), processes=[proc]), scanned_address=ADDR)
    assert kinds(reports, 24) == [VerdictKind.NONSTANDARD_PORT, MISMATCH,
                                  VerdictKind.UNOWNED_BINARY, VerdictKind.SUSPICIOUS_PATH]


def test_process_name_and_identified_services():
    assert process_name(ProcessInfo(pid=1, exe="/usr/sbin/apache2")) == "apache"
    assert process_name(ProcessInfo(pid=1, exe="/usr/sbin/php-fpm8.2")) == "php-fpm"
    assert process_name(ProcessInfo(pid=1, cmdline=["sshd: root@pts/0"])) is None
    assert identified_services(ProcessInfo(pid=1, exe="/usr/sbin/in.telnetd")) == {"telnet"}
    assert identified_services(ProcessInfo(pid=1, exe="/usr/bin/python3.11")) == frozenset()
    assert process_fits("ssh", ProcessInfo(pid=1, exe="/opt/x/kworker")) is None
    assert process_fits("ssh", ProcessInfo(pid=1, exe="/usr/sbin/dropbear")) is True


# --- the evidence hooks: HIDDEN_LISTENER, FORWARDED, MODIFIED_BINARY, TOOLS_DISAGREE -------


# The hook is structural: these fakes have exactly the attributes it reads.
@dataclass(frozen=True)
class BindProbe:
    proto: Proto
    port: int
    address: str
    in_use: bool
    detail: str | None = None


@dataclass(frozen=True)
class NatRule:
    proto: Proto
    port: int
    destination: str
    rule: str


@dataclass(frozen=True)
class IntegrityCheck:
    path: str
    status: str
    detail: str | None = None


def probe(port, in_use, address=ADDR, proto=TCP):
    return BindProbe(proto=proto, port=port, address=address, in_use=in_use,
                     detail="EADDRINUSE" if in_use else None)


NAT = NatRule(proto=TCP, port=31337, destination="10.0.0.5:22",
              rule="-A PREROUTING -p tcp --dport 31337 -j DNAT --to-destination 10.0.0.5:22")


@pytest.mark.parametrize(
    ("facts", "listeners", "expected"),
    [
        (None, (), [VerdictKind.EXTERNAL_ONLY]),
        (HostFacts(bind_probes=[probe(31337, True)]), (), [VerdictKind.HIDDEN_LISTENER]),
        (HostFacts(bind_probes=[probe(31337, False)]), (), [VerdictKind.EXTERNAL_ONLY]),
        # a probe of another port, or of UDP, says nothing about this one
        (HostFacts(bind_probes=[probe(31338, True), probe(31337, True, proto=Proto.UDP)]), (),
         [VerdictKind.EXTERNAL_ONLY]),
        # the visible loopback socket is what holds 127.0.0.1:31337: the probe proves nothing
        (HostFacts(bind_probes=[probe(31337, True, address="127.0.0.1")]),
         (sock(31337, address="127.0.0.1"),), [VerdictKind.EXTERNAL_ONLY]),
        # ...but the scanned address is not held by it
        (HostFacts(bind_probes=[probe(31337, True)]), (sock(31337, address="127.0.0.1"),),
         [VerdictKind.HIDDEN_LISTENER]),
        (HostFacts(nat_rules=[NAT]), (), [VerdictKind.FORWARDED]),
        (HostFacts(nat_rules=[dataclasses.replace(NAT, port=31338)]), (),
         [VerdictKind.EXTERNAL_ONLY]),
        # a wildcard bind collides with any listener on the port, loopback ones included
        (HostFacts(bind_probes=[probe(31337, True, address="0.0.0.0")]),
         (sock(31337, address="127.0.0.1"),), [VerdictKind.EXTERNAL_ONLY]),
        (HostFacts(bind_probes=[probe(31337, True, address="::")]), (),
         [VerdictKind.HIDDEN_LISTENER]),
        (HostFacts(nat_rules=[NAT], bind_probes=[probe(31337, True)]), (),
         [VerdictKind.HIDDEN_LISTENER, VerdictKind.FORWARDED]),
    ],
)
def test_external_only_is_refined_by_evidence(facts, listeners, expected):
    reports = reconcile_host(host(ext(31337, service="http", default=None)), view(*listeners),
                             scanned_address=ADDR, facts=facts)
    assert kinds(reports, 31337) == expected


def test_refined_verdicts_carry_their_evidence():
    facts = HostFacts(nat_rules=[NAT], bind_probes=[probe(31337, True)])
    [report] = reconcile_host(host(ext(31337, service="http", default=None)), view(),
                              scanned_address=ADDR, facts=facts)
    hidden, forwarded = report.verdicts
    assert hidden.severity == Severity.CRITICAL
    assert any(e == "bind probe: tcp 10.99.0.11:31337 in use (EADDRINUSE)"
               for e in hidden.evidence)
    assert "10.0.0.5:22" in forwarded.message
    assert f"nat: {NAT.rule}" in forwarded.evidence
    [free] = reconcile_host(host(ext(31337, service="http", default=None)), view(),
                            scanned_address=ADDR,
                            facts=HostFacts(bind_probes=[probe(31337, False)]))
    assert "bind probe: tcp 10.99.0.11:31337 free" in free.verdicts[0].evidence


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ([], [OK]),
        ([IntegrityCheck(path="/usr/sbin/sshd", status="ok")], [OK]),
        ([IntegrityCheck(path="/usr/sbin/sshd", status="unknown")], [OK]),
        ([IntegrityCheck(path="/usr/bin/ssh", status="modified", detail="??5?????? /usr/bin/ssh")],
         [OK]),
        ([IntegrityCheck(path="/usr/sbin/sshd", status="modified",
                         detail="??5?????? /usr/sbin/sshd")], [VerdictKind.MODIFIED_BINARY]),
    ],
)
def test_modified_binary_needs_integrity_evidence(checks, expected):
    reports = reconcile_host(host(ext(22)), view(sock(22)), scanned_address=ADDR,
                             facts=HostFacts(integrity=checks))
    assert kinds(reports, 22) == expected
    if expected == [VerdictKind.MODIFIED_BINARY]:
        assert "integrity: ??5?????? /usr/sbin/sshd" in reports[0].verdicts[0].evidence


def sourced(port, source, pid=100):
    return sock(port, pid=pid).model_copy(update={"source": source})


SS, PROC_NET = ListenerSource.SS, ListenerSource.PROC_NET


def disagreement(port, listed_by, missing_from, address="0.0.0.0"):
    return ToolsDisagreement(proto=TCP, port=port, address=address, listed_by=list(listed_by),
                             missing_from=list(missing_from))


@pytest.mark.parametrize(
    ("sockets", "found", "expected"),
    [
        ((sourced(22, SS),), (), [OK]),
        # /proc/net alone shows it: ss hid it, and no PID came with it
        ((sourced(22, PROC_NET, pid=None),), (disagreement(22, [PROC_NET], [SS]),),
         [VerdictKind.TOOLS_DISAGREE, VerdictKind.UNKNOWN]),
        ((sourced(22, SS),), (disagreement(22, [SS], [PROC_NET]),),
         [VerdictKind.TOOLS_DISAGREE]),
        # a disagreement about another port says nothing of this one
        ((sourced(22, SS),), (disagreement(23, [SS], [PROC_NET]),), [OK]),
        # the same socket without its owner from /proc/net is not "no PID visible"
        ((sourced(22, SS), sourced(22, PROC_NET, pid=None)), (), [OK]),
    ],
)
def test_tools_disagree_follows_the_recorded_disagreements(sockets, found, expected):
    reports = reconcile_host(host(ext(22)), view(*sockets), scanned_address=ADDR,
                             facts=HostFacts(disagreements=list(found)))
    assert kinds(reports, 22) == expected
    if VerdictKind.TOOLS_DISAGREE in expected:
        [verdict] = [v for v in reports[0].verdicts if v.kind == VerdictKind.TOOLS_DISAGREE]
        assert verdict.message in ("listed by proc_net but not by ss",
                                   "listed by ss but not by proc_net")
        assert "0.0.0.0:22" in verdict.evidence[0]


def test_is_loopback_address():
    for address in ("127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1", "127.0.0.53"):
        assert is_loopback_address(address), address
    for address in ("0.0.0.0", "::", "*", "10.99.0.11", "fe80::1", "eth0"):
        assert not is_loopback_address(address), address


# --- properties: coverage and order independence -----------------------------------------

PORTS = st.sampled_from([22, 24, 80, 443, 8080, 31337])
PIDS = st.sampled_from([100, 200, 7, 8])
EXES = st.sampled_from([None, "/usr/sbin/sshd", "/usr/sbin/nginx", "/usr/bin/socat",
                        "/tmp/.x/kworker", "/usr/bin/python3.11", "/bin/busybox"])
SERVICES = st.sampled_from([None, "ssh", "http", "https", "http-proxy", "telnet", "unknown"])

external_ports = st.builds(
    ExternalPort, proto=st.sampled_from(list(Proto)), port=PORTS,
    state=st.sampled_from(["open", "closed", "filtered", "open|filtered"]), service=SERVICES,
    method=st.sampled_from(["probed", "table"]), default_service=SERVICES,
    tunnel=st.sampled_from([None, "ssl"]))
sockets = st.builds(
    Socket, proto=st.sampled_from(list(Proto)), port=PORTS,
    address=st.sampled_from(["0.0.0.0", "::", "127.0.0.1", "::1", ADDR, "10.99.0.99", "*"]),
    owners=st.lists(st.builds(SocketOwner, command=st.sampled_from(["sshd", "x"]), pid=PIDS,
                              fd=st.none() | st.integers(3, 5)), max_size=2),
    source=st.sampled_from([SS, PROC_NET]))
processes = st.builds(
    ProcessInfo, pid=PIDS, exe=EXES, exe_deleted=st.booleans(),
    cmdline=st.lists(st.sampled_from(["nc", "sshd: x", "/usr/sbin/sshd", "-D"]), max_size=2),
    package=st.none() | st.just(PackageOwner(manager="dpkg", name="p")),
    package_manager=st.sampled_from([None, "dpkg"]))
facts_st = st.builds(
    HostFacts,
    bind_probes=st.lists(st.builds(BindProbe, proto=st.sampled_from(list(Proto)), port=PORTS,
                                   address=st.sampled_from([ADDR, "127.0.0.1"]),
                                   in_use=st.booleans()), max_size=3),
    nat_rules=st.lists(st.builds(NatRule, proto=st.just(TCP), port=PORTS,
                                 destination=st.sampled_from(["10.0.0.5:22", "127.0.0.1:80"]),
                                 rule=st.sampled_from(["a", "b"])), max_size=2),
    integrity=st.lists(st.builds(IntegrityCheck, path=EXES.filter(bool),
                                 status=st.sampled_from(["ok", "modified"]),
                                 detail=st.sampled_from(["x", "y"])), max_size=3),
    disagreements=st.lists(st.builds(disagreement, port=PORTS,
                                     listed_by=st.just([PROC_NET]), missing_from=st.just([SS])),
                           max_size=2))


@st.composite
def audits(draw):
    external = draw(st.none() | st.builds(
        ExternalHost, address=st.just(ADDR), status=st.just("up"),
        ports=st.lists(external_ports, max_size=8),
        extraports=st.lists(st.builds(ExtraPorts, state=st.sampled_from(["closed", "filtered"]),
                                      count=st.just(10)), max_size=2),
        scanned=st.just({TCP: [PortRange(first=1, last=1000)]})))
    internal = draw(st.none() | st.builds(
        InternalView, sockets=st.lists(sockets, max_size=8),
        processes=st.lists(processes, max_size=5)))
    return external, internal, draw(st.none() | facts_st)


def run(external, internal, facts):
    return reconcile_host(external, internal, scanned_address=ADDR, facts=facts,
                          external_missing=None if external else "scan failed",
                          internal_missing=None if internal else "ssh refused")


@settings(max_examples=300, deadline=None)
@given(audits())
def test_every_port_from_either_view_gets_a_verdict(audit):
    external, internal, facts = audit
    reports = run(external, internal, facts)
    expected = {(p.proto, p.port) for p in (external.ports if external else [])
                if p.state == "open"}
    expected |= {(s.proto, s.port) for s in (internal.sockets if internal else [])}
    assert [(r.proto, r.port) for r in reports] == sorted(expected)
    by_key = {}
    for sock in internal.sockets if internal else []:
        by_key.setdefault((sock.proto, sock.port), []).append(sock)
    for report in reports:
        assert report.verdicts, report
        # no evidence dropped: every owner of every socket (or the socket itself) is listed
        found = by_key.get((report.proto, report.port), [])
        assert len(report.listeners) == sum(max(1, len(s.owners)) for s in found)
        kinds_here = [v.kind for v in report.verdicts]
        # CONSISTENT is what is left when nothing else was found, never next to a problem.
        assert kinds_here == [OK] or OK not in kinds_here


@settings(max_examples=300, deadline=None)
@given(audits(), st.randoms(use_true_random=False))
def test_verdicts_do_not_depend_on_input_order(audit, rnd):
    external, internal, facts = audit

    def shuffled(items):
        items = list(items)
        rnd.shuffle(items)
        return items

    if external is not None:
        external = external.model_copy(update={"ports": shuffled(external.ports)})
    if internal is not None:
        internal = internal.model_copy(update={
            "sockets": [s.model_copy(update={"owners": shuffled(s.owners)})
                        for s in shuffled(internal.sockets)],
            "processes": shuffled(internal.processes)})
    if facts is not None:
        facts = dataclasses.replace(facts, **{k: shuffled(getattr(facts, k)) for k in (
            "bind_probes", "nat_rules", "integrity", "disagreements")})
    assert run(external, internal, facts) == run(*audit)


def test_the_drafted_evidence_models_fit_the_hook():
    """models.BindResult, NatForward and IntegrityResult (being added for collection) plug in
    as they are; if they change shape this fails here, not silently in a fleet run."""
    from fleetaudit.models import (
        BindResult,
        BindState,
        IntegrityResult,
        IntegrityStatus,
        NatForward,
    )

    facts = HostFacts(
        bind_probes=[BindResult(proto=TCP, port=31337, address="0.0.0.0",
                                state=BindState.IN_USE)],
        nat_rules=[NatForward(proto=TCP, port=31337, kind="dnat", to_address="10.0.0.5",
                              to_port=22, family="ipv4", chain="PREROUTING",
                              tool="iptables-save", rule="-A PREROUTING ... -j DNAT")],
        integrity=[IntegrityResult(path="/usr/sbin/sshd", status=IntegrityStatus.MODIFIED,
                                   manager="dpkg", detail="??5?????? /usr/sbin/sshd")],
        disagreements=[disagreement(22, [SS], [PROC_NET])],
    )
    reports = reconcile_host(host(ext(22), ext(31337, service="http", default=None)),
                             view(sock(22), sourced(22, PROC_NET, pid=None)),
                             scanned_address=ADDR, facts=facts)
    assert kinds(reports, 31337) == [VerdictKind.HIDDEN_LISTENER, VerdictKind.FORWARDED]
    assert "10.0.0.5:22" in reports[1].verdicts[1].message
    assert kinds(reports, 22) == [VerdictKind.TOOLS_DISAGREE, VerdictKind.MODIFIED_BINARY]


def test_the_internal_view_carries_its_own_evidence():
    """Without explicit facts, reconcile reads the evidence collection put in the view."""
    from fleetaudit.models import (
        BindResult,
        BindState,
        IntegrityResult,
        IntegrityStatus,
        NatForward,
    )

    modified = SSHD.model_copy(update={"integrity": IntegrityResult(
        path="/usr/sbin/sshd", status=IntegrityStatus.MODIFIED, manager="dpkg",
        detail="??5?????? /usr/sbin/sshd")})
    internal = InternalView(
        sockets=[sock(22), sourced(4444, PROC_NET)],
        processes=[modified],
        bind_results=[BindResult(proto=TCP, port=31337, address="0.0.0.0",
                                 state=BindState.IN_USE),
                      BindResult(proto=TCP, port=2222, address="0.0.0.0",
                                 state=BindState.ERROR)],
        nat_forwards=[NatForward(proto=TCP, port=2222, kind="redirect", to_port=22,
                                 family="ipv4", chain="PREROUTING", tool="iptables-save",
                                 rule="-A PREROUTING -p tcp --dport 2222 -j REDIRECT")],
        disagreements=[disagreement(4444, [PROC_NET], [SS])],
    )
    reports = reconcile_host(
        host(ext(22), ext(4444, service="unknown", default=None),
             ext(31337, service="unknown", default=None),
             ext(2222, service="ssh", default=None)),
        internal, scanned_address=ADDR)
    assert kinds(reports, 22) == [VerdictKind.MODIFIED_BINARY]
    assert VerdictKind.TOOLS_DISAGREE in kinds(reports, 4444)
    assert kinds(reports, 31337) == [VerdictKind.HIDDEN_LISTENER]
    # ssh answers on 2222 (redirected to 22): reachable on a port that is not ssh's
    assert sorted(kinds(reports, 2222)) == [VerdictKind.FORWARDED, VerdictKind.NONSTANDARD_PORT]


def test_a_tls_service_is_judged_by_the_processes_of_the_protocol_inside():
    vsftpd = ProcessInfo(pid=7, exe="/usr/sbin/vsftpd")
    socat = ProcessInfo(pid=8, exe="/usr/bin/socat")
    for proc, expected in ((vsftpd, [VerdictKind.CONSISTENT]),
                           (socat, [VerdictKind.SERVICE_PROCESS_MISMATCH])):
        reports = reconcile_host(host(ext(990, service="ftp", tunnel="ssl", default="ftps")),
                                 view(sock(990, pid=proc.pid), processes=[proc]),
                                 scanned_address=ADDR)
        assert kinds(reports, 990) == expected, proc.exe
