"""How commands reach a host: one SSH connection per host, or a local subprocess.

This module and the `scan` package are the only ones that touch the network. Every failure
leaves as a TransportError subclass, so the orchestrator can record it as the host's
outcome and carry on with the rest of the fleet.

Scripts travel on stdin to `sh -s`, so their size has no argv limit and the account's
login shell (csh, fish) never parses them. A `ShellSession` keeps that shell open and
takes one script after another, each answered up to an unforgeable done marker: every
exec request costs a session, the login shell and its rc files (and sudo), so a host's
rounds share one. With privilege asked for, the shell is `sudo -n [-u USER] -- sh -s`:
one sudo per session, never a password; a refusal is a PrivilegeError the caller can
fall back from.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shlex
import signal
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import asyncssh
from pydantic import BaseModel, ConfigDict

from fleetaudit.errors import AuthError, CommandError, ConnectError, HostKeyError
from fleetaudit.models import CommandResult, Connection, InventoryHost

MAX_STDOUT = 64 * 1024 * 1024
SCRIPT_SHELL = "/bin/sh -s"
_SUDO_USER = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?|#\d{1,10})$")


class PrivilegeError(CommandError):
    """`sudo -n` refused (a password is required, not in sudoers, not installed)."""
MAX_STDERR = 1024 * 1024
_CHUNK = 256 * 1024


class HostKeyPolicy(StrEnum):
    STRICT = "strict"
    ACCEPT_NEW = "accept-new"
    OFF = "off"


class SSHOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    known_hosts: Path | None = None
    host_key_policy: HostKeyPolicy = HostKeyPolicy.STRICT
    connect_timeout: float = 10.0


class _Readable(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


async def _read_capped(stream: _Readable, cap: int) -> tuple[bytes, bool]:
    """Read to EOF or `cap` bytes; a host must not be able to exhaust our memory."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(_CHUNK)
        if not chunk:
            return b"".join(chunks), False
        if size + len(chunk) > cap:
            chunks.append(chunk[: cap - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)


class _Writable(Protocol):
    def write(self, data: bytes) -> None: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...

    async def drain(self) -> None: ...


def script_command(*, become: bool, become_user: str | None = None) -> str:
    """The exec request that runs a script read from stdin, through `sudo -n` if asked."""
    if not become:
        return SCRIPT_SHELL
    if become_user is None:
        return f"sudo -n -- {SCRIPT_SHELL}"
    if not _SUDO_USER.match(become_user):
        raise ValueError(f"not a user name: {become_user!r}")
    return f"sudo -n -u {shlex.quote(become_user)} -- {SCRIPT_SHELL}"


class ShellSession:
    """A long-lived `sh -s` on the host, fed one script at a time over stdin.

    Each script is followed by a line printing a done marker with a fresh random token, so
    no output can end a script early. stderr is drained all along (a full pipe would stall
    the shell) and kept up to MAX_STDERR per script. A script that runs past its timeout
    ends the session: the next `run` raises CommandError.
    """

    def __init__(self, stdin: _Writable, stdout: _Readable, stderr: _Readable,
                 finish: Callable[[], Awaitable[int | None]], kill: Callable[[], None]) -> None:
        self._stdin, self._stdout = stdin, stdout
        self._finish, self._kill = finish, kill
        self._stderr = bytearray()
        self._stderr_task = asyncio.create_task(self._drain(stderr))
        self.alive = True
        self.exit_status: int | None = None

    async def _drain(self, stream: _Readable) -> None:
        with contextlib.suppress(Exception):
            while chunk := await stream.read(_CHUNK):
                if len(self._stderr) < MAX_STDERR * 4:
                    self._stderr += chunk

    async def run(self, script: str, *, timeout: float = 120.0) -> CommandResult:
        """Run `script`; the result's exit_status is None when the shell ended before the
        script did (killed, or sudo refused to start it)."""
        if not self.alive:
            raise CommandError("the shell session on the host has ended")
        token = secrets.token_hex(12)
        marker = f"@@fa-{token}:done:".encode()
        err_start = len(self._stderr)
        payload = (script.rstrip("\n") + "\n"
                   + f"printf '\\n%s%s\\n' '@@fa-{token}:done:' \"$?\"\n").encode()
        try:
            try:
                self._stdin.write(payload)
                await asyncio.wait_for(self._stdin.drain(), timeout)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the shell is gone already (sudo refused): its words are read below
            stdout, truncated, status = await asyncio.wait_for(self._read_until(marker),
                                                               timeout)
        except TimeoutError as exc:
            self._end()
            raise CommandError(f"command ran past {timeout:.0f}s") from exc
        except (BrokenPipeError, ConnectionResetError, asyncssh.Error, OSError) as exc:
            self._end()
            raise CommandError(f"connection lost while running a command: {exc}") from exc
        if status is None:
            self.alive = False
            with contextlib.suppress(Exception):
                self.exit_status = await asyncio.wait_for(self._finish(), 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stderr_task, 5)
        stderr = bytes(self._stderr[err_start:err_start + MAX_STDERR])
        return CommandResult(command="sh -s", exit_status=status if status is not None
                             else None, stdout=stdout, stderr=stderr, truncated=truncated)

    async def _read_until(self, marker: bytes) -> tuple[bytes, bool, int | None]:
        """Output up to the marker line (capped), whether it was cut, the script's status;
        status None when the shell ended first."""
        needle = b"\n" + marker  # the done line is printed after a newline of its own
        kept = bytearray()
        truncated = False
        window = b""  # bytes that may still hold the needle
        while True:
            chunk = await self._stdout.read(_CHUNK)
            if not chunk:
                kept, truncated = _append_capped(kept, window, truncated)
                return bytes(kept), truncated, None
            window += chunk
            at = window.find(needle)
            if at >= 0:
                end = window.find(b"\n", at + len(needle))
                if end < 0:
                    continue  # its status has not arrived yet
                kept, truncated = _append_capped(kept, window[:at], truncated)
                status = window[at + len(needle):end]
                return bytes(kept), truncated, int(status) if status.isdigit() else 0
            keep = len(needle) - 1  # a needle split across reads
            if len(window) > keep:
                kept, truncated = _append_capped(kept, window[:-keep], truncated)
                window = window[-keep:]

    def _end(self) -> None:
        self.alive = False
        with contextlib.suppress(Exception):
            self._kill()

    async def close(self) -> None:
        """EOF on stdin ends the shell; one that does not go gets killed. Idempotent."""
        self.alive = False
        with contextlib.suppress(Exception):
            self._stdin.write_eof()
        try:
            self.exit_status = await asyncio.wait_for(self._finish(), 5)
        except Exception:
            self._end()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._finish(), 5)
        with contextlib.suppress(Exception):
            self._stdin.close()
        try:  # stderr ends with the shell; reading it to EOF lets its pipe close
            await asyncio.wait_for(self._stderr_task, 2)
        except Exception:
            self._stderr_task.cancel()
            with contextlib.suppress(BaseException):
                await self._stderr_task


