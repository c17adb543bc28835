"""Internal-view collection at fleet scale: fleetaudit against Ansible ad-hoc and an xargs ssh loop.

    .venv/bin/python benchmarks/collect_bench.py [--hosts 200] [--forks 50] [--repeat 1]
                                                 [--skip-ansible] [--keep-venv]

Root only: brings up its own lab (bridge fa-cb0, 10.99.160.0/20, state in
/run/fleetaudit-collect-bench) with the internal-view plants, and takes it down again.

All three gather the same evidence chain as root over SSH: listening sockets, host facts,
and for every listening PID its /proc reads (exe, cmdline, owner, status, stat, cwd,
netns, cgroup, environment names, mapped files), the sha256 of its executable, the
owning package with its version, and the package's checksum of the executable.

- fleetaudit: `collect_internal` over asyncssh, `--forks` hosts at a time, in its rounds
  (each needs the answers of the one before, and spares what they made unnecessary: the
  fd map where ss named the owners, a second hash of one file, dpkg's database load);
- the baselines run the manual method's commands as one shell script per host (one
  round: the most favourable way to run them), with the PID list and package names
  worked out in shell: `ss -tulpnH`, /proc/net with its fd map, the per-PID reads and
  `sha256sum /proc/PID/exe` per PID, `dpkg -S`, `dpkg-query -W` and `dpkg --verify`;
  - Ansible (ansible-core, in its own venv /tmp/fa-bench-venv, never a project
    dependency): `ansible all -f FORKS -m shell` with pipelining;
  - `xargs -P FORKS ssh host sh -s < chain.sh`: OpenSSH client.

Prints hosts per minute of each and the ratios. Traffic goes only to the lab's addresses,
through its bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fleetaudit import lab
from fleetaudit.batch import BatchCommand, build_script
from fleetaudit.collect import CollectOptions, collect_internal
from fleetaudit.inventory import load_inventory
from fleetaudit.models import InternalView, InventoryHost
from fleetaudit.probes import (
    INTERNAL_TOOLS,
    host_facts_probe,
    netstat_probe,
    proc_net_probe,
    ss_probe,
    tools_probe,
)
from fleetaudit.transport import SSHOptions, connect

# The baselines read each PID with its own commands: the tests keep those (collection
# reads a group of PIDs a command), so the repository root goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.process_singles import process_probes

STATE_DIR = Path("/run/fleetaudit-collect-bench")
BRIDGE = "fa-cb0"
SUBNET = "10.99.160.0/20"
VENV = Path("/tmp/fa-bench-venv")  # the benchmark's own: removed after the run
NONCE = "benchbenchbench0"
PLACEHOLDER_PID = 999999999


# --- the one-round shell equivalent for the baselines ------------------------------------


def chain_script() -> str:
    """The manual method as one sh script, for the baselines' single round: the listing,
    the /proc/net tables and fd map, every PID's reads with its own sha256sum, dpkg -S,
    dpkg-query and dpkg --verify, with the PID list and package names worked out in shell.
    The per-PID reads are fleetaudit's probe commands, so both read the same files."""
    round_one = [
        BatchCommand(name="tools", command=tools_probe(INTERNAL_TOOLS).command),
        BatchCommand(name="hostfacts", command=host_facts_probe().command),
        BatchCommand(name="proc_net", command=proc_net_probe().command),
    ]
    script = build_script(round_one, NONCE)
    per_pid = "\n".join(
        f"  {probe.command.replace(str(PLACEHOLDER_PID), '$pid')} </dev/null"
        for probe in process_probes(PLACEHOLDER_PID).probes)
    return script + f"""
# Listening sockets from the first tool the host has; their PIDs, from ss or netstat,
# else by matching /proc/net inodes to every process's fds.
if command -v ss >/dev/null 2>&1; then listing=$({ss_probe().command} 2>/dev/null)
elif command -v netstat >/dev/null 2>&1; then listing=$({netstat_probe().command} 2>/dev/null)
else listing=""; fi
echo "== listing"; printf '%s\\n' "$listing"
pids=$(printf '%s\\n' "$listing" | grep -o -e 'pid=[0-9]*' -e ' [0-9]*/' | tr -dc '0-9\\n' \
       | sort -un)
if [ -z "$listing" ]; then
  inodes=" $(awk 'NR > 1 && ($4 == "0A" || $4 == "07") {{ print $10 }}' \\
      /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null | tr '\\n' ' ') "
  pids=$(ls -l /proc/[0-9]*/fd/ 2>/dev/null | awk -v want="$inodes" '
    /^\\/proc\\// {{ split($0, part, "/"); pid = part[3]; next }}
    / -> socket:\\[/ {{ i = $NF; gsub(/[^0-9]/, "", i); if (index(want, " " i " ")) print pid }}
  ' | sort -un)
fi
for pid in $pids; do
  echo "== process $pid"
{per_pid}
done
# One dpkg -S for every executable, under both spellings on usr-merged systems.
exes=$(for pid in $pids; do readlink /proc/$pid/exe; done | sed 's/ (deleted)$//' | sort -u)
paths=$(for exe in $exes; do echo "$exe"; case $exe in /usr/*) echo "${{exe#/usr}}";; esac; done)
echo "== dpkg -S"
owners=$(dpkg -S $paths 2>&1)
printf '%s\\n' "$owners"
pkgs=$(printf '%s\\n' "$owners" | grep -v '^dpkg-query: ' | cut -d: -f1 | tr ', ' '\\n\\n' \
       | grep . | sort -u)
echo "== versions"; dpkg-query -W -f '${{Package}}\\t${{Version}}\\n' -- $pkgs 2>&1
for pkg in $pkgs; do echo "== verify $pkg"; dpkg --verify "$pkg" 2>&1; done
true
"""


