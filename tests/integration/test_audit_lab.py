"""End to end: bring up a lab fleet, run `fleetaudit audit` as a user would, read results.json.

Real sshd, real nmap, real namespaces: the planted cases must come out with their
verdict, PID, executable and package.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from fleetaudit.scan.engine import NO_LISTING
from tests.browser.test_report_browser import ARTIFACTS
from tests.integration.labs import running_lab

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips (or fails in CI) then
    expect = None

pytestmark = pytest.mark.lab

STATE_DIR = Path("/run/fleetaudit-test-audit")
BRIDGE = "fa-it0"
SUBNET = "10.99.100.0/24"
NOBODY = "10.99.100.250"  # on the lab bridge, but no host answers there


@pytest.fixture(scope="module")
def fleet():
    with running_lab(3, state_dir=STATE_DIR, subnet=SUBNET, bridge=BRIDGE,
                     internal_plants=True) as info:
        yield info


def fleetaudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetaudit", *args], capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def audit(fleet, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    proc = fleetaudit("audit", str(fleet.inventory), "--known-hosts", str(fleet.known_hosts),
                      "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    return out, results, proc


def host_result(results, name):
    [host] = [h for h in results["hosts"] if h["name"] == name]
    return host


def port_of(host, proto, port):
    [found] = [p for p in host["ports"] if p["proto"] == proto and p["port"] == port]
    return found


def kinds(port):
    return [v["kind"] for v in port["verdicts"]]


def test_every_lab_host_is_audited(fleet, audit):
    _, results, _ = audit
    assert sorted(h["name"] for h in results["hosts"]) == sorted(h.name for h in fleet.hosts)
    for host in results["hosts"]:
        assert host["status"] == "ok", host["errors"]
        ssh = port_of(host, "tcp", 22)
        assert ssh["external"]["service"] == "ssh"
        assert kinds(ssh) == ["CONSISTENT"]
        [sshd] = [h for h in fleet.hosts if h.name == host["name"]]
        assert {ev["pid"] for ev in ssh["listeners"]} == {sshd.sshd_pid}


def test_each_planted_case_gets_its_verdict_and_evidence(fleet, audit):
    _, results, _ = audit
    assert fleet.plants, "the lab planted nothing"
    for plant in fleet.plants:
        port = port_of(host_result(results, plant.host), plant.proto, plant.port)
        assert plant.verdict in kinds(port), (plant, port["verdicts"])
        if plant.exe is None:
            continue
        processes = [ev["process"] for ev in port["listeners"] if ev["process"]]
        assert processes, plant
        assert processes[0]["exe"] == plant.exe
        package = processes[0]["package"]
        assert (package["name"] if package else None) == plant.package, plant


def test_sshd_on_port_24_is_identified_as_ssh_with_its_chain(fleet, audit):
    _, results, _ = audit
    [plant] = [p for p in fleet.plants if p.port == 24]
    [sshd] = [h for h in fleet.hosts if h.name == plant.host]
    port = port_of(host_result(results, plant.host), "tcp", 24)
    assert port["external"]["service"] == "ssh"
    assert port["external"]["product"] == "OpenSSH"
    assert port["external"]["version"]
    assert port["external"]["default_service"] == "priv-mail"
    # sshd binds 0.0.0.0 and :: separately: two sockets, one process.
    assert {ev["address"] for ev in port["listeners"]} == {"0.0.0.0", "::"}
    for listener in port["listeners"]:
        assert listener["pid"] == sshd.sshd_pid
        assert listener["process"]["exe"] == "/usr/sbin/sshd"
        assert listener["process"]["package"]["name"] == "openssh-server"
        assert listener["process"]["user"] == "root"


def test_firewalled_port_is_filtered_from_outside(fleet, audit):
    _, results, _ = audit
    [plant] = [p for p in fleet.plants if p.verdict == "FILTERED"]
    port = port_of(host_result(results, plant.host), "tcp", plant.port)
    assert port["external"]["state"] == "filtered"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def test_report_shows_the_planted_chain(fleet, audit):
    out, _, proc = audit
    html = (out / "index.html").read_text()
    assert proc.stdout.strip() == str(out / "index.html")
    parser = _Text()
    parser.feed(html)
    text = " ".join(parser.chunks)
    [plant] = [p for p in fleet.plants if p.port == 24]
    [sshd] = [h for h in fleet.hosts if h.name == plant.host]
    for fact in ("NONSTANDARD_PORT", "OpenSSH", "/usr/sbin/sshd", "openssh-server",
                 str(sshd.sshd_pid), "UNOWNED_BINARY", "LOCAL_ONLY", "FILTERED"):
        assert fact in text, fact
    evidence = sorted((out / "nmap").glob("*.xml"))
    assert evidence, "no raw nmap XML kept as evidence"
    for path in [out / "results.json", out / "index.html", out / "nmap", *evidence]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_report_rerenders_from_results(audit, tmp_path):
    out, results, _ = audit
    proc = fleetaudit("report", str(out / "results.json"), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert "NONSTANDARD_PORT" in (tmp_path / "index.html").read_text()


def test_a_failing_host_is_an_outcome_not_the_end_of_the_run(fleet, tmp_path):
    inventory = yaml.safe_load(fleet.inventory.read_text())
    group = inventory["all"]["children"]["lab"]["hosts"]
    first = next(iter(group.values()))
    group["ghost"] = {**first, "ansible_host": NOBODY}
    # A real key the hosts do not authorize (a missing key file is refused
    # before any contact: tests/integration/test_cli_precheck.py).
    stranger = tmp_path / "stranger-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True, capture_output=True)
    group["wrongkey"] = {**next(iter(list(group.values())[1:])),
                         "ansible_ssh_private_key_file": str(stranger)}
    broken = tmp_path / "inventory.yml"
    broken.write_text(yaml.safe_dump(inventory))
    proc = fleetaudit("audit", str(broken), "--known-hosts", str(fleet.known_hosts),
                      "--out", str(tmp_path / "out"), "--connect-timeout", "3")
    assert proc.returncode == 3, proc.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    status = {h["name"]: h["status"] for h in results["hosts"]}
    assert status["ghost"] == "unreachable"
    assert status["wrongkey"] == "auth_failed"
    assert [s for n, s in status.items() if n not in ("ghost", "wrongkey")] == ["ok"] * 3
    ghost = host_result(results, "ghost")
    assert ghost["errors"] and ghost["errors"][0]["stage"] == "connect"
    # Neither gets the missing-listing note (NO_LISTING, proven on the lab in
    # test_scanner_lab.py), each for a reason it states or shows: the ghost did not
    # answer the scan, so nothing was scanned there; wrongkey's address is a collected
    # host's, whose listing widened the scan of that address.
    assert {"stage": "scan", "message": "host down in the scan (no-response)"} \
        in ghost["errors"]
    wrongkey = host_result(results, "wrongkey")
    assert wrongkey["audit_status"] == "unreachable"
    assert [e["stage"] for e in wrongkey["errors"]] == ["connect"]
    assert NO_LISTING not in {e["message"] for h in results["hosts"] for e in h["errors"]}


def test_unknown_host_key_is_refused_under_strict_policy(fleet, audit, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    proc = fleetaudit("audit", str(fleet.inventory), "--known-hosts", str(empty),
                      *scanned_before(audit), "--out", str(tmp_path / "strict"))
    assert proc.returncode == 3
    results = json.loads((tmp_path / "strict" / "results.json").read_text())
    assert {h["status"] for h in results["hosts"]} == {"host_key_rejected"}

    proc = fleetaudit("audit", str(fleet.inventory), "--known-hosts", str(empty),
                      *scanned_before(audit), "--host-key-policy", "accept-new",
                      "--out", str(tmp_path / "tofu"))
    assert proc.returncode == 0, proc.stderr
    recorded = empty.read_text().splitlines()
    assert len(recorded) == len(fleet.hosts)
    # The recorded keys are the lab's real host keys (its file also lists port 24).
    assert set(recorded) <= set(fleet.known_hosts.read_text().splitlines())


def test_broken_inventory_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  hosts:\n    h1:\n      ansible_port: [\n")
    proc = fleetaudit("audit", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "bad.yml" in proc.stderr and "Traceback" not in proc.stderr


POLICY = """\
version: 1
defaults:
  ssh_only_on_22: true