def _append_capped(kept: bytearray, data: bytes, truncated: bool) -> tuple[bytearray, bool]:
    room = MAX_STDOUT - len(kept)
    if len(data) > room:
        kept += data[:max(0, room)]
        return kept, True
    kept += data
    return kept, truncated


async def open_session(transport: Transport, *, become: bool = False,
                       become_user: str | None = None, timeout: float = 60.0) -> ShellSession:
    """Start the host's shell (through `sudo -n` if asked) and check that it answers.

    PrivilegeError when sudo would not start it; the transport stays usable for an
    unprivileged session.
    """
    session = await transport.open_shell(script_command(become=become,
                                                        become_user=become_user))
    result = await session.run("true", timeout=timeout)
    if result.exit_status is None:
        said = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
        reason = said[-1][:300] if said else f"exit status {session.exit_status}"
        await session.close()
        if become:
            raise PrivilegeError(f"sudo -n refused: {reason}")
        raise CommandError(f"the host's shell did not start: {reason}")
    return session


class Transport(ABC):
    """Runs POSIX sh command strings on one host."""

    @abstractmethod
    async def run(self, command: str, *, timeout: float = 120.0) -> CommandResult:
        """Run one command, stdin empty: one exec request (a ShellSession takes many)."""

    @abstractmethod
    async def open_shell(self, command: str) -> ShellSession:
        """Start `command` (a shell reading scripts on stdin) for a ShellSession."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class LocalTransport(Transport):
    """The embedded default: audit this machine with no SSH at all."""

    async def run(self, command: str, *, timeout: float = 120.0) -> CommandResult:
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", command, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandError(f"cannot start /bin/sh: {exc}") from exc
        assert proc.stdout is not None and proc.stderr is not None
        try:
            (stdout, truncated), (stderr, _) = await asyncio.wait_for(
                asyncio.gather(_read_capped(proc.stdout, MAX_STDOUT),
                               _read_capped(proc.stderr, MAX_STDERR)),
                timeout,
            )
        except TimeoutError as exc:
            raise CommandError(f"command ran past {timeout:.0f}s") from exc
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
        return CommandResult(command=command, exit_status=proc.returncode, stdout=stdout,
                             stderr=stderr, truncated=truncated)

    async def open_shell(self, command: str) -> ShellSession:
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", command, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandError(f"cannot start /bin/sh: {exc}") from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

        def kill() -> None:
            # The shell leads its own session: its children (a hung command) go with it.
            # Not once reaped: its PID, and so the group's, may belong to another by then.
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)

        return ShellSession(proc.stdin, proc.stdout, proc.stderr, proc.wait, kill)

    async def close(self) -> None:
        return None


class SSHTransport(Transport):
    """One asyncssh connection per host, reused for every exec request."""

    def __init__(self, connection: asyncssh.SSHClientConnection) -> None:
        self._connection = connection

    async def run(self, command: str, *, timeout: float = 120.0) -> CommandResult:
        try:
            process = await self._connection.create_process(
                command, encoding=None, stdin=asyncssh.DEVNULL)
        except (asyncssh.Error, OSError) as exc:
            raise CommandError(f"cannot open a session channel: {exc}") from exc
        try:
            (stdout, truncated), (stderr, _) = await asyncio.wait_for(
                asyncio.gather(_read_capped(process.stdout, MAX_STDOUT),
                               _read_capped(process.stderr, MAX_STDERR)),
                timeout,
            )
            if truncated:
                process.close()
            await asyncio.wait_for(process.wait_closed(), timeout)
        except TimeoutError as exc:
            process.close()
            raise CommandError(f"command ran past {timeout:.0f}s") from exc
        except (asyncssh.Error, OSError) as exc:
            raise CommandError(f"connection lost while running a command: {exc}") from exc
        return CommandResult(command=command, exit_status=process.exit_status, stdout=stdout,
                             stderr=stderr, truncated=truncated)

    async def open_shell(self, command: str) -> ShellSession:
        try:
            process = await self._connection.create_process(command, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise CommandError(f"cannot open a session channel: {exc}") from exc

        async def finish() -> int | None:
            await process.wait_closed()
            return process.exit_status

        return ShellSession(process.stdin, process.stdout, process.stderr, finish,
                            process.close)

    async def close(self) -> None:
        self._connection.close()
        with contextlib.suppress(Exception):
            await self._connection.wait_closed()


class _KnownHostsRecorder:
    """accept-new: trust a host seen for the first time and write its key down."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = asyncio.Lock()

    def knows(self, address: str, port: int) -> bool:
        if not self.path.exists():
            return False
        try:
            known = asyncssh.read_known_hosts(str(self.path))
        except (OSError, ValueError):
            return False
        host_keys, ca_keys, *_ = known.match(address, address, port)
        return bool(host_keys or ca_keys)

    async def record(self, address: str, port: int, key: asyncssh.SSHKey) -> None:
        name = address if port == 22 else f"[{address}]:{port}"
        line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
        async with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)


