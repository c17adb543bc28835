"""What changed since the last run, as each format shows it: text lines (`fleetaudit diff`),
a summary.md section, and the HTML section's rows and compliance-trend chart.

Pure. The HTML rows link into the report (a port's evidence chain, a finding) through
anchors the page computed; the trend is geometry for inline SVG, as charts.py's bars:
only numbers reach attributes, run ids and dates are text content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from fleetaudit.drift import (
    ChangeKind,
    Drift,
    HostEvent,
    PortDrift,
    TrendPoint,
)
from fleetaudit.models import Proto, Severity

TREND_WIDTH = 560
TREND_HEIGHT = 150
TREND_LEFT = 40  # room for the % axis labels
TREND_RIGHT = 16
TREND_TOP = 12
TREND_BOTTOM = 28  # room for the first and last dates

KIND_WORDS: dict[ChangeKind, str] = {
    ChangeKind.OPENED: "opened",
    ChangeKind.CLOSED: "closed",
    ChangeKind.SERVICE_CHANGED: "service changed",
    ChangeKind.ADDRESS_CHANGED: "address changed",
    ChangeKind.PROCESS_CHANGED: "process changed",
    ChangeKind.USER_CHANGED: "user changed",
    ChangeKind.BINARY_REPLACED: "binary replaced",
    ChangeKind.BINARY_UPGRADED: "binary upgraded",
    ChangeKind.FINDING_NEW: "new finding",
    ChangeKind.FINDING_RESOLVED: "finding resolved",
}
# Badge colours (the report's b-* classes): what grew worse, what got better, what is news.
KIND_CSS: dict[ChangeKind, str] = {
    ChangeKind.OPENED: "high",
    ChangeKind.CLOSED: "ok",
    ChangeKind.SERVICE_CHANGED: "medium",
    ChangeKind.ADDRESS_CHANGED: "medium",
    ChangeKind.PROCESS_CHANGED: "high",
    ChangeKind.USER_CHANGED: "medium",
    ChangeKind.BINARY_REPLACED: "critical",
    ChangeKind.BINARY_UPGRADED: "soft",
    ChangeKind.FINDING_NEW: "high",
    ChangeKind.FINDING_RESOLVED: "ok",
}
EVENT_WORDS: dict[HostEvent, str] = {
    HostEvent.ADDED: "added to the inventory",
    HostEvent.GONE: "gone from the inventory",
    HostEvent.UNREACHABLE: "unreachable now, audited before",
    HostEvent.BACK: "audited again, unreachable before",
}
EVENT_CSS: dict[HostEvent, str] = {
    HostEvent.ADDED: "warn",
    HostEvent.GONE: "soft",
    HostEvent.UNREACHABLE: "bad",
    HostEvent.BACK: "ok",
}


def when(value: datetime) -> str:
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def since(drift: Drift) -> str:
    return f"{drift.baseline.run_id} ({when(drift.baseline.started_at)})"


def change_words(kind: ChangeKind, side: str | None) -> str:
    """"opened outside", "closed inside"; the other kinds have one side only."""
    if side and kind in (ChangeKind.OPENED, ChangeKind.CLOSED):
        return f"{KIND_WORDS[kind]} {side}"
    return KIND_WORDS[kind]


def counts(drift: Drift) -> str:
    changes = drift.changes
    hosts = len(drift.hosts)
    events = sum(h.event is not None for h in drift.hosts)
    parts = [f"{len(changes)} change{'s' if len(changes) != 1 else ''} on {hosts} "
             f"host{'s' if hosts != 1 else ''}"]
    if events:
        parts.append(f"{events} host{'s' if events != 1 else ''} added, gone or unreachable")
    parts.append(f"findings: {drift.findings_new} new, {drift.findings_resolved} resolved, "
                 f"{drift.findings_still_open} still open")
    return "; ".join(parts)


# --- text (fleetaudit diff) ------------------------------------------------------------


def text_lines(drift: Drift) -> list[str]:
    """Plain lines, host by host; the caller prints them (escaping what the hosts said)."""
    head = f"run {drift.current.run_id} ({when(drift.current.started_at)})"
    if not drift.changed:
        return [f"{head}: nothing changed since {since(drift)}",
                f"findings: {drift.findings_still_open} still open"]
    out = [f"{head}: changed since {since(drift)}", counts(drift)]
    for host in drift.hosts:
        line = f"  {host.host} ({host.address})"
        if host.event is not None:
            line += f": {EVENT_WORDS[host.event]}"
        out.append(line)
        for port in host.ports:
            out += _change_lines(f"    {port.label:<10}", port)
        for change in host.changes:
            words = _change_text(change.kind, change.side, change.severity)
            out.append(f"    {'(host)':<10}{words}: {change.message}")
    return out


def _change_lines(lead: str, port: PortDrift) -> list[str]:
    out = []
    for i, change in enumerate(port.changes):
        prefix = lead if i == 0 else " " * len(lead)
        out.append(f"{prefix}{_change_text(change.kind, change.side, change.severity)}: "
                   f"{change.message}")
    return out


def _change_text(kind: ChangeKind, side: str | None, severity: Severity | None) -> str:
    words = change_words(kind, side)
    if kind is ChangeKind.BINARY_REPLACED and severity is not None:
        words += f" [{severity.value} finding]"
    return words


# --- summary.md ------------------------------------------------------------------------


def markdown_lines(drift: Drift, code: Callable[..., str]) -> list[str]:
    """The summary's section; `code` is markdown.code (every host value a code span)."""
    title = f"## Changed since {code(drift.baseline.run_id, table=False)} " \
            f"({when(drift.baseline.started_at)})"
    out = [title, ""]
    if not drift.changed:
        out += ["Nothing changed.", "",
                f"Findings: {drift.findings_still_open} still open.", ""]
        return out + _trend_markdown(drift.trend)
    out += [counts(drift) + ".", "",
            "| host | port | change | what |", "| --- | --- | --- | --- |"]
    for host, port, change in drift.changes:
        where = port.label if port is not None else "—"
        out.append(f"| {code(host.host)} | {where} | "
                   f"{_change_text(change.kind, change.side, change.severity)} "
                   f"| {code(change.message)} |")
    events = [h for h in drift.hosts if h.event is not None]
    if events:
        out += ["", "| host | address | what |", "| --- | --- | --- |"]
        out += [f"| {code(h.host)} | {code(h.address)} | {EVENT_WORDS[h.event]} |"
                for h in events if h.event is not None]
    return [*out, "", *_trend_markdown(drift.trend)]


