"""Peak memory of the controller when hosts flood it (issue 11 item 5), with the fake host.

    .venv/bin/python benchmarks/hostile_memory_bench.py [HOSTS] [MiB-per-section] [listings|every]

Each host answers from the real capture tests/fixtures/session/local_root.json, but its
`ss` and /proc/net sections (`listings`, the default) or every section of every round
(`every`: tools, host facts, each listing, each process read, hashes, packages,
integrity, NAT...) print MiB of their real lines over and over (0: no flood). Every host
is collected at once (the default concurrency, 50). Prints the peak RSS of this process,
the machine and its load; one run per process (peak RSS only grows).
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import sys
import time
from pathlib import Path

from fleetaudit.models import Inventory, InventoryHost
from fleetaudit.orchestrator import AuditOptions, run_audit
from fleetaudit.testing.fakehost import FakeFleet, FakeHost, Fault, parse_script
from fleetaudit.transport import HostKeyPolicy, SSHOptions

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "tests" / "fixtures" / "session" / "local_root.json"
NMAP = ROOT / "tests" / "fixtures" / "nmap" / "sv-connect.xml"


def fleet_of(names: list[str], **host: object) -> tuple[FakeFleet, Inventory]:
    fleet = FakeFleet({name: FakeHost.load(CAPTURE, **host) for name in names})
    return fleet, Inventory(source="bench", hosts=[InventoryHost(name=n, address="127.0.0.1")
                                                  for n in names])


def every_section(options: AuditOptions) -> list[str]:
    """The name of each section an audit of the capture runs (those of a group of process
    reads one by one), from one clean audit's scripts."""
    fleet, inventory = fleet_of(["probe"])
    asyncio.run(run_audit(inventory, options, connect=fleet.connect))
    found: dict[str, None] = {}
    for script in fleet.hosts["probe"].scripts:
        for section in parse_script(script):
            found.update(dict.fromkeys([i.name for i in section.inline] or [section.name]))
    return list(found)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    flood = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    which = sys.argv[3] if len(sys.argv) > 3 else "listings"
    options = AuditOptions(nmap_xml=(NMAP,), command_timeout=600.0,
                           ssh=SSHOptions(host_key_policy=HostKeyPolicy.OFF))
    sections = ["ss", "proc_net"] if which == "listings" else every_section(options)
    faults = {} if flood == 0 else {name: Fault.huge(flood * 1024 * 1024)
                                    for name in sections}
    fleet, inventory = fleet_of([f"h{n:03d}" for n in range(count)], faults=faults,
                                record=False)
    started = time.monotonic()
    outcome = asyncio.run(run_audit(inventory, options, connect=fleet.connect))
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    statuses = {h.status.value for h in outcome.results.hosts}
    print(f"hosts={count} flood={flood}MiB/section sections={which}({len(sections)}) "
          f"statuses={sorted(statuses)} "
          f"peak_rss={peak:.0f}MiB time={elapsed:.1f}s")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
