"""Real inventories written by others, read as `ansible-inventory --list` reads them.

Each case under tests/fixtures/inventories/ is a public repository's inventory, copied
byte for byte with its group_vars/host_vars (README.md there names the source, commit
and licence of each), and `expected.json`, ansible-core's own `--list` output for it
(tests/fixtures/capture_inventories.sh). Every host, every group's direct members and
children, every host's variables, and the connection settings fleetaudit derives must
match it.

tests/fixtures/inventory-rules/ holds a few small inventories written here for the
rules no public file in the corpus happened to use (stride and letter ranges, ports,
old `ansible_ssh_*` names, a folder as the source, several sources, jump hosts, group
priority); their expected.json is ansible-core's output too, made by the same script.
"""

from __future__ import annotations

import itertools
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from fleetaudit.errors import InventoryError
from fleetaudit.inventory import load_inventories
from fleetaudit.inventory.listing import as_ansible_list

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
RULES = CORPUS.parent / "inventory-rules"
CASES = sorted(p.parent for p in [*CORPUS.glob("*/case.json"), *RULES.glob("*/case.json")])
ERRORS = sorted(p.parent for p in (CORPUS / "_errors").glob("*/case.json"))


def _plain(value: Any) -> Any:
    """ansible-inventory's JSON marks strings it does not trust as templates
    (`{"__ansible_unsafe": text}`); its own decoder reads them back as the text."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _case(folder: Path) -> tuple[list[Path], dict[str, Any]]:
    case = json.loads((folder / "case.json").read_text())
    return [folder / arg for arg in case["inventory"]], case


def _groups(listing: dict[str, Any]) -> dict[str, tuple[list[str], list[str]]]:
    """Each group's direct hosts and children, in Ansible's order (`ungrouped` first)."""
    return {name: (body.get("hosts", []), body.get("children", []))
            for name, body in listing.items() if name != "_meta"}


def _members(listing: dict[str, Any]) -> dict[str, set[str]]:
    """host -> every group it is in, directly or through children (Ansible's group_names)."""
    parents: dict[str, set[str]] = {}
    for name, body in listing.items():
        for child in body.get("children", []) if name != "_meta" else []:
            parents.setdefault(child, set()).add(name)
    found: dict[str, set[str]] = {}
    for name, body in listing.items():
        if name == "_meta":
            continue
        above, stack = set(), [name]
        while stack:
            group = stack.pop()
            if group not in above:
                above.add(group)
                stack.extend(parents.get(group, ()))
        for host in body.get("hosts", []):
            found.setdefault(host, set()).update(above - {"all", "ungrouped"})
    return found


def _last(variables: dict[str, Any], *names: str) -> Any:
    """Ansible's rule for its option aliases: the last name that is set wins."""
    value = None
    for name in names:
        if variables.get(name) is not None:
            value = variables[name]
    return value


def _hop_of_ssh_w(words: list[str]) -> str:
    """`ssh [-p PORT] [-l USER] -W %h:%p [-q] [USER@]HOST`: the hop ssh would go through."""
    options = dict(itertools.pairwise(words))
    user, port = options.get("-l"), options.get("-p")
    hop = words[-1] if user is None else f"{user}@{words[-1]}"
    return f"{hop}:{port}" if port else hop


def _expected_connection(name: str, variables: dict[str, Any]) -> dict[str, Any]:
    """What an ssh connection of Ansible's would use, read off Ansible's own hostvars."""
    port = _last(variables, "ansible_port", "ansible_ssh_port")
    user = _last(variables, "ansible_user", "ansible_ssh_user")
    become = variables.get("ansible_become", False)
    jump = None
    for arg in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        words = shlex.split(str(variables.get(arg, "")))
        for i, word in enumerate(words):
            if jump is None and word == "-J":
                jump = words[i + 1]
            elif jump is None and word.startswith(("ProxyJump=", "ProxyJump ")):
                jump = word[len("ProxyJump="):].strip()
            elif jump is None and word.startswith("-J") and len(word) > 2:
                jump = word[2:]
            elif jump is None and word.startswith("ProxyCommand=ssh "):
                jump = _hop_of_ssh_w(shlex.split(word.split("=", 1)[1]))
    return {
        "address": str(_last(variables, "ansible_host", "ansible_ssh_host") or name),
        "port": int(port) if port is not None and "{{" not in str(port) else None,
        "user": str(user) if user is not None and "{{" not in str(user) else None,
        "key_file": _last(variables, "ansible_private_key_file",
                          "ansible_ssh_private_key_file"),
        "become": str(become).lower() in ("true", "yes", "1", "on", "y", "t"),
        "jump": jump,
    }


def test_the_corpus_is_there_and_large_enough():
    assert len([c for c in CASES if c.parent == CORPUS]) >= 25


@pytest.mark.parametrize("folder", CASES, ids=[f"{c.parent.name}/{c.name}" for c in CASES])
def test_fleetaudit_reads_it_as_ansible_does(folder):
    sources, case = _case(folder)
    expected = json.loads((folder / "expected.json").read_text())
    if "fleetaudit_refuses" in case:
        # Ansible reads this one wrong without a word; fleetaudit says why it will not.
        with pytest.raises(InventoryError, match=case["fleetaudit_refuses"]):
            load_inventories(sources)
        return
    inventory = load_inventories(sources)
    ours = as_ansible_list(inventory)

    expected_hosts = {h for _, (hosts, _) in _groups(expected).items() for h in hosts}
    assert {h.name for h in inventory.hosts} == expected_hosts
    assert _groups(ours) == _groups(expected)
    members = _members(expected)
    hostvars = _plain(expected["_meta"]["hostvars"])
    for host in inventory.hosts:
        assert set(host.groups) == members.get(host.name, set()), host.name
        assert host.variables == hostvars.get(host.name, {}), host.name
        seen = {"address": host.address, "port": host.port, "user": host.user,
                "key_file": host.key_file, "become": host.become, "jump": host.jump}
        assert seen == _expected_connection(host.name, host.variables), host.name


@pytest.mark.parametrize("folder", ERRORS, ids=[c.name for c in ERRORS])
def test_inventories_ansible_refuses_are_refused_with_a_line(folder):
    sources, _ = _case(folder)
    with pytest.raises(InventoryError, match=r":\d+: "):
        load_inventories(sources)
