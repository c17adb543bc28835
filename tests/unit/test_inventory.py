"""Inventories as Ansible reads them, and the errors bad ones deserve.

The real-world corpus is in test_inventory_corpus.py; these cases pin each rule with the
smallest file that shows it. Where a rule is Ansible's, the expected value is what
ansible-core 2.19 prints for the same file (`ansible-inventory --list`).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from fleetaudit.errors import InventoryError
from fleetaudit.inventory import expand_host_pattern, load_inventories, load_inventory
from fleetaudit.inventory.data import InventoryData
from fleetaudit.inventory.files import read_source
from fleetaudit.inventory.listing import as_ansible_list
from fleetaudit.inventory.ranges import RangeError
from fleetaudit.inventory_script import run_inventory_script
from fleetaudit.models import Connection

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def hosts_of(*paths: Path, limit: str | None = None):
    return {h.name: h for h in load_inventories(list(paths), limit=limit).hosts}


# --- patterns ---------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "names"), [
    ("www[01:05:2]", ["www01", "www03", "www05"]),
    ("db-[a:c]", ["db-a", "db-b", "db-c"]),
    ("n[08:10].x", ["n08.x", "n09.x", "n10.x"]),
    ("n[1:2]", ["n1", "n2"]),
    ("r[1:2]c[a:b]", ["r1ca", "r1cb", "r2ca", "r2cb"]),
    ("[:2]x", ["0x", "1x", "2x"]),
])
def test_ranges_expand_as_ansible_does(pattern, names):
    assert expand_host_pattern(pattern) == names


@pytest.mark.parametrize(("pattern", "message"), [
    ("h[5:1]", "backwards"), ("h[01:100]", "equal lengths"), ("h[1:2:0]", "positive"),
    ("h[1]", "begin:end"), ("h[1:99999]x[1:99999]", "more than"),
])
def test_bad_ranges_are_refused(pattern, message):
    with pytest.raises(RangeError, match=message):
        expand_host_pattern(pattern)


def test_a_range_product_is_refused_before_it_is_built(tmp_path):
    inv = write(tmp_path, "hosts", "[web]\nh[1:99999]x[1:99999]\n")
    with pytest.raises(InventoryError, match=r"hosts:2: .*more than 100000 hosts"):
        load_inventory(inv)


# --- INI --------------------------------------------------------------------------------

INI = """\
# a comment
lonely.example.org

[web]
www[01:03:2] ansible_ssh_host=10.0.0.1 note="two words" extra='{"k": [1, 2]}' n=5 flag=True
db-[a:b]:2222

[web:vars]
ansible_user=deploy
quoted="q"
raw=1 # literal_eval reads this as a comment, as in Ansible
plain=a b # kept whole: not a literal

[everything:children]
web
later

[later]
h9 ansible_become=yes ansible_become_user=ops

