"""Ansible inventories -> `Inventory`: users audit the fleet they already describe.

Read as `ansible-inventory --list` reads them, and tested against it on real
inventories: INI and YAML files, folders of them, several sources merged, executable
inventory scripts and saved `--list` JSON (how cloud plugins get here), `group_vars/`
and `host_vars/` beside each source, Ansible's variable precedence, host ranges with
strides and letters, and `--limit` patterns.

    ranges      host patterns: `host:port`, `www[01:50:2]`, `db-[a:f]`
    data        the group/host graph every format fills in (Ansible's rules)
    ini, yamlsrc, listjson    one module per format: text -> graph
    files       the file system: sources, folders, group_vars/host_vars
    variables   precedence: each host's effective variables
    connection  effective variables -> InventoryHost (checked before any contact)
    patterns    `--limit`
    listing     the resolved view in `ansible-inventory --list`'s JSON shape

Nothing here touches the network or resolves a name; an inventory script is run only
through the runner the caller passes in. Every problem is an InventoryError naming
the file and line, raised before any host is contacted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleetaudit.errors import InventoryError
from fleetaudit.inventory.connection import HostEntryError, connection_of
from fleetaudit.inventory.data import GraphError, InventoryData
from fleetaudit.inventory.files import ScriptRunner, read_source, read_vars_beside
from fleetaudit.inventory.patterns import PatternError, select
from fleetaudit.inventory.ranges import MAX_HOSTS, RangeError, expand_host_pattern
from fleetaudit.inventory.variables import VarsDir, effective_vars
from fleetaudit.models import Inventory, InventoryGroup, InventoryHost

__all__ = ["MAX_HOSTS", "expand_host_pattern", "load_inventories", "load_inventory",
           "resolve"]


def load_inventories(paths: Sequence[Path], *, limit: str | None = None,
                     run_script: ScriptRunner | None = None) -> Inventory:
    """Read every source in order (as repeated `-i`), then resolve each host."""
    if not paths:
        raise InventoryError("no inventory given")
    source = ", ".join(str(p) for p in paths)
    data = InventoryData()
    try:
        for path in paths:
            read_source(path, data, run_script)
        try:
            data.reconcile()
        except GraphError as exc:
            raise InventoryError(f"{source}: {exc}") from exc
        beside = [read_vars_beside(path, data) for path in paths]
        return resolve(data, beside, source=source, limit=limit)
    except RecursionError as exc:  # each nesting is bounded where it is read; this is the net
        raise InventoryError(f"{source}: nested too deeply to be read") from exc


def load_inventory(path: Path, *, limit: str | None = None,
                   run_script: ScriptRunner | None = None) -> Inventory:
    return load_inventories([path], limit=limit, run_script=run_script)


def resolve(data: InventoryData, beside: list[VarsDir], *, source: str,
            limit: str | None = None) -> Inventory:
    """The graph and its variables -> the `Inventory` model, limited to `limit`."""
    if not data.hosts:
        raise InventoryError(f"{source}: no hosts found")
    names = list(data.hosts)
    if limit:
        try:
            names = select(data, limit)
        except PatternError as exc:
            raise InventoryError(f"--limit {limit}: {exc}") from exc
    hosts: list[InventoryHost] = []
    for name in names:
        host = data.hosts[name]
        effective = effective_vars(data, host, beside)
        groups = [g for g in data.host_groups(host) if g not in ("all", "ungrouped")]
        try:
            hosts.append(connection_of(name, groups, jsonable(effective.values),
                                       effective.origins))
        except HostEntryError as exc:
            where = effective.origins.get(exc.variable, host.origin)
            raise InventoryError(f"{where.split(' ', 1)[0]}: host {name!r}: {exc}") from exc
    kept = set(names)
    listed = [InventoryGroup(name=g.name, hosts=[h for h in g.hosts if h in kept],
                             children=list(g.children))
              for g in data.groups.values()]
    return Inventory(source=source, hosts=hosts, groups=listed, warnings=data.warnings)


def jsonable(value: Any) -> Any:
    """Variables as JSON can carry them (YAML sets and odd scalars become lists and text)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


__all__ += ["GraphError", "RangeError"]
