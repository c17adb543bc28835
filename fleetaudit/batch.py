"""Many commands in one exec request, and their outputs told apart again.

Every exec request pays a round trip and the remote login shell's start-up, so a host's
commands travel together as one POSIX sh script. Each command's output is framed by
marker lines carrying a per-batch random nonce, so output that happens to contain a
marker (a hostile cmdline, say) cannot be mistaken for a frame.

A command may carry its own limits, so one hung or runaway command costs its own section,
not the whole batch: `timeout` (seconds, through the host's `timeout`, GNU or busybox, when
it has one) and `max_output` (bytes, through `head -c`: the command gets SIGPIPE past it).
Either limit leaves the section without its end marker: `exit_status` None.
`only_if` is a shell condition: when false, the command runs not and has no section.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Sequence

from fleetaudit.models import Model

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_NONCE = re.compile(r"^[A-Za-z0-9]{8,64}$")
# A marker line after its `@@fa-NONCE:` prefix (checked apart): one pattern for every
# stream, where one compiled per nonce cost 9% of the controller's CPU at 5,000 hosts.
_MARKER_REST = re.compile(rb"(begin|end):([A-Za-z0-9_.-]+)(?::(-?\d+))?$")
_NEWLINE = ord("\n")
_MARKER_TAIL = re.compile(r"(begin|end):([A-Za-z0-9_.-]+)(?::(-?\d+))?$", re.MULTILINE)
# Exit status of GNU timeout and busybox >= 1.30 when the limit struck.
TIMED_OUT = 124

# Defined once per script, only when some command needs them. `timeout` has two dialects:
# `timeout SECS PROG` (GNU, busybox >= 1.30) and `timeout -t SECS PROG` (older busybox);
# a host with neither runs the command unbounded. `head -c` is not POSIX: without it the
# output is uncapped (the transport's own cap still holds).
_HELPERS_TIMEOUT = """\
if timeout 5 true >/dev/null 2>&1; then fa_timeout() { timeout "$@"; }
elif timeout -t 5 true >/dev/null 2>&1; then
  fa_timeout() { fa_s=$1; shift; timeout -t "$fa_s" "$@"; }
else fa_timeout() { shift; "$@"; }; fi"""
_HELPERS_CAP = """\
if printf 'ab' | head -c 1 >/dev/null 2>&1; then fa_cap() { head -c "$1"; }
else fa_cap() { cat; }; fi"""


class BatchCommand(Model):
    name: str
    command: str
    timeout: int | None = None
    max_output: int | None = None
    only_if: str | None = None


class Section(Model):
    """One command's output; `exit_status` is None when its end marker never arrived."""

    name: str
    text: str
    exit_status: int | None


def build_script(commands: Sequence[BatchCommand], nonce: str, *,
                 helpers: bool | None = None) -> str:
    """A sh script running each command in a subshell, stdin closed, framed by markers.

    `helpers`: None defines the limit helpers this script's commands use; True defines
    both (the first script of a shell that will read more); False defines none, an
    earlier script in the same shell did (probing for `timeout` and `head -c` costs four
    processes a script).
    """
    if not _NONCE.match(nonce):
        raise ValueError("nonce must be 8-64 alphanumeric characters")
    # Parsers know the C locale's messages ("no path found"), not their translations. An
    # unprivileged login's PATH often lacks the sbin directories (where RHEL keeps ss).
    lines = ["LC_ALL=C; export LC_ALL",
             'PATH="${PATH:-/usr/bin:/bin}:/usr/sbin:/sbin"; export PATH']
    if helpers or (helpers is None and any(c.timeout is not None for c in commands)):
        lines.append(_HELPERS_TIMEOUT)
    if helpers or (helpers is None and any(c.max_output is not None for c in commands)):
        lines.append(_HELPERS_CAP)
    for item in commands:
        if not _NAME.match(item.name):
            raise ValueError(f"bad section name {item.name!r}")
        if item.timeout is not None and not 0 < item.timeout <= 86400:
            raise ValueError(f"{item.name}: timeout must be 1..86400 seconds")
        if item.max_output is not None and item.max_output <= 0:
            raise ValueError(f"{item.name}: max_output must be positive")
        lines.extend(_framed(item, nonce))
    return "\n".join(lines) + "\n"


