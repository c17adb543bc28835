"""A host without a network: answers the collection's round scripts from real captures.

The engine's faults (a hung command, one that escapes its time limit, a dropped
connection, garbage, a flood, a slow link) can only be provoked on a real host with
root and namespaces; this fake provokes each in-process, in milliseconds, so the engine's
handling of them is tested in the unit suite (the lab keeps the end-to-end cases).

It is a Transport: `open_shell` gives a real `ShellSession` over fake pipes. The fake
shell reads each script the way `sh -s` would see it: it parses the batch framing
(`fleetaudit.batch`: nonce, sections, `only_if`, `fa_timeout`, `fa_cap`, inline groups)
and answers every command with the output the same command printed on a real host, from
a capture file (`tests/fixtures/session/*.json`, written by
`tests/fixtures/capture_session.py`). A command the capture does not hold is answered
as sh answers an unknown command (status 127) and listed in `FakeHost.unanswered`: a
test can insist on none, so a changed probe command never passes unnoticed.

    fleet = FakeFleet({"web1": FakeHost.load(CAPTURE, faults={"ss": Fault.escape()})})
    outcome = await run_audit(inventory, options, connect=fleet.connect)
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from fleetaudit.errors import ConnectError, TransportError
from fleetaudit.models import InventoryHost
from fleetaudit.ssh_target import SSHTarget
from fleetaudit.transport import ShellSession, SSHOptions, Transport

_CHUNK = 64 * 1024
_MARK = r"'?@@fa-(?P<nonce>[A-Za-z0-9]+):begin:(?P<name>[A-Za-z0-9_.-]+)'?"
_SECTION = re.compile(
    r"(?:^if (?P<cond>[^\n]*); then\n)?"
    r"^printf '\\n%s\\n' " + _MARK + r"\n"
    r"(?P<brace>\{ )?\( (?P<cmd>.*?) \) </dev/null; "
    r"printf '\\n%s%s\\n' '?@@fa-(?P=nonce):end:(?P=name):'? \"\$\?\""
    r"(?:; \} \| fa_cap (?P<cap>\d+))?",
    re.MULTILINE | re.DOTALL)
_INLINE = re.compile(
    r"^printf '\\n%s\\n' " + _MARK + r"\n"
    r"\{ (?P<cmd>.*?)\n\} </dev/null; "
    r"printf '\\n%s%s\\n' '?@@fa-(?P=nonce):end:(?P=name):'? \"\$\?\"",
    re.MULTILINE | re.DOTALL)
_DONE = re.compile(r"^printf '\\n%s%s\\n' '@@fa-(?P<token>[A-Za-z0-9]+):done:' \"\$\?\"\n",
                   re.MULTILINE)
_TIMEOUT = re.compile(r"^fa_timeout (?P<secs>\d+) sh -c ")
# What a real `timeout` exits with when its limit strikes (GNU, busybox >= 1.30).
TIMED_OUT = 124
# The line of host output that crashed a run in issue 11: real hostile text, not made up.
HOSTILE_LINE = b"[/oops] malformed row\n"


@dataclass(frozen=True)
class ScriptSection:
    """One framed command of a round script, as the host's shell would run it."""

    name: str
    nonce: str
    command: str  # as the host runs it, limits unwrapped
    condition: str | None = None
    cap: int | None = None
    timeout: int | None = None
    inline: tuple[ScriptSection, ...] = ()  # a group of reads sent as one command


def parse_script(script: str) -> list[ScriptSection]:
    """The sections of a `build_script` (or `build_inline`) script, in order."""
    found = []
    for match in _SECTION.finditer(script):
        command, timeout = match["cmd"], None
        limited = _TIMEOUT.match(command)
        if limited:
            timeout = int(limited["secs"])
            command = _unquote(command[limited.end():])
        found.append(ScriptSection(
            name=match["name"], nonce=match["nonce"], command=command,
            condition=match["cond"], cap=int(match["cap"]) if match["cap"] else None,
            timeout=timeout, inline=tuple(_parse_inline(command))))
    return found


def _unquote(word: str) -> str:
    """The one shell word `shlex.quote` made (what `fa_timeout N sh -c` is given), read
    back; shlex.split's character loop cost the fake more than the engine it serves."""
    if len(word) >= 2 and word[0] == word[-1] == "'":
        text = word[1:-1].replace("'\"'\"'", "'")
        if shlex.quote(text) == word:
            return text
    [text] = shlex.split(word)
    return text


def _parse_inline(command: str) -> list[ScriptSection]:
    return [ScriptSection(name=m["name"], nonce=m["nonce"], command=m["cmd"])
            for m in _INLINE.finditer(command)]


