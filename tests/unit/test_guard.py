"""One guard before any packet: a host whose route check fails is contacted by no command.

All on loopback: 127.0.0.2 routes through `lo`, so an inventory that pins it to another
interface must be refused by `audit`, by `check`, and by the transport itself (the last
gate, for any command written later), while a listener on that address counts every
connection it receives: none may arrive.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetaudit.errors import ConnectError, UnsafeTargetError
from fleetaudit.guard import admit
from fleetaudit.models import InventoryHost
from fleetaudit.transport import HostKeyPolicy, SSHOptions, connect

pytestmark = pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is missing")
ADDRESS = "127.0.0.2"
ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """A TCP listener that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server((ADDRESS, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> int:
        self.stopping.set()
        self.thread.join()
        self.sock.close()
        return self.accepted


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def test_admit_asks_the_kernel_and_refuses_names():
    asyncio.run(admit(ADDRESS, "lo"))
    asyncio.run(admit(ADDRESS, None))  # no route_dev: nothing to check
    with pytest.raises(UnsafeTargetError, match="routed via lo, not fa-none0"):
        asyncio.run(admit(ADDRESS, "fa-none0"))
    with pytest.raises(UnsafeTargetError, match="needs an address"):
        asyncio.run(admit("localhost", "lo"))


def test_the_transport_is_the_last_gate(listener):
    host = InventoryHost(name="pinned", address=ADDRESS, port=listener.port,
                         route_dev="fa-none0")
    options = SSHOptions(host_key_policy=HostKeyPolicy.OFF, ssh_config=Path("/dev/null"))
    with pytest.raises(ConnectError, match=r"refused: .*routed via lo, not fa-none0"):
        asyncio.run(connect(host, ADDRESS, options))
    assert listener.close() == 0


@pytest.mark.parametrize("command", ["audit", "check"])
def test_no_command_contacts_a_host_its_route_check_refuses(tmp_path, listener, command):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"[pinned]\nh1 ansible_host={ADDRESS} ansible_port={listener.port} "
                         "fleetaudit_route_dev=fa-none0\n")
    args = [command, str(inventory), "--ssh-config", "/dev/null", "--host-key-policy", "off"]
    if command == "audit":
        args += ["--out", str(tmp_path / "out"), "--ports", str(listener.port)]
    done = subprocess.run([sys.executable, "-m", "fleetaudit", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert listener.close() == 0, "a refused host received a connection"
    assert done.returncode == 3, done.stdout + done.stderr
    if command == "audit":
        results = json.loads((tmp_path / "out" / "results.json").read_text())
        [host] = results["hosts"]
        assert "routed via lo, not fa-none0" in host["errors"][0]["message"]
        scan = results["scan"] or {}
        assert ADDRESS not in json.dumps(scan.get("commands", []))
    else:
        assert "routed via lo, not fa-none0" in " ".join(done.stdout.split())
