"""Machine formats: CSV, JUnit, Markdown, SARIF, the results schema, the registry and the writer."""

from __future__ import annotations

import csv
import io
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from defusedxml import ElementTree
from markdown_it import MarkdownIt

from fleetaudit.errors import ConfigError
from fleetaudit.models import AuditResults, Finding, Proto, Severity, VerdictKind
from fleetaudit.report import (
    FILENAMES,
    Format,
    parse_formats,
    render,
    render_csv,
    render_junit,
    render_markdown,
    render_sarif,
    results_from_json,
    write_report,
)
from fleetaudit.report.csv_findings import COLUMNS
from fleetaudit.report.markdown import MAX_CELL, code
from fleetaudit.report.schema import REGENERATE, render_schema, results_schema, shipped_schema
from tests.unit.test_report import (
    DELETED_FINDING,
    HOSTILE_BANNER,
    HOSTILE_NAME,
    WAIVED_FINDING,
    _poison,
    policy_results,
    sample_results,
)
from tests.unit.test_report_html import SCAN_CMDS, _scanned_results

FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\r=1"]


def _with_findings(results: AuditResults, *findings: Finding) -> AuditResults:
    web = results.hosts[0]
    hosts = [web.model_copy(update={"findings": [*web.findings, *findings]}), *results.hosts[1:]]
    return results.model_copy(update={"hosts": hosts})


def _problem_verdicts(results: AuditResults) -> int:
    return sum(
        v.kind is not VerdictKind.CONSISTENT
        for h in results.hosts
        for p in h.ports
        for v in p.verdicts
    )


def _hostile_everywhere() -> AuditResults:
    """Policy results poisoned in every string, with a lone surrogate in a host name."""
    results = _poison(policy_results())
    web = results.hosts[0].model_copy(update={"name": "bad\udcffbyte"})
    return results.model_copy(update={"hosts": [web, *results.hosts[1:]]})


# --- CSV -------------------------------------------------------------------------


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_has_a_row_per_finding_then_per_problem_verdict() -> None:
    results = policy_results()
    text = render_csv(results)
    assert text.startswith(",".join(COLUMNS) + "\r\n")
    rows = _csv_rows(text)
    findings = [r for r in rows if r["record"] == "finding"]
    verdicts = [r for r in rows if r["record"] == "verdict"]
    assert len(findings) == 7
    assert len(verdicts) == _problem_verdicts(results) == 14
    assert rows[: len(findings)] == findings  # findings first
    # active before waived, worst first
    assert [r["severity"] for r in findings] == [
        "critical", "critical", "high", "high", "medium", "low", "medium",
    ]  # fmt: skip
    first = findings[0]
    assert first["finding_id"] == DELETED_FINDING
    assert (first["host"], first["address"], first["groups"]) == ("web-01", "10.0.0.11", "web;prod")
    assert (first["proto"], first["port"], first["status"]) == ("tcp", "2222", "active")
    waived = next(r for r in findings if r["finding_id"] == WAIVED_FINDING)
    assert waived["status"] == "waived" and waived["waiver_owner"] == "alice@example.org"
    assert waived["waiver_expires"] == "2099-12-31"
    assert any(r["status"] == "waiver_expired" for r in findings)
    host_wide = next(r for r in findings if r["rule"] == "audit-tools-present")
    assert host_wide["port"] == "" and host_wide["proto"] == ""
    assert {r["rule"] for r in verdicts} == {k.value for k in VerdictKind} - {"CONSISTENT"}


def test_csv_without_policy_still_lists_problem_verdicts() -> None:
    rows = _csv_rows(render_csv(sample_results()))
    assert rows and all(r["record"] == "verdict" for r in rows)


