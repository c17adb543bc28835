"""Policy rules, findings, waivers, compliance and exit codes, from small hand-built results."""

import hashlib
import json
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from fleetaudit.models import (
    AuditResults,
    ExternalHost,
    ExternalPort,
    ExtraPorts,
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
    Severity,
    Socket,
    SocketOwner,
    Verdict,
    VerdictKind,
)
from fleetaudit.policy import (
    EXIT_FINDINGS,
    EXIT_INCOMPLETE,
    EXIT_OK,
    apply_policy,
    baseline_policy,
    exit_code,
    finding_id,
    parse_policy,
)
from fleetaudit.policy.apply import REMEDIATION
from fleetaudit.policy.schema import Rule
from fleetaudit.reconcile import reconcile_host

TCP, UDP = Proto.TCP, Proto.UDP
TODAY = date(2026, 6, 1)
ADDR = "10.0.0.1"


def dpkg(name):
    return PackageOwner(manager="dpkg", name=name)


SSHD = ProcessInfo(pid=100, exe="/usr/sbin/sshd", package=dpkg("openssh-server"),
                   package_manager="dpkg")
NGINX = ProcessInfo(pid=200, exe="/usr/sbin/nginx", package=dpkg("nginx-core"),
                    package_manager="dpkg")
JAVA = ProcessInfo(pid=201, exe="/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
                   package=dpkg("openjdk-17-jre-headless"), package_manager="dpkg")
TELNETD = ProcessInfo(pid=300, exe="/usr/sbin/in.telnetd", package=dpkg("inetutils-telnetd"),
                      package_manager="dpkg")
POSTGRES = ProcessInfo(pid=400, exe="/usr/lib/postgresql/15/bin/postgres",
                       package=dpkg("postgresql-15"), package_manager="dpkg")
ROGUE = ProcessInfo(pid=7, exe="/opt/x/kworker", package_manager="dpkg")
NO_PM = ProcessInfo(pid=8, exe="/usr/local/bin/app")
DELETED = SSHD.model_copy(update={"pid": 101, "exe_deleted": True})


def nmap(port, service, state="open", method="probed", proto=TCP, tunnel=None):
    return ExternalPort(proto=proto, port=port, state=state, service=service, method=method,
                        tunnel=tunnel)


def on(proc, address="0.0.0.0"):
    return ListenerEvidence(address=address, source=ListenerSource.SS,
                            pid=proc.pid if proc else None, process=proc)


def nopid(address="0.0.0.0"):
    return ListenerEvidence(address=address, source=ListenerSource.PROC_NET)


def port(number, external=None, *listeners, proto=TCP, verdicts=()):
    if isinstance(external, str):
        external = nmap(number, external, proto=proto)
    return PortReport(proto=proto, port=number, external=external, listeners=list(listeners),
                      verdicts=list(verdicts))


def host(*ports, name="h1", groups=("web",), status=HostStatus.OK, inside=True):
    return HostResult(name=name, address=ADDR, groups=list(groups), status=status,
                      ports=list(ports), internal=InternalView() if inside else None)


def results(*hosts):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    return AuditResults(tool_version="0", inventory="inv.yml", started_at=now, finished_at=now,
                        hosts=list(hosts))


def policy(body):
    return parse_policy("version: 1\n" + body, source="test.yml")


def findings(policy_body, *ports, today=TODAY, **kw):
    judged = apply_policy(results(host(*ports, **kw)), policy(policy_body), today)
    return judged.hosts[0].findings


def summary(found):
    return sorted((f.rule, f.port, f.severity.value) for f in found)


def verdict(kind, severity=Severity.HIGH):
    return Verdict(kind=kind, severity=severity, message=f"{kind.value} here",
                   evidence=[f"{kind.value} evidence"])


SSH22 = port(22, "ssh", on(SSHD))

# --- every rule, table-driven ------------------------------------------------------------

