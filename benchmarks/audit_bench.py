"""The whole audit users run, `fleetaudit audit INVENTORY`, against the manual method,
in the same run on the same lab.

    .venv/bin/python benchmarks/audit_bench.py [--hosts 50] [--forks 50] [--repeat 1]

Root only: brings up collect_bench's lab (bridge fa-cb0, internal-view plants) and takes
it down again. The manual method is what an admin scripts today, both halves at once:
`nmap -n -Pn -sS -sV --version-light --top-ports 1000 --min-hostgroup 64` over every
address, and `xargs -P FORKS ssh host sh -s < chain.sh` (collect_bench's evidence chain:
ss, per-PID /proc reads, sha256, dpkg). fleetaudit runs its default quick profile, its
inside-steered version phase included, and writes every report format. Prints seconds,
hosts per minute, the ratio, and the machine and load. A fuller benchmark (200 and 500
hosts, collection alone through --nmap-xml, a simulated fleet) is issue 13's.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import collect_bench as cb

from fleetaudit import lab

ROOT = Path(__file__).resolve().parents[1]


def run_fleetaudit(info: lab.LabInfo, out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "fleetaudit"), "audit",
                           str(info.inventory), "--known-hosts", str(info.known_hosts),
                           "--ssh-config", "/dev/null", "--out", str(out)],
                          capture_output=True, text=True, check=False, timeout=1800)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"fleetaudit audit exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, done.returncode


def run_manual(info: lab.LabInfo, script: Path, work: Path, forks: int) -> float:
    out = work / "xargs"
    out.mkdir()
    ssh = " ".join(shlex.quote(o) for o in ["ssh", *cb._ssh_options(info)])
    one = f'{ssh} root@"$0" sh -s < {shlex.quote(str(script))} > {shlex.quote(str(out))}/"$0"'
    addresses = [h.address for h in info.hosts]
    for address in addresses:  # the same gate fleetaudit passes
        lab.check_route(address, cb.BRIDGE)
    started = time.perf_counter()
    nmap = subprocess.Popen(["nmap", "-n", "-Pn", "-sS", "-sV", "--version-light",
                             "--top-ports", "1000", "--min-hostgroup", "64",
                             "-oX", str(work / "manual.xml"), *addresses],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["xargs", "-P", str(forks), "-n", "1", "sh", "-c", one],
                   input="".join(f"{a}\n" for a in addresses), text=True, check=False,
                   timeout=1800)
    nmap.wait(timeout=1800)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (it brings up a lab)", file=sys.stderr)
        return 2
    lab.down(cb.STATE_DIR)
    info = lab.up(args.hosts, state_dir=cb.STATE_DIR, subnet=cb.SUBNET, bridge=cb.BRIDGE,
                  internal_plants=True)
    ours, manual = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="fa-audit-bench-") as tmp:
            work = Path(tmp)
            script = work / "chain.sh"
            script.write_text(cb.chain_script())
            for i in range(args.repeat):
                ours.append(run_fleetaudit(info, work / f"report-{i}")[0])
                run = work / f"manual-{i}"
                run.mkdir()
                manual.append(run_manual(info, script, run, args.forks))
    finally:
        lab.down(cb.STATE_DIR)
    f, m = statistics.median(ours), statistics.median(manual)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.hosts} lab hosts, {platform.node()}, {os.cpu_count()} CPUs, load {load}, "
          f"median of {args.repeat}")
    print(f"fleetaudit audit (quick, all formats)   {f:7.1f} s  "
          f"{args.hosts / f * 60:6.0f} hosts/min")
    print(f"manual: nmap -sV + xargs -P{args.forks} ssh  {m:7.1f} s  "
          f"{args.hosts / m * 60:6.0f} hosts/min")
    print(f"fleetaudit vs manual: {m / f:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