@pytest.mark.parametrize("payload", FORMULAS)
def test_csv_cells_never_start_a_formula(payload: str) -> None:
    hostile = Finding(
        id=payload, rule=payload, severity=Severity.HIGH, host=payload, proto=Proto.TCP,
        port=1, message=payload, evidence=[payload], remediation=payload,
    )  # fmt: skip
    results = _with_findings(policy_results(), hostile)
    web = results.hosts[0].model_copy(update={"name": payload, "address": payload})
    results = results.model_copy(update={"hosts": [web, *results.hosts[1:]]})
    rows = _csv_rows(render_csv(results))
    row = next(r for r in rows if r["record"] == "finding" and r["message"].endswith(payload[1:]))
    for column in ("rule", "host", "address", "message", "evidence", "remediation", "finding_id"):
        assert row[column][0] not in "=+-@\t\r", (column, row[column])
        assert row[column].startswith("'") or payload.startswith("\r"), (column, row[column])
    for r in rows:
        for column, cell in r.items():
            assert not cell or cell[0] not in "=+-@\t\r", (column, cell)


def test_csv_keeps_hostile_text_readable() -> None:
    text = render_csv(_hostile_everywhere())
    rows = _csv_rows(text)
    assert any("<script>alert(1)</script>\"'" in r["message"] for r in rows)
    assert {"\x1b", "\x00", "\u202e"}.isdisjoint(text)
    assert "\\u202e" in text and "bad\\udcffbyte" in text
    text.encode("utf-8")


# --- JUnit -----------------------------------------------------------------------


def test_junit_has_a_case_per_problem_and_per_passing_rule() -> None:
    results = policy_results()
    root = ElementTree.fromstring(render_junit(results).encode())
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["web-01", "db-01", HOSTILE_NAME]
    # failures count problems (active findings), as every other format does
    active = sum(1 for h in results.hosts for f in h.findings if f.active)
    assert root.get("failures") == str(active)
    for suite, host in zip(suites, results.hosts, strict=True):
        assert suite.get("failures") == str(sum(1 for f in host.findings if f.active))
    web = {c.get("name"): c for c in suites[0].findall("testcase")}
    assert list(web["audited"]) == [] and list(web["ssh-root-login-disabled"]) == []
    [unowned] = [c for name, c in web.items() if name.startswith("no-unowned-listeners on")]
    failure = unowned.find("failure")
    assert failure is not None and failure.get("type") == "critical"
    assert DELETED_FINDING in (failure.text or "")
    # Expired waiver: still a failure; a waived finding alone is skipped.
    approved = [c for name, c in web.items() if name.startswith("approved-services on")]
    assert any(c.find("failure") is not None for c in approved)
    db = {c.get("name"): c for c in suites[1].findall("testcase")}
    error = db["audited"].find("error")
    assert error is not None and error.get("type") == "unreachable"
    assert "retried 3 times" in (error.text or "")
    skipped = db["no-hidden-listeners"].find("skipped")
    assert skipped is not None and skipped.get("type") == "not-audited"
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props == {"address": "10.0.0.11", "groups": "web prod", "status": "ok",
                     "audit_status": "complete", "risk": "critical"}


def test_junit_skips_a_problem_whose_finding_is_waived() -> None:
    base = policy_results()
    web = base.hosts[0]
    only_waived = [
        f for f in web.findings if f.rule != "approved-services" or f.id == WAIVED_FINDING
    ]
    results = base.model_copy(
        update={"hosts": [web.model_copy(update={"findings": only_waived}), *base.hosts[1:]]}
    )
    root = ElementTree.fromstring(render_junit(results).encode())
    [case] = [c for c in root.iter("testcase")
              if (c.get("name") or "").startswith("approved-services on")]
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("type") == "waived"
    assert "alice@example.org" in (skipped.get("message") or "")


def test_junit_without_policy_reports_audit_status_only() -> None:
    root = ElementTree.fromstring(render_junit(sample_results()).encode())
    assert {c.get("name") for c in root.iter("testcase")} == {"audited"}
    assert (root.get("tests"), root.get("errors")) == ("3", "2")


def test_junit_is_well_formed_xml_whatever_the_hosts_said() -> None:
    text = render_junit(_hostile_everywhere())
    root = ElementTree.fromstring(text.encode("utf-8"))  # would raise on \x00 or \x1b
    assert {"\x00", "\x1b", "\u202e"}.isdisjoint(text)
    texts = " ".join((e.text or "") + " ".join(e.attrib.values()) for e in root.iter())
    assert "<script>alert(1)</script>" in texts  # escaped in the file, intact when parsed
    assert "\\x00" in texts and "bad\\udcffbyte" in texts


