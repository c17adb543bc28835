"""`--limit`: Ansible's host pattern language over the resolved inventory.

`web,db` (or `web:db`) is a union; `&staging` intersects; `!web03` excludes; `*` and `?`
glob over group and host names; `~regex` matches names by regular expression;
`web[0]`, `web[1:3]` select hosts of a group by position. Unlike Ansible, which warns
and carries on, a pattern that matches nothing is an error: a typo in a limit must not
silently audit the wrong hosts (or none).
"""

from __future__ import annotations

import fnmatch
import re

from fleetaudit import addresses
from fleetaudit.inventory.data import InventoryData
from fleetaudit.inventory.ranges import split_port

_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?\d+)|(-?\d+)?(?:([:-])(-?\d+)?)?)\]$")
_HOSTNAME = re.compile(r"^(?:[\w-]|\[[^\]]*\])+(?:\.(?:[\w-]|\[[^\]]*\])+)*$")
_SPLIT = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


class PatternError(ValueError):
    pass


def split_patterns(pattern: str) -> list[str]:
    """Ansible's split: on commas; else a lone address stays whole (IPv6, `host:port`);
    else on colons, the old separator."""
    if "," in pattern:
        parts = pattern.split(",")
    else:
        name, _ = split_port(pattern.strip())
        whole = addresses.literal(name) is not None or bool(_HOSTNAME.match(name))
        parts = [pattern] if whole else _SPLIT.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def _ordered(patterns: list[str]) -> list[str]:
    regular = [p for p in patterns if p[0] not in "!&"]
    intersect = [p for p in patterns if p[0] == "&"]
    exclude = [p for p in patterns if p[0] == "!"]
    return (regular or ["all"]) + intersect + exclude


def _subscript(pattern: str) -> tuple[str, tuple[int, int | None] | None]:
    if pattern.startswith("~"):
        return pattern, None
    match = _SUBSCRIPT.match(pattern)
    if not match:
        return pattern, None
    base, index, start, separator, end = match.groups()
    if index is not None:
        return base, (int(index), None)
    if separator is None:
        return pattern, None
    return base, (int(start or 0), int(end) if end is not None else -1)


def _matches(data: InventoryData, pattern: str) -> list[str]:
    expression, subscript = _subscript(pattern)
    try:
        regex = re.compile(expression[1:] if expression.startswith("~")
                           else fnmatch.translate(expression))
    except re.error as exc:
        raise PatternError(f"{pattern!r} is not a valid pattern: {exc}") from exc
    found: dict[str, None] = {}  # an ordered set: `not in` on a list was quadratic
    if expression == "all":
        groups = ["all"]
    else:
        groups = [g for g in data.groups if g not in ("all", "ungrouped") and regex.match(g)]
        if expression == "ungrouped":
            groups.append("ungrouped")
    for group in groups:
        found.update(dict.fromkeys(data.group_hosts(group)))
    glob = expression.startswith("~") or any(c in expression for c in ".?*[")
    if not groups or glob:
        found.update(dict.fromkeys(h for h in data.hosts if regex.match(h)))
    hosts = list(found)
    if not hosts:
        raise PatternError(f"{pattern!r} matches no group or host of the inventory")
    if subscript is not None:
        first, last = subscript
        try:
            if last is None:
                hosts = [hosts[first]]
            else:
                hosts = hosts[first:] if last == -1 else hosts[first:last + 1]
        except IndexError as exc:
            raise PatternError(f"{pattern!r}: no host at that position") from exc
        if not hosts:
            raise PatternError(f"{pattern!r}: no host at that position")
    return hosts


def select(data: InventoryData, limit: str) -> list[str]:
    """The host names `limit` selects, in inventory order."""
    patterns = split_patterns(limit)
    if not patterns:
        raise PatternError("the pattern is empty")
    chosen: dict[str, None] = {}  # an ordered set
    for pattern in _ordered(patterns):
        if pattern in data.hosts and pattern[0] not in "!&":
            chosen.setdefault(pattern)
            continue
        matched = _matches(data, pattern[1:] if pattern[0] in "!&" else pattern)
        found = set(matched)
        if pattern[0] == "!":
            chosen = {h: None for h in chosen if h not in found}
        elif pattern[0] == "&":
            chosen = {h: None for h in chosen if h in found}
        else:
            chosen.update(dict.fromkeys(matched))
    return list(chosen)
