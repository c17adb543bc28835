"""junit.xml: the audit as test results, so CI dashboards can show and trend it.

One <testsuite> per host, holding:
- properties: address, groups, the raw status, the audit status (complete, partial,
  unreachable) and the risk (worst active finding, or none), as every format says them;
- a testcase "audited", an <error> when the host was not audited completely (its errors);
- a testcase per policy rule the run knows of: a <failure> when the host has an
  active finding for the rule (one failure listing them all), <skipped> when its
  only findings are waived (as pytest reports an xfail) or the host could not be
  audited and has none, passed otherwise.
Without a policy there are no rules, so only the "audited" testcases remain.

Built with xml.etree, which escapes markup; characters XML 1.0 forbids
(most C0 controls, lone surrogates, U+FFFE/U+FFFF) are shown as visible escapes
first, because ElementTree would otherwise write them and produce a file no
parser accepts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # builds XML only; nothing here parses any

from fleetaudit.models import AuditResults, Finding, HostResult, HostStatus
from fleetaudit.report.facts import (
    SEVERITY_RANK,
    FindingStatus,
    HostRating,
    finding_status,
    rate_hosts,
    rule_names,
)
from fleetaudit.report.text import visible

AUDITED = "audited"


def render_junit(results: AuditResults) -> str:
    rules = rule_names(results)
    root = ET.Element("testsuites", name="fleetaudit")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for rating in rate_hosts(results):
        suite = _suite(results, rating, rules)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(results))
    root.set("timestamp", results.started_at.isoformat())
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def _suite(results: AuditResults, rating: HostRating, rules: list[str]) -> ET.Element:
    host = rating.host
    suite = ET.Element("testsuite", name=_x(host.name), timestamp=results.started_at.isoformat())
    props = ET.SubElement(suite, "properties")
    for name, text in [
        ("address", host.address),
        ("groups", " ".join(host.groups)),
        ("status", host.status.value),
        ("audit_status", rating.audit.value),
        ("risk", rating.risk.value),
    ]:
        ET.SubElement(props, "property", name=name, value=_x(text))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    audited = _case(suite, host, AUDITED)
    counts["tests"] += 1
    if host.status is not HostStatus.OK:
        messages = [f"[{e.stage.value}] {e.message}" for e in host.errors]
        first = messages[0] if messages else f"host status {host.status.value}"
        error = ET.SubElement(
            audited, "error", type=host.status.value, message=_x(first.splitlines()[0])
        )
        error.text = _x("\n".join(messages) or first)
        counts["errors"] += 1

    # One test case per problem (a finding, under its first rule), so failures count
    # problems; a rule in force with no problem passes; a rule that is part of another
    # rule's problem is reported there.
    involved = {r for f in host.findings for r in f.named_rules}
    extra = [f.rule for f in host.findings if f.rule not in rules]
    for rule in [*rules, *dict.fromkeys(extra)]:
        mine = sorted((f for f in host.findings if f.rule == rule),
                      key=lambda f: (-SEVERITY_RANK[f.severity], f.port or -1))
        if not mine and rule in involved:
            continue
        if not mine:
            case = _case(suite, host, rule)
            counts["tests"] += 1
            if host.status is not HostStatus.OK:
                ET.SubElement(case, "skipped", type="not-audited",
                              message=f"host {host.status.value}")
                counts["skipped"] += 1
            continue
        for f in mine:
            where = f"{f.port}/{f.proto.value}" if f.port is not None and f.proto else "host"
            case = _case(suite, host, f"{' + '.join(f.named_rules)} on {where}")
            counts["tests"] += 1
            if f.active:
                failure = ET.SubElement(case, "failure", type=f.severity.value,
                                        message=_x(f"{f.severity.value}: {f.message}"))
                failure.text = _x(_describe(f))
                counts["failures"] += 1
            else:
                w = f.waiver
                reason = (f"waived until {w.expires.isoformat()} by {w.owner}: {w.reason}"
                          if w else "")
                ET.SubElement(case, "skipped", type="waived", message=_x(reason))
                counts["skipped"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    return suite


def _case(suite: ET.Element, host: HostResult, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=_x(host.name), name=_x(name))


def _describe(f: Finding) -> str:
    where = f"{f.port}/{f.proto.value}" if f.port is not None and f.proto else "host"
    lines = [f"[{f.severity.value}] {f.id} on {where}: {f.message}"]
    lines += [f"  evidence: {e}" for e in f.evidence]
    if f.remediation:
        lines.append(f"  remediation: {f.remediation}")
    if finding_status(f) is FindingStatus.WAIVER_EXPIRED and f.waiver:
        lines.append(f"  waiver by {f.waiver.owner} expired {f.waiver.expires.isoformat()}")
    return "\n".join(lines)


def _seconds(results: AuditResults) -> str:
    try:
        seconds = (results.finished_at - results.started_at).total_seconds()
    except TypeError:  # one naive, one aware
        return "0"
    return f"{max(0.0, seconds):.3f}"


def _x(text: str) -> str:
    """Text XML 1.0 can carry: tab and newline kept, every other invisible character escaped."""
    return visible(text, keep="\n\t")
