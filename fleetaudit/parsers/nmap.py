"""nmap's XML report, its nmap-services table and its service fingerprints, as models.

The XML may come from a host we audit talking back through nmap, so it is treated as
hostile: parsed with defusedxml (no entity declarations, no external references, no DTD
except nmap's own bare ``<!DOCTYPE nmaprun>``), and banners are kept as data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any
from xml.etree.ElementTree import Element, TreeBuilder
from xml.etree.ElementTree import ParseError as XMLSyntaxError

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser
from pydantic import ValidationError

from fleetaudit.errors import ParseError
from fleetaudit.models import ExternalHost, ExternalPort, ExtraPorts, PortRange, Proto, ScanRun
from fleetaudit.parsers.common import utc_from_unix

__all__ = [
    "decode_service_fingerprint",
    "parse_nmap_services",
    "parse_nmap_xml",
    "parse_port_ranges",
]

ServiceTable = Mapping[tuple[Proto, int], str]


# --- hardened, incremental XML parsing -------------------------------------------------


class _NmapXMLParser(DefusedXMLParser):  # type: ignore[misc]  # defusedxml ships no types
    """defusedxml with DTDs forbidden, except the bare ``<!DOCTYPE nmaprun>`` nmap writes.

    A DOCTYPE with a system/public id or an internal subset is how XXE and entity
    bombs start, and nmap never writes one.
    """

    def __init__(self, target: _Collector) -> None:
        super().__init__(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)

    def defused_start_doctype_decl(
        self, name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool
    ) -> None:
        if sysid is None and pubid is None and not has_internal_subset:
            return
        super().defused_start_doctype_decl(name, sysid, pubid, has_internal_subset)


class _NotNmap(Exception):
    """Raised from inside the parser to stop at the first element that is not <nmaprun>."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


class _Collector:
    """Parser target that builds the tree and remembers which children of the root closed.

    Only closed children are trusted, so a report cut short (nmap killed mid-run) still
    gives every host nmap finished writing, and never a half-written one.
    """

    def __init__(self) -> None:
        self._builder = TreeBuilder()
        self._depth = 0
        self.root: Element | None = None
        self.closed: list[Element] = []

    def start(self, tag: str, attrib: dict[str, str]) -> Element:
        self._depth += 1
        if self._depth == 1 and tag != "nmaprun":
            raise _NotNmap(tag)
        elem = self._builder.start(tag, attrib)
        if self._depth == 1:
            self.root = elem
        return elem

    def end(self, tag: str) -> Element:
        elem = self._builder.end(tag)
        self._depth -= 1
        if self._depth == 1:
            self.closed.append(elem)
        return elem

    def data(self, data: str) -> None:
        self._builder.data(data)

    def close(self) -> Element:
        return self._builder.close()


def _read_tree(xml: bytes | str) -> tuple[Element, list[Element], str | None]:
    """Return the <nmaprun> element, its closed children, and why parsing stopped early."""
    collector = _Collector()
    parser = _NmapXMLParser(collector)
    problem: str | None = None
    try:
        parser.feed(xml)
        parser.close()
    except _NotNmap as exc:
        raise ParseError(f"not an nmap XML report: root element is <{exc.tag}>") from None
    except DTDForbidden as exc:
        raise ParseError(
            f"refused nmap XML: <!DOCTYPE {exc.name}> declares an internal subset or an "
            "external DTD (entity expansion and external references are not allowed)"
        ) from None
    except DefusedXmlException as exc:
        raise ParseError(f"refused nmap XML: {type(exc).__name__} ({exc})") from None
    except XMLSyntaxError as exc:
        problem = str(exc)
    if collector.root is None:
        detail = f": {problem}" if problem else ""
        raise ParseError(f"not an nmap XML report (no <nmaprun> element){detail}")
    return collector.root, collector.closed, problem


# --- small converters --------------------------------------------------------------------


def _int(value: str | None, what: str) -> int:
    if value is None:
        raise ParseError(f"nmap XML: {what} is missing")
    try:
        return int(value.strip())
    except ValueError:
        raise ParseError(f"nmap XML: {what} is not an integer: {value[:40]!r}") from None


def _opt_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _timestamp(value: str | None) -> datetime | None:
    """A unix time from nmap as an aware UTC datetime; absent or absurd gives None."""
    return utc_from_unix(_opt_int(value))


