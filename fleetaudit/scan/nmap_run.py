"""nmap on this machine: finding it, checking it, asking the kernel where a target routes,
and running one nmap process through python-nmap. The only module here that touches
the network (through nmap); everything is blocking, for worker threads.

python-nmap gives no handle on the nmap process it starts, so a cancelled scan could not
stop it: the scan would go on, an orphan, after fleetaudit ended. python-nmap therefore
sees, as its `subprocess` module, one that is the real module except that a Popen made
inside `run_job` joins that job's `NmapProcesses`, which `stop()` ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nmap  # python-nmap

from fleetaudit.errors import NmapNotFoundError, ScanError
from fleetaudit.models import Proto
from fleetaudit.parsers.nmap import parse_nmap_services
from fleetaudit.scan.command import NmapJob

__all__ = [
    "INSTALL_HINT",
    "MIN_NMAP_VERSION",
    "NmapProcesses",
    "check_nmap_version",
    "find_nmap",
    "load_default_services",
    "nmap_services_path",
    "run_job",
]

INSTALL_HINT = "install it: apt-get install nmap (Debian/Ubuntu), dnf install nmap (Fedora/RHEL)"
MIN_NMAP_VERSION = (7, 0)
_VERSION_LINE = re.compile(r"Nmap version (\d+)\.(\d+)")


def find_nmap(nmap_path: str | None = None) -> str:
    """Absolute path of the nmap binary, or NmapNotFoundError with how to install it."""
    found = shutil.which(nmap_path or "nmap")
    if found is None:
        where = f"at {nmap_path!r}" if nmap_path else "in PATH"
        raise NmapNotFoundError(f"nmap not found {where}; {INSTALL_HINT}")
    return found


def parse_nmap_version(text: str) -> tuple[int, int] | None:
    m = _VERSION_LINE.search(text)
    return (int(m[1]), int(m[2])) if m else None


def check_nmap_version(nmap_bin: str) -> tuple[int, int]:
    """``nmap --version`` must say 7.0 or newer (older XML lacks what the parser relies on)."""
    try:
        done = subprocess.run([nmap_bin, "--version"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NmapNotFoundError(f"{nmap_bin} does not run: {exc}; {INSTALL_HINT}") from None
    version = parse_nmap_version(done.stdout)
    if version is None:
        raise NmapNotFoundError(f"{nmap_bin} does not answer --version as nmap does; "
                                f"{INSTALL_HINT}")
    if version < MIN_NMAP_VERSION:
        wanted = ".".join(map(str, MIN_NMAP_VERSION))
        raise NmapNotFoundError(f"nmap {version[0]}.{version[1]} at {nmap_bin} is older than "
                                f"{wanted}; {INSTALL_HINT}")
    return version


def nmap_services_path(nmap_bin: str) -> Path | None:
    """nmap's own nmap-services, looked up where nmap itself looks for its data."""
    candidates: list[Path] = []
    if os.environ.get("NMAPDIR"):
        candidates.append(Path(os.environ["NMAPDIR"]))
    candidates.append(Path.home() / ".nmap")
    candidates.append(Path(nmap_bin).resolve().parent.parent / "share" / "nmap")
    candidates += [Path("/usr/share/nmap"), Path("/usr/local/share/nmap")]
    for directory in candidates:
        path = directory / "nmap-services"
        try:
            if path.is_file():
                return path
        except OSError:  # e.g. HOME still /root after dropping privileges: skip, as nmap does
            continue
    return None


def load_default_services(nmap_bin: str) -> dict[tuple[Proto, int], str]:
    """nmap's port -> service table; a missing or unreadable file means no defaults."""
    path = nmap_services_path(nmap_bin)
    if path is None:
        return {}
    try:
        return parse_nmap_services(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}


# nmap times its probes by the replies: starved of CPU (the audit's own SSH sessions, and
# on the lab the hosts themselves, on the same cores) it reads late replies as a
# congested network and slows down. 200 lab hosts: discovery took 19 s beside the
# collection against 6 s alone. Root (who runs the SYN scan) may raise its priority.
NMAP_NICE = -5


def _first_in_line(pid: int) -> None:
    if os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):  # gone already, or not allowed (a container)
        os.setpriority(os.PRIO_PROCESS, pid, NMAP_NICE)


