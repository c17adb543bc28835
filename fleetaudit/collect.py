"""What to run on a host to build its internal view, in as few round trips as possible.

Each round is one script (a batch of probes) sent through one shell session on the host,
so the login shell and sudo start once per host; each round needs the answers of the one
before, and lets the next skip what the answers made unnecessary:

1. which tools exist, the host's facts (boot time, euid...), the listening sockets from
   the first of `ss`, `netstat`, busybox `netstat` the host has, and always the /proc/net
   tables: a listener one lists and the other omits is evidence (Coverage.notes "tools
   disagree: ..."). The view keeps one socket per listener: the tool's, plus those only
   /proc/net shows (source proc_net). The fd map (every fd of every process, the dearest
   read) comes with /proc/net only where ss is missing (netstat names one process per
   socket; a host may have no tool at all); where ss left out a listener, one extra
   round maps just those sockets to their owners;
2. the process chain of every listening PID (exe, cmdline, owner, status, start time,
   cwd, mapped files, environment names, cgroup, netns) and which file each runs: one
   command per kind of file for all PIDs, and the links and cmdline of a group of PIDs
   inline in one command, since a process start costs more than the read it makes;
3. the sha256 of each executable file once (PIDs of one file share it), and the package
   owning each executable, from the host's package manager (`fleetaudit.packagers`; one
   that verifies by path, rpm's `rpm -Vf PATH`, verifies here too);
4. the others verify by the owner's name from round 3: dpkg each executable's md5
   against its package's md5sums, with the package's version; pacman `pacman -Qkk`.

After the scan, `collect_final` runs one more round on the same connection, only for ports
open from outside that no listener inside explains: a bind() probe and the NAT rules.

With `become`, every round runs under one `sudo -n sh -s`; when sudo refuses, the rest is
collected unprivileged and the view says what that hides. A probe that fails leaves its
error in the view and the others go on; only a TransportError leaves this module.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetaudit import addresses, packagers
from fleetaudit.batch import (
    TIMED_OUT,
    BatchCommand,
    Section,
    SectionStream,
    build_inline,
    build_script,
    split_output,
)
from fleetaudit.errors import ParseError, RoundCutError
from fleetaudit.models import (
    Coverage,
    CoverageGap,
    ExternalHost,
    IntegrityResult,
    InternalView,
    ListenerSource,
    PackageLookup,
    PackageOwner,
    ProcessInfo,
    Proto,
    Socket,
    SocketOwner,
    SystemFacts,
    ToolsDisagreement,
)
from fleetaudit.parsers.packages import usrmerge_aliases
from fleetaudit.probes import (
    INTERNAL_TOOLS,
    Probe,
    bind_probe,
    exe_hash_probe,
    fd_map_probe,
    host_facts_probe,
    nat_probe,
    netstat_probe,
    proc_net_probe,
    process_batch,
    ss_probe,
    tools_probe,
)
from fleetaudit.reconcile import serves_address
from fleetaudit.transport import PrivilegeError, ShellSession, Transport, open_session

MAX_PIDS = 4096
MAX_BIND_PORTS = 256
# Per command, where the host has `timeout` and `head -c`: one hung or flooding command
# costs its own section, not the batch. The transport's timeout bounds the whole batch.
COMMAND_TIMEOUT = 30
LISTING_OUTPUT = 2 * 1024 * 1024  # ss of ~15,000 listeners; real hosts print far less
# The listening PIDs' reads, a group of PIDs a command, with one time limit (a
# /proc/PID/cmdline read blocks while the process's memory map is locked) and one cap.
PROCESS_OUTPUT = 8 * 1024 * 1024
# Kept of a section without a cap of its own, and of a whole round: what one host may
# cost here however much it prints (the rest is counted and dropped as it arrives).
SECTION_OUTPUT = 1024 * 1024
ROUND_OUTPUT = 16 * 1024 * 1024


def _has(tool: str) -> str:
    return f"command -v {tool} >/dev/null 2>&1"


# The first listing tool the host has, decided on the host within round 1.
_ONLY_IF = {
    "ss": _has("ss"),
    "netstat": f"! {_has('ss')} && {_has('netstat')}",
    "busybox_netstat": (f"! {_has('ss')} && ! {_has('netstat')} && {_has('busybox')} && "
                        "busybox --list 2>/dev/null | grep -qx netstat"),
}


@dataclass(frozen=True)
class CollectOptions:
    """How to collect one host: limits, privilege, and the optional expensive reads."""

    timeout: float = 120.0  # one batch, end to end
    command_timeout: int = COMMAND_TIMEOUT
    become: bool = False
    become_user: str | None = None
    hash_exe: bool = True
    maps: bool = True
    # More argument names whose values are secrets (the policy's redact_arguments):
    # redacted from cmdlines as they are parsed, with the built-in ones.
    redact_arguments: tuple[str, ...] = ()
    # Told when each round ends: (round number from 1, start, end) as time.monotonic
    # readings, for the run's timings (fleetaudit.timeline).
    on_round: Callable[[int, float, float], None] | None = None


class _Batch:
    """Runs probes together and parses each section, keeping every failure as evidence.

    All of a collection's rounds go through one shell session on the host (one login,
    one sudo), opened at the first round.
    """

    def __init__(self, transport: Transport, options: CollectOptions) -> None:
        self.transport = transport
        self.options = options
        self.become = options.become
        self.session: ShellSession | None = None
        self._helpers_in: ShellSession | None = None
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.gaps: list[CoverageGap] = []
        # Why the session ended part way (time limit, connection lost): no later round.
        self.cut: str | None = None
        self.rounds = 0

    def gap(self, source: str, reason: str) -> None:
        self.gaps.append(CoverageGap(source=source, reason=reason))

    def command(self, probe: Probe[Any], *, limit: bool = False, output: int | None = None,
                only_if: str | None = None) -> BatchCommand:
        return BatchCommand(name=probe.name, command=probe.command,
                            timeout=self.options.command_timeout if limit else None,
                            max_output=output, only_if=only_if)

    async def _open(self) -> ShellSession:
        if self.session is not None and self.session.alive:
            return self.session
        try:
            self.session = await open_session(self.transport, become=self.become,
                                              become_user=self.options.become_user,
                                              timeout=self.options.timeout)
        except PrivilegeError as exc:
            # Asked for, refused: say so, and see what the login itself may see.
            self.become = False
            self.errors.append(f"{exc}; collected without privilege")
            self.session = await open_session(self.transport, timeout=self.options.timeout)
        return self.session

    async def run(self, commands: Sequence[BatchCommand]) -> dict[str, Section]:
        """The round's sections, each capped as it streams in. A round cut short (time
        limit, connection lost) keeps the sections that finished and names the command
        that did not; the session is then over, so later rounds run nothing."""
        if self.cut is not None:
            return {}
        self.rounds += 1
        started = time.monotonic()
        try:
            return await self._run(commands)
        finally:
            if self.options.on_round is not None:
                self.options.on_round(self.rounds, started, time.monotonic())

    async def _run(self, commands: Sequence[BatchCommand]) -> dict[str, Section]:
        nonce = secrets.token_hex(12)
        session = await self._open()
        # The session's first script defines the batch helpers; later ones reuse them.
        script = build_script(commands, nonce, helpers=session is not self._helpers_in)
        self._helpers_in = session
        # The host's own cap (head -c) plus room for the end marker; a host without
        # head -c, or one that lies, is cut here all the same.
        stream = SectionStream(nonce, {c.name: c.max_output + 256 for c in commands
                                       if c.max_output is not None},
                               default_cap=SECTION_OUTPUT, budget=ROUND_OUTPUT)
        try:
            result = await session.run(script, timeout=self.options.timeout,
                                        sink=stream.feed)
        except RoundCutError as exc:
            sections = stream.sections()
            self._round_cut(str(exc), commands, stream.begun, sections)
            return sections
        sections = stream.sections()
        if stream.cut_here:
            self.errors.append(f"output cut at its size limit: {', '.join(stream.cut_here)}"
                               f" ({stream.dropped} bytes dropped)")
        if result.exit_status is None:
            self._round_cut("the host's shell ended", commands, stream.begun, sections)
        return sections

    def _round_cut(self, why: str, commands: Sequence[BatchCommand], begun: list[str],
                   sections: dict[str, Section]) -> None:
        """Say which command did not finish (the last one begun), and what is lost."""
        by_name = {c.name: c for c in commands}
        running = next((n for n in reversed(begun)
                        if sections.get(n) is not None and sections[n].exit_status is None),
                       None)
        kept = sum(1 for s in sections.values() if s.exit_status is not None)
        if running is not None:
            what = f"`{running}` did not finish (`{by_name[running].command[:200]}`)" \
                if running in by_name else f"`{running}` did not finish"
        else:
            what = "the round ended before its next command"
        self.cut = f"round stopped ({why}): {what}; {kept} earlier section(s) kept"
        self.errors.append(self.cut)
        self.gap("session", self.cut)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def read(self, probe: Probe[Any], sections: dict[str, Section]) -> Any:
        section = sections.get(probe.name)
        if section is None:
            self.errors.append(f"{probe.name}: no output (`{probe.command[:200]}`)")
            return None
        if section.exit_status is None:
            self.errors.append(f"{probe.name}: output cut short (size or time limit); "
                               "kept what arrived")
        elif section.exit_status == TIMED_OUT:
            self.errors.append(f"{probe.name}: ran past {self.options.command_timeout}s "
                               "and was stopped")
        try:
            return probe.read(section)
        except ParseError as exc:
            self.errors.append(f"{probe.name}: {exc}")
            return None

    def why(self, section: Section | None) -> str:
        """How a section that had to be complete was not."""
        if section is None:
            return "not run" + (f" ({self.cut})" if self.cut else "")
        if section.exit_status is None:
            return "output cut short (size or time limit, or the round stopped)"
        if section.exit_status == TIMED_OUT:
            return f"ran past {self.options.command_timeout}s and was stopped"
        if section.exit_status != 0:
            return f"exited with status {section.exit_status}"
        return "output not readable"


def _complete(section: Section | None) -> bool:
    """A listing counts as full only when it ran to its end marker and exited 0."""
    return section is not None and section.exit_status == 0


async def collect_internal(transport: Transport, *, timeout: float = 120.0,
                           options: CollectOptions | None = None,
                           on_listing: Callable[[list[Socket]], None] | None = None,
                           ) -> InternalView:
    """Gather listeners, their process chains, package owners and integrity.

    `on_listing` gets the merged listing as soon as round 1 is parsed, so the scan can
    probe those ports while the later rounds run. Raises only TransportError; the
    connection stays open for `collect_final`.
    """
    options = options or CollectOptions(timeout=timeout)
    batch = _Batch(transport, options)
    try:
        return await _collect(batch, options, on_listing)
    finally:
        await batch.close()


async def _collect(batch: _Batch, options: CollectOptions,
                   on_listing: Callable[[list[Socket]], None] | None = None) -> InternalView:
    tools, facts = tools_probe(INTERNAL_TOOLS), host_facts_probe()
    listings = [(ss_probe(), ListenerSource.SS), (netstat_probe(), ListenerSource.NETSTAT),
                (netstat_probe(busybox=True), ListenerSource.NETSTAT)]
    # /proc/net always; its fd map only where ss will not name every owner (netstat names
    # one process per socket, and a host may have no listing tool at all).
    proc_net = proc_net_probe(fd_map=False)
    sections = await batch.run([
        batch.command(tools), batch.command(facts),
        *(batch.command(probe, limit=True, output=LISTING_OUTPUT, only_if=_ONLY_IF[probe.name])
          for probe, _ in listings),
        batch.command(proc_net, limit=True, output=LISTING_OUTPUT, only_if=_has("ss")),
        batch.command(proc_net_probe(), limit=True, output=LISTING_OUTPUT,
                      only_if=f"! {_has('ss')}"),
    ])
    present, missing = batch.read(tools, sections) or ([], list(INTERNAL_TOOLS))
    system: SystemFacts | None = batch.read(facts, sections)
    privileged = None if system is None or system.euid is None else system.euid == 0

    sockets: list[Socket] = []
    sources: list[ListenerSource] = []
    listed, failed = [], []
    for probe, source in listings:
        if probe.name not in sections:
            continue  # not the host's first listing tool: never ran
        listed.append(probe.name)
        found = batch.read(probe, sections)
        if found is not None:
            sockets += found
        if found is not None and _complete(sections[probe.name]):
            sources.append(source)
        else:
            why = batch.why(sections[probe.name])
            batch.errors.append(f"{probe.name}: listing incomplete ({why})")
            batch.gap("listing", f"{probe.name}: {why}")
            failed.append(probe.name)
        if probe.name == "busybox_netstat":
            batch.notes.append("netstat: busybox's applet")
    if not listed and batch.cut is not None:
        batch.gap("listing", batch.why(None))
        failed.append("listing")
    elif not listed:
        batch.notes.append("no listing tool (ss, netstat, busybox netstat) ran: listeners "
                           "come from /proc/net alone")
    kernel = batch.read(proc_net, sections)
    if kernel is not None and _complete(sections.get(proc_net.name)):
        sources.append(ListenerSource.PROC_NET)
    else:
        batch.gap("proc_net", batch.why(sections.get(proc_net.name)))
        failed.append("/proc/net")
    if failed and (listed or batch.cut is not None):
        # The listing against /proc/net is the check a rootkit's ss cannot pass: not run.
        batch.gap("cross_check", f"not run: {', '.join(failed)} incomplete")
    disagreed = disagreements([*sockets, *(kernel or [])], sources)
    batch.notes += [_describe_disagreement(d) for d in disagreed]
    sockets = merge_listings(sockets, kernel or [])
    if on_listing is not None:
        on_listing(sockets)
    ss_ran = "ss" in sections
    del sections  # parsed: the raw text goes now, before the next rounds
    if ss_ran:
        # /proc/net came without its fd map: look up only what ss left out.
        sockets = await _owners_of_unlisted(batch, sockets)
    batch.notes += hidden_owners(sockets, privileged)

    pids = sorted({owner.pid for s in sockets for owner in s.owners})
    if len(pids) > MAX_PIDS:
        batch.errors.append(f"{len(pids)} listening PIDs; only the first {MAX_PIDS} examined")
        pids = pids[:MAX_PIDS]
    processes, same_file = await _processes(batch, pids, system)
    processes = await _packages(batch, processes, present, same_file)

    coverage = Coverage(
        sources=[s.value for s in dict.fromkeys(sources)], privileged=privileged,
        missing_tools=missing,
        notes=[*_privilege_notes(options, batch, system), *batch.notes], gaps=batch.gaps,
    )
    return InternalView(sockets=sockets, processes=processes, tools=present,
                        missing_tools=missing, errors=batch.errors, system=system,
                        coverage=coverage, disagreements=disagreed)


async def _owners_of_unlisted(batch: _Batch, sockets: list[Socket]) -> list[Socket]:
    """Owners of the listeners only /proc/net showed (a tool hid them), from the fd map.

    A round of its own, and only when such a listener exists: the map reads every fd of
    every process, the dearest read of a host, and the listing tool named the rest.
    """
    wanted = {s.inode for s in sockets
              if s.source is ListenerSource.PROC_NET and not s.owners and s.inode}
    if not wanted:
        return sockets
    probe = fd_map_probe()
    sections = await batch.run([batch.command(probe, limit=True, output=LISTING_OUTPUT)])
    owners = batch.read(probe, sections) or {}
    return [
        s.model_copy(update={"owners": sorted(owners[s.inode],
                                              key=lambda o: (o.pid, o.fd or 0))})
        if s.inode in wanted and s.inode in owners else s
        for s in sockets
    ]


def _privilege_notes(options: CollectOptions, batch: _Batch,
                     system: SystemFacts | None) -> list[str]:
    euid = system.euid if system is not None else None
    who = "unknown user" if euid is None else ("root" if euid == 0 else f"uid {euid}")
    if options.become and batch.become:
        return [f"privilege: sudo -n{' -u ' + options.become_user if options.become_user else ''}"
                f" ({who})"]
    if options.become:
        return [f"privilege: sudo refused; ran as {who}"]
    return [f"privilege: none asked; ran as {who}"]


def disagreements(sockets: Iterable[Socket],
                  sources: Sequence[ListenerSource]) -> list[ToolsDisagreement]:
    """Listeners that one full listing shows and another omits (TOOLS_DISAGREE's evidence).

    Compared by protocol, port and address; a socket that opened or closed between the
    two reads shows up here too, which is why this is evidence, not a verdict.
    """
    full = list(dict.fromkeys(sources))
    if len(full) < 2:
        return []
    seen: dict[tuple[str, int, str], set[ListenerSource]] = {}
    for sock in sockets:
        if sock.source in full:
            seen.setdefault(_socket_key(sock), set()).add(sock.source)
    found = []
    for (proto, port, address), by in sorted(seen.items()):
        absent = [s for s in full if s not in by]
        if absent:
            found.append(ToolsDisagreement(proto=Proto(proto), port=port, address=address,
                                           listed_by=[s for s in full if s in by],
                                           missing_from=absent))
    return found


def _describe_disagreement(d: ToolsDisagreement) -> str:
    return (f"tools disagree: {d.proto.value} {d.address} port {d.port} listed by "
            f"{', '.join(s.value for s in d.listed_by)}, "
            f"not by {', '.join(s.value for s in d.missing_from)}")


def merge_listings(listed: Sequence[Socket], kernel: Sequence[Socket]) -> list[Socket]:
    """One socket per listener: the listing tool's, plus the ones only /proc/net shows.

    A listener both list appears once, the tool's, with the owners the fd map found added
    to the tool's (netstat names one process per socket: a pre-fork server's other
    processes come from the map); one /proc/net alone shows (a tool that hides it) keeps
    source proc_net and the map's owners, so its process chain is collected like any
    other's.
    """
    mapped: dict[tuple[str, int, str], list[SocketOwner]] = {}
    for sock in kernel:
        mapped.setdefault(_socket_key(sock), []).extend(sock.owners)
    merged = []
    for sock in listed:
        named = {owner.pid for owner in sock.owners}
        more = [o for o in mapped.get(_socket_key(sock), []) if o.pid not in named]
        merged.append(sock.model_copy(update={"owners": sorted(
            [*sock.owners, *more], key=lambda o: (o.pid, o.fd or 0))}) if more else sock)
    known = {_socket_key(s) for s in listed}
    return [*merged, *(s for s in kernel if _socket_key(s) not in known)]


def _socket_key(sock: Socket) -> tuple[str, int, str]:
    return sock.proto.value, sock.port, addresses.listing_key(sock.address)


def hidden_owners(sockets: Iterable[Socket], privileged: bool | None) -> list[str]:
    """Per listener no tool named a process for: say why, rather than guess one."""
    owned: set[tuple[str, int, str]] = set()
    bare: dict[tuple[str, int, str], Socket] = {}
    for sock in sockets:
        key = _socket_key(sock)
        if sock.owners:
            owned.add(key)
        else:
            bare.setdefault(key, sock)
    why = ("PID hidden: not privileged" if privileged is False else
           "no process holds it (a kernel socket, or its process exited)" if privileged
           else "PID not visible (privilege unknown)")
    return [f"{proto} {address} port {port}: {why}"
            for (proto, port, address) in sorted(set(bare) - owned)]


async def _processes(batch: _Batch, pids: list[int],
                     system: SystemFacts | None) -> tuple[list[ProcessInfo], list[list[int]]]:
    """Every PID's chain, and the PIDs grouped by the file they run (to hash each once).

    Starting a process costs more than the /proc read it makes (~1.5 ms a process here):
    for a group of PIDs, each kind of file is read by one command for all of them and
    each PID's links and cmdline inline (process_batch), all as one command.
    """
    if not pids:
        return [], []
    reads = process_batch(pids, maps=batch.options.maps, exe_id=batch.options.hash_exe)
    inner = secrets.token_hex(12)
    # A group of PIDs a command, every read inline: one time limit and one size cap a
    # group (each costs processes too); a read that hangs stops only its group's later
    # reads, and what came before it is kept.
    outer = await batch.run([
        BatchCommand(name=f"procs.{n}", max_output=PROCESS_OUTPUT,
                     timeout=batch.options.command_timeout,
                     command=build_inline([p.batch_command() for p in chunk], inner))
        for n, chunk in enumerate(reads.chunks)])
    parts: dict[str, Section] = {}
    for n in range(len(reads.chunks)):
        whole = outer.pop(f"procs.{n}", None)
        if whole is None or whole.exit_status is None or whole.exit_status == TIMED_OUT:
            why = batch.why(whole)
            batch.gap("process_chain", f"procs.{n}: {why}")
            if whole is None:
                continue
            batch.errors.append(f"procs.{n}: reads {why}; kept what arrived")
        parts.update(split_output(whole.text, inner))
    found = reads.read(parts, system, batch.options.redact_arguments)
    batch.errors += found.errors
    return found.processes, found.same_file if batch.options.hash_exe else []


def _with_hashes(batch: _Batch, processes: list[ProcessInfo], probes: list[Probe[Any]],
                 groups: list[list[int]], sections: dict[str, Section]) -> list[ProcessInfo]:
    digests: dict[int, str] = {}
    for probe, group in zip(probes, groups, strict=True):
        digest = batch.read(probe, sections)
        if digest is not None:
            digests.update(dict.fromkeys(group, digest))
    return [p.model_copy(update={"sha256": digests[p.pid]}) if p.pid in digests else p
            for p in processes]


def _verifiable(exe: str) -> bool:
    # A path with a newline cannot be asked about safely; it stays "not checked".
    return exe.startswith("/") and "\n" not in exe


async def _packages(batch: _Batch, processes: list[ProcessInfo], tools: list[str],
                    same_file: list[list[int]]) -> list[ProcessInfo]:
    """Each executable's sha256 and owner, then its integrity by the package manager."""
    hashes = [exe_hash_probe(group) for group in same_file]
    commands = [batch.command(probe, limit=True) for probe in hashes]
    exes = sorted({p.exe for p in processes if p.exe and _verifiable(p.exe)})
    manager = packagers.detect(tools)
    if exes and manager is None:
        known = ", ".join(m.name for m in packagers.MANAGERS)
        batch.notes.append(f"no package manager found ({known}): ownership and "
                           "integrity not checked")
    owner_probe = by_path = None
    if exes and manager is not None:
        queried = sorted({alias for exe in exes for alias in usrmerge_aliases(exe)})
        owner_probe = manager.owner_probe(queried)
        commands.append(batch.command(owner_probe, limit=True, output=LISTING_OUTPUT))
        if manager.verifies_by_path:
            # No need to wait for the owner's name.
            by_path = manager.integrity_probe({exe: exe for exe in exes})
            commands.append(batch.command(by_path, limit=True, output=LISTING_OUTPUT))
    if not commands:
        return processes
    sections = await batch.run(commands)
    processes = _with_hashes(batch, processes, hashes, same_file, sections)
    if owner_probe is None or manager is None:
        return processes
    lookups: list[PackageLookup] = batch.read(owner_probe, sections) or []
    if not lookups:
        return processes
    by_spelling = {lookup.path: lookup for lookup in lookups}

    def owned(exe: str) -> tuple[str, PackageOwner] | None:
        """The spelling the package database knows the file by, and its owner."""
        for alias in usrmerge_aliases(exe):
            found = by_spelling.get(alias)
            if found is not None and found.owner is not None:
                return alias, found.owner
        return None

    owners = {exe: owned(exe) for exe in exes}
    integrity: dict[str, IntegrityResult] = {}
    if by_path is not None:
        for result in batch.read(by_path, sections) or []:
            integrity[result.path] = result
    else:
        integrity, versions = await _by_owner(batch, manager, processes, owners)
        owners = {exe: None if found is None else (found[0], found[1].model_copy(
                      update={"version": versions.get(found[1].name, found[1].version)}))
                  for exe, found in owners.items()}
    packages = {exe: found[1] if found is not None else None for exe, found in owners.items()}
    return [
        p.model_copy(update={"package": packages[p.exe], "package_manager": manager.name,
                             "integrity": integrity.get(p.exe)})
        if p.exe in packages else p
        for p in processes
    ]


