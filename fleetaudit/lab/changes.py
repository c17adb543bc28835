"""Changes made to a running lab between two audits, as drift tests need them.

Three kinds, each what a real fleet sees between two nightly audits: a new listener
on a host, a service restarted from a different file under the same path (a binary
replaced in that service's private mount namespace: package and version unchanged,
sha256 not), and a service stopped. Every process started here is recorded in the
lab's state, so `fleetaudit lab down` stops it like the lab's own.
"""

from __future__ import annotations

from pathlib import Path

from fleetaudit.errors import LabError
from fleetaudit.lab import hosts, proc
from fleetaudit.lab.state import LabInfo, RecordedProcess, load_state, save_state

# Appended to the copy that replaces a binary: the same program, another sha256.
REPLACED_MARK = b"\n# fleetaudit lab: replaced under the same path\n"
_READY_SECONDS = 30.0


def start_listener(info: LabInfo, host: str, port: int) -> RecordedProcess:
    """A new web server on 0.0.0.0:port of `host`, run by the packaged interpreter."""
    netns = info.host(host).netns
    base = hosts.host_files(info.state_dir, host).dir
    www = base / f"www-tcp-{port}"
    www.mkdir(mode=0o755, exist_ok=True)
    argv = [str(hosts.PYTHON), "-m", "http.server", str(port), "--bind", hosts.ANY]
    started = proc.spawn_in_netns(netns, argv, host=host, role=f"plant:{port}",
                                  log=base / f"plant-{port}.log", cwd=www)
    _remember(info.state_dir, started)
    hosts.wait_listening([(started, {port}, base / f"plant-{port}.log")], _READY_SECONDS)
    return started


def stop_service(info: LabInfo, host: str, port: int) -> RecordedProcess:
    """Stop the lab's own service on `host`:`port` (one the lab started)."""
    recorded = _plant(info.state_dir, host, port)
    if proc.stop([recorded]):
        raise LabError(f"{host}: the service on port {port} would not stop")
    _forget(info.state_dir, recorded)
    return recorded


def replace_binary(info: LabInfo, host: str, port: int) -> tuple[RecordedProcess, Path]:
    """Restart the service on `host`:`port` with its executable replaced by a different
    file under the same path, in the service's own private mount namespace only.

    Returns the new process and the file now behind the path. The machine's file and the
    host's sshd (so the package database an audit reads) are untouched: only the running
    binary differs, which is what a replaced binary looks like from a package manager.
    """
    old = _plant(info.state_dir, host, port)
    exe = Path(old.argv[0])
    base = hosts.host_files(info.state_dir, host).dir
    copy = base / f"{exe.name}.replaced-{port}"
    hosts.write_file(hosts.FileSpec(path=copy, mode=0o755, copy_from=exe,
                                    append=REPLACED_MARK), host)
    if proc.stop([old]):
        raise LabError(f"{host}: the service on port {port} would not stop")
    _forget(info.state_dir, old)
    # `ip netns exec` gave this shell a mount namespace of its own: the bind stays in it.
    script = 'set -e; mount --bind "$0" "$1"; shift; exec "$@"'
    argv = ["/bin/sh", "-c", script, str(copy), str(exe), *old.argv]
    log = base / f"plant-{port}.log"
    cwd = base / f"www-tcp-{port}"
    cwd.mkdir(mode=0o755, exist_ok=True)
    started = proc.spawn_in_netns(info.host(host).netns, argv, host=host,
                                  role=f"plant:{port}", log=log, cwd=cwd)
    _remember(info.state_dir, started)
    hosts.wait_listening([(started, {port}, log)], _READY_SECONDS)
    return started, copy


def _plant(state_dir: Path, host: str, port: int) -> RecordedProcess:
    state = load_state(state_dir)
    if state is None:
        raise LabError(f"no lab in {state_dir}")
    for recorded in state.processes:
        if recorded.host == host and recorded.role == f"plant:{port}" and proc.is_ours(recorded):
            return recorded
    raise LabError(f"{host}: no running lab service on port {port}")


def _remember(state_dir: Path, started: RecordedProcess) -> None:
    state = load_state(state_dir)
    if state is None:
        raise LabError(f"no lab in {state_dir}")
    state.processes.append(started)
    save_state(state_dir, state)


def _forget(state_dir: Path, recorded: RecordedProcess) -> None:
    state = load_state(state_dir)
    if state is None:
        return
    state.processes = [p for p in state.processes if p != recorded]
    save_state(state_dir, state)
