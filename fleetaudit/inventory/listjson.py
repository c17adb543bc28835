"""The JSON that inventory scripts print for `--list`, and `ansible-inventory --list` saves.

This is how every cloud inventory (aws_ec2, gcp_compute, netbox...) reaches fleetaudit:
`ansible-inventory -i PLUGIN.yml --list > inventory.json`. Groups map to a list of
hosts or to `{hosts, vars, children}`; `_meta.hostvars` holds each host's variables. A
script whose `--list` has no `_meta.hostvars` gives them one host at a time, on
`--host NAME` (Ansible's older protocol; files.py runs it).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fleetaudit.inventory.data import MAX_VALUE_DEPTH, GraphError, InventoryData, check_nesting
from fleetaudit.inventory.ranges import RangeError
from fleetaudit.inventory.yamlsrc import line_of

_JSON_NESTING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[][{}]')


class ListJsonError(ValueError):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def load_json(text: str | bytes) -> Any:
    """json.loads; a document nested too deep for it (RecursionError, from some 500
    levels on) is a ListJsonError naming the line where it passes MAX_VALUE_DEPTH."""
    try:
        return json.loads(text)
    except RecursionError:
        raw = text.encode("utf-8", errors="replace") if isinstance(text, str) else text
        raise ListJsonError(f"nested deeper than {MAX_VALUE_DEPTH} levels",
                            line_past_depth(raw, MAX_VALUE_DEPTH)) from None


def line_past_depth(raw: bytes, limit: int) -> int | None:
    """The line of the first JSON bracket more than `limit` levels deep (strings skipped)."""
    depth = 0
    for token in _JSON_NESTING.finditer(raw):
        if token[0] in b"[{":
            depth += 1
            if depth > limit:
                return raw.count(b"\n", 0, token.start()) + 1
        elif token[0] in b"]}":
            depth -= 1
    return None


def is_list_json(document: Any) -> bool:
    """Saved `--list` output, not a YAML inventory: it has `_meta` (always, from
    ansible-inventory), which a YAML inventory cannot have as a group."""
    return isinstance(document, dict) and "_meta" in document


def has_host_vars(document: Any) -> bool:
    """Does this `--list` output carry `_meta.hostvars`? Without it Ansible asks the
    script for each host's variables (`--host NAME`)."""
    return isinstance(document, dict) and isinstance(document.get("_meta"), dict) \
        and "hostvars" in document["_meta"]


def parse_list_json(document: Any, source: str, data: InventoryData) -> list[str]:
    """Add the groups, hosts and variables of a `--list` output to `data`; the hosts it
    names, in order, each once."""
    if not isinstance(document, dict):
        raise ListJsonError("inventory script output must be a JSON object of groups")
    where = f"{source}"
    meta = document.get("_meta") or {}
    if not isinstance(meta, dict):
        raise ListJsonError("_meta must be an object")
    hostvars = meta.get("hostvars") or {}
    if not isinstance(hostvars, dict):
        raise ListJsonError("_meta.hostvars must be an object of hosts")
    named: dict[str, None] = {}
    try:
        for name, body in document.items():
            if name == "_meta":
                continue
            named.update(dict.fromkeys(_group(str(name), body, where, data)))
        for name, variables in hostvars.items():
            if not isinstance(variables, dict):
                raise ListJsonError(f"_meta.hostvars.{name} must be an object")
            host = data.hosts.get(str(name))
            if host is None:
                continue  # as Ansible: variables of a host that no group names are unused
            for key, value in variables.items():
                try:
                    data.set_host_var(host, str(key), _var(key, value),
                                      f"{where} (_meta.hostvars)")
                except GraphError as exc:
                    raise ListJsonError(f"_meta.hostvars.{name}: {exc}",
                                        line_of(variables, key)) from exc
    except (GraphError, RangeError) as exc:
        raise ListJsonError(str(exc)) from exc
    return list(named)


def parse_host_vars(name: str, document: Any, where: str, data: InventoryData) -> None:
    """A script's `--host NAME` output: that host's variables."""
    if not isinstance(document, dict):
        raise ListJsonError(f"host {name!r}: its variables must be a JSON object, "
                            f"not {type(document).__name__}")
    host = data.hosts[name]
    try:
        for key, value in document.items():
            data.set_host_var(host, str(key), _var(key, value), where)
    except GraphError as exc:
        raise ListJsonError(f"host {name!r}: {exc}") from exc


def _group(name: str, body: Any, where: str, data: InventoryData) -> list[str]:
    data.add_group(name)
    if not isinstance(body, dict):
        body = {"hosts": body}
    elif not any(key in body for key in ("hosts", "vars", "children")):
        body = {"hosts": [name], "vars": body}  # Ansible's reading of a malformed group
    hosts = body.get("hosts") or []
    if not isinstance(hosts, list):
        raise ListJsonError(f"group {name!r}: hosts must be a list")
    for host in hosts:
        data.add_host(str(host), name, None, where)
    variables = body.get("vars") or {}
    if not isinstance(variables, dict):
        raise ListJsonError(f"group {name!r}: vars must be an object")
    for key, value in variables.items():
        try:
            data.set_group_var(name, str(key), _var(key, value), f"{where} (group {name} vars)")
        except GraphError as exc:
            raise ListJsonError(f"group {name!r}: {exc}", line_of(variables, key)) from exc
    children = body.get("children") or []
    if not isinstance(children, list):
        raise ListJsonError(f"group {name!r}: children must be a list")
    for child in children:
        data.add_group(str(child))
        data.add_child(name, str(child))
    return [str(host) for host in hosts]


def _var(key: Any, value: Any) -> Any:
    """A variable's value, its depth checked before `_decoded` recurses into it."""
    check_nesting(str(key), value)
    return _decoded(value)


def _decoded(value: Any) -> Any:
    """ansible-inventory's JSON marks `!unsafe` strings; the text is what they hold."""
    if isinstance(value, dict):
        if len(value) == 1 and "__ansible_unsafe" in value:
            return value["__ansible_unsafe"]
        return {key: _decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    return value
