"""HTML report: one self-contained page a security team can read, filter, archive and hand on.

Everything a host or a banner said is data. Autoescape covers markup; `_inert`,
installed as the environment's finalize hook so no template expression can
forget it, also shows control, format and bidi characters as visible escapes,
so a banner can neither break the page nor disguise what it says. Data goes
into text content only: attributes carry slugs, enum values and numbers the
view computed, and the page's one script reads text, never writes markup.

The script and the stylesheet are package files inlined verbatim; the page's
Content-Security-Policy allows exactly them by their sha256, so nothing else
can run or style the page, even if a future template change let markup through.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import shlex
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from fleetaudit.models import (
    AuditResults,
    BindResult,
    BindState,
    ComplianceSummary,
    ExternalHost,
    Finding,
    HostResult,
    HostStatus,
    IntegrityStatus,
    ListenerEvidence,
    MappedFile,
    NatForward,
    PortReport,
    ProcessInfo,
    RuleOutcome,
    ScanRun,
    Severity,
    Stage,
    ToolsDisagreement,
    Verdict,
    VerdictKind,
)
from fleetaudit.report.charts import Chart, bar_chart
from fleetaudit.report.drift_view import DriftView, drift_view
from fleetaudit.report.facts import (
    RISK_RANK,
    SEVERITIES,
    SEVERITY_RANK,
    AuditStatus,
    FindingStatus,
    HostRating,
    Risk,
    finding_status,
    is_problem,
    policy_applied,
    rate_hosts,
    worst,
    worst_first,
)
from fleetaudit.report.text import is_invisible, visible

_SLUG_DROP = re.compile(r"[^a-z0-9]+")
_TIGHT = re.compile(r">\n+<")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
# Rank given to a host with nothing to report (risk none): filters after every severity.
NO_SEVERITY = RISK_RANK[Risk.NONE]
# The fleet findings table lists this many; findings.csv has them all.
MAX_LISTED_FINDINGS = 500
# The scan panel names this many hosts whose scan failed or was cut short; each host's
# own section says it too.
MAX_LISTED_SCAN_PROBLEMS = 50
EVIDENCE_DIR = "nmap"  # fleetaudit.scan.evidence writes DIR/nmap/<name>.xml
_STATUS_ORDER = {s: i for i, s in enumerate(HostStatus)}
AUDIT_CSS = {
    AuditStatus.COMPLETE: "soft",  # green only when also healthy: see audit_css
    AuditStatus.PARTIAL: "warn",
    AuditStatus.UNREACHABLE: "bad",
}
INTEGRITY_CSS = {
    IntegrityStatus.OK: "b-ok",
    IntegrityStatus.MODIFIED: "b-critical",
    IntegrityStatus.MISSING: "b-high",
    IntegrityStatus.UNKNOWN: "b-soft",
}
BIND_CSS = {
    BindState.IN_USE: "b-high",
    BindState.FREE: "b-soft",
    BindState.ERROR: "b-warn",
}


@dataclass(frozen=True)
class FindingView:
    finding: Finding
    anchor: str
    status: FindingStatus
    host_anchor: str


@dataclass(frozen=True)
class ListenerRow:
    """One process and every socket of it on this port (0.0.0.0 and :: are one story)."""

    sockets: list[ListenerEvidence]
    pid: int | None
    process: ProcessInfo | None
    cmdline: str | None
    # Mapped files worth a look (deleted or flagged suspicious), and how many others there are.
    flagged_libs: list[MappedFile]
    other_libs: int
    # Environment variable names (never values), shell-quoted so odd names keep their bounds.
    env: str | None


@dataclass(frozen=True)
class SeenView:
    """What the internal view of one host could see: the sources, privilege and gaps
    that tell a reader how far to trust an empty column."""

    os: str | None
    euid: int | None
    sudo: bool | None
    sources: list[str]
    privileged: bool | None
    missing: list[str]
    notes: list[str]
    disagreements: list[ToolsDisagreement]
    binds: list[BindResult]
    nat: list[NatForward]


@dataclass(frozen=True)
class PortRow:
    report: PortReport
    anchor: str
    listeners: list[ListenerRow]
    verdicts: list[Verdict]
    worst: str
    # Why a side is empty, in words: "never looked" and "looked, found nothing" differ.
    external_note: str
    internal_note: str
    # MODIFIED_BINARY verdicts: what the chain shows as the package's integrity.
    integrity: list[Verdict]
    findings: list[FindingView]


@dataclass(frozen=True)
class HostView:
    host: HostResult
    # Position in the report: hosts are listed worst first (facts.HostRating.rank_key).
    index: int
    anchor: str
    rows: list[PortRow]
    worst: str
    # Active policy findings by severity, and the problem verdicts' kinds.
    finding_counts: list[tuple[Severity, int]]
    waived: int
    kinds: list[VerdictKind]
    rating: HostRating
    # Risk as a rank, NO_SEVERITY for none: what the severity filter compares.
    worst_rank: int
    audit_css: str
    # The raw HostStatus, shown beside the audit status when it says more (auth_failed).
    raw_status: str | None
    group_ids: str
    status_rank: int
    findings: list[FindingView]
    # Findings the ports table cannot show: host-wide ones, or on a port with no row.
    host_findings: list[FindingView]
    seen: SeenView | None


@dataclass(frozen=True)
class ScanProblem:
    """A host whose external view is missing or partial, and what the scan said about it."""

    host: HostResult
    anchor: str
    messages: list[str]
    view: HostView


@dataclass(frozen=True)
class ScanView:
    """The external scan as a reader checks it: how it ran, every nmap command line, the
    raw XML kept, what went wrong, and which hosts it cost."""

    run: ScanRun
    commands: list[str]  # every nmap command line, in start order
    evidence: list[str]  # paths of the raw XML files, relative to the report
    problems: list[ScanProblem]
    problems_unlisted: int


@dataclass(frozen=True)
class ComplianceView:
    label: str
    fleet: bool
    summary: ComplianceSummary
    percent: int
    failing: list[RuleOutcome]
    passing: int


@dataclass(frozen=True)
class Summary:
    hosts_total: int
    # The top cards: audit status and risk are counted apart, never as one "ok".
    hosts_complete: int
    hosts_partial: int
    hosts_unreachable: int
    hosts_serious: int  # with a critical or high active finding (problem verdict: no policy)
    hosts_compliant: int
    status_counts: list[tuple[HostStatus, int]]
    ports_total: int
    policy_applied: bool
    findings_by_severity: list[tuple[Severity, int]]
    findings_active: int
    findings_waived: int
    problems_by_severity: list[tuple[Severity, int]]
    problems_total: int
    verdicts_total: int
    compliance: list[ComplianceView]
    charts: list[Chart]
    groups: list[str]
    ungrouped: bool
    kinds: list[VerdictKind]
    statuses: list[AuditStatus]
    findings: list[FindingView]
    findings_unlisted: int


def render_html(results: AuditResults) -> str:
    """Render the whole report as one HTML document with no external resources."""
    return "".join(html_chunks(results))


def html_chunks(results: AuditResults) -> Iterator[str]:
    """`render_html`'s text in the pieces the template produces, for writing as they come:
    joined, a 5,000-host report (100 MB) was held twice more, as text and as bytes."""
    groups = sorted({g for h in results.hosts for g in h.groups})
    hosts = _host_views(rate_hosts(results), {g: i for i, g in enumerate(groups)})
    css, js = _assets()
    template = _environment().get_template("index.html.j2")
    return template.generate(
        r=results,
        hosts=hosts,
        summary=_summary(results, hosts, groups),
        scan=_scan_view(results.scan, hosts) if results.scan else None,
        drift=_drift_view(results, hosts),
        severities=SEVERITIES,
        duration=_duration(results.started_at, results.finished_at),
        css=Markup(css),  # noqa: S704 - a package file, not data
        js=Markup(js),  # noqa: S704 - a package file, not data
        csp=content_security_policy(css, js),
        no_severity=NO_SEVERITY,
        integrity_css=INTEGRITY_CSS,
        bind_css=BIND_CSS,
    )


def content_security_policy(css: str, js: str) -> str:
    """Nothing may load; only this exact stylesheet and script may apply or run."""
    return (
        "default-src 'none'; "
        f"style-src '{csp_hash(css)}'; "
        f"script-src '{csp_hash(js)}'; "
        "base-uri 'none'; form-action 'none'"
    )


def csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def finding_anchor(finding_id: str) -> str:
    """A stable, attribute-safe id for a finding: the id itself when it is tame, else a digest.

    Tame ids stay readable so a ticket can link `index.html#finding-<id>`; any other id
    keeps a slug of it for humans and a digest of the exact id for uniqueness.
    """
    if _SAFE_ID.fullmatch(finding_id):
        return f"finding-{finding_id}"
    digest = hashlib.sha256(finding_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    slug = _slug(finding_id, "")[:40]
    return f"finding-{slug}-{digest}" if slug else f"finding-{digest}"


@cache
def _assets() -> tuple[str, str]:
    base = resources.files("fleetaudit.report") / "assets"
    css = (base / "report.css").read_text(encoding="utf-8")
    js = (base / "report.js").read_text(encoding="utf-8")
    # Inlined verbatim, so neither may close its own element.
    if "</style" in css.lower() or "</script" in js.lower() or "<!--" in js:
        raise ValueError("report assets must not contain </style, </script or <!--")
    return css, js


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("fleetaudit", "report/templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_inert,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["plain"] = _plain
    env.filters["lines"] = _lines
    env.filters["tight"] = _tight
    return env


def _inert(value: object) -> object:
    """Make a value safe to print: None as a dash, invisible characters as styled escapes.

    Returns Markup only after escaping every data piece itself, so autoescape
    (which runs after finalize) cannot be bypassed through this hook.
    """
    if value is None:
        return Markup('<span class="nil">—</span>')
    if isinstance(value, Markup) or not isinstance(value, str) or value.isprintable():
        return value
    if not any(is_invisible(ch) for ch in value):
        return value  # only spaces such as NBSP made isprintable() say no
    out: list[str] = []
    for ch in value:
        if is_invisible(ch):
            out.append(f'<span class="ctl">{visible(ch)}</span>')
        else:
            out.append(str(escape(ch)))
    return Markup("".join(out))  # noqa: S704 - every data character was escaped above


def _tight(value: Markup) -> Markup:
    """Drop newlines between two tags of already-rendered markup.

    Data cannot be touched: autoescape turned every < and > in it into entities,
    so a raw '>' newline '<' sequence is always our own markup. Thousands of
    whitespace-only text nodes fewer make a large report parse noticeably faster.
    """
    if not isinstance(value, Markup):
        raise TypeError("tight works on autoescaped markup only")
    return Markup(_TIGHT.sub("><", value))  # noqa: S704 - only whitespace between tags removed


def _plain(value: str) -> str:
    """Escapes without markup, for places that show text only (the window title)."""
    return visible(value)


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _lines(value: str) -> list[str]:
    """Multi-line text (stderr in an error) keeps its lines instead of showing \\n escapes."""
    return value.splitlines() or [""]


def _duration(start: datetime, end: datetime) -> str | None:
    try:
        seconds = int((end - start).total_seconds())
    except TypeError:  # one naive, one aware: no honest answer
        return None
    if seconds < 0:
        return None
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _slug(name: str, empty: str = "host") -> str:
    return _SLUG_DROP.sub("-", name.lower()).strip("-")[:60] or empty


def _unique(anchor: str, used: set[str]) -> str:
    base, n = anchor, 1
    while anchor in used:  # two names may slug alike; anchors must stay unique
        n += 1
        anchor = f"{base}-{n}"
    used.add(anchor)
    return anchor


def _host_views(ratings: list[HostRating], group_index: dict[str, int]) -> list[HostView]:
    """One view per host, worst first; anchors are given in the run's order, so a host's
    link does not change when its risk does."""
    used: set[str] = set()
    views = []
    for rating in ratings:
        host = rating.host
        anchor = _unique(f"host-{_slug(host.name)}", used)
        findings = [
            FindingView(f, _unique(finding_anchor(f.id), used), finding_status(f), anchor)
            for f in sorted(host.findings, key=_finding_order)
        ]
        by_port: dict[tuple[str, int], list[FindingView]] = {}
        for fv in findings:
            if fv.finding.port is not None and fv.finding.proto is not None:
                by_port.setdefault((fv.finding.proto, fv.finding.port), []).append(fv)
        reports = sorted(host.ports, key=lambda p: (p.proto, p.port))
        rows = [
            _port_row(
                host,
                p,
                _unique(f"{anchor}-{p.proto}-{p.port}", used),
                by_port.pop((p.proto, p.port), []),
            )
            for p in reports
        ]
        placed = {id(fv) for row in rows for fv in row.findings}
        active = [fv.finding for fv in findings if fv.status is not FindingStatus.WAIVED]
        problems = [v for row in rows for v in row.verdicts if is_problem(v)]
        counts = Counter(f.severity for f in active)
        audit = rating.audit
        views.append(
            HostView(
                host=host,
                index=rating.index,
                anchor=anchor,
                rows=rows,
                worst=_worst_css(v for row in rows for v in row.verdicts),
                finding_counts=[(s, counts[s]) for s in SEVERITIES if counts[s]],
                waived=len(findings) - len(active),
                kinds=[k for k in VerdictKind if any(v.kind is k for v in problems)],
                rating=rating,
                worst_rank=RISK_RANK[rating.risk],
                audit_css=audit_css(rating),
                raw_status=None if host.status.value in (audit.value, "ok") else host.status,
                group_ids=" ".join(str(group_index[g]) for g in dict.fromkeys(host.groups)),
                status_rank=len(HostStatus) * list(AuditStatus).index(audit)
                + _STATUS_ORDER[host.status],
                findings=findings,
                host_findings=[fv for fv in findings if id(fv) not in placed],
                seen=_seen(host),
            )
        )
    by_run = {v.rating.index: v for v in views}
    return [
        dataclasses.replace(by_run[r.index], index=i)
        for i, r in enumerate(worst_first(v.rating for v in views))
    ]


def _finding_order(f: Finding) -> tuple[bool, int, str, int, str, str]:
    return (
        not f.active,
        SEVERITY_RANK[f.severity],
        f.proto or "",
        -1 if f.port is None else f.port,
        f.rule,
        f.id,
    )


def _port_row(
    host: HostResult, report: PortReport, anchor: str, findings: list[FindingView]
) -> PortRow:
    processes = {p.pid: p for p in host.internal.processes} if host.internal else {}
    # Group sockets by PID; a socket without a PID stands alone (its own key).
    groups: dict[tuple[int | None, int], list[ListenerEvidence]] = {}
    for i, ev in enumerate(report.listeners):
        groups.setdefault((ev.pid, 0) if ev.pid is not None else (None, i), []).append(ev)
    listeners = []
    for (pid, _), sockets in groups.items():
        process = next((ev.process for ev in sockets if ev.process), None)
        if process is None and pid is not None:
            process = processes.get(pid)
        listeners.append(_listener_row(sockets, pid, process))
    verdicts = sorted(report.verdicts, key=lambda v: SEVERITY_RANK[v.severity])
    return PortRow(
        report=report,
        anchor=anchor,
        listeners=listeners,
        verdicts=verdicts,
        worst=_worst_css(verdicts),
        external_note=_external_note(host.external, report),
        internal_note="no listener found inside" if host.internal else "inside not collected",
        integrity=[v for v in verdicts if v.kind is VerdictKind.MODIFIED_BINARY],
        findings=findings,
    )


def _listener_row(
    sockets: list[ListenerEvidence], pid: int | None, process: ProcessInfo | None
) -> ListenerRow:
    # shlex quoting keeps argv boundaries visible: a one-element argv with
    # spaces (a rewritten process title) must not look like several arguments.
    cmdline = shlex.join(process.cmdline) if process and process.cmdline else None
    libraries = process.libraries if process else []
    flagged = [m for m in libraries if m.deleted or m.suspicious is not None]
    env_names = process.env_names if process else []
    return ListenerRow(
        sockets=sockets,
        pid=pid,
        process=process,
        cmdline=cmdline,
        flagged_libs=flagged,
        other_libs=len(libraries) - len(flagged),
        env=" ".join(shlex.quote(n) for n in env_names) if env_names else None,
    )


def _seen(host: HostResult) -> SeenView | None:
    """The host's 'what we could see' block; None when the inside says nothing beyond tools."""
    internal = host.internal
    if internal is None:
        return None
    coverage, system = internal.coverage, internal.system
    if (
        not (coverage or system or internal.bind_results or internal.nat_forwards)
        and not internal.disagreements
    ):
        return None
    os_name = None
    if system and (system.os_id is not None or system.os_version_id is not None):
        os_name = " ".join(x for x in (system.os_id, system.os_version_id) if x is not None)
    return SeenView(
        os=os_name,
        euid=system.euid if system else None,
        sudo=system.sudo if system else None,
        sources=coverage.sources if coverage else internal.tools,
        privileged=coverage.privileged if coverage else None,
        missing=list(
            dict.fromkeys([*internal.missing_tools, *(coverage.missing_tools if coverage else [])])
        ),
        notes=coverage.notes if coverage else [],
        disagreements=internal.disagreements,
        binds=sorted(internal.bind_results, key=lambda b: (b.proto, b.port, b.address)),
        nat=internal.nat_forwards,
    )


