"""Reports written as they are produced (issue 13: at 5,000 hosts the whole texts, and
results.json's whole-run tree, were most of the controller's memory) are byte for byte the
renderers' texts, and results.json the one json.dumps of the whole run gives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetaudit.models import AuditResults
from fleetaudit.report import render, results_from_json, results_to_json, write_report
from fleetaudit.report.facts import rate_hosts
from tests.unit.test_report import _poison, sample_results


def whole_run_dump(results: AuditResults) -> str:
    """The format's definition: the run as one tree, each host's audit status and risk
    right after its status, indented by 2; ASCII escapes only if UTF-8 cannot carry it."""
    data: dict[str, Any] = results.model_dump(mode="json")
    for rating, host in zip(rate_hosts(results), data["hosts"], strict=True):
        items = list(host.items())
        at = [k for k, _ in items].index("status") + 1
        host.clear()
        host.update([*items[:at], ("audit_status", rating.audit.value),
                     ("risk", rating.risk.value), *items[at:]])
    text = json.dumps(data, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, indent=2, ensure_ascii=True)
    return text


def _last_host_named(results: AuditResults, name: str) -> AuditResults:
    *first, last = results.hosts
    return results.model_copy(update={"hosts": [*first, last.model_copy(update={"name": name})]})


CASES = {
    "sample": sample_results(),
    "no hosts": sample_results().model_copy(update={"hosts": []}),
    "one host": sample_results().model_copy(update={"hosts": sample_results().hosts[:1]}),
    "hostile text": _poison(sample_results()),
    "non-ASCII and a line separator": _last_host_named(sample_results(), "hôte\u2028b"),
    # Found only at the last host: the file already written in UTF-8 is written again.
    "lone surrogate in the last host": _last_host_named(sample_results(), "bad\udcffbyte"),
}


@pytest.mark.parametrize("results", CASES.values(), ids=CASES.keys())
def test_written_and_rendered_json_are_the_whole_run_dump(tmp_path, results):
    expected = whole_run_dump(results)
    assert results_to_json(results) == expected
    paths = write_report(results, tmp_path / "report", ["json"])
    assert paths.results_json is not None
    assert paths.results_json.read_bytes() == expected.encode("utf-8")
    assert results_from_json(expected) == results


@pytest.mark.parametrize("results", CASES.values(), ids=CASES.keys())
def test_every_written_format_is_its_renderer_s_text(tmp_path, results):
    # results.json and index.html are written as they are produced, the others whole.
    paths = write_report(results, tmp_path / "report", ["all"])
    for fmt, path in paths.files.items():
        assert path.read_bytes() == render(results, fmt).encode("utf-8"), fmt
