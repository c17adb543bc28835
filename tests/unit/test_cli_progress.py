"""An audit's progress (issue 14): run_audit tells its observer of each host as it goes, and
the command line's views draw those events: rich's bars on a terminal, one plain line per
event elsewhere, nothing under --quiet, more under -v. Host text stays text throughout.

The views are driven here by the events run_audit and scan_fleet send (the real ones, from
a local audit through a pipe, are in tests/integration/test_cli_progress.py).
"""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

from rich.console import Console

from fleetaudit import cli_progress, terminal
from fleetaudit.cli_progress import Level, LiveView, PlainView, QuietView, view_for
from fleetaudit.models import (
    HostError,
    HostResult,
    HostStatus,
    Inventory,
    InventoryHost,
    PortReport,
    Proto,
    Stage,
)
from fleetaudit.orchestrator import AuditOptions, run_audit
from fleetaudit.progress import AuditObserver, NmapStep, ScanPhase
from fleetaudit.testing.fakehost import FakeFleet, FakeHost
from fleetaudit.transport import HostKeyPolicy, SSHOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURE = FIXTURES / "session" / "local_root.json"
NMAP = FIXTURES / "nmap" / "sv-connect.xml"
HOSTILE = "[/oops] \x1b[31mred\x1b]0;owned\x07"
ADDRESSES = ("10.99.0.2", "10.99.0.3", "10.99.0.4", "10.99.0.5")
DISCOVERY = NmapStep(name="tcp-discovery-01", phase=ScanPhase.DISCOVERY, proto="tcp",
                     targets=ADDRESSES, command="nmap -oX - 10.99.0.2 ...")
VERSION = NmapStep(name="tcp-version-01-1", phase=ScanPhase.VERSION, proto="tcp",
                   targets=ADDRESSES[:3], ports=7, command="nmap -oX - 10.99.0.2 ... -sV")


