"""The history on the command line: `fleetaudit history`, `history import`, `diff`, and
what `audit` does with the store (compare before the report is written, record after).

Thin, as cli.py: the store is fleetaudit.history's, the diff fleetaudit.drift's, the
words fleetaudit.report.drift_view's. A store that fails never loses an audit: the
report is written (or kept) and the message says what the history could not do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetaudit.drift import (
    Drift,
    Snapshot,
    compare,
    ref,
    snapshot,
    timeline,
    trend_point,
)
from fleetaudit.errors import ConfigError, FleetAuditError
from fleetaudit.exitcodes import ExitCode
from fleetaudit.history.errors import HistoryError
from fleetaudit.history.location import DISABLED, HISTORY_ENV, default_location
from fleetaudit.models import AuditResults, Proto
from fleetaudit.report import results_from_json
from fleetaudit.report.drift_view import change_words, since, text_lines, when
from fleetaudit.terminal import out, say

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic) is imported when used: startup stays fast
    from fleetaudit.history.store import HistoryStore

TREND_RUNS = 10  # runs in the report's compliance trend, this one included
RESULTS = "results.json"

history_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                          help="The run history: every audit recorded, and what changed.")

HistoryOption = Annotated[str | None, typer.Option(
    "--history", metavar="PATH|URL", envvar=HISTORY_ENV, show_envvar=True,
    help="History store: a SQLite file or a postgresql:// URL (default: "
         "~/.local/share/fleetaudit/history.sqlite; 'none': no history)")]


def _location(value: str | None) -> str:
    return value if value else default_location()


def open_store(location: str) -> HistoryStore:
    from fleetaudit.history.store import open_store as opening

    return opening(location)


def _open(value: str | None) -> HistoryStore:
    location = _location(value)
    if location == DISABLED:
        raise ConfigError("no history store (--history none)")
    return open_store(location)


def _fail(exc: FleetAuditError) -> typer.Exit:
    say(("error:", "red"), " ", str(exc))
    return typer.Exit(ExitCode.CONFIG)


# --- audit ---------------------------------------------------------------------------------


@dataclass
class AuditHistory:
    """What `audit` was asked to do with the history, and what became of it."""

    location: str | None = None
    compare_to: str | None = None  # None: the previous run of the inventory; "none": no diff
    fail_on_change: bool = False
    keep_runs: int | None = None
    keep_days: int | None = None
    store: HistoryStore | None = field(default=None, repr=False)
    failed: bool = False  # the store could not be read or written

    def compare(self, results: AuditResults) -> AuditResults:
        """`results` with what changed since the baseline run (before the report is written)."""
        location = _location(self.location)
        if location != DISABLED:
            try:
                self.store = open_store(location)
            except HistoryError as exc:
                self._trouble(f"{exc}; this run is not compared with earlier ones")
        if self.compare_to == DISABLED:
            return results
        current = snapshot(results)
        try:
            baseline = self._baseline(results, current)
        except FleetAuditError as exc:  # the audit is done: never lose it for its baseline
            self._trouble(f"{exc}; this run is not compared with earlier ones")
            return results
        if baseline is None:
            if self.store is not None:
                say("history: no earlier run of ", results.inventory, " in ", self.store.name,
                    ": nothing to compare with yet")
            return results
        trend = []
        if self.store is not None:
            try:
                trend = self.store.trend(results.inventory, before=current.run,
                                         limit=TREND_RUNS - 1)
            except HistoryError as exc:
                self._trouble(str(exc))
        drift = compare(baseline, current, [*trend, trend_point(current)])
        if drift.changed:
            say(("changed since ", "yellow"), since(drift), ": ",
                f"{len(drift.changes)} change(s) on {len(drift.hosts)} host(s)")
        else:
            say("nothing changed since ", since(drift))
        return results.model_copy(update={"drift": drift})

    def _baseline(self, results: AuditResults, current: Snapshot) -> Snapshot | None:
        if self.compare_to is not None:
            return _resolve(self.compare_to, self.store)
        if self.store is None:
            return None
        previous = self.store.previous(results.inventory, before=current.run)
        return self.store.snapshot(previous.run_id) if previous else None

    def record(self, results: AuditResults, out_dir: Path, code: int) -> int:
        """Record the run (after its report was written), apply retention, and decide the
        exit code `--fail-on-change` asks for."""
        drift = results.drift
        if self.fail_on_change and drift is not None and drift.fails:
            say(("--fail-on-change: ", "red"), "something new opened or a binary changed "
                "since ", since(drift))
            code = ExitCode.FINDINGS
        store = self.store
        if store is not None:
            try:
                run_id, new = store.record(results, report_dir=os.path.abspath(out_dir),
                                           exit_status=code)
                say(f"history: run {run_id} {'recorded' if new else 'was already'} in ",
                    store.name)
                if self.keep_runs is not None or self.keep_days is not None:
                    gone = store.retain(results.inventory, keep_runs=self.keep_runs,
                                        keep_days=self.keep_days)
                    if gone:
                        say(f"history: retention removed {len(gone)} older run(s)")
            except HistoryError as exc:
                self._trouble(f"{exc}; the report is kept in {out_dir}")
            finally:
                store.close()
        if self.failed and self.fail_on_change and code == ExitCode.OK:
            # A nightly job asked to be told of changes: a store it cannot use is no "none".
            code = ExitCode.CONFIG
        return code

    def _trouble(self, message: str) -> None:
        self.failed = True
        say(("history: ", "yellow"), message)


# --- resolving runs ------------------------------------------------------------------------


def _results_file(arg: str) -> Path | None:
    path = Path(arg)
    if path.is_dir() and (path / RESULTS).is_file():
        return path / RESULTS
    if path.is_file():
        return path
    return None


def _read_results(path: Path) -> AuditResults:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return results_from_json(text)


def _resolve(arg: str, store: HistoryStore | None) -> Snapshot:
    """A results.json (or a run folder holding one), else a run id (or a unique prefix)."""
    path = _results_file(arg)
    if path is not None:
        return snapshot(_read_results(path))
    if store is None:
        raise ConfigError(f"{arg}: no such results.json, and no history store to find a "
                          "run id in")
    return store.snapshot(arg)


# --- diff ----------------------------------------------------------------------------------


def diff(
    old: Annotated[str | None, typer.Argument(
        help="The earlier run: a results.json, a run folder, or a run id from the history")
    ] = None,
    new: Annotated[str | None, typer.Argument(help="The later run, the same ways")] = None,
    previous: Annotated[bool, typer.Option(
        "--previous", help="Compare a run (the one argument, or the latest recorded) with the "
                           "run of its inventory before it in the history")] = False,
    history: HistoryOption = None,
    inventory: Annotated[str | None, typer.Option(
        "--inventory", "-i", help="With --previous and no run: the inventory whose latest "
                                  "run to take (needed when the history holds several)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON")] = False,
    fail_on_change: Annotated[bool, typer.Option(
        "--fail-on-change", help="Exit 1 when something new opened or a binary changed")
    ] = False,
) -> None:
    """What changed between two runs: ports, services, processes, binaries, findings, hosts."""
    store: HistoryStore | None = None
    try:
        if previous:
            if new is not None:
                raise ConfigError("--previous takes one run, not two")
            store = _open(history)
            later = _resolve(old, store) if old is not None else _latest(store, inventory)
            earlier_info = store.previous(later.run.inventory, before=later.run)
            if earlier_info is None:
                raise ConfigError(f"no run of {later.run.inventory} before "
                                  f"{later.run.run_id} in {store.name}")
            earlier = store.snapshot(earlier_info.run_id)
        else:
            if old is None or new is None:
                raise ConfigError("give two runs (OLD NEW), or --previous [RUN]")
            needs_store = _results_file(old) is None or _results_file(new) is None
            store = _open(history) if needs_store else None
            earlier, later = _resolve(old, store), _resolve(new, store)
        drift = compare(earlier, later)
    except FleetAuditError as exc:
        raise _fail(exc) from exc
    finally:
        if store is not None:
            store.close()
    if as_json:
        say(drift.model_dump_json(indent=2), to=out, lines=True)
    else:
        for line in text_lines(drift):
            say(line, to=out)
    raise typer.Exit(ExitCode.FINDINGS if fail_on_change and drift.fails else ExitCode.OK)


def _latest(store: HistoryStore, inventory: str | None) -> Snapshot:
    runs = store.runs(inventory)
    if not runs:
        raise ConfigError(f"no runs{f' of {inventory}' if inventory else ''} in {store.name}")
    inventories = sorted({r.inventory for r in runs})
    if len(inventories) > 1:
        raise ConfigError("the history holds several inventories; choose one with "
                          "--inventory: " + ", ".join(inventories))
    return store.snapshot(runs[-1].run_id)


# --- history -------------------------------------------------------------------------------


@history_app.callback()
def history(
    ctx: typer.Context,
    history: HistoryOption = None,
    inventory: Annotated[str | None, typer.Option(
        "--inventory", "-i", help="Only this inventory's runs (as audit recorded its path)")
    ] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="The timeline of this host's ports")] = None,
    port: Annotated[str | None, typer.Option(
        "--port", metavar="PORT[/PROTO]", help="The timeline of this port (22, 53/udp)")
    ] = None,
) -> None:
    """List the recorded runs; with --host or --port, each port's timeline: first and last
    seen, by which process, in which runs it changed."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        wanted = _port(port) if port else None
        with _open(history) as store:
            if host is None and wanted is None:
                lines = _run_lines(store, inventory)
            else:
                lines = _timeline_lines(store, inventory, host, wanted)
    except FleetAuditError as exc:
        raise _fail(exc) from exc
    for line in lines:
        say(line, to=out)
    raise typer.Exit(ExitCode.OK)


