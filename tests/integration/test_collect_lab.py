"""The internal view on real hosts: each planted case must come back with its full chain.

One lab of three hosts with the internal-view plants (see `lab.hosts.plan_internal`):
lab-01 has no ss (netstat lists); lab-02 has no ss, netstat or busybox (listeners from
/proc/net) and a deleted binary; lab-03 has lab logins with and without sudo, a UDP service
run from /tmp, a pre-fork listener and a NAT redirect; lab-04 has a modified python3.11, an
ss that hides two ports and a cat that hides one of them from /proc/net.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fleetaudit import lab
from fleetaudit.collect import (
    CollectOptions,
    collect_final,
    collect_internal,
    ports_to_probe,
)
from fleetaudit.lab import hosts as lab_hosts
from fleetaudit.models import (
    BindState,
    CommandResult,
    ExternalHost,
    ExternalPort,
    HostStatus,
    IntegrityStatus,
    InternalView,
    Inventory,
    InventoryHost,
    ListenerSource,
    ProcessInfo,
    Proto,
    ScanRun,
    Socket,
    VerdictKind,
)
from fleetaudit.preflight import render_text, run_preflight
from fleetaudit.transport import ShellSession, SSHOptions, Transport, connect
from tests.integration.labs import running_lab

pytestmark = pytest.mark.lab

STATE_DIR = Path("/run/fleetaudit-in-test")
BRIDGE = "fa-in0"
SUBNET = "10.99.120.0/24"
T = TypeVar("T")


@pytest.fixture(scope="module")
def fleet():
    tmp_dir = lab_hosts.tmp_plant_dir(STATE_DIR)
    with running_lab(4, state_dir=STATE_DIR, subnet=SUBNET, bridge=BRIDGE,
                     internal_plants=True) as info:
        yield info
    # `down` removes what it made outside its state directory too.
    assert not tmp_dir.exists()
    assert not STATE_DIR.exists()


class CountingTransport(Transport):
    """Counts shell sessions and the rounds sent through them: both are the contract."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sessions = 0
        self.calls = 0  # rounds: batches of probes, not the session's start-up check

    async def open_shell(self, command: str) -> ShellSession:
        self.sessions += 1
        session = await self.inner.open_shell(command)
        real_run = session.run

        async def counted(script: str, **kwargs: Any) -> CommandResult:
            if ":begin:" in script:
                self.calls += 1
            return await real_run(script, **kwargs)

        session.run = counted  # type: ignore[method-assign]
        return session

    async def close(self) -> None:
        await self.inner.close()


def login(info: lab.LabInfo, name: str, user: str = "root", *, become: bool = False
          ) -> InventoryHost:
    host = info.host(name)
    return InventoryHost(name=name, address=host.address, user=user,
                         key_file=str(info.client_key), become=become)


async def _with(info: lab.LabInfo, host: InventoryHost,
                work: Callable[[CountingTransport], Awaitable[T]]) -> T:
    transport = CountingTransport(await connect(host, host.address,
                                                SSHOptions(known_hosts=info.known_hosts)))
    async with transport:
        return await work(transport)


def collect(info: lab.LabInfo, host: InventoryHost) -> tuple[InternalView, int]:
    """The host's view and the number of rounds it took, all through one shell session."""
    async def work(transport: CountingTransport) -> tuple[InternalView, int]:
        view = await collect_internal(transport, options=CollectOptions(
            become=host.become, become_user=host.become_user))
        # One session: one login, one sudo (two when sudo refused and it fell back).
        assert transport.sessions == (2 if host.become and any(
            "sudo -n refused" in e for e in view.errors) else 1)
        return view, transport.calls
    return asyncio.run(_with(info, host, work))


@pytest.fixture(scope="module")
def root_views(fleet) -> dict[str, tuple[InternalView, int]]:
    return {h.name: collect(fleet, login(fleet, h.name)) for h in fleet.hosts}


def plant(info: lab.LabInfo, verdict: VerdictKind) -> lab.Plant:
    # CONSISTENT is also the hostile-banner plant's verdict: here it means the pre-fork one.
    [found] = [p for p in info.plants if p.verdict is verdict
               and (verdict is not VerdictKind.CONSISTENT or p.port == lab_hosts.PREFORK_PORT)]
    return found


