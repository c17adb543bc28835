"""What every report format counts and orders the same way, so the formats never disagree.

A finding is *active* unless a waiver covers it (an expired waiver covers nothing);
a verdict is a *problem* unless it is CONSISTENT. Findings are ordered active first,
then by severity, then in the run's host order and by port.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from fleetaudit.models import (
    AuditResults,
    Finding,
    HostResult,
    PortReport,
    Severity,
    Verdict,
    VerdictKind,
)

SEVERITIES: list[Severity] = list(Severity)
SEVERITY_RANK: dict[Severity, int] = {sev: i for i, sev in enumerate(SEVERITIES)}


class FindingStatus(StrEnum):
    ACTIVE = "active"
    WAIVED = "waived"
    WAIVER_EXPIRED = "waiver_expired"


@dataclass(frozen=True)
class HostFinding:
    host: HostResult
    finding: Finding


@dataclass(frozen=True)
class HostVerdict:
    host: HostResult
    port: PortReport
    verdict: Verdict


def finding_status(finding: Finding) -> FindingStatus:
    if finding.waiver is None:
        return FindingStatus.ACTIVE
    return FindingStatus.WAIVER_EXPIRED if finding.waiver_expired else FindingStatus.WAIVED


def is_problem(verdict: Verdict) -> bool:
    """Every verdict but CONSISTENT says something a reader should look at."""
    return verdict.kind is not VerdictKind.CONSISTENT


def worst(severities: Iterable[Severity]) -> Severity | None:
    return min(severities, key=SEVERITY_RANK.__getitem__, default=None)


def all_findings(results: AuditResults) -> list[HostFinding]:
    order = {id(h): i for i, h in enumerate(results.hosts)}
    rows = [HostFinding(h, f) for h in results.hosts for f in h.findings]
    return sorted(
        rows,
        key=lambda r: (
            not r.finding.active,
            SEVERITY_RANK[r.finding.severity],
            order[id(r.host)],
            r.finding.proto or "",
            -1 if r.finding.port is None else r.finding.port,
            r.finding.rule,
            r.finding.id,
        ),
    )


def problem_verdicts(results: AuditResults) -> list[HostVerdict]:
    order = {id(h): i for i, h in enumerate(results.hosts)}
    rows = [
        HostVerdict(h, p, v)
        for h in results.hosts
        for p in h.ports
        for v in p.verdicts
        if is_problem(v)
    ]
    return sorted(
        rows,
        key=lambda r: (
            SEVERITY_RANK[r.verdict.severity],
            order[id(r.host)],
            r.port.proto,
            r.port.port,
            list(VerdictKind).index(r.verdict.kind),
        ),
    )


def rule_names(results: AuditResults) -> list[str]:
    """Every rule the run knows of: those the compliance summaries judged and those that fired."""
    names = {o.rule for c in results.compliance for o in c.rules}
    names |= {f.rule for h in results.hosts for f in h.findings}
    return sorted(names)
