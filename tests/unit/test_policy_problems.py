"""One finding per problem: the rules and verdicts that flag one fact are one finding."""

from __future__ import annotations

import pytest

from fleetaudit.models import ProcessInfo, Severity, VerdictKind
from fleetaudit.policy import apply_policy, finding_id
from fleetaudit.policy.apply import REMEDIATION
from fleetaudit.policy.rules import NO_PID_REMEDIATION
from tests.unit.test_policy import (
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
