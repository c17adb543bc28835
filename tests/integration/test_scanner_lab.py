"""The scan for real: nmap against a two-host lab fleet, per profile, in two phases and in
the single pass a fleet this small gets by default; a real nmap killed mid-scan; and the
CLI's --dry-run and --nmap-xml.

Own lab: bridge fa-ext0, 10.99.110.0/24, state in /run/fleetaudit-ext-test. Every target
is checked to route through fa-ext0 before nmap runs; nothing else is ever scanned.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetaudit import addresses, scan
from fleetaudit.inventory import load_inventory
from fleetaudit.lab.state import LabInfo
from fleetaudit.models import ExternalHost, Proto, VerdictKind
from fleetaudit.orchestrator import AuditOptions, run_audit
from fleetaudit.scan.command import make_settings
from fleetaudit.scan.engine import NO_LISTING
from fleetaudit.transport import SSHOptions
from tests.integration.labs import running_lab

pytestmark = pytest.mark.lab

STATE_DIR = Path("/run/fleetaudit-ext-test")
BRIDGE = "fa-ext0"
SUBNET = "10.99.110.0/24"
NOBODY = "10.99.110.250"  # on the lab bridge, but no host answers there
HIGH_PORT = 40123  # outside nmap's top 1000: only `standard` and `full` see it
UDP_PORT = 161  # in nmap's top 100 UDP ports
# Listed inside, outside anything `quick` scans: the host's own listing must bring them in.
LISTED_TCP, LISTED_UDP = 47123, 47124
PYTHON = "/usr/bin/python3.11"
NMAP = shutil.which("nmap") or "nmap"

# Answers an SNMPv1 GetRequest with the same message as a GetResponse (PDU tag 0xa0 ->
# 0xa2): enough for nmap's SNMP probe to name it, in well under a second.
SNMP_LIKE = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    f"s.bind(('0.0.0.0', {UDP_PORT}))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(4096)\n"
    "    s.sendto(data.replace(b'\\xa0', b'\\xa2', 1), peer)\n"
)


# A second "sshd" on a high port (its banner is all nmap's NULL probe needs) and a UDP
# service answering every datagram, as the new user had.
SSH_LIKE = (
    "import socket\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('0.0.0.0', {LISTED_TCP}))\n"
    "s.listen(16)\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    c.sendall(b'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\\r\\n')\n"
    "    c.close()\n"
)
# A DNS server in a few lines: each query answered with its question and a TXT record,
# which is what BIND or dnsmasq send to version.bind. nmap's light -sV sends that query
# to every UDP port (rarity 1) and names the service "domain" ("unknown banner:
# fleetaudit-lab"); an echo of the datagram it leaves "unknown" (nmap 7.93, checked).
DNS_LIKE = (
    "import socket, struct\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    f"s.bind(('0.0.0.0', {LISTED_UDP}))\n"
    "txt = b'fleetaudit-lab'\n"
    "while True:\n"
    "    data, peer = s.recvfrom(4096)\n"
    "    if len(data) < 12:\n"
    "        continue\n"
    "    qid, flags, count = struct.unpack('!HHH', data[:6])\n"
    "    end = 12\n"
    "    for _ in range(count):\n"
    "        while end < len(data) and data[end]:\n"
    "            end += 1 + data[end]\n"
    "        end += 5\n"
    "    answer = (b'\\xc0\\x0c' + struct.pack('!HHIH', 16, 3, 0, len(txt) + 1)\n"
    "              + bytes([len(txt)]) + txt)\n"
    "    s.sendto(struct.pack('!HHHHHH', qid, 0x8400 | flags & 0x0100, count, 1, 0, 0)\n"
    "             + data[12:end] + answer, peer)\n"
)


def _spawn_in(netns: str, code: str | list[str]) -> subprocess.Popen[bytes]:
    argv = [PYTHON, "-c", code] if isinstance(code, str) else code
    return subprocess.Popen(["ip", "netns", "exec", netns, "env", "-i", *argv],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd="/", start_new_session=True)


def _wait_listening(netns: str, flag: str, port: int) -> None:
    for _ in range(100):
        out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-Hn", flag],
                             capture_output=True, text=True, check=False).stdout
        if f":{port} " in out:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} in {netns}")


@pytest.fixture(scope="module")
def fleet() -> Iterator[LabInfo]:
    """Two lab hosts, plus a web server on a high port of the second and an SNMP-like
    UDP responder on the first; both stopped by PID afterwards."""
    with running_lab(2, state_dir=STATE_DIR, subnet=SUBNET, bridge=BRIDGE) as info:
        yield from _with_services(info)


def _with_services(info: LabInfo) -> Iterator[LabInfo]:
    first, second = info.hosts
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_spawn_in(second.netns, [PYTHON, "-m", "http.server", str(HIGH_PORT),
                                              "--bind", "0.0.0.0"]))
        procs.append(_spawn_in(first.netns, SNMP_LIKE))
        procs.append(_spawn_in(first.netns, SSH_LIKE))
        procs.append(_spawn_in(first.netns, DNS_LIKE))
        _wait_listening(second.netns, "-tl", HIGH_PORT)
        _wait_listening(first.netns, "-ul", UDP_PORT)
        _wait_listening(first.netns, "-tl", LISTED_TCP)
        _wait_listening(first.netns, "-ul", LISTED_UDP)
        for host in info.hosts:
            # Closed UDP ports answer with ICMP, which Linux rate-limits to about one a
            # second per peer: lifted inside our own namespaces only, for a lean UDP test.
            subprocess.run(["ip", "netns", "exec", host.netns, "sysctl", "-qw",
                            "net.ipv4.icmp_ratelimit=0"], check=True)
        yield info
    finally:
        for proc in procs:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


def targets(info: LabInfo) -> list[str]:
    return [h.address for h in info.hosts] + [NOBODY]


def routes(info: LabInfo) -> dict[str, str]:
    return dict.fromkeys(targets(info), BRIDGE)


def plant_port(info: LabInfo, verdict: VerdictKind) -> tuple[str, int]:
    (plant,) = [p for p in info.plants if p.verdict is verdict]
    return info.host(plant.host).address, plant.port


def by_port(host: ExternalHost, proto: Proto = Proto.TCP) -> dict[int, object]:
    return {p.port: p for p in host.ports if p.proto is proto}


def run(info: LabInfo, profile: str, **kwargs) -> scan.FleetScan:
    """Two phases unless told otherwise (3 targets would get a single pass)."""
    kwargs.setdefault("single_pass_max_hosts", 0)
    settings = make_settings(profile, privileged=True, **kwargs)
    return asyncio.run(scan.scan_fleet(targets(info), settings, routes=routes(info)))


def check_common(info: LabInfo, result: scan.FleetScan) -> None:
    """What every profile must get right on this fleet."""
    first, second = (result.hosts[h.address] for h in info.hosts)
    for host in (first, second):
        assert host.status == "up" and host.errors == [], host.errors
        ssh = by_port(host)[22]
        assert (ssh.service, ssh.product, ssh.method) == ("ssh", "OpenSSH", "probed")
        assert host.started_at is not None and host.finished_at is not None
    web_host, web_port = plant_port(info, VerdictKind.UNOWNED_BINARY)
    web = by_port(result.hosts[web_host])[web_port]
    assert (web.state, web.service, web.product) == ("open", "http", "SimpleHTTPServer")
    alt_host, alt_port = plant_port(info, VerdictKind.NONSTANDARD_PORT)
    alt = by_port(result.hosts[alt_host])[alt_port]
    assert (alt.service, alt.default_service) == ("ssh", "priv-mail")
    dropped_host, dropped_port = plant_port(info, VerdictKind.FILTERED)
    dropped = by_port(result.hosts[dropped_host])[dropped_port]
    assert (dropped.state, dropped.reason, dropped.method) == ("filtered", "no-response", "table")
    nobody = result.hosts[NOBODY]
    assert (nobody.status, nobody.reason, nobody.ports) == ("down", "no-response", [])
    assert result.failed == {} and result.run.complete, result.run.errors
    for command in result.run.commands:
        argv = command.split()
        assert "-n" in argv and "-Pn" in argv
        addresses = {a for a in argv if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a)}
        assert addresses and addresses <= set(targets(info)), command
    names = [name for name, _ in result.evidence]
    assert names == [n.removesuffix(".xml") for n in result.run.evidence]
    for _, xml in result.evidence:
        assert xml.rstrip().endswith(b"</nmaprun>")


@pytest.mark.timeout(120)
def test_quick_profile(fleet):
    result = run(fleet, "quick")
    check_common(fleet, result)
    discovery, *versions = result.run.commands
    assert "--top-ports 1000" in discovery and "-sV" not in discovery.split()
    assert versions and all("-sV --version-light" in v for v in versions)
    # -sV ran only on what was open: never on the filtered port, never on the down host
    _, dropped_port = plant_port(fleet, VerdictKind.FILTERED)
    for version in versions:
        asked = scan.parse_port_spec(version.split(" -p ")[1].split()[0])[Proto.TCP]
        assert not any(a <= dropped_port <= b for a, b in asked), version
        assert NOBODY not in version.split()
    second = result.hosts[fleet.hosts[1].address]
    assert HIGH_PORT not in by_port(second) and not second.was_scanned(Proto.TCP, HIGH_PORT)
    assert result.run.scan_type == "syn" and result.run.privileged


@pytest.mark.timeout(120)
def test_quick_profile_in_a_single_pass(fleet):
    result = run(fleet, "quick", single_pass_max_hosts=scan.command.SINGLE_PASS_MAX_HOSTS)
    check_common(fleet, result)
    (command,) = result.run.commands
    assert "-sV --version-light --top-ports 1000" in command
    assert result.run.evidence == ["tcp-scan-01.xml"]
    second = result.hosts[fleet.hosts[1].address]
    assert HIGH_PORT not in by_port(second) and not second.was_scanned(Proto.TCP, HIGH_PORT)


@pytest.mark.timeout(240)
def test_full_profile_in_a_single_pass(fleet):
    result = run(fleet, "full", single_pass_max_hosts=scan.command.SINGLE_PASS_MAX_HOSTS)
    check_common(fleet, result)
    tcp, udp = result.run.commands
    assert "-p 1-65535 -n -Pn -v -sS -sV" in tcp and "-sU -sV --top-ports 100" in udp
    first = result.hosts[fleet.hosts[0].address]
    snmp = by_port(first, Proto.UDP)[UDP_PORT]
    assert (snmp.state, snmp.service, snmp.method) == ("open", "snmp", "probed")
    high = by_port(result.hosts[fleet.hosts[1].address])[HIGH_PORT]
    assert (high.state, high.service, high.method) == ("open", "http", "probed")


@pytest.mark.timeout(180)
def test_standard_profile_sees_every_tcp_port(fleet):
    result = run(fleet, "standard")
    check_common(fleet, result)
    assert "-p 1-65535" in result.run.commands[0]
    second = result.hosts[fleet.hosts[1].address]
    high = by_port(second)[HIGH_PORT]
    assert (high.state, high.service, high.method) == ("open", "http", "probed")
    assert second.unlisted_state(Proto.TCP) == "closed" and second.was_scanned(Proto.TCP, 65535)


@pytest.mark.timeout(240)
def test_full_profile_adds_udp(fleet):
    result = run(fleet, "full")
    check_common(fleet, result)
    assert result.run.scan_type == "syn,udp"
    assert any("-sU --top-ports 100" in c for c in result.run.commands)
    first = result.hosts[fleet.hosts[0].address]
    snmp = by_port(first, Proto.UDP)[UDP_PORT]
    assert (snmp.state, snmp.reason, snmp.service, snmp.method) == (
        "open", "udp-response", "snmp", "probed")
    assert first.unlisted_state(Proto.UDP) == "closed" and first.was_scanned(Proto.UDP, 53)
    assert first.unlisted_state(Proto.TCP) == "closed"


@pytest.mark.timeout(120)
def test_a_real_nmap_killed_mid_version_scan_costs_only_its_batch(fleet, tmp_path):
    """A wrapper SIGKILLs the real nmap identifying the first host (whose web server keeps
    -sV busy for ~6 s); the second host, in its own batch, is untouched."""
    first, second = (h.address for h in fleet.hosts)
    wrapper = tmp_path / "nmap"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -sV "*" {first} "*|*" {first} "*" -sV "*)\n'
        f'  {NMAP} "$@" & pid=$!; sleep 3; kill -9 $pid; wait $pid; exit 137;;\nesac\n'
        f'exec {NMAP} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    settings = make_settings("quick", privileged=True, batch_size=1)
    result = asyncio.run(scan.scan_fleet([first, second], settings, nmap_path=str(wrapper),
                                         routes={first: BRIDGE, second: BRIDGE}))
    killed, kept = result.hosts[first], result.hosts[second]
    assert by_port(kept)[22].method == "probed" and kept.errors == []
    assert {p.port for p in killed.ports if p.state == "open"} >= {22, 80}
    assert all(p.method != "probed" for p in killed.ports)  # discovery's, not identified
    (error,) = killed.errors
    assert error.startswith("service detection on tcp ") and "did not finish" in error
    assert not result.run.complete and result.failed == {}


@pytest.mark.timeout(120)
def test_a_host_without_its_listing_keeps_the_profile_and_says_so(fleet):
    """Real nmap, listings given: the first host's brings its listed ports in; the
    second's collection failed (None), so its high port stays unscanned and it says why."""
    first, second = fleet.hosts
    settings = make_settings("quick", privileged=True)

    async def go() -> scan.FleetScan:
        loop = asyncio.get_running_loop()
        listings = {a: loop.create_future() for a in (first.address, second.address)}
        listings[first.address].set_result(frozenset({(Proto.TCP, LISTED_TCP)}))
        listings[second.address].set_result(None)
        return await scan.scan_fleet([first.address, second.address], settings,
                                     routes={first.address: BRIDGE, second.address: BRIDGE},
                                     listings=listings)

    result = asyncio.run(go())
    one, two = result.hosts[first.address], result.hosts[second.address]
    assert one.errors == [] and by_port(one)[LISTED_TCP].service == "ssh"
    assert two.errors == [NO_LISTING]
    assert HIGH_PORT not in by_port(two) and not two.was_scanned(Proto.TCP, HIGH_PORT)


