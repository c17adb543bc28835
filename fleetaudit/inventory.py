"""Ansible-style YAML inventories -> `Inventory`, so users audit the fleet they already describe.

Supported: nested groups (`hosts:`, `children:`, `vars:`) under `all:` or any top-level
group, numeric host ranges (`web[01:03]`), and the connection variables
`ansible_host`, `ansible_port`, `ansible_user`, `ansible_ssh_private_key_file`,
`ansible_connection` (ssh or local), privilege through `ansible_become`,
`ansible_become_user` and `ansible_become_method` (sudo only: fleetaudit runs `sudo -n`,
never sending a password), plus fleetaudit's own `fleetaudit_route_dev`.
Variables apply from the outermost group inwards, host variables last.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleetaudit.errors import InventoryError
from fleetaudit.models import Connection, Inventory, InventoryHost

MAX_INVENTORY_BYTES = 16 * 1024 * 1024
MAX_HOSTS = 100_000
_RANGE = re.compile(r"\[(\d+):(\d+)\]")
_VARIABLE_OF = {"address": "ansible_host", "port": "ansible_port", "user": "ansible_user",
                "key_file": "ansible_ssh_private_key_file", "route_dev": "fleetaudit_route_dev",
                "become": "ansible_become", "become_user": "ansible_become_user"}
_GROUP_KEYS = {"hosts", "children", "vars"}
# Ansible's spellings of a boolean, as YAML 1.1 or as strings from group_vars.
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}
# Goes into a `sudo -u` argument: a user name, or `#uid`, nothing a shell would read.
_BECOME_USER = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?|#\d{1,10})$")
_CONNECTIONS = {"ssh": Connection.SSH, "smart": Connection.SSH, "paramiko": Connection.SSH,
                "local": Connection.LOCAL}


def load_inventory(path: Path) -> Inventory:
    """Read and parse an inventory file; every failure is an InventoryError naming the file."""
    try:
        if path.stat().st_size > MAX_INVENTORY_BYTES:
            raise InventoryError(f"{path}: larger than {MAX_INVENTORY_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc}") from exc
    return parse_inventory(text, source=str(path), base_dir=path.parent)


def parse_inventory(text: str, *, source: str, base_dir: Path | None = None) -> Inventory:
    """Parse inventory text; `base_dir` anchors relative key file paths as Ansible does."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(f"{source}:{where}: invalid YAML: {problem}") from exc
    if not isinstance(document, Mapping) or not document:
        raise InventoryError(f"{source}: expected a mapping of groups such as 'all:'")

    walker = _Walker(source)
    for group_name, group in document.items():
        walker.group(str(group_name), group, inherited={}, ancestry=())
    hosts = walker.build(base_dir)
    if not hosts:
        raise InventoryError(f"{source}: no hosts found")
    return Inventory(source=source, hosts=hosts)


def expand_host_pattern(name: str) -> list[str]:
    """Expand Ansible's numeric ranges: `web[01:03]` -> web01, web02, web03 (width kept)."""
    match = _RANGE.search(name)
    if match is None:
        return [name]
    first, last = match.group(1), match.group(2)
    if int(last) < int(first):
        raise ValueError(f"range {match.group(0)} runs backwards")
    if int(last) - int(first) >= MAX_HOSTS:
        raise ValueError(f"range {match.group(0)} is too large")
    width = len(first) if first.startswith("0") else 0
    expanded: list[str] = []
    for number in range(int(first), int(last) + 1):
        stem = name[: match.start()] + str(number).zfill(width) + name[match.end():]
        expanded.extend(expand_host_pattern(stem))
    return expanded