waivers:
  - {rule: ssh_only_on_22, host: lab-01, proto: tcp, port: 24, reason: the lab's plant,
     owner: qa, expires: 2999-12-31}
  - {rule: NONSTANDARD_PORT, host: lab-01, proto: tcp, port: 24, reason: the lab's plant,
     owner: qa, expires: 2999-12-31}
  - {rule: UNOWNED_BINARY, host: lab-01, proto: tcp, port: 80, reason: was a test,
     owner: qa, expires: 2001-01-01}
"""


def findings_of(results, host, rule, port):
    """The findings (problems) on a port that `rule` is one of the rules of."""
    return [f for f in host_result(results, host)["findings"]
            if rule in (f["rules"] or [f["rule"]]) and f["port"] == port]


def scanned_before(audit) -> list[str]:
    """--nmap-xml of every nmap process of the module's audit: a test of SSH or policy
    needs the outside view, not a scan of its own (~10 s each)."""
    out, _, _ = audit
    xml = sorted((out / "nmap").glob("*.xml"))
    assert xml, "the module's audit kept no nmap XML"
    return [arg for path in xml for arg in ("--nmap-xml", str(path))]


def test_policy_waivers_and_fail_on_end_to_end(fleet, audit, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    common = ["audit", str(fleet.inventory), "--known-hosts", str(fleet.known_hosts),
              *scanned_before(audit), "--policy", str(policy)]
    proc = fleetaudit(*common, "--out", str(tmp_path / "plain"))
    assert proc.returncode == 0, proc.stderr  # findings alone do not fail a run
    proc = fleetaudit(*common, "--out", str(tmp_path / "gate"), "--fail-on", "high")
    assert proc.returncode == 1, proc.stderr
    results = json.loads((tmp_path / "gate" / "results.json").read_text())

    # ssh on 24 is one problem, two rules: waived because both rules are
    [ssh24] = findings_of(results, "lab-01", "ssh_only_on_22", 24)
    assert ssh24["rules"] == ["ssh_only_on_22", "NONSTANDARD_PORT"]
    assert ssh24["waiver"]["owner"] == "qa" and not ssh24["waiver_expired"]
    assert findings_of(results, "lab-01", "NONSTANDARD_PORT", 24) == [ssh24]
    [unowned] = findings_of(results, "lab-01", "UNOWNED_BINARY", 80)
    assert unowned["waiver_expired"] and unowned["severity"] == "high"
    assert host_result(results, "lab-01")["compliant"] is False
    fleet_summary = next(c for c in results["compliance"] if c["group"] is None)
    assert fleet_summary["hosts_total"] == len(fleet.hosts)

    bad = tmp_path / "bad-policy.yml"
    bad.write_text("version: 1\ndefaults:\n  max_open_ports: many\n")
    proc = fleetaudit(*common[:-1], str(bad), "--out", str(tmp_path / "bad"))
    assert proc.returncode == 2
    assert "bad-policy.yml:3" in proc.stderr and "Traceback" not in proc.stderr


def test_every_format_is_written_and_rerendered(audit, tmp_path):
    out, _, _ = audit
    names = {"results.json", "index.html", "findings.csv", "junit.xml", "summary.md",
             "findings.sarif"}
    assert names <= {p.name for p in out.iterdir()}
    proc = fleetaudit("report", str(out / "results.json"), "--format", "all",
                      "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for name in names:
        assert (tmp_path / name).read_text() == (out / name).read_text(), name
    sarif = json.loads((tmp_path / "findings.sarif").read_text())
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"]
            for run in sarif["runs"] for result in run["results"]
            for loc in result["locations"]}
    assert "fleet://lab-01/tcp/80" in uris


def test_lab_report_in_a_browser(fleet, audit, browser):
    """The real lab report as a reader uses it: each planted chain one click away."""
    out, results, _ = audit
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url.split("#")[0]))
    url = (out / "index.html").as_uri()
    try:
        [plant] = [p for p in fleet.plants if p.port == 24]
        [sshd] = [h for h in fleet.hosts if h.name == plant.host]
        page.goto(f"{url}#host-{plant.host}-tcp-24")
        port = page.locator(f"#host-{plant.host}-tcp-24")
        expect(port.locator("details.chain")).to_have_attribute("open", "")
        chain = port.locator("ol.chain")
        for fact in ("ssh", "OpenSSH", str(sshd.sshd_pid), "/usr/sbin/sshd", "openssh-server",
                     "NONSTANDARD_PORT"):
            expect(chain).to_contain_text(fact)
        # Filtering by a severity leaves exactly the hosts that have one.
        page.evaluate("() => { location.hash = '#top'; }")
        page.select_option("#f-sev", label="high or worse")
        shown = page.evaluate("""() => Array.from(document.querySelectorAll('#hosts-rows > .hrow'))
                                 .filter(r => !r.hidden).map(r => r.children[0].textContent)""")
        high = {h["name"] for h in results["hosts"]
                if any(v["severity"] in ("critical", "high") for p in h["ports"]
                       for v in p["verdicts"])
                or any(f["severity"] in ("critical", "high") for f in h["findings"])}
        assert set(shown) == high and high
        # The hostile banner and cmdline (a lab plant) are on the page as text, inert.
        page.evaluate("() => { location.hash = '#top'; }")
        page.click("#f-clear")
        page.click("#x-open")
        hostile = page.locator("#host-lab-01-tcp-2323")
        hostile.scroll_into_view_if_needed()
        expect(hostile).to_contain_text("<b>hostile</b>", use_inner_text=True)
        expect(hostile).to_contain_text("window.__pwned=1", use_inner_text=True)
        assert page.evaluate("() => window.__pwned") is None
        assert page.evaluate("() => document.scripts.length") == 1
        assert page.evaluate("() => document.images.length") == 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "lab-report.png"), full_page=False)
        assert errors == []
        assert set(requests) == {url}
    finally:
        context.close()


def test_a_run_killed_midway_keeps_its_hosts_and_resume_audits_only_the_rest(
        fleet, audit, tmp_path):
    """kill -9 while the last host (a port behind an iptables DROP: the connection hangs
    until its timeout) is still connecting: the three finished hosts are in the journal;
    --resume audits the last one alone, and the report has every host once."""
    import os
    import signal
    import time

    from fleetaudit.report.journal import JOURNAL, read_journal

    out_dir, _, _ = audit
    scans = [str(p) for p in sorted((out_dir / "nmap").glob("*.xml"))]
    inventory = yaml.safe_load(fleet.inventory.read_text())
    group = inventory["all"]["children"]["lab"]["hosts"]
    [dropped] = [p for p in fleet.plants if p.verdict == "FILTERED"]
    # Last in the file and by name: with one host at a time, it is the one left running.
    group["zz-ghost"] = {**group[dropped.host], "ansible_port": dropped.port}
    with_ghost = tmp_path / "inventory.yml"
    with_ghost.write_text(yaml.safe_dump(inventory, sort_keys=False))
    run = tmp_path / "run"
    args = ["audit", str(with_ghost), "--known-hosts", str(fleet.known_hosts),
            "--connect-timeout", "5", "--concurrency", "1",
            *[a for scan in scans for a in ("--nmap-xml", scan)]]
    cli = subprocess.Popen([sys.executable, "-m", "fleetaudit", *args, "--out", str(run)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    real = sorted(h.name for h in fleet.hosts)
    try:
        while cli.poll() is None:  # the state under test: every real host done
            if (run / JOURNAL).exists() and sorted(read_journal(run).hosts) == real:
                break
            time.sleep(0.01)  # a poll's pace
        else:
            pytest.fail(f"the run ended before it could be killed: {cli.communicate()}")
        os.kill(cli.pid, signal.SIGKILL)
    finally:
        if cli.poll() is None:
            os.kill(cli.pid, signal.SIGKILL)
        cli.communicate(timeout=60)
    assert cli.returncode == -signal.SIGKILL
    assert not (run / "results.json").exists()
    assert sorted(read_journal(run).hosts) == real  # the ghost was still connecting

    resumed = fleetaudit(*args, "--resume", str(run))
    assert resumed.returncode == 3, resumed.stderr  # the ghost is unreachable: incomplete
    assert "3 hosts done, 1 to audit" in resumed.stderr
    # One line per host audited, as each finishes: "[4.2s] 1/1 zz-ghost (10.99...) ...".
    shown = re.findall(r"^\[[\d.]+s\] \d+/\d+ (\S+) ", resumed.stderr, re.MULTILINE)
    assert shown == ["zz-ghost"], resumed.stderr  # nothing audited twice
    results = json.loads((run / "results.json").read_text())
    assert [h["name"] for h in results["hosts"]] == [*group]  # nothing lost, inventory order
    assert results["resumed_hosts"] == 3
    assert not (run / JOURNAL).exists()  # the finished run's folder is its report
    assert {h["name"]: h["status"] for h in results["hosts"]} == {
        **dict.fromkeys(real, "ok"), "zz-ghost": "unreachable"}
