"""The bind probe on real output (capture_internal_more.sh, bindprobe/).

Listeners at capture time (proc_net/listeners.tsv): tcp 127.0.0.1:41000, tcp [::]:41030
(V6ONLY=0), tcp [::]:41031 (V6ONLY=1), udp 127.0.0.1:41010, udp [::1]:41011; nothing on
41099, 80 or 53. Run with python3, with perl only on PATH, with neither, as root and nobody.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.models import BindState, Proto
from fleetaudit.parsers.bindprobe import parse_bind_probe
from fleetaudit.probes import bind_probe

BIND = Path(__file__).resolve().parents[1] / "fixtures" / "bindprobe"
TCP, UDP = Proto.TCP, Proto.UDP
WANTED = [(TCP, 41000), (TCP, 41030), (TCP, 41031), (UDP, 41010), (UDP, 41011), (TCP, 41099),
          (TCP, 80), (UDP, 53)]
IN_USE, FREE, ERROR = BindState.IN_USE, BindState.FREE, BindState.ERROR
ROOT = {
    (TCP, 41000, "0.0.0.0"): IN_USE, (TCP, 41000, "::"): FREE,  # V6ONLY: v4 holder is no clash
    (TCP, 41030, "0.0.0.0"): IN_USE, (TCP, 41030, "::"): IN_USE,  # dual-stack holds both
    (TCP, 41031, "0.0.0.0"): FREE, (TCP, 41031, "::"): IN_USE,
    (UDP, 41010, "0.0.0.0"): IN_USE, (UDP, 41010, "::"): FREE,
    (UDP, 41011, "0.0.0.0"): FREE, (UDP, 41011, "::"): IN_USE,
    (TCP, 41099, "0.0.0.0"): FREE, (TCP, 41099, "::"): FREE,
    (TCP, 80, "0.0.0.0"): FREE, (TCP, 80, "::"): FREE,
    (UDP, 53, "0.0.0.0"): FREE, (UDP, 53, "::"): FREE,
}
NOBODY = ROOT | {key: ERROR for key in ROOT if key[1] in (80, 53)}


def results(name: str):
    return parse_bind_probe((BIND / name).read_text(), WANTED)


def states(found):
    return {(r.proto, r.port, r.address): r.state for r in found}


def test_fixtures_are_this_probes_output():
    assert bind_probe(WANTED).command == (BIND / "command.txt").read_text().strip()


@pytest.mark.parametrize("name", ["python_root.txt", "perl_root.txt"])
def test_root(name):
    found = results(name)
    assert states(found) == ROOT
    assert [r.detail for r in found if r.in_use] == ["EADDRINUSE"] * 6


@pytest.mark.parametrize("name", ["python_nobody.txt", "perl_nobody.txt"])
def test_nobody_cannot_bind_privileged_ports(name):
    found = results(name)
    assert states(found) == NOBODY
    assert {r.detail for r in found if r.state is ERROR} == {"EACCES"}


def test_interpreters_say_who_they_are():
    assert (BIND / "python_root.txt").read_text().startswith("# python3 3.")
    assert (BIND / "perl_root.txt").read_text().startswith("# perl 5.")


def test_no_interpreter_gives_an_error_per_attempt():
    found = results("none.txt")
    assert len(found) == 2 * len(WANTED)
    assert {(r.state, r.detail) for r in found} == {(ERROR, "neither python3 nor perl on the host")}


def test_a_missing_line_is_an_error_not_free():
    lines = (BIND / "python_root.txt").read_text().split("\n")
    found = parse_bind_probe("\n".join(line for line in lines if "41099" not in line), WANTED)
    assert {r.state for r in found if r.port == 41099} == {ERROR}


def test_an_attempt_nobody_asked_for_is_refused():
    with pytest.raises(ParseError, match="nobody asked"):
        parse_bind_probe("tcp 0.0.0.0 22 free -", [(TCP, 2222)])


REAL = (BIND / "python_root.txt").read_text().split("\n")


@settings(max_examples=200)
@given(st.lists(st.sampled_from(REAL) | st.text(max_size=40), max_size=10))
def test_any_text_gives_results_or_parse_error(lines):
    with contextlib.suppress(ParseError):
        assert len(parse_bind_probe("\n".join(lines), WANTED)) == 2 * len(WANTED)
