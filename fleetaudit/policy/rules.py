"""One host against its rules: port reports in, `Hit`s (findings before ids and waivers) out.

Levels resolve most specific first: a rule set for the host replaces the groups', the
groups' replace `defaults`. A host in several groups gets the union of what they allow
and of what they forbid: lists are merged, booleans OR-ed, `max_open_ports` is the
largest, and per verdict kind the strictest setting wins.

A rule only judges evidence that exists: with no inside view, nothing about processes is
claimed. Where the inside view exists but cannot confirm an expectation (no PID visible,
no package manager), the hit says so at low severity, apart from a contradiction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TypeVar

from fleetaudit import services
from fleetaudit.models import (
    HostResult,
    ListenerEvidence,
    PortReport,
    ProcessInfo,
    Proto,
    Severity,
    VerdictKind,
)
from fleetaudit.policy.schema import (
    PROBLEM_VERDICTS,
    RULE_SEVERITY,
    AllowedPort,
    Policy,
    PortRef,
    Rule,
    RuleSet,
    VerdictSetting,
)
from fleetaudit.reconcile import (
    OPEN_STATES,
    deleted_message,
    describe_external,
    describe_process,
    identified_services,
    is_loopback_address,
    probed_service,
    service_family,
    unowned_message,
)

T = TypeVar("T")
NO_PID_REMEDIATION = ("Audit with privilege (ansible_become: true, or log in as root) to "
                      "see which process owns this socket; without it another user's "
                      "process stays anonymous.")
# Not a policy setting: whatever a policy says, a changed host key is reported.
HOST_KEY_CHANGED = "HOST_KEY_CHANGED"
SEVERITY_RANK = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3,
                 Severity.CRITICAL: 4}
_STRICTEST = [VerdictSetting.OFF, VerdictSetting.ON, VerdictSetting.INFO, VerdictSetting.LOW,
              VerdictSetting.MEDIUM, VerdictSetting.HIGH, VerdictSetting.CRITICAL]


@dataclass(frozen=True)
class EffectiveRules:
    """The rules one host is held to, every level resolved."""

    severity: Mapping[Rule, Severity]
    verdicts: Mapping[VerdictKind, VerdictSetting]
    allowed_ports: tuple[AllowedPort, ...] | None = None
    forbidden_services: frozenset[str] | None = None
    routable_listeners: frozenset[tuple[Proto, int]] | None = None
    package_owned: bool = False
    ssh_only_on_22: bool = False
    max_open_ports: int | None = None

    def enabled(self) -> list[str]:
        """Rule names in force for this host, policy rules first, then verdict kinds."""
        flags = {Rule.ALLOWED_PORTS: self.allowed_ports is not None,
                 Rule.FORBIDDEN_SERVICES: self.forbidden_services is not None,
                 Rule.ROUTABLE_LISTENERS: self.routable_listeners is not None,
                 Rule.PACKAGE_OWNED: self.package_owned,
                 Rule.SSH_ONLY_ON_22: self.ssh_only_on_22,
                 Rule.MAX_OPEN_PORTS: self.max_open_ports is not None}
        return ([rule.value for rule in Rule if flags[rule]]
                + [kind.value for kind in VerdictKind
                   if self.verdicts.get(kind, VerdictSetting.OFF) is not VerdictSetting.OFF])


def effective_rules(policy: Policy, host: str, groups: Sequence[str]) -> EffectiveRules:
    doc = policy.document
    group_sets = [doc.groups[g] for g in sorted(set(groups)) if g in doc.groups]
    host_set = doc.hosts.get(host)

    def pick(get: Callable[[RuleSet], T | None], combine: Callable[[list[T]], T]) -> T | None:
        if host_set is not None and (value := get(host_set)) is not None:
            return value
        values = [v for v in map(get, group_sets) if v is not None]
        return combine(values) if values else get(doc.defaults)

    def ports(refs: Sequence[PortRef] | None) -> frozenset[tuple[Proto, int]] | None:
        return None if refs is None else frozenset((r.proto, r.port) for r in refs)

    allowed = pick(lambda s: s.allowed_ports, lambda vs: [p for v in vs for p in v])
    forbidden = pick(lambda s: s.forbidden_services, lambda vs: [x for v in vs for x in v])
    verdicts = {kind: VerdictSetting.ON if kind in PROBLEM_VERDICTS else VerdictSetting.OFF
                for kind in VerdictKind}
    verdicts.update(doc.defaults.verdicts or {})
    for kind in VerdictKind:
        settings = [s.verdicts[kind] for s in group_sets if s.verdicts and kind in s.verdicts]
        if settings:
            verdicts[kind] = max(settings, key=_STRICTEST.index)
    if host_set is not None and host_set.verdicts:
        verdicts.update(host_set.verdicts)
    return EffectiveRules(
        severity={rule: doc.severity.get(rule, RULE_SEVERITY[rule]) for rule in Rule},
        verdicts=verdicts,
        allowed_ports=None if allowed is None else tuple(allowed),
        forbidden_services=None if forbidden is None else frozenset(
            service_family(name) or name for name in forbidden),
        routable_listeners=ports(pick(lambda s: s.routable_listeners,
                                      lambda vs: [p for v in vs for p in v])),
        package_owned=bool(pick(lambda s: s.package_owned, any)),
        ssh_only_on_22=bool(pick(lambda s: s.ssh_only_on_22, any)),
        max_open_ports=pick(lambda s: s.max_open_ports, max),
    )


@dataclass(frozen=True)
class Hit:
    """One reason a rule fails on a port (or on the host: proto and port None)."""

    rule: str
    severity: Severity
    proto: Proto | None
    port: int | None
    message: str
    evidence: tuple[str, ...] = ()
    remediation: str | None = None  # advice for this hit, where the rule's own would mislead


def evaluate_host(host: HostResult, rules: EffectiveRules) -> list[Hit]:
    hits: list[Hit] = []
    for check in (_host_key, _allowed_ports, _forbidden_services, _routable_listeners,
                  _package_owned, _ssh_only_on_22, _max_open_ports, _verdicts):
        hits.extend(check(host, rules))
    return hits


def _host_key(host: HostResult, rules: EffectiveRules) -> Iterator[Hit]:
    """A key other than the one on record: the connection was refused, and whoever
    answers at that address may be reading every login to it (a man-in-the-middle)."""
    change = host.host_key_changed
    if change is not None:
        yield Hit(HOST_KEY_CHANGED, Severity.HIGH, None, None,
                  "the host offered an SSH key other than the one on record: a possible "
                  "man-in-the-middle (or the host was reinstalled); verify the new key out "
                  "of band before trusting it",
                  (f"offered: {change.offered}",
                   *(f"on record: {key}" for key in change.recorded),
                   f"known_hosts: {change.known_hosts}"))


# A problem: (contradicted, message). Contradicted takes the rule's severity; unconfirmed
# (the evidence to confirm is missing) is at most LOW.
Problem = tuple[bool, str]


def _hits(rule: Rule, rules: EffectiveRules, pr: PortReport, problems: Sequence[Problem],
          evidence: Sequence[str]) -> Iterator[Hit]:
    severity = rules.severity[rule]
    unconfirmed = min(severity, Severity.LOW, key=SEVERITY_RANK.__getitem__)
    for contradicted, message in dict.fromkeys(problems):
        yield Hit(rule.value, severity if contradicted else unconfirmed, pr.proto, pr.port,
                  message, tuple(evidence))


def _is_open(pr: PortReport) -> bool:
    return pr.external is not None and pr.external.state in OPEN_STATES


def _where(pr: PortReport) -> str:
    return f"{pr.port}/{pr.proto.value}"


def _routable(pr: PortReport) -> list[ListenerEvidence]:
    return [ev for ev in pr.listeners if not is_loopback_address(ev.address)]


def _processes(listeners: Sequence[ListenerEvidence]) -> list[ProcessInfo]:
    return list({ev.process.pid: ev.process for ev in listeners if ev.process}.values())


def _evidence(pr: PortReport, listeners: Sequence[ListenerEvidence] | None = None) -> list[str]:
    facts = [describe_external(pr.external)] if pr.external else []
    for ev in pr.listeners if listeners is None else listeners:
        who = describe_process(ev.process) if ev.process else (
            f"pid {ev.pid}" if ev.pid is not None else "no PID visible")
        package = ev.process.package if ev.process else None
        facts.append(f"{ev.source.value}: {ev.address}:{pr.port} {who}"
                     + (f" package {package.name}" if package else ""))
    return list(dict.fromkeys(facts))


def _allowed_ports(host: HostResult, rules: EffectiveRules) -> Iterator[Hit]:
    if rules.allowed_ports is None:
        return
    entries: dict[tuple[Proto, int], list[AllowedPort]] = {}
    for entry in rules.allowed_ports:
        entries.setdefault((entry.proto, entry.port), []).append(entry)
    for pr in host.ports:
        mine = entries.get((pr.proto, pr.port), [])
        if not mine:
            if _is_open(pr):
                yield from _hits(Rule.ALLOWED_PORTS, rules, pr,
                                 [(True, f"{_where(pr)} is open from outside but not allowed")],
                                 _evidence(pr))
            continue
        results = [_expectations(entry, pr, host.internal is not None) for entry in mine]
        if not all(results):
            continue  # one entry's expectations hold in full
        yield from _hits(Rule.ALLOWED_PORTS, rules, pr, [p for r in results for p in r],
                         _evidence(pr))


def _expectations(entry: AllowedPort, pr: PortReport, inside_seen: bool) -> list[Problem]:
    problems: list[Problem] = []
    if entry.service and _is_open(pr) and pr.external:
        expected, got = service_family(entry.service), probed_service(pr.external)
        if got is None:
            problems.append((False, f"{_where(pr)}: expected {entry.service}, which nmap could "
                                    "not confirm (no -sV identification)"))
        elif got != expected:
            problems.append((True, f"{_where(pr)}: nmap identified {pr.external.service}, "
                                   f"expected {entry.service}"))
    if not (entry.executable or entry.package) or not inside_seen:
        return problems
    procs = _processes(pr.listeners)
    if not procs:
        problems.append((False, f"{_where(pr)}: no listening process visible to confirm "
                                f"{entry.executable or entry.package}"))
    for proc in procs:
        label = f"{proc.exe or 'an unreadable executable'} (pid {proc.pid})"
        if entry.executable:
            if proc.exe is None:
                problems.append((False, f"{_where(pr)}: pid {proc.pid}'s executable is "
                                        f"unreadable; expected {entry.executable}"))
            elif not fnmatchcase(proc.exe, entry.executable):
                problems.append((True, f"{_where(pr)}: served by {label}, expected "
                                       f"{entry.executable}"))
        if entry.package:
            if proc.package is not None:
                if proc.package.name != entry.package:
                    problems.append((True, f"{_where(pr)}: {label} is from package "
                                           f"{proc.package.name}, expected {entry.package}"))
            elif proc.package_manager:
                problems.append((True, f"{_where(pr)}: {label} belongs to no package, "
                                       f"expected {entry.package}"))
            else:
                problems.append((False, f"{_where(pr)}: no package manager to confirm "
                                        f"{label} is from {entry.package}"))
    return problems


def _forbidden_services(host: HostResult, rules: EffectiveRules) -> Iterator[Hit]:
    forbidden = rules.forbidden_services or frozenset()
    for pr in host.ports:
        problems: list[Problem] = []
        seen = probed_service(pr.external)
        if seen in forbidden and pr.external:
            problems.append((True, f"{seen} is forbidden: nmap identified "
                                   f"{pr.external.service} on {_where(pr)}"))
        for proc in _processes(_routable(pr)):
            for service in sorted(identified_services(proc) & forbidden):
                problems.append((True, f"{service} is forbidden: {proc.exe or proc.pid} "
                                       f"serves it on {_where(pr)}"))
        yield from _hits(Rule.FORBIDDEN_SERVICES, rules, pr, problems, _evidence(pr))


def _routable_listeners(host: HostResult, rules: EffectiveRules) -> Iterator[Hit]:
    if rules.routable_listeners is None:
        return
    for pr in host.ports:
        routable = _routable(pr)
        if routable and (pr.proto, pr.port) not in rules.routable_listeners:
            addresses = ", ".join(sorted({ev.address for ev in routable}))
            yield from _hits(Rule.ROUTABLE_LISTENERS, rules, pr, [
                (True, f"{_where(pr)} listens on {addresses}, not on loopback only")],
                _evidence(pr, routable))


def _package_owned(host: HostResult, rules: EffectiveRules) -> Iterator[Hit]:
    if not rules.package_owned:
        return
    for pr in host.ports:
        problems: list[Problem] = []
        unseen: list[str] = []
        owned = {(ev.address, ev.scope) for ev in pr.listeners if ev.pid is not None}
        for ev in pr.listeners:
            proc = ev.process
            if ev.pid is None:
                if (ev.address, ev.scope) not in owned:
                    unseen.append(f"{_where(pr)}: no PID visible for {ev.address}, so no "
                                  "executable to check")
            elif proc is None or not proc.exe:
                problems.append((False, f"{_where(pr)}: pid {ev.pid}'s executable is "
                                        "unreadable"))
            else:
                if proc.exe_deleted:
                    problems.append((True, deleted_message(proc)))
                if proc.package is None and proc.package_manager:
                    problems.append((True, unowned_message(proc)))
                elif proc.package is None:
                    problems.append((False, f"{proc.exe} (pid {proc.pid}): no package manager "
                                            "to ask who owns it"))
        problems += [(True, v.message) for v in pr.verdicts
                     if v.kind is VerdictKind.MODIFIED_BINARY]
        yield from _hits(Rule.PACKAGE_OWNED, rules, pr, problems, _evidence(pr))
        for message in dict.fromkeys(unseen):  # what is missing is privilege, not a package
            yield Hit(Rule.PACKAGE_OWNED.value,
                      min(rules.severity[Rule.PACKAGE_OWNED], Severity.LOW,
                          key=SEVERITY_RANK.__getitem__), pr.proto, pr.port, message,
                      tuple(_evidence(pr)), remediation=NO_PID_REMEDIATION)


def _ssh_only_on_22(host: HostResult, rules: EffectiveRules) -> Iterator[Hit]:
    if not rules.ssh_only_on_22:
        return
    for pr in host.ports:
        if pr.proto is not Proto.TCP or pr.port == 22:
            continue
        problems: list[Problem] = []
        if probed_service(pr.external) == "ssh":  # NONSTANDARD_PORT's words: one fact
            problems.append((True, services.nonstandard("ssh", pr.proto, pr.port)
                             or f"nmap identified ssh on {_where(pr)}"))
        problems += [(True, f"{proc.exe} (pid {proc.pid}) listens on {_where(pr)}")
                     for proc in _processes(_routable(pr)) if "ssh" in identified_services(proc)]
        yield from _hits(Rule.SSH_ONLY_ON_22, rules, pr, problems, _evidence(pr))


def _max_open_ports(host: HostResult, rules: EffectiveRules) -> Iterator[Hit]:
    limit = rules.max_open_ports
    open_ports = [_where(pr) for pr in host.ports if _is_open(pr)]
    if limit is not None and len(open_ports) > limit:
        yield Hit(Rule.MAX_OPEN_PORTS.value, rules.severity[Rule.MAX_OPEN_PORTS], None, None,
                  f"{len(open_ports)} ports open from outside, more than {limit}",
                  (f"open: {', '.join(open_ports)}",))


def _verdicts(host: HostResult, rules: EffectiveRules) -> Iterator[Hit]:
    for pr in host.ports:
        for verdict in pr.verdicts:
            setting = rules.verdicts.get(verdict.kind, VerdictSetting.OFF)
            if setting is VerdictSetting.OFF:
                continue
            severity = verdict.severity if setting is VerdictSetting.ON else Severity(setting)
            yield Hit(verdict.kind.value, severity, pr.proto, pr.port, verdict.message,
                      tuple(verdict.evidence))