_recorders: dict[Path, _KnownHostsRecorder] = {}


def _known_hosts_path(options: SSHOptions) -> Path:
    return options.known_hosts or Path.home() / ".ssh" / "known_hosts"


async def connect(host: InventoryHost, address: str, options: SSHOptions) -> Transport:
    """Open the host's transport; raises a TransportError subclass saying why not."""
    if host.connection is Connection.LOCAL:
        return LocalTransport()
    known_hosts: object = str(_known_hosts_path(options))
    recorder = None
    if options.host_key_policy is HostKeyPolicy.OFF:
        known_hosts = None
    elif options.host_key_policy is HostKeyPolicy.ACCEPT_NEW:
        path = _known_hosts_path(options)
        recorder = _recorders.setdefault(path, _KnownHostsRecorder(path))
        if not recorder.knows(address, host.port):
            known_hosts = None
        else:
            recorder = None
    keys: object = [host.key_file] if host.key_file else ()
    try:
        connection = await asyncio.wait_for(
            asyncssh.connect(
                address, port=host.port, username=host.user, known_hosts=known_hosts,
                client_keys=keys, agent_path=None if host.key_file else (),
                connect_timeout=options.connect_timeout, login_timeout=options.connect_timeout,
            ),
            options.connect_timeout * 2 + 5,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyError(f"host key not trusted ({exc.reason}); policy "
                           f"{options.host_key_policy.value}, known_hosts "
                           f"{_known_hosts_path(options)}") from exc
    except asyncssh.PermissionDenied as exc:
        raise AuthError(f"authentication refused for {host.user}@{address}: {exc.reason}") from exc
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        raise AuthError(f"cannot use key {host.key_file}: {exc}") from exc
    except asyncssh.DisconnectError as exc:
        raise ConnectError(f"disconnected by {address}:{host.port}: {exc.reason}") from exc
    except TimeoutError as exc:
        raise ConnectError(f"timed out connecting to {address}:{host.port}") from exc
    except OSError as exc:
        if host.key_file and not Path(host.key_file).exists():
            raise AuthError(f"key file {host.key_file} does not exist") from exc
        raise ConnectError(f"cannot connect to {address}:{host.port}: "
                           f"{exc.strerror or exc}") from exc
    except asyncssh.Error as exc:
        raise ConnectError(f"SSH error with {address}:{host.port}: {exc}") from exc
    if recorder is not None:
        server_key = connection.get_server_host_key()
        if server_key is not None:
            await recorder.record(address, host.port, server_key)
    return SSHTransport(connection)
