"""Ctrl-C and SIGTERM at any moment of a command: exit 130, one line, no traceback, no
stray temporary file, and the report folder either the previous run or the new one,
whole (issue 11, item 3). No lab needed; under tests/integration for its subprocesses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetaudit.report import write_report
from tests.integration.report_helpers import large_results_json, snapshot
from tests.unit.test_report import sample_results

# After the handlers are in: during the imports, rendering, writing, swapping, after.
DELAYS = [0.0, 0.1, 0.3, 0.6, 1.0, 1.5, 2.5, 3.5, 5.0]  # across a 500-host report's write


def handlers_in(pid: int, timeout: float = 10.0) -> None:
    """Wait until the process catches SIGTERM: fleetaudit's first line has run. Before it
    is only the interpreter's own start (tens of ms), which no Python code can cover."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return  # already gone: its exit code tells
        caught = int(status.split("SigCgt:")[1].split()[0], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.001)
    raise AssertionError("the handlers were never installed")


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    return large_results_json(tmp_path_factory.mktemp("big") / "big.json")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_at_any_moment_of_writing_a_report_ends_cleanly(tmp_path, big, signum):
    out = tmp_path / "reports" / "run"
    write_report(sample_results(), out, ["all"])
    previous = snapshot(out)
    expected = {"findings.csv", "findings.sarif", "index.html", "junit.xml", "results.json",
                "summary.md"}
    outcomes = []
    # Both signals take one handler (fleetaudit.interrupt): Ctrl-C gets every other moment.
    for delay in DELAYS if signum == signal.SIGTERM else DELAYS[::2]:
        cli = subprocess.Popen([sys.executable, "-m", "fleetaudit", "report", str(big),
                                "--out", str(out), "--format", "all"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        handlers_in(cli.pid)
        time.sleep(delay)
        os.kill(cli.pid, signum)
        _, stderr = cli.communicate(timeout=60)
        lines = stderr.splitlines()
        if cli.returncode == 0 and not stderr:  # done before the signal came: too late
            assert set(snapshot(out)) == expected
            previous = snapshot(out)
            outcomes.append((delay, "finished"))
            continue
        assert cli.returncode == 130, (delay, cli.returncode, stderr)
        assert len(lines) == 1 and lines[0].startswith("Interrupted"), (delay, stderr)
        assert sorted(p.name for p in out.parent.iterdir()) == ["run"], delay  # no staging
        now = snapshot(out)
        if now != previous:  # then the new run, whole, and the line says so
            assert set(now) == expected, (delay, sorted(now))
            assert "report was written" in lines[0], (delay, stderr)
            previous = now
        else:
            assert "no report written" in lines[0] or "nothing was written" in lines[0], stderr
        outcomes.append((delay, lines[0]))
    # The signals landed both before and after the report went in place.
    assert any(line.startswith("Interrupted") and "written to" not in line
               for _, line in outcomes), outcomes


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_while_the_command_starts_is_one_line_and_130(tmp_path, signum):
    for delay in (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8):
        cli = subprocess.Popen([sys.executable, "-m", "fleetaudit", "inventory",
                                str(tmp_path / "missing.ini")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        handlers_in(cli.pid)
        time.sleep(delay)
        os.kill(cli.pid, signum)
        _, stderr = cli.communicate(timeout=30)
        if cli.returncode == 2:  # finished before the signal: its own error, no signal
            continue
        assert cli.returncode == 130, (delay, cli.returncode, stderr)
        assert stderr.splitlines() == ["Interrupted: stopped; nothing was written."], stderr


NMAP_XML = Path(__file__).resolve().parents[1] / "fixtures" / "nmap" / "sv-connect.xml"
# From the first line through start-up, the local host's collection, judging, writing and
# history: the whole of a 1-2 s audit that needs no nmap (its scan is imported).
AUDIT_DELAYS = [0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.1, 1.4, 1.8,
                2.4, 3.0]
# What --quiet prints of a run that got that far before the signal.
QUIET_LINES = ("history: ", "policy ", "results: ")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_in_the_first_seconds_of_an_audit_is_one_line_and_130(tmp_path, signum):
    """Start-up, before any scan or host: this machine's audit of itself from an imported
    scan (no nmap, no lab), stopped at each moment of its first seconds."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("localhost ansible_connection=local ansible_host=127.0.0.1\n")
    outcomes = []
    for i, delay in enumerate(AUDIT_DELAYS if signum == signal.SIGTERM else AUDIT_DELAYS[::2]):
        out = tmp_path / f"run{i}" / "reports" / "out"
        env = {**os.environ, "FLEETAUDIT_HISTORY": str(tmp_path / f"run{i}" / "history.sqlite")}
        cli = subprocess.Popen([sys.executable, "-m", "fleetaudit", "audit", str(inventory),
                                "--nmap-xml", str(NMAP_XML), "--out", str(out), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
        handlers_in(cli.pid)
        time.sleep(delay)
        os.kill(cli.pid, signum)
        stdout, stderr = cli.communicate(timeout=60)
        lines = stderr.splitlines()
        assert "Traceback" not in stderr, (delay, stderr)
        stopped = [line for line in lines if line.startswith("Interrupted")]
        if cli.returncode == 0 and not stopped:  # done before the signal came: too late
            assert stdout == f"{out / 'index.html'}\n", (delay, stdout, stderr)
            outcomes.append((delay, "finished"))
            continue
        assert cli.returncode == 130, (delay, cli.returncode, stderr)
        assert len(stopped) == 1 and lines[-1] == stopped[0], (delay, stderr)
        assert all(line.startswith(QUIET_LINES) for line in lines[:-1]), (delay, stderr)
        if "no report written" in stopped[0] and (out / "journal.jsonl").exists():
            # The finished host is kept: the line says how to get its report.
            assert f"--resume {out}" in stopped[0], (delay, stderr)
        # Nothing staged is left beside the report folder, whatever the moment.
        beside = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
        assert beside in ([], ["out"]), (delay, beside)
        outcomes.append((delay, stopped[0]))
    # The first signal lands in start-up (the imports alone outlast it), before anything
    # was audited or written; where the later ones land is the machine's pace, printed.
    print(outcomes)
    assert outcomes[0][1] == "Interrupted: stopped; nothing was written.", outcomes


def _tgkill(pid: int, tid: int, signum: int) -> None:
    """Send `signum` to one thread of `pid` (os.kill lets the kernel choose)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, signum) != 0:  # SYS_tgkill on x86_64
        raise OSError(ctypes.get_errno(), "tgkill")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="tgkill's number is x86_64's")
@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
@pytest.mark.timeout(90)
def test_sigterm_taken_by_a_worker_thread_still_stops_the_audit(tmp_path):
    """The kernel gives a process's signal to any of its threads. Taken by an nmap worker
    thread, it only flags the main thread, asleep in epoll while the scan is quiet: the
    loop must be woken (wakeup fd), or the signal waits for the scan to end."""
    from tests.integration.test_scan_cancel import PORTS, alive, nmap_children, wait_for

    cli = subprocess.Popen(
        [sys.executable, "-m", "fleetaudit", "audit", "--ports", PORTS, "--out",
         str(tmp_path / "out"), "--nmap-arg=--scan-delay=1s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = wait_for(lambda: nmap_children(cli.pid), 30)
        assert started, "nmap never started"
        time.sleep(1.0)  # the collection over: the loop waits for the scan, in epoll
        workers = [int(t.name) for t in Path(f"/proc/{cli.pid}/task").iterdir()
                   if int(t.name) != cli.pid]
        assert workers, "no worker thread to take the signal"
        _tgkill(cli.pid, workers[0], signal.SIGTERM)
        _, stderr = cli.communicate(timeout=20)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 130, stderr
    assert "Interrupted: audit stopped" in stderr and "Traceback" not in stderr, stderr
    assert [pid for pid in started if alive(pid)] == []
