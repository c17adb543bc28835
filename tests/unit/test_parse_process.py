"""The per-process probes on real /proc output (capture_internal_more.sh, process/).

Each fixture is one probe's stdout for one process: `<kind>_<label>.txt`, with the PIDs
in process/pids.tsv. The capture ran in a PID namespace, so ProcessProbes.build is fed
exactly what the engine would feed it.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.batch import Section
from fleetaudit.errors import ParseError
from fleetaudit.models import ContainerRef, ProcessInfo
from fleetaudit.parsers.hostfacts import parse_host_facts
from fleetaudit.parsers.process import (
    parse_cgroup,
    parse_cwd_link,
    parse_env_names,
    parse_maps,
    parse_netns_link,
    parse_proc_stat,
    parse_proc_status,
    parse_sha256,
)
from tests.process_singles import looks_secret, parse_env_value, process_probes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PROCESS = FIXTURES / "process"
PIDS = dict(row.split("\t") for row in (PROCESS / "pids.tsv").read_text().splitlines()[1:])
# The host facts of the same capture (its network namespace, its boot).
SYSTEM = parse_host_facts((PROCESS / "hostfacts_root.txt").read_text())
PYTHON_SHA = (PROCESS / "python_exe.sha256").read_text().strip()
SSHD_SHA = (PROCESS / "sshd_exe.sha256").read_text().strip()
CID = (PROCESS / "container_id.txt").read_text().strip()
TMP = "/tmp/fleetaudit-capture-more"


def text(name: str) -> str:
    return (PROCESS / name).read_text(encoding="utf-8", errors="surrogateescape")


def build(label: str) -> ProcessInfo:
    bundle = process_probes(int(PIDS[label]))
    sections = {p.name: Section(name=p.name, text=text(f"{p.name.partition('.')[0]}_{label}.txt"),
                                exit_status=0) for p in bundle.probes}
    return bundle.build(sections, SYSTEM)


INFO = {label: build(label) for label in PIDS}


def test_a_full_answer():
    info = INFO["env"]
    assert info.exe == "/usr/bin/python3.11" and not info.exe_deleted
    assert info.sha256 == PYTHON_SHA
    assert info.name == "python3.11" and info.ppid == 1  # the capture script is PID 1
    assert (info.uid, info.user) == (0, "root")
    assert info.cwd == f"{TMP}/work dir"
    # names only, in environ's order; FA_MULTILINE's second line is no record of its own
    assert info.env_names == ["PATH", "FA_PLAIN", "API_TOKEN", "FA_RANDOM", "FA_MULTILINE"]
    assert info.netns == SYSTEM.netns and not info.foreign_netns
    assert info.systemd_unit is None and info.container is None
    assert info.errors == []


def test_no_environment_value_is_in_any_fixture_of_names():
    for label in PIDS:
        names = text(f"envnames_{label}.txt")
        for secret in ("hello-plain", "fa-capture-token-value", "first", "second",
                       (PROCESS / "fa_random.value").read_text()):
            assert secret not in names


def test_start_times_follow_the_order_the_script_started_them():
    # PIDs in a fresh PID namespace are handed out in start order.
    started = sorted((int(PIDS[label]), INFO[label].started_at) for label in PIDS
                     if INFO[label].started_at is not None)
    times = [t for _, t in started]
    assert times == sorted(times)
    assert SYSTEM.boot_time is not None
    assert all(SYSTEM.boot_time < t < SYSTEM.boot_time + timedelta(days=30) for t in times)
    ticks = parse_proc_stat(text("stat_env.txt"))
    assert INFO["env"].started_at == SYSTEM.boot_time + timedelta(seconds=ticks / 100)


def test_comm_with_paren_and_newline_does_not_shift_stat_fields():
    assert INFO["comm_paren"].name == "a)b c"
    assert INFO["comm_newline"].name == "x\ny"
    assert "(a)b c) S 1 " in text("stat_comm_paren.txt")
    assert INFO["comm_paren"].started_at is not None


def test_deleted_executable_is_hashed_through_proc():
    info = INFO["deleted"]
    assert info.exe == f"{TMP}/deleted-server" and info.exe_deleted
    assert info.sha256 == (PROCESS / "deleted_exe.sha256").read_text().strip()
    assert [m.suspicious for m in info.libraries if m.path == info.exe] == [
        "deleted since it was mapped"]


def test_suspicious_libraries():
    reasons = {m.path: m.suspicious for m in INFO["libs"].libraries if m.suspicious}
    assert reasons == {
        f"{TMP}/.hidden/libz.so.1": "under /tmp",
        "/dev/shm/libbz2.so.1.0": "under /dev/shm",
        f"{TMP}/liblzma-deleted.so.5": "deleted since it was mapped",
        "/memfd:fa-capture-lib": "memfd: code mapped from memory, never from a file on disk",
    }
    paths = [m.path for m in INFO["libs"].libraries]
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in paths
    assert not any(p.startswith("[") for p in paths)
    assert [m.suspicious for m in INFO["env"].libraries] == [None] * len(INFO["env"].libraries)


def test_hidden_directory_rule():
    [lib] = parse_maps("   /usr/lib/.cache/x.so\n")
    assert lib.suspicious == "in a hidden directory (.cache)"


def test_listener_in_another_network_namespace_is_foreign():
    assert INFO["netns"].netns != SYSTEM.netns
    assert INFO["netns"].foreign_netns


def test_sshd_title_overwrote_its_environment():
    # sshd was started with FA_SSHD_VAR and PATH; the title now covers that area
    assert b"[listener]" in (PROCESS / "environ_sshd_raw.bin").read_bytes()
    assert b"FA_SSHD_VAR" not in (PROCESS / "environ_sshd_raw.bin").read_bytes()
    assert INFO["sshd"].env_names == [] and INFO["session"].env_names == []
    assert INFO["sshd"].sha256 == SSHD_SHA and INFO["session"].sha256 == SSHD_SHA
    assert INFO["session"].ppid == int(PIDS["sshd"])
    assert INFO["session"].cmdline == ["sshd: root@notty"]


def test_unprivileged_reader_gets_what_proc_allows():
    info = INFO["denied"]  # nobody reading root's process
    assert (info.exe, info.cwd, info.sha256, info.netns) == (None, None, None, None)
    assert info.env_names == [] and info.libraries == []
    assert info.name == "python3.11" and info.started_at == INFO["env"].started_at
    assert "executable not readable" in info.errors[0]
    own = INFO["nobody_own"]  # nobody reading its own
    assert own.sha256 == PYTHON_SHA and own.uid == 65534 and own.netns == SYSTEM.netns


def test_a_process_gone_leaves_nothing_but_a_reason():
    info = INFO["gone"]
    assert info.model_dump(include={"exe", "name", "ppid", "started_at", "cwd", "sha256"}) == {
        "exe": None, "name": None, "ppid": None, "started_at": None, "cwd": None, "sha256": None}
    assert info.errors == ["executable not readable (process gone or not privileged)"]


@pytest.mark.parametrize(("label", "unit", "container"), [
    ("ssh_service", "ssh.service", None),
    ("docker_systemd", None, ContainerRef(runtime="docker", id=CID)),
    ("podman", None, ContainerRef(runtime="podman", id=CID)),
    ("kubepods", None, ContainerRef(runtime="containerd", id=CID)),
    ("user_unit", "user@1000.service/app.slice/ssh.service", None),
    ("docker_cgroupfs_v1", None, ContainerRef(runtime="docker", id=CID)),
    ("env", None, None),
])
def test_cgroup(label, unit, container):
    assert parse_cgroup(text(f"cgroup_{label}.txt")) == (unit, container)


def test_environment_value_probe_answers():
    def value(var):
        return parse_env_value(text(f"envvalue_{var}.txt"), var)

    assert value("FA_PLAIN").value == "hello-plain"
    assert value("FA_MULTILINE").value == "first\nFA_FAKE=second"
    assert not value("FA_FAKE").present and not value("FA_ABSENT").present
    token = value("API_TOKEN")
    assert token.present and token.redacted and token.value is None
    assert text("envvalue_API_TOKEN.txt") == "API_TOKEN=\n"  # cut on the host
    random = value("FA_RANDOM")
    assert random.redacted and random.value is None  # cut here: entropy
    assert (PROCESS / "fa_random.value").read_text() in text("envvalue_FA_RANDOM.txt")
    assert not parse_env_value(text("envvalue_sshd_FA_SSHD_VAR.txt"), "FA_SSHD_VAR").present


def test_looks_secret():
    assert looks_secret((PROCESS / "fa_random.value").read_text())
    assert looks_secret("ghp_16C7e42F292c6912E7710c838347Ae178B4a")
    assert not looks_secret("hello-plain")
    assert not looks_secret("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    assert not looks_secret("a sentence with spaces and Some Mixed Case 12345")


def test_env_names_drop_what_is_no_name():
    assert parse_env_names("PATH\n=none [listener]\n1BAD\nHOME\nPATH\n") == ["PATH", "HOME"]


@pytest.mark.parametrize(("parse", "bad"), [
    (parse_proc_status, "Name:\tx\nPPid:\tnot-a-number\n"),
    (parse_proc_status, "no colon here"),
    (parse_proc_stat, "12 (x) S 1"),
    (parse_proc_stat, "garbage"),
    (parse_cwd_link, "relative/path"),
    (parse_netns_link, "mnt:[4026531840]"),
    (parse_cgroup, "not a cgroup line"),
    (parse_sha256, "d41d8cd98f00b204e9800998ecf8427e  /proc/1/exe"),
    (parse_maps, "   relative.so"),
])
def test_shapes_never_printed_are_refused(parse, bad):
    with pytest.raises(ParseError):
        parse(bad)


PARSERS = [parse_proc_status, parse_proc_stat, parse_cwd_link, parse_netns_link, parse_cgroup,
           parse_env_names, parse_sha256, parse_maps,
           lambda t: parse_env_value(t, "FA_PLAIN")]
REAL = [text(p.name) for p in PROCESS.glob("*_env.txt")]


@settings(max_examples=150)
@given(st.sampled_from(PARSERS),
       st.lists(st.sampled_from("\n".join(REAL).split("\n")) | st.text(max_size=60), max_size=8))
def test_any_text_gives_a_result_or_parse_error(parse, lines):
    with contextlib.suppress(ParseError):
        parse("\n".join(lines))


def test_boot_time_is_utc():
    assert SYSTEM.boot_time == datetime(2026, 11, 28, 16, 21, 10, tzinfo=UTC)
