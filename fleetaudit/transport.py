"""How commands reach a host: one SSH connection per host, or a local subprocess.

This module and `scanner` are the only ones that touch the network. Every failure
leaves as a TransportError subclass, so the orchestrator can record it as the host's
outcome and carry on with the rest of the fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import asyncssh
from pydantic import BaseModel, ConfigDict

from fleetaudit.errors import AuthError, CommandError, ConnectError, HostKeyError
from fleetaudit.models import CommandResult, Connection, InventoryHost

MAX_STDOUT = 64 * 1024 * 1024
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


class Transport(ABC):
    """Runs POSIX sh command strings on one host."""

    @abstractmethod
    async def run(self, command: str, *, timeout: float = 120.0) -> CommandResult: ...

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
