"""The rest of what /proc says about one process, and the assembly of it all into ProcessInfo.

One function per kind of read `fleetaudit.probes.process_batch` makes of each PID (exe,
cmdline and owner are in `fleetaudit.parsers.proc`), each given that PID's file. A
process may exit between commands, and most of these files are closed to an
unprivileged reader: an empty answer is "not known" (None, or empty), never an error.
Only output of a shape the command never produces raises ParseError.

Everything here can be shaped by the process itself (its name, its title over argv and
environ, its cgroup if delegated, its maps via file names), so it is kept as data.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NoReturn

from fleetaudit.errors import ParseError
from fleetaudit.models import ContainerRef, MappedFile, ProcessInfo, SystemFacts
from fleetaudit.parsers.redact import redact_argv

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DELETED = " (deleted)"
# World-writable places no packaged service runs or maps code from (reconcile flags an
# executable there as SUSPICIOUS_PATH; a mapped file there is flagged here).
SUSPICIOUS_DIRS = ("/tmp/", "/dev/shm/", "/var/tmp/", "/run/shm/")  # noqa: S108
# sha256sum's "HASH  FILE", or openssl dgst -r's "HASH *FILE".
_SHA256 = re.compile(r"(?P<hash>[0-9a-f]{64}) [ *](?P<path>/proc/\d+/exe)")
_NETNS = re.compile(r"net:\[\d{1,20}\]")
_HEX64 = r"[0-9a-f]{64}"
# (runtime, pattern) in the order tried; each names a container id in one cgroup component.
_CONTAINER_PATTERNS = [
    ("docker", re.compile(rf"docker-(?P<id>{_HEX64})\.scope")),
    ("podman", re.compile(rf"libpod-(?:conmon-)?(?P<id>{_HEX64})(?:\.scope)?")),
    ("containerd", re.compile(rf"cri-containerd-(?P<id>{_HEX64})\.scope")),
    ("cri-o", re.compile(rf"crio-(?:conmon-)?(?P<id>{_HEX64})(?:\.scope)?")),
]
# cgroupfs-driver layouts: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>, /lxc/<name>.
_PARENT_RUNTIMES = {"docker": "docker", "kubepods": "kubernetes", "libpod_parent": "podman",
                    "lxc": "lxc", "lxc.payload": "lxc"}


@dataclass(frozen=True)
class ProcStatus:
    """The /proc/PID/status fields the audit uses; `uid` is the real uid."""

    name: str | None
    ppid: int | None
    uid: int | None
    euid: int | None


@dataclass
class ProcessFacts:
    """Parsed answers of one process's probes, keyed by probe kind ("exe", "stat"...)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def parse_proc_status(text: str) -> ProcStatus | None:
    """`cat /proc/PID/status` -> Name, PPid, Uid; None when the process is gone."""
    if not text.strip():
        return None
    fields: dict[str, str] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        key, colon, value = line.partition(":")
        if not colon or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            _fail("/proc/PID/status", lineno, line, "not a 'Key:\\tvalue' line")
        fields.setdefault(key, value.strip("\t "))
    if "Name" not in fields or "PPid" not in fields:
        raise ParseError("/proc/PID/status: no Name or PPid line")
    uids = fields.get("Uid", "").split()
    if not fields["PPid"].isdigit() or (uids and not all(u.isdigit() for u in uids)):
        raise ParseError(f"/proc/PID/status: unreadable PPid/Uid: {fields['PPid'][:20]!r}")
    # The kernel escapes '\n' and '\\' in Name; undo that so names compare with ss's.
    name = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], fields["Name"])
    return ProcStatus(name=name, ppid=int(fields["PPid"]),
                      uid=int(uids[0]) if uids else None,
                      euid=int(uids[1]) if len(uids) > 1 else None)


def parse_proc_stat(text: str) -> int | None:
    """`cat /proc/PID/stat` -> field 22, the start time in clock ticks after boot.

    Field 2 is `(comm)`, and comm may hold spaces and ')': fields are counted from
    the LAST ')'.
    """
    line = text.strip()
    if not line:
        return None
    head, paren, tail = line.rpartition(")")
    if not paren or " (" not in head or not head.partition(" (")[0].isdigit():
        raise ParseError(f"/proc/PID/stat: not 'PID (comm) ...': {_shown(line)}")
    fields = tail.split()
    if len(fields) < 20 or not fields[19].isdigit():
        raise ParseError(f"/proc/PID/stat: no start time in field 22: {_shown(line)}")
    return int(fields[19])


