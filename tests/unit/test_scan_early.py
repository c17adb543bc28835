"""A protocol the profile leaves out (UDP in `quick`) is probed on each host's listed ports as
soon as its listing is in, while discovery still runs (issue 13): no discovery covers those
ports, and waiting for it put an 11 s UDP -sV at the end of a 200-host run.

nmap is replaced by test_scan_inside's fake that writes XML (no packet is sent); this one
holds TCP discovery until the UDP probe has started, or until the test gives up."""

from __future__ import annotations

import asyncio
import threading

from fleetaudit.models import Proto
from fleetaudit.scan import engine
from fleetaudit.scan.command import make_settings
from tests.unit.test_scan_inside import (  # noqa: F401 (nmap_calls: a fixture)
    LISTED,
    SERVICES,
    fake_nmap,
    nmap_calls,
    scan,
)

TCP, UDP = Proto.TCP, Proto.UDP
GIVE_UP = 30.0  # only if the UDP probe never starts: then the test fails, it does not hang


def holding_discovery(calls: list[list[str]], events: list[str]):
    inner = fake_nmap(calls)
    udp_started = threading.Event()

    def run_job(nmap_bin, job, timeout, processes=None):
        argv = job.argv(nmap_bin)
        if "-sU" in argv:
            events.append("udp -sV started")
            udp_started.set()
        elif "-sV" not in argv:  # TCP discovery
            udp_started.wait(GIVE_UP)
            events.append("tcp discovery ended")
        return inner(nmap_bin, job, timeout, processes)
    return run_job


def test_udp_listed_ports_are_probed_while_tcp_discovery_runs(nmap_calls, monkeypatch):  # noqa: F811 (a fixture)
    events: list[str] = []
    monkeypatch.setattr(engine.nmap_run, "run_job", holding_discovery(nmap_calls, events))
    settings = make_settings("quick", privileged=True, single_pass_max_hosts=0)
    fleet = scan(settings, LISTED)
    assert events == ["udp -sV started", "tcp discovery ended"]
    one = fleet.hosts["192.0.2.1"]
    found = {(p.proto, p.port): p.service for p in one.ports}
    assert found == {(TCP, 22): "ssh", (TCP, 47123): "http", (UDP, 47124): "snmp"}
    assert one.errors == [] and fleet.hosts["192.0.2.2"].errors == []
    assert [a for a in nmap_calls if "-sU" in a and "192.0.2.2" in a] == []


def scan_apart(settings, listed, later: str):
    """scan_fleet with every listing in at once but `later`'s, which comes once the first
    wave's UDP probe has ended."""
    async def go():
        loop = asyncio.get_running_loop()
        listings = {a: loop.create_future() for a in SERVICES}
        for address, listing in listed.items():
            if address != later:
                listings[address].set_result(listing)
        done = engine.nmap_run.run_job

        def run_job(nmap_bin, job, timeout, processes=None):
            outcome = done(nmap_bin, job, timeout, processes)
            if "-sU" in job.argv(nmap_bin):
                loop.call_soon_threadsafe(
                    lambda: listings[later].done() or listings[later].set_result(listed[later]))
            return outcome
        engine.nmap_run.run_job = run_job
        try:
            return await engine.scan_fleet(list(SERVICES), settings, listings=listings)
        finally:
            engine.nmap_run.run_job = done
    return asyncio.run(go())


def test_listings_that_come_apart_get_waves_and_no_port_twice(nmap_calls):  # noqa: F811 (a fixture)
    """One host's listing now, the other's later: each wave probes only its own hosts."""
    settings = make_settings("quick", privileged=True, single_pass_max_hosts=0)
    both_udp = {"192.0.2.1": LISTED["192.0.2.1"],
                "192.0.2.2": frozenset({(TCP, 22), (UDP, 47124)})}
    fleet = scan_apart(settings, both_udp, later="192.0.2.2")
    udp = [[a for a in argv if a.startswith("192.0.2.")] for argv in nmap_calls
           if "-sU" in argv]
    assert udp == [["192.0.2.1"], ["192.0.2.2"]]
    assert fleet.hosts["192.0.2.1"].was_scanned(UDP, 47124)
    assert fleet.hosts["192.0.2.2"].was_scanned(UDP, 47124)


def test_without_root_nothing_starts_early(nmap_calls):  # noqa: F811 (a fixture)
    settings = make_settings("quick", privileged=False, single_pass_max_hosts=0)
    fleet = scan(settings, LISTED)
    assert not any("-sU" in a for a in nmap_calls)
    assert [n.port for n in fleet.hosts["192.0.2.1"].not_probed] == [47124]
