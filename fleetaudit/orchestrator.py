"""Drives a whole fleet: the nmap scan and every host's collection at the same time.

A host that fails is an outcome (its status and errors), never an exception that ends
the run; only a whole-run problem (nmap missing) is raised, and even then the
internal views already collected are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from fleetaudit import __version__, addresses, scan
from fleetaudit.collect import (
    CollectOptions,
    collect_final,
    collect_internal,
    ports_to_probe,
)
from fleetaudit.errors import (
    AuthError,
    CommandError,
    HostKeyChangedError,
    HostKeyError,
    JournalError,
    ScanError,
    TransportError,
    UnsafeTargetError,
)
from fleetaudit.exitcodes import ExitCode
from fleetaudit.guard import admit
from fleetaudit.models import (
    AuditResults,
    Connection,
    ExternalHost,
    HostError,
    HostKeyChange,
    HostResult,
    HostStatus,
    InternalView,
    Inventory,
    InventoryHost,
    Proto,
    ScanRun,
    Severity,
    Socket,
    Stage,
)
from fleetaudit.policy import (
    Policy,
    baseline_policy,
    exit_code,
    judge_host,
    summarize_judged,
)
from fleetaudit.progress import AuditObserver
from fleetaudit.reconcile import reconcile_host
from fleetaudit.report.journal import Journal
from fleetaudit.scan.command import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_DISCOVERY_CONCURRENCY,
    DEFAULT_VERSION_HOST_TIMEOUT,
    ScanSettings,
)
from fleetaudit.scan.plan import Listing, ProcessResult, inside_ports
from fleetaudit.ssh_target import SSHTarget, resolve_target
from fleetaudit.terminal import say
from fleetaudit.timeline import Timeline
from fleetaudit.transport import SSHOptions, Transport, TransportFactory, connect


class AuditOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    ssh: SSHOptions = SSHOptions()
    concurrency: int = 50
    command_timeout: float = 120.0
    # --- the external view (fleetaudit.scan) ---
    profile: str = "quick"
    ports: str | None = None  # replaces the profile's ports; T:/U: prefixes
    scan_concurrency: int = DEFAULT_CONCURRENCY  # nmap processes at once
    scan_discovery_concurrency: int = DEFAULT_DISCOVERY_CONCURRENCY  # of which discovering
    scan_batch_size: int = DEFAULT_BATCH_SIZE  # hosts per nmap process
    nmap_args: tuple[str, ...] = ()  # allowlisted timing/intensity options
    version_host_timeout: str | None = DEFAULT_VERSION_HOST_TIMEOUT
    nmap_xml: tuple[Path, ...] = ()  # read these reports instead of scanning
    nmap_path: str | None = None
    # Connections kept open from collection to the round after the scan (see _Parking).
    parked_connections: int = 256
    # The policy's redact_arguments: more secret argument names, redacted from cmdlines.
    redact_arguments: tuple[str, ...] = ()


@dataclass
class AuditOutcome:
    results: AuditResults
    # One raw report per nmap process (or per --nmap-xml file), for DIR/nmap/<name>.xml.
    nmap_xml_files: list[tuple[str, bytes]] = field(default_factory=list)

    def exit_code(self, fail_on: Severity | None = None) -> ExitCode:
        """The process exit code of these judged results (fleetaudit.exitcodes)."""
        return exit_code(self.results, fail_on)


# What the scan task gives: the run with every host's external view (None when there is
# no scan), the whole fleet scan (evidence, per-host failures), and a whole-run error.
ScanOutcome = tuple[ScanRun | None, "scan.FleetScan | None", str | None]


@dataclass(frozen=True)
class _ScanSays:
    """What the scan said of one host: its view, or why it has none."""

    external: ExternalHost | None = None
    missing: str | None = None  # this host has no view (down, cut short...)
    run_error: str | None = None  # the whole scan failed, or there was none


@dataclass
class _HostState:
    host: InventoryHost
    # A direct host: the IP scanned and connected to. Through jump hosts: the name the
    # last jump host reaches it by (never scanned).
    address: str | None = None
    target: SSHTarget | None = None
    errors: list[HostError] = field(default_factory=list)
    status: HostStatus = HostStatus.OK
    internal: InternalView | None = None
    host_key_changed: HostKeyChange | None = None
    # What the scan waits for: the ports round 1 lists (None: collection failed).
    listing: asyncio.Future[Listing | None] | None = None
    # What the host waits for: the scan's word on it, as soon as its batches are done.
    scan_says: asyncio.Future[_ScanSays] | None = None

    def heard(self, sockets: Sequence[Socket] | None) -> None:
        """Give the scan this host's listing, once (later calls change nothing)."""
        if self.listing is not None and not self.listing.done():
            self.listing.set_result(None if sockets is None else inside_ports(sockets))

    def fail(self, status: HostStatus, stage: Stage, message: str) -> None:
        if self.status is HostStatus.OK:
            self.status = status
        self.errors.append(HostError(stage=stage, message=message))

    @property
    def scanned(self) -> bool:
        """A host reached only through jump hosts has no route from us: never scanned."""
        return self.target is None or not self.target.jumps

    @property
    def not_scanned(self) -> str:
        assert self.target is not None
        return f"not scanned: reached only through jump host {self.target.jump_spec}"


