"""The pure core must stay pure: no network, subprocess or CLI imports, even indirectly."""

import json
import subprocess
import sys

import pytest

PURE = ["fleetaudit.models", "fleetaudit.errors", "fleetaudit.batch", "fleetaudit.inventory",
        "fleetaudit.probes", "fleetaudit.reconcile", "fleetaudit.report", "fleetaudit.policy",
        "fleetaudit.parsers.ss", "fleetaudit.parsers.proc", "fleetaudit.parsers.packages",
        "fleetaudit.parsers.tools", "fleetaudit.parsers.nmap"]
FORBIDDEN = {"asyncssh", "nmap", "subprocess", "typer", "asyncio.subprocess"}


@pytest.mark.parametrize("module", PURE)
def test_module_imports_nothing_impure(module):
    # A fresh interpreter, so modules already imported by other tests do not hide anything.
    code = (f"import sys, json; import {module}; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                           text=True, check=True).stdout))
    assert not loaded & FORBIDDEN, f"{module} pulls in {sorted(loaded & FORBIDDEN)}"
