"""Hits become findings (stable ids, waivers), hosts get a compliance mark, runs an exit code.

Compliance: a host with an active finding is not compliant (False); a host without one is
compliant (True) only if it was fully audited, otherwise None: nothing is known against
it, but nothing was proven either. Both count as not compliant in the summaries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date

from fleetaudit.exitcodes import EXIT_CONFIG, EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, ExitCode
from fleetaudit.models import (
    AuditResults,
    ComplianceSummary,
    Finding,
    HostResult,
    HostStatus,
    Proto,
    RuleOutcome,
    Severity,
    VerdictKind,
    Waiver,
)
from fleetaudit.policy.problems import (
    ProblemKey,
    absorb,
    absorbing,
    dominance,
    ordered_rules,
    problem_key,
)
from fleetaudit.policy.rules import SEVERITY_RANK, Hit, effective_rules, evaluate_host
from fleetaudit.policy.schema import Policy, Rule

__all__ = ["EXIT_CONFIG", "EXIT_FINDINGS", "EXIT_INCOMPLETE", "EXIT_OK", "REMEDIATION",
           "apply_policy", "exit_code", "finding_id", "judge_host"]

REMEDIATION: dict[str, str] = {
    Rule.ALLOWED_PORTS: "Close the port or stop the service; if it is meant to be open, add "
                        "it to allowed_ports with the service, executable and package it "
                        "should have.",
    Rule.FORBIDDEN_SERVICES: "Remove the service; use its encrypted successor (ssh, sftp).",
    Rule.ROUTABLE_LISTENERS: "Bind the service to 127.0.0.1 or ::1, or list the port in "
                             "routable_listeners if it must be reachable.",
    Rule.PACKAGE_OWNED: "Install the service from a package, or find out what put this "
                        "binary there; reinstall a package whose file changed.",
    Rule.SSH_ONLY_ON_22: "Remove the extra Port/ListenAddress from sshd_config, or stop the "
                         "second sshd.",
    Rule.MAX_OPEN_PORTS: "Close the ports that are not needed, or raise max_open_ports for "
                         "this host or group.",
    VerdictKind.NONSTANDARD_PORT: "Move the service to its standard port, or allow it on "
                                  "this one in allowed_ports with its expected service.",
    VerdictKind.SERVICE_PROCESS_MISMATCH: "Find out why this process speaks this protocol "
                                          "(a forward, a relay, a backdoor); stop it if "
                                          "nobody can say.",
    VerdictKind.EXTERNAL_ONLY: "Find what answers: NAT rules, containers, or a listener "
                               "hidden from ss by a rootkit.",
    VerdictKind.HIDDEN_LISTENER: "Treat the host as compromised: a port in use that no tool "
                                 "lists is a rootkit's mark. Investigate from trusted media.",
    VerdictKind.FORWARDED: "A NAT rule sends this port elsewhere (see the evidence): remove "
                           "the rule if nobody needs it, and audit its destination; the "
                           "service's own configuration is not where this port comes from.",
    VerdictKind.UNOWNED_BINARY: "Find where the binary came from; run services from "
                                "packages.",
    VerdictKind.DELETED_BINARY: "Restart the service if it was upgraded; otherwise find out "
                                "why a running program deleted its executable.",
    VerdictKind.MODIFIED_BINARY: "Reinstall the package and find out why the file changed.",
    VerdictKind.SUSPICIOUS_PATH: "Investigate: services do not run from temporary or hidden "
                                 "directories.",
    VerdictKind.TOOLS_DISAGREE: "A listing tool hides a socket: suspect a rootkit and compare "
                                "with a trusted binary.",
    VerdictKind.FILTERED: "Stop the service or bind it to loopback if nobody needs it.",
    VerdictKind.LOCAL_ONLY: "Nothing to do unless the service is not needed at all.",
    VerdictKind.UNKNOWN: "Audit again with the missing view (root on the host, the port in "
                         "the scan list).",
    VerdictKind.CONSISTENT: "Nothing to do.",
}


_RULE_ORDER = [*(r.value for r in Rule), *(k.value for k in VerdictKind)]


def finding_id(rule: str, host: str, proto: Proto | None, port: int | None) -> str:
    """Hash of (rule, host, proto, port): the same problem keeps its id from run to run."""
    key = "\x1f".join((rule, host, proto.value if proto else "",
                       "" if port is None else str(port)))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def apply_policy(results: AuditResults, policy: Policy, today: date) -> AuditResults:
    """Judge every host: findings, compliance marks and per-group/fleet summaries."""
    return _summarized(results, policy, [_judge(host, policy, today) for host in results.hosts])


def summarize_judged(results: AuditResults, policy: Policy) -> AuditResults:
    """What apply_policy gives, for hosts each judged already by `judge_host` (a run
    judges each host as it finishes): the summaries, without judging every host again,
    which was as much work as judging them the first time."""
    return _summarized(results, policy, [
        (host, effective_rules(policy, host.name, host.groups).enabled())
        for host in results.hosts])


def _summarized(results: AuditResults, policy: Policy,
                judged: Sequence[tuple[HostResult, list[str]]]) -> AuditResults:
    members: dict[str, list[tuple[HostResult, list[str]]]] = {}
    for host, rules in judged:  # one pass, not one per group (a group per host is common)
        for g in dict.fromkeys(host.groups):
            members.setdefault(g, []).append((host, rules))
    compliance = [_summary(None, judged)] + [_summary(g, members[g]) for g in sorted(members)]
    return results.model_copy(update={"hosts": [h for h, _ in judged],
                                      "compliance": compliance, "policy": policy.label})


def judge_host(host: HostResult, policy: Policy, today: date) -> HostResult:
    """One host's findings and compliance mark, as apply_policy gives them: for a host
    recorded as it finishes (the run's journal), before the fleet is done."""
    return _judge(host, policy, today)[0]


def _judge(host: HostResult, policy: Policy, today: date) -> tuple[HostResult, list[str]]:
    rules = effective_rules(policy, host.name, host.groups)
    findings = [_waive(f, policy.waivers, today)
                for f in _findings(host, evaluate_host(host, rules))]
    active = any(f.active for f in findings)
    compliant = False if active else (True if host.status is HostStatus.OK else None)
    return (host.model_copy(update={"findings": findings, "compliant": compliant}),
            rules.enabled())


def exit_code(results: AuditResults, fail_on: Severity | None) -> ExitCode:
    """OK, FINDINGS or INCOMPLETE (fleetaudit.exitcodes). A finding wins over an
    incomplete audit: it is certain, whatever could not be seen; INCOMPLETE only says
    the part that was seen passed."""
    if fail_on is not None:
        floor = SEVERITY_RANK[fail_on]
        if any(f.active and SEVERITY_RANK[f.severity] >= floor
               for host in results.hosts for f in host.findings):
            return EXIT_FINDINGS
    if any(host.status is not HostStatus.OK for host in results.hosts):
        return EXIT_INCOMPLETE
    return EXIT_OK


def _findings(host: HostResult, hits: Iterable[Hit]) -> list[Finding]:
    """One finding per problem (policy.problems): the hits of every rule that flags the
    same fact on a port merged, the worst severity kept, the dominant kind's advice.

    Facts are stated dominant first, each once; a verdict the policy does not count but
    that would absorb the problem (a NAT forward under an ssh-on-2222 problem) adds its
    facts and, when it dominates, its advice, not its rule."""
    merged: dict[ProblemKey, list[Hit]] = {}
    for hit in hits:
        merged.setdefault(problem_key(hit.rule, hit.proto, hit.port), []).append(hit)
    absorb(merged)
    verdicts = {(pr.proto, pr.port): pr.verdicts for pr in host.ports}
    findings = []
    for (family, proto, port), group in merged.items():
        rules = ordered_rules((h.rule for h in group), _RULE_ORDER)
        worst = max(group, key=lambda h: (SEVERITY_RANK[h.severity],
                                          -rules.index(h.rule)))
        on_port = (verdicts.get((proto, port), []) if proto is not None and port is not None
                   else [])
        context = [Hit(v.kind.value, v.severity, proto, port, v.message, tuple(v.evidence))
                   for v in on_port
                   if v.kind.value in absorbing(family) and v.kind.value not in rules]
        facts = sorted([*group, *context], key=lambda h: dominance(h.rule))
        lead = min(facts, key=lambda h: (dominance(h.rule), -SEVERITY_RANK[h.severity],
                                         rules.index(h.rule) if h.rule in rules else 0))
        findings.append(Finding(
            id=finding_id(rules[0], host.name, proto, port), rule=rules[0], rules=rules,
            severity=worst.severity, host=host.name, proto=proto, port=port,
            message="; ".join(dict.fromkeys(h.message for h in facts)),
            evidence=list(dict.fromkeys(e for h in facts for e in h.evidence)),
            remediation=lead.remediation or REMEDIATION.get(lead.rule),
        ))
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity],
                                           f.proto.value if f.proto else "",
                                           -1 if f.port is None else f.port, f.rule))


