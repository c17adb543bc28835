"""The history store on SQLite: migrations, one transaction per run, reading snapshots
back exactly, retention, and the command line over it (history, history import, diff).
PostgreSQL: tests/integration/test_history_postgres.py, against a real server."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from fleetaudit import drift
from fleetaudit.cli import app
from fleetaudit.cli_history import AuditHistory
from fleetaudit.exitcodes import ExitCode
from fleetaudit.history.errors import HistoryError
from fleetaudit.history.schema import CHILDREN_FIRST
from fleetaudit.history.store import open_store
from fleetaudit.report import results_from_json

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "drift"
NAMES = ("before", "again", "after")
# Records one run, but stops for good (until killed) right after the first port row is
# written: the kill -9 lands in the middle of the run's one transaction.
RECORDER = """
import sys
from sqlalchemy import event
from fleetaudit.history.store import open_store
from fleetaudit.report import results_from_json

store = open_store(sys.argv[1])
results = results_from_json(open(sys.argv[2], encoding="utf-8").read())

@event.listens_for(store.engine, "after_cursor_execute")
def pause(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("INSERT INTO PORTS"):
        print("inside the transaction", flush=True)
        sys.stdin.readline()

store.record(results)
print("recorded", flush=True)
"""


def results(name: str):
    return results_from_json((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def fleetaudit(*args: str, env: dict[str, str] | None = None) -> Ran:
    """The command line in this process (a new interpreter per command costs a second)."""
    done = CliRunner().invoke(app, list(args), env=env)
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception
    return Ran(done.exit_code, done.stdout, done.stderr)


@pytest.fixture
def store_path(tmp_path):
    return str(tmp_path / "data" / "history.sqlite")


def test_a_new_store_is_migrated_and_private(store_path):
    with open_store(store_path) as store:
        assert store.revision() == "0001"
    mode = os.stat(store_path).st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(store_path)).st_mode) == 0o700
    tables = {row[0] for row in sqlite3.connect(store_path).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {t.name for t in CHILDREN_FIRST} | {"alembic_version"}
    with open_store(store_path) as store:  # opening again migrates nothing
        assert store.revision() == "0001"


def test_a_store_from_a_newer_fleetaudit_is_refused(store_path):
    open_store(store_path).close()
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(HistoryError, match="newer than this fleetaudit knows"):
        open_store(store_path)


def test_a_recorded_run_reads_back_as_it_was_recorded(store_path):
    with open_store(store_path) as store:
        for name in NAMES:
            run_id, new = store.record(results(name), report_dir=f"/runs/{name}",
                                       exit_status=0)
            assert new
            assert store.snapshot(run_id) == drift.snapshot(results(name))
        assert store.record(results("after")) == (drift.run_id(results("after")), False)
        runs = store.runs()
        assert [r.run_id for r in runs] == [drift.run_id(results(n)) for n in NAMES]
        assert [r.report_dir for r in runs] == [f"/runs/{n}" for n in NAMES]
        assert store.find(runs[1].run_id[:20]).run_id == runs[1].run_id
        later = drift.ref(results("after"))
        assert store.previous(later.inventory, before=later).run_id == runs[1].run_id
        assert [p.run_id for p in store.trend(later.inventory, before=later)] == [
            r.run_id for r in runs[:2]]


def test_retention_by_count_and_by_age(store_path):
    with open_store(store_path) as store:
        for name in NAMES:
            store.record(results(name))
        inventory = results("before").inventory
        ids = [r.run_id for r in store.runs()]
        assert store.retain(inventory, keep_runs=2) == [ids[0]]
        newest = store.runs()[-1].started_at
        gone = store.retain(inventory, keep_days=1, now=newest + timedelta(days=1, seconds=1))
        assert gone == sorted(ids[1:])
        assert store.runs() == []
    counts = [sqlite3.connect(store_path).execute(f"SELECT count(*) FROM {t.name}").fetchone()
              for t in CHILDREN_FIRST]
    assert counts == [(0,)] * len(CHILDREN_FIRST)


def test_kill_9_while_recording_leaves_the_earlier_runs_and_no_partial_one(store_path):
    kill_while_recording(store_path)


def kill_while_recording(location: str) -> None:
    """Record two runs, kill -9 a process in the middle of recording a third; then the
    store holds the two, whole, and no row of the third, which can be recorded after."""
    with open_store(location) as store:
        store.record(results("before"))
        store.record(results("again"))
    recorder = subprocess.Popen(
        [sys.executable, "-c", RECORDER, location, str(FIXTURES / "after.json")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert recorder.stdout.readline().strip() == "inside the transaction"
        os.kill(recorder.pid, signal.SIGKILL)
    finally:
        recorder.wait(timeout=30)
    assert recorder.returncode == -signal.SIGKILL
    killed = drift.run_id(results("after"))
    with open_store(location) as store:
        assert [r.run_id for r in store.runs()] == [drift.run_id(results(n))
                                                    for n in ("before", "again")]
        assert store.snapshot(drift.run_id(results("again"))) == drift.snapshot(
            results("again"))
        with store.engine.connect() as conn:
            for table in CHILDREN_FIRST:
                count = conn.execute(select(func.count()).select_from(table)
                                     .where(table.c.run_id == killed)).scalar()
                assert count == 0, table.name
        assert store.record(results("after")) == (killed, True)


def test_audit_compares_with_the_previous_run_then_records(store_path, tmp_path):
    first = AuditHistory(store_path)
    compared = first.compare(results("before"))
    assert compared.drift is None  # nothing recorded yet
    assert first.record(compared, tmp_path / "before", ExitCode.OK) == ExitCode.OK
    second = AuditHistory(store_path, fail_on_change=True, keep_runs=1)
    compared = second.compare(results("after"))
    assert compared.drift is not None
    assert compared.drift.baseline.run_id == drift.run_id(results("before"))
    assert [p.run_id for p in compared.drift.trend] == [
        drift.run_id(results(n)) for n in ("before", "after")]
    assert second.record(compared, tmp_path / "after", ExitCode.OK) == ExitCode.FINDINGS
    with open_store(store_path) as store:
        [kept] = store.runs()
        assert (kept.run_id, kept.exit_status) == (drift.run_id(results("after")),
                                                   ExitCode.FINDINGS)
    assert AuditHistory(store_path, compare_to="none").compare(results("after")).drift is None


def test_a_store_that_fails_never_loses_the_audit(tmp_path):
    broken = tmp_path / "not-a-database"
    broken.mkdir()  # a folder where the SQLite file should be
    history = AuditHistory(str(broken), fail_on_change=True)
    compared = history.compare(results("after"))
    assert compared == results("after") and history.failed
    # The audit's own code stands; a nightly job asked to watch changes learns it could not.
    assert history.record(compared, tmp_path, ExitCode.INCOMPLETE) == ExitCode.INCOMPLETE
    assert history.record(compared, tmp_path, ExitCode.OK) == ExitCode.CONFIG
    quiet = AuditHistory(str(broken))
    assert quiet.record(quiet.compare(results("after")), tmp_path, ExitCode.OK) == ExitCode.OK


def test_compare_to_a_results_file(store_path):
    history = AuditHistory(store_path, compare_to=str(FIXTURES / "before.json"))
    compared = history.compare(results("after"))
    assert compared.drift is not None
    assert compared.drift == drift.compare(drift.snapshot(results("before")),
                                           drift.snapshot(results("after")),
                                           compared.drift.trend)


def test_history_import_then_history_and_diff(store_path, tmp_path):
    env = {"FLEETAUDIT_HISTORY": store_path}
    imported = fleetaudit("history", "import", *(str(FIXTURES / f"{n}.json") for n in NAMES),
                          env=env)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.splitlines()[-1].startswith("3 run(s) recorded, 0 already")
    reports = tmp_path / "reports"  # run folders, as `audit --out reports/<time>` leaves them
    for name in NAMES:
        (reports / name).mkdir(parents=True)
        shutil.copyfile(FIXTURES / f"{name}.json", reports / name / "results.json")
    again = fleetaudit("history", "import", str(reports), env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith("0 run(s) recorded, 3 already")

    listed = fleetaudit("history", env=env)
    assert listed.returncode == 0, listed.stderr
    for name in NAMES:
        assert drift.run_id(results(name)) in listed.stdout

    port = fleetaudit("history", "--host", "lab-03", "--port", "8000/tcp", env=env)
    assert port.returncode == 0, port.stderr
    lines = port.stdout.splitlines()
    assert lines[0] == "lab-03 8000/tcp"
    assert f"first seen  {drift.run_id(results('before'))}" in port.stdout
    assert f"last seen   {drift.run_id(results('again'))}" in port.stdout
    assert f"changed in  {drift.run_id(results('after'))}" in port.stdout

    previous = fleetaudit("diff", "--previous", "--fail-on-change", env=env)
    files = fleetaudit("diff", str(FIXTURES / "again.json"), str(FIXTURES / "after.json"),
                       "--fail-on-change", env={"FLEETAUDIT_HISTORY": "none"})
    assert previous.returncode == files.returncode == 1, previous.stderr + files.stderr
    assert previous.stdout == files.stdout
    for host, port_number in (("lab-01", 8888), ("lab-02", 8081), ("lab-03", 8000)):
        assert f"  {host} (" in files.stdout and f"    {port_number}/tcp" in files.stdout
    same = fleetaudit("diff", drift.run_id(results("before")), drift.run_id(results("again")),
                      "--fail-on-change", env=env)
    assert same.returncode == 0 and "nothing changed since" in same.stdout


def test_history_location_errors_are_config_errors(tmp_path):
    bad = fleetaudit("history", "--history", "mysql://user@host/db")
    assert bad.returncode == 2 and "SQLite and PostgreSQL" in bad.stderr
    unknown = fleetaudit("diff", "nope", "nope-either", "--history", str(tmp_path / "h.sqlite"))
    assert unknown.returncode == 2 and "no run 'nope'" in unknown.stderr


def test_recorded_times_are_utc(store_path):
    with open_store(store_path) as store:
        store.record(results("before"))
        [run] = store.runs()
    assert run.started_at.tzinfo is not None and run.started_at.utcoffset() == timedelta(0)
    assert run.recorded_at <= datetime.now(UTC)
