"""Probes: each read-only command paired with the pure function that parses its output.

The engine (collect) alone runs them; the package managers' own probes are in
`fleetaudit.packagers`, one module per manager. Anything variable put into a command (a PID, a
path read from /proc, a package or variable name, a port) is validated or shell-quoted
here, because it may come from a hostile host. Every command is POSIX sh and works
with busybox: no GNU-only options.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fleetaudit.batch import BatchCommand, Section
from fleetaudit.errors import ParseError
from fleetaudit.models import (
    BindResult,
    ProcessInfo,
    Proto,
    Socket,
    SocketOwner,
    SystemFacts,
)
from fleetaudit.parsers.bindprobe import BIND_PERL, BIND_PYTHON, parse_bind_probe
from fleetaudit.parsers.hostfacts import parse_host_facts
from fleetaudit.parsers.nat import NatReading, parse_nat
from fleetaudit.parsers.netstat import parse_netstat
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
    ProcessFacts,
    build_process,
    parse_cgroup,
    parse_cwd_link,
    parse_env_names,
    parse_maps,
    parse_netns_link,
    parse_proc_stat,
    parse_proc_status,
    parse_sha256,
)
from fleetaudit.parsers.ss import parse_ss
from fleetaudit.parsers.tools import parse_command_v

if TYPE_CHECKING:
    from fleetaudit.packagers.base import PackageManager

T = TypeVar("T")

# The probes' own tools, around the package managers' (`internal_tools`). Their order is
# the tools probe's command, which the captured answers (tests/fixtures) are keyed by.
_LISTING_TOOLS = ("ss", "netstat", "busybox", "lsof", "readlink", "stat", "cat", "sha256sum",
                  "openssl")
_OTHER_TOOLS = ("python3", "perl", "iptables-save", "ip6tables-save", "nft", "sudo")


def internal_tools(managers: Sequence[PackageManager]) -> tuple[str, ...]:
    """Tools the internal-view probes can use, for a Coverage report (which ones a host
    lacks): the probes' own, each manager's integrity tools and each manager's own."""
    extra = [t for m in managers for t in m.integrity_tools]
    return tuple(dict.fromkeys((*_LISTING_TOOLS, *extra, "getconf",
                                *(m.tool for m in managers), *_OTHER_TOOLS)))


def __getattr__(name: str) -> tuple[str, ...]:
    """`INTERNAL_TOOLS`, built from `packagers.MANAGERS` on first use: the managers'
    modules build their probes from this one, so importing them at its top is a cycle."""
    if name != "INTERNAL_TOOLS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from fleetaudit.packagers import MANAGERS

    tools = internal_tools(MANAGERS)
    globals()[name] = tools
    return tools


@dataclass(frozen=True)
class Probe(Generic[T]):
    name: str
    command: str
    parse: Callable[[str], T]

    def batch_command(self) -> BatchCommand:
        return BatchCommand(name=self.name, command=self.command)

    def read(self, section: Section) -> T:
        return self.parse(section.text)


def tools_probe(names: Sequence[str]) -> Probe[tuple[list[str], list[str]]]:
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


# How each kind of read about one PID is parsed. The reads of a group of PIDs come back
# cut per PID and kind (`ProcessBatch.sections`), each part as its own file's text.
_PARSE: dict[str, Callable[[str], Any]] = {
    "exe": parse_exe_link, "cmdline": parse_cmdline, "owner": parse_stat_owner,
    "status": parse_proc_status, "stat": parse_proc_stat, "cwd": parse_cwd_link,
    "netns": parse_netns_link, "cgroup": parse_cgroup, "envnames": parse_env_names,
    "exeid": parse_exe_id, "maps": parse_maps,
}
# Read per PID, inline in one command: readlink takes one path on busybox, and cmdline's
# NUL-separated text keeps its exact bytes only through cat.
_OWN_READS = {"exe": "readlink /proc/{pid}/exe", "cmdline": "cat /proc/{pid}/cmdline",
              "cwd": "readlink /proc/{pid}/cwd", "netns": "readlink /proc/{pid}/ns/net"}


def _kinds(*, maps: bool, exe_id: bool) -> tuple[str, ...]:
    """The reads every PID gets, in the order their errors are reported."""
    return ("exe", "cmdline", "owner", "status", "stat", "cwd", "netns", "cgroup", "envnames",
            *(("exeid",) if exe_id else ()), *(("maps",) if maps else ()))


@dataclass(frozen=True)
class ProcessBatch:
    """Every PID's chain, read with few processes: one command per kind of file for a
    group of PIDs (`shared`), and each PID's links and cmdline (`own`).

    Run each of `chunks` as one command (build_inline: no subshell per read), then
    `read(parts, system)` with every part's section by name: each PID's part of each read
    is parsed as that PID's file would be, a read that failed costing only its own fields
    (said in ProcessInfo.errors), never the rest of the evidence.
    """

    pids: list[int]
    kinds: tuple[str, ...]
    shared: list[Probe[dict[Any, str]]]
    chunks: list[list[Probe[Any]]]

    def own(self, pid: int) -> list[Probe[Any]]:
        return [Probe(name=f"{kind}.{pid}", command=command.format(pid=pid),
                      parse=_PARSE[kind]) for kind, command in _OWN_READS.items()]

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

    def build(self, pid: int, sections: Mapping[str, Section],
              system: SystemFacts | None = None, redact: Sequence[str] = ()) -> ProcessInfo:
        """One PID's ProcessInfo from its sections (`sections()`' per-PID dict)."""
        facts = ProcessFacts()
        for kind in self.kinds:
            name = f"{kind}.{pid}"
            section = sections.get(name)
            if section is None:
                facts.errors.append(f"{name}: no output")
                continue
            try:
                facts.values[kind] = _PARSE[kind](section.text)
            except ParseError as exc:
                facts.errors.append(f"{name}: {exc}")
        return build_process(pid, facts, system, redact)

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
                info = self.build(pid, sections[pid], system, redact)
            except ParseError as exc:
                info = ProcessInfo(pid=pid, errors=[str(exc)])
            processes.append(info.model_copy(update={"errors": [*info.errors, *failed]})
                             if failed else info)
            section = sections[pid].get(f"exeid.{pid}")
            try:
                file_id = parse_exe_id(section.text) if section is not None else None
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
    """Every listening PID's chain (exe, cmdline, owner, status, start time, cwd, netns,
    cgroup, environment names, and optionally which file runs and the mapped files), with
    a process per kind of read and group of PIDs, not per read.

    A shared read runs once for a group of PIDs; a parse error in one loses that kind for
    those PIDs (said in each ProcessInfo.errors), never the other kinds. The environment's
    VALUES never leave the host: only the names are matched there.
    """
    wanted = list(dict.fromkeys(_pid(pid) for pid in pids))
    batch = ProcessBatch(pids=wanted, kinds=_kinds(maps=maps, exe_id=exe_id), shared=[],
                         chunks=[])
    # A time-limited command reaches the host as one `sh -c` argument, which Linux caps
    # at 128 KiB; a group's reads stay well under it.
    for n, start in enumerate(range(0, len(wanted), _PIDS_PER_READ)):
        group = wanted[start:start + _PIDS_PER_READ]
        reads = _shared_reads(group, n, maps=maps, exe_id=exe_id)
        batch.shared.extend(reads)
        batch.chunks.append([*reads, *(p for pid in group for p in batch.own(pid))])
    return batch


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
