"""Bringing a lab fleet up and down as one all-or-nothing operation."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from fleetaudit.errors import LabError, UnsafeTargetError
from fleetaudit.lab import hosts, net, proc
from fleetaudit.lab.state import (
    DEFAULT_BRIDGE,
    DEFAULT_STATE_DIR,
    DEFAULT_SUBNET,
    STATE_FILE,
    LabHost,
    LabInfo,
    LabState,
    RecordedProcess,
    load_state,
    save_state,
)
from fleetaudit.models import Proto

REQUIRED_TOOLS = ("ip", "iptables", "env", "mount")
INTERNAL_TOOLS = ("nsenter", "ss", "sudo")
PID_NAMESPACE_TOOLS = ("unshare", "nsenter")


def up(
    count: int,
    state_dir: Path = DEFAULT_STATE_DIR,
    subnet: str = DEFAULT_SUBNET,
    bridge: str = DEFAULT_BRIDGE,
    *,
    ns_prefix: str | None = None,
    ready_timeout: float | None = None,
    internal_plants: bool = False,
    bastion: bool = False,
    pid_namespaces: bool = False,
) -> LabInfo:
    """Build `count` SSH hosts in network namespaces behind `bridge`, with the planted cases.

    `internal_plants` adds the internal-view cases on the last three hosts (see
    `hosts.plan_internal`): a deleted binary, one in /tmp, a modified package binary, a
    host without ss/netstat, lab logins with and without sudo, a pre-fork listener, a UDP
    listener, a NAT redirect and an ss that hides a port. Off by default: reconcile does
    not judge them all yet.
    `bastion` adds `lab-bastion` on the bridge (a `fa-audit` login for jumping) and
    `lab-hidden` behind it, which the machine has no route to: reached only with ProxyJump.
    `pid_namespaces` gives each host its own PID namespace and /proc, as a real host has:
    without it every host sees every process of the machine (`ps`, /proc scans), though
    `ss -p` only its own sockets. PIDs then differ by view: `LabHost.sshd_pid` and
    `RecordedProcess.pid` stay the machine's, `seen_sshd_pid` and `host_pid` are what the
    host (and so an audit of it) reports. Off by default: tests compare the audit's PIDs
    with the machine's.
    All or nothing: on any failure (or Ctrl-C) everything made so far is removed again.
    """
    _require_root()
    _require_tools(internal_plants, pid_namespaces)
    if internal_plants and count < 3:
        raise LabError("the internal-view plants need a lab of at least 3 hosts")
    plan = net.plan_network(count + 1 if bastion else count, subnet, bridge, ns_prefix)
    if bastion:
        plan = net.add_bastion(plan)
    state_dir = Path(os.path.abspath(state_dir))  # sshd wants absolute paths in its config
    _check_dir_chain(state_dir.parent)
    created = _make_state_dir(state_dir)
    with _locked(state_dir):
        try:
            if (state_dir / STATE_FILE).exists():
                raise LabError(f"a lab is already up in {state_dir}: run `fleetaudit lab down` "
                               "first")
            if any(state_dir.iterdir()):
                raise LabError(f"{state_dir} is not empty and holds no lab: refusing to use it")
            _check_dir_chain(state_dir)
            net.preflight(plan)
        except BaseException:
            if created:
                _rmdir_quietly(state_dir)
            raise
        state = LabState(boot_id=proc.boot_id(), bridge=bridge,
                         bridge_alias=net.bridge_alias(state_dir))

        def save() -> None:
            save_state(state_dir, state)

        try:
            save()
            with _terminate_unwinds():
                return _build(plan, state_dir, state, save, ready_timeout, internal_plants,
                              pid_namespaces)
        except BaseException as exc:
            problems = _teardown(state_dir, state)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            if isinstance(exc, LabError):
                reason = str(exc)
            elif isinstance(exc, _Terminated):
                reason = "terminated by a signal"
            else:
                reason = f"{type(exc).__name__}: {exc}"
            if problems:
                raise LabError(f"lab up failed: {reason}; cleaning up also failed: "
                               f"{'; '.join(problems)} (state kept in {state_dir}, retry "
                               "`fleetaudit lab down`)") from exc
            raise LabError(f"lab up failed: {reason} (everything it made was removed)") from exc


def down(state_dir: Path = DEFAULT_STATE_DIR) -> None:
    """Remove exactly what `up` recorded in `state_dir`; a no-op when nothing is up there."""
    state_dir = Path(os.path.abspath(state_dir))
    if not state_dir.is_dir():
        return
    if not (state_dir / STATE_FILE).exists():
        if any(state_dir.iterdir()):
            raise LabError(f"{state_dir} holds no {STATE_FILE}: not a lab state directory, "
                           "left alone")
        return
    _require_root()
    with _locked(state_dir):
        state = load_state(state_dir)
        if state is None:  # another `down` finished first
            return
        problems = _teardown(state_dir, state)
    if problems:
        raise LabError(f"lab down incomplete: {'; '.join(problems)} "
                       f"(state kept in {state_dir}; run `fleetaudit lab down` again)")


def _build(
    plan: net.NetPlan, state_dir: Path, state: LabState, save: Callable[[], None],
    ready_timeout: float | None, internal_plants: bool = False, pid_namespaces: bool = False,
) -> LabInfo:
    hosts.ensure_privsep_dir()
    packages = {path: hosts.package_of(path) for path in (hosts.SSHD, hosts.PYTHON)}
    # Plants go on the ordinary hosts; the bastion and the host behind it carry none.
    names = [h.name for h in plan.hosts if h.name != net.BASTION]
    every = [*plan.hosts, *([plan.hidden] if plan.hidden else [])]
    specs = hosts.plan_plants(names, state_dir, packages)
    internal = hosts.plan_internal(names, state_dir, packages) if internal_plants else None
    setups: dict[str, hosts.HostSetup] = {}
    users = list(internal.users) if internal is not None else []
    if internal is not None:
        specs += internal.specs
        setups = {setup.host: setup for setup in internal.setups}
    jumps: dict[str, str] = {}
    if plan.hidden is not None:
        setups[net.BASTION], jump_user = hosts.bastion_setup(net.BASTION, state_dir)
        users.append(jump_user)
        jumps[plan.hidden.name] = f"{jump_user.name}@{plan.hosts[-1].address}"
    ports: dict[str, set[int]] = {h.name: {hosts.SSH_PORT} for h in every}
    for spec in specs:
        if spec.sshd_port:
            ports[spec.plant.host].add(spec.plant.port)

    client_key = state_dir / "client_ed25519"
    client_public = hosts.write_keypair(client_key, "fleetaudit-lab-client")
    authorized_keys = state_dir / "authorized_keys"
    _write(authorized_keys, client_public + "\n")
    _mkdir(state_dir / "hosts")
    known: list[tuple[str, int, str]] = []
    for host in every:
        files = hosts.host_files(state_dir, host.name)
        _mkdir(files.dir)
        public = hosts.write_keypair(files.host_key, host.name)
        _write(files.sshd_config, hosts.render_sshd_config(
            ports=sorted(ports[host.name]), host_key=files.host_key, pid_file=files.pid_file,
            authorized_keys=authorized_keys))
        known += [(str(host.address), port, public) for port in sorted(ports[host.name])]
    known_hosts = state_dir / "known_hosts"
    _write(known_hosts, hosts.render_known_hosts(known))
    inventory, inventory_ini = state_dir / "inventory.yml", state_dir / "inventory.ini"
    planted = sorted({spec.plant.host for spec in specs})
    for path, render in ((inventory, hosts.render_inventory),
                         (inventory_ini, hosts.render_inventory_ini)):
        _write(path, render([(h.name, str(h.address)) for h in every], key_file=client_key,
                            bridge=plan.bridge, planted=planted, jumps=jumps))
    hosts.check_sshd_config(hosts.host_files(state_dir, names[0]).sshd_config)

    hosts.prepare_root_home(state_dir)
    if internal is not None:
        _make_tmp_dir(internal.tmp_dir, state, save)
    for setup in setups.values():
        setup.prepare(state_dir)

    net.raise_neigh_limits(len(every), state, save)
    net.create(plan, state, save)

    sshd: dict[str, RecordedProcess] = {}
    try:
        for host in every:
            sshd[host.name] = hosts.start_sshd(hosts.host_files(state_dir, host.name),
                                               host.netns, host.name, setups.get(host.name),
                                               pid_namespace=pid_namespaces)
            state.processes.append(sshd[host.name])
    finally:
        save()
    netns = {h.name: h.netns for h in every}
    timeout = ready_timeout or 30 + 0.05 * len(every)
    # sshd first: a plant that joins its mount namespace must find the binds in place.
    hosts.wait_listening([(sshd[name], ports[name], hosts.host_files(state_dir, name).log)
                          for name in (h.name for h in every)], timeout)
    targets: list[tuple[RecordedProcess, set[int], Path]] = []
    udp: dict[int, set[int]] = {}
    try:
        for spec in specs:
            plant = spec.plant
            started = hosts.start_plant(spec, netns[plant.host], state_dir,
                                        enter=sshd[plant.host].pid,
                                        pid_namespace=pid_namespaces)
            if started is not None:
                state.processes.append(started)
                log = hosts.host_files(state_dir, plant.host).dir / f"plant-{plant.port}.log"
                if plant.proto is Proto.UDP:
                    udp[started.pid] = {plant.port}
                    targets.append((started, set(), log))
                else:
                    targets.append((started, {plant.port}, log))
    finally:
        save()
    hosts.wait_listening(targets, timeout, udp)
    for spec in specs:
        if spec.delete_after_start and spec.plant.exe is not None:
            Path(spec.plant.exe).unlink()

    for probe in {plan.hosts[0].address, plan.hosts[-1].address}:
        try:
            net.check_route(str(probe), plan.bridge)
        except UnsafeTargetError as exc:
            raise LabError(f"the lab is not reachable through its bridge: {exc}") from exc

    info = LabInfo(
        state_dir=state_dir, bridge=plan.bridge, subnet=str(plan.subnet),
        gateway=str(plan.gateway), inventory=inventory, inventory_ini=inventory_ini,
        known_hosts=known_hosts, client_key=client_key,
        hosts=[LabHost(name=h.name, address=str(h.address), netns=h.netns, veth=h.veth,
                       sshd_pid=sshd[h.name].pid, sshd_host_pid=sshd[h.name].host_pid,
                       hidden_tools=list(setups[h.name].hidden_tools) if h.name in setups
                       else [],
                       replaced=list(setups[h.name].replaced) if h.name in setups else [],
                       jump=jumps.get(h.name))
               for h in every],
        plants=[spec.plant for spec in specs],
        users=users,
        pid_namespaces=pid_namespaces,
    )
    state.info = info
    state.status = "up"
    save()
    return info


def _teardown(state_dir: Path, state: LabState) -> list[str]:
    """Stop recorded processes, delete recorded network objects, restore sysctls, drop state."""
    problems: list[str] = []
    survivors: list[RecordedProcess] = []
    # Start times count from boot: records from another boot match nothing alive now.
    if state.boot_id == proc.boot_id():
        survivors = proc.stop(state.processes)
        survivors += proc.stop(proc.in_namespaces(state.netns))
        if survivors:
            problems.append("processes would not die: " + ", ".join(
                f"{p.pid} ({p.host} {p.role})" for p in survivors[:5]))
    for step in (net.destroy, net.restore_sysctls, _remove_paths):
        try:
            problems += step(state)
        except Exception as exc:  # keep going: the next step may still succeed
            problems.append(f"{type(exc).__name__}: {exc}")
    if problems:
        state.processes = survivors
        try:
            save_state(state_dir, state)
        except OSError as exc:
            problems.append(f"cannot update {state_dir / STATE_FILE}: {exc}")
        return problems
    try:
        shutil.rmtree(state_dir)
    except OSError as exc:
        problems.append(f"cannot remove {state_dir}: {exc}")
    return problems


def _make_tmp_dir(path: Path, state: LabState, save: Callable[[], None]) -> None:
    """Recorded before it exists, created exclusively: never a directory someone planted."""
    state.paths.append(str(path))
    save()
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        state.paths.remove(str(path))
        save()
        raise LabError(f"{path} already exists: another lab's, or not ours; left alone") from None


def _remove_paths(state: LabState) -> list[str]:
    """Remove the recorded directories outside the state dir, if they are still ours."""
    problems = []
    for recorded in list(state.paths):
        path = Path(recorded)
        try:
            info = path.lstat()
        except FileNotFoundError:
            state.paths.remove(recorded)
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
            problems.append(f"{path} is not the root-owned directory the lab made: left alone")
            continue
        try:
            shutil.rmtree(path)
        except OSError as exc:
            problems.append(f"cannot remove {path}: {exc}")
            continue
        state.paths.remove(recorded)
    return problems


class _Terminated(BaseException):
    """SIGTERM during bring-up: unwinds through the cleanup like Ctrl-C does."""


@contextmanager
def _terminate_unwinds() -> Iterator[None]:
    """Without this, `kill` of a half-built lab's creator would orphan what it made."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- preconditions and the state directory ---------------------------------------------


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab fleet needs root (network namespaces, a bridge, sshd): "
                       "run it as root")


