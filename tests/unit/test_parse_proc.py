"""proc parsers on real readlink / cat /proc/PID/cmdline / stat output (tests/fixtures/proc/)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.parsers.proc import (
    parse_cmdline,
    parse_exe_id,
    parse_exe_link,
    parse_stat_owner,
)
from fleetaudit.parsers.process import parse_sha256

PROC = Path(__file__).resolve().parents[1] / "fixtures" / "proc"
CAPTURE_DIR = "/tmp/fleetaudit-capture"  # fixed by capture_internal.sh


def fixture(name: str) -> str:
    # The collector decodes remote output this way too.
    return (PROC / name).read_bytes().decode("utf-8", errors="replace")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("exe_http_server.txt", ("/usr/bin/python3.11", False)),
        ("exe_sshd.txt", ("/usr/sbin/sshd", False)),
        ("exe_busybox.txt", ("/usr/bin/busybox", False)),  # /bin/busybox to dpkg
        ("exe_my_server.txt", (f"{CAPTURE_DIR}/my server", False)),
        ("exe_deleted.txt", (f"{CAPTURE_DIR}/deleted-server", True)),
        ("exe_denied_quiet.txt", (None, False)),  # plain readlink as nobody: silent
        ("exe_denied_verbose.txt", (None, False)),  # readlink -v: "Permission denied"
        ("exe_kthread_quiet.txt", (None, False)),
        ("exe_kthread_verbose.txt", (None, False)),  # "No such file or directory"
    ],
)
def test_exe_link(name: str, expected: tuple[str | None, bool]) -> None:
    assert parse_exe_link(fixture(name)) == expected


def test_exe_link_raw_shapes() -> None:
    assert fixture("exe_deleted.txt").endswith(" (deleted)\n")
    assert fixture("exe_denied_quiet.txt") == ""
    assert "Permission denied" in fixture("exe_denied_verbose.txt")


@pytest.mark.parametrize("text", ["python3.11\n", "permission denied", "  relative/path"])
def test_exe_link_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        parse_exe_link(text)


def test_cmdline_of_a_plain_process() -> None:
    assert parse_cmdline(fixture("cmdline_http_server.bin")) == [
        "/usr/bin/python3.11", "-m", "http.server", "--bind", "127.0.0.1", "41000",
    ]


def test_cmdline_keeps_spaces_inside_an_argument() -> None:
    argv = parse_cmdline(fixture("cmdline_my_server.bin"))
    assert argv[0] == f"{CAPTURE_DIR}/my server"
    assert argv[2:] == ["tcp", "127.0.0.1", "41040"]


def test_cmdline_of_retitled_sshd_listener() -> None:
    raw = fixture("cmdline_sshd_listener.bin")
    assert raw.endswith("\0e\0")  # the title was cut to fit; 'e' is left from the old argv
    [title] = parse_cmdline(raw)
    assert title.startswith("sshd: /usr/sbin/sshd -D -e -p 41022 -o ListenAddress=127.0.0.1")
    assert "\0" not in title


def test_cmdline_of_sshd_session() -> None:
    raw = fixture("cmdline_sshd_session.bin")
    assert raw.startswith("sshd: root@notty\0\0") and raw.endswith("\0R\0")  # padding + leftover
    assert parse_cmdline(raw) == ["sshd: root@notty"]


def test_cmdline_of_kernel_thread_is_empty() -> None:
    assert fixture("cmdline_kthread.bin") == ""
    assert parse_cmdline("") == []


def test_cmdline_title_without_nuls_is_one_element() -> None:
    listener = parse_cmdline(fixture("cmdline_sshd_listener.bin"))[0]
    assert parse_cmdline(listener) == [listener]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_cmdline_never_raises(raw: str) -> None:
    argv = parse_cmdline(raw)
    assert all("\0" not in arg for arg in argv)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("stat_root.txt", (0, "root")),
        ("stat_nobody.txt", (65534, "nobody")),
        ("stat_unknown_uid.txt", (4242, None)),  # stat prints "4242 UNKNOWN"
        ("stat_gone.txt", (None, None)),  # "stat: cannot statx ..."
    ],
)
def test_stat_owner(name: str, expected: tuple[int | None, str | None]) -> None:
    assert parse_stat_owner(fixture(name)) == expected


@pytest.mark.parametrize("text", ["root 0\n", "0 root\n0 root\n", "-1 x", "9" * 5000 + " x"])
def test_stat_owner_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        parse_stat_owner(text)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_proc_parsers_return_or_raise_parse_error(text: str) -> None:
    for parse in (parse_exe_link, parse_stat_owner):
        with contextlib.suppress(ParseError):
            parse(text)


# --- which file runs, and its hash once per file (capture_collect_rounds.sh) ---------


def _read(name: str) -> str:
    return (PROC / name).read_text()


def test_two_processes_of_one_file_share_its_identity_a_deleted_copy_does_not() -> None:
    a, b = parse_exe_id(_read("exeid_python_a.txt")), parse_exe_id(_read("exeid_python_b.txt"))
    assert a is not None and a == b
    deleted = parse_exe_id(_read("exeid_deleted.txt"))
    assert deleted is not None and deleted != a


def test_file_identity_of_a_gone_or_refused_process_is_unknown() -> None:
    assert parse_exe_id(_read("exeid_gone.txt")) is None
    assert parse_exe_id(_read("exeid_denied.txt")) is None


@pytest.mark.parametrize("text", ["65024", "a b", "65024 260811\n1 2", "-1 2"])
def test_file_identity_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        parse_exe_id(text)


def test_shared_hash_is_taken_from_the_first_pid_still_running() -> None:
    pids = dict(line.split("\t") for line in _read("exeid_pids.tsv").splitlines())
    text = _read("exehash_gone_first.txt")
    assert f"/proc/{pids['gone']}/" not in text
    assert parse_sha256(text) == _read("exehash_python.sha256").strip()
    assert parse_sha256(_read("exehash_denied.txt")) is None


def test_hash_reads_openssl_and_sha256sum_alike() -> None:
    digest = _read("exehash_python.sha256").strip()
    assert " */proc/" in _read("exehash_gone_first.txt")  # openssl dgst -r
    assert "  /proc/" in _read("exehash_sha256sum.txt")  # no openssl on the PATH
    assert parse_sha256(_read("exehash_sha256sum.txt")) == digest