class _Walker:
    """Collects each host's groups and merged variables while walking the group tree."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.group_vars: dict[str, dict[str, Any]] = {}
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.host_groups: dict[str, list[str]] = {}
        self.visits = 0

    def fail(self, where: str, message: str) -> InventoryError:
        return InventoryError(f"{self.source}: {where}: {message}")

    def group(self, name: str, body: object, inherited: Mapping[str, Any],
              ancestry: tuple[str, ...]) -> None:
        self.visits += 1
        if self.visits > MAX_HOSTS:
            raise self.fail(name, "too many groups or hosts (is there an alias loop?)")
        if name in ancestry:
            raise self.fail(name, "group contains itself")
        where = "/".join((*ancestry, name))
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise self.fail(where, "a group must be a mapping with hosts, children or vars")
        unknown = set(map(str, body)) - _GROUP_KEYS
        if unknown:
            raise self.fail(where, f"unknown key(s) {sorted(unknown)}: use hosts, children, vars")
        group_vars = body.get("vars") or {}
        if not isinstance(group_vars, Mapping):
            raise self.fail(f"{where}/vars", "must be a mapping")
        merged = {**inherited, **group_vars}
        path = (*ancestry, name)

        hosts = body.get("hosts") or {}
        if not isinstance(hosts, Mapping):
            raise self.fail(f"{where}/hosts", "must be a mapping of host names")
        for pattern, host_vars in hosts.items():
            if host_vars is not None and not isinstance(host_vars, Mapping):
                raise self.fail(f"{where}/hosts/{pattern}", "host variables must be a mapping")
            try:
                names = expand_host_pattern(str(pattern))
            except ValueError as exc:
                raise self.fail(f"{where}/hosts/{pattern}", str(exc)) from exc
            for host in names:
                self.add_host(host, path, merged, host_vars or {})

        children = body.get("children") or {}
        if not isinstance(children, Mapping):
            raise self.fail(f"{where}/children", "must be a mapping of groups")
        for child_name, child in children.items():
            self.group(str(child_name), child, merged, path)

    def add_host(self, host: str, path: tuple[str, ...], group_vars: Mapping[str, Any],
                 host_vars: Mapping[str, Any]) -> None:
        if len(self.host_groups) >= MAX_HOSTS and host not in self.host_groups:
            raise self.fail(host, f"more than {MAX_HOSTS} hosts")
        self.group_vars.setdefault(host, {}).update(group_vars)
        self.host_vars.setdefault(host, {}).update(host_vars)
        groups = self.host_groups.setdefault(host, [])
        for group in path:
            if group != "all" and group not in groups:
                groups.append(group)

    def build(self, base_dir: Path | None) -> list[InventoryHost]:
        # Host variables win over group variables, however the groups were ordered.
        return [
            self.host(name, {**self.group_vars[name], **self.host_vars[name]}, base_dir)
            for name in self.host_groups
        ]

    def become(self, name: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """ansible_become and friends; a method other than sudo is refused, not ignored."""
        raw = variables.get("ansible_become", False)
        if isinstance(raw, bool):
            become = raw
        elif str(raw).strip().lower() in _TRUE | _FALSE:
            become = str(raw).strip().lower() in _TRUE
        else:
            raise self.fail(name, f"ansible_become: {raw!r} is not a boolean")
        method = str(variables.get("ansible_become_method", "sudo"))
        if become and method != "sudo":
            raise self.fail(name, f"ansible_become_method {method!r} is not supported "
                                  "(fleetaudit runs `sudo -n`)")
        user = variables.get("ansible_become_user")
        if user is not None:
            user = str(user)
            if not _BECOME_USER.match(user):
                raise self.fail(name, f"ansible_become_user {user!r} is not a user name")
        return {"become": become, "become_user": user}

    def host(self, name: str, variables: Mapping[str, Any], base_dir: Path | None) -> InventoryHost:
        connection_name = str(variables.get("ansible_connection", "ssh"))
        connection = _CONNECTIONS.get(connection_name)
        if connection is None:
            raise self.fail(name, f"ansible_connection {connection_name!r} is not supported "
                                  "(use ssh or local)")
        key_file = variables.get("ansible_ssh_private_key_file")
        if key_file is not None:
            key_path = Path(str(key_file)).expanduser()
            if not key_path.is_absolute() and base_dir is not None:
                key_path = base_dir / key_path
            key_file = str(key_path)
        fields: dict[str, Any] = {
            "name": name,
            "address": str(variables.get("ansible_host", name)),
            "groups": self.host_groups.get(name, []),
            "connection": connection,
            "key_file": key_file,
            "route_dev": variables.get("fleetaudit_route_dev"),
        }
        if "ansible_port" in variables:
            fields["port"] = variables["ansible_port"]
        if "ansible_user" in variables:
            fields["user"] = variables["ansible_user"]
        fields.update(self.become(name, variables))
        try:
            return InventoryHost(**fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{_VARIABLE_OF.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}"
                for err in exc.errors()
            )
            raise self.fail(name, problems) from exc
