"""findings.sarif: policy findings as SARIF 2.1.0, for tools that aggregate security results.

One result per finding (waived ones too, carrying an accepted suppression).
A fleet has no source files, so a result's location is the host and port as a
URI, ``fleet://<host>/<proto>/<port>`` (``fleet://<host>`` for a host-wide
finding, the host name percent-encoded), plus a logical location naming the same.
``partialFingerprints`` carries the finding id, which the policy keeps stable
across runs, so consumers can track a finding from one audit to the next.

The models hold no rule descriptions, so each rule's help text is built from
what its findings say (their remediations), and its level from its worst finding.
Hosts not audited completely are reported as tool execution notifications, with
their audit status (partial, unreachable) beside the raw status.
Invisible characters in data are shown as escapes, as in every format.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fleetaudit.models import AuditResults, Finding, HostResult, HostStatus, Severity
from fleetaudit.report.facts import SEVERITY_RANK, all_findings, audit_status, rule_names
from fleetaudit.report.text import visible

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT = "fleetauditFindingId/v1"

LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub's scale: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def render_sarif(results: AuditResults) -> str:
    return json.dumps(sarif_log(results), indent=2, ensure_ascii=False) + "\n"


def sarif_log(results: AuditResults) -> dict[str, Any]:
    findings = all_findings(results)
    names = rule_names(results)
    index = {name: i for i, name in enumerate(names)}
    by_rule: dict[str, list[Finding]] = {}
    for hf in findings:
        by_rule.setdefault(hf.finding.rule, []).append(hf.finding)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "fleetaudit",
                "version": _t(results.tool_version),
                "rules": [_rule(name, by_rule.get(name, [])) for name in names],
            }
        },
        "invocations": [_invocation(results)],
        "results": [_result(hf.host, hf.finding, index[hf.finding.rule]) for hf in findings],
        "properties": {
            "inventory": _t(results.inventory),
            "policy": _t(results.policy) if results.policy is not None else None,
            "schemaVersion": results.schema_version,
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def host_uri(host: str, finding: Finding | None = None) -> str:
    uri = f"fleet://{quote(_t(host), safe='')}"
    if finding is not None and finding.port is not None and finding.proto is not None:
        uri += f"/{finding.proto.value}/{finding.port}"
    return uri


def _rule(name: str, findings: list[Finding]) -> dict[str, Any]:
    worst = min((f.severity for f in findings), key=SEVERITY_RANK.__getitem__, default=None)
    remediations = list(dict.fromkeys(f.remediation for f in findings if f.remediation))
    summary = f"fleetaudit policy rule {name}"
    help_text = (
        "\n".join(remediations)
        if remediations
        else (f"{summary}: see the policy file for what it requires and how to comply.")
    )
    rule: dict[str, Any] = {
        "id": _t(name),
        "name": _t(name),
        "shortDescription": {"text": _t(summary)},
        "help": {"text": _t(help_text)},
        "properties": {"tags": ["security", "fleetaudit"]},
    }
    if worst is not None:
        rule["defaultConfiguration"] = {"level": LEVELS[worst]}
        rule["properties"]["security-severity"] = SECURITY_SEVERITY[worst]
    return rule


def _result(host: HostResult, f: Finding, rule_index: int) -> dict[str, Any]:
    logical = _t(host.name)
    if f.port is not None and f.proto is not None:
        logical += f"/{f.proto.value}/{f.port}"
    result: dict[str, Any] = {
        "ruleId": _t(f.rule),
        "ruleIndex": rule_index,
        "level": LEVELS[f.severity],
        "kind": "fail",
        "message": {"text": _t(f.message)},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": host_uri(host.name, f)}},
                "logicalLocations": [
                    {"name": logical, "fullyQualifiedName": logical, "kind": "resource"}
                ],
            }
        ],
        "partialFingerprints": {FINGERPRINT: _t(f.id)},
        "properties": {
            "id": _t(f.id),
            "severity": f.severity.value,
            "host": _t(host.name),
            "address": _t(host.address),
            "groups": [_t(g) for g in host.groups],
            "evidence": [_t(e) for e in f.evidence],
            "rules": [_t(r) for r in f.named_rules],  # every rule of this one problem
        },
    }
    if f.remediation is not None:
        result["properties"]["remediation"] = _t(f.remediation)
    if f.waiver is not None:
        w = f.waiver
        waiver = {"owner": _t(w.owner), "expires": w.expires.isoformat()}
        if f.waiver_expired:
            result["properties"]["expiredWaiver"] = {**waiver, "reason": _t(w.reason)}
        else:
            result["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": _t(w.reason),
                    "properties": waiver,
                }
            ]
    return result


def _invocation(results: AuditResults) -> dict[str, Any]:
    notes = []
    for host in results.hosts:
        if host.status is HostStatus.OK:
            continue
        message = "; ".join(f"[{e.stage.value}] {e.message}" for e in host.errors)
        audit = audit_status(host).value
        notes.append(
            {
                "level": "error",
                "message": {
                    "text": _t(f"{host.name}: {audit} ({host.status.value}): {message}".rstrip())
                },
                "locations": [
                    {"physicalLocation": {"artifactLocation": {"uri": host_uri(host.name)}}}
                ],
                "properties": {"status": host.status.value, "auditStatus": audit},
            }
        )
    scan_ok = results.scan is None or results.scan.complete
    invocation: dict[str, Any] = {
        "executionSuccessful": not notes and scan_ok,
        "startTimeUtc": _utc(results.started_at),
        "endTimeUtc": _utc(results.finished_at),
    }
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return invocation


def _utc(value: datetime) -> str:
    """SARIF wants UTC with a Z; a naive time (the audit writes aware ones) is taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def _t(text: str) -> str:
    return visible(text, keep="\n\t")
