"""An audit through a pipe says what it does as it goes (issue 14): one plain line per event
on stderr (no bar, no cursor movement), stdout kept for the report's path; `--quiet` only
the final lines, `-v` each host's start and detail.

Real audits of this machine, as a user runs them: a subprocess, its output a pipe. The
host is read through the local transport; its scan is a captured nmap XML, except in the
last test, where nmap scans 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NMAP_XML = ROOT / "tests" / "fixtures" / "nmap" / "sv-connect.xml"
ELAPSED = re.compile(r"^\[\d+\.\ds\] ")
HOST_LINE = re.compile(r"^\[\d+\.\ds\] 1/1 this \(127\.0\.0\.1\) ok \d+ ports?$")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inventory = tmp_path_factory.mktemp("local") / "local.ini"
    inventory.write_text("[local]\nthis ansible_connection=local ansible_host=127.0.0.1\n")
    return inventory


def audit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetaudit", "audit", *map(str, args),
                           "--history", "none"],
                          cwd=ROOT, env={**os.environ, "COLUMNS": "40"}, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def assert_plain(done: subprocess.CompletedProcess[str], out: Path) -> list[str]:
    assert done.returncode in (0, 1, 3), done.stderr
    assert done.stdout == f"{out / 'index.html'}\n"  # the path alone: no progress on stdout
    assert "\r" not in done.stderr and "\x1b" not in done.stderr and "━" not in done.stderr
    return done.stderr.splitlines()


def final_lines(lines: list[str], out: Path) -> None:
    assert lines[-1] == f"results: {out / 'results.json'}" or (
        lines[-2] == f"results: {out / 'results.json'}"
        and lines[-1].endswith("not fully audited: see the report.")), lines
    assert any(line.startswith("policy baseline (built-in): ") for line in lines), lines


def test_through_a_pipe_each_host_is_one_plain_line_as_it_is_done(local, tmp_path):
    out = tmp_path / "run"
    lines = assert_plain(audit(local, "--nmap-xml", NMAP_XML, "--out", out), out)
    assert lines[0] == f"Auditing 1 host from {local}"
    [host] = [line for line in lines if ELAPSED.match(line)]
    assert HOST_LINE.match(host), lines
    final_lines(lines, out)


def test_quiet_prints_only_the_final_lines(local, tmp_path):
    out = tmp_path / "run"
    lines = assert_plain(audit(local, "--nmap-xml", NMAP_XML, "--out", out, "--quiet"), out)
    assert not [line for line in lines if ELAPSED.match(line) or "Auditing" in line], lines
    assert lines[0].startswith("policy baseline (built-in): "), lines
    final_lines(lines, out)


def test_verbose_says_each_step_of_the_host_and_its_ports(local, tmp_path):
    out = tmp_path / "run"
    lines = assert_plain(audit(local, "--nmap-xml", NMAP_XML, "--out", out, "-v"), out)
    events = [ELAPSED.sub("", line) for line in lines if ELAPSED.match(line)]
    assert events[:3] == ["1 host: 1 host to collect, 0 addresses to scan",
                          "this (127.0.0.1): connecting", "this: collected"], events
    assert HOST_LINE.match(next(line for line in lines if "1/1 this" in line))
    # The captured scan's ports, each under the host's line with what listens behind it.
    assert "    tcp/42022 ssh OpenSSH 9.2p1 Debian 2+deb12u10 <- no listener inside " \
           "[EXTERNAL_ONLY, NONSTANDARD_PORT]" in lines, lines
    final_lines(lines, out)


def test_quiet_and_verbose_together_are_a_usage_error(local, tmp_path):
    done = audit(local, "--nmap-xml", NMAP_XML, "--out", tmp_path / "run", "-q", "-v")
    assert done.returncode == 2
    assert "error: --quiet and --verbose: choose one" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_real_scan_through_a_pipe_says_each_nmap_process_as_it_ends(local, tmp_path):
    out = tmp_path / "run"
    lines = assert_plain(audit(local, "--out", out), out)
    events = [ELAPSED.sub("", line) for line in lines if ELAPSED.match(line)]
    assert events[0] == "scan: tcp discovery started: 1 nmap process", events
    assert re.fullmatch(r"scan: tcp-discovery-01 done: 1 host, \d+ open ports? "
                        r"\(tcp discovery 1/1 hosts, \d+ open ports?\)", events[1]), events
    assert "scan done" in events
    assert [e for e in events if re.fullmatch(r"1/1 this \(127\.0\.0\.1\) ok \d+ ports?", e)]
    final_lines(lines, out)
