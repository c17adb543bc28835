"""On the lab: audit, make three changes, audit again; the diff shows exactly those three,
in results.json, the HTML, summary.md and `fleetaudit diff`, and `--fail-on-change` fails.

One lab (3 hosts with the internal plants: pre-fork children, a trojaned ss, a NAT
redirect: a noisy fleet) serves both audits. The changes (fleetaudit.lab.changes): a new
listener on lab-01 8888/tcp; lab-02's 8081/tcp service restarted from a different file
bind-mounted over /usr/bin/python3.11 in its own mount namespace (package and version
unchanged, sha256 not); lab-03's 8000/tcp service stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetaudit.lab import changes
from tests.integration.labs import running_lab

pytestmark = pytest.mark.lab

STATE_DIR = Path("/run/fleetaudit-drift-test")
BRIDGE = "fa-drift0"
SUBNET = "10.99.190.0/24"
# (host, port) -> the kinds of change the diff must show there, and nothing anywhere else.
EXPECTED = {
    ("lab-01", 8888): {("opened", "outside"), ("opened", "inside")},
    ("lab-02", 8081): {("binary_replaced", "inside")},
    ("lab-03", 8000): {("closed", "outside"), ("closed", "inside"),
                       ("finding_resolved", None)},
}


def fleetaudit(*args: str, history: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetaudit", *args], capture_output=True,
                          text=True, timeout=600, check=False,
                          env={**os.environ, "FLEETAUDIT_HISTORY": str(history)})


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    work = tmp_path_factory.mktemp("drift")
    history = work / "history.sqlite"
    with running_lab(3, state_dir=STATE_DIR, subnet=SUBNET, bridge=BRIDGE,
                     internal_plants=True) as info:
        args = ("audit", str(info.inventory), "--known-hosts", str(info.known_hosts),
                "--fail-on-change")
        first = fleetaudit(*args, "--out", str(work / "first"), history=history)
        changes.start_listener(info, "lab-01", 8888)
        _, replaced = changes.replace_binary(info, "lab-02", 8081)
        replaced_sha256 = hashlib.sha256(replaced.read_bytes()).hexdigest()
        changes.stop_service(info, "lab-03", 8000)
        second = fleetaudit(*args, "--out", str(work / "second"), history=history)
    return work, history, first, second, replaced_sha256


def test_the_first_audit_has_nothing_to_compare_with(audits):
    work, _, first, _, _ = audits
    assert first.returncode == 0, first.stderr
    assert "no earlier run" in first.stderr
    results = json.loads((work / "first" / "results.json").read_text())
    assert results["drift"] is None


def test_the_second_audit_shows_exactly_the_three_changes(audits):
    work, _, _, second, replaced_sha256 = audits
    assert second.returncode == 1, second.stderr  # --fail-on-change: something opened
    assert "--fail-on-change" in second.stderr
    drift = json.loads((work / "second" / "results.json").read_text())["drift"]
    first = json.loads((work / "first" / "results.json").read_text())
    assert drift["baseline"]["started_at"].startswith(first["started_at"][:19])
    found: dict[tuple[str, int], set[tuple[str, str | None]]] = {}
    for host in drift["hosts"]:
        assert host["event"] is None and host["changes"] == [], host
        for port in host["ports"]:
            found[(host["host"], port["port"])] = {(c["kind"], c["side"])
                                                   for c in port["changes"]}
    assert found == EXPECTED
    [binary] = [c for h in drift["hosts"] for p in h["ports"] for c in p["changes"]
                if c["kind"] == "binary_replaced"]
    assert binary["severity"] == "high"
    assert binary["after"] == replaced_sha256  # the file bind-mounted over python3.11
    assert [p["run_id"] for p in drift["trend"]][-1] == drift["current"]["run_id"]


def test_the_html_and_the_summary_open_with_the_changes(audits):
    work, _, _, _, _ = audits
    html = (work / "second" / "index.html").read_text()
    section = html[html.index('id="changes"'):html.index('id="summary"')]
    rows = section.count("<tr class=\"k-")
    assert rows == sum(len(kinds) for kinds in EXPECTED.values())
    assert 'href="#host-lab-01-tcp-8888"' in section  # into the evidence chain
    assert 'href="#host-lab-02-tcp-8081"' in section
    assert '<polyline class="trend-line"' in section
    summary = (work / "second" / "summary.md").read_text()
    section = summary[summary.index("## Changed since `"):]
    rows = re.findall(r"^\| `(lab-\d+)` \| (\d+)/tcp \| ([a-z ]+?)(?: \[[a-z ]+\])? \|",
                      section, re.M)
    found: dict[tuple[str, int], set[str]] = {}
    for host, port, words in rows:
        found.setdefault((host, int(port)), set()).add(words.strip())
    assert found == {("lab-01", 8888): {"opened outside", "opened inside"},
                     ("lab-02", 8081): {"binary replaced"},
                     ("lab-03", 8000): {"closed outside", "closed inside", "finding resolved"}}


def test_fleetaudit_diff_says_the_same(audits):
    work, history, _, _, _ = audits
    previous = fleetaudit("diff", "--previous", "--fail-on-change", history=history)
    folders = fleetaudit("diff", str(work / "first"), str(work / "second"), history=history)
    assert previous.returncode == 1, previous.stderr
    assert folders.returncode == 0, folders.stderr
    assert previous.stdout == folders.stdout
    ports = {line.split()[0] for line in previous.stdout.splitlines()
             if line.startswith("    ") and line.split()[0].endswith("/tcp")}
    assert ports == {"8888/tcp", "8081/tcp", "8000/tcp"}
    listed = fleetaudit("history", history=history)
    assert listed.returncode == 0, listed.stderr
    for name, status in (("first", 0), ("second", 1)):
        run_id = run_id_of(work / name / "results.json")
        [line] = [line for line in listed.stdout.splitlines() if run_id in line]
        assert f" {status}  {work / name}" in line  # exit status, then the run's folder


def run_id_of(path: Path) -> str:
    from fleetaudit.drift import run_id
    from fleetaudit.report import results_from_json

    return run_id(results_from_json(path.read_text()))