def _port(text: str) -> tuple[Proto | None, int]:
    number, _, proto = text.partition("/")
    try:
        value = int(number)
        chosen = Proto(proto.lower()) if proto else None
    except ValueError:
        raise ConfigError(f"--port {text!r}: expected PORT or PORT/tcp or PORT/udp") from None
    if not 0 <= value <= 65535:
        raise ConfigError(f"--port {text!r}: not a port number")
    return chosen, value


def _run_lines(store: HistoryStore, inventory: str | None) -> list[str]:
    runs = store.runs(inventory)
    if not runs:
        return [f"no runs{f' of {inventory}' if inventory else ''} in {store.name}"]
    lines = []
    for name in sorted({r.inventory for r in runs}):
        mine = [r for r in runs if r.inventory == name]
        lines += [f"inventory {name}: {len(mine)} run(s)",
                  f"  {'run':<26} {'started':<23} {'hosts':>5} {'compliant':>9} "
                  f"{'findings':>8} {'exit':>4}  report"]
        for r in mine:
            exit_status = "-" if r.exit_status is None else str(r.exit_status)
            lines.append(f"  {r.run_id:<26} {when(r.started_at):<23} {r.hosts_total:>5} "
                         f"{r.hosts_compliant:>9} {r.findings_active:>8} {exit_status:>4}  "
                         f"{r.report_dir or '-'}")
    return lines


