"""`fleetaudit check`: before an audit, what each host will let us see, and what it won't.

One connection per host, one batch as the login user (and, when the inventory asks for
privilege, one more through `sudo -n`): can we log in, which tools exist, does sudo work
and what does it allow, and from that, which sources the audit will use and which
evidence will be missing. Read-only, like the audit itself.

Only the tools an audit of that host would run are named, used or missing: not rpm on a
dpkg host, not netstat where ss lists, not busybox where either does.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from fleetaudit import addresses, packagers
from fleetaudit.batch import BatchCommand, Section, build_script, split_output
from fleetaudit.errors import AuthError, ConfigError, HostKeyError, ParseError, TransportError
from fleetaudit.models import HostStatus, Inventory, InventoryHost, Model, SystemFacts
from fleetaudit.probes import INTERNAL_TOOLS, Probe, host_facts_probe, tools_probe
from fleetaudit.ssh_target import SSHTarget, local_user, resolve_target
from fleetaudit.terminal import plural
from fleetaudit.transport import (
    PrivilegeError,
    ShellSession,
    SSHOptions,
    connect,
    open_session,
)

# Besides the probes' tools: what bounds each command on the host, and what its absence
# costs (the batch keeps its own limit: no evidence is lost, a hung command costs more).
_LIMITS = {
    "timeout": "no per-command time limit (no timeout): a hung command costs the whole batch",
    "head": "no per-command output cap (no head): a flooding command costs the whole batch",
    "getconf": "process start times assume 100 clock ticks a second (no getconf)",
}
# Every listener's reads (probes.process_batch): nothing stands in for them.
_PROCESS_READS = {
    "readlink": "each listener's executable, cwd and network namespace",
    "stat": "each listener's owner, and which file it runs",
    "cat": "each listener's command line, and /proc/net's tables",
}
_NAT_TOOLS = ("iptables-save", "ip6tables-save", "nft")
# Asked on each host: the collection's tools and the limits'.
CHECKED_TOOLS = tuple(dict.fromkeys((*INTERNAL_TOOLS, *_LIMITS)))
_SUDO_LIST_LINES = 40


class PreflightHost(Model):
    """One host's answer: reachable or why not, and what an audit of it would see."""

    name: str
    address: str
    status: HostStatus
    error: str | None = None
    user: str
    via: str | None = None  # the jump hosts, as ProxyJump writes them
    become: bool = False
    privileged: bool | None = None
    euid: int | None = None
    sudo: str = "not checked"  # works | refused: ... | absent | not asked (would work) ...
    sudo_rules: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)  # every tool asked about that exists
    uses: list[str] = Field(default_factory=list)  # those an audit of this host would run
    # Tools an audit of this host would run and cannot: each costs what wont_see or notes
    # say. Never one that another present tool stands in for (netstat where ss is), nor
    # another kind of host's (rpm on a dpkg host).
    missing_tools: list[str] = Field(default_factory=list)
    listing: str | None = None  # ss | netstat | busybox netstat | /proc/net only
    will_see: list[str] = Field(default_factory=list)
    wont_see: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # limits that lose no evidence

    @property
    def complete(self) -> bool:
        """Reachable, and nothing an audit needs would be hidden."""
        return self.status is HostStatus.OK and not self.wont_see


class PreflightReport(Model):
    inventory: str
    hosts: list[PreflightHost]

    @property
    def complete(self) -> bool:
        return all(h.complete for h in self.hosts)


def _sudo_list_probe() -> Probe[list[str]]:
    """`sudo -n -l`: what the login may run through sudo (nothing asked when it needs a
    password). Skipped when already root."""
    def parse(text: str) -> list[str]:
        return [line.rstrip() for line in text.splitlines() if line.strip()][:_SUDO_LIST_LINES]
    return Probe(name="sudolist",
                 command='if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; '
                         "then sudo -n -l 2>&1; fi; true",
                 parse=parse)


async def _batch(session: ShellSession, probes: Sequence[Probe[Any]],
                 timeout: float) -> dict[str, Section]:
    nonce = secrets.token_hex(12)
    script = build_script([BatchCommand(name=p.name, command=p.command) for p in probes], nonce)
    result = await session.run(script, timeout=timeout)
    return split_output(result.stdout.decode("utf-8", errors="replace"), nonce)


