"""The fleet scan: discovery batches, then -sV on what each found open, pipelined.

A fleet of a handful of hosts (plan.single_pass) gets one `nmap -sV` per protocol instead.

Each discovery batch (hundreds of hosts, one nmap process) hands its results to its
version batches as soon as it finishes, while other discovery batches still run; the
number of nmap processes at once is bounded per phase. A process that fails affects
its own hosts only: they get a per-host reason, every other host keeps its results.

Given each host's own listing (``listings``: a future per address, resolved by the
orchestrator once the host's first SSH round is in, None if its collection failed), the
version phase adds the ports the listing shows on a non-loopback address and discovery
did not cover; a listing that comes after discovery (or a single pass, or a protocol the
profile does not scan) gets a small -sV pass of its own. UDP ones need root: without
it the host records them as not probed, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fleetaudit.addresses import canonical
from fleetaudit.errors import ParseError, ScanError
from fleetaudit.guard import check_route
from fleetaudit.models import ExternalHost, Proto, ScanRun
from fleetaudit.parsers.nmap import parse_nmap_xml
from fleetaudit.progress import AuditObserver, NmapStep, ScanPhase, open_ports
from fleetaudit.scan import nmap_run
from fleetaudit.scan.command import (
    NmapJob,
    ScanSettings,
    discovery_job,
    ip_version,
    single_job,
    validate_targets,
    version_job,
    version_parallelism,
)
from fleetaudit.scan.plan import (
    Listing,
    ProcessResult,
    VersionBatch,
    combine_hosts,
    inside_batches,
    mark_not_probed,
    merge_version,
    plan_version_batches,
    ports_to_add,
    ports_to_identify,
    single_pass,
    split_batches,
    summarize,
    with_proto,
)
from fleetaudit.timeline import Timeline

__all__ = ["FleetScan", "Listings", "discovery_jobs", "dry_run_lines", "is_privileged",
           "scan_fleet", "scan_jobs"]

# Canonical address -> the host's own listing, once its first SSH round is in; None when
# its collection failed. Every future must be resolved (the orchestrator does, in a
# finally): a scan given listings ends only once each of its hosts' has.
Listings = Mapping[str, "asyncio.Future[Listing | None]"]
UDP_NEEDS_ROOT = "listed inside; UDP probing needs root (raw sockets) and this scan was not"
NO_LISTING = ("only the profile's ports were scanned: the host's own listing is missing "
              "(its collection failed), so ports it listens on beyond them were not probed")


def is_privileged() -> bool:
    """Root may send raw packets: SYN scan (and UDP); anyone else gets a connect scan."""
    return os.geteuid() == 0


@dataclass
class FleetScan:
    """What the fleet scan produced: the run, each host's view, and why some have none."""

    run: ScanRun
    hosts: dict[str, ExternalHost]  # canonical address (see `canonical`) -> merged view
    failed: dict[str, str]  # canonical address -> why it has no external view
    evidence: list[tuple[str, bytes]] = field(default_factory=list)  # (name, raw XML)




def discovery_jobs(targets: Sequence[str], settings: ScanSettings) -> list[NmapJob]:
    """Phase-1 processes: per address family, per batch, one per protocol (TCP first)."""
    return _first_jobs(validate_targets(targets), settings, single=False)


def scan_jobs(targets: Sequence[str], settings: ScanSettings, *,
              steered: bool = False) -> list[NmapJob]:
    """The processes a scan starts with: one `nmap -sV` per protocol and family for a
    handful of hosts (plan.single_pass), the discovery batches otherwise.

    `steered`: the hosts' own listings will add ports. Two phases then win even for a
    handful of hosts (3 lab hosts: 7.9 s against 14.2 s for a single pass followed by
    a pass for the listed ports), since the listed ports join the version phase.
    """
    ips = validate_targets(targets)
    return _first_jobs(ips, settings, single=single_pass(ips, settings) and not steered)


