"""fleetaudit.scanner: what it lets nmap do (pure), how it drives python-nmap (nmap faked),
and one real nmap run against a listener this test starts on 127.0.0.1 (42000-42099)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import nmap as python_nmap
import pytest

from fleetaudit import scanner
from fleetaudit.errors import ConfigError, NmapNotFoundError, ScanError, UnsafeTargetError
from fleetaudit.models import Proto
from fleetaudit.scanner import find_nmap, nmap_command_line, scan, validate_targets

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nmap"
HAVE_NMAP = shutil.which("nmap") is not None


# --- the command line: pure ---------------------------------------------------------------


def test_command_line_always_disables_dns_and_ping_and_probes_versions():
    argv = nmap_command_line(["127.0.0.1"], privileged=True)
    assert argv == ["nmap", "-oX", "-", "127.0.0.1", "-n", "-Pn", "-sS", "-sV"]
    assert "-p" not in argv  # nmap's default: its top 1000 ports


def test_unprivileged_gets_a_connect_scan():
    argv = nmap_command_line(["192.0.2.7"], "22,80-90", privileged=False, version_light=True)
    assert argv == [
        "nmap", "-oX", "-", "192.0.2.7", "-p", "22,80-90",
        "-n", "-Pn", "-sT", "-sV", "--version-light",
    ]  # fmt: skip


def test_targets_are_deduplicated_and_canonical():
    assert validate_targets(["192.0.2.1", "192.0.2.2", "192.0.2.1"]) == ["192.0.2.1", "192.0.2.2"]
    assert validate_targets(["2001:DB8::1", "2001:db8:0::1"]) == ["2001:db8::1"]


def test_ipv6_targets_get_dash_6():
    assert "-6" in nmap_command_line(["::1"], privileged=True)


@pytest.mark.parametrize(
    "target",
    ["localhost", "example.org", "10.0.0.0/8", "192.0.2.1-5", "192.0.2.*", "-iR", "0.0.0.0",
     "::", "224.0.0.1", "255.255.255.255", " 192.0.2.1", "192.0.2.1 192.0.2.2", ""],
)  # fmt: skip
def test_anything_but_a_host_ip_is_refused(target):
    with pytest.raises(UnsafeTargetError):
        nmap_command_line([target])


def test_mixed_families_and_empty_target_lists_are_refused():
    with pytest.raises(ScanError):
        nmap_command_line(["192.0.2.1", "2001:db8::1"])
    with pytest.raises(ScanError):
        nmap_command_line([])


@pytest.mark.parametrize(
    "extra",
    [["-iL", "/etc/hosts"], ["-iR", "10"], ["192.0.2.9"], ["-R"], ["--system-dns"],
     ["--dns-servers", "192.0.2.53"], ["--script", "vuln"], ["-oN", "/tmp/x"], ["-S", "1.2.3.4"],
     ["-D", "RND:10"], ["--resume", "x"], ["--max-retries", "2;rm"], ["--max-retries"],
     ["--version-all=1"], ["-T6"]],
)  # fmt: skip
def test_extra_args_outside_the_allowlist_are_refused(extra):
    with pytest.raises(ConfigError):
        nmap_command_line(["127.0.0.1"], extra_args=extra)


def test_allowed_extra_args_are_normalised():
    argv = nmap_command_line(
        ["127.0.0.1"],
        extra_args=["-T4", "--max-retries=1", "--host-timeout", "30s", "--version-light"],
        privileged=True,
    )
    assert argv[argv.index("-sV") :] == [
        "-sV", "--version-light", "-T4", "--max-retries", "1", "--host-timeout", "30s",
    ]  # fmt: skip


@pytest.mark.parametrize("ports", ["", "a", "22,", "0-70000", "90-80", "22;id", "ssh", "-"])
def test_bad_port_lists_are_refused(ports):
    with pytest.raises(ConfigError):
        nmap_command_line(["127.0.0.1"], ports)


def test_udp_ports_add_a_udp_scan_and_need_root():
    argv = nmap_command_line(["127.0.0.1"], "T:22,U:53", privileged=True)
    assert "-sU" in argv and "-sS" in argv
    with pytest.raises(ConfigError):
        nmap_command_line(["127.0.0.1"], "U:53", privileged=False)


def test_missing_nmap_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NmapNotFoundError, match="apt-get install nmap"):
        find_nmap()
    with pytest.raises(NmapNotFoundError, match="apt-get install nmap"):
        asyncio.run(scan(["127.0.0.1"]))


def test_missing_nmap_services_means_no_defaults(monkeypatch, tmp_path):
    monkeypatch.setattr(scanner, "nmap_services_path", lambda _bin: None)
    assert scanner.load_default_services("/usr/bin/nmap") == {}


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is not installed")
def test_route_guard_on_loopback():
    scanner.check_route("127.0.0.1", "lo")
    with pytest.raises(UnsafeTargetError, match="routed via lo"):
        scanner.check_route("127.0.0.1", "fa-no-such-dev")
    with pytest.raises(UnsafeTargetError):
        scanner.check_route("localhost", "lo")


# --- python-nmap driven against a fake nmap ------------------------------------------------


class FakeNmap:
    """Stands in for subprocess.Popen inside python-nmap: answers -V, replays a report."""

    calls: ClassVar[list[list[str]]] = []
    stdout = b""
    stderr = b""

    def __init__(self, args, **_kwargs):
        self.args = list(args)
        FakeNmap.calls.append(self.args)

    def communicate(self, timeout=None):
        if self.args[1:] == ["-V"]:
            return b"Nmap version 7.93 ( https://nmap.org )\n", b""
        return FakeNmap.stdout, FakeNmap.stderr


@pytest.fixture
def fake_nmap(monkeypatch):
    FakeNmap.calls = []
    FakeNmap.stdout, FakeNmap.stderr = b"", b""
    monkeypatch.setattr(python_nmap.nmap.subprocess, "Popen", FakeNmap)
    monkeypatch.setattr(scanner, "find_nmap", lambda _path=None: "/opt/fake/nmap")
    monkeypatch.setattr(scanner, "load_default_services", lambda _bin: {(Proto.TCP, 42080): "x"})
    return FakeNmap


def test_scan_runs_exactly_the_dry_run_command(fake_nmap):
    fake_nmap.stdout = (FIXTURES / "sv-syn.xml").read_bytes()
    run, raw = asyncio.run(scan(["127.0.0.1", "127.0.0.1"], ports="42002-42049,42051-42099"))
    expected = nmap_command_line(
        ["127.0.0.1"], "42002-42049,42051-42099", nmap_path="/opt/fake/nmap"
    )
    assert fake_nmap.calls[-1] == expected
    assert raw == fake_nmap.stdout
    assert run.complete and run.hosts[0].address == "127.0.0.1"
    ports = {p.port: p for p in run.hosts[0].ports}
    assert ports[42022].service == "ssh" and ports[42080].default_service == "x"


def test_scan_keeps_a_cut_short_report_and_nmaps_complaint(fake_nmap):
    fake_nmap.stdout = (FIXTURES / "three-hosts-truncated.xml").read_bytes()
    fake_nmap.stderr = b"nmap: something went badly\n"
    run, raw = asyncio.run(scan(["127.0.0.1"], ports="42022,42080,42099"))
    assert not run.complete and len(run.hosts) == 2
    assert "nmap stderr: nmap: something went badly" in run.errors
    assert raw == fake_nmap.stdout


def test_scan_with_nothing_usable_is_a_scan_error(fake_nmap):
    fake_nmap.stdout = (FIXTURES / "error-bad-port.xml").read_bytes()
    with pytest.raises(ScanError, match="Ports specified must be between"):
        asyncio.run(scan(["127.0.0.1"], ports="42000"))
    fake_nmap.stdout, fake_nmap.stderr = b"", b"Failed to open device lo\n"
    with pytest.raises(ScanError, match="Failed to open device"):
        asyncio.run(scan(["127.0.0.1"], ports="42000"))
    fake_nmap.stdout = b"<html>not nmap</html>"
    with pytest.raises(ScanError, match="not a usable report"):
        asyncio.run(scan(["127.0.0.1"], ports="42000"))


def test_scan_notes_targets_missing_from_the_report(fake_nmap):
    fake_nmap.stdout = (FIXTURES / "sv-syn.xml").read_bytes()
    run, _ = asyncio.run(scan(["127.0.0.1", "192.0.2.10"], ports="42002"))
    assert run.errors == ["192.0.2.10: missing from nmap's report"]


def test_scan_fills_the_scan_type_when_nmap_wrote_none(fake_nmap):
    fake_nmap.stdout = (FIXTURES / "host-down.xml").read_bytes().replace(b"<scaninfo", b"<x")
    run, _ = asyncio.run(scan(["127.0.0.1"], ports="42000"))
    assert run.scan_type in {"syn", "connect"}


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


def _closed_port(exclude: int) -> int:
    for candidate in range(42099, 42089, -1):
        if candidate == exclude:
            continue
        with contextlib.closing(socket.socket()) as s:
            if s.connect_ex(("127.0.0.1", candidate)) != 0:
                return candidate
    pytest.skip("no closed port in 42090-42099")


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
def test_real_nmap_identifies_a_loopback_http_server(http_listener):
    closed = _closed_port(http_listener)
    ports = f"{http_listener},{closed}"
    run, raw = asyncio.run(scan(["127.0.0.1"], ports=ports, extra_args=["--max-retries", "1"]))

    assert raw.lstrip().startswith(b"<?xml") and b"</nmaprun>" in raw
    argv = nmap_command_line(
        ["127.0.0.1"], ports, extra_args=["--max-retries", "1"], nmap_path=find_nmap()
    )
    # nmap records its argv after getopt moved the targets to the end.
    assert sorted(run.command.split()) == sorted(argv)
    assert "-n" in run.command.split()
    assert run.complete, run.errors
    assert run.scan_type in {"syn", "connect"}
    (host,) = run.hosts
    assert host.address == "127.0.0.1" and host.status == "up"
    by_port = {p.port: p for p in host.ports}
    web = by_port[http_listener]
    assert web.state == "open" and web.service == "http"
    assert web.product == "SimpleHTTPServer" and web.method == "probed"
    assert by_port[closed].state == "closed"
    assert host.was_scanned(Proto.TCP, http_listener)


@pytest.mark.skipif(not HAVE_NMAP, reason="nmap is not installed (apt-get install nmap)")
def test_real_nmap_version_is_new_enough():
    out = subprocess.run([find_nmap(), "-V"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("Nmap version ")
