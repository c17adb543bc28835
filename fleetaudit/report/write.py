"""The report layer's only file I/O: a run's report goes on disk whole, or not at all.

A report folder holds one run. The run is written into a fresh folder beside the
target (`.NAME.new-XXXX`, same filesystem), files fsynced, and then swapped with the
target in one step (renameat2 RENAME_EXCHANGE; two renames where the kernel lacks it),
after which the previous run is deleted. So a full disk, a crash or a signal leaves
either the previous report, intact, or the new one, whole: never formats of two runs
side by side, nor last run's nmap/*.xml beside this run's results. (A `runs/<time>/`
layout with a `latest` link would do the same but changes every documented path:
`--out DIR` keeps meaning DIR/results.json.) When the new report cannot be written,
its results.json is saved in the temp directory and the error names it.

Every file describes the fleet's attack surface: files are 0600, the folder 0700.
A target folder that holds anything else than a report is refused, never replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetaudit.errors import ReportWriteError
from fleetaudit.models import AuditResults
from fleetaudit.report.formats import DEFAULT_FORMATS, FILENAMES, RENDERERS, Format, parse_formats
from fleetaudit.report.journal import JOURNAL
from fleetaudit.report.json_results import results_json_chunks

__all__ = ["EVIDENCE_DIR", "INDEX_HTML", "RESULTS_JSON", "ReportPaths", "StagedReport",
           "stage_report", "write_evidence", "write_report"]

RESULTS_JSON = FILENAMES[Format.JSON]
INDEX_HTML = FILENAMES[Format.HTML]
EVIDENCE_DIR = "nmap"  # DIR/nmap/<name>.xml: each nmap process's raw report
_EVIDENCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# What a report folder may hold (and so may be replaced): its files, its evidence, and
# what an interrupted older version left (.NAME.*.tmp).
# The journal of the run being written into the folder (report.journal) belongs there too.
_REPORT_NAMES = frozenset(FILENAMES.values()) | {EVIDENCE_DIR, JOURNAL}
_LEFTOVER = re.compile(r"\..+\.tmp")


@dataclass(frozen=True)
class ReportPaths:
    directory: Path
    files: Mapping[Format, Path]
    evidence: Sequence[Path] = ()

    @property
    def results_json(self) -> Path | None:
        return self.files.get(Format.JSON)

    @property
    def index_html(self) -> Path | None:
        return self.files.get(Format.HTML)


@dataclass
class StagedReport:
    """A run written in full beside its target, not yet in place: `commit()` or `discard()`."""

    target: Path  # where the report goes (symlinks resolved)
    out_dir: Path  # as the caller named it, for the paths handed back
    staging: Path | None
    files: dict[Format, str]
    evidence: list[str] = field(default_factory=list)

    def commit(self) -> ReportPaths:
        """Swap the new run into place, then delete the previous one. One rename: a signal
        should not land between it and the bookkeeping (the CLI defers them)."""
        staging = self.staging
        if staging is None:
            raise RuntimeError("this staged report was committed or discarded already")
        try:
            replaced = _swap(staging, self.target)
        except OSError as exc:
            self.discard()
            raise ReportWriteError(
                f"cannot put the report in place at {self.out_dir}: {_why(exc)}; "
                "the previous report there is unchanged") from exc
        self.staging = None
        if replaced is not None:
            shutil.rmtree(replaced, ignore_errors=True)  # the previous run
        with contextlib.suppress(OSError):
            _fsync_dir(self.target.parent)
        return ReportPaths(
            self.out_dir, {fmt: self.out_dir / name for fmt, name in self.files.items()},
            [self.out_dir / EVIDENCE_DIR / name for name in self.evidence])

    def discard(self) -> None:
        """Remove the staged run (idempotent; nothing to do after commit)."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def write_report(
    results: AuditResults,
    out_dir: Path,
    formats: Iterable[Format | str] = DEFAULT_FORMATS,
    *,
    evidence: Sequence[tuple[str, bytes]] = (),
    carry_over: bool = False,
) -> ReportPaths:
    """Write the chosen formats (default results.json and index.html), and each
    (name, xml) of `evidence` as nmap/<name>.xml, as out_dir's one run (see the module).

    `formats` takes Format values or names, 'all' included; an unknown name is a
    ConfigError raised before anything is written. `carry_over`: re-rendering a run in
    its own folder, keep the files of it not rendered again. Raises ReportWriteError
    (the previous report unchanged) when the report cannot be written.
    """
    staged = stage_report(results, out_dir, formats, evidence=evidence,
                          carry_over=carry_over)
    try:
        return staged.commit()
    finally:
        staged.discard()


