"""Host text never drives the terminal: every path that prints, fed hostile strings.

Issue 11, item 1: a host whose `ss` printed `[/oops] malformed row` made the progress line
raise rich's MarkupError (traceback, exit 1, no report for any host). Host names,
addresses, error messages, banners and inventory warnings reach the terminal only as
text (fleetaudit.terminal), with their control characters shown escaped.
"""

from __future__ import annotations

import ast
import asyncio
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from fleetaudit import cli, cli_progress, terminal
from fleetaudit.errors import ConfigError
from fleetaudit.models import (
    AuditResults,
    Connection,
    HostError,
    HostResult,
    HostStatus,
    Inventory,
    InventoryHost,
    ScanRun,
    Stage,
)
from fleetaudit.orchestrator import AuditOutcome
from fleetaudit.policy import apply_policy, baseline_policy
from fleetaudit.preflight import PreflightHost, PreflightReport

PACKAGE = Path(cli.__file__).parent
HOSTILE = [
    "[/oops] malformed row",  # the line that crashed the audit
    "[bold]bold[/bold]",
    "[/x]",
    "[link=https://evil.example/]click[/link]",
    "\x1b[31mred\x1b[0m",  # ANSI colour
    "\x1b]0;owned\x07",  # OSC: retitles the terminal
    "\x1b[2J\x1b[H",  # clear screen, cursor home
    "line\rforged",
    "nul\x00byte",
    "two\nlines",
    ":pile_of_poo:",
    "\u202eevil",  # right-to-left override
]
RAW = ("\x1b", "\x00", "\r", "\x07", "\u202e")


def shown(value: str) -> str:
    """How a hostile string must appear: itself, its control characters escaped."""
    return terminal.clean(value)


def assert_inert(output: str, values: list[str]) -> None:
    for raw in RAW:
        assert raw not in output, f"raw {raw!r} reached the terminal: {output!r}"
    assert "Traceback" not in output and "MarkupError" not in output, output
    for value in values:
        assert shown(value) in output, (value, output)


def hostile_host(i: int, value: str) -> HostResult:
    return HostResult(name=f"h{i}-{value}", address=f"10.0.0.{i}-{value}", groups=["g"],
                      status=HostStatus.COLLECTION_FAILED,
                      errors=[HostError(stage=Stage.COLLECT, message=f"ss said: {value}")])


@pytest.mark.parametrize("value", HOSTILE)
def test_the_progress_line_prints_host_text_as_text(capsys, value):
    cli_progress.show_host(hostile_host(1, value))  # the line the audit prints for each host
    captured = capsys.readouterr()
    assert_inert(captured.err, [f"h1-{value}", f"10.0.0.1-{value}", f"ss said: {value}"])


def test_clean_escapes_controls_and_keeps_text():
    assert terminal.clean("a\x1b[31mb\x00\r\n") == "a\\x1b[31mb\\x00\\x0d\\x0a"
    assert terminal.clean("x\ny\tz", lines=True) == "x\ny\tz"
    assert terminal.clean("[bold]é→") == "[bold]é→"


def test_the_consoles_parse_no_markup_emoji_or_highlighting():
    for console in (terminal.err, terminal.out):
        capture = Console(file=io.StringIO(), markup=console._markup, emoji=console._emoji,
                          highlight=console._highlight, width=200)
        capture.print("[bold]x[/] :smile: 127.0.0.1", soft_wrap=True)
        assert capture.file.getvalue() == "[bold]x[/] :smile: 127.0.0.1\n"


def _results() -> AuditResults:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    scan = ScanRun(command="nmap", source="import", ignored_hosts=HOSTILE)
    return AuditResults(tool_version="t", inventory="inv[/x]\x1b[31m", started_at=now,
                        finished_at=now, scan=scan,
                        hosts=[hostile_host(i, v) for i, v in enumerate(HOSTILE)])


def _inventory() -> Inventory:
    hosts = [InventoryHost(name=f"h{i}", address="127.0.0.1", connection=Connection.LOCAL,
                           notes=[f"note {v}"]) for i, v in enumerate(HOSTILE)]
    return Inventory(source="inv.ini", hosts=hosts,
                     warnings=[f"inv.ini:{i}: key given twice: {v}" for i, v in enumerate(HOSTILE)])


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_audit_prints_hostile_results_warnings_and_errors_as_text(runner, monkeypatch,
                                                                   tmp_path):
    results = _results()

    async def fake_run_audit(inventory, options, on_host_done=None, progress=None, **kwargs):
        for host in results.hosts:  # as run_audit hands each host on
            on_host_done(host)
            progress.host_done(host)
        return AuditOutcome(results=apply_policy(results, baseline_policy(), date(2025, 1, 1)))

    monkeypatch.setattr("fleetaudit.orchestrator.run_audit", fake_run_audit)
    monkeypatch.setattr(cli, "load_inventories", lambda *a, **k: _inventory())
    inventory = tmp_path / "inv.ini"
    inventory.write_text("x\n")
    done = runner.invoke(cli.app, ["audit", str(inventory), "--out", str(tmp_path / "out")])
    assert done.exit_code == 3, done.output  # incomplete, not 1 ("findings") after a crash
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    assert_inert(done.output, [*(f"ss said: {v}" for v in HOSTILE),
                               *(f"key given twice: {v}" for v in HOSTILE),
                               ", ".join(HOSTILE)])
    assert (tmp_path / "out" / "results.json").is_file()


