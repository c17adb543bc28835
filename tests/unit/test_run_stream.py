"""Issue 13: each host's result moves on as soon as that host is done (not when the fleet
is), the run records where its time went, and the journal keeps every finished host."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fleetaudit.errors import JournalError
from fleetaudit.models import Inventory, InventoryHost
from fleetaudit.orchestrator import AuditOptions, run_audit
from fleetaudit.policy import baseline_policy
from fleetaudit.report.journal import JOURNAL, Journal, Start, read_journal
from fleetaudit.report.write import write_report
from fleetaudit.resume import merge_resumed, unique_evidence
from fleetaudit.testing.fakehost import FakeFleet, FakeHost, Fault
from fleetaudit.transport import HostKeyPolicy, SSHOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURE = FIXTURES / "session" / "local_root.json"
NMAP = FIXTURES / "nmap" / "sv-connect.xml"  # a real scan of 127.0.0.1
TODAY = date(2026, 12, 7)


def inventory(names: list[str]) -> Inventory:
    return Inventory(source="test.ini", hosts=[InventoryHost(name=n, address="127.0.0.1")
                                               for n in names])


def options(**kwargs) -> AuditOptions:
    return AuditOptions(nmap_xml=(NMAP,), command_timeout=10.0,
                        ssh=SSHOptions(host_key_policy=HostKeyPolicy.OFF), **kwargs)


def audit(fleet: FakeFleet, names: list[str], **kwargs):
    return asyncio.run(run_audit(inventory(names), options(), connect=fleet.connect,
                                 today=TODAY, **kwargs))


def test_a_host_is_handed_on_while_a_slower_one_is_still_collected():
    fleet = FakeFleet({"slow": FakeHost.load(CAPTURE, faults={"ss": Fault.slow(2.0)}),
                       "fast1": FakeHost.load(CAPTURE), "fast2": FakeHost.load(CAPTURE)})
    seen: list[tuple[str, list[str]]] = []

    def done(result):
        # Which hosts still had a session open on their host when this one came in.
        busy = [name for name, fake in fleet.hosts.items()
                if name != result.name and fake.running]
        seen.append((result.name, busy))

    outcome = audit(fleet, ["slow", "fast1", "fast2"], on_host_done=done)
    assert [name for name, _ in seen] == ["fast1", "fast2", "slow"]
    assert "slow" in seen[0][1]  # the slow host was mid-round when fast1 was handed on
    # The results keep the inventory's order, judged like any other run.
    assert [h.name for h in outcome.results.hosts] == ["slow", "fast1", "fast2"]
    assert all(h.compliant is not None or h.status.value != "ok"
               for h in outcome.results.hosts)


def test_the_result_handed_on_is_the_judged_one_in_the_results():
    fleet = FakeFleet({"a": FakeHost.load(CAPTURE), "b": FakeHost.load(CAPTURE)})
    handed = {}
    outcome = audit(fleet, ["a", "b"], on_host_done=lambda r: handed.update({r.name: r}))
    assert {h.name: h for h in outcome.results.hosts} == handed
    assert any(f for h in handed.values() for f in h.findings)


def test_the_run_records_where_its_time_went():
    fleet = FakeFleet({n: FakeHost.load(CAPTURE) for n in ("a", "b", "c")})
    timings = audit(fleet, ["a", "b", "c"]).results.timings
    by_name = {(t.phase, t.name): t for t in timings}
    assert ("prepare", "targets, routes and imported scans") in by_name
    round1 = by_name[("collect", "round 1")]
    assert round1.hosts == 3 and round1.median is not None and round1.slowest is not None
    assert 0 <= round1.median <= round1.slowest <= round1.end - round1.start + 0.001
    assert by_name[("collect", "connect")].hosts == 3
    assert by_name[("judge", "fleet summaries")].hosts == 3
    assert [t.start for t in timings] == sorted(t.start for t in timings)
    assert all(0 <= t.start <= t.end for t in timings)


def test_the_journal_holds_every_finished_host_as_it_finishes(tmp_path):
    fleet = FakeFleet({n: FakeHost.load(CAPTURE) for n in ("a", "b")})
    journal = Journal.start(tmp_path / "run", Start(
        tool_version="t", inventory="test.ini", started_at=datetime.now(UTC),
        hosts=["a", "b"]))
    in_journal_when_done = []

    def done(result):
        in_journal_when_done.append(sorted(read_journal(tmp_path / "run").hosts))

    outcome = audit(fleet, ["a", "b"], on_host_done=done, journal=journal)
    journal.close()
    # Each host is on disk before it is shown, and the other one only once it is done too.
    assert sorted(in_journal_when_done, key=len) == [["a"], ["a", "b"]] or \
        sorted(in_journal_when_done, key=len) == [["b"], ["a", "b"]]
    state = read_journal(tmp_path / "run")
    assert state.start.hosts == ["a", "b"] and state.torn == 0
    assert state.hosts == {h.name: h for h in outcome.results.hosts}
    assert [s.source for s in state.scans] == ["import"]


def test_a_folder_with_an_unfinished_run_is_never_started_over(tmp_path):
    start = Start(tool_version="t", inventory="x", started_at=datetime.now(UTC), hosts=[])
    Journal.start(tmp_path / "run", start).close()
    with pytest.raises(JournalError, match=r"unfinished run.*--resume"):
        Journal.start(tmp_path / "run", start)
    (tmp_path / "file").write_text("")
    with pytest.raises(JournalError, match="not a folder"):
        Journal.start(tmp_path / "file", start)


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_clean(tmp_path):
    fleet = FakeFleet({n: FakeHost.load(CAPTURE) for n in ("a", "b")})
    journal = Journal.start(tmp_path / "run", Start(
        tool_version="t", inventory="x", started_at=datetime.now(UTC), hosts=["a", "b"]))
    audit(fleet, ["a"], journal=journal)
    journal.close()
    path = tmp_path / "run" / JOURNAL
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines()[-1][:50])  # a kill in the middle of a line
    journal, state = Journal.resume(tmp_path / "run")
    assert state.torn == 1 and list(state.hosts) == ["a"]
    audit(fleet, ["b"], journal=journal)
    journal.close()
    again = read_journal(tmp_path / "run")
    assert list(again.hosts) == ["a", "b"] and again.torn == 1


def test_resuming_where_nothing_was_started_says_so(tmp_path):
    with pytest.raises(JournalError, match="nothing to resume"):
        Journal.resume(tmp_path)
    (tmp_path / JOURNAL).write_text('{"kind": "host"}\n')
    with pytest.raises(JournalError, match="no start record"):
        Journal.resume(tmp_path)


def test_a_resumed_run_has_every_host_once_in_inventory_order():
    fleet = FakeFleet({n: FakeHost.load(CAPTURE) for n in ("a", "b", "c")})
    first = audit(fleet, ["a", "c"]).results
    second = audit(fleet, ["b"]).results
    kept = {h.name: h for h in first.hosts}
    merged = merge_resumed(inventory(["a", "b", "c"]), kept, second,
                           started_at=first.started_at, earlier_scans=[first.scan],
                           policy=baseline_policy(), today=TODAY, tool_version="t",
                           finished_at=second.finished_at)
    assert [h.name for h in merged.hosts] == ["a", "b", "c"]
    assert merged.resumed_hosts == 2
    assert merged.compliance[0].hosts_total == 3
    assert merged.scan is not None and merged.scan.imported == [*first.scan.imported,
                                                                *second.scan.imported]


def test_evidence_of_both_parts_is_kept_under_distinct_names(tmp_path):
    files = unique_evidence([("tcp-discovery-01", b"<a/>"), ("tcp-version-01-1", b"<b/>"),
                             ("tcp-discovery-01", b"<c/>")])
    assert [n for n, _ in files] == ["tcp-discovery-01", "tcp-version-01-1",
                                     "tcp-discovery-01-2"]
    fleet = FakeFleet({"a": FakeHost.load(CAPTURE)})
    paths = write_report(audit(fleet, ["a"]).results, tmp_path / "r", evidence=files)
    assert sorted(p.name for p in paths.evidence) == [
        "tcp-discovery-01-2.xml", "tcp-discovery-01.xml", "tcp-version-01-1.xml"]


_VICTIM = """
import asyncio, sys
from datetime import UTC, datetime
from pathlib import Path
sys.path.insert(0, {tests!r})
from unit.test_run_stream import CAPTURE, TODAY, inventory, options
from fleetaudit.orchestrator import run_audit
from fleetaudit.report.journal import Journal, Start
from fleetaudit.testing.fakehost import FakeFleet, FakeHost, Fault
names = {names!r}
fleet = FakeFleet({{n: FakeHost.load(CAPTURE, faults={{"ss": Fault.slow(0.3)}}) for n in names}})
journal = Journal.start(Path({run!r}), Start(tool_version="t", inventory="test.ini",
                        started_at=datetime.now(UTC), hosts=names))
