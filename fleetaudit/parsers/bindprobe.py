"""The bind probe: its two interpreter scripts, and their output to BindResult models.

For each `proto:port` argument, each script tries bind() on 0.0.0.0 and on :: (with
IPV6_V6ONLY, so the two answers are independent) and closes the socket at once; it never
listens, accepts, sends or receives. A TCP socket sets SO_REUSEADDR, so TIME_WAIT
leftovers of past connections do not read as in use; Linux still refuses that bind
next to any listener on the port. Output, one line per attempt:

    # python3 3.11.2                 (or `# perl 5.036000`: which interpreter ran)
    tcp 0.0.0.0 22 in_use EADDRINUSE
    tcp :: 22 free -
    udp 0.0.0.0 53 error EACCES

or the single line `no-interpreter` when the host has neither python3 nor perl.
"""

from __future__ import annotations

import re

from fleetaudit.errors import ParseError
from fleetaudit.models import BindResult, BindState, Proto

# Python >= 2.7 and 3.x alike: a host's python3 may be old.
BIND_PYTHON = r"""
import errno, socket, sys
print("# python3 %d.%d.%d" % sys.version_info[:3])
for arg in sys.argv[1:]:
    proto, port = arg.split(":")
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            s = socket.socket(family, kind)
        except socket.error as e:
            print("%s %s %s error %s" % (proto, addr, port, errno.errorcode.get(e.errno, e.errno)))
            continue
        try:
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, int(port)))
            print("%s %s %s free -" % (proto, addr, port))
        except socket.error as e:
            state = "in_use" if e.errno == errno.EADDRINUSE else "error"
            print("%s %s %s %s %s" % (proto, addr, port, state,
                                      errno.errorcode.get(e.errno, e.errno)))
        finally:
            s.close()
""".strip()

# Perl >= 5.14 (Socket with IPv6 helpers); core modules only.
BIND_PERL = r"""
use strict; use Socket qw(:all); use Errno;
print "# perl $]\n";
sub errname { my $n = 0 + $!; for my $k (keys %!) { return $k if $!{$k} } return $n }
for my $arg (@ARGV) {
    my ($proto, $port) = split /:/, $arg;
    my $kind = $proto eq "tcp" ? SOCK_STREAM : SOCK_DGRAM;
    for my $f ([AF_INET, "0.0.0.0"], [AF_INET6, "::"]) {
        my ($family, $addr) = @$f;
        my $s;
        unless (socket($s, $family, $kind, 0)) {
            print "$proto $addr $port error ", errname(), "\n";
            next;
        }
        setsockopt($s, IPPROTO_IPV6, IPV6_V6ONLY, 1) if $family == AF_INET6;
        setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) if $kind == SOCK_STREAM;
        my $sa = $family == AF_INET ? pack_sockaddr_in($port, INADDR_ANY)
                                    : pack_sockaddr_in6($port, IN6ADDR_ANY);
        if (bind($s, $sa)) { print "$proto $addr $port free -\n" }
        else {
            my $e = errname();
            my $state = $e eq "EADDRINUSE" ? "in_use" : "error";
            print "$proto $addr $port $state $e\n";
        }
        close($s);
    }
}
""".strip()

_LINE = re.compile(r"(?P<proto>tcp|udp) (?P<addr>0\.0\.0\.0|::) (?P<port>\d{1,5}) "
                   r"(?P<state>in_use|free|error) (?P<detail>[A-Za-z0-9_-]{1,40})")
_ADDRESSES = ("0.0.0.0", "::")


def parse_bind_probe(text: str, wanted: list[tuple[Proto, int]]) -> list[BindResult]:
    """One result per wanted (proto, port) and address, in `wanted`'s order.

    An attempt with no line (the interpreter died midway) is an error result saying so,
    as is every attempt when no interpreter was found; a line nobody asked for is refused.
    """
    asked = {(proto, port, addr) for proto, port in wanted for addr in _ADDRESSES}
    seen: dict[tuple[Proto, int, str], BindResult] = {}
    missing_reason = "no line for this attempt (interpreter failed?)"
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.startswith("# "):
            continue
        if line.strip() == "no-interpreter":
            missing_reason = "neither python3 nor perl on the host"
            continue
        match = _LINE.fullmatch(line.rstrip())
        if match is None:
            raise ParseError(f"bind probe line {lineno}: not 'PROTO ADDR PORT STATE DETAIL': "
                             f"{line[:120]!r}")
        key = (Proto(match["proto"]), int(match["port"]), match["addr"])
        if key not in asked:
            raise ParseError(f"bind probe line {lineno}: an attempt nobody asked for: {line!r}")
        detail = match["detail"]
        seen[key] = BindResult(proto=key[0], port=key[1], address=key[2],
                               state=BindState(match["state"]),
                               detail=None if detail == "-" else detail)
    return [
        seen.get((proto, port, addr)) or BindResult(proto=proto, port=port, address=addr,
                                                    state=BindState.ERROR, detail=missing_reason)
        for proto, port in wanted for addr in _ADDRESSES
    ]
