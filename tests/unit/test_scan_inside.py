"""The inside view steers the outside scan (issue 12): each host's own listing adds the
ports its profile missed. Pure planning, merging and the verdict, then the engine's
wiring with nmap replaced by a fake that writes XML (no packet is sent)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest

from fleetaudit.models import (
    ExternalHost,
    ExternalPort,
    ExtraPorts,
    InternalView,
    ListenerSource,
    NotProbed,
    PortRange,
    Proto,
    Socket,
    VerdictKind,
)
from fleetaudit.parsers.nmap import parse_nmap_xml
from fleetaudit.reconcile import reconcile_host
from fleetaudit.scan import engine
from fleetaudit.scan.command import make_settings, parse_port_spec
from fleetaudit.scan.nmap_run import Outcome
from fleetaudit.scan.plan import (
    VersionBatch,
    combine_hosts,
    inside_batches,
    inside_ports,
    mark_not_probed,
    merge_version,
    plan_version_batches,
    ports_to_add,
    ports_to_identify,
    with_proto,
)

TCP, UDP = Proto.TCP, Proto.UDP
SS = ListenerSource.SS


def sock(address: str, port: int, proto: Proto = TCP) -> Socket:
    return Socket(proto=proto, address=address, port=port, source=SS)


def host(address: str, open_ports: set[int] = frozenset(), *, top: tuple[int, int] = (1, 1000),
         proto: Proto = TCP, status: str = "up") -> ExternalHost:
    return ExternalHost(
        address=address, status=status,
        ports=[ExternalPort(proto=proto, port=p, state="open") for p in sorted(open_ports)],
        extraports=[ExtraPorts(proto=proto, state="closed", count=900)],
        scanned={proto: [PortRange(first=top[0], last=top[1])]} if status == "up" else {},
    )


# --- which ports a listing adds -------------------------------------------------------------


def test_every_non_loopback_listener_counts_tcp_and_udp_ipv4_and_ipv6():
    listing = inside_ports([
        sock("0.0.0.0", 22), sock("127.0.0.1", 8081), sock("::1", 8082), sock("[::]", 47123),
        sock("10.0.0.5", 5000), sock("0.0.0.0", 47124, UDP), sock("127.0.0.53", 53, UDP),
        sock("fe80::1", 6000), sock("*", 7000)])
    assert listing == {(TCP, 22), (TCP, 47123), (TCP, 5000), (UDP, 47124), (TCP, 6000),
                       (TCP, 7000)}


def test_only_ports_the_scan_did_not_cover_are_added():
    h = host("192.0.2.1", {22})
    listing = frozenset({(TCP, 22), (TCP, 80), (TCP, 47123), (UDP, 47124)})
    assert ports_to_add(h, listing, TCP) == {47123}  # 80 was scanned (closed): observed
    assert ports_to_add(h, listing, UDP) == {47124}  # no UDP scan at all
    assert ports_to_add(host("192.0.2.2", status="down"), listing, TCP) == set()
    timed_out = h.model_copy(update={"timed_out": True, "scanned": {}})
    assert ports_to_add(timed_out, listing, TCP) == set()  # its -sV would only time out again


# --- version batches with the listed ports ---------------------------------------------------


def test_hosts_with_equal_lists_share_a_process_and_a_listed_port_is_never_lent():
    hosts = [host(f"192.0.2.{i}", {22}) for i in range(1, 5)]
    extra = {"192.0.2.1": frozenset({47123}), "192.0.2.2": frozenset({47123}),
             "192.0.2.3": frozenset({47999})}
    batches = plan_version_batches(hosts, TCP, max_hosts=256, extra=extra)
    assert sorted(batches, key=lambda b: b.ports) == [
        VersionBatch(targets=("192.0.2.4",), ports=(22,), probes=1),
        VersionBatch(targets=("192.0.2.1", "192.0.2.2"), ports=(22, 47123), probes=4),
        VersionBatch(targets=("192.0.2.3",), ports=(22, 47999), probes=2),
    ]
    # no open port in discovery, but a listed one: still identified
    [only] = plan_version_batches([host("192.0.2.9")], TCP, 256,
                                  extra={"192.0.2.9": frozenset({47123})})
    assert only == VersionBatch(targets=("192.0.2.9",), ports=(47123,), probes=1)


def test_per_host_variant_gives_each_host_with_listed_ports_its_own_process():
    hosts = [host(f"192.0.2.{i}", {22}) for i in range(1, 4)]
    extra = {"192.0.2.1": frozenset({47123}), "192.0.2.2": frozenset({47123})}
    batches = plan_version_batches(hosts, TCP, 256, extra=extra, alone=True)
    assert sorted(b.targets for b in batches) == [("192.0.2.1",), ("192.0.2.2",),
                                                  ("192.0.2.3",)]


def test_inside_batches_group_equal_lists_and_split_large_groups():
    wanted = {"192.0.2.2": frozenset({47124}), "192.0.2.1": frozenset({47124}),
              "192.0.2.3": frozenset({161, 47124}), "192.0.2.4": frozenset()}
    assert inside_batches(wanted, 256) == [
        VersionBatch(targets=("192.0.2.1", "192.0.2.2"), ports=(47124,), probes=2),
        VersionBatch(targets=("192.0.2.3",), ports=(161, 47124), probes=2)]
    assert len(inside_batches(wanted, 1)) == 3
    assert len(inside_batches(wanted, 256, alone=True)) == 3


# --- merging what the listed ports showed ------------------------------------------------------


def test_a_listed_port_takes_its_state_from_the_run_that_scanned_it():
    base = host("192.0.2.1", {22})
    run = ExternalHost(
        address="192.0.2.1", status="up",
        ports=[ExternalPort(proto=TCP, port=22, state="open", service="ssh", method="probed"),
               ExternalPort(proto=TCP, port=47123, state="open", service="ssh",
                            method="probed")],
        extraports=[ExtraPorts(proto=TCP, state="closed", count=1)],
        scanned={TCP: [PortRange(first=22, last=22), PortRange(first=47000, last=47200)]})
    merged = merge_version(base, run, TCP, {22, 47123, 47124, 50000})
    states = {p.port: (p.state, p.service) for p in merged.ports}
    assert states == {22: ("open", "ssh"), 47123: ("open", "ssh"), 47124: ("closed", None)}
    assert merged.was_scanned(TCP, 47123) and merged.was_scanned(TCP, 47124)
    assert not merged.was_scanned(TCP, 50000)
    assert merged.errors == ["50000/tcp: listed inside, not reported by the scan of it"]
    assert merged.extraports == base.extraports  # discovery's summary untouched
    failed = merge_version(base, None, TCP, {22, 47123}, "killed")
    assert not failed.was_scanned(TCP, 47123) and "47123" in failed.errors[0]


NMAP_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nmap"
TARPIT = 42050  # listening in the captures, outside discovery.xml's port list


def nmap_fixture(name: str) -> ExternalHost:
    (h,) = parse_nmap_xml((NMAP_FIXTURES / name).read_bytes()).hosts
    return with_proto(h, TCP)


def tarpit_verdict(external: ExternalHost) -> str:
    view = InternalView(sockets=[sock("0.0.0.0", TARPIT)])
    [report] = [r for r in reconcile_host(external, view, scanned_address="127.0.0.1")
                if r.port == TARPIT]
    verdict, *rest = report.verdicts
    assert verdict.kind is VerdictKind.UNKNOWN
    assert [v.message for v in rest] == [  # the listing names no owner: said apart
        "no PID visible for this socket (not privileged, or another namespace)"]
    return verdict.message


@pytest.mark.parametrize(("version", "failure", "reason"), [
    # the process failed: its own words
    (None, "tcp scan failed (tcp-inside-01-1): killed",
     "listed inside; its service detection did not finish (tcp scan failed "
     "(tcp-inside-01-1): killed)"),
    # -p 42022,42050 -sV --host-timeout 3s on the tarpit: timedout="true", no ports at all
    ("host-timeout.xml", None,
     "listed inside; its service detection did not finish (the host hit --host-timeout)"),
    # a run that did not scan the port (-p 42001,42022,42080,42443): nmap says nothing of it
    ("version-phase.xml", None, "listed inside, not reported by the scan of it"),
])
def test_a_listed_port_whose_probe_failed_says_why(version, failure, reason):
    """Real captures: discovery did not scan 42050, the host's listing added it, and its
    -sV did not cover it. The port says why, not that no scan asked for it."""
    found = nmap_fixture("discovery.xml")
    assert not found.was_scanned(TCP, TARPIT)
    asked = ports_to_identify(found, TCP) | {TARPIT}
    merged = merge_version(found, nmap_fixture(version) if version else None, TCP, asked,
                           failure)
    assert merged.not_probed == [NotProbed(proto=TCP, port=TARPIT, reason=reason)]
    assert merged.errors  # the host's scan is still incomplete, and says so
    assert tarpit_verdict(merged) == f"{TARPIT}/tcp not probed from outside: {reason}"


def test_a_listener_outside_a_scan_that_timed_out_or_was_imported_says_so():
    # discovery cut by --host-timeout: nmap drops every port, `scanned` stays empty
    cut = nmap_fixture("host-timeout.xml")
    assert cut.timed_out and not cut.was_scanned(TCP, TARPIT)
    assert tarpit_verdict(cut) == ("listening inside; the scan of this host hit "
                                   f"--host-timeout before {TARPIT}/tcp was looked at")
    imported = nmap_fixture("discovery.xml")
    view = InternalView(sockets=[sock("0.0.0.0", TARPIT)])
    [report] = [r for r in reconcile_host(imported, view, scanned_address="127.0.0.1",
                                          imported=True) if r.port == TARPIT]
    assert report.verdicts[0].message == (f"listening inside; {TARPIT}/tcp is not in the "
                                          "imported scan (--nmap-xml)")
    assert tarpit_verdict(imported) == (f"listening inside; {TARPIT}/tcp was not in the "
                                        "scan's port list")


def test_udp_listed_without_root_is_a_stated_gap_on_the_port():
    h = mark_not_probed(host("192.0.2.1", {22}), UDP, [47124], "needs root")
    assert h.not_probed == [NotProbed(proto=UDP, port=47124, reason="needs root")]
    assert mark_not_probed(h, UDP, [47124], "again") is h
    assert combine_hosts([h, host("192.0.2.1", {80})]).not_probed == h.not_probed
    view = InternalView(sockets=[sock("0.0.0.0", 47124, UDP), sock("0.0.0.0", 22)])
    [_, udp] = reconcile_host(h, view, scanned_address="192.0.2.1")
    assert udp.verdicts[0].kind is VerdictKind.UNKNOWN
    assert udp.verdicts[0].message == "47124/udp not probed from outside: needs root"


# --- the engine's wiring, nmap faked ------------------------------------------------------------

SERVICES = {  # what the fake nmap finds open, per address and protocol
    "192.0.2.1": {TCP: {22: "ssh", 47123: "http"}, UDP: {47124: "snmp"}},
    "192.0.2.2": {TCP: {22: "ssh"}, UDP: {}},
}


def _arg(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def fake_nmap(calls: list[list[str]]):
    def run_job(nmap_bin, job, timeout, processes=None):
        argv = job.argv(nmap_bin)
        calls.append(argv)
        proto = UDP if "-sU" in argv else TCP
        spec = job.ports or "1-1000"
        ranges = parse_port_spec(spec)[TCP]
        inside = {p for a, b in ranges for p in range(a, b + 1)}
        out = ['<?xml version="1.0"?><nmaprun scanner="nmap" args=' + quoteattr(" ".join(argv))
               + ' start="1" version="7.93" xmloutputversion="1.05">',
               f'<scaninfo type="{"udp" if proto is UDP else "syn"}" protocol="{proto.value}" '
               f'numservices="{len(inside)}" services="{spec}"/>']
        for target in job.targets:
            found = {p: s for p, s in SERVICES[target][proto].items() if p in inside}
            out.append(f'<host><status state="up" reason="user-set"/><address addr="{target}" '
                       'addrtype="ipv4"/><ports>')
            out.append(f'<extraports state="closed" count="{len(inside) - len(found)}"/>')
            for port, name in sorted(found.items()):
                service = (f'<service name="{name}" method="probed" conf="10"/>'
                           if "-sV" in argv else "")
                out.append(f'<port protocol="{proto.value}" portid="{port}"><state state="open" '
                           f'reason="syn-ack"/>{service}</port>')
            out.append("</ports></host>")
        out.append('<runstats><finished time="2" exit="success"/></runstats></nmaprun>')
        return Outcome(xml="".join(out).encode(), failure=None, stderr=[])
    return run_job


@pytest.fixture
def nmap_calls(monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(engine.nmap_run, "run_job", fake_nmap(calls))
    monkeypatch.setattr(engine.nmap_run, "find_nmap", lambda path=None: "/usr/bin/nmap")
    monkeypatch.setattr(engine.nmap_run, "check_nmap_version", lambda nmap_bin: (7, 93))
    monkeypatch.setattr(engine.nmap_run, "load_default_services", lambda nmap_bin: {})
    return calls


def scan(settings, listed: dict[str, frozenset | None], late: float | None = None):
    """scan_fleet over SERVICES' hosts, each listing resolved now (or after `late` s)."""
    async def go():
        loop = asyncio.get_running_loop()
        listings = {a: loop.create_future() for a in SERVICES}

        def tell():
            for address, listing in listed.items():
                listings[address].set_result(listing)
        if late is None:
            tell()
        else:
            loop.call_later(late, tell)
        return await engine.scan_fleet(list(SERVICES), settings, listings=listings)
    return asyncio.run(go())


