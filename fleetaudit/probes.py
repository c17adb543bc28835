"""Probes: each read-only command paired with the pure function that parses its output.

The engine (collect) alone runs them. Anything variable put into a command (a PID, a
path read from /proc, a package or variable name, a port) is validated or shell-quoted
here, because it may come from a hostile host. Every command is POSIX sh and works
with busybox: no GNU-only options.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fleetaudit.batch import BatchCommand, Section
from fleetaudit.errors import ParseError
from fleetaudit.models import (
    BindResult,
    EnvVar,
    IntegrityResult,
    PackageLookup,
    ProcessInfo,
    Proto,
    Socket,
    SocketOwner,
    SystemFacts,
)
from fleetaudit.parsers.bindprobe import BIND_PERL, BIND_PYTHON, parse_bind_probe
from fleetaudit.parsers.hostfacts import parse_host_facts
from fleetaudit.parsers.integrity import (
    DPKG_PACKAGE,
    parse_dpkg_md5,
    parse_pacman_verify,
    parse_rpm_verify,
)
from fleetaudit.parsers.nat import NatReading, parse_nat
from fleetaudit.parsers.netstat import parse_netstat
from fleetaudit.parsers.packages import (
    LISTS_DIVERSIONS,
    LISTS_NO_DATABASE,
    PACMAN_PACKAGE,
    parse_dpkg_lists,
    parse_dpkg_versions,
    parse_pacman_qo,
    parse_rpm_qf,
    usrmerge_aliases,
)
from fleetaudit.parsers.proc import (
    parse_cmdline,
    parse_exe_id,
    parse_exe_link,
    parse_stat_owner,
)
from fleetaudit.parsers.proc_net import parse_fd_map, parse_proc_net
from fleetaudit.parsers.procbatch import (
    parse_env_records,
    parse_maps_paths,
    parse_proc_texts,
    parse_stat_lines,
)
from fleetaudit.parsers.process import (
    ENV_NAME,
    SECRET_NAME,
    ProcessFacts,
    build_process,
    parse_cgroup,
    parse_cwd_link,
    parse_env_names,
    parse_env_value,
    parse_maps,
    parse_netns_link,
    parse_proc_stat,
    parse_proc_status,
    parse_sha256,
)
from fleetaudit.parsers.ss import parse_ss
from fleetaudit.parsers.tools import parse_command_v

T = TypeVar("T")

TOOLS = ("ss", "netstat", "lsof", "readlink", "stat", "cat", "dpkg", "rpm")
# Tools the internal-view probes can use, for a Coverage report: which ones a host lacks.
INTERNAL_TOOLS = ("ss", "netstat", "busybox", "lsof", "readlink", "stat", "cat", "sha256sum",
                  "openssl", "md5sum", "getconf", "dpkg", "rpm", "pacman", "python3", "perl",
                  "iptables-save", "ip6tables-save", "nft", "sudo")


@dataclass(frozen=True)
class Probe(Generic[T]):
    name: str
    command: str
    parse: Callable[[str], T]

    def batch_command(self) -> BatchCommand:
        return BatchCommand(name=self.name, command=self.command)

    def read(self, section: Section) -> T:
        return self.parse(section.text)


def tools_probe(names: Sequence[str] = TOOLS) -> Probe[tuple[list[str], list[str]]]:
    """`command -v` each name (one per call: dash answers only for the first operand)."""
    wanted = list(names)
    for name in wanted:
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            raise ValueError(f"not a tool name: {name!r}")
    return Probe(
        name="tools",
        command=f'for t in {" ".join(wanted)}; do command -v "$t"; done; true',
        parse=lambda text: parse_command_v(text, wanted),
    )


def ss_probe() -> Probe[list[Socket]]:
    return Probe(name="ss", command="ss -tulpnH", parse=parse_ss)


def netstat_probe(*, busybox: bool = False) -> Probe[list[Socket]]:
    """`netstat -tulpn` (net-tools, or busybox's applet): listening sockets, source NETSTAT.

    Tries -W first (net-tools and some busybox builds cut long IPv6 addresses without
    it), then plain -tulpn, then -tuln: Debian's busybox is built without -p, and an
    unknown option fails before printing anything. The parser reads every variant; as
    non-root, net-tools shows `-` for other users' processes (its notice goes to stderr).
    """
    tool = "busybox netstat" if busybox else "netstat"
    command = (f"out=$({tool} -tulpnW 2>/dev/null) && printf '%s\\n' \"$out\" || "
               f"{{ out=$({tool} -tulpn 2>/dev/null) && printf '%s\\n' \"$out\"; }} || "
               f"{tool} -tuln")
    return Probe(name="busybox_netstat" if busybox else "netstat",
                 command=command, parse=parse_netstat)


# /proc/net tables, each after a marker line naming it. The fd map: every socket fd of
# every process as `INODE socket /proc/PID/fd/N` (stat -L reads the socket's own inode,
# and prints only names we built, so no file name a process chose can forge a line; xargs
# keeps the argument list short with any number of fds); then every process's Name
# (status escapes newlines, unlike comm). Measured with ~800 processes: 0.03 s, where a
# sh loop running readlink per fd took 3.3 s (dash and busybox sh alike); still the
# dearest read of a host, so it runs only where no tool named the owners.
_PROC_NET_TABLES = (
    "for f in tcp tcp6 udp udp6; do echo \"== $f\"; cat /proc/net/$f 2>/dev/null; done; "
)
_FD_MAP = (
    "echo '== fd'; "
    "printf '%s\\n' /proc/[0-9]*/fd/* | xargs stat -L -c '%i %F %n' 2>/dev/null "
    "| grep ' socket /proc/'; "
    "echo '== name'; "
    "printf '%s\\n' /proc/[0-9]*/status | xargs grep -H '^Name:' 2>/dev/null; true"
)


def proc_net_probe(*, fd_map: bool = True) -> Probe[list[Socket]]:
    """Listening sockets straight from /proc/net/{tcp,tcp6,udp,udp6}, owners from /proc/*/fd.

    Works where neither ss nor netstat exists (busybox-less containers, minimal images).
    TCP: state 0A (LISTEN). UDP: state 07 with a zero remote address (bound, unconnected).
    Owners are found only for processes whose fds the reader may see (root: all), and
    only with `fd_map`: where ss or netstat named them, `fd_map_probe` later looks up
    just the sockets they left out.
    """
    return Probe(name="proc_net", command=_PROC_NET_TABLES + (_FD_MAP if fd_map else "true"),
                 parse=parse_proc_net)


def fd_map_probe() -> Probe[dict[int, list[SocketOwner]]]:
    """Socket inode -> the processes holding it, for listeners only /proc/net showed."""
    return Probe(name="fd_map", command=_FD_MAP, parse=parse_fd_map)


def _pid(pid: int) -> int:
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**32:
        raise ValueError(f"not a PID: {pid!r}")
    return pid


def exe_probe(pid: int) -> Probe[tuple[str | None, bool]]:
    return Probe(name=f"exe.{_pid(pid)}", command=f"readlink /proc/{pid}/exe",
                 parse=parse_exe_link)


def cmdline_probe(pid: int) -> Probe[list[str]]:
    return Probe(name=f"cmdline.{_pid(pid)}", command=f"cat /proc/{pid}/cmdline",
                 parse=parse_cmdline)


def owner_probe(pid: int) -> Probe[tuple[int | None, str | None]]:
    return Probe(name=f"owner.{_pid(pid)}", command=f"stat -c '%u %U' /proc/{pid}",
                 parse=parse_stat_owner)


@dataclass(frozen=True)
class ProcessProbes:
    """Every probe about one PID, and how to assemble their answers into one ProcessInfo.

    Run `probes` in one batch, then `build(sections, system)`: a probe whose section is
    missing or unreadable leaves its fields empty and says why in ProcessInfo.errors, so
    one unreadable file never loses the rest of the evidence.
    """

    pid: int
    probes: list[Probe[Any]] = field(default_factory=list)

    def build(self, sections: Mapping[str, Section], system: SystemFacts | None = None,
              redact: Sequence[str] = ()) -> ProcessInfo:
        facts = ProcessFacts()
        for probe in self.probes:
            section = sections.get(probe.name)
            if section is None:
                facts.errors.append(f"{probe.name}: no output (`{probe.command}`)")
                continue
            try:
                facts.values[probe.name.partition(".")[0]] = probe.read(section)
            except ParseError as exc:
                facts.errors.append(f"{probe.name}: {exc}")
        return build_process(self.pid, facts, system, redact)


def _environ_records(pid: int) -> str:
    """/proc/PID/environ one record a line: NUL -> newline, and a newline in a value -> \\001."""
    return f"tr '\\n\\0' '\\001\\n' < /proc/{pid}/environ"


_ENV_NAMES_SED = "sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'"


def process_probes(pid: int, *, hash_exe: bool = True, maps: bool = True,
                   exe_id: bool = False) -> ProcessProbes:
    """exe, cmdline, owner, status, start time, cwd, exe sha256, maps, env names, cgroup, netns.

    `hash_exe=False` skips `sha256sum` (the only probe that reads a whole file);
    `exe_id=True` asks which file runs instead, so that collection hashes each file once
    (`exe_hash_probe`). The environment's VALUES never leave the host: `sed` keeps the
    names only, there.
    """
    p = _pid(pid)
    probes: list[Probe[Any]] = [
        exe_probe(p),
        cmdline_probe(p),
        owner_probe(p),
        Probe(name=f"status.{p}", command=f"cat /proc/{p}/status", parse=parse_proc_status),
        Probe(name=f"stat.{p}", command=f"cat /proc/{p}/stat", parse=parse_proc_stat),
        Probe(name=f"cwd.{p}", command=f"readlink /proc/{p}/cwd", parse=parse_cwd_link),
        Probe(name=f"netns.{p}", command=f"readlink /proc/{p}/ns/net", parse=parse_netns_link),
        Probe(name=f"cgroup.{p}", command=f"cat /proc/{p}/cgroup", parse=parse_cgroup),
        # Names only: each NUL-separated record becomes one line (a newline inside a value
        # turned into \001 first, so a value's later lines cannot pass for records), and
        # sed prints only the NAME of records shaped NAME=...; values never leave the host.
        Probe(name=f"envnames.{p}", command=f"{_environ_records(p)} | {_ENV_NAMES_SED}",
              parse=parse_env_names),
    ]
    if hash_exe:
        # Through /proc/PID/exe, so a deleted or replaced binary is hashed as it runs.
        probes.append(Probe(name=f"sha256.{p}", command=f"sha256sum /proc/{p}/exe",
                            parse=parse_sha256))
    if exe_id:
        # Which file runs (device and inode, deleted ones too), so that PIDs running the
        # same one are hashed once, by `exe_hash_probe`.
        probes.append(exe_id_probe(p))
    if maps:
        # Only the path column leaves the host (fields 6+), once per file.
        probes.append(Probe(name=f"maps.{p}",
                            command=f"cut -d' ' -f6- /proc/{p}/maps | sort -u",
                            parse=parse_maps))
    return ProcessProbes(pid=p, probes=probes)


# Read per PID, inline in one command: readlink takes one path on busybox, and cmdline's
# NUL-separated text keeps its exact bytes only through cat.
_OWN_KINDS = ("exe", "cwd", "netns", "cmdline")


@dataclass(frozen=True)
class ProcessBatch:
    """Every PID's chain, read with few processes: one command per kind of file for a
    group of PIDs (`shared`), and each PID's links and cmdline (`own`).

    Run each of `chunks` as one command (build_inline: no subshell per read), then
    `read(parts, system)` with every part's section by name: each PID gets the text its
    own per-file command would have printed, assembled as ProcessProbes does.
    """

    pids: list[int]
    bundles: dict[int, ProcessProbes]
    shared: list[Probe[dict[Any, str]]]
    chunks: list[list[Probe[Any]]]

    def own(self, pid: int) -> list[Probe[Any]]:
        return [p for p in self.bundles[pid].probes if p.name.partition(".")[0] in _OWN_KINDS]

    def sections(self, parts: Mapping[str, Section]) -> tuple[dict[int, dict[str, Section]],
                                                              list[str]]:
        """Per PID, a section for each of its reads, as its own commands would have given;
        and the shared reads that could not be parsed."""
        texts: dict[int, dict[str, str]] = {}
        failed: list[str] = []
        for probe in self.shared:
            section = parts.get(probe.name)
            if section is None:
                continue  # each PID's build says "no output" for that kind
            kind = probe.name.partition(".")[0]
            try:
                read = probe.read(section)
            except ParseError as exc:
                failed.append(f"{probe.name}: {exc}")
                continue
            for key, text in read.items():
                pid, part = key if isinstance(key, tuple) else (key, kind)
                texts.setdefault(pid, {})[part] = text
        out: dict[int, dict[str, Section]] = {}
        for pid in self.pids:
            out[pid] = {p.name: parts[p.name] for p in self.own(pid) if p.name in parts}
            for kind, text in texts.get(pid, {}).items():
                out[pid][f"{kind}.{pid}"] = Section(name=f"{kind}.{pid}", text=text,
                                                    exit_status=0)
        return out, failed

    def read(self, parts: Mapping[str, Section], system: SystemFacts | None,
             redact: Sequence[str] = ()) -> BatchRead:
        """Every PID's ProcessInfo, the PIDs grouped by the file they run (so that each
        file is hashed once; a PID whose file is unknown stands alone), and the shared
        reads that could not be parsed (each PID of them also says so). `redact`: the
        policy's extra secret-argument patterns, for the cmdlines."""
        sections, failed = self.sections(parts)
        processes = []
        groups: dict[tuple[int, int] | int, list[int]] = {}
        for pid in self.pids:
            try:
                info = self.bundles[pid].build(sections[pid], system, redact)
            except ParseError as exc:
                info = ProcessInfo(pid=pid, errors=[str(exc)])
            processes.append(info.model_copy(update={"errors": [*info.errors, *failed]})
                             if failed else info)
            identity = exe_id_probe(pid)
            section = sections[pid].get(identity.name)
            try:
                file_id = identity.read(section) if section is not None else None
            except ParseError:
                file_id = None  # the ProcessInfo's errors already say why
            groups.setdefault(file_id if file_id is not None else pid, []).append(pid)
        return BatchRead(processes=processes, same_file=list(groups.values()), errors=failed)


@dataclass(frozen=True)
class BatchRead:
    processes: list[ProcessInfo]
    same_file: list[list[int]]
    errors: list[str]


def process_batch(pids: Sequence[int], *, maps: bool = True,
                  exe_id: bool = True) -> ProcessBatch:
    """The reads of `process_probes` for many PIDs, with a process per kind, not per read.

    A shared read runs once for a group of PIDs; a parse error in one loses that kind for
    those PIDs (said in each ProcessInfo.errors), never the other kinds.
    """
    wanted = list(dict.fromkeys(_pid(pid) for pid in pids))
    bundles = {pid: process_probes(pid, hash_exe=False, maps=maps, exe_id=exe_id)
               for pid in wanted}
    shared: list[Probe[dict[Any, str]]] = []
    chunks: list[list[Probe[Any]]] = []
    # A time-limited command reaches the host as one `sh -c` argument, which Linux caps
    # at 128 KiB; a group's reads stay well under it.
    for n, start in enumerate(range(0, len(wanted), _PIDS_PER_READ)):
        group = wanted[start:start + _PIDS_PER_READ]
        reads = _shared_reads(group, n, maps=maps, exe_id=exe_id)
        shared += reads
        chunks.append([*reads, *(p for pid in group for p in bundles[pid].probes
                                 if p.name.partition(".")[0] in _OWN_KINDS)])
    return ProcessBatch(pids=wanted, bundles=bundles, shared=shared, chunks=chunks)


_PIDS_PER_READ = 64


def _shared_reads(pids: list[int], n: int, *, maps: bool,
                  exe_id: bool) -> list[Probe[dict[Any, str]]]:
    proc = [f"/proc/{pid}" for pid in pids]
    texts = " ".join(f"{d}/status {d}/stat {d}/cgroup" for d in proc)
    reads: list[Probe[dict[Any, str]]] = [
        Probe(name=f"proctexts.{n}", command=f"grep -aH '' -- {texts} 2>/dev/null; true",
              parse=lambda text: parse_proc_texts(text, pids)),
        Probe(name=f"owner.{n}",
              command=f"stat -c '%n %u %U' -- {' '.join(proc)} 2>/dev/null; true",
              parse=lambda text: parse_stat_lines(text, pids, exe=False)),
        Probe(name=f"envnames.{n}",
              command=("grep -azHo '^[A-Za-z_][A-Za-z0-9_]*=' -- "
                       f"{' '.join(d + '/environ' for d in proc)} 2>/dev/null; true"),
              parse=lambda text: parse_env_records(text, pids)),
    ]
    if exe_id:
        reads.append(Probe(
            name=f"exeid.{n}",
            command=(f"stat -L -c '%n %d %i' -- {' '.join(d + '/exe' for d in proc)} "
                     "2>/dev/null; true"),
            parse=lambda text: parse_stat_lines(text, pids, exe=True)))
    if maps:
        reads.append(Probe(
            name=f"maps.{n}",
            command=(f"grep -Ho ' /.*' -- {' '.join(d + '/maps' for d in proc)} 2>/dev/null "
                     "| sort -u; true"),
            parse=lambda text: parse_maps_paths(text, pids)))
    return reads


def exe_id_probe(pid: int) -> Probe[tuple[int, int] | None]:
    p = _pid(pid)
    return Probe(name=f"exeid.{p}", command=f"stat -L -c '%d %i' /proc/{p}/exe",
                 parse=parse_exe_id)


def exe_hash_probe(pids: Sequence[int]) -> Probe[str | None]:
    """sha256 of one executable that all `pids` run (same device and inode): the first of
    them still running answers, through its /proc/PID/exe.

    openssl where the host has it: its SHA-NI/AVX code hashes a 6.7 MB python in 11 ms
    against sha256sum's 26 ms (a JVM or node binary is ten times that size).
    """
    wanted = [_pid(pid) for pid in pids]
    if not wanted:
        raise ValueError("exe_hash_probe needs at least one PID")
    return Probe(name=f"sha256.{wanted[0]}",
                 command="if command -v openssl >/dev/null 2>&1; then "
                         "h='openssl dgst -sha256 -r'; else h=sha256sum; fi; "
                         f"for p in {' '.join(map(str, wanted))}; do "
                         "$h /proc/$p/exe 2>/dev/null && break; done; true",
                 parse=parse_sha256)


def environ_value_probe(pid: int, name: str) -> Probe[EnvVar]:
    """One environment variable's value, asked for by name; secret-looking values are
    redacted by the parser (key/token/secret/password in the name, or high entropy).

    Only the matching line leaves the host; the name is validated, never quoted into a regex
    the host could misread.
    """
    p = _pid(pid)
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise ValueError(f"not an environment variable name: {name!r}")
    # Secret-looking names: the value is cut on the host; only presence crosses the wire.
    cut = " | sed 's/=.*/=/'" if SECRET_NAME.search(name) else ""
    return Probe(
        name=f"envvalue.{p}.{name}",
        command=f"{_environ_records(p)} | grep -m 1 '^{name}='{cut}",
        parse=lambda text: parse_env_value(text, name),
    )


def _quoted(paths: Sequence[str]) -> str:
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/") or "\n" in path or "\0" in path:
            raise ValueError(f"not an absolute path: {path!r}")
    return " ".join(shlex.quote(p) for p in paths)


_DPKG_INFO = "/var/lib/dpkg/info"
_DIVERSIONS = "/var/lib/dpkg/diversions"


def dpkg_owner_probe(paths: Sequence[str]) -> Probe[list[PackageLookup]]:
    """Owners from the package file lists themselves: one `grep -xF` over info/*.list.

    `dpkg -S` reads the same lists into memory first (~90 ms on a 900-package host,
    against ~20 ms for grep). The paths are fixed strings, whole lines (`-x`): no glob, no
    regex, no partial match. The diversions' own paths are searched too (`-f`), so a
    diverted path is answered as dpkg would; `parse_dpkg_lists` has the rules.
    """
    wanted = list(paths)
    _quoted(wanted)
    patterns = " ".join(f"-e {shlex.quote(path)}" for path in wanted)
    return Probe(
        name="dpkg",
        command=(f"if cd {_DPKG_INFO} 2>/dev/null; then "
                 f"d={_DIVERSIONS}; [ -r \"$d\" ] || d=/dev/null; "
                 f"grep -HxF {patterns} -f \"$d\" -- *.list 2>&1; "
                 f"echo '{LISTS_DIVERSIONS}'; cat \"$d\"; "
                 f"else echo '{LISTS_NO_DATABASE}'; fi"),
        parse=lambda text: parse_dpkg_lists(text, wanted),
    )


def dpkg_version_probe(packages: Sequence[str]) -> Probe[dict[str, str]]:
    """The installed version of each package (the file lists do not say it)."""
    wanted = _package_names(packages, DPKG_PACKAGE, "dpkg")
    return Probe(name="dpkgversion",
                 command="dpkg-query -W -f '${Package}\\t${Version}\\n' -- "
                         f"{' '.join(wanted)} 2>&1",
                 parse=parse_dpkg_versions)


def rpm_owner_probe(paths: Sequence[str]) -> Probe[list[PackageLookup]]:
    wanted = list(paths)
    fmt = shlex.quote("%{NAME} %{VERSION}-%{RELEASE}\n")
    return Probe(
        name="rpm",
        command=f"rpm -qf --queryformat {fmt} -- {_quoted(wanted)} 2>&1",
        parse=lambda text: parse_rpm_qf(text, wanted),
    )


# pacman writes its answers to stdout (buffered, flushed when the buffer fills) and its
# errors to stderr: merged with 2>&1 a buffer flush could split a line. So stdout goes
# straight out (fd 3) and stderr is kept and printed after it; $s is pacman's status.
def _pacman(args: str) -> str:
    return (f"{{ s=0; e=$(pacman {args} 2>&1 >&3) || s=$?; printf '%s\\n' \"$e\"; }} 3>&1")


def pacman_owner_probe(paths: Sequence[str]) -> Probe[list[PackageLookup]]:
    """`pacman -Qo -- PATH...`: owner and version of each path, from the local database."""
    wanted = list(paths)
    return Probe(
        name="pacman",
        command=_pacman(f"-Qo -- {_quoted(wanted)}"),
        parse=lambda text: parse_pacman_qo(text, wanted),
    )


def _package_names(names: Iterable[str], pattern: re.Pattern[str], manager: str) -> list[str]:
    """Each name once, every one checked: it goes into a command line."""
    unique = list(dict.fromkeys(names))
    for name in unique:
        if not isinstance(name, str) or not pattern.fullmatch(name):
            raise ValueError(f"not a {manager} package name: {name!r}")
    return unique


def integrity_probe(manager: str, targets: Mapping[str, str]) -> Probe[list[IntegrityResult]]:
    """Has the package manager's checksum of each executable changed?

    `targets` maps each executable path to what verifies it: its package name for
    "dpkg" (the file's md5 against the package's md5sums, as `dpkg --verify` and debsums
    compare it, without hashing the package's other files), the path itself (or anything: it
    is ignored) for "rpm" (`rpm -Vf --nodeps --noscripts PATH`: a package's
    %verifyscript would run as the auditing user otherwise), its package name for
    "pacman" (`pacman -Qkk PKG`, once per package: its files against the package's mtree,
    checksums included; only the executable's lines are read). The result has one
    IntegrityResult per executable, in `targets`' order: ok, modified (checksum differs),
    missing, or unknown (not verifiable: no checksum, unreadable, package unknown).
    """
    exes = list(targets)
    _quoted(exes)
    if manager == "dpkg":
        _package_names(targets.values(), DPKG_PACKAGE, manager)
        owner = dict(targets)
        # The file's md5 and the lines of its package's md5sums (PKG or PKG:ARCH) that may
        # name it, under either usrmerge spelling; one marker per executable, so each
        # answer is read against its own.
        command = "; ".join(
            f"echo '@@fa-verify {i}'; md5sum -- {shlex.quote(exe)} 2>&1; grep -hF "
            + " ".join(f"-e {shlex.quote('  ' + alias.lstrip('/'))}"
                       for alias in usrmerge_aliases(exe))
            + f" -- {_DPKG_INFO}/{pkg}.md5sums "
            f"{_DPKG_INFO}/{pkg}:*.md5sums 2>/dev/null; echo \"@@fa-status $?\""
            for i, (exe, pkg) in enumerate(owner.items()))
        return Probe(name="integrity", command=command,
                     parse=lambda text: parse_dpkg_md5(text, owner))
    if manager == "rpm":
        command = "; ".join(f"echo '@@fa-verify {i}'; rpm -Vf --nodeps --noscripts -- "
                            f"{shlex.quote(exe)} 2>&1; "
                            f"echo \"@@fa-status $?\"" for i, exe in enumerate(exes))
        return Probe(name="integrity", command=command,
                     parse=lambda text: parse_rpm_verify(text, exes))
    if manager == "pacman":
        packages = _package_names(targets.values(), PACMAN_PACKAGE, manager)
        owned = dict(targets)
        # Each package once, however many of its executables run: -Qkk checks all its files.
        command = "; ".join(f"echo '@@fa-verify {i}'; {_pacman(f'-Qkk -- {pkg}')}; "
                            "echo \"@@fa-status $s\"" for i, pkg in enumerate(packages))
        return Probe(name="integrity", command=command,
                     parse=lambda text: parse_pacman_verify(text, owned))
    raise ValueError(f"no integrity check for package manager {manager!r}")


def _ports(ports: Sequence[tuple[Proto, int]]) -> list[tuple[Proto, int]]:
    checked: list[tuple[Proto, int]] = []
    for item in ports:
        proto, port = item
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ValueError(f"not a port: {port!r}")
        checked.append((Proto(proto), port))
    return list(dict.fromkeys(checked))


def bind_probe(ports: Sequence[tuple[Proto, int]]) -> Probe[list[BindResult]]:
    """Try bind() on 0.0.0.0 and :: (V6ONLY) for each (proto, port), closing at once.

    For ports open from outside that no tool lists: in_use there means a listener is
    hidden. Never listen()s or accept()s. Uses python3, else perl; with neither, every
    port comes back as an error result saying so. TCP sets SO_REUSEADDR so TIME_WAIT
    leftovers do not read as in use (Linux still refuses it next to a listener).
    """
    wanted = _ports(ports)
    spec = " ".join(f"{proto.value}:{port}" for proto, port in wanted)
    command = (
        "if command -v python3 >/dev/null 2>&1; then "
        f"python3 -c {shlex.quote(BIND_PYTHON)} {spec}; "
        "elif command -v perl >/dev/null 2>&1; then "
        f"perl -e {shlex.quote(BIND_PERL)} {spec}; "
        "else echo 'no-interpreter'; fi"
    )
    return Probe(name="bind", command=command,
                 parse=lambda text: parse_bind_probe(text, wanted))


_NAT = (
    "for t in iptables-save ip6tables-save; do "
    "if command -v $t >/dev/null 2>&1; then echo \"@@fa-nat $t\"; $t -t nat 2>&1; fi; done; "
    "if command -v nft >/dev/null 2>&1; then echo '@@fa-nat nft'; nft list ruleset 2>&1; fi; "
    "true"
)


def nat_probe() -> Probe[NatReading]:
    """DNAT/REDIRECT rules per (proto, dport), from iptables-save/ip6tables-save -t nat and
    `nft list ruleset`, whichever exist; needs root (the reading says which tools were
    refused). iptables-nft rules appear in both; the parser keeps one of each."""
    return Probe(name="nat", command=_NAT, parse=parse_nat)


# Shell builtins where a file is read (`read` loops cost no process; each `$(...)` of a
# command costs one); `sudo -n true` only when not root (as root it says nothing and
# costs a sudo start, PAM included).
_HOST_FACTS = (
    "while read -r k v; do if [ \"$k\" = btime ]; then echo \"btime=$v\"; break; fi; "
    "done < /proc/stat; "
    "echo \"clk_tck=$(getconf CLK_TCK 2>/dev/null)\"; "
    "echo \"netns_self=$(readlink /proc/self/ns/net 2>/dev/null)\"; "
    "echo \"netns_init=$(readlink /proc/1/ns/net 2>/dev/null)\"; "
    "v=; read -r v < /proc/sys/net/ipv6/bindv6only 2>/dev/null; echo \"bindv6only=$v\"; "
    "u=; while read -r k r e x; do if [ \"$k\" = Uid: ]; then u=$e; break; fi; "
    "done < /proc/self/status; echo \"euid=$u\"; "
    "if [ \"$u\" = 0 ]; then :; elif command -v sudo >/dev/null 2>&1; then "
    "sudo -n true >/dev/null 2>&1; echo \"sudo=$?\"; else echo 'sudo=absent'; fi; "
    "while IFS= read -r l; do case $l in ID=*|VERSION_ID=*) echo \"os_$l\";; esac; "
    "done < /etc/os-release 2>/dev/null; true"
)


def host_facts_probe() -> Probe[SystemFacts]:
    """Once per host: boot time, CLK_TCK, own netns, bindv6only, euid, sudo -n (not as
    root), OS id.

    Process start times and foreign-namespace checks are read against these.
    """
    return Probe(name="hostfacts", command=_HOST_FACTS, parse=parse_host_facts)
