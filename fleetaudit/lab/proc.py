"""Running commands and owning processes: start detached, stop only what we can prove is ours."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from fleetaudit.errors import LabError
from fleetaudit.lab.state import RecordedProcess

CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Commands we run get a fixed environment, so nothing of the caller's leaks into a host.
CLEAN_ENV = {"PATH": CLEAN_PATH, "LC_ALL": "C"}
_TCP_LISTEN = "0A"
_UDP_UNCONN = "07"

# Popen objects of the services we started in this interpreter (for a service in a PID
# namespace, its launcher's), by the service's PID: kept so `down` can reap them (a killed
# child stays a zombie until waited for) and Popen.__del__ stays quiet.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = 60) -> str:
    """Run a command to completion; any failure becomes a LabError naming the command."""
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=timeout,
            env=CLEAN_ENV, check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} not found: is it installed?") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:g}s") from exc
    except OSError as exc:
        raise LabError(f"cannot run `{' '.join(argv)}`: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise LabError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {detail}")
    return done.stdout


def boot_id() -> str:
    """Start times count from boot, so a record from another boot proves nothing."""
    return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after its last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_ours(proc: RecordedProcess) -> bool:
    """True while `proc` is still the very process we started and has not exited."""
    fields = _stat_fields(proc.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == proc.start_time


def spawn_in_netns(
    netns: str, argv: Sequence[str], *, host: str, role: str, log: Path, cwd: Path,
    enter: int | None = None, enter_mount: bool = True, pid_namespace: bool = False,
) -> RecordedProcess:
    """Start a detached service inside `netns` with a clean environment.

    `ip netns exec` (which also gives the service a mount namespace of its own, whose
    mounts never propagate back) and `env` both exec, so the PID we get is the service's
    own. With `enter`, the service joins the network namespace of that PID instead, and
    its mount namespace unless `enter_mount` is false (nsenter execs too), so it sees the
    files that host's sshd sees.

    `pid_namespace`: the service gets the host's own process table, as on a real host.
    Without `enter` it starts a new PID namespace and is its PID 1; with `enter` it joins
    that PID's namespace. Either way a small `sh` stays outside the namespace as its
    parent (a process cannot move itself into a PID namespace, only its children) and
    reports the service's PID as the machine sees it: that is the PID recorded, signalled
    and polled, and `host_pid` is the one the host itself (ss, /proc) shows.
    """
    clean = ["env", "-i", f"PATH={CLEAN_PATH}", *argv]
    if enter is None:
        prefix = ["ip", "netns", "exec", netns, *(["unshare", "--pid", "--"] if pid_namespace
                                                  else [])]
    else:
        prefix = ["nsenter", f"--target={enter}", "--net",
                  *(["--mount"] if enter_mount else []),
                  *(["--pid", "--no-fork"] if pid_namespace else []), f"--wd={cwd}"]
    # The launcher's first child is the namespace's PID 1 (or joins it); it writes its
    # output to the log, and the launcher prints its PID on the pipe.
    full = [*prefix, "/bin/sh", "-c", '"$@" >&2 & echo $!; exec >&-; wait $!',
            "fa-lab-launch", *clean] if pid_namespace else [*prefix, *clean]
    with open(log, "ab") as out:
        try:
            child = subprocess.Popen(
                full, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pid_namespace else out, stderr=out,
                cwd=cwd, env=CLEAN_ENV, start_new_session=True,
            )
        except OSError as exc:
            raise LabError(f"{host}: cannot start {role} ({' '.join(argv)}): {exc}") from exc
    pid, host_pid = child.pid, None
    if pid_namespace:
        pid = _launched_pid(child, host, role, log)
        host_pid = namespace_pid(pid)
    started = start_time(pid)
    if started is None or (pid_namespace and host_pid is None):
        # Our own child cannot vanish before we wait; the launcher's can, if it died.
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)  # then its launcher exits too: reap it
        raise LabError(f"{host}: {role} vanished right after start: {log_tail(log)}")
    _CHILDREN[pid] = child
    return RecordedProcess(pid=pid, start_time=started, host=host, role=role,
                           argv=list(argv), host_pid=host_pid)


def _launched_pid(launcher: subprocess.Popen[bytes], host: str, role: str, log: Path,
                  timeout: float = 30) -> int:
    """The PID the launcher printed: its background child, the service."""
    assert launcher.stdout is not None
    data = b""
    deadline = time.monotonic() + timeout
    with launcher.stdout:
        while b"\n" not in data:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([launcher.stdout], [], [], max(left, 0))
            chunk = os.read(launcher.stdout.fileno(), 64) if ready else b""
            if not chunk:
                break
            data += chunk
    text = data.decode("ascii", errors="replace").strip()
    if not text.isdigit():
        with contextlib.suppress(ProcessLookupError):
            launcher.kill()
        launcher.wait()
        raise LabError(f"{host}: cannot start {role} in a PID namespace of its own: "
                       f"{log_tail(log) or 'no PID reported'}")
    return int(text)


def namespace_pid(pid: int) -> int | None:
    """`pid` as its own (innermost) PID namespace numbers it; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return pid  # a kernel without NSpid (before 4.1): no nested namespaces to number


