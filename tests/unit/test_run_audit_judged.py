"""The library API returns judged results (issue 11, item 8): run_audit applies the policy
(the baseline unless given one), and the exit code comes from one place."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from fleetaudit import exitcodes, policy
from fleetaudit.models import Inventory, InventoryHost, Severity
from fleetaudit.orchestrator import AuditOptions, run_audit
from fleetaudit.policy import parse_policy
from fleetaudit.testing.fakehost import FakeFleet, FakeHost, Fault
from fleetaudit.transport import HostKeyPolicy, SSHOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURE = FIXTURES / "session" / "local_root.json"
NMAP = FIXTURES / "nmap" / "sv-connect.xml"


def audit(host: FakeHost, **kwargs):
    fleet = FakeFleet({"web1": host})
    inventory = Inventory(source="test", hosts=[InventoryHost(name="web1",
                                                              address="127.0.0.1")])
    options = AuditOptions(nmap_xml=(NMAP,), command_timeout=2.0,
                           ssh=SSHOptions(host_key_policy=HostKeyPolicy.OFF))
    return asyncio.run(run_audit(inventory, options, connect=fleet.connect, **kwargs))


def test_run_audit_judges_with_the_baseline_by_default():
    outcome = audit(FakeHost.load(CAPTURE), today=date(2025, 1, 1))
    results = outcome.results
    assert results.policy == policy.baseline_policy().label
    assert results.compliance and results.compliance[0].group is None
    assert all(host.compliant is not None or host.status.value != "ok"
               for host in results.hosts)
    assert outcome.exit_code() == policy.exit_code(results, None)


def test_run_audit_takes_the_caller_s_policy():
    strict = parse_policy("version: 1\nname: strict\ndefaults: {max_open_ports: 0}\n",
                          source="strict.yml")
    outcome = audit(FakeHost.load(CAPTURE), policy=strict, today=date(2025, 1, 1))
    assert outcome.results.policy == strict.label
    [host] = outcome.results.hosts
    assert any(f.rule == "max_open_ports" for f in host.findings)
    assert outcome.exit_code(Severity.LOW) == exitcodes.ExitCode.FINDINGS


def test_a_host_with_hostile_output_is_an_outcome_judged_like_any_other():
    outcome = audit(FakeHost.load(CAPTURE, faults={"ss": Fault.garbage()}),
                    today=date(2025, 1, 1))
    [host] = outcome.results.hosts
    assert host.compliant is not True
    assert outcome.exit_code() == exitcodes.ExitCode.INCOMPLETE


def test_exit_codes_are_defined_once():
    assert policy.EXIT_FINDINGS is exitcodes.ExitCode.FINDINGS
    assert policy.EXIT_INCOMPLETE is exitcodes.ExitCode.INCOMPLETE
    assert policy.EXIT_CONFIG is exitcodes.ExitCode.CONFIG
    source = (Path(exitcodes.__file__).parent / "cli.py").read_text()
    assert "EXIT_" not in source and "= 130" not in source


def test_a_listener_outside_an_imported_scan_says_so():
    """With --nmap-xml no listing widens the port list: the capture's listeners on ports the
    imported scan did not cover say that, not that the profile left them out."""
    [host] = audit(FakeHost.load(CAPTURE), today=date(2025, 1, 1)).results.hosts
    said = [(p.port, v.message) for p in host.ports for v in p.verdicts]
    assert any("not in the imported scan" in message for _, message in said), said
    assert not any("scan's port list" in message for _, message in said), said
