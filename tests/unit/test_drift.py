"""The diff of two runs, on real results.json files of one lab fleet (tests/fixtures/drift/,
made by its capture.py): before.json, again.json (nothing changed), after.json (three
changes: a new listener on lab-01 8888/tcp, lab-02's 8081/tcp service restarted from a
replaced python3.11 in its own mount namespace, lab-03's 8000/tcp service stopped)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetaudit import drift
from fleetaudit.drift import ChangeKind, HostEvent, Side
from fleetaudit.models import AuditResults, HostStatus, Proto
from fleetaudit.report import render_html, render_markdown, results_from_json, results_to_json
from fleetaudit.report.drift_view import text_lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "drift"
# (host, port) -> the kinds of change each of the three planted changes must show.
PLANTED = {
    ("lab-01", 8888): {(ChangeKind.OPENED, Side.OUTSIDE), (ChangeKind.OPENED, Side.INSIDE)},
    ("lab-02", 8081): {(ChangeKind.BINARY_REPLACED, Side.INSIDE)},
    ("lab-03", 8000): {(ChangeKind.CLOSED, Side.OUTSIDE), (ChangeKind.CLOSED, Side.INSIDE),
                       (ChangeKind.FINDING_RESOLVED, None)},
}


def load(name: str) -> AuditResults:
    return results_from_json((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs() -> dict[str, AuditResults]:
    return {name: load(name) for name in ("before", "again", "after")}


def by_port(d: drift.Drift) -> dict[tuple[str, int], set[tuple[ChangeKind, Side | None]]]:
    out: dict[tuple[str, int], set[tuple[ChangeKind, Side | None]]] = {}
    for host, port, change in d.changes:
        assert port is not None, f"{host.host}: a host-wide change {change}"
        out.setdefault((host.host, port.port), set()).add((change.kind, change.side))
    return out


def test_the_three_planted_changes_and_nothing_else(runs):
    d = drift.drift_between(runs["before"], runs["after"])
    assert by_port(d) == PLANTED
    assert all(h.event is None for h in d.hosts)
    assert (d.findings_new, d.findings_resolved) == (0, 1)
    assert d.fails


def test_the_replaced_binary_is_a_high_finding_with_its_package_unchanged(runs):
    d = drift.drift_between(runs["before"], runs["after"])
    [(_, port, change)] = [c for c in d.changes if c[2].kind is ChangeKind.BINARY_REPLACED]
    assert (port.proto, port.port) == (Proto.TCP, 8081)
    assert change.severity == "high"
    assert change.finding_id == drift.binary_finding_id("lab-02", Proto.TCP, 8081,
                                                       "/usr/bin/python3.11")
    assert change.before != change.after
    old = _process(runs["before"], "lab-02", 8081)
    new = _process(runs["after"], "lab-02", 8081)
    assert (old.exe, old.package, old.version) == (new.exe, new.package, new.version)
    assert old.sha256 == change.before and new.sha256 == change.after
    assert old.pids != new.pids  # restarted: a new PID, which is no change of its own


def _process(results: AuditResults, host: str, port: int) -> drift.ProcessObs:
    snap = drift.snapshot(results)
    [h] = [h for h in snap.hosts if h.name == host]
    [p] = [p for p in h.ports if p.port == port]
    [process] = p.processes
    return process


def test_the_same_fleet_audited_twice_did_not_change(runs):
    d = drift.drift_between(runs["before"], runs["again"])
    assert not d.changed and not d.fails
    assert d.findings_still_open == sum(len(h.findings) for h in runs["before"].hosts)


def test_pids_and_start_times_are_noise(runs):
    moved = _renumbered(runs["before"])
    assert moved != runs["before"]
    assert not drift.drift_between(runs["before"], moved).changed


def _renumbered(results: AuditResults) -> AuditResults:
    """Every listening process restarted: new PIDs, new start times, the rest the same."""
    data = json.loads(results_to_json(results))
    for host in data["hosts"]:
        for process in (host.get("internal") or {}).get("processes", []):
            process["pid"] += 100000
            if process.get("started_at"):
                process["started_at"] = "2030-01-01T00:00:00Z"
        for port in host["ports"]:
            for listener in port["listeners"]:
                if listener.get("pid") is not None:
                    listener["pid"] += 100000
                if listener.get("process"):
                    listener["process"]["pid"] += 100000
    return results_from_json(json.dumps(data))


def test_an_upgrade_is_an_expected_change_not_a_finding(runs):
    upgraded = _edit_process(runs["after"], "lab-02", 8081, version="9.9-upgraded")
    d = drift.drift_between(runs["before"], upgraded)
    kinds = by_port(d)[("lab-02", 8081)]
    assert kinds == {(ChangeKind.BINARY_UPGRADED, Side.INSIDE)}
    [(_, _, change)] = [c for c in d.changes if c[2].kind is ChangeKind.BINARY_UPGRADED]
    assert change.severity is None and change.finding_id is None
    assert "9.9-upgraded" in change.message


def test_a_listener_run_by_another_user_or_process(runs):
    other_user = _edit_process(runs["after"], "lab-02", 8081, user="nobody",
                               sha256=_process(runs["before"], "lab-02", 8081).sha256)
    assert by_port(drift.drift_between(runs["before"], other_user))[("lab-02", 8081)] == {
        (ChangeKind.USER_CHANGED, Side.INSIDE)}
    other_exe = _edit_process(runs["after"], "lab-02", 8081, exe="/usr/bin/socat")
    assert by_port(drift.drift_between(runs["before"], other_exe))[("lab-02", 8081)] == {
        (ChangeKind.PROCESS_CHANGED, Side.INSIDE)}


def _edit_process(results: AuditResults, host: str, port: int, **changes: str | None
                  ) -> AuditResults:
    data = json.loads(results_to_json(results))
    [h] = [h for h in data["hosts"] if h["name"] == host]
    [p] = [p for p in h["ports"] if p["port"] == port]
    pids = {ev["pid"] for ev in p["listeners"]}
    for process in h["internal"]["processes"]:
        if process["pid"] in pids:
            for key, value in changes.items():
                if key == "version":
                    process["package"]["version"] = value
                else:
                    process[key] = value
    for ev in p["listeners"]:
        ev["process"] = None  # the chain is read from internal.processes
    return results_from_json(json.dumps(data))


def test_hosts_added_gone_and_unreachable(runs):
    before = runs["before"]
    data = json.loads(results_to_json(before))
    gone = data["hosts"].pop(0)["name"]
    renamed = json.loads(json.dumps(data["hosts"][0]))
    renamed["name"] = "lab-99"
    data["hosts"].append(renamed)
    down = data["hosts"][0]
    down.update(status=HostStatus.UNREACHABLE.value, internal=None, ports=[], findings=[],
                errors=[{"stage": "connect", "message": "connection refused"}])
    d = drift.drift_between(before, results_from_json(json.dumps(data)))
    events = {h.host: h.event for h in d.hosts if h.event is not None}
    assert events == {gone: HostEvent.GONE, "lab-99": HostEvent.ADDED,
                      down["name"]: HostEvent.UNREACHABLE}
    unreachable = next(h for h in d.hosts if h.host == down["name"])
    # Nothing read on it now: its ports are not "closed" inside, its findings not resolved.
    assert not any(c.side is Side.INSIDE for p in unreachable.ports for c in p.changes)
    assert not any(c.kind is ChangeKind.FINDING_RESOLVED
                   for p in unreachable.ports for c in p.changes)


def test_the_snapshot_is_canonical_and_survives_json(runs):
    snap = drift.snapshot(runs["after"])
    assert drift.Snapshot.model_validate_json(snap.model_dump_json()) == snap
    assert [h.name for h in snap.hosts] == sorted(h.name for h in snap.hosts)
    assert drift.run_id(runs["after"]) == snap.run.run_id
    assert drift.run_id(runs["before"]) != snap.run.run_id


def test_the_formats_carry_the_diff(runs):
    d = drift.drift_between(runs["before"], runs["after"])
    results = runs["after"].model_copy(update={"drift": d})
    # results.json: written and read back whole.
    assert results_from_json(results_to_json(results)).drift == d
    # summary.md: the section, one row per change.
    summary = render_markdown(results)
    assert f"## Changed since `{d.baseline.run_id}`" in summary
    rows = [line for line in summary.splitlines() if line.startswith("| `lab-0")
            and ("/tcp |" in line)]
    assert len([r for r in rows if "| 8888/tcp |" in r or "| 8081/tcp |" in r
                or "| 8000/tcp |" in r]) == len(d.changes)
    # HTML: the section before the summary, each change linked to its port's evidence chain.
    html = render_html(results)
    assert html.index('id="changes"') < html.index('id="summary"')
    for host, port in PLANTED:
        if (host, port) == ("lab-03", 8000):
            assert f'href="#host-{host}-tcp-{port}"' not in html  # closed: no row to link
        else:
            assert f'href="#host-{host}-tcp-{port}"' in html
            assert f'id="host-{host}-tcp-{port}"' in html
    assert "binary replaced" in html


def test_the_text_of_the_diff(runs):
    d = drift.drift_between(runs["before"], runs["after"])
    lines = text_lines(d)
    assert lines[0].startswith(f"run {d.current.run_id}") and d.baseline.run_id in lines[0]
    for host, port in PLANTED:
        assert any(line.strip().startswith(f"{port}/tcp") for line in lines)
        assert any(line.strip().startswith(host) for line in lines)
    same = text_lines(drift.drift_between(runs["before"], runs["again"]))
    assert "nothing changed since" in same[0]


def test_timeline_of_a_port(runs):
    snaps = [drift.snapshot(runs[n]) for n in ("before", "again", "after")]
    [s] = drift.timeline(snaps, "lab-03", (Proto.TCP, 8000))
    assert (s.first_seen, s.last_seen) == (snaps[0].run, snaps[1].run)
    assert (s.runs_seen, s.runs_total) == (2, 3)
    [(run, changes)] = s.changed_in
    assert run == snaps[2].run
    assert {c.kind for c in changes} == {ChangeKind.CLOSED}
    [s] = drift.timeline(snaps, "lab-01", (None, 8888))
    assert s.first_seen == snaps[2].run and s.runs_seen == 1
    assert s.processes == ["/usr/bin/python3.11 (root)"]


def test_drift_is_pure():
    code = ("import sys, json; import fleetaudit.drift, fleetaudit.report.drift_view; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                           text=True, check=True).stdout))
    assert not loaded & {"asyncssh", "nmap", "subprocess", "typer", "sqlalchemy", "alembic"}
