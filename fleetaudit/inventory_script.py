"""Runs an executable inventory script (`SCRIPT --list`), as Ansible's script plugin does.

Kept out of the pure `inventory` package: it is the one place that starts a process to
read an inventory. The script gets the caller's environment (cloud credentials live
there), a time limit and an output cap; its stderr is quoted when it fails.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from fleetaudit.errors import InventoryError

SCRIPT_TIMEOUT = 60.0
MAX_OUTPUT = 64 * 1024 * 1024


def run_inventory_script(path: Path, timeout: float = SCRIPT_TIMEOUT) -> bytes:
    try:
        done = subprocess.run([str(path.resolve()), "--list"], capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False,
                              cwd=path.resolve().parent)
    except subprocess.TimeoutExpired as exc:
        raise InventoryError(f"{path}: inventory script ran past {timeout:.0f}s") from exc
    except OSError as exc:
        raise InventoryError(f"{path}: cannot run inventory script: "
                             f"{exc.strerror or exc}") from exc
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise InventoryError(f"{path}: inventory script exited {done.returncode}"
                             + (f": {said[-1][:300]}" if said else ""))
    if len(done.stdout) > MAX_OUTPUT:
        raise InventoryError(f"{path}: inventory script printed more than {MAX_OUTPUT} bytes")
    return done.stdout
