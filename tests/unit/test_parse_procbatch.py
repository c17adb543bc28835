"""Many PIDs' reads by one command per kind (process_batch) against each PID's own reads,
captured at the same moment by capture_collect_rounds.sh (procbatch/).

The processes: two of one file with a known environment (a secret-looking value among
it), one whose comm holds a newline, a deleted copy of python, and a PID already gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetaudit.batch import Section, build_inline, split_output
from fleetaudit.errors import ParseError
from fleetaudit.models import ProcessInfo
from fleetaudit.parsers.hostfacts import parse_host_facts
from fleetaudit.parsers.procbatch import (
    parse_env_records,
    parse_maps_paths,
    parse_proc_texts,
    parse_stat_lines,
)
from fleetaudit.probes import process_batch
from tests.process_singles import process_probes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BATCH = FIXTURES / "procbatch"
PIDS = {label: int(pid) for label, pid in
        (row.split("\t") for row in (BATCH / "pids.tsv").read_text().splitlines())}
ORDER = [PIDS[k] for k in ("env", "comm_newline", "same_file_a", "deleted", "gone")]
SYSTEM = parse_host_facts((FIXTURES / "hostfacts" / "root.txt").read_text())


def raw(name: str) -> str:
    return (BATCH / name).read_text(encoding="utf-8", errors="surrogateescape")


def parts() -> dict[str, Section]:
    reads = process_batch(ORDER)
    own = split_output(raw("own.txt"), "capturenonce0123")
    return {**own, **{p.name: Section(name=p.name, text=raw(f"shared_{p.name}.txt"),
                                      exit_status=0) for p in reads.shared}}


def by_batch() -> dict[int, ProcessInfo]:
    return {info.pid: info for info in process_batch(ORDER).read(parts(), SYSTEM).processes}


def by_single_reads() -> dict[int, ProcessInfo]:
    sections = split_output(raw("singles.txt"), "capturenonce4567")
    return {pid: process_probes(pid, hash_exe=False, exe_id=True).build(sections, SYSTEM)
            for pid in ORDER}


def comparable(info: ProcessInfo) -> ProcessInfo:
    # The batch's maps come sorted by path, the single read's by cut's padded column.
    return info.model_copy(update={"libraries": sorted(info.libraries, key=lambda m: m.path)})


def test_every_pid_gets_what_its_own_reads_give() -> None:
    batch, single = by_batch(), by_single_reads()
    for pid in ORDER:
        assert comparable(batch[pid]) == comparable(single[pid]), pid


def test_the_chain_is_really_there() -> None:
    batch = by_batch()
    env = batch[PIDS["env"]]
    assert env.exe == "/usr/bin/python3.11" and env.cwd == "/tmp/fleetaudit-capture-rounds/work dir"
    assert env.env_names == ["PATH", "FA_PLAIN", "API_TOKEN"]
    assert env.uid == 0 and env.ppid is not None and env.started_at is not None
    assert any(m.path == "/usr/bin/python3.11" for m in env.libraries)
    # The comm's newline splits stat's line in two: both halves come back to their file.
    comm = batch[PIDS["comm_newline"]]
    assert comm.name == "x\ny" and comm.started_at is not None
    assert batch[PIDS["deleted"]].exe_deleted
    gone = batch[PIDS["gone"]]
    assert gone.exe is None and not gone.cmdline and gone.errors


def test_environment_values_never_crossed() -> None:
    for path in BATCH.iterdir():
        assert b"fa-secret" not in path.read_bytes(), path.name
        assert b"plain-value" not in path.read_bytes(), path.name


def test_a_read_that_cannot_be_parsed_loses_its_kind_only() -> None:
    broken = {**parts(), "maps.0": Section(name="maps.0", text="garbage", exit_status=0)}
    found = process_batch(ORDER).read(broken, SYSTEM)
    env = next(i for i in found.processes if i.pid == PIDS["env"])
    assert [e.partition(":")[0] for e in found.errors] == ["maps.0"]
    assert env.exe == "/usr/bin/python3.11" and env.env_names and not env.libraries
    assert any(e.startswith("maps.0: ") for e in env.errors)


@pytest.mark.parametrize(("parse", "text"), [
    (lambda t: parse_proc_texts(t, [1]), "Name:\tsshd"),
    (lambda t: parse_proc_texts(t, [1]), "/proc/1/environ:PATH=/bin"),
    (lambda t: parse_stat_lines(t, [1], exe=False), "/proc/1/exe 1 2"),
    (lambda t: parse_stat_lines(t, [1], exe=True), "0 root"),
    (lambda t: parse_env_records(t, [1]), "/proc/1/environ:PATH=/usr/bin\0"),
    (lambda t: parse_maps_paths(t, [1]), "/proc/1/maps:[heap]"),
])
def test_garbage_is_a_parse_error(parse, text) -> None:
    with pytest.raises(ParseError):
        parse(text)


def test_pids_of_one_file_are_grouped_to_be_hashed_once() -> None:
    groups = process_batch(ORDER).read(parts(), SYSTEM).same_file
    # The two python3.11 PIDs run one file; the deleted copy is another; the exited PID,
    # whose file is unknown, stands alone.
    assert sorted(map(sorted, groups)) == sorted(
        [sorted([PIDS["env"], PIDS["comm_newline"], PIDS["same_file_a"]]), [PIDS["deleted"]],
         [PIDS["gone"]]])


def test_many_pids_are_read_in_commands_linux_accepts() -> None:
    reads = process_batch(range(4_000_000, 4_001_000))
    assert len(reads.chunks) == 16  # 64 PIDs a command
    assert sorted(p.name for c in reads.chunks for p in c) == sorted(
        [*(p.name for p in reads.shared), *(p.name for pid in reads.pids for p in reads.own(pid))])
    # A time-limited command reaches the host as one `sh -c` argument: at most 128 KiB.
    inline = [build_inline([p.batch_command() for p in chunk], "x" * 24) for chunk in reads.chunks]
    assert max(len(command.encode()) for command in inline) < 128 * 1024
