"""Which collection tools a host has, from POSIX `command -v` output.

Give each name its own `command -v`: dash and busybox sh answer only for the FIRST
operand of `command -v a b c` (tests/fixtures/tools/command_v_dash_args.txt), so
a multi-name call reports every other tool missing. Use
`for t in ss netstat ...; do command -v "$t"; done`.
"""

from __future__ import annotations

from fleetaudit.errors import ParseError


def parse_command_v(text: str, wanted: list[str]) -> tuple[list[str], list[str]]:
    """-> (present, missing), both in `wanted`'s order; ParseError on a line naming none of them.

    A found program prints as its path (basename = the name), a builtin or function
    as its bare name, an alias (interactive shells) as `alias name=...`.
    """
    names = list(dict.fromkeys(wanted))
    known = set(names)
    found: set[str] = set()
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        hit = next((name for name in _answers_for(line) if name in known), None)
        if hit is None:
            shown = line if len(line) <= 120 else line[:120] + "..."
            raise ParseError(f"command -v output line {lineno}: names no wanted tool: {shown!r}")
        found.add(hit)
    return [n for n in names if n in found], [n for n in names if n not in found]


def _answers_for(line: str) -> tuple[str, ...]:
    """The names a `command -v` line can be the answer for."""
    if line.startswith("alias "):
        return (line[len("alias "):].partition("=")[0],)
    if line.startswith("/"):
        return line, line.rpartition("/")[2]  # a name asked as a path, or the program found
    return (line,)
