"""What a newcomer reads (issue 14): no Python warning from any command, nothing wrapped
mid-word when the output is not a terminal, and `check` of this very machine naming only
the tools that matter here.

Every command runs as a user runs it: a subprocess, its output a pipe, with warnings shown
(`-W default`) and COLUMNS=40, which rich would otherwise wrap at. Nothing here opens a
browser or reaches the network: `check` and `audit` read this machine through the local
transport, and `audit` takes its scan from a captured nmap XML file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from fleetaudit import cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
# How Python prints a warning: "FILE:LINE: CATEGORY: MESSAGE".
WARNING = re.compile(r"^.*:\d+: \w*Warning: .*$", re.M)


def run(*args: str, env: dict[str, str] | None = None,
        python: tuple[str, ...] = ("-m", "fleetaudit")) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONWARNINGS": "default", "COLUMNS": "40", **(env or {})}
    return subprocess.run([sys.executable, "-W", "default", *python, *args], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def commands(group: typer.core.TyperGroup | None = None,
             path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """Every command and group of the CLI, as (argv path, click command)."""
    group = group or typer.main.get_command(cli.app)
    yield path, group
    for name, command in group.commands.items():  # type: ignore[union-attr]
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


HELP = {path: command for path, command in commands()}


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    return {path: run(*path, "--help") for path in HELP}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("local")
    inventory = folder / "local.ini"
    inventory.write_text("[local]\nthis ansible_connection=local ansible_host=127.0.0.1\n")
    return inventory


def test_the_detector_sees_a_warning_python_prints():
    done = run("-c", "import warnings; warnings.warn('seen', DeprecationWarning)", python=())
    assert WARNING.search(done.stderr), done.stderr


def test_only_asyncssh_s_dsa_warning_is_dropped():
    # As asyncssh's import raises it (cryptography's CryptographyDeprecationWarning is a
    # UserWarning), and two that look like it but are not it: both must still show.
    script = (
        "import warnings, fleetaudit, asyncssh\n"
        "from cryptography.utils import CryptographyDeprecationWarning as C\n"
        "warnings.warn_explicit('DSA is deprecated and support will be removed', C,"
        " 'misc.py', 1, module='asyncssh.crypto.misc')\n"
        "warnings.warn_explicit('another asyncssh warning', C, 'misc.py', 2,"
        " module='asyncssh.crypto.misc')\n"
        "warnings.warn_explicit('DSA is deprecated', C, 'mine.py', 3, module='mine')\n")
    done = run("-c", script, python=())
    shown = WARNING.findall(done.stderr)
    assert done.returncode == 0, done.stderr
    assert shown == ["misc.py:2: CryptographyDeprecationWarning: another asyncssh warning",
                     "mine.py:3: CryptographyDeprecationWarning: DSA is deprecated"], shown


def test_help_of_every_command_has_no_warning(helps):
    assert {("audit",), ("check",), ("inventory",), ("report",), ("lab", "up")} <= set(helps)
    for path, done in helps.items():
        assert done.returncode == 0, (path, done.stderr)
        assert not WARNING.search(done.stdout + done.stderr), (path, done.stderr)


def test_every_command_a_user_runs_prints_no_warning(local, tmp_path):
    first = tmp_path / "first"
    runs = {
        "check": (run("check", str(local)), (0, 3)),
        "inventory": (run("inventory", str(FIXTURES / "inventories" / "ansible-examples-hosts"
                                           / "hosts")), (0,)),
        "inventory --json": (run("inventory", str(local), "--json"), (0,)),
        "audit --dry-run": (run("audit", str(local), "--dry-run"), (0,)),
        "audit": (run("audit", str(local), "--nmap-xml", str(FIXTURES / "nmap" / "sv-connect.xml"),
                      "--out", str(first)), (0, 1, 3)),
        "usage error": (run("audit", "--no-such-option"), (2,)),
    }
    runs["report"] = (run("report", str(first / "results.json"), "--out", str(tmp_path / "again"),
                          "--format", "all"), (0,))
    for name, (done, codes) in runs.items():
        assert done.returncode in codes, (name, done.returncode, done.stderr)
        assert not WARNING.search(done.stdout + done.stderr), (name, done.stderr)
    assert (tmp_path / "again" / "index.html").is_file()


def test_help_through_a_pipe_keeps_every_text_on_one_line(helps):
    for path, command in HELP.items():
        out = helps[path].stdout
        assert "…" not in out and "╭" not in out, (path, out)  # nothing cut, no panel
        lines = out.splitlines()
        texts = [command.help.split("\n\n")[0]] if command.help else []  # type: ignore[attr-defined]
        texts += [param.help for param in command.params  # type: ignore[attr-defined]
                  if getattr(param, "help", None)]
        for text in texts:
            assert any(text in line for line in lines), (path, text, out)
    audit = helps[("audit",)].stdout
    assert any("e.g. -T4 or --max-retries=2, each given as --nmap-arg=OPTION" in line
               for line in audit.splitlines()), audit


def test_a_usage_error_through_a_pipe_is_plain_text():
    done = run("audit", "--no-such-option")
    assert done.returncode == 2
    assert "No such option: --no-such-option" in done.stderr and "╭" not in done.stderr


def test_a_command_hint_through_a_pipe_is_one_line():
    # `lab up`'s hint, as it prints it (the lab itself needs root and a lock).
    hint = ("audit them with: fleetaudit audit /run/fleetaudit-lab/inventory.yml "
            "--known-hosts /run/fleetaudit-lab/known_hosts")
    done = run("-c", f"from fleetaudit.terminal import say; say({hint!r})", python=())
    assert done.stderr == hint + "\n"


def test_a_table_through_a_pipe_folds_no_cell(tmp_path):
    user = "a_login_name_much_longer_than_its_column_would_be_at_eighty"
    key = "/home/auditor/.ssh/keys/a_key_file_whose_path_is_longer_than_a_column_ed25519"
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"[web]\nweb1 ansible_host=192.0.2.10 ansible_user={user} "
                         f"ansible_ssh_private_key_file={key}\n")
    done = run("inventory", str(inventory), "--ssh-config", "/dev/null")
    assert done.returncode == 0, done.stderr
    [row] = [line for line in done.stdout.splitlines() if user in line]
    assert row.split()[0] == "web1" and key in row, done.stdout
    assert done.stdout.splitlines()[-1] == f"1 host, 3 groups from {inventory}"  # all, ungrouped


# --- check on this machine -------------------------------------------------------------------


def host_lines(stdout: str, prefix: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in stdout.splitlines()
            if line.startswith(f"    {prefix}: ")]


def listed(stdout: str, prefix: str) -> list[str]:
    """The tools a `tools used:` or `tools missing:` line names (none without the line)."""
    lines = host_lines(stdout, prefix)
    assert len(lines) <= 1, stdout
    return lines[0].split(", ") if lines else []


def assert_plain(stdout: str) -> None:
    """No heading without lines under it, one verdict that matches what is above."""
    lines = stdout.splitlines()
    assert lines[0].startswith("Preflight of 1 host from "), stdout
    assert not [line for line in lines if line.rstrip().endswith(":")], stdout
    wont = host_lines(stdout, "won't see")
    assert ("won't see" in lines[-1]) == bool(wont), stdout
    assert lines[-1].startswith("An audit would be " + ("incomplete" if wont else "complete"))


def test_check_of_this_machine_names_only_its_own_kind_of_tools(local):
    done = run("check", str(local))
    assert done.returncode in (0, 3), done.stderr
    assert_plain(done.stdout)
    used = listed(done.stdout, "tools used")
    missing = listed(done.stdout, "tools missing")
    managers = [m for m in ("dpkg", "rpm", "pacman") if m in used]
    assert len(managers) <= 1, done.stdout
    named = set(used) | set(missing)
    if managers:  # a host of one kind is not asked for another kind's tools
        assert not {"dpkg", "rpm", "pacman"} - set(managers) & named, done.stdout
    listing = [t for t in ("ss", "netstat", "busybox") if shutil.which(t)]
    assert [t for t in used if t in ("ss", "netstat", "busybox")] == listing[:1], done.stdout
    assert "lsof" not in named  # asked about, never run by an audit


@pytest.fixture(scope="module")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox and its applets, and nothing else: a busybox-based image's /bin."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed (scripts/setup.sh --dev installs it)")
    where = tmp_path_factory.mktemp("busybox-bin")
    names = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                           check=True).stdout.split()
    for name in ["busybox", *names]:
        (where / name).symlink_to(busybox)
    return where


def test_check_of_this_machine_as_a_busybox_host(local, applets):
    # The local transport's shell and every tool it finds come from that PATH (the audit
    # adds /usr/sbin and /sbin, as it does on any host).
    done = run("check", str(local), env={"PATH": str(applets)})
    assert done.returncode in (0, 3), done.stderr
    assert_plain(done.stdout)
    used = listed(done.stdout, "tools used")
    assert used[:5] == ["netstat", "readlink", "stat", "cat", "sha256sum"], done.stdout
    assert "listeners from netstat, cross-checked against /proc/net" in done.stdout
    missing = listed(done.stdout, "tools missing")
    assert "python3" in missing and "getconf" in missing, done.stdout
    assert not {"dpkg", "pacman", "ss", "lsof", "openssl", "busybox"} & set(missing)
