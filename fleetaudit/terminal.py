"""Everything fleetaudit prints to a terminal goes through here.

Host names, addresses, banners, error messages and inventory warnings come from the
audited hosts (or whoever controls them): a host whose output reads `[/oops]` once made
rich raise MarkupError and lost a whole fleet's audit. So the consoles here never parse
markup, emoji codes or highlighting (markup=False); style is given explicitly, as Text;
and every string is shown with its control characters escaped (ANSI escapes, carriage
returns, NUL), so no host can move the cursor, rewrite a line or retitle the window.
Nothing else in fleetaudit may create a Console (a test checks).
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text

__all__ = ["clean", "err", "out", "say", "styled", "text"]

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


def _console(*, stderr: bool) -> Console:
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)


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
