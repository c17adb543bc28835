"""What every report format counts and orders the same way, so the formats never disagree.

A finding is *active* unless a waiver covers it (an expired waiver covers nothing);
a verdict is a *problem* unless it is CONSISTENT. Findings are ordered active first,
then by severity, then in the hosts' worst-first order (below) and by port.

Each host is rated on two separate axes, because "we saw all of it" and "what we saw
is fine" are different claims: its *audit status* (complete, partial, unreachable:
how much of it was seen) and its *risk* (its worst active finding, or its worst
problem verdict when no policy judged the run; "none" when there is nothing). Only a
host both complete and below medium risk is *healthy*, the one state shown in green.
Hosts are ranked worst first by their counts at each severity, compared from critical
down (3 high + 1 medium before 2 high + 2 medium), so every format lists them alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from fleetaudit.models import (
    AuditResults,
    Finding,
    HostResult,
    HostStatus,
    PortReport,
    Severity,
    Verdict,
    VerdictKind,
)

SEVERITIES: list[Severity] = list(Severity)
SEVERITY_RANK: dict[Severity, int] = {sev: i for i, sev in enumerate(SEVERITIES)}


class AuditStatus(StrEnum):
    """How much of a host was seen, in the reader's three words (HostStatus says why)."""

    COMPLETE = "complete"
    PARTIAL = "partial"
    UNREACHABLE = "unreachable"


class Risk(StrEnum):
    """A host's worst active finding (or problem verdict without a policy), or none."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"
    NONE = "none"


# Statuses that mean no session was had with the host (or nmap found it down): nothing
# was read on it, unless an inside view exists anyway (collected, then found down).
_NOT_REACHED = frozenset(
    {
        HostStatus.UNREACHABLE,
        HostStatus.AUTH_FAILED,
        HostStatus.HOST_KEY_REJECTED,
        HostStatus.HOST_DOWN,
    }
)
AUDIT_ORDER: dict[AuditStatus, int] = {a: i for i, a in enumerate(AuditStatus)}
RISK_RANK: dict[Risk, int] = {r: i for i, r in enumerate(Risk)}
# Risk below this leaves a complete host healthy (green).
HEALTHY_BELOW = Risk.MEDIUM


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


@dataclass(frozen=True)
class HostRating:
    """One host's audit status and risk, and the counts its rank comes from."""

    host: HostResult
    index: int  # position in the run
    audit: AuditStatus
    risk: Risk
    # Active findings (or problem verdicts without a policy) per severity, critical first.
    counts: tuple[int, ...]

    @property
    def healthy(self) -> bool:
        """Complete and below medium risk: the only host a report may show in green."""
        return self.audit is AuditStatus.COMPLETE and RISK_RANK[self.risk] > RISK_RANK[
            HEALTHY_BELOW
        ]

    @property
    def serious(self) -> bool:
        """Has a critical or high finding: what the "hosts with critical/high" card counts."""
        return self.risk in (Risk.CRITICAL, Risk.HIGH)

    @property
    def rank_key(self) -> tuple[int, ...]:
        """Worst first: more at the highest severity, then at the next...; then the less
        completely audited; then the run's order."""
        return (*(-n for n in self.counts), -AUDIT_ORDER[self.audit], self.index)


def audit_status(host: HostResult) -> AuditStatus:
    """complete: both views in full; unreachable: nothing read on the host; else partial."""
    if host.status is HostStatus.OK:
        return AuditStatus.COMPLETE
    if host.status in _NOT_REACHED and host.internal is None:
        return AuditStatus.UNREACHABLE
    return AuditStatus.PARTIAL


def policy_applied(results: AuditResults) -> bool:
    """Whether a policy judged the run: then findings, not verdicts, carry the risk."""
    return bool(
        results.policy or results.compliance or any(h.findings for h in results.hosts)
    )


def risk_severities(host: HostResult, by_findings: bool) -> list[Severity]:
    """What a host's risk is made of: its active findings, or its problem verdicts."""
    if by_findings:
        return [f.severity for f in host.findings if f.active]
    return [v.severity for p in host.ports for v in p.verdicts if is_problem(v)]


def rate_host(host: HostResult, index: int, by_findings: bool) -> HostRating:
    severities = risk_severities(host, by_findings)
    counts = Counter(severities)
    w = worst(severities)
    return HostRating(
        host=host,
        index=index,
        audit=audit_status(host),
        risk=Risk.NONE if w is None else Risk(w.value),
        counts=tuple(counts[s] for s in SEVERITIES),
    )


def rate_hosts(results: AuditResults) -> list[HostRating]:
    """Every host rated, in the run's order."""
    by_findings = policy_applied(results)
    return [rate_host(h, i, by_findings) for i, h in enumerate(results.hosts)]


def worst_first(ratings: Iterable[HostRating]) -> list[HostRating]:
    return sorted(ratings, key=lambda r: r.rank_key)


def host_order(results: AuditResults) -> dict[int, int]:
    """Position of each host (by id) in the worst-first list: how every format breaks ties."""
    return {id(r.host): i for i, r in enumerate(worst_first(rate_hosts(results)))}


def all_findings(results: AuditResults) -> list[HostFinding]:
    order = host_order(results)
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
    order = host_order(results)
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
