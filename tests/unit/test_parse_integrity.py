"""Package verification on real output (capture_internal_more.sh, integrity/).

The "modified" and "missing" files were never changed on disk: each case ran in a
throwaway mount namespace where a changed copy (or a /usr/sbin without sshd) was
bind-mounted over the package's file. rpm's cases used a scratch database and a tmpfs /opt.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.models import IntegrityStatus
from fleetaudit.parsers.integrity import parse_dpkg_verify, parse_rpm_verify
from fleetaudit.probes import integrity_probe

INTEGRITY = Path(__file__).resolve().parents[1] / "fixtures" / "integrity"
OK, MODIFIED, MISSING, UNKNOWN = (IntegrityStatus.OK, IntegrityStatus.MODIFIED,
                                  IntegrityStatus.MISSING, IntegrityStatus.UNKNOWN)
DPKG = {"/usr/sbin/sshd": "openssh-server", "/usr/bin/busybox": "busybox",
        "/usr/bin/python3.11": "python3.11-minimal", "/usr/bin/ls": "coreutils"}
SSHD = {"/usr/sbin/sshd": "openssh-server"}
RPM = ["/opt/fleetaudit-demo/bin/fa-demo", "/opt/fleetaudit-demo/bin/fa-other",
       "/opt/fa-not-owned"]


def fixture(name: str) -> str:
    return (INTEGRITY / name).read_text()


def statuses(results):
    return {r.path: r.status for r in results}


def test_fixtures_are_this_probes_output():
    assert integrity_probe("dpkg", DPKG).command == fixture("dpkg_command.txt").strip()
    assert integrity_probe("rpm", dict.fromkeys(RPM, "")).command == (
        fixture("rpm_command.txt").strip())


def test_dpkg_clean():
    assert statuses(parse_dpkg_verify(fixture("dpkg_clean.txt"), DPKG)) == dict.fromkeys(DPKG, OK)


def test_dpkg_modified_binary_conffile_and_usrmerge():
    results = parse_dpkg_verify(fixture("dpkg_modified.txt"), DPKG)
    assert statuses(results) == {"/usr/sbin/sshd": MODIFIED, "/usr/bin/busybox": MODIFIED,
                                 "/usr/bin/python3.11": OK, "/usr/bin/ls": OK}
    # dpkg names busybox by the path it registered, /bin/busybox; the conffile line
    # (/etc/pam.d/sshd) is another file of openssh-server and does not count
    assert results[1].detail == "??5??????   /bin/busybox"
    assert results[0].detail == "??5??????   /usr/sbin/sshd"


def test_dpkg_missing():
    [result] = parse_dpkg_verify(fixture("dpkg_missing.txt"), SSHD)
    assert result.status is MISSING and result.detail == "missing     /usr/sbin/sshd"


def test_dpkg_unreadable_is_unknown_not_ok():
    [result] = parse_dpkg_verify(fixture("dpkg_unreadable_nobody.txt"), SSHD)
    assert result.status is UNKNOWN


def test_dpkg_package_not_installed():
    [result] = parse_dpkg_verify(fixture("dpkg_not_installed.txt"),
                                 {"/usr/local/bin/fa-x": "fleetaudit-not-installed"})
    assert result.status is UNKNOWN and "is not installed" in (result.detail or "")


def test_rpm_clean_and_not_owned():
    assert statuses(parse_rpm_verify(fixture("rpm_clean.txt"), RPM)) == {
        RPM[0]: OK, RPM[1]: OK, RPM[2]: UNKNOWN}


def test_rpm_digest_counts_mode_does_not():
    results = parse_rpm_verify(fixture("rpm_modified.txt"), RPM)
    assert statuses(results) == {RPM[0]: MODIFIED, RPM[1]: OK, RPM[2]: UNKNOWN}
    assert results[1].detail == ".M.......    /opt/fleetaudit-demo/bin/fa-other"


def test_rpm_missing():
    assert statuses(parse_rpm_verify(fixture("rpm_missing.txt"), RPM))[RPM[0]] is MISSING


def test_output_cut_short_is_unknown():
    text = fixture("dpkg_modified.txt")
    cut = text[: text.index("@@fa-verify busybox")]  # openssh-server's block only
    assert statuses(parse_dpkg_verify(cut, DPKG)) == {
        "/usr/sbin/sshd": MODIFIED, "/usr/bin/busybox": UNKNOWN,
        "/usr/bin/python3.11": UNKNOWN, "/usr/bin/ls": UNKNOWN}
    no_status = "@@fa-verify openssh-server\n"
    assert parse_dpkg_verify(no_status, SSHD)[0].status is UNKNOWN


@pytest.mark.parametrize("bad", ["??5??????   /usr/sbin/sshd", "@@fa-status 0",
                                 "@@fa-verify x\n@@fa-verify x"])
def test_output_outside_blocks_is_refused(bad):
    with pytest.raises(ParseError):
        parse_dpkg_verify(bad, SSHD)


REAL = (fixture("dpkg_modified.txt") + fixture("rpm_modified.txt")).split("\n")


@settings(max_examples=200)
@given(st.lists(st.sampled_from(REAL) | st.text(max_size=50), max_size=10))
def test_any_text_gives_results_or_parse_error(lines):
    with contextlib.suppress(ParseError):
        assert len(parse_dpkg_verify("\n".join(lines), DPKG)) == len(DPKG)
    with contextlib.suppress(ParseError):
        assert len(parse_rpm_verify("\n".join(lines), RPM)) == len(RPM)