def _framed(item: BatchCommand, nonce: str) -> list[str]:
    # A newline before each marker: a section cut mid-line must not hide the next one.
    begin = shlex.quote(f"@@fa-{nonce}:begin:{item.name}")
    end = shlex.quote(f"@@fa-{nonce}:end:{item.name}:")
    command = item.command
    if item.timeout is not None:
        command = f"fa_timeout {item.timeout} sh -c {shlex.quote(command)}"
    run = f"( {command} ) </dev/null; printf '\\n%s%s\\n' {end} \"$?\""
    if item.max_output is not None:
        # The end marker goes through the cap too: cut output never claims to be complete.
        run = f"{{ {run}; }} | fa_cap {item.max_output}"
    body = [f"printf '\\n%s\\n' {begin}", run]
    if item.only_if is not None:
        return [f"if {item.only_if}; then", *body, "fi"]
    return body


def build_inline(commands: Sequence[BatchCommand], nonce: str) -> str:
    """Commands framed as build_script frames them, run one after the other in the
    calling shell: no subshell each, so no fork each (a subshell costs as much as the
    small /proc read it wraps). For fixed commands that leave the shell's state alone
    (no cd, exit, set or variables); no per-command limits: the caller's command, which
    this becomes, carries them. `split_output(text, nonce)` cuts its output apart.
    """
    if not _NONCE.match(nonce):
        raise ValueError("nonce must be 8-64 alphanumeric characters")
    lines = []
    for item in commands:
        if not _NAME.match(item.name):
            raise ValueError(f"bad section name {item.name!r}")
        if item.timeout is not None or item.max_output is not None or item.only_if:
            raise ValueError(f"{item.name}: inline commands take no limits or conditions")
        begin = shlex.quote(f"@@fa-{nonce}:begin:{item.name}")
        end = shlex.quote(f"@@fa-{nonce}:end:{item.name}:")
        lines += [f"printf '\\n%s\\n' {begin}",
                  f"{{ {item.command}\n}} </dev/null; printf '\\n%s%s\\n' {end} \"$?\""]
    return "\n".join(lines)


def split_output(output: str, nonce: str) -> dict[str, Section]:
    """Cut a batch's output back into sections; a section cut short keeps what arrived."""
    sections: dict[str, Section] = {}
    current: str | None = None
    start = 0
    for at, match in _markers(output, nonce):
        kind, name, status = match.group(1), match.group(2), match.group(3)
        if kind == "begin":
            if current is not None:
                # Drop the newline build_script prints before the next begin marker.
                text = output[start:at]
                sections[current] = Section(name=current, text=text.removesuffix("\n"),
                                            exit_status=None)
            current, start = name, match.end() + 1
        elif current == name and status is not None:
            # build_script prints a newline before the end marker so it starts a line.
            text = output[start:at]
            sections[name] = Section(name=name, text=text.removesuffix("\n"),
                                     exit_status=int(status))
            current = None
    if current is not None:
        sections[current] = Section(name=current, text=output[start:], exit_status=None)
    return sections


def _markers(output: str, nonce: str) -> Iterator[tuple[int, re.Match[str]]]:
    """Where each line holding one of this batch's markers starts, and the marker after
    its `@@fa-NONCE:`. The prefix is found by str.find: a regex anchored at every line
    start cost 4% of the controller's CPU at 5,000 hosts. Another nonce's marker, or a
    marker not at a line start, is text."""
    prefix = f"@@fa-{nonce}:"
    at = output.find(prefix)
    while at != -1:
        if at == 0 or output[at - 1] == "\n":
            match = _MARKER_TAIL.match(output, at + len(prefix))
            if match is not None:
                yield at, match
                at = output.find(prefix, match.end())
                continue
        at = output.find(prefix, at + 1)


