"""Secrets in command lines: redacted before a ProcessInfo exists, so no report holds them.

The command lines are real ones from public files (tests/fixtures/cmdlines/*.tsv, each
line with its source and licence) and this machine's captured /proc/PID/cmdline files.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fleetaudit.batch import Section
from fleetaudit.models import AuditResults, HostResult, ProcessInfo
from fleetaudit.parsers.proc import parse_cmdline
from fleetaudit.parsers.process import ProcessFacts, build_process
from fleetaudit.parsers.redact import marker, redact_argv
from fleetaudit.policy import parse_policy
from fleetaudit.report import write_report
from tests.process_singles import process_probes
from tests.unit.test_report_formats import policy_results

FIXTURES = Path(__file__).parent.parent / "fixtures"
CMDLINES = FIXTURES / "cmdlines"


def _rows(name: str) -> list[dict[str, str]]:
    lines = [line for line in (CMDLINES / name).read_text("utf-8").split("\n")
             if line and not line.startswith("#")]
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    for row in rows:
        assert row["source"].startswith("https://github.com/") and row["licence"], row["id"]
    return rows


SECRET_ROWS = _rows("secrets.tsv")
PLAIN_ROWS = _rows("plain.tsv")


@pytest.mark.parametrize("row", SECRET_ROWS, ids=[r["id"] for r in SECRET_ROWS])
def test_secret_values_go_and_the_rest_stays(row: dict[str, str]) -> None:
    argv = shlex.split(row["argv"])
    out = redact_argv(argv)
    assert out == shlex.split(row["expected"])
    assert len(out) == len(argv)  # every argument keeps its position
    for secret in row["secrets"].split():
        assert secret not in " ".join(out)


@pytest.mark.parametrize("row", PLAIN_ROWS, ids=[r["id"] for r in PLAIN_ROWS])
def test_ordinary_command_lines_come_out_unchanged(row: dict[str, str]) -> None:
    argv = shlex.split(row["argv"])
    assert redact_argv(argv) == argv


@pytest.mark.parametrize("path", sorted((FIXTURES / "proc").glob("cmdline_*.bin")),
                         ids=lambda p: p.name)
def test_captured_cmdlines_come_out_unchanged(path: Path) -> None:
    # sshd -D, its session title, python3 -m http.server, a binary named "my server".
    argv = parse_cmdline(path.read_bytes().decode("utf-8", "surrogateescape"))
    assert redact_argv(argv) == argv


def _row(rows: list[dict[str, str]], name: str) -> dict[str, str]:
    return next(r for r in rows if r["id"] == name)


def test_a_secret_inside_a_shell_script_goes() -> None:
    # The redis line as `sh -c` runs it (docker-compose's `command: sh -c '...'`): one
    # argument holding the whole script, read word by word.
    row = _row(SECRET_ROWS, "redis_requirepass")
    out = redact_argv(["/bin/sh", "-c", row["argv"]])
    assert out == ["/bin/sh", "-c", " ".join(shlex.split(row["expected"]))]


def test_a_retitled_process_is_read_word_by_word() -> None:
    # A title written over argv comes back as one space-separated string.
    row = _row(SECRET_ROWS, "java_truststore_password_separate")
    out = redact_argv([" ".join(shlex.split(row["argv"]))])
    assert out == [" ".join(shlex.split(row["expected"]))]
    assert "Wq3!x7#pLm" not in out[0]


def test_the_marker_says_the_length_only() -> None:
    assert marker("123456") == "<redacted:6>"
    assert marker("") == "<redacted:0>"


def test_policy_patterns_add_names() -> None:
    argv = shlex.split(_row(PLAIN_ROWS, "redis_cli_host")["argv"])  # redis-cli -h some-redis
    assert redact_argv(argv, ["^h$"]) == ["redis-cli", "-h", "<redacted:10>"]
    conf = shlex.split(_row(PLAIN_ROWS, "flower_conf")["argv"])  # flower --conf=celeryconfig.py
    assert redact_argv(conf, ["conf"]) == ["flower", "--conf=<redacted:15>"]
    # Taken as given: a policy name matching a file-name option redacts it too.
    env = shlex.split(_row(PLAIN_ROWS, "docker_env_password_file")["argv"])
    assert "MONGO_INITDB_ROOT_PASSWORD_FILE=<redacted:23>" in redact_argv(env, ["_FILE$"])
    assert redact_argv(argv) == argv  # the defaults did not change


def test_policy_file_carries_redact_arguments() -> None:
    policy = parse_policy("version: 1\nredact_arguments: ['^h$', 'license']\n", source="p.yml")
    assert policy.document.redact_arguments == ["^h$", "license"]


def test_policy_file_rejects_a_broken_regex_with_its_line() -> None:
    from fleetaudit.errors import PolicyError
    with pytest.raises(PolicyError, match=r"p.yml:4: redact_arguments\[1\]: not a regular"):
        parse_policy("version: 1\nredact_arguments:\n  - ok\n  - 'a('\n", source="p.yml")


def test_build_process_stores_the_redacted_cmdline() -> None:
    row = _row(SECRET_ROWS, "redis_requirepass")
    raw = "\0".join(shlex.split(row["argv"])) + "\0"
    info = build_process(4242, ProcessFacts(values={"cmdline": parse_cmdline(raw)}), None)
    assert info.cmdline == shlex.split(row["expected"])
    extra = build_process(4242, ProcessFacts(values={"cmdline": ["redis-cli", "-h", "x"]}),
                          None, ["^h$"])
    assert extra.cmdline == ["redis-cli", "-h", "<redacted:1>"]


def _collected(pid: int, argv: list[str], exe: str) -> ProcessInfo:
    """A ProcessInfo built the way collection builds it: from the probes' raw sections."""
    probes = process_probes(pid)
    texts = {f"cmdline.{pid}": "\0".join(argv) + "\0", f"exe.{pid}": exe + "\n"}
    sections = {name: Section(name=name, text=text, exit_status=0)
                for name, text in texts.items()}
    return probes.build(sections)