def _waive(finding: Finding, waivers: Sequence[Waiver], today: date) -> Finding:
    """Attach a waiver: a finding is waived when every one of its rules has a waiver in
    force (the first rule's is shown); where one rule's waiver has run out and none is
    in force for it, the expired one is shown, so the report says the exception ended."""
    covering = [_covering(rule, finding, waivers, today) for rule in finding.rules or
                [finding.rule]]
    if all(w is None for w, _ in covering):
        return finding
    if all(w is not None and not expired for w, expired in covering):
        return finding.model_copy(update={"waiver": covering[0][0], "waiver_expired": False})
    lapsed = [w for w, expired in covering if w is not None and expired]
    if lapsed:
        return finding.model_copy(update={"waiver": lapsed[0], "waiver_expired": True})
    return finding  # some rules waived, others not: the problem stands


def _covering(rule: str, finding: Finding, waivers: Sequence[Waiver],
              today: date) -> tuple[Waiver | None, bool]:
    """The waiver of one rule for this finding: one in force if any, else the one that
    expired last; and whether it expired."""
    matching = sorted((w for w in waivers
                       if w.rule == rule and w.host in (None, finding.host)
                       and w.proto in (None, finding.proto) and w.port in (None, finding.port)),
                      key=lambda w: (w.expires, w.model_dump_json()))
    if not matching:
        return None, False
    in_force = [w for w in matching if today <= w.expires]
    return (in_force or matching)[-1], not in_force


def _summary(group: str | None,
             judged: Sequence[tuple[HostResult, list[str]]]) -> ComplianceSummary:
    in_force = {rule for _, enabled in judged for rule in enabled}
    rules = [rule for rule in _RULE_ORDER if rule in in_force]
    counts = dict.fromkeys(rules, 0)
    for host, _ in judged:
        for finding in host.findings:
            for rule in finding.rules or [finding.rule]:  # problems this rule is part of
                if finding.active and rule in counts:
                    counts[rule] += 1
    return ComplianceSummary(
        group=group, hosts_total=len(judged),
        hosts_compliant=sum(1 for host, _ in judged if host.compliant is True),
        rules=[RuleOutcome(rule=r, passed=counts[r] == 0, findings=counts[r]) for r in rules],
    )
