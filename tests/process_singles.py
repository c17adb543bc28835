"""Each PID's reads as commands of their own: the reference the batched reads
(`fleetaudit.probes.process_batch`) are checked against, and what the capture scripts
ran on real hosts (tests/fixtures/process/, procbatch/singles.txt). Collection never runs
these: it reads a group of PIDs a command. Kept with the tests, not in the package.

Also the one-variable environment read (`environ_value_probe`), which no collection asks
for: its captures (process/envvalue_*.txt) stay the evidence that a secret-looking value
is cut on the host.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetaudit.batch import Section
from fleetaudit.errors import ParseError
from fleetaudit.models import Model, ProcessInfo, SystemFacts
from fleetaudit.parsers.proc import parse_cmdline, parse_exe_id, parse_exe_link, parse_stat_owner
from fleetaudit.parsers.process import (
    ENV_NAME,
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
from fleetaudit.probes import Probe, _pid

# Names whose value is never worth the risk of carrying: the probe cuts the value on the
# host, and the parser would redact it anyway.
SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|credential|auth|cookie|session|private",
                         re.IGNORECASE)


class EnvVar(Model):
    """One environment variable asked for by name; a secret-looking value is never kept."""

    name: str
    present: bool
    value: str | None = None
    redacted: bool = False



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


def exe_id_probe(pid: int) -> Probe[tuple[int, int] | None]:
    p = _pid(pid)
    return Probe(name=f"exeid.{p}", command=f"stat -L -c '%d %i' /proc/{p}/exe",
                 parse=parse_exe_id)


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


def parse_env_value(text: str, name: str) -> EnvVar:
    """`NAME=value` (newlines inside the value arrive as \\x01) or nothing -> EnvVar.

    Redacted, with the value dropped: a secret-looking name (its value was already cut on
    the host) or a high-entropy value (a key or token under an innocent name).
    """
    line = text[:-1] if text.endswith("\n") else text
    if not line:
        return EnvVar(name=name, present=False)
    prefix = f"{name}="
    if not line.startswith(prefix) or "\n" in line:
        raise ParseError(f"environ value for {name}: not one '{name}=...' line")
    value = line[len(prefix):].replace("\x01", "\n")
    if SECRET_NAME.search(name) or looks_secret(value):
        return EnvVar(name=name, present=True, redacted=True)
    return EnvVar(name=name, present=True, value=value)


def looks_secret(value: str) -> bool:
    """A long run without spaces, mixing character classes with high per-character entropy.

    Tokens, API keys, base64 or hex secrets: >= 16 characters, Shannon entropy >= 3.5
    bits a character (hex tops out at 4). Paths and words fall below: PATH's value has
    many repeats, a sentence has spaces.
    """
    if len(value) < 16 or any(c.isspace() for c in value):
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= 3.5 and not value.startswith("/")


