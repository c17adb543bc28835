"""A listener with a password and a DSN in its argv: no file the audit writes holds them.

The lab's hostile-banner plant (port 2323) runs with `--requirepass SECRET` and
`--dsn=postgres://fleet:SECRET@db.lab.invalid/app` after its port (its script ignores
them), as services put secrets in their command lines. Its own lab, on its own bridge.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetaudit.lab.hosts import (
    HOSTILE_BANNER_PORT,
    LAB_SECRET_DSN_PASSWORD,
    LAB_SECRET_PASSWORD,
)
from fleetaudit.parsers.redact import marker
from tests.integration.labs import running_lab

pytestmark = pytest.mark.lab

STATE_DIR = Path("/run/fleetaudit-redact-test")
BRIDGE = "fa-red0"
SUBNET = "10.99.150.0/24"
SECRETS = (LAB_SECRET_PASSWORD, LAB_SECRET_DSN_PASSWORD)


@pytest.fixture(scope="module")
def fleet():
    with running_lab(1, state_dir=STATE_DIR, subnet=SUBNET, bridge=BRIDGE) as info:
        yield info


def test_secret_argv_reaches_no_output_file(fleet, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    proc = subprocess.run(
        [sys.executable, "-m", "fleetaudit", "audit", str(fleet.inventory),
         "--known-hosts", str(fleet.known_hosts), "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    # The secrets really were in the listener's argv on the host...
    [host] = fleet.hosts
    results = json.loads((out / "results.json").read_text("utf-8"))
    [result] = [h for h in results["hosts"] if h["name"] == host.name]
    [port] = [p for p in result["ports"]
              if p["proto"] == "tcp" and p["port"] == HOSTILE_BANNER_PORT]
    [process] = [ev["process"] for ev in port["listeners"] if ev["process"]]
    pid_argv = Path(f"/proc/{process['pid']}/cmdline").read_bytes().split(b"\0")
    assert LAB_SECRET_PASSWORD.encode() in pid_argv
    # ...and the audit kept the names and positions, with markers for the values.
    cmdline = process["cmdline"]
    at = cmdline.index("--requirepass")
    assert cmdline[at + 1] == marker(LAB_SECRET_PASSWORD)
    assert (f"--dsn=postgres://fleet:{marker(LAB_SECRET_DSN_PASSWORD)}@db.lab.invalid/app"
            in cmdline)
    # Not one written file (every format, the nmap XML, anything else) holds a value,
    # nor does what the command printed.
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"results.json", "index.html", "findings.csv",
                                       "junit.xml", "summary.md", "findings.sarif"}
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} in {path}"
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr
    # A re-rendered report (fleetaudit report) holds none either.
    again = tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "fleetaudit", "report", str(out / "results.json"),
         "--format", "all", "--out", str(again)],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    for path in (p for p in again.rglob("*") if p.is_file()):
        for secret in SECRETS:
            assert secret.encode() not in path.read_bytes(), f"{secret} in {path}"
