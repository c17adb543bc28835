"""Issue 11 item 2 end to end, on real sshd: a command that escapes its time limit, a
blackholed host, a connection dropped mid-round, a slow link.

The fake host (tests/unit/test_fakehost.py) covers the engine's side of each in seconds;
these show what only a real OpenSSH server can: that the KILL signal request reaches the
audit's shell and its pipeline on the host, that TCP and the login have separate time
limits, and that keepalives name a dropped connection.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from fleetaudit.collect import CollectOptions, collect_internal
from fleetaudit.errors import ConnectError, RoundCutError
from fleetaudit.inventory import load_inventory
from fleetaudit.lab import LabHost
from fleetaudit.lab import hosts as lab_hosts
from fleetaudit.models import HostStatus, Inventory, InventoryHost
from fleetaudit.orchestrator import AuditOptions, run_audit
from fleetaudit.transport import SSHOptions, connect, open_session
from tests.integration.labs import running_lab

pytestmark = pytest.mark.lab

STATE_DIR = Path("/run/fleetaudit-faults-test")
BRIDGE = "fa-flt0"
SUBNET = "10.99.170.0/24"
NO_CONFIG = Path("/dev/null")

# Leaves `timeout`'s process group (and the SSH session) and keeps the output pipe open:
# `head -c` downstream never sees end of file. The case issue 11 found.
ESCAPING_SS = "#!/bin/sh\n# fleetaudit test: an ss that escapes its time limit\nsetsid sleep 1000\n"
# The real ss, a few seconds late: a round that is still running when the link drops.
SLOW_SS = "#!/bin/sh\n# fleetaudit test: a slow ss\nsleep 8\nexec {real} \"$@\"\n"


@pytest.fixture(scope="module")
def fleet():
    with running_lab(3, state_dir=STATE_DIR, subnet=SUBNET, bridge=BRIDGE) as info:
        yield info


def inventory_of(fleet, name: str) -> Inventory:
    inventory = load_inventory(fleet.inventory)
    return inventory.model_copy(update={"hosts": [h for h in inventory.hosts
                                                  if h.name == name]})


def login(fleet, name: str) -> InventoryHost:
    [host] = inventory_of(fleet, name).hosts
    return host


def ssh_options(fleet, **fields) -> SSHOptions:
    return SSHOptions(**{"known_hosts": fleet.known_hosts, "ssh_config": NO_CONFIG, **fields})


@contextmanager
def planted_ss(host: LabHost, script: Path) -> Iterator[None]:
    """`script` over /usr/bin/ss in the host's sshd mount namespace only (so every SSH
    session there runs it, and nothing else on this machine does)."""
    enter = ["nsenter", f"--target={host.sshd_pid}", "--mount"]
    subprocess.run([*enter, "mount", "--bind", str(script), "/usr/bin/ss"], check=True)
    try:
        yield
    finally:
        # Lazily: the planted script may still be running (a dropped connection is named
        # before its sleep ends), and a busy mount point would refuse a plain umount.
        subprocess.run([*enter, "umount", "--lazy", "/usr/bin/ss"], check=True)


@contextmanager
def dropped(host: LabHost) -> Iterator[None]:
    """Every packet to and from the host's sshd silently dropped, as a dead link would."""
    rules = [["INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"],
             ["OUTPUT", "-p", "tcp", "--sport", "22", "-j", "DROP"]]
    netns = ["ip", "netns", "exec", host.netns, "iptables"]
    for rule in rules:
        subprocess.run([*netns, "-I", *rule], check=True)
    try:
        yield
    finally:
        for rule in rules:
            subprocess.run([*netns, "-D", *rule], check=True)


def host_processes(host: LabHost) -> list[tuple[int, list[str], int]]:
    """(pid, argv, session id) of every process in the host's network namespace.

    The lab's hosts share this machine's PID namespace; what runs "on" a host is what
    runs in its network namespace.
    """
    netns = os.readlink(f"/proc/{host.sshd_pid}/ns/net")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "net") != netns:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            session = int((entry / "stat").read_text().rpartition(")")[2].split()[3])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        found.append((int(entry.name), [a.decode(errors="replace") for a in argv], session))
    return found


def fleetaudit_leftovers(host: LabHost) -> list[tuple[int, list[str], int]]:
    """The audit's shell (`sh -s`, and the sudo and login shell that started it), its
    output caps (`head -c`), and sshd's session processes."""
    return [p for p in host_processes(host)
            if "sh -s" in " ".join(p[1]) or p[1][:2] == ["head", "-c"]
            or (p[1] and p[1][0].startswith("sshd:") and "[listener]" not in p[1][0])]


