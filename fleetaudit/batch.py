"""Many commands in one exec request, and their outputs told apart again.

Every exec request pays a round trip and the remote login shell's start-up, so a host's
commands travel together as one POSIX sh script. Each command's output is framed by
marker lines carrying a per-batch random nonce, so output that happens to contain a
marker (a hostile cmdline, say) cannot be mistaken for a frame.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from fleetaudit.models import Model

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_NONCE = re.compile(r"^[A-Za-z0-9]{8,64}$")


class BatchCommand(Model):
    name: str
    command: str


class Section(Model):
    """One command's output; `exit_status` is None when its end marker never arrived."""

    name: str
    text: str
    exit_status: int | None


def build_script(commands: Sequence[BatchCommand], nonce: str) -> str:
    """A sh script running each command in a subshell, stdin closed, framed by markers."""
    if not _NONCE.match(nonce):
        raise ValueError("nonce must be 8-64 alphanumeric characters")
    # Parsers know the C locale's messages ("no path found"), not their translations.
    lines = ["LC_ALL=C; export LC_ALL"]
    for item in commands:
        if not _NAME.match(item.name):
            raise ValueError(f"bad section name {item.name!r}")
        begin = shlex.quote(f"@@fa-{nonce}:begin:{item.name}")
        end = shlex.quote(f"@@fa-{nonce}:end:{item.name}:")
        lines.append(f"printf '%s\\n' {begin}")
        lines.append(f"( {item.command} ) </dev/null")
        lines.append(f"printf '\\n%s%s\\n' {end} \"$?\"")
    return "\n".join(lines) + "\n"


def split_output(output: str, nonce: str) -> dict[str, Section]:
    """Cut a batch's output back into sections; a section cut short keeps what arrived."""
    marker = re.compile(
        rf"^@@fa-{re.escape(nonce)}:(begin|end):([A-Za-z0-9_.-]+)(?::(-?\d+))?$", re.MULTILINE
    )
    sections: dict[str, Section] = {}
    current: str | None = None
    start = 0
    for match in marker.finditer(output):
        kind, name, status = match.group(1), match.group(2), match.group(3)
        if kind == "begin":
            if current is not None:
                sections[current] = Section(name=current, text=output[start:match.start()],
                                            exit_status=None)
            current, start = name, match.end() + 1
        elif current == name and status is not None:
            # build_script prints a newline before the end marker so it starts a line.
            text = output[start:match.start()]
            sections[name] = Section(name=name, text=text[:-1] if text.endswith("\n") else text,
                                     exit_status=int(status))
            current = None
    if current is not None:
        sections[current] = Section(name=current, text=output[start:], exit_status=None)
    return sections
