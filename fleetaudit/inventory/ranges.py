"""Ansible's host patterns: `host:port`, `[host]:port` and ranges such as `www[01:50:2]`.

The product of a pattern's ranges is counted before anything is expanded, so
`h[1:99999]x[1:99999]` is refused at once instead of eating the machine's memory.
"""

from __future__ import annotations

import re
import string

MAX_HOSTS = 100_000

_BRACKETED_HOSTPORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOSTPORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_IPV6ISH = re.compile(r"^[0-9a-f:.\[\]]*:[0-9a-f:.\[\]]*:[0-9a-f:.\[\]]*$", re.I)
_RANGE = re.compile(r"\[([^\]]*)\]")


class RangeError(ValueError):
    """A host pattern's range is malformed or too large."""


def split_port(pattern: str) -> tuple[str, int | None]:
    """`host:port` -> (host, port), as Ansible's parse_address reads a host pattern.

    An unbracketed IPv6 address keeps its colons: only `[addr]:port` gives it a port.
    """
    match = _BRACKETED_HOSTPORT.match(pattern)
    if match:
        return match.group(1), int(match.group(2))
    if _IPV6ISH.match(pattern):
        return pattern, None
    match = _HOSTPORT.match(pattern)
    if match and match.group(1):
        return match.group(1), int(match.group(2))
    return pattern, None


def _sequence(body: str) -> tuple[list[str] | range, int]:
    """The values of one `[begin:end(:step)]` and the zero-padding width."""
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise RangeError(f"[{body}]: a range is begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    if not end:
        raise RangeError(f"[{body}]: a range needs an end value")
    try:
        step = int(bounds[2]) if len(bounds) == 3 else 1
    except ValueError as exc:
        raise RangeError(f"[{body}]: the step must be a number") from exc
    if step <= 0:
        raise RangeError(f"[{body}]: the step must be positive")
    width = 0
    if begin[0] == "0" and len(begin) > 1:
        if len(begin) != len(end):
            raise RangeError(f"[{body}]: zero-padded bounds must have equal lengths")
        width = len(begin)
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        first, last = letters.index(begin), letters.index(end)
        if first > last:
            raise RangeError(f"[{body}]: the range runs backwards")
        return list(letters[first:last + 1:step]), 0
    try:
        numbers = range(int(begin), int(end) + 1, step)
    except ValueError as exc:
        raise RangeError(f"[{body}]: bounds must be numbers or single letters") from exc
    if int(begin) > int(end):
        raise RangeError(f"[{body}]: the range runs backwards")
    return numbers, width


def count_hosts(pattern: str) -> int:
    """How many names `pattern` expands to, computed without expanding it."""
    total = 1
    for match in _RANGE.finditer(pattern):
        values, _ = _sequence(match.group(1))
        total *= max(1, len(values))
        if total > MAX_HOSTS:
            break
    return total


def expand_host_pattern(pattern: str, limit: int = MAX_HOSTS) -> list[str]:
    """Every name of a pattern, in Ansible's order: `db-[a:c]` -> db-a, db-b, db-c."""
    if "[" not in pattern:
        return [pattern]
    if count_hosts(pattern) > limit:
        raise RangeError(f"{pattern} expands to more than {limit} hosts")
    names = [pattern]
    while any("[" in name for name in names):
        expanded: list[str] = []
        for name in names:
            match = _RANGE.search(name)
            if match is None:
                if "[" in name:
                    raise RangeError(f"{pattern}: unbalanced '['")
                expanded.append(name)
                continue
            values, width = _sequence(match.group(1))
            head, tail = name[:match.start()], name[match.end():]
            expanded.extend(head + (str(v).zfill(width) if width else str(v)) + tail
                            for v in values)
        names = expanded
    return names
