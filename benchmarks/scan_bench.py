"""fleetaudit's scan against one plain `nmap -n -Pn -sV`, on the same lab hosts and ports.

    sudo .venv/bin/python benchmarks/scan_bench.py [--hosts 50] [--profiles quick,standard]
        [--repeat 1] [--keep-lab] [--variant ...]

Brings up a lab fleet on its own bridge (fa-bench0, 10.99.64.0/24; nothing else is ever
scanned: every address is checked to route through that bridge first), adds services
to it so -sV has real work (an HTTP server on 8080 on every host: the client speaks
first, so nmap waits ~6 s of silence on each; an SMTP-like banner on 2525 on every
third host; an HTTP server on a high port on every fifth host), then times, per
profile, fleetaudit's scan (two phases, or one pass for a handful of hosts) and one plain
nmap over the same targets and ports (for `quick` the plain run also gets
--version-light: the same work). Prints a
table, and checks that both found the same open ports and service names. Numbers
only: nothing here asserts a time.

`--inside` (issue 12) also starts an SSH-like banner on 47123 on every host and hands
scan_fleet each host's own listing (`ss -Htuln` in its namespace, as round 1 would read
it), already in, so the listed ports join the version phase; `--inside-per-host` gives
each host with listed ports its own -sV process instead of one per set of hosts with
equal lists. The plain nmap baseline is left as it is (it knows no listing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from fleetaudit import addresses, lab, scan
from fleetaudit.models import Proto
from fleetaudit.parsers.nmap import parse_nmap_xml

BRIDGE = "fa-bench0"
SUBNET = "10.99.64.0/24"
STATE_DIR = Path("/run/fleetaudit-ext-bench")
PYTHON = "/usr/bin/python3.11"
HIGH_PORT = 40000
LISTED_PORT = 47123  # --inside: on every host, outside the top 1000
SSH_LIKE = (
    "import socket\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('0.0.0.0', {LISTED_PORT}))\n"
    "s.listen(64)\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    c.sendall(b'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\\r\\n')\n"
    "    c.close()\n"
)
SMTP_LIKE = (
    "import socketserver\n"
    "class H(socketserver.BaseRequestHandler):\n"
    "    def handle(self):\n"
    "        self.request.sendall(b'220 bench.lab ESMTP Postfix\\r\\n')\n"
    "        self.request.recv(1024)\n"
    "socketserver.ThreadingTCPServer.allow_reuse_address = True\n"
    "socketserver.ThreadingTCPServer(('0.0.0.0', 2525), H).serve_forever()\n"
)


@contextmanager
def services(info: lab.LabInfo, inside: bool = False) -> Iterator[dict[str, set[int]]]:
    """Start the bench's extra listeners in the lab namespaces; kill them (by PID) after."""
    procs: list[subprocess.Popen[bytes]] = []
    expected: dict[str, set[int]] = {}
    www = Path(tempfile.mkdtemp(prefix="fa-bench-www-"))
    os.chmod(www, 0o755)

    def start(netns: str, argv: list[str]) -> None:
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", netns, "env", "-i", "PATH=/usr/bin:/bin", *argv],
            cwd=www, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))

    try:
        for i, host in enumerate(info.hosts):
            ports = expected.setdefault(host.address, {22})
            start(host.netns, [PYTHON, "-m", "http.server", "8080", "--bind", "0.0.0.0"])
            ports.add(8080)
            if i % 3 == 0:
                start(host.netns, [PYTHON, "-c", SMTP_LIKE])
                ports.add(2525)
            if i % 5 == 0:
                start(host.netns, [PYTHON, "-m", "http.server", str(HIGH_PORT + i),
                                   "--bind", "0.0.0.0"])
                ports.add(HIGH_PORT + i)
            if inside:
                start(host.netns, [PYTHON, "-c", SSH_LIKE])
                ports.add(LISTED_PORT)
        _wait_listening(info, expected)
        yield expected
    finally:
        for proc in procs:
            with suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(www, ignore_errors=True)


def _wait_listening(info: lab.LabInfo, expected: dict[str, set[int]]) -> None:
    deadline = time.monotonic() + 30
    for host in info.hosts:
        want = expected[host.address]
        while True:
            out = subprocess.run(["ip", "netns", "exec", host.netns, "ss", "-Htln"],
                                 capture_output=True, text=True, check=False).stdout
            listening = {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines()
                         if line.split()}
            if want <= listening:
                break
            if time.monotonic() > deadline:
                sys.exit(f"{host.name}: listeners {sorted(want - listening)} did not come up")
            time.sleep(0.1)