def _plan(state: _HostState, options: AuditOptions) -> None:
    """What the host's SSH target is and which string names it: pure, no DNS (dry-run safe).

    ConfigError (an unusable ssh_config or ProxyJump) ends the run, as a bad inventory does.
    """
    if state.host.unresolved:
        # The inventory names this host but leaves a setting we need unusable (a Jinja
        # template, an unsupported connection): listed in the results, never contacted.
        state.fail(HostStatus.UNREACHABLE, Stage.CONNECT,
                   "not contacted: " + "; ".join(state.host.notes))
        state.address = None
        return
    if state.host.connection is Connection.SSH:
        state.target = resolve_target(state.host, options.ssh.ssh_config)
        state.address = state.target.host
    else:
        state.address = state.host.address


def _route_address(state: _HostState) -> str | None:
    """What the route guard checks: the host itself, or the first jump host (what we reach)."""
    if state.target is not None and state.target.jumps:
        return state.target.jumps[0].host
    return state.address


async def _resolve(state: _HostState) -> None:
    """Inventory names become addresses once, so nmap gets IPs and never resolves itself."""
    assert state.address is not None
    if (ip := addresses.literal(state.address)) is not None:
        state.address = ip
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            state.address, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        state.fail(HostStatus.UNREACHABLE, Stage.CONNECT,
                   f"cannot resolve {state.address}: {exc}")
        state.address = None
        return
    state.address = str(infos[0][4][0])




def _transport_status(exc: TransportError) -> HostStatus:
    if isinstance(exc, HostKeyError):
        return HostStatus.HOST_KEY_REJECTED
    if isinstance(exc, AuthError):
        return HostStatus.AUTH_FAILED
    return HostStatus.UNREACHABLE


class _Parking:
    """How many connections may stay open between collection and the round after the scan.

    An idle SSH connection costs a file descriptor here and an sshd there: past this many,
    a host that needs the last round reconnects instead.
    """

    def __init__(self, slots: int) -> None:
        self.free = max(0, slots)

    def take(self) -> bool:
        if self.free <= 0:
            return False
        self.free -= 1
        return True

    def give(self) -> None:
        self.free += 1


