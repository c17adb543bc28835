"""The controller alone at fleet scale (issue 13): thousands of simulated hosts, no network.

    .venv/bin/python benchmarks/sim_bench.py [--hosts 1000,5000] [--concurrency 50]
        [--nmap-fixture sv-syn.xml] [--latency 0] [--keep DIR]

Every host is a `fleetaudit.testing.fakehost.FakeHost` answering the collection's round
scripts in-process from a real capture (tests/fixtures/session/local_root.json); its
address (10.99.x.y) is never contacted and nothing is scanned. The external view comes the
way `--nmap-xml` brings it: one nmap XML in which a real captured host entry
(tests/fixtures/nmap/NAME, default sv-syn.xml: ssh and http open) is repeated once per
host address, so the import, the final round (its open ports are not the capture's
listeners: each host gets a bind-probe round) and the reconciliation all have work.

Each size runs in its own process (peak RSS only grows): the real `run_audit` with the
fake fleet's `connect` and the default (baseline) policy, then every report format the
CLI writes, through the CLI's own `stage_report` and `commit`. Prints per size: seconds
for the audit (collection + reconcile + judge) and for the reports, hosts per second,
CPU seconds, peak RSS (VmHWM) and RSS per host above the process's baseline, and the
machine and its load. `--latency S` delays each round's answer by S seconds (0: none).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "tests" / "fixtures" / "session" / "local_root.json"
NMAP_DIR = ROOT / "tests" / "fixtures" / "nmap"
_HOST = re.compile(rb"<host[ >].*?</host>\n?", re.DOTALL)
_ADDR = re.compile(rb'<address addr="[^"]*" addrtype="ipv4"/>')


def status_kib(field: str) -> int:
    """A `/proc/self/status` figure (VmHWM: peak RSS; VmRSS: now), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def addresses(count: int) -> list[str]:
    """10.99.(10+i//250).(1+i%250): never contacted, only matched to the XML."""
    if count > 240 * 250:
        raise SystemExit("at most 60,000 simulated hosts")
    return [f"10.99.{10 + i // 250}.{1 + i % 250}" for i in range(count)]


def fleet_xml(fixture: Path, addrs: list[str]) -> bytes:
    """The fixture's report with its (single) host entry repeated, once per address."""
    data = fixture.read_bytes()
    hosts = _HOST.findall(data)
    if len(hosts) != 1 or len(_ADDR.findall(hosts[0])) != 1:
        raise SystemExit(f"{fixture.name}: need one host entry with one IPv4 address")
    [entry] = hosts
    start = data.index(entry)
    body = b"".join(_ADDR.sub(f'<address addr="{a}" addrtype="ipv4"/>'.encode(), entry)
                    for a in addrs)
    tail = data[start + len(entry):]
    tail = re.sub(rb'<hosts up="\d+" down="0" total="\d+"/>',
                  f'<hosts up="{len(addrs)}" down="0" total="{len(addrs)}"/>'.encode(), tail)
    return data[:start] + body + tail


def run_one(count: int, args: argparse.Namespace) -> dict[str, object]:
    """One size, in this process: audit, then render; the figures as a dict."""
    from fleetaudit import interrupt
    from fleetaudit.models import Inventory, InventoryHost
    from fleetaudit.orchestrator import AuditOptions, run_audit
    from fleetaudit.policy import baseline_policy
    from fleetaudit.report.formats import Format
    from fleetaudit.report.write import stage_report
    from fleetaudit.testing.fakehost import Capture, FakeFleet, FakeHost
    from fleetaudit.transport import HostKeyPolicy, SSHOptions

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fa-sim-"))
    work.mkdir(parents=True, exist_ok=True)
    addrs = addresses(count)
    names = [f"sim{i:05d}" for i in range(count)]
    xml = work / "fleet.xml"
    xml.write_bytes(fleet_xml(NMAP_DIR / args.nmap_fixture, addrs))
    capture = Capture.load(CAPTURE)  # one capture, shared: it is read-only
    fleet = FakeFleet({n: FakeHost(capture, latency=args.latency, record=False)
                       for n in names})
    inventory = Inventory(source="sim", hosts=[
        InventoryHost(name=n, address=a, groups=[f"rack{i // 100:03d}"])
        for i, (n, a) in enumerate(zip(names, addrs, strict=True))])
    options = AuditOptions(
        nmap_xml=(xml,), concurrency=args.concurrency,
        ssh=SSHOptions(host_key_policy=HostKeyPolicy.OFF, ssh_config=Path("/dev/null")))
    policy = baseline_policy()
    baseline_kib = status_kib("VmRSS")

    cpu0, wall0 = time.process_time(), time.perf_counter()
    # As the CLI runs it: interrupt.run, whose own SIGINT handler also keeps asyncio.run
    # from swapping in its partial(main_task) and then repr-ing it, finished, on the way
    # out (3.11's signal.getsignal formats a ValueError with it: a full repr of the whole
    # AuditOutcome, twice; 2.3 s of 1,000 hosts' 20 under cProfile).
    outcome = interrupt.run(run_audit(inventory, options, connect=fleet.connect,
                                      policy=policy))
    cpu1, wall1 = time.process_time(), time.perf_counter()
    audit_hwm = status_kib("VmHWM")
    staged = stage_report(outcome.results, work / "report", tuple(Format),
                          evidence=outcome.nmap_xml_files)
    try:
        staged.commit()
    finally:
        staged.discard()
    cpu2, wall2 = time.process_time(), time.perf_counter()
    sizes = {p.name: p.stat().st_size for p in (work / "report").iterdir() if p.is_file()}
    hosts = outcome.results.hosts
    unanswered = Counter(c[:40] + "..." for h in fleet.hosts.values()
                         for c in h.unanswered)
    return {
        "hosts": count,
        "audit_s": wall1 - wall0,
        "audit_cpu_s": cpu1 - cpu0,
        "render_s": wall2 - wall1,
        "render_cpu_s": cpu2 - cpu1,
        "baseline_mib": baseline_kib / 1024,
        "audit_peak_mib": audit_hwm / 1024,
        "peak_mib": status_kib("VmHWM") / 1024,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "statuses": dict(Counter(h.status.value for h in hosts)),
        "findings": sum(len(h.findings) for h in hosts),
        "ports": sum(len(h.ports) for h in hosts),
        "unanswered": dict(unanswered),
        "report_mib": {k: round(v / 2**20, 1) for k, v in sorted(sizes.items())},
        "phases": phase_spans(outcome.results.timings),
        "work": str(work),
    }