def _first_jobs(ips: list[str], settings: ScanSettings, *, single: bool) -> list[NmapJob]:
    families = [[t for t in ips if ip_version(t) == v] for v in (4, 6)]
    jobs: list[NmapJob] = []
    number = 0
    for family in families:
        for batch in split_batches(family, settings.discovery_batch_size(len(family))):
            number += 1
            for selection in settings.selections:
                proto = selection.proto.value
                if single:
                    jobs.append(single_job(f"{proto}-scan-{number:02d}", batch, selection,
                                           settings))
                else:
                    jobs.append(discovery_job(f"{proto}-discovery-{number:02d}", batch,
                                              selection, settings))
    return jobs


def dry_run_lines(targets: Sequence[str], settings: ScanSettings,
                  nmap_path: str = "nmap", *, steered: bool = True) -> list[str]:
    """The command lines a scan would run: phase 1 exactly, phase 2 as a template.

    Phase 2's targets and ports are what phase 1 finds open, so they cannot be known
    without scanning; its options are shown as they will be. A single-pass scan (a
    handful of hosts) is shown exactly: there is no phase 2.
    """
    lines = [f"# profile {settings.profile.value}: "
             + ", ".join(s.describe() for s in settings.selections)
             + f"; {'SYN' if settings.privileged else 'connect'} scan"
             + (" (not root)" if not settings.privileged else ""),
             "# plus, per host, every port its own listing (ss/netstat, /proc/net, read over "
             "SSH meanwhile) shows on a non-loopback address beyond these: added to its -sV "
             "run, or a small -sV pass per group of hosts with equal lists ("
             + ("UDP ones with -sU -sV" if settings.privileged
                else "UDP ones reported not probed: not root")
             + "); a dry run cannot know them"]
    jobs = scan_jobs(targets, settings, steered=steered)
    if jobs and jobs[0].phase == "single":
        lines.append(f"# {len(validate_targets(targets))} target(s), at most "
                     f"{settings.single_pass_max_hosts} for a single pass: one nmap -sV per "
                     "protocol does discovery and service detection")
        return lines + [shlex.join(job.argv(nmap_path)) for job in jobs]
    lines += [shlex.join(job.argv(nmap_path)) for job in jobs]
    ipv6 = any("-6" in job.args for job in jobs)
    for selection in settings.selections:
        proto = selection.proto
        template = version_job("template", ["192.0.2.1"], proto, [1], settings,
                               probes=version_parallelism(0))
        args = list(template.args)
        for flag, placeholder in (("--min-hostgroup", "<N>"), ("--min-parallelism", "<P>"),
                                  ("--max-parallelism", "<P>")):
            if flag in args:
                args[args.index(flag) + 1] = placeholder
        lines.append(f"# then, per group of N hosts that {proto.value} discovery found with "
                     "open ports (or whose listing adds some): P = those ports, 20 to 256 "
                     "(--max-parallelism P only when P > 100)"
                     + ("; -6 for the IPv6 ones" if ipv6 else ""))
        lines.append(" ".join([shlex.join([nmap_path, "-oX", "-"]), "<hosts>", "-p",
                               "<their-open-and-listed-ports>",
                               *(a if a in ("<N>", "<P>") else shlex.quote(a) for a in args)]))
    return lines