def sockets(view: InternalView, proto: Proto, port: int,
            source: ListenerSource | None = None) -> list[Socket]:
    return [s for s in view.sockets if s.proto is proto and s.port == port
            and (source is None or s.source is source)]


def process(view: InternalView, pid: int) -> ProcessInfo:
    [found] = [p for p in view.processes if p.pid == pid]
    return found


def owner_pids(found: list[Socket]) -> set[int]:
    return {o.pid for s in found for o in s.owners}


def assert_chain(proc: ProcessInfo, exe: str, package: str | None) -> None:
    """The full chain: executable, package, and the process facts around it."""
    assert proc.exe == exe, proc
    assert (proc.package.name if proc.package else None) == package, proc
    if proc.package is not None:  # the installed version, as dpkg-query has it
        assert proc.package.version and proc.package.version[0].isdigit(), proc.package
    assert proc.package_manager == "dpkg"
    assert proc.cmdline and proc.uid == 0 and proc.user == "root"
    assert proc.ppid is not None and proc.started_at is not None
    assert proc.cwd and proc.netns and proc.netns.startswith("net:[")
    assert proc.sha256 and len(proc.sha256) == 64
    assert proc.libraries, "mapped files"


# --- as root -----------------------------------------------------------------------------


def test_rounds_are_few_and_every_host_has_its_chain(fleet, root_views):
    for host in fleet.hosts:
        view, calls = root_views[host.name]
        # tools+listings, processes, owners and hashes, dpkg --verify: four rounds; one
        # more, for the fd map, only where a listing tool left out a /proc/net listener.
        assert view.coverage is not None
        hid = (view.coverage.sources[0] != "proc_net"
               and any(s.source is ListenerSource.PROC_NET for s in view.sockets))
        assert calls == (5 if hid else 4), (host.name, view.errors)
        assert hid == (host.name == plant(fleet, VerdictKind.TOOLS_DISAGREE).host)
        assert view.coverage is not None and view.coverage.privileged is True
        assert view.system is not None and view.system.euid == 0
        ssh = sockets(view, Proto.TCP, 22)
        assert owner_pids(ssh) == {host.sshd_pid}
        sshd = process(view, host.sshd_pid)
        assert_chain(sshd, "/usr/sbin/sshd", "openssh-server")
        assert sshd.integrity is not None and sshd.integrity.status is IntegrityStatus.OK


def without(info: lab.LabInfo, *tools: str) -> lab.LabHost:
    [host] = [h for h in info.hosts if set(h.hidden_tools) == set(tools)
              or (set(tools) >= {"ss", "netstat"} and set(h.hidden_tools) >= set(tools))]
    return host


def test_host_without_ss_lists_with_netstat_and_the_fd_map(fleet, root_views):
    host = without(fleet, "ss")
    view, calls = root_views[host.name]
    assert view.coverage is not None
    assert view.coverage.sources == ["netstat", "proc_net"]
    assert "ss" in view.missing_tools and "netstat" in view.tools
    assert ListenerSource.NETSTAT in {s.source for s in view.sockets}
    assert not view.disagreements
    [ssh] = [s for s in sockets(view, Proto.TCP, 22) if s.address == "0.0.0.0"]
    assert ssh.source is ListenerSource.NETSTAT and owner_pids([ssh]) == {host.sshd_pid}
    assert_chain(process(view, host.sshd_pid), "/usr/sbin/sshd", "openssh-server")
    assert calls == 4  # the fd map came with /proc/net in round 1: no extra round


def test_host_without_ss_or_netstat_lists_from_proc_net_with_owners(fleet, root_views):
    host = without(fleet, "ss", "netstat")
    view, _ = root_views[host.name]
    assert view.coverage is not None
    assert view.coverage.sources == ["proc_net"]
    assert {"ss", "netstat", "busybox"} <= set(view.missing_tools)
    assert {s.source for s in view.sockets} == {ListenerSource.PROC_NET}
    # /proc/net's inode mapped back to the process through its fds.
    assert owner_pids(sockets(view, Proto.TCP, 22)) == {host.sshd_pid}


def test_deleted_binary(fleet, root_views):
    case = plant(fleet, VerdictKind.DELETED_BINARY)
    assert case.exe is not None and not Path(case.exe).exists()
    view, _ = root_views[case.host]
    [pid] = owner_pids(sockets(view, Proto.TCP, case.port))
    proc = process(view, pid)
    assert proc.exe_deleted
    assert_chain(proc, case.exe, None)
    # Never verified: the file on disk is not the one running.
    assert proc.integrity is None