[all:vars]
z=all
"""


def test_ini_hosts_groups_and_values(tmp_path):
    hosts = hosts_of(write(tmp_path, "hosts.ini", INI))
    assert sorted(hosts) == ["db-a", "db-b", "h9", "lonely.example.org", "www01", "www03"]
    www = hosts["www03"]
    assert (www.address, www.user, www.port) == ("10.0.0.1", "deploy", None)
    assert www.variables["note"] == "two words"
    assert www.variables["extra"] == {"k": [1, 2]}
    assert www.variables["n"] == 5 and www.variables["flag"] is True
    assert www.variables["raw"] == 1
    assert www.variables["plain"] == "a b # kept whole: not a literal"
    assert hosts["db-a"].port == 2222
    assert set(hosts["db-a"].groups) == {"web", "everything"}
    assert set(hosts["h9"].groups) == {"later", "everything"}
    assert (hosts["h9"].become, hosts["h9"].become_user) == (True, "ops")
    assert hosts["lonely.example.org"].groups == []
    assert www.origins["address"].endswith("hosts.ini:5 ansible_ssh_host")
    assert www.origins["user"].endswith("hosts.ini:9 ansible_user")


def test_membership_sets_follow_the_lists_through_ungrouped_and_limits(tmp_path):
    """Groups keep a set beside their host and child lists (a list's `in` made a
    99,999-host group quadratic): the lists keep Ansible's order and no duplicate, and
    a host that leaves `ungrouped` at the end leaves both."""
    path = write(tmp_path, "hosts", "u1\nh3\nu2\nh1\n[web]\nh[1:4]\nh2\n[db]\nh3\nu2\n"
                                    "[all:children]\nweb\ndb\nweb\n")
    data = InventoryData()
    read_source(path, data, None)
    data.reconcile()
    for group in data.groups.values():
        assert group.host_set == set(group.hosts) and len(group.hosts) == len(group.host_set)
        assert group.child_set == set(group.children)
    assert data.groups["ungrouped"].hosts == ["u1"]
    assert data.groups["web"].hosts == ["h1", "h2", "h3", "h4"]
    listing = as_ansible_list(load_inventory(path))  # as ansible-inventory --list says
    assert listing["all"]["children"] == data.groups["all"].children == ["ungrouped", "web",
                                                                          "db"]
    assert [h.name for h in load_inventory(path, limit="db:web:u1:db").hosts] == \
        ["h3", "u2", "h1", "h2", "h4", "u1"]


def test_ini_groups_listed_in_children_before_being_defined(tmp_path):
    hosts = hosts_of(write(tmp_path, "hosts", "[top:children]\nmid\n[mid:children]\nleaf\n"
                                               "[leaf]\nh1\n"))
    assert set(hosts["h1"].groups) == {"leaf", "mid", "top"}


@pytest.mark.parametrize(("text", "message"), [
    ("[web]\nh1\n[web:bogus]\nx\n", r":3: section \[web:bogus\] has an unknown type"),
    ("[a:vars]\nx=1\n", r":1: section \[a:vars\] is for a group that is never defined"),
    ("[a:children]\nghost\n", r":2: .*names group 'ghost', which is never defined"),
    ("[web]\nh1 novalue\n", r":2: expected key=value"),
    ("[web]\nh1 x='unterminated\n", r":2: cannot parse host line"),
    ("[web server]\nh1\n", r":1: invalid section"),
    ("[a:children]\nb\n[b:children]\na\n[a]\nh\n", r"loop"),
])
def test_broken_ini_says_where(tmp_path, text, message):
    with pytest.raises(InventoryError, match=message):
        load_inventory(write(tmp_path, "inventory.ini", text))


# --- YAML -------------------------------------------------------------------------------

YAML = """\
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
        db1:2201:
          ansible_user: root
      children:
        replicas:
    replicas:
      hosts:
        web03:
