"""Shared by the report-writing lab tests: a large run to render, and folder snapshots."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fleetaudit.report import results_to_json

ROOT = Path(__file__).resolve().parents[2]


def large_results_json(path: Path, hosts: int = 500) -> Path:
    """benchmarks/report_bench.py's synthetic fleet: seconds to render, tens of MB."""
    spec = importlib.util.spec_from_file_location("report_bench",
                                                  ROOT / "benchmarks" / "report_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path.write_text(results_to_json(bench.synthetic_results(hosts)), encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}
