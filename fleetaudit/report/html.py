"""HTML report: one self-contained page a security team can read, archive and hand on.

Everything a host or a banner said is data. Autoescape covers markup; `_inert`,
installed as the environment's finalize hook so no template expression can
forget it, also shows control, format and bidi characters as visible escapes,
so a banner can neither break the page nor disguise what it says.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from fleetaudit.models import (
    AuditResults,
    ExternalHost,
    HostResult,
    HostStatus,
    ListenerEvidence,
    PortReport,
    ProcessInfo,
    Severity,
    Verdict,
    VerdictKind,
)

_SEVERITIES = list(Severity)
_RANK = {sev: i for i, sev in enumerate(_SEVERITIES)}
# Characters that are invisible, reorder text, or are invalid in HTML: shown escaped.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
_SLUG_DROP = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class ListenerRow:
    """One process and every socket of it on this port (0.0.0.0 and :: are one story)."""

    sockets: list[ListenerEvidence]
    pid: int | None
    process: ProcessInfo | None
    cmdline: str | None


@dataclass(frozen=True)
class PortRow:
    report: PortReport
    listeners: list[ListenerRow]
    verdicts: list[Verdict]
    worst: str
    # Why a side is empty, in words: "never looked" and "looked, found nothing" differ.
    external_note: str
    internal_note: str


@dataclass(frozen=True)
class HostView:
    host: HostResult
    anchor: str
    rows: list[PortRow]
    worst: str
    severity_counts: list[tuple[Severity, int]]


@dataclass(frozen=True)
class KindRow:
    kind: VerdictKind
    counts: list[int]
    total: int
    css: str


@dataclass(frozen=True)
class Summary:
    hosts_total: int
    hosts_ok: int
    hosts_not_ok: int
    status_counts: list[tuple[HostStatus, int]]
    ports_total: int
    severity_totals: list[tuple[Severity, int]]
    kind_rows: list[KindRow]
    verdicts_total: int


def render_html(results: AuditResults) -> str:
    """Render the whole report as one HTML document with no external resources."""
    hosts = _host_views(results.hosts)
    template = _environment().get_template("index.html.j2")
    return template.render(
        r=results,
        hosts=hosts,
        summary=_summary(results, hosts),
        severities=_SEVERITIES,
        duration=_duration(results.started_at, results.finished_at),
    )


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
    if not any(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in value):
        return value  # only spaces such as NBSP made isprintable() say no
    out: list[str] = []
    for ch in value:
        if unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
            out.append(f'<span class="ctl">{_visible_escape(ch)}</span>')
        else:
            out.append(str(escape(ch)))
    return Markup("".join(out))  # noqa: S704 - every data character was escaped above


def _plain(value: str) -> str:
    """Escapes without markup, for places that show text only (the window title)."""
    if value.isprintable():
        return value
    return "".join(
        _visible_escape(ch) if unicodedata.category(ch) in _INVISIBLE_CATEGORIES else ch
        for ch in value
    )


def _visible_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


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


def _slug(name: str) -> str:
    return _SLUG_DROP.sub("-", name.lower()).strip("-")[:60] or "host"


def _host_views(hosts: list[HostResult]) -> list[HostView]:
    used: set[str] = set()
    views = []
    for host in hosts:
        base = anchor = f"host-{_slug(host.name)}"
        n = 1
        while anchor in used:  # two names may slug alike; anchors must stay unique
            n += 1
            anchor = f"{base}-{n}"
        used.add(anchor)
        rows = [_port_row(host, p) for p in sorted(host.ports, key=lambda p: (p.proto, p.port))]
        counts = Counter(v.severity for row in rows for v in row.verdicts)
        views.append(
            HostView(
                host=host,
                anchor=anchor,
                rows=rows,
                worst=_worst(v for row in rows for v in row.verdicts),
                severity_counts=[(s, counts[s]) for s in _SEVERITIES if counts[s]],
            )
        )
    return views


def _port_row(host: HostResult, report: PortReport) -> PortRow:
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
    verdicts = sorted(report.verdicts, key=lambda v: _RANK[v.severity])
    return PortRow(
        report=report,
        listeners=listeners,
        verdicts=verdicts,
        worst=_worst(verdicts),
        external_note=_external_note(host.external, report),
        internal_note="no listener found inside" if host.internal else "inside not collected",
    )


def _listener_row(
    sockets: list[ListenerEvidence], pid: int | None, process: ProcessInfo | None
) -> ListenerRow:
    # shlex quoting keeps argv boundaries visible: a one-element argv with
    # spaces (a rewritten process title) must not look like several arguments.
    cmdline = shlex.join(process.cmdline) if process and process.cmdline else None
    return ListenerRow(sockets=sockets, pid=pid, process=process, cmdline=cmdline)


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


def _worst(verdicts: Iterable[Verdict]) -> str:
    """CSS class of the most severe verdict; CONSISTENT alone reads as 'ok', none as 'none'."""
    items = list(verdicts)
    if not items:
        return "none"
    if all(v.kind is VerdictKind.CONSISTENT for v in items):
        return "ok"
    return str(min((v.severity for v in items), key=_RANK.__getitem__))


def _summary(results: AuditResults, hosts: list[HostView]) -> Summary:
    statuses = Counter(h.status for h in results.hosts)
    verdicts = [v for h in hosts for row in h.rows for v in row.verdicts]
    by_severity = Counter(v.severity for v in verdicts)
    by_kind: dict[VerdictKind, Counter[Severity]] = {}
    for v in verdicts:
        by_kind.setdefault(v.kind, Counter())[v.severity] += 1
    kind_rows = [
        KindRow(
            kind=kind,
            counts=[by_kind[kind][s] for s in _SEVERITIES],
            total=sum(by_kind[kind].values()),
            css=_worst(v for v in verdicts if v.kind is kind),
        )
        for kind in VerdictKind
        if kind in by_kind
    ]
    return Summary(
        hosts_total=len(results.hosts),
        hosts_ok=statuses[HostStatus.OK],
        hosts_not_ok=len(results.hosts) - statuses[HostStatus.OK],
        status_counts=[(s, statuses[s]) for s in HostStatus if statuses[s]],
        ports_total=sum(len(h.ports) for h in results.hosts),
        severity_totals=[(s, by_severity[s]) for s in _SEVERITIES],
        kind_rows=kind_rows,
        verdicts_total=len(verdicts),
    )
