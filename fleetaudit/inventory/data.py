"""The inventory graph every source format fills in: groups, hosts, their variables.

It behaves as Ansible's InventoryData does, because users compare our view with
`ansible-inventory --list`: a host joins `ungrouped` only when it is in no other group,
a group nobody claims becomes a child of `all`, a child edge that would close a loop is
refused, and a group's depth is its longest path from `all` (it orders variables).

Unlike Ansible, a variable's value may not nest deeper than MAX_VALUE_DEPTH nor hold
more than MAX_VALUE_ITEMS values: everything after the graph (JSON output, pydantic's
validation, templates) walks values recursively and expands YAML aliases, so a value
hundreds of levels deep would end there as a traceback, and an alias bomb would never end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetaudit.inventory.ranges import MAX_HOSTS

MAX_DEPTH = 200
MAX_VALUE_DEPTH = 64  # real variables nest under 10 levels; pydantic gives up near 300
MAX_VALUE_ITEMS = 1_000_000  # values in one variable, YAML aliases expanded


class GraphError(ValueError):
    """An edge or name the graph cannot take; the caller adds file and line."""


_CONTAINERS = (dict, list, tuple, set, frozenset)


def value_problem(value: Any, depth_limit: int = MAX_VALUE_DEPTH,
                  size_limit: int = MAX_VALUE_ITEMS) -> str | None:
    """Why `value` cannot be a variable, if it cannot: nested more than `depth_limit`
    levels (or containing itself), or more than `size_limit` values once YAML aliases are
    expanded, as every later step expands them (a "billion laughs" file of 300 bytes).

    Iterative (values too deep to recurse into are the point) and depth-first with each
    shared container measured once, so an alias bomb costs its size on disk, not its
    expansion."""
    if not isinstance(value, _CONTAINERS):
        return None
    measured: dict[int, tuple[int, int]] = {}  # id -> (depth, expanded size)
    path: set[int] = set()  # containers being measured: meeting one again is a loop
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, children_done = stack.pop()
        children = list(item.values() if isinstance(item, dict) else item)
        if children_done:
            depth, size = 1, 1
            for child in children:
                if isinstance(child, _CONTAINERS):
                    child_depth, child_size = measured[id(child)]
                    depth, size = max(depth, child_depth + 1), size + child_size
                else:
                    size += 1
            if depth > depth_limit:
                return f"is nested deeper than {depth_limit} levels"
            if size > size_limit:
                return f"holds more than {size_limit:,} values once its YAML aliases are expanded"
            path.discard(id(item))
            measured[id(item)] = (depth, size)
            continue
        if id(item) in measured:
            continue
        if id(item) in path or len(path) >= depth_limit:
            return f"is nested deeper than {depth_limit} levels" + (
                " (it contains itself)" if id(item) in path else "")
        path.add(id(item))
        stack.append((item, True))
        stack.extend((child, False) for child in children
                     if isinstance(child, _CONTAINERS) and id(child) not in measured)
    return None


def check_nesting(key: str, value: Any) -> None:
    problem = value_problem(value)
    if problem is not None:
        raise GraphError(f"variable {key!r} {problem}")


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
    # The same names as `hosts` and `children`, for membership tests: a list's would make
    # `[web]` + `h[1:99999]` quadratic (38 s). Changed only through InventoryData.
    host_set: set[str] = field(default_factory=set, repr=False, compare=False)
    child_set: set[str] = field(default_factory=set, repr=False, compare=False)


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
        # Containers already found within the limits, by id (kept, so no id is reused): a
        # range's hosts share one value (`h[1:1000]: {big: ...}`), walked once, not per host.
        self._within_limits: dict[int, Any] = {}
        self.add_child("all", "ungrouped")  # first of all's children, as in Ansible

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
            if name not in target.host_set:
                target.host_set.add(name)
                target.hosts.append(name)
                host.groups.append(group)
        return host

    def _check(self, key: str, value: Any) -> None:
        if isinstance(value, _CONTAINERS) and id(value) in self._within_limits:
            return
        check_nesting(key, value)
        if isinstance(value, _CONTAINERS):
            self._within_limits[id(value)] = value

    def set_host_var(self, host: Host, key: str, value: Any, where: str) -> None:
        self._check(key, value)
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
        self._check(key, value)
        group.vars[key] = value
        group.origins[key] = where

    def add_child(self, parent: str, child: str) -> None:
        if parent == child:
            raise GraphError(f"group {child!r} cannot be its own child")
        upper, lower = self.groups[parent], self.groups[child]
        if child in upper.child_set:
            return
        if self._is_ancestor(child, parent):
            raise GraphError(f"adding {child!r} as a child of {parent!r} makes a loop")
        upper.child_set.add(child)
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
        for group in self.groups.values():
            if group.name != "all" and not group.parents:
                self.add_child("all", group.name)
        ungrouped = self.groups["ungrouped"]
        leaving: set[str] = set()
        for host in self.hosts.values():
            others = [g for g in host.groups if g not in ("all", "ungrouped")]
            if "ungrouped" in host.groups:
                if others:
                    leaving.add(host.name)
                    host.groups.remove("ungrouped")
            elif not others:
                ungrouped.host_set.add(host.name)
                ungrouped.hosts.append(host.name)
                host.groups.append("ungrouped")
        if leaving:  # one pass, not a list.remove per host
            ungrouped.hosts = [name for name in ungrouped.hosts if name not in leaving]
            ungrouped.host_set -= leaving
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
