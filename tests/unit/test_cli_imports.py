"""`fleetaudit --help` answers at once (issue 14): the command line's module, and the help of
every command, load none of the heavy libraries (asyncssh, python-nmap, jinja2, SQLAlchemy,
Alembic); the commands that use them load them. Checked by what a fresh interpreter has in
sys.modules, not by a clock (the measured times are in README.md's Usage).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer

from fleetaudit import cli

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("asyncssh", "nmap", "jinja2", "sqlalchemy", "alembic")


def loaded_after(script: str) -> list[str]:
    """The heavy top-level modules a fresh interpreter holds after running `script`."""
    probe = (f"{script}\nimport json, sys\nheavy = {set(HEAVY)!r}\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def help_paths(group: typer.core.TyperGroup, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, command in group.commands.items():
        if isinstance(command, typer.core.TyperGroup):
            paths += help_paths(command, (*path, name))
        else:
            paths.append((*path, name))
    return paths


def test_the_probe_sees_a_heavy_module():
    assert loaded_after("import fleetaudit.transport") == ["asyncssh"]
    assert "jinja2" in loaded_after("import fleetaudit.report.html")


def test_the_cli_module_imports_no_heavy_library():
    assert loaded_after("import fleetaudit.cli") == []


def test_help_and_version_of_every_command_load_no_heavy_library():
    paths = help_paths(typer.main.get_command(cli.app))  # type: ignore[arg-type]
    assert {("audit",), ("check",), ("lab", "up"), ("history",), ("diff",)} <= set(paths)
    runs = "".join(
        f"try:\n    app({[*path, '--help']!r}, prog_name='fleetaudit')\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        for path in [*paths, ()]) + (
        "try:\n    app(['--version'], prog_name='fleetaudit')\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n")
    assert loaded_after("from fleetaudit.cli import app\n" + runs) == []


def test_version_prints_the_package_version():
    done = subprocess.run([sys.executable, "-m", "fleetaudit", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    from fleetaudit import __version__

    assert (done.returncode, done.stdout, done.stderr) == (0, f"fleetaudit {__version__}\n", "")
