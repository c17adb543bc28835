"""`ss -tulpnH` (iproute2) output to Socket models.

The process names inside `users:(...)` are each process's comm, which any process
can set to almost anything (15 bytes). ss prints them raw: quotes, commas, tabs
and even newlines come through unescaped, while a ')' cuts the name short (ss
reads comm with scanf("%[^)]")). So a record may span several physical lines, and
an owner entry ends at the first ')' after its name; the pid and fd are the last
`",pid=N,fd=M` before that ')', whatever the name pretends to contain.

Addresses are kept as ss prints them, minus the IPv6 brackets: `*` (a dual-stack
IPv6 wildcard in iproute2 >= 4.x; the IPv4 wildcard in older ones), `0.0.0.0`,
`::`, `::ffff:127.0.0.1`. A `%dev` suffix (SO_BINDTODEVICE or an IPv6 zone) goes
to Socket.scope.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NoReturn

from fleetaudit.errors import ParseError
from fleetaudit.models import ListenerSource, Proto, Socket, SocketOwner

_PROTOS = {"tcp": Proto.TCP, "udp": Proto.UDP}
# What -l lists: listening TCP sockets and bound, unconnected UDP ones.
_LISTENING = {Proto.TCP: "LISTEN", Proto.UDP: "UNCONN"}

# Without a terminal ss can glue the process column to the peer one (the header
# reads "Peer Address:PortProcess"), so `users:(` may follow the peer without a space.
_USERS = "users:("
# A name holds no ')' (see module docstring), so [^)]* stays inside one entry, and
# backtracking picks the last `",pid=` in it: the one ss wrote.
_OWNER = re.compile(r'\("(?P<name>[^)]*)",pid=(?P<pid>\d{1,10})(?:,fd=(?P<fd>\d{1,10}))?\)')
_HEADER = re.compile(
    r"Netid\s+State\s+Recv-Q\s+Send-Q\s+Local Address:Port\s+Peer Address:Port\s*(?:Process\s*)?"
)
_MAX_SHOWN = 120


def parse_ss(text: str) -> list[Socket]:
    """Every listening socket in the output, in ss's order; ParseError on anything else."""
    sockets: list[Socket] = []
    first = True
    for lineno, record in _records(text):
        if first and _HEADER.fullmatch(record):
            first = False
            continue
        first = False
        sockets.append(_parse_record(lineno, record))
    return sockets


def _records(text: str) -> list[tuple[int, str]]:
    """Physical lines joined back into records where a newline sat inside a process name."""
    records: list[tuple[int, str]] = []
    open_record: list[str] = []
    start, has_users = 0, False
    # split("\n"), not splitlines(): comm may hold \x1c, \x85... that are not ss's line ends.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not open_record:
            if not line.strip():
                continue
            start, has_users = lineno, _USERS in line
        open_record.append(line)
        # A name holds no ')', so only ss's own closing parenthesis can end a line here.
        if not has_users or line.rstrip().endswith(")"):
            records.append((start, "\n".join(open_record)))
            open_record = []
    if open_record:
        _fail(start, "\n".join(open_record), "process list never closed")
    return records


def _parse_record(lineno: int, record: str) -> Socket:
    # Split at the first `users:(` rather than with one regex: linear on hostile input.
    head, users, tail = record.partition(_USERS)
    fields = head.split()
    if len(fields) != 6:
        _fail(lineno, record, "not an ss -tulpn socket line (want 6 columns before users)")
    netid, state, recv_q, send_q, local, peer = fields
    proto = _PROTOS.get(netid)
    if proto is None:
        _fail(lineno, record, f"unknown Netid {netid!r} (expected tcp or udp)")
    if state != _LISTENING[proto]:
        _fail(lineno, record, f"{proto} state {state!r} is not listening (ss needs -l)")
    if not (recv_q.isascii() and recv_q.isdigit() and send_q.isascii() and send_q.isdigit()):
        _fail(lineno, record, "Recv-Q/Send-Q are not numbers")
    body = tail.rstrip()
    if users and not body.endswith(")"):
        _fail(lineno, record, "process list not closed")
    try:
        address, scope, port = _split_endpoint(local)
        _split_endpoint(peer, peer=True)
        owners = _parse_owners(body[:-1]) if users else []
    except ValueError as exc:
        _fail(lineno, record, str(exc))
    if port is None:
        _fail(lineno, record, "local port is '*'")
    return Socket(proto=proto, address=address, port=port, scope=scope, owners=owners,
                  source=ListenerSource.SS)


def _split_endpoint(text: str, *, peer: bool = False) -> tuple[str, str | None, int | None]:
    """`addr[%scope]:port` with addr `*`, IPv4, `[IPv6]` (or bare IPv6 from old ss)."""
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"no address:port in {text!r}")
    scope: str | None = None
    if host.startswith("["):
        address, bracket, rest = host[1:].partition("]")
        if not bracket:
            raise ValueError(f"unclosed '[' in {text!r}")
        if rest:
            if not rest.startswith("%") or len(rest) == 1:
                raise ValueError(f"junk after ']' in {text!r}")
            scope = rest[1:]
    else:
        address, percent, scope_text = host.partition("%")
        if percent:
            if not scope_text:
                raise ValueError(f"empty scope in {text!r}")
            scope = scope_text
    if address != "*":
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"address {address!r} is not numeric (ss needs -n)") from None
        if "%" in address:
            raise ValueError(f"scope inside the brackets in {text!r}")
    if port_text == "*" and peer:
        return address, scope, None
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        raise ValueError(f"port {port_text!r} is not numeric (ss needs -n)")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} out of range")
    return address, scope, port


def _parse_owners(body: str) -> list[SocketOwner]:
    owners: list[SocketOwner] = []
    pos = 0
    while True:
        match = _OWNER.match(body, pos)
        if match is None:
            raise ValueError(f"unreadable process entry at {body[pos:pos + 40]!r}")
        fd = match["fd"]
        owners.append(SocketOwner(command=match["name"], pid=int(match["pid"]),
                                  fd=int(fd) if fd is not None else None))
        pos = match.end()
        if pos == len(body):
            return owners
        if body[pos] != ",":
            raise ValueError(f"junk after process entry: {body[pos:pos + 40]!r}")
        pos += 1


def _fail(lineno: int, record: str, why: str) -> NoReturn:
    shown = record if len(record) <= _MAX_SHOWN else record[:_MAX_SHOWN] + "..."
    raise ParseError(f"ss output line {lineno}: {why}: {shown!r}")