# --- the three collectors ---------------------------------------------------------------


async def _fleetaudit(hosts: list[InventoryHost], known_hosts: Path,
                      forks: int) -> list[InternalView | None]:
    limit = asyncio.Semaphore(forks)
    options = SSHOptions(known_hosts=known_hosts)

    async def one(host: InventoryHost) -> InternalView | None:
        async with limit:
            try:
                async with await connect(host, host.address, options) as transport:
                    return await collect_internal(transport, options=CollectOptions())
            except Exception as exc:
                print(f"  fleetaudit: {host.name}: {exc}", file=sys.stderr)
                return None

    return await asyncio.gather(*(one(h) for h in hosts))


Result = tuple[float, float, int, str]  # seconds, controller CPU seconds, complete, detail


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_fleetaudit(hosts: list[InventoryHost], known_hosts: Path, forks: int) -> Result:
    started, cpu = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    views = asyncio.run(_fleetaudit(hosts, known_hosts, forks))
    elapsed, cpu = time.perf_counter() - started, _cpu(resource.RUSAGE_SELF) - cpu
    good = [v for v in views if v is not None and v.sockets and v.processes]
    processes = sum(len(v.processes) for v in good)
    verified = sum(1 for v in good for p in v.processes if p.integrity is not None)
    hashed = sum(1 for v in good for p in v.processes if p.sha256)
    return elapsed, cpu, len(good), (f"{processes} processes, {hashed} hashed, "
                                     f"{verified} integrity-checked")


def _ssh_options(info: lab.LabInfo) -> list[str]:
    return ["-F", "/dev/null", "-i", str(info.client_key), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={info.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "ControlMaster=no", "-o", "ConnectTimeout=30"]


def run_xargs(info: lab.LabInfo, script: Path, work: Path, forks: int) -> Result:
    out = work / "xargs"
    out.mkdir()
    addresses = work / "addresses.txt"
    addresses.write_text("".join(f"{h.address}\n" for h in info.hosts))
    ssh = " ".join(shlex.quote(o) for o in ["ssh", *_ssh_options(info)])
    one = f'{ssh} root@"$0" sh -s < {shlex.quote(str(script))} > {shlex.quote(str(out))}/"$0"'
    started, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    with addresses.open() as stdin:
        subprocess.run(["xargs", "-P", str(forks), "-n", "1", "sh", "-c", one], stdin=stdin,
                       check=False, timeout=1800)
    elapsed, cpu = time.perf_counter() - started, _cpu(resource.RUSAGE_CHILDREN) - cpu
    good = [p for p in out.iterdir() if b"== verify" in p.read_bytes()]
    size = sum(p.stat().st_size for p in out.iterdir())
    return elapsed, cpu, len(good), f"{size // 1024} KiB of output"


def ensure_ansible(keep: bool) -> Path:
    ansible = VENV / "bin" / "ansible"
    if not ansible.exists():
        print(f"installing ansible-core into {VENV} (pip)...", file=sys.stderr)
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "ansible-core"], check=True)
    return ansible


