"""parse_netstat on real `netstat -tulpn` captures: net-tools and busybox, root and nobody.

Captured by tests/fixtures/capture_internal_more.sh; PIDs come from the manifest it wrote
(proc_net/listeners.tsv), taken at the same moment.
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
from fleetaudit.probes import netstat_probe

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / "netstat" / name).read_text(encoding="utf-8", errors="replace")


def manifest() -> dict[tuple[Proto, int], list[int]]:
    pids: dict[tuple[Proto, int], list[int]] = {}
    for row in (FIXTURES / "proc_net" / "listeners.tsv").read_text().splitlines()[1:]:
        proto, port, pid, _label = row.split("\t")
        if port != "-":
            pids.setdefault((Proto(proto), int(port)), []).append(int(pid))
    return pids


PIDS = manifest()
ROOT = parse_netstat(fixture("nettools_root.txt"))
LISTED = {(s.proto, s.port) for s in ROOT}


def endpoints(sockets):
    return sorted((s.proto, s.address, s.port) for s in sockets)


def by_port(sockets, proto, port):
    [sock] = [s for s in sockets if (s.proto, s.port) == (proto, port)]
    return sock


def test_nettools_root_lists_every_listener_the_script_started_with_its_pid():
    assert set(PIDS) == LISTED  # the netns listener (port '-') is invisible here, as it must be
    assert all(s.source is ListenerSource.NETSTAT for s in ROOT)
    for (proto, port), pids in PIDS.items():
        sock = by_port(ROOT, proto, port)
        if port == 41070:  # its only reference is an fd in flight: nobody owns it
            assert sock.owners == []
        else:
            # netstat names one process even for a socket three processes share (41020)
            assert [o.pid for o in sock.owners] == [pids[0]]


def test_nettools_addresses_ipv6_and_mapped():
    assert by_port(ROOT, Proto.TCP, 41030).address == "::"
    assert by_port(ROOT, Proto.TCP, 41001).address == "::1"
    assert by_port(ROOT, Proto.UDP, 41011).address == "::1"
    assert by_port(ROOT, Proto.TCP, 41032).address == "fd00:fa:1234:5678:9abc:def0:1234:5678"
    # net-tools prints the v4-mapped socket as "tcp6 127.0.0.1:41080": mapped back
    assert by_port(ROOT, Proto.TCP, 41080).address == "::ffff:127.0.0.1"
    assert by_port(ROOT, Proto.UDP, 41010).address == "127.0.0.1"


def shown(name: str, pid: int) -> str:
    """Both tools cut `PID/name` to 19 characters."""
    return name[: 19 - len(f"{pid}/")]


def test_program_names_are_argv0_basenames_padding_dropped():
    assert by_port(ROOT, Proto.TCP, 41040).owners[0].command == "my server"
    assert by_port(ROOT, Proto.TCP, 41050).owners[0].command == "deleted-server"
    # sshd's retitled argv[0]: net-tools shows the title's start, not "sshd"
    sshd = by_port(ROOT, Proto.TCP, 41022).owners[0]
    assert sshd.command == shown("sshd: /usr/sbin/sshd -D", sshd.pid)
    assert by_port(ROOT, Proto.TCP, 41000).owners[0].command == "python3.11"


def test_narrow_nettools_cuts_a_long_ipv6_address_and_is_refused():
    text = fixture("nettools_root_narrow.txt")
    assert "fd00:fa:1234:5678:41032 " in text  # the real truncation
    with pytest.raises(ParseError, match="-W"):
        parse_netstat(text)


def test_nettools_as_nobody_sees_only_its_own_process():
    sockets = parse_netstat(fixture("nettools_nobody.txt"))
    assert endpoints(sockets) == endpoints(ROOT)
    owned = {(s.proto, s.port): [o.pid for o in s.owners] for s in sockets if s.owners}
    assert owned == {(Proto.TCP, 41090): PIDS[(Proto.TCP, 41090)]}


def test_nettools_notice_on_stderr_is_not_a_socket():
    assert fixture("nettools_nobody_stderr.txt").startswith("(Not all processes")
    assert parse_netstat(fixture("nettools_nobody_stderr.txt")) == []


def test_busybox_with_pids_agrees_with_nettools():
    sockets = parse_netstat(fixture("busybox_prg_root.txt"))
    assert endpoints(sockets) == endpoints(ROOT)
    assert {(s.proto, s.port): [o.pid for o in s.owners] for s in sockets} == {
        (s.proto, s.port): [o.pid for o in s.owners] for s in ROOT}
    # busybox takes the basename of the title's argv[0]: the last '/' is inside an option
    sshd = by_port(sockets, Proto.TCP, 41022).owners[0]
    assert sshd.command == shown("authorized_keys -o StrictModes=no", sshd.pid)
    assert parse_netstat(fixture("busybox_prg_root_narrow.txt")) == sockets  # no truncation


def test_busybox_as_nobody():
    sockets = parse_netstat(fixture("busybox_prg_nobody.txt"))
    assert [s.port for s in sockets if s.owners] == [41090]


def test_debian_busybox_has_no_p_and_gives_sockets_without_owners():
    assert "invalid option -- 'p'" in fixture("busybox_debian_tulpn.txt")
    with pytest.raises(ParseError):
        parse_netstat(fixture("busybox_debian_tulpn.txt"))
    sockets = parse_netstat(fixture("busybox_debian_tuln.txt"))
    assert endpoints(sockets) == endpoints(ROOT)
    assert all(s.owners == [] for s in sockets)


def test_the_probe_commands_fall_back_to_what_the_tool_supports():
    assert parse_netstat(fixture("probe_nettools_root.txt")) == ROOT  # -W worked
    assert parse_netstat(fixture("probe_busybox_debian_root.txt")) == parse_netstat(
        fixture("busybox_debian_tuln.txt"))  # -tulpnW, -tulpn refused: -tuln
    assert netstat_probe().command.startswith("out=$(netstat -tulpnW ")
    assert netstat_probe(busybox=True).name == "busybox_netstat"


@pytest.mark.parametrize(("line", "why"), [
    ("tcp 0 0 127.0.0.1:22 0.0.0.0:* ESTABLISHED 1/x", "not LISTEN"),
    ("sctp 0 0 127.0.0.1:22 0.0.0.0:* LISTEN 1/x", "unknown Proto"),
    ("tcp 0 0 localhost:ssh 0.0.0.0:* LISTEN 1/x", "not numeric"),
    ("tcp 0 0 127.0.0.1:99999 0.0.0.0:* LISTEN 1/x", "out of range"),
    ("tcp 0 0 127.0.0.1:22 0.0.0.0:* LISTEN x/y", "PID/Program"),
])
def test_lines_netstat_never_prints_for_l_are_refused(line, why):
    with pytest.raises(ParseError, match=why):
        parse_netstat(line)


REAL_LINES = fixture("nettools_root.txt").split("\n") + fixture("busybox_prg_root.txt").split("\n")


@settings(max_examples=300)
@given(st.lists(st.sampled_from(REAL_LINES) | st.text(max_size=60), max_size=12))
def test_any_text_gives_sockets_or_parse_error(lines):
    with contextlib.suppress(ParseError):
        result = parse_netstat("\n".join(lines))
        assert all(s.source is ListenerSource.NETSTAT for s in result)
