"""The whole audit users run, `fleetaudit audit INVENTORY`, against the manual method and
against each of its parts, in the same run on the same lab, for each fleet size.

    .venv/bin/python benchmarks/audit_bench.py [--hosts 50,200,500] [--forks 50]
        [--repeat 1] [--skip-internal] [--summary FILE] [--keep DIR] [--shared-pids]
        [--sim 1000,5000]

Root only (run it under the lab lock: `flock /tmp/fleetaudit-lab.lock ...`). For each
size it brings up collect_bench's lab (bridge fa-cb0, 10.99.160.0/20, the internal-view
plants; each host in a PID namespace of its own, as real hosts are: its `ss -p` and
/proc show its processes only), times, in this order, each `--repeat` times:

1. manual: one `nmap -n -Pn -sS -sV --version-light --top-ports 1000 --min-hostgroup 64`
   over every address at the same time as `xargs -P FORKS ssh host sh -s < chain.sh`
   (collect_bench's evidence chain: ss, per-PID /proc reads, sha256, dpkg); its XML is
   the SCAN.xml of step 5;
2. nmap alone, the same command; 3. the ssh loop alone;
4. `fleetaudit audit INVENTORY` (the CLI, default quick profile, every report format);
5. collection alone: `fleetaudit audit INVENTORY --nmap-xml SCAN.xml`;
6. `collect_internal` in a child process, collect_bench's in-process collector (unless
   `--skip-internal`), with the part of the CLI's collection-only time it does not cover.

`--sim SIZES` then runs sim_bench.py (the controller alone, simulated hosts, no lab) at
those sizes, so issue 13's figures all come from one command.

Each fleetaudit process is reaped with os.wait4 by a small helper that forked it (forked
from this benchmark, it would start with this benchmark's RSS as its ru_maxrss): its
ru_maxrss (the kernel folds in its reaped children, nmap, when they peaked higher) is
printed beside the Python process's own VmHWM, sampled every 0.2 s. The
machine load is the 1-minute load average when each measurement starts and its highest
value during it, and the share of the machine's CPU time that was busy during it. When
results.json has a `timings` list, it is printed per phase. The lab raises the kernel's
ARP table limits (gc_thresh1..3) for large labs and restores them at `down`.
Traffic goes only to the lab's addresses, each checked to route through its bridge.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
import collect_bench as cb

from fleetaudit import lab
from fleetaudit.lab.state import load_state

ROOT = Path(__file__).resolve().parents[1]
FLEETAUDIT = ROOT / ".venv" / "bin" / "fleetaudit"
NMAP = ["nmap", "-n", "-Pn", "-sS", "-sV", "--version-light", "--top-ports", "1000",
        "--min-hostgroup", "64"]
TIMEOUT = 3600.0  # a run past this is killed: the bench holds the shared lab's lock
# MiB the lab needs per host (sshd, plants, sessions during a run) and a margin for the
# controller, nmap and the ssh loop's 50 clients: a size that does not fit is skipped.
MIB_PER_HOST, MIB_MARGIN = 12, 2048
STARTUP = "CLI startup: fleetaudit inventory --json"


# --- one measured child ------------------------------------------------------------------


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat's first line."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _hwm_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) if found else None


@dataclass
class Watch:
    """The machine while one measurement runs: load average, CPU busy share, and the
    VmHWM of the process whose PID `pid_file` holds (sampled: it only grows, so the last
    sample before the process exits is its peak but for its last 0.2 s)."""

    pid_file: Path | None = None  # where the measured process's PID appears
    load_start: float = 0.0
    load_max: float = 0.0
    busy: float = 0.0
    hwm_kib: int | None = None
    _pid: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _ticks: tuple[int, int] = (0, 0)

    def __enter__(self) -> Watch:
        self.load_start = self.load_max = os.getloadavg()[0]
        self._ticks = _cpu_ticks()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.load_max = max(self.load_max, os.getloadavg()[0])
            if self._pid is None and self.pid_file is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._pid = int(self.pid_file.read_text())
            kib = _hwm_kib(self._pid) if self._pid is not None else None
            if kib is not None:
                self.hwm_kib = max(self.hwm_kib or 0, kib)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        busy, total = _cpu_ticks()
        self.busy = (busy - self._ticks[0]) / max(total - self._ticks[1], 1)
        self.load_max = max(self.load_max, os.getloadavg()[0])


@dataclass
class Measure:
    seconds: float
    load_start: float
    load_max: float
    busy: float
    exit: int | None = None
    rss_kib: int | None = None  # wait4's ru_maxrss: the process, or a reaped child (nmap)
    hwm_kib: int | None = None  # the child process's own VmHWM (sampled)
    detail: str = ""
    timings: list[dict[str, Any]] | None = None
    extra: dict[str, float] = field(default_factory=dict)


def _start(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _reap(child: subprocess.Popen[bytes], timeout: float = TIMEOUT) -> int:
    """Its exit code; past `timeout` its whole process group is killed."""
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        return child.wait()


# A fresh process's ru_maxrss starts at the RSS of the process it was forked from (the
# kernel folds the old memory map's peak in at exec): measured straight from this
# benchmark, every child would report at least the benchmark's own RSS. So the command is
# forked by this small interpreter (-I -S: a few MiB), which reaps it with wait4 and
# writes its PID first, then its ru_maxrss and exit code.
_RUSAGE = """
import os, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
with open(out + ".pid", "w") as f:
    f.write(str(pid))
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    f.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_measured(argv: Sequence[str], log: Path) -> Measure:
    """`argv` run to its end: wall time, load, its ru_maxrss (wait4) and VmHWM."""
    usage = log.with_suffix(".rusage")
    with Watch() as watch:
        started = time.perf_counter()
        helper = _start([sys.executable, "-I", "-S", "-c", _RUSAGE, str(usage), *argv], log)
        watch.pid_file = usage.with_name(usage.name + ".pid")
        _reap(helper)
        elapsed = time.perf_counter() - started
    rss, code = (int(x) for x in usage.read_text().split())
    return Measure(seconds=elapsed, load_start=watch.load_start, load_max=watch.load_max,
                   busy=watch.busy, exit=code, rss_kib=rss, hwm_kib=watch.hwm_kib)


