"""The report layer's only file I/O: put the chosen report files on disk, owner-only.

Every file describes the fleet's attack surface, so each is created 0600 (and
the directory 0700 when we create it), and each is replaced atomically so a
crash never leaves a half-written report or widens an existing file's mode.
All formats are rendered before the first byte is written: a renderer that
fails leaves the directory as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fleetaudit.models import AuditResults
from fleetaudit.report.formats import DEFAULT_FORMATS, FILENAMES, RENDERERS, Format, parse_formats

RESULTS_JSON = FILENAMES[Format.JSON]
INDEX_HTML = FILENAMES[Format.HTML]


@dataclass(frozen=True)
class ReportPaths:
    directory: Path
    files: Mapping[Format, Path]

    @property
    def results_json(self) -> Path | None:
        return self.files.get(Format.JSON)

    @property
    def index_html(self) -> Path | None:
        return self.files.get(Format.HTML)


def write_report(
    results: AuditResults,
    out_dir: Path,
    formats: Iterable[Format | str] = DEFAULT_FORMATS,
) -> ReportPaths:
    """Write the chosen formats (default results.json and index.html) into out_dir.

    `formats` takes Format values or names, 'all' included; an unknown name is a
    ConfigError raised before anything is written.
    """
    chosen = parse_formats(formats)
    texts = {fmt: RENDERERS[fmt](results) for fmt in chosen}
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = {fmt: out_dir / FILENAMES[fmt] for fmt in chosen}
    for fmt, text in texts.items():
        _write_private(files[fmt], text)
    return ReportPaths(out_dir, files)


def _write_private(path: Path, text: str) -> None:
    # mkstemp creates the file 0600 with O_EXCL; os.replace swaps in the new
    # inode, so a symlink or a looser mode at `path` is replaced, not followed.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
