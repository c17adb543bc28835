"""Probes: each read-only command paired with the pure function that parses its output.

The engine (collect) alone runs them. Anything variable put into a command (a PID, a
path read from /proc) is validated or shell-quoted here, because it may come from a
hostile host.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from fleetaudit.batch import BatchCommand, Section
from fleetaudit.models import PackageLookup, Socket
from fleetaudit.parsers.packages import dpkg_pattern, parse_dpkg_search, parse_rpm_qf
from fleetaudit.parsers.proc import parse_cmdline, parse_exe_link, parse_stat_owner
from fleetaudit.parsers.ss import parse_ss
from fleetaudit.parsers.tools import parse_command_v

T = TypeVar("T")

TOOLS = ("ss", "netstat", "lsof", "readlink", "stat", "cat", "dpkg", "rpm")


@dataclass(frozen=True)
class Probe(Generic[T]):
    name: str
    command: str
    parse: Callable[[str], T]

    def batch_command(self) -> BatchCommand:
        return BatchCommand(name=self.name, command=self.command)

    def read(self, section: Section) -> T:
        return self.parse(section.text)


def tools_probe() -> Probe[tuple[list[str], list[str]]]:
    names = " ".join(TOOLS)
    return Probe(
        name="tools",
        command=f'for t in {names}; do command -v "$t"; done; true',
        parse=lambda text: parse_command_v(text, list(TOOLS)),
    )


def ss_probe() -> Probe[list[Socket]]:
    return Probe(name="ss", command="ss -tulpnH", parse=parse_ss)


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


def _quoted(paths: Sequence[str]) -> str:
    for path in paths:
        if not path.startswith("/") or "\n" in path or "\0" in path:
            raise ValueError(f"not an absolute path: {path!r}")
    return " ".join(shlex.quote(p) for p in paths)


def dpkg_owner_probe(paths: Sequence[str]) -> Probe[list[PackageLookup]]:
    wanted = list(paths)
    return Probe(
        name="dpkg",
        # dpkg reports unowned paths on stderr: both streams are evidence here.
        # Escaped, or a path holding '*' or '?' would borrow another file's owner.
        command=f"dpkg -S -- {_quoted([dpkg_pattern(p) for p in wanted])} 2>&1",
        parse=lambda text: parse_dpkg_search(text, wanted),
    )


def rpm_owner_probe(paths: Sequence[str]) -> Probe[list[PackageLookup]]:
    wanted = list(paths)
    fmt = shlex.quote("%{NAME} %{VERSION}-%{RELEASE}\n")
    return Probe(
        name="rpm",
        command=f"rpm -qf --queryformat {fmt} -- {_quoted(wanted)} 2>&1",
        parse=lambda text: parse_rpm_qf(text, wanted),
    )
