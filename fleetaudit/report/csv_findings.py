"""findings.csv: a spreadsheet a security team can sort, filter and turn into tickets.

One row per policy finding (`record` = finding, waived ones included with their
waiver) and, after them, one row per problem verdict (`record` = verdict: every
verdict but CONSISTENT). The verdict rows keep the file useful when no policy
was applied, and show the evidence a policy judged; filter on `record` for
either view. Hosts that could not be audited have no rows: summary.md and
junit.xml list them.

Every cell is data a host may have chosen, so a cell that a spreadsheet would
read as a formula (starting with = + - @, a tab or a carriage return) gets a
leading apostrophe, and invisible characters are shown as escapes.
"""

from __future__ import annotations

import csv
import io

from fleetaudit.models import AuditResults
from fleetaudit.report.facts import all_findings, finding_status, problem_verdicts
from fleetaudit.report.text import visible

COLUMNS = [
    "record",
    "severity",
    "rule",
    "host",
    "address",
    "groups",
    "proto",
    "port",
    "message",
    "evidence",
    "remediation",
    "status",
    "waiver_owner",
    "waiver_reason",
    "waiver_expires",
    "finding_id",
    "rules",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | None


def render_csv(results: AuditResults) -> str:
    """RFC 4180 CSV (CRLF line ends, quoted where needed), header first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in _rows(results):
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _rows(results: AuditResults) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for hf in all_findings(results):
        f, h = hf.finding, hf.host
        w = f.waiver
        rows.append(
            [
                "finding",
                f.severity.value,
                f.rule,
                h.name,
                h.address,
                ";".join(h.groups),
                f.proto.value if f.proto else None,
                f.port,
                f.message,
                "\n".join(f.evidence),
                f.remediation,
                finding_status(f).value,
                w.owner if w else None,
                w.reason if w else None,
                w.expires.isoformat() if w else None,
                f.id,
                " ".join(f.named_rules),
            ]
        )
    for hv in problem_verdicts(results):
        v, h, p = hv.verdict, hv.host, hv.port
        rows.append(
            [
                "verdict",
                v.severity.value,
                v.kind.value,
                h.name,
                h.address,
                ";".join(h.groups),
                p.proto.value,
                p.port,
                v.message,
                "\n".join(v.evidence),
                None,
                None,
                None,
                None,
                None,
                None,
                v.kind.value,
            ]
        )
    return rows


def _cell(value: Cell) -> Cell:
    if not isinstance(value, str):
        return value
    text = visible(value, keep="\n\t")
    return "'" + text if text.startswith(_FORMULA_START) else text