def plain_nmap_argv(targets: list[str], settings: scan.ScanSettings) -> list[str]:
    """One nmap doing both phases itself, on the ports the profile selects."""
    argv = ["nmap", "-oX", "-", "-n", "-Pn", "-sV"]
    tcp = [s for s in settings.selections if s.proto is Proto.TCP]
    udp = [s for s in settings.selections if s.proto is Proto.UDP]
    argv.append("-sS" if settings.privileged else "-sT")
    if udp:
        argv.append("-sU")
    if settings.version_light:
        argv.append("--version-light")
    if not udp and tcp and tcp[0].top is not None:
        argv += ["--top-ports", str(tcp[0].top)]
    else:
        parts = []
        for sel in tcp + udp:
            prefix = "T:" if sel.proto is Proto.TCP else "U:"
            if sel.top is not None:
                parts.append(prefix + top_ports(sel.proto, sel.top))
            else:
                parts.append(prefix + ",".join(f"{a}-{b}" for a, b in sel.ranges))
        argv += ["-p", ",".join(parts)]
    return argv + targets


def top_ports(proto: Proto, count: int) -> str:
    """nmap's own top-N list: nmap-services sorted by open frequency, as nmap does."""
    path = scan.nmap_services_path(scan.find_nmap())
    if path is None:
        sys.exit("nmap-services not found")
    ranked: list[tuple[float, int]] = []
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 3 and fields[1].endswith("/" + proto.value):
            ranked.append((float(fields[2]), int(fields[1].split("/")[0])))
    ranked.sort(reverse=True)
    return ",".join(str(p) for p in sorted(p for _, p in ranked[:count]))


def open_services(hosts: dict[str, object]) -> dict[tuple[str, str, int], str | None]:
    found: dict[tuple[str, str, int], str | None] = {}
    for address, host in hosts.items():
        for port in host.ports:  # type: ignore[attr-defined]
            if port.state in scan.plan.VERSION_STATES:
                found[(address, port.proto.value, port.port)] = port.service
    return found


def listings(info: lab.LabInfo) -> dict[str, frozenset[tuple[Proto, int]]]:
    """Each host's non-loopback listeners, from `ss -Htuln` in its namespace."""
    out: dict[str, frozenset[tuple[Proto, int]]] = {}
    for host in info.hosts:
        text = subprocess.run(["ip", "netns", "exec", host.netns, "ss", "-Htuln"],
                              capture_output=True, text=True, check=True).stdout
        found = set()
        for line in text.splitlines():
            fields = line.split()
            address, _, port = fields[4].rpartition(":")
            if addresses.is_loopback(address.strip("[]").split("%")[0]):
                continue
            found.add((Proto.TCP if fields[0] == "tcp" else Proto.UDP, int(port)))
        out[host.address] = frozenset(found)
    return out


def run_fleetaudit(targets: list[str], settings: scan.ScanSettings, routes: dict[str, str],
                   listed: dict[str, frozenset[tuple[Proto, int]]] | None = None,
                   ) -> tuple[float, scan.FleetScan]:
    async def go() -> scan.FleetScan:
        futures = None
        if listed is not None:  # already in: as when round 1 beats discovery
            futures = {}
            for address, ports in listed.items():
                futures[address] = asyncio.get_running_loop().create_future()
                futures[address].set_result(ports)
        return await scan.scan_fleet(targets, settings, routes=routes, listings=futures)

    start = time.monotonic()
    fleet = asyncio.run(go())
    return time.monotonic() - start, fleet


def run_plain(targets: list[str], settings: scan.ScanSettings) -> tuple[float, dict]:
    argv = plain_nmap_argv(targets, settings)
    start = time.monotonic()
    out = subprocess.run(argv, capture_output=True, check=True).stdout
    elapsed = time.monotonic() - start
    run = parse_nmap_xml(out)
    return elapsed, {h.address: h for h in run.hosts}


