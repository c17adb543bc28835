"""Each host's effective variables, in Ansible's order of precedence (lowest first):

1. the `all` group's variables from the inventory files;
2. every other group of the host, from the inventory files, sorted by depth (parents
   before children), then `ansible_group_priority`, then name;
3. `group_vars/all` beside each inventory source, in the order the sources were given;
4. `group_vars/<group>` beside each source, groups in the order of step 2;
5. the host's own variables from the inventory files;
6. `host_vars/<host>` beside each source.

A later step replaces a variable whole (Ansible's default `hash_behaviour=replace`).
The result is what `ansible-inventory --list` prints under `_meta.hostvars`, minus the
names Ansible reserves for itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetaudit.inventory.data import Host, InventoryData

# Ansible's INTERNAL_STATIC_VARS: never shown in hostvars, whoever sets them.
RESERVED = frozenset({
    "ansible_async_path", "ansible_collection_name", "ansible_config_file",
    "ansible_dependent_role_names", "ansible_diff_mode", "ansible_facts", "ansible_forks",
    "ansible_inventory_sources", "ansible_limit", "ansible_play_batch", "ansible_play_hosts",
    "ansible_play_hosts_all", "ansible_play_role_names", "ansible_playbook_python",
    "ansible_role_name", "ansible_role_names", "ansible_run_tags", "ansible_skip_tags",
    "ansible_verbosity", "ansible_version", "inventory_dir", "inventory_file",
    "inventory_hostname", "inventory_hostname_short", "groups", "group_names", "hostvars",
    "playbook_dir", "play_hosts", "role_name", "role_names", "role_path", "role_uuid",
})


@dataclass
class VarsFile:
    """One loaded group_vars/host_vars file: its variables and each one's origin."""

    path: str
    values: dict[str, Any]
    origins: dict[str, str]


@dataclass
class VarsDir:
    """The group_vars and host_vars beside one inventory source, by entity name."""

    groups: dict[str, list[VarsFile]] = field(default_factory=dict)
    hosts: dict[str, list[VarsFile]] = field(default_factory=dict)


@dataclass
class Effective:
    values: dict[str, Any]
    origins: dict[str, str]


def sorted_groups(data: InventoryData, names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: (data.groups[n].depth, data.groups[n].priority, n))


def effective_vars(data: InventoryData, host: Host, beside: list[VarsDir]) -> Effective:
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def apply(new: dict[str, Any], where: dict[str, str]) -> None:
        values.update(new)
        for key in new:
            origins[key] = where.get(key, "?")

    everything = data.groups["all"]
    apply(everything.vars, everything.origins)
    groups = sorted_groups(data, [g for g in data.host_groups(host) if g != "all"])
    for name in groups:
        apply(data.groups[name].vars, data.groups[name].origins)
    for side in beside:
        for vars_file in side.groups.get("all", []):
            apply(vars_file.values, vars_file.origins)
    for side in beside:
        for name in groups:
            for vars_file in side.groups.get(name, []):
                apply(vars_file.values, vars_file.origins)
    apply(host.vars, host.origins)
    for side in beside:
        for vars_file in side.hosts.get(host.name, []):
            apply(vars_file.values, vars_file.origins)
    for key in RESERVED & values.keys():
        del values[key]
        del origins[key]
    return Effective(values, origins)