async def _collect(state: _HostState, options: AuditOptions, limit: asyncio.Semaphore,
                   collect_options: CollectOptions, connect: TransportFactory,
                   timeline: Timeline, progress: AuditObserver | None = None
                   ) -> Transport | None:
    """Collect the host; the connection stays open (returned) for the final round.

    `connect` opens the host's transport (the seam for `fleetaudit.testing.fakehost`).
    """
    assert state.address is not None
    async with limit:
        if progress is not None:  # now, not while it waited for its turn
            progress.host_started(state.host.name, state.address)
        started = time.monotonic()
        try:
            transport = await connect(state.host, state.address, options.ssh, state.target)
        except TransportError as exc:
            state.fail(_transport_status(exc), Stage.CONNECT, str(exc))
            if isinstance(exc, HostKeyChangedError):  # also a finding: see policy.rules
                state.host_key_changed = HostKeyChange(
                    offered=exc.offered, recorded=exc.recorded, known_hosts=exc.known_hosts)
            return None
        finally:
            timeline.host_span("collect", "connect", started, time.monotonic())
        try:
            state.internal = await collect_internal(transport, options=collect_options,
                                                    on_listing=state.heard)
        except TransportError as exc:
            await transport.close()
            state.fail(HostStatus.COLLECTION_FAILED, Stage.COLLECT, str(exc))
            return None
        except Exception as exc:  # one host's surprise must not end the run
            await transport.close()
            state.fail(HostStatus.COLLECTION_FAILED, Stage.COLLECT,
                       f"internal error while collecting: {type(exc).__name__}: {exc}")
            return None
    state.heard(state.internal.sockets)  # never leave the scan waiting on round 1
    for message in state.internal.errors:
        state.errors.append(HostError(stage=Stage.COLLECT, message=message))
    gaps = state.internal.coverage.gaps if state.internal.coverage else []
    if gaps:
        # Collected, but not all of it: never counted as audited, nor compliant.
        state.fail(HostStatus.PARTIAL, Stage.COLLECT, "audit incomplete: " + "; ".join(
            f"{gap.source}: {gap.reason}" for gap in gaps)[:2000])
    return transport


async def _audit_host(state: _HostState, options: AuditOptions, limit: asyncio.Semaphore,
                      parking: _Parking, connect: TransportFactory, timeline: Timeline,
                      finish: Callable[[_HostState, _ScanSays | None], None],
                      progress: AuditObserver) -> None:
    """One host from login to its result: collect, wait for its own scan batches (not the
    fleet's), probe what the scan found unexplained, then hand the result on at once."""
    timed = dataclasses.replace(
        _collect_options(state, options),
        on_round=lambda n, start, end: timeline.host_span("collect", f"round {n}", start, end))
    try:
        transport = await _collect(state, options, limit, timed, connect, timeline, progress)
    finally:
        state.heard(None)  # the scan is never left waiting for this host's listing
    progress.host_collected(state.host.name, None if transport is not None else (
        state.errors[0].message if state.errors else "not collected"))
    # A host behind jump hosts is not scanned: no open port to probe after the scan.
    parked = transport is not None and state.scanned and parking.take()
    if transport is not None and not parked:
        await transport.close()
    try:
        says = None
        if state.scan_says is not None:
            waited = time.monotonic()
            says = await asyncio.shield(state.scan_says)
            timeline.host_span("collect", "waiting for its scan", waited, time.monotonic())
        if says is not None and says.external is not None and state.internal is not None:
            started = time.monotonic()
            await _final_round(state, options, limit, _collect_options(state, options),
                               transport if parked else None, says.external, connect)
            timeline.host_span("final", "bind probe and NAT round", started, time.monotonic())
    finally:
        if parked:
            assert transport is not None
            await transport.close()
            parking.give()
    finish(state, says)


def _collect_options(state: _HostState, options: AuditOptions) -> CollectOptions:
    return CollectOptions(timeout=options.command_timeout, become=state.host.become,
                          become_user=state.host.become_user,
                          redact_arguments=options.redact_arguments)