def _external_note(external: ExternalHost | None, report: PortReport) -> str:
    """Tell 'nmap saw it closed' from 'nmap never looked': they mean different things."""
    if external is None:
        return "no external scan of this host"
    if not external.scanned:
        return "not listed by nmap"
    if not external.was_scanned(report.proto, report.port):
        return "not scanned from outside (outside nmap's port ranges)"
    state = external.unlisted_state(report.proto)
    return f"{state} (not listed by nmap)" if state else "not listed by nmap"


def _worst_css(verdicts: Iterable[Verdict]) -> str:
    """CSS class of the most severe verdict; CONSISTENT alone reads as 'ok', none as 'none'."""
    items = list(verdicts)
    if not items:
        return "none"
    if not any(is_problem(v) for v in items):
        return "ok"
    return str(worst(v.severity for v in items if is_problem(v)))


def audit_css(rating: HostRating) -> str:
    """Badge colour of a host's audit status: green only for a healthy host (complete and
    below medium risk), so a complete host with a critical finding never looks fine."""
    if rating.healthy:
        return "ok"
    if rating.audit is AuditStatus.UNREACHABLE and rating.host.status is HostStatus.HOST_DOWN:
        return "down"
    return AUDIT_CSS[rating.audit]


def _summary(results: AuditResults, hosts: list[HostView], groups: list[str]) -> Summary:
    statuses = Counter(h.status for h in results.hosts)
    audits = Counter(hv.rating.audit for hv in hosts)
    verdicts = [v for h in hosts for row in h.rows for v in row.verdicts]
    problems = [v for v in verdicts if is_problem(v)]
    findings = sorted(
        (fv for h in hosts for fv in h.findings),
        key=lambda fv: (fv.status is FindingStatus.WAIVED, SEVERITY_RANK[fv.finding.severity]),
    )
    active = [fv.finding for fv in findings if fv.status is not FindingStatus.WAIVED]
    by_severity = Counter(f.severity for f in active)
    problem_severity = Counter(v.severity for v in problems)
    return Summary(
        hosts_total=len(results.hosts),
        hosts_complete=audits[AuditStatus.COMPLETE],
        hosts_partial=audits[AuditStatus.PARTIAL],
        hosts_unreachable=audits[AuditStatus.UNREACHABLE],
        hosts_serious=sum(hv.rating.serious for hv in hosts),
        hosts_compliant=sum(h.compliant is True for h in results.hosts),
        status_counts=[(s, statuses[s]) for s in HostStatus if statuses[s]],
        ports_total=sum(len(h.ports) for h in results.hosts),
        policy_applied=policy_applied(results),
        findings_by_severity=[(s, by_severity[s]) for s in SEVERITIES],
        findings_active=len(active),
        findings_waived=len(findings) - len(active),
        problems_by_severity=[(s, problem_severity[s]) for s in SEVERITIES],
        problems_total=len(problems),
        verdicts_total=len(verdicts),
        compliance=[_compliance(c) for c in _fleet_first(results.compliance)],
        charts=_charts(hosts, verdicts, active),
        groups=groups,
        ungrouped=any(not h.groups for h in results.hosts),
        kinds=[k for k in VerdictKind if any(v.kind is k for v in problems)],
        statuses=[a for a in AuditStatus if audits[a]],
        findings=findings[:MAX_LISTED_FINDINGS],
        findings_unlisted=max(0, len(findings) - MAX_LISTED_FINDINGS),
    )


