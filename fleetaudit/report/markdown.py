"""summary.md: what a ticket needs, in Markdown: counts, who fails, the worst findings.

Every value a host, the inventory or the policy supplied is written as a code
span (with a fence longer than any backtick run inside it), so no renderer turns
it into markup, a link, an @mention, an issue reference or math; pipes are
escaped inside table cells, invisible characters (newlines too) are shown as
escapes, and long values are cut. Text this module writes itself is plain.

Each host's audit status (complete, partial, unreachable) and risk (worst active
finding) are separate columns, and hosts are listed worst first, as in the HTML.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

from fleetaudit.models import AuditResults
from fleetaudit.report.drift_view import markdown_lines as drift_lines
from fleetaudit.report.facts import (
    SEVERITIES,
    AuditStatus,
    HostRating,
    all_findings,
    policy_applied,
    problem_verdicts,
    rate_hosts,
    worst_first,
)
from fleetaudit.report.text import visible

MAX_CELL = 160
MAX_COMMAND = 2000  # an nmap command line names every host of its batch
MAX_HOSTS = 50
MAX_TOP = 20
_BACKTICKS = re.compile(r"`+")
_GAPS = re.compile(r"\n{3,}")


def render_markdown(results: AuditResults) -> str:
    findings = all_findings(results)
    active = [hf for hf in findings if hf.finding.active]
    problems = problem_verdicts(results)
    policy = policy_applied(results)
    ratings = worst_first(rate_hosts(results))
    audits = Counter(r.audit for r in ratings)
    compliant = str(sum(h.compliant is True for h in results.hosts)) if policy else "—"

    out = [f"# fleetaudit summary: {code(results.inventory, table=False)}", ""]
    out.append(
        f"- Run: {_when(results.started_at)} to {_when(results.finished_at)}, "
        f"fleetaudit {code(results.tool_version, table=False)}"
    )
    if results.policy:
        out.append(f"- Policy: {code(results.policy, table=False)}")
    elif not policy:
        out.append("- Policy: none applied, so there are no findings; verdicts are shown instead")
    out += _scan_lines(results)
    if results.drift is not None:  # what changed since the run it was compared with
        out += ["", *drift_lines(results.drift, code)]
    serious = "critical/high findings" if policy else "critical/high problem verdicts"
    out += [
        "",
        f"| hosts | audited completely | partial | unreachable | with {serious} "
        "| compliant | ports | active findings | waived findings | problem verdicts |",
        "|" + " ---: |" * 10,
        f"| {len(results.hosts)} | {audits[AuditStatus.COMPLETE]} "
        f"| {audits[AuditStatus.PARTIAL]} | {audits[AuditStatus.UNREACHABLE]} "
        f"| {sum(r.serious for r in ratings)} | {compliant} "
        f"| {sum(len(h.ports) for h in results.hosts)} | {len(active)} "
        f"| {len(findings) - len(active)} | {len(problems)} |",
        "",
    ]

    counted = (
        Counter(hf.finding.severity for hf in active)
        if policy
        else Counter(hv.verdict.severity for hv in problems)
    )
    out += [
        "## Active findings by severity" if policy else "## Problem verdicts by severity",
        "",
        "| " + " | ".join(s.value for s in SEVERITIES) + " |",
        "|" + " ---: |" * len(SEVERITIES),
        "| " + " | ".join(str(counted[s]) for s in SEVERITIES) + " |",
        "",
    ]

    if results.compliance:
        out += [
            "## Compliance",
            "",
            "| group | compliant hosts | failing rules |",
            "| --- | ---: | --- |",
        ]
        for c in sorted(results.compliance, key=lambda c: (c.group is not None, c.group or "")):
            failing = [o for o in c.rules if not o.passed]
            rules = ", ".join(f"{code(o.rule)} ({o.findings})" for o in failing) or "none"
            label = "whole fleet" if c.group is None else code(c.group)
            out.append(f"| {label} | {c.hosts_compliant} / {c.hosts_total} | {rules} |")
        out.append("")

    down = [r for r in ratings if r.audit is not AuditStatus.COMPLETE]
    if down:
        out += [
            f"## Hosts not audited completely ({len(down)})",
            "",
            "| host | address | audit | status | reason |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in down[:MAX_HOSTS]:
            h = r.host
            reason = code(h.errors[0].message) if h.errors else "—"
            out.append(
                f"| {code(h.name)} | {code(h.address)} | {r.audit.value} | {h.status.value} "
                f"| {reason} |"
            )
        out += _more(len(down) - MAX_HOSTS, "hosts"), ""

    out += _hosts(ratings, policy)

    if policy:
        out += [f"## Top findings ({min(len(active), MAX_TOP)} of {len(active)} active)", ""]
        if active:
            out += [
                "| severity | rule | host | port | finding | id |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for hf in active[:MAX_TOP]:
                f = hf.finding
                port = f"{f.port}/{f.proto.value}" if f.port is not None and f.proto else "—"
                rules = code(" + ".join(f.named_rules))
                out.append(
                    f"| {f.severity.value} | {rules} | {code(hf.host.name)} | "
                    f"{port} | {code(f.message)} | {code(f.id)} |"
                )
            out.append(_more(len(active) - MAX_TOP, "findings: see findings.csv"))
        else:
            out.append("No active findings.")
    else:
        out += [f"## Top problem verdicts ({min(len(problems), MAX_TOP)} of {len(problems)})", ""]
        if problems:
            out += [
                "| severity | verdict | host | port | message |",
                "| --- | --- | --- | --- | --- |",
            ]
            for hv in problems[:MAX_TOP]:
                v = hv.verdict
                out.append(
                    f"| {v.severity.value} | {v.kind.value} | {code(hv.host.name)} | "
                    f"{hv.port.port}/{hv.port.proto.value} | {code(v.message)} |"
                )
            out.append(_more(len(problems) - MAX_TOP, "verdicts: see findings.csv"))
        else:
            out.append("No problem verdicts.")
    # Data never holds a raw newline (shown as an escape), so this only tidies our own gaps.
    return _GAPS.sub("\n\n", "\n".join(out)).rstrip("\n") + "\n"


def code(text: str, *, table: bool = True, limit: int = MAX_CELL) -> str:
    """`text` as an inert code span, cut at `limit` characters; `table` escapes pipes,
    which GFM tables split on."""
    text = visible(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if not text:
        return "—"
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    return span.replace("|", "\\|") if table else span


def _scan_lines(results: AuditResults) -> list[str]:
    """How the external view was taken: profile, scan type, every nmap command, status."""
    scan = results.scan
    if scan is None:
        return ["- External scan: none"]
    if scan.source == "import":
        files = ", ".join(code(f, table=False) for f in scan.imported) or "—"
        how = f"nmap XML made elsewhere ({files})"
    else:
        root = "" if scan.privileged is None else " as root" if scan.privileged else " (not root)"
        how = (f"profile {code(scan.profile or '—', table=False)}, "
               f"{code(scan.scan_type or '—', table=False)} scan{root}")
    status = "complete" if scan.complete else "**incomplete**"
    out = [f"- External scan: {how}, nmap {code(scan.nmap_version or '—', table=False)}, "
           f"{status}"]
    commands = scan.commands or ([scan.command] if scan.command else [])
    if commands:
        out.append(f"- nmap command{'s' if len(commands) > 1 else ''} ({len(commands)}):")
        out += [f"    {i}. {code(c, table=False, limit=MAX_COMMAND)}"
                for i, c in enumerate(commands[:MAX_TOP], start=1)]
        if len(commands) > MAX_TOP:
            out.append(f"    …and {len(commands) - MAX_TOP} more: see results.json.")
    if scan.evidence:
        out.append("- Raw nmap XML: " + ", ".join(code(f"nmap/{e}", table=False)
                                                 for e in scan.evidence))
    if scan.errors:
        out.append(f"- Scan errors ({len(scan.errors)}):")
        out += [f"    - {code(e, table=False)}" for e in scan.errors[:MAX_TOP]]
        if len(scan.errors) > MAX_TOP:
            out.append(f"    - …and {len(scan.errors) - MAX_TOP} more: see results.json.")
    return out


def _hosts(ratings: list[HostRating], policy: bool) -> list[str]:
    """Every host worst first: audit status and risk side by side, then the counts the
    order comes from (active findings, or problem verdicts without a policy)."""
    what = "active findings" if policy else "problem verdicts"
    out = [f"## Hosts, worst first ({len(ratings)})", ""]
    if not ratings:
        return [*out, "No hosts in this run.", ""]
    out += [
        f"Risk is each host's worst {what[:-1]}; the counts are its {what} by severity.",
        "",
        "| host | address | audit | risk | " + " | ".join(s.value for s in SEVERITIES) + " |",
        "| --- | --- | --- | --- |" + " ---: |" * len(SEVERITIES),
    ]
    for r in ratings[:MAX_HOSTS]:
        cells = " | ".join(str(n) if n else "·" for n in r.counts)
        out.append(
            f"| {code(r.host.name)} | {code(r.host.address)} | {r.audit.value} "
            f"| {r.risk.value} | {cells} |"
        )
    return [*out, _more(len(ratings) - MAX_HOSTS, "hosts"), ""]


def _more(n: int, what: str) -> str:
    return f"\n…and {n} more {what}." if n > 0 else ""


def _when(value: datetime) -> str:
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