def _proto(value: str | None) -> Proto | None:
    """tcp/udp as Proto; anything else nmap scans (sctp, ip) is outside the model."""
    try:
        return Proto(value) if value is not None else None
    except ValueError:
        return None


def parse_port_ranges(spec: str) -> list[PortRange]:
    """nmap's ``services="1,3-4,6-7"`` list as PortRanges, in the order nmap wrote them."""
    ranges: list[PortRange] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        lo = _int(first, f"port range {part!r}")
        hi = _int(last, f"port range {part!r}") if sep else lo
        if not 0 <= lo <= hi <= 65535:
            raise ParseError(f"nmap XML: bad port range {part!r}")
        ranges.append(PortRange(first=lo, last=hi))
    return ranges


# --- hosts -------------------------------------------------------------------------------


def _address(host: Element) -> str | None:
    """The host's IP address; a MAC only when nmap gave nothing else."""
    by_type: dict[str, str] = {}
    for addr in host.findall("address"):
        kind, value = addr.get("addrtype", "ipv4"), addr.get("addr")
        if value and kind not in by_type:
            by_type[kind] = value
    for kind in ("ipv4", "ipv6", "mac"):
        if kind in by_type:
            return by_type[kind]
    return next(iter(by_type.values()), None)


def _port(elem: Element, defaults: ServiceTable, where: str) -> ExternalPort | None:
    proto = _proto(elem.get("protocol"))
    if proto is None:
        return None
    number = _int(elem.get("portid"), f"{where}: portid")
    state = elem.find("state")
    if state is None or not state.get("state"):
        raise ParseError(f"nmap XML: {where}: port {number}/{proto} has no <state>")
    service = elem.find("service")
    svc: dict[str, str] = dict(service.attrib) if service is not None else {}
    cpes = [c.text.strip() for c in service.findall("cpe") if c.text] if service is not None else []
    fingerprint = svc.get("servicefp")
    fields = (proto, number, state.get("state", ""), state.get("reason"),
              _opt_int(state.get("reason_ttl")), svc.get("name"), svc.get("product"),
              svc.get("version"), svc.get("extrainfo"), svc.get("ostype"),
              svc.get("hostname"), svc.get("devicetype"), svc.get("tunnel"),
              svc.get("method"), _opt_int(svc.get("conf")), tuple(cpes),
              defaults.get((proto, number)))
    if fingerprint:  # what one service answered one scan: never the same twice
        return _external_port(*fields, fingerprint=fingerprint)
    return _shared_port(*fields)


@lru_cache(maxsize=4096)
def _shared_port(*fields: Any) -> ExternalPort:
    """One ExternalPort per distinct report of a port, shared by the hosts that got the
    same (it is frozen): a fleet runs the same services, and 5,000 hosts' copies were 6%
    of a simulated run's memory. Bounded; ports with a fingerprint are never shared."""
    return _external_port(*fields)


def _external_port(proto: Proto, port: int, state: str, reason: str | None,
                   reason_ttl: int | None, service: str | None, product: str | None,
                   version: str | None, extrainfo: str | None, ostype: str | None,
                   hostname: str | None, devicetype: str | None, tunnel: str | None,
                   method: str | None, confidence: int | None, cpes: tuple[str, ...],
                   default_service: str | None, fingerprint: str | None = None,
                   ) -> ExternalPort:
    return ExternalPort(
        proto=proto, port=port, state=state, reason=reason, reason_ttl=reason_ttl,
        service=service, product=product, version=version, extrainfo=extrainfo,
        ostype=ostype, hostname=hostname, devicetype=devicetype, tunnel=tunnel,
        method=method, confidence=confidence, cpes=list(cpes), fingerprint=fingerprint,
        fingerprint_decoded=decode_service_fingerprint(fingerprint) if fingerprint else None,
        default_service=default_service,
    )


