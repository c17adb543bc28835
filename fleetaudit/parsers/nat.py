"""NAT rules that send a port elsewhere: iptables-save / ip6tables-save -t nat and nft.

Input is `fleetaudit.probes.nat_probe`'s output: each tool's output after a
`@@fa-nat TOOL` line. Only DNAT and REDIRECT matter (a port open from outside may be
answered by another host, or by another port here); SNAT/MASQUERADE are ignored.

iptables-save: `-A CHAIN [-d ADDR] -p tcp [-m tcp] --dport N[:M] | -m multiport --dports
a,b:c -j DNAT --to-destination ADDR[:P[-Q]] | -j REDIRECT [--to-ports P[-Q]]`, tokenised
shell-style (comments are quoted). A rule with no -p covers tcp and udp, one with no
dport every port. nft: `[ip daddr A] tcp dport N|N-M|{ a, b-c } ... dnat [ip|ip6] to
ADDR[:P] | redirect [to :P]` in the chains of tables that hold a `type nat` chain. A rule
these shapes do not cover (negations, maps, nft's untranslatable "XT target ... not
found") is kept in `unparsed`, never guessed at.

iptables-nft keeps its rules in nf_tables, so `nft list ruleset` repeats them (under
"# Warning: table ip nat is managed by iptables-nft"): those tables are skipped when
iptables-save itself was read.

Without root both tools refuse; their messages land in `refused`.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

from fleetaudit.errors import ParseError
from fleetaudit.models import NatForward, Proto

_MARKER = "@@fa-nat "
_TOOLS = ("iptables-save", "ip6tables-save", "nft")
_REFUSALS = ("Permission denied", "you must be root", "Operation not permitted")
_PORT_RANGE = re.compile(r"(\d{1,5})(?:[-:](\d{1,5}))?")
_ALL_PORTS = (1, 65535)


@dataclass(frozen=True)
class NatReading:
    """What the NAT probe saw: forwards, which tools answered, which refused, what was not read."""

    forwards: list[NatForward] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)


def parse_nat(text: str) -> NatReading:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.startswith(_MARKER):
            tool = line[len(_MARKER):].strip()
            if tool not in _TOOLS or tool in sections:
                raise ParseError(f"nat output line {lineno}: unknown or repeated tool {tool!r}")
            current = sections[tool] = []
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise ParseError(f"nat output line {lineno}: output before any '@@fa-nat' marker")
    reading = NatReading()
    read_iptables = False
    for tool in ("iptables-save", "ip6tables-save"):
        if tool in sections and _iptables(tool, sections[tool], reading):
            read_iptables = True
    if "nft" in sections:
        _nft(sections["nft"], reading, skip_iptables_nft=read_iptables)
    # iptables and an iptables-nft-free nft listing may still say the same thing twice.
    unique = {f.model_dump_json(exclude={"tool", "rule", "chain"}): f for f in reading.forwards}
    return NatReading(forwards=list(unique.values()), tools=reading.tools,
                      refused=reading.refused, unparsed=reading.unparsed)


# --- iptables-save -------------------------------------------------------------------


def _iptables(tool: str, lines: list[str], reading: NatReading) -> bool:
    """Read one iptables-save section; False when the tool was refused or printed nothing."""
    family = "ipv6" if tool.startswith("ip6") else "ipv4"
    table: str | None = None
    saw_table = False
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("*"):
            table, saw_table = stripped[1:], True
        elif stripped.startswith(":") or stripped == "COMMIT":
            continue
        elif stripped.startswith("-A "):
            if table == "nat":
                _iptables_rule(tool, family, stripped, reading)
        elif any(r in stripped for r in _REFUSALS):
            reading.refused.append(f"{tool}: {stripped[:200]}")
            return False
        else:
            reading.unparsed.append(f"{tool}: {stripped[:200]}")
    if saw_table:
        reading.tools.append(tool)
    return saw_table


def _iptables_rule(tool: str, family: str, line: str, reading: NatReading) -> None:
    try:
        words = shlex.split(line)
    except ValueError:
        reading.unparsed.append(f"{tool}: {line[:200]}")
        return
    if "-j" not in words:
        return
    target = words[words.index("-j") + 1] if words.index("-j") + 1 < len(words) else ""
    if target not in ("DNAT", "REDIRECT"):
        return
    if "!" in words:
        reading.unparsed.append(f"{tool}: negated match: {line[:200]}")
        return
    chain = words[1]
    opts = _options(words)
    protos = [Proto(opts["-p"])] if opts.get("-p") in ("tcp", "udp") else (
        [Proto.TCP, Proto.UDP] if "-p" not in opts else [])
    ports_text = opts.get("--dport") or opts.get("--destination-port")
    multi = opts.get("--dports") or opts.get("--destination-ports")
    try:
        if multi:
            ranges = [_port_range(part) for part in multi.split(",")]
        elif ports_text:
            ranges = [_port_range(ports_text)]
        else:
            ranges = [_ALL_PORTS]
        if target == "DNAT":
            to_address, to_ports = _dnat_target(opts.get("--to-destination", ""))
        else:
            to_address, to_ports = None, (
                _port_range(opts["--to-ports"]) if "--to-ports" in opts else None)
    except ValueError as exc:
        reading.unparsed.append(f"{tool}: {exc}: {line[:200]}")
        return
    daddr = _strip_host_prefix(opts.get("-d"))
    for proto in protos:
        for first, last in ranges:
            reading.forwards.append(_forward(proto, first, last, target.lower(), to_address,
                                             to_ports, daddr, family, chain, tool, line))


def _options(words: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    for i, word in enumerate(words[:-1]):
        if word.startswith("-") and not words[i + 1].startswith("-"):
            opts.setdefault(word, words[i + 1])
    return opts


def _dnat_target(text: str) -> tuple[str, tuple[int, int] | None]:
    """`10.0.0.5`, `10.0.0.5:22`, `10.0.0.8:9000-9002`, `[fd00::5]:22`, `fd00::5`."""
    if not text:
        raise ValueError("DNAT without --to-destination")
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        address, _, port = text.partition(":")
    else:
        address, port = text, ""
    for part in address.split("-"):
        ipaddress.ip_address(part)
    return address, _port_range(port) if port else None


# --- nft ---------------------------------------------------------------------------------


_NFT_TABLE = re.compile(r"table (?P<family>ip|ip6|inet|arp|bridge|netdev) (?P<name>\S+) \{")
_NFT_CHAIN = re.compile(r"chain (?P<name>\S+) \{")
_NFT_PROTO_PORT = re.compile(
    r"(?:meta l4proto (?P<l4>tcp|udp|\{ (?:tcp|udp)(?:, (?:tcp|udp))* \}) )?"
    r"(?:.*? )?(?P<proto>tcp|udp|th) dport (?P<ports>\{ [^}]* \}|\S+)")
_NFT_DNAT = re.compile(r"\bdnat (?:(?:ip|ip6) )?to (?P<to>\S+)")
_NFT_REDIRECT = re.compile(r"\bredirect(?: to :?(?P<ports>\S+))?")
_NFT_DADDR = re.compile(r"\b(?:ip|ip6) daddr (?P<addr>[0-9A-Fa-f.:/]+)\b")
_NFT_FAMILY = {"ip": "ipv4", "ip6": "ipv6", "inet": "inet"}


def _nft(lines: list[str], reading: NatReading, *, skip_iptables_nft: bool) -> None:
    tables: list[tuple[str, str, bool, list[tuple[str, str]]]] = []
    warned = False
    table: tuple[str, str, bool, list[tuple[str, str]]] | None = None
    chain = ""
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("# Warning: table ") and "iptables-nft" in stripped:
            warned = True
            continue
        if any(r in stripped for r in _REFUSALS) or stripped.startswith("netlink: Error"):
            reading.refused.append(f"nft: {stripped[:200]}")
            return
        match = _NFT_TABLE.fullmatch(stripped)
        if match is not None:
            table = (match["family"], match["name"], warned, [])
            tables.append(table)
            warned = False
            continue
        match = _NFT_CHAIN.fullmatch(stripped)
        if match is not None:
            chain = match["name"]
            continue
        if table is not None and stripped != "}":
            table[3].append((chain, stripped))
    reading.tools.append("nft")
    for family, _name, iptables_nft, rules in tables:
        if iptables_nft and skip_iptables_nft:
            continue
        if family not in _NFT_FAMILY or not any(r.startswith("type nat ") for _, r in rules):
            continue
        for chain_name, rule in rules:
            _nft_rule(_NFT_FAMILY[family], chain_name, rule, reading)


def _nft_rule(family: str, chain: str, rule: str, reading: NatReading) -> None:
    if rule.startswith(("type ", "policy ")):
        return
    if "XT target" in rule and ("DNAT" in rule or "REDIRECT" in rule):
        reading.unparsed.append(f"nft: {rule[:200]}")
        return
    dnat, redirect = _NFT_DNAT.search(rule), _NFT_REDIRECT.search(rule)
    if dnat is None and redirect is None:
        if re.search(r"\b(?:dnat|redirect)\b", rule):
            reading.unparsed.append(f"nft: {rule[:200]}")
        return
    if " != " in rule or " map " in rule:
        reading.unparsed.append(f"nft: {rule[:200]}")
        return
    match = _NFT_PROTO_PORT.search(rule)
    try:
        if match is None:
            protos, ranges = [Proto.TCP, Proto.UDP], [_ALL_PORTS]
        else:
            protos = _nft_protos(match["proto"], match["l4"])
            ranges = _nft_ports(match["ports"])
        if dnat is not None:
            to_address, to_ports = _dnat_target(dnat["to"])
            kind = "dnat"
        else:
            assert redirect is not None
            to_address, kind = None, "redirect"
            to_ports = _port_range(redirect["ports"]) if redirect["ports"] else None
    except ValueError as exc:
        reading.unparsed.append(f"nft: {exc}: {rule[:200]}")
        return
    daddr_match = _NFT_DADDR.search(rule)
    daddr = _strip_host_prefix(daddr_match["addr"]) if daddr_match else None
    for proto in protos:
        for first, last in ranges:
            reading.forwards.append(_forward(proto, first, last, kind, to_address, to_ports,
                                             daddr, family, chain, "nft", rule))


def _nft_protos(proto: str, l4: str | None) -> list[Proto]:
    if proto != "th":
        return [Proto(proto)]
    if l4 is None:
        return [Proto.TCP, Proto.UDP]
    return [Proto(p) for p in re.findall(r"tcp|udp", l4)]


def _nft_ports(text: str) -> list[tuple[int, int]]:
    if text.startswith("{"):
        return [_port_range(part.strip()) for part in text.strip("{} ").split(",")]
    return [_port_range(text)]


# --- shared --------------------------------------------------------------------------------


def _port_range(text: str) -> tuple[int, int]:
    match = _PORT_RANGE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a port or port range: {text[:40]!r}")
    first = int(match[1])
    last = int(match[2]) if match[2] else first
    if not 0 < first <= last <= 65535:
        raise ValueError(f"bad port range {text!r}")
    return first, last


def _strip_host_prefix(addr: str | None) -> str | None:
    if addr is None:
        return None
    host, _, prefix = addr.partition("/")
    return host if prefix in ("", "32", "128") else addr


def _forward(proto: Proto, first: int, last: int, kind: str, to_address: str | None,
             to_ports: tuple[int, int] | None, daddr: str | None, family: str, chain: str,
             tool: str, rule: str) -> NatForward:
    return NatForward(
        proto=proto, port=first, port_last=last if last != first else None, kind=kind,
        to_address=to_address,
        to_port=to_ports[0] if to_ports else None,
        to_port_last=to_ports[1] if to_ports and to_ports[1] != to_ports[0] else None,
        daddr=daddr, family=family, chain=chain, tool=tool, rule=rule,
    )