"""


def test_yaml_children_name_groups_defined_elsewhere(tmp_path):
    hosts = hosts_of(write(tmp_path, "inv.yml", YAML))
    assert sorted(hosts) == ["bastion", "db1", "web01", "web02", "web03"]
    assert set(hosts["web03"].groups) == {"web", "db", "replicas"}
    assert hosts["web01"].port == 2222 and hosts["web01"].user == "auditor"
    assert hosts["web02"].address == "192.0.2.22"
    assert hosts["web02"].key_file == "keys/web02"  # as written: ssh resolves it from cwd
    assert (hosts["db1"].port, hosts["db1"].user) == (2201, "root")
    assert hosts["bastion"].connection is Connection.LOCAL
    assert hosts["bastion"].groups == []


def test_ansible_ssh_host_wins_over_ansible_host_as_in_ansible(tmp_path):
    hosts = hosts_of(write(tmp_path, "inv.yml", "all:\n  hosts:\n    h:\n"
                                                "      ansible_ssh_host: 10.0.0.2\n"
                                                "      ansible_host: 10.0.0.1\n"
                                                "      ansible_ssh_port: 2200\n"
                                                "      ansible_ssh_user: old\n"))
    assert (hosts["h"].address, hosts["h"].port, hosts["h"].user) == ("10.0.0.2", 2200, "old")


def test_duplicate_keys_warn_with_both_lines(tmp_path):
    inv = load_inventory(write(tmp_path, "inv.yml", "all:\n  hosts:\n    h:\n"
                                                    "      ansible_port: 1\n"
                                                    "      ansible_port: 2\n"))
    assert inv.hosts[0].port == 2
    assert any("inv.yml:5: key 'ansible_port' given twice (first on line 4)" in w
               for w in inv.warnings)


def test_no_user_means_ssh_decides_never_root(tmp_path):
    hosts = hosts_of(write(tmp_path, "hosts", "h1\n"))
    assert hosts["h1"].user is None and hosts["h1"].port is None


def test_unknown_keys_warn_as_ansible_does(tmp_path):
    inv = load_inventory(write(tmp_path, "inv.yml", "all:\n  hostz:\n    h1:\n  hosts:\n"
                                                    "    h2:\n"))
    assert [h.name for h in inv.hosts] == ["h2"]
    assert any("inv.yml:2: skipping unexpected key 'hostz'" in w for w in inv.warnings)


@pytest.mark.parametrize(("text", "message"), [
    ("all: [", r"inv.yml:\d+: invalid YAML"),
    ("- just\n- a list\n", "mapping of groups"),
    ("all:\n  hosts:\n    h1:\n      ansible_port: nope\n", r"inv.yml:4: .*ansible_port"),
    ("all:\n  hosts:\n    h1:\n      ansible_port: 70000\n", "not a port"),
    ("all:\n  hosts: {}\n", "no hosts"),
    ("all:\n  hosts:\n    h[5:1]:\n", r"inv.yml:3: .*backwards"),
    ("all:\n  hosts:\n    - h1\n", "hosts must be a mapping"),
    ("all:\n  hosts:\n    2020:\n", "must be a string"),
    ("plugin: amazon.aws.aws_ec2\n", "ansible-inventory -i FILE --list"),
])
def test_broken_yaml_says_what_and_where(tmp_path, text, message):
    with pytest.raises(InventoryError, match=message):
        load_inventory(write(tmp_path, "inv.yml", text))


def test_alias_bomb_is_bounded(tmp_path):
    # Each level references the previous one ten times: 10^7 entries if walked naively.
    lines = ["a0: &a0 {hosts: {h: }}"]
    for level in range(1, 8):
        refs = ", ".join(f"c{level}{i}: *a{level - 1}" for i in range(10))
        lines.append(f"a{level}: &a{level} {{children: {{{refs}}}}}")
    lines.append("all: {children: {top: *a7}}")
    with pytest.raises(InventoryError, match="aliases"):
        load_inventory(write(tmp_path, "bomb.yml", "\n".join(lines)))


def test_deep_nesting_is_a_clear_error_not_a_traceback(tmp_path):
    text = "all:\n" + "".join(f"{'  ' * (2 * i + 1)}children:\n{'  ' * (2 * i + 2)}g{i}:\n"
                             for i in range(1000))
    with pytest.raises(InventoryError, match=r"deep.yml:\d+: .*nest"):
        load_inventory(write(tmp_path, "deep.yml", text))
    shallow = "all:\n" + "".join(f"{'  ' * (2 * i + 1)}children:\n{'  ' * (2 * i + 2)}g{i}:\n"
                                 for i in range(300))
    with pytest.raises(InventoryError, match="nested deeper than 200"):
        load_inventory(write(tmp_path, "deep300.yml", shallow))
    chain = "".join(f"[g{i}:children]\ng{i + 1}\n" for i in range(1000)) + "[g1000]\nh\n"
    with pytest.raises(InventoryError, match="nested deeper than"):
        load_inventory(write(tmp_path, "deep.ini", chain))


def test_an_ini_value_too_deep_for_python_s_parser_stays_text(tmp_path):
    [host] = load_inventory(write(tmp_path, "hosts.ini", f"[web]\nh1 x={nested(300)}\n")).hosts
    assert host.variables["x"] == nested(300)


def nested(levels: int) -> str:
    """A value `levels` lists deep, as JSON, YAML flow and a Python literal all write it."""
    return "[" * levels + "]" * levels


# Each source of a variable: (files to write, file:line the error names). 900 levels
# reached jsonable's recursion, 300-480 pydantic's "maximum validation depth", 5,000 the
# recursion of json.loads (and libyaml's own limit of 1,000).
DEEP_SOURCES = {
    "ini host": lambda v: ({"hosts.ini": f"[web]\nh1 x={v}\n"}, "hosts.ini:2: "),
    "ini group": lambda v: ({"hosts.ini": f"[web]\nh1\n[web:vars]\nx={v}\n"}, "hosts.ini:4: "),
    "yaml host": lambda v: ({"hosts.yml": f"all:\n  hosts:\n    h1:\n      x: {v}\n"},
                            "hosts.yml:3: "),
    "yaml group": lambda v: ({"hosts.yml": f"all:\n  hosts:\n    h1:\n  vars:\n    x: {v}\n"},
                             "hosts.yml:5: "),
    "group_vars yml": lambda v: ({"hosts.ini": "[web]\nh1\n",
                                  "group_vars/web.yml": f"---\ny: 1\nx: {v}\n"},
                                 "group_vars/web.yml:3: "),
    "group_vars json": lambda v: ({"hosts.ini": "[web]\nh1\n",
                                   "group_vars/web.json": f'{{"y": 1,\n\n "x": {v}}}'},
                                  "group_vars/web.json:3: "),
    "host_vars json": lambda v: ({"hosts.ini": "[web]\nh1\n",
                                  "host_vars/h1.json": f'{{\n"x": {v}}}'},
                                 "host_vars/h1.json:2: "),
    "saved --list json": lambda v: ({"inv.json": '{"_meta": {"hostvars": {"h1": {\n'
                                                 f'"x": {v}}}}}}}, "web": ["h1"]}}'},
                                    "inv.json:2: _meta.hostvars.h1: "),
}


# INI values are Python literals, and Python's parser stops at 200 levels: deeper, INI keeps
# the value as text (as Ansible does), tested below.
@pytest.mark.parametrize(("source", "levels"), [
    (source, levels) for source in DEEP_SOURCES for levels in (65, 300, 900, 5000)
    if not (source.startswith("ini") and levels > 150)])
def test_a_variable_nested_too_deep_is_refused_with_its_file_and_line(tmp_path, source,
                                                                      levels):
    files, where = DEEP_SOURCES[source](nested(levels))
    for name, text in files.items():
        write(tmp_path, name, text)
    first = tmp_path / next(iter(files))
    with pytest.raises(InventoryError) as caught:
        load_inventory(first)
    message = str(caught.value)
    if levels == 5000 and "exceeded maximum nesting depth" in message:  # libyaml's limit
        assert re.match(rf"{tmp_path}/{where.split(':')[0]}:\d+: invalid YAML", message)
        return
    assert message.startswith(f"{tmp_path}/{where}"), message
    assert "nested deeper than 64 levels" in message, message
    assert "variable 'x'" in message or (levels == 5000 and ".json" in where), message


@pytest.mark.parametrize("source", DEEP_SOURCES)
def test_a_variable_64_levels_deep_is_kept(tmp_path, source):
    files, _ = DEEP_SOURCES[source](nested(64))
    for name, text in files.items():
        write(tmp_path, name, text)
    [host] = load_inventory(tmp_path / next(iter(files))).hosts
    value = host.variables["x"]
    for _ in range(63):
        [value] = value
    assert value == []


def test_a_variable_alias_bomb_or_loop_is_refused_quickly(tmp_path):
    """300 bytes that expand to 10^8 values: measured once per alias, refused; it used to
    run for minutes (every host's variables are expanded). A value holding itself too."""
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 8)]
    write(tmp_path, "hosts", "[web]\nh1\n")
    write(tmp_path, "group_vars/web.yml", "\n".join(lines) + "\n")
    with pytest.raises(InventoryError, match=r"web.yml:6: variable 'a5' holds more than "
                                             r"1,000,000 values once its YAML aliases"):
        load_inventory(tmp_path / "hosts")
    write(tmp_path, "group_vars/web.yml", "x: &a {k: [1, *a]}\n")
    with pytest.raises(InventoryError, match=r"web.yml:1: variable 'x' is nested deeper "
                                             r"than 64 levels \(it contains itself\)"):
        load_inventory(tmp_path / "hosts")
    # Shared, but small: kept, expanded as Ansible expands it.
    write(tmp_path, "group_vars/web.yml", "a: &a {k: [1, 2]}\nx: [*a, *a, {b: *a}]\n")
    [host] = load_inventory(tmp_path / "hosts").hosts
    assert host.variables["x"] == [{"k": [1, 2]}, {"k": [1, 2]}, {"b": {"k": [1, 2]}}]


