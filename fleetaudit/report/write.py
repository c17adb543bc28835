"""The report layer's only file I/O: put results.json and index.html on disk, owner-only.

Both files describe the fleet's attack surface, so they are created 0600 (and
the directory 0700 when we create it), and each is replaced atomically so a
crash never leaves a half-written report or widens an existing file's mode.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fleetaudit.models import AuditResults
from fleetaudit.report.html import render_html
from fleetaudit.report.json_results import results_to_json

RESULTS_JSON = "results.json"
INDEX_HTML = "index.html"


@dataclass(frozen=True)
class ReportPaths:
    directory: Path
    results_json: Path
    index_html: Path


def write_report(results: AuditResults, out_dir: Path) -> ReportPaths:
    """Write results.json and index.html into out_dir; render both before touching disk."""
    json_text = results_to_json(results)
    html_text = render_html(results)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = ReportPaths(out_dir, out_dir / RESULTS_JSON, out_dir / INDEX_HTML)
    _write_private(paths.results_json, json_text)
    _write_private(paths.index_html, html_text)
    return paths


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
