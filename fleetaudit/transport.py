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
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import asyncssh
from asyncssh.public_key import load_default_identities
from pydantic import BaseModel, ConfigDict

from fleetaudit.errors import (
    AuthError,
    CommandError,
    ConfigError,
    ConnectError,
    HostKeyChangedError,
    HostKeyError,
    RoundCutError,
    UnsafeTargetError,
)
from fleetaudit.guard import admit
from fleetaudit.host_key_policy import HostKeyPolicy  # its home: light, for --help
from fleetaudit.models import CommandResult, Connection, InventoryHost
from fleetaudit.ssh_target import Endpoint, SSHTarget, local_user, resolve_target

MAX_STDOUT = 64 * 1024 * 1024
SCRIPT_SHELL = "/bin/sh -s"
_SUDO_USER = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?|#\d{1,10})$")


class PrivilegeError(CommandError):
    """`sudo -n` refused (a password is required, not in sudoers, not installed)."""
MAX_STDERR = 1024 * 1024
_CHUNK = 256 * 1024


class SSHOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    known_hosts: Path | None = None
    # None: ~/.ssh/config when it exists. Host patterns, HostName, User, Port, IdentityFile,
    # ProxyJump, UserKnownHostsFile, StrictHostKeyChecking and ConnectTimeout apply.
    ssh_config: Path | None = None
    host_key_policy: HostKeyPolicy = HostKeyPolicy.STRICT
    # TCP only: a slow link (800 ms each way) still logs in, as plain ssh does in 25 s.
    connect_timeout: float = 10.0
    # From the TCP connection to an authenticated session (banner, key exchange, auth).
    login_timeout: float = 60.0
    # A connection dropped silently is named as such within interval * (count + 1) s.
    keepalive_interval: float = 5.0
    keepalive_count_max: int = 3


class TransportFactory(Protocol):
    """What opens a host's transport: `connect`, or a test double of the same shape."""

    def __call__(self, host: InventoryHost, address: str | None, options: SSHOptions,
                 target: SSHTarget | None = None) -> Awaitable[Transport]: ...


