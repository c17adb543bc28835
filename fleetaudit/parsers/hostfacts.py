"""The host-facts probe's `key=value` lines to SystemFacts.

Keys: btime (from /proc/stat), clk_tck (getconf CLK_TCK; empty where getconf is
missing: 100, the value on every mainstream Linux port), netns_self and netns_init
(`readlink /proc/{self,1}/ns/net`: PID 1's is refused without root, and inside a
container PID 1 is the container's own init), bindv6only, euid, sudo (`sudo -n true`'s
exit status, or `absent`), and os_ID / os_VERSION_ID from /etc/os-release (values may
be quoted, shell-style).
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime

from fleetaudit.errors import ParseError
from fleetaudit.models import SystemFacts
from fleetaudit.parsers.common import utc_from_unix

_KEYS = {"btime", "clk_tck", "netns_self", "netns_init", "bindv6only", "euid", "sudo",
         "os_ID", "os_VERSION_ID"}
_NETNS = re.compile(r"net:\[\d{1,20}\]")
DEFAULT_CLK_TCK = 100


def parse_host_facts(text: str) -> SystemFacts:
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        key, eq, value = line.partition("=")
        if not eq or key not in _KEYS:
            shown = line if len(line) <= 120 else line[:120] + "..."
            raise ParseError(f"host facts line {lineno}: not a known key=value: {shown!r}")
        values.setdefault(key, value)
    if "btime" not in values and "euid" not in values:
        raise ParseError("host facts: neither btime nor euid (not this probe's output)")
    netns = _netns(values.get("netns_init")) or _netns(values.get("netns_self"))
    return SystemFacts(
        boot_time=_boot_time(values.get("btime")),
        clk_tck=_int(values.get("clk_tck")) or DEFAULT_CLK_TCK,
        netns=netns,
        bindv6only={"0": False, "1": True}.get(values.get("bindv6only", "")),
        euid=_int(values.get("euid")),
        sudo=_sudo(values.get("sudo")),
        os_id=_os_value(values.get("os_ID")),
        os_version_id=_os_value(values.get("os_VERSION_ID")),
    )


def _int(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    return int(value)


def _boot_time(value: str | None) -> datetime | None:
    return utc_from_unix(_int(value))


def _netns(value: str | None) -> str | None:
    return value if value is not None and _NETNS.fullmatch(value) else None


def _sudo(value: str | None) -> bool | None:
    if value is None or value == "absent":
        return None
    status = _int(value)
    return None if status is None else status == 0


def _os_value(value: str | None) -> str | None:
    if not value:
        return None
    try:
        words = shlex.split(value)
    except ValueError:
        return None
    return words[0] if len(words) == 1 and words[0] else None