def scan_messages(host: HostResult) -> list[str]:
    """What the scan said went wrong for this host: scan-stage errors, then its view's own."""
    messages = [e.message for e in host.errors if e.stage is Stage.SCAN]
    if host.external is not None:
        messages += [m for m in host.external.errors if m not in messages]
        if host.external.timed_out and not host.external.errors:
            messages.append("nmap host timeout: no port results for this host")
    return messages


def _scan_view(run: ScanRun, hosts: list[HostView]) -> ScanView:
    problems = [ScanProblem(hv.host, hv.anchor, messages, hv) for hv in hosts
                if (messages := scan_messages(hv.host))]
    return ScanView(
        run=run,
        commands=run.commands or ([run.command] if run.command else []),
        evidence=[f"{EVIDENCE_DIR}/{name}" for name in run.evidence],
        problems=problems[:MAX_LISTED_SCAN_PROBLEMS],
        problems_unlisted=max(0, len(problems) - MAX_LISTED_SCAN_PROBLEMS),
    )


def _fleet_first(summaries: list[ComplianceSummary]) -> list[ComplianceSummary]:
    return sorted(summaries, key=lambda c: (c.group is not None, c.group or ""))


def _compliance(c: ComplianceSummary) -> ComplianceView:
    percent = round(100 * c.hosts_compliant / c.hosts_total) if c.hosts_total > 0 else 100
    failing = sorted((o for o in c.rules if not o.passed), key=lambda o: (-o.findings, o.rule))
    return ComplianceView(
        label="whole fleet" if c.group is None else c.group,
        fleet=c.group is None,
        summary=c,
        percent=max(0, min(100, percent)),
        failing=failing,
        passing=len(c.rules) - len(failing),
    )


