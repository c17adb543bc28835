"""Audit status and risk: two separate ratings of a host, ranked and shown alike by every format.

Issue 12: a host with a critical hidden listener showed a green "ok" badge and counted in
an "audited ok" card, and summary.md listed 2 high + 2 medium above 3 high + 1 medium.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from html import unescape

import pytest
from defusedxml import ElementTree

from fleetaudit.models import (
    AuditResults,
    ComplianceSummary,
    Finding,
    HostResult,
    HostStatus,
    InternalView,
    PortReport,
    Proto,
    Severity,
    Verdict,
    VerdictKind,
    Waiver,
)
from fleetaudit.report import (
    render_csv,
    render_html,
    render_junit,
    render_markdown,
    results_from_json,
    results_to_json,
)
from fleetaudit.report.facts import (
    AuditStatus,
    Risk,
    audit_status,
    rate_host,
    rate_hosts,
    worst_first,
)
from fleetaudit.report.html import audit_css
from tests.unit.test_report import T0, T1

C, H, M, L, INFO = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)


def _finding(host: str, n: int, sev: Severity, *, waived: bool = False,
             expired: bool = False) -> Finding:
    waiver = Waiver(rule="r", reason="accepted", owner="a@example.org",
                    expires=date(2099, 1, 1)) if waived or expired else None
    return Finding(id=f"r.{host}.{n}", rule=f"rule-{n}", severity=sev, host=host,
                   proto=Proto.TCP, port=1000 + n, message=f"{sev} on {host}",
                   waiver=waiver, waiver_expired=expired)


def _host(name: str, *sevs: Severity, status: HostStatus = HostStatus.OK,
          compliant: bool | None = None, verdicts: tuple[Severity, ...] = (),
          internal: bool = False, **kw: object) -> HostResult:
    ports = [PortReport(proto=Proto.TCP, port=2000 + i, verdicts=[
        Verdict(kind=VerdictKind.HIDDEN_LISTENER, severity=s, message="hidden")])
        for i, s in enumerate(verdicts)]
    kw.setdefault("findings", [_finding(name, i, s) for i, s in enumerate(sevs)])
    return HostResult(name=name, address="192.0.2.1", status=status, ports=ports,
                      compliant=compliant, internal=InternalView() if internal else None,
                      **kw)


# --- audit status ---------------------------------------------------------------------

AUDIT_TABLE = [
    # status, has an inside view, audit status
    (HostStatus.OK, True, AuditStatus.COMPLETE),
    (HostStatus.PARTIAL, True, AuditStatus.PARTIAL),
    (HostStatus.COLLECTION_FAILED, False, AuditStatus.PARTIAL),  # reached, collection failed
    (HostStatus.SCAN_FAILED, True, AuditStatus.PARTIAL),
    (HostStatus.SCAN_FAILED, False, AuditStatus.PARTIAL),
    (HostStatus.UNREACHABLE, False, AuditStatus.UNREACHABLE),
    (HostStatus.AUTH_FAILED, False, AuditStatus.UNREACHABLE),
    (HostStatus.HOST_KEY_REJECTED, False, AuditStatus.UNREACHABLE),
    (HostStatus.HOST_DOWN, False, AuditStatus.UNREACHABLE),
    (HostStatus.HOST_DOWN, True, AuditStatus.PARTIAL),  # collected, then nmap saw it down
]


@pytest.mark.parametrize(("status", "internal", "expected"), AUDIT_TABLE)
def test_audit_status_of_each_host_status(
    status: HostStatus, internal: bool, expected: AuditStatus
) -> None:
    assert audit_status(_host("h", status=status, internal=internal)) is expected


def test_audit_status_table_covers_every_host_status() -> None:
    assert {row[0] for row in AUDIT_TABLE} == set(HostStatus)


# --- risk -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "by_findings", "risk"),
    [
        (_host("a"), True, Risk.NONE),
        (_host("a", L, C, M), True, Risk.CRITICAL),
        (_host("a", INFO), True, Risk.INFO),
        # a waived finding is accepted: it is no risk; an expired waiver covers nothing
        (_host("a", findings=[_finding("a", 0, C, waived=True)]), True, Risk.NONE),
        (_host("a", findings=[_finding("a", 0, C, expired=True)]), True, Risk.CRITICAL),
        # with a policy the verdicts it did not turn into findings are not the risk...
        (_host("a", L, verdicts=(C,)), True, Risk.LOW),
        # ...without one they are all there is
        (_host("a", verdicts=(H, C)), False, Risk.CRITICAL),
        (_host("a", status=HostStatus.UNREACHABLE), False, Risk.NONE),
        # risk and audit status are independent
        (_host("a", H, status=HostStatus.PARTIAL, internal=True), True, Risk.HIGH),
    ],
)
def test_risk_is_the_worst_active_finding(host: HostResult, by_findings: bool, risk: Risk) -> None:
    assert rate_host(host, 0, by_findings).risk is risk


@pytest.mark.parametrize(
    ("status", "sevs", "css"),
    [
        (HostStatus.OK, (), "ok"),
        (HostStatus.OK, (L, INFO), "ok"),  # healthy: complete and below medium
        (HostStatus.OK, (M,), "soft"),
        (HostStatus.OK, (C,), "soft"),  # the critical hidden listener: never green
        (HostStatus.PARTIAL, (), "warn"),
        (HostStatus.SCAN_FAILED, (L,), "warn"),
        (HostStatus.AUTH_FAILED, (), "bad"),
        (HostStatus.HOST_DOWN, (), "down"),
    ],
)
def test_green_only_for_complete_hosts_below_medium(
    status: HostStatus, sevs: tuple[Severity, ...], css: str
) -> None:
    rating = rate_host(_host("h", *sevs, status=status, internal=status is HostStatus.PARTIAL),
                       0, True)
    assert audit_css(rating) == css
    assert rating.healthy is (css == "ok")


# --- worst first -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        # the example: 3 high + 1 medium before 2 high + 2 medium
        ([("2h2m", (H, H, M, M)), ("3h1m", (H, H, H, M))], ["3h1m", "2h2m"]),
        # one critical beats any number of highs
        ([("9h", (H,) * 9), ("1c", (C,))], ["1c", "9h"]),
        # equal at the top: the next severity decides, then the one after
        ([("1h", (H,)), ("1h1l", (H, L)), ("1h1m", (H, M))], ["1h1m", "1h1l", "1h"]),
        # nothing to report last; equal counts keep the run's order
        ([("none", ()), ("a", (INFO,)), ("b", (INFO,))], ["a", "b", "none"]),
        ([], []),
    ],
)
def test_hosts_sort_worst_first_by_severity_then_count(
    hosts: list[tuple[str, tuple[Severity, ...]]], expected: list[str]
) -> None:
    results = _run([_host(name, *sevs) for name, sevs in hosts])
    assert [r.host.name for r in worst_first(rate_hosts(results))] == expected


def test_equal_risk_puts_the_less_audited_host_first() -> None:
    results = _run([_host("ok"), _host("part", status=HostStatus.PARTIAL, internal=True),
                    _host("down", status=HostStatus.UNREACHABLE)])
    assert [r.host.name for r in worst_first(rate_hosts(results))] == ["down", "part", "ok"]


# --- every format agrees -----------------------------------------------------------------


def _run(hosts: list[HostResult], policy: str | None = "policies/baseline.yaml") -> AuditResults:
    return AuditResults(tool_version="0.1.0", inventory="inv.yaml", started_at=T0,
                        finished_at=T1, policy=policy, hosts=hosts)


def badge_fleet() -> AuditResults:
    """One host per case the badges must tell apart, in an order the ranking must change."""
    hosts = [
        _host("clean-01", compliant=True),
        _host("h2m2", H, H, M, M, compliant=False),
        _host("partial-01", status=HostStatus.PARTIAL, internal=True),
        _host("hidden-01", C, compliant=False, verdicts=(C,)),  # the critical hidden listener
        _host("down-01", status=HostStatus.UNREACHABLE),
        _host("h3m1", H, H, H, M, compliant=False),
        _host("lowrisk-01", L, compliant=False),
        _host("medium-01", M, compliant=False),
    ]
    fleet = ComplianceSummary(group=None, hosts_total=len(hosts), hosts_compliant=1)
    return _run(hosts).model_copy(update={"compliance": [fleet]})


# name, audit status, risk, in the order every format lists the hosts
BADGE_FLEET_ORDER = [
    ("hidden-01", "complete", "critical"),
    ("h3m1", "complete", "high"),
    ("h2m2", "complete", "high"),
    ("medium-01", "complete", "medium"),
    ("lowrisk-01", "complete", "low"),
    ("down-01", "unreachable", "none"),
    ("partial-01", "partial", "none"),
    ("clean-01", "complete", "none"),
]


def test_html_lists_audit_status_and_risk_apart_worst_first() -> None:
    html = render_html(badge_fleet())
    rows = re.findall(
        r'<div class="hrow" role="row" data-i="(\d+)" data-status="([a-z]+)".*?<a[^>]*>([^<]*)</a>'
        r'.*?<span class="badge audit b-([a-z]+)">([a-z]+)</span>'
        r'.*?<span class="badge risk b-[a-z]+">([a-z]+)</span>',
        html,
        re.S,
    )
    assert [(name, audit, risk) for _, _, name, _, audit, risk in rows] == BADGE_FLEET_ORDER
    assert [int(i) for i, *_ in rows] == list(range(len(rows)))  # data-i is the listed order
    assert all(status == audit for _, status, _, _, audit, _ in rows)
    green = [name for _, _, name, css, _, _ in rows if css == "ok"]
    assert green == ["lowrisk-01", "clean-01"]
    # The host sections below follow the same order.
    sections = re.findall(r'<section class="host" id="host-([a-z0-9-]+)"', html)
    assert sections == [name for name, _, _ in BADGE_FLEET_ORDER]


def test_html_cards_count_audit_risk_and_compliance_apart() -> None:
    html = render_html(badge_fleet())
    card = (r'id="card-([a-z]+)"><div class="n">(\d+)</div>\s*<div class="l">([^<]*)</div>'
            r'(?:<div class="sub">([^<]*)</div>)?')
    cards = {ident: (int(n), label, sub) for ident, n, label, sub in re.findall(card, html)}
    assert cards == {
        "hosts": (8, "hosts", ""),
        "complete": (6, "hosts audited completely", "1 partial · 1 unreachable"),
        "serious": (3, "hosts with critical/high findings", ""),  # hidden-01, h3m1, h2m2
        "compliant": (1, "compliant hosts", ""),
    }
    assert "audited ok" not in html


def test_hidden_listener_host_has_no_green_badge_in_its_section() -> None:
    html = render_html(badge_fleet())
    head = re.search(r'<section class="host" id="host-hidden-01".*?<div class="head">(.*?)</div>',
                     html, re.S)
    assert head is not None
    assert "b-ok" not in head.group(1)
    assert 'class="badge audit b-soft">complete</span>' in head.group(1)
    assert 'class="badge risk b-critical">risk critical</span>' in head.group(1)


def test_markdown_lists_the_same_hosts_in_the_same_order() -> None:
    text = render_markdown(badge_fleet())
    table = text[text.index("## Hosts, worst first (8)") :]
    rows = re.findall(r"^\| `([^`]+)` \| `[^`]+` \| ([a-z]+) \| ([a-z]+) \|", table, re.M)
    assert rows == BADGE_FLEET_ORDER
    # hosts, complete, partial, unreachable, critical/high, compliant
    assert "| 8 | 6 | 1 | 1 | 3 | 1 |" in text
    assert "| `h3m1` | `192.0.2.1` | complete | high | · | 3 | 1 | · | · |" in text


def test_json_carries_audit_status_and_risk_and_reads_back() -> None:
    results = badge_fleet()
    text = results_to_json(results)
    hosts = json.loads(text)["hosts"]
    expected = {name: (audit, risk) for name, audit, risk in BADGE_FLEET_ORDER}
    assert {h["name"]: (h["audit_status"], h["risk"]) for h in hosts} == expected
    assert [h["name"] for h in hosts] == [h.name for h in results.hosts]  # the run's order
    assert list(hosts[0])[list(hosts[0]).index("status") + 1] == "audit_status"
    assert results_from_json(text) == results
    # Derived values are recomputed, never trusted: a stale one changes nothing.
    data = json.loads(text)
    data["hosts"][3]["risk"] = "none"
    assert results_from_json(json.dumps(data)) == results


def test_old_results_json_without_the_derived_fields_still_loads() -> None:
    results = badge_fleet()
    assert results_from_json(results.model_dump_json()) == results


def test_junit_says_the_same_per_host() -> None:
    root = ElementTree.fromstring(render_junit(badge_fleet()).encode())
    props = {
        suite.get("name"): (p["audit_status"], p["risk"])
        for suite in root.findall("testsuite")
        if (p := {e.get("name"): e.get("value") for e in suite.iter("property")})
    }
    assert props == {name: (audit, risk) for name, audit, risk in BADGE_FLEET_ORDER}


def test_without_a_policy_risk_comes_from_problem_verdicts() -> None:
    results = _run([_host("quiet"), _host("rootkit", verdicts=(C,))], policy=None)
    assert [(r.host.name, r.risk) for r in worst_first(rate_hosts(results))] == [
        ("rootkit", Risk.CRITICAL), ("quiet", Risk.NONE)]
    html = render_html(results)
    assert 'id="card-compliant"' not in html
    assert "1 hosts with critical/high problem verdicts" in " ".join(
        unescape(re.sub(r"<[^>]+>", " ", html)).split())
    assert json.loads(results_to_json(results))["hosts"][1]["risk"] == "critical"


def test_findings_list_hosts_in_the_same_order_in_html_csv_and_markdown() -> None:
    """Within a severity, findings follow the hosts' worst-first order in every format."""
    results = badge_fleet()
    html = render_html(results)
    start = html.index('<table class="findings">')
    table = html[start : html.index("</table>", start)]
    in_html = re.findall(r'<td><a href="#host-([a-z0-9-]+)">', table)
    rows = csv.DictReader(io.StringIO(render_csv(results)))
    in_csv = [r["host"] for r in rows if r["record"] == "finding"]
    md = render_markdown(results)
    top = md[md.index("## Top findings") :]
    in_md = re.findall(r"^\| [a-z]+ \| `[^`]+` \| `([^`]+)` \|", top, re.M)
    assert in_html == in_csv == in_md
    assert in_csv[:5] == ["hidden-01", "h3m1", "h3m1", "h3m1", "h2m2"]
