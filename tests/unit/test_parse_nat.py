"""NAT rules on real output of nat_probe's command (capture_internal_more.sh, nat/).

The rules (nat/rules.sh) were added in a throwaway network namespace: iptables-nft, so
`nft list ruleset` repeats them, plus native nft tables the iptables tools do not show.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.models import Proto
from fleetaudit.parsers.nat import parse_nat

NAT = Path(__file__).resolve().parents[1] / "fixtures" / "nat"
TCP, UDP = Proto.TCP, Proto.UDP
ROOT = parse_nat((NAT / "rules_root.txt").read_text())


def summary(forwards):
    return sorted((f.proto, f.port, f.port_last, f.kind, f.to_address, f.to_port, f.to_port_last,
                   f.daddr, f.family, f.tool) for f in forwards)


def test_every_forward_once():
    assert summary(ROOT.forwards) == sorted([
        (TCP, 41080, None, "dnat", "10.0.0.5", 22, None, None, "ipv4", "iptables-save"),
        (UDP, 41053, None, "dnat", "10.0.0.6", None, None, None, "ipv4", "iptables-save"),
        (TCP, 41081, None, "dnat", "10.0.0.7", 8080, None, None, "ipv4", "iptables-save"),
        (TCP, 41082, None, "dnat", "10.0.0.7", 8080, None, None, "ipv4", "iptables-save"),
        (TCP, 41083, 41085, "dnat", "10.0.0.8", 9000, 9002, None, "ipv4", "iptables-save"),
        (TCP, 41088, None, "redirect", None, 22, None, None, "ipv4", "iptables-save"),
        (TCP, 41089, None, "dnat", "127.0.0.1", 41022, None, "127.0.0.1", "ipv4",
         "iptables-save"),
        (TCP, 41090, None, "dnat", "10.0.0.9", 80, None, None, "ipv4", "iptables-save"),
        (TCP, 41086, None, "dnat", "fd00::5", 22, None, None, "ipv6", "ip6tables-save"),
        (TCP, 41087, None, "redirect", None, 2222, None, None, "ipv6", "ip6tables-save"),
        (TCP, 41100, None, "dnat", "10.0.0.10", 22, None, None, "inet", "nft"),
        (TCP, 41101, None, "redirect", None, 2222, None, None, "inet", "nft"),
        (TCP, 41102, None, "redirect", None, 2222, None, None, "inet", "nft"),
        (UDP, 41103, None, "dnat", "fd00::6", 53, None, None, "inet", "nft"),
        (TCP, 41104, None, "dnat", "10.0.0.11", None, None, None, "inet", "nft"),
        (TCP, 41105, 41107, "dnat", "10.0.0.12", 8000, 8002, "192.0.2.1", "inet", "nft"),
        (TCP, 41108, None, "dnat", "10.0.0.13", 22, None, None, "ipv4", "nft"),
        (TCP, 41109, None, "redirect", None, None, None, None, "ipv4", "nft"),
    ])
    assert ROOT.tools == ["iptables-save", "ip6tables-save", "nft"] and ROOT.refused == []


def test_what_is_not_understood_is_kept_not_guessed():
    assert len(ROOT.unparsed) == 2
    assert "! --dport 22" in ROOT.unparsed[0]  # every port but 22: not one forward
    assert "map" in ROOT.unparsed[1]
    # nft's own copy of the iptables-nft tables (with its "XT target DNAT not found" for
    # ip6) was skipped because iptables-save was read
    text = (NAT / "rules_root.txt").read_text()
    assert "XT target DNAT not found" in text
    assert not any("XT target" in u for u in ROOT.unparsed)


def test_covers_and_destination():
    [ranged] = [f for f in ROOT.forwards if f.port == 41083]
    assert ranged.covers(TCP, 41084) and not ranged.covers(TCP, 41086)
    assert not ranged.covers(UDP, 41084)
    assert ranged.destination == "10.0.0.8:9000-9002"
    [v6] = [f for f in ROOT.forwards if f.port == 41086]
    assert v6.destination == "[fd00::5]:22"
    [redirect] = [f for f in ROOT.forwards if f.port == 41109]
    assert redirect.destination == "(this host)"


def test_nobody_is_refused_by_every_tool():
    reading = parse_nat((NAT / "rules_nobody.txt").read_text())
    assert reading.forwards == [] and reading.tools == []
    assert [r.split(":")[0] for r in reading.refused] == ["iptables-save", "ip6tables-save", "nft"]


def test_empty_namespace():
    reading = parse_nat((NAT / "empty_root.txt").read_text())
    assert reading.forwards == [] and reading.refused == [] and reading.unparsed == []
    assert reading.tools == ["iptables-save", "ip6tables-save", "nft"]


def test_no_tools_at_all():
    assert parse_nat("") == parse_nat("\n")


REAL = (NAT / "rules_root.txt").read_text().split("\n")


@settings(max_examples=200)
@given(st.lists(st.sampled_from(REAL) | st.text(max_size=50), max_size=14))
def test_any_text_gives_a_reading_or_parse_error(lines):
    with contextlib.suppress(ParseError):
        parse_nat("\n".join(lines))
