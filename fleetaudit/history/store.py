"""Recording runs and reading them back: snapshots in, snapshots out, one transaction a run."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, Row, create_engine, delete, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fleetaudit.drift import (
    FindingObs,
    HostObs,
    PortObs,
    ProcessObs,
    RunRef,
    Snapshot,
    TrendPoint,
    snapshot,
)
from fleetaudit.history import schema
from fleetaudit.history.errors import HistoryError
from fleetaudit.history.location import display_url, engine_url
from fleetaudit.models import AuditResults, HostStatus, Model, Proto, Severity

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key: two CI runners opening a new store migrate one at a time.
_MIGRATION_LOCK = 0x66_6C_65_65_74  # "fleet"
_SQLITE_BUSY_SECONDS = 30


class RunInfo(Model):
    """One recorded run, as `fleetaudit history` lists it."""

    run_id: str
    inventory: str
    started_at: datetime
    finished_at: datetime
    recorded_at: datetime
    tool_version: str
    policy: str | None = None
    exit_status: int | None = None
    report_dir: str | None = None
    hosts_total: int
    hosts_compliant: int
    findings_active: int

    @property
    def ref(self) -> RunRef:
        return RunRef(run_id=self.run_id, inventory=self.inventory, started_at=self.started_at)

    @property
    def trend_point(self) -> TrendPoint:
        return TrendPoint(run_id=self.run_id, started_at=self.started_at,
                          hosts_total=self.hosts_total, hosts_compliant=self.hosts_compliant,
                          findings_active=self.findings_active)


def open_store(location: str) -> HistoryStore:
    """Open (creating and migrating as needed) the store at a path or URL."""
    url = engine_url(location)
    name = display_url(url)
    if url.get_backend_name() == "sqlite" and url.database:
        _prepare_sqlite_file(Path(url.database), name)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        connect_args["timeout"] = _SQLITE_BUSY_SECONDS
    else:
        connect_args["connect_timeout"] = 10
    try:
        engine = create_engine(url, connect_args=connect_args)
    except (SQLAlchemyError, ImportError) as exc:
        raise HistoryError(f"cannot open the history store {name}: {exc}") from exc
    store = HistoryStore(engine, url)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def _prepare_sqlite_file(path: Path, name: str) -> None:
    """The history maps the fleet's attack surface: its folder 0700, the file 0600."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError as exc:
        raise HistoryError(f"cannot create the history store {name}: "
                           f"{exc.strerror or exc}") from exc