LISTED = {"192.0.2.1": frozenset({(TCP, 22), (TCP, 47123), (UDP, 47124)}),
          "192.0.2.2": frozenset({(TCP, 22)})}


def ports_of(argv: list[str]) -> tuple[str | None, list[str]]:
    return _arg(argv, "-p"), [a for a in argv if a.startswith("192.0.2.")]


@pytest.mark.parametrize("single", [0, 4], ids=["two-phase", "single-pass"])
def test_listed_ports_are_probed_whatever_the_profile(nmap_calls, single):
    settings = make_settings("quick", privileged=True, single_pass_max_hosts=single)
    fleet = scan(settings, LISTED)
    one = fleet.hosts["192.0.2.1"]
    found = {(p.proto, p.port): p.service for p in one.ports}
    assert found == {(TCP, 22): "ssh", (TCP, 47123): "http", (UDP, 47124): "snmp"}
    assert one.errors == [] and fleet.hosts["192.0.2.2"].errors == []
    udp = [a for a in nmap_calls if "-sU" in a]
    assert [ports_of(a) for a in udp] == [("47124", ["192.0.2.1"])]  # exactly those ports
    assert "-sV" in udp[0] and "-n" in udp[0]
    # The listed port joins the host's version run; listings given, a handful of hosts
    # gets two phases too (a single pass would need a second pass for them).
    version = [ports_of(a) for a in nmap_calls if "-sV" in a and "-sU" not in a]
    assert sorted(version) == [("22", ["192.0.2.2"]), ("22,47123", ["192.0.2.1"])]
    for argv in nmap_calls:
        assert set(ports_of(argv)[1]) <= set(SERVICES)