@dataclass(frozen=True)
class Capture:
    """What a real host printed: per command its output and exit status, and whether each
    `only_if` condition held there."""

    commands: Mapping[str, tuple[str, int]]
    conditions: Mapping[str, bool]
    about: str = ""

    @classmethod
    def load(cls, path: Path) -> Capture:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(commands={c: (a["text"], a["status"]) for c, a in data["commands"].items()},
                   conditions=data["conditions"], about=data.get("about", ""))


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one section (by its name: `ss`, `procs.0`, `dpkg`...).

    Build with the class methods; `delay` is seconds before the section's output.
    """

    kind: str
    delay: float = 0.0
    size: int = 0
    text: bytes = b""
    status: int = 0

    @classmethod
    def hang(cls, delay: float = 0.0) -> Fault:
        """Hangs until `timeout` stops it: no output, status 124."""
        return cls("hang", delay=delay)

    @classmethod
    def escape(cls) -> Fault:
        """Escapes its time limit (`setsid sleep`): `head -c` never sees EOF, the round
        never ends; only killing the session's process group ends the shell."""
        return cls("escape")

    @classmethod
    def drop(cls) -> Fault:
        """The connection is lost while this section runs."""
        return cls("drop")

    @classmethod
    def silent(cls) -> Fault:
        """The link goes dead while this section runs (a firewall drops every packet): the
        SSH keepalives go unanswered and asyncssh gives the connection up, in its words."""
        return cls("silent")

    @classmethod
    def garbage(cls, text: bytes = HOSTILE_LINE) -> Fault:
        return cls("garbage", text=text)

    @classmethod
    def huge(cls, size: int) -> Fault:
        """`size` bytes of the command's real output, repeated (a flood)."""
        return cls("huge", size=size)

    @classmethod
    def slow(cls, delay: float) -> Fault:
        return cls("slow", delay=delay)

    @classmethod
    def exit(cls, status: int) -> Fault:
        """The captured output, ending with `status` (a command that failed half way)."""
        return cls("exit", status=status)


class _Dropped(Exception):
    def __init__(self, reason: str = "Connection lost") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class FakeHost:
    """One host: its capture, the faults to inject, and what it saw (for assertions)."""

    capture: Capture
    faults: dict[str, Fault] = field(default_factory=dict)
    sudo: bool = True  # whether `sudo -n` would start the shell
    latency: float = 0.0  # seconds before each script is answered (a link's round trip)
    # Keep every script (`scripts`) and transport (`FakeFleet.transports`) for assertions;
    # off for a fleet of thousands, whose fakes would otherwise outweigh the controller.
    record: bool = True
    connect_error: TransportError | None = None  # raised by FakeFleet.connect
    scripts: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    running: set[str] = field(default_factory=set)  # fake processes still alive
    sessions: int = 0

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> FakeHost:
        return cls(Capture.load(path), **kwargs)

    def answer(self, command: str) -> tuple[bytes, int]:
        found = self.capture.commands.get(command)
        if found is None:
            self.unanswered.append(sys.intern(command))  # one copy for a fleet of fakes
            return b"", 127
        return found[0].encode("utf-8", errors="surrogateescape"), found[1]