def parse_cwd_link(text: str) -> str | None:
    """`readlink /proc/PID/cwd` -> the path as the kernel gives it (` (deleted)` kept)."""
    path = text[:-1] if text.endswith("\n") else text
    if not path.strip():
        return None
    if not path.startswith("/"):
        raise ParseError(f"readlink cwd output is not an absolute path: {_shown(path)}")
    return path


def parse_netns_link(text: str) -> str | None:
    """`readlink /proc/PID/ns/net` -> `net:[INODE]`; None when refused or gone."""
    link = text.strip()
    if not link:
        return None
    if not _NETNS.fullmatch(link):
        raise ParseError(f"not a network namespace link: {_shown(link)}")
    return link


def parse_cgroup(text: str) -> tuple[str | None, ContainerRef | None]:
    """`cat /proc/PID/cgroup` -> (systemd unit, container).

    The unit comes from the unified (`0::`) line, else from `name=systemd` (cgroup v1),
    and is the innermost `.service` (a user unit keeps its `user@UID.service/` prefix,
    so a user's own "ssh.service" cannot pass for the system's). A container is named by
    the id in its runtime's cgroup naming (docker-ID.scope, libpod-ID, cri-containerd-,
    crio-; /docker/ID, /kubepods/.../ID with cgroupfs). A cgroup namespace shows "/".
    """
    paths: list[tuple[str, str]] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].startswith("/"):
            _fail("/proc/PID/cgroup", lineno, line, "not 'ID:CONTROLLERS:/PATH'")
        paths.append((parts[1], parts[2]))
    systemd = next((p for c, p in paths if c == ""), None)
    if systemd is None:
        systemd = next((p for c, p in paths if c == "name=systemd"), None)
    unit = _unit(systemd) if systemd is not None else None
    container = None
    for _, path in ([("", systemd)] if systemd else []) + paths:
        container = _container(path)
        if container is not None:
            break
    return unit, container


def _unit(path: str) -> str | None:
    parts = [p for p in path.split("/") if p]
    services = [i for i, p in enumerate(parts) if p.endswith(".service")]
    if not services:
        return None
    last = services[-1]
    user = next((i for i in services if parts[i].startswith("user@")), None)
    if user is not None and user != last:
        return "/".join(parts[user:last + 1])
    return parts[last]


def _container(path: str) -> ContainerRef | None:
    parts = [p for p in path.split("/") if p]
    for part in reversed(parts):
        for runtime, pattern in _CONTAINER_PATTERNS:
            match = pattern.fullmatch(part)
            if match is not None:
                return ContainerRef(runtime=runtime, id=match["id"])
    for i, part in enumerate(parts):
        parent = _PARENT_RUNTIMES.get(part.split(".slice")[0]) or (
            "lxc" if part.startswith("lxc.payload.") else None)
        if parent is None:
            continue
        if parent == "lxc":
            name = part[len("lxc.payload."):] if part.startswith("lxc.payload.") else (
                parts[i + 1] if i + 1 < len(parts) else "")
            return ContainerRef(runtime="lxc", id=name) if name else None
        ids = [p for p in parts[i + 1:] if re.fullmatch(_HEX64, p)]
        if ids:
            return ContainerRef(runtime=parent, id=ids[-1])
    return None


def parse_env_names(text: str) -> list[str]:
    """Names printed by the envnames probe, one a line; anything not a name is dropped.

    The probe cuts values on the host and keeps only records that start `NAME=`. What
    still is no name (a process title written over the environ area leaves fragments)
    is dropped here rather than reported.
    """
    names = [sys.intern(line) for line in text.split("\n") if ENV_NAME.fullmatch(line)]
    return list(dict.fromkeys(names))


def parse_sha256(text: str) -> str | None:
    """`sha256sum /proc/PID/exe` or `openssl dgst -sha256 -r` of it -> the hex digest; None
    when refused (the message went to stderr)."""
    line = text.strip()
    if not line:
        return None
    match = _SHA256.fullmatch(line)
    if match is None:
        raise ParseError(f"not a sha256sum line for /proc/PID/exe: {_shown(line)}")
    return match["hash"]


