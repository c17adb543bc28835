"""Every report format by name: `render(results, fmt)` and the file each one is written to.

Each renderer is a pure function from AuditResults to text; `write_report` puts
the chosen ones on disk. The names (Format, FormatChoice, parse_formats) live in
format_names, light, for `--help`; they are importable from here as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from fleetaudit.models import AuditResults
from fleetaudit.report.csv_findings import render_csv
from fleetaudit.report.format_names import DEFAULT_FORMATS, Format, FormatChoice, parse_formats
from fleetaudit.report.html import render_html
from fleetaudit.report.json_results import results_to_json
from fleetaudit.report.junit import render_junit
from fleetaudit.report.markdown import render_markdown
from fleetaudit.report.sarif import render_sarif

__all__ = ["DEFAULT_FORMATS", "FILENAMES", "RENDERERS", "Format", "FormatChoice", "parse_formats",
           "render"]

RENDERERS: Mapping[Format, Callable[[AuditResults], str]] = MappingProxyType(
    {
        Format.HTML: render_html,
        Format.JSON: results_to_json,
        Format.CSV: render_csv,
        Format.JUNIT: render_junit,
        Format.MD: render_markdown,
        Format.SARIF: render_sarif,
    }
)
FILENAMES: Mapping[Format, str] = MappingProxyType(
    {
        Format.HTML: "index.html",
        Format.JSON: "results.json",
        Format.CSV: "findings.csv",
        Format.JUNIT: "junit.xml",
        Format.MD: "summary.md",
        Format.SARIF: "findings.sarif",
    }
)


def render(results: AuditResults, fmt: Format | str) -> str:
    """Render one format by name ('html', 'json', 'csv', 'junit', 'md', 'sarif')."""
    return RENDERERS[parse_formats([fmt])[0]](results)
