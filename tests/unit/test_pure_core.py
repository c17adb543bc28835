"""The pure core must stay pure: no network, subprocess or CLI imports, even indirectly."""

import json
import pkgutil
import subprocess
import sys

import pytest

import fleetaudit.inventory
import fleetaudit.packagers
import fleetaudit.parsers
import fleetaudit.policy
import fleetaudit.report

# Every parser and report module, found rather than listed, so a new one cannot slip by.
PURE = sorted({
    "fleetaudit.models", "fleetaudit.errors", "fleetaudit.batch", "fleetaudit.inventory",
    "fleetaudit.probes", "fleetaudit.reconcile", "fleetaudit.addresses",
    "fleetaudit.scan.command", "fleetaudit.scan.plan", "fleetaudit.services",
    "fleetaudit.exitcodes", "fleetaudit.drift", "fleetaudit.resume", "fleetaudit.timeline",
    "fleetaudit.packagers",
    *(m.name for package in (fleetaudit.parsers, fleetaudit.policy, fleetaudit.report,
                             fleetaudit.inventory, fleetaudit.packagers)
      for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")),
})
FORBIDDEN = {"asyncssh", "nmap", "subprocess", "typer", "asyncio.subprocess"}


def test_the_parsers_are_all_found():
    assert {"fleetaudit.parsers.ss", "fleetaudit.parsers.nmap", "fleetaudit.parsers.proc_net",
            "fleetaudit.report.html", "fleetaudit.policy.rules",
            "fleetaudit.inventory.ini", "fleetaudit.inventory.files"} <= set(PURE)


@pytest.mark.parametrize("module", PURE)
def test_module_imports_nothing_impure(module):
    # A fresh interpreter, so modules already imported by other tests do not hide anything.
    code = (f"import sys, json; import {module}; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                           text=True, check=True).stdout))
    assert not loaded & FORBIDDEN, f"{module} pulls in {sorted(loaded & FORBIDDEN)}"
