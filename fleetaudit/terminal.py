"""Everything fleetaudit prints to a terminal goes through here.

Host names, addresses, banners, error messages and inventory warnings come from the
audited hosts (or whoever controls them): a host whose output reads `[/oops]` once made
rich raise MarkupError and lost a whole fleet's audit. So the consoles here never parse
markup, emoji codes or highlighting (markup=False); style is given explicitly, as Text;
and every string is shown with its control characters escaped (ANSI escapes, carriage
returns, NUL), so no host can move the cursor, rewrite a line or retitle the window.
Nothing else in fleetaudit may create a Console (a test checks).

Only a terminal has a width. Written to a pipe or a file, rich would wrap at 80 columns
(or $COLUMNS), cutting paths, commands and options in two where they can be neither
pasted nor grepped: there, lines are as long as they are, here and in `--help`
(`help_options`).
"""

from __future__ import annotations

import re
import sys
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.text import Text

__all__ = ["UNWRAPPED", "clean", "err", "help_options", "out", "plural", "say", "styled",
           "text"]

# The width of a pipe or a file: wider than any line fleetaudit prints, so none is wrapped.
UNWRAPPED = 10_000

# C0 controls but tab and newline, DEL, C1 controls; and the Unicode line/paragraph
# separators and bidi overrides, which reorder or break what follows them.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object, *, lines: bool = False) -> str:
    """`value` as text that shows itself only: control characters become `\\xNN`.

    Newlines are kept only with `lines=True` (a block we built line by line); in one
    line of output a host's newline would forge a line of its own.
    """
    return (_CONTROL if lines else _CONTROL_OR_NEWLINE).sub(_escape, str(value))


def text(value: object, style: str = "", *, lines: bool = False) -> Text:
    """One cleaned piece of output, with an explicit style (never markup)."""
    return Text(clean(value, lines=lines), style=style)


def styled(*parts: object) -> Text:
    """A line from parts: a Text is kept, a (value, style) pair styled, anything else
    shown plain; every value cleaned."""
    line = Text()
    for part in parts:
        if isinstance(part, Text):
            line.append_text(part)
        elif isinstance(part, tuple):
            value, style = part
            line.append(clean(value), style=style)
        else:
            line.append(clean(part))
    return line


def plural(number: int, noun: str, nouns: str | None = None) -> str:
    """`1 port`, `3 ports`, `0 ports`: a count and its noun agreeing (`nouns` where the
    plural is not the noun plus s)."""
    return f"{number} {noun if number == 1 else nouns or noun + 's'}"


class _Console(Console):
    """Wraps to the terminal's width on a terminal, and nowhere else (asked at each print:
    the same console may write to a terminal, then to a pipe)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if options.get("width") is None:
            # rich fixes $COLUMNS as the width of every output here; it is a terminal's.
            self._width = None

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(UNWRAPPED, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


def _console(*, stderr: bool) -> Console:
    return _Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)


def help_options() -> dict[str, Any]:
    """typer.Typer's settings for help and usage errors: rich's panels on a terminal; not
    on one (a pipe, a file, a CI log), click's plain text, never wrapped, so an example
    command or option stays whole on its line instead of being cut or ellipsed to fit
    80 columns."""
    if sys.stdout.isatty():
        return {}
    return {"rich_markup_mode": None,
            "context_settings": {"terminal_width": UNWRAPPED, "max_content_width": UNWRAPPED}}


err = _console(stderr=True)
out = _console(stderr=False)


def say(*parts: object, to: Console = err, lines: bool = False, end: str = "\n") -> None:
    """Print one line built as `styled` does; with `lines=True`, parts that are blocks of
    lines we built (their newlines kept, every other control character escaped)."""
    if lines:
        to.print(Text("").join(p if isinstance(p, Text) else text(p, lines=True)
                               for p in parts), end=end)
        return
    to.print(styled(*parts), end=end)
