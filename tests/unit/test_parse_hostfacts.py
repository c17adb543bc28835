"""parse_host_facts on real host_facts_probe output (capture_collect_rounds.sh, hostfacts/).

Captured in a private PID namespace whose PID 1 (the capture script) sits in the capture's
network namespace: capture_netns.txt is that namespace, as readlink printed it.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.parsers.hostfacts import parse_host_facts

HOSTFACTS = Path(__file__).resolve().parents[1] / "fixtures" / "hostfacts"
CAPTURE_NETNS = (HOSTFACTS / "capture_netns.txt").read_text().strip()


def facts(name: str):
    return parse_host_facts((HOSTFACTS / name).read_text())


def test_root():
    root = facts("root.txt")
    assert root.boot_time == datetime(2026, 11, 28, 16, 21, 10, tzinfo=UTC)  # btime=1795882870
    assert root.clk_tck == 100
    assert root.netns == CAPTURE_NETNS
    assert root.bindv6only is False
    # Root is not asked about sudo: it would say nothing and cost a sudo start.
    assert (root.euid, root.sudo) == (0, None)
    assert "sudo=" not in (HOSTFACTS / "root.txt").read_text()
    assert (root.os_id, root.os_version_id) == ("debian", "12")  # VERSION_ID="12" unquoted


def test_busybox_sh_gives_the_same_facts():
    assert facts("busybox_sh_root.txt") == facts("root.txt")


def test_nobody_cannot_read_init_and_falls_back_to_its_own_namespace():
    nobody = facts("nobody.txt")
    assert "netns_init=\n" in (HOSTFACTS / "nobody.txt").read_text()
    assert nobody.netns == CAPTURE_NETNS
    assert (nobody.euid, nobody.sudo) == (65534, False)


def test_a_shell_in_another_namespace_still_gets_the_hosts():
    nested = facts("nested_netns_root.txt")
    assert f"netns_self={CAPTURE_NETNS}" not in (HOSTFACTS / "nested_netns_root.txt").read_text()
    assert nested.netns == CAPTURE_NETNS  # init's, not the shell's


def test_missing_getconf_and_sudo():
    minimal = parse_host_facts("btime=1795882870\nclk_tck=\nsudo=absent\neuid=0\n")
    assert minimal.clk_tck == 100 and minimal.sudo is None and minimal.netns is None


@pytest.mark.parametrize("bad", ["", "hello", "btime=1\nunknown_key=1", "PATH=/bin"])
def test_not_this_probes_output(bad):
    with pytest.raises(ParseError):
        parse_host_facts(bad)


REAL = (HOSTFACTS / "root.txt").read_text().split("\n")


@settings(max_examples=200)
@given(st.lists(st.sampled_from(REAL) | st.text(max_size=40), max_size=10))
def test_any_text_gives_facts_or_parse_error(lines):
    with contextlib.suppress(ParseError):
        parse_host_facts("\n".join(lines))
