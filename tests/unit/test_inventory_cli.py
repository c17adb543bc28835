"""The inventory as users meet it on the command line: `fleetaudit inventory`, and a bad
inventory stopping `audit` with exit 2 and a file:line message before anything is sent.

`audit` here always gets a bad inventory, so it must stop before nmap or SSH start; a
unit test may run it because a correct program never reaches the network from here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fleetaudit(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetaudit", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


DEEP = "all:\n" + "".join(f"{'  ' * (2 * i + 1)}children:\n{'  ' * (2 * i + 2)}g{i}:\n"
                          for i in range(1000))


@pytest.mark.parametrize(("name", "content", "message"), [
    ("deep.yml", DEEP, r"deep.yml:\d+: .*nest"),
    ("product.ini", "[web]\nh[1:99999]x[1:99999]\n", r"product.ini:2: .*more than 100000"),
    ("nul.ini", b"[web]\nh1\x00\n", r"nul.ini:2: contains a NUL byte"),
    ("latin1.ini", b"[web]\ncaf\xe9\n", r"latin1.ini:2: not UTF-8"),
    ("shell.ini", "[web]\n'a;rm -rf /'\n", r"shell.ini:2: host 'a;rm -rf /'"),
    ("option.ini", "[web]\nw1 ansible_host=-oProxyCommand=id\n", r"option.ini:2: .*ansible_host"),
    ("subst.yml", "all:\n  hosts:\n    w1:\n      ansible_user: $(reboot)\n",
     r"subst.yml:4: .*ansible_user"),
    ("loop.ini", "[a:children]\nb\n[b:children]\na\n[a]\nh\n", "loop"),
])
@pytest.mark.parametrize("command", ["inventory", "audit"])
def test_a_bad_inventory_is_exit_2_with_file_and_line(tmp_path, name, content, message,
                                                      command):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    args = [command, str(path)]
    if command == "audit":
        args += ["--out", str(tmp_path / "report")]
    done = fleetaudit(*args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert pytest.importorskip("re").search(message, done.stderr), done.stderr
    assert not (tmp_path / "report").exists()


def test_an_unknown_group_in_limit_is_exit_2(tmp_path):
    (tmp_path / "hosts").write_text("[web]\nw1\n")
    done = fleetaudit("audit", str(tmp_path / "hosts"), "--limit", "wbe",
                      "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "--limit wbe: 'wbe' matches no group or host" in done.stderr


def test_inventory_json_is_ansible_inventorys_shape():
    done = fleetaudit("inventory", "inventories/example.ini", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert set(listing["all"]["children"]) == {"ungrouped", "web", "db", "local"}
    assert listing["db"]["hosts"] == ["db1.example.internal"]
    db1 = listing["_meta"]["fleetaudit"]["db1.example.internal"]
    assert (db1["address"], db1["port"], db1["user"]) == ("192.0.2.20", 2222, "root")
    assert db1["origins"]["port"] == "inventories/example.ini:8 ansible_port"
    assert listing["_meta"]["hostvars"]["auditor"]["ansible_connection"] == "local"


def test_inventory_table_says_where_each_setting_came_from():
    done = fleetaudit("inventory", "inventories/example.yml", "--limit", "db")
    assert done.returncode == 0, done.stderr
    assert "db1.example.internal" in done.stdout and "web01" not in done.stdout
    assert "db1.example.internal port: inventories/example.yml:15 ansible_port" in done.stdout


def test_a_host_with_a_templated_or_unsupported_setting_is_listed_never_contacted(tmp_path):
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    templ:\n"
                         "      ansible_host: \"{{ lookup('env', 'IP') }}\"\n"
                         "    win:\n      ansible_host: 192.0.2.9\n"
                         "      ansible_connection: winrm\n")
    done = fleetaudit("audit", str(inventory), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "# skipped templ" in done.stdout and "ansible_host is a Jinja template" in done.stdout
    assert "# skipped win (192.0.2.9): not contacted: ansible_connection 'winrm'" in done.stdout
    assert "nmap" not in done.stdout.replace("# ", "")  # nothing left to scan
