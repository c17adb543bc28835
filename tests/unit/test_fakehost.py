"""The engine against the fake host (fleetaudit.testing.fakehost): every fault of issue 11
in the unit suite, answered from a real capture (tests/fixtures/session/)."""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from datetime import date
from pathlib import Path

import asyncssh
import pytest

from fleetaudit.collect import CollectOptions, collect_internal
from fleetaudit.errors import AuthError, ConnectError, HostKeyChangedError, HostKeyError
from fleetaudit.models import HostStatus, Inventory, InventoryHost, Severity
from fleetaudit.orchestrator import AuditOptions, run_audit
from fleetaudit.policy import baseline_policy
from fleetaudit.policy.apply import apply_policy, exit_code
from fleetaudit.testing.fakehost import FakeFleet, FakeHost, FakeTransport, Fault
from fleetaudit.transport import HostKeyPolicy, SSHOptions, connect

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURE = FIXTURES / "session" / "local_root.json"
NMAP = FIXTURES / "nmap" / "sv-connect.xml"  # 127.0.0.1, as the fake host's address


def collect(host: FakeHost, timeout: float = 2.0):
    async def run():
        transport = FakeTransport(host)
        try:
            return await collect_internal(transport, options=CollectOptions(timeout=timeout))
        finally:
            await transport.close()
    return asyncio.run(run())


def test_fake_host_answers_every_probe_from_its_capture():
    host = FakeHost.load(CAPTURE)
    view = collect(host)
    assert host.unanswered == []
    assert {s.port for s in view.sockets} == {41000, 41010, 41020}
    assert len(view.processes) == 4 and view.errors == []
    assert view.coverage is not None and view.coverage.gaps == []
    assert view.coverage.sources == ["ss", "proc_net"]


def test_a_command_that_escapes_its_time_limit_costs_only_itself():
    # Issue 11 item 2: ss replaced by `setsid sleep` never lets `head -c` end.
    host = FakeHost.load(CAPTURE, faults={"ss": Fault.escape()})
    view = collect(host, timeout=1.0)
    assert view.system is not None and view.tools  # facts and tools of the same round kept
    assert any("`ss` did not finish (`ss -tulpnH`)" in e for e in view.errors)
    assert view.coverage is not None
    assert {g.source for g in view.coverage.gaps} >= {"session", "listing", "cross_check"}
    assert host.running == set()  # the shell and its pipeline were killed, not left behind


def test_a_connection_lost_mid_round_keeps_what_came_before():
    host = FakeHost.load(CAPTURE, faults={"procs.0": Fault.drop()})
    view = collect(host)
    assert {s.port for s in view.sockets} == {41000, 41010, 41020}
    assert any("connection lost" in e for e in view.errors)
    assert view.coverage is not None
    assert "process_chain" in {g.source for g in view.coverage.gaps}


def test_a_connection_that_stops_answering_is_named_dropped():
    # Keepalives unanswered (a dead link): not "connection lost", which a host closing
    # its end also gives.
    host = FakeHost.load(CAPTURE, faults={"ss": Fault.silent()})
    view = collect(host)
    [cut] = [e for e in view.errors if e.startswith("round stopped")]
    assert "connection dropped: the host stopped answering" in cut
    assert "`ss` did not finish" in cut
    assert view.system is not None  # gathered before


def audit(host: FakeHost):
    fleet = FakeFleet({"web1": host})
    inventory = Inventory(source="test", hosts=[InventoryHost(name="web1",
                                                              address="127.0.0.1")])
    options = AuditOptions(nmap_xml=(NMAP,), command_timeout=2.0,
                           ssh=SSHOptions(host_key_policy=HostKeyPolicy.OFF))
    outcome = asyncio.run(run_audit(inventory, options, connect=fleet.connect))
    return apply_policy(outcome.results, baseline_policy(), date(2025, 1, 1))