# --- the CLI ------------------------------------------------------------------------------


def fleetaudit(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "fleetaudit", *args], capture_output=True,
                          text=True, timeout=300, check=False, env=env)


def _cli_has_scan_options() -> bool:
    return "--nmap-xml" in fleetaudit("audit", "--help").stdout


needs_cli = pytest.mark.skipif(
    not _cli_has_scan_options(),
    reason="cli.py does not have the scan options yet (--profile, --nmap-xml, --dry-run)")


def _tripwire_nmap(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose `nmap` only records that it ran, so a test sees any nmap at all."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "nmap-ran"
    fake = bin_dir / "nmap"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 1\n')
    fake.chmod(0o755)
    return f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", marker


def _sshd_log_sizes(info: LabInfo) -> dict[str, int]:
    logs = {h.name: info.state_dir / "hosts" / h.name / "sshd.log" for h in info.hosts}
    return {name: path.stat().st_size for name, path in logs.items()}


@needs_cli
@pytest.mark.timeout(60)
def test_dry_run_prints_the_commands_and_runs_nothing(fleet, tmp_path):
    path, marker = _tripwire_nmap(tmp_path)
    before = _sshd_log_sizes(fleet)
    out = tmp_path / "out"
    proc = fleetaudit("audit", str(fleet.inventory), "--known-hosts", str(fleet.known_hosts),
                      "--profile", "standard", "--dry-run", "--out", str(out), path=path)
    assert proc.returncode == 0, proc.stderr
    commands = [line for line in proc.stdout.splitlines() if not line.startswith("#")]
    addresses = " ".join(h.address for h in fleet.hosts)
    # Two hosts, whose listings will add ports: discovery exactly, then the version
    # phase as a template (its ports are what discovery and the listings find).
    assert commands == [f"nmap -oX - {addresses} -p 1-65535 -n -Pn -v -sS "
                        f"--min-hostgroup {len(fleet.hosts)}",
                        "nmap -oX - <hosts> -p <their-open-and-listed-ports> -n -Pn -sS -sV "
                        "--min-hostgroup <N> --min-parallelism <P> --host-timeout 10m"]
    assert not marker.exists(), marker.read_text()  # no nmap ran, not even --version
    assert not out.exists()
    time.sleep(0.5)
    assert _sshd_log_sizes(fleet) == before  # no SSH connection was made


@needs_cli
@pytest.mark.timeout(60)
def test_dry_run_checks_the_options_as_a_run_would(fleet):
    proc = fleetaudit("audit", str(fleet.inventory), "--ports", "T:22,U:99999", "--dry-run")
    assert proc.returncode == 2 and "bad port range 'U:99999'" in proc.stderr


@needs_cli
@pytest.mark.timeout(180)
def test_nmap_xml_is_matched_to_the_inventory_by_address(fleet, tmp_path):
    """A report made elsewhere covering the first host and an address outside the
    inventory; the second host is not in it."""
    first, second = fleet.hosts
    for address in (first.address, NOBODY):
        scan.check_route(address, BRIDGE)
    report = tmp_path / "elsewhere.xml"
    subprocess.run([NMAP, "-oX", str(report), "-n", "-Pn", "-v", "-sS", "-sV", "-p",
                    "22,24,80", first.address, NOBODY], check=True, capture_output=True)
    path, marker = _tripwire_nmap(tmp_path)
    out = tmp_path / "out"
    proc = fleetaudit("audit", str(fleet.inventory), "--known-hosts", str(fleet.known_hosts),
                      "--nmap-xml", str(report), "--out", str(out), path=path)
    assert proc.returncode == 3, proc.stderr  # the second host is not fully audited
    assert not marker.exists()  # nothing was scanned
    assert f"1 host in the nmap XML not in the inventory, ignored: {NOBODY}" \
        in proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["scan"]["source"] == "import"
    assert results["scan"]["ignored_hosts"] == [NOBODY]
    hosts = {h["name"]: h for h in results["hosts"]}
    one = hosts[first.name]
    assert one["status"] == "ok", one["errors"]
    ports = {(p["proto"], p["port"]): p for p in one["ports"]}
    assert ports[("tcp", 22)]["external"]["product"] == "OpenSSH"
    assert ports[("tcp", 80)]["external"]["service"] == "http"
    two = hosts[second.name]
    assert two["status"] == "scan_failed"
    assert {"stage": "scan",
            "message": "not in the supplied nmap XML (elsewhere.xml)"} in two["errors"]
    assert two["internal"] is not None  # the SSH side still ran
    evidence = out / "nmap" / "import-01-elsewhere.xml"
    assert evidence.read_bytes() == report.read_bytes()


# --- through the orchestrator, as `fleetaudit audit` runs it ---------------------------------


@pytest.mark.timeout(180)
def test_audit_scans_while_collecting_and_keeps_each_processs_xml(fleet):
    inventory = load_inventory(fleet.inventory)
    options = AuditOptions(ssh=SSHOptions(known_hosts=fleet.known_hosts), profile="quick")
    outcome = asyncio.run(run_audit(inventory, options))
    results = outcome.results
    assert results.scan is not None and results.scan.profile == "quick"
    assert results.scan.hosts == []  # each host's view is on the host
    assert [f"{name}.xml" for name, _ in outcome.nmap_xml_files] == results.scan.evidence
    # two hosts with listings: two phases (a single pass would need a second pass for
    # the listed ports), the listed TCP ports joining the version runs; UDP as root
    assert results.scan.evidence[0] == "tcp-discovery-01.xml"
    assert not any("-scan-" in e for e in results.scan.evidence)
    assert any(e.startswith("udp-") for e in results.scan.evidence)
    for host in results.hosts:
        assert host.status.value == "ok", host.errors
        assert host.external is not None and host.internal is not None
        ssh = next(p for p in host.ports if p.proto is Proto.TCP and p.port == 22)
        assert ssh.external is not None and ssh.external.method == "probed"
    dropped_host, dropped_port = plant_port(fleet, VerdictKind.FILTERED)
    [dropped] = [p for h in results.hosts if h.address == dropped_host for p in h.ports
                 if p.port == dropped_port]
    assert dropped.external is not None and dropped.external.state == "filtered"


@pytest.mark.timeout(180)
def test_every_routable_listener_is_probed_under_quick(fleet):
    """Issue 12: ports the hosts list inside and `quick` does not scan (47123/tcp, 40123/tcp,
    47124/udp, 161/udp) are identified from outside by service name, each only on the
    host that listed it; no routable listener is left as "not in the scan's port list"."""
    inventory = load_inventory(fleet.inventory)
    options = AuditOptions(ssh=SSHOptions(known_hosts=fleet.known_hosts), profile="quick")
    results = asyncio.run(run_audit(inventory, options)).results
    first, second = (next(h for h in results.hosts if h.address == lab.address)
                     for lab in fleet.hosts)
    for host in results.hosts:
        assert host.status.value == "ok", host.errors
        for port in host.ports:
            for verdict in port.verdicts:
                assert "port list" not in verdict.message, (host.name, port.port, verdict)
                if any(not addresses.is_loopback(e.address) for e in port.listeners):
                    assert port.external is not None, (host.name, port.port)

    def port(host, proto, number):
        return next(p for p in host.ports if p.proto is proto and p.port == number)

    ssh = port(first, Proto.TCP, LISTED_TCP)
    assert ssh.external is not None
    assert (ssh.external.state, ssh.external.service, ssh.external.method) == (
        "open", "ssh", "probed")
    assert VerdictKind.UNKNOWN not in {v.kind for v in ssh.verdicts}
    for number, service in ((LISTED_UDP, "domain"), (UDP_PORT, "snmp")):
        udp = port(first, Proto.UDP, number)
        assert udp.external is not None, udp
        assert (udp.external.state, udp.external.service, udp.external.method) == (
            "open", service, "probed"), udp.external
        assert VerdictKind.UNKNOWN not in {v.kind for v in udp.verdicts}, udp.verdicts
    high = port(second, Proto.TCP, HIGH_PORT).external
    assert high is not None and (high.state, high.service) == ("open", "http")
    assert results.scan is not None
    inside = [c for c in results.scan.commands if "-sU" in c or " -v " not in c]
    assert inside, results.scan.commands
    for command in inside:  # exactly the listed ports, on the host that listed them
        argv = command.split()
        assert "-n" in argv and "-sV" in argv
        if "-sU" in argv:
            assert argv[argv.index("-p") + 1] == f"{UDP_PORT},{LISTED_UDP}"
            assert first.address in argv and second.address not in argv
        if str(HIGH_PORT) in argv[argv.index("-p") + 1].split(","):
            assert first.address not in argv