class _Readable(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


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
        # The shell's session id on the host (open_session reads it): what a kill ends.
        self.sid: int | None = None
        self._kept, self._truncated, self._window = bytearray(), False, b""
        self._sink: Callable[[bytes], None] | None = None

    async def _drain(self, stream: _Readable) -> None:
        with contextlib.suppress(Exception):
            while chunk := await stream.read(_CHUNK):
                if len(self._stderr) < MAX_STDERR * 4:
                    self._stderr += chunk

    async def run(self, script: str, *, timeout: float = 120.0,
                  sink: Callable[[bytes], None] | None = None) -> CommandResult:
        """Run `script`; the result's exit_status is None when the shell ended before the
        script did (killed, or sudo refused to start it).

        With `sink`, output goes to it as it arrives (the caller cuts and caps it; the
        result's stdout is empty), so a flood costs what the sink keeps, not the round.
        A script cut short (time limit, connection lost) raises RoundCutError carrying
        what arrived, and the shell is killed: a command that escaped its own time limit
        must not keep the shell (and `head -c`) running on the host.
        """
        if not self.alive:
            raise CommandError("the shell session on the host has ended")
        token = secrets.token_hex(12)
        marker = f"@@fa-{token}:done:".encode()
        err_start = len(self._stderr)
        payload = (script.rstrip("\n") + "\n"
                   + f"printf '\\n%s%s\\n' '@@fa-{token}:done:' \"$?\"\n").encode()
        self._kept, self._truncated, self._sink = bytearray(), False, sink
        try:
            try:
                self._stdin.write(payload)
                await asyncio.wait_for(self._stdin.drain(), timeout)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the shell is gone already (sudo refused): its words are read below
            status = await asyncio.wait_for(self._read_until(marker), timeout)
        except TimeoutError as exc:
            self._end()
            self._keep(self._window)
            raise RoundCutError(f"ran past {timeout:.0f}s", bytes(self._kept)) from exc
        except (BrokenPipeError, ConnectionResetError, asyncssh.Error, OSError) as exc:
            self._end()
            self._keep(self._window)
            raise RoundCutError(_lost(exc), bytes(self._kept)) from exc
        if status is None:
            self.alive = False
            with contextlib.suppress(Exception):
                self.exit_status = await asyncio.wait_for(self._finish(), 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stderr_task, 5)
        stderr = bytes(self._stderr[err_start:err_start + MAX_STDERR])
        stdout, self._kept = bytes(self._kept), bytearray()
        return CommandResult(command="sh -s", exit_status=status, stdout=stdout,
                             stderr=stderr, truncated=self._truncated)

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        if self._sink is not None:
            self._sink(data)
            return
        room = MAX_STDOUT - len(self._kept)
        if len(data) > room:
            self._kept += data[:max(0, room)]
            self._truncated = True
        else:
            self._kept += data

    async def _read_until(self, marker: bytes) -> int | None:
        """Output up to the marker line (to `_keep`), and the script's status; None when
        the shell ended first."""
        needle = b"\n" + marker  # the done line is printed after a newline of its own
        self._window = b""  # bytes that may still hold the needle (kept if cut short)
        while True:
            chunk = await self._stdout.read(_CHUNK)
            if not chunk:
                window, self._window = self._window, b""
                self._keep(window)
                return None
            window = self._window + chunk
            at = window.find(needle)
            if at >= 0:
                end = window.find(b"\n", at + len(needle))
                if end < 0:
                    self._window = window
                    continue  # its status has not arrived yet
                self._window = b""
                self._keep(window[:at])
                status = window[at + len(needle):end]
                return int(status) if status.isdigit() else 0
            keep = len(needle) - 1  # a needle split across reads
            if len(window) > keep:
                self._keep(window[:-keep])
                window = window[-keep:]
            self._window = window

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


# The shell's session id (field 6 of /proc/PID/stat, the 4th after the command name, which
# may hold spaces), with builtins only. Everything the shell starts stays in that session
# unless it leaves on purpose (setsid), and `timeout` moves its command to a process group
# of its own, not out of the session: so the session, not the group, is what a kill ends.
_SESSION_ID = ('fa_s=; read -r fa_s < /proc/$$/stat 2>/dev/null; fa_s=${fa_s##*) }; '
               'set -- $fa_s; echo "${4:-}"')
# Run by another shell of the same login: every process of session SID, by /proc.
_KILL_SESSION = ('for fa_f in /proc/[0-9]*/stat; do fa_s=; read -r fa_s < "$fa_f" '
                 '2>/dev/null || continue; fa_s=${{fa_s##*) }}; set -- $fa_s; '
                 'if [ "$4" = {sid} ]; then fa_p=${{fa_f#/proc/}}; kill -KILL "${{fa_p%/stat}}" '
                 '2>/dev/null; fi; done; true')


def _lost(exc: BaseException) -> str:
    """Why a connection went: one that stopped answering keepalives was dropped on the
    way (a dead link, a firewall), which is not the host closing it."""
    if isinstance(exc, asyncssh.ConnectionLost) and "keepalive" in str(exc.reason):
        return ("connection dropped: the host stopped answering (no reply to SSH "
                "keepalives)")
    return f"connection lost: {exc}"


async def open_session(transport: Transport, *, become: bool = False,
                       become_user: str | None = None, timeout: float = 60.0) -> ShellSession:
    """Start the host's shell (through `sudo -n` if asked) and check that it answers.

    PrivilegeError when sudo would not start it; the transport stays usable for an
    unprivileged session.
    """
    session = await transport.open_shell(script_command(become=become,
                                                        become_user=become_user))
    result = await session.run(_SESSION_ID, timeout=timeout)
    sid = result.stdout.strip()
    session.sid = int(sid) if sid.isdigit() and int(sid) > 1 else None
    if result.exit_status is None:
        said = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
        reason = said[-1][:300] if said else f"exit status {session.exit_status}"
        await session.close()
        if become:
            raise PrivilegeError(f"sudo -n refused: {reason}")
        raise CommandError(f"the host's shell did not start: {reason}")
    return session


class Transport(ABC):
    """Runs POSIX sh scripts on one host, through shell sessions (ShellSession)."""

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
    """One asyncssh connection per host, reused for every exec request; the connections
    to its jump hosts (first to last) close with it."""

    def __init__(self, connection: asyncssh.SSHClientConnection,
                 tunnels: list[asyncssh.SSHClientConnection] | None = None) -> None:
        self._connection = connection
        self._tunnels = list(tunnels or ())
        self._kills: list[asyncio.Task[None]] = []

    async def open_shell(self, command: str) -> ShellSession:
        try:
            process = await self._connection.create_process(command, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise CommandError(f"cannot open a session channel: {exc}") from exc

        async def finish() -> int | None:
            await process.wait_closed()
            return process.exit_status

        def kill() -> None:
            # Closing the channel leaves a busy shell running on the host (sshd sends no
            # SIGHUP without a terminal), and sshd refuses the signal request where it
            # matters (OpenSSH 9.2, root: "session signalling requires privilege
            # separation"; a shell sudo started is not the login's to signal anyway). So
            # another shell of the same login, sudo included, ends the session's processes.
            if session.sid is not None:
                self._kills.append(asyncio.ensure_future(self._kill(command, session.sid)))
            process.close()

        session = ShellSession(process.stdin, process.stdout, process.stderr, finish, kill)
        return session

    async def _kill(self, command: str, sid: int) -> None:
        """Every process of session `sid` on the host, through a new shell (best effort: a
        connection that stopped answering takes nothing more)."""
        with contextlib.suppress(Exception):
            process = await asyncio.wait_for(
                self._connection.create_process(command, encoding=None), 10)
            process.stdin.write(_KILL_SESSION.format(sid=sid).encode() + b"\n")
            process.stdin.write_eof()
            await asyncio.wait_for(process.wait_closed(), 10)

    async def close(self) -> None:
        if self._kills:  # before the connection they need goes
            await asyncio.gather(*self._kills, return_exceptions=True)
        for connection in (self._connection, *reversed(self._tunnels)):
            connection.close()
            with contextlib.suppress(Exception):
                await connection.wait_closed()


class _KnownHostsRecorder:
    """accept-new: append the key of a host seen for the first time (one writer per file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = asyncio.Lock()

    async def record(self, name: str, port: int, key: asyncssh.SSHKey) -> None:
        where = name if port == 22 else f"[{name}]:{port}"
        line = f"{where} {key.export_public_key('openssh').decode().strip()}\n"
        async with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)


_recorders: dict[Path, _KnownHostsRecorder] = {}
_STRICTNESS = [HostKeyPolicy.OFF, HostKeyPolicy.ACCEPT_NEW, HostKeyPolicy.STRICT]


def _policy(options: SSHOptions, endpoint: Endpoint) -> HostKeyPolicy:
    """The stricter of --host-key-policy and ssh_config's StrictHostKeyChecking: a config
    file may tighten the check for its hosts, never loosen what the command line asks."""
    if endpoint.host_key_policy is None:
        return options.host_key_policy
    return max(options.host_key_policy, HostKeyPolicy(endpoint.host_key_policy),
               key=_STRICTNESS.index)


def _known_hosts_files(options: SSHOptions, endpoint: Endpoint) -> list[Path]:
    """--known-hosts, else ssh_config's UserKnownHostsFile, else ~/.ssh/known_hosts."""
    if options.known_hosts is not None:
        return [options.known_hosts]
    if endpoint.known_hosts:
        return [Path(p) for p in endpoint.known_hosts]
    return [Path.home() / ".ssh" / "known_hosts"]


def _read_known_hosts(files: list[Path],
                      policy: HostKeyPolicy) -> asyncssh.SSHKnownHosts:
    """Every existing file in one list (hashed names, [host]:port, @cert-authority and
    @revoked as asyncssh reads them); none at all is an error unless accept-new."""
    texts = []
    for path in files:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise HostKeyError(f"cannot read known_hosts {path}: {exc}") from exc
    if not texts and policy is HostKeyPolicy.STRICT:
        raise HostKeyError(f"no known_hosts at {files[0]}: use --known-hosts or "
                           "--host-key-policy accept-new")
    try:
        return asyncssh.import_known_hosts("\n".join(texts))
    except ValueError as exc:
        raise HostKeyError(f"known_hosts {', '.join(map(str, files))}: {exc}") from exc


class _HostKeyClient(asyncssh.SSHClient):
    """Sees the key a server offers when known_hosts does not trust it: that tells a changed
    key from an unknown one, and lets accept-new trust (only) a host with no entry at all."""

    def __init__(self, known: asyncssh.SSHKnownHosts, accept_new: bool) -> None:
        self.known, self.accept_new = known, accept_new
        self.offered: asyncssh.SSHKey | None = None
        self.accepted = False
        self._connection: asyncssh.SSHClientConnection | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self._connection = conn

    @property
    def banner_seen(self) -> bool:
        """Whether the server sent its SSH version line (a tarpit or other service never)."""
        return bool(self._connection is not None
                    and self._connection.get_extra_info("server_version"))

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        self.offered = key
        if self.accept_new and not _on_record(self.known, host, addr, port):
            self.accepted = True
            return True
        return False


def _on_record(known: asyncssh.SSHKnownHosts, host: str, addr: str | None, port: int) -> bool:
    host_keys, ca_keys, *_ = known.match(host, addr or "", port)
    return bool(host_keys or ca_keys)


async def _agent_keys() -> set[bytes]:
    """The public keys (wire format) ssh-agent holds; none without an agent (SSH_AUTH_SOCK)."""
    path = os.environ.get("SSH_AUTH_SOCK")
    if not path:
        return set()
    try:
        async with asyncssh.connect_agent(path) as agent:
            return {k.public_data for k in await agent.get_keys()}
    except (OSError, asyncssh.Error, ValueError):
        return set()


def _public_key_of(path: Path) -> asyncssh.SSHKey | None:
    try:
        return asyncssh.read_public_key(str(path) + ".pub")
    except (OSError, ValueError):
        return None


async def _client_keys(endpoint: Endpoint) -> list[asyncssh.SSHKey] | tuple[()]:
    """The key files to offer, loaded here so that a bad one is a clear AuthError: never a
    passphrase prompt (an encrypted key is left to the ssh-agent that holds it).

    () when none is named: asyncssh then offers the default ~/.ssh/id_* keys.
    """
    named = [(endpoint.key_file, True)] if endpoint.key_file else []
    named += [(path, False) for path in endpoint.identity_files if path != endpoint.key_file]
    if not named:
        return ()
    keys: list[asyncssh.SSHKey] = []
    agent: set[bytes] | None = None  # asked once, on the first encrypted key
    for name, required in named:
        path = Path(name)
        if path.is_dir():
            raise AuthError(f"key {path} is a directory, not a private key file")
        if not path.exists():
            if required:
                raise AuthError(f"key file {path} does not exist")
            continue  # an ssh_config IdentityFile that is not there: ssh skips it too
        try:
            keys.append(asyncssh.read_private_key(str(path), passphrase=None))
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            if "assphrase" not in str(exc):
                raise AuthError(f"cannot use key {path}: {exc}") from exc
            if agent is None:
                agent = await _agent_keys()
            public = _public_key_of(path)
            if not agent or (public is not None and public.public_data not in agent):
                raise AuthError(f"key {path} is encrypted and no ssh-agent holds it "
                                "(fleetaudit never asks for a passphrase: ssh-add it)") from exc
        except OSError as exc:
            raise AuthError(f"cannot read key {path}: {exc.strerror or exc}") from exc
    return keys


def _agent_identities(endpoint: Endpoint,
                      keys: list[asyncssh.SSHKey] | tuple[()]) -> list[bytes] | None:
    """ssh_config's IdentitiesOnly: the public keys the agent may offer, those of the key
    files named (or, none named, of ssh's default ones), as OpenSSH; None: any agent key."""
    if not endpoint.identities_only:
        return None
    named = [endpoint.key_file] if endpoint.key_file else []
    named += endpoint.identity_files
    if not named:
        return list(load_default_identities())
    found = [key.public_data for key in keys]  # an encrypted key's comes from its .pub
    found += [public.public_data for public in map(_public_key_of, map(Path, named)) if public]
    return found


def resolve(host: InventoryHost, options: SSHOptions) -> SSHTarget:
    """The host's SSH target; an unusable ssh_config is this host's ConnectError here."""
    try:
        return resolve_target(host, options.ssh_config)
    except ConfigError as exc:
        raise ConnectError(str(exc)) from exc


async def connect(host: InventoryHost, address: str | None, options: SSHOptions,
                  target: SSHTarget | None = None) -> Transport:
    """Open the host's transport; raises a TransportError subclass saying why not.

    `address` is the IP the scan uses (resolved once by the orchestrator) and is where a
    direct connection goes; host keys are still checked against the name ssh_config gives.
    Through jump hosts the last one reaches the target by its name, as `ssh -J` does.
    """
    if host.connection is Connection.LOCAL:
        return LocalTransport()
    target = target or resolve(host, options)
    try:  # the last gate: whatever the caller checked, nothing refused gets a packet
        await admit(target.jumps[0].host if target.jumps else (address or target.host),
                    host.route_dev)
    except UnsafeTargetError as exc:
        raise ConnectError(f"refused: {exc}") from exc
    tunnels: list[asyncssh.SSHClientConnection] = []
    try:
        for hop in target.jumps:
            tunnels.append(await _open(hop, hop.host, options, tunnels[-1] if tunnels else None,
                                       f"jump host {hop.login}: "))
        via = tunnels[-1] if tunnels else None
        where = target.host if via is not None or not address else address
        connection = await _open(target, where, options, via, "")
    except BaseException:
        for tunnel in reversed(tunnels):
            tunnel.close()
        raise
    return SSHTransport(connection, tunnels)


async def _open(endpoint: Endpoint, where: str, options: SSHOptions,
                tunnel: asyncssh.SSHClientConnection | None,
                prefix: str) -> asyncssh.SSHClientConnection:
    """One SSH login (direct, or through `tunnel`), every failure a TransportError."""
    if endpoint.proxy_command:
        raise ConnectError(f"{prefix}ssh_config ProxyCommand is not supported for "
                           f"{endpoint.asked}: use ProxyJump")
    policy = _policy(options, endpoint)
    files = _known_hosts_files(options, endpoint)
    known = None if policy is HostKeyPolicy.OFF else _read_known_hosts(files, policy)
    keys = await _client_keys(endpoint)
    identities = _agent_identities(endpoint, keys)
    timeout = min(options.connect_timeout, endpoint.connect_timeout or options.connect_timeout)
    # Host keys are looked up by the name ssh_config gives, and by the address we reach.
    alias = endpoint.host_key_alias or (endpoint.host if endpoint.host != where else None)
    client = _HostKeyClient(known or asyncssh.SSHKnownHosts(),
                            policy is HostKeyPolicy.ACCEPT_NEW)
    login = f"{endpoint.user or local_user()}@{endpoint.host}"
    port = endpoint.port
    login_timeout = max(options.login_timeout, timeout)
    try:
        # Direct: TCP first, under the connect timeout alone; then the login has its own.
        sock = None if tunnel is not None else await _tcp(where, port, timeout, prefix)
        connection = await asyncio.wait_for(
            asyncssh.connect(
                where, port=port, tunnel=tunnel or (), sock=sock, config=[],
                username=endpoint.user or (), known_hosts=known, host_key_alias=alias,
                client_factory=lambda: client, client_keys=keys, passphrase=None,
                agent_identities=identities or (),  # IdentitiesOnly and no key: no agent
                agent_path=None if identities == [] else (),
                connect_timeout=None, login_timeout=login_timeout,
                keepalive_interval=options.keepalive_interval,
                keepalive_count_max=options.keepalive_count_max,
            ),
            login_timeout + (timeout if tunnel is not None else 0) + 5,
        )
    except asyncssh.ConnectionLost as exc:
        if not client.banner_seen:
            raise ConnectError(f"{prefix}{where}:{port} accepted TCP but sent no SSH banner "
                               f"({exc.reason}): not an SSH server, or a tarpit") from exc
        raise ConnectError(f"{prefix}login to {where}:{port} did not complete: "
                           f"{exc.reason}") from exc
    except asyncssh.HostKeyNotVerifiable as exc:
        raise _host_key_error(exc, client, endpoint, where, files, policy, prefix) from exc
    except asyncssh.PermissionDenied as exc:
        raise AuthError(f"{prefix}authentication refused for {login}: {exc.reason}") from exc
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        raise AuthError(f"{prefix}cannot use a key for {login}: {exc}") from exc
    except asyncssh.ChannelOpenError as exc:
        raise ConnectError(f"{prefix}the jump host could not reach {where}:{port}: "
                           f"{exc.reason}") from exc
    except asyncssh.DisconnectError as exc:
        raise ConnectError(f"{prefix}disconnected by {where}:{port}: {exc.reason}") from exc
    except TimeoutError as exc:
        if not client.banner_seen:
            raise ConnectError(f"{prefix}{where}:{port} accepted TCP but sent no SSH banner "
                               f"within {login_timeout:.0f}s") from exc
        raise ConnectError(f"{prefix}login to {where}:{port} timed out after "
                           f"{login_timeout:.0f}s") from exc
    except OSError as exc:
        raise ConnectError(f"{prefix}cannot connect to {where}:{port}: "
                           f"{exc.strerror or exc}") from exc
    except asyncssh.Error as exc:
        raise ConnectError(f"{prefix}SSH error with {where}:{port}: {exc}") from exc
    if client.accepted and client.offered is not None:
        path = files[0]
        recorder = _recorders.setdefault(path, _KnownHostsRecorder(path))
        await recorder.record(alias or where, port, client.offered)
    return connection


async def _tcp(where: str, port: int, timeout: float, prefix: str) -> socket.socket:
    """A TCP connection to the first address of `where` that takes one, within `timeout`;
    refused, unreachable and timed out are each named as such."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(where, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(f"{prefix}cannot resolve {where}: {exc.strerror or exc}") from exc
    failure: ConnectError | None = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, addr), timeout)
            return sock
        except TimeoutError:
            failure = ConnectError(f"{prefix}timed out connecting to {where}:{port} (no TCP "
                                   f"answer within {timeout:.0f}s)")
        except ConnectionRefusedError:
            failure = ConnectError(f"{prefix}connection refused by {where}:{port} (nothing "
                                   "listens there)")
        except OSError as exc:
            failure = ConnectError(f"{prefix}cannot connect to {where}:{port}: "
                                   f"{exc.strerror or exc}")
        except BaseException:
            sock.close()
            raise
        sock.close()
    raise failure or ConnectError(f"{prefix}no address for {where}")


def _host_key_error(exc: asyncssh.HostKeyNotVerifiable, client: _HostKeyClient,
                    endpoint: Endpoint, where: str, files: list[Path], policy: HostKeyPolicy,
                    prefix: str) -> HostKeyError:
    """Revoked, changed (a possible man-in-the-middle) and unknown keys say so distinctly."""
    name = endpoint.host_key_alias or endpoint.host
    shown = name if endpoint.port == 22 else f"[{name}]:{endpoint.port}"
    on_file = ", ".join(map(str, files))
    if "revoked" in exc.reason.lower():
        return HostKeyError(f"{prefix}host key of {shown} is revoked (@revoked in {on_file})")
    offered = client.offered
    if offered is not None and _on_record(client.known, name, where, endpoint.port):
        host_keys, ca_keys, *_ = client.known.match(name, where or "", endpoint.port)
        return HostKeyChangedError(
            f"{prefix}HOST KEY CHANGED for {shown}: it offered {offered.get_fingerprint()}, "
            f"which differs from the key on record in {on_file}; a possible "
            "man-in-the-middle attack (or the host was reinstalled): verify the new key "
            "out of band before replacing the old one",
            offered=offered.get_fingerprint(), known_hosts=on_file,
            recorded=list(dict.fromkeys(key.get_fingerprint()
                                        for key in (*host_keys, *ca_keys))))
    if offered is None:
        return HostKeyError(f"{prefix}host key of {shown} not trusted ({exc.reason}); "
                            f"policy {policy.value}, known_hosts {on_file}")
    return HostKeyError(f"{prefix}host key of {shown} is unknown ({offered.get_fingerprint()}):"
                        f" not in {on_file}; policy {policy.value} (add it, or use "
                        "--host-key-policy accept-new)")