def stage_report(
    results: AuditResults,
    out_dir: Path,
    formats: Iterable[Format | str] = DEFAULT_FORMATS,
    *,
    evidence: Sequence[tuple[str, bytes]] = (),
    carry_over: bool = False,
) -> StagedReport:
    """Render and write the whole run beside out_dir; nothing at out_dir changes yet.

    On any failure or interruption the staged folder is removed; on an OSError (a full
    disk) this run's results.json is saved in the temp directory, named in the error.
    """
    chosen = parse_formats(formats)
    for name, _ in evidence:
        if not _EVIDENCE_NAME.fullmatch(name):
            raise ValueError(f"not an evidence file name: {name!r}")
    target = Path(os.path.realpath(out_dir))
    staging: Path | None = None
    try:
        _check_replaceable(target, out_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
        # One format at a time, each dropped once written, results.json host by host: at
        # 5,000 hosts the six texts held together, and results.json's whole-run tree,
        # tripled the controller's memory.
        with _gc_spared():
            for fmt in chosen:
                if fmt is Format.JSON:
                    _write_json(staging / FILENAMES[fmt], results)
                elif fmt is Format.HTML:
                    from fleetaudit.report.html import html_chunks  # its template engine: lazily
                    _write_new(staging / FILENAMES[fmt], _encoded(html_chunks(results)))
                else:
                    _write_new(staging / FILENAMES[fmt],
                               RENDERERS[fmt](results).encode("utf-8"))
        written = write_evidence(staging, evidence)
        kept = _carry_over(target, staging, set(chosen), bool(evidence)) if carry_over else {}
        _fsync_dir(staging)
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            saved = _save_elsewhere(results)
            where = (f"; this run's results were saved to {saved}" if saved
                     else "; this run's results could not be saved anywhere")
            raise ReportWriteError(
                f"cannot write the report to {out_dir}: {_why(exc)}; the previous report "
                f"there is unchanged{where}", saved=str(saved) if saved else None) from exc
        raise
    names = {fmt: FILENAMES[fmt] for fmt in chosen} | kept
    return StagedReport(target, out_dir, staging, names, [p.name for p in written])


def write_evidence(folder: Path, xmls: Sequence[tuple[str, bytes]]) -> list[Path]:
    """Write each (name, xml) as folder/nmap/<name>.xml (0700 folder, 0600 files); returns
    the paths, in order. Names come from fleetaudit itself ("tcp-discovery-01"); anything
    else (a path separator, a dot) is refused rather than written somewhere else.
    """
    if not xmls:
        return []
    for name, _ in xmls:
        if not _EVIDENCE_NAME.fullmatch(name):
            raise ValueError(f"not an evidence file name: {name!r}")
    evidence = folder / EVIDENCE_DIR
    evidence.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for name, data in xmls:
        path = evidence / f"{name}.xml"
        _write_new(path, data)
        written.append(path)
    _fsync_dir(evidence)
    return written


def _write_new(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Create `path` 0600 (never following or reusing what is there), write `data` (or
    each of its pieces, as they come), fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "wb") as handle:
        for piece in (data,) if isinstance(data, bytes) else data:
            handle.write(piece)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def _gc_spared() -> Iterator[None]:
    """Render with what exists now (the run's results) set aside from the cyclic garbage
    collector, which otherwise walks every one of their objects at each full collection:
    at 5,000 hosts, millions of objects and a quarter of the rendering's CPU. Unfrozen
    after; left alone when the caller froze objects of its own (gc.freeze is global)."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _write_json(path: Path, results: AuditResults) -> None:
    """results.json as `results_to_json` words it, written host by host: UTF-8, or, when
    some text cannot be (a lone surrogate), the whole file again in ASCII with escapes."""
    try:
        _write_new(path, _encoded(results_json_chunks(results)))
    except UnicodeEncodeError:
        _write_new(path, _encoded(results_json_chunks(results, ensure_ascii=True)))


def _encoded(pieces: Iterable[str], size: int = 1 << 16) -> Iterator[bytes]:
    """The pieces as UTF-8, joined into blocks of about `size` characters (a template's
    pieces are a few characters each)."""
    block: list[str] = []
    held = 0
    for piece in pieces:
        block.append(piece)
        held += len(piece)
        if held >= size:
            yield "".join(block).encode("utf-8")
            block, held = [], 0
    if block:
        yield "".join(block).encode("utf-8")


def _check_replaceable(target: Path, out_dir: Path) -> None:
    """A folder is replaced whole: only if it holds nothing but a report."""
    try:
        entries = sorted(os.listdir(target))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise ReportWriteError(f"cannot write the report to {out_dir}: not a folder") from None
    foreign = [e for e in entries if e not in _REPORT_NAMES and not _LEFTOVER.fullmatch(e)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ReportWriteError(
            f"{out_dir} holds files that are not part of a fleetaudit report ({shown}); "
            "a report replaces its whole folder: choose a new or empty --out")


def _carry_over(target: Path, staging: Path, rendered: set[Format],
                with_evidence: bool) -> dict[Format, str]:
    """The target's report files not rendered again (and its evidence), into staging."""
    kept: dict[Format, str] = {}
    for fmt, name in FILENAMES.items():
        source = target / name
        if fmt not in rendered and source.is_file() and not source.is_symlink():
            _write_new(staging / name, source.read_bytes())
            kept[fmt] = name
    evidence = target / EVIDENCE_DIR
    if not with_evidence and evidence.is_dir() and not evidence.is_symlink():
        write_evidence(staging, [(p.stem, p.read_bytes()) for p in sorted(evidence.glob("*.xml"))
                                 if _EVIDENCE_NAME.fullmatch(p.stem) and not p.is_symlink()])
    return kept


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _swap(staging: Path, target: Path) -> Path | None:
    """Put staging at target; returns the folder now holding the previous run, if there
    was one. Atomic where RENAME_EXCHANGE exists: the target always names a whole report."""
    try:
        os.rename(staging, target)  # no target yet (or an empty folder)
        return None
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    if _exchange(staging, target):
        return staging
    # No RENAME_EXCHANGE here: two renames; only a crash between them leaves no target
    # (both runs are still there, under names beside it).
    previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, previous / "report")
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(previous / "report", target)
        previous.rmdir()
        raise
    return previous


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(a, b, RENAME_EXCHANGE); False where the kernel or filesystem lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_elsewhere(results: AuditResults) -> Path | None:
    """This run's results.json in the temp directory (0600), when its folder could not
    be written: an audit of a fleet is not thrown away for a full disk."""
    try:
        fd, name = tempfile.mkstemp(prefix="fleetaudit-results-", suffix=".json")
        os.close(fd)
        try:
            _write_json(Path(name), results)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)
    except OSError:
        return None


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
