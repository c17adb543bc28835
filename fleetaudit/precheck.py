"""What can be known wrong before any host is contacted, checked before any is.

An audit of a fleet runs for minutes; a typo in `--out`, a known_hosts file that is not
there, a key file the inventory names wrongly or a missing nmap used to be found after
all of it (every host refused, a scan failed for all, or a report that could not be
written): the work thrown away, or a run to start over. `problems` lists every such
mistake at once, each in one line that names the option or host and the file, and the
audit command stops (exit 2) before it scans or connects anything.

Local reads only: files, folders, `nmap --version`. No DNS, no socket.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from fleetaudit.errors import ConfigError, ScanError
from fleetaudit.host_key_policy import HostKeyPolicy
from fleetaudit.models import Connection, Inventory, InventoryHost
from fleetaudit.ssh_target import SSHTarget, resolve_target
from fleetaudit.terminal import plural

__all__ = ["problems"]

# What `read_vars_beside` reads beside an inventory file: a report there would be read too.
VARS_FOLDERS = ("group_vars", "host_vars")


def problems(inventory: Inventory, *, out_dir: Path, resume: bool,
             inventory_paths: Sequence[Path], known_hosts: Path | None,
             host_key_policy: HostKeyPolicy, ssh_config: Path | None,
             nmap_xml: Sequence[Path], nmap_path: str | None = None) -> list[str]:
    """Every mistake found, one line each; [] when the audit may start."""
    found = _out_problems(out_dir, resume, inventory_paths)
    ssh_hosts = [h for h in inventory.hosts
                 if h.connection is Connection.SSH and not h.unresolved]
    targets: dict[str, SSHTarget] = {}
    for host in ssh_hosts:
        try:
            targets[host.name] = resolve_target(host, ssh_config)
        except ConfigError as exc:  # the same for every host: said once
            if str(exc) not in found:
                found.append(str(exc))
    if ssh_hosts:
        found += _known_hosts_problems(known_hosts, host_key_policy)
    found += _key_problems(ssh_hosts, targets)
    scanned = any(not h.unresolved and (h.connection is not Connection.SSH or (
        h.name in targets and not targets[h.name].jumps)) for h in inventory.hosts)
    if scanned and not nmap_xml:
        found += _nmap_problems(nmap_path)
    return found


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _existing_ancestor(path: Path) -> Path:
    """The nearest of path's folders that exists (what creating `path` writes into)."""
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _out_problems(out_dir: Path, resume: bool, inventory_paths: Sequence[Path]) -> list[str]:
    """`--out` (or `--resume`'s folder): a folder, or one that can be made; writable; its
    parent too (the report is written beside it, then swapped in); not read as inventory."""
    option = "--resume" if resume else "--out"
    out = Path(os.path.realpath(out_dir))
    found = []
    if out.exists() and not out.is_dir():
        found.append(f"{option} {out_dir}: is a file, not a folder")
    elif out.is_dir():
        if not _writable(out):
            found.append(f"{option} {out_dir}: this user cannot write in it")
        elif not resume:
            found += _foreign_files(out, out_dir)
    ancestor = out.parent if out.parent.exists() else _existing_ancestor(out.parent)
    if not ancestor.is_dir():
        found.append(f"{option} {out_dir}: cannot be made: {ancestor} is a file, not a folder")
    elif not _writable(ancestor):
        verb = "made" if not out.exists() else "replaced"
        found.append(f"{option} {out_dir}: cannot be {verb}: this user cannot write in "
                     f"{ancestor} (the report is written beside {out_dir}, then moved in)")
    for source in inventory_paths:
        where = Path(os.path.realpath(source))
        folders = [where] if where.is_dir() else [where.parent / name for name in VARS_FOLDERS]
        for folder in folders:
            if _inside(out, folder):
                what = f"inventory folder {source}" if folder == where else f"folder {folder}"
                found.append(f"{option} {out_dir} is inside the {what}: the next audit of "
                             "that inventory would read the report's files as inventory; "
                             "choose a folder outside it")
    return found


def _foreign_files(out: Path, out_dir: Path) -> list[str]:
    """A folder is replaced whole by the report: only if it holds nothing but a report
    (report.write refuses it at the end, when the audit is done: said here first)."""
    from fleetaudit.errors import ReportWriteError
    from fleetaudit.report.write import _check_replaceable

    try:
        _check_replaceable(out, out_dir)
    except ReportWriteError as exc:
        return [f"--out {exc}"]
    return []


def _known_hosts_problems(known_hosts: Path | None, policy: HostKeyPolicy) -> list[str]:
    """The file given with --known-hosts: every host's key is checked against it."""
    if known_hosts is None or policy is HostKeyPolicy.OFF:
        return []
    if known_hosts.is_dir():
        return [f"--known-hosts {known_hosts}: is a folder, not a known_hosts file"]
    if not known_hosts.exists():
        if policy is HostKeyPolicy.STRICT:
            return [f"--known-hosts {known_hosts}: no such file; under --host-key-policy "
                    "strict every host would be refused (--host-key-policy accept-new "
                    "creates it with the keys of hosts not seen before)"]
        ancestor = _existing_ancestor(Path(os.path.realpath(known_hosts)))
        if not ancestor.is_dir() or not _writable(ancestor):
            return [f"--known-hosts {known_hosts}: no such file, and it cannot be made "
                    f"({ancestor} is not a folder this user can write in)"]
        return []
    return _unreadable("--known-hosts", known_hosts)


def _unreadable(what: str, path: Path) -> list[str]:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        return [f"{what} {path}: cannot be read: {exc.strerror or exc}"]
    return []


def _key_problems(hosts: Iterable[InventoryHost], targets: dict[str, SSHTarget]) -> list[str]:
    """Key files the inventory names (ansible_ssh_private_key_file) must be there and
    readable; ssh_config's IdentityFile may be missing (ssh skips it), not unreadable."""
    users: dict[tuple[str, bool], list[str]] = {}  # (file, required) -> hosts
    for host in hosts:
        target = targets.get(host.name)
        if target is None:
            continue
        for endpoint in (target, *target.jumps):
            if endpoint.key_file:
                users.setdefault((endpoint.key_file, True), []).append(host.name)
            for name in endpoint.identity_files:
                if name != endpoint.key_file:
                    users.setdefault((name, False), []).append(host.name)
    found = []
    for (name, required), names in users.items():
        path = Path(name)
        used = list(dict.fromkeys(names))
        who = ("host " if len(used) == 1 else "hosts ") + ", ".join(used[:3]) + (
            f" and {plural(len(used) - 3, 'other')}" if len(used) > 3 else "")
        origin = "the inventory's key file" if required else "ssh_config's IdentityFile"
        if path.is_dir():
            found.append(f"{origin} {name} ({who}): is a folder, not a key file")
        elif not path.exists():
            if required:
                found.append(f"{origin} {name} ({who}): no such file")
        else:
            found += [f"{line} ({who})" for line in _unreadable(origin, path)]
    return found


def _nmap_problems(nmap_path: str | None) -> list[str]:
    from fleetaudit.scan.nmap_run import check_nmap_version, find_nmap

    try:
        check_nmap_version(find_nmap(nmap_path))
    except ScanError as exc:
        return [f"{exc} (or give scans made elsewhere with --nmap-xml)"]
    return []
