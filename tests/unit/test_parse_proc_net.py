"""parse_proc_net on real output of proc_net_probe's command (capture_internal_more.sh).

Captured in a private PID namespace, at the same moment as the netstat fixtures, so the
two tools' answers are compared with each other and with the manifest.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.models import ListenerSource, Proto
from fleetaudit.parsers.netstat import parse_netstat
from fleetaudit.parsers.proc_net import decode_address, parse_fd_map, parse_proc_net

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / "proc_net" / name).read_text(encoding="utf-8", errors="replace")


def manifest() -> dict[tuple[Proto, int], list[int]]:
    pids: dict[tuple[Proto, int], list[int]] = {}
    for row in fixture("listeners.tsv").splitlines()[1:]:
        proto, port, pid, _label = row.split("\t")
        if port != "-":
            pids.setdefault((Proto(proto), int(port)), []).append(int(pid))
    return pids


PIDS = manifest()
ROOT = parse_proc_net(fixture("probe_root.txt"))


def by_port(sockets, proto, port):
    [sock] = [s for s in sockets if (s.proto, s.port) == (proto, port)]
    return sock


def test_same_sockets_as_netstat_at_the_same_moment():
    netstat = parse_netstat((FIXTURES / "netstat" / "nettools_root.txt").read_text())
    assert sorted((s.proto, s.address, s.port) for s in ROOT) == sorted(
        (s.proto, s.address, s.port) for s in netstat)
    assert all(s.source is ListenerSource.PROC_NET and s.inode for s in ROOT)


def test_every_owner_is_found_through_the_fd_links():
    for (proto, port), pids in PIDS.items():
        sock = by_port(ROOT, proto, port)
        if port == 41070:
            assert sock.owners == []  # held only by an fd in flight
        else:
            # all holders, the pre-forked children of 41020 included, each on fd 3
            assert sorted(o.pid for o in sock.owners) == sorted(pids)
            assert {o.fd for o in sock.owners} == {3}


def test_names_come_from_status_with_the_kernel_escape_undone():
    assert by_port(ROOT, Proto.TCP, 41002).owners[0].command == "x\ny"
    assert by_port(ROOT, Proto.TCP, 41003).owners[0].command == "a)b c"
    assert by_port(ROOT, Proto.TCP, 41040).owners[0].command == "my server"
    assert by_port(ROOT, Proto.TCP, 41022).owners[0].command == "sshd"
    assert "x\\ny" in fixture("probe_root.txt")  # as status printed it


def test_addresses_decoded_from_kernel_hex():
    assert by_port(ROOT, Proto.TCP, 41080).address == "::ffff:127.0.0.1"
    assert by_port(ROOT, Proto.TCP, 41032).address == "fd00:fa:1234:5678:9abc:def0:1234:5678"
    assert by_port(ROOT, Proto.TCP, 41030).address == "::"
    assert by_port(ROOT, Proto.UDP, 41011).address == "::1"
    assert "0100007F:A028" in fixture("probe_root.txt")  # 127.0.0.1:41000, little-endian word
    assert decode_address("0100007F") == "127.0.0.1"
    assert decode_address("0000000000000000FFFF00000100007F") == "::ffff:127.0.0.1"


def test_uid_column():
    assert by_port(ROOT, Proto.TCP, 41090).uid == 65534
    assert by_port(ROOT, Proto.TCP, 41000).uid == 0


def test_nobody_lists_every_socket_but_owns_only_its_own():
    sockets = parse_proc_net(fixture("probe_nobody.txt"))
    assert [(s.proto, s.address, s.port, s.inode) for s in sockets] == [
        (s.proto, s.address, s.port, s.inode) for s in ROOT]
    assert [(s.port, [o.pid for o in s.owners]) for s in sockets if s.owners] == [
        (41090, PIDS[(Proto.TCP, 41090)])]


def test_busybox_applets_give_the_same_answer():
    assert parse_proc_net(fixture("probe_busybox_root.txt")) == ROOT


@pytest.mark.parametrize(("text", "why"), [
    ("garbage", "before the first"),
    ("== tcp\n== tcp\n", "repeated"),
    ("== udp\n", "no '== tcp'"),
    ("== tcp\n   0: 0100007F:A028 00000000:0000 0A nonsense", "not a /proc/net/tcp row"),
    ("== tcp\n== fd\n12 socket /proc/x/fd/3", "not an 'INODE socket"),
    ("== tcp\n== name\n/proc/1/status:Uid:\t0", "Name:"),
])
def test_shapes_the_command_never_prints_are_refused(text, why):
    with pytest.raises(ParseError, match=why):
        parse_proc_net(text)


REAL_LINES = fixture("probe_root.txt").split("\n")


@settings(max_examples=300)
@given(st.lists(st.sampled_from(REAL_LINES) | st.text(max_size=80), max_size=15))
def test_any_text_gives_sockets_or_parse_error(lines):
    with contextlib.suppress(ParseError):
        parse_proc_net("\n".join(lines))


def test_fd_map_alone_gives_the_owners_the_full_probe_gives():
    # fd_map_probe's command is byte for byte the tail of proc_net_probe's (from `== fd`),
    # so that tail of the real capture is the fd map's real output.
    text = fixture("probe_root.txt")
    owners = parse_fd_map(text[text.index("== fd\n"):])
    for sock in ROOT:
        if sock.owners:
            assert sock.inode is not None
            assert sorted(owners[sock.inode], key=lambda o: (o.pid, o.fd or 0)) == sock.owners


def test_fd_map_command_is_the_tail_of_the_proc_net_command():
    from fleetaudit.probes import fd_map_probe, proc_net_probe
    assert proc_net_probe().command.endswith(fd_map_probe().command)
    assert "== fd" not in proc_net_probe(fd_map=False).command


def test_fd_map_without_its_sections_is_not_an_fd_map():
    with pytest.raises(ParseError):
        parse_fd_map("hello")
    # The tables alone (what proc_net_probe(fd_map=False) prints) hold no fd map.
    text = fixture("probe_root.txt")
    with pytest.raises(ParseError, match="no '== fd' section"):
        parse_fd_map(text[:text.index("== fd\n")])
