"""Addresses as every layer compares them: one place, so the copies cannot drift.

nmap drops an IPv6 scope, ss writes a dual-stack wildcard as `*` where /proc/net says
`::`, listings bracket IPv6, and an IPv4-mapped IPv6 socket serves the IPv4 address.
Pure: no lookup, no I/O; a string that is not an IP address is compared as it is.
"""

from __future__ import annotations

import ipaddress

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
WILDCARDS = frozenset({"*", "0.0.0.0", "::"})


def parse(text: str) -> IP | None:
    """The IP address `text` names (brackets and an IPv6 scope allowed), else None."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_ip(text: str | None) -> bool:
    return text is not None and parse(text) is not None


def literal(text: str) -> str | None:
    """`text` in canonical form when it is an IP address as written (brackets allowed, an
    IPv6 scope kept: a link-local address is reached through it), else None: a name, to
    be resolved."""
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None


def canonical(address: str) -> str:
    """An address without brackets and IPv6 scope, in its canonical form when it is an IP
    (nmap reports hosts so); anything else unchanged but for the scope."""
    ip = parse(address)
    return str(ip) if ip is not None else address.split("%", 1)[0]


def listing_key(address: str) -> str:
    """How two listings' bound addresses compare: ss's `*` is /proc/net's `::`."""
    bare = address.strip("[]")
    if bare == "*":
        return "::"
    ip = parse(bare)
    return ip.compressed if ip is not None else bare


def unmapped(ip: IP) -> IP:
    """An IPv4-mapped IPv6 address as the IPv4 address it stands for."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(address: str) -> bool:
    """Bound to loopback only; wildcards and names count as routable."""
    ip = parse(address)
    return ip is not None and unmapped(ip).is_loopback


def serves(bound: str, target: str) -> bool:
    """Whether a socket bound to `bound` accepts connections sent to `target`."""
    bare = bound.strip("[]")
    if bare in WILDCARDS:
        # A v6 wildcard also takes IPv4 unless bindv6only is set (Linux default: off).
        return bare != "0.0.0.0" or ":" not in target
    bound_ip, target_ip = parse(bare), parse(target)
    if bound_ip is None or target_ip is None:
        return bare == target
    return unmapped(bound_ip) == unmapped(target_ip)