async def check_host(host: InventoryHost, address: str, options: SSHOptions,
                     timeout: float = 60.0, target: SSHTarget | None = None) -> PreflightHost:
    """Log in; as the login user, list tools, host facts and `sudo -n -l`; then, when the
    inventory asks for privilege, check that `sudo -n` starts the audit's shell."""
    base = PreflightHost(name=host.name, address=address, status=HostStatus.OK,
                         user=_login_user(host, target), become=host.become,
                         via=target.jump_spec if target else None)
    try:
        transport = await connect(host, address, options, target)
    except TransportError as exc:
        status = (HostStatus.HOST_KEY_REJECTED if isinstance(exc, HostKeyError) else
                  HostStatus.AUTH_FAILED if isinstance(exc, AuthError) else
                  HostStatus.UNREACHABLE)
        return base.model_copy(update={"status": status, "error": str(exc)})
    tools = tools_probe(CHECKED_TOOLS)
    facts, sudo_list = host_facts_probe(), _sudo_list_probe()
    sudo_state = "not asked"
    privileged_facts: SystemFacts | None = None
    try:
        async with transport:
            session = await open_session(transport, timeout=timeout)
            try:
                sections = await _batch(session, [tools, facts, sudo_list], timeout)
            finally:
                await session.close()
            if host.become:
                try:
                    session = await open_session(transport, become=True,
                                                 become_user=host.become_user,
                                                 timeout=timeout)
                except PrivilegeError as exc:
                    sudo_state = f"refused: {exc}"
                else:
                    try:
                        privileged_facts = facts.read(
                            (await _batch(session, [facts], timeout))[facts.name])
                        sudo_state = "works"
                    finally:
                        await session.close()
    except TransportError as exc:
        return base.model_copy(update={"status": HostStatus.COLLECTION_FAILED,
                                       "error": str(exc)})
    except (KeyError, ParseError) as exc:
        return base.model_copy(update={"status": HostStatus.COLLECTION_FAILED,
                                       "error": f"unreadable answer: {exc}"})
    try:
        present, missing = tools.read(sections[tools.name])
        login_facts = facts.read(sections[facts.name])
        rules = sudo_list.read(sections[sudo_list.name]) if sudo_list.name in sections else []
    except (KeyError, ParseError) as exc:
        return base.model_copy(update={"status": HostStatus.COLLECTION_FAILED,
                                       "error": f"unreadable answer: {exc}"})
    return judge(base, present, missing, privileged_facts or login_facts, sudo_state, rules,
                 login_facts=login_facts)


def judge(base: PreflightHost, present: Sequence[str], missing: Sequence[str],
          system: SystemFacts, sudo_state: str, rules: Sequence[str],
          login_facts: SystemFacts | None = None) -> PreflightHost:
    """What the audit will and won't see, from the tools and the privilege found. Pure.

    `system` is what the audit's shell sees (through sudo when it works), `login_facts`
    what the login user does (whether `sudo -n` would work without being asked). Only the
    tools this host's audit would run are named: the first listing tool it has, its own
    package manager, one hash tool (`missing` is the probe's answer, kept for its order).
    """
    have = set(present)
    privileged = None if system.euid is None else system.euid == 0
    login = login_facts or system
    if not base.become:
        sudo_state = ("not needed (root)" if privileged else
                      "absent" if login.sudo is None else
                      "not asked (sudo -n would work: set ansible_become: true)" if login.sudo
                      else "not asked (sudo -n refused)")
    uses: list[str] = []
    lacking: list[str] = []
    will: list[str] = []
    wont: list[str] = []
    notes: list[str] = []

    def first(*tools: str) -> str | None:
        """The tool the audit would run of several that do one job, if the host has one."""
        found = next((t for t in tools if t in have), None)
        if found is not None:
            uses.append(found)
        return found

    # Each listing tool stands in for the one before it: only the first present runs.
    tool = first("ss", "netstat", "busybox")
    listing = ("/proc/net only" if tool is None else
               "busybox netstat" if tool == "busybox" else tool)
    if tool is None:
        lacking.append("ss")
        will.append("listeners from /proc/net")
        wont.append("a second listing to cross-check /proc/net against (no ss, netstat "
                    "or busybox)")
    else:
        will.append(f"listeners from {listing}, cross-checked against /proc/net")
    reads = [t for t in _PROCESS_READS if t in have]
    uses += reads
    lacking += [t for t in _PROCESS_READS if t not in have]
    if privileged:
        will.append("the PID and process chain of every listener")
    else:
        wont.append("PIDs of other users' listeners (not privileged): their process "
                    "chain, package and integrity")
    wont += [f"{what} (no {t})" for t, what in _PROCESS_READS.items() if t not in have]
    if first("openssl", "sha256sum") is None:
        lacking.append("sha256sum")
        wont.append("executable hashes (no sha256sum or openssl)")
    manager = packagers.detect(have)
    if manager is None:
        known = ", ".join(m.name for m in packagers.MANAGERS)
        wont.append(f"package ownership and integrity (no package manager fleetaudit "
                    f"reads: {known})")
    else:
        uses.append(manager.tool)
        needs = [t for t in manager.integrity_tools if t not in have]
        if not needs:
            uses += manager.integrity_tools
            will.append(f"package owner and integrity of each executable ({manager.name})")
        else:
            lacking += needs
            will.append(f"package owner of each executable ({manager.name})")
            wont.append(f"integrity of packaged executables (no {', '.join(needs)})")
    if first("python3", "perl") is None:
        lacking.append("python3")
        wont.append("bind probes for ports open outside and unseen inside (no python3 or "
                    "perl)")
    else:
        will.append("bind probes for ports open outside and unseen inside")
    nat_tools = [t for t in _NAT_TOOLS if t in have]
    if nat_tools and privileged:
        uses += nat_tools
        will.append(f"NAT rules ({', '.join(nat_tools)})")
    elif nat_tools:
        wont.append("NAT rules (reading them needs root)")
    else:
        lacking.append("iptables-save")
        wont.append("NAT rules (no iptables-save or nft)")
    if base.become and "sudo" in have:
        uses.append("sudo")
    for limit, what in _LIMITS.items():
        if limit in have:
            uses.append(limit)
        else:
            lacking.append(limit)
            notes.append(what)
    return base.model_copy(update={
        "privileged": privileged, "euid": system.euid, "sudo": sudo_state,
        "sudo_rules": list(rules), "tools": list(present), "uses": uses,
        "missing_tools": [t for t in dict.fromkeys(lacking) if t not in have],
        "listing": listing, "will_see": will, "wont_see": wont, "notes": notes,
    })