@pytest.mark.parametrize("fault", [Fault.hang(), Fault.garbage(), Fault.exit(1)],
                         ids=["hang", "garbage", "exit1"])
def test_a_host_whose_listing_failed_is_partial_never_compliant(fault):
    # Issue 11 item 4: was status ok, compliant, exit 0.
    results = audit(FakeHost.load(CAPTURE, faults={"ss": fault}))
    [host] = results.hosts
    assert host.status is HostStatus.PARTIAL
    assert host.compliant is not True
    assert exit_code(results, None) == 3
    assert host.internal is not None and host.internal.coverage is not None
    gaps = {g.source: g.reason for g in host.internal.coverage.gaps}
    assert gaps["listing"].startswith("ss: ")
    assert "ss incomplete" in gaps["cross_check"]
    assert not any("no listing tool" in n for n in host.internal.coverage.notes)


def test_a_clean_fake_host_is_audited_ok():
    results = audit(FakeHost.load(CAPTURE))
    [host] = results.hosts
    assert host.status is HostStatus.OK, host.errors


def collect_peak(host: FakeHost):
    """The host's view, and the most memory Python held while collecting it."""
    tracemalloc.start()
    try:
        view = collect(host, timeout=60)
        return view, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_flooding_host_costs_a_bounded_amount_of_memory():
    # Issue 11 item 5: 200 MiB of real ss lines, repeated; kept at most the listing's cap.
    view, peak = collect_peak(FakeHost.load(CAPTURE, faults={
        "ss": Fault.huge(200 * 1024 * 1024), "proc_net": Fault.huge(200 * 1024 * 1024)}))
    assert any("cut" in e for e in view.errors)
    assert view.coverage is not None and view.coverage.gaps
    assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def test_a_host_flooding_its_process_reads_costs_a_bounded_amount_too():
    # Issue 11 item 5: every read of the listeners' process group (/proc texts, owners,
    # environment names, executables, maps) floods; the group is cut at its cap as it
    # streams in, whatever each read prints.
    group = [f"{kind}.0" for kind in ("proctexts", "owner", "envnames", "exeid", "maps")]
    view, peak = collect_peak(FakeHost.load(CAPTURE, faults={
        name: Fault.huge(200 * 1024 * 1024) for name in group}))
    assert any("cut" in e and "procs.0" in e for e in view.errors), view.errors
    assert view.sockets  # the listing before it is whole
    assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def _login(port: int) -> tuple[InventoryHost, SSHOptions]:
    return (InventoryHost(name="h", address="127.0.0.1", port=port, user="nobody"),
            SSHOptions(host_key_policy=HostKeyPolicy.OFF, connect_timeout=2,
                       login_timeout=1, ssh_config=Path("/dev/null")))


def test_a_refused_connection_says_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    host, options = _login(port)
    with pytest.raises(ConnectError, match="connection refused"):
        asyncio.run(connect(host, "127.0.0.1", options))


def test_a_port_that_accepts_tcp_but_sends_no_banner_says_so():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        host, options = _login(server.getsockname()[1])
        with pytest.raises(ConnectError, match="accepted TCP but sent no SSH banner"):
            asyncio.run(connect(host, "127.0.0.1", options))


def test_a_changed_host_key_is_a_high_finding_with_both_fingerprints(tmp_path):
    # Issue 11 item 6: a possible man-in-the-middle was only an unreachable host.
    offered, recorded = (asyncssh.generate_private_key("ssh-ed25519") for _ in range(2))
    error = HostKeyChangedError(
        "HOST KEY CHANGED for web1", offered=offered.get_fingerprint(),
        recorded=[recorded.get_fingerprint()], known_hosts=str(tmp_path / "known_hosts"))
    results = audit(FakeHost.load(CAPTURE, connect_error=error))
    [host] = results.hosts
    assert host.status is HostStatus.HOST_KEY_REJECTED
    [finding] = [f for f in host.findings if f.rule == "HOST_KEY_CHANGED"]
    assert finding.severity is Severity.HIGH and finding.port is None and finding.active
    assert finding.evidence == [f"offered: {offered.get_fingerprint()}",
                                f"on record: {recorded.get_fingerprint()}",
                                f"known_hosts: {tmp_path / 'known_hosts'}"]
    assert host.compliant is False
    assert exit_code(results, Severity.HIGH) == 1