def run_ansible(info: lab.LabInfo, ansible: Path, script: str, work: Path,
                forks: int) -> Result:
    config = work / "ansible.cfg"
    ssh_args = " ".join(_ssh_options(info)[2:])  # the key comes from the inventory
    config.write_text(
        "[defaults]\n"
        f"forks = {forks}\n"
        "host_key_checking = True\n"
        "interpreter_python = /usr/bin/python3.11\n"
        f"local_tmp = {work}/ansible-local\n"
        "[ssh_connection]\n"
        "pipelining = True\n"
        f"ssh_args = {ssh_args}\n")
    env = {"PATH": f"{ansible.parent}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(work),
           "ANSIBLE_CONFIG": str(config), "LC_ALL": "C.UTF-8"}
    output = work / "ansible.out"
    started, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    with output.open("wb") as out:
        subprocess.run([str(ansible), "all", "-i", str(info.inventory), "-m", "shell",
                        "-a", json.dumps({"cmd": script, "executable": "/bin/sh"})],
                       stdout=out, stderr=subprocess.STDOUT, env=env, check=False,
                       timeout=3600)
    elapsed, cpu = time.perf_counter() - started, _cpu(resource.RUSAGE_CHILDREN) - cpu
    text = output.read_text(errors="replace")
    good = text.count("| CHANGED | rc=0")
    return elapsed, cpu, good, f"{output.stat().st_size // 1024} KiB of output"


# --- driver -------------------------------------------------------------------------------


def _best(runs: int, measure: Callable[[], Result]) -> Result:
    results = [measure() for _ in range(runs)]
    return (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results),
            min(r[2] for r in results), results[-1][3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the median counts")
    parser.add_argument("--skip-ansible", action="store_true")
    parser.add_argument("--keep-venv", action="store_true",
                        help=f"leave {VENV} for the next run (default: removed)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (it brings up a lab)", file=sys.stderr)
        return 2
    ansible = None if args.skip_ansible else ensure_ansible(args.keep_venv)
    lab.down(STATE_DIR)
    print(f"lab: {args.hosts} hosts on {BRIDGE} {SUBNET}...", file=sys.stderr)
    started = time.perf_counter()
    info = lab.up(args.hosts, state_dir=STATE_DIR, subnet=SUBNET, bridge=BRIDGE,
                  internal_plants=True)
    print(f"lab up in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory(prefix="fa-collect-bench-") as tmp:
            work = Path(tmp)
            script_text = chain_script()
            script = work / "chain.sh"
            script.write_text(script_text)
            hosts = load_inventory(info.inventory).hosts
            rows: dict[str, Result] = {}
            rows["fleetaudit"] = _best(args.repeat, lambda: run_fleetaudit(
                hosts, info.known_hosts, args.forks))
            rows["xargs -P ssh"] = _best(args.repeat, lambda: _fresh(
                work, "xargs", lambda: run_xargs(info, script, work, args.forks)))
            if ansible is not None:
                rows["ansible ad-hoc"] = _best(args.repeat, lambda: _fresh(
                    work, "ansible.out", lambda: run_ansible(info, ansible, script_text, work,
                                                             args.forks)))
    finally:
        lab.down(STATE_DIR)
        if ansible is not None and not args.keep_venv:
            shutil.rmtree(VENV, ignore_errors=True)
    total = args.hosts
    print(f"\n{total} hosts, {args.forks} at a time, median of {args.repeat} run(s); the lab's "
          "hosts share this machine's cores with the collector")
    print(f"{'collector':<16} {'seconds':>8} {'hosts/min':>10} {'ctl CPU ms/host':>16} "
          f"{'complete':>9}  detail")
    rate, cost = {}, {}
    for name, (elapsed, cpu, good, detail) in rows.items():
        rate[name], cost[name] = total / elapsed * 60, cpu / total * 1000
        print(f"{name:<16} {elapsed:>8.2f} {rate[name]:>10.0f} {cost[name]:>16.1f} "
              f"{good:>5}/{total:<4} {detail}")
    for name in rows:
        if name != "fleetaudit":
            print(f"fleetaudit vs {name}: {rate['fleetaudit'] / rate[name]:.1f}x hosts/min, "
                  f"{cost[name] / cost['fleetaudit']:.1f}x less controller CPU per host")
    return 0


def _fresh(work: Path, name: str, measure: Callable[[], Result]) -> Result:
    """Each repeat writes its output anew."""
    target = work / name
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    return measure()


if __name__ == "__main__":
    sys.exit(main())