# --- Markdown --------------------------------------------------------------------


def _md_html(text: str) -> str:
    return str(MarkdownIt("commonmark").enable("table").render(text))


def test_markdown_summary_for_a_ticket() -> None:
    text = render_markdown(policy_results())
    assert text.startswith("# fleetaudit summary: `inventories/prod.yaml`\n")
    # hosts, complete, partial, unreachable, critical/high, compliant, ports, findings...
    assert "| 3 | 1 | 0 | 2 | 2 | 0 | 13 | 6 | 1 | 14 |" in text
    assert "| 2 | 2 | 1 | 1 | 0 |" in text  # active findings by severity
    assert "## Hosts not audited completely (2)" in text
    assert "| `legacy <b>box</b>` | `10.0.0.13` | unreachable | auth_failed |" in text
    assert "## Hosts, worst first (3)" in text
    assert "## Top findings (6 of 6 active)" in text
    assert "| whole fleet | 0 / 3 |" in text
    html = _md_html(text)
    assert html.count("<table>") == 6
    # Data is code, never markup: no bold from the host name, no script from the banner.
    assert "<code>legacy &lt;b&gt;box&lt;/b&gt;</code>" in html
    assert "<b>" not in html and "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_markdown_without_policy_shows_verdicts() -> None:
    text = render_markdown(sample_results())
    assert "no findings; verdicts are shown instead" in text
    assert "## Problem verdicts by severity" in text
    assert "## Top problem verdicts (14 of 14)" in text


def test_markdown_data_cannot_break_out() -> None:
    nasty = "a | b ` c ``` d @admin #12 [x](http://e) *em* <img src=x> $x^2$\nnew line"
    hostile = Finding(id=nasty, rule=nasty, severity=Severity.HIGH, host="web-01", message=nasty)
    text = render_markdown(_with_findings(policy_results(), hostile))
    html = _md_html(text)
    row = next(line for line in text.splitlines() if "@admin" in line and line.startswith("|"))
    # The table row keeps its 6 cells: pipes in data are escaped.
    cells = next(c for c in html.split("<tr>") if "@admin" in c)
    assert cells.count("<td>") == 6
    assert "<em>" not in html and "<img" not in html and "<a " not in html
    assert "\\x0anew line" in row  # a newline is shown, it does not end the row
    assert {"\x1b", "\u202e", "\x00"}.isdisjoint(render_markdown(_hostile_everywhere()))


@pytest.mark.parametrize(
    ("data", "span"),
    [
        ("plain", "`plain`"),
        ("a|b", "`a\\|b`"),
        ("`tick`", "`` `tick` ``"),
        ("x``y", "```x``y```"),
        (" padded ", "`  padded  `"),
        ("", "—"),
        ("line\nbreak", "`line\\x0abreak`"),
    ],
)
def test_markdown_code_spans(data: str, span: str) -> None:
    assert code(data) == span


def test_markdown_long_values_are_cut() -> None:
    assert len(code("x" * 10_000)) == MAX_CELL + 2
    assert code("x" * 10_000).endswith("…`")


# --- SARIF -----------------------------------------------------------------------

