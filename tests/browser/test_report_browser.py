"""The HTML report in a real browser: Debian's headless Chromium driven by Playwright.

Opens a rendered report from disk and uses it as a reader would: filter, search,
sort, expand an evidence chain, follow deep links, print. Every test also checks
that hostile host data stayed inert: no script ran (window.__pwned), the console
has no error (a CSP violation would log one) and nothing but the file was loaded.
Screenshots land in tests/artifacts/ for a person to look at.

Needs `playwright` (pip, the dev extras) and /usr/bin/chromium (apt, `scripts/setup.sh
--dev`); never `playwright install`, which downloads a browser. Without them the
tests skip, except under CI, where a skip would hide that they did not run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleetaudit.models import (
    AuditResults,
    ExternalPort,
    Finding,
    HostResult,
    HostStatus,
    InternalView,
    ListenerEvidence,
    ListenerSource,
    PortReport,
    ProcessInfo,
    Proto,
    Severity,
    Verdict,
    VerdictKind,
)
from fleetaudit.report import write_report
from fleetaudit.report.html import finding_anchor
from tests.unit.test_report import DELETED_FINDING, IMPLANT_SHA256, policy_results
from tests.unit.test_report_badges import BADGE_FLEET_ORDER, badge_fleet

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright

    expect.set_options(timeout=15_000)  # a loaded 2-core CI machine is slower than a laptop
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
VIEWPORT = {"width": 1400, "height": 1000}

PWN_SCRIPT = "<script>window.__pwned=1</script>"
PWN_ATTR = "\"'><img src=x onerror=window.__pwned=2>"
EVIL_FINDING = "no-hidden-listeners.evil.tcp.8081"


def hostile_results() -> AuditResults:
    """The unit tests' policy run plus a host whose every string tries to run script."""
    proc = ProcessInfo(
        pid=4242,
        exe=f"/opt/{PWN_SCRIPT}",
        cmdline=["/opt/srv", PWN_SCRIPT, PWN_ATTR],
        user=PWN_ATTR,
        uid=65534,
    )
    evil = HostResult(
        name=f"evil{PWN_ATTR}",
        address="192.0.2.66",
        groups=["dmz"],
        status=HostStatus.OK,
        ports=[
            PortReport(
                proto=Proto.TCP,
                port=8081,
                external=ExternalPort(
                    proto=Proto.TCP,
                    port=8081,
                    state="open",
                    service="http",
                    product=PWN_SCRIPT,
                    version=PWN_ATTR,
                    extrainfo=PWN_SCRIPT,
                    fingerprint=PWN_SCRIPT + PWN_ATTR,
                ),
                listeners=[
                    ListenerEvidence(
                        address="0.0.0.0", source=ListenerSource.SS, pid=4242, process=proc
                    )
                ],
                verdicts=[
                    Verdict(
                        kind=VerdictKind.HIDDEN_LISTENER,
                        severity=Severity.CRITICAL,
                        message=f"banner {PWN_SCRIPT}",
                        evidence=[PWN_ATTR],
                    )
                ],
            )
        ],
        internal=InternalView(processes=[proc], tools=["ss"]),
        findings=[
            Finding(
                id=EVIL_FINDING,
                rule="no-hidden-listeners",
                severity=Severity.CRITICAL,
                host=f"evil{PWN_ATTR}",
                proto=Proto.TCP,
                port=8081,
                message=f"hidden listener says {PWN_SCRIPT} {PWN_ATTR}",
                remediation=PWN_ATTR,
            )
        ],
        compliant=False,
    )
    base = policy_results()
    return base.model_copy(update={"hosts": [*base.hosts, evil]})


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    paths = write_report(hostile_results(), tmp_path_factory.mktemp("report"), formats=["html"])
    assert paths.index_html is not None
    return paths.index_html


@dataclass
class Watched:
    """A page plus everything it logged, threw and requested."""

    page: Page
    url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, fragment: str = "") -> None:
        self.page.goto(self.url + fragment)

    def assert_clean(self) -> None:
        assert self.page.evaluate("() => window.__pwned") is None
        assert self.page.evaluate("() => document.images.length") == 0
        assert self.page.evaluate("() => document.scripts.length") == 1
        assert self.errors == []
        assert {r.split("#")[0] for r in self.requests} == {self.url}

    def visible_hosts(self) -> list[str]:
        """Names of the hosts whose rows are shown, top to bottom as the reader sees them."""
        rows: list[dict[str, Any]] = self.page.evaluate(
            """() => Array.from(document.querySelectorAll('#hosts-rows > .hrow'))
                 .filter(r => !r.hidden)
                 .map(r => ({name: r.children[0].textContent, y: r.getBoundingClientRect().top}))"""
        )
        return [r["name"] for r in sorted(rows, key=lambda r: r["y"])]

    def shot(self, name: str, **kw: Any) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), **kw)
        return path


