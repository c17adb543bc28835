"""One finding per problem: the rules and verdicts that flag one fact are one finding."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetaudit.models import (
    ExternalHost,
    ExternalPort,
    InternalView,
    ListenerSource,
    PortRange,
    ProcessInfo,
    Severity,
    Socket,
    VerdictKind,
)
from fleetaudit.parsers.nat import parse_nat
from fleetaudit.policy import apply_policy, baseline_policy, finding_id
from fleetaudit.policy.apply import REMEDIATION
from fleetaudit.policy.rules import NO_PID_REMEDIATION
from fleetaudit.policy.schema import Rule
from fleetaudit.reconcile import reconcile_host
from fleetaudit.report import results_from_json
from tests.unit.test_policy import (
    ADDR,
    SSHD,
    TCP,
    TODAY,
    findings,
    host,
    nopid,
    on,
    policy,
    port,
    results,
    verdict,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# A listener whose executable no dpkg package owns: package_owned and UNOWNED_BINARY.
LOOSE = ProcessInfo(pid=7, exe="/opt/x/kworker", package_manager="dpkg")
UNOWNED = verdict(VerdictKind.UNOWNED_BINARY)
NONSTANDARD = verdict(VerdictKind.NONSTANDARD_PORT, Severity.MEDIUM)
HIDDEN = verdict(VerdictKind.HIDDEN_LISTENER, Severity.CRITICAL)
SUSPICIOUS = verdict(VerdictKind.SUSPICIOUS_PATH)


@pytest.mark.parametrize(("body", "ports", "expected"), [
    # the pairs: one fact, two rules
    ("defaults: {package_owned: true}", [port(80, "http", on(LOOSE), verdicts=[UNOWNED])],
     [(80, ["package_owned", "UNOWNED_BINARY"], "high")]),
    ("defaults: {ssh_only_on_22: true}", [port(24, "ssh", on(SSHD), verdicts=[NONSTANDARD])],
     [(24, ["ssh_only_on_22", "NONSTANDARD_PORT"], "medium")]),
    # an unowned binary in /tmp: one untrustworthy binary, three rules
    ("defaults: {package_owned: true}",
     [port(80, "http", on(LOOSE), verdicts=[UNOWNED, SUSPICIOUS])],
     [(80, ["package_owned", "UNOWNED_BINARY", "SUSPICIOUS_PATH"], "high")]),
    # different facts on one port stay apart
    ("defaults: {package_owned: true, allowed_ports: [22]}",
     [port(80, "http", on(LOOSE), verdicts=[UNOWNED])],
     [(80, ["allowed_ports"], "high"), (80, ["package_owned", "UNOWNED_BINARY"], "high")]),
    # the same rule on two ports: two problems
    ("defaults: {package_owned: true}",
     [port(80, "http", on(LOOSE), verdicts=[UNOWNED]), port(81, "http", on(LOOSE),
                                                             verdicts=[UNOWNED])],
     [(80, ["package_owned", "UNOWNED_BINARY"], "high"),
      (81, ["package_owned", "UNOWNED_BINARY"], "high")]),
    # something hidden answering ssh on an odd port is one (critical) problem
    ("defaults: {ssh_only_on_22: true}", [port(31337, "ssh", verdicts=[HIDDEN, NONSTANDARD])],
     [(31337, ["ssh_only_on_22", "NONSTANDARD_PORT", "HIDDEN_LISTENER"], "critical")]),
])
def test_rules_flagging_one_fact_are_one_finding(body, ports, expected):
    found = findings(body, *ports)
    assert sorted((f.port, f.rules, f.severity.value) for f in found) == expected
    for f in found:
        assert f.rule == f.rules[0]
        assert f.id == finding_id(f.rule, "h1", TCP, f.port)  # ids as before, first rule's


def test_advice_fits_the_problem_that_dominates():
    [hidden] = findings("defaults: {ssh_only_on_22: true}",
                        port(31337, "ssh", verdicts=[HIDDEN, NONSTANDARD]))
    assert hidden.remediation == REMEDIATION[VerdictKind.HIDDEN_LISTENER]
    assert "standard port" not in (hidden.remediation or "")
    [unseen] = findings("defaults: {package_owned: true}", port(80, "http", nopid()))
    assert unseen.remediation == NO_PID_REMEDIATION
    assert "package" not in unseen.remediation


WAIVE = "  - {rule: %s, host: h1, port: 80, reason: r, owner: o, expires: %s}\n"


@pytest.mark.parametrize(("waivers", "active", "expired"), [
    ([("package_owned", "2026-12-31")], True, False),  # one rule of two: still a problem
    ([("package_owned", "2026-12-31"), ("UNOWNED_BINARY", "2026-12-31")], False, False),
    ([("package_owned", "2026-12-31"), ("UNOWNED_BINARY", "2026-01-01")], True, True),
])
def test_a_finding_is_waived_when_all_of_its_rules_are(waivers, active, expired):
    body = "defaults: {package_owned: true}\nwaivers:\n" + "".join(WAIVE % w for w in waivers)
    [found] = findings(body, port(80, "http", on(LOOSE), verdicts=[UNOWNED]))
    assert (found.active, found.waiver_expired) == (active, expired)


def test_compliance_counts_problems_for_each_rule_they_involve():
    judged = apply_policy(results(host(port(80, "http", on(LOOSE), verdicts=[UNOWNED]))),
                          policy("defaults: {package_owned: true}"), TODAY)
    [fleet] = [c for c in judged.compliance if c.group is None]
    counts = {o.rule: o.findings for o in fleet.rules}
    assert counts["package_owned"] == counts["UNOWNED_BINARY"] == 1
    assert len(judged.hosts[0].findings) == 1


# --- the advice of the kind that dominates, whatever the severities ----------------------

GONE = ProcessInfo(pid=9, exe="/opt/x/updater", exe_deleted=True, package_manager="dpkg")
DELETED = verdict(VerdictKind.DELETED_BINARY)


@pytest.mark.parametrize(("body", "report", "dominant"), [
    # equal severity: the specific fact, not package_owned's "install it from a package"
    ("defaults: {package_owned: true}",
     port(80, "http", on(LOOSE), verdicts=[UNOWNED, SUSPICIOUS]), VerdictKind.SUSPICIOUS_PATH),
    ("defaults: {package_owned: true}",
     port(80, "http", on(GONE), verdicts=[DELETED, UNOWNED]), VerdictKind.DELETED_BINARY),
    # a policy's severities do not reorder the problem kinds
    ("defaults: {ssh_only_on_22: true, verdicts: {NONSTANDARD_PORT: critical}}",
     port(31337, "ssh", verdicts=[HIDDEN, NONSTANDARD]), VerdictKind.HIDDEN_LISTENER),
    ("defaults: {package_owned: true, verdicts: {UNOWNED_BINARY: critical}}",
     port(80, "http", on(LOOSE), verdicts=[UNOWNED, SUSPICIOUS]), VerdictKind.SUSPICIOUS_PATH),
    ("defaults: {ssh_only_on_22: true, verdicts: {NONSTANDARD_PORT: critical}}",
     port(24, "ssh", on(SSHD), verdicts=[NONSTANDARD]), Rule.SSH_ONLY_ON_22),
])
def test_advice_follows_the_order_of_problem_kinds_not_their_severity(body, report, dominant):
    [found] = findings(body, report)
    assert found.remediation == REMEDIATION[dominant]
    if isinstance(dominant, VerdictKind):
        assert found.message.startswith(f"{dominant} here")  # the dominant fact first
    assert found.id == finding_id(found.rules[0], "h1", TCP, report.port)  # ids unchanged


def test_ssh_reached_through_a_nat_rule_is_advised_on_the_rule_and_shows_it():
    """A real DNAT rule (nat/rules_root.txt: 41080 -> 10.0.0.5:22) and ssh answering on
    41080: the fix is the rule, not sshd_config, whether or not FORWARDED counts."""
    forwards = parse_nat((FIXTURES / "nat" / "rules_root.txt").read_text()).forwards
    external = ExternalHost(address=ADDR, status="up", ports=[
        ExternalPort(proto=TCP, port=41080, state="open", service="ssh", method="probed")],
        scanned={TCP: [PortRange(first=1, last=65535)]})
    internal = InternalView(sockets=[Socket(proto=TCP, address="0.0.0.0", port=22,
                                            source=ListenerSource.SS)],
                            processes=[SSHD], nat_forwards=forwards)
    ports = reconcile_host(external, internal, scanned_address=ADDR)
    [forwarded] = [p for p in ports if p.port == 41080]
    assert [v.kind for v in forwarded.verdicts] == [VerdictKind.FORWARDED,
                                                    VerdictKind.NONSTANDARD_PORT]
    for body, rules in [
        ("defaults: {ssh_only_on_22: true}", ["ssh_only_on_22", "NONSTANDARD_PORT"]),
        ("defaults: {ssh_only_on_22: true, verdicts: {FORWARDED: true}}",
         ["ssh_only_on_22", "NONSTANDARD_PORT", "FORWARDED"]),
    ]:
        [found] = findings(body, forwarded)
        assert found.rules == rules
        assert found.id == finding_id("ssh_only_on_22", "h1", TCP, 41080)
        assert found.remediation == REMEDIATION[VerdictKind.FORWARDED]
        assert "sshd_config" not in found.remediation
        assert ("nat: -A PREROUTING -p tcp -m tcp --dport 41080 -j DNAT --to-destination "
                "10.0.0.5:22") in found.evidence
        assert found.message.startswith("open from outside and forwarded to 10.0.0.5:22")


# --- a real audit: each fact once, the advice of what dominates ------------------------------


def test_a_real_lab_audit_states_each_fact_once():
    """tests/fixtures/drift/before.json, a real audit of the lab fleet, reconciled and
    judged again by the baseline: a binary no package owns used to be said twice
    ("kworker (pid N) belongs to no dpkg package; kworker belongs to no dpkg package")."""
    run = results_from_json((FIXTURES / "drift" / "before.json").read_text(encoding="utf-8"))
    hosts = [h.model_copy(update={"ports": reconcile_host(h.external, h.internal,
                                                          scanned_address=h.address)})
             for h in run.hosts]
    judged = apply_policy(run.model_copy(update={"hosts": hosts}), baseline_policy(), TODAY)
    found = {(h.name, f.port, f.rule): f for h in judged.hosts for f in h.findings}
    lab = "/run/fleetaudit-drift-capture/hosts/lab-01"
    assert {key: f.message for key, f in found.items() if key[2] != "TOOLS_DISAGREE"} == {
        ("lab-01", 80, "package_owned"):
            f"{lab}/kworker (pid 16130) belongs to no dpkg package",
        ("lab-01", 8090, "package_owned"):
            f"{lab}/update-notifier (pid 16135) was deleted after it started; "
            f"{lab}/update-notifier (pid 16135) belongs to no dpkg package",
        ("lab-02", 5355, "package_owned"):
            "/tmp/.X11-fa41a9f864/dbus-daemon runs from a temporary or hidden directory; "
            "/tmp/.X11-fa41a9f864/dbus-daemon (pid 16136) belongs to no dpkg package",
        ("lab-01", 24, "ssh_only_on_22"):
            "ssh on 24/tcp; ssh's port is 22/tcp; /usr/sbin/sshd (pid 16116) listens on 24/tcp",
        ("lab-02", 2222, "ssh_only_on_22"):
            "open from outside and forwarded to (this host):22 by a NAT rule; whatever "
            "answers there was not audited here; ssh on 2222/tcp; ssh's port is 22/tcp",
        ("lab-03", 31337, "HIDDEN_LISTENER"):
            "open from outside and the port is in use inside, but no tool lists a listener "
            "on it: a listener hidden from the tools",
        ("lab-03", 4444, "package_owned"):
            "/usr/bin/python3.11 differs from what its package installed",
        ("lab-03", 8000, "package_owned"):
            "/usr/bin/python3.11 differs from what its package installed",
    }
    advice = {key[:2]: f.remediation for key, f in found.items()}
    assert advice[("lab-01", 8090)] == REMEDIATION[VerdictKind.DELETED_BINARY]
    assert advice[("lab-02", 5355)] == REMEDIATION[VerdictKind.SUSPICIOUS_PATH]
    assert advice[("lab-02", 2222)] == REMEDIATION[VerdictKind.FORWARDED]
    assert any(e.startswith("nat: ") for e in found[("lab-02", 2222, "ssh_only_on_22")].evidence)