# The SARIF 2.1.0 schema's required properties on the objects this file writes.
SARIF_REQUIRED: dict[str, Any] = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}}
                                },
                            }
                        },
                    },
                    "invocations": {
                        "type": "array",
                        "items": {"type": "object", "required": ["executionSuccessful"]},
                    },
                    "results": {"type": "array", "items": {"$ref": "#/$defs/result"}},
                },
            },
        },
    },
    "$defs": {
        "message": {"type": "object", "required": ["text"]},
        "rule": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "shortDescription": {"$ref": "#/$defs/message"},
                "help": {"$ref": "#/$defs/message"},
                "defaultConfiguration": {
                    "properties": {"level": {"enum": ["none", "note", "warning", "error"]}}
                },
            },
        },
        "result": {
            "type": "object",
            "required": ["message", "ruleId", "locations"],
            "properties": {
                "message": {"$ref": "#/$defs/message"},
                "level": {"enum": ["none", "note", "warning", "error"]},
                "kind": {
                    "enum": ["notApplicable", "pass", "fail", "review", "open", "informational"]
                },
                "ruleIndex": {"type": "integer", "minimum": 0},
                "locations": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["physicalLocation"],
                        "properties": {
                            "physicalLocation": {
                                "type": "object",
                                "required": ["artifactLocation"],
                                "properties": {
                                    "artifactLocation": {
                                        "type": "object",
                                        "required": ["uri"],
                                        "properties": {
                                            "uri": {"type": "string", "pattern": "^fleet://[^/]+"}
                                        },
                                    }
                                },
                            }
                        },
                    },
                },
                "suppressions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kind"],
                        "properties": {
                            "kind": {"enum": ["inSource", "external"]},
                            "status": {"enum": ["accepted", "underReview", "rejected"]},
                        },
                    },
                },
            },
        },
    },
}


def test_sarif_structure() -> None:
    log = json.loads(render_sarif(policy_results()))
    jsonschema.validate(log, SARIF_REQUIRED)
    [run] = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    assert len(results) == 7  # one per finding, waived included
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    by_id = {r["partialFingerprints"]["fleetauditFindingId/v1"]: r for r in results}
    deleted = by_id[DELETED_FINDING]
    assert deleted["level"] == "error"
    location = deleted["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "fleet://web-01/tcp/2222"
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "web-01/tcp/2222"
    host_wide = next(r for r in results if r["ruleId"] == "audit-tools-present")
    assert host_wide["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "fleet://web-01"
    )
    legacy = next(r for r in results if r["ruleId"] == "no-cleartext-protocols")
    uri = legacy["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "fleet://legacy%20%3Cb%3Ebox%3C%2Fb%3E/tcp/23"
    assert by_id[WAIVED_FINDING]["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "artifact cache until the migration",
            "properties": {"owner": "alice@example.org", "expires": "2099-12-31"},
        }
    ]
    assert "suppressions" not in by_id["approved-services.web-01.tcp.9000"]  # expired
    rule = next(r for r in rules if r["id"] == "no-unowned-listeners")
    assert rule["help"]["text"].startswith("Isolate the host")
    assert rule["properties"]["security-severity"] == "9.5"
    passed = next(r for r in rules if r["id"] == "ssh-root-login-disabled")
    assert "defaultConfiguration" not in passed and passed["help"]["text"]
    [invocation] = run["invocations"]
    assert invocation["executionSuccessful"] is False  # two hosts not audited
    notes = invocation["toolExecutionNotifications"]
    assert [n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for n in notes] == [
        "fleet://db-01",
        "fleet://legacy%20%3Cb%3Ebox%3C%2Fb%3E",
    ]
    assert invocation["startTimeUtc"] == "2025-03-14T09:30:00Z"


def test_sarif_survives_hostile_text() -> None:
    text = render_sarif(_hostile_everywhere())
    text.encode("utf-8")
    log = json.loads(text)
    jsonschema.validate(log, SARIF_REQUIRED)
    assert {"\x1b", "\u202e"}.isdisjoint(text)
    messages = [r["message"]["text"] for r in log["runs"][0]["results"]]
    assert any(HOSTILE_BANNER.split('"')[0] in m for m in messages)


def test_sarif_without_findings_is_an_empty_run() -> None:
    log = json.loads(render_sarif(sample_results()))
    jsonschema.validate(log, SARIF_REQUIRED)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []


# --- results schema ---------------------------------------------------------------


def test_shipped_schema_matches_the_models() -> None:
    assert shipped_schema() == render_schema(), (
        "fleetaudit/report/results.schema.json is stale: the models changed. "
        f"Regenerate it with: .venv/bin/{REGENERATE}"
    )


def test_regenerate_command_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fleetaudit.report.schema"], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert out.stdout == render_schema()


@pytest.mark.parametrize("build", [sample_results, policy_results])
def test_results_json_validates_against_the_schema(build: Any) -> None:
    validator = jsonschema.Draft202012Validator(results_schema())
    jsonschema.Draft202012Validator.check_schema(results_schema())
    data = json.loads(render(build(), "json"))
    validator.validate(data)
    data["hosts"][0]["surprise"] = True
    data["hosts"][1]["status"] = "bored"
    errors = {e.json_path for e in validator.iter_errors(data)}
    assert errors == {"$.hosts[0]", "$.hosts[1].status"}


# --- registry and writer ------------------------------------------------------------


def test_render_by_name() -> None:
    results = policy_results()
    assert render(results, "csv") == render_csv(results)
    assert render(results, Format.SARIF) == render_sarif(results)
    assert results_from_json(render(results, "json")) == results
    with pytest.raises(ConfigError, match="unknown report format 'pdf'"):
        render(results, "pdf")


def test_parse_formats() -> None:
    assert parse_formats(["all"]) == tuple(Format)
    assert parse_formats(["md", "HTML", "md", " csv "]) == (Format.HTML, Format.CSV, Format.MD)
    with pytest.raises(ConfigError, match="choose from html, json, csv, junit, md, sarif, all"):
        parse_formats(["xml"])
    with pytest.raises(ConfigError, match="no report format"):
        parse_formats([])


def test_write_all_formats_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "run"
    paths = write_report(policy_results(), out, formats=["all"])
    assert set(paths.files) == set(Format)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILENAMES.values())
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for fmt, path in paths.files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert path.read_bytes().decode("utf-8") == render(policy_results(), fmt)
    assert paths.index_html == out / "index.html" and paths.results_json == out / "results.json"