def _charts(hosts: list[HostView], verdicts: list[Verdict], active: list[Finding]) -> list[Chart]:
    charts = []
    if active:
        by_rule: dict[str, Counter[Severity]] = {}
        for f in active:
            by_rule.setdefault(f.rule, Counter())[f.severity] += 1
        charts.append(
            bar_chart(
                "Active findings by rule",
                [
                    (rule, [(s.value, s.value, counts[s]) for s in SEVERITIES])
                    for rule, counts in by_rule.items()
                ],
                legend=[(s.value, s.value) for s in SEVERITIES],
            )
        )
    by_kind: dict[VerdictKind, Counter[Severity]] = {}
    for v in verdicts:
        by_kind.setdefault(v.kind, Counter())[v.severity] += 1
    charts.append(
        bar_chart(
            "Verdicts by kind",
            [
                (
                    kind.value,
                    [
                        ("ok" if kind is VerdictKind.CONSISTENT else s.value, s.value, counts[s])
                        for s in SEVERITIES
                    ],
                )
                for kind, counts in by_kind.items()
            ],
            legend=[("ok", "consistent"), *((s.value, s.value) for s in SEVERITIES)],
            empty="No verdicts.",
            max_bars=len(VerdictKind),
        )
    )
    # One bar per audit status, split by risk: green only where the host is healthy.
    by_audit: dict[AuditStatus, Counter[Risk]] = {}
    for hv in hosts:
        by_audit.setdefault(hv.rating.audit, Counter())[hv.rating.risk] += 1
    charts.append(
        bar_chart(
            "Hosts by audit status and risk",
            [
                (
                    audit.value,
                    [(_risk_fill(audit, risk), risk.value, counts[risk]) for risk in Risk],
                )
                for audit in AuditStatus
                if (counts := by_audit.get(audit))
            ],
            legend=[
                *((s.value, s.value) for s in SEVERITIES[: RISK_RANK[Risk.MEDIUM] + 1]),
                ("ok", "healthy"),
                ("soft", "lower"),
            ],
            sort=False,
            empty="No hosts in this run.",
        )
    )
    return charts


def _risk_fill(audit: AuditStatus, risk: Risk) -> str:
    """Medium and worse in their colours; below it green when complete, grey otherwise."""
    if RISK_RANK[risk] <= RISK_RANK[Risk.MEDIUM]:
        return risk.value
    return "ok" if audit is AuditStatus.COMPLETE else "soft"


def _drift_view(results: AuditResults, hosts: list[HostView]) -> DriftView | None:
    """The "changed since" section, its rows linked to this page's hosts, ports (their
    evidence chains) and findings."""
    if results.drift is None:
        return None
    return drift_view(
        results.drift,
        {hv.host.name: hv.anchor for hv in hosts},
        {(hv.host.name, row.report.proto, row.report.port): row.anchor
         for hv in hosts for row in hv.rows},
        {fv.finding.id: fv.anchor for hv in hosts for fv in hv.findings},
    )