def _with_process(results: AuditResults, host_name: str, info: ProcessInfo) -> AuditResults:
    """`results` with one host's process of info.pid replaced, wherever it appears."""
    def swap(host: HostResult) -> HostResult:
        if host.name != host_name or host.internal is None:
            return host
        processes = [info if p.pid == info.pid else p for p in host.internal.processes]
        ports = [port.model_copy(update={"listeners": [
            listener.model_copy(update={"process": info}) if listener.pid == info.pid
            else listener for listener in port.listeners]}) for port in host.ports]
        return host.model_copy(update={
            "internal": host.internal.model_copy(update={"processes": processes}),
            "ports": ports})
    return results.model_copy(update={"hosts": [swap(h) for h in results.hosts]})


def test_no_report_format_holds_a_secret(tmp_path: Path) -> None:
    """Every format, written to disk: not one file contains a secret value."""
    results = policy_results()
    host = next(h for h in results.hosts if h.internal and h.internal.processes)
    target = host.internal.processes[-1]  # type: ignore[union-attr]
    rows = [_row(SECRET_ROWS, n) for n in ("java_keystore_password", "flower_broker_api_url",
                                           "redis_requirepass")]
    argv = [a for row in rows for a in shlex.split(row["argv"])]
    info = _collected(target.pid, argv, target.exe or "/usr/bin/java")
    assert info.cmdline == [a for row in rows for a in shlex.split(row["expected"])]
    paths = write_report(_with_process(results, host.name, info), tmp_path / "out",
                         formats=["all"])
    assert len(paths.files) == 6
    texts = {path.name: path.read_text("utf-8") for path in paths.files.values()}
    assert "<redacted:8>" in texts["results.json"]  # the process did reach the report
    for name, text in texts.items():
        for secret in ("changeit", ":password@", "123456"):
            assert secret not in text, f"{secret!r} in {name}"