class SectionStream:
    """Cuts a round's output into sections as it arrives, keeping at most `caps[name]`
    bytes of each (`default_cap` for the others) and `budget` bytes in all.

    What one host may cost is then bounded however much it prints: the rest is counted,
    not kept, and a section cut here has exit_status None, as one cut by `head -c` on the
    host. `sections()` gives what `split_output` would give for the same (kept) output.
    """

    def __init__(self, nonce: str, caps: dict[str, int], *, default_cap: int,
                 budget: int) -> None:
        if not _NONCE.match(nonce):
            raise ValueError("nonce must be 8-64 alphanumeric characters")
        self._prefix = f"@@fa-{nonce}:".encode()
        self._caps, self._default, self._room = caps, default_cap, budget
        self._partial = b""  # a line not yet ended
        self._current: str | None = None
        self._text = bytearray()
        self._cut = False
        self._done: dict[str, Section] = {}
        self.begun: list[str] = []  # sections in the order they started
        self.dropped = 0  # bytes received and not kept
        self.cut_here: list[str] = []  # sections cut here, at their cap or the budget

    def feed(self, data: bytes) -> None:
        """Take the lines `data` completes. The lines between two markers are kept (or
        counted) as one run, as they would be a line at a time: only the lines that
        start with the batch's prefix are looked at one by one (a Python step per line
        was the stream's cost)."""
        data = self._partial + data
        limit = data.rfind(b"\n") + 1  # complete lines end here
        self._partial = data[limit:]
        start = 0  # the first line not yet taken
        at = data.find(self._prefix, 0, limit)
        while at != -1:
            if at == 0 or data[at - 1] == _NEWLINE:
                eol = data.index(b"\n", at)
                self._run(data, start, at)
                start = eol + 1 if self._marker(data[at:eol]) else at
                at = data.find(self._prefix, eol + 1, limit)
            else:
                at = data.find(self._prefix, at + 1, limit)
        self._run(data, start, limit)

    def _line(self, line: bytes, ending: bytes) -> None:
        if not (line.startswith(self._prefix) and self._marker(line)):
            self._run(line + ending, 0, len(line) + len(ending))

    def _marker(self, line: bytes) -> bool:
        """Act on `line` if it is this batch's begin marker, or the running section's end
        marker; False when it is text."""
        match = _MARKER_REST.match(line, len(self._prefix))
        if match is None:
            return False
        kind, name = match.group(1).decode(), match.group(2).decode()
        if kind == "begin":
            if self._current is not None:
                self._finish(None)
            self._current = name
            self.begun.append(name)
            return True
        if name == self._current and match.group(3) is not None:
            self._finish(int(match.group(3)))
            return True
        return False

    def _run(self, data: bytes, start: int, stop: int) -> None:
        """Whole lines of text, data[start:stop], kept in the running section up to its
        cap and the budget (the rest counted), or counted outside any section."""
        size = stop - start
        if size <= 0:
            return
        if self._current is None:
            self.dropped += size
            return
        cap = self._caps.get(self._current, self._default)
        room = max(0, min(cap - len(self._text), self._room))
        if size > room:
            self._cut = True
            self.dropped += size - room
            size = room
        self._text += data[start:start + size]
        self._room -= size

    def _finish(self, status: int | None) -> None:
        assert self._current is not None
        # The newline printed before the next marker is not the command's.
        text = bytes(self._text).removesuffix(b"\n")
        self._done[self._current] = Section(
            name=self._current, text=text.decode("utf-8", errors="replace"),
            exit_status=None if self._cut else status)
        if self._cut:
            self.cut_here.append(self._current)
        self._current, self._text, self._cut = None, bytearray(), False

    def sections(self) -> dict[str, Section]:
        """Every section so far; one still running keeps what arrived (status None)."""
        if self._partial:
            partial, self._partial = self._partial, b""
            self._line(partial, b"")
        if self._current is not None:
            text = bytes(self._text)
            self._done[self._current] = Section(
                name=self._current, text=text.decode("utf-8", errors="replace"),
                exit_status=None)
            if self._cut:
                self.cut_here.append(self._current)
            self._current, self._text, self._cut = None, bytearray(), False
        return self._done