def test_a_listing_that_comes_late_gets_its_own_pass(nmap_calls):
    settings = make_settings("quick", privileged=True, single_pass_max_hosts=0)
    from dataclasses import replace
    fleet = scan(replace(settings, listing_wait=0.0), LISTED, late=0.2)
    assert fleet.hosts["192.0.2.1"].was_scanned(TCP, 47123)
    names = [ports_of(a) for a in nmap_calls if "-sU" not in a]
    assert ("47123", ["192.0.2.1"]) in names


def test_without_root_udp_is_not_probed_and_says_so(nmap_calls):
    settings = make_settings("quick", privileged=False, single_pass_max_hosts=0)
    fleet = scan(settings, LISTED)
    assert not any("-sU" in a for a in nmap_calls)
    assert fleet.hosts["192.0.2.1"].not_probed == [
        NotProbed(proto=UDP, port=47124, reason=engine.UDP_NEEDS_ROOT)]


def test_a_host_without_listing_keeps_the_profile_and_the_report_says_so(nmap_calls):
    settings = make_settings("quick", privileged=True, single_pass_max_hosts=0)
    fleet = scan(settings, {**LISTED, "192.0.2.1": None})
    one = fleet.hosts["192.0.2.1"]
    assert not one.was_scanned(TCP, 47123) and one.errors == [engine.NO_LISTING]
    assert not any("-sU" in a for a in nmap_calls)
