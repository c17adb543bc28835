"""`fleetaudit check`: before an audit, what each host will let us see, and what it won't.

One connection per host, one batch as the login user (and, when the inventory asks for
privilege, one more through `sudo -n`): can we log in, which tools exist, does sudo work
and what does it allow, and from that, which sources the audit will use and which
evidence will be missing. Read-only, like the audit itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from fleetaudit.batch import BatchCommand, Section, build_script, split_output
from fleetaudit.errors import AuthError, ConfigError, HostKeyError, ParseError, TransportError
from fleetaudit.models import HostStatus, Inventory, InventoryHost, Model, SystemFacts
from fleetaudit.probes import INTERNAL_TOOLS, Probe, host_facts_probe, tools_probe
from fleetaudit.ssh_target import SSHTarget, local_user, resolve_target
from fleetaudit.transport import (
    PrivilegeError,
    ShellSession,
    SSHOptions,
    connect,
    open_session,
)

# Besides the probes' tools: what bounds each command on the host.
_LIMIT_TOOLS = ("timeout", "head")
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
    tools: list[str] = Field(default_factory=list)
    missing_tools: list[str] = Field(default_factory=list)
    listing: str | None = None  # ss | netstat | busybox netstat | /proc/net only
    will_see: list[str] = Field(default_factory=list)
    wont_see: list[str] = Field(default_factory=list)

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
    tools = tools_probe((*INTERNAL_TOOLS, *_LIMIT_TOOLS))
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
    what the login user does (whether `sudo -n` would work without being asked).
    """
    have = set(present)
    privileged = None if system.euid is None else system.euid == 0
    login = login_facts or system
    if not base.become:
        sudo_state = ("not needed (root)" if privileged else
                      "absent" if login.sudo is None else
                      "not asked (sudo -n would work: set ansible_become: true)" if login.sudo
                      else "not asked (sudo -n refused)")
    will: list[str] = []
    wont: list[str] = []
    if "ss" in have:
        listing = "ss"
    elif "netstat" in have:
        listing = "netstat"
    elif "busybox" in have:
        listing = "busybox netstat"
    else:
        listing = "/proc/net only"
    will.append(f"listeners from {listing}" + ("" if listing == "/proc/net only" else
                                               ", cross-checked against /proc/net"))
    if privileged:
        will.append("the PID and process chain of every listener")
    else:
        wont.append("PIDs of other users' listeners (not privileged): their process "
                    "chain, package and integrity")
    managers = [m for m in ("dpkg", "rpm", "pacman") if m in have]
    if managers:
        will.append(f"package owner and integrity of each executable ({managers[0]})")
    else:
        wont.append("package ownership and integrity (no dpkg, rpm or pacman)")
    if "sha256sum" not in have and "openssl" not in have:
        wont.append("executable hashes (no sha256sum, no openssl)")
    if "python3" in have or "perl" in have:
        will.append("bind probes for ports open outside and unseen inside")
    else:
        wont.append("bind probes (no python3 or perl)")
    nat_tools = [t for t in ("iptables-save", "ip6tables-save", "nft") if t in have]
    if nat_tools and privileged:
        will.append(f"NAT rules ({', '.join(nat_tools)})")
    elif nat_tools:
        wont.append("NAT rules (reading them needs root)")
    else:
        wont.append("NAT rules (no iptables-save or nft)")
    if "timeout" not in have:
        will.append("no per-command time limit (no `timeout`): only the batch's")
    return base.model_copy(update={
        "privileged": privileged, "euid": system.euid, "sudo": sudo_state,
        "sudo_rules": list(rules), "tools": list(present), "missing_tools": list(missing),
        "listing": listing, "will_see": will, "wont_see": wont,
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
                try:
                    address = str(ipaddress.ip_address(address))
                except ValueError:
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
    """A plain-text summary, one block per host."""
    lines = [f"Preflight of {len(report.hosts)} host(s) from {report.inventory}"]
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
        if host.missing_tools:
            lines.append(f"    missing tools: {', '.join(host.missing_tools)}")
    verdict = "complete" if report.complete else "incomplete (see won't see)"
    lines.append(f"An audit would be {verdict}.")
    return "\n".join(lines) + "\n"