class Recorder(AuditObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def audit_started(self, hosts: int, scanned: int, contacted: int) -> None:
        self.events.append(("audit_started", str(hosts), str(scanned), str(contacted)))

    def host_started(self, name: str, address: str) -> None:
        self.events.append(("host_started", name))

    def host_collected(self, name: str, failure: str | None) -> None:
        self.events.append(("host_collected", name, failure or ""))

    def host_done(self, result: HostResult) -> None:
        self.events.append(("host_done", result.name, result.status.value))

    def nmap_started(self, step: NmapStep) -> None:
        self.events.append(("nmap_started", step.name))


def test_run_audit_tells_its_observer_of_each_host_as_it_goes():
    fleet = FakeFleet({"web1": FakeHost.load(CAPTURE)})  # web2 refuses the connection
    inventory = Inventory(source="test", hosts=[
        InventoryHost(name="web1", address="127.0.0.1"),
        InventoryHost(name="web2", address="127.0.0.2"),
        InventoryHost(name="web3", address="127.0.0.3", unresolved=["ansible_host"],
                      notes=["ansible_host is a template"])])
    options = AuditOptions(nmap_xml=(NMAP,), command_timeout=2.0,
                           ssh=SSHOptions(host_key_policy=HostKeyPolicy.OFF))
    seen = Recorder()
    asyncio.run(run_audit(inventory, options, connect=fleet.connect, progress=seen))
    events = seen.events
    assert events[0] == ("audit_started", "3", "0", "2")  # --nmap-xml: nothing to scan
    assert ("host_done", "web3", "unreachable") in events  # never contacted: done at once
    for name in ("web1", "web2"):
        mine = [e for e in events if e[1] == name]
        assert [e[0] for e in mine] == ["host_started", "host_collected", "host_done"], mine
    [failed] = [e for e in events if e[:2] == ("host_collected", "web2")]
    assert "connection refused" in failed[2]
    assert ("host_collected", "web1", "") in events
    assert not [e for e in events if e[0] == "nmap_started"]


def hosts() -> list[HostResult]:
    ok = HostResult(name="web1", address="10.99.0.2", status=HostStatus.OK,
                    ports=[PortReport(proto=Proto.TCP, port=22)])
    bad = HostResult(name=f"web2{HOSTILE}", address=f"10.99.0.3{HOSTILE}",
                     status=HostStatus.COLLECTION_FAILED,
                     errors=[HostError(stage=Stage.COLLECT, message=f"ss said: {HOSTILE}"),
                             HostError(stage=Stage.SCAN, message=f"nmap said: {HOSTILE}")])
    return [ok, bad, ok.model_copy(update={"name": "web3"}),
            ok.model_copy(update={"name": "web4"})]


def drive(view: cli_progress.View) -> None:
    """A 4-host audit's events, in run_audit's order."""
    with view:
        view.audit_started(hosts=4, scanned=4, contacted=4)
        view.scan_planned([DISCOVERY])
        view.nmap_started(DISCOVERY)
        for result in hosts():
            view.host_started(result.name, result.address)
        view.nmap_done(DISCOVERY, open_found=7, failure=None)
        view.nmap_started(VERSION)
        results = hosts()
        view.host_collected(results[1].name, f"ss said: {HOSTILE}")
        view.host_done(results[1])
        for result in (results[0], results[2], results[3]):
            view.host_collected(result.name, None)
        view.nmap_done(VERSION, open_found=7, failure=None)
        view.scan_done(None)
        for result in (results[0], results[2], results[3]):
            view.host_done(result)


def assert_inert(output: str) -> None:
    for raw in ("\x1b]0;", "\x07", "\x1b[31mred"):
        assert raw not in output, repr(output)
    assert "MarkupError" not in output
    assert terminal.clean(f"ss said: {HOSTILE}") in output, output


def test_the_bars_on_a_terminal_show_scan_phases_collection_time_and_host_lines():
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=160,
                      markup=False, emoji=False, highlight=False)
    view = view_for(Level.NORMAL, console)
    assert isinstance(view, LiveView)
    drive(view)
    shown = console.export_text()
    assert_inert(shown)
    # Each bar as last drawn (a redraw follows the previous one's text, cursor moves gone).
    drawn = r" +━+ (\d[^━]*?\d+:\d\d elapsed(?:, (?:~[\d:]+|\?) left)?)"
    last = {bar: re.findall(bar + drawn, shown)[-1]
            for bar in ("hosts", "tcp discovery", "tcp version detection")}
    assert "4/4 done, 1 failed, 0 in flight" in last["hosts"], shown
    assert "4/4 hosts, 7 open ports" in last["tcp discovery"], shown
    assert "3/3 hosts, 7/7 ports" in last["tcp version detection"], shown
    for line in last.values():  # done: the time each took (a bar still going says what is
        assert re.search(r"\d:\d\d elapsed$", line), line  # left; see the next test)
    assert "  web1 (10.99.0.2) ok 1 port" in shown
    assert terminal.clean(f"  web2{HOSTILE} (10.99.0.3{HOSTILE}) collection_failed 0 ports: "
                          f"ss said: {HOSTILE}") in shown
    assert "nmap said" not in shown  # -v only


def test_the_bars_count_hosts_in_flight_while_they_run():
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    view = LiveView(Level.NORMAL, console)
    view.audit_started(hosts=3, scanned=0, contacted=3)
    view.host_started("a", "10.99.0.2")
    view.host_started("b", "10.99.0.3")
    view.host_collected("a", None)
    assert view._hosts_counts() == "0/3 done, 0 failed, 1 in flight"
    [hosts] = view.bars.tasks
    assert cli_progress._Time().render(hosts).plain == "0:00 elapsed, ? left"  # no pace yet
    view.bars.update(hosts.id, completed=1)  # a pace needs two readings
    view.bars.update(hosts.id, completed=2)
    assert re.fullmatch(r"0:00 elapsed, ~\d+:\d\d left", cli_progress._Time().render(hosts).plain)


def test_the_clock_reads_minutes_then_hours():
    assert [cli_progress._clock(s) for s in (None, 0, 59.9, 61, 3599, 3600, 36_061)] == [
        "0:00", "0:00", "0:59", "1:01", "59:59", "1:00:00", "10:01:01"]


def test_off_a_terminal_each_event_is_one_plain_line():
    console = Console(file=io.StringIO(), record=True, force_terminal=False, width=10_000)
    view = view_for(Level.NORMAL, console)
    assert isinstance(view, PlainView)
    drive(view)
    shown = console.export_text()
    assert_inert(shown)
    assert "\r" not in shown and "\x1b[" not in shown  # no bar, no cursor movement
    lines = [re.sub(r"^\[\d+\.\ds\] ", "", line) for line in shown.splitlines()]
    assert len(lines) == len(shown.splitlines())  # each line starts with the elapsed time
    assert lines == [
        "scan: tcp discovery started: 1 nmap process",
        "scan: tcp-discovery-01 done: 4 hosts, 7 open ports (tcp discovery 4/4 hosts, "
        "7 open ports)",
        terminal.clean(f"1/4 web2{HOSTILE} (10.99.0.3{HOSTILE}) collection_failed 0 ports: "
                       f"ss said: {HOSTILE}"),
        "scan: tcp-version-01-1 done: 3 hosts, 7 open ports (tcp version detection 3/3 "
        "hosts, 7/7 ports)",
        "scan done",
        "2/4 web1 (10.99.0.2) ok 1 port",
        "3/4 web3 (10.99.0.2) ok 1 port",
        "4/4 web4 (10.99.0.2) ok 1 port",
    ]