def test_unowned_binary_in_tmp_serving_udp(fleet, root_views):
    case = plant(fleet, VerdictKind.SUSPICIOUS_PATH)
    assert case.proto is Proto.UDP and case.exe is not None and case.exe.startswith("/tmp/.")
    view, _ = root_views[case.host]
    # ss and /proc/net both list it: one socket per listener, ss's.
    [listed] = sockets(view, Proto.UDP, case.port)
    assert listed.source is ListenerSource.SS and listed.address == "0.0.0.0"
    [pid] = owner_pids([listed])
    proc = process(view, pid)
    assert not proc.exe_deleted
    assert_chain(proc, case.exe, None)


def test_prefork_listener_has_all_its_pids(fleet, root_views):
    case = plant(fleet, VerdictKind.CONSISTENT)
    view, _ = root_views[case.host]
    [listed] = sockets(view, Proto.TCP, case.port)
    pids = owner_pids([listed])
    assert len(pids) == 3
    procs = [process(view, pid) for pid in pids]
    for proc in procs:
        assert_chain(proc, str(lab_hosts.PYTHON), case.package)
    [parent] = [p for p in procs if p.ppid not in pids]
    assert sorted(p.ppid for p in procs if p is not parent) == [parent.pid, parent.pid]
    # One file, hashed once for the three: the digest is the file's own.
    digest = hashlib.sha256(lab_hosts.PYTHON.read_bytes()).hexdigest()
    assert {p.sha256 for p in procs} == {digest}


def test_modified_package_binary(fleet, root_views):
    case = plant(fleet, VerdictKind.MODIFIED_BINARY)
    assert str(lab_hosts.PYTHON) in fleet.host(case.host).replaced
    view, _ = root_views[case.host]
    [pid] = owner_pids(sockets(view, Proto.TCP, case.port))
    proc = process(view, pid)
    assert_chain(proc, str(lab_hosts.PYTHON), case.package)
    assert proc.integrity is not None
    assert proc.integrity.status is IntegrityStatus.MODIFIED, proc.integrity
    # The machine's own python3.11 is untouched.
    assert lab_hosts.MODIFIED_MARK not in lab_hosts.PYTHON.read_bytes()[-200:]


def test_listener_hidden_by_a_trojaned_ss_is_a_disagreement(fleet, root_views):
    case = plant(fleet, VerdictKind.TOOLS_DISAGREE)
    view, _ = root_views[case.host]
    assert view.coverage is not None and view.coverage.sources == ["ss", "proc_net"]
    assert not sockets(view, Proto.TCP, case.port, ListenerSource.SS)
    hidden = sockets(view, Proto.TCP, case.port, ListenerSource.PROC_NET)
    assert hidden
    assert (f"tools disagree: tcp 0.0.0.0 port {case.port} listed by proc_net, not by ss"
            in view.coverage.notes)
    # Every other listener both tools agree on.
    assert [n for n in view.coverage.notes if n.startswith("tools disagree")] == [
        f"tools disagree: tcp 0.0.0.0 port {case.port} listed by proc_net, not by ss"]
    [pid] = owner_pids(hidden)
    assert_chain(process(view, pid), str(lab_hosts.PYTHON), case.package)


# --- privilege ------------------------------------------------------------------------------


def users(info: lab.LabInfo) -> tuple[lab.LabUser, lab.LabUser]:
    [plain] = [u for u in info.users if not u.sudo]
    [sudo] = [u for u in info.users if u.sudo]
    return plain, sudo


def test_unprivileged_login_says_what_it_cannot_see(fleet):
    plain, _ = users(fleet)
    view, _ = collect(fleet, login(fleet, plain.host, plain.name))
    assert view.coverage is not None and view.coverage.privileged is False
    assert view.system is not None and view.system.euid == plain.uid
    case = plant(fleet, VerdictKind.CONSISTENT)
    assert sockets(view, Proto.TCP, case.port), "listeners are still listed"
    assert not owner_pids(sockets(view, Proto.TCP, case.port))
    assert not view.processes
    assert f"tcp 0.0.0.0 port {case.port}: PID hidden: not privileged" in view.coverage.notes
    assert "privilege: none asked; ran as uid" in " ".join(view.coverage.notes)