def _extraports(elem: Element, where: str) -> list[ExtraPorts]:
    """One <extraports> per state, split per protocol when its <extrareasons> say so.

    nmap merges closed TCP and closed UDP into one element; only the extrareasons'
    ``proto`` attribute (nmap >= 7.90) tells the two counts apart.
    """
    state = elem.get("state", "unknown")
    total = _int(elem.get("count"), f"{where}: extraports count")
    per_proto: dict[Proto, int] = {}
    attributed = 0
    for reason in elem.findall("extrareasons"):
        proto = _proto(reason.get("proto"))
        count = _opt_int(reason.get("count"))
        if proto is None or count is None:
            continue
        per_proto[proto] = per_proto.get(proto, 0) + count
        attributed += count
    if not per_proto or attributed > total:
        return [ExtraPorts(state=state, count=total)]
    out = [ExtraPorts(proto=p, state=state, count=n) for p, n in per_proto.items()]
    if attributed < total:
        out.append(ExtraPorts(state=state, count=total - attributed))
    return out


def _host(
    elem: Element,
    scanned: dict[Proto, list[PortRange]],
    defaults: ServiceTable,
    errors: list[str],
) -> ExternalHost | None:
    address = _address(elem)
    if address is None:
        errors.append("nmap listed a host without an address; it was skipped")
        return None
    status = elem.find("status")
    ports: list[ExternalPort] = []
    extra: list[ExtraPorts] = []
    for ports_elem in elem.findall("ports"):
        for child in ports_elem:
            if child.tag == "port":
                port = _port(child, defaults, address)
                if port is not None:
                    ports.append(port)
            elif child.tag == "extraports":
                extra.extend(_extraports(child, address))
    state = status.get("state", "unknown") if status is not None else "unknown"
    # A host that is not up had none of its ports scanned, whatever <scaninfo> lists.
    host_scanned = scanned if state == "up" else {}
    host_errors: list[str] = []
    timed_out = elem.get("timedout") == "true"
    if timed_out:
        # nmap prints no port at all for a host that hit --host-timeout, even the ones it
        # had found: claiming its ranges were scanned would turn every port into "closed".
        host_errors.append("nmap host timeout: no port results for this host")
        errors.append(f"{address}: nmap host timeout, no port results for this host")
        host_scanned = {}
    return ExternalHost(
        address=address,
        status=state,
        reason=status.get("reason") if status is not None else None,
        ports=ports,
        extraports=extra,
        scanned=host_scanned,
        started_at=_timestamp(elem.get("starttime")),
        finished_at=_timestamp(elem.get("endtime")),
        timed_out=timed_out,
        errors=host_errors,
    )


# --- the report ------------------------------------------------------------------------


def parse_nmap_xml(xml: bytes | str, default_services: ServiceTable | None = None) -> ScanRun:
    """Parse an nmap ``-oX`` report, keeping what a cut-short report already settled.

    Raises ParseError for anything that is not nmap XML, or that declares entities or a
    DTD. A report that stops early, or that nmap ended with an error, comes back with
    ``complete=False`` and the reason in ``errors``.
    """
    defaults: ServiceTable = default_services or {}
    root, closed, problem = _read_tree(xml)
    errors: list[str] = []
    complete = True
    if problem is not None:
        complete = False
        errors.append(f"nmap XML ends early or is malformed ({problem}); kept the finished hosts")

    scanned: dict[Proto, list[PortRange]] = {}
    scan_types: list[str] = []
    hosts: list[ExternalHost] = []
    finished: Element | None = None
    try:
        for child in closed:
            if child.tag == "scaninfo":
                kind = child.get("type")
                if kind and kind not in scan_types:
                    scan_types.append(kind)
                proto = _proto(child.get("protocol"))
                if proto is not None:
                    ranges = parse_port_ranges(child.get("services", ""))
                    scanned[proto] = scanned.get(proto, []) + ranges
            elif child.tag == "host":
                host = _host(child, scanned, defaults, errors)
                if host is not None:
                    hosts.append(host)
            elif child.tag == "target" and child.get("status") == "skipped":
                complete = False
                errors.append(
                    f"nmap skipped target {child.get('specification', '?')!r}: "
                    f"{child.get('reason', 'no reason given')}"
                )
            elif child.tag == "runstats":
                finished = child.find("finished")

        if finished is None:
            if problem is None:
                complete = False
                errors.append("nmap XML has no <runstats><finished>: the run did not finish")
        elif finished.get("exit") == "error":
            complete = False
            errors.append(finished.get("errormsg") or "nmap exited with an error")

        return ScanRun(
            command=root.get("args", ""),
            nmap_version=root.get("version"),
            started_at=_timestamp(root.get("start")),
            finished_at=_timestamp(finished.get("time")) if finished is not None else None,
            scan_type=",".join(scan_types) or None,
            hosts=hosts,
            errors=errors,
            complete=complete,
        )
    except ValidationError as exc:
        raise ParseError(f"nmap XML has values outside the model: {exc}") from None