class _Runner:
    def __init__(self, nmap_bin: str, settings: ScanSettings,
                 defaults: asyncio.Future[dict[tuple[Proto, int], str]],
                 timeout: float | None,
                 on_process_done: Callable[[ProcessResult], None] | None,
                 timeline: Timeline | None = None,
                 progress: AuditObserver | None = None) -> None:
        self.nmap_bin = nmap_bin
        self.progress = progress or AuditObserver()
        self.timeline = timeline
        self.defaults = defaults  # nmap-services, read while the first nmap runs
        self.timeout = timeout
        self.on_process_done = on_process_done
        # All processes share one bound; discovery also has its own, lower one (see
        # DEFAULT_DISCOVERY_CONCURRENCY), so -sV of batch 1 runs while batch 2 is discovered.
        self.total = asyncio.Semaphore(settings.concurrency)
        # Threads of our own: nmap runs for minutes, and must not take the default
        # executor's few threads from everyone else's to_thread calls.
        self.pool = ThreadPoolExecutor(max_workers=settings.concurrency,
                                       thread_name_prefix="nmap")
        self.processes = nmap_run.NmapProcesses()
        # TCP discovery sends packets as fast as the path allows; UDP discovery mostly waits
        # out the targets' ICMP rate limits: one does not slow the other, so each protocol
        # has its own discovery bound and a `full` scan runs them side by side.
        bound = min(settings.discovery_concurrency, settings.concurrency)
        self.discovery = {proto: asyncio.Semaphore(bound) for proto in Proto}
        self.order: list[str] = []
        self.results: dict[str, ProcessResult] = {}

    async def run(self, job: NmapJob, probes: int = 0) -> ProcessResult:
        """`probes`: for a -sV process, the (host, port) pairs it identifies (progress)."""
        if job.phase in ("discovery", "single"):
            async with self.discovery[job.proto]:
                return await self._run(job, probes)
        return await self._run(job, probes)

    async def _run(self, job: NmapJob, probes: int) -> ProcessResult:
        async with self.total:
            self.order.append(job.name)
            command = shlex.join(job.argv(self.nmap_bin))
            step = nmap_step(job, command, probes)
            self.progress.nmap_started(step)
            started = time.monotonic()
            try:
                outcome = await asyncio.get_running_loop().run_in_executor(
                    self.pool, nmap_run.run_job, self.nmap_bin, job, self.timeout,
                    self.processes)
            except ScanError as exc:
                result = ProcessResult(job.name, command, None, str(exc), b"")
            else:
                result = self._parse(job, command, outcome, await self.defaults)
            if self.timeline is not None:
                self.timeline.span("scan", job.name, started, time.monotonic(),
                                   hosts=len(job.targets))
        self.results[job.name] = result
        if self.on_process_done is not None:
            self.on_process_done(result)
        self.progress.nmap_done(step, open_ports(result.run), result.failure)
        return result

    def _parse(self, job: NmapJob, command: str, outcome: nmap_run.Outcome,
               defaults: Mapping[tuple[Proto, int], str]) -> ProcessResult:
        stderr = [f"nmap stderr: {line}" for line in outcome.stderr]
        if not outcome.xml.strip():
            why = outcome.failure or "; ".join(outcome.stderr) or "no output"
            return ProcessResult(job.name, command, None, f"nmap produced no XML: {why}", b"")
        try:
            run = parse_nmap_xml(outcome.xml, defaults)
        except ParseError as exc:
            detail = f" (nmap said: {outcome.failure})" if outcome.failure else ""
            return ProcessResult(job.name, command, None,
                                 f"nmap output is not a usable report: {exc}{detail}", outcome.xml)
        if not run.hosts and not run.complete:
            why = "; ".join(run.errors + stderr) or "no reason given"
            return ProcessResult(job.name, command, None,
                                 f"nmap stopped before reporting any host: {why}", outcome.xml)
        run = run.model_copy(update={"errors": run.errors + stderr})
        return ProcessResult(job.name, command, run, None, outcome.xml)


def nmap_step(job: NmapJob, command: str = "", probes: int = 0) -> NmapStep:
    """A process as progress sees it."""
    return NmapStep(name=job.name, phase=ScanPhase(job.phase), proto=job.proto.value,
                    targets=job.targets, ports=probes, command=command)


def _why_missing(job: NmapJob, result: ProcessResult) -> str:
    if result.run is None:
        return f"{job.proto.value} scan failed ({job.name}): {result.failure}"
    if not result.run.complete:
        first = result.run.errors[0] if result.run.errors else "no reason given"
        return (f"the {job.proto.value} scan was cut short before this host "
                f"({job.name}: {first})")
    return f"nmap did not report this host ({job.name})"