async def _by_owner(batch: _Batch, manager: packagers.PackageManager,
                    processes: list[ProcessInfo],
                    owners: dict[str, tuple[str, PackageOwner] | None]
                    ) -> tuple[dict[str, IntegrityResult], dict[str, str]]:
    """The integrity of each owned executable, checked by its package's name, read back as
    /proc named it; and each owner's version where the owner probe did not say it. One
    round."""
    deleted = {p.exe for p in processes if p.exe_deleted}
    # The file on disk is no longer the one running: verifying it would vouch for nothing.
    targets = {found[0]: found[1].name for exe, found in owners.items()
               if found is not None and exe not in deleted}
    # "a, b": several packages list the file; no one version is its.
    names = sorted({found[1].name for found in owners.values()
                    if found is not None and ", " not in found[1].name})
    commands, probe, versions_probe = [], None, None
    try:
        if targets:
            probe = manager.integrity_probe(targets)
            commands.append(batch.command(probe, limit=True, output=LISTING_OUTPUT))
        if names and manager.version_probe is not None:
            versions_probe = manager.version_probe(names)
            commands.append(batch.command(versions_probe, limit=True, output=LISTING_OUTPUT))
    except ValueError as exc:
        batch.errors.append(f"integrity not checked: {exc}")
        return {}, {}
    if not commands:
        return {}, {}
    sections = await batch.run(commands)
    versions = (batch.read(versions_probe, sections) or {}) if versions_probe else {}
    return _per_exe(owners, batch.read(probe, sections) or [] if probe else []), versions