async def _final_round(
    state: _HostState, options: AuditOptions, limit: asyncio.Semaphore,
    collect_options: CollectOptions, transport: Transport | None,
    external: ExternalHost, connect: TransportFactory = connect,
) -> None:
    """Bind probe and NAT rules for the ports the scan found open and no listener explains."""
    assert state.address is not None and state.internal is not None
    if external.status != "up":
        return
    ports = ports_to_probe(state.internal, external, state.address)
    if not ports:
        return
    before = len(state.internal.errors)
    try:
        try:
            if transport is None:
                raise CommandError("connection not kept")
            state.internal = await collect_final(transport, state.internal, ports,
                                                 options=collect_options)
        except CommandError:
            # Not kept, or closed by the host while the scan ran: one fresh connection.
            async with limit, await connect(state.host, state.address, options.ssh,
                                            state.target) as fresh:
                state.internal = await collect_final(fresh, state.internal, ports,
                                                     options=collect_options)
    except TransportError as exc:
        state.errors.append(HostError(
            stage=Stage.COLLECT,
            message=f"bind probe and NAT rules not collected: {exc}"))
        return
    for message in state.internal.errors[before:]:
        state.errors.append(HostError(stage=Stage.COLLECT, message=message))


def scan_settings(options: AuditOptions) -> ScanSettings:
    """The scan plan the options ask for; ConfigError (before anything runs) if wrong."""
    return scan.make_settings(
        options.profile, options.ports, privileged=scan.is_privileged(),
        extra_args=options.nmap_args, batch_size=options.scan_batch_size,
        concurrency=options.scan_concurrency,
        discovery_concurrency=min(options.scan_discovery_concurrency, options.scan_concurrency),
        version_host_timeout=options.version_host_timeout)


async def _scan(targets: list[str], settings: ScanSettings | None, options: AuditOptions,
                imported: scan.FleetScan | None = None,
                listings: dict[str, asyncio.Future[Listing | None]] | None = None,
                on_host: Callable[[str, ExternalHost | None, str | None], None] | None = None,
                timeline: Timeline | None = None,
                on_process_done: Callable[[ProcessResult], None] | None = None,
                progress: AuditObserver | None = None,
                ) -> ScanOutcome:
    if imported is not None:
        return imported.run, imported, None
    if not targets or settings is None:
        return None, None, "nothing to scan"
    started = time.monotonic()
    try:
        fleet = await scan.scan_fleet(targets, settings, nmap_path=options.nmap_path,
                                      listings=listings, on_host=on_host, timeline=timeline,
                                      on_process_done=on_process_done, progress=progress)
    except ScanError as exc:
        if progress is not None:
            progress.scan_done(str(exc))
        return None, None, str(exc)
    finally:
        if timeline is not None:
            timeline.span("scan", "whole scan", started, time.monotonic(), hosts=len(targets))
    if progress is not None:
        progress.scan_done(None)
    return fleet.run, fleet, None


def _listings(states: Sequence[_HostState]) -> dict[str, asyncio.Future[Listing | None]]:
    """One future per scanned address for the scan to widen its port lists with (issue 12):
    each host's own, or the union of the hosts that share an address."""
    loop = asyncio.get_running_loop()
    by_address: dict[str, list[asyncio.Future[Listing | None]]] = {}
    for state in states:
        if state.address and state.scanned:
            state.listing = loop.create_future()
            by_address.setdefault(scan.canonical(state.address), []).append(state.listing)
    return {key: futures[0] if len(futures) == 1 else asyncio.ensure_future(_union(futures))
            for key, futures in by_address.items()}


async def _union(futures: list[asyncio.Future[Listing | None]]) -> Listing | None:
    got = [g for g in await asyncio.gather(*futures) if g is not None]
    return frozenset().union(*got) if got else None