# --- hostile values ---------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "'a;rm -rf /'", "-oProxyCommand=touch", "'$(reboot)'",
    "h ansible_host='$(reboot)'", "h ansible_host=-oProxyCommand=x",
    "h ansible_user='root;id'", "h ansible_user=-lroot", "h ansible_port=22x",
    "h ansible_ssh_common_args='-o ProxyJump=$(reboot)'",
    "h ansible_host='fe80::1%-oX y'", "h ansible_host='fe80::1%eth0;id'",
])
def test_hostile_names_users_and_addresses_are_refused_with_their_line(tmp_path, line):
    with pytest.raises(InventoryError, match=r"hosts:3: "):
        load_inventory(write(tmp_path, "hosts", f"[web]\nok1\n{line}\n"))


def test_a_link_local_address_keeps_its_interface(tmp_path):
    [host] = load_inventory(write(tmp_path, "hosts", "[web]\nh ansible_host=fe80::1%eth0\n")).hosts
    assert host.address == "fe80::1%eth0"


def test_nul_bytes_and_bad_utf8_name_the_line(tmp_path):
    with pytest.raises(InventoryError, match=r"hosts:2: contains a NUL byte"):
        load_inventory(write(tmp_path, "hosts", b"[web]\nh\x001\n"))
    with pytest.raises(InventoryError, match=r"inv.yml:3: not UTF-8"):
        load_inventory(write(tmp_path, "inv.yml", b"all:\n  hosts:\n    caf\xe9:\n"))