def _timeline_lines(store: HistoryStore, inventory: str | None, host: str | None,
                    port: tuple[Proto | None, int] | None) -> list[str]:
    runs = store.runs(inventory)
    inventories = sorted({r.inventory for r in runs})
    if not inventories:
        return [f"no runs{f' of {inventory}' if inventory else ''} in {store.name}"]
    if len(inventories) > 1:
        raise ConfigError("the history holds several inventories; choose one with "
                          "--inventory: " + ", ".join(inventories))
    snaps = store.snapshots(inventories[0], host=host, port=port[1] if port else None)
    sightings = timeline(snaps, host, port)
    if not sightings:
        what = " ".join(x for x in (host or "", f"port {port[1]}" if port else "") if x)
        return [f"{what}: never seen open or listening in {len(snaps)} run(s) of "
                f"{inventories[0]}"]
    lines = []
    for s in sightings:
        lines += [
            f"{s.host} {s.port}/{s.proto.value}",
            f"  first seen  {s.first_seen.run_id} ({when(s.first_seen.started_at)})",
            f"  last seen   {s.last_seen.run_id} ({when(s.last_seen.started_at)})",
            f"  seen in     {s.runs_seen} of {s.runs_total} run(s) that reached the host",
            f"  processes   {', '.join(s.processes) or '-'}",
        ]
        for run, changes in s.changed_in:
            words = "; ".join(f"{change_words(c.kind, c.side)}: {c.message}" for c in changes)
            lines.append(f"  changed in  {run.run_id} ({when(run.started_at)}): {words}")
    return lines


@history_app.command("import")
def history_import(
    folders: Annotated[list[Path], typer.Argument(
        help="results.json files, run folders, or folders holding run folders")],
    history: HistoryOption = None,
) -> None:
    """Record existing results.json files in the history, oldest first, so past runs count."""
    try:
        found = _find_results(folders)
        if not found:
            raise ConfigError("no results.json found in " + ", ".join(map(str, folders)))
        loaded = sorted(((path, _read_results(path)) for path in found),
                        key=lambda item: (ref(item[1]).started_at, ref(item[1]).run_id))
        with _open(history) as store:
            added = 0
            for path, results in loaded:
                run_id, new = store.record(results, report_dir=os.path.abspath(path.parent))
                added += new
                say(f"{'recorded' if new else 'already there'}: {run_id} from ", path, to=out)
            say(f"{added} run(s) recorded, {len(loaded) - added} already in {store.name}",
                to=out)
    except FleetAuditError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(ExitCode.OK)


def _find_results(folders: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        if folder.is_file():
            found.append(folder)
        elif folder.is_dir():
            found += sorted(p for p in folder.rglob(RESULTS) if p.is_file())
        else:
            raise ConfigError(f"{folder}: no such file or folder")
    return list(dict.fromkeys(found))


def register(app: typer.Typer) -> None:
    """Add `history` and `diff` to the main command line."""
    app.add_typer(history_app, name="history")
    app.command("diff")(diff)


__all__ = ["AuditHistory", "Drift", "register"]