async def _import(targets: list[str], options: AuditOptions) -> scan.FleetScan | None:
    """--nmap-xml: read the reports (ConfigError if one is unusable), never scan."""
    if not targets:
        return None
    defaults: dict[tuple[Proto, int], str] = {}
    try:
        nmap_bin = scan.find_nmap(options.nmap_path)
        defaults = await asyncio.to_thread(scan.load_default_services, nmap_bin)
    except ScanError:
        pass  # without nmap-services, ports just have no default service name
    return await asyncio.to_thread(scan.import_nmap_xml, list(options.nmap_xml), targets,
                                   defaults)


async def _targets(inventory: Inventory, options: AuditOptions, *,
                   resolve: bool = True) -> tuple[list[_HostState], list[str]]:
    """Every host's SSH target; names resolved once (not with `resolve=False`: a dry run
    makes no DNS query); hosts routed off their interface refused; the scan targets."""
    states = [_HostState(host=h) for h in inventory.hosts]
    for state in states:
        _plan(state, options)
    if resolve:
        await asyncio.gather(*(_resolve(s) for s in states if s.scanned and s.address))
    checks = asyncio.Semaphore(16)

    async def guard(state: _HostState) -> None:
        where = _route_address(state)
        if not (state.address and state.host.route_dev):
            return
        if not addresses.is_ip(where):
            if resolve and not state.scanned:
                # The guard asks the kernel about an address; a jump host's name would be
                # resolved by asyncssh, after the check: refuse rather than guess.
                state.fail(HostStatus.UNREACHABLE, Stage.CONNECT,
                           f"refused: fleetaudit_route_dev needs the address of jump host "
                           f"{where}, not a name")
                state.address = None
            return
        assert where is not None and state.host.route_dev is not None
        async with checks:
            try:
                await admit(where, state.host.route_dev)
            except UnsafeTargetError as exc:
                state.fail(HostStatus.UNREACHABLE, Stage.SCAN, f"refused: {exc}")
                state.address = None

    await asyncio.gather(*(guard(s) for s in states))
    return states, sorted({s.address for s in states if s.address and s.scanned})


async def audit_dry_run(inventory: Inventory, options: AuditOptions) -> list[str]:
    """What an audit would run, without running it: no nmap, no SSH, no DNS.

    Routes of literal addresses are checked (a local lookup); names are shown unresolved.
    A ConfigError in the scan options or ssh_config is raised as in a real run.
    """
    settings = None if options.nmap_xml else scan_settings(options)
    states, targets = await _targets(inventory, options, resolve=False)
    lines = [f"# skipped {s.host.name} ({s.host.address}): {s.errors[-1].message}"
             for s in states if s.address is None and s.errors]
    lines += [f"# {s.host.name} ({s.address}): {s.not_scanned}"
              for s in states if s.address and not s.scanned]
    names = [t for t in targets if not addresses.is_ip(t)]
    lines += [f"# {name}: a name, resolved only in a real run, then scanned" for name in names]
    targets = [t for t in targets if addresses.is_ip(t)]
    if settings is None:
        return lines + [f"# no scan: would read {p}" for p in options.nmap_xml]
    if not targets:
        return [*lines, "# nothing to scan" if not names else "# no literal address to scan"]
    return lines + scan.dry_run_lines(targets, settings, options.nmap_path or "nmap")