@pytest.fixture
def watched(browser: Browser, report: Path) -> Iterator[Watched]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    w = Watched(page=page, url=report.as_uri())
    page.on("console", lambda m: w.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: w.errors.append(str(e)))
    page.on("request", lambda r: w.requests.append(r.url))
    yield w
    context.close()


EVIL_NAME = f"evil{PWN_ATTR}"
# Worst first, as the page lists them: two critical hosts (web-01 has more), the high one,
# then db-01 with nothing to report.
ALL = ["web-01", EVIL_NAME, "legacy <b>box</b>", "db-01"]


def test_hostile_host_data_is_inert(watched: Watched) -> None:
    watched.open()
    page = watched.page
    expect(page.locator("#f-count")).to_have_text("all 4 hosts")
    # The hostile strings are on the page, as text.
    assert PWN_SCRIPT in page.locator("#findings").inner_text()
    assert EVIL_NAME in (page.locator("#hosts-rows").text_content() or "")
    # Rendering the hidden parts (chains, fingerprints) must not run anything either.
    page.click("#x-open")
    evil = page.locator("section.host", has_text="192.0.2.66")
    expect(evil.locator("details.chain")).to_have_attribute("open", "")
    evil.scroll_into_view_if_needed()  # offscreen sections are rendered once seen
    expect(evil).to_contain_text(PWN_ATTR, use_inner_text=True)
    expect(evil).to_contain_text(PWN_SCRIPT, use_inner_text=True)
    evil.screenshot(path=str(ARTIFACTS / "report-hostile-host.png"))
    page.evaluate("() => window.scrollTo(0, 0)")
    watched.shot("report-summary.png")
    watched.assert_clean()


def test_filter_by_severity_group_status_and_verdict(watched: Watched) -> None:
    watched.open()
    page = watched.page
    count = page.locator("#f-count")
    assert watched.visible_hosts() == ALL
    page.select_option("#f-sev", label="critical")
    expect(count).to_have_text("2 of 4 hosts")
    assert watched.visible_hosts() == ["web-01", EVIL_NAME]
    expect(page.locator("#host-db-01")).to_be_hidden()  # the details follow the table
    page.select_option("#f-sev", label="high or worse")
    assert watched.visible_hosts() == ["web-01", EVIL_NAME, "legacy <b>box</b>"]
    page.select_option("#f-group", label="dmz")
    assert watched.visible_hosts() == [EVIL_NAME]
    page.click("#f-clear")
    page.select_option("#f-sev", label="with nothing to report")
    assert watched.visible_hosts() == ["db-01"]
    page.click("#f-clear")
    page.select_option("#f-status", "unreachable")  # db-01, and legacy (auth_failed)
    assert watched.visible_hosts() == ["legacy <b>box</b>", "db-01"]
    page.select_option("#f-status", "")
    page.select_option("#f-kind", "TOOLS_DISAGREE")
    assert watched.visible_hosts() == ["web-01"]
    page.select_option("#f-group", label="(no group)")
    expect(count).to_have_text("0 of 4 hosts")
    expect(page.locator("#f-none")).to_be_visible()
    page.click("#f-clear")
    expect(count).to_have_text("all 4 hosts")
    page.select_option("#f-sev", label="critical")
    watched.shot("report-filtered.png")
    watched.assert_clean()


def test_search(watched: Watched) -> None:
    watched.open()
    page = watched.page
    count = page.locator("#f-count")
    page.keyboard.press("/")  # focuses the search box
    page.keyboard.type("mariadbd")  # applies as the reader pauses typing
    expect(count).to_have_text("1 of 4 hosts")
    assert watched.visible_hosts() == ["web-01"]

    def search(text: str) -> list[str]:
        page.fill("#f-q", text)
        page.press("#f-q", "Enter")  # applies at once
        return watched.visible_hosts()

    assert search("telnet") == ["legacy <b>box</b>"]  # a service seen only from outside
    assert search("onerror=window.__pwned") == [EVIL_NAME]  # data is searchable as text
    assert search("WEB  PROD") == ["web-01"]  # every word must match, in any case
    assert search("openssh-server") == ["web-01"]  # a package, inside an evidence chain
    assert search("no-such-thing-anywhere") == []
    expect(count).to_have_text("0 of 4 hosts")
    assert search("") == ALL
    expect(count).to_have_text("all 4 hosts")
    watched.assert_clean()


