"""Verdicts from small hand-built models: reconcile is pure, so fakes are fair here."""

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
    Socket,
    SocketOwner,
    VerdictKind,
)
from fleetaudit.reconcile import reconcile_host, serves_address, service_family

ADDR = "10.99.0.11"
TCP = Proto.TCP
SSHD = ProcessInfo(pid=100, exe="/usr/sbin/sshd", cmdline=["sshd: /usr/sbin/sshd -D"], uid=0,
                   user="root", package=PackageOwner(manager="dpkg", name="openssh-server"),
                   package_manager="dpkg")


def ext(port, state="open", service="ssh", default="ssh", method="probed", **kw):
    return ExternalPort(proto=TCP, port=port, state=state, service=service, method=method,
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
    assert "priv-mail" in reports[0].verdicts[0].message


def test_service_from_the_table_alone_proves_nothing():
    reports = reconcile_host(host(ext(24, service="priv-mail", default="priv-mail",
                                      method="table")), view(sock(24)), scanned_address=ADDR)
    assert kinds(reports, 24) == [VerdictKind.CONSISTENT]


def test_http_on_8080_is_the_http_family():
    assert service_family("http-proxy") == service_family("http") == "http"
    assert service_family("http", tunnel="ssl") == "https"
    reports = reconcile_host(host(ext(8080, service="http", default="http-proxy")),
                             view(sock(8080)), scanned_address=ADDR)
    assert kinds(reports, 8080) == [VerdictKind.CONSISTENT]


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
