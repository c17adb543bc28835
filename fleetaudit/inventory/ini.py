"""Ansible's INI inventory format, read as Ansible's ini plugin reads it.

`[group]` lists hosts (with inline `key=value` variables, shell-quoted), `[group:vars]`
sets group variables, `[group:children]` names child groups, which may be defined
further down. Values become Python literals where `ast.literal_eval` takes them
(`port=22` is a number, `x='{"a": 1}'` a mapping), else stay strings, exactly as Ansible
does, so `ansible-inventory --list` and fleetaudit agree on every variable.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from typing import Any

from fleetaudit.inventory.data import GraphError, InventoryData
from fleetaudit.inventory.ranges import RangeError, expand_host_pattern, split_port

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_WORD = re.compile(r"^[A-Za-z_][\w.-]*$")
_NUMBER = re.compile(r"^(?:0|[1-9][0-9]{0,17})$")
_SHELL_SPECIAL = re.compile(r"[\"'\\#]")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


class IniError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def parse_value(raw: str) -> Any:
    """A value as Ansible's ini plugin stores it: a literal where one parses, else text."""
    if _WORD.match(raw) and raw not in ("True", "False", "None"):
        return raw  # a bare word: no literal (the fast path of a 5,000-host file)
    if _NUMBER.match(raw):
        return int(raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return raw
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is Ellipsis:
        return "..."
    return str(value)  # complex: Ansible keeps its text


def looks_like_ini(lines: list[str]) -> bool:
    return any(_SECTION.match(line.strip()) for line in lines[:200])


def parse_ini(lines: list[str], source: str, data: InventoryData) -> None:
    """Add one INI file's groups, hosts and variables to `data`; IniError names the line."""
    pending: dict[str, dict[str, Any]] = {}
    group, state = "ungrouped", "hosts"
    for number, raw_line in enumerate(lines, 1):
        line = raw_line.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{source}:{number}"
        try:
            section = _SECTION.match(line)
            if section:
                group, state = section.group(1), section.group(2) or "hosts"
                if state not in ("hosts", "children", "vars"):
                    raise IniError(number, f"section [{group}:{state}] has an unknown type "
                                           f"{state!r} (hosts, children or vars)")
                if group not in data.groups:
                    if state == "vars" and group not in pending:
                        pending[group] = {"line": number, "state": state, "parents": []}
                    data.add_group(group)
                if group in pending and state != "vars":
                    if pending[group]["state"] == "children":
                        _adopt(group, pending, data)
                    elif pending[group]["state"] == "vars":
                        del pending[group]
                continue
            if line.startswith("[") and line.endswith("]"):
                raise IniError(number, f"invalid section {line!r}: no spaces or other "
                                       "characters are allowed in a section name")
            if state == "hosts":
                _host_line(line, group, where, number, data)
            elif state == "vars":
                if "=" not in line:
                    raise IniError(number, f"expected key=value, got {line!r}")
                key, value = (part.strip() for part in line.split("=", 1))
                data.set_group_var(group, key, parse_value(value), where)
            else:
                match = _GROUP_NAME.match(line)
                if not match:
                    raise IniError(number, f"expected a group name, got {line!r}")
                child = match.group(1)
                if child not in data.groups:
                    entry = pending.setdefault(child, {"line": number, "state": "children",
                                                       "parents": []})
                    entry["parents"].append(group)
                else:
                    data.add_child(group, child)
        except (GraphError, RangeError) as exc:
            raise IniError(number, str(exc)) from exc
    for name, entry in pending.items():
        if entry["state"] == "vars":
            raise IniError(entry["line"], f"section [{name}:vars] is for a group that is "
                                          "never defined")
        raise IniError(entry["line"], f"section [{entry['parents'][-1]}:children] names "
                                      f"group {name!r}, which is never defined")


def _adopt(group: str, pending: dict[str, dict[str, Any]], data: InventoryData) -> None:
    """A group named in [parent:children] before its own section now exists: link it."""
    for parent in pending[group]["parents"]:
        data.add_child(parent, group)
        if parent in pending and pending[parent]["state"] == "children":
            _adopt(parent, pending, data)
    del pending[group]


def _host_line(line: str, group: str, where: str, number: int, data: InventoryData) -> None:
    try:  # shlex is slow; a line with no quote, escape or comment splits the same by space
        tokens = shlex.split(line, comments=True) if _SHELL_SPECIAL.search(line) \
            else line.split()
    except ValueError as exc:
        raise IniError(number, f"cannot parse host line {line!r}: {exc}") from exc
    if not tokens:
        return
    pattern = tokens[0]
    name_pattern, port = split_port(pattern)
    if pattern.strip().endswith(":") and port is None:
        raise IniError(number, f"host pattern {pattern!r} ends in ':' (reserved for a port)")
    names = expand_host_pattern(name_pattern)
    if any(name.strip() == "---" for name in names):
        raise IniError(number, "'---' is a sign this file is YAML, not INI")
    variables: dict[str, Any] = {}
    for token in tokens[1:]:
        if "=" not in token:
            raise IniError(number, f"expected key=value host variable, got {token!r}")
        key, value = token.split("=", 1)
        variables[key] = parse_value(value)
    for name in names:
        host = data.add_host(name, group, port, where)
        for key, value in variables.items():
            data.set_host_var(host, key, value, where)
