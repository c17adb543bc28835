"""Ansible-style inventories, as users write them, and the errors they deserve."""

from pathlib import Path

import pytest

from fleetaudit.errors import InventoryError
from fleetaudit.inventory import expand_host_pattern, load_inventory, parse_inventory
from fleetaudit.models import Connection

INVENTORY = """
all:
  vars:
    ansible_user: auditor
  hosts:
    bastion:
      ansible_host: 192.0.2.10
      ansible_connection: local
  children:
    web:
      vars:
        ansible_port: 2222
      hosts:
        web[01:03]:
        web02:
          ansible_host: 192.0.2.22
          ansible_ssh_private_key_file: keys/web02
    db:
      hosts:
        db1:
          ansible_port: 22
          ansible_user: root
      children:
        replicas:
          hosts:
            web03:
"""


def by_name(text: str = INVENTORY, base: Path | None = Path("/etc/fleet")):
    inv = parse_inventory(text, source="test.yml", base_dir=base)
    return {h.name: h for h in inv.hosts}


def test_groups_vars_and_ranges():
    hosts = by_name()
    assert sorted(hosts) == ["bastion", "db1", "web01", "web02", "web03"]
    assert hosts["web01"].address == "web01"
    assert hosts["web01"].port == 2222
    assert hosts["web01"].user == "auditor"
    assert hosts["web02"].address == "192.0.2.22"
    assert hosts["web02"].key_file == "/etc/fleet/keys/web02"
    assert hosts["db1"].user == "root"
    assert hosts["db1"].port == 22
    assert hosts["web03"].groups == ["web", "db", "replicas"]
    assert hosts["bastion"].connection is Connection.LOCAL
    assert hosts["bastion"].groups == []


def test_host_vars_beat_group_vars_visited_later():
    text = """
all:
  children:
    a:
      hosts:
        h1: {ansible_port: 2200}
    b:
      vars: {ansible_port: 9999}
      hosts:
        h1:
"""
    assert by_name(text)["h1"].port == 2200


def test_range_keeps_zero_padding():
    assert expand_host_pattern("n[08:10].x") == ["n08.x", "n09.x", "n10.x"]
    assert expand_host_pattern("n[1:2]") == ["n1", "n2"]


@pytest.mark.parametrize(("text", "message"), [
    ("all: [", "line"),
    ("- just\n- a list\n", "mapping of groups"),
    ("all:\n  hosts:\n    h1:\n      ansible_port: nope\n", "ansible_port"),
    ("all:\n  hosts:\n    h1:\n      ansible_port: 70000\n", "ansible_port"),
    ("all:\n  hostz:\n    h1:\n", "unknown key"),
    ("all:\n  hosts:\n    h1:\n      ansible_connection: winrm\n", "winrm"),
    ("all:\n  hosts: {}\n", "no hosts"),
    ("all:\n  hosts:\n    h[5:1]:\n", "backwards"),
    ("all:\n  hosts:\n    - h1\n", "mapping of host names"),
])
def test_broken_inventories_say_what_and_where(text, message):
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, source="bad.yml")
    assert "bad.yml" in str(info.value)
    assert message in str(info.value)


def test_alias_bomb_is_bounded():
    # Each level references the previous one ten times: 10^7 hosts if walked naively.
    lines = ["a0: &a0 {hosts: {h: }}"]
    for level in range(1, 8):
        refs = ", ".join(f"c{i}: *a{level - 1}" for i in range(10))
        lines.append(f"a{level}: &a{level} {{children: {{{refs}}}}}")
    lines.append("all: {children: {top: *a7}}")
    with pytest.raises(InventoryError):
        parse_inventory("\n".join(lines), source="bomb.yml")


def test_unreadable_file_is_an_inventory_error(tmp_path):
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "missing.yml")
    bad = tmp_path / "latin1.yml"
    bad.write_bytes(b"all:\n  hosts:\n    caf\xe9:\n")
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(bad)


def test_committed_example_inventory_parses():
    inv = load_inventory(Path(__file__).resolve().parents[2] / "inventories" / "example.yml")
    assert inv.hosts


def test_become_from_group_and_host_vars():
    hosts = by_name("""
all:
  vars:
    ansible_become: yes
  hosts:
    plain:
      ansible_become: false
    as_root: {}
    as_other:
      ansible_become: "True"
      ansible_become_user: "auditor"
      ansible_become_method: sudo
""")
    assert (hosts["plain"].become, hosts["plain"].become_user) == (False, None)
    assert (hosts["as_root"].become, hosts["as_root"].become_user) == (True, None)
    assert (hosts["as_other"].become, hosts["as_other"].become_user) == (True, "auditor")


@pytest.mark.parametrize(("variables", "message"), [
    ("ansible_become: maybe", "not a boolean"),
    ("ansible_become: true\n      ansible_become_method: su", "not supported"),
    ("ansible_become: true\n      ansible_become_user: 'root; id'", "not a user name"),
])
def test_bad_become_settings_are_refused(variables, message):
    with pytest.raises(InventoryError, match=message):
        parse_inventory(f"all:\n  hosts:\n    h1:\n      {variables}\n", source="bad.yml")