def test_sort(watched: Watched) -> None:
    watched.open()
    page = watched.page
    header = page.locator('[role=columnheader][data-key="name"]')
    header.locator("button").click()
    assert watched.visible_hosts() == ["db-01", EVIL_NAME, "legacy <b>box</b>", "web-01"]
    expect(header).to_have_attribute("aria-sort", "ascending")
    header.locator("button").click()
    assert watched.visible_hosts() == ["web-01", "legacy <b>box</b>", EVIL_NAME, "db-01"]
    expect(header).to_have_attribute("aria-sort", "descending")
    page.locator('[data-key="severity"] button').click()
    order = watched.visible_hosts()
    assert order[:2] == ["web-01", EVIL_NAME]  # critical first, more findings first
    assert order[2:] == ["legacy <b>box</b>", "db-01"]
    expect(header).not_to_have_attribute("aria-sort", "ascending")
    # The host sections below follow the table's order.
    tops = page.evaluate(
        """() => Array.from(document.querySelectorAll('#hosts-details > section'))
             .map(s => [s.querySelector('h2').textContent, s.getBoundingClientRect().top])"""
    )
    assert [name for name, _ in sorted(tops, key=lambda t: t[1])] == order
    page.select_option("#f-sev", label="high or worse")  # sorting and filtering combine
    assert watched.visible_hosts() == ["web-01", EVIL_NAME, "legacy <b>box</b>"]
    watched.assert_clean()


def test_expand_an_evidence_chain(watched: Watched) -> None:
    watched.open()
    page = watched.page
    port = page.locator("#host-web-01-tcp-2222")
    chain = port.locator("details.chain")
    exe = chain.locator("ol.chain > li", has=page.locator("b", has_text="exe"))
    expect(exe).to_be_hidden()
    chain.locator("summary").click()
    expect(exe).to_be_visible()
    expect(exe).to_contain_text(IMPLANT_SHA256)
    steps = chain.locator("ol.chain > li > b").all_inner_texts()
    assert [s.lower() for s in steps] == [
        "port", "nmap", "socket", "pid", "exe", "cmdline", "user", "package", "verdicts", "policy",
    ]  # fmt: skip
    page.set_viewport_size({"width": 1400, "height": 1600})  # the whole chain in one picture
    port.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port.screenshot(path=str(ARTIFACTS / "report-evidence-chain.png"))
    chain.locator("summary").click()
    expect(exe).to_be_hidden()
    watched.assert_clean()


def test_deep_link_to_a_host(watched: Watched) -> None:
    watched.open("#host-db-01")
    page = watched.page
    section = page.locator("#host-db-01")
    expect(section).to_be_in_viewport()
    # A link to a host that the filters hide clears them and shows it.
    page.evaluate("() => { location.hash = '#top'; }")
    page.select_option("#f-sev", label="critical")
    expect(section).to_be_hidden()
    page.evaluate("() => { location.hash = '#host-db-01'; }")
    expect(page.locator("#f-count")).to_have_text("all 4 hosts")
    expect(section).to_be_visible()
    expect(section).to_be_in_viewport()
    # A link to a port shows that port with its evidence chain open.
    page.evaluate("() => { location.hash = '#host-web-01-tcp-6379'; }")
    port = page.locator("#host-web-01-tcp-6379")
    expect(port.locator("details.chain")).to_have_attribute("open", "")
    expect(port.locator("tr.side")).to_be_in_viewport()
    watched.assert_clean()


def test_deep_link_to_a_finding_opens_its_chain(watched: Watched) -> None:
    anchor = finding_anchor(DELETED_FINDING)
    watched.open("#" + anchor)
    page = watched.page
    finding = page.locator(f'[id="{anchor}"]')
    expect(finding).to_be_visible()
    expect(finding).to_be_in_viewport()
    expect(page.locator("#host-web-01-tcp-2222 details.chain")).to_have_attribute("open", "")
    expect(finding).to_contain_text("Isolate the host")
    watched.shot("report-finding-deeplink.png")
    # Following a link from the findings table works the same way.
    evil = finding_anchor(EVIL_FINDING)
    page.locator(f'#findings a[href="#{evil}"]').click()
    expect(page.locator(f'[id="{evil}"]')).to_be_in_viewport()
    assert page.evaluate("() => location.hash") == f"#{evil}"
    watched.assert_clean()