async def _version_runs(runner: _Runner, name: str, proto: Proto,
                        batches: Sequence[VersionBatch], settings: ScanSettings,
                        ) -> list[tuple[NmapJob, dict[str, ExternalHost], str | None]]:
    """Run one -sV process per batch, at once: each job, what it saw by canonical
    address, and why it has no (complete) result, if it has none."""
    vjobs = [version_job(f"{name}-{i}", b.targets, proto, b.ports, settings, b.probes)
             for i, b in enumerate(batches, start=1)]
    vresults = await asyncio.gather(*(runner.run(v, b.probes)
                                      for v, b in zip(vjobs, batches, strict=True)))
    runs = []
    for vjob, vresult in zip(vjobs, vresults, strict=True):
        seen = ({canonical(h.address): h for h in vresult.run.hosts}
                if vresult.run is not None else {})
        failure = None if vresult.run is not None and vresult.run.complete else (
            _why_missing(vjob, vresult))
        runs.append((vjob, seen, failure))
    return runs


async def _pipeline(runner: _Runner, job: NmapJob, settings: ScanSettings,
                    views: dict[str, list[ExternalHost]], notes: dict[str, list[str]],
                    listings: Listings | None = None) -> None:
    """One discovery batch, then -sV on what it found open (and on what the hosts' listings
    add); results into `views`. A single-pass job did both: its results go straight in,
    after the inside pass for what the listings add.

    Keys are canonical addresses (nmap drops an IPv6 scope); each host keeps the target
    as given, scope included, so its version scan reaches it the same way.
    """
    # The first selection's pipeline also covers protocols the profile does not scan.
    others: list[Proto] = []
    if job.proto is settings.selections[0].proto:
        scanned = {s.proto for s in settings.selections}
        others = [p for p in Proto if p not in scanned]
    early = (asyncio.create_task(_early_pass(runner, job, settings, listings, others))
             if listings is not None and others and settings.privileged else None)
    try:
        await _discover_and_identify(runner, job, settings, views, notes, listings,
                                     [] if early is not None else others, early)
    finally:
        if early is not None and not early.done():
            early.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await early


async def _discover_and_identify(
        runner: _Runner, job: NmapJob, settings: ScanSettings,
        views: dict[str, list[ExternalHost]], notes: dict[str, list[str]],
        listings: Listings | None, others: list[Proto],
        early: asyncio.Task[list[_Probed]] | None) -> None:
    """`_pipeline` after its early pass started: discovery, -sV, the inside passes of
    `others` (the protocols the early pass does not cover), then the early pass merged."""
    found = await runner.run(job)
    given = {canonical(t): t for t in job.targets}
    hosts: dict[str, ExternalHost] = {}
    if found.run is not None:
        for host in found.run.hosts:
            key = canonical(host.address)
            if key in given:  # nmap reports only what it was given; be sure
                hosts[key] = with_proto(host, job.proto).model_copy(
                    update={"address": given[key]})
    for key in given:
        if key not in hosts:
            notes.setdefault(key, []).append(_why_missing(job, found))
    if job.phase == "single":  # -sV already ran, in the same process
        # Only without listings (scan_jobs: steered scans take two phases), so there is no
        # listed port to add and no early pass.
        assert listings is None and early is None
        for address, host in hosts.items():
            views.setdefault(address, []).append(host)
        return
    tried: dict[str, set[tuple[Proto, int]]] = {key: set() for key in hosts}

    extra: dict[str, frozenset[int]] = {}
    if listings is not None:
        for key, listing in (await _listings_in_time(listings, hosts, settings)).items():
            added = ports_to_add(hosts[key], listing, job.proto)
            if added:
                extra[hosts[key].address] = added
                tried[key] |= {(job.proto, p) for p in added}
    batches = plan_version_batches(hosts.values(), job.proto, settings.batch_size,
                                   settings.union_ports, extra,
                                   alone=settings.inside_per_host)
    name = job.name.replace("discovery", "version")

    async def version_phase() -> None:
        for vjob, seen, failure in await _version_runs(runner, name, job.proto, batches,
                                                       settings):
            for target in vjob.targets:
                key = canonical(target)
                base = hosts[key]
                asked = ports_to_identify(base, job.proto) | extra.get(base.address,
                                                                       frozenset())
                hosts[key] = merge_version(base, seen.get(key), job.proto, asked, failure)

    # The listed ports the version phase does not cover, of a protocol the profile leaves
    # out (UDP in `quick`) or listed after it started, are probed beside it, not after
    # it: UDP -sV waits out each probe (11 s for one port on the lab), and every host of
    # the batch waited for it. The passes touch disjoint ports (`tried`), and each merge
    # into `hosts` is one step, after its process ended.
    await asyncio.gather(
        version_phase(),
        _inside_pass(runner, job, settings, hosts, listings, others, tried),
        _inside_pass(runner, job, settings, hosts, listings, [job.proto], tried))
    await _merge_early(hosts, early)
    for address, host in hosts.items():
        views.setdefault(address, []).append(host)