def test_missing_source_is_named(tmp_path):
    with pytest.raises(InventoryError, match="no such inventory file or folder"):
        load_inventory(tmp_path / "missing.yml")


# --- become, jump hosts, templates ------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("yes", True), ("True", True), ("t", True), ("1", True), ("on", True),
    ("no", False), ("False", False), ("f", False), ("0", False), ("off", False),
])
def test_become_takes_ansibles_booleans(tmp_path, value, expected):
    hosts = hosts_of(write(tmp_path, "hosts", f"h ansible_become={value}\n"))
    assert hosts["h"].become is expected


def test_bad_become_is_refused_and_other_methods_are_not_audited(tmp_path):
    with pytest.raises(InventoryError, match="not a boolean"):
        load_inventory(write(tmp_path, "hosts", "h ansible_become=maybe\n"))
    hosts = hosts_of(write(tmp_path, "h2", "h ansible_become=true ansible_become_method=su\n"))
    assert hosts["h"].unresolved == ["ansible_become_method"]


@pytest.mark.parametrize(("args", "jump"), [
    ("-o ProxyJump=ops@bastion.example.org:2222", "ops@bastion.example.org:2222"),
    ("-J jump1,ops@jump2", "jump1,ops@jump2"),
    ("-Jbastion", "bastion"),
    ("-o StrictHostKeyChecking=no -o 'ProxyJump bastion'", "bastion"),
    ('-o ProxyCommand="ssh -W %h:%p -q ops@bastion"', "ops@bastion"),
    ('-o ProxyCommand="ssh -p 2222 -l ops -W %h:%p bastion"', "ops@bastion:2222"),
    ("-o ControlMaster=auto", None),
])
def test_jump_host_from_ssh_args(tmp_path, args, jump):
    inv = write(tmp_path, "inv.yml", f"all:\n  hosts:\n    h:\n"
                                     f"      ansible_ssh_common_args: {json.dumps(args)}\n")
    assert hosts_of(inv)["h"].jump == jump


