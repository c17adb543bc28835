"""Reports: pure rendering of AuditResults into the formats a security team hands on.

html (index.html), json (results.json), csv (findings.csv), junit (junit.xml),
md (summary.md) and sarif (findings.sarif); `render(results, fmt)` renders one,
`write_report` writes the chosen ones and is the only function touching the
filesystem. results.schema.json describes results.json; `fleetaudit.report.schema`
regenerates it.

Importing the package loads nothing else: each name below loads its module on first use,
so reading a results.json or naming a format (the command line's `--help`) does not
load the HTML renderer's template engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetaudit.lazy import lazy_attributes

if TYPE_CHECKING:
    from fleetaudit.report.csv_findings import render_csv
    from fleetaudit.report.format_names import (
        DEFAULT_FORMATS,
        Format,
        FormatChoice,
        parse_formats,
    )
    from fleetaudit.report.formats import FILENAMES, RENDERERS, render
    from fleetaudit.report.html import render_html
    from fleetaudit.report.json_results import results_from_json, results_to_json
    from fleetaudit.report.junit import render_junit
    from fleetaudit.report.markdown import render_markdown
    from fleetaudit.report.sarif import render_sarif
    from fleetaudit.report.write import ReportPaths, write_report

_LAZY = {
    "DEFAULT_FORMATS": "fleetaudit.report.format_names",
    "Format": "fleetaudit.report.format_names",
    "FormatChoice": "fleetaudit.report.format_names",
    "parse_formats": "fleetaudit.report.format_names",
    "FILENAMES": "fleetaudit.report.formats",
    "RENDERERS": "fleetaudit.report.formats",
    "render": "fleetaudit.report.formats",
    "render_csv": "fleetaudit.report.csv_findings",
    "render_html": "fleetaudit.report.html",
    "results_from_json": "fleetaudit.report.json_results",
    "results_to_json": "fleetaudit.report.json_results",
    "render_junit": "fleetaudit.report.junit",
    "render_markdown": "fleetaudit.report.markdown",
    "render_sarif": "fleetaudit.report.sarif",
    "ReportPaths": "fleetaudit.report.write",
    "write_report": "fleetaudit.report.write",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "DEFAULT_FORMATS",
    "FILENAMES",
    "RENDERERS",
    "Format",
    "FormatChoice",
    "ReportPaths",
    "parse_formats",
    "render",
    "render_csv",
    "render_html",
    "render_junit",
    "render_markdown",
    "render_sarif",
    "results_from_json",
    "results_to_json",
    "write_report",
]