def exited(proc: RecordedProcess) -> int | None:
    """The exit status if our own child `proc` has died, else None (also for non-children)."""
    child = _CHILDREN.get(proc.pid)
    if child is None:
        return None
    return child.poll()


def _reap(proc: RecordedProcess) -> bool:
    """True once `proc` is gone; reaps it when it is our child so it does not linger as a zombie."""
    child = _CHILDREN.get(proc.pid)
    if child is not None:
        if child.poll() is None:
            return False
        del _CHILDREN[proc.pid]
    # A PID-namespace launcher is gone once its service is; the service itself is
    # checked anyway (someone else may have killed the launcher first).
    return not is_ours(proc)


def stop(procs: Iterable[RecordedProcess], *, grace: float = 5.0) -> list[RecordedProcess]:
    """SIGTERM, then SIGKILL after `grace` seconds; returns the ones still alive after that.

    A PID whose start time differs from the record belongs to someone else now: left alone.
    """
    pending = [p for p in procs if not _reap(p)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        for proc in pending:
            if is_ours(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            pending = [p for p in pending if not _reap(p)]
            if pending:
                time.sleep(0.02)
        if not pending:
            break
    return pending


def in_namespaces(netns: Iterable[str]) -> list[RecordedProcess]:
    """Every process still in one of these named network namespaces (/run/netns), as a
    record `stop` takes. Once a host's sshd is stopped, what is left there is the lab's
    too: a session sshd forked per connection outlives it (without a PID namespace) and,
    its peer cut off when the namespace goes, would wait forever on a dead connection."""
    wanted: dict[tuple[int, int], str] = {}
    for ns in netns:
        with contextlib.suppress(OSError):
            mounted = os.stat(f"/run/netns/{ns}")
            wanted[(mounted.st_dev, mounted.st_ino)] = ns
    found: list[RecordedProcess] = []
    if not wanted:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            info = os.stat(f"/proc/{pid}/ns/net")
        except OSError:  # gone, or a kernel thread
            continue
        name = wanted.get((info.st_dev, info.st_ino))
        started = start_time(pid) if name is not None else None
        if name is not None and started is not None:
            found.append(RecordedProcess(pid=pid, start_time=started, host=name,
                                         role="left in the namespace", argv=[]))
    return found


def listening_tcp_ports(pid: int) -> set[int] | None:
    """TCP ports in LISTEN in the network namespace of `pid`, or None if it is gone.

    /proc/PID/net is the netns of that process: the same table `ss -ltn` shows inside it,
    read without starting a process per host per poll.
    """
    return _ports_in_state(pid, ("tcp", "tcp6"), _TCP_LISTEN)


def bound_udp_ports(pid: int) -> set[int] | None:
    """UDP ports bound and unconnected (state 07) in the network namespace of `pid`."""
    return _ports_in_state(pid, ("udp", "udp6"), _UDP_UNCONN)


def _ports_in_state(pid: int, tables: tuple[str, str], state: str) -> set[int] | None:
    ports: set[int] = set()
    for name in tables:
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text(encoding="ascii").splitlines()
        except FileNotFoundError:
            if name.endswith("6"):  # IPv6 disabled in the kernel
                continue
            return None
        except ProcessLookupError:
            return None
        for line in lines[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == state:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])