def test_sudo_login_sees_everything_with_one_sudo_per_round(fleet):
    _, sudo = users(fleet)
    view, calls = collect(fleet, login(fleet, sudo.host, sudo.name, become=True))
    assert calls == 4
    assert view.coverage is not None and view.coverage.privileged is True
    assert "privilege: sudo -n (root)" in view.coverage.notes
    case = plant(fleet, VerdictKind.CONSISTENT)
    assert len(owner_pids(sockets(view, Proto.TCP, case.port))) == 3
    assert not [n for n in view.coverage.notes if "PID hidden" in n]


@pytest.mark.timeout(180)
def test_a_stuck_round_under_sudo_leaves_nothing_of_ours_running(fleet, tmp_path):
    """The escaped command of issue 11 behind sudo: the stuck shell is root's, which the
    login could not signal; the kill goes through the same `sudo -n` in a second shell."""
    from tests.integration.test_faults_lab import (
        ESCAPING_SS,
        fleetaudit_leftovers,
        host_processes,
        planted_ss,
    )

    _, sudo = users(fleet)
    host = fleet.host(sudo.host)
    script = tmp_path / "ss"
    script.write_text(ESCAPING_SS)
    script.chmod(0o755)

    async def go() -> InternalView:
        login_ = login(fleet, sudo.host, sudo.name, become=True)
        async with await connect(login_, login_.address,
                                 SSHOptions(known_hosts=fleet.known_hosts)) as transport:
            return await collect_internal(transport, options=CollectOptions(
                timeout=10, become=True))  # the round limit cuts it

    with planted_ss(host, script):
        view = asyncio.run(go())
        time.sleep(1)
        left = fleetaudit_leftovers(host)
        sleepers = [p for p in host_processes(host) if p[1] == ["sleep", "1000"]]
    try:
        assert view.coverage is not None and view.coverage.privileged is True
        assert any("`ss` did not finish" in e for e in view.errors), view.errors
        assert left == [], left
        assert sleepers  # left the session on purpose (setsid): the host's own now
    finally:
        for pid, _, _ in sleepers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def test_refused_sudo_is_reported_and_collection_goes_on(fleet):
    plain, _ = users(fleet)
    view, _ = collect(fleet, login(fleet, plain.host, plain.name, become=True))
    assert any("sudo -n refused" in e and "password is required" in e for e in view.errors)
    assert view.coverage is not None and view.coverage.privileged is False
    assert view.sockets


# --- after the scan -----------------------------------------------------------------------


def test_final_round_bind_probe_and_nat_explain_a_redirected_port(fleet, root_views):
    case = plant(fleet, VerdictKind.FORWARDED)
    view, _ = root_views[case.host]
    address = fleet.host(case.host).address
    external = ExternalHost(address=address, status="up", ports=[
        ExternalPort(proto=Proto.TCP, port=p, state="open") for p in (22, 8080, case.port)])
    ports = ports_to_probe(view, external, address)
    assert ports == [(Proto.TCP, case.port)]

    async def work(transport: CountingTransport) -> InternalView:
        return await collect_final(transport, view, ports)

    final = asyncio.run(_with(fleet, login(fleet, case.host), work))
    # Both wildcards are free: nothing listens there, the NAT rule is what answers.
    probes = {b.address: b.state for b in final.bind_results
              if b.proto is Proto.TCP and b.port == case.port}
    assert probes == {"0.0.0.0": BindState.FREE, "::": BindState.FREE}
    [forward] = [f for f in final.nat_forwards if f.port == case.port]
    assert (forward.kind, forward.to_port) == ("redirect", 22)


def test_listener_every_tool_hides_is_found_by_bind_alone(fleet, root_views):
    case = plant(fleet, VerdictKind.HIDDEN_LISTENER)
    view, _ = root_views[case.host]
    # ss and the /proc/net tables (read through the host's trojaned cat) both omit it, so
    # they agree: no disagreement, no socket.
    assert not sockets(view, Proto.TCP, case.port)
    assert not [d for d in view.disagreements if d.port == case.port]
    address = fleet.host(case.host).address
    external = ExternalHost(address=address, status="up", ports=[
        ExternalPort(proto=Proto.TCP, port=p, state="open") for p in (22, case.port)])
    ports = ports_to_probe(view, external, address)
    assert ports == [(Proto.TCP, case.port)]

    async def work(transport: CountingTransport) -> InternalView:
        return await collect_final(transport, view, ports)

    final = asyncio.run(_with(fleet, login(fleet, case.host), work))
    probes = {b.address: b.state for b in final.bind_results if b.port == case.port}
    assert probes["0.0.0.0"] is BindState.IN_USE
    assert not [f for f in final.nat_forwards if f.port == case.port]