RULE_CASES = {
    # allowed_ports: the outside attack surface
    "allowed port": ("defaults: {allowed_ports: [22]}", [SSH22], []),
    "open port not allowed": ("defaults: {allowed_ports: [22]}",
                              [SSH22, port(80, "http", on(NGINX))],
                              [("allowed_ports", 80, "high")]),
    "listening but not open is not allowed_ports' business":
        ("defaults: {allowed_ports: [22]}", [SSH22, port(8081, None, on(NGINX, "127.0.0.1"))],
         []),
    "udp is its own port": ("defaults: {allowed_ports: ['53/udp']}",
                            [port(53, "domain", proto=UDP), port(53, "domain")],
                            [("allowed_ports", 53, "high")]),
    "expectations hold": ("defaults: {allowed_ports: [{port: 22, service: ssh, "
                          "executable: /usr/sbin/sshd, package: openssh-server}]}", [SSH22], []),
    "service family, not label": ("defaults: {allowed_ports: [{port: 8080, service: http-proxy}]}",
                                  [port(8080, "http", on(NGINX))], []),
    "executable glob": ("defaults: {allowed_ports: [{port: 8080, "
                        "executable: '/usr/lib/jvm/*/bin/java'}]}",
                        [port(8080, "http", on(JAVA))], []),
    "wrong service and process": ("defaults: {allowed_ports: [{port: 22, service: ssh, "
                                  "executable: /usr/sbin/sshd, package: openssh-server}]}",
                                  [port(22, "http", on(NGINX))], [("allowed_ports", 22, "high")]),
    "service nmap could not identify is unconfirmed, low":
        ("defaults: {allowed_ports: [{port: 22, service: ssh}]}",
         [port(22, nmap(22, "ssh", method="table"), on(SSHD))], [("allowed_ports", 22, "low")]),
    "tcpwrapped confirms no service": ("defaults: {allowed_ports: [{port: 22, service: ssh}]}",
                                       [port(22, "tcpwrapped", on(SSHD))],
                                       [("allowed_ports", 22, "low")]),
    "unowned where a package is expected": ("defaults: {allowed_ports: [{port: 22, "
                                            "package: openssh-server}]}",
                                            [port(22, "ssh", on(ROGUE))],
                                            [("allowed_ports", 22, "high")]),
    "no package manager: unconfirmed": ("defaults: {allowed_ports: [{port: 22, "
                                        "package: openssh-server}]}",
                                        [port(22, "ssh", on(NO_PM))],
                                        [("allowed_ports", 22, "low")]),
    "no PID visible: unconfirmed": ("defaults: {allowed_ports: [{port: 22, "
                                    "executable: /usr/sbin/sshd}]}", [port(22, "ssh", nopid())],
                                    [("allowed_ports", 22, "low")]),
    "one of two entries for a port is enough":
        ("groups: {web: {allowed_ports: [{port: 443, executable: /usr/sbin/nginx}]},"
         " api: {allowed_ports: [{port: 443, executable: /usr/sbin/haproxy}]}}",
         [port(443, "https", on(NGINX))], []),
    # forbidden_services: by nmap's identification or by the process serving it
    "telnet identified by nmap": ("defaults: {forbidden_services: [telnet]}",
                                  [port(23, "telnet", on(TELNETD))],
                                  [("forbidden_services", 23, "high")]),
    "a port-table guess is not an identification":
        ("defaults: {forbidden_services: [telnet]}", [port(23, nmap(23, "telnet", method="table"))],
         []),
    "telnetd behind a firewall is still forbidden":
        ("defaults: {forbidden_services: [telnet]}",
         [port(2323, nmap(2323, None, state="filtered"), on(TELNETD))],
         [("forbidden_services", 2323, "high")]),
    "telnetd on loopback is not exposed": ("defaults: {forbidden_services: [telnet]}",
                                           [port(23, None, on(TELNETD, "127.0.0.1"))], []),
    "forbidden by family": ("defaults: {forbidden_services: [www]}",
                            [port(8000, "http-alt", on(NGINX))],
                            [("forbidden_services", 8000, "high")]),
    # routable_listeners: the inside view
    "routable listener allowed": ("defaults: {routable_listeners: [22]}", [SSH22], []),
    "routable listener not allowed": ("defaults: {routable_listeners: [22]}",
                                      [SSH22, port(5432, None, on(POSTGRES))],
                                      [("routable_listeners", 5432, "medium")]),
    "loopback listeners are fine": ("defaults: {routable_listeners: []}",
                                    [port(5432, None, on(POSTGRES, "127.0.0.1")),
                                     port(5433, None, on(POSTGRES, "::1"))], []),
    "empty list: nothing routable": ("defaults: {routable_listeners: []}",
                                     [port(22, "ssh", on(SSHD, "::"))],
                                     [("routable_listeners", 22, "medium")]),
    # package_owned
    "owned": ("defaults: {package_owned: true}", [SSH22], []),
    "unowned": ("defaults: {package_owned: true}", [port(80, "http", on(ROGUE))],
                [("package_owned", 80, "high")]),
    "deleted": ("defaults: {package_owned: true}", [port(22, "ssh", on(DELETED))],
                [("package_owned", 22, "high")]),
    "modified": ("defaults: {package_owned: true}",
                 [port(22, "ssh", on(SSHD), verdicts=[verdict(VerdictKind.MODIFIED_BINARY)])],
                 [("package_owned", 22, "high")]),  # one problem: the rules together
    "no package manager": ("defaults: {package_owned: true}", [port(80, "http", on(NO_PM))],
                           [("package_owned", 80, "low")]),
    "no PID visible": ("defaults: {package_owned: true}", [port(80, "http", nopid())],
                       [("package_owned", 80, "low")]),
    "no PID from /proc/net but ss named the owner": ("defaults: {package_owned: true}",
                                                     [port(22, "ssh", on(SSHD), nopid())], []),
    "process vanished before /proc was read": ("defaults: {package_owned: true}",
                                               [port(22, "ssh", on(SSHD).model_copy(
                                                   update={"process": None}))],
                                               [("package_owned", 22, "low")]),
    # ssh_only_on_22
    "ssh on 22": ("defaults: {ssh_only_on_22: true}", [SSH22], []),
    "ssh identified on 24": ("defaults: {ssh_only_on_22: true}", [port(24, "ssh", on(SSHD))],
                             [("ssh_only_on_22", 24, "medium")]),
    "sshd on a filtered 2222": ("defaults: {ssh_only_on_22: true}",
                                [port(2222, nmap(2222, None, state="filtered"), on(SSHD))],
                                [("ssh_only_on_22", 2222, "medium")]),
    "sshd on loopback 2222 is a tunnel end, not exposure": ("defaults: {ssh_only_on_22: true}",
                                                            [port(2222, None,
                                                                  on(SSHD, "127.0.0.1"))], []),
    # max_open_ports counts ports open from outside
    "at the maximum": ("defaults: {max_open_ports: 2}",
                       [SSH22, port(80, "http"), port(5432, None, on(POSTGRES))], []),
    "over the maximum": ("defaults: {max_open_ports: 1}", [SSH22, port(80, "http")],
                         [("max_open_ports", None, "low")]),
    # verdicts: problems are findings by default, with their own severity
    "problem verdicts are findings": ("", [port(31337, "unknown", verdicts=[
        verdict(VerdictKind.EXTERNAL_ONLY)])], [("EXTERNAL_ONLY", 31337, "high")]),
    "benign verdicts are not": ("", [port(8081, None, verdicts=[
        verdict(VerdictKind.LOCAL_ONLY, Severity.INFO), verdict(VerdictKind.UNKNOWN)])], []),
    "several verdicts of a kind are one finding": ("", [port(80, "http", verdicts=[
        verdict(VerdictKind.DELETED_BINARY, Severity.MEDIUM),
        verdict(VerdictKind.DELETED_BINARY)])], [("DELETED_BINARY", 80, "high")]),
    "a verdict turned on, off, or given a severity": (
        "defaults: {verdicts: {FORWARDED: true, EXTERNAL_ONLY: false, "
        "NONSTANDARD_PORT: critical}}",
        [port(24, "ssh", verdicts=[verdict(VerdictKind.EXTERNAL_ONLY),
                                   verdict(VerdictKind.NONSTANDARD_PORT, Severity.MEDIUM)]),
         port(8080, "http", verdicts=[verdict(VerdictKind.FORWARDED, Severity.LOW)])],
        [("FORWARDED", 8080, "low"), ("NONSTANDARD_PORT", 24, "critical")]),
}


