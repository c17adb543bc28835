"""The inventory graph every source format fills in: groups, hosts, their variables.

It behaves as Ansible's InventoryData does, because users compare our view with
`ansible-inventory --list`: a host joins `ungrouped` only when it is in no other group,
a group nobody claims becomes a child of `all`, a child edge that would close a loop is
refused, and a group's depth is its longest path from `all` (it orders variables).

Unlike Ansible, a variable's value may not nest deeper than MAX_VALUE_DEPTH: everything
after the graph (JSON output, pydantic's validation, templates) walks values
recursively, and a value hundreds of levels deep would end there as a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetaudit.inventory.ranges import MAX_HOSTS

MAX_DEPTH = 200
MAX_VALUE_DEPTH = 64  # real variables nest under 10 levels; pydantic gives up near 300


class GraphError(ValueError):
    """An edge or name the graph cannot take; the caller adds file and line."""


def nested_too_deep(value: Any, limit: int = MAX_VALUE_DEPTH) -> bool:
    """Does `value` hold mappings or lists more than `limit` levels deep? Iterative (the
    point is values too deep to recurse into), and a container shared by YAML aliases is
    walked again only when reached deeper than before, so an alias bomb costs its size."""
    if not isinstance(value, dict | list | tuple | set | frozenset):
        return False
    deepest: dict[int, int] = {}
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if deepest.get(id(item), 0) >= depth:
            continue
        deepest[id(item)] = depth
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list | tuple | set | frozenset):
                stack.append((child, depth + 1))
    return False


def check_nesting(key: str, value: Any) -> None:
    if nested_too_deep(value):
        raise GraphError(f"variable {key!r} is nested deeper than {MAX_VALUE_DEPTH} levels")


@dataclass
class Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    priority: int = 1
    depth: int = 0


@dataclass
class Host:
    name: str
    origin: str
    vars: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # direct memberships, in order


class InventoryData:
    def __init__(self) -> None:
        self.groups: dict[str, Group] = {"all": Group("all"), "ungrouped": Group("ungrouped")}
        self.hosts: dict[str, Host] = {}
        self.warnings: list[str] = []
        self._host_set_in_ungrouped: set[str] = set()

    def add_group(self, name: str) -> Group:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(name)
        return group

    def add_host(self, name: str, group: str | None, port: int | None, where: str) -> Host:
        if not name:
            raise GraphError("empty host name")
        host = self.hosts.get(name)
        if host is None:
            if len(self.hosts) >= MAX_HOSTS:
                raise GraphError(f"more than {MAX_HOSTS} hosts")
            host = self.hosts[name] = Host(name, origin=where)
            if port:  # as Ansible: a port counts only where the host is first named
                self.set_host_var(host, "ansible_port", port, where)
        if group is not None:
            target = self.groups[group]
            if name not in target.hosts:
                target.hosts.append(name)
                host.groups.append(group)
        return host

    def set_host_var(self, host: Host, key: str, value: Any, where: str) -> None:
        check_nesting(key, value)
        host.vars[key] = value
        host.origins[key] = where

    def set_group_var(self, name: str, key: str, value: Any, where: str) -> None:
        group = self.groups[name]
        if key == "ansible_group_priority":
            try:
                group.priority = int(value)
            except (TypeError, ValueError) as exc:
                raise GraphError(f"ansible_group_priority {value!r} is not a number") from exc
            return
        check_nesting(key, value)
        group.vars[key] = value
        group.origins[key] = where

    def add_child(self, parent: str, child: str) -> None:
        if parent == child:
            raise GraphError(f"group {child!r} cannot be its own child")
        upper, lower = self.groups[parent], self.groups[child]
        if child in upper.children:
            return
        if self._is_ancestor(child, parent):
            raise GraphError(f"adding {child!r} as a child of {parent!r} makes a loop")
        upper.children.append(child)
        if parent not in lower.parents:
            lower.parents.append(parent)

    def _is_ancestor(self, candidate: str, of: str) -> bool:
        """Is `candidate` above `of` (or `of` itself)? Iterative: nesting may be deep."""
        seen: set[str] = set()
        stack = [of]
        while stack:
            name = stack.pop()
            if name == candidate:
                return True
            if name in seen:
                continue
            seen.add(name)
            stack.extend(self.groups[name].parents)
        return False

    def reconcile(self) -> None:
        """Ansible's closing step: orphans under `all`, `ungrouped` only for the groupless."""
        everything = self.groups["all"]
        for group in self.groups.values():
            if group.name != "all" and not group.parents:
                self.add_child("all", group.name)
        ungrouped = self.groups["ungrouped"]
        for host in self.hosts.values():
            others = [g for g in host.groups if g not in ("all", "ungrouped")]
            if "ungrouped" in host.groups:
                if others:
                    ungrouped.hosts.remove(host.name)
                    host.groups.remove("ungrouped")
            elif not others:
                ungrouped.hosts.append(host.name)
                host.groups.append("ungrouped")
        del everything
        self._set_depths()

    def _set_depths(self) -> None:
        """Longest path from `all`, in topological order (no recursion: chains can be long)."""
        waiting = {name: len(g.parents) for name, g in self.groups.items()}
        ready = [name for name, count in waiting.items() if count == 0]
        while ready:
            name = ready.pop()
            group = self.groups[name]
            if group.depth > MAX_DEPTH:
                raise GraphError(f"groups nested deeper than {MAX_DEPTH} levels (at {name!r})")
            for child in group.children:
                lower = self.groups[child]
                lower.depth = max(lower.depth, group.depth + 1)
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)

    def ancestors(self, group: str) -> list[str]:
        """Every group above `group`, each once."""
        found: list[str] = []
        stack = list(self.groups[group].parents)
        while stack:
            name = stack.pop()
            if name in found:
                continue
            found.append(name)
            stack.extend(self.groups[name].parents)
        return found

    def host_groups(self, host: Host) -> list[str]:
        """Direct and inherited groups of a host (`all` included), each once."""
        found: list[str] = []
        for direct in host.groups:
            for name in (direct, *self.ancestors(direct)):
                if name not in found:
                    found.append(name)
        return found

    def group_hosts(self, name: str) -> list[str]:
        """Hosts of a group and of its descendants, in Ansible's order (own hosts first)."""
        seen_groups: set[str] = set()
        hosts: list[str] = []
        seen_hosts: set[str] = set()
        stack = [name]
        order: list[str] = []
        while stack:  # depth-first, children in order, iterative
            current = stack.pop()
            if current in seen_groups:
                continue
            seen_groups.add(current)
            order.append(current)
            stack.extend(reversed(self.groups[current].children))
        for group in order:
            for host in self.groups[group].hosts:
                if host not in seen_hosts:
                    seen_hosts.add(host)
                    hosts.append(host)
        return hosts