def test_dry_run_inventory_and_errors_print_hostile_text_as_text(runner, monkeypatch,
                                                                  tmp_path):
    inventory = tmp_path / "inv.ini"
    inventory.write_text("x\n")
    monkeypatch.setattr(cli, "load_inventories", lambda *a, **k: _inventory())

    async def fake_dry_run(inv, options):
        return [f"# skipped h ({v}): refused" for v in HOSTILE]

    monkeypatch.setattr("fleetaudit.orchestrator.audit_dry_run", fake_dry_run)
    done = runner.invoke(cli.app, ["audit", str(inventory), "--dry-run"])
    assert done.exit_code == 0, done.output
    assert_inert(done.output, [f"# skipped h ({v}): refused" for v in HOSTILE])

    done = runner.invoke(cli.app, ["inventory", str(inventory)])
    assert done.exit_code == 0, done.output
    assert_inert(done.output, [f"note {v}" for v in HOSTILE])

    def broken(*args, **kwargs):
        raise ConfigError("inv.ini:3: bad host " + "".join(HOSTILE))

    monkeypatch.setattr(cli, "load_inventories", broken)
    done = runner.invoke(cli.app, ["audit", str(inventory)])
    assert done.exit_code == 2, done.output
    assert_inert(done.output, ["inv.ini:3: bad host " + "".join(HOSTILE)])


def test_check_prints_hostile_host_answers_as_text(runner, monkeypatch, tmp_path):
    inventory = tmp_path / "inv.ini"
    inventory.write_text("x\n")
    monkeypatch.setattr(cli, "load_inventories", lambda *a, **k: _inventory())
    hosts = [PreflightHost(name=f"h-{v}", address=f"a-{v}", user=f"u-{v}",
                           status=HostStatus.OK if i % 2 else HostStatus.UNREACHABLE,
                           error=f"said {v}", sudo=f"refused: {v}", will_see=[f"see {v}"],
                           wont_see=[f"miss {v}"], missing_tools=[f"tool{v}"])
             for i, v in enumerate(HOSTILE)]

    async def fake_preflight(inv, ssh, concurrency):
        return PreflightReport(inventory="inv", hosts=hosts)

    monkeypatch.setattr("fleetaudit.preflight.run_preflight", fake_preflight)
    for args in (["check", str(inventory)], ["check", str(inventory), "--json"]):
        done = runner.invoke(cli.app, args)
        assert done.exit_code == 3, done.output
        assert_inert(done.output, [])
        assert "Traceback" not in done.output
    done = runner.invoke(cli.app, ["check", str(inventory)])
    visible = [f"said {v}" for v in HOSTILE[::2] if "\n" not in v]
    assert_inert(done.output, visible)


def test_run_audit_hands_on_host_done_hostile_host_text_without_crashing(capsys):
    # The callback the CLI gives run_audit, driven the way run_audit drives it.
    async def drive() -> None:
        for i, value in enumerate(HOSTILE):
            cli_progress.show_host(hostile_host(i, value))

    asyncio.run(drive())
    assert_inert(capsys.readouterr().err, [f"ss said: {v}" for v in HOSTILE])


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else "?"


def test_only_the_terminal_module_makes_consoles_and_nothing_prints_around_it():
    """The rule: host text reaches rich only through fleetaudit.terminal."""
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "rich" and any(
                    a.name == "print" for a in node.names):
                offences.append(f"{relative}: from rich import print")
        for call in _calls(tree):
            name = _name(call.func)
            keywords = {k.arg: k.value for k in call.keywords}
            if name.endswith("Console") and relative != "fleetaudit/terminal.py":
                offences.append(f"{relative}:{call.lineno}: makes a Console")
            if name in ("print", "typer.echo", "click.echo", "typer.secho", "rich.print"):
                offences.append(f"{relative}:{call.lineno}: {name}() bypasses the terminal")
            markup = keywords.get("markup")
            if isinstance(markup, ast.Constant) and markup.value is True:
                offences.append(f"{relative}:{call.lineno}: markup=True")
            if name.endswith(".print") and name.split(".")[0] in ("err", "out") and (
                    relative != "fleetaudit/terminal.py") and call.args and isinstance(
                    call.args[0], ast.JoinedStr | ast.Constant | ast.BinOp):
                offences.append(f"{relative}:{call.lineno}: prints a str, not Text: use say()")
    assert offences == []
