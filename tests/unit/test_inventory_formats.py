"""One fleet written as INI and as YAML resolves to the same inventory (generated cases)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetaudit.inventory import load_inventory

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
VALUES = st.one_of(st.integers(-5, 70000), st.booleans(),
                   st.from_regex(r"[a-z][a-z0-9 ._-]{0,10}", fullmatch=True))
VARS = st.dictionaries(st.from_regex(r"v_[a-z]{1,4}", fullmatch=True), VALUES, max_size=3)


@st.composite
def fleets(draw):
    groups = draw(st.lists(NAMES.map(lambda n: "g" + n), min_size=1, max_size=5, unique=True))
    hosts = draw(st.lists(NAMES.map(lambda n: "h" + n), min_size=1, max_size=8, unique=True))
    members = {g: draw(st.lists(st.sampled_from(hosts), max_size=4, unique=True))
               for g in groups}
    members[groups[0]] = sorted(set(members[groups[0]]) | set(hosts))  # nobody left out
    # children only point at later groups: no loops
    children = {g: draw(st.lists(st.sampled_from(groups[i + 1:]), unique=True))
                if i + 1 < len(groups) else [] for i, g in enumerate(groups)}
    host_vars = {h: draw(VARS) for h in hosts}
    group_vars = {g: draw(VARS) for g in groups}
    all_vars = draw(VARS)
    return groups, members, children, host_vars, group_vars, all_vars


def _ini_value(value):
    return json.dumps(value) if isinstance(value, str) else repr(value)


def as_ini(fleet) -> str:
    groups, members, children, host_vars, group_vars, all_vars = fleet
    lines: list[str] = []
    written: set[str] = set()
    for group in groups:
        lines.append(f"[{group}]")
        for host in members[group]:
            own = "" if host in written else " ".join(
                f"{k}='{_ini_value(v)}'" for k, v in host_vars[host].items())
            written.add(host)
            lines.append(f"{host} {own}".rstrip())
        if group_vars[group]:
            lines.append(f"[{group}:vars]")
            lines.extend(f"{k}={_ini_value(v)}" for k, v in group_vars[group].items())
        if children[group]:
            lines.append(f"[{group}:children]")
            lines.extend(children[group])
    if all_vars:
        lines.append("[all:vars]")
        lines.extend(f"{k}={_ini_value(v)}" for k, v in all_vars.items())
    return "\n".join(lines) + "\n"


def as_yaml(fleet) -> str:
    groups, members, children, host_vars, group_vars, all_vars = fleet
    written: set[str] = set()
    body: dict = {}
    for group in groups:
        hosts = {}
        for host in members[group]:
            hosts[host] = None if host in written else (host_vars[host] or None)
            written.add(host)
        body[group] = {"hosts": hosts, "vars": group_vars[group],
                       "children": {c: None for c in children[group]}}
    # Top-level groups, as INI sections are: a group under all.children would be a child
    # of `all` as well as of its other parents.
    return json.dumps({**body, "all": {"vars": all_vars}})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_ini_and_yaml_of_one_fleet_resolve_the_same(fleet):
    with tempfile.TemporaryDirectory() as folder:
        ini, yml = Path(folder, "fleet.ini"), Path(folder, "fleet.yml")
        ini.write_text(as_ini(fleet))
        yml.write_text(as_yaml(fleet))
        from_ini, from_yaml = load_inventory(ini), load_inventory(yml)

    def view(inventory):
        return {h.name: (sorted(h.groups), h.variables, h.address, h.port, h.user, h.become)
                for h in inventory.hosts}

    assert view(from_ini) == view(from_yaml)
    groups = {g.name: (sorted(g.hosts), sorted(g.children)) for g in from_ini.groups}
    assert groups == {g.name: (sorted(g.hosts), sorted(g.children)) for g in from_yaml.groups}