def _trend_markdown(points: list[TrendPoint]) -> list[str]:
    if len(points) < 2:
        return []
    cells = ", ".join(f"{p.percent}%" for p in points)
    return [f"Compliance over the last {len(points)} runs, oldest first: {cells}.", ""]


# --- HTML ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftRow:
    host: str
    host_anchor: str | None  # the host's section; None: gone from this report
    port: str | None
    port_anchor: str | None  # the port's evidence chain; None: the port is not in this run
    kind: str
    words: str
    css: str
    message: str
    severity: Severity | None
    finding_anchor: str | None


@dataclass(frozen=True)
class EventRow:
    host: str
    host_anchor: str | None
    address: str
    words: str
    css: str


@dataclass(frozen=True)
class TrendMark:
    x: float
    y: float
    label: str  # run id and date
    percent: int
    compliant: int
    total: int
    findings: int
    current: bool


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    points: str  # the polyline's "x,y x,y ..."
    marks: list[TrendMark]
    grid: list[tuple[float, str]]  # (y, "100%")
    first: str
    last: str
    bottom: int
    left: int
    right: int


@dataclass(frozen=True)
class DriftView:
    drift: Drift
    since: str
    counts: str
    rows: list[DriftRow]
    events: list[EventRow]
    trend: TrendChart | None


def drift_view(drift: Drift, hosts: Mapping[str, str],
               ports: Mapping[tuple[str, Proto, int], str],
               findings: Mapping[str, str]) -> DriftView:
    """`hosts`: host name -> anchor; `ports`: (host, proto, port) -> the row's anchor;
    `findings`: finding id -> anchor, as the page made them."""
    rows = []
    for host, port, change in drift.changes:
        rows.append(DriftRow(
            host=host.host, host_anchor=hosts.get(host.host),
            port=port.label if port is not None else None,
            port_anchor=ports.get((host.host, port.proto, port.port)) if port else None,
            kind=change.kind.value, words=change_words(change.kind, change.side),
            css=KIND_CSS[change.kind], message=change.message, severity=change.severity,
            finding_anchor=findings.get(change.finding_id) if change.finding_id else None))
    events = [EventRow(h.host, hosts.get(h.host), h.address, EVENT_WORDS[h.event],
                       EVENT_CSS[h.event])
              for h in drift.hosts if h.event is not None]
    return DriftView(drift=drift, since=since(drift), counts=counts(drift), rows=rows,
                     events=events, trend=trend_chart(drift.trend, drift.current.run_id))


def trend_chart(points: list[TrendPoint], current: str | None = None) -> TrendChart | None:
    """Compliance (% of hosts compliant) per run, oldest left; None under two runs."""
    if len(points) < 2:
        return None
    area_w = TREND_WIDTH - TREND_LEFT - TREND_RIGHT
    area_h = TREND_HEIGHT - TREND_TOP - TREND_BOTTOM
    step = area_w / (len(points) - 1)
    marks = []
    for i, p in enumerate(points):
        x = round(TREND_LEFT + i * step, 1)
        y = round(TREND_TOP + area_h * (100 - p.percent) / 100, 1)
        marks.append(TrendMark(x=x, y=y, label=f"{p.run_id} ({when(p.started_at)})",
                               percent=p.percent, compliant=p.hosts_compliant,
                               total=p.hosts_total, findings=p.findings_active,
                               current=p.run_id == current))
    grid = [(round(TREND_TOP + area_h * (100 - pct) / 100, 1), f"{pct}%")
            for pct in (100, 50, 0)]
    return TrendChart(
        width=TREND_WIDTH, height=TREND_HEIGHT,
        points=" ".join(f"{m.x},{m.y}" for m in marks), marks=marks, grid=grid,
        first=points[0].started_at.astimezone(UTC).strftime("%Y-%m-%d"),
        last=points[-1].started_at.astimezone(UTC).strftime("%Y-%m-%d"),
        bottom=TREND_HEIGHT - 8, left=TREND_LEFT, right=TREND_WIDTH - TREND_RIGHT)
