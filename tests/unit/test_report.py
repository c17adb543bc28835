"""Report layer: facts land in the right host section, host data stays inert, files stay private."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, date, datetime
from enum import Enum
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fleetaudit.errors import ConfigError
from fleetaudit.models import (
    RESULTS_SCHEMA_VERSION,
    AuditResults,
    ComplianceSummary,
    ContainerRef,
    ExternalHost,
    ExternalPort,
    ExtraPorts,
    Finding,
    HostError,
    HostResult,
    HostStatus,
    IntegrityResult,
    IntegrityStatus,
    InternalView,
    ListenerEvidence,
    ListenerSource,
    PackageOwner,
    PortRange,
    PortReport,
    ProcessInfo,
    Proto,
    RuleOutcome,
    ScanRun,
    Severity,
    Stage,
    Verdict,
    VerdictKind,
    Waiver,
)
from fleetaudit.report import (
    render_html,
    results_from_json,
    results_to_json,
    write_report,
)

PACKAGED_JS = (resources.files("fleetaudit.report") / "assets" / "report.js").read_text("utf-8")
HOSTILE_BANNER = "<script>alert(1)</script>\"' \x1b[31mred\x1b[0m \x00nul \u202eevil"
HOSTILE_ARG = "<img src=x onerror=alert(2)></td></table><script>alert(3)</script>"
HOSTILE_NAME = "legacy <b>box</b>"

T0 = datetime(2025, 3, 14, 9, 30, 0, tzinfo=UTC)
T1 = datetime(2025, 3, 14, 9, 34, 12, 345678, tzinfo=UTC)

DPKG = "dpkg"
IMPLANT_SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _proc(
    pid: int,
    exe: str,
    cmdline: list[str],
    package: PackageOwner | None = None,
    *,
    deleted: bool = False,
    user: str = "root",
    uid: int = 0,
    manager: str | None = DPKG,
    errors: list[str] | None = None,
) -> ProcessInfo:
    return ProcessInfo(
        pid=pid,
        exe=exe,
        exe_deleted=deleted,
        cmdline=cmdline,
        uid=uid,
        user=user,
        package=package,
        package_manager=manager,
        errors=errors or [],
    )


def _listen(
    address: str, proc: ProcessInfo | None, source: ListenerSource = ListenerSource.SS
) -> ListenerEvidence:
    return ListenerEvidence(
        address=address, source=source, pid=proc.pid if proc else None, process=proc
    )


def _v(kind: VerdictKind, sev: Severity, msg: str, *evidence: str) -> Verdict:
    return Verdict(kind=kind, severity=sev, message=msg, evidence=list(evidence))


def _tcp(port: int, state: str = "open", **kw: object) -> ExternalPort:
    return ExternalPort(proto=Proto.TCP, port=port, state=state, reason="syn-ack", **kw)


def _web01() -> HostResult:
    sshd = _proc(
        612,
        "/usr/sbin/sshd",
        ["sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"],
        PackageOwner(manager=DPKG, name="openssh-server", version="1:9.2p1-2+deb12u3"),
    ).model_copy(
        update={
            "systemd_unit": "ssh.service",
            "integrity": IntegrityResult(
                path="/usr/sbin/sshd", status=IntegrityStatus.OK, manager=DPKG
            ),
        }
    )
    nginx = _proc(
        901,
        "/usr/sbin/nginx",
        ["nginx: master process /usr/sbin/nginx -g daemon on; master_process on;"],
        PackageOwner(manager=DPKG, name="nginx-core", version="1.22.1-9"),
    )
    pyhttp = _proc(
        1402,
        "/usr/bin/python3.11",
        ["/usr/bin/python3", "-m", "http.server", "8443", "--bind", "0.0.0.0"],
        PackageOwner(manager=DPKG, name="python3.11-minimal", version="3.11.2-6"),
        user="deploy",
        uid=1001,
    )
    implant = _proc(
        31337,
        "/tmp/.x/srv",
        ["/tmp/.x/srv", "-l", "2222"],
        None,
        deleted=True,
        user="www-data",
        uid=33,
    ).model_copy(
        update={"sha256": IMPLANT_SHA256, "container": ContainerRef(runtime="docker", id="3f2a9c")}
    )
    mysqld = _proc(
        700,
        "/usr/sbin/mariadbd",
        ["/usr/sbin/mariadbd"],
        PackageOwner(manager=DPKG, name="mariadb-server", version="1:10.11.6-0+deb12u1"),
        user="mysql",
        uid=104,
    )
    hidden = _proc(4444, "/usr/lib/.cache/kworkerd", ["[kworker/0:2]"], None)
    proxy = _proc(
        2210,
        "/usr/bin/docker-proxy",
        ["/usr/bin/docker-proxy", "-proto", "tcp", "-host-port", "8080", "-container-port", "80"],
        PackageOwner(manager=DPKG, name="docker.io", version="20.10.24+dfsg1-1+b3"),
    )
    postgres = _proc(
        815,
        "/usr/lib/postgresql/15/bin/postgres",
        ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main"],
        PackageOwner(manager=DPKG, name="postgresql-15", version="15.6-0+deb12u1"),
        user="postgres",
        uid=105,
    )
    redis = _proc(
        1290,
        "/usr/bin/redis-check-rdb",
        ["redis-server", HOSTILE_ARG, "--port\n6379"],
        PackageOwner(manager=DPKG, name="redis-tools", version="5:7.0.15-1~deb12u1"),
        user="redis",
        uid=106,
    ).model_copy(
        update={
            "integrity": IntegrityResult(
                path="/usr/bin/redis-check-rdb",
                status=IntegrityStatus.MODIFIED,
                manager=DPKG,
                detail="??5?????? /usr/bin/redis-check-rdb",
            )
        }
    )
    named = _proc(
        530,
        "/usr/sbin/named",
        ["/usr/sbin/named", "-f", "-u", "bind"],
        PackageOwner(manager=DPKG, name="bind9", version="1:9.18.24-1"),
        user="bind",
        uid=107,
        errors=["/proc/530/environ: permission denied"],
    )
    ports = [
        PortReport(
            proto=Proto.TCP,
            port=22,
            external=_tcp(
                22,
                service="ssh",
                product="OpenSSH",
                version="9.2p1 Debian 2+deb12u3",
                extrainfo="protocol 2.0",
                method="probed",
                confidence=10,
                cpes=["cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"],
                default_service="ssh",
            ),
            listeners=[_listen("0.0.0.0", sshd), _listen("::", sshd)],
            verdicts=[_v(VerdictKind.CONSISTENT, Severity.INFO, "sshd from openssh-server")],
        ),
        PortReport(
            proto=Proto.TCP,
            port=80,
            external=_tcp(80, service="http", product="nginx", version="1.22.1"),
            listeners=[_listen("0.0.0.0", nginx)],
            verdicts=[_v(VerdictKind.CONSISTENT, Severity.INFO, "nginx from nginx-core")],
        ),
        PortReport(
            proto=Proto.TCP,
            port=2222,
            external=_tcp(2222, service="ssh", product="OpenSSH", version="7.4", tunnel=None),
            listeners=[_listen("0.0.0.0", implant)],
            verdicts=[
                _v(
                    VerdictKind.SERVICE_PROCESS_MISMATCH,
                    Severity.HIGH,
                    "nmap sees ssh but the listener is not sshd",
                    "service=ssh",
                    "exe=/tmp/.x/srv",
                ),
                _v(
                    VerdictKind.UNOWNED_BINARY,
                    Severity.HIGH,
                    "no dpkg package owns /tmp/.x/srv",
                    "dpkg -S /tmp/.x/srv: no path found",
                ),
                _v(
                    VerdictKind.DELETED_BINARY,
                    Severity.CRITICAL,
                    "the listener's executable was deleted after it started",
                    "/proc/31337/exe -> /tmp/.x/srv (deleted)",
                ),
                _v(
                    VerdictKind.SUSPICIOUS_PATH,
                    Severity.HIGH,
                    "executable under /tmp in a hidden directory",
                ),
            ],
        ),
        PortReport(
            proto=Proto.TCP,
            port=3306,
            listeners=[_listen("127.0.0.1", mysqld)],
            verdicts=[_v(VerdictKind.LOCAL_ONLY, Severity.INFO, "bound to loopback only")],
        ),
        PortReport(
            proto=Proto.TCP,
            port=8080,
            external=_tcp(8080, service="http", product="nginx", version="1.25.4"),
            listeners=[_listen("0.0.0.0", proxy)],
            verdicts=[
                _v(
                    VerdictKind.FORWARDED,
                    Severity.MEDIUM,
                    "docker-proxy forwards to a container; the service runs elsewhere",
                )
            ],
        ),
        PortReport(
            proto=Proto.TCP,
            port=8443,
            external=_tcp(
                8443,
                service="http",
                product="SimpleHTTPServer",
                version="0.6",
                extrainfo="Python 3.11.2",
                tunnel="ssl",
                default_service="https-alt",
            ),
            listeners=[_listen("0.0.0.0", pyhttp)],
            verdicts=[
                _v(VerdictKind.NONSTANDARD_PORT, Severity.LOW, "http on 8443, usually https-alt")
            ],
        ),
        PortReport(
            proto=Proto.TCP,
            port=5432,
            external=ExternalPort(
                proto=Proto.TCP, port=5432, state="filtered", reason="no-response"
            ),
            listeners=[_listen("0.0.0.0", postgres)],
            verdicts=[
                _v(VerdictKind.FILTERED, Severity.LOW, "listening on all addresses, firewalled")
            ],
        ),
        PortReport(
            proto=Proto.TCP,
            port=6379,
            external=_tcp(6379, service="redis", product="Redis key-value store", version="7.0.15"),
            listeners=[_listen("0.0.0.0", redis)],
            verdicts=[
                _v(
                    VerdictKind.MODIFIED_BINARY,
                    Severity.CRITICAL,
                    "exe differs from the packaged file",
                    "dpkg --verify: ??5?????? /usr/bin/redis-check-rdb",
                )
            ],
        ),
        PortReport(
            proto=Proto.TCP,
            port=9000,
            external=_tcp(9000, service="cslistener"),
            verdicts=[
                _v(VerdictKind.EXTERNAL_ONLY, Severity.MEDIUM, "open outside, nothing inside")
            ],
        ),
        PortReport(
            proto=Proto.TCP,
            port=31337,
            external=_tcp(
                31337,
                service="http",
                product=HOSTILE_BANNER,
                version="1.0\r\n<iframe src=//evil>",
                extrainfo="</dd></dl><h1>pwned</h1>",
                fingerprint='SF-Port31337-TCP:V=7.93%I=7%D=3/14%Time=65F2C0A1%P=x86_64-pc-linux-gnu%r(GetRequest,3A,"HTTP/1\\.0\\x20200\\x20OK\\r\\n<script>x</script>")',
            ),
            listeners=[_listen("0.0.0.0", hidden, ListenerSource.PROC_NET)],
            verdicts=[
                _v(
                    VerdictKind.HIDDEN_LISTENER,
                    Severity.CRITICAL,
                    "open outside and in /proc/net/tcp, but ss does not show it",
                    f"banner: {HOSTILE_BANNER}",
                )
            ],
        ),
        PortReport(
            proto=Proto.UDP,
            port=53,
            external=ExternalPort(proto=Proto.UDP, port=53, state="open", service="domain"),
            listeners=[
                _listen("10.0.0.11", named, ListenerSource.SS),
                _listen("10.0.0.11", None, ListenerSource.NETSTAT),
            ],
            verdicts=[
                _v(
                    VerdictKind.TOOLS_DISAGREE,
                    Severity.LOW,
                    "ss and netstat name different owners",
                    "ss: named pid 530",
                    "netstat: -",
                )
            ],
        ),
        PortReport(
            proto=Proto.UDP,
            port=161,
            external=ExternalPort(
                proto=Proto.UDP, port=161, state="open|filtered", reason="no-response"
            ),
            verdicts=[_v(VerdictKind.UNKNOWN, Severity.INFO, "no response and no listener")],
        ),
    ]
    return HostResult(
        name="web-01",
        address="10.0.0.11",
        groups=["web", "prod"],
        status=HostStatus.OK,
        ports=ports,
        internal=InternalView(
            processes=[sshd, nginx],
            tools=["ss", "/proc", "dpkg"],
            missing_tools=["lsof"],
        ),
        external=ExternalHost(
            address="10.0.0.11",
            status="up",
            reason="arp-response",
            ports=[p.external for p in ports if p.external],
            extraports=[ExtraPorts(proto=Proto.TCP, state="closed", count=65526)],
            scanned={
                Proto.TCP: [PortRange(first=1, last=65535)],
                Proto.UDP: [PortRange(first=53, last=53), PortRange(first=161, last=161)],
            },
        ),
    )


def sample_results() -> AuditResults:
    """A small fleet that exercises every verdict kind, a failed host and hostile host data."""
    db01 = HostResult(
        name="db-01",
        address="10.0.0.12",
        groups=["db"],
        status=HostStatus.UNREACHABLE,
        errors=[
            HostError(
                stage=Stage.CONNECT,
                message="ssh 10.0.0.12:22: connection timed out after 10s\nretried 3 times",
            )
        ],
        external=ExternalHost(address="10.0.0.12", status="down", reason="no-response"),
    )
    legacy = HostResult(
        name=HOSTILE_NAME,
        address="10.0.0.13",
        status=HostStatus.AUTH_FAILED,
        errors=[HostError(stage=Stage.CONNECT, message="Permission denied (publickey).")],
        external=ExternalHost(
            address="10.0.0.13",
            status="up",
            reason="echo-reply",
            ports=[_tcp(23, service="telnet", product="Linux telnetd")],
            extraports=[ExtraPorts(proto=Proto.TCP, state="filtered", count=65534)],
            scanned={Proto.TCP: [PortRange(first=1, last=65535)]},
        ),
        ports=[
            PortReport(
                proto=Proto.TCP,
                port=23,
                external=_tcp(23, service="telnet", product="Linux telnetd"),
                verdicts=[
                    _v(VerdictKind.EXTERNAL_ONLY, Severity.HIGH, "telnet open; inside unknown")
                ],
            )
        ],
    )
    return AuditResults(
        tool_version="0.1.0",
        inventory="inventories/prod.yaml",
        started_at=T0,
        finished_at=T1,
        scan=ScanRun(
            command="nmap -sS -sV -p T:1-65535,U:53,161 -oX - 10.0.0.11 10.0.0.12 10.0.0.13",
            nmap_version="7.93",
            started_at=T0,
            finished_at=T1,
            scan_type="syn",
        ),
        hosts=[_web01(), db01, legacy],
    )


POLICY = "policies/baseline.yaml"
DELETED_FINDING = "no-unowned-listeners.web-01.tcp.2222"
WAIVED_FINDING = "approved-services.web-01.tcp.8443"


def _finding(
    fid: str,
    rule: str,
    sev: Severity,
    host: str,
    port: int | None,
    message: str,
    *evidence: str,
    proto: Proto | None = Proto.TCP,
    **kw: Any,
) -> Finding:
    return Finding(
        id=fid,
        rule=rule,
        severity=sev,
        host=host,
        proto=proto if port is not None else None,
        port=port,
        message=message,
        evidence=list(evidence),
        **kw,
    )


def policy_results() -> AuditResults:
    """sample_results() judged by a policy: active, waived and expired findings, compliance."""
    base = sample_results()
    web, db, legacy = base.hosts
    web_findings = [
        _finding(
            DELETED_FINDING,
            "no-unowned-listeners",
            Severity.CRITICAL,
            "web-01",
            2222,
            "port 2222 is served by /tmp/.x/srv: no package owns it and it was deleted",
            "pid 31337 exe /tmp/.x/srv (deleted)",
            remediation="Isolate the host, capture /proc/31337/exe, then investigate.",
        ),
        _finding(
            "no-hidden-listeners.web-01.tcp.31337",
            "no-hidden-listeners",
            Severity.CRITICAL,
            "web-01",
            31337,
            f"hidden listener answering as {HOSTILE_BANNER}",
            f"banner: {HOSTILE_BANNER}",
        ),
        _finding(
            "no-modified-binaries.web-01.tcp.6379",
            "no-modified-binaries",
            Severity.HIGH,
            "web-01",
            6379,
            "redis-check-rdb differs from its package",
            "dpkg --verify: ??5?????? /usr/bin/redis-check-rdb",
            remediation="Reinstall redis-tools and find out who changed the file.",
        ),
        _finding(
            WAIVED_FINDING,
            "approved-services",
            Severity.MEDIUM,
            "web-01",
            8443,
            "python http.server is not an approved service",
            waiver=Waiver(
                rule="approved-services",
                host="web-01",
                proto=Proto.TCP,
                port=8443,
                reason="artifact cache until the migration",
                owner="alice@example.org",
                expires=date(2099, 12, 31),
            ),
        ),
        _finding(
            "approved-services.web-01.tcp.9000",
            "approved-services",
            Severity.MEDIUM,
            "web-01",
            9000,
            "cslistener is not an approved service",
            waiver=Waiver(
                rule="approved-services",
                host="web-01",
                reason="temporary",
                owner="bob@example.org",
                expires=date(2024, 1, 1),
            ),
            waiver_expired=True,
        ),
        _finding(
            "audit-tools.web-01",
            "audit-tools-present",
            Severity.LOW,
            "web-01",
            None,
            "lsof is missing, so one cross-check could not run",
        ),
    ]
    legacy_findings = [
        _finding(
            "no-cleartext.legacy.tcp.23",
            "no-cleartext-protocols",
            Severity.HIGH,
            HOSTILE_NAME,
            23,
            "telnet is open to the network",
            remediation="Disable telnetd; use SSH.",
        )
    ]
    rules = [
        RuleOutcome(rule="no-unowned-listeners", passed=False, findings=1),
        RuleOutcome(rule="no-hidden-listeners", passed=False, findings=1),
        RuleOutcome(rule="no-modified-binaries", passed=False, findings=1),
        RuleOutcome(rule="approved-services", passed=False, findings=1),
        RuleOutcome(rule="audit-tools-present", passed=False, findings=1),
        RuleOutcome(rule="no-cleartext-protocols", passed=False, findings=1),
        RuleOutcome(rule="ssh-root-login-disabled", passed=True),
    ]
    return base.model_copy(
        update={
            "policy": POLICY,
            "hosts": [
                web.model_copy(update={"findings": web_findings, "compliant": False}),
                db,
                legacy.model_copy(update={"findings": legacy_findings, "compliant": False}),
            ],
            "compliance": [
                ComplianceSummary(group="web", hosts_total=1, hosts_compliant=0, rules=rules[:5]),
                ComplianceSummary(group=None, hosts_total=3, hosts_compliant=0, rules=rules),
                ComplianceSummary(group="db", hosts_total=1, hosts_compliant=0, rules=rules[6:]),
            ],
        }
    )


class _Page(HTMLParser):
    """Collects text per <section id>, every tag and attribute seen, and script/style bodies."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str | None] = []
        self.text: dict[str, list[str]] = {}
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.ids: list[str] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self._in_raw: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.raw:
            self._in_raw = tag
            self.raw[tag].append("")
        self.tags.append(tag)
        self.attrs.extend(attrs)
        ident = dict(attrs).get("id")
        if ident:
            self.ids.append(ident)
        if tag == "section":
            self.stack.append(ident)
            if ident:
                self.text.setdefault(ident, [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.stack.pop()
        if tag == self._in_raw:
            self._in_raw = None

    def handle_data(self, data: str) -> None:
        if self._in_raw:
            self.raw[self._in_raw][-1] += data
        for ident in self.stack:
            if ident:
                self.text[ident].append(data)

    def section(self, ident: str) -> str:
        return " ".join("".join(self.text[ident]).split())


@pytest.fixture(scope="module")
def page() -> tuple[str, _Page]:
    html = render_html(sample_results())
    parsed = _Page()
    parsed.feed(html)
    parsed.close()
    return html, parsed


def test_facts_land_in_their_host_section(page: tuple[str, _Page]) -> None:
    _, parsed = page
    web = parsed.section("host-web-01")
    for fact in [
        "10.0.0.11",
        "web",
        "prod",
        "612",  # PID
        "/usr/sbin/sshd",
        "openssh-server",
        "1:9.2p1-2+deb12u3",
        "OpenSSH",
        "9.2p1 Debian 2+deb12u3",
        "protocol 2.0",
        "https-alt",  # nmap's default service for the port
        "ssl",
        "/tmp/.x/srv",
        "deleted",
        "not owned",
        "www-data",
        "/usr/bin/python3 -m http.server 8443 --bind 0.0.0.0",
        "closed (not listed by nmap)",  # 3306: scanned, nmap summary says closed
        "proc_net",
        "permission denied",
    ]:
        assert fact in web, fact
    for kind in VerdictKind:
        assert kind.value in web, kind
    # Facts of one host do not leak into another's section.
    assert "openssh-server" not in parsed.section("host-db-01")
    assert "telnet" not in web


def test_failed_host_says_why(page: tuple[str, _Page]) -> None:
    _, parsed = page
    db = parsed.section("host-db-01")
    assert "unreachable" in db
    assert "connection timed out after 10s" in db
    assert "retried 3 times" in db
    assert "could not be audited" in db


def test_summary_counts(page: tuple[str, _Page]) -> None:
    _, parsed = page
    summary = parsed.section("summary")
    assert "3 hosts" in summary
    # Audit status and risk are counted apart: web-01 is complete and has a critical verdict.
    assert "1 hosts audited completely" in summary and "0 partial · 2 unreachable" in summary
    assert "2 hosts with critical/high problem verdicts" in summary
    assert "audited ok" not in summary and "not ok" not in summary
    assert "compliant hosts" not in summary  # no policy: nothing was judged compliant
    for kind in VerdictKind:
        assert kind.value in summary


def test_hostile_host_data_stays_text(page: tuple[str, _Page]) -> None:
    html, parsed = page
    # The page's one script is the packaged asset (test_csp_allows_exactly_the_inlined_assets);
    # any other script element would have come from data.
    assert parsed.tags.count("script") == 1
    assert html.lower().count("<script") == 1
    assert parsed.raw["script"] == [PACKAGED_JS]
    assert {"iframe", "img"}.isdisjoint(parsed.tags)
    assert parsed.tags.count("h1") == 1  # the page title, not the extrainfo's
    assert not any(name.startswith("on") for name, _ in parsed.attrs)
    # ...yet the hostile text is all there, readable, in its own host's section.
    web = parsed.section("host-web-01")
    assert "<script>alert(1)</script>\"'" in web
    assert "<img src=x onerror=alert(2)></td></table><script>alert(3)</script>" in web
    assert "</dd></dl><h1>pwned</h1>" in web
    assert "<b>box</b>" in parsed.section("host-legacy-b-box-b")


def test_control_and_bidi_characters_are_shown_not_emitted(page: tuple[str, _Page]) -> None:
    html, parsed = page
    raw_controls = {chr(c) for c in range(0x20) if chr(c) != "\n"} | {"\x7f", "\u202e"}
    assert raw_controls.isdisjoint(html)
    web = parsed.section("host-web-01")
    assert "\\x1b[31mred\\x1b[0m" in web
    assert "\\x00nul" in web
    assert "\\u202eevil" in web
    assert "--port\\x0a6379" in web  # a newline inside one argv element is data, not layout


POISON = "\x1b[0m\u202e<i>x</i>\x00"


def _poison(value: Any) -> Any:
    """Append POISON to every free-text string in a model tree (enums stay valid)."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return value.model_copy(update={f: _poison(getattr(value, f)) for f in fields})
    if isinstance(value, Enum):
        return value
    if isinstance(value, str):
        return value + POISON
    if isinstance(value, list):
        return [_poison(v) for v in value]
    if isinstance(value, dict):
        return {k: _poison(v) for k, v in value.items()}
    return value


def test_every_string_field_renders_inert() -> None:
    # Guards the template as it grows: any field printed anywhere goes through the
    # finalize hook, including ones joined into one line or used in a heading.
    poisoned = _poison(sample_results())
    html = render_html(poisoned)
    parsed = _Page()
    parsed.feed(html)
    assert "i" not in parsed.tags
    assert "\\x1b[0m\\u202e&lt;i&gt;x&lt;/i&gt;\\x00</title>" in html  # title: text only
    assert {"\x1b", "\u202e", "\x00"}.isdisjoint(html)
    text = parsed.section("hosts")
    assert text.count("\\x1b[0m\\u202e<i>x</i>\\x00") > 100
    assert results_from_json(results_to_json(poisoned)) == poisoned


def test_anchors_are_unique_and_safe() -> None:
    base = sample_results()
    twins = [
        HostResult(name=n, address="192.0.2.1", status=HostStatus.HOST_DOWN)
        for n in ["web 1", "web-1", "Web_1", "", "ячейка"]
    ]
    parsed = _Page()
    parsed.feed(render_html(base.model_copy(update={"hosts": twins})))
    host_ids = [i for i in parsed.ids if i.startswith("host-")]
    assert host_ids == ["host-web-1", "host-web-1-2", "host-web-1-3", "host-host", "host-host-2"]


def test_empty_run_renders() -> None:
    html = render_html(
        AuditResults(tool_version="0.1.0", inventory="x", started_at=T0, finished_at=T1)
    )
    assert "No hosts in this run." in html


def test_json_round_trip_is_exact() -> None:
    results = sample_results()
    text = results_to_json(results)
    assert json.loads(text)["schema_version"] == RESULTS_SCHEMA_VERSION
    assert results_from_json(text) == results


def test_json_round_trip_survives_lone_surrogates() -> None:
    # Bytes decoded with surrogateescape must not cost a whole run its results.
    base = sample_results()
    host = base.hosts[0].model_copy(update={"name": "bad\udcffbyte"})
    results = base.model_copy(update={"hosts": [host]})
    text = results_to_json(results)
    text.encode("utf-8")
    assert results_from_json(text) == results
    assert "\\udcff" in render_html(results)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("{nope", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        ("[]", "not a fleetaudit results file"),
        ('{"nmaprun": {}}', "not a fleetaudit results file"),
        ('{"schema_version": "1"}', "not an integer"),
        ('{"schema_version": true}', "not an integer"),
        ('{"schema_version": 999}', "newer than this fleetaudit reads"),
        ('{"schema_version": 0}', "unsupported schema_version"),
        ('{"schema_version": 1}', "does not validate: tool_version: Field required"),
    ],
)
def test_foreign_json_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        results_from_json(text)


def test_invalid_field_is_named_without_echoing_input() -> None:
    data = json.loads(results_to_json(sample_results()))
    data["hosts"][0]["status"] = "<script>" + "x" * 10_000
    data["hosts"][1]["surprise"] = True
    with pytest.raises(ConfigError) as err:
        results_from_json(json.dumps(data))
    message = str(err.value)
    assert "hosts.0.status" in message
    assert "hosts.1.surprise" in message
    assert "xxxx" not in message


def test_written_files_are_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "run-1"
    paths = write_report(sample_results(), out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path in (paths.results_json, paths.index_html):
        assert path.parent == out
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert results_from_json(paths.results_json.read_text("utf-8")) == sample_results()
    assert "web-01" in paths.index_html.read_text("utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "results.json"]


def test_rewrite_tightens_existing_files_and_leaves_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir(mode=0o755)
    loose = out / "results.json"
    loose.write_text("old")
    loose.chmod(0o644)
    target = tmp_path / "elsewhere"
    target.write_text("do not touch")
    (out / "index.html").symlink_to(target)

    paths = write_report(sample_results(), out)

    assert stat.S_IMODE(os.lstat(paths.results_json).st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(paths.index_html).st_mode) == 0o600
    assert not paths.index_html.is_symlink()
    assert target.read_text() == "do not touch"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700  # the folder is the run's, replaced
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "results.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "report"]
