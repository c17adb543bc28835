"""Runs an executable inventory script (`SCRIPT --list`, `SCRIPT --host NAME`), as Ansible's
script plugin does.

Kept out of the pure `inventory` package: it is the one place that starts a process to
read an inventory. The script gets the caller's environment (cloud credentials live
there) and no stdin. All the runs of one script share one time limit (a script without
`_meta.hostvars` is run once more per host, and those runs must not each get a minute),
and each run's output is capped while it is read: a script that floods is killed at the
cap, with everything it started (it runs in a process group of its own), rather than
filling memory first. Its stderr is quoted when it fails.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

from fleetaudit.errors import InventoryError

SCRIPT_TIMEOUT = 60.0
MAX_OUTPUT = 64 * 1024 * 1024
MAX_STDERR = 64 * 1024  # the tail kept to quote; the rest is read and dropped
_CHUNK = 256 * 1024


class InventoryScript:
    """One inventory script, ready to run; every run must end within `timeout` seconds of
    this object's making."""

    def __init__(self, path: Path, timeout: float = SCRIPT_TIMEOUT,
                 max_output: int = MAX_OUTPUT) -> None:
        self.path, self.timeout, self.max_output = path, timeout, max_output
        self.deadline = time.monotonic() + timeout

    def __call__(self, *args: str) -> bytes:
        """Its stdout for these arguments (`--list`, or `--host NAME`)."""
        what = " ".join(args)
        if time.monotonic() >= self.deadline:
            raise self._late(what)
        try:
            process = subprocess.Popen(
                [str(self.path.resolve()), *args], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.path.resolve().parent,
                start_new_session=True)
        except OSError as exc:
            raise InventoryError(f"{self.path}: cannot run inventory script: "
                                 f"{exc.strerror or exc}") from exc
        finished = False
        try:
            stdout, stderr = self._read(process, what)
            try:
                returncode = process.wait(max(0.0, self.deadline - time.monotonic()))
            except subprocess.TimeoutExpired as exc:
                raise self._late(what) from exc
            finished = True
        finally:
            if not finished:  # the cap, the time limit, or an interrupt: stop all it started
                _kill_group(process)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        if returncode != 0:
            said = stderr.decode("utf-8", errors="replace").strip().splitlines()
            raise InventoryError(f"{self.path}: inventory script exited {returncode} on {what}"
                                 + (f": {said[-1][:300]}" if said else ""))
        return stdout

    def _read(self, process: subprocess.Popen[bytes], what: str) -> tuple[bytes, bytes]:
        """Both pipes to their end, stdout up to the cap, stderr's tail only."""
        assert process.stdout is not None and process.stderr is not None
        out, err = bytearray(), bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, out)
            selector.register(process.stderr, selectors.EVENT_READ, err)
            while selector.get_map():
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise self._late(what)
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    key.data.extend(chunk)
                    if key.data is err:
                        del err[:-MAX_STDERR]
                    elif len(out) > self.max_output:
                        raise InventoryError(
                            f"{self.path}: inventory script printed more than "
                            f"{_size(self.max_output)} on {what}: stopped it")
        return bytes(out), bytes(err)

    def _late(self, what: str) -> InventoryError:
        return InventoryError(f"{self.path}: inventory script ran past {self.timeout:.0f}s "
                              f"(on {what}): stopped it")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the script's process group (its leader not yet reaped, so the group id is
    still its own), then reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MiB" if count >= 1024 * 1024 else f"{count} bytes"


def run_inventory_script(path: Path, timeout: float = SCRIPT_TIMEOUT) -> InventoryScript:
    """`path` as an inventory script whose runs (`--list`, then `--host NAME` for each host
    when `--list` gives no `_meta.hostvars`) must all end within `timeout` seconds from now."""
    return InventoryScript(path, timeout)