def test_verbose_adds_each_process_and_host_as_it_starts_and_each_host_s_detail():
    console = Console(file=io.StringIO(), record=True, force_terminal=False, width=10_000)
    drive(view_for(Level.VERBOSE, console))
    shown = console.export_text()
    assert_inert(shown)
    assert "4 hosts: 4 hosts to collect, 4 addresses to scan" in shown
    assert "scan: tcp-discovery-01 started (4 hosts): nmap -oX - 10.99.0.2 ..." in shown
    assert "web1 (10.99.0.2): connecting" in shown and "web1: collected" in shown
    assert terminal.clean(f"    error (scan): nmap said: {HOSTILE}") in shown
    assert "    tcp/22 - <- no listener inside" in shown


def test_verbose_on_a_terminal_prints_the_details_above_the_bars():
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=160)
    drive(view_for(Level.VERBOSE, console))
    shown = console.export_text()
    assert_inert(shown)
    assert terminal.clean(f"    error (scan): nmap said: {HOSTILE}") in shown
    assert "scan: tcp-version-01-1 started (3 hosts)" in shown


def test_quiet_shows_nothing_as_it_goes():
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=160)
    view = view_for(Level.QUIET, console)
    assert isinstance(view, QuietView)
    drive(view)
    assert console.export_text() == ""


def test_a_failed_nmap_process_is_said_with_its_reason():
    console = Console(file=io.StringIO(), record=True, force_terminal=False, width=10_000)
    view = PlainView(Level.NORMAL, console)
    view.scan_planned([DISCOVERY])
    view.nmap_done(DISCOVERY, open_found=0, failure=f"nmap said {HOSTILE}")
    view.scan_done(f"no scan: {HOSTILE}")
    shown = console.export_text()
    assert terminal.clean(f"scan: tcp-discovery-01 failed: nmap said {HOSTILE} "
                          "(tcp discovery 4/4 hosts, 0 open ports)") in shown
    assert terminal.clean(f"scan failed: no scan: {HOSTILE}") in shown


def test_a_host_counts_once_per_phase_and_each_protocol_has_its_own_bar():
    console = Console(file=io.StringIO(), record=True, force_terminal=False, width=10_000)
    view = PlainView(Level.NORMAL, console)
    udp = NmapStep(name="udp-discovery-01", phase=ScanPhase.DISCOVERY, proto="udp",
                   targets=ADDRESSES)
    view.scan_planned([DISCOVERY, udp])
    first = NmapStep(name="tcp-version-01-1", phase=ScanPhase.VERSION, proto="tcp",
                     targets=ADDRESSES[:2], ports=3)
    inside = NmapStep(name="tcp-inside-01-1", phase=ScanPhase.VERSION, proto="tcp",
                      targets=ADDRESSES[1:3], ports=2)  # 10.99.0.3 again, for listed ports
    for step in (first, inside):
        view.nmap_started(step)
    view.nmap_done(first, 3, None)
    view.nmap_done(udp, 1, None)
    view.nmap_done(inside, 2, None)
    lines = [re.sub(r"^\[\d+\.\ds\] ", "", line) for line in console.export_text().splitlines()]
    assert lines == [
        "scan: tcp discovery, udp discovery started: 2 nmap processes",
        # 10.99.0.3 is not done while its second -sV process runs
        "scan: tcp-version-01-1 done: 2 hosts, 3 open ports (tcp version detection 1/3 "
        "hosts, 3/5 ports)",
        "scan: udp-discovery-01 done: 4 hosts, 1 open port (udp discovery 4/4 hosts, "
        "1 open port)",
        "scan: tcp-inside-01-1 done: 2 hosts, 2 open ports (tcp version detection 3/3 "
        "hosts, 5/5 ports)",
    ]
