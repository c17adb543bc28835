"""fleetaudit.addresses: the one place addresses are read, compared and rewritten."""

from __future__ import annotations

import pytest

from fleetaudit import addresses


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0.0.1", "10.0.0.1"),
    ("2001:DB8:0:0::1", "2001:db8::1"),  # canonical, as nmap reports it
    ("[2001:db8::1]", "2001:db8::1"),
    ("fe80::1%eth0", "fe80::1%eth0"),  # the scope is how a link-local address is reached
    ("web01.example.com", None),
    ("10.0.0.256", None),
    ("fe80::1%", None),
    ("", None),
])
def test_literal_is_an_ip_as_written_or_none_for_a_name(text, expected):
    assert addresses.literal(text) == expected


def test_literal_keeps_the_scope_that_canonical_drops():
    assert addresses.canonical("fe80::1%eth0") == "fe80::1"
    assert addresses.literal("fe80::1%eth0") == "fe80::1%eth0"