def _per_exe(owners: dict[str, tuple[str, PackageOwner] | None],
             checked: list[IntegrityResult]) -> dict[str, IntegrityResult]:
    """Results asked by the package's spelling of each path, back under /proc's."""
    by_alias = {result.path: result for result in checked}
    results = {}
    for exe, found in owners.items():
        if found is not None and found[0] in by_alias:
            result = by_alias[found[0]]
            results[exe] = result if result.path == exe else result.model_copy(
                update={"path": exe})
    return results


# --- after the scan -------------------------------------------------------------------


def ports_to_probe(view: InternalView, external: ExternalHost | None,
                   address: str) -> list[tuple[Proto, int]]:
    """Ports open from outside that no socket inside serves on the scanned address."""
    if external is None:
        return []
    wanted = []
    for port in external.ports:
        if port.state != "open":
            continue
        if not any(s.proto is port.proto and s.port == port.port
                   and serves_address(s, address) for s in view.sockets):
            wanted.append((port.proto, port.port))
    return sorted(set(wanted))


async def collect_final(transport: Transport, view: InternalView,
                        ports: Sequence[tuple[Proto, int]], *,
                        options: CollectOptions | None = None) -> InternalView:
    """The round after the scan: bind() each unexplained port and read the NAT rules.

    `ports` come from `ports_to_probe`. Returns `view` with bind_results, nat_forwards and
    what this round could not see added; raises only TransportError.
    """
    if not ports:
        return view
    options = options or CollectOptions()
    batch = _Batch(transport, options)
    wanted = list(ports)[:MAX_BIND_PORTS]
    if len(ports) > MAX_BIND_PORTS:
        batch.errors.append(f"{len(ports)} unexplained open ports; only the first "
                            f"{MAX_BIND_PORTS} bind-probed")
    binder, nat = bind_probe(wanted), nat_probe()
    try:
        sections = await batch.run([batch.command(binder, limit=True, output=LISTING_OUTPUT),
                                    batch.command(nat, limit=True, output=LISTING_OUTPUT)])
    finally:
        await batch.close()
    bind_results = batch.read(binder, sections) or []
    reading = batch.read(nat, sections)
    notes = [f"bind probe on {len(wanted)} port(s) open outside and unseen inside"]
    forwards = []
    if reading is not None:
        forwards = reading.forwards
        if reading.tools:
            notes.append(f"NAT rules read with {', '.join(reading.tools)}")
        if reading.refused:
            notes.append(f"NAT rules not readable by {', '.join(reading.refused)} "
                         "(not privileged?)")
        if not reading.tools and not reading.refused:
            notes.append("no NAT tool (iptables-save, ip6tables-save, nft) on the host")
    coverage = view.coverage or Coverage()
    return view.model_copy(update={
        "bind_results": [*view.bind_results, *bind_results],
        "nat_forwards": [*view.nat_forwards, *forwards],
        "errors": [*view.errors, *batch.errors],
        "coverage": coverage.model_copy(update={"notes": [*coverage.notes, *notes]}),
    })
