"""Reads of many PIDs' /proc files by one command each, cut back into one text per PID.

Starting a process costs more than a small /proc read (about 1.5 ms against a fraction),
so the files every listening PID needs are read for all PIDs at once, and these
functions give each PID the text its own command would have printed, for the per-file
parsers of fleetaudit.parsers.process and .proc:

- `grep -aH '' FILES` (status, stat, cgroup): every line prefixed by the file's name.
  The names are ours (/proc/PID/KIND), and grep prefixes each physical line, so a line
  of a file (a comm holding a newline) can never pass for another file's;
- `stat -c '%n ...' PATHS` (owner; file identity of the executable): one line a path;
- `grep -azHo '^NAME=' /proc/PID/environ`: NUL-terminated records `FILE:NAME=`, only the
  names of the environment (values never leave the host);
- `grep -Ho ' /.*' /proc/PID/maps | sort -u`: the path column of each mapping, once.

A PID whose files were gone or unreadable gets an empty text, as its own command's
stdout would have been empty (the reason went to stderr).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import NoReturn

from fleetaudit.errors import ParseError

_TEXT_LINE = re.compile(r"/proc/(?P<pid>\d{1,10})/(?P<kind>status|stat|cgroup):(?P<line>.*)",
                        re.DOTALL)
_TEXT_KINDS = ("status", "stat", "cgroup")
_STAT_LINE = re.compile(r"/proc/(?P<pid>\d{1,10}) (?P<rest>.*)")
_STAT_EXE_LINE = re.compile(r"/proc/(?P<pid>\d{1,10})/exe (?P<rest>.*)")
_ENV_RECORD = re.compile(r"/proc/(?P<pid>\d{1,10})/environ:(?P<name>[A-Za-z_][A-Za-z0-9_]*)=")
_MAPS_LINE = re.compile(r"/proc/(?P<pid>\d{1,10})/maps: (?P<path>/.*)")


def parse_proc_texts(text: str, pids: Iterable[int]) -> dict[tuple[int, str], str]:
    """(PID, "status" | "stat" | "cgroup") -> that file's text, for every PID asked."""
    pids = list(pids)
    # Each line's file name is one of ours: looked up whole, where a regex per line was
    # most of this parse (a PID not asked for, or garbage, still goes through the regex).
    ours = {f"/proc/{pid}/{kind}": (pid, kind) for pid in pids for kind in _TEXT_KINDS}
    lines: dict[tuple[int, str], list[str]] = {}
    for number, record in enumerate(text.split("\n"), start=1):
        if not record:
            continue
        name, colon, line = record.partition(":")
        key = ours.get(name) if colon else None
        if key is None:
            match = _TEXT_LINE.fullmatch(record)
            if match is None:
                _fail("grep -H of /proc files", number, record,
                      "not a '/proc/PID/FILE:' line")
            key, line = (int(match["pid"]), match["kind"]), match["line"]
        lines.setdefault(key, []).append(line)
    return {(pid, kind): "\n".join(lines[pid, kind]) + "\n" if (pid, kind) in lines else ""
            for pid in pids for kind in _TEXT_KINDS}


def parse_stat_lines(text: str, pids: Iterable[int], *, exe: bool) -> dict[int, str]:
    """PID -> what `stat -c FORMAT /proc/PID` (or /proc/PID/exe) printed after the name."""
    pattern = _STAT_EXE_LINE if exe else _STAT_LINE
    found = {int(m["pid"]): m["rest"]
             for m in _matches(text, "\n", pattern, "stat", "a '/proc/PID ...' line")}
    return {pid: found.get(pid, "") for pid in pids}


def parse_env_records(text: str, pids: Iterable[int]) -> dict[int, str]:
    """PID -> its environment's names, one a line (what the per-PID envnames read prints)."""
    return _per_pid(_matches(text, "\0", _ENV_RECORD, "grep -z of environ",
                             "a '/proc/PID/environ:NAME=' record"), "name", pids)


def parse_maps_paths(text: str, pids: Iterable[int]) -> dict[int, str]:
    """PID -> the paths its memory maps name, one a line (parse_maps reads them)."""
    return _per_pid(_matches(text, "\n", _MAPS_LINE, "grep -o of maps",
                             "a '/proc/PID/maps: /PATH' line"), "path", pids)


def _matches(text: str, separator: str, pattern: re.Pattern[str], tool: str,
             what: str) -> Iterator[re.Match[str]]:
    for number, record in enumerate(text.split(separator), start=1):
        if record:
            match = pattern.fullmatch(record)
            if match is None:
                _fail(tool, number, record, f"not {what}")
            yield match


def _per_pid(matches: Iterable[re.Match[str]], group: str, pids: Iterable[int]) -> dict[int, str]:
    values: dict[int, list[str]] = {}
    for match in matches:
        values.setdefault(int(match["pid"]), []).append(match[group])
    return {pid: "".join(f"{value}\n" for value in values.get(pid, [])) for pid in pids}


def _fail(tool: str, number: int, line: str, why: str) -> NoReturn:
    shown = line if len(line) <= 120 else line[:120] + "..."
    raise ParseError(f"{tool} output, line {number}: {why}: {shown!r}")