@dataclass(frozen=True)
class _Probed:
    """What the early pass's -sV said of one host's listed ports of one protocol."""

    key: str
    proto: Proto
    asked: frozenset[int]
    seen: ExternalHost | None
    failure: str | None


async def _early_pass(runner: _Runner, job: NmapJob, settings: ScanSettings,
                      listings: Listings, protos: Sequence[Proto]) -> list[_Probed]:
    """-sV on the listed ports of the protocols the profile leaves out (UDP in `quick`),
    each host's as soon as its listing is in, while discovery runs: no discovery covers
    those ports, so nothing needs to wait for it. At 200 lab hosts the one listed UDP
    port's -sV (11 s) began after TCP discovery (13 s) and ended the run 3 s after
    everything else.

    Waves, one at a time: each takes every listing that came in since the last began, so
    hosts whose listings arrive together share processes, and a wave with nothing to
    probe ends at once. Hosts without a listing are left to the pass after discovery.
    """
    given = {canonical(t): t for t in job.targets}
    probed: list[_Probed] = []
    wave = 0
    number = job.name.rsplit("-", 1)[-1]
    async for ready in _arrivals(listings, [key for key in given if key in listings]):
        for proto in protos:
            wanted: dict[str, frozenset[int]] = {}
            for key in ready:
                listing = _listing(listings[key])
                if listing is not None:
                    unseen = ExternalHost(address=given[key], status="up")
                    if ports := ports_to_add(unseen, listing, proto):
                        wanted[key] = ports
            if not wanted:
                continue
            wave += 1
            name = f"{proto.value}-{_wave_label(wave)}-{number}"
            for key, asked, seen, failure in await _probe_listed(runner, settings, name, proto,
                                                                 wanted, given):
                probed.append(_Probed(key, proto, asked, seen, failure))
    return probed


async def _probe_listed(runner: _Runner, settings: ScanSettings, name: str, proto: Proto,
                        wanted: Mapping[str, frozenset[int]], targets: Mapping[str, str],
                        ) -> list[tuple[str, frozenset[int], ExternalHost | None, str | None]]:
    """-sV of each host's listed `proto` ports (`wanted` by key; `targets`: each key's
    address as scanned), one process per group of equal lists: per host, its key, the
    ports asked, what nmap saw of it and why it has no (complete) result, if so."""
    batches = inside_batches({targets[k]: v for k, v in wanted.items()}, settings.batch_size,
                             alone=settings.inside_per_host)
    said = []
    for vjob, seen, failure in await _version_runs(runner, name, proto, batches, settings):
        for key in map(canonical, vjob.targets):
            said.append((key, wanted[key], seen.get(key), failure))
    return said


async def _arrivals(listings: Listings, keys: Sequence[str]) -> AsyncIterator[list[str]]:
    """`keys` in waves as their listings come in: each wave is every key whose listing is
    in (or that has none to wait for) and was in no earlier wave. The next wave is taken
    once the caller is done with this one, so listings that came meanwhile share it: one
    set of nmap processes for them, not one per listing."""
    waiting = set(keys)
    while waiting:
        ready = sorted(k for k in waiting if k not in listings or listings[k].done())
        if not ready:
            await asyncio.wait([listings[k] for k in waiting],
                               return_when=asyncio.FIRST_COMPLETED)
            continue
        waiting.difference_update(ready)
        yield ready


def _wave_label(wave: int) -> str:
    """Named by the waves that ran a process: udp-inside-01-1, then udp-inside2-01-1."""
    return "inside" if wave == 1 else f"inside{wave}"