asyncio.run(run_audit(inventory(names), options(concurrency=1), connect=fleet.connect,
                      today=TODAY, journal=journal))
print("finished before the kill")
"""


def test_a_run_killed_midway_loses_no_host_and_resumes_only_the_rest(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    names = [f"h{i}" for i in range(8)]
    run = tmp_path / "run"
    victim = subprocess.Popen(
        [sys.executable, "-c", _VICTIM.format(tests=str(FIXTURES.parent), names=names,
                                             run=str(run))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Wait for the state under test: two hosts finished (the run takes 8 x 0.3 s+).
        while victim.poll() is None:
            path = run / JOURNAL
            if path.exists() and len(read_journal(run).hosts) >= 2:
                break
            time.sleep(0.01)  # a poll's pace, not a wait for an outcome
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        out, err = victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL, (out, err)
    journal, state = Journal.resume(run)
    kept = dict(state.hosts)
    assert 2 <= len(kept) < len(names)
    assert list(kept) == names[:len(kept)]  # concurrency 1: in inventory order
    rest = [n for n in names if n not in kept]
    fleet = FakeFleet({n: FakeHost.load(CAPTURE) for n in names})
    fresh = asyncio.run(run_audit(inventory(rest), options(), connect=fleet.connect,
                                  today=TODAY, journal=journal)).results
    journal.close()
    contacted = sorted(n for n, fake in fleet.hosts.items() if fake.sessions)
    assert contacted == rest  # nothing audited twice
    merged = merge_resumed(inventory(names), kept, fresh, started_at=state.start.started_at,
                           earlier_scans=state.scans, policy=baseline_policy(), today=TODAY,
                           tool_version="t", finished_at=fresh.finished_at)
    assert [h.name for h in merged.hosts] == names  # nothing lost
    assert merged.resumed_hosts == len(kept)
    assert sorted(read_journal(run).hosts) == sorted(names)