class NmapProcesses:
    """The nmap processes of one scan, so that stopping the scan stops them (thread-safe).

    Once stopped, no new process starts: a job that was about to start gets ScanError.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: list[subprocess.Popen[Any]] = []
        self.stopped = False

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        with self._lock:  # held while starting, so stop() cannot miss a process
            if self.stopped:
                raise ScanError("the scan was stopped before this nmap process started")
            proc = subprocess.Popen(*args, **kwargs)
            _first_in_line(proc.pid)
            self._live = [p for p in self._live if p.returncode is None]
            self._live.append(proc)
            return proc

    def stop(self, grace: float = 3.0) -> list[int]:
        """SIGTERM every nmap still running (nmap then exits at once), SIGKILL any left
        after ``grace`` seconds; returns their PIDs. Later `popen` calls are refused."""
        with self._lock:
            self.stopped = True
            live = [p for p in self._live if p.poll() is None]
        for proc in live:
            with _gone():
                proc.terminate()
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in live) and time.monotonic() < deadline:
            time.sleep(0.02)
        for proc in live:
            if proc.poll() is None:
                with _gone():
                    proc.kill()
                with _gone():
                    proc.wait(timeout=5)
        return [p.pid for p in live]


def _gone() -> contextlib.suppress:
    """A process may end (and be reaped by its waiting thread) at any moment: not an error."""
    return contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired)


_current = threading.local()  # .processes: the NmapProcesses of the job this thread runs


class _TrackedSubprocess:
    """`subprocess` as python-nmap sees it: a Popen made while this thread runs a job
    joins that job's NmapProcesses; everything else is the real module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        processes: NmapProcesses | None = getattr(_current, "processes", None)
        if processes is None:
            return subprocess.Popen(*args, **kwargs)
        return processes.popen(*args, **kwargs)


nmap.nmap.subprocess = _TrackedSubprocess()


@dataclass(frozen=True)
class Outcome:
    xml: bytes
    failure: str | None  # what python-nmap raised, if it raised
    stderr: list[str]  # nmap's stderr lines that were not warnings


def run_job(nmap_bin: str, job: NmapJob, timeout: float | None,
            processes: NmapProcesses | None = None) -> Outcome:
    """Run one nmap process through python-nmap and wait for it (blocking).

    A report nmap wrote only in part (nmap killed, or ended with an error) comes back
    as it is, with python-nmap's complaint in `failure`: the caller parses what is
    there. ``timeout`` is a last resort: python-nmap then kills nmap and keeps nothing,
    so prefer nmap's own --host-timeout, after which nmap still writes its report.
    The nmap process joins ``processes``, whose stop() ends it.
    """
    _current.processes = processes
    try:
        return _run_job(nmap_bin, job, timeout)
    finally:
        _current.processes = None


def _run_job(nmap_bin: str, job: NmapJob, timeout: float | None) -> Outcome:
    try:
        scanner = nmap.PortScanner(nmap_search_path=(nmap_bin,))
    except nmap.PortScannerError as exc:
        raise NmapNotFoundError(
            f"{nmap_bin} does not run as nmap ({exc.value}); {INSTALL_HINT}"
        ) from None
    failure: str | None = None
    stderr: list[str] = []
    try:
        scanner.scan(
            hosts=" ".join(job.targets),
            ports=job.ports,
            arguments=shlex.join(job.args),
            timeout=timeout or 0,
        )
        errors = scanner.scaninfo().get("error", [])
        # python-nmap repeats the whole stderr once per non-warning line.
        stderr = list(dict.fromkeys(line.strip() for e in errors for line in e.splitlines()))
    except nmap.PortScannerTimeout:
        raise ScanError(f"nmap ran longer than {timeout} s and was killed") from None
    except nmap.PortScannerError as exc:
        # python-nmap could not read the XML: it raises nmap's stderr, or the output itself.
        value = exc.value.decode(errors="replace") if isinstance(exc.value, bytes) else exc.value
        value = str(value).strip()
        if value.startswith("<") or not value:
            failure = "python-nmap could not read nmap's XML"
        else:
            failure = value
            stderr = list(dict.fromkeys(line.strip() for line in value.splitlines()))
    except (AssertionError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # python-nmap's own dict builder trips over XML it did not expect; ours decides.
        failure = f"python-nmap: {exc!r}"
    raw = scanner.get_nmap_last_output()
    # Before a scan ran, python-nmap holds the text of `nmap -V` (a str): not a report.
    return Outcome(raw if isinstance(raw, bytes) else b"", failure, [s for s in stderr if s])