def test_a_proxy_command_we_cannot_follow_is_refused(tmp_path):
    inv = write(tmp_path, "inv.yml", "all:\n  hosts:\n    h:\n      ansible_ssh_common_args: "
                                     "'-o ProxyCommand=\"nc -X 5 -x proxy:1080 %h %p\"'\n")
    with pytest.raises(InventoryError, match="ProxyCommand"):
        load_inventory(inv)


def test_templated_connection_values_are_noted_not_evaluated(tmp_path):
    inv = write(tmp_path, "inv.yml", "all:\n  hosts:\n    h:\n"
                                     "      ansible_host: \"{{ lookup('env', 'IP') }}\"\n"
                                     "      app_port: \"{{ 8000 + 80 }}\"\n")
    host = hosts_of(inv)["h"]
    assert host.unresolved == ["ansible_host"]
    assert any("ansible_host is a Jinja template" in note for note in host.notes)
    assert host.variables["app_port"] == "{{ 8000 + 80 }}"


# --- folders, several sources, group_vars and host_vars ---------------------------------

def test_precedence_across_sources_and_vars_folders(tmp_path):
    inv = tmp_path / "inv"
    write(inv, "10-hosts.ini", "[web]\nw1 from_host=ini\n[app:children]\nweb\n"
                               "[web:vars]\nlevel=web-ini\nfrom_all=web-ini\n"
                               "[app:vars]\nlevel=app-ini\n[all:vars]\nfrom_all=all-ini\n")
    write(inv, "20-more.yml", "all:\n  children:\n    db:\n      hosts:\n        d1:\n")
    write(inv, "README.md", "not an inventory")
    write(inv, "group_vars/all.yml", "from_all: all-file\nlevel: all-file\n")
    write(inv, "group_vars/web/10.yml", "level: web-file\n")
    write(inv, "group_vars/web/20", "second: 2\n")
    write(inv, "group_vars/db.json", '{"ansible_user": "dba"}')
    write(inv, "host_vars/w1.yaml", "from_host: file\n")
    hosts = hosts_of(inv)
    w1 = hosts["w1"].variables
    # group_vars files beat inventory group vars; a deeper group beats its parent;
    # host_vars files beat the host's own inventory variables.
    assert w1["level"] == "web-file" and w1["second"] == 2
    assert w1["from_all"] == "all-file" and w1["from_host"] == "file"
    assert hosts["d1"].user == "dba"
    assert hosts["d1"].origins["user"].endswith("group_vars/db.json ansible_user")


def test_group_priority_orders_groups_of_equal_depth(tmp_path):
    ini = ("[a]\nh\n[b]\nh\n[a:vars]\nx=a\nansible_group_priority=10\n[b:vars]\nx=b\n")
    assert hosts_of(write(tmp_path, "hosts", ini))["h"].variables["x"] == "a"
    assert hosts_of(write(tmp_path, "hosts2", ini.replace("priority=10", "priority=1"))
                    )["h"].variables["x"] == "b"


def test_several_sources_merge_as_repeated_dash_i(tmp_path):
    one = write(tmp_path / "one", "hosts", "[web]\nw1 ansible_user=a\n")
    two = write(tmp_path / "two", "hosts.yml", "all:\n  children:\n    web:\n      hosts:\n"
                                               "        w1: {ansible_user: b}\n        w2:\n")
    write(tmp_path / "two", "group_vars/web.yml", "team: two\n")
    hosts = hosts_of(one, two)
    assert hosts["w1"].user == "b" and hosts["w2"].variables["team"] == "two"


# --- dynamic inventories ----------------------------------------------------------------