@pytest.mark.parametrize(("body", "ports", "expected"), RULE_CASES.values(),
                         ids=RULE_CASES.keys())
def test_rules(body, ports, expected):
    found = findings(body, *ports)
    assert summary(found) == sorted(expected)
    for finding in found:
        assert finding.message and finding.evidence and finding.remediation
        assert finding.host == "h1" and finding.active


def test_rules_left_out_judge_nothing():
    ports = [port(23, "telnet", on(TELNETD)), port(24, "ssh", on(ROGUE))]
    assert summary(findings("defaults: {verdicts: {NONSTANDARD_PORT: false, "
                            "UNOWNED_BINARY: false}}", *ports)) == []


def test_messages_and_evidence_say_what_was_seen():
    [finding] = findings("defaults: {allowed_ports: [{port: 22, service: ssh, "
                         "executable: /usr/sbin/sshd, package: openssh-server}]}",
                         port(22, "http", on(NGINX)))
    # one finding per (rule, host, port): the three problems merged
    assert "nmap identified http, expected ssh" in finding.message
    assert "served by /usr/sbin/nginx (pid 200), expected /usr/sbin/sshd" in finding.message
    assert "from package nginx-core, expected openssh-server" in finding.message
    assert "nmap: 22/tcp open http" in finding.evidence
    assert any("pid 200 exe /usr/sbin/nginx" in e and "nginx-core" in e
               for e in finding.evidence)