# --- nmap-services -----------------------------------------------------------------------


def parse_nmap_services(text: str) -> dict[tuple[Proto, int], str]:
    """nmap's port -> service table, the name nmap would guess for a port it did not probe.

    nmap's placeholder name ``unknown`` is dropped, so a missing key means no default.
    When a port appears twice, the most frequently open service wins, as in nmap.
    """
    table: dict[tuple[Proto, int], str] = {}
    freq: dict[tuple[Proto, int], float] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        name, portproto = fields[0], fields[1]
        number, _, proto_name = portproto.partition("/")
        proto = _proto(proto_name)
        if proto is None or not number.isdigit() or name == "unknown":
            continue
        port = int(number)
        if port > 65535:
            continue
        try:
            f = float(fields[2]) if len(fields) > 2 else 0.0
        except ValueError:
            f = 0.0
        key = (proto, port)
        if key not in table or f > freq[key]:
            table[key] = name
            freq[key] = f
    return table


# --- service fingerprints ----------------------------------------------------------------

_SIMPLE_ESCAPES = {"0": 0, "n": 10, "r": 13, "t": 9}
_RESPONSE = re.compile(r"%r\(([^,()]*),([0-9A-Fa-f]+),\"")


def _unescape(fp: str, i: int) -> tuple[bytes, int]:
    """Decode one nmap-escaped response starting at fp[i]; return it and the index after '"'."""
    out = bytearray()
    n = len(fp)
    while i < n:
        c = fp[i]
        if c == '"':
            return bytes(out), i + 1
        if c != "\\" or i + 1 >= n:
            out += c.encode("utf-8", "backslashreplace")
            i += 1
            continue
        e = fp[i + 1]
        if e == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", fp[i + 2 : i + 4]):
            out.append(int(fp[i + 2 : i + 4], 16))
            i += 4
        elif e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        else:  # \\ \" \. \( ... : regex metacharacters nmap escaped
            out += e.encode("utf-8", "backslashreplace")
            i += 2
    return bytes(out), n  # unterminated: keep what there is


def _readable(data: bytes) -> str:
    """Bytes as text a person can read: UTF-8 where valid, control bytes made visible."""
    text = data.decode("utf-8", "backslashreplace").replace("\r\n", "\n")
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\t" or (code >= 0x20 and code != 0x7F and not 0x80 <= code < 0xA0):
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}")
    return "".join(out)


def decode_service_fingerprint(fp: str, max_chars: int = 2000) -> str:
    """What an unrecognised port said, decoded from nmap's ``servicefp``.

    For an unknown service these responses are the only evidence of what listens.
    Probes that got the same answer are grouped. nmap keeps at most 900 bytes of each
    response (the hex length is the real one), which is said when it happened.
    Control characters come back as visible ``\\xNN``; HTML is left as is, for the
    caller to escape. Never raises on malformed input; the result is at most
    ``max_chars`` long.
    """
    # nmap wraps at 74 columns with "\nSF:" (anywhere, even inside an escape); real
    # newlines of the response are always escaped, so every raw newline is a wrap.
    flat = fp[: max(65536, 16 * max_chars)]
    flat = flat.replace("\r\nSF:", "").replace("\nSF:", "").replace("\n", "")
    grouped: dict[bytes, list[str]] = {}
    lengths: dict[bytes, int] = {}
    pos = 0
    while (m := _RESPONSE.search(flat, pos)) is not None:
        data, pos = _unescape(flat, m.end())
        grouped.setdefault(data, []).append(m.group(1) or "?")
        lengths[data] = int(m.group(2), 16)
    parts: list[str] = []
    for data, probes in grouped.items():
        header = ", ".join(probes) + ":"
        if lengths[data] > len(data):
            header += f" (nmap kept {len(data)} of {lengths[data]} bytes)"
        parts.append(f"{header}\n{_readable(data)}")
    text = "\n\n".join(parts)
    if len(text) > max_chars:
        marker = " [...]"
        text = text[: max(0, max_chars - len(marker))] + marker
    return text[: max(0, max_chars)]