@pytest.mark.timeout(240)
def test_a_command_that_escapes_its_limit_costs_only_itself_and_nothing_stays(fleet,
                                                                             tmp_path):
    name = fleet.hosts[0].name
    host = fleet.host(name)
    script = tmp_path / "ss"
    script.write_text(ESCAPING_SS)
    script.chmod(0o755)
    # The round's limit (10 s here, 120 s by default) ends the round the escaped sleep
    # holds open; before the fix that cost the host everything.
    options = AuditOptions(ssh=ssh_options(fleet), command_timeout=10, ports="22")
    with planted_ss(host, script):
        started = time.monotonic()
        outcome = asyncio.run(run_audit(inventory_of(fleet, name), options))
        elapsed = time.monotonic() - started
        time.sleep(1)  # sshd's session process ends as the connection closes
        left = fleetaudit_leftovers(host)
        sleepers = [p for p in host_processes(host) if p[1] == ["sleep", "1000"]]
    try:
        [result] = outcome.results.hosts
        assert result.status is HostStatus.PARTIAL, result.errors
        assert result.internal is not None
        # What came before ss in the same round is kept: tools and the host's facts.
        assert result.internal.system is not None and result.internal.system.euid == 0
        assert "ss" in result.internal.tools
        messages = [e.message for e in result.errors]
        # The round's own limit ended it (10 s here, not the 120 s default), on the command
        # that held it open. How long that took is benchmarks/README.md's, not a bound here.
        assert any("round stopped (ran past 10s): `ss` did not finish (`ss -tulpnH`)" in m
                   for m in messages), messages
        print(f"escaped command: round cut and host audited in {elapsed:.1f}s; left: {left}")
        # Nothing fleetaudit started is left: a second shell ended the first one's session
        # (sshd 9.2 refuses the KILL signal request for root: "session signalling requires
        # privilege separation"). The escaped sleep left that session on purpose (setsid):
        # no kill of the session reaches it, and nothing of ours waits on it any more.
        assert left == [], left
        assert sleepers, "the escaped command should still be there (setsid)"
        assert all(session != host.sshd_pid for _, _, session in sleepers)
    finally:
        for pid, _, _ in sleepers:  # started by this test's plant
            with suppress(ProcessLookupError):
                os.kill(pid, 9)


def test_a_blackholed_host_fails_within_the_connect_timeout(fleet):
    host = fleet.hosts[1]
    with dropped(host):
        started = time.monotonic()
        with pytest.raises(ConnectError) as caught:
            asyncio.run(connect(login(fleet, host.name), host.address,
                                ssh_options(fleet, connect_timeout=3.0)))
        elapsed = time.monotonic() - started
    print(f"blackholed: failed after {elapsed:.1f}s")
    # The TCP connect's own limit (--connect-timeout 3) ended it, not the login's (60 s):
    # the message says which. The time it took is benchmarks/README.md's.
    assert str(caught.value) == (f"timed out connecting to {host.address}:22 (no TCP "
                                 "answer within 3s)")


@pytest.mark.timeout(120)
def test_a_connection_dropped_mid_round_is_named_within_seconds(fleet, tmp_path):
    host = fleet.hosts[1]
    real = tmp_path / "ss.real"
    shutil.copy2("/usr/bin/ss", real)
    script = tmp_path / "ss"
    script.write_text(SLOW_SS.format(real=real))
    script.chmod(0o755)
    options = ssh_options(fleet, keepalive_interval=1.0)  # named in seconds, not 20

    async def go() -> tuple[float, object]:
        transport = await connect(login(fleet, host.name), host.address, options)
        # What bounds the naming of a drop: the keepalive settings, as asyncssh holds them.
        held = transport._connection
        assert (held._keepalive_interval, held._keepalive_count_max) == (
            options.keepalive_interval, options.keepalive_count_max)
        try:
            task = asyncio.create_task(collect_internal(
                transport, options=CollectOptions(timeout=120)))
            await asyncio.sleep(3)  # round 1 is waiting on the slow ss
            with dropped(host):
                started = time.monotonic()
                view = await task
                return time.monotonic() - started, view
        finally:
            await transport.close()

    with planted_ss(host, script):
        elapsed, view = asyncio.run(go())
    limit = options.keepalive_interval * (options.keepalive_count_max + 1)
    print(f"dropped mid-round: named {elapsed:.1f}s after the drop (keepalives give up "
          f"after {limit:.0f}s)")
    assert view.system is not None  # gathered before the drop
    # Named by the keepalives (their interval x count bounds it: 4 s here), not by the
    # round's 120 s limit, which would say "ran past 120s".
    cut = [e for e in view.errors if e.startswith("round stopped")]
    assert cut and "no reply to SSH keepalives" in cut[0], cut
    assert "`ss` did not finish" in cut[0] and "ran past" not in cut[0], cut


def test_a_dropped_session_raises_a_named_cut(fleet):
    """The same at the session level: the error says the connection stopped answering."""
    host = fleet.hosts[2]
    options = ssh_options(fleet, keepalive_interval=1.0)

    async def go() -> RoundCutError:
        transport = await connect(login(fleet, host.name), host.address, options)
        try:
            session = await open_session(transport)
            running = asyncio.create_task(session.run("echo before; sleep 60", timeout=120))
            await asyncio.sleep(2)  # "before" is in
            with dropped(host), pytest.raises(RoundCutError) as caught:
                await running
            return caught.value
        finally:
            await transport.close()

    cut = asyncio.run(go())
    assert "stopped answering" in str(cut)
    assert cut.output.startswith(b"before")