def test_expectations_about_processes_need_the_inside_view():
    body = "defaults: {allowed_ports: [{port: 22, executable: /usr/sbin/sshd}]}"
    assert findings(body, port(22, "ssh"), inside=False, status=HostStatus.AUTH_FAILED) == []
    assert summary(findings(body, port(22, "ssh"))) == [("allowed_ports", 22, "low")]


def test_severity_override_leaves_unconfirmed_low():
    body = ("severity: {allowed_ports: critical}\n"
            "defaults: {allowed_ports: [{port: 22, package: openssh-server}]}")
    assert summary(findings(body, port(80, "http"), port(22, "ssh", on(NO_PM)))) == [
        ("allowed_ports", 22, "low"), ("allowed_ports", 80, "critical")]


# --- levels: defaults < groups < host -------------------------------------------------------

NONSTANDARD_24 = ("NONSTANDARD_PORT", 24, "medium")
LEVEL_CASES = {
    "a group replaces the defaults": (
        "defaults: {allowed_ports: [22]}\ngroups: {web: {allowed_ports: [443]}}",
        ["web"], [("allowed_ports", 22, "high"), ("allowed_ports", 24, "high"), NONSTANDARD_24]),
    "a host replaces its groups": (
        "groups: {web: {allowed_ports: [22, 443]}}\nhosts: {h1: {allowed_ports: [22]}}",
        ["web"], [("allowed_ports", 443, "high"), ("allowed_ports", 24, "high"),
                  NONSTANDARD_24]),
    "groups the host is not in do not apply": (
        "defaults: {allowed_ports: [22, 24, 443]}\ngroups: {db: {allowed_ports: [5432]}}",
        ["web"], [NONSTANDARD_24]),
    "several groups: the union of what they allow": (
        "groups: {web: {allowed_ports: [22, 443]}, api: {allowed_ports: [22, 24]}}",
        ["api", "web"], [NONSTANDARD_24]),
    "several groups: the union of what they forbid": (
        "groups: {web: {ssh_only_on_22: false}, api: {ssh_only_on_22: true}}",
        ["web", "api"], [("ssh_only_on_22", 24, "medium")]),  # with NONSTANDARD_PORT
    "a host can lift a group's prohibition": (
        "groups: {web: {ssh_only_on_22: true}}\nhosts: {h1: {ssh_only_on_22: false}}",
        ["web"], [NONSTANDARD_24]),
    "verdict settings merge kind by kind, the strictest group wins": (
        "defaults: {verdicts: {NONSTANDARD_PORT: false}}\n"
        "groups: {web: {verdicts: {NONSTANDARD_PORT: low}}, api: {verdicts: "
        "{NONSTANDARD_PORT: high}}}\nhosts: {h1: {verdicts: {EXTERNAL_ONLY: false}}}",
        ["web", "api"], [("NONSTANDARD_PORT", 24, "high")]),
    "a host setting one verdict kind leaves the others": (
        "defaults: {verdicts: {NONSTANDARD_PORT: false}}\n"
        "hosts: {h1: {verdicts: {EXTERNAL_ONLY: false}}}", ["web"], []),
}


