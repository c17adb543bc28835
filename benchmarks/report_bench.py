"""How the reports hold up at fleet scale: render a synthetic 1,000-host audit, time it, size it.

    .venv/bin/python benchmarks/report_bench.py [--hosts 1000] [--out DIR] [--no-browser]

Prints render time and size per format, then (when playwright and /usr/bin/chromium
are there) opens index.html from disk in headless Chromium and prints the load time
and the time of a filter, a search and a sort. Numbers only: nothing here asserts a
limit, because wall-clock time depends on the machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fleetaudit.models import (
    AuditResults,
    ComplianceSummary,
    ExternalHost,
    ExternalPort,
    ExtraPorts,
    Finding,
    HostError,
    HostResult,
    HostStatus,
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
from fleetaudit.report import FILENAMES, Format, render

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# (port, service, product, version, exe, package, user)
SERVICES = [
    (22, "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3", "/usr/sbin/sshd", "openssh-server", "root"),
    (80, "http", "nginx", "1.22.1", "/usr/sbin/nginx", "nginx-core", "root"),
    (443, "https", "nginx", "1.22.1", "/usr/sbin/nginx", "nginx-core", "root"),
    (3306, "mysql", "MariaDB", "10.11.6", "/usr/sbin/mariadbd", "mariadb-server", "mysql"),
    (
        5432,
        "postgresql",
        "PostgreSQL DB",
        "15.6",
        "/usr/lib/postgresql/15/bin/postgres",
        "postgresql-15",
        "postgres",
    ),
    (
        6379,
        "redis",
        "Redis key-value store",
        "7.0.15",
        "/usr/bin/redis-server",
        "redis-server",
        "redis",
    ),
    (53, "domain", "ISC BIND", "9.18.24", "/usr/sbin/named", "bind9", "bind"),
    (
        9100,
        "jetdirect",
        None,
        None,
        "/usr/bin/prometheus-node-exporter",
        "prometheus-node-exporter",
        "prometheus",
    ),
    (8080, "http-proxy", "Jetty", "10.0.20", "/usr/bin/java", "openjdk-17-jre-headless", "jenkins"),
    (25, "smtp", "Postfix smtpd", None, "/usr/lib/postfix/sbin/master", "postfix", "root"),
    (11211, "memcache", "Memcached", "1.6.18", "/usr/bin/memcached", "memcached", "memcache"),
    (2379, "etcd-client", None, None, "/usr/bin/etcd", "etcd-server", "etcd"),
]
GROUPS = ["web", "db", "cache", "dns", "ci", "mail"]
ENVS = ["prod", "staging"]
RULES = [
    ("no-unowned-listeners", Severity.CRITICAL),
    ("no-hidden-listeners", Severity.CRITICAL),
    ("no-modified-binaries", Severity.HIGH),
    ("approved-services", Severity.MEDIUM),
    ("no-cleartext-protocols", Severity.HIGH),
    ("bind-loopback-databases", Severity.MEDIUM),
    ("audit-tools-present", Severity.LOW),
]
T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def synthetic_results(n_hosts: int, seed: int = 6) -> AuditResults:
    """A fleet shaped like a real one: mostly consistent ports, some trouble, some hosts down."""
    rng = random.Random(seed)
    hosts = [_host(rng, i) for i in range(n_hosts)]
    compliance = []
    for group in [None, *GROUPS, *ENVS]:
        members = [h for h in hosts if group is None or group in h.groups]
        fired: dict[str, int] = {}
        for h in members:
            for f in h.findings:
                if f.active:
                    fired[f.rule] = fired.get(f.rule, 0) + 1
        compliance.append(
            ComplianceSummary(
                group=group,
                hosts_total=len(members),
                hosts_compliant=sum(h.compliant is True for h in members),
                rules=[
                    RuleOutcome(rule=r, passed=r not in fired, findings=fired.get(r, 0))
                    for r, _ in RULES
                ],
            )
        )
    return AuditResults(
        tool_version="0.1.0",
        inventory="inventories/fleet-1000.yml",
        started_at=T0,
        finished_at=T0 + timedelta(minutes=41, seconds=7),
        scan=ScanRun(
            command="nmap -sS -sV -n -p 1-65535 -oX - <1000 targets>",
            nmap_version="7.93",
            started_at=T0,
            finished_at=T0,
            scan_type="syn",
        ),
        policy="policies/baseline.yml",
        hosts=hosts,
        compliance=compliance,
    )


def _host(rng: random.Random, i: int) -> HostResult:
    group = GROUPS[i % len(GROUPS)]
    name = f"{group}-{i:04d}.{ENVS[i % 7 == 0]}.example.net"
    address = f"10.{20 + i // 65000}.{(i // 250) % 256}.{i % 250 + 2}"
    groups = [group, ENVS[i % 7 == 0]]
    ext_host = ExternalHost(
        address=address,
        status="up",
        reason="syn-ack",
        extraports=[ExtraPorts(proto=Proto.TCP, state="closed", count=65520)],
        scanned={Proto.TCP: [PortRange(first=1, last=65535)]},
    )
    if rng.random() < 0.06:
        status = rng.choice(
            [
                HostStatus.UNREACHABLE,
                HostStatus.AUTH_FAILED,
                HostStatus.HOST_DOWN,
                HostStatus.COLLECTION_FAILED,
            ]
        )
        return HostResult(
            name=name,
            address=address,
            groups=groups,
            status=status,
            errors=[
                HostError(
                    stage=Stage.CONNECT,
                    message=f"ssh {address}:22: {status.value.replace('_', ' ')}",
                )
            ],
            external=ext_host if status is not HostStatus.HOST_DOWN else None,
        )
    services = [SERVICES[0], *rng.sample(SERVICES[1:], rng.randint(3, 9))]
    ports: list[PortReport] = []
    processes: list[ProcessInfo] = []
    findings: list[Finding] = []
    for j, (port, service, product, version, exe, package, user) in enumerate(services):
        pid = 400 + j * 37 + i % 13
        proc = ProcessInfo(
            pid=pid,
            exe=exe,
            cmdline=[exe, "-c", f"/etc/{service}/{service}.conf"],
            uid=0 if user == "root" else 100 + j,
            user=user,
            package=PackageOwner(manager="dpkg", name=package, version="1.0-1"),
            package_manager="dpkg",
        )
        verdicts = [
            Verdict(
                kind=VerdictKind.CONSISTENT,
                severity=Severity.INFO,
                message=f"{service} from {package}",
            )
        ]
        roll = rng.random()
        if roll < 0.03:
            proc = proc.model_copy(
                update={"exe": f"/tmp/.{service}", "exe_deleted": True, "package": None}
            )
            verdicts = [
                Verdict(
                    kind=VerdictKind.DELETED_BINARY,
                    severity=Severity.CRITICAL,
                    message="the listener's executable was deleted after it started",
                    evidence=[f"/proc/{pid}/exe -> /tmp/.{service} (deleted)"],
                ),
                Verdict(
                    kind=VerdictKind.UNOWNED_BINARY,
                    severity=Severity.HIGH,
                    message=f"no dpkg package owns /tmp/.{service}",
                ),
            ]
            findings.append(
                _finding(
                    name,
                    "no-unowned-listeners",
                    port,
                    f"port {port} is served by a deleted, unowned binary",
                )
            )
        elif roll < 0.06:
            verdicts = [
                Verdict(
                    kind=VerdictKind.MODIFIED_BINARY,
                    severity=Severity.CRITICAL,
                    message="exe differs from the packaged file",
                    evidence=[f"dpkg --verify: ??5?????? {exe}"],
                )
            ]
            findings.append(
                _finding(name, "no-modified-binaries", port, f"{exe} differs from its package")
            )
        elif roll < 0.12:
            verdicts = [
                Verdict(
                    kind=VerdictKind.NONSTANDARD_PORT,
                    severity=Severity.LOW,
                    message=f"{service} on a port usually used by something else",
                )
            ]
        elif roll < 0.17 and service in ("mysql", "postgresql", "redis", "memcache"):
            verdicts = [
                Verdict(
                    kind=VerdictKind.FILTERED,
                    severity=Severity.LOW,
                    message="listening on all addresses, firewalled",
                )
            ]
            findings.append(
                _finding(
                    name,
                    "bind-loopback-databases",
                    port,
                    f"{service} listens on every address",
                    waived=rng.random() < 0.5,
                )
            )
        processes.append(proc)
        ports.append(
            PortReport(
                proto=Proto.TCP,
                port=port,
                external=ExternalPort(
                    proto=Proto.TCP,
                    port=port,
                    state="open",
                    reason="syn-ack",
                    service=service,
                    product=product,
                    version=version,
                    method="probed",
                    confidence=10,
                ),
                listeners=[
                    ListenerEvidence(
                        address="0.0.0.0", source=ListenerSource.SS, pid=pid, process=proc
                    ),
                    ListenerEvidence(address="::", source=ListenerSource.SS, pid=pid, process=proc),
                ],
                verdicts=verdicts,
            )
        )
    if rng.random() < 0.02:
        ports.append(
            PortReport(
                proto=Proto.TCP,
                port=31337,
                external=ExternalPort(
                    proto=Proto.TCP,
                    port=31337,
                    state="open",
                    service="http",
                    product="<script>alert(1)</script>",
                ),
                verdicts=[
                    Verdict(
                        kind=VerdictKind.HIDDEN_LISTENER,
                        severity=Severity.CRITICAL,
                        message="open outside, invisible inside",
                    )
                ],
            )
        )
        findings.append(_finding(name, "no-hidden-listeners", 31337, "hidden listener"))
    if i % 10 == 3:
        findings.append(_finding(name, "audit-tools-present", None, "lsof is missing"))
    return HostResult(
        name=name,
        address=address,
        groups=groups,
        status=HostStatus.OK,
        ports=ports,
        internal=InternalView(processes=processes, tools=["ss", "/proc", "dpkg"]),
        external=ext_host.model_copy(update={"ports": [p.external for p in ports if p.external]}),
        findings=findings,
        compliant=not any(f.active for f in findings),
    )


def _finding(host: str, rule: str, port: int | None, message: str, waived: bool = False) -> Finding:
    severity = dict(RULES)[rule]
    fid = f"{rule}.{host}" + (f".tcp.{port}" if port is not None else "")
    waiver = (
        Waiver(
            rule=rule,
            host=host,
            reason="accepted until the migration",
            owner="secops@example.net",
            expires=date(2099, 1, 1),
        )
        if waived
        else None
    )
    return Finding(
        id=fid,
        rule=rule,
        severity=severity,
        host=host,
        proto=Proto.TCP if port is not None else None,
        port=port,
        message=message,
        waiver=waiver,
    )


def bench_render(results: AuditResults, out: Path, repeat: int) -> dict[Format, Path]:
    print(f"{'format':8} {'render (median of ' + str(repeat) + ')':>24} {'size':>12}")
    paths = {}
    for fmt in Format:
        times, text = [], ""
        for _ in range(repeat):
            t0 = time.perf_counter()
            text = render(results, fmt)
            times.append(time.perf_counter() - t0)
        path = out / FILENAMES[fmt]
        path.write_text(text, encoding="utf-8")
        paths[fmt] = path
        size = len(text.encode("utf-8"))
        print(f"{fmt.value:8} {statistics.median(times) * 1000:21.0f} ms {size / 1e6:9.2f} MB")
    return paths


FILTER_JS = """async ([id, value, event]) => {
  const el = document.getElementById(id);
  const t0 = performance.now();
  el.value = value;
  el.dispatchEvent(new Event(event));
  const t1 = performance.now();
  document.body.getBoundingClientRect();
  const t2 = performance.now();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return {script: t1 - t0, layout: t2 - t0, frame: performance.now() - t0,
          shown: document.getElementById('f-count').textContent};
}"""
SETTLE_JS = """async () => {
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  await new Promise(r => setTimeout(r, 500));
}"""
SORT_JS = """async (key) => {
  const b = document.querySelector(`#hosts-table [data-key="${key}"] button`);
  const t0 = performance.now();
  b.click();
  document.body.getBoundingClientRect();
  const t1 = performance.now();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return {layout: t1 - t0, frame: performance.now() - t0};
}"""


def bench_browser(html: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser: skipped (playwright is not installed)")
        return
    if not Path(CHROMIUM).exists():
        print(f"browser: skipped ({CHROMIUM} is missing)")
        return
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            loads = []
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t0 = time.perf_counter()
                page.goto(html.as_uri(), wait_until="load")
                wall = time.perf_counter() - t0
                nav: dict[str, Any] = page.evaluate(
                    "() => { const n = performance.getEntriesByType('navigation')[0];"
                    " const p = performance.getEntriesByName('first-contentful-paint')[0];"
                    " return {fcp: p ? p.startTime : NaN, parsed: n.domInteractive,"
                    " dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }"
                )
                loads.append((wall * 1000, nav["fcp"], nav["parsed"], nav["dcl"], nav["load"]))
                last = page
                if len(loads) < 3:
                    page.close()
            wall_ms, fcp, parsed, dcl, load = (
                statistics.median(x) for x in zip(*loads, strict=True)
            )
            print(
                f"browser load (median of 3): first contentful paint {fcp:.0f} ms, parsed "
                f"{parsed:.0f} ms, DOMContentLoaded {dcl:.0f} ms (filters live), load event "
                f"{load:.0f} ms (page.goto returned after {wall_ms:.0f} ms)"
            )
            page = last
            # Let the first paint finish, so the first filter is not billed for it.
            page.evaluate(SETTLE_JS)
            steps = [
                ("filter severity=critical", ["f-sev", "0", "change"]),
                ("filter group=db", ["f-group", "1", "change"]),
                ("clear filters", ["f-group", "", "change"]),
                ("clear severity", ["f-sev", "", "change"]),
                ("search 'redis' (first: reads text)", ["f-q", "redis", "change"]),
                ("search 'mariadb'", ["f-q", "mariadb", "change"]),
                ("search cleared", ["f-q", "", "change"]),
            ]
            for label, args in steps:
                r = page.evaluate(FILTER_JS, args)
                print(
                    f"  {label:36} script {r['script']:7.1f} ms, to layout {r['layout']:7.1f}"
                    f" ms, to next frame {r['frame']:7.1f} ms  ({r['shown']})"
                )
            for key in ("name", "severity", "findings"):
                r = page.evaluate(SORT_JS, key)
                print(
                    f"  {'sort by ' + key:36} to layout {r['layout']:7.1f} ms, "
                    f"to next frame {r['frame']:7.1f} ms"
                )
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    results = synthetic_results(args.hosts)
    ports = sum(len(h.ports) for h in results.hosts)
    findings = sum(len(h.findings) for h in results.hosts)
    print(
        f"synthetic fleet: {args.hosts} hosts, {ports} ports, {findings} findings "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="fleetaudit-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    paths = bench_render(results, out, args.repeat)
    print(f"written to {out}")
    if not args.no_browser:
        bench_browser(paths[Format.HTML])


if __name__ == "__main__":
    main(sys.argv[1:])
