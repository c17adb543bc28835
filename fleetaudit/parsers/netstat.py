"""`netstat -tulpn` output (net-tools, and busybox's applet) to Socket models.

Both print one socket a line under a two-line header:

    Proto Recv-Q Send-Q Local Address   Foreign Address   State    PID/Program name
    tcp        0      0 127.0.0.1:41000 0.0.0.0:*         LISTEN   22085/python3.11
    udp6       0      0 ::1:41011       :::*                       22087/python3.11

IPv6 addresses come without brackets (`:::22` is port 22 on `::`), so the port is what
follows the LAST colon. UDP has an empty State column. The last column is `PID/name`,
`-` when the reader may not see the owner (not root, or no process holds the socket),
and absent when netstat was run without -p (busybox built without its PRG feature, as
Debian's is). The name is the basename of argv[0] (not comm, unlike ss), so it may hold
spaces, and a retitled process (sshd) shows its title's tail; netstat pads it with
trailing spaces, which are dropped. Without -W, net-tools cuts addresses longer than its
column: such a line is refused rather than read as another address. net-tools prints an
IPv4-mapped address (`::ffff:127.0.0.1`) as `127.0.0.1` under tcp6: it is mapped back.
busybox writes `tcp` for IPv6 sockets too, and the mapped address whole.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NoReturn

from fleetaudit.errors import ParseError
from fleetaudit.models import ListenerSource, Proto, Socket, SocketOwner

_PROTOS = {"tcp": Proto.TCP, "tcp6": Proto.TCP, "udp": Proto.UDP, "udp6": Proto.UDP}
_BANNER = re.compile(r"Active Internet connections \((?:only servers|servers and established)\)")
_HEADER = re.compile(r"Proto\s+Recv-Q\s+Send-Q\s+Local Address\s+Foreign Address\s+State"
                     r"(?:\s+PID/Program name)?\s*")
# net-tools' warnings when not root; they go to stderr, but `2>&1` must not break us.
_NOTICES = ("(Not all processes could be identified", " will not be shown, you would have",
            '(No info could be read for "-p"')
_STATE = re.compile(r"[A-Z][A-Z0-9_]*")
_OWNER = re.compile(r"(?P<pid>\d{1,10})/(?P<name>.*)")
_MAX_SHOWN = 120


def parse_netstat(text: str) -> list[Socket]:
    """Every listening socket in the output, in netstat's order; ParseError on anything else."""
    sockets: list[Socket] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or _BANNER.fullmatch(line.strip()) or _HEADER.fullmatch(line):
            continue
        if line.startswith(_NOTICES):
            continue
        sockets.append(_parse_line(lineno, line))
    return sockets


def _parse_line(lineno: int, line: str) -> Socket:
    fields = line.split(None, 5)
    if len(fields) < 5:
        _fail(lineno, line, "not a netstat socket line (want at least 5 columns)")
    netid, recv_q, send_q, local, peer = fields[:5]
    rest = fields[5].rstrip() if len(fields) == 6 else ""
    proto = _PROTOS.get(netid)
    if proto is None:
        _fail(lineno, line, f"unknown Proto {netid!r} (expected tcp, tcp6, udp or udp6)")
    if not (recv_q.isascii() and recv_q.isdigit() and send_q.isascii() and send_q.isdigit()):
        _fail(lineno, line, "Recv-Q/Send-Q are not numbers")
    try:
        address, port = _endpoint(local)
        _endpoint(peer, peer=True)
    except ValueError as exc:
        _fail(lineno, line, str(exc))
    if port is None:
        _fail(lineno, line, "local port is '*'")
    if netid.endswith("6") and "." in address:
        # net-tools prints an IPv4-mapped IPv6 address in IPv4 form under tcp6/udp6.
        address = f"::ffff:{address}"
    state, owners = _state_and_owner(lineno, line, rest)
    if proto is Proto.TCP and state != "LISTEN":
        _fail(lineno, line, f"tcp state {state!r} is not LISTEN (netstat needs -l)")
    if proto is Proto.UDP and state not in ("", "CLOSE"):
        _fail(lineno, line, f"udp state {state!r} is not unconnected (netstat needs -l)")
    return Socket(proto=proto, address=address, port=port, owners=owners,
                  source=ListenerSource.NETSTAT)


def _state_and_owner(lineno: int, line: str, rest: str) -> tuple[str, list[SocketOwner]]:
    """`LISTEN 12/name`, `12/name` (udp), `LISTEN -`, `-`, `LISTEN` or `` (no -p)."""
    state, _, owner = rest.partition(" ")
    if not _STATE.fullmatch(state):
        state, owner = "", rest
    owner = owner.strip()
    if owner in ("", "-"):
        return state, []
    match = _OWNER.fullmatch(owner)
    if match is None or not match["name"]:
        _fail(lineno, line, f"unreadable PID/Program name {owner[:40]!r}")
    return state, [SocketOwner(command=match["name"], pid=int(match["pid"]))]


def _endpoint(text: str, *, peer: bool = False) -> tuple[str, int | None]:
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"no address:port in {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # `[::1]:631`, as ss writes it; neither netstat here did
    if host != "*":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"address {host!r} is not numeric (netstat needs -n; "
                             "-W keeps long IPv6 addresses whole)") from None
    if port_text == "*" and peer:
        return host, None
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        raise ValueError(f"port {port_text!r} is not numeric (netstat needs -n)")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} out of range")
    return host, port


def _fail(lineno: int, line: str, why: str) -> NoReturn:
    shown = line if len(line) <= _MAX_SHOWN else line[:_MAX_SHOWN] + "..."
    raise ParseError(f"netstat output line {lineno}: {why}: {shown!r}")