def _require_tools(internal_plants: bool = False, pid_namespaces: bool = False) -> None:
    needed = (REQUIRED_TOOLS + (INTERNAL_TOOLS if internal_plants else ())
              + (PID_NAMESPACE_TOOLS if pid_namespaces else ()))
    missing = [tool for tool in needed if shutil.which(tool, path=proc.CLEAN_PATH) is None]
    missing += [str(p) for p in (hosts.SSHD, hosts.PYTHON) if not os.access(p, os.X_OK)]
    if missing:
        raise LabError(f"the lab needs {', '.join(missing)}: not found (install iproute2, "
                       "iptables, openssh-server and python3.11)")


def _check_dir_chain(path: Path) -> None:
    """sshd's StrictModes refuses key files below a directory others can write (like /tmp)."""
    for directory in (path, *path.parents):
        try:
            info = directory.stat()
        except FileNotFoundError as exc:
            raise LabError(f"{directory} does not exist") from exc
        if not stat.S_ISDIR(info.st_mode):
            raise LabError(f"{directory} is not a directory")
        if info.st_uid != 0 or info.st_mode & 0o022:
            raise LabError(f"{directory} must be owned by root and writable by no one else "
                           "(sshd refuses keys below it): use a directory under /run")


def _make_state_dir(state_dir: Path) -> bool:
    try:
        state_dir.mkdir(mode=0o755)
    except FileExistsError:
        if not state_dir.is_dir():
            raise LabError(f"{state_dir} exists and is not a directory") from None
        return False
    except OSError as exc:
        raise LabError(f"cannot create {state_dir}: {exc}") from exc
    state_dir.chmod(0o755)
    return True


def _rmdir_quietly(path: Path) -> None:
    with suppress(OSError):
        path.rmdir()


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One lab command per state directory at a time."""
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(f"another `fleetaudit lab` command is working on {state_dir}") from None
        yield
    finally:
        os.close(fd)


def _mkdir(path: Path) -> None:
    path.mkdir(mode=0o755)
    path.chmod(0o755)  # whatever the umask: StrictModes checks every directory on the way


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), mode)
        out.write(text)
