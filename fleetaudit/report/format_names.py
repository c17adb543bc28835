"""The report formats by name, and what a user may ask for: no renderer imported.

Apart from fleetaudit.report.formats (which maps each name to its renderer, jinja2 for
HTML) because the command line needs the choices to build `--help`, and `--help` must
not load a template engine to list them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from fleetaudit.errors import ConfigError

__all__ = ["DEFAULT_FORMATS", "Format", "FormatChoice", "parse_formats"]


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


DEFAULT_FORMATS: tuple[Format, ...] = (Format.JSON, Format.HTML)


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
