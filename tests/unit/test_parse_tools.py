"""parse_command_v on real `command -v` output of dash, busybox sh and bash (fixtures/tools/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.parsers.tools import parse_command_v

TOOLS = Path(__file__).resolve().parents[1] / "fixtures" / "tools"
WANTED = (TOOLS / "wanted.txt").read_text().split()
ON_THIS_BOX = ["ss", "netstat", "lsof", "ip", "readlink", "stat", "dpkg", "rpm"]


def fixture(name: str) -> str:
    return (TOOLS / name).read_text(encoding="utf-8", errors="replace")


def test_wanted_list_is_what_was_asked() -> None:
    assert [*ON_THIS_BOX, "sockstat"] == WANTED


@pytest.mark.parametrize(
    "name", ["command_v_dash_loop.txt", "command_v_busybox_loop.txt", "command_v_bash_args.txt"]
)
def test_one_name_per_command_v(name: str) -> None:
    assert parse_command_v(fixture(name), WANTED) == (ON_THIS_BOX, ["sockstat"])


def test_dash_answers_only_for_the_first_operand() -> None:
    """Why the collector must loop: dash drops every name after the first."""
    assert fixture("command_v_dash_args.txt") == "/usr/bin/ss\n"
    present, missing = parse_command_v(fixture("command_v_dash_args.txt"), WANTED)
    assert present == ["ss"]
    assert "lsof" in missing


def test_builtins_aliases_and_explicit_paths() -> None:
    text = "echo\nalias ll='ls -l'\n/usr/sbin/ss\n"
    assert parse_command_v(text, ["/usr/sbin/ss", "echo", "ll", "ip"]) == (
        ["/usr/sbin/ss", "echo", "ll"], ["ip"])


def test_order_follows_wanted_and_duplicates_collapse() -> None:
    assert parse_command_v("/usr/bin/stat\n/usr/bin/ss\n", ["ss", "stat", "ss"]) == (
        ["ss", "stat"], [])


def test_nothing_found() -> None:
    assert parse_command_v("", ["ss", "lsof"]) == ([], ["ss", "lsof"])


@pytest.mark.parametrize(
    "text",
    ["/usr/bin/ssh", "sh: 1: command: not found", "/usr/bin/ss extra", "ss is /usr/bin/ss"],
)
def test_garbage_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_command_v(text, ["ss", "lsof"])


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(st.text(min_size=1), max_size=5))
def test_arbitrary_text_is_a_split_or_parse_error(text: str, wanted: list[str]) -> None:
    try:
        present, missing = parse_command_v(text, wanted)
    except ParseError:
        return
    assert sorted(present + missing) == sorted(set(wanted))