def netem_skip_reason() -> str | None:
    probe = f"fa-netem-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", probe], check=True)
    try:
        done = subprocess.run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev",
                               "lo", "root", "netem", "delay", "1ms"],
                              capture_output=True, text=True, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", probe], check=True)
    if done.returncode != 0:
        return ("the kernel has no sch_netem (tc says: "
                f"{done.stderr.strip() or done.returncode}): no slow link to test on")
    return None


class DelayRelay:
    """A TCP relay on 127.0.0.1 that holds every chunk `delay` seconds in each direction:
    a slow link where the kernel has no sch_netem. TCP itself is answered at once (the
    relay accepts), so this tests the login's time limit, not the connect timeout's."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def __enter__(self) -> DelayRelay:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def late() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(late())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + self.delay, data))
        finally:
            queue.put_nowait((loop.time() + self.delay, b""))
            await sender


def lab_host_key(fleet, name: str) -> str:
    public = (lab_hosts.host_files(fleet.state_dir, name).host_key.with_suffix(".pub")
              .read_text().split())
    return f"{public[0]} {public[1]}"


@pytest.mark.timeout(300)
def test_a_slow_link_logs_in_as_plain_ssh_does_through_a_relay(fleet, tmp_path):
    """800 ms each way, by a relay in this process: only where netem is missing (the
    netem test below is the faithful one; it skips then, saying why)."""
    if netem_skip_reason() is None:
        pytest.skip("sch_netem is available: test_a_slow_link_logs_in_as_plain_ssh_does "
                    "runs instead")
    host = fleet.hosts[2]
    with DelayRelay((host.address, 22), 0.8) as relay:
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{relay.port} {lab_host_key(fleet, host.name)}\n")
        plain_ssh: dict[str, Any] = {}

        def log_in() -> None:  # beside the audit (the relay takes both): 13 s off the suite
            started = time.monotonic()
            plain_ssh["run"] = subprocess.run(
                ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o",
                 f"UserKnownHostsFile={known}", "-p", str(relay.port), "-i",
                 str(fleet.client_key), "root@127.0.0.1", "true"],
                capture_output=True, text=True, timeout=120, check=False)
            plain_ssh["took"] = time.monotonic() - started

        beside = threading.Thread(target=log_in, daemon=True)
        beside.start()
        slow = InventoryHost(name="slow", address="127.0.0.1", port=relay.port, user="root",
                             key_file=str(fleet.client_key))
        options = AuditOptions(ssh=ssh_options(fleet, known_hosts=known),
                               ports=str(relay.port))
        assert options.ssh.connect_timeout == 10
        started = time.monotonic()
        outcome = asyncio.run(run_audit(Inventory(source="test", hosts=[slow]), options))
        ours = time.monotonic() - started
        beside.join(130)
    ssh, plain = plain_ssh["run"], plain_ssh["took"]
    assert ssh.returncode == 0, ssh.stderr
    assert plain > 10, plain  # longer than the connect timeout: the case of issue 11
    [result] = outcome.results.hosts
    print(f"slow link (relay, 800 ms each way): plain ssh {plain:.1f}s, audit {ours:.1f}s")
    assert result.internal is not None, (result.errors, plain, ours)
    assert not [e for e in result.errors if e.stage.value == "connect"], result.errors
    assert {s.port for s in result.internal.sockets} >= {22}


@pytest.mark.timeout(240)
def test_a_slow_link_logs_in_as_plain_ssh_does(fleet, tmp_path):
    reason = netem_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    host = fleet.hosts[2]
    # 800 ms each way: on the host's own end of its veth pair, and on this machine's end.
    ends = [["ip", "netns", "exec", host.netns, "tc", "qdisc", "%s", "dev", "eth0", "root"],
            ["tc", "qdisc", "%s", "dev", host.veth, "root"]]
    for end in ends:
        subprocess.run([w.replace("%s", "add") for w in end] + ["netem", "delay", "800ms"],
                       check=True)
    try:
        started = time.monotonic()
        ssh = subprocess.run(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
                              "-o", f"UserKnownHostsFile={fleet.known_hosts}",
                              "-i", str(fleet.client_key), f"root@{host.address}", "true"],
                             capture_output=True, text=True, timeout=120, check=False)
        plain = time.monotonic() - started
        assert ssh.returncode == 0, ssh.stderr
        options = AuditOptions(ssh=ssh_options(fleet), ports="22")
        assert options.ssh.connect_timeout == 10
        started = time.monotonic()
        outcome = asyncio.run(run_audit(inventory_of(fleet, host.name), options))
        ours = time.monotonic() - started
    finally:
        for end in ends:
            subprocess.run([w.replace("%s", "del") for w in end], check=True)
    [result] = outcome.results.hosts
    assert result.status is HostStatus.OK, (result.errors, plain, ours)
    assert plain > 10  # slower than the connect timeout: only TCP is under it
