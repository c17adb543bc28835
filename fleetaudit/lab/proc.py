"""Running commands and owning processes: start detached, stop only what we can prove is ours."""

from __future__ import annotations

import contextlib
import os
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

# Popen objects of the services we started in this interpreter: kept so `down` can reap
# them (a killed child stays a zombie until waited for) and Popen.__del__ stays quiet.
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
    enter: int | None = None,
) -> RecordedProcess:
    """Start a detached service inside `netns` with a clean environment.

    `ip netns exec` (which also gives the service a mount namespace of its own, whose
    mounts never propagate back) and `env` both exec, so the PID we get is the service's
    own. With `enter`, the service joins the network and mount namespaces of that PID
    instead (nsenter execs too), so it sees the files that host's sshd sees.
    """
    clean = ["env", "-i", f"PATH={CLEAN_PATH}", *argv]
    if enter is None:
        full = ["ip", "netns", "exec", netns, *clean]
    else:
        full = ["nsenter", f"--target={enter}", "--net", "--mount", f"--wd={cwd}", *clean]
    with open(log, "ab") as out:
        try:
            child = subprocess.Popen(
                full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=cwd, env=CLEAN_ENV, start_new_session=True,
            )
        except OSError as exc:
            raise LabError(f"{host}: cannot start {role} ({' '.join(argv)}): {exc}") from exc
    started = start_time(child.pid)
    if started is None:  # exited and was reaped already: cannot happen before we wait
        raise LabError(f"{host}: {role} vanished right after start")
    _CHILDREN[child.pid] = child
    return RecordedProcess(pid=child.pid, start_time=started, host=host, role=role,
                           argv=list(argv))


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
        return True
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
