"""Listening sockets read straight from the kernel's tables, for hosts without ss or netstat.

Input is the output of `fleetaudit.probes.proc_net_probe`'s command: four tables each
after a `== NAME` marker line (/proc/net/tcp, tcp6, udp, udp6), then `== fd` and one
`INODE socket /proc/PID/fd/N` line per socket fd (`stat -L -c '%i %F %n'`), then
`== name` and `grep -H '^Name:'` of every /proc/PID/status.

Table rows: `sl: local rem st tx:rx tr:when retrnsmt uid timeout inode ...`, addresses
in hex as the kernel stores them: an IPv4 address is one 32-bit word in host byte order
(`0100007F` is 127.0.0.1 on little-endian machines), an IPv6 one is four such words,
ports are big-endian hex. TCP state 0A is LISTEN; UDP state 07 (CLOSE) with an all-zero
remote end is a bound, unconnected socket, what `ss -ul` lists. Every reader sees all
rows of its own network namespace; `/proc/PID/fd` of other users' processes only as root,
so without root most sockets have no owner.

The process name is status' Name (the comm), in which the kernel escapes `\\n` and `\\`;
they are unescaped here so names compare equal to ss's.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NoReturn

from fleetaudit.errors import ParseError
from fleetaudit.models import ListenerSource, Proto, Socket, SocketOwner

_TABLES = {"tcp": (Proto.TCP, 4), "tcp6": (Proto.TCP, 16),
           "udp": (Proto.UDP, 4), "udp6": (Proto.UDP, 16)}
_SECTIONS = (*_TABLES, "fd", "name")
_TABLE_HEADER = re.compile(r"\s*sl\s+local_address\s+rem(?:ote)?_address\s+st\s.*")
_ROW = re.compile(
    r"\s*\d+:\s+(?P<local>[0-9A-Fa-f]+):(?P<lport>[0-9A-Fa-f]{4})"
    r"\s+(?P<rem>[0-9A-Fa-f]+):(?P<rport>[0-9A-Fa-f]{4})"
    r"\s+(?P<st>[0-9A-Fa-f]{2})\s+[0-9A-Fa-f]+:[0-9A-Fa-f]+\s+[0-9A-Fa-f]+:[0-9A-Fa-f]+"
    r"\s+[0-9A-Fa-f]+\s+(?P<uid>\d{1,10})\s+\d+\s+(?P<inode>\d{1,20})(?:\s.*)?"
)
_LISTEN, _CLOSE = "0A", "07"
_SOCKET_FD = re.compile(r"(?P<inode>\d{1,20}) socket /proc/(?P<pid>\d{1,10})/fd/(?P<fd>\d{1,10})")
_NAME = re.compile(r"/proc/(?P<pid>\d{1,10})/status:Name:\t(?P<name>.*)")
_MAX_SHOWN = 120


def parse_proc_net(text: str) -> list[Socket]:
    """Listening TCP and bound UDP sockets, tables in tcp, tcp6, udp, udp6 order."""
    sections = _split(text)
    names = _names(sections.get("name", []))
    owners = _owners(sections.get("fd", []), names)
    sockets: list[Socket] = []
    for table, (proto, width) in _TABLES.items():
        for lineno, line in sections.get(table, []):
            if _TABLE_HEADER.fullmatch(line):
                continue
            sock = _row(lineno, line, table, proto, width, owners)
            if sock is not None:
                sockets.append(sock)
    return sockets


def parse_fd_map(text: str) -> dict[int, list[SocketOwner]]:
    """`fd_map_probe` output (its `== fd` and `== name` sections) -> socket inode -> owners."""
    sections = _split(text, require_tables=False)
    if "fd" not in sections and "name" not in sections:
        raise ParseError("fd map output: no '== fd' section (not this probe's output)")
    return _owners(sections.get("fd", []), _names(sections.get("name", [])))


def _split(text: str, *, require_tables: bool = True) -> dict[str, list[tuple[int, str]]]:
    sections: dict[str, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] | None = None
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.startswith("== "):
            name = line[3:].strip()
            if name not in _SECTIONS or name in sections:
                _fail(lineno, line, "unknown or repeated section marker")
            current = sections[name] = []
            continue
        if not line.strip():
            continue
        if current is None:
            _fail(lineno, line, "output before the first section marker")
        current.append((lineno, line))
    if require_tables and "tcp" not in sections:
        raise ParseError("/proc/net output: no '== tcp' section (not this probe's output)")
    return sections


def _names(lines: list[tuple[int, str]]) -> dict[int, str]:
    names: dict[int, str] = {}
    for lineno, line in lines:
        match = _NAME.fullmatch(line)
        if match is None:
            _fail(lineno, line, "not a '/proc/PID/status:Name:' line")
        names[int(match["pid"])] = _unescape(match["name"])
    return names


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], name)


def _owners(lines: list[tuple[int, str]], names: dict[int, str]) -> dict[int, list[SocketOwner]]:
    """socket inode -> the processes holding it, from `stat -L` of every /proc/PID/fd/N."""
    by_inode: dict[int, list[SocketOwner]] = {}
    for lineno, line in lines:
        match = _SOCKET_FD.fullmatch(line)
        if match is None:
            _fail(lineno, line, "not an 'INODE socket /proc/PID/fd/N' line")
        pid = int(match["pid"])
        owner = SocketOwner(command=names.get(pid, ""), pid=pid, fd=int(match["fd"]))
        by_inode.setdefault(int(match["inode"]), []).append(owner)
    return by_inode


def _row(lineno: int, line: str, table: str, proto: Proto, width: int,
         owners: dict[int, list[SocketOwner]]) -> Socket | None:
    match = _ROW.fullmatch(line)
    if match is None:
        _fail(lineno, line, f"not a /proc/net/{table} row")
    if len(match["local"]) != 2 * width or len(match["rem"]) != 2 * width:
        _fail(lineno, line, f"/proc/net/{table} address is not {width} bytes")
    state = match["st"].upper()
    if proto is Proto.TCP and state != _LISTEN:
        return None
    if proto is Proto.UDP and (state != _CLOSE or int(match["rem"], 16) or int(match["rport"], 16)):
        return None
    inode = int(match["inode"])
    return Socket(
        proto=proto, address=decode_address(match["local"]), port=int(match["lport"], 16),
        owners=sorted(owners.get(inode, []), key=lambda o: (o.pid, o.fd or 0)) if inode else [],
        source=ListenerSource.PROC_NET, inode=inode, uid=int(match["uid"]),
    )


def decode_address(hexaddr: str) -> str:
    """A /proc/net address: 32-bit words each in little-endian (x86, arm64) byte order.

    An IPv4-mapped IPv6 address is written `::ffff:a.b.c.d`, as ss writes it.
    """
    raw = bytes.fromhex(hexaddr)
    if len(raw) not in (4, 16):
        raise ValueError(f"not a 4 or 16 byte address: {hexaddr!r}")
    ordered = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(ordered) == 4:
        return str(ipaddress.IPv4Address(ordered))
    ip = ipaddress.IPv6Address(ordered)
    if ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def _fail(lineno: int, line: str, why: str) -> NoReturn:
    shown = line if len(line) <= _MAX_SHOWN else line[:_MAX_SHOWN] + "..."
    raise ParseError(f"/proc/net output line {lineno}: {why}: {shown!r}")
