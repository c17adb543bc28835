"""parse_proc_texts looks each line's file name up instead of matching a regex per line
(issue 13: most of the parse at 5,000 hosts); for any output it gives what the regex
definition gives, or fails where it fails."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.parsers.procbatch import parse_proc_texts

_TEXT_LINE = re.compile(r"/proc/(?P<pid>\d{1,10})/(?P<kind>status|stat|cgroup):(?P<line>.*)",
                        re.DOTALL)


def by_regex(text: str, pids: list[int]) -> dict[tuple[int, str], str]:
    lines: dict[tuple[int, str], list[str]] = {}
    for number, record in enumerate(text.split("\n"), start=1):
        if record:
            match = _TEXT_LINE.fullmatch(record)
            if match is None:
                raise ParseError(f"line {number}")
            lines.setdefault((int(match["pid"]), match["kind"]), []).append(match["line"])
    return {(pid, kind): "\n".join(lines[pid, kind]) + "\n" if (pid, kind) in lines else ""
            for pid in pids for kind in ("status", "stat", "cgroup")}


NAMES = st.sampled_from(["/proc/12/status", "/proc/12/stat", "/proc/7/cgroup", "/proc/012/stat",
                         "/proc/99/status", "/proc/12/statm", "/proc/12", "proc/12/stat", ""])
LINES = st.lists(st.tuples(NAMES, st.sampled_from([":", ""]),
                           st.text(alphabet="Name:\tpython ()0:/\r", max_size=10)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(lines=LINES)
def test_parse_proc_texts_is_the_regex_definition(lines):
    text = "\n".join(name + colon + rest for name, colon, rest in lines)
    pids = [12, 7]
    try:
        want = by_regex(text, pids)
    except ParseError:
        with pytest.raises(ParseError):
            parse_proc_texts(text, pids)
        return
    assert parse_proc_texts(text, pids) == want
