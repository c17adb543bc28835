"""The demo fleet's findings are its planted problems, one finding each, in every format.

Written down from the plants (fleetaudit/lab/hosts.py plan_plants and plan_internal, a
4-host lab with internal plants, judged by the built-in baseline), not from the output:

    lab-01  24/tcp    sshd also on 24                     ssh_only_on_22 + NONSTANDARD_PORT
    lab-01  80/tcp    a copied binary outside any package  package_owned + UNOWNED_BINARY
    lab-02  8090/tcp  a binary deleted after it started    package_owned + ..._BINARY
    lab-03  5355/udp  an unowned binary in a hidden /tmp dir  package_owned + ... + SUSPICIOUS
    lab-03  2222/tcp  a NAT redirect: ssh answers on 2222  ssh_only_on_22 + NONSTANDARD_PORT
    lab-04  31337/tcp a listener only bind() finds         HIDDEN_LISTENER
    lab-04  4444/tcp  an ss that hides it                  TOOLS_DISAGREE
    lab-04  4444/tcp  python modified in place serves it   package_owned + MODIFIED_BINARY
    lab-04  8000/tcp  the same modified python, pre-fork   package_owned + MODIFIED_BINARY

Nine problems. The loopback-only listener, the firewalled port (FILTERED is not a
baseline finding), the hostile banner and the secret-bearing argv are not problems.

And the issue's "done when": every routable listener of every collected host has an
outside observation (nmap's word on the port, or its state from a scan that covered it)
or a stated reason, never "not in the scan's port list"; lab-03's 2222 (ssh through a
NAT redirect) is advised on the rule and shows it, not sent to sshd_config.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from fleetaudit import addresses, lab
from fleetaudit.models import VerdictKind
from fleetaudit.policy.apply import REMEDIATION
from fleetaudit.report import results_from_json

ROOT = Path(__file__).resolve().parents[2]
PLANTED = {
    ("lab-01", 24, "tcp", "ssh_only_on_22"), ("lab-01", 80, "tcp", "package_owned"),
    ("lab-02", 8090, "tcp", "package_owned"), ("lab-03", 5355, "udp", "package_owned"),
    ("lab-03", 2222, "tcp", "ssh_only_on_22"), ("lab-04", 31337, "tcp", "HIDDEN_LISTENER"),
    ("lab-04", 4444, "tcp", "TOOLS_DISAGREE"), ("lab-04", 4444, "tcp", "package_owned"),
    ("lab-04", 8000, "tcp", "package_owned"),
}

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]


@pytest.mark.timeout(300)
def test_the_demo_reports_each_planted_problem_once_in_every_format(tmp_path):
    if lab.DEFAULT_STATE_DIR.exists():
        pytest.skip("a default lab is already up; the demo would refuse to build another")
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "fleetaudit", "demo", "--out", str(out)],
                          capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / "index.html")
    assert not lab.DEFAULT_STATE_DIR.exists(), "the demo left its lab up"
    results = json.loads((out / "results.json").read_text())
    found = [(h["name"], f["port"], f["proto"], f["rule"])
             for h in results["hosts"] for f in h["findings"]]
    assert sorted(found) == sorted(PLANTED)
    check_every_routable_listener_is_seen_from_outside(out / "results.json")
    [redirect] = [f for h in results["hosts"] for f in h["findings"]
                  if (h["name"], f["port"]) == ("lab-03", 2222)]
    assert redirect["remediation"] == REMEDIATION[VerdictKind.FORWARDED]
    assert any(e.startswith("nat: ") and "REDIRECT" in e for e in redirect["evidence"])

    count = len(PLANTED)
    sarif = json.loads((out / "findings.sarif").read_text())
    assert len(sarif["runs"][0]["results"]) == count
    junit = ElementTree.parse(out / "junit.xml").getroot()
    assert junit.get("failures") == str(count)
    with (out / "findings.csv").open(newline="") as handle:
        assert sum(1 for row in csv.DictReader(handle) if row["record"] == "finding") == count
    html = (out / "index.html").read_text()
    assert len(re.findall(r'<div class="finding s-active"', html)) == count
    summary = (out / "summary.md").read_text()
    assert f"## Top findings ({count} of {count} active)" in summary


def check_every_routable_listener_is_seen_from_outside(path: Path) -> None:
    results = results_from_json(path.read_text())
    seen = 0
    for host in results.hosts:
        if host.internal is None:
            continue  # not collected: nothing listed to account for
        for port in host.ports:
            if all(addresses.is_loopback(ev.address) for ev in port.listeners):
                continue
            where = (host.name, port.port, port.proto.value)
            reasons = [v.message for v in port.verdicts if v.kind is VerdictKind.UNKNOWN]
            assert not any("port list" in r for r in reasons), (where, reasons)
            observed = port.external is not None or (
                host.external is not None and host.external.was_scanned(port.proto, port.port))
            assert observed or reasons, where
            seen += 1
    assert seen >= len(PLANTED)  # the plants listen on routable addresses, at the least
