"""The embedded default: `fleetaudit audit` with no inventory audits this machine.

nmap on 127.0.0.1 and the collection commands run through a local subprocess, against a
listener this test starts from Debian's own python (a package-owned binary).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

PYTHON = "/usr/bin/python3.11"
PORT = 43080  # 43000-43099: this file's loopback ports

pytestmark = pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")


def fleetaudit(*args: str, user: int | None = None, **kw) -> subprocess.CompletedProcess[str]:
    prefix = ([] if user is None else
              ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"])
    return subprocess.run([*prefix, sys.executable, "-m", "fleetaudit", *args],
                          capture_output=True, text=True, timeout=600, check=False, **kw)


@pytest.fixture
def web_server():
    if not Path(PYTHON).exists():
        pytest.skip(f"{PYTHON} (Debian's python) is not installed")
    proc = subprocess.Popen([PYTHON, "-m", "http.server", str(PORT), "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"PATH": "/usr/bin:/bin"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", PORT)) == 0:
                break
        time.sleep(0.05)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_local_audit_without_inventory(web_server, tmp_path):
    proc = fleetaudit("audit", "--ports", str(PORT), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    [host] = results["hosts"]
    assert host["address"] == "127.0.0.1"
    assert host["status"] == "ok", host["errors"]
    [port] = [p for p in host["ports"] if p["port"] == PORT]
    assert port["external"]["state"] == "open"
    assert port["external"]["service"] == "http"
    [listener] = port["listeners"]
    assert listener["pid"] == web_server.pid
    assert listener["process"]["exe"] == PYTHON
    assert listener["process"]["cmdline"][1:4] == ["-m", "http.server", str(PORT)]
    assert listener["process"]["package"]["name"] == "python3.11-minimal"
    assert [v["kind"] for v in port["verdicts"]] == ["CONSISTENT"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_demo_as_non_root_audits_the_local_machine():
    # pytest's tmp_path lives under a root-only directory: nobody needs its own.
    work = Path(tempfile.mkdtemp(prefix="fa-nonroot-"))
    work.chmod(0o777)
    out = work / "demo"
    try:
        proc = fleetaudit("demo", "--out", str(out), user=65534, cwd=work)
        results = json.loads((out / "results.json").read_text()) if out.exists() else None
    finally:
        shutil.rmtree(work)
    assert "Not root" in proc.stderr
    assert proc.returncode in (0, 3), proc.stderr
    assert results is not None
    assert [h["address"] for h in results["hosts"]] == ["127.0.0.1"]
    assert "-sT" in results["scan"]["command"]