async def run_preflight(inventory: Inventory, options: SSHOptions,
                        concurrency: int = 50) -> PreflightReport:
    """Check every host of the inventory, `concurrency` at a time; never raises per host."""
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(host: InventoryHost) -> PreflightHost:
        if host.unresolved:  # a templated or unsupported setting: never contacted
            return PreflightHost(name=host.name, address=host.address,
                                 status=HostStatus.UNREACHABLE, user=_login_user(host, None),
                                 become=host.become,
                                 error="not contacted: " + "; ".join(host.notes))
        try:
            target = resolve_target(host, options.ssh_config)
        except ConfigError as exc:
            return PreflightHost(name=host.name, address=host.address,
                                 status=HostStatus.UNREACHABLE, user=_login_user(host, None),
                                 become=host.become, error=str(exc))
        address = target.host
        async with limit:
            if not target.jumps:  # through jump hosts, the last one resolves the name
                if (ip := addresses.literal(address)) is not None:
                    address = ip
                else:
                    try:
                        infos = await asyncio.get_running_loop().getaddrinfo(address, None)
                    except OSError as exc:
                        return PreflightHost(name=host.name, address=address,
                                             status=HostStatus.UNREACHABLE,
                                             user=_login_user(host, target), become=host.become,
                                             error=f"cannot resolve {address}: {exc}")
                    address = str(infos[0][4][0])
            try:
                return await check_host(host, address, options, target=target)
            except Exception as exc:  # one host's surprise must not end the check
                return PreflightHost(name=host.name, address=address,
                                     status=HostStatus.COLLECTION_FAILED,
                                     user=_login_user(host, target), become=host.become,
                                     error=f"internal error: {type(exc).__name__}: {exc}")

    hosts = await asyncio.gather(*(one(h) for h in inventory.hosts))
    return PreflightReport(inventory=inventory.source, hosts=list(hosts))


def _login_user(host: InventoryHost, target: SSHTarget | None) -> str:
    """Who we log in as: the inventory's user, else ssh_config's, else the local user."""
    if target is not None and target.user:
        return target.user
    return host.user or local_user()


def render_text(report: PreflightReport) -> str:
    """A plain-text summary, one block per host, and a last line that says what an audit
    would and would not get; no heading is printed without something under it."""
    lines = [f"Preflight of {plural(len(report.hosts), 'host')} from {report.inventory}"]
    for host in report.hosts:
        head = f"{host.name} ({host.address}) as {host.user}" + (
            f" via {host.via}" if host.via else "")
        if host.status is not HostStatus.OK:
            lines.append(f"- {head}: {host.status.value}: {host.error}")
            continue
        who = "root" if host.privileged else f"uid {host.euid}"
        lines.append(f"- {head}: ok, runs as {who}; sudo: {host.sudo}")
        lines += [f"    will see: {item}" for item in host.will_see]
        lines += [f"    won't see: {item}" for item in host.wont_see]
        lines += [f"    note: {item}" for item in host.notes]
        if host.uses:
            lines.append(f"    tools used: {', '.join(host.uses)}")
        if host.missing_tools:
            lines.append(f"    tools missing: {', '.join(host.missing_tools)}")
    lines.append(_verdict(report))
    return "\n".join(lines) + "\n"


def _verdict(report: PreflightReport) -> str:
    if not report.hosts:
        return "No host to audit."
    if report.complete:
        every = "the host" if len(report.hosts) == 1 else "every host"
        return f"An audit would be complete: it would see all of the above on {every}."
    unreachable = sum(h.status is not HostStatus.OK for h in report.hosts)
    partial = sum(h.status is HostStatus.OK and not h.complete for h in report.hosts)
    why = []
    if partial:
        whose = "its" if partial == 1 else "their"
        why.append(f"on {plural(partial, 'host')} it would miss what {whose} \"won't see\" "
                   "lines name")
    if unreachable:
        where = "its line" if unreachable == 1 else "each one's line"
        why.append(f"{plural(unreachable, 'host')} could not be checked (the reason is on "
                   f"{where})")
    return f"An audit would be incomplete: {'; '.join(why)}."
