"""Where well-known services live: the table behind NONSTANDARD_PORT.

nmap's port names (Elite on 31337, krb524 on 4444, priv-mail on 24) are a registry,
not what a reader means by "the service of this port". A port is nonstandard when a
service everyone knows answers away from its own ports (ssh on 2222), or a port that
belongs to such a service answers with another one (http on 22). Web servers roam:
http and https are found on 8000, 8080, 9000 by design, so they count only on another
service's port. Names are nmap's service names after `reconcile.service_family`,
which makes a protocol inside TLS its TLS service (imap through ssl is imaps): the
TLS ports (ftps, telnets, smtps, domain-s, pop3s, imaps, ldaps, https) are their own.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleetaudit.models import Proto

TCP, UDP = Proto.TCP, Proto.UDP

WELL_KNOWN: Mapping[str, tuple[tuple[Proto, int], ...]] = {
    "ftp": ((TCP, 21),),
    "ftps": ((TCP, 990),),
    "ssh": ((TCP, 22),),
    "telnet": ((TCP, 23),),
    "telnets": ((TCP, 992),),
    "smtp": ((TCP, 25), (TCP, 587)),
    "smtps": ((TCP, 465),),
    "domain": ((TCP, 53), (UDP, 53)),
    "domain-s": ((TCP, 853),),
    "kerberos-sec": ((TCP, 88), (UDP, 88)),
    "pop3": ((TCP, 110),),
    "pop3s": ((TCP, 995),),
    "ntp": ((UDP, 123),),
    "imap": ((TCP, 143),),
    "imaps": ((TCP, 993),),
    "snmp": ((UDP, 161),),
    "ldap": ((TCP, 389),),
    "ldaps": ((TCP, 636),),
    "smb": ((TCP, 139), (TCP, 445)),
    "rsync": ((TCP, 873),),
    "ms-sql-s": ((TCP, 1433),),
    "oracle-tns": ((TCP, 1521),),
    "nfs": ((TCP, 2049), (UDP, 2049)),
    "mysql": ((TCP, 3306),),
    "ms-wbt-server": ((TCP, 3389),),
    "postgresql": ((TCP, 5432),),
    "vnc": tuple((TCP, port) for port in range(5900, 5910)),
    "redis": ((TCP, 6379),),
    "memcache": ((TCP, 11211), (UDP, 11211)),
    "mongodb": ((TCP, 27017),),
    "http": ((TCP, 80),),
    "https": ((TCP, 443),),
}
ROAMING = frozenset({"http", "https"})
_OWNER = {where: service for service, places in WELL_KNOWN.items() for where in places}


def usual_ports(service: str) -> str:
    return ", ".join(f"{port}/{proto.value}" for proto, port in WELL_KNOWN[service])


def owner_of(proto: Proto, port: int) -> str | None:
    """The well-known service whose port this is, if any."""
    return _OWNER.get((proto, port))


def nonstandard(found: str, proto: Proto, port: int) -> str | None:
    """Why `found` identified on this port is out of place, or None when it is not."""
    here = f"{port}/{proto.value}"
    owner = owner_of(proto, port)
    if owner is not None and owner != found:
        return f"{found} on {here}, which is {owner}'s port"
    if found in WELL_KNOWN and found not in ROAMING and (proto, port) not in WELL_KNOWN[found]:
        ports = usual_ports(found)
        return f"{found} on {here}; {found}'s port is {ports}"
    return None