class HistoryStore:
    def __init__(self, engine: Engine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self.name = display_url(url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _failing(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise HistoryError(f"cannot {doing} the history store {self.name}: "
                               f"{reason}") from exc

    # --- schema ---------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to this version's head; refuse a store from a newer fleetaudit."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        script = ScriptDirectory.from_config(config)
        head = script.get_current_head()
        with self._failing("migrate"), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _MIGRATION_LOCK})
            current = MigrationContext.configure(conn).get_current_revision()
            if current == head:
                return
            known = {rev.revision for rev in script.walk_revisions()}
            if current is not None and current not in known:
                raise HistoryError(
                    f"the history store {self.name} has schema revision {current}, newer "
                    f"than this fleetaudit knows (up to {head}): upgrade fleetaudit")
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise HistoryError(f"cannot migrate the history store {self.name}: "
                                   f"{exc}") from exc

    def revision(self) -> str | None:
        with self._failing("read"), self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # --- writing --------------------------------------------------------------------

    def record(self, results: AuditResults, *, report_dir: str | None = None,
               exit_status: int | None = None) -> tuple[str, bool]:
        """Record a run in one transaction; returns its id and False when it was there
        already (importing the same results.json twice records it once)."""
        snap = snapshot(results)
        return snap.run.run_id, self.record_snapshot(snap, report_dir=report_dir,
                                                     exit_status=exit_status)

    def record_snapshot(self, snap: Snapshot, *, report_dir: str | None = None,
                        exit_status: int | None = None) -> bool:
        run_id = snap.run.run_id
        rows = _rows(snap)
        try:
            with self._failing("record a run in"), self.engine.begin() as conn:
                if conn.execute(select(schema.runs.c.run_id)
                                .where(schema.runs.c.run_id == run_id)).first():
                    return False
                conn.execute(schema.runs.insert(), [{
                    "run_id": run_id, "inventory": snap.run.inventory,
                    "started_at": snap.run.started_at, "finished_at": snap.finished_at,
                    "recorded_at": datetime.now(UTC), "tool_version": snap.tool_version,
                    "policy": snap.policy, "exit_status": exit_status, "report_dir": report_dir,
                    "hosts_total": snap.hosts_total, "hosts_compliant": snap.hosts_compliant,
                    "findings_active": snap.findings_active}])
                for table in (schema.hosts, schema.ports, schema.listeners, schema.findings):
                    if rows[table.name]:
                        conn.execute(table.insert(), rows[table.name])
        except HistoryError as exc:
            if isinstance(exc.__cause__, IntegrityError) and self.has_run(run_id):
                return False  # another recorder got there first
            raise
        return True

    def retain(self, inventory: str, *, keep_runs: int | None = None,
               keep_days: int | None = None, now: datetime | None = None) -> list[str]:
        """Delete the inventory's runs beyond the `keep_runs` newest, or older than
        `keep_days`; returns the ids deleted. One transaction."""
        runs = schema.runs
        doomed: set[str] = set()
        with self._failing("apply retention to"), self.engine.begin() as conn:
            if keep_runs is not None:
                rows = conn.execute(select(runs.c.run_id).where(runs.c.inventory == inventory)
                                    .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
                                    .offset(keep_runs))
                doomed |= {r.run_id for r in rows}
            if keep_days is not None:
                cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
                rows = conn.execute(select(runs.c.run_id).where(
                    runs.c.inventory == inventory, runs.c.started_at < cutoff))
                doomed |= {r.run_id for r in rows}
            if doomed:
                for table in schema.CHILDREN_FIRST:
                    conn.execute(delete(table).where(table.c.run_id.in_(sorted(doomed))))
        return sorted(doomed)

    # --- reading --------------------------------------------------------------------

    def runs(self, inventory: str | None = None) -> list[RunInfo]:
        """Recorded runs, oldest first (of one inventory, or all)."""
        query = select(schema.runs).order_by(schema.runs.c.started_at, schema.runs.c.run_id)
        if inventory is not None:
            query = query.where(schema.runs.c.inventory == inventory)
        with self._failing("read"), self.engine.connect() as conn:
            infos = [_run_info(row) for row in conn.execute(query)]
        # Sorted here too: a PostgreSQL collation may order text otherwise than SQLite.
        return sorted(infos, key=lambda r: (r.started_at, r.run_id))

    def has_run(self, run_id: str) -> bool:
        with self._failing("read"), self.engine.connect() as conn:
            return conn.execute(select(schema.runs.c.run_id)
                                .where(schema.runs.c.run_id == run_id)).first() is not None

    def find(self, run_id: str) -> RunInfo:
        """A run by its id or a unique prefix of it."""
        runs = schema.runs
        with self._failing("read"), self.engine.connect() as conn:
            rows = list(conn.execute(select(runs).where(runs.c.run_id.startswith(
                run_id, autoescape=True)).order_by(runs.c.run_id).limit(3)))
        exact = [r for r in rows if r.run_id == run_id]
        if exact or len(rows) == 1:
            return _run_info((exact or rows)[0])
        if not rows:
            raise HistoryError(f"no run {run_id!r} in the history store {self.name}")
        raise HistoryError(f"{run_id!r} names several runs in {self.name}: "
                           + ", ".join(r.run_id for r in rows[:2]) + ", ...")

    def previous(self, inventory: str, before: RunRef | None = None) -> RunInfo | None:
        """The last run of `inventory` (started before `before`, when given)."""
        runs = [r for r in self.runs(inventory)
                if before is None or (r.started_at, r.run_id) < (before.started_at,
                                                                 before.run_id)]
        return runs[-1] if runs else None

    def trend(self, inventory: str, before: RunRef | None = None,
              limit: int = 10) -> list[TrendPoint]:
        runs = [r for r in self.runs(inventory)
                if before is None or (r.started_at, r.run_id) < (before.started_at,
                                                                 before.run_id)]
        return [r.trend_point for r in runs[-limit:]] if limit > 0 else []

    def snapshot(self, run_id: str) -> Snapshot:
        info = self.find(run_id)
        [snap] = self._snapshots([info])
        return snap

    def snapshots(self, inventory: str, *, host: str | None = None,
                  port: int | None = None) -> list[Snapshot]:
        """Every run of the inventory, oldest first, reduced to one host and one port
        when asked (filtered in the database)."""
        return self._snapshots(self.runs(inventory), host=host, port=port)

    def _snapshots(self, infos: Sequence[RunInfo], *, host: str | None = None,
                   port: int | None = None) -> list[Snapshot]:
        ids = [i.run_id for i in infos]
        if not ids:
            return []
        with self._failing("read"), self.engine.connect() as conn:
            tables = _load(conn, ids, host, port)
        out = []
        for info in infos:
            hosts = []
            for h in sorted(tables["hosts"].get(info.run_id, []), key=lambda r: r.name):
                key = (info.run_id, h.name)
                ports = [_port(p, tables["listeners"].get((*key, p.proto, p.port), []))
                         for p in sorted(tables["ports"].get(key, []),
                                         key=lambda r: (r.proto, r.port))]
                hosts.append(HostObs(
                    name=h.name, address=h.address, status=HostStatus(h.status),
                    reached=h.reached, outside=h.outside, inside=h.inside, scanned=h.scanned,
                    compliant=h.compliant, ports=ports,
                    findings=[FindingObs(id=f.finding_id, rule=f.rule,
                                         severity=Severity(f.severity),
                                         proto=Proto(f.proto) if f.proto else None,
                                         port=f.port, message=f.message)
                              for f in sorted(tables["findings"].get(key, []),
                                              key=lambda r: r.finding_id)]))
            out.append(Snapshot(
                run=info.ref, finished_at=info.finished_at, tool_version=info.tool_version,
                policy=info.policy, hosts_total=info.hosts_total,
                hosts_compliant=info.hosts_compliant, findings_active=info.findings_active,
                hosts=hosts))
        return out


def _run_info(row: Row[Any]) -> RunInfo:
    return RunInfo.model_validate(dict(row._mapping))


def _rows(snap: Snapshot) -> dict[str, list[dict[str, Any]]]:
    run_id = snap.run.run_id
    out: dict[str, list[dict[str, Any]]] = {"hosts": [], "ports": [], "listeners": [],
                                            "findings": []}
    for h in snap.hosts:
        out["hosts"].append({"run_id": run_id, "name": h.name, "address": h.address,
                             "status": h.status.value, "reached": h.reached,
                             "outside": h.outside, "inside": h.inside, "scanned": h.scanned,
                             "compliant": h.compliant})
        for p in h.ports:
            key = {"run_id": run_id, "host": h.name, "proto": p.proto.value, "port": p.port}
            out["ports"].append({**key, "outside": p.outside, "service": p.service,
                                 "addresses": " ".join(p.addresses),
                                 "verdicts": " ".join(p.verdicts)})
            out["listeners"] += [
                {**key, "seq": seq, "exe": pr.exe, "sha256": pr.sha256,
                 "package": pr.package, "version": pr.version, "user_name": pr.user,
                 "unit": pr.unit, "deleted": pr.deleted, "pids": " ".join(map(str, pr.pids))}
                for seq, pr in enumerate(p.processes)]
        out["findings"] += [
            {"run_id": run_id, "host": h.name, "finding_id": f.id, "rule": f.rule,
             "severity": f.severity.value, "proto": f.proto.value if f.proto else None,
             "port": f.port, "message": f.message}
            for f in h.findings]
    return out


def _load(conn: Connection, ids: list[str], host: str | None,
          port: int | None) -> dict[str, dict[Any, list[Row[Any]]]]:
    """The child rows of these runs, grouped by their parent's key, in a canonical order."""
    h, p, lis, f = schema.hosts, schema.ports, schema.listeners, schema.findings
    out: dict[str, dict[Any, list[Row[Any]]]] = {}
    hosts_q = select(h).where(h.c.run_id.in_(ids)).order_by(h.c.run_id, h.c.name)
    ports_q = select(p).where(p.c.run_id.in_(ids)).order_by(p.c.run_id, p.c.host, p.c.proto,
                                                             p.c.port)
    lis_q = select(lis).where(lis.c.run_id.in_(ids)).order_by(
        lis.c.run_id, lis.c.host, lis.c.proto, lis.c.port, lis.c.seq)
    find_q = select(f).where(f.c.run_id.in_(ids)).order_by(f.c.run_id, f.c.host,
                                                           f.c.finding_id)
    if host is not None:
        hosts_q = hosts_q.where(h.c.name == host)
        ports_q = ports_q.where(p.c.host == host)
        lis_q = lis_q.where(lis.c.host == host)
        find_q = find_q.where(f.c.host == host)
    if port is not None:
        ports_q = ports_q.where(p.c.port == port)
        lis_q = lis_q.where(lis.c.port == port)
        find_q = find_q.where(f.c.port == port)
    out["hosts"] = _group(conn.execute(hosts_q), lambda r: r.run_id)
    out["ports"] = _group(conn.execute(ports_q), lambda r: (r.run_id, r.host))
    out["listeners"] = _group(conn.execute(lis_q),
                              lambda r: (r.run_id, r.host, r.proto, r.port))
    out["findings"] = _group(conn.execute(find_q), lambda r: (r.run_id, r.host))
    return out


def _group(rows: Any, key: Any) -> dict[Any, list[Row[Any]]]:
    grouped: dict[Any, list[Row[Any]]] = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    return grouped


def _port(row: Row[Any], listeners: list[Row[Any]]) -> PortObs:
    return PortObs(
        proto=Proto(row.proto), port=row.port, outside=row.outside, service=row.service,
        addresses=row.addresses.split(), verdicts=row.verdicts.split(),
        processes=[ProcessObs(exe=r.exe, sha256=r.sha256, package=r.package, version=r.version,
                              user=r.user_name, unit=r.unit, deleted=r.deleted,
                              pids=[int(x) for x in r.pids.split()])
                   for r in listeners])


__all__ = ["HistoryError", "HistoryStore", "RunInfo", "open_store"]
