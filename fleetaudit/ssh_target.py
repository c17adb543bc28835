"""Which machine, port, login, keys, jump chain and host-key rules an inventory host means.

One answer shared by the transport (to connect), the orchestrator (what to scan, what to
route-check, what not to scan at all) and preflight (what to show). It is computed from
the inventory and the ssh_config file alone, with asyncssh's own parser (so `Host`
patterns, `Match`, `Include` and `%h` tokens behave as asyncssh implements them), and it
never resolves a name or opens a socket: a `--dry-run` can use it.

As with Ansible, which runs `ssh ... <ansible_host>`, ssh_config `Host` patterns match the
host's `address` (ansible_host, else the inventory name). What the inventory sets wins over
ssh_config, and ssh_config over the defaults (port 22, the local user, ~/.ssh/known_hosts).
"""

from __future__ import annotations

import getpass
import os
import re
from pathlib import Path

from asyncssh.config import ConfigParseError, SSHClientConfig, SSHConfig
from pydantic import BaseModel, ConfigDict

from fleetaudit.errors import ConfigError
from fleetaudit.models import InventoryHost

DEFAULT_PORT = 22
MAX_JUMPS = 8  # a ProxyJump of a ProxyJump of ...: a loop in ssh_config ends here
_HOP = re.compile(r"^(?:ssh://)?(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]\s]+\]|[^:@/\[\]\s]+)"
                  r"(?::(?P<port>\d{1,5}))?/?$")


# StrictHostKeyChecking -> fleetaudit's --host-key-policy names ("ask" cannot ask: strict).
_STRICTNESS = {"yes": "strict", "true": "strict", "ask": "strict", "accept-new": "accept-new",
               "no": "off", "false": "off", "off": "off"}


class _Config(SSHClientConfig):
    """asyncssh's client config, plus StrictHostKeyChecking (which asyncssh does not read)."""

    _handlers = {  # noqa: RUF012 (asyncssh's own table, extended)
        **SSHClientConfig._handlers,
        "stricthostkeychecking": ("StrictHostKeyChecking", SSHConfig._set_string),
    }


class Endpoint(BaseModel):
    """One SSH server to log in to: the target or one of its jump hosts."""

    model_config = ConfigDict(frozen=True)

    asked: str  # what ssh was asked to reach: the string ssh_config's Host patterns match
    host: str  # after ssh_config's HostName: a name or an IP, never resolved here
    port: int = DEFAULT_PORT
    user: str | None = None  # None: the local user, as asyncssh and ssh do
    key_file: str | None = None  # the inventory's key: it must exist
    identity_files: tuple[str, ...] = ()  # ssh_config's IdentityFile (missing ones skipped)
    identities_only: bool = False  # IdentitiesOnly: the agent offers only those keys' own
    known_hosts: tuple[str, ...] = ()  # ssh_config's UserKnownHostsFile; () = default
    host_key_policy: str | None = None  # from StrictHostKeyChecking: strict|accept-new|off
    connect_timeout: float | None = None
    host_key_alias: str | None = None
    proxy_command: str | None = None  # not supported: connecting says so

    @property
    def login(self) -> str:
        where = self.host if self.port == DEFAULT_PORT else f"{self.host}:{self.port}"
        return f"{self.user}@{where}" if self.user else where


class SSHTarget(Endpoint):
    """The host itself, and the jump hosts (first to last) its connection goes through."""

    name: str
    jumps: tuple[Endpoint, ...] = ()
    config_file: str | None = None

    @property
    def jump_spec(self) -> str | None:
        """The chain as ProxyJump writes it, for messages."""
        return ",".join(j.login for j in self.jumps) or None


def default_config_path() -> Path:
    return Path("~/.ssh/config").expanduser()


def config_paths(ssh_config: Path | None) -> list[Path]:
    """The file to read: the one asked for (which must exist), else ~/.ssh/config if any."""
    if ssh_config is not None:
        if not ssh_config.exists():  # /dev/null is fine: `ssh -F /dev/null` means none
            raise ConfigError(f"ssh_config {ssh_config}: no such file")
        if ssh_config.is_dir():
            raise ConfigError(f"ssh_config {ssh_config}: is a directory")
        return [ssh_config]
    default = default_config_path()
    return [default] if default.is_file() and os.access(default, os.R_OK) else []


def local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _load(paths: list[Path], host: str, user: str | None, port: int | None) -> _Config:
    try:
        config = _Config.load(None, paths, False, False, False, local_user(),
                              () if user is None else user, host,
                              () if port is None else port)
    except (ConfigParseError, OSError, UnicodeDecodeError, ValueError) as exc:
        where = ", ".join(map(str, paths))
        raise ConfigError(f"ssh_config {where}: {exc}") from exc
    assert isinstance(config, _Config)
    return config