async def run_audit(
    inventory: Inventory,
    options: AuditOptions,
    on_host_done: Callable[[HostResult], None] | None = None,
    *,
    connect: TransportFactory = connect,
    policy: Policy | None = None,
    today: date | None = None,
    journal: Journal | None = None,
    progress: AuditObserver | None = None,
) -> AuditOutcome:
    """Scan and collect every host at once; each host's failure is its outcome.

    Each host goes on alone: its result is reconciled and judged as soon as its own
    collection and its own scan batches are done, and handed to `on_host_done` then
    (progress, the run's journal), while other hosts still run. The results come back
    judged by `policy` (default: the built-in baseline) as of `today`: findings,
    compliance marks, summaries, so a library caller gets what the CLI reports, and
    `AuditOutcome.exit_code` the CLI's exit code. `connect` opens one host's transport:
    `transport.connect` (SSH, or local), or a test double with its signature
    (`fleetaudit.testing.fakehost.FakeFleet.connect`). `journal` records each host
    as it is done, each nmap process's XML and the scan (report.journal): a run that
    dies keeps them. A journal that cannot be written is said once, and the run goes on.
    `progress` hears of every nmap process and every host as they go (fleetaudit.progress).
    """
    started = datetime.now(UTC)
    timeline = Timeline()
    policy = policy or baseline_policy()
    today = today or date.today()
    with timeline.phase("prepare", "targets, routes and imported scans",
                        hosts=len(inventory.hosts)):
        settings = None if options.nmap_xml else scan_settings(options)  # ConfigError first
        states, targets = await _targets(inventory, options)
        imported = await _import(targets, options) if settings is None else None
    ready = [s for s in states if s.address]
    observer = progress or AuditObserver()
    observer.audit_started(hosts=len(states), scanned=len(targets) if settings else 0,
                           contacted=len(ready))
    limit = asyncio.Semaphore(max(1, options.concurrency))
    loop = asyncio.get_running_loop()
    by_address: dict[str, list[_HostState]] = {}
    for state in ready:
        if state.scanned:
            state.scan_says = loop.create_future()
            by_address.setdefault(scan.canonical(state.address or ""), []).append(state)

    def heard_from_scan(key: str, external: ExternalHost | None, why: str | None) -> None:
        for state in by_address.get(key, []):
            if state.scan_says is not None and not state.scan_says.done():
                state.scan_says.set_result(_ScanSays(external=external, missing=why))

    judged: dict[int, HostResult] = {}
    keep = _Keeper(journal)

    def finish(state: _HostState, says: _ScanSays | None) -> None:
        result = judge_host(_host_result(state, says, imported=imported is not None),
                            policy, today)
        judged[id(state)] = result
        keep(lambda j: j.host(result))
        if on_host_done is not None:
            on_host_done(result)
        observer.host_done(result)

    for state in states:
        if state.address is None:  # not contacted (refused, unresolved): done already
            finish(state, None)

    listings = _listings(ready) if imported is None else None
    def evidence(process: ProcessResult) -> None:
        if process.xml:
            keep(lambda j: j.evidence(process.name, process.xml))

    scan_task = asyncio.create_task(_scan(targets, settings, options, imported, listings,
                                          heard_from_scan, timeline, evidence, observer))
    scan_task.add_done_callback(lambda task: _scan_ended(task, ready, keep))
    parking = _Parking(options.parked_connections)
    collection = asyncio.gather(*(_audit_host(s, options, limit, parking, connect, timeline,
                                              finish, observer) for s in ready))
    try:
        try:
            # Shielded, so a cancel (Ctrl-C, SIGTERM) reaches this frame at once: the scan
            # is stopped first, then the collectors. Unshielded, the cancel waited for every
            # collector, and one that lost it (3.11's wait_for drops a cancel that lands as
            # its awaitable finishes) then waited out the whole scan, nmap running.
            await asyncio.shield(collection)
        except asyncio.CancelledError:
            scan_task.cancel()
            collection.cancel()
            await asyncio.gather(scan_task, collection, return_exceptions=True)
            raise
        scan_run, fleet, _ = await scan_task
    finally:
        if not scan_task.done():
            # Cancelled (Ctrl-C): the scan is a task of its own, so it is stopped here,
            # and waited for, which stops its nmap processes (see scan.scan_fleet).
            scan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scan_task

    with timeline.phase("judge", "fleet summaries", hosts=len(states)):
        audited = AuditResults(tool_version=__version__, inventory=inventory.source,
                               started_at=started, finished_at=datetime.now(UTC),
                               scan=scan_run.model_copy(update={"hosts": []})
                               if scan_run else None,
                               hosts=[judged[id(s)] for s in states])
        # Each host was judged as it finished (judge_host): only the summaries are left.
        results = summarize_judged(audited, policy)
    return AuditOutcome(results=results.model_copy(update={"timings": timeline.timings()}),
                        nmap_xml_files=fleet.evidence if fleet else [])


