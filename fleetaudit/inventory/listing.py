"""The resolved inventory in `ansible-inventory --list`'s JSON shape, and as a table.

The JSON is meant to be diffed against Ansible's own output, so its shape is Ansible's:
`_meta.hostvars`, then each non-empty group with its direct `hosts` and `children`.
fleetaudit's own reading of each host (address, port, user, key, become, jump host and
where each came from) goes under `_meta.fleetaudit`, which Ansible does not have.
"""

from __future__ import annotations

from typing import Any

from fleetaudit.models import Inventory, InventoryHost


def connection_summary(host: InventoryHost) -> dict[str, Any]:
    return {
        "address": host.address, "port": host.port, "user": host.user,
        "key_file": host.key_file, "connection": host.connection.value,
        "become": host.become, "become_user": host.become_user, "jump": host.jump,
        "origins": host.origins, "notes": host.notes, "unresolved": host.unresolved,
    }


def as_ansible_list(inventory: Inventory) -> dict[str, Any]:
    kept = {h.name for h in inventory.hosts}
    groups = {g.name: g for g in inventory.groups}
    result: dict[str, Any] = {"_meta": {
        "hostvars": {h.name: h.variables for h in inventory.hosts if h.variables},
        "fleetaudit": {h.name: connection_summary(h) for h in inventory.hosts},
    }}
    seen: set[str] = set()
    stack = ["all"]
    while stack:  # Ansible's order: a group, then its children, depth first
        name = stack.pop(0)
        if name in seen or name not in groups:
            continue
        seen.add(name)
        group = groups[name]
        entry: dict[str, Any] = {}
        hosts = [h for h in group.hosts if h in kept]
        if name != "all" and hosts:
            entry["hosts"] = hosts
        if group.children:
            entry["children"] = list(group.children)
        if entry:
            result[name] = entry
        stack[0:0] = group.children
    return result


def as_table(inventory: Inventory) -> list[list[str]]:
    """One row per host: name, groups, address, port, user, key, become, jump."""
    rows = []
    for host in inventory.hosts:
        become = "no"
        if host.become:
            become = f"sudo -u {host.become_user}" if host.become_user else "sudo"
        rows.append([
            host.name, ",".join(host.groups) or "-", host.address,
            str(host.port) if host.port is not None else "(ssh)",
            host.user or "(ssh)", host.key_file or "-", become, host.jump or "-",
        ])
    return rows
