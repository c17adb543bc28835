"""The run's journal: each host on disk the moment it is done, so a run that dies keeps it.

A fleet audit runs for minutes; a crash, a kill -9 or a Ctrl-C at minute nine must
not throw away the hosts finished in the first eight. While the run goes, its folder
holds `journal.jsonl`: a start record (which inventory, which hosts), then one line
per finished host (its reconciled, judged result) and one per nmap process (its raw
XML, the evidence). `fleetaudit audit INVENTORY --resume RUN_DIR` reads it and audits
only the hosts it lacks. When the run's report is put in place (write.py swaps the
whole folder), the journal goes with the folder it was in.

Each line is written with one append (O_APPEND), so a kill leaves whole lines and at
most one torn last line, which reading skips. Lines are not fsynced one by one (a
power cut may lose the last seconds; a process death loses nothing written).
"""

from __future__ import annotations

import base64
import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from fleetaudit.errors import JournalError
from fleetaudit.models import HostResult, ScanRun

__all__ = ["JOURNAL", "Journal", "JournalState", "read_journal"]

JOURNAL = "journal.jsonl"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Start(_Record):
    kind: Literal["start"] = "start"
    tool_version: str
    inventory: str
    started_at: datetime
    hosts: list[str]


class HostDone(_Record):
    kind: Literal["host"] = "host"
    host: HostResult


class ScanDone(_Record):
    kind: Literal["scan"] = "scan"
    run: ScanRun  # without hosts: they are in the host records


class Evidence(_Record):
    kind: Literal["nmap"] = "nmap"
    name: str
    xml: str  # base64: nmap's XML is bytes, whatever a host put in a banner


_LINE: TypeAdapter[Start | HostDone | ScanDone | Evidence] = TypeAdapter(
    Annotated[Start | HostDone | ScanDone | Evidence, Field(discriminator="kind")])


@dataclass
class JournalState:
    """What an interrupted run had finished."""

    start: Start
    hosts: dict[str, HostResult] = field(default_factory=dict)  # by inventory name
    evidence: list[tuple[str, bytes]] = field(default_factory=list)
    scans: list[ScanRun] = field(default_factory=list)  # one per run (and resume)
    torn: int = 0  # unreadable lines skipped (the last one, cut by a kill)


class Journal:
    """Appends records to RUN_DIR/journal.jsonl; one writer per run."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def start(cls, run_dir: Path, start: Start) -> Journal:
        """A new run's journal. Refuses a folder holding an unfinished run's journal: that
        run's finished hosts are resumed (--resume), never overwritten by a typo."""
        path = run_dir / JOURNAL
        if run_dir.exists() and not run_dir.is_dir():
            raise JournalError(f"cannot write the run to {run_dir}: not a folder")
        try:
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                         | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            raise JournalError(
                f"{run_dir} holds an unfinished run ({path}): resume it with --resume "
                f"{run_dir}, or choose another --out") from None
        except NotADirectoryError:
            raise JournalError(f"cannot write the run to {run_dir}: not a folder") from None
        except OSError as exc:
            raise JournalError(f"cannot write the run to {run_dir}: "
                               f"{exc.strerror or exc}") from None
        journal = cls(path, fd)
        journal._append(start)
        return journal

    @classmethod
    def resume(cls, run_dir: Path) -> tuple[Journal, JournalState]:
        """The unfinished run in run_dir, and its journal open to add the rest."""
        state = read_journal(run_dir)
        try:
            fd = os.open(run_dir / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
                         | os.O_NOFOLLOW)
        except OSError as exc:
            raise JournalError(f"cannot resume {run_dir}: {exc.strerror or exc}") from None
        journal = cls(run_dir / JOURNAL, fd)
        if state.torn:
            journal._write(b"\n")  # a torn last line must not swallow the next record
        return journal, state

    def host(self, result: HostResult) -> None:
        self._append(HostDone(host=result))

    def scan(self, run: ScanRun) -> None:
        self._append(ScanDone(run=run.model_copy(update={"hosts": []})))

    def evidence(self, name: str, xml: bytes) -> None:
        self._append(Evidence(name=name, xml=base64.b64encode(xml).decode("ascii")))

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        """A run refused before any host: no journal, and no folder if it was all."""
        self.close()
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only if empty: a previous report stays

    def _append(self, record: _Record) -> None:
        self._write(record.model_dump_json().encode("utf-8") + b"\n")

    def _write(self, line: bytes) -> None:
        """One write: whole lines only, even when a kill comes in the middle."""
        try:
            written = os.write(self._fd, line)
        except OSError as exc:
            raise JournalError(f"cannot add to {self.path}: {exc.strerror or exc}") from None
        if written != len(line):
            raise JournalError(f"cannot add to {self.path}: short write (disk full?)")


def read_journal(run_dir: Path) -> JournalState:
    """Every record of RUN_DIR/journal.jsonl; a torn or foreign line is counted, skipped."""
    path = run_dir / JOURNAL
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(
            f"nothing to resume in {run_dir}: no {JOURNAL} (a finished run has none; "
            "its report is there)") from None
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror or exc}") from None
    state: JournalState | None = None
    torn = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = _LINE.validate_json(line)
        except ValidationError:
            torn += 1
            continue
        if isinstance(record, Start):
            if state is not None:
                raise JournalError(f"{path} holds two runs: not written by fleetaudit alone")
            state = JournalState(start=record)
        elif state is None:
            raise JournalError(f"{path} does not begin with its run's start record")
        elif isinstance(record, HostDone):
            state.hosts[record.host.name] = record.host
        elif isinstance(record, ScanDone):
            state.scans.append(record.run)
        else:
            try:
                xml = base64.b64decode(record.xml, validate=True)
            except ValueError:
                torn += 1
                continue
            state.evidence.append((record.name, xml))
    if state is None:
        raise JournalError(f"{path} has no start record: nothing to resume")
    state.torn = torn
    return state
