"""Drives a whole fleet: the nmap scan and every host's collection at the same time.

A host that fails is an outcome (its status and errors), never an exception that ends
the run; only a whole-run problem (nmap missing) is raised, and even then the
internal views already collected are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

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
from fleetaudit.policy import Policy, apply_policy, baseline_policy, exit_code
from fleetaudit.reconcile import reconcile_host
from fleetaudit.scan.command import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_DISCOVERY_CONCURRENCY,
    DEFAULT_VERSION_HOST_TIMEOUT,
    ScanSettings,
)
from fleetaudit.scan.plan import Listing, inside_ports
from fleetaudit.ssh_target import SSHTarget, resolve_target
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
    try:
        state.address = str(ipaddress.ip_address(state.address))
        return
    except ValueError:
        pass
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
                   parking: _Parking | None = None,
                   scan_task: asyncio.Future[ScanOutcome]
                   | None = None, connect: TransportFactory = connect) -> None:
    """Collect the host, then (once the scan is in) probe its unexplained open ports.

    `connect` opens the host's transport (the seam for `fleetaudit.testing.fakehost`).
    """
    assert state.address is not None
    collect_options = CollectOptions(timeout=options.command_timeout,
                                     become=state.host.become,
                                     become_user=state.host.become_user,
                                     redact_arguments=options.redact_arguments)
    async with limit:
        try:
            transport = await connect(state.host, state.address, options.ssh, state.target)
        except TransportError as exc:
            state.fail(_transport_status(exc), Stage.CONNECT, str(exc))
            if isinstance(exc, HostKeyChangedError):  # also a finding: see policy.rules
                state.host_key_changed = HostKeyChange(
                    offered=exc.offered, recorded=exc.recorded, known_hosts=exc.known_hosts)
            return
        try:
            state.internal = await collect_internal(transport, options=collect_options,
                                                    on_listing=state.heard)
        except TransportError as exc:
            await transport.close()
            state.fail(HostStatus.COLLECTION_FAILED, Stage.COLLECT, str(exc))
            return
        except Exception as exc:  # one host's surprise must not end the run
            await transport.close()
            state.fail(HostStatus.COLLECTION_FAILED, Stage.COLLECT,
                       f"internal error while collecting: {type(exc).__name__}: {exc}")
            return
    state.heard(state.internal.sockets)  # never leave the scan waiting on round 1
    for message in state.internal.errors:
        state.errors.append(HostError(stage=Stage.COLLECT, message=message))
    gaps = state.internal.coverage.gaps if state.internal.coverage else []
    if gaps:
        # Collected, but not all of it: never counted as audited, nor compliant.
        state.fail(HostStatus.PARTIAL, Stage.COLLECT, "audit incomplete: " + "; ".join(
            f"{gap.source}: {gap.reason}" for gap in gaps)[:2000])
    # A host behind jump hosts is not scanned: no open port to probe after the scan.
    after_scan = scan_task if state.scanned else None
    parked = parking is not None and after_scan is not None and parking.take()
    if not parked:
        await transport.close()
    try:
        if after_scan is not None:
            await _final_round(state, options, limit, collect_options,
                               transport if parked else None, after_scan, connect)
    finally:
        if parked:
            await transport.close()
            assert parking is not None
            parking.give()


async def _final_round(
    state: _HostState, options: AuditOptions, limit: asyncio.Semaphore,
    collect_options: CollectOptions, transport: Transport | None,
    scan_task: asyncio.Future[ScanOutcome], connect: TransportFactory = connect,
) -> None:
    """Bind probe and NAT rules for the ports the scan found open and no listener explains."""
    assert state.address is not None and state.internal is not None
    try:
        scan_run = (await asyncio.shield(scan_task))[0]
    except Exception:  # run_audit reports a failed scan; nothing to probe without it
        return
    external = next((h for h in scan_run.hosts if h.address == state.address),
                    None) if scan_run else None
    if external is None or external.status != "up":
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
                ) -> ScanOutcome:
    if imported is not None:
        return imported.run, imported, None
    if not targets or settings is None:
        return None, None, "nothing to scan"
    try:
        fleet = await scan.scan_fleet(targets, settings, nmap_path=options.nmap_path,
                                      listings=listings)
    except ScanError as exc:
        return None, None, str(exc)
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


async def _collect_listed(state: _HostState, *args: Any, **kwargs: Any) -> None:
    """`_collect`, and the scan is told when it ends without a listing (never left waiting)."""
    try:
        await _collect(state, *args, **kwargs)
    finally:
        state.heard(None)


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
) -> AuditOutcome:
    """Scan and collect every host at once; each host's failure is its outcome.

    The results come back judged by `policy` (default: the built-in baseline) as of
    `today`: findings, compliance marks, summaries, so a library caller gets what the
    CLI reports, and `AuditOutcome.exit_code` the CLI's exit code. `on_host_done` sees
    each host as soon as it is reconciled, before judgement (for progress).
    `connect` opens one host's transport: `transport.connect` (SSH, or local), or a
    test double with its signature (`fleetaudit.testing.fakehost.FakeFleet.connect`).
    """
    started = datetime.now(UTC)
    settings = None if options.nmap_xml else scan_settings(options)  # ConfigError first
    states, targets = await _targets(inventory, options)
    ready = [s for s in states if s.address]
    limit = asyncio.Semaphore(max(1, options.concurrency))
    imported = await _import(targets, options) if settings is None else None

    listings = _listings(ready) if imported is None else None
    scan_task = asyncio.create_task(_scan(targets, settings, options, imported, listings))
    parking = _Parking(options.parked_connections)
    collection = asyncio.gather(*(_collect_listed(s, options, limit, parking, scan_task, connect)
                               for s in ready))
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
        scan_run, fleet, scan_error = await scan_task
    finally:
        if not scan_task.done():
            # Cancelled (Ctrl-C): the scan is a task of its own, so it is stopped here,
            # and waited for, which stops its nmap processes (see scan.scan_fleet).
            scan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scan_task

    results = []
    for state in states:
        result = _host_result(state, fleet, scan_error)
        results.append(result)
        if on_host_done is not None:
            on_host_done(result)
    audited = AuditResults(tool_version=__version__, inventory=inventory.source,
                           started_at=started, finished_at=datetime.now(UTC),
                           scan=scan_run.model_copy(update={"hosts": []}) if scan_run else None,
                           hosts=results)
    return AuditOutcome(
        results=apply_policy(audited, policy or baseline_policy(), today or date.today()),
        nmap_xml_files=fleet.evidence if fleet else [],
    )


def _host_result(state: _HostState, fleet: scan.FleetScan | None,
                 scan_error: str | None) -> HostResult:
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
    elif scan_error or fleet is None:
        scan_error = scan_error or "no scan"
        external_missing = f"scan failed: {scan_error}"
        state.fail(HostStatus.SCAN_FAILED, Stage.SCAN, scan_error)
    else:
        address = scan.canonical(state.address)
        external = fleet.hosts.get(address)
        if external is None:
            external_missing = fleet.failed.get(address, "the scan did not report this host")
            state.fail(HostStatus.SCAN_FAILED, Stage.SCAN, external_missing)
        elif external.status != "up":
            external_missing = f"host {external.status} in the scan ({external.reason})"
            state.fail(HostStatus.HOST_DOWN, Stage.SCAN, external_missing)
            external = None
        else:
            # Part of this host's scan is missing (cut short, timed out): the ports that
            # are there still count, but the audit of this host is not complete.
            for message in external.errors:
                state.fail(HostStatus.SCAN_FAILED, Stage.SCAN, message)
    internal_missing = None
    if state.internal is None:
        internal_missing = state.errors[0].message if state.errors else "not collected"
    ports = reconcile_host(external, state.internal, scanned_address=state.address,
                           external_missing=external_missing, internal_missing=internal_missing,
                           not_scanned=not_scanned)
    return HostResult(name=host.name, address=state.address, groups=host.groups,
                      status=state.status, errors=state.errors, ports=ports,
                      internal=state.internal, external=external,
                      host_key_changed=state.host_key_changed)