async def _merge_early(hosts: dict[str, ExternalHost],
                       early: asyncio.Task[list[_Probed]] | None) -> None:
    """The early pass's findings laid over discovery's hosts (a host discovery did not
    see up keeps none: its scan says why)."""
    if early is None:
        return
    for p in await early:
        if p.key in hosts and hosts[p.key].status == "up":
            hosts[p.key] = merge_version(hosts[p.key], p.seen, p.proto, p.asked, p.failure)


async def _listings_in_time(listings: Listings, hosts: Iterable[str],
                            settings: ScanSettings) -> dict[str, Listing]:
    """The listings of `hosts` that are in, or come within `settings.listing_wait` s."""
    futures = {key: listings[key] for key in hosts if key in listings}
    pending = [f for f in futures.values() if not f.done()]
    if pending:
        await asyncio.wait(pending, timeout=settings.listing_wait)
    return {key: listing for key, f in futures.items()
            if f.done() and (listing := _listing(f)) is not None}


def _listing(future: asyncio.Future[Listing | None] | None) -> Listing | None:
    if future is None or not future.done() or future.cancelled() or future.exception():
        return None
    return future.result()


async def _inside_pass(runner: _Runner, job: NmapJob, settings: ScanSettings,
                       hosts: dict[str, ExternalHost], listings: Listings | None,
                       protos: Sequence[Proto], tried: Mapping[str, set[tuple[Proto, int]]],
                       ) -> None:
    """-sV on the listed ports the scan has not covered yet (a listing that came after the
    version phase started, a single pass, a protocol the profile leaves out), one process
    per group of hosts with equal lists; `hosts` updated in place. A port already tried
    is never asked again (no retry). Waits for every host's listing: see `Listings`.

    In waves as listings come (`_arrivals`): one wave for all made every host wait for
    the last listing of its batch before a slow probe began (200 lab hosts: the one
    listed UDP port's -sV, 11 s, started when the last host's round 1 ended).
    """
    if listings is None or not hosts or not protos:
        return
    wave = 0
    async for ready in _arrivals(listings, list(hosts)):
        if await _inside_wave(runner, job, settings, hosts, listings, protos, tried, ready,
                              _wave_label(wave + 1)):
            wave += 1


async def _inside_wave(runner: _Runner, job: NmapJob, settings: ScanSettings,
                       hosts: dict[str, ExternalHost], listings: Listings,
                       protos: Sequence[Proto], tried: Mapping[str, set[tuple[Proto, int]]],
                       keys: Sequence[str], label: str) -> bool:
    """One wave of `_inside_pass`: `keys`, whose listings are all in; True when it ran
    an nmap process."""
    ran = False
    got: dict[str, Listing] = {}
    for key in keys:
        listing = _listing(listings.get(key))
        if listing is None:
            if (job.proto is settings.selections[0].proto and hosts[key].status == "up"
                    and NO_LISTING not in hosts[key].errors):
                hosts[key] = hosts[key].model_copy(
                    update={"errors": [*hosts[key].errors, NO_LISTING]})
            continue
        got[key] = listing
    number = job.name.rsplit("-", 1)[-1]
    for proto in protos:
        wanted = {key: frozenset(p for p in ports_to_add(hosts[key], listing, proto)
                                 if (proto, p) not in tried[key])
                  for key, listing in got.items()}
        wanted = {k: v for k, v in wanted.items() if v}
        if not wanted:
            continue
        if proto is Proto.UDP and not settings.privileged:
            for key, ports in wanted.items():
                hosts[key] = mark_not_probed(hosts[key], proto, ports, UDP_NEEDS_ROOT)
            continue
        ran = True
        for key, asked, seen, failure in await _probe_listed(
                runner, settings, f"{proto.value}-{label}-{number}", proto, wanted,
                {k: hosts[k].address for k in wanted}):
            tried[key] |= {(proto, p) for p in asked}
            hosts[key] = merge_version(hosts[key], seen, proto, asked, failure)
    return ran


