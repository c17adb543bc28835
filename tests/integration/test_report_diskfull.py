"""A full disk while writing the report: the previous report survives byte for byte, the
new results are saved elsewhere and named, nothing half-written is left (issue 11, 3).

For real: a 4 MiB tmpfs mounted by the test (root). Skipped when not root, except under
CI=true, where a skip would hide that this never ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetaudit.report import write_report
from fleetaudit.report.json_results import results_from_json
from tests.integration.report_helpers import large_results_json, snapshot
from tests.unit.test_report import sample_results

if os.geteuid() != 0:
    if os.environ.get("CI") == "true":
        pytest.fail("the disk-full test needs root (mount tmpfs) and CI must run it",
                    pytrace=False)
    pytest.skip("mounting a small tmpfs needs root", allow_module_level=True)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.timeout(120)
def test_a_full_disk_keeps_the_previous_report_and_names_where_the_results_went(
        small_disk, tmp_path):
    out = small_disk / "report"
    write_report(sample_results(), out, ["all"], evidence=[("tcp-discovery-01", b"<old/>")])
    before = snapshot(out)
    big = large_results_json(tmp_path / "big.json")

    done = subprocess.run([sys.executable, "-m", "fleetaudit", "report", str(big),
                           "--out", str(out), "--format", "all"],
                          capture_output=True, text=True, timeout=100)

    assert done.returncode == 2, done.stderr
    assert "No space left on device" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert snapshot(out) == before  # byte for byte, its old nmap/ evidence included
    assert sorted(p.name for p in small_disk.iterdir()) == ["report"]  # no staging left
    saved = Path(done.stderr.split("saved to ", 1)[1].split()[0].rstrip(";."))
    try:
        assert results_from_json(saved.read_text("utf-8")) == results_from_json(
            big.read_text("utf-8"))
        assert oct(saved.stat().st_mode & 0o777) == "0o600"
    finally:
        saved.unlink(missing_ok=True)