def test_orchestrator_runs_the_final_round_on_the_kept_connection(fleet):
    from fleetaudit import orchestrator

    case = plant(fleet, VerdictKind.FORWARDED)
    address = fleet.host(case.host).address
    connects: list[str] = []
    real_connect = orchestrator.connect

    async def counting_connect(*args: Any, **kwargs: Any) -> Transport:
        connects.append(address)
        return await real_connect(*args, **kwargs)

    scan = ScanRun(command="nmap (test)", hosts=[ExternalHost(
        address=address, status="up",
        ports=[ExternalPort(proto=Proto.TCP, port=case.port, state="open")])])

    async def run() -> orchestrator._HostState:
        from fleetaudit.progress import AuditObserver
        from fleetaudit.timeline import Timeline

        state = orchestrator._HostState(host=login(fleet, case.host), address=address)
        # The scan has already spoken of this host: its forwarded port, open.
        state.scan_says = asyncio.get_running_loop().create_future()
        state.scan_says.set_result(orchestrator._ScanSays(external=scan.hosts[0]))
        options = orchestrator.AuditOptions(ssh=SSHOptions(known_hosts=fleet.known_hosts))
        finished: list[Any] = []
        await orchestrator._audit_host(state, options, asyncio.Semaphore(1),
                                       orchestrator._Parking(1), counting_connect, Timeline(),
                                       lambda s, says: finished.append(says), AuditObserver())
        assert len(finished) == 1
        return state

    state = asyncio.run(run())
    assert connects == [address]  # one connection for all five rounds
    assert state.internal is not None
    assert {b.port for b in state.internal.bind_results} == {case.port}
    assert [f.port for f in state.internal.nat_forwards] == [case.port]


# --- preflight ----------------------------------------------------------------------------


def test_preflight_says_what_each_login_will_and_will_not_see(fleet):
    plain, sudo = users(fleet)
    refused = login(fleet, plain.host, plain.name, become=True).model_copy(
        update={"name": "refused"})
    bare = without(fleet, "ss", "netstat").name
    ghost = login(fleet, bare).model_copy(update={"name": "ghost",
                                                      "address": "10.99.120.250"})
    with_sudo = login(fleet, sudo.host, sudo.name, become=True).model_copy(
        update={"name": "with-sudo"})
    inventory = Inventory(source="test", hosts=[
        login(fleet, bare), login(fleet, plain.host, plain.name), with_sudo, refused,
        ghost])
    report = asyncio.run(run_preflight(
        inventory, SSHOptions(known_hosts=fleet.known_hosts, connect_timeout=3)))
    by = {h.name: h for h in report.hosts}

    root = by[bare]
    assert (root.status, root.privileged, root.sudo) == (HostStatus.OK, True,
                                                         "not needed (root)")
    assert root.listing == "/proc/net only"
    assert "the PID and process chain of every listener" in root.will_see

    unprivileged = by[plain.host]
    assert unprivileged.privileged is False and unprivileged.listing == "ss"
    assert unprivileged.sudo == "not asked (sudo -n refused)"
    assert any(w.startswith("PIDs of other users' listeners") for w in unprivileged.wont_see)
    assert "NAT rules (reading them needs root)" in unprivileged.wont_see

    assert (by["with-sudo"].sudo, by["with-sudo"].privileged) == ("works", True)
    assert by["with-sudo"].complete
    # What sudo allows, as the login sees it: exactly the shell.
    assert any("NOPASSWD: /bin/sh" in rule for rule in by["with-sudo"].sudo_rules)

    assert by["refused"].sudo.startswith("refused: sudo -n refused")
    assert by["refused"].privileged is False
    assert by["ghost"].status is HostStatus.UNREACHABLE
    assert not report.complete
    text = render_text(report)
    assert "ghost (10.99.120.250) as root: unreachable" in text
    assert "An audit would be incomplete" in text