def parse_maps(text: str) -> list[MappedFile]:
    """Path column of /proc/PID/maps (one a line, sorted unique) -> the mapped files.

    Anonymous mappings and kernel ones (`[heap]`, `[vdso]`) are skipped. The kernel
    escapes a newline in a path as `\\012`. A file is suspicious when it is deleted,
    a memfd (code never on disk), under /tmp, /dev/shm or /var/tmp, or in a hidden
    directory.
    """
    files: dict[str, MappedFile] = {}
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.lstrip(" ")
        if not line or line.startswith("["):
            continue
        if not line.startswith("/"):
            _fail("/proc/PID/maps", lineno, raw, "path column is not absolute")
        if line not in files:
            files[line] = _mapped_file(line)
    return list(files.values())


@lru_cache(maxsize=16384)
def _mapped_file(line: str) -> MappedFile:
    """One MappedFile per distinct maps line, shared by every process that maps it (it is
    frozen): a fleet's processes map the same few libraries, and 30 copies per host were
    a fifth of a 5,000-host run's memory. Bounded, so a host's hostile names cannot grow it."""
    deleted = line.endswith(_DELETED)
    path = line[: -len(_DELETED)] if deleted else line
    return MappedFile(path=path, deleted=deleted, suspicious=_why_suspicious(path, deleted))


def _why_suspicious(path: str, deleted: bool) -> str | None:
    if path.startswith("/memfd:"):
        return "memfd: code mapped from memory, never from a file on disk"
    if deleted:
        return "deleted since it was mapped"
    for directory in SUSPICIOUS_DIRS:
        if path.startswith(directory):
            return f"under {directory.rstrip('/')}"
    hidden = [part for part in path.split("/")[1:-1] if part.startswith(".")]
    if hidden:
        return f"in a hidden directory ({hidden[0]})"
    return None


def build_process(pid: int, facts: ProcessFacts, system: SystemFacts | None,
                  redact: Sequence[str] = ()) -> ProcessInfo:
    """All of one process's parsed answers as one ProcessInfo; gaps are said in `errors`.

    The cmdline's secret values are redacted here, before anything stores or shows it
    (`fleetaudit.parsers.redact`; `redact`: the policy's extra name patterns).
    """
    values, errors = facts.values, list(facts.errors)
    exe, deleted = values.get("exe") or (None, False)
    uid, user = values.get("owner") or (None, None)
    status: ProcStatus | None = values.get("status")
    if status is not None and uid is None:
        uid = status.uid
    if not exe:
        errors.append("executable not readable (process gone or not privileged)")
    unit, container = values.get("cgroup") or (None, None)
    netns: str | None = values.get("netns")
    host_netns = system.netns if system is not None else None
    fields: dict[str, Any] = dict(
        pid=pid, exe=exe, exe_deleted=deleted,
        cmdline=redact_argv(values.get("cmdline") or [], redact),
        uid=uid, user=user, errors=errors,
        name=status.name if status else None, ppid=status.ppid if status else None,
        started_at=_started_at(values.get("stat"), system),
        cwd=values.get("cwd"), sha256=values.get("sha256"),
        libraries=values.get("maps") or [], env_names=values.get("envnames") or [],
        systemd_unit=unit, container=container, netns=netns,
        foreign_netns=netns is not None and host_netns is not None and netns != host_netns,
    )
    # Only the fields found (the same values: the others are their defaults). pydantic
    # keeps, per instance, the set of field names it was given: 2.2 KB with all 21, more
    # than the rest of the process's model; 0.7 KB with the dozen a process usually has.
    return ProcessInfo(**{k: v for k, v in fields.items()
                          if v is not None and v is not False and v != []})


def _started_at(ticks: int | None, system: SystemFacts | None) -> datetime | None:
    if ticks is None or system is None or system.boot_time is None or system.clk_tck <= 0:
        return None
    return (system.boot_time + timedelta(seconds=ticks / system.clk_tck)).astimezone(UTC)


def _shown(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _fail(what: str, lineno: int, line: str, why: str) -> NoReturn:
    raise ParseError(f"{what} line {lineno}: {why}: {_shown(line)}")