def test_write_chosen_formats_only(tmp_path: Path) -> None:
    paths = write_report(sample_results(), tmp_path, formats=[Format.CSV, "md"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["findings.csv", "summary.md"]
    assert paths.index_html is None and paths.results_json is None


def test_unknown_format_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "never"
    with pytest.raises(ConfigError):
        write_report(sample_results(), out, formats=["html", "docx"])
    assert not out.exists()


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_renders_hostile_results(fmt: Format) -> None:
    text = render(_hostile_everywhere(), fmt)
    text.encode("utf-8")  # a lone surrogate would raise here
    if fmt is not Format.JSON:  # results.json is the faithful record; the rest are for people
        assert {"\x00", "\x1b", "\u202e", "\udcff"}.isdisjoint(text)


def test_markdown_shows_how_the_scan_ran() -> None:
    text = render_markdown(_scanned_results())
    assert ("- External scan: profile `quick`, `syn` scan as root, nmap `7.93`, "
            "**incomplete**\n") in text
    assert "- nmap commands (3):\n" + "".join(
        f"    {i}. `{c}`\n" for i, c in enumerate(SCAN_CMDS, start=1)) in text
    assert "- Raw nmap XML: `nmap/tcp-discovery-01.xml`, `nmap/tcp-version-01-1.xml`\n" in text
    assert "- Scan errors (1):\n    - `tcp-version-01-2: nmap produced no XML`\n" in text
    html = _md_html(text)
    assert html.count("<li><code>nmap -oX - ") == 3  # one list item per command


def test_markdown_scan_record_cannot_break_out() -> None:
    nasty = "nmap ` | <img src=x> [x](http://e) @admin\nnew line"
    text = render_markdown(_scanned_results(commands=[nasty], profile=nasty, errors=[nasty]))
    html = _md_html(text)
    assert "<img" not in html and "<a " not in html
    assert ("- nmap command (1):\n"
            "    1. ``nmap ` | <img src=x> [x](http://e) @admin\\x0anew line``") in text


def test_markdown_says_when_the_scan_was_imported_or_missing() -> None:
    imported = render_markdown(_scanned_results(
        source="import", imported=["site-a.xml"], commands=[], command="", complete=True,
        errors=[], evidence=["import-01-site-a.xml"]))
    assert "- External scan: nmap XML made elsewhere (`site-a.xml`), nmap `7.93`, complete\n" \
        in imported
    assert "nmap command" not in imported
    none = render_markdown(_scanned_results().model_copy(update={"scan": None}))
    assert "- External scan: none\n" in none
