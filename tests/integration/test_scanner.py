"""fleetaudit.scan's engine: how it drives python-nmap (nmap faked, replaying real captures),
what a failing process costs (only its own hosts), nmap missing or too old, --nmap-xml
matching, evidence files; and a real two-phase and a real single-pass run against a
listener this test starts on 127.0.0.1 (42090-42099)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import re
import shutil
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import nmap as python_nmap
import pytest

from fleetaudit import orchestrator, scan
from fleetaudit.errors import ConfigError, NmapNotFoundError, UnsafeTargetError
from fleetaudit.models import Inventory, InventoryHost, Proto
from fleetaudit.scan import nmap_run
from fleetaudit.scan.command import make_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nmap"
HAVE_NMAP = shutil.which("nmap") is not None
A, B, C = "192.0.2.10", "192.0.2.11", "192.0.2.12"  # TEST-NET: only ever seen by the fake


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def as_hosts(xml: bytes, addresses: list[str]) -> bytes:
    """A real capture's single <host> repeated for each address (what nmap would write for
    several hosts answering alike); everything else of the report unchanged."""
    start = re.search(rb"<host[ >]", xml).start()
    end = xml.index(b"</host>") + len(b"</host>")
    block = xml[start:end]
    hosts = b"\n".join(block.replace(b'addr="127.0.0.1"', f'addr="{a}"'.encode())
                       for a in addresses)
    return xml[:start] + hosts + xml[end:]


def targets_of(argv: list[str]) -> list[str]:
    return [a for a in argv if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a)]


# --- python-nmap driven against a fake nmap ------------------------------------------------


class FakeNmap:
    """Stands in for subprocess.Popen inside python-nmap: answers -V, and each scan with
    what `respond(argv)` says: (stdout, stderr)."""

    calls: ClassVar[list[list[str]]] = []
    respond: ClassVar[Callable[[list[str]], tuple[bytes, bytes]]]

    def __init__(self, args, **_kwargs):
        self.args = list(args)
        FakeNmap.calls.append(self.args)

    def communicate(self, timeout=None):
        if self.args[1:] == ["-V"]:
            return b"Nmap version 7.93 ( https://nmap.org )\n", b""
        return FakeNmap.respond(self.args)


@pytest.fixture
def fake_nmap(monkeypatch):
    FakeNmap.calls = []
    monkeypatch.setattr(python_nmap.nmap.subprocess, "Popen", FakeNmap)
    monkeypatch.setattr(nmap_run, "find_nmap", lambda _path=None: "/opt/fake/nmap")
    monkeypatch.setattr(nmap_run, "check_nmap_version", lambda _bin: (7, 93))
    monkeypatch.setattr(nmap_run, "load_default_services",
                        lambda _bin: {(Proto.TCP, 42080): "x"})
    return FakeNmap


def scans(fake) -> list[list[str]]:
    return [c for c in fake.calls if c[1:] != ["-V"]]


def run_fleet(targets, **kwargs):
    """Two phases unless told otherwise: most tests here are about what each phase costs."""
    kwargs.setdefault("single_pass_max_hosts", 0)
    settings = make_settings("quick", privileged=True, **kwargs)
    return asyncio.run(scan.scan_fleet(targets, settings))


def test_discovery_then_version_scan_of_exactly_what_was_open(fake_nmap):
    def respond(argv):
        return (fixture("version-phase.xml") if "-sV" in argv else fixture("discovery.xml")), b""

    fake_nmap.respond = respond
    settings = make_settings("quick", privileged=True, single_pass_max_hosts=0)
    fleet = asyncio.run(scan.scan_fleet(["127.0.0.1"], settings))
    discovery, version = scans(fake_nmap)
    assert discovery == scan.discovery_jobs(["127.0.0.1"], settings)[0].argv("/opt/fake/nmap")
    assert version == scan.version_job("tcp-version-01-1", ["127.0.0.1"], Proto.TCP,
                                       [42001, 42022, 42080, 42443], settings,
                                       probes=4).argv("/opt/fake/nmap")
    host = fleet.hosts["127.0.0.1"]
    named = {p.port: (p.service, p.tunnel) for p in host.ports}
    assert named == {42001: ("unknown", None), 42022: ("ssh", None), 42080: ("http", None),
                     42443: ("http", "ssl")}
    assert next(p for p in host.ports if p.port == 42080).default_service == "x"
    assert fleet.failed == {} and fleet.run.complete and host.errors == []
    assert fleet.run.commands == [" ".join(discovery), " ".join(version)]
    assert [name for name, _ in fleet.evidence] == ["tcp-discovery-01", "tcp-version-01-1"]
    assert fleet.evidence[1][1] == fixture("version-phase.xml")  # raw, byte for byte
    assert fleet.run.hosts == [host]


def test_a_handful_of_hosts_is_scanned_by_one_nmap_sv(fake_nmap):
    fake_nmap.respond = lambda argv: (as_hosts(fixture("version-phase.xml"),
                                               targets_of(argv)), b"")
    settings = make_settings("quick", privileged=True)
    fleet = asyncio.run(scan.scan_fleet([A, B], settings))
    (only,) = scans(fake_nmap)
    assert only == scan.single_job("tcp-scan-01", [A, B], settings.selections[0],
                                   settings).argv("/opt/fake/nmap")
    for address in (A, B):
        host = fleet.hosts[address]
        assert {p.port: p.service for p in host.ports}[42022] == "ssh" and host.errors == []
    assert fleet.run.commands == [" ".join(only)] and fleet.run.complete
    assert [name for name, _ in fleet.evidence] == ["tcp-scan-01"]
    assert fleet.run.evidence == ["tcp-scan-01.xml"]


def test_a_cut_short_single_pass_marks_the_hosts_it_did_not_finish(fake_nmap):
    def respond(argv):
        full = as_hosts(fixture("version-phase.xml"), [A, B, C])
        return full[: full.index(f'addr="{C}"'.encode()) - 60], b"nmap: killed\n"

    fake_nmap.respond = respond
    fleet = run_fleet([A, B, C], single_pass_max_hosts=4)
    assert len(scans(fake_nmap)) == 1
    assert sorted(fleet.hosts) == [A, B]
    assert {p.port: p.service for p in fleet.hosts[B].ports}[42022] == "ssh"
    assert fleet.failed[C].startswith("the tcp scan was cut short before this host "
                                      "(tcp-scan-01: nmap XML ends early")
    assert not fleet.run.complete


def test_a_killed_version_process_costs_only_its_own_hosts_their_service_names(fake_nmap):
    # batch_size 1: A and B are discovered, and identified, by separate processes.
    def respond(argv):
        (target,) = targets_of(argv)
        if "-sV" not in argv:
            return as_hosts(fixture("discovery.xml"), [target]), b""
        if target == B:  # nmap killed mid-run: the report stops before B's host
            return fixture("killed-midrun.xml").split(b"<host ")[0], b""
        return as_hosts(fixture("version-phase.xml"), [target]), b""

    fake_nmap.respond = respond
    fleet = run_fleet([A, B], batch_size=1)
    a, b = fleet.hosts[A], fleet.hosts[B]
    assert {p.port: p.service for p in a.ports}[42022] == "ssh" and a.errors == []
    assert [(p.port, p.state, p.method) for p in b.ports] == [
        (42001, "open", "table"), (42022, "open", None), (42080, "open", None),
        (42443, "open", None)]  # discovery's results, kept
    (error,) = b.errors
    assert re.fullmatch(
        r"service detection on tcp 42001,42022,42080,42443 did not finish \(tcp scan failed "
        r"\(tcp-version-02-1\): nmap stopped before reporting any host: nmap XML ends early "
        r".*\): open ports kept, services not identified", error)
    assert fleet.failed == {} and not fleet.run.complete
    assert sorted(n for n, _ in fleet.evidence) == [
        "tcp-discovery-01", "tcp-discovery-02", "tcp-version-01-1", "tcp-version-02-1"]


def test_a_cut_short_discovery_keeps_its_finished_hosts(fake_nmap):
    def respond(argv):
        if "-sV" in argv:
            return as_hosts(fixture("version-phase.xml"), targets_of(argv)), b""
        full = as_hosts(fixture("discovery.xml"), [A, B, C])
        return full[: full.index(f'addr="{C}"'.encode()) - 60], b"nmap: killed\n"

    fake_nmap.respond = respond
    fleet = run_fleet([A, B, C])
    assert sorted(fleet.hosts) == [A, B]
    assert all(p.method == "probed" for p in fleet.hosts[A].ports if p.port == 42022)
    assert fleet.failed[C].startswith("the tcp scan was cut short before this host "
                                      "(tcp-discovery-01: nmap XML ends early")
    assert "tcp-discovery-01: nmap stderr: nmap: killed" in fleet.run.errors
    (version,) = [c for c in scans(fake_nmap) if "-sV" in c]
    assert targets_of(version) == [A, B]


def test_a_failed_process_with_nothing_usable_fails_only_its_batch(fake_nmap):
    def respond(argv):
        if targets_of(argv) == [B]:
            return b"", b"Failed to open device fa-gone\n"
        if "-sV" in argv:
            return as_hosts(fixture("version-phase.xml"), targets_of(argv)), b""
        return as_hosts(fixture("discovery.xml"), targets_of(argv)), b""

    fake_nmap.respond = respond
    fleet = run_fleet([A, B], batch_size=1)
    assert list(fleet.hosts) == [A]
    assert fleet.failed == {B: "tcp scan failed (tcp-discovery-02): nmap produced no XML: "
                               "Failed to open device fa-gone"}
    assert not fleet.run.complete


def test_an_nmap_error_report_is_a_failed_batch(fake_nmap):
    fake_nmap.respond = lambda argv: (fixture("error-bad-port.xml"), b"")
    fleet = run_fleet([A])
    assert fleet.hosts == {} and "Ports specified must be between" in fleet.failed[A]


def test_down_host_is_reported_down_and_not_version_scanned(fake_nmap):
    fake_nmap.respond = lambda argv: (as_hosts(fixture("host-down.xml"), targets_of(argv)), b"")
    fleet = run_fleet([A])
    assert (fleet.hosts[A].status, fleet.hosts[A].reason) == ("down", "no-response")
    assert not any("-sV" in c for c in scans(fake_nmap))


def test_hosts_nmap_reports_but_was_not_given_are_dropped(fake_nmap):
    fake_nmap.respond = lambda argv: (as_hosts(fixture("discovery.xml"), [A, "203.0.113.5"])
                                      if "-sV" not in argv else
                                      as_hosts(fixture("version-phase.xml"), [A]), b"")
    fleet = run_fleet([A])
    assert list(fleet.hosts) == [A] and fleet.run.complete


def test_a_scoped_ipv6_target_keeps_its_scope_for_the_version_scan(fake_nmap):
    def respond(argv):
        xml = fixture("version-phase.xml" if "-sV" in argv else "discovery.xml")
        return xml.replace(b'addr="127.0.0.1" addrtype="ipv4"',
                           b'addr="fe80::1" addrtype="ipv6"'), b""

    fake_nmap.respond = respond
    fleet = run_fleet(["fe80::1%lo"])
    discovery, version = scans(fake_nmap)
    assert "fe80::1%lo" in discovery and "-6" in discovery
    assert "fe80::1%lo" in version  # nmap dropped the scope in its report; we did not
    assert fleet.hosts["fe80::1"].address == "fe80::1%lo"
    assert {p.port: p.service for p in fleet.hosts["fe80::1"].ports}[42022] == "ssh"


# --- nmap missing or too old ----------------------------------------------------------------


def test_missing_nmap_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NmapNotFoundError, match="apt-get install nmap"):
        scan.find_nmap()
    with pytest.raises(NmapNotFoundError, match="apt-get install nmap"):
        run_fleet(["127.0.0.1"])


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "nmap"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_too_old_or_not_nmap_at_all(tmp_path):
    old = _script(tmp_path, 'echo "Nmap version 6.47 ( https://nmap.org )"')
    with pytest.raises(NmapNotFoundError, match=r"nmap 6\.47 .* is older than 7\.0; install"):
        scan.check_nmap_version(old)
    settings = make_settings("quick", privileged=True)
    with pytest.raises(NmapNotFoundError, match=r"older than 7\.0"):
        asyncio.run(scan.scan_fleet(["127.0.0.1"], settings, nmap_path=old))
    other = _script(tmp_path, "echo hello")
    with pytest.raises(NmapNotFoundError, match="does not answer --version as nmap does"):
        scan.check_nmap_version(other)
    assert scan.nmap_run.parse_nmap_version("Nmap version 7.93 ( https://nmap.org )") == (7, 93)


def test_missing_nmap_services_means_no_defaults(monkeypatch):
    monkeypatch.setattr(nmap_run, "nmap_services_path", lambda _bin: None)
    assert nmap_run.load_default_services("/usr/bin/nmap") == {}


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is not installed")
def test_route_guard_on_loopback():
    scan.check_route("127.0.0.1", "lo")
    with pytest.raises(UnsafeTargetError, match="routed via lo"):
        scan.check_route("127.0.0.1", "fa-no-such-dev")
    with pytest.raises(UnsafeTargetError):
        scan.check_route("localhost", "lo")
    settings = make_settings("quick", privileged=True)
    with pytest.raises(UnsafeTargetError, match="refusing to scan or contact it"):
        asyncio.run(scan.scan_fleet(["127.0.0.1"], settings,
                                    routes={"127.0.0.1": "fa-no-such-dev"}))


# --- --nmap-xml -------------------------------------------------------------------------------


def test_imported_reports_are_matched_to_the_inventory_by_address(tmp_path):
    one = tmp_path / "site-a.xml"
    one.write_bytes(as_hosts(fixture("version-phase.xml"), [A, "203.0.113.7"]))
    two = tmp_path / "udp scan.xml"
    two.write_bytes(as_hosts(fixture("tcp-udp.xml"), [A]))
    fleet = scan.import_nmap_xml([one, two], [A, B], {(Proto.TCP, 42080): "x"})
    a = fleet.hosts[A]
    assert {(p.proto, p.port) for p in a.ports} >= {(Proto.TCP, 42022), (Proto.TCP, 42443)}
    assert a.was_scanned(Proto.UDP, 42060)  # the second file's UDP ranges joined in
    assert next(p for p in a.ports if p.port == 42080).default_service == "x"
    assert fleet.failed == {B: "not in the supplied nmap XML (site-a.xml, udp scan.xml)"}
    run = fleet.run
    assert (run.source, run.ignored_hosts, run.complete) == ("import", ["203.0.113.7"], False)
    assert run.imported == [str(one), str(two)]
    assert "1 host(s) in the nmap XML are not in the inventory and were ignored: " \
           "203.0.113.7" in run.errors
    assert [n for n, _ in fleet.evidence] == ["import-01-site-a", "import-02-udp-scan"]
    assert fleet.evidence[0][1] == one.read_bytes()


def test_an_imported_report_cut_short_says_so_for_the_missing_hosts(tmp_path):
    cut = tmp_path / "cut.xml"
    cut.write_bytes(fixture("three-hosts-truncated.xml"))
    fleet = scan.import_nmap_xml([cut], ["127.0.0.1", A])
    assert "127.0.0.1" in fleet.hosts
    assert fleet.failed[A] == ("not in the supplied nmap XML (cut.xml); cut.xml ended early, "
                               "it may have been cut short there")


@pytest.mark.parametrize("content", [b"<html>not nmap</html>", b"",
                                     b'<!DOCTYPE nmaprun [<!ENTITY x "y">]><nmaprun/>'])
def test_an_unusable_imported_file_is_a_config_error(tmp_path, content):
    bad = tmp_path / "bad.xml"
    bad.write_bytes(content)
    with pytest.raises(ConfigError, match=r"--nmap-xml .*bad\.xml"):
        scan.import_nmap_xml([bad], [A])
    with pytest.raises(ConfigError, match="cannot read it"):
        scan.import_nmap_xml([tmp_path / "absent.xml"], [A])


# --- evidence --------------------------------------------------------------------------------


def test_evidence_is_one_owner_only_file_per_process(tmp_path):
    paths = scan.write_nmap_evidence(tmp_path, [("tcp-discovery-01", b"<a/>"),
                                                ("tcp-version-01-1", b"<b/>")])
    assert [p.name for p in paths] == ["tcp-discovery-01.xml", "tcp-version-01-1.xml"]
    assert (tmp_path / "nmap" / "tcp-version-01-1.xml").read_bytes() == b"<b/>"
    assert stat.S_IMODE((tmp_path / "nmap").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
    assert scan.write_nmap_evidence(tmp_path / "none", []) == []
    for name in ("../x", "a/b", ".hidden", "x.xml"):
        with pytest.raises(ValueError):
            scan.write_nmap_evidence(tmp_path, [(name, b"")])


# --- the real thing, on loopback only -------------------------------------------------------


def _free_port() -> int:
    for candidate in range(42090, 42099):
        with contextlib.closing(socket.socket()) as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    pytest.skip("no free port in 42090-42098")


@pytest.fixture
def http_listener(tmp_path) -> Iterator[int]:
    port = _free_port()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(not HAVE_NMAP, reason="nmap is not installed (apt-get install nmap)")
@pytest.mark.timeout(180)
def test_real_two_phase_scan_identifies_a_loopback_http_server(http_listener):
    ports = "42090-42099"
    settings = make_settings("quick", ports, privileged=os.geteuid() == 0,
                             extra_args=["--max-retries", "1"], single_pass_max_hosts=0)
    fleet = asyncio.run(scan.scan_fleet(["127.0.0.1"], settings, routes={"127.0.0.1": "lo"}))
    run = fleet.run
    assert run.complete, run.errors
    assert run.scan_type == ("syn" if os.geteuid() == 0 else "connect")
    discovery, version = run.commands
    assert "-sV" not in discovery.split() and "-n" in discovery.split()
    assert f"-p {http_listener} " in version and "-n" in version.split()
    check_loopback_view(fleet, http_listener)


@pytest.mark.skipif(not HAVE_NMAP, reason="nmap is not installed (apt-get install nmap)")
@pytest.mark.timeout(180)
def test_real_single_pass_scan_identifies_a_loopback_http_server(http_listener):
    settings = make_settings("quick", "42090-42099", privileged=os.geteuid() == 0,
                             extra_args=["--max-retries", "1"])
    fleet = asyncio.run(scan.scan_fleet(["127.0.0.1"], settings, routes={"127.0.0.1": "lo"}))
    assert fleet.run.complete, fleet.run.errors
    (command,) = fleet.run.commands
    argv = command.split()
    assert {"-n", "-Pn", "-v", "-sV", "--version-light"} <= set(argv)
    assert argv[argv.index("-p") + 1] == "42090-42099"
    assert [name for name, _ in fleet.evidence] == ["tcp-scan-01"]
    check_loopback_view(fleet, http_listener)


def check_loopback_view(fleet: scan.FleetScan, http_listener: int) -> None:
    """What both ways of scanning must see on 127.0.0.1:42090-42099."""
    host = fleet.hosts["127.0.0.1"]
    assert host.status == "up" and host.errors == []
    by_port = {p.port: p for p in host.ports}
    web = by_port[http_listener]
    assert web.state == "open" and web.service == "http"
    assert web.product == "SimpleHTTPServer" and web.method == "probed"
    # ten ports: too few for nmap to condense, each closed one is listed
    assert {p.port for p in host.ports} == set(range(42090, 42100))
    assert {p.state for p in host.ports if p.port != http_listener} == {"closed"}
    assert host.was_scanned(Proto.TCP, 42099) and not host.was_scanned(Proto.TCP, 42089)
    for name, xml in fleet.evidence:
        assert xml.lstrip().startswith(b"<?xml") and xml.rstrip().endswith(b"</nmaprun>"), name


def test_a_bad_scan_option_ends_the_audit_before_any_host_is_touched(monkeypatch):
    monkeypatch.setattr(scan, "is_privileged", lambda: False)
    touched = []
    monkeypatch.setattr(orchestrator, "_targets", lambda inv: touched.append(inv))
    inventory = Inventory(source="t", hosts=[InventoryHost(name="a", address=A)])
    with pytest.raises(ConfigError, match="profile 'full' scans UDP, which needs root"):
        asyncio.run(orchestrator.run_audit(inventory, orchestrator.AuditOptions(profile="full")))
    with pytest.raises(ConfigError, match="unknown scan profile"):
        asyncio.run(orchestrator.audit_dry_run(inventory,
                                               orchestrator.AuditOptions(profile="fast")))
    assert touched == []