def test_an_unknown_host_key_is_no_finding():
    error = HostKeyError("host key of web1 is unknown")
    [host] = audit(FakeHost.load(CAPTURE, connect_error=error)).hosts
    assert host.status is HostStatus.HOST_KEY_REJECTED
    assert host.host_key_changed is None
    assert "HOST_KEY_CHANGED" not in {f.rule for f in host.findings}


def test_a_server_offering_another_key_raises_the_change_with_its_fingerprints(tmp_path):
    """Through transport.connect against a real SSH server in this process."""
    served, other = (asyncssh.generate_private_key("ssh-ed25519") for _ in range(2))

    async def go() -> HostKeyChangedError:
        server = await asyncssh.create_server(asyncssh.SSHServer, "127.0.0.1", 0,
                                              server_host_keys=[served])
        port = server.sockets[0].getsockname()[1]
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} "
                         f"{other.export_public_key('openssh').decode()}")
        host = InventoryHost(name="h", address="127.0.0.1", port=port, user="nobody")
        try:
            with pytest.raises(HostKeyChangedError) as caught:
                await connect(host, "127.0.0.1", SSHOptions(
                    known_hosts=known, ssh_config=Path("/dev/null"), connect_timeout=2))
        finally:
            server.close()
        return caught.value

    changed = asyncio.run(go())
    assert changed.offered == served.get_fingerprint()
    assert changed.recorded == [other.get_fingerprint()]
    assert "HOST KEY CHANGED" in str(changed)


def test_a_key_path_that_is_a_folder_is_a_key_error_before_any_packet(tmp_path):
    """Issue 11 item 6: a folder given as the key (inventory or ssh_config) is an
    authentication error naming it, found before connecting, never "unreachable"."""
    served = asyncssh.generate_private_key("ssh-ed25519")
    folder = tmp_path / "keys"
    folder.mkdir()
    config = tmp_path / "ssh_config"
    config.write_text(f"Host 127.0.0.1\n    IdentityFile {folder}\n")
    accepted: list[object] = []

    class Counting(asyncssh.SSHServer):
        def connection_made(self, conn: object) -> None:
            accepted.append(conn)

    async def go():
        server = await asyncssh.create_server(Counting, "127.0.0.1", 0,
                                              server_host_keys=[served])
        port = server.sockets[0].getsockname()[1]
        try:
            host = InventoryHost(name="h", address="127.0.0.1", port=port, user="nobody")
            options = SSHOptions(host_key_policy=HostKeyPolicy.OFF, connect_timeout=2,
                                 ssh_config=Path("/dev/null"))
            errors = []
            for login, ssh in ((host.model_copy(update={"key_file": str(folder)}), options),
                               (host, options.model_copy(update={"ssh_config": config}))):
                with pytest.raises(AuthError) as caught:
                    await connect(login, "127.0.0.1", ssh)
                errors.append(str(caught.value))
            audited = await run_audit(
                Inventory(source="test", hosts=[host.model_copy(update={"key_file": str(folder)})]),
                AuditOptions(nmap_xml=(NMAP,), ssh=options))
        finally:
            server.close()
        return errors, audited

    errors, audited = asyncio.run(go())
    assert errors == [f"key {folder} is a directory, not a private key file"] * 2
    [result] = audited.results.hosts
    assert result.status is HostStatus.AUTH_FAILED, result.errors
    assert any("is a directory" in e.message for e in result.errors), result.errors
    assert accepted == []  # refused before connecting
