"""Package verification on real output (integrity/: dpkg's md5 cases captured by
capture_collect_rounds.sh, rpm's by capture_internal_more.sh).

The "modified", "missing" and "unreadable" files were never changed on disk: each case
ran in a throwaway mount namespace where a changed copy (or an empty /usr/sbin) was
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
from fleetaudit.packagers import dpkg, rpm
from fleetaudit.parsers.integrity import parse_dpkg_md5, parse_rpm_verify

INTEGRITY = Path(__file__).resolve().parents[1] / "fixtures" / "integrity"
OK, MODIFIED, MISSING, UNKNOWN = (IntegrityStatus.OK, IntegrityStatus.MODIFIED,
                                  IntegrityStatus.MISSING, IntegrityStatus.UNKNOWN)
# busybox by the spelling dpkg registered (/bin/busybox), as collection asks; ls by the
# other one (dpkg has /bin/ls): its md5sums line is found under either.
DPKG = {"/usr/sbin/sshd": "openssh-server", "/bin/busybox": "busybox",
        "/usr/bin/python3.11": "python3.11-minimal", "/usr/bin/ls": "coreutils"}
SSHD = {"/usr/sbin/sshd": "openssh-server"}
RPM = ["/opt/fleetaudit-demo/bin/fa-demo", "/opt/fleetaudit-demo/bin/fa-other",
       "/opt/fa-not-owned"]


def fixture(name: str) -> str:
    return (INTEGRITY / name).read_text()


def statuses(results):
    return {r.path: r.status for r in results}


def test_fixtures_are_this_probes_output():
    assert dpkg.integrity_probe(DPKG).command == fixture("md5_command.txt").strip()
    assert rpm.integrity_probe(dict.fromkeys(RPM, "")).command == (
        fixture("rpm_command.txt").strip())


def test_dpkg_clean():
    assert statuses(parse_dpkg_md5(fixture("md5_clean.txt"), DPKG)) == dict.fromkeys(DPKG, OK)


def test_dpkg_modified_binaries_say_both_digests():
    results = parse_dpkg_md5(fixture("md5_modified.txt"), DPKG)
    assert statuses(results) == {"/usr/sbin/sshd": MODIFIED, "/bin/busybox": MODIFIED,
                                 "/usr/bin/python3.11": OK, "/usr/bin/ls": OK}
    assert results[0].detail == ("md5 ef7bc581b47f3ff6724f0bcf2f5619ee, openssh-server's "
                                 "md5sums say 83118f56a77ffa5a59958f15e8c01ee1")


def test_dpkg_missing():
    results = parse_dpkg_md5(fixture("md5_missing.txt"), DPKG)
    assert statuses(results)["/usr/sbin/sshd"] is MISSING
    assert results[0].detail == "md5sum: /usr/sbin/sshd: No such file or directory"


def test_dpkg_unreadable_is_unknown_not_ok():
    result = parse_dpkg_md5(fixture("md5_unreadable_nobody.txt"), DPKG)[0]
    assert result.status is UNKNOWN and "Permission denied" in (result.detail or "")


def test_dpkg_no_checksum_on_record_is_unknown():
    # A package that is not installed, and a conffile (md5sums lists neither).
    results = parse_dpkg_md5(fixture("md5_no_checksum.txt"),
                             {"/usr/sbin/sshd": "fleetaudit-not-installed",
                              "/etc/pam.d/sshd": "openssh-server"})
    assert statuses(results) == {"/usr/sbin/sshd": UNKNOWN, "/etc/pam.d/sshd": UNKNOWN}
    assert results[0].detail == "no checksum for it in fleetaudit-not-installed's md5sums"


def test_dpkg_md5sums_line_of_another_file_does_not_answer():
    # grep -F '  usr/sbin/sshd' would also match 'usr/sbin/sshd-x': only the exact path counts.
    text = fixture("md5_clean.txt").replace("  usr/sbin/sshd\n", "  usr/sbin/sshd-x\n", 1)
    assert parse_dpkg_md5(text, SSHD)[0].status is UNKNOWN


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
    text = fixture("md5_modified.txt")
    cut = text[: text.index("@@fa-verify 1")]  # sshd's block only
    assert statuses(parse_dpkg_md5(cut, DPKG)) == {
        "/usr/sbin/sshd": MODIFIED, "/bin/busybox": UNKNOWN, "/usr/bin/python3.11": UNKNOWN,
        "/usr/bin/ls": UNKNOWN}
    no_status = "@@fa-verify 0\n"
    assert parse_dpkg_md5(no_status, SSHD)[0].status is UNKNOWN


@pytest.mark.parametrize("bad", ["83118f56a77ffa5a59958f15e8c01ee1  /usr/sbin/sshd",
                                 "@@fa-status 0", "@@fa-verify 0\n@@fa-verify 0"])
def test_output_outside_blocks_is_refused(bad):
    with pytest.raises(ParseError):
        parse_dpkg_md5(bad, SSHD)


REAL = (fixture("md5_modified.txt") + fixture("rpm_modified.txt")).split("\n")


@settings(max_examples=200)
@given(st.lists(st.sampled_from(REAL) | st.text(max_size=50), max_size=10))
def test_any_text_gives_results_or_parse_error(lines):
    with contextlib.suppress(ParseError):
        assert len(parse_dpkg_md5("\n".join(lines), DPKG)) == len(DPKG)
    with contextlib.suppress(ParseError):
        assert len(parse_rpm_verify("\n".join(lines), RPM)) == len(RPM)
