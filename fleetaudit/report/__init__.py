"""Reports: pure rendering of AuditResults into the formats a security team hands on.

html (index.html), json (results.json), csv (findings.csv), junit (junit.xml),
md (summary.md) and sarif (findings.sarif); `render(results, fmt)` renders one,
`write_report` writes the chosen ones and is the only function touching the
filesystem. results.schema.json describes results.json; `fleetaudit.report.schema`
regenerates it.
"""

from fleetaudit.report.csv_findings import render_csv
from fleetaudit.report.formats import (
    DEFAULT_FORMATS,
    FILENAMES,
    RENDERERS,
    Format,
    FormatChoice,
    parse_formats,
    render,
)
from fleetaudit.report.html import render_html
from fleetaudit.report.json_results import results_from_json, results_to_json
from fleetaudit.report.junit import render_junit
from fleetaudit.report.markdown import render_markdown
from fleetaudit.report.sarif import render_sarif
from fleetaudit.report.write import ReportPaths, write_report

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
