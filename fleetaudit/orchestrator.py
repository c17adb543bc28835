"""Drives a whole fleet: one nmap scan and every host's collection at the same time.

A host that fails is an outcome (its status and errors), never an exception that ends
the run; only a whole-run problem (nmap missing) is raised, and even then the
internal views already collected are kept.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from fleetaudit import __version__, scanner
from fleetaudit.collect import collect_internal
from fleetaudit.errors import (
    AuthError,
    HostKeyError,
    ScanError,
    TransportError,
    UnsafeTargetError,
)
from fleetaudit.models import (
    AuditResults,
    ExternalHost,
    HostError,
    HostResult,
    HostStatus,
    InternalView,
    Inventory,
    InventoryHost,
    ScanRun,
    Stage,
)
from fleetaudit.reconcile import reconcile_host
from fleetaudit.transport import SSHOptions, connect


class AuditOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    ssh: SSHOptions = SSHOptions()
    concurrency: int = 50
    ports: str | None = None
    command_timeout: float = 120.0


@dataclass
class AuditOutcome:
    results: AuditResults
    nmap_xml: bytes | None = None


@dataclass
class _HostState:
    host: InventoryHost
    address: str | None = None
    errors: list[HostError] = field(default_factory=list)
    status: HostStatus = HostStatus.OK
    internal: InternalView | None = None

    def fail(self, status: HostStatus, stage: Stage, message: str) -> None:
        if self.status is HostStatus.OK:
            self.status = status
        self.errors.append(HostError(stage=stage, message=message))


async def _resolve(state: _HostState) -> None:
    """Inventory names become addresses once, so nmap gets IPs and never resolves itself."""
    try:
        state.address = str(ipaddress.ip_address(state.host.address))
        return
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            state.host.address, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        state.fail(HostStatus.UNREACHABLE, Stage.CONNECT,
                   f"cannot resolve {state.host.address}: {exc}")
        return
    state.address = str(infos[0][4][0])


def _transport_status(exc: TransportError) -> HostStatus:
    if isinstance(exc, HostKeyError):
        return HostStatus.HOST_KEY_REJECTED
    if isinstance(exc, AuthError):
        return HostStatus.AUTH_FAILED
    return HostStatus.UNREACHABLE


async def _collect(state: _HostState, options: AuditOptions, limit: asyncio.Semaphore) -> None:
    assert state.address is not None
    async with limit:
        try:
            transport = await connect(state.host, state.address, options.ssh)
        except TransportError as exc:
            state.fail(_transport_status(exc), Stage.CONNECT, str(exc))
            return
        try:
            async with transport:
                state.internal = await collect_internal(transport,
                                                        timeout=options.command_timeout)
        except TransportError as exc:
            state.fail(HostStatus.COLLECTION_FAILED, Stage.COLLECT, str(exc))
            return
        except Exception as exc:  # one host's surprise must not end the run
            state.fail(HostStatus.COLLECTION_FAILED, Stage.COLLECT,
                       f"internal error while collecting: {type(exc).__name__}: {exc}")
            return
    for message in state.internal.errors:
        state.errors.append(HostError(stage=Stage.COLLECT, message=message))


async def _scan(targets: list[str], options: AuditOptions) -> tuple[ScanRun | None, bytes | None,
                                                                  str | None]:
    if not targets:
        return None, None, "nothing to scan"
    try:
        run, xml = await scanner.scan(targets, ports=options.ports)
    except ScanError as exc:
        return None, None, str(exc)
    return run, xml, None


async def run_audit(
    inventory: Inventory,
    options: AuditOptions,
    on_host_done: Callable[[HostResult], None] | None = None,
) -> AuditOutcome:
    started = datetime.now(UTC)
    states = [_HostState(host=h) for h in inventory.hosts]
    await asyncio.gather(*(_resolve(s) for s in states))

    for state in states:
        if state.address and state.host.route_dev:
            try:
                await asyncio.to_thread(scanner.check_route, state.address, state.host.route_dev)
            except UnsafeTargetError as exc:
                state.fail(HostStatus.UNREACHABLE, Stage.SCAN, f"refused: {exc}")
                state.address = None

    ready = [s for s in states if s.address]
    targets = sorted({s.address for s in ready if s.address})
    limit = asyncio.Semaphore(max(1, options.concurrency))

    scan_task = asyncio.create_task(_scan(targets, options))
    await asyncio.gather(*(_collect(s, options, limit) for s in ready))
    scan_run, xml, scan_error = await scan_task

    scanned = {h.address: h for h in scan_run.hosts} if scan_run else {}
    results = []
    for state in states:
        result = _host_result(state, scanned, scan_run, scan_error)
        results.append(result)
        if on_host_done is not None:
            on_host_done(result)
    return AuditOutcome(
        results=AuditResults(tool_version=__version__, inventory=inventory.source,
                             started_at=started, finished_at=datetime.now(UTC),
                             scan=scan_run.model_copy(update={"hosts": []}) if scan_run else None,
                             hosts=results),
        nmap_xml=xml,
    )


def _host_result(state: _HostState, scanned: dict[str, ExternalHost], scan_run: ScanRun | None,
                 scan_error: str | None) -> HostResult:
    host = state.host
    if state.address is None:
        return HostResult(name=host.name, address=host.address, groups=host.groups,
                          status=state.status, errors=state.errors)
    external = scanned.get(state.address)
    external_missing = None
    if scan_error:
        external_missing = f"scan failed: {scan_error}"
        state.fail(HostStatus.SCAN_FAILED, Stage.SCAN, scan_error)
    elif external is None:
        external_missing = "the scan did not report this host"
        if scan_run is not None and not scan_run.complete:
            external_missing = "the scan was cut short before this host"
        state.fail(HostStatus.SCAN_FAILED, Stage.SCAN, external_missing)
    elif external.status != "up":
        external_missing = f"host {external.status} in the scan ({external.reason})"
        state.fail(HostStatus.HOST_DOWN, Stage.SCAN, external_missing)
        external = None
    internal_missing = None
    if state.internal is None:
        internal_missing = state.errors[0].message if state.errors else "not collected"
    ports = reconcile_host(external, state.internal, scanned_address=state.address,
                           external_missing=external_missing, internal_missing=internal_missing)
    return HostResult(name=host.name, address=state.address, groups=host.groups,
                      status=state.status, errors=state.errors, ports=ports,
                      internal=state.internal, external=external)