def phase_spans(timings: list[Any]) -> dict[str, float]:
    """Each phase of results.json's run record, first start to last end, in seconds."""
    spans: dict[str, tuple[float, float]] = {}
    for t in timings:
        start, end = spans.get(t.phase, (t.start, t.end))
        spans[t.phase] = (min(start, t.start), max(end, t.end))
    return {phase: round(end - start, 2) for phase, (start, end) in spans.items()}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = status_kib_total()
    return (f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {mem / 2**20:.0f} GiB, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def status_kib_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1000,5000", help="sizes, comma-separated")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="hosts collected at once (the CLI's default: 50)")
    parser.add_argument("--nmap-fixture", default="sv-syn.xml",
                        help="tests/fixtures/nmap file whose host entry every host gets")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds each round's answer is delayed (a link's round trip)")
    parser.add_argument("--keep", metavar="DIR", help="write the XML and reports here")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size
    args = parser.parse_args()

    if args.one is not None:
        from fleetaudit import interrupt
        interrupt.install()
        print(json.dumps(run_one(args.one, args)))
        return

    print(f"machine: {machine()}")
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    for count in (int(c) for c in args.hosts.split(",")):
        child = [sys.executable, __file__, "--one", str(count),
                 "--concurrency", str(args.concurrency), "--nmap-fixture", args.nmap_fixture,
                 "--latency", str(args.latency)]
        if args.keep:
            child += ["--keep", str(Path(args.keep) / str(count))]
        done = subprocess.run(child, check=True, capture_output=True, text=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        per_host = (row["peak_mib"] - row["baseline_mib"]) * 1024 / count
        print(f"{count:>6} hosts: audit {row['audit_s']:6.1f} s (cpu {row['audit_cpu_s']:.1f}), "
              f"reports {row['render_s']:5.1f} s (cpu {row['render_cpu_s']:.1f}), "
              f"{count / row['audit_s']:6.0f} hosts/s audited, "
              f"{count / (row['audit_s'] + row['render_s']):6.0f} hosts/s with reports; "
              f"peak RSS {row['peak_mib']:.0f} MiB (audit {row['audit_peak_mib']:.0f}, "
              f"baseline {row['baseline_mib']:.0f}), {per_host:.1f} KiB/host above baseline")
        print(f"        phases (s, overlapping) {row['phases']}")
        print(f"        statuses {row['statuses']}, {row['ports']} port verdict rows, "
              f"{row['findings']} findings; unanswered {row['unanswered'] or 'none'}; "
              f"reports MiB {row['report_mib']}")
        if not args.keep:
            subprocess.run(["rm", "-rf", "--", str(row["work"])], check=True)
    if len(rows) > 1:
        # Linear growth: each added host costs what the hosts before it did. A fixed cost
        # (the template engine, the first render) makes small sizes look dearer per host.
        for before, after in itertools.pairwise(rows):
            added = int(after["hosts"]) - int(before["hosts"])
            marginal = (after["peak_mib"] - before["peak_mib"]) * 1024 / added
            audit = (after["audit_peak_mib"] - before["audit_peak_mib"]) * 1024 / added
            per_host = (after["peak_mib"] - after["baseline_mib"]) * 1024 / int(after["hosts"])
            print(f"memory from {before['hosts']} to {after['hosts']} hosts: "
                  f"{marginal:.1f} KiB of peak RSS per added host ({audit:.1f} in the audit), "
                  f"against {per_host:.1f} KiB per host above baseline at {after['hosts']}")
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
