"""Every report format by name: `render(results, fmt)` and the file each one is written to.

Each renderer is a pure function from AuditResults to text; `write_report` puts
the chosen ones on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from fleetaudit.errors import ConfigError
from fleetaudit.models import AuditResults
from fleetaudit.report.csv_findings import render_csv
from fleetaudit.report.html import render_html
from fleetaudit.report.json_results import results_to_json
from fleetaudit.report.junit import render_junit
from fleetaudit.report.markdown import render_markdown
from fleetaudit.report.sarif import render_sarif


class Format(StrEnum):
    HTML = "html"
    JSON = "json"
    CSV = "csv"
    JUNIT = "junit"
    MD = "md"
    SARIF = "sarif"


class FormatChoice(StrEnum):
    """What a user may ask for: any format, or all of them."""

    HTML = "html"
    JSON = "json"
    CSV = "csv"
    JUNIT = "junit"
    MD = "md"
    SARIF = "sarif"
    ALL = "all"


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
DEFAULT_FORMATS: tuple[Format, ...] = (Format.JSON, Format.HTML)


def render(results: AuditResults, fmt: Format | str) -> str:
    """Render one format by name ('html', 'json', 'csv', 'junit', 'md', 'sarif')."""
    return RENDERERS[parse_formats([fmt])[0]](results)


def parse_formats(names: Iterable[str]) -> tuple[Format, ...]:
    """Formats in a stable order, without repeats; 'all' means every one."""
    chosen: set[Format] = set()
    for name in names:
        key = str(name).strip().lower()
        if key == FormatChoice.ALL:
            chosen.update(Format)
            continue
        try:
            chosen.add(Format(key))
        except ValueError:
            known = ", ".join(c.value for c in FormatChoice)
            raise ConfigError(f"unknown report format {name!r}: choose from {known}") from None
    if not chosen:
        raise ConfigError("no report format chosen")
    return tuple(f for f in Format if f in chosen)