class _Keeper:
    """The run's journal, if any, written to until it fails once (said, then left)."""

    def __init__(self, journal: Journal | None) -> None:
        self.journal = journal

    def __call__(self, write: Callable[[Journal], None]) -> None:
        if self.journal is None:
            return
        try:
            write(self.journal)
        except JournalError as exc:
            self.journal = None
            say(("warning:", "yellow"), f" {exc}; the audit goes on, but a run stopped "
                "now could not be resumed")


def _scan_ended(task: asyncio.Task[ScanOutcome], states: Sequence[_HostState],
                keep: _Keeper) -> None:
    """Every host still waiting hears the scan's last word: the fleet's view of it, or
    why the whole scan failed. None is left waiting, whatever happened to the scan."""
    if task.cancelled():
        says = _ScanSays(run_error="scan cancelled")
        fleet = None
    elif task.exception() is not None:
        says = _ScanSays(run_error=str(task.exception()))
        fleet = None
    else:
        run, fleet, error = task.result()
        says = _ScanSays(run_error=error or "no scan") if fleet is None else _ScanSays()
        if run is not None:
            keep(lambda j: j.scan(run))
    for state in states:
        if state.scan_says is None or state.scan_says.done():
            continue
        if fleet is None:
            state.scan_says.set_result(says)
            continue
        key = scan.canonical(state.address or "")
        external = fleet.hosts.get(key)
        state.scan_says.set_result(_ScanSays(
            external=external, missing=None if external is not None else fleet.failed.get(
                key, "the scan did not report this host")))


def _host_result(state: _HostState, says: _ScanSays | None, *,
                 imported: bool = False) -> HostResult:
    """`imported`: the outside view came from --nmap-xml, whose port list no listing widened."""
    host = state.host
    if state.address is None:
        return HostResult(name=host.name, address=host.address, groups=host.groups,
                          status=state.status, errors=state.errors)
    external: ExternalHost | None = None
    external_missing = None
    not_scanned = None
    if not state.scanned:
        not_scanned = external_missing = state.not_scanned
        state.fail(HostStatus.SCAN_FAILED, Stage.SCAN, not_scanned)
    elif says is None or says.run_error is not None:
        scan_error = (says.run_error if says is not None else None) or "no scan"
        external_missing = f"scan failed: {scan_error}"
        state.fail(HostStatus.SCAN_FAILED, Stage.SCAN, scan_error)
    elif says.external is None:
        external_missing = says.missing or "the scan did not report this host"
        state.fail(HostStatus.SCAN_FAILED, Stage.SCAN, external_missing)
    elif says.external.status != "up":
        external = says.external
        external_missing = f"host {external.status} in the scan ({external.reason})"
        state.fail(HostStatus.HOST_DOWN, Stage.SCAN, external_missing)
        external = None
    else:
        external = says.external
        # Part of this host's scan is missing (cut short, timed out): the ports that
        # are there still count, but the audit of this host is not complete.
        for message in external.errors:
            state.fail(HostStatus.SCAN_FAILED, Stage.SCAN, message)
    internal_missing = None
    if state.internal is None:
        internal_missing = state.errors[0].message if state.errors else "not collected"
    ports = reconcile_host(external, state.internal, scanned_address=state.address,
                           external_missing=external_missing, internal_missing=internal_missing,
                           not_scanned=not_scanned, imported=imported)
    return HostResult(name=host.name, address=state.address, groups=host.groups,
                      status=state.status, errors=state.errors, ports=ports,
                      internal=state.internal, external=external,
                      host_key_changed=state.host_key_changed)
