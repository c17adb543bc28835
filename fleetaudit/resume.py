"""A resumed run made whole: the hosts its journal kept, and the ones audited now.

Pure: the journal (fleetaudit.report.journal) is read and written at the edges; this
only decides what the finished run says. Every host is judged again with today's
policy, so a resumed run reads as if it had never stopped, apart from saying so
(`resumed_hosts`) and keeping every nmap process's evidence, each under its own name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from fleetaudit.models import AuditResults, HostResult, Inventory, ScanRun
from fleetaudit.policy import Policy, apply_policy

__all__ = ["merge_resumed", "merge_scans", "unique_evidence"]


def merge_resumed(inventory: Inventory, kept: Mapping[str, HostResult],
                  fresh: AuditResults | None, *, started_at: datetime,
                  earlier_scans: Sequence[ScanRun], policy: Policy, today: date,
                  tool_version: str, finished_at: datetime) -> AuditResults:
    """Hosts in inventory order, each from the journal or from this run, never both."""
    now = {h.name: h for h in fresh.hosts} if fresh is not None else {}
    hosts = [kept[h.name] if h.name in kept else now[h.name]
             for h in inventory.hosts if h.name in kept or h.name in now]
    scans = [*earlier_scans, *([fresh.scan] if fresh is not None and fresh.scan else [])]
    merged = AuditResults(
        tool_version=tool_version, inventory=inventory.source, started_at=started_at,
        finished_at=finished_at, scan=merge_scans(scans), hosts=hosts,
        timings=fresh.timings if fresh is not None else [],
        resumed_hosts=sum(1 for h in inventory.hosts if h.name in kept))
    return apply_policy(merged, policy, today)


def merge_scans(scans: Sequence[ScanRun]) -> ScanRun | None:
    """One ScanRun for the parts of a resumed run: every command, error and file."""
    if not scans:
        return None
    first = scans[0]
    if len(scans) == 1:
        return first
    return first.model_copy(update={
        "finished_at": scans[-1].finished_at,
        "commands": [c for s in scans for c in s.commands],
        "errors": [e for s in scans for e in s.errors],
        "evidence": unique_names([n for s in scans for n in s.evidence]),
        "imported": [f for s in scans for f in s.imported],
        "ignored_hosts": sorted({a for s in scans for a in s.ignored_hosts}),
        "complete": all(s.complete for s in scans),
    })


def unique_evidence(files: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """nmap/<name>.xml for each process of every part: a name met again gets -2, -3..."""
    names = unique_names([name for name, _ in files])
    return [(name, xml) for name, (_, xml) in zip(names, files, strict=True)]


def unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out