# --- what is measured --------------------------------------------------------------------


def _fleetaudit_argv(info: lab.LabInfo, out: Path, *extra: str) -> list[str]:
    return [str(FLEETAUDIT), "audit", str(info.inventory), "--known-hosts",
            str(info.known_hosts), "--ssh-config", "/dev/null", "--out", str(out), *extra]


def run_fleetaudit(info: lab.LabInfo, out: Path, *extra: str) -> Measure:
    log = out.with_suffix(".log")
    measure = run_measured(_fleetaudit_argv(info, out, *extra), log)
    if measure.exit not in (0, 1, 3):
        raise SystemExit(f"fleetaudit audit exited {measure.exit}: "
                         f"{log.read_text(errors='replace')[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    statuses = Counter(h.get("audit_status", h.get("status")) for h in results["hosts"])
    measure.detail = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    measure.timings = results.get("timings")
    return measure


def _ssh_loop_argv(info: lab.LabInfo, script: Path, out: Path, forks: int) -> list[str]:
    ssh = " ".join(shlex.quote(o) for o in ["ssh", *cb._ssh_options(info)])
    one = (f'{ssh} root@"$0" sh -s < {shlex.quote(str(script))} '
           f'> {shlex.quote(str(out))}/"$0" 2>&1')
    return ["xargs", "-a", str(out.parent / "addresses.txt"), "-P", str(forks), "-n", "1",
            "sh", "-c", one]


def _ssh_loop_detail(out: Path, hosts: int) -> str:
    good = sum(1 for p in out.iterdir() if b"== verify" in p.read_bytes())
    return f"{good}/{hosts} chains complete"


def _nmap_detail(xml: Path) -> str:
    root = ElementTree.parse(xml).getroot()  # nmap's own output, from this run
    hosts = root.findall("host")
    up = sum(1 for h in hosts if h.find("status[@state='up']") is not None)
    ports = sum(1 for h in hosts for p in h.iter("port")
                if p.find("state[@state='open']") is not None)
    return f"{up}/{len(hosts)} hosts up, {ports} open ports"


def run_manual(info: lab.LabInfo, script: Path, work: Path, forks: int, *,
               nmap: bool = True, ssh: bool = True) -> Measure:
    """Both halves at once (the manual method), or one alone; each half's own finish time
    is kept in `extra` (seconds from the start)."""
    out = work / "xargs"
    out.mkdir()
    xml = work / "manual.xml"
    addresses = [h.address for h in info.hosts]
    log = work / "manual.log"
    ends: dict[str, float] = {}
    with Watch() as watch:
        started = time.perf_counter()
        children: dict[str, subprocess.Popen[bytes]] = {}
        if nmap:
            children["nmap"] = _start([*NMAP, "-oX", str(xml), *addresses], log)
        if ssh:
            children["ssh loop"] = _start(_ssh_loop_argv(info, script, out, forks), log)

        def wait(name: str, child: subprocess.Popen[bytes]) -> None:
            _reap(child)
            ends[name] = time.perf_counter() - started

        waiters = [threading.Thread(target=wait, args=item) for item in children.items()]
        for waiter in waiters:
            waiter.start()
        for waiter in waiters:
            waiter.join()
        elapsed = time.perf_counter() - started
    details = []
    if nmap:
        details.append(f"nmap: {_nmap_detail(xml)}")
    if ssh:
        details.append(f"ssh: {_ssh_loop_detail(out, len(addresses))}")
    return Measure(seconds=elapsed, load_start=watch.load_start, load_max=watch.load_max,
                   busy=watch.busy, detail="; ".join(details), extra=ends)


def run_internal(info: lab.LabInfo, work: Path, forks: int) -> Measure:
    """collect_bench's in-process collector in a child process (its RSS is its own): the
    collector's own seconds, and the child's whole life (interpreter, imports, inventory)."""
    report = work / "internal.json"
    measure = run_measured([sys.executable, __file__, "--internal", str(info.inventory),
                            str(info.known_hosts), str(forks), str(report)],
                           work / "internal.log")
    if measure.exit != 0:
        raise SystemExit(f"collect_internal child exited {measure.exit}: "
                         f"{(work / 'internal.log').read_text(errors='replace')[-2000:]}")
    data = json.loads(report.read_text())
    measure.extra = {"process": measure.seconds, "cpu": data["cpu"]}
    measure.seconds = data["seconds"]
    measure.detail = f"{data['good']}/{data['hosts']} complete, {data['detail']}"
    return measure


def internal_child(inventory: str, known_hosts: str, forks: str, report: str) -> int:
    from fleetaudit.inventory import load_inventory

    hosts = load_inventory(Path(inventory)).hosts
    seconds, cpu, good, detail = cb.run_fleetaudit(hosts, Path(known_hosts), int(forks))
    Path(report).write_text(json.dumps({"seconds": seconds, "cpu": cpu, "good": good,
                                        "hosts": len(hosts), "detail": detail}))
    return 0


def run_startup(info: lab.LabInfo, work: Path) -> Measure:
    """The CLI's fixed cost before any host: interpreter, imports, inventory loading."""
    return run_measured([str(FLEETAUDIT), "inventory", str(info.inventory), "--json"],
                        work / "startup.log")


# --- reporting ----------------------------------------------------------------------------


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    nmap = subprocess.run(["nmap", "--version"], capture_output=True, text=True,
                          check=False).stdout.split("\n", 1)[0]
    return (f"{platform.node()}: {model.group(1) if model else '?'}, {os.cpu_count()} CPUs, "
            f"{int(mem.group(1)) / 1024 / 1024 if mem else 0:.1f} GiB, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"{nmap}")


def _code_version() -> str:
    """The commit measured, and which tracked files differed from it (others' work)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                              text=True, check=False).stdout.strip()
    changed = git("diff", "--name-only", "HEAD", "--", "fleetaudit").split()
    more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
    return git("rev-parse", "--short", "HEAD") + (
        f" + uncommitted changes in {', '.join(changed[:8])}{more}" if changed else "")


def _available_mib() -> int:
    found = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return int(found.group(1)) // 1024 if found else 0


def _median(runs: list[Measure]) -> Measure:
    """The run with the median time (a real run: its RSS, load and timings go together)."""
    ordered = sorted(runs, key=lambda m: m.seconds)
    return ordered[(len(ordered) - 1) // 2]


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}"


def _timings(timings: list[dict[str, Any]]) -> list[str]:
    lines = [f"      {'phase':<9} {'name':<28} {'start':>7} {'end':>7} {'took':>7} "
             f"{'hosts':>5} {'median':>7} {'slowest':>7}"]
    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for t in timings:
        hosts = t.get("hosts")
        lines.append(f"      {t.get('phase', '?'):<9} {str(t.get('name', '?'))[:28]:<28} "
                     f"{t['start']:>7.2f} {t['end']:>7.2f} {t['end'] - t['start']:>7.2f} "
                     f"{'-' if hosts is None else hosts:>5} "
                     f"{num(t.get('median')):>7} {num(t.get('slowest')):>7}")
    return lines


def _explain_gap(collect: Measure, internal: Measure, startup: Measure | None) -> list[str]:
    """Where the CLI's collection-only time goes beyond collect_internal's own figure:
    the parts measured separately (startup) or recorded by the run (timings)."""
    gap = collect.seconds - internal.seconds
    agree = abs(gap) <= 0.15 * collect.seconds
    lines = [f"     collect_internal {internal.seconds:.1f} s vs CLI collection only "
             f"{collect.seconds:.1f} s: {'agree (within 15%)' if agree else 'differ'} by "
             f"{gap:+.1f} s. The CLI's wall time, measured:"]
    timings = collect.timings or []
    rounds = [t for t in timings if t.get("phase") == "collect"
              and t.get("name") not in ("waiting for its scan",)]
    end = max((t["end"] for t in timings), default=None)
    if startup is not None:
        lines.append(f"       - {startup.seconds:5.1f} s  process start, imports, inventory "
                     "(`fleetaudit inventory INV --json`, timed alone)")
    if end is not None:
        lines.append(f"       - {end:5.1f} s  run_audit, per results.json timings, of which")
        if rounds:  # in sequence: before the first connect, the rounds, after the last
            first = min(t["start"] for t in rounds)
            last = max(t["end"] for t in rounds)
            lines += [f"           {first:5.1f} s  before the first connection (prepare: "
                      "targets, routes, XML import)",
                      f"           {last - first:5.1f} s  connections and collection rounds "
                      f"(and each host's final round; collect_internal's work: "
                      f"{internal.seconds:.1f} s in its own process)",
                      f"           {end - last:5.1f} s  after the last round (the final "
                      "round's tail, judging)"]
        rest = collect.seconds - end - (startup.seconds if startup else 0.0)
        lines.append(f"       - {rest:5.1f} s  the rest: reports written (six formats), exit")
    else:
        lines.append("       (results.json has no timings: no breakdown)")
    return lines


def report(hosts: int, rows: dict[str, list[Measure]], repeat: int, forks: int,
           lab_seconds: float, load_before: float, neigh: str) -> list[str]:
    med = {name: _median(runs) for name, runs in rows.items()}
    lines = [f"== {hosts} lab hosts (PID namespaces, internal plants), {forks} at a time, "
             f"median of {repeat}; lab up in {lab_seconds:.0f} s; 1-min load before "
             f"{load_before:.2f}; {neigh}",
             f"   {'what':<44} {'seconds':>8} {'hosts/min':>9} {'RSS MiB':>8} {'HWM MiB':>8} "
             f"{'load':>11} {'CPU busy':>8}  detail"]
    for name, m in med.items():
        spread = (f" ({min(r.seconds for r in rows[name]):.1f}-"
                  f"{max(r.seconds for r in rows[name]):.1f})" if repeat > 1 else "")
        halves = "".join(f"; {k} done at {v:.1f} s" for k, v in m.extra.items()
                         if k in ("nmap", "ssh loop") and len(m.extra) > 1)
        lines.append(f"   {name:<44} {m.seconds:>8.1f} {hosts / m.seconds * 60:>9.0f} "
                     f"{_mib(m.rss_kib):>8} {_mib(m.hwm_kib):>8} "
                     f"{m.load_start:>5.1f}->{m.load_max:<5.1f} {m.busy:>7.0%}  "
                     f"{m.detail}{halves}{spread}")
    whole, manual = med.get("fleetaudit audit"), med.get("manual (nmap + ssh loop at once)")
    nmap, ssh = med.get("nmap alone"), med.get("ssh loop alone")
    collect = med.get("fleetaudit audit --nmap-xml (collection only)")
    lines.append("   ratios (> 1: fleetaudit faster; targets of issue 13 in brackets):")
    if whole and manual:
        lines.append(f"     manual / fleetaudit audit: {manual.seconds / whole.seconds:.2f}x "
                     "[>= 2 at 200 hosts]")
    if whole and nmap and ssh:
        slower = max(nmap.seconds, ssh.seconds)
        lines.append(f"     slower of nmap alone, ssh loop alone ({slower:.1f} s) / fleetaudit "
                     f"audit: {slower / whole.seconds:.2f}x [>= 1]")
    if whole and nmap and collect:
        slower = max(nmap.seconds, collect.seconds)
        lines.append(f"     slower of nmap alone, fleetaudit collection alone ({slower:.1f} s) "
                     f"/ fleetaudit audit: {slower / whole.seconds:.2f}x [>= 1]")
    if collect and ssh:
        lines.append(f"     ssh loop alone / fleetaudit collection only: "
                     f"{ssh.seconds / collect.seconds:.2f}x; collection only "
                     f"{hosts / collect.seconds * 60:.0f} hosts/min [>= 650]")
    internal, startup = med.get("collect_internal (in-process collector)"), med.get(STARTUP)
    if collect and internal:
        lines += _explain_gap(collect, internal, startup)
    for name, m in med.items():
        if m.timings:
            lines.append(f"   {name}: results.json timings (seconds from the run's start)")
            lines += _timings(m.timings)
    return lines


# --- driver -------------------------------------------------------------------------------


def bench_size(hosts: int, args: argparse.Namespace) -> list[str]:
    lab.down(cb.STATE_DIR)
    pids = "one shared PID namespace" if args.shared_pids else "PID namespaces"
    print(f"lab: {hosts} hosts on {cb.BRIDGE} {cb.SUBNET} with {pids}...", file=sys.stderr)
    started = time.perf_counter()
    info = lab.up(hosts, state_dir=cb.STATE_DIR, subnet=cb.SUBNET, bridge=cb.BRIDGE,
                  internal_plants=True, pid_namespaces=not args.shared_pids)
    lab_seconds = time.perf_counter() - started
    state = load_state(cb.STATE_DIR)
    neigh = ("ARP gc_thresh1..3 raised to " + "/".join(c.new for c in state.sysctls)
             + " (restored at down)") if state and state.sysctls else "ARP limits unchanged"
    rows: dict[str, list[Measure]] = {}
    try:
        for host in info.hosts:  # the same gate fleetaudit passes
            lab.check_route(host.address, cb.BRIDGE)
        work = Path(tempfile.mkdtemp(prefix=f"fa-audit-bench-{hosts}-", dir=args.keep))
        script = work / "chain.sh"
        script.write_text(cb.chain_script())
        time.sleep(args.settle)
        load_before = os.getloadavg()[0]
        steps: list[tuple[str, Callable[[Path], Measure]]] = [
            ("manual (nmap + ssh loop at once)",
             lambda d: run_manual(info, script, d, args.forks)),
            ("nmap alone", lambda d: run_manual(info, script, d, args.forks, ssh=False)),
            ("ssh loop alone", lambda d: run_manual(info, script, d, args.forks, nmap=False)),
            ("fleetaudit audit", lambda d: run_fleetaudit(info, d / "report")),
            ("fleetaudit audit --nmap-xml (collection only)",
             lambda d: run_fleetaudit(info, d / "report", "--nmap-xml",
                                      str(work / "run-0" / "manual (nmap + ssh loop at once)"
                                          / "manual.xml"))),
        ]
        if not args.skip_internal:
            steps += [("collect_internal (in-process collector)",
                       lambda d: run_internal(info, d, args.forks)),
                      (STARTUP, lambda d: run_startup(info, d))]
        for i in range(args.repeat):
            for name, step in steps:
                where = work / f"run-{i}" / name
                where.mkdir(parents=True)
                (where / "addresses.txt").write_text("".join(f"{h.address}\n"
                                                             for h in info.hosts))
                print(f"  [{hosts} hosts, run {i + 1}/{args.repeat}] {name}...",
                      file=sys.stderr, flush=True)
                measure = step(where)
                print(f"    {measure.seconds:.1f} s  {measure.detail}", file=sys.stderr,
                      flush=True)
                rows.setdefault(name, []).append(measure)
                time.sleep(args.settle)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        lab.down(cb.STATE_DIR)
    lines = report(hosts, rows, args.repeat, args.forks, lab_seconds, load_before, neigh)
    if args.shared_pids:
        lines[0] = lines[0].replace("(PID namespaces,", "(one shared PID namespace,")
    lines[0] += f"; 1-min load after {os.getloadavg()[0]:.2f}"
    return lines


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--internal":
        return internal_child(*sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="50,200",
                        help="fleet sizes, comma-separated (default 50,200)")
    parser.add_argument("--forks", type=int, default=50, help="the ssh loop's xargs -P")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the median counts")
    parser.add_argument("--skip-internal", action="store_true",
                        help="do not time collect_internal beside the CLI")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds of quiet before each measurement")
    parser.add_argument("--summary", type=Path,
                        help="append each size's table to this file as soon as it is done")
    parser.add_argument("--keep", type=Path, help="keep the runs' files (XML, reports) here")
    parser.add_argument("--sim", metavar="SIZES",
                        help="then sim_bench.py at these simulated fleet sizes (1000,5000)")
    parser.add_argument("--shared-pids", action="store_true",
                        help="lab hosts without PID namespaces (every host sees every "
                             "process of the machine), to measure what that costs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (it brings up a lab)", file=sys.stderr)
        return 2
    sizes = [int(x) for x in args.hosts.split(",") if x.strip()]
    header = [f"audit_bench {time.strftime('%Y-%m-%d %H:%M:%S')} (machine's clock), "
              f"code: {_code_version()}",
              f"machine: {machine()}",
              "1-min/5-min/15-min load at start: "
              + " ".join(f"{x:.2f}" for x in os.getloadavg())]

    def emit(lines: list[str]) -> None:
        """Print, and append to --summary as soon as it is known."""
        print("\n".join(lines), flush=True)
        if args.summary:
            with args.summary.open("a") as out:
                out.write("\n".join(lines) + "\n")

    emit(header)
    for hosts in sizes:
        need = hosts * MIB_PER_HOST + MIB_MARGIN
        if _available_mib() < need:
            lines = [f"== {hosts} hosts: skipped, {_available_mib()} MiB available, "
                     f"~{need} MiB needed"]
        else:
            lines = bench_size(hosts, args)
        emit(lines)
    if args.sim:
        sim = subprocess.run([sys.executable, str(Path(__file__).with_name("sim_bench.py")),
                              "--hosts", args.sim], capture_output=True, text=True, check=False)
        lines = ["== the controller alone (sim_bench.py --hosts " + args.sim + ")",
                 *sim.stdout.splitlines()]
        if sim.returncode != 0:
            lines.append(f"sim_bench.py exited {sim.returncode}: {sim.stderr[-2000:]}")
        emit(lines)
    return 0 if not args.sim or sim.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
