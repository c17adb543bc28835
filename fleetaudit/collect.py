"""What to run on a host to build its internal view, in as few round trips as possible.

Three exec requests per host, each a batch of probes: (1) which tools exist and the
listening sockets; (2) exe, cmdline and owner of every listening PID; (3) the package
that owns each executable. Each round needs the answers of the one before.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from fleetaudit.batch import Section, build_script, split_output
from fleetaudit.errors import ParseError
from fleetaudit.models import InternalView, PackageLookup, PackageOwner, ProcessInfo, Socket
from fleetaudit.parsers.packages import usrmerge_aliases
from fleetaudit.probes import (
    Probe,
    cmdline_probe,
    dpkg_owner_probe,
    exe_probe,
    owner_probe,
    rpm_owner_probe,
    ss_probe,
    tools_probe,
)
from fleetaudit.transport import Transport

MAX_PIDS = 4096


class _Batch:
    """Runs probes together and parses each section, keeping every failure as evidence."""

    def __init__(self, transport: Transport, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self.errors: list[str] = []

    async def run(self, probes: Sequence[Probe[Any]]) -> dict[str, Section]:
        nonce = secrets.token_hex(12)
        script = build_script([p.batch_command() for p in probes], nonce)
        result = await self.transport.run(script, timeout=self.timeout)
        if result.truncated:
            self.errors.append("output cut at the size limit; later sections are missing")
        return split_output(result.stdout.decode("utf-8", errors="replace"), nonce)

    def read(self, probe: Probe[Any], sections: dict[str, Section]) -> Any:
        section = sections.get(probe.name)
        if section is None:
            self.errors.append(f"{probe.name}: no output (`{probe.command}`)")
            return None
        try:
            return probe.read(section)
        except ParseError as exc:
            self.errors.append(f"{probe.name}: {exc}")
            return None


async def collect_internal(transport: Transport, *, timeout: float = 120.0) -> InternalView:
    """Gather listeners, their processes and package owners; raises only TransportError."""
    batch = _Batch(transport, timeout)

    tools, ss = tools_probe(), ss_probe()
    sections = await batch.run([tools, ss])
    present, missing = batch.read(tools, sections) or ([], [])
    sockets: list[Socket] = []
    if "ss" in present:
        sockets = batch.read(ss, sections) or []
        if sections.get("ss") is not None and sections["ss"].exit_status not in (0, None):
            batch.errors.append(f"ss exited with status {sections['ss'].exit_status}")
    else:
        batch.errors.append("ss is not installed: no listener could be listed")

    pids = sorted({owner.pid for s in sockets for owner in s.owners})
    if len(pids) > MAX_PIDS:
        batch.errors.append(f"{len(pids)} listening PIDs; only the first {MAX_PIDS} examined")
        pids = pids[:MAX_PIDS]
    processes = await _processes(batch, pids)
    processes = await _packages(batch, processes, present)
    return InternalView(sockets=sockets, processes=processes, tools=present,
                        missing_tools=missing, errors=batch.errors)


async def _processes(batch: _Batch, pids: list[int]) -> list[ProcessInfo]:
    if not pids:
        return []
    probes = {pid: (exe_probe(pid), cmdline_probe(pid), owner_probe(pid)) for pid in pids}
    sections = await batch.run([p for trio in probes.values() for p in trio])
    processes = []
    for pid, (exe_p, cmdline_p, owner_p) in probes.items():
        exe, deleted = batch.read(exe_p, sections) or (None, False)
        uid, user = batch.read(owner_p, sections) or (None, None)
        errors = [] if exe else ["executable not readable (process gone or not privileged)"]
        processes.append(ProcessInfo(
            pid=pid, exe=exe, exe_deleted=deleted, cmdline=batch.read(cmdline_p, sections) or [],
            uid=uid, user=user, errors=errors,
        ))
    return processes


async def _packages(batch: _Batch, processes: list[ProcessInfo],
                    tools: list[str]) -> list[ProcessInfo]:
    # A path with a newline cannot be asked about safely; it stays "not checked".
    exes = sorted({p.exe for p in processes if p.exe and p.exe.startswith("/")
                   and "\n" not in p.exe})
    if not exes:
        return processes
    if "dpkg" in tools:
        manager, make_probe = "dpkg", dpkg_owner_probe
    elif "rpm" in tools:
        manager, make_probe = "rpm", rpm_owner_probe
    else:
        batch.errors.append("no package manager found (dpkg, rpm): ownership not checked")
        return processes
    queried = sorted({alias for exe in exes for alias in usrmerge_aliases(exe)})
    probe = make_probe(queried)
    lookups: list[PackageLookup] = batch.read(probe, await batch.run([probe])) or []
    by_path = {lookup.path: lookup for lookup in lookups}
    if not lookups:
        return processes

    def owner(exe: str) -> PackageOwner | None:
        for alias in usrmerge_aliases(exe):
            found = by_path.get(alias)
            if found is not None and found.owner is not None:
                return found.owner
        return None

    return [
        p.model_copy(update={"package": owner(p.exe), "package_manager": manager})
        if p.exe in exes else p
        for p in processes
    ]
