"""Counts that agree with their nouns, and consoles that wrap only on a terminal (issue 14).

The same checks through a real pipe, command by command, are in
tests/integration/test_cli_plain_output.py.
"""

from __future__ import annotations

import io

import pytest

from fleetaudit import cli_progress, terminal
from fleetaudit.models import HostResult, HostStatus, PortReport, Proto
from fleetaudit.terminal import UNWRAPPED, plural


@pytest.mark.parametrize(("count", "words"), [(0, "0 ports"), (1, "1 port"), (2, "2 ports")])
def test_plural(count, words):
    assert plural(count, "port") == words
    assert plural(count, "policy", "policies") == words.replace("ports", "policies").replace(
        "port", "policy")


@pytest.mark.parametrize(("ports", "shown"), [(1, " 1 port"), (2, " 2 ports"), (0, " 0 ports")])
def test_the_progress_line_counts_ports_in_english(capsys, ports, shown):
    host = HostResult(name="web1", address="192.0.2.10", status=HostStatus.OK,
                      ports=[PortReport(proto=Proto.TCP, port=22 + i) for i in range(ports)])
    cli_progress.show_host(host)
    line = capsys.readouterr().err
    assert line.rstrip("\n").endswith(shown), line


def test_a_console_not_on_a_terminal_is_never_narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # a terminal's width: not a pipe's
    console = terminal._console(stderr=False)
    console.file = io.StringIO()
    assert not console.is_terminal and console.width == UNWRAPPED
    long_line = "fleetaudit audit /run/fleetaudit-lab/inventory.yml --known-hosts " + "x" * 200
    console.print(terminal.text(long_line))
    assert console.file.getvalue() == long_line + "\n"


def test_a_console_on_a_terminal_keeps_the_terminal_s_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    console = terminal._console(stderr=False)
    console.file = io.StringIO()
    monkeypatch.setattr(type(console), "is_terminal", property(lambda self: True))
    assert console.width == 40
    console.width = 60  # an explicit width is kept, as rich keeps it
    assert console.width == 60


def test_help_is_plain_and_unwrapped_only_off_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    off = terminal.help_options()
    assert off["rich_markup_mode"] is None
    assert off["context_settings"] == {"terminal_width": UNWRAPPED,
                                       "max_content_width": UNWRAPPED}

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdout", Tty())
    assert terminal.help_options() == {}  # typer's own: rich panels at the terminal's width