@pytest.mark.parametrize(("body", "groups", "expected"), LEVEL_CASES.values(),
                         ids=LEVEL_CASES.keys())
def test_levels(body, groups, expected):
    ports = [SSH22, port(443, "https", on(NGINX)),
             port(24, "ssh", verdicts=[verdict(VerdictKind.NONSTANDARD_PORT, Severity.MEDIUM)])]
    assert summary(findings(body + "\n", *ports, groups=groups)) == sorted(expected)


# --- finding ids -----------------------------------------------------------------------------


def test_finding_id_is_a_hash_of_rule_host_proto_port():
    expected = hashlib.sha256(b"allowed_ports\x1fweb01\x1ftcp\x1f80").hexdigest()[:16]
    assert finding_id("allowed_ports", "web01", TCP, 80) == expected
    # Pinned: ids in saved results.json must keep matching across versions.
    assert finding_id("allowed_ports", "web01", TCP, 80) == "3154f8b4ea9b2422"
    assert finding_id("max_open_ports", "web01", None, None) != finding_id(
        "max_open_ports", "web02", None, None)
    assert len({finding_id(r, h, p, n) for r in ("a", "b") for h in ("x", "y")
                for p in (TCP, UDP, None) for n in (53, 80, None)}) == 36


def test_finding_ids_are_stable_across_runs_whatever_the_evidence():
    body = "defaults: {allowed_ports: [22]}"
    first = findings(body, SSH22, port(80, "http", on(NGINX)))
    second = findings(body, port(80, nmap(80, "http", method="table"), on(ROGUE)), SSH22)
    assert [f.id for f in first] == [f.id for f in second]
    assert first[0].evidence != second[0].evidence


# --- waivers ---------------------------------------------------------------------------------

WAIVED = """\
defaults: {allowed_ports: [22]}
waivers:
  - {rule: allowed_ports, host: h1, port: 80, proto: tcp, reason: canary, owner: web-team,
     expires: %s}
"""


@pytest.mark.parametrize(("expires", "applies"), [
    ("2026-12-31", True), ("2026-06-01", True),  # through its expiry date
    ("2026-05-31", False),
])
def test_waiver_and_expired_waiver(expires, applies):
    judged = apply_policy(results(host(SSH22, port(80, "http", on(NGINX)))),
                          policy(WAIVED % expires), TODAY)
    [finding] = judged.hosts[0].findings
    assert finding.waiver is not None and finding.waiver.owner == "web-team"
    assert finding.waiver.expires == date.fromisoformat(expires)
    assert finding.waiver_expired is (not applies)
    assert finding.active is (not applies)
    assert judged.hosts[0].compliant is applies
    assert exit_code(judged, Severity.LOW) == (EXIT_OK if applies else EXIT_FINDINGS)


@pytest.mark.parametrize("waiver", [
    "{rule: allowed_ports, host: h2, port: 80, reason: r, owner: o, expires: 2030-01-01}",
    "{rule: allowed_ports, host: h1, port: 81, reason: r, owner: o, expires: 2030-01-01}",
    "{rule: allowed_ports, host: h1, port: 80, proto: udp, reason: r, owner: o, "
    "expires: 2030-01-01}",
    "{rule: forbidden_services, host: h1, port: 80, reason: r, owner: o, expires: 2030-01-01}",
])
def test_waiver_for_something_else_does_not_apply(waiver):
    body = f"defaults: {{allowed_ports: [22]}}\nwaivers: [{waiver}]"
    [finding] = findings(body, SSH22, port(80, "http"))
    assert finding.waiver is None and finding.active


def test_waiver_without_host_or_port_covers_all_and_one_in_force_wins():
    body = """\
waivers:
  - {rule: EXTERNAL_ONLY, reason: old, owner: o, expires: 2026-01-01}
  - {rule: EXTERNAL_ONLY, reason: k8s ingress DNAT, owner: platform, expires: 2027-01-01}
  - {rule: EXTERNAL_ONLY, reason: older, owner: o, expires: 2025-01-01}
"""
    verdict = Verdict(kind=VerdictKind.EXTERNAL_ONLY, severity=Severity.HIGH, message="e")
    found = findings(body, port(443, "https", verdicts=[verdict]),
                     port(8443, "https", verdicts=[verdict]))
    assert [f.waiver.reason for f in found] == ["k8s ingress DNAT"] * 2
    assert not any(f.active for f in found)
    expired = findings(body, port(443, "https", verdicts=[verdict]), today=date(2027, 2, 1))
    assert expired[0].waiver.reason == "k8s ingress DNAT" and expired[0].waiver_expired


