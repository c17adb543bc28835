"""One way for integration tests to get a lab fleet: skip (or, in CI, fail) when the
machine cannot host one, and always tear down exactly what was built."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fleetaudit import lab
from fleetaudit.lab import LabInfo

LAB_TOOLS = ("ip", "iptables", "nmap", "sudo", "nsenter")


def lab_skip_reason(tools: tuple[str, ...] = LAB_TOOLS) -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    for path in ("/usr/sbin/sshd", "/usr/bin/python3.11"):
        if not Path(path).exists():
            return f"{path} is not installed"
    return None


def require_lab(tools: tuple[str, ...] = LAB_TOOLS) -> None:
    """Skip without a lab; in CI a missing lab is a failure, or the lab tests never ran."""
    reason = lab_skip_reason(tools)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"lab tests cannot run: {reason}; CI must run them")
    pytest.skip(reason)


@contextmanager
def running_lab(count: int, *, state_dir: Path, subnet: str, bridge: str,
                **options: Any) -> Iterator[LabInfo]:
    # No down() first: a lab already there may be another run's, and up() refuses clearly.
    require_lab()
    info = lab.up(count, state_dir=state_dir, subnet=subnet, bridge=bridge, **options)
    try:
        yield info
    finally:
        lab.down(state_dir)
