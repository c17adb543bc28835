"""A run's report goes on disk whole or not at all (issue 11, item 3): one run per folder,
the previous report intact when the new one cannot be written, nothing left behind."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from fleetaudit.errors import ReportWriteError
from fleetaudit.report import write as report_write
from fleetaudit.report import write_report
from fleetaudit.report.json_results import results_from_json
from tests.unit.test_report import sample_results


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def previous_report(out: Path) -> dict[str, bytes]:
    write_report(sample_results(), out, ["all"], evidence=[("tcp-discovery-01", b"<old/>")])
    return snapshot(out)


def test_a_failed_write_keeps_the_previous_report_and_saves_the_new_results(
        tmp_path, monkeypatch):
    out = tmp_path / "report"
    before = previous_report(out)
    real = report_write._write_new
    calls = []

    def full_disk(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(report_write, "_write_new", full_disk)
    new = sample_results().model_copy(update={"inventory": "the new run"})
    with pytest.raises(ReportWriteError) as raised:
        write_report(new, out, ["all"], evidence=[("tcp-discovery-02", b"<new/>")])
    message = str(raised.value)
    assert "No space left on device" in message and "previous report" in message
    assert raised.value.saved is not None and raised.value.saved in message
    saved = Path(raised.value.saved)
    assert results_from_json(saved.read_text("utf-8")).inventory == "the new run"
    saved.unlink()
    assert snapshot(out) == before  # byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging left


def test_a_new_run_leaves_no_file_of_the_previous_one(tmp_path):
    out = tmp_path / "report"
    previous_report(out)
    paths = write_report(sample_results(), out, ["json"], evidence=[("import-01", b"<x/>")])
    assert sorted(snapshot(out)) == ["nmap/import-01.xml", "results.json"]
    assert paths.evidence == [out / "nmap" / "import-01.xml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_re_rendering_in_place_keeps_the_run_s_other_files(tmp_path):
    out = tmp_path / "report"
    before = previous_report(out)
    write_report(sample_results(), out, ["csv"], carry_over=True)
    assert snapshot(out) == before


def test_a_folder_that_is_not_a_report_is_refused_and_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ReportWriteError, match="not part of a fleetaudit report"):
        write_report(sample_results(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_an_interruption_while_writing_leaves_the_previous_report_and_no_staging(
        tmp_path, monkeypatch):
    out = tmp_path / "report"
    before = previous_report(out)

    def interrupted(path: Path, data: bytes) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report_write, "_write_new", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(sample_results(), out, ["all"])
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_without_rename_exchange_the_swap_still_replaces_the_whole_folder(
        tmp_path, monkeypatch):
    monkeypatch.setattr(report_write, "_exchange", lambda a, b: False)
    out = tmp_path / "report"
    previous_report(out)
    write_report(sample_results(), out, ["json"])
    assert sorted(snapshot(out)) == ["results.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
