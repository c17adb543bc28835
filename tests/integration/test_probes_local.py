"""Each issue-3 probe's command, run for real through /bin/sh on this machine, and parsed.

Against a listener this test starts (Debian's python on loopback ports 41100-41199, with
a clean, known environment) the parsed answers must name concrete facts: the listener's
PID, the sha256 of its executable as hashlib computes it, its cwd and parent, a variable
the test set, and that variable's value nowhere in the raw output.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleetaudit.batch import Section
from fleetaudit.models import BindState, IntegrityStatus, Proto, SystemFacts
from fleetaudit.packagers import dpkg
from fleetaudit.probes import (
    Probe,
    bind_probe,
    host_facts_probe,
    nat_probe,
    netstat_probe,
    proc_net_probe,
)
from tests.process_singles import environ_value_probe, process_probes

PYTHON = "/usr/bin/python3.11"
PORTS = range(41100, 41200)  # this file's loopback ports
SECRET = "fa-" + secrets.token_hex(16)  # the value that must never cross the wire
ROOT = os.geteuid() == 0

LISTENER = """
import socket, sys, signal
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("ready", flush=True)
signal.pause()
"""


def free_port(proto: Proto = Proto.TCP, skip: tuple[int, ...] = ()) -> int:
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    for port in PORTS:
        if port in skip:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 41100-41199")


class Listener:
    def __init__(self, proc: subprocess.Popen[str], port: int, cwd: Path) -> None:
        self.proc, self.pid, self.port, self.cwd = proc, proc.pid, port, cwd


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    if not Path(PYTHON).exists():
        pytest.skip(f"{PYTHON} (Debian's python) is not installed")
    cwd = tmp_path_factory.mktemp("probe cwd")
    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, "-c", LISTENER, str(port)], cwd=cwd, stdout=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "FA_PROBE_TOKEN": SECRET, "FA_PROBE_PLAIN": "plain-value"})
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield Listener(proc, port, cwd)
    finally:
        proc.kill()  # by PID: this test's own child
        proc.wait(timeout=10)


def run(probe: Probe[object]) -> str:
    """The command as the batch runs it: sh, C locale, stdin closed; stdout only."""
    result = subprocess.run(["/bin/sh", "-c", f"LC_ALL=C; export LC_ALL; ( {probe.command} )"],
                            capture_output=True, text=True, timeout=120, check=False,
                            stdin=subprocess.DEVNULL)
    return result.stdout


def answer(probe: Probe[object]) -> object:
    return probe.parse(run(probe))


@pytest.fixture(scope="module")
def system() -> SystemFacts:
    facts = answer(host_facts_probe())
    assert isinstance(facts, SystemFacts)
    return facts


def test_host_facts(system: SystemFacts) -> None:
    btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                 if line.startswith("btime "))
    assert system.boot_time == datetime.fromtimestamp(btime, tz=UTC)
    assert system.euid == os.geteuid()
    assert system.clk_tck == os.sysconf("SC_CLK_TCK")
    own = os.readlink("/proc/self/ns/net")
    try:
        init = os.readlink("/proc/1/ns/net")
    except OSError:
        init = None
    assert system.netns == (init or own)
    assert system.bindv6only is (Path("/proc/sys/net/ipv6/bindv6only").read_text().strip() == "1")


def test_netstat_sees_the_listener_and_its_pid(listener: Listener) -> None:
    if shutil.which("netstat") is None:
        pytest.skip("netstat is not installed")
    sockets = answer(netstat_probe())
    assert isinstance(sockets, list)
    [sock] = [s for s in sockets if s.port == listener.port and s.proto is Proto.TCP]
    assert sock.address == "127.0.0.1"
    assert [o.pid for o in sock.owners] == [listener.pid]


def test_busybox_netstat_sees_the_listener(listener: Listener) -> None:
    if shutil.which("busybox") is None:
        pytest.skip("busybox is not installed")
    sockets = answer(netstat_probe(busybox=True))
    assert isinstance(sockets, list)
    assert [s.address for s in sockets if s.port == listener.port] == ["127.0.0.1"]


def test_proc_net_sees_the_listener_its_pid_and_inode(listener: Listener) -> None:
    sockets = answer(proc_net_probe())
    assert isinstance(sockets, list)
    [sock] = [s for s in sockets if s.port == listener.port and s.proto is Proto.TCP]
    assert [(o.pid, o.command) for o in sock.owners] == [(listener.pid, "python3.11")]
    inode = os.stat(f"/proc/{listener.pid}/fd/{sock.owners[0].fd}").st_ino
    assert sock.inode == inode and sock.uid == os.geteuid()


def test_process_probes(listener: Listener, system: SystemFacts) -> None:
    bundle = process_probes(listener.pid)
    raw = {p.name: run(p) for p in bundle.probes}
    info = bundle.build({n: Section(name=n, text=t, exit_status=0) for n, t in raw.items()},
                        system)
    assert info.errors == []
    assert info.exe == os.path.realpath(PYTHON)
    assert info.sha256 == hashlib.sha256(Path(os.path.realpath(PYTHON)).read_bytes()).hexdigest()
    assert info.cwd == str(listener.cwd)
    assert info.ppid == os.getpid() and info.name == "python3.11"
    assert info.uid == os.geteuid()
    assert info.env_names == ["PATH", "FA_PROBE_TOKEN", "FA_PROBE_PLAIN"]
    for text in raw.values():
        assert SECRET not in text and "plain-value" not in text
    assert info.netns == os.readlink(f"/proc/{listener.pid}/ns/net")
    assert info.foreign_netns is (info.netns != system.netns)
    assert info.started_at is not None
    assert abs(datetime.now(tz=UTC) - info.started_at) < timedelta(minutes=10)
    paths = [m.path for m in info.libraries]
    assert os.path.realpath(PYTHON) in paths
    assert any(p.endswith("/libc.so.6") for p in paths)


def test_environment_values(listener: Listener) -> None:
    token = environ_value_probe(listener.pid, "FA_PROBE_TOKEN")
    raw = run(token)
    assert SECRET not in raw  # cut on the host: the name says secret
    parsed = token.parse(raw)
    assert parsed.present and parsed.redacted and parsed.value is None
    plain = answer(environ_value_probe(listener.pid, "FA_PROBE_PLAIN"))
    assert plain.value == "plain-value"  # type: ignore[attr-defined]
    absent = answer(environ_value_probe(listener.pid, "FA_NOT_SET"))
    assert not absent.present  # type: ignore[attr-defined]


def test_bind_probe(listener: Listener) -> None:
    free = free_port(skip=(listener.port,))
    results = answer(bind_probe([(Proto.TCP, listener.port), (Proto.TCP, free)]))
    assert isinstance(results, list)
    state = {(r.port, r.address): r.state for r in results}
    # the listener holds 127.0.0.1:port, so 0.0.0.0:port cannot be bound
    assert state[(listener.port, "0.0.0.0")] is BindState.IN_USE
    assert state[(free, "0.0.0.0")] is BindState.FREE


def test_dpkg_integrity_of_a_package_binary() -> None:
    if shutil.which("dpkg") is None or not Path(PYTHON).exists():
        pytest.skip("no dpkg or no Debian python")
    owner = subprocess.run(["dpkg", "-S", "/usr/bin/ls", "/bin/ls"], capture_output=True,
                           text=True, check=False).stdout.split(":")[0]
    [result] = answer(dpkg.integrity_probe({"/usr/bin/ls": owner}))  # type: ignore[misc]
    assert result.status is IntegrityStatus.OK


@pytest.mark.skipif(not ROOT or shutil.which("iptables") is None, reason="needs root, iptables")
def test_nat_probe_in_a_private_network_namespace() -> None:
    """The rule is added in a throwaway namespace (`unshare -n`): this machine's are untouched."""
    port = 41150
    command = (f"iptables -t nat -A PREROUTING -p tcp --dport {port} "
               f"-j DNAT --to-destination 10.9.9.9:22 && ( {nat_probe().command} )")
    out = subprocess.run(["unshare", "--net", "/bin/sh", "-c", command], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    reading = nat_probe().parse(out)
    assert [(f.proto, f.port, f.to_address, f.to_port) for f in reading.forwards] == [
        (Proto.TCP, port, "10.9.9.9", 22)]
    assert "iptables-save" in reading.tools and reading.refused == []


def test_the_fd_scan_stats_many_fds_per_process(listener: Listener, tmp_path: Path) -> None:
    """proc_net's fd scan stats the fds through xargs, many to a `stat` process, not a
    process per fd (what kept it quick): counted by a `stat` ahead of the real one on PATH."""
    calls = tmp_path / "calls"
    real = shutil.which("stat")
    assert real is not None
    wrapper = tmp_path / "stat"
    wrapper.write_text(f'#!/bin/sh\necho "$#" >> {calls}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "LC_ALL": "C"}
    out = subprocess.run(["/bin/sh", "-c", proc_net_probe().command], env=env,
                         capture_output=True, text=True, timeout=120, check=False,
                         stdin=subprocess.DEVNULL).stdout
    assert any(s.port == listener.port for s in proc_net_probe().parse(out))
    per_call = [int(n) for n in calls.read_text().split()]
    assert per_call and sum(per_call) >= 10, per_call  # this machine's fds, all stat'ed
    assert len(per_call) * 10 <= sum(per_call), per_call