# --- compliance ------------------------------------------------------------------------------


def test_compliance_per_group_and_fleet():
    body = "defaults: {allowed_ports: [22], ssh_only_on_22: true}\n"
    judged = apply_policy(results(
        host(SSH22, name="web1", groups=["web"]),
        host(SSH22, port(80, "http", on(NGINX)), name="web2", groups=["web", "prod"]),
        host(name="db1", groups=["db", "prod"], status=HostStatus.UNREACHABLE, inside=False),
        host(port(80, "http"), name="db2", groups=["db"], status=HostStatus.SCAN_FAILED),
    ), policy(body), TODAY)
    assert [h.compliant for h in judged.hosts] == [True, False, None, False]
    assert judged.policy == "test.yml"
    by_group = {s.group: s for s in judged.compliance}
    assert list(by_group) == [None, "db", "prod", "web"]
    fleet = by_group[None]
    assert (fleet.hosts_total, fleet.hosts_compliant) == (4, 1)
    outcomes = {r.rule: (r.passed, r.findings) for r in fleet.rules}
    assert outcomes["allowed_ports"] == (False, 2)
    assert outcomes["ssh_only_on_22"] == (True, 0)
    assert outcomes["EXTERNAL_ONLY"] == (True, 0)  # problem verdicts are rules too
    assert "LOCAL_ONLY" not in outcomes
    assert [r.rule for r in fleet.rules][:2] == ["allowed_ports", "ssh_only_on_22"]
    assert (by_group["db"].hosts_total, by_group["db"].hosts_compliant) == (2, 0)
    assert (by_group["web"].hosts_total, by_group["web"].hosts_compliant) == (2, 1)
    assert {r.rule: r.findings for r in by_group["web"].rules}["allowed_ports"] == 1


def test_waived_findings_do_not_fail_rules():
    judged = apply_policy(results(host(SSH22, port(80, "http"))), policy(WAIVED % "2030-01-01"),
                          TODAY)
    [fleet, _web] = judged.compliance
    assert {r.rule: (r.passed, r.findings) for r in fleet.rules}["allowed_ports"] == (True, 0)
    assert fleet.hosts_compliant == 1


def test_apply_policy_replaces_rather_than_adds():
    body = "defaults: {allowed_ports: [22]}"
    once = apply_policy(results(host(SSH22, port(80, "http"))), policy(body), TODAY)
    twice = apply_policy(once, policy(body), TODAY)
    assert twice == once
    assert len(twice.hosts[0].findings) == 1


def test_results_round_trip_through_json():
    judged = apply_policy(results(host(SSH22, port(80, "http"))), policy(WAIVED % "2026-01-01"),
                          TODAY)
    assert AuditResults.model_validate_json(judged.model_dump_json()) == judged


# --- exit codes --------------------------------------------------------------------------

HIGH = port(80, "http")  # allowed_ports: high
MEDIUM = port(5432, None, on(POSTGRES))  # routable_listeners: medium
INFO_BODY = "severity: {allowed_ports: info}\n"


