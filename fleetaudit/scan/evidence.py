"""Each nmap process's raw XML, kept beside the results as evidence: DIR/nmap/<name>.xml.

Owner-only (0700 directory, 0600 files): the XML holds every banner of the fleet.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["EVIDENCE_DIR", "write_nmap_evidence"]

EVIDENCE_DIR = "nmap"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


def write_nmap_evidence(out_dir: Path, xmls: Sequence[tuple[str, bytes]]) -> list[Path]:
    """Write each (name, xml) as out_dir/nmap/<name>.xml; returns the paths, in order.

    Names come from fleetaudit itself ("tcp-discovery-01", "import-01-scan"); anything
    else (a path separator, a dot) is refused rather than written somewhere else.
    Raises OSError as the filesystem does.
    """
    if not xmls:
        return []
    folder = out_dir / EVIDENCE_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    written: list[Path] = []
    for name, data in xmls:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not an evidence file name: {name!r}")
        path = folder / f"{name}.xml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        written.append(path)
    return written