def nmap_version() -> str:
    major, minor = scan.check_nmap_version(scan.find_nmap())
    return f"{major}.{minor}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--profiles", default="quick,standard")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep-lab", action="store_true", help="leave the lab up afterwards")
    ap.add_argument("--reuse-lab", action="store_true", help="use a lab already up there")
    ap.add_argument("--batch-size", type=int, default=scan.command.DEFAULT_BATCH_SIZE)
    ap.add_argument("--concurrency", type=int, default=scan.command.DEFAULT_CONCURRENCY)
    ap.add_argument("--discovery-concurrency", type=int,
                    default=scan.command.DEFAULT_DISCOVERY_CONCURRENCY)
    ap.add_argument("--union-ports", type=int, default=scan.plan.MAX_UNION_PORTS,
                    help="0: one -sV process per distinct open-port set")
    ap.add_argument("--single-pass-max-hosts", type=int,
                    default=scan.command.SINGLE_PASS_MAX_HOSTS,
                    help="up to this many hosts, one nmap -sV per protocol; 0: always two phases")
    ap.add_argument("--nmap-arg", action="append", default=[],
                    help="extra allowlisted nmap option for fleetaudit's runs")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--inside", action="store_true",
                    help="a listener on 47123 everywhere, and the listings given to the scan")
    ap.add_argument("--inside-per-host", action="store_true",
                    help="with --inside: one -sV process per host with listed ports")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, SYN scan)")

    info = lab.load_info(STATE_DIR) if args.reuse_lab else None
    if info is not None and len(info.hosts) != args.hosts:
        sys.exit(f"the lab in {STATE_DIR} has {len(info.hosts)} hosts, not {args.hosts}")
    if info is None:
        lab.down(STATE_DIR)
        info = lab.up(args.hosts, state_dir=STATE_DIR, subnet=SUBNET, bridge=BRIDGE)
    try:
        targets = [h.address for h in info.hosts]
        routes = {a: BRIDGE for a in targets}
        for address in targets:  # the guard, before the baseline's nmap too
            scan.check_route(address, BRIDGE)
        rows = []
        with services(info, args.inside) as expected:
            listed = listings(info) if args.inside else None
            for profile in args.profiles.split(","):
                settings = scan.make_settings(profile, privileged=True,
                                              extra_args=args.nmap_arg,
                                              batch_size=args.batch_size,
                                              concurrency=args.concurrency,
                                              discovery_concurrency=args.discovery_concurrency,
                                              single_pass_max_hosts=args.single_pass_max_hosts)
                settings = replace(settings, union_ports=args.union_ports,
                                   inside_per_host=args.inside_per_host)
                fa_times, plain_times = [], []
                fleet = plain = None
                for _ in range(args.repeat):
                    elapsed, fleet = run_fleetaudit(targets, settings, routes, listed)
                    fa_times.append(elapsed)
                    if not args.skip_plain:
                        elapsed, plain = run_plain(targets, settings)
                        plain_times.append(elapsed)
                assert fleet is not None
                fa_open = open_services(fleet.hosts)
                want = {(a, "tcp", p) for a, ports in expected.items() for p in ports
                        if profile != "quick" or p < HIGH_PORT or args.inside}
                missing = sorted(want - set(fa_open))
                agree = "-"
                if plain is not None:
                    plain_open = open_services(plain)
                    same = sum(1 for k, v in fa_open.items() if plain_open.get(k) == v)
                    agree = f"{same}/{len(plain_open)}"
                procs = len(fleet.run.commands)
                print(f"{profile}: fleetaudit {[round(t, 2) for t in fa_times]} s, "
                      f"plain nmap {[round(t, 2) for t in plain_times]} s", flush=True)
                rows.append((profile, statistics.median(fa_times),
                             statistics.median(plain_times) if plain_times else None,
                             len(fa_open), agree, procs, missing))
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\n{len(targets)} lab hosts, {platform.node()}, {os.cpu_count()} CPUs, "
              f"{datetime.now(UTC):%Y-%m-%d}, nmap {nmap_version()}, load {load}, "
              f"batch {args.batch_size}, concurrency {args.concurrency} "
              f"(discovery {args.discovery_concurrency}), "
              f"union {args.union_ports}, single pass up to {args.single_pass_max_hosts} hosts, "
              f"extra {args.nmap_arg or '-'}, "
              f"median of {args.repeat}")
        print(f"{'profile':9} {'fleetaudit s':>12} {'plain nmap s':>12} {'speed-up':>8} "
              f"{'open':>5} {'same svc':>9} {'nmap runs':>9}")
        for profile, fa, plain_s, n_open, agree, procs, missing in rows:
            speed = f"{plain_s / fa:.2f}x" if plain_s else "-"
            plain_txt = f"{plain_s:.2f}" if plain_s else "-"
            print(f"{profile:9} {fa:12.2f} {plain_txt:>12} {speed:>8} {n_open:5d} "
                  f"{agree:>9} {procs:9d}")
            if missing:
                print(f"  MISSING open ports: {missing[:10]}")
    finally:
        if not args.keep_lab:
            lab.down(STATE_DIR)


if __name__ == "__main__":
    main()
