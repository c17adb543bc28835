"""parse_ss on real `ss -tulpn[H]` captures (tests/fixtures/capture_internal.sh).

PIDs change with every capture, so they are read from ss/listeners.tsv, which the
capture script wrote alongside the ss output.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.models import ListenerSource, Proto, Socket, SocketOwner
from fleetaudit.parsers.ss import parse_ss

SS = Path(__file__).resolve().parents[1] / "fixtures" / "ss"


def fixture(name: str) -> str:
    return (SS / name).read_text(encoding="utf-8", errors="replace")


def manifest() -> dict[tuple[Proto, int], list[int]]:
    """(proto, port) -> PIDs of the processes the capture script started for it."""
    pids: dict[tuple[Proto, int], list[int]] = {}
    for row in fixture("listeners.tsv").splitlines()[1:]:
        proto, port, pid, _label = row.split("\t")
        if port != "-":
            pids.setdefault((Proto(proto), int(port)), []).append(int(pid))
    return pids


ROOT = parse_ss(fixture("tulpnH_root.txt"))
PIDS = manifest()


def sock(proto: Proto, port: int, sockets: list[Socket] = ROOT) -> Socket:
    [found] = [s for s in sockets if s.proto == proto and s.port == port]
    return found


def test_every_started_listener_is_found_once() -> None:
    assert len(ROOT) == len(PIDS)
    assert {(s.proto, s.port) for s in ROOT} == set(PIDS)
    assert all(s.source == ListenerSource.SS for s in ROOT)


def test_owner_pids_are_the_started_processes() -> None:
    for (proto, port), pids in PIDS.items():
        owners = sock(proto, port).owners
        if port == 41070:  # its only reference is an fd in flight: no process holds it
            assert owners == []
        else:
            assert sorted(o.pid for o in owners) == sorted(pids), port


def test_known_ipv4_listener() -> None:
    http = sock(Proto.TCP, 41000)
    assert http.address == "127.0.0.1"
    assert http.scope is None
    assert http.owners == [SocketOwner(command="python3.11", pid=PIDS[Proto.TCP, 41000][0], fd=3)]
    assert http.is_loopback


def test_bracketed_ipv6_port_is_the_part_after_the_bracket() -> None:
    v6 = sock(Proto.TCP, 41631)  # printed [::1]:41631, which naive splitting reads as port 1
    assert (v6.address, v6.port) == ("::1", 41631)
    assert v6.is_loopback


def test_udp_sockets() -> None:
    assert sock(Proto.UDP, 41010).address == "127.0.0.1"
    assert sock(Proto.UDP, 41011).address == "::1"
    assert sock(Proto.UDP, 41011).owners[0].pid == PIDS[Proto.UDP, 41011][0]


def test_wildcards() -> None:
    assert (sock(Proto.TCP, 41030).address, sock(Proto.TCP, 41030).scope) == ("*", None)  # V6ONLY=0
    assert sock(Proto.TCP, 41031).address == "::"  # V6ONLY=1 prints [::]
    assert sock(Proto.TCP, 41060).address == "*"  # busybox nc -l listens dual-stack
    assert not sock(Proto.TCP, 41030).is_loopback


def test_scoped_addresses() -> None:
    assert (sock(Proto.UDP, 41053).address, sock(Proto.UDP, 41053).scope) == ("127.0.0.53", "lo")
    assert (sock(Proto.TCP, 41054).address, sock(Proto.TCP, 41054).scope) == ("0.0.0.0", "lo")
    assert (sock(Proto.TCP, 41055).address, sock(Proto.TCP, 41055).scope) == ("*", "lo")
    assert sock(Proto.UDP, 41053).is_loopback


def test_ipv4_mapped_address_is_kept_as_printed() -> None:
    mapped = sock(Proto.TCP, 41080)
    assert mapped.address == "::ffff:127.0.0.1"
    assert mapped.is_loopback


def test_preforked_socket_has_every_owner() -> None:
    owners = sock(Proto.TCP, 41020).owners
    assert len(owners) == 3
    assert {o.pid for o in owners} == set(PIDS[Proto.TCP, 41020])
    assert {(o.command, o.fd) for o in owners} == {("python3.11", 3)}


def test_hostile_process_names() -> None:
    assert sock(Proto.TCP, 41001).owners[0].command == 'we"ird,(na me'
    assert sock(Proto.TCP, 41002).owners[0].command == "a"  # ss itself cuts comm "a)b" at ')'
    assert sock(Proto.TCP, 41003).owners[0].command == "x\ny"
    assert sock(Proto.TCP, 41004).owners[0].command == "t\tz"
    assert sock(Proto.TCP, 41040).owners[0].command == "my server"
    spoof = sock(Proto.TCP, 41005).owners
    assert spoof == [SocketOwner(command='x",pid=1,fd=2', pid=PIDS[Proto.TCP, 41005][0], fd=3)]


def test_newline_in_a_name_does_not_split_the_socket() -> None:
    text = fixture("tulpnH_root.txt")
    assert text.count("\n") == len(ROOT) + 1  # one record spans two physical lines


def test_header_is_skipped_and_the_rest_is_identical() -> None:
    text = fixture("tulpn_header_root.txt")
    assert text.startswith("Netid State")
    assert "PortProcess" in text.splitlines()[0]  # ss glues these two header columns
    assert parse_ss(text) == ROOT


def test_unprivileged_capture_has_no_pids_but_its_own() -> None:
    nobody = parse_ss(fixture("tulpnH_nobody.txt"))
    assert [(s.proto, s.address, s.port, s.scope) for s in nobody] == [
        (s.proto, s.address, s.port, s.scope) for s in ROOT
    ]
    with_owners = [s for s in nobody if s.owners]
    assert [(s.port, [o.pid for o in s.owners]) for s in with_owners] == [
        (41090, PIDS[Proto.TCP, 41090])  # the listener started as nobody
    ]


def test_blank_and_empty_input() -> None:
    assert parse_ss("") == []
    assert parse_ss("\n\n  \n") == []
    header = fixture("tulpn_header_root.txt").splitlines()[0]
    assert parse_ss(header + "\n") == []


REAL_LINES = fixture("tulpnH_root.txt").splitlines()


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        REAL_LINES[0][:30],  # cut mid-line
        REAL_LINES[0].replace("udp", "raw", 1),
        REAL_LINES[0].replace("UNCONN", "ESTAB", 1),
        REAL_LINES[0].replace(":41010", ":ipp", 1),  # what ss prints without -n
        REAL_LINES[0].replace("127.0.0.1", "localhost", 1),
        REAL_LINES[0].replace(":41010", ":99999", 1),
        REAL_LINES[0].replace(",fd=3))", ",fd=3)"),
        REAL_LINES[0].replace("pid=", "pid=x", 1),
        next(line for line in REAL_LINES if line.endswith('(("x')),  # name cut by its newline
        "\n".join(REAL_LINES[:3]) + "\ntcp LISTEN 0 128 [::1:22 [::]:*",
        fixture("tulpn_header_root.txt").splitlines()[0] * 2,
    ],
)
def test_garbage_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_ss(text)


def test_parse_error_names_the_line() -> None:
    text = "\n".join(REAL_LINES[:2]) + "\n\nnot ss at all " + "x" * 300
    with pytest.raises(ParseError, match=r"line 4: .*'not ss at all x+\.\.\.'") as info:
        parse_ss(text)
    assert len(str(info.value)) < 250


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_arbitrary_text_is_a_list_or_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        assert isinstance(parse_ss(text), list)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(REAL_LINES) | st.text(max_size=40)), st.integers(0, 400))
def test_mangled_real_output_is_a_list_or_parse_error(lines: list[str], cut: int) -> None:
    text = "\n".join(lines)
    for candidate in (text, text[:cut], text[cut:]):
        with contextlib.suppress(ParseError):
            assert isinstance(parse_ss(candidate), list)


def test_stripped_trailing_whitespace_changes_nothing() -> None:
    stripped = "\n".join(line.rstrip() for line in fixture("tulpnH_root.txt").split("\n"))
    assert parse_ss(stripped) == ROOT