@pytest.mark.parametrize(("fail_on", "ports", "statuses", "body", "code"), [
    (None, [HIGH], ["ok"], "", EXIT_OK),  # without --fail-on findings do not fail the run
    (None, [HIGH], ["ok", "unreachable"], "", EXIT_INCOMPLETE),
    (Severity.HIGH, [HIGH], ["ok"], "", EXIT_FINDINGS),
    (Severity.CRITICAL, [HIGH], ["ok"], "", EXIT_OK),
    (Severity.MEDIUM, [HIGH], ["ok"], "", EXIT_FINDINGS),
    (Severity.HIGH, [MEDIUM], ["ok"], "", EXIT_OK),
    (Severity.MEDIUM, [MEDIUM], ["ok"], "", EXIT_FINDINGS),
    (Severity.INFO, [HIGH], ["ok"], INFO_BODY, EXIT_FINDINGS),
    (Severity.LOW, [HIGH], ["ok"], INFO_BODY, EXIT_OK),
    (Severity.HIGH, [SSH22], ["ok"], "", EXIT_OK),
    # a finding wins over an incomplete audit; a finding under the threshold does not
    (Severity.HIGH, [HIGH], ["ok", "auth_failed"], "", EXIT_FINDINGS),
    (Severity.CRITICAL, [HIGH], ["ok", "auth_failed"], "", EXIT_INCOMPLETE),
])
def test_exit_code_per_fail_on(fail_on, ports, statuses, body, code):
    hosts = [host(*ports, name="h1", status=HostStatus(statuses[0]))]
    hosts += [host(name=f"h{i}", status=HostStatus(s), inside=False)
              for i, s in enumerate(statuses[1:], start=2)]
    body += "defaults: {allowed_ports: [22], routable_listeners: [22, 80]}"
    assert exit_code(apply_policy(results(*hosts), policy(body), TODAY), fail_on) == code


def test_exit_code_ignores_waived_findings_but_not_expired_ones():
    waived = apply_policy(results(host(SSH22, HIGH)), policy(WAIVED % "2030-01-01"), TODAY)
    assert exit_code(waived, Severity.INFO) == EXIT_OK
    expired = apply_policy(results(host(SSH22, HIGH)), policy(WAIVED % "2020-01-01"), TODAY)
    assert exit_code(expired, Severity.HIGH) == EXIT_FINDINGS


# --- end to end from the two views -------------------------------------------------------


def test_lab_like_host_against_the_baseline():
    """The lab's planted cases, reconciled and judged: what `--fail-on` will see."""
    kworker = ProcessInfo(pid=7, exe="/run/fleetaudit-lab/lab-01/kworker",
                          cmdline=["/run/fleetaudit-lab/lab-01/kworker", "-m", "http.server"],
                          package_manager="dpkg")
    sshd = SSHD.model_copy(update={"cmdline": ["sshd: /usr/sbin/sshd -D"]})
    external = ExternalHost(
        address=ADDR, status="up", extraports=[ExtraPorts(state="closed", count=997)],
        scanned={TCP: [PortRange(first=1, last=1000)]},
        ports=[ExternalPort(proto=TCP, port=22, state="open", service="ssh", method="probed",
                            default_service="ssh"),
               ExternalPort(proto=TCP, port=24, state="open", service="ssh", method="probed",
                            default_service="priv-mail"),
               ExternalPort(proto=TCP, port=80, state="open", service="http", method="probed",
                            default_service="http")])

    def sock(number, pid, address="0.0.0.0"):
        return Socket(proto=TCP, address=address, port=number, source=ListenerSource.SS,
                      owners=[SocketOwner(command="x", pid=pid)])

    internal = InternalView(sockets=[sock(22, 100), sock(24, 100), sock(80, 7),
                                     sock(8081, 7, "127.0.0.1")], processes=[sshd, kworker])
    ports = reconcile_host(external, internal, scanned_address=ADDR)
    judged = apply_policy(results(HostResult(name="lab-01", address=ADDR, status=HostStatus.OK,
                                             ports=ports, internal=internal)),
                          baseline_policy(), TODAY)
    # three problems, each with every rule that flags it
    assert sorted((f.port, f.rules, f.severity.value) for f in judged.hosts[0].findings) == [
        (24, ["ssh_only_on_22", "NONSTANDARD_PORT"], "medium"),
        (80, ["package_owned", "UNOWNED_BINARY"], "high"),
        (8081, ["package_owned", "UNOWNED_BINARY"], "high")]
    assert judged.policy == "baseline (built-in)"
    assert exit_code(judged, Severity.HIGH) == EXIT_FINDINGS
    assert exit_code(judged, Severity.CRITICAL) == EXIT_OK


def test_every_rule_and_verdict_has_a_remediation():
    assert set(REMEDIATION) == {*Rule, *VerdictKind}


def test_policy_is_pure():
    code = ("import sys, json; import fleetaudit.policy; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                           text=True, check=True).stdout))
    assert not loaded & {"asyncssh", "nmap", "subprocess", "typer", "asyncio.subprocess"}