SCRIPT = """#!/bin/sh
[ "$1" = --list ] || exit 1
cat <<'JSON'
{"web": {"hosts": ["w1", "w2"], "vars": {"ansible_user": "deploy"}},
 "db": ["d1"],
 "prod": {"children": ["web", "db"]},
 "_meta": {"hostvars": {"w1": {"ansible_host": "10.1.0.1"}}}}
JSON
"""


def test_an_executable_inventory_script_is_run_with_list(tmp_path):
    script = write(tmp_path, "inventory.sh", SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    inv = load_inventories([script], run_script=run_inventory_script)
    hosts = {h.name: h for h in inv.hosts}
    assert hosts["w1"].address == "10.1.0.1" and hosts["w2"].user == "deploy"
    assert set(hosts["d1"].groups) == {"db", "prod"}
    with pytest.raises(InventoryError, match="inventory script"):
        load_inventories([script])  # without a runner, a script is refused, not run


def test_a_failing_or_hanging_script_is_a_clear_error(tmp_path):
    script = write(tmp_path, "bad.sh", "#!/bin/sh\necho 'no cloud credentials' >&2\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(InventoryError, match="exited 3 on --list: no cloud credentials"):
        load_inventories([script], run_script=run_inventory_script)
    slow = write(tmp_path, "slow.sh", "#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(InventoryError, match=r"ran past 1s \(on --list\)"):
        load_inventories([slow], run_script=lambda p: run_inventory_script(p, timeout=1))


def test_saved_list_json_reads_back_to_the_same_view(tmp_path):
    first = load_inventories([write(tmp_path / "src", "hosts", INI)])
    saved = tmp_path / "inventory.json"
    listing = as_ansible_list(first)
    del listing["_meta"]["fleetaudit"]
    saved.write_text(json.dumps(listing))
    again = load_inventories([saved])
    assert {h.name: (h.variables, sorted(h.groups)) for h in again.hosts} == \
        {h.name: (h.variables, sorted(h.groups)) for h in first.hosts}


# --- --limit ----------------------------------------------------------------------------

LIMIT = ("[web]\nw1\nw2\nw3\n[db]\nd1\nd2\n[prod:children]\nweb\ndb\n[staging]\nw3\nd2\n")


@pytest.mark.parametrize(("limit", "names"), [
    ("web", ["w1", "w2", "w3"]),
    ("web,db", ["w1", "w2", "w3", "d1", "d2"]),
    ("web:db", ["w1", "w2", "w3", "d1", "d2"]),
    ("prod:&staging", ["w3", "d2"]),
    ("prod:!staging", ["w1", "w2", "d1"]),
    ("all:!web", ["d1", "d2"]),
    ("w*", ["w1", "w2", "w3"]),
    ("~d[12]", ["d1", "d2"]),
    ("web[0]", ["w1"]),
    ("web[1:2]", ["w2", "w3"]),
    ("d1", ["d1"]),
])
def test_limit_patterns(tmp_path, limit, names):
    assert list(hosts_of(write(tmp_path, "hosts", LIMIT), limit=limit)) == names


@pytest.mark.parametrize("limit", ["webz", "web:&nothere", "web[9]", "~("])
def test_a_limit_matching_nothing_is_an_error(tmp_path, limit):
    with pytest.raises(InventoryError, match="--limit"):
        load_inventories([write(tmp_path, "hosts", LIMIT)], limit=limit)


def test_committed_example_inventories_are_the_same_fleet():
    def view(name):
        inventory = load_inventory(ROOT / "inventories" / name)
        return {h.name: (sorted(h.groups), h.variables, h.connection) for h in inventory.hosts}

    assert view("example.yml") == view("example.ini")
    assert len(view("example.ini")) == 4


def test_scripts_need_the_executable_bit_not_a_shebang(tmp_path):
    plain = write(tmp_path, "hosts", "#!/not/run\n[web]\nw1\n")
    assert not os.access(plain, os.X_OK)
    assert [h.name for h in load_inventory(plain).hosts] == ["w1"]
