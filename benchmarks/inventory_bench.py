"""How long fleetaudit takes to read a 5,000-host inventory, against ansible-inventory.

Times the commands users run, each in a fresh process: `fleetaudit inventory FILE --json`
(load, resolve, print) for the same fleet written as INI and as YAML (with group_vars
beside it), and `ansible-inventory -i FILE --list` for the same files when an
ansible-core venv is given (FA_ANSIBLE_VENV, as tests/fixtures/capture_inventories.sh
makes one). Target (issue 10): under 1 s to load and resolve 5,000 hosts.

Then one group of 99,999 hosts written as one range (`[web]` + `h[1:99999]`), loaded
alone and with `--limit web`: group membership and patterns were quadratic (a list's
`not in`), so this is where a regression shows.

    .venv/bin/python benchmarks/inventory_bench.py [--hosts 5000] [--big-group 99999] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLEETAUDIT = ROOT / ".venv" / "bin" / "fleetaudit"


def write_fleet(folder: Path, hosts: int) -> tuple[Path, Path]:
    """The same fleet twice: 50 groups under 5 parents, per-host address, user and vars."""
    groups = [f"app{g:02d}" for g in range(50)]
    ini, doc = [], {"all": {"vars": {"ansible_user": "audit"}, "children": {}}}
    per_group = hosts // len(groups)
    for index, group in enumerate(groups):
        entries = {}
        ini.append(f"[{group}]")
        for j in range(per_group):
            n = index * per_group + j
            name = f"host{n:05d}.example.net"
            address = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
            ini.append(f"{name} ansible_host={address} rack=r{j % 40} weight={j}")
            entries[name] = {"ansible_host": address, "rack": f"r{j % 40}", "weight": j}
        ini += [f"[{group}:vars]", f"tier={group}", "ansible_port=22"]
        doc["all"]["children"][f"dc{index % 5}"] = doc["all"]["children"].get(
            f"dc{index % 5}", {"children": {}})
        doc["all"]["children"][f"dc{index % 5}"]["children"][group] = {
            "hosts": entries, "vars": {"tier": group, "ansible_port": 22}}
    for dc in range(5):
        ini.append(f"[dc{dc}:children]")
        ini += [g for i, g in enumerate(groups) if i % 5 == dc]
    ini += ["[all:vars]", "ansible_user=audit"]
    for kind in ("ini", "yml"):
        (folder / kind / "group_vars").mkdir(parents=True)
        (folder / kind / "group_vars" / "dc0.yml").write_text("ntp: 10.0.0.1\n")
    ini_path, yml_path = folder / "ini" / "hosts.ini", folder / "yml" / "hosts.yml"
    ini_path.write_text("\n".join(ini) + "\n")
    yml_path.write_text(json.dumps(doc, indent=1))  # JSON is YAML, and as large as YAML
    return ini_path, yml_path


def write_big_group(folder: Path, hosts: int) -> tuple[Path, Path]:
    """One group holding `hosts` hosts, written as a single range, in INI and YAML."""
    (folder / "big").mkdir()
    ini_path, yml_path = folder / "big" / "hosts.ini", folder / "big" / "hosts.yml"
    ini_path.write_text(f"[web]\nh[1:{hosts}]\n")
    yml_path.write_text(f"all:\n  children:\n    web:\n      hosts:\n        h[1:{hosts}]:\n")
    return ini_path, yml_path


# The library call alone, in a fresh process: what an audit spends before its first
# connection. argv: inventory, limit ("" for none).
LOAD = ("import sys,time; from pathlib import Path; t=time.perf_counter(); "
        "from fleetaudit.inventory import load_inventory; "
        "inv=load_inventory(Path(sys.argv[1]), limit=sys.argv[2] or None); "
        "print(f'{time.perf_counter()-t:.3f}', len(inv.hosts))")


def load_seconds(path: Path, limit: str, runs: int, hosts: int) -> str:
    samples = []
    for _ in range(runs):
        seconds, count = subprocess.run([sys.executable, "-c", LOAD, str(path), limit],
                                        capture_output=True, text=True, check=True,
                                        ).stdout.split()
        assert int(count) == hosts, f"{path} --limit {limit!r}: {count} hosts"
        samples.append(float(seconds))
    return f"{statistics.median(samples):7.2f}s"


def timed(command: list[str], runs: int) -> tuple[float, int]:
    times, hosts = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        times.append(time.perf_counter() - start)
        hosts = len(json.loads(done.stdout)["_meta"]["hostvars"])
    return statistics.median(times), hosts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-group", type=int, default=99_999)
    args = parser.parse_args()
    ansible = Path(os.environ.get("FA_ANSIBLE_VENV", "/tmp/fa-ansible-venv")) / "bin"
    with tempfile.TemporaryDirectory() as scratch:
        ini, yml = write_fleet(Path(scratch), args.hosts)
        import yaml
        print(f"{args.hosts} hosts; {platform.node()}, {os.cpu_count()} CPUs, load "
              + " ".join(f"{x:.1f}" for x in os.getloadavg())
              + f"; libyaml: {hasattr(yaml, 'CSafeLoader')}; median of {args.runs}")
        print(f"{'command':<44} {'INI':>8} {'YAML':>8}")
        rows = [("fleetaudit inventory FILE --json", [str(FLEETAUDIT), "inventory"], ["--json"])]
        if (ansible / "ansible-inventory").exists():
            rows.append(("ansible-inventory -i FILE --list",
                         [str(ansible / "ansible-inventory"), "-i"], ["--list"]))
        else:
            print(f"(no ansible-inventory under {ansible}: its row is left out)")
        for label, head, tail in rows:
            cells = []
            for path in (ini, yml):
                seconds, hosts = timed([*head, str(path), *tail], args.runs)
                assert hosts == args.hosts, f"{label} listed {hosts} hosts"
                cells.append(f"{seconds:7.2f}s")
            print(f"{label:<44} {cells[0]:>8} {cells[1]:>8}")
        cells = [load_seconds(path, "", args.runs, args.hosts) for path in (ini, yml)]
        print(f"{'load_inventory() incl. imports':<44} {cells[0]:>8} {cells[1]:>8}")
        big = write_big_group(Path(scratch), args.big_group)
        print(f"\none group of {args.big_group} hosts (`h[1:{args.big_group}]`)")
        for label, limit in (("load_inventory() incl. imports", ""),
                             ("load_inventory(limit='web')", "web")):
            cells = [load_seconds(path, limit, args.runs, args.big_group) for path in big]
            print(f"{label:<44} {cells[0]:>8} {cells[1]:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
