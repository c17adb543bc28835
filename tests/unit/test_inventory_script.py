"""Executable inventory scripts, run for real: output caps, the one time limit, and the
`--host NAME` calls Ansible makes when `--list` gives no `_meta.hostvars`.

The expected view of the `--host` case is ansible-core's own `ansible-inventory --list`
on the same script (tests/fixtures/inventories/_scripts/README.md says how it was made).
"""

from __future__ import annotations

import json
import os
import select
from pathlib import Path

import pytest

from fleetaudit.errors import InventoryError
from fleetaudit.inventory import load_inventories
from fleetaudit.inventory.listing import as_ansible_list
from fleetaudit.inventory_script import MAX_OUTPUT, InventoryScript, run_inventory_script


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def ended(pid: int) -> bool:
    """Has it exited? Waited for on a pidfd (SIGKILL lands asynchronously); a zombie has
    exited too (orphans go to pid 1, which need not reap them at once). The wait's bound
    only keeps a surviving process from hanging the test: a survivor fails it."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], 20)[0])
    finally:
        os.close(fd)


def test_a_script_that_floods_stdout_is_stopped_at_the_cap_with_what_it_started(tmp_path):
    """`yes` in the background of the script, so killing the script alone would not stop
    it; the script's pid and its child's are written down to check both are gone."""
    flood = script(tmp_path, "flood.sh",
                   f'yes & echo $$ $! > {tmp_path}/pids\nwait\n')
    with pytest.raises(InventoryError) as caught:
        load_inventories([flood], run_script=run_inventory_script)
    assert str(caught.value) == (
        f"{flood}: inventory script printed more than {MAX_OUTPUT // 2**20} MiB on --list: "
        "stopped it")
    assert all(ended(int(pid)) for pid in (tmp_path / "pids").read_text().split())


def test_stderr_is_drained_and_only_its_tail_kept(tmp_path):
    """A script that writes much to stderr and then fails must neither block on a full
    pipe nor keep it all: its last line is quoted."""
    noisy = script(tmp_path, "noisy.sh",
                   "head -c 3000000 /dev/zero | tr '\\0' x >&2\necho >&2\n"
                   "echo 'no credentials' >&2\nexit 4\n")
    with pytest.raises(InventoryError, match=r"exited 4 on --list: no credentials$"):
        InventoryScript(noisy, timeout=60)("--list")


def test_the_time_limit_kills_the_script_and_its_children(tmp_path):
    slow = script(tmp_path, "slow.sh", f"sleep 30 & echo $$ $! > {tmp_path}/pids\nwait\n")
    with pytest.raises(InventoryError, match=r"ran past 1s \(on --list\): stopped it"):
        InventoryScript(slow, timeout=1)("--list")
    assert all(ended(int(pid)) for pid in (tmp_path / "pids").read_text().split())


# --- the old protocol: no _meta.hostvars, so --host NAME per host -------------------------

SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "inventories" / "_scripts"


def test_a_script_without_meta_is_asked_for_each_host_as_ansible_does():
    folder = SCRIPTS / "no-meta"
    expected = json.loads((folder / "expected.json").read_text())
    inventory = load_inventories([folder / "inventory.py"], run_script=run_inventory_script)
    listing = as_ansible_list(inventory)
    assert {h.name: h.variables for h in inventory.hosts} == {
        name: expected["_meta"]["hostvars"].get(name, {}) for name in ("w1", "w2", "d1", "lb1")}
    assert {k: v for k, v in listing.items() if k != "_meta"} == \
        {k: v for k, v in expected.items() if k != "_meta"}
    hosts = {h.name: h for h in inventory.hosts}
    assert (hosts["w2"].address, hosts["w2"].port, hosts["w2"].user) == ("10.1.0.2", 2222,
                                                                          "admin")
    assert (hosts["d1"].address, hosts["d1"].become) == ("10.1.0.9", True)
    assert hosts["w1"].origins["address"] == f"{folder}/inventory.py (--host w1) ansible_host"
    [warning] = [w for w in inventory.warnings if "_meta.hostvars" in w]
    assert "run with --host for each of its 4 hosts" in warning


def test_each_host_call_is_capped_and_all_share_one_time_limit(tmp_path):
    listing = '{"web": ["a", "b", "c"]}'
    flood = script(tmp_path, "flood.sh",
                   f"[ \"$1\" = --list ] && echo '{listing}' && exit 0\nexec yes\n")
    with pytest.raises(InventoryError, match=r"more than 1 MiB on --host a: stopped it$"):
        load_inventories([flood], run_script=lambda p: InventoryScript(p, max_output=2**20))
    # Each --host run sleeps 0.4 s: each alone well under the 1 s limit, the three past it.
    slow = script(tmp_path, "slow.sh",
                  f"[ \"$1\" = --list ] && echo '{listing}' && exit 0\nsleep 0.4\necho '{{}}'\n")
    with pytest.raises(InventoryError, match=r"ran past 1s \(on --host [bc]\): stopped it"):
        load_inventories([slow], run_script=lambda p: InventoryScript(p, timeout=1))


def test_a_host_answer_that_is_not_an_object_names_the_host(tmp_path):
    bad = script(tmp_path, "bad.sh", "[ \"$1\" = --list ] && echo '[\"a\"]' || echo '[1]'\n")
    with pytest.raises(InventoryError, match="must be a JSON object of groups"):
        load_inventories([bad], run_script=run_inventory_script)
    bad.write_text("#!/bin/sh\n[ \"$1\" = --list ] && echo '{\"g\": [\"a\"]}' || echo '[1]'\n")
    with pytest.raises(InventoryError, match=r"bad.sh: its --host a output: host 'a': its "
                                             r"variables must be a JSON object, not list"):
        load_inventories([bad], run_script=run_inventory_script)


@pytest.mark.parametrize(("levels", "said"), [
    (65, "its --list output is not inventory JSON: group 'web': variable 'x' is nested "
         "deeper than 64 levels"),
    (900, "its --list output is not inventory JSON: group 'web': variable 'x' is nested "
          "deeper than 64 levels"),
    (5000, "its --list output, line 2: nested deeper than 64 levels"),  # json.loads recursion
])
def test_a_list_output_nested_too_deep_is_refused(tmp_path, levels, said):
    value = "[" * levels + "]" * levels
    deep = script(tmp_path, "deep.sh",
                  f"echo '{{\"web\": {{\"hosts\": [\"h1\"],'\necho '\"vars\": {{\"x\": "
                  f"{value}}}}}, \"_meta\": {{\"hostvars\": {{}}}}}}'\n")
    with pytest.raises(InventoryError) as caught:
        load_inventories([deep], run_script=run_inventory_script)
    assert str(caught.value) == f"{deep}: {said}"


@pytest.mark.parametrize(("levels", "said"), [
    (65, "its --host h1 output: host 'h1': variable 'x' is nested deeper than 64 levels"),
    (5000, "its --host h1 output, line 1: nested deeper than 64 levels"),
])
def test_a_host_output_nested_too_deep_is_refused(tmp_path, levels, said):
    value = "[" * levels + "]" * levels
    deep = script(tmp_path, "deep.sh", "[ \"$1\" = --list ] && echo '{\"web\": [\"h1\"]}' && "
                                       f"exit 0\necho '{{\"x\": {value}}}'\n")
    with pytest.raises(InventoryError) as caught:
        load_inventories([deep], run_script=run_inventory_script)
    assert str(caught.value) == f"{deep}: {said}"
