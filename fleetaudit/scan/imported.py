"""``--nmap-xml``: scans made elsewhere, read instead of scanning, matched to the inventory.

The files are as hostile as anything nmap wrote about a host we do not control: they go
through the same hardened parser. Matching is by address only (canonical form, IPv6
scope dropped): a host of the inventory absent from every file gets a clear per-host
reason, a host in the files but not in the inventory is ignored and named in
``ScanRun.ignored_hosts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from fleetaudit.addresses import canonical
from fleetaudit.errors import ConfigError, ParseError
from fleetaudit.models import ExternalHost, Proto, ScanRun
from fleetaudit.parsers.nmap import parse_nmap_xml
from fleetaudit.scan.command import validate_targets
from fleetaudit.scan.engine import FleetScan
from fleetaudit.scan.plan import combine_hosts

__all__ = ["MAX_XML_BYTES", "import_nmap_xml"]

MAX_XML_BYTES = 1 << 30  # a 1,000-host -sV report is tens of MB; refuse the absurd


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_XML_BYTES:
            raise ConfigError(f"--nmap-xml {path}: {size} bytes, more than {MAX_XML_BYTES}")
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--nmap-xml {path}: cannot read it: {exc.strerror or exc}") from exc


def import_nmap_xml(
    paths: Sequence[Path],
    targets: Sequence[str],
    default_services: Mapping[tuple[Proto, int], str] | None = None,
) -> FleetScan:
    """Read nmap XML reports and give each target its view, as if fleetaudit had scanned.

    ConfigError when a file cannot be read or is not nmap XML (the user named it). A
    report cut short keeps its finished hosts; a host found in several files is merged
    (for the same port, the later file wins). Evidence is each file's bytes, unchanged.
    """
    if not paths:
        raise ConfigError("--nmap-xml needs at least one file")
    wanted = list(dict.fromkeys(canonical(t) for t in validate_targets(targets)))
    runs: list[tuple[Path, ScanRun, bytes]] = []
    for path in paths:
        data = _read(path)
        try:
            runs.append((path, parse_nmap_xml(data, default_services), data))
        except ParseError as exc:
            raise ConfigError(f"--nmap-xml {path}: {exc}") from exc

    views: dict[str, list[ExternalHost]] = {}
    ignored: list[str] = []
    errors: list[str] = []
    for path, run, _ in runs:
        errors += [f"{path.name}: {e}" for e in run.errors]
        for host in run.hosts:
            address = canonical(host.address)
            if address in wanted:
                views.setdefault(address, []).append(host)
            elif address not in ignored:
                ignored.append(address)

    names = ", ".join(p.name for p in paths)
    cut_short = [p.name for p, r, _ in runs if not r.complete]
    hosts: dict[str, ExternalHost] = {}
    failed: dict[str, str] = {}
    for address in wanted:
        if address in views:
            hosts[address] = combine_hosts(views[address])
            continue
        why = f"not in the supplied nmap XML ({names})"
        if cut_short:
            why += f"; {', '.join(cut_short)} ended early, it may have been cut short there"
        failed[address] = why
    if ignored:
        errors.append(f"{len(ignored)} host(s) in the nmap XML are not in the inventory and "
                      f"were ignored: {', '.join(ignored[:20])}"
                      + (" ..." if len(ignored) > 20 else ""))

    parsed = [r for _, r, _ in runs]
    evidence = [(f"import-{i:02d}-{_safe_stem(p)}", data)
                for i, (p, _, data) in enumerate(runs, start=1)]
    commands = [r.command for r in parsed]
    scan_types = list(dict.fromkeys(t for r in parsed if r.scan_type
                                    for t in r.scan_type.split(",")))
    run = ScanRun(
        command=commands[0],
        nmap_version=next((r.nmap_version for r in parsed if r.nmap_version), None),
        started_at=min((r.started_at for r in parsed if r.started_at), default=None),
        finished_at=max((r.finished_at for r in parsed if r.finished_at), default=None),
        scan_type=",".join(scan_types) or None,
        hosts=[hosts[a] for a in wanted if a in hosts],
        errors=errors,
        complete=not failed and all(r.complete for r in parsed),
        source="import",
        commands=commands,
        evidence=[f"{name}.xml" for name, _ in evidence],
        imported=[str(p) for p in paths],
        ignored_hosts=ignored,
    )
    return FleetScan(run=run, hosts=hosts, failed=failed, evidence=evidence)


def _safe_stem(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in path.stem)[:60]
    return stem or "scan"