def _outcome(key: str, views: Mapping[str, list[ExternalHost]],
             notes: Mapping[str, list[str]]) -> tuple[ExternalHost | None, str | None]:
    """A host's view merged from every process that covered it, or why it has none."""
    if key not in views:
        return None, "; ".join(notes.get(key, ["not scanned"]))
    host = combine_hosts(views[key])
    extra = [n for n in notes.get(key, []) if n not in host.errors]
    if extra:
        host = host.model_copy(update={"errors": [*host.errors, *extra]})
    return host, None


async def scan_fleet(
    targets: Sequence[str],
    settings: ScanSettings,
    *,
    nmap_path: str | None = None,
    timeout: float | None = None,
    routes: Mapping[str, str] | None = None,
    on_process_done: Callable[[ProcessResult], None] | None = None,
    listings: Listings | None = None,
    on_host: Callable[[str, ExternalHost | None, str | None], None] | None = None,
    timeline: Timeline | None = None,
    progress: AuditObserver | None = None,
) -> FleetScan:
    """Scan every target: discovery batches, then -sV on what is open, as one pipeline
    (or, for a handful of hosts, one `nmap -sV` per protocol: plan.single_pass).

    ``routes`` (address -> interface) is checked with the kernel before any packet is
    sent. Raises NmapNotFoundError (nmap missing or older than 7.0) and
    UnsafeTargetError before scanning; after that, a failing nmap process is recorded
    against its own hosts only. ``timeout`` kills one nmap process (its batch then has
    no results); nmap's own --host-timeout is the gentler bound. ``listings`` (see
    `Listings`) widens each host's scan to the ports its own listing shows.
    ``on_host`` gets each host as soon as every process that covers it is done, while
    other batches still run: (canonical address, its view, or None and why not).
    ``progress`` hears of each nmap process as it starts and ends (fleetaudit.progress).
    """
    ips = validate_targets(targets)
    await asyncio.gather(*(asyncio.to_thread(check_route, address, dev)
                           for address, dev in (routes or {}).items()))
    jobs = scan_jobs(ips, settings, steered=listings is not None)
    nmap_bin = nmap_run.find_nmap(nmap_path)
    await asyncio.to_thread(nmap_run.check_nmap_version, nmap_bin)
    # Only parsing needs nmap-services (~50 ms to read): not worth delaying the first nmap.
    defaults = asyncio.ensure_future(asyncio.to_thread(nmap_run.load_default_services,
                                                       nmap_bin))
    runner = _Runner(nmap_bin, settings, defaults, timeout, on_process_done, timeline,
                     progress)
    runner.progress.scan_planned([nmap_step(job) for job in jobs])
    views: dict[str, list[ExternalHost]] = {}
    notes: dict[str, list[str]] = {}
    waiting = Counter(canonical(t) for job in jobs for t in job.targets)

    async def pipeline(job: NmapJob) -> None:
        await _pipeline(runner, job, settings, views, notes, listings)
        for key in dict.fromkeys(canonical(t) for t in job.targets):
            waiting[key] -= 1
            if waiting[key] == 0 and on_host is not None:
                on_host(key, *_outcome(key, views, notes))

    try:
        await asyncio.gather(*(pipeline(job) for job in jobs))
    finally:
        # Cancelled (Ctrl-C) or failed: no nmap may outlive the scan. Stop every running
        # one and start no other; their threads then end within moments (this blocks the
        # loop that long, so that nothing is left behind when the caller's await ends).
        runner.processes.stop()
        runner.pool.shutdown(wait=True, cancel_futures=True)

    hosts: dict[str, ExternalHost] = {}
    failed: dict[str, str] = {}
    for key in dict.fromkeys(canonical(a) for a in ips):
        host, why = _outcome(key, views, notes)
        if host is None:
            failed[key] = why or "not scanned"
        else:
            hosts[key] = host
    processes = [runner.results[name] for name in runner.order]
    run = summarize(processes, hosts, failed, profile=settings.profile.value,
                    privileged=settings.privileged, scan_type=settings.scan_type)
    evidence = [(p.name, p.xml) for p in processes if p.xml]
    return FleetScan(run=run, hosts=hosts, failed=failed, evidence=evidence)
