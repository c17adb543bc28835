"""Executable inventory scripts, run for real: output caps, the one time limit, and the
`--host NAME` calls Ansible makes when `--list` gives no `_meta.hostvars`.

The expected view of the `--host` case is ansible-core's own `ansible-inventory --list`
on the same script (tests/fixtures/inventories/_scripts/README.md says how it was made).
"""

from __future__ import annotations

import os
import select
from pathlib import Path

import pytest

from fleetaudit.errors import InventoryError
from fleetaudit.inventory import load_inventories
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
