"""parse_nmap_xml & co. on real nmap 7.93 output captured on loopback (tests/fixtures/nmap,
see capture_nmap.sh), on other people's reports (tests/fixtures/nmap-corpus, python-libnmap's)
and on attack files (tests/fixtures/hostile-xml); each folder's README says where they come from."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.models import ExtraPorts, PortRange, Proto, ScanRun
from fleetaudit.parsers.nmap import (
    decode_service_fingerprint,
    parse_nmap_services,
    parse_nmap_xml,
    parse_port_ranges,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nmap"
NMAP_CORPUS = FIXTURES.parent / "nmap-corpus"
HOSTILE = FIXTURES.parent / "hostile-xml"
TCP, UDP = Proto.TCP, Proto.UDP


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str, defaults: dict[tuple[Proto, int], str] | None = None) -> ScanRun:
    return parse_nmap_xml(load(name), defaults)


def port(run: ScanRun, number: int, proto: Proto = TCP):
    (host,) = run.hosts
    return next(p for p in host.ports if p.port == number and p.proto == proto)


# --- a normal -sV scan ------------------------------------------------------------------


def test_syn_scan_run_level_facts():
    run = parse("sv-syn.xml")
    assert run.command == "nmap -oX - -p 42002-42049,42051-42099 -n -Pn -sS -sV 127.0.0.1"
    assert run.nmap_version == "7.93"
    assert run.scan_type == "syn"
    assert run.started_at == datetime.fromtimestamp(1795883526, tz=UTC)
    assert run.finished_at is not None and run.finished_at.tzinfo is not None
    assert run.finished_at >= run.started_at
    assert run.complete and run.errors == []


def test_sshd_is_identified_with_product_version_and_cpes():
    ssh = port(parse("sv-syn.xml"), 42022)
    assert (ssh.state, ssh.reason) == ("open", "syn-ack")
    assert ssh.service == "ssh"
    assert ssh.product == "OpenSSH"
    assert ssh.version == "9.2p1 Debian 2+deb12u10"
    assert ssh.extrainfo == "protocol 2.0"
    assert (ssh.method, ssh.confidence) == ("probed", 10)
    assert ssh.cpes == ["cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"]
    assert ssh.fingerprint is None and ssh.tunnel is None


def test_http_server_is_identified():
    http = port(parse("sv-syn.xml"), 42080)
    assert (http.service, http.product, http.version) == ("http", "SimpleHTTPServer", "0.6")
    assert http.extrainfo == "Python 3.11.7"


def test_host_status_extraports_and_scanned_ranges():
    (host,) = parse("sv-syn.xml").hosts
    assert (host.address, host.status, host.reason) == ("127.0.0.1", "up", "user-set")
    assert [p.port for p in host.ports] == [42022, 42080]
    assert host.extraports == [ExtraPorts(proto=TCP, state="closed", count=95)]
    assert host.scanned == {
        TCP: [PortRange(first=42002, last=42049), PortRange(first=42051, last=42099)]
    }
    assert host.was_scanned(TCP, 42099) and not host.was_scanned(TCP, 42050)
    assert not host.was_scanned(UDP, 42022)
    assert host.unlisted_state(TCP) == "closed"


def test_connect_scan_type_and_reasons():
    run = parse("sv-connect.xml")
    assert run.scan_type == "connect"
    assert port(run, 42022).service == "ssh"
    assert run.hosts[0].extraports[0].state == "closed"


def test_tcp_and_udp_extraports_are_split_per_protocol():
    run = parse("tcp-udp.xml")
    assert run.scan_type == "syn,udp"
    (host,) = run.hosts
    # nmap wrote ONE <extraports state="closed" count="96"> for both protocols.
    assert sorted(host.extraports, key=lambda e: e.proto or "") == [
        ExtraPorts(proto=TCP, state="closed", count=47),
        ExtraPorts(proto=UDP, state="closed", count=49),
    ]
    assert host.scanned[UDP] == [PortRange(first=42051, last=42099)]
    assert host.was_scanned(UDP, 42060) and not host.was_scanned(TCP, 42060)
    assert host.unlisted_state(UDP) == "closed"


def test_default_service_comes_from_the_table():
    defaults = {(TCP, 42080): "http-alt-test", (UDP, 42022): "not-this-one"}
    run = parse("sv-syn.xml", defaults)
    assert port(run, 42080).default_service == "http-alt-test"
    assert port(run, 42022).default_service is None  # the table entry is for UDP


def test_everything_nmap_says_about_a_port_and_a_host_is_kept():
    (host,) = parse("sv-syn.xml").hosts
    ssh = next(p for p in host.ports if p.port == 42022)
    assert (ssh.ostype, ssh.reason_ttl, ssh.hostname, ssh.devicetype) == ("Linux", 64, None, None)
    assert ssh.fingerprint_decoded is None  # nmap recognised it: no servicefp
    assert host.started_at == datetime.fromtimestamp(1795883527, tz=UTC)
    assert host.finished_at == datetime.fromtimestamp(1795883533, tz=UTC)
    assert not host.timed_out and host.errors == []


def test_ssl_tunnel():
    https = port(parse("ssl-tunnel.xml"), 42443)
    assert (https.state, https.service, https.tunnel) == ("open", "http", "ssl")
    assert https.product == "OpenSSL s_server -www httpd"
    assert (https.method, https.confidence) == ("probed", 10)
    assert https.cpes == ["cpe:/a:openssl:openssl"]


def test_discovery_phase_report_has_states_but_no_versions():
    run = parse("discovery.xml")
    assert "-sV" not in run.command.split() and "-v" in run.command.split()
    (host,) = run.hosts
    opened = [(p.port, p.state, p.service, p.method) for p in host.ports]
    assert opened == [
        (42001, "open", "unknown", "table"),  # nmap-services guess, not a probe
        (42022, "open", None, None),
        (42080, "open", None, None),
        (42443, "open", None, None),
    ]
    assert host.extraports == [ExtraPorts(proto=TCP, state="closed", count=95)]
    assert host.unlisted_state(TCP) == "closed" and host.was_scanned(TCP, 42443)


def test_version_phase_report_names_what_discovery_found():
    run = parse("version-phase.xml")
    assert run.complete and run.command.split().count("-sV") == 1
    (host,) = run.hosts
    named = {p.port: (p.service, p.tunnel, p.method) for p in host.ports}
    assert named == {
        42001: ("unknown", None, "table"),  # unrecognised: only the servicefp says more
        42022: ("ssh", None, "probed"),
        42080: ("http", None, "probed"),
        42443: ("http", "ssl", "probed"),
    }
    banner = next(p for p in host.ports if p.port == 42001)
    assert banner.fingerprint is not None and banner.fingerprint_decoded is not None
    assert "<script>alert(1)</script>" in banner.fingerprint_decoded


# --- the hostile banner -------------------------------------------------------------------


def test_hostile_banner_stays_data_in_the_model():
    run = parse("hostile-banner.xml")
    p = port(run, 42001)
    # nmap could not name it: the name is a guess from its port table.
    assert (p.service, p.method, p.confidence) == ("unknown", "table", 3)
    assert p.fingerprint is not None
    assert p.fingerprint.startswith("SF-Port42001-TCP:V=7.93")
    assert "<script>alert\\(1\\)</script>" in p.fingerprint  # nmap's escaping, kept as is
    # ... and decoded for display, still as text: escaping is the renderer's job.
    assert p.fingerprint_decoded == decode_service_fingerprint(p.fingerprint)
    assert "<script>alert(1)</script>" in p.fingerprint_decoded
    assert ScanRun.model_validate_json(run.model_dump_json()) == run


def test_hostile_banner_decodes_to_what_the_port_said():
    fp = port(parse("hostile-banner.xml"), 42001).fingerprint
    assert fp is not None
    text = decode_service_fingerprint(fp, max_chars=10_000)
    first_line = text.splitlines()[0]
    assert first_line == "NULL, GenericLines, GetRequest, HTTPOptions:"
    assert "<script>alert(1)</script> \"dq\" 'sq' &amp; ]]>" in text
    assert "\\x00\\x01\\x07\\x1b[31mred\\x1b[0m" in text  # control bytes made visible
    assert "\\xff\\xfe" in text  # not UTF-8: kept as escapes
    assert "A" * 400 in text
    assert not any(ord(c) < 0x20 and c not in "\n\t" for c in text)


def test_fingerprint_decoding_is_bounded():
    fp = port(parse("hostile-banner.xml"), 42001).fingerprint
    assert fp is not None
    short = decode_service_fingerprint(fp, max_chars=80)
    assert len(short) <= 80 and short.endswith("[...]")


def test_fingerprint_with_nmap_line_wrapping_inside_escapes():
    # nmap < 7.9x wraps at 74 columns with "\nSF:", even between "\" and "n".
    fp = (
        "SF-Port80-TCP:V=5.21%I=7%D=5/9%Time=536BFEF0%P=x86_64-unknown-linux-gnu%r(\nSF:"
        'GetRequest,1C48,"HTTP/1\\.0\\x20200\\x20OK\\r\\\nSF:nServer:\\x20x\\r\\n\\r\\n")'
        '%r(NULL,3,"a\\0b");'
    )
    assert decode_service_fingerprint(fp) == (
        "GetRequest: (nmap kept 30 of 7240 bytes)\nHTTP/1.0 200 OK\nServer: x\n\n\n\nNULL:\na\\x00b"
    )


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=0, max_value=500))
def test_fingerprint_decoding_never_raises(fp, max_chars):
    out = decode_service_fingerprint(fp, max_chars=max_chars)
    assert isinstance(out, str) and len(out) <= max_chars


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["%r(", "NULL", ",", "1F", '"', "\\", "x4", "\nSF:", ")", "A"])))
def test_fingerprint_decoding_survives_nmap_shaped_garbage(parts):
    assert len(decode_service_fingerprint("".join(parts), max_chars=300)) <= 300


# --- cut short, timed out, down, filtered, failed ----------------------------------------


def test_truncated_report_keeps_the_finished_hosts():
    full = parse("three-hosts.xml")
    assert len(full.hosts) == 3 and full.complete

    cut = parse("three-hosts-truncated.xml")
    assert not cut.complete
    assert len(cut.hosts) == 2
    assert cut.hosts == full.hosts[:2]
    assert any("ends early" in e for e in cut.errors)
    assert cut.finished_at is None


def test_report_of_a_killed_nmap_keeps_the_flushed_host():
    run = parse("killed-midrun.xml")
    assert not run.complete
    (host,) = run.hosts
    assert [(p.port, p.state, p.service) for p in host.ports] == [
        (42080, "open", "http"),
        (42099, "closed", None),
    ]


def test_every_truncation_gives_a_prefix_of_the_hosts():
    data = load("three-hosts.xml")
    full = parse_nmap_xml(data)
    for cut in range(0, len(data), 7):
        try:
            run = parse_nmap_xml(data[:cut])
        except ParseError:
            continue  # cut before <nmaprun> was open
        assert not run.complete
        assert run.hosts == full.hosts[: len(run.hosts)]


def test_host_timeout_claims_no_scanned_ports():
    run = parse("host-timeout.xml")
    (host,) = run.hosts
    assert host.status == "up" and host.ports == []
    assert host.scanned == {}  # nmap drops every port of a timed-out host
    assert not host.was_scanned(TCP, 42022)
    assert host.timed_out
    assert host.errors == ["nmap host timeout: no port results for this host"]
    assert any("timeout" in e for e in run.errors)


def test_host_down():
    run = parse("host-down.xml")
    (host,) = run.hosts
    assert (host.status, host.reason) == ("down", "no-response")
    assert host.ports == [] and run.complete and run.scan_type == "connect"
    # <scaninfo> lists 42000-42099, but nothing of a down host was scanned.
    assert host.scanned == {} and not host.was_scanned(TCP, 42000)


def test_filtered_ports():
    (host,) = parse("filtered.xml").hosts
    assert {(p.state, p.reason) for p in host.ports} == {("filtered", "no-response")}
    assert len(host.ports) == 11


def test_error_before_the_header_gives_a_bare_run():
    run = parse("error-bad-port.xml")
    assert run.command == "" and run.nmap_version is None
    assert not run.complete and run.hosts == []
    assert run.errors == ["Ports specified must be between 0 and 65535 inclusive"]


def test_error_after_the_header():
    run = parse("error-nse.xml")
    assert "--script fleetaudit-no-such-script" in run.command  # nmap wrote -&#45;script
    assert not run.complete
    assert run.errors[0].startswith("NSE: failed to initialize the script engine")


def test_skipped_target_is_an_error():
    xml = (
        b'<?xml version="1.0"?><!DOCTYPE nmaprun><nmaprun args="nmap -n x" start="1">'
        b'<target specification="x" status="skipped" reason="invalid"/>'
        b'<runstats><finished time="2" exit="success"/></runstats></nmaprun>'
    )
    run = parse_nmap_xml(xml)
    assert not run.complete and "skipped target 'x'" in run.errors[0]


def test_report_without_runstats_is_incomplete():
    run = parse_nmap_xml('<nmaprun args="nmap"></nmaprun>')
    assert not run.complete and "runstats" in run.errors[0]


def test_str_and_bytes_give_the_same_run():
    data = load("sv-syn.xml")
    assert parse_nmap_xml(data.decode("utf-8")) == parse_nmap_xml(data)


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xml",
    [
        b"",
        b"not xml at all",
        b'{"nmaprun": {}}',
        b"<root><host/></root>",
        b"<?xml version='1.0'?><html><body>nmap</body></html>",
        b"<?xml version='1.0'?>",
    ],
)
def test_not_nmap_xml_is_a_parse_error(xml):
    with pytest.raises(ParseError):
        parse_nmap_xml(xml)


@pytest.mark.parametrize(
    "xml",
    [
        # billion laughs, small: must be refused before any expansion
        '<!DOCTYPE nmaprun [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        '<nmaprun args="&b;"/>',
        '<!DOCTYPE nmaprun [<!ENTITY x SYSTEM "file:///etc/passwd">]><nmaprun args="&x;"/>',
        '<!DOCTYPE nmaprun SYSTEM "file:///nonexistent/nmap.dtd"><nmaprun/>',
        '<!DOCTYPE nmaprun PUBLIC "-//x//EN" "http://192.0.2.1/nmap.dtd"><nmaprun/>',
        '<!DOCTYPE nmaprun [<!ENTITY % p SYSTEM "http://192.0.2.1/p.dtd"> %p;]><nmaprun/>',
    ],
)
def test_dtds_and_entities_are_refused(xml):
    with pytest.raises(ParseError, match="refused"):
        parse_nmap_xml(xml)


def test_nmaps_own_bare_doctype_is_accepted():
    run = parse_nmap_xml(
        '<?xml version="1.0"?><!DOCTYPE nmaprun><nmaprun args="nmap -n">'
        '<runstats><finished time="1" exit="success"/></runstats></nmaprun>'
    )
    assert run.command == "nmap -n" and run.complete


def test_undeclared_entity_mid_report_keeps_what_came_before():
    data = load("three-hosts.xml")
    second = data.index(b"<host ", data.index(b"<host ") + 1)
    run = parse_nmap_xml(data[:second] + b"&xxe;" + data[second:])
    assert len(run.hosts) == 1 and not run.complete


def test_bad_numbers_are_parse_errors():
    with pytest.raises(ParseError):
        parse_nmap_xml(
            '<nmaprun><host><address addr="192.0.2.1"/><ports><port protocol="tcp" '
            'portid="eighty"><state state="open"/></port></ports></host></nmaprun>'
        )
    with pytest.raises(ParseError):
        parse_nmap_xml(
            '<nmaprun><host><address addr="192.0.2.1"/><ports><port protocol="tcp" '
            'portid="70000"><state state="open"/></port></ports></host></nmaprun>'
        )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400))
def test_arbitrary_input_is_a_run_or_a_parse_error(data):
    with contextlib.suppress(ParseError):
        assert isinstance(parse_nmap_xml(data), ScanRun)


# --- small parsers ----------------------------------------------------------------------------


def test_port_ranges():
    assert parse_port_ranges("1,3-4,6-7,65535") == [
        PortRange(first=1, last=1),
        PortRange(first=3, last=4),
        PortRange(first=6, last=7),
        PortRange(first=65535, last=65535),
    ]
    assert parse_port_ranges("") == []
    for bad in ("1-", "a", "5-3", "70000", "1,-2"):
        with pytest.raises(ParseError):
            parse_port_ranges(bad)


def test_nmap_services_text():
    text = (
        "# Fields: name, port/proto, frequency\n"
        "ssh\t22/tcp\t0.182286\t# Secure Shell Login\n"
        "ssh\t22/udp\t0.003905\n"
        "unknown\t4/tcp\t0.000477\n"
        "sctp-thing\t22/sctp\t0.000001\n"
        "http\t80/tcp\t0.484143\n"
        "www\t80/tcp\t0.000001\n"
        "garbage line\n"
        "toolarge\t70000/tcp\t0.1\n"
    )
    assert parse_nmap_services(text) == {(TCP, 22): "ssh", (UDP, 22): "ssh", (TCP, 80): "http"}


@pytest.mark.skipif(
    not Path("/usr/share/nmap/nmap-services").is_file(), reason="nmap-services not installed"
)
def test_real_nmap_services_table():
    table = parse_nmap_services(Path("/usr/share/nmap/nmap-services").read_text())
    assert table[(TCP, 22)] == "ssh"
    assert table[(UDP, 53)] == "domain"
    assert len(table) > 10_000


# --- other people's reports and attack files ------------------------------------------------


def corpus(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.xml"))
    assert files, f"no XML in {folder}"  # in the repository: missing is a failure, not a skip
    return files


@pytest.mark.timeout(20)  # a hang fails here; how fast is benchmarks' business
@pytest.mark.parametrize("path", corpus(NMAP_CORPUS), ids=lambda p: p.name)
def test_corpus_report_is_a_run_or_a_parse_error(path):
    try:
        run = parse_nmap_xml(path.read_bytes())
    except ParseError:
        assert path.name.startswith("defused_"), "a real nmap report was refused"
    else:
        assert not path.name.startswith("defused_"), "XML that is not nmap's was read as a run"
        assert ScanRun.model_validate_json(run.model_dump_json()) == run


@pytest.mark.timeout(10)  # an entity expanded would take far longer (or all memory)
@pytest.mark.parametrize("path", corpus(HOSTILE), ids=lambda p: p.name)
def test_hostile_xml_is_refused(path):
    with pytest.raises(ParseError):
        parse_nmap_xml(path.read_bytes())


def test_corpus_facts():
    ping = parse_nmap_xml((NMAP_CORPUS / "1_host_ping.xml").read_bytes())
    assert ping.hosts[0].address == "172.28.1.3"  # the IPv4 address, not the MAC
    assert ping.hosts[0].scanned == {} and ping.scan_type is None
    old = parse_nmap_xml((NMAP_CORPUS / "full_sudo5.xml").read_bytes())
    assert old.nmap_version == "5.21" and old.complete and len(old.hosts) == 256
    fps = [p.fingerprint for h in old.hosts for p in h.ports if p.fingerprint]
    assert fps and all(decode_service_fingerprint(f) for f in fps)