def test_print_is_expanded_and_without_controls(watched: Watched) -> None:
    watched.open()
    page = watched.page
    page.emulate_media(media="print")
    expect(page.locator("#controls")).to_be_hidden()
    expect(page.locator("nav.jump")).to_be_hidden()
    exe = page.locator("#host-web-01-tcp-2222 ol.chain > li", has=page.locator("b", has_text="exe"))
    expect(exe).to_be_visible()  # closed details print expanded
    watched.shot("report-print.png", full_page=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf = ARTIFACTS / "report.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert pdf.stat().st_size > 10_000
    page.emulate_media(media="screen")
    expect(page.locator("#controls")).to_be_visible()
    watched.assert_clean()


@pytest.fixture(scope="module")
def badge_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    paths = write_report(badge_fleet(), tmp_path_factory.mktemp("badges"), formats=["html"])
    assert paths.index_html is not None
    return paths.index_html


def _colour(page: Page, selector: str) -> list[str]:
    """The computed background of every element `selector` finds: what the reader sees."""
    colours: list[str] = page.evaluate(
        "s => Array.from(document.querySelectorAll(s))"
        ".map(e => getComputedStyle(e).backgroundColor)",
        selector,
    )
    return colours


def test_a_critical_host_shows_no_green_badge_and_the_cards_count_apart(
    browser: Browser, badge_report: Path
) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    w = Watched(page=page, url=badge_report.as_uri())
    page.on("console", lambda m: w.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: w.errors.append(str(e)))
    page.on("request", lambda r: w.requests.append(r.url))
    w.open()
    green = _colour(page, '.hrow:has(a[href="#host-clean-01"]) .badge.audit')
    assert len(green) == 1  # the healthy host's badge is the green the others must not be
    # The critical hidden listener: no badge of its row or of its section's head is green.
    hidden = _colour(page, '.hrow:has(a[href="#host-hidden-01"]) .badge')
    hidden += _colour(page, "#host-hidden-01 > .head .badge")
    assert len(hidden) >= 4 and green[0] not in hidden
    expect(page.locator("#host-hidden-01 > .head .badge.audit")).to_have_text("complete")
    expect(page.locator("#host-hidden-01 > .head .badge.risk")).to_have_text("risk critical")
    # Nor is any complete host with a medium or worse finding, nor a partial one.
    for name in ("h3m1", "h2m2", "medium-01", "partial-01", "down-01"):
        assert green[0] not in _colour(page, f'.hrow:has(a[href="#host-{name}"]) .badge'), name
    assert _colour(page, '.hrow:has(a[href="#host-lowrisk-01"]) .badge.audit') == green
    # The cards: audited completely, critical/high, compliant; no "audited ok".
    cards = page.locator("#summary .cards").first
    expect(cards).not_to_contain_text("audited ok", ignore_case=True)
    expect(page.locator("#card-complete .n")).to_have_text("6")
    expect(page.locator("#card-complete .l")).to_have_text("hosts audited completely")
    expect(page.locator("#card-serious .n")).to_have_text("3")
    expect(page.locator("#card-serious .l")).to_have_text("hosts with critical/high findings")
    expect(page.locator("#card-compliant .n")).to_have_text("1")
    expect(page.locator("#card-compliant .l")).to_have_text("compliant hosts")
    # Worst first on arrival (3 high + 1 medium above 2 high + 2 medium); the risk header
    # says so, and a click on it shows the best first.
    worst = [name for name, _, _ in BADGE_FLEET_ORDER]
    assert w.visible_hosts() == worst
    risk = page.locator('[role=columnheader][data-key="severity"]')
    expect(risk).to_have_attribute("aria-sort", "ascending")
    risk.locator("button").click()
    expect(risk).to_have_attribute("aria-sort", "descending")
    assert w.visible_hosts() == worst[::-1]
    page.locator('[data-key="name"] button').click()
    risk.locator("button").click()
    assert w.visible_hosts() == worst
    page.select_option("#f-status", "partial")
    assert w.visible_hosts() == ["partial-01"]
    page.select_option("#f-status", "")
    page.evaluate("() => window.scrollTo(0, 0)")
    w.shot("report-badges.png")
    w.assert_clean()
    context.close()
