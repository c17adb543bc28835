"""What a lab is, as the rest of fleetaudit sees it, and what `down` needs to undo it.

`LabInfo` is the public description (hosts, files, planted cases). `LabState` wraps it
with every resource `up` created, recorded *before* it is created, so `down` (or the
cleanup of a failed `up`) removes exactly those and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from fleetaudit.errors import LabError
from fleetaudit.models import Port, Proto, VerdictKind

DEFAULT_STATE_DIR = Path("/run/fleetaudit-lab")
DEFAULT_BRIDGE = "fa-br0"
DEFAULT_SUBNET = "10.99.0.0/16"
STATE_FILE = "lab.json"
STATE_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabHost(_Frozen):
    name: str
    address: str
    netns: str
    veth: str
    sshd_pid: int  # as the machine sees it: for nsenter, /proc/PID/ns, signals
    # As the host itself sees it (1 in a PID namespace of its own); None: sshd_pid. What
    # an audit of the host reports as the owner of port 22: see `seen_sshd_pid`.
    sshd_host_pid: int | None = None
    # What this host's private mount namespace (its sshd and what runs inside it) changes:
    # tools made absent, files replaced by a modified copy. Other hosts see the machine's.
    hidden_tools: list[str] = []
    replaced: list[str] = []
    # Reached only through this ProxyJump (the bastion's hidden host); None: on the bridge.
    jump: str | None = None

    @property
    def seen_sshd_pid(self) -> int:
        """sshd's PID as an audit of this host reports it."""
        return self.sshd_pid if self.sshd_host_pid is None else self.sshd_host_pid


class Plant(_Frozen):
    """One planted case and what a correct audit must say about it."""

    host: str
    proto: Proto
    port: Port
    bind: str
    description: str
    exe: str | None  # None: no process of its own serves it (a NAT rule, say)
    package: str | None
    verdict: VerdictKind


class LabUser(_Frozen):
    """A login that exists only inside one lab host's mount namespace (its own /etc/passwd)."""

    host: str
    name: str
    uid: int
    sudo: bool  # `sudo -n /bin/sh` allowed, by that namespace's own /etc/sudoers


class LabInfo(_Frozen):
    state_dir: Path
    bridge: str
    subnet: str
    gateway: str
    inventory: Path
    known_hosts: Path
    client_key: Path
    hosts: list[LabHost]
    inventory_ini: Path | None = None  # the same inventory in Ansible's INI form
    plants: list[Plant]
    users: list[LabUser] = []
    # Each host has its own PID namespace (its own /proc): `up(pid_namespaces=True)`.
    pid_namespaces: bool = False

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"no lab host named {name!r}")


class RecordedProcess(_Frozen):
    """A process `up` started; start_time (clock ticks since boot) tells it from a reused PID."""

    pid: int  # as the machine sees it: what `down` signals
    start_time: int
    host: str
    role: str
    argv: list[str]
    # As the host itself sees it (ss, /proc inside it), when it has a PID namespace of its
    # own; None: the machine's PID, `pid`.
    host_pid: int | None = None


class SysctlChange(_Frozen):
    path: str
    old: str
    new: str


class LabState(BaseModel):
    """Mutable while `up` works; saved to lab.json at each checkpoint."""

    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    status: Literal["building", "up"] = "building"
    boot_id: str
    bridge: str
    bridge_alias: str
    bridge_created: bool = False
    netns: list[str] = []
    veths: list[str] = []
    processes: list[RecordedProcess] = []
    sysctls: list[SysctlChange] = []
    # `unreachable` routes added to the machine's table (the bastion's hidden /30).
    routes: list[str] = []
    # Made outside the state directory (a plant's directory under /tmp): removed by path.
    paths: list[str] = []
    info: LabInfo | None = None


def save_state(state_dir: Path, state: LabState) -> None:
    """Write atomically, so a crash mid-write never leaves `down` without a record."""
    path = state_dir / STATE_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(state.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_state(state_dir: Path) -> LabState | None:
    path = state_dir / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LabError(f"cannot read {path}: {exc}") from exc
    try:
        return LabState.model_validate_json(text)
    except ValidationError as exc:
        raise LabError(f"{path} is not a lab state file this version understands: {exc}") from exc


def load_info(state_dir: Path = DEFAULT_STATE_DIR) -> LabInfo:
    """The description of the lab that is up in `state_dir`."""
    state = load_state(state_dir)
    if state is None or state.status != "up" or state.info is None:
        raise LabError(f"no lab is up in {state_dir} (start one with `fleetaudit lab up`)")
    return state.info
