"""From a host's effective variables to how fleetaudit reaches it (`InventoryHost`).

Ansible's aliases are honoured with its rule that the last name of each list wins
(`ansible_ssh_host` over `ansible_host`), and a jump host is taken from
`ansible_ssh_common_args`/`ansible_ssh_extra_args` (`-J`, `-o ProxyJump=`, or a
`ProxyCommand` that is plain `ssh -W %h:%p`). Every value that will reach ssh or a
shell is checked here, so a hostile inventory is refused before any host is contacted.
A value with Jinja in it is not evaluated: the host carries a note, and cannot be
audited until the value is written out.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import ValidationError

from fleetaudit import addresses
from fleetaudit.models import Connection, InventoryHost

ALIASES: dict[str, tuple[str, ...]] = {
    "address": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "key_file": ("ansible_private_key_file", "ansible_ssh_private_key_file"),
    "connection": ("ansible_connection",),
    "become": ("ansible_become",),
    "become_user": ("ansible_become_user",),
    "become_method": ("ansible_become_method",),
    "jump": ("ansible_ssh_common_args", "ansible_ssh_extra_args"),
    "route_dev": ("fleetaudit_route_dev",),
}
_TRUE = {"y", "yes", "on", "1", "true", "t"}
_FALSE = {"n", "no", "off", "0", "false", "f"}
_CONNECTIONS = {"ssh": Connection.SSH, "smart": Connection.SSH, "paramiko": Connection.SSH,
                "paramiko_ssh": Connection.SSH, "ansible.builtin.ssh": Connection.SSH,
                "ansible.builtin.paramiko_ssh": Connection.SSH, "local": Connection.LOCAL,
                "ansible.builtin.local": Connection.LOCAL}
# A name as people write them (letters of any script, digits, . _ - : %), never a shell
# word or an ssh option: no leading dash, no space, quote, $ ; | & ( ) < > ` * ? ! { } \.
HOST_NAME = re.compile(r"^(?!-)[\w.:%\[\]@+-]{1,253}$")
_LABEL = re.compile(r"^(?!-)[\w-]{1,63}$")
_SCOPE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}")  # Linux: IFNAMSIZ 16
USER_NAME = re.compile(r"^(?!-)[\w.@$-]{1,64}$")
_ROUTE_DEV = re.compile(r"^[\w.@:-]{1,15}$")
_HOP = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:\s\[\]]+)(?::(?P<port>\d+))?$")


class HostEntryError(ValueError):
    """A value of this host's entry is unusable; `variable` says which one."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


def is_templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def valid_address(text: str) -> bool:
    """An IP address, or a DNS-style host name (no shell or ssh option can hide in it).
    An IPv6 scope is an interface name or number: Python's parser takes any text there."""
    if addresses.is_ip(text):
        scope = text.strip("[]").partition("%")[2]
        return not scope or bool(_SCOPE.fullmatch(scope))
    labels = text.rstrip(".").split(".")
    return 0 < len(text) <= 253 and all(_LABEL.match(label) for label in labels)


def _pick(variables: dict[str, Any], field: str) -> tuple[str | None, Any]:
    """The alias that wins (the last one set, as in Ansible's option lists) and its value."""
    chosen: tuple[str | None, Any] = (None, None)
    for name in ALIASES[field]:
        if variables.get(name) is not None:
            chosen = (name, variables[name])
    return chosen