def _paths(values: object) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(str(Path(str(v)).expanduser()) for v in values)


def _endpoint(paths: list[Path], asked: str, *, user: str | None, port: int | None,
              key_file: str | None = None) -> tuple[Endpoint, str | None]:
    """ssh_config applied to one host; also its ProxyJump (None, or the chain to use)."""
    config = _load(paths, asked, user, port)
    strict = config.get("StrictHostKeyChecking")
    policy = _STRICTNESS.get(str(strict).lower()) if strict is not None else None
    if strict is not None and policy is None:
        raise ConfigError(f"ssh_config: StrictHostKeyChecking {strict!r} for {asked} is not "
                          "yes, no, ask or accept-new")
    timeout = config.get("ConnectTimeout")
    jump = config.get("ProxyJump")
    endpoint = Endpoint(
        asked=asked, host=str(config.get("Hostname") or asked),
        port=int(config.get("Port") or DEFAULT_PORT),  # type: ignore[call-overload]
        user=str(config.get("User")) if config.get("User") else None,
        key_file=key_file,
        identity_files=tuple(dict.fromkeys(_paths(config.get("IdentityFile")))),
        identities_only=bool(config.get("IdentitiesOnly")),
        known_hosts=_paths(config.get("UserKnownHostsFile")),
        host_key_policy=policy,
        connect_timeout=float(timeout) if isinstance(timeout, int) and timeout > 0 else None,
        host_key_alias=str(config.get("HostKeyAlias")) if config.get("HostKeyAlias") else None,
        proxy_command=str(config.get("ProxyCommand")) if config.get("ProxyCommand") else None,
    )
    return endpoint, str(jump) if jump and str(jump).lower() != "none" else None


def parse_jump(spec: str) -> list[tuple[str | None, str, int | None]]:
    """`[user@]host[:port][,...]` (or ssh:// URIs) -> (user, host, port) per hop."""
    hops = []
    for part in spec.split(","):
        match = _HOP.match(part.strip())
        if match is None or not 0 < int(match.group("port") or 22) < 65536:
            raise ConfigError(f"ProxyJump {spec!r}: {part.strip()!r} is not [user@]host[:port]")
        port = match.group("port")
        hops.append((match.group("user"), match.group("host").strip("[]"),
                     int(port) if port else None))
    return hops


def _chain(paths: list[Path], spec: str, depth: int = 0) -> tuple[Endpoint, ...]:
    """The hops of a ProxyJump spec, each with its own ssh_config; the first hop's own
    ProxyJump, if any, goes before it (as ssh's `-W` to it would use)."""
    if depth >= MAX_JUMPS:
        raise ConfigError(f"ProxyJump {spec!r}: more than {MAX_JUMPS} jump hosts (a loop?)")
    hops: list[Endpoint] = []
    for index, (user, host, port) in enumerate(parse_jump(spec)):
        endpoint, own_jump = _endpoint(paths, host, user=user, port=port)
        if index == 0 and own_jump is not None:
            hops.extend(_chain(paths, own_jump, depth + len(hops) + 1))
        hops.append(endpoint)
    if len(hops) > MAX_JUMPS:
        raise ConfigError(f"ProxyJump {spec!r}: more than {MAX_JUMPS} jump hosts (a loop?)")
    return tuple(hops)


def resolve_target(host: InventoryHost, ssh_config: Path | None = None) -> SSHTarget:
    """What connecting to `host` means, from the inventory and ssh_config; no DNS, no socket.

    ConfigError when the ssh_config file or a ProxyJump spec is unusable.
    """
    paths = config_paths(ssh_config)
    endpoint, config_jump = _endpoint(paths, host.address, user=host.user, port=host.port,
                                      key_file=host.key_file)
    spec = host.jump or config_jump  # the inventory's -J wins, as on ssh's command line
    jumps = _chain(paths, spec) if spec else ()
    if host.key_file:
        # A jump host ssh_config gives no IdentityFile is offered the inventory's key (and
        # the agent's): Ansible users give the fleet's key once, not per bastion. (ssh -J
        # would not pass -i on; this is a deliberate convenience, shown in the target.)
        jumps = tuple(j if j.identity_files else j.model_copy(update={"key_file": host.key_file})
                      for j in jumps)
    return SSHTarget(**endpoint.model_dump(), name=host.name, jumps=jumps,
                     config_file=str(paths[0]) if paths else None)