class _Pipe:
    """The fake shell's stdout or stderr: what the session reads."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self._ended = False

    def feed(self, data: bytes) -> None:
        if data and not self._ended:
            self._queue.put_nowait(data)

    def end(self, error: BaseException | None = None) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(error)

    async def read(self, n: int = -1) -> bytes:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # EOF stays EOF
            return b""
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)
            raise item
        return item


class _Shell:
    """`sh -s` on the fake host: runs each script as it arrives on stdin."""

    def __init__(self, host: FakeHost, become: bool) -> None:
        self.host, self.become = host, become
        self.stdout, self.stderr = _Pipe(), _Pipe()
        self._buffer = ""
        self._scripts: asyncio.Queue[str | None] = asyncio.Queue()
        self.exit_status: int | None = None
        self._done = asyncio.Event()
        self._busy = False
        host.sessions += 1
        self._name = f"sh -s #{host.sessions}"
        host.running.add(self._name)
        self._task = asyncio.create_task(self._serve())

    # --- stdin ---
    def write(self, data: bytes) -> None:
        if self._done.is_set():
            raise BrokenPipeError("the shell has ended")
        self._buffer += data.decode("utf-8", errors="surrogateescape")
        while (match := _DONE.search(self._buffer)) is not None:
            self._scripts.put_nowait(self._buffer[:match.end()])
            self._buffer = self._buffer[match.end():]

    def write_eof(self) -> None:
        self._scripts.put_nowait(None)

    def close(self) -> None:
        return None

    async def drain(self) -> None:
        return None

    # --- the process ---
    async def finish(self) -> int | None:
        await self._done.wait()
        return self.exit_status

    def kill(self) -> None:
        """SIGKILL to the session's process group: the shell and its pipeline (head -c)."""
        self._task.cancel()
        self._end(None)

    def disconnect(self) -> None:
        """The channel is gone: nothing more is read; a busy shell carries on."""
        self.stdout.end(asyncssh.ConnectionLost("Connection lost"))
        self.stderr.end()
        if self._scripts.empty() and not self._busy:
            self.kill()  # idle, sh reads EOF on stdin and exits

    def _end(self, status: int | None, error: BaseException | None = None) -> None:
        if self._done.is_set():
            return
        self.exit_status = status
        self.host.running = {p for p in self.host.running if not p.startswith(self._name)}
        self.stdout.end(error)
        self.stderr.end()
        self._done.set()

    async def _serve(self) -> None:
        if self.become and not self.host.sudo:
            self.stderr.feed(b"sudo: a password is required\n")
            self._end(1)
            return
        try:
            while (script := await self._scripts.get()) is not None:
                self._busy = True
                if self.host.record:
                    self.host.scripts.append(script)
                if self.host.latency:
                    await asyncio.sleep(self.host.latency)
                for section in parse_script(script):
                    await self._section(section)
                token = _DONE.search(script)
                assert token is not None
                self.stdout.feed(f"\n@@fa-{token['token']}:done:0\n".encode())
                self._busy = False
        except _Dropped as dropped:
            self._end(None, asyncssh.ConnectionLost(dropped.reason))
            return
        self._end(0)

    async def _section(self, section: ScriptSection) -> None:
        if section.condition is not None:
            if section.condition not in self.host.capture.conditions:
                self.host.unanswered.append(f"if {section.condition}")
                return
            if not self.host.capture.conditions[section.condition]:
                return
        self.stdout.feed(f"\n@@fa-{section.nonce}:begin:{section.name}\n".encode())
        room = section.cap
        async for chunk in self._body(section):
            if room is not None:
                if len(chunk) > room:
                    # head -c: the rest (the end marker too) is cut; the command dies of
                    # SIGPIPE at its next write.
                    self.stdout.feed(chunk[:room])
                    return
                room -= len(chunk)
            self.stdout.feed(chunk)

    async def _body(self, section: ScriptSection) -> AsyncIterator[bytes]:
        fault = self.host.faults.get(section.name)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        status = 0
        if fault is not None and fault.kind == "drop":
            raise _Dropped
        if fault is not None and fault.kind == "silent":
            raise _Dropped("Server not responding to keepalive")  # asyncssh's own text
        if fault is not None and fault.kind == "escape":
            self.host.running.add(f"{self._name} head -c ({section.name})")
            await asyncio.Event().wait()  # until the session is killed
        if fault is not None and fault.kind == "hang":
            status = TIMED_OUT
        elif fault is not None and fault.kind == "garbage":
            yield fault.text
        elif section.inline:
            for inner in section.inline:
                yield f"\n@@fa-{inner.nonce}:begin:{inner.name}\n".encode()
                async for chunk in self._body(inner):
                    yield chunk
        else:
            text, status = self.host.answer(section.command)
            if fault is not None and fault.kind == "huge":
                async for chunk in _repeat(text or HOSTILE_LINE, fault.size):
                    yield chunk
            else:
                yield text
            if fault is not None and fault.kind == "exit":
                status = fault.status
        yield f"\n@@fa-{section.nonce}:end:{section.name}:{status}\n".encode()


async def _repeat(text: bytes, size: int) -> AsyncIterator[bytes]:
    """`size` bytes of `text` over and over, a chunk at a time (never all in memory)."""
    block = (text * (_CHUNK // max(1, len(text)) + 1))[:_CHUNK]
    sent = 0
    while sent < size:
        chunk = block[:size - sent]
        sent += len(chunk)
        yield chunk
        await asyncio.sleep(0)  # a real pipe lets the reader run


class FakeTransport(Transport):
    """A Transport to a FakeHost; `closed` says whether the connection was closed."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.closed = False
        self._shells: list[_Shell] = []

    async def open_shell(self, command: str) -> ShellSession:
        if self.closed:
            raise TransportError("connection closed")
        shell = _Shell(self.host, become=command.startswith("sudo "))
        self._shells.append(shell)
        return ShellSession(shell, shell.stdout, shell.stderr, shell.finish, shell.kill)

    async def close(self) -> None:
        """The connection goes; as with sshd and a session without a terminal, a shell
        still busy is not killed by that (a session's `kill` does that): it stays in
        `FakeHost.running`, as `sh -s` and `head -c` stayed on the audited host."""
        self.closed = True
        for shell in self._shells:
            shell.disconnect()


class FakeFleet:
    """FakeHosts by inventory name; `connect` has `fleetaudit.transport.connect`'s shape."""

    def __init__(self, hosts: Mapping[str, FakeHost]) -> None:
        self.hosts = dict(hosts)
        self.transports: list[FakeTransport] = []

    async def connect(self, host: InventoryHost, address: str | None, options: SSHOptions,
                      target: SSHTarget | None = None) -> Transport:
        fake = self.hosts.get(host.name)
        if fake is None:
            raise ConnectError(f"cannot connect to {address}:22: connection refused")
        if fake.connect_error is not None:
            raise fake.connect_error
        transport = FakeTransport(fake)
        if fake.record:
            self.transports.append(transport)
        return transport

