"""The history store on a real PostgreSQL: Debian's server, a throwaway cluster under a
temp folder (initdb and pg_ctl as the postgres user: initdb refuses root), listening on
a unix socket in that folder only (no TCP), started once for this module and removed.

The same history in SQLite and in PostgreSQL must print the same `history` and `diff`;
a kill -9 while recording must leave the earlier runs and no part of the killed one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from fleetaudit import drift
from fleetaudit.history.location import engine_url
from fleetaudit.history.schema import CHILDREN_FIRST
from fleetaudit.history.store import open_store
from tests.unit.test_history_store import (
    FIXTURES,
    NAMES,
    fleetaudit,
    kill_while_recording,
    results,
)

PG_USER = "postgres"


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run the server as the postgres user"
    if _pg_bin() is None:
        return "Debian's postgresql package is not installed (scripts/setup.sh --dev)"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return "no postgres user"
    return None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """The URL of a fresh server's maintenance database; the server is gone afterwards."""
    reason = _skip_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests cannot run: {reason}; CI must run them")
        pytest.skip(reason)
    bin_dir = _pg_bin()
    assert bin_dir is not None
    base = Path(tempfile.mkdtemp(prefix="fleetaudit-pg-"))
    data = base / "data"
    owner = pwd.getpwnam(PG_USER)
    os.chown(base, owner.pw_uid, owner.pw_gid)

    def as_postgres(*argv: str) -> None:
        subprocess.run(["runuser", "-u", PG_USER, "--", *argv], check=True,
                       capture_output=True, text=True, timeout=120, cwd=base)

    try:
        as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER,
                    "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        # No TCP at all: the socket in the temp folder is the only way in. -w: wait ready.
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"),
                    "-w", "-o", f"-k {base} -c listen_addresses='' -c fsync=off", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"cannot start PostgreSQL: {exc.stderr}")
    try:
        yield f"postgresql://{PG_USER}@/postgres?host={base}"
    finally:
        subprocess.run(["runuser", "-u", PG_USER, "--", str(bin_dir / "pg_ctl"), "-D",
                        str(data), "-m", "immediate", "-w", "stop"], check=False,
                       capture_output=True, timeout=120, cwd=base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database(postgres: str, request: pytest.FixtureRequest) -> str:
    """A database of its own for one test, as a postgresql:// URL."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:50]
    admin = create_engine(engine_url(postgres), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres.replace("/postgres?", f"/{name}?")


def test_a_new_store_is_migrated(database):
    with open_store(database) as store:
        assert store.revision() == "0001"
        assert store.engine.dialect.name == "postgresql"
    engine = create_engine(engine_url(database))
    with engine.connect() as conn:
        tables = set(conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    engine.dispose()
    assert tables == {t.name for t in CHILDREN_FIRST} | {"alembic_version"}


def test_runs_read_back_as_recorded(database):
    with open_store(database) as store:
        for name in NAMES:
            run_id, new = store.record(results(name))
            assert new and store.snapshot(run_id) == drift.snapshot(results(name))


def test_sqlite_and_postgresql_print_the_same_history_and_diff(database, tmp_path):
    stores = {"sqlite": str(tmp_path / "history.sqlite"), "postgresql": database}
    printed: dict[str, list[str]] = {}
    for kind, location in stores.items():
        env = {"FLEETAUDIT_HISTORY": location}
        done = fleetaudit("history", "import", *(str(FIXTURES / f"{n}.json") for n in NAMES),
                          env=env)
        assert done.returncode == 0, done.stderr
        outputs = []
        for args in (("history",), ("history", "--host", "lab-02"),
                     ("history", "--port", "8000"), ("history", "--host", "lab-01",
                                                     "--port", "8888/tcp"),
                     ("diff", "--previous"), ("diff", "--previous", "--json"),
                     ("diff", drift.run_id(results("before")), drift.run_id(results("after")))):
            run = fleetaudit(*args, env=env)
            assert run.returncode == 0, (kind, args, run.stderr)
            outputs.append(run.stdout)
        printed[kind] = outputs
    assert printed["sqlite"] == printed["postgresql"]
    assert "lab-02 8081/tcp" in printed["sqlite"][1]
    assert "binary replaced" in printed["sqlite"][4]


def test_kill_9_while_recording_leaves_no_partial_run(database):
    kill_while_recording(database)
