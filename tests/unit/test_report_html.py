"""HTML report, policy side and page machinery: findings, compliance, charts, filters, CSP."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from html import unescape

import pytest

from fleetaudit.models import (
    AuditResults,
    BindResult,
    BindState,
    ContainerRef,
    Coverage,
    Finding,
    HostError,
    HostResult,
    HostStatus,
    IntegrityResult,
    IntegrityStatus,
    InternalView,
    ListenerEvidence,
    ListenerSource,
    MappedFile,
    NatForward,
    PortReport,
    ProcessInfo,
    Proto,
    Severity,
    Stage,
    SystemFacts,
    ToolsDisagreement,
    Verdict,
    VerdictKind,
)
from fleetaudit.report import charts, render_html
from fleetaudit.report.charts import bar_chart
from fleetaudit.report.html import finding_anchor
from tests.unit.test_report import (
    DELETED_FINDING,
    HOSTILE_BANNER,
    IMPLANT_SHA256,
    POISON,
    WAIVED_FINDING,
    _Page,
    _poison,
    policy_results,
    sample_results,
)


def _parse(html: str) -> _Page:
    parsed = _Page()
    parsed.feed(html)
    parsed.close()
    return parsed


@pytest.fixture(scope="module")
def policy_page() -> tuple[str, _Page]:
    html = render_html(policy_results())
    return html, _parse(html)


def _element(html: str, tag: str, ident: str) -> str:
    """The markup of the element <tag id=ident> up to its first closing tag (no nesting)."""
    start = html.index(f'<{tag} class="port') if tag == "tbody" else 0
    match = re.search(rf'<{tag}\b[^>]*\bid="{re.escape(ident)}"[^>]*>', html[start:])
    assert match, ident
    begin = start + match.start()
    return html[begin : html.index(f"</{tag}>", begin)]


def _csp(html: str) -> dict[str, list[str]]:
    match = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html)
    assert match
    directives = {}
    for part in unescape(match.group(1)).split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_csp_allows_exactly_the_inlined_assets(policy_page: tuple[str, _Page]) -> None:
    html, parsed = policy_page
    csp = _csp(html)
    [script] = parsed.raw["script"]
    [style] = parsed.raw["style"]
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == [_sha256(script)]
    assert csp["style-src"] == [_sha256(style)]
    assert csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]
    assert "unsafe" not in html[: html.index("</head>")]
    # The hash covers the script exactly as the browser sees it: one byte more would not run.
    assert _sha256(script + " ") != csp["script-src"][0]


def test_every_finding_has_one_element_where_its_evidence_is(
    policy_page: tuple[str, _Page],
) -> None:
    html, parsed = policy_page
    results = policy_results()
    findings = [f for h in results.hosts for f in h.findings]
    for f in findings:
        assert parsed.ids.count(finding_anchor(f.id)) == 1, f.id
    # A port's finding is the last link of that port's evidence chain...
    chain = _element(html, "tbody", "host-web-01-tcp-2222")
    assert f'id="{finding_anchor(DELETED_FINDING)}"' in chain
    assert "Isolate the host, capture /proc/31337/exe" in chain
    # ...a host-wide one stands above the ports table, and each has a link from the table.
    host = parsed.section("host-web-01")
    assert "Host findings" in host and "lsof is missing" in host
    assert 'id="finding-audit-tools.web-01"' not in html[html.index('<table class="ports">') :]
    # linked from the findings list, the port's row, and its own "#" permalink
    assert html.count(f'href="#{finding_anchor(DELETED_FINDING)}"') == 3


def test_waivers_are_shown_not_hidden(policy_page: tuple[str, _Page]) -> None:
    html, parsed = policy_page
    waived = _element(html, "div", finding_anchor(WAIVED_FINDING))
    assert 'class="finding s-waived"' in waived
    assert "artifact cache until the migration" in html
    assert "alice@example.org" in parsed.section("host-web-01")
    findings = parsed.section("findings")
    assert "waived" in findings and "waiver expired" in findings
    # Expired waivers count as active: 6 active findings, 1 waived.
    summary = parsed.section("summary")
    assert "1 waived, not counted" in summary
    assert "2 critical 2 high 1 medium 1 low 0 info" in summary


def test_compliance_per_group(policy_page: tuple[str, _Page]) -> None:
    _, parsed = policy_page
    summary = parsed.section("summary")
    assert "Compliance by group" in summary
    fleet = summary.index("whole fleet")
    assert summary.index("db") > fleet  # the fleet row first
    assert "0 / 3 (0%)" in summary
    assert "no-cleartext-protocols 1" in summary
    assert "1 passing" in summary
    assert "not compliant" in parsed.section("host-web-01")


def test_no_policy_says_so(page_without_policy: tuple[str, _Page]) -> None:
    _, parsed = page_without_policy
    assert "findings" not in parsed.ids
    assert "Problem verdicts by severity" in parsed.section("summary")
    assert "no policy applied" in parsed.section("host-web-01")
    assert "Compliance" not in parsed.section("summary")


@pytest.fixture(scope="module")
def page_without_policy() -> tuple[str, _Page]:
    html = render_html(sample_results())
    return html, _parse(html)


def test_charts_are_inline_svg_drawn_server_side(policy_page: tuple[str, _Page]) -> None:
    html, parsed = policy_page
    summary_html = html[html.index('<section id="summary">') : html.index("</section>")]
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", summary_html)
    assert captions == ["Active findings by rule", "Verdicts by kind",
                        "Hosts by audit status and risk"]
    assert summary_html.count("<svg") == 3 + 3  # three charts, three compliance meters
    # Labels are text; bars are numbers computed in Python.
    assert re.search(r'<text class="label"[^>]*>no-unowned-listeners</text>', summary_html)
    assert re.search(r'<text class="label"[^>]*>SERVICE_PROCESS_MISMATCH</text>', summary_html)
    charts = "".join(re.findall(r'<figure class="chart">.*?</figure>', summary_html, re.S))
    widths = re.findall(r'<rect class="f-[a-z]+" x="[\d.]+" y="\d+" width="([^"]+)"', charts)
    assert len(widths) > 20 and all(float(w) > 0 for w in widths)
    assert "image" not in parsed.tags and "foreignobject" not in parsed.tags


def test_evidence_chain_follows_the_manual_method(policy_page: tuple[str, _Page]) -> None:
    html, _ = policy_page
    chain = _element(html, "tbody", "host-web-01-tcp-2222")
    steps = re.findall(r"<li[^>]*><b>([^<]+)</b>", chain)
    assert steps == [
        "port", "nmap", "socket", "PID", "exe", "cmdline", "user", "package", "verdicts", "policy",
    ]  # fmt: skip
    for fact in ["OpenSSH", "0.0.0.0:2222", "31337", "/tmp/.x/srv", "deleted", "www-data",
                 "not owned", "DELETED_BINARY", "no-unowned-listeners"]:  # fmt: skip
        assert fact in chain, fact
    # Two processes on one port: the socket..package steps repeat per listener.
    dns = _element(html, "tbody", "host-web-01-udp-53")
    assert re.findall(r"<b>(socket[^<]*)</b>", dns) == ["socket 1/2", "socket 2/2"]
    # The exe's hash, the process's container; integrity is part of the package step.
    assert IMPLANT_SHA256 in chain and "docker:3f2a9c" in chain
    redis = _element(html, "tbody", "host-web-01-tcp-6379")
    assert 'class="badge b-critical">modified</span>' in redis
    assert "??5?????? /usr/bin/redis-check-rdb" in redis and "MODIFIED_BINARY" in redis
    ssh = _element(html, "tbody", "host-web-01-tcp-22")
    assert 'class="badge b-ok">ok</span>' in ssh and "ssh.service" in ssh
    assert "not checked" in _element(html, "tbody", "host-web-01-tcp-80")
    assert "[::]:22" in ssh  # IPv6 sockets are bracketed


def test_filter_data_is_computed_never_copied(policy_page: tuple[str, _Page]) -> None:
    html, _ = policy_page
    row = r'(<div class="hrow" role="row"[^>]*>)\s*<div role="cell"><a[^>]*>([^<]*)<'
    rows = {m.group(2): m.group(1) for m in re.finditer(row, html)}
    web, db, legacy = rows["web-01"], rows["db-01"], rows["legacy &lt;b&gt;box&lt;/b&gt;"]
    # groups are indexes into the sorted group list [db, prod, web], shown in the select
    assert 'data-groups="2 1"' in web and 'data-groups="0"' in db and 'data-groups=""' in legacy
    assert re.findall(r'<select id="f-group">(.*?)</select>', html) == [
        '<option value="">any</option><option value="0">db</option><option value="1">prod</option>'
        '<option value="2">web</option><option value="none">(no group)</option>'
    ]
    assert 'data-worst="0"' in web and 'data-worst="5"' in db and 'data-worst="1"' in legacy
    assert 'data-status="unreachable"' in db
    assert "HIDDEN_LISTENER" in re.search(r'data-kinds="([^"]*)"', web).group(1)  # type: ignore[union-attr]
    assert 'data-findings="5"' in web  # 6 findings, the waived one not counted


def test_host_data_never_reaches_an_attribute() -> None:
    # Poison every string of the policy run; none of it may show up in any attribute value.
    html = render_html(_poison(policy_results()))
    parsed = _parse(html)
    for name, value in parsed.attrs:
        assert value is None or not ({"\x1b", "\u202e", "<", ">"} & set(value)), (name, value)
        assert value is None or ("[0m" not in value and "x</i" not in value), (name, value)
    text = " ".join("".join(parsed.text["findings"]).split())
    assert text.count("\\x1b[0m\\u202e<i>x</i>\\x00") >= 7 * 2  # each finding's rule and message
    assert "i" not in parsed.tags
    assert POISON not in html


def test_finding_anchors_are_stable_safe_and_unique() -> None:
    assert finding_anchor("rule-1.web-01.tcp.22") == "finding-rule-1.web-01.tcp.22"
    odd = finding_anchor('x" onclick="alert(1)')
    assert re.fullmatch(r"finding-x-onclick-alert-1-[0-9a-f]{12}", odd)
    assert odd == finding_anchor('x" onclick="alert(1)')  # stable across runs
    assert finding_anchor("a b") != finding_anchor("a/b")  # same slug, different digest
    assert re.fullmatch(r"finding-[0-9a-f]{12}", finding_anchor("\u202e"))
    # Two findings with one id (a policy bug) still get distinct elements.
    twice = [
        Finding(id="dup", rule="r", severity=Severity.LOW, host="h", message=m)
        for m in ("one", "two")
    ]
    host = HostResult(name="h", address="192.0.2.1", status=HostStatus.OK, findings=twice)
    base = AuditResults(
        tool_version="0", inventory="i", started_at=sample_results().started_at,
        finished_at=sample_results().finished_at, hosts=[host],
    )  # fmt: skip
    ids = _parse(render_html(base)).ids
    assert ids.count("finding-dup") == 1 and ids.count("finding-dup-2") == 1


def test_a_port_anchor_never_collides_with_a_host_anchor() -> None:
    base = sample_results()
    web = base.hosts[0]
    twin = HostResult(name="web-01 tcp 22", address="192.0.2.9", status=HostStatus.HOST_DOWN)
    ids = _parse(render_html(base.model_copy(update={"hosts": [web, twin]}))).ids
    assert len(ids) == len(set(ids))
    assert "host-web-01-tcp-22" in ids and "host-web-01-tcp-22-2" in ids


def test_hostile_finding_text_is_inert(policy_page: tuple[str, _Page]) -> None:
    html, parsed = policy_page
    assert parsed.tags.count("script") == 1
    findings = parsed.section("findings")
    assert "hidden listener answering as <script>alert(1)</script>\"'" in findings
    assert "legacy <b>box</b>" in findings
    assert HOSTILE_BANNER not in html  # the raw banner (with its controls) never appears


def test_finding_on_a_port_without_a_row_is_kept() -> None:
    # The policy may judge a port the reconciliation did not list; it must not vanish.
    base = policy_results()
    web = base.hosts[0]
    stray = Finding(
        id="stray.web-01.tcp.4444", rule="approved-services", severity=Severity.HIGH,
        host="web-01", proto=Proto.TCP, port=4444, message="port 4444 seen by the policy only",
    )  # fmt: skip
    hosts = [web.model_copy(update={"findings": [*web.findings, stray]}), *base.hosts[1:]]
    parsed = _parse(render_html(base.model_copy(update={"hosts": hosts})))
    assert "port 4444 seen by the policy only" in parsed.section("host-web-01")
    assert parsed.ids.count("finding-stray.web-01.tcp.4444") == 1


def test_bar_chart_geometry() -> None:
    chart = bar_chart(
        "t",
        [
            ("small", [("low", "low", 1), ("high", "high", 0)]),
            ("big", [("critical", "critical", 2), ("low", "low", 2)]),
            ("none", [("low", "low", 0)]),
            ("x" * 40, [("info", "info", 3)]),
        ],
        legend=[("low", "low")],
        max_bars=2,
    )
    assert [b.full_label for b in chart.bars] == ["big", "x" * 40]  # largest first, empty dropped
    assert chart.more == 1 and chart.empty is None
    big, long = chart.bars
    assert [s.count for s in big.segments] == [2, 2]
    assert big.segments[1].x == big.segments[0].x + big.segments[0].width  # stacked
    area = charts.WIDTH - charts.LABEL_WIDTH - charts.TOTAL_WIDTH
    assert sum(s.width for s in big.segments) == pytest.approx(area)  # the largest fills it
    assert long.segments[0].width == pytest.approx(area * 3 / 4)
    assert long.label.endswith("…") and len(long.label) == charts.MAX_LABEL
    assert bar_chart("t", [], empty="nothing").empty == "nothing"


# --- what the internal view could see: process details and per-host coverage ---------------

HOSTILE_LIB = "/dev/shm/<script>alert(4)</script>.so"
HOSTILE_ENV = "LD_<b>PRELOAD</b>"
HOSTILE_NOTE = '<a href="http://x">PID hidden</a>: <img src=x onerror=alert(5)>'
HOSTILE_SOURCE = "ss<i>x</i>"
STARTED = datetime(2025, 3, 14, 7, 1, 2, tzinfo=UTC)


def _seen01() -> HostResult:
    """One host carrying every field of the internal view the HTML report shows."""
    libs = [MappedFile(path=f"/usr/lib/x86_64-linux-gnu/lib{i}.so.1") for i in range(40)]
    proc = ProcessInfo(
        pid=777,
        exe="/usr/sbin/rogued",
        cmdline=["/usr/sbin/rogued", "--listen", "9999"],
        uid=0,
        user="root",
        name="kworker/0:1",
        ppid=1,
        started_at=STARTED,
        cwd="/var/tmp/.cache",
        sha256=IMPLANT_SHA256,
        libraries=[
            *libs,
            MappedFile(
                path="/opt/old/libcrypto.so.3",
                deleted=True,
                suspicious="deleted since it was mapped",
            ),
            MappedFile(path=HOSTILE_LIB, suspicious="under /dev/shm"),
        ],
        env_names=["PATH", "HOME", HOSTILE_ENV],
        systemd_unit="rogued.service",
        container=ContainerRef(runtime="containerd", id="beefcafe"),
        netns="net:[4026532999]",
        foreign_netns=True,
        integrity=IntegrityResult(
            path="/usr/sbin/rogued",
            status=IntegrityStatus.MODIFIED,
            manager="dpkg",
            detail="??5?????? /usr/sbin/rogued",
        ),
    )
    return HostResult(
        name="seen-01",
        address="10.0.0.21",
        status=HostStatus.OK,
        ports=[
            PortReport(
                proto=Proto.TCP,
                port=9999,
                listeners=[
                    ListenerEvidence(
                        address="0.0.0.0", source=ListenerSource.SS, pid=777, process=proc
                    )
                ],
                verdicts=[
                    Verdict(
                        kind=VerdictKind.LOCAL_ONLY,
                        severity=Severity.INFO,
                        message="listening, filtered outside",
                    )
                ],
            )
        ],
        internal=InternalView(
            processes=[proc],
            tools=["ss", "/proc"],
            missing_tools=["lsof"],
            system=SystemFacts(euid=1000, sudo=False, os_id="debian", os_version_id="12"),
            coverage=Coverage(
                sources=[HOSTILE_SOURCE, "/proc/net"],
                privileged=False,
                missing_tools=["lsof", "nft"],
                notes=["PID hidden: not privileged (3 sockets without owner)", HOSTILE_NOTE],
            ),
            bind_results=[
                BindResult(
                    proto=Proto.TCP,
                    port=31337,
                    address="0.0.0.0",
                    state=BindState.IN_USE,
                    detail="EADDRINUSE",
                ),
            ],
            nat_forwards=[
                NatForward(
                    proto=Proto.TCP,
                    port=8080,
                    kind="dnat",
                    to_address="172.17.0.2",
                    to_port=80,
                    family="ipv4",
                    chain="PREROUTING",
                    tool="iptables-save",
                    rule="-A PREROUTING -p tcp --dport 8080 -j DNAT --to 172.17.0.2:80",
                ),
            ],
            disagreements=[
                ToolsDisagreement(
                    proto=Proto.TCP,
                    port=4444,
                    address="0.0.0.0",
                    listed_by=[ListenerSource.PROC_NET],
                    missing_from=[ListenerSource.SS, ListenerSource.NETSTAT],
                ),
            ],
        ),
    )


def seen_results() -> AuditResults:
    """The sample fleet plus seen-01."""
    base = sample_results()
    return base.model_copy(update={"hosts": [*base.hosts, _seen01()]})


@pytest.fixture(scope="module")
def seen_page() -> tuple[str, _Page]:
    html = render_html(seen_results())
    return html, _parse(html)


def test_process_details_are_in_the_evidence_chain(seen_page: tuple[str, _Page]) -> None:
    html, parsed = seen_page
    chain = _element(html, "tbody", "host-seen-01-tcp-9999")
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", chain)).split())
    for fact in [
        "name kworker/0:1",
        "ppid 1",
        "started 2025-03-14 07:01:02 UTC",
        "cwd /var/tmp/.cache",
        "env names PATH HOME 'LD_<b>PRELOAD</b>'",  # names only, odd ones quoted
        "rogued.service",
        "containerd:beefcafe",
        "net:[4026532999]",
        "foreign netns",
        IMPLANT_SHA256,
        "modified",
        "/opt/old/libcrypto.so.3 deleted deleted since it was mapped",
        f"{HOSTILE_LIB} suspicious under /dev/shm",
        "and 40 other mapped files, neither deleted nor flagged",
    ]:
        assert fact in text, fact
    # Unflagged libraries are counted, not listed.
    assert "libc0.so" not in chain and "lib7.so.1" not in chain
    steps = re.findall(r"<li[^>]*><b>([^<]+)</b>", chain)
    assert steps[:6] == ["port", "nmap", "socket", "PID", "exe", "mapped"]
    # The side row flags what needs a look without opening the chain.
    side = chain[: chain.index('<tr class="chain-row">')]
    assert "2 flagged mapped files" in side and "foreign netns" in side
    # Hosts without these fields show no trace of them.
    web = parsed.section("host-web-01")
    assert "mapped file" not in web and "netns" not in web and "What we could see" not in web
    assert "missing lsof" in web  # still said on the facts line when no coverage block


def test_what_we_could_see_is_one_block_per_host(seen_page: tuple[str, _Page]) -> None:
    html, parsed = seen_page
    block = html[html.index('<details class="seen">') :]
    block = block[: block.index("</details>")]
    assert html.count('<details class="seen">') == 1
    text = " ".join(unescape(re.sub(r"<[^>]+>", "", block)).split())
    for fact in [
        "not privileged",  # summary badge
        "2 tools missing",  # lsof and nft, lsof said once
        "tools disagree on 1",
        "1 bind probe",
        "1 NAT forward",
        "2 notes",
        "debian 12 · euid 1000 · sudo refused",
        f"{HOSTILE_SOURCE}, /proc/net",
        "lsof, nft",
        "PID hidden: not privileged (3 sockets without owner)",
        HOSTILE_NOTE,
        "tcp/4444 0.0.0.0 listed by proc_net, missing from ss, netstat",
        "tcp/31337 0.0.0.0 in_use EADDRINUSE",
        "tcp/8080 → 172.17.0.2:80 dnat, iptables-save ipv4 PREROUTING",
        "-A PREROUTING -p tcp --dport 8080 -j DNAT --to 172.17.0.2:80",
    ]:
        assert fact in text, fact
    section = parsed.section("host-seen-01")
    assert "What we could see inside" in section
    assert "PID hidden" not in parsed.section("host-web-01")


def test_hostile_new_evidence_is_inert(seen_page: tuple[str, _Page]) -> None:
    html, parsed = seen_page
    assert parsed.tags.count("script") == 1 and html.lower().count("<script") == 1
    assert "img" not in parsed.tags and "i" not in parsed.tags and "b" in parsed.tags
    assert not any(name.startswith("on") for name, _ in parsed.attrs)
    assert not any(v and "http://x" in v for _, v in parsed.attrs)  # the note's link is text
    # The markup is shown escaped, as text of seen-01's section.
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in html
    assert "LD_&lt;b&gt;PRELOAD&lt;/b&gt;" in html
    assert "&lt;a href=&#34;http://x&#34;&gt;PID hidden&lt;/a&gt;" in html
    section = parsed.section("host-seen-01")
    for hostile in [HOSTILE_LIB, HOSTILE_ENV, HOSTILE_NOTE, HOSTILE_SOURCE]:
        assert hostile in section, hostile


def test_new_evidence_fields_render_inert_when_poisoned() -> None:
    # Every string of seen-01 (paths, names, notes, rules, NAT fields) carries control,
    # bidi and markup characters: none reaches the page raw, none reaches an attribute.
    html = render_html(_poison(seen_results()))
    parsed = _parse(html)
    assert "i" not in parsed.tags
    assert {"\x1b", "\u202e", "\x00"}.isdisjoint(html)
    for name, value in parsed.attrs:
        assert value is None or not ({"\x1b", "\u202e", "<", ">"} & set(value)), (name, value)
    section = next(parsed.section(i) for i in parsed.text if i.startswith("host-seen-01"))
    shown = "\\x1b[0m\\u202e<i>x</i>\\x00"
    for field in ["kworker/0:1", "/var/tmp/.cache", "/opt/old/libcrypto.so.3", "rogued.service",
                  "beefcafe", "net:[4026532999]", "debian", "EADDRINUSE", "PREROUTING",
                  "PID hidden: not privileged (3 sockets without owner)", "nft"]:  # fmt: skip
        assert field + shown in section, field
    # An env name with invisible characters is quoted as a whole and its escapes shown.
    assert "'HOME" + shown + "'" in section


# --- the external scan panel -------------------------------------------------------------

SCAN_CMDS = [
    "nmap -oX - 10.0.0.11 10.0.0.12 10.0.0.13 -n -Pn -v -sS --top-ports 1000 --min-hostgroup 3",
    "nmap -oX - 10.0.0.11 -p 22,80 -n -Pn -sS -sV --version-light --min-hostgroup 1",
    "nmap -oX - 10.0.0.13 -p 23 -n -Pn -sS -sV --version-light --min-hostgroup 1",
]
CUT_SHORT = ("service detection on tcp 23 did not finish (tcp scan failed (tcp-version-01-2): "
             "nmap produced no XML): open ports kept, services not identified")


def _scanned_results(**scan: object) -> AuditResults:
    """sample_results with a real fleet scan's record; legacy's -sV process was killed,
    db-01 has no external view at all."""
    results = sample_results()
    run = results.scan.model_copy(update={  # type: ignore[union-attr]
        "command": SCAN_CMDS[0], "commands": SCAN_CMDS, "profile": "quick",
        "privileged": True, "scan_type": "syn", "complete": False,
        "evidence": ["tcp-discovery-01.xml", "tcp-version-01-1.xml"],
        "errors": ["tcp-version-01-2: nmap produced no XML"], **scan})
    web, db, legacy = results.hosts
    db = db.model_copy(update={
        "status": HostStatus.SCAN_FAILED, "external": None,
        "errors": [HostError(stage=Stage.SCAN, message="tcp scan failed (tcp-discovery-01): "
                             "nmap produced no XML\nFailed to open device")]})
    legacy = legacy.model_copy(update={
        "external": legacy.external.model_copy(update={"errors": [CUT_SHORT]}),  # type: ignore[union-attr]
        "errors": [*legacy.errors, HostError(stage=Stage.SCAN, message=CUT_SHORT)]})
    return results.model_copy(update={"scan": run, "hosts": [web, db, legacy]})


def _scan_panel(html: str) -> str:
    start = html.index('<div class="panel" id="scan">')
    return html[start : html.index("</dl>", start)]


def test_scan_panel_shows_how_the_scan_ran_and_what_it_cost() -> None:
    html = render_html(_scanned_results())
    panel = _scan_panel(html)
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", panel)).split())
    for fact in ["profile quick", "scan type syn (as root: raw packets)", "nmap 7.93",
                 "complete incomplete", "nmap/tcp-discovery-01.xml",
                 "nmap/tcp-version-01-1.xml", "tcp-version-01-2: nmap produced no XML"]:
        assert fact in text, fact
    # Every command line, whole and in start order, one list item each.
    commands = re.search(r'<ol class="mono scan-list scan-commands">(.*?)</ol>', panel)
    assert commands is not None
    assert [unescape(c) for c in re.findall(r"<li>(.*?)</li>", commands.group(1))] == SCAN_CMDS
    # The hosts the scan failed, each linked to its section, with why.
    hosts = re.search(r'<ul class="scan-hosts">(.*?)</ul>', panel)
    assert hosts is not None
    items = re.findall(r'<li><a href="#(host-[a-z0-9-]+)">(.*?)</a>(.*?)</li>', hosts.group(1))
    legacy_id = next(i for i in _parse(html).ids if i.startswith("host-legacy"))
    # In the hosts table's order, worst first: legacy has a high verdict, db-01 none.
    assert [anchor for anchor, _, _ in items] == [legacy_id, "host-db-01"]
    db, legacy = items[1][2], items[0][2]
    badge = '<span class="badge audit b-{}">{}</span> <span class="raw-status">{}</span>'
    assert badge.format("warn", "partial", "scan_failed") in db
    assert "nmap produced no XML<br>Failed to open device" in db
    assert badge.format("bad", "unreachable", "auth_failed") in legacy
    assert CUT_SHORT in unescape(legacy)
    assert "host-web-01" not in hosts.group(1)  # a host the scan served fully is not listed


def test_a_host_whose_scan_was_cut_short_says_so_in_its_section() -> None:
    html = render_html(_scanned_results())
    parsed = _parse(html)
    legacy_id = next(i for i in parsed.ids if i.startswith("host-legacy"))
    section = parsed.section(legacy_id)
    assert "scan incomplete" in section and CUT_SHORT in section
    assert "scan incomplete" not in parsed.section("host-web-01")


def test_an_imported_scan_names_its_files_and_ignored_hosts() -> None:
    html = render_html(_scanned_results(
        source="import", imported=["/srv/scans/site-a.xml"], ignored_hosts=["203.0.113.7"],
        profile=None, privileged=None, scan_type=None, commands=[], command="",
        evidence=["import-01-site-a.xml"], complete=True, errors=[]))
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", _scan_panel(html))).split())
    for fact in ["nmap XML made elsewhere (--nmap-xml)", "/srv/scans/site-a.xml",
                 "1 host(s) not in the inventory: 203.0.113.7", "profile —",
                 "nmap/import-01-site-a.xml", "complete yes"]:
        assert fact in text, fact
    assert "scan-commands" not in _scan_panel(html)


def test_hostile_scan_record_is_inert() -> None:
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>\x1b[31m'
    html = render_html(_scanned_results(commands=[evil], evidence=[evil], errors=[evil],
                                        profile=evil, imported=[evil]))
    parsed = _parse(html)
    assert "img" not in parsed.tags and len(parsed.raw["script"]) == 1
    assert not any(name == "onerror" for name, _ in parsed.attrs)
    assert html.count("&lt;img src=x onerror=&#34;alert(1)&#34;&gt;") >= 3
    assert '<span class="ctl">' in _scan_panel(html)  # the escape byte, shown
