"""The collection's own judgements: which listings disagree, why a PID is missing, what to
bind-probe after the scan. (The rounds themselves run on the lab: test_collect_lab.py.)"""

from __future__ import annotations

from pathlib import Path

from fleetaudit.collect import disagreements, hidden_owners, merge_listings, ports_to_probe
from fleetaudit.models import (
    ExternalHost,
    ExternalPort,
    InternalView,
    ListenerSource,
    Proto,
    Socket,
    SocketOwner,
    ToolsDisagreement,
)
from fleetaudit.parsers.netstat import parse_netstat
from fleetaudit.parsers.proc_net import parse_proc_net

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

SS, PROC = ListenerSource.SS, ListenerSource.PROC_NET


def sock(source: ListenerSource, address: str, port: int, proto: Proto = Proto.TCP,
         pid: int | None = None) -> Socket:
    owners = [SocketOwner(command="x", pid=pid)] if pid else []
    return Socket(proto=proto, address=address, port=port, source=source, owners=owners)


def test_listings_agree_across_spellings_of_the_same_address():
    found = [sock(SS, "*", 80), sock(PROC, "::", 80),
             sock(SS, "0.0.0.0", 22), sock(PROC, "0.0.0.0", 22),
             sock(SS, "::ffff:127.0.0.1", 53, Proto.UDP),
             sock(PROC, "::ffff:7f00:1", 53, Proto.UDP)]
    assert disagreements(found, [SS, PROC]) == []


def test_a_listener_one_full_listing_omits_is_named_with_both_sides():
    found = [sock(SS, "0.0.0.0", 22), sock(PROC, "0.0.0.0", 22), sock(PROC, "0.0.0.0", 4444),
             sock(SS, "127.0.0.1", 631), sock(PROC, "0.0.0.0", 5355, Proto.UDP)]
    assert disagreements(found, [SS, PROC]) == [  # by protocol, then port
        ToolsDisagreement(proto=Proto.TCP, port=631, address="127.0.0.1", listed_by=[SS],
                          missing_from=[PROC]),
        ToolsDisagreement(proto=Proto.TCP, port=4444, address="0.0.0.0", listed_by=[PROC],
                          missing_from=[SS]),
        ToolsDisagreement(proto=Proto.UDP, port=5355, address="0.0.0.0", listed_by=[PROC],
                          missing_from=[SS]),
    ]


def test_one_listing_or_an_incomplete_one_cannot_disagree():
    found = [sock(SS, "0.0.0.0", 22), sock(PROC, "0.0.0.0", 4444)]
    assert disagreements(found, [PROC]) == []  # ss ran but did not finish: not consulted
    assert disagreements(found, []) == []


def test_merged_view_has_one_socket_per_listener_and_keeps_what_only_the_kernel_shows():
    listed = [sock(SS, "*", 80, pid=5), sock(SS, "0.0.0.0", 22, pid=1)]
    kernel = [sock(PROC, "::", 80, pid=5), sock(PROC, "0.0.0.0", 22, pid=1),
              sock(PROC, "0.0.0.0", 4444, pid=9)]
    assert merge_listings(listed, kernel) == [*listed, kernel[2]]
    assert merge_listings([], kernel) == kernel


def test_netstat_names_one_process_per_socket_the_fd_map_adds_the_others():
    # Captured at the same moment (capture_internal_more.sh): a pre-forked parent and two
    # children sharing one socket on 41020; net-tools' netstat names the parent only.
    netstat = parse_netstat((FIXTURES / "netstat" / "probe_nettools_root.txt").read_text())
    kernel = parse_proc_net((FIXTURES / "proc_net" / "probe_root.txt").read_text())
    manifest = [row.split("\t") for row in
                (FIXTURES / "proc_net" / "listeners.tsv").read_text().splitlines()[1:]]
    prefork = {int(pid) for proto, port, pid, _ in manifest if (proto, port) == ("tcp", "41020")}
    assert len(prefork) == 3
    [listed] = [s for s in netstat if s.port == 41020]
    assert len(listed.owners) == 1
    [merged] = [s for s in merge_listings(netstat, kernel) if s.port == 41020]
    assert merged.source is ListenerSource.NETSTAT
    assert {o.pid for o in merged.owners} == prefork
    assert merged.owners[0] == listed.owners[0]  # the tool's own word is kept as it was


def test_missing_pids_say_why_once_per_listener():
    found = [sock(SS, "0.0.0.0", 22), sock(PROC, "0.0.0.0", 22),
             sock(SS, "0.0.0.0", 80, pid=7), sock(PROC, "0.0.0.0", 80)]
    assert hidden_owners(found, privileged=False) == [
        "tcp 0.0.0.0 port 22: PID hidden: not privileged"]
    assert hidden_owners(found, privileged=True) == [
        "tcp 0.0.0.0 port 22: no process holds it (a kernel socket, or its process exited)"]
    assert hidden_owners(found, privileged=None) == [
        "tcp 0.0.0.0 port 22: PID not visible (privilege unknown)"]


def test_only_open_ports_no_socket_serves_on_the_scanned_address_are_probed():
    view = InternalView(sockets=[
        sock(SS, "0.0.0.0", 22, pid=1),
        sock(SS, "127.0.0.1", 8080, pid=2),    # loopback only: does not explain outside
        sock(SS, "::", 443, pid=3),            # dual-stack wildcard serves IPv4 too
        sock(SS, "0.0.0.0", 53, Proto.UDP, pid=4),
    ])
    external = ExternalHost(address="192.0.2.7", status="up", ports=[
        ExternalPort(proto=Proto.TCP, port=p, state=state) for p, state in
        ((22, "open"), (8080, "open"), (443, "open"), (2222, "open"), (25, "filtered"))
    ] + [ExternalPort(proto=Proto.UDP, port=53, state="open"),
         ExternalPort(proto=Proto.TCP, port=53, state="open")])
    assert ports_to_probe(view, external, "192.0.2.7") == [
        (Proto.TCP, 53), (Proto.TCP, 2222), (Proto.TCP, 8080)]
    assert ports_to_probe(view, None, "192.0.2.7") == []