def _boolean(variable: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise HostEntryError(variable, f"{variable}: {value!r} is not a boolean")


def jump_from_args(variable: str, value: Any) -> str | None:
    """The ProxyJump an ssh argument string sets, or None; HostEntryError for a proxy
    fleetaudit cannot follow (a ProxyCommand other than plain `ssh -W %h:%p`)."""
    try:
        words = shlex.split(str(value))
    except ValueError as exc:
        raise HostEntryError(variable, f"{variable}: cannot split {value!r}: {exc}") from exc
    index = 0
    while index < len(words):
        word = words[index]
        option: str | None = None
        if word == "-J" and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("-J") and len(word) > 2:
            return word[2:]
        if word == "-o" and index + 1 < len(words):
            option, index = words[index + 1], index + 1
        elif word.startswith("-o") and len(word) > 2:
            option = word[2:]
        if option is not None:
            key, _, rest = option.replace("=", " ", 1).partition(" ")
            if key.lower() == "proxyjump":
                return rest.strip()
            if key.lower() == "proxycommand":
                return _jump_from_proxy_command(variable, rest.strip())
        index += 1
    return None


def _jump_from_proxy_command(variable: str, command: str) -> str | None:
    if command.lower() == "none":
        return None
    words = shlex.split(command)
    if not words or words[0].rsplit("/", 1)[-1] != "ssh" or "%h:%p" not in words:
        raise HostEntryError(variable, f"{variable}: ProxyCommand {command!r} is not "
                                       "`ssh -W %h:%p HOST`; fleetaudit follows only that "
                                       "form (or ProxyJump)")
    user = port = None
    destination: str | None = None
    index = 1
    takes_value = set("BbcDEeFIiJLlmOopQRSWw")
    while index < len(words):
        word = words[index]
        if word.startswith("-") and len(word) >= 2:
            flag = word[1]
            value = word[2:] or (words[index + 1] if index + 1 < len(words) else "")
            if flag in takes_value and not word[2:]:
                index += 1
            if flag == "l":
                user = value
            elif flag == "p":
                port = value
            elif flag == "o" and value.lower().startswith(("user=", "user ")):
                user = value[5:]
            elif flag == "o" and value.lower().startswith(("port=", "port ")):
                port = value[5:]
        elif destination is None:
            destination = word
        index += 1
    if destination is None:
        raise HostEntryError(variable, f"{variable}: ProxyCommand {command!r} names no host")
    hop = destination if user is None or "@" in destination else f"{user}@{destination}"
    return f"{hop}:{port}" if port else hop


def check_jump(variable: str, spec: str) -> str:
    for hop in spec.split(","):
        match = _HOP.match(hop.strip())
        if not match or not valid_address(match.group("host").strip("[]")) or (
                match.group("user") and not USER_NAME.match(match.group("user"))) or (
                match.group("port") and not 0 < int(match.group("port")) < 65536):
            raise HostEntryError(variable, f"{variable}: jump host {hop!r} is not "
                                           "[user@]host[:port]")
    return spec


def connection_of(name: str, groups: list[str], variables: dict[str, Any],
                  origins: dict[str, str]) -> InventoryHost:
    """The host's InventoryHost; HostEntryError for a value that must not reach ssh."""
    if not HOST_NAME.match(name):
        raise HostEntryError("", f"host name {name!r} is not a valid host name")
    fields: dict[str, Any] = {"name": name, "groups": groups, "variables": variables}
    used: dict[str, str] = {}
    notes: list[str] = []
    unresolved: list[str] = []

    def take(field: str) -> tuple[str | None, Any]:
        variable, value = _pick(variables, field)
        if variable is None:
            return None, None
        used[field] = f"{origins.get(variable, '?')} {variable}"
        if is_templated(value):
            notes.append(f"{variable} is a Jinja template fleetaudit does not evaluate: "
                         f"{str(value)[:120]}")
            unresolved.append(variable)
            return variable, None
        return variable, value

    variable, address = take("address")
    fields["address"] = name if variable is None else str(variables[variable])
    if address is not None and not valid_address(str(address)):
        raise HostEntryError(variable or "", f"{variable}: {address!r} is not a host name or "
                                             "an IP address")
    if address is None and variable is None and not valid_address(name):
        notes.append(f"the name {name!r} is not an address; ssh_config must map it (HostName)")
    variable, port = take("port")
    if port is not None:
        try:
            fields["port"] = int(str(port))
            if not 0 < fields["port"] < 65536:
                raise ValueError
        except ValueError as exc:
            raise HostEntryError(variable or "", f"{variable}: {port!r} is not a port") from exc
    variable, user = take("user")
    if user is not None:
        if not USER_NAME.match(str(user)):
            raise HostEntryError(variable or "", f"{variable}: {user!r} is not a user name")
        fields["user"] = str(user)
    variable, key = take("key_file")
    if key is not None:
        if str(key).startswith("-") or "\n" in str(key):
            raise HostEntryError(variable or "", f"{variable}: {key!r} is not a key path")
        fields["key_file"] = str(key)
    variable, kind = take("connection")
    if kind is not None:
        connection = _CONNECTIONS.get(str(kind))
        if connection is None:
            unresolved.append(variable or "ansible_connection")
            notes.append(f"ansible_connection {kind!r} is not supported (ssh or local): "
                         "this host is not audited")
        else:
            fields["connection"] = connection
    variable, become = take("become")
    if become is not None:
        fields["become"] = _boolean(variable or "", become)
    variable, method = take("become_method")
    if fields.get("become") and method is not None and str(method) != "sudo":
        unresolved.append(variable or "ansible_become_method")
        notes.append(f"ansible_become_method {method!r} is not supported (fleetaudit runs "
                     "`sudo -n`): this host is not audited")
    variable, become_user = take("become_user")
    if become_user is not None:
        if not USER_NAME.match(str(become_user)) and not re.match(r"^#\d{1,10}$",
                                                                  str(become_user)):
            raise HostEntryError(variable or "", f"{variable}: {become_user!r} is not a "
                                                 "user name")
        fields["become_user"] = str(become_user)
    for jump_variable in ALIASES["jump"]:
        value = variables.get(jump_variable)
        if value is None or "jump" in fields:
            continue
        if is_templated(value):
            notes.append(f"{jump_variable} is a Jinja template fleetaudit does not "
                         f"evaluate: {str(value)[:120]}")
            unresolved.append(jump_variable)
            continue
        spec = jump_from_args(jump_variable, value)
        if spec:
            fields["jump"] = check_jump(jump_variable, spec)
            used["jump"] = f"{origins.get(jump_variable, '?')} {jump_variable}"
    variable, route_dev = take("route_dev")
    if route_dev is not None:
        if not _ROUTE_DEV.match(str(route_dev)):
            raise HostEntryError(variable or "", f"{variable}: {route_dev!r} is not an "
                                                 "interface name")
        fields["route_dev"] = str(route_dev)
    fields["origins"] = used
    fields["notes"] = notes
    fields["unresolved"] = unresolved
    try:
        return InventoryHost(**fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise HostEntryError(str(problem["loc"][0]), f"{problem['loc'][0]}: "
                                                     f"{problem['msg']}") from exc
