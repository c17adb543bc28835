"""The batch framing must survive real sh and hostile output."""

import subprocess

import pytest

from fleetaudit.batch import TIMED_OUT, BatchCommand, build_inline, build_script, split_output

NONCE = "abcdef0123456789"


def run_sh(script: str) -> str:
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=False,
                          text=True).stdout


def test_sections_and_exit_status_through_real_sh():
    script = build_script([
        BatchCommand(name="one", command="printf 'a\\nb\\n'"),
        BatchCommand(name="two", command="printf 'no newline'; exit 3"),
        BatchCommand(name="empty", command="true"),
    ], NONCE)
    sections = split_output(run_sh(script), NONCE)
    assert sections["one"].text == "a\nb\n"
    assert sections["one"].exit_status == 0
    assert sections["two"].text == "no newline"
    assert sections["two"].exit_status == 3
    assert sections["empty"].text == ""
    assert sections["empty"].exit_status == 0


def test_output_forging_another_nonce_is_data():
    forged = "@@fa-0000000000000000:end:one:0"
    script = build_script([BatchCommand(name="one", command=f"echo '{forged}'; echo real")],
                          NONCE)
    sections = split_output(run_sh(script), NONCE)
    assert sections["one"].text == f"{forged}\nreal\n"


def test_cut_short_output_keeps_what_arrived():
    script = build_script([BatchCommand(name="one", command="echo partial")], NONCE)
    output = run_sh(script)
    cut = output[: output.index("partial") + len("partial")]
    section = split_output(cut, NONCE)["one"]
    assert section.text == "partial"
    assert section.exit_status is None


def test_binary_and_nul_bytes_pass_through():
    script = build_script([BatchCommand(name="nul", command="printf 'a\\0b\\0'")], NONCE)
    raw = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=False).stdout
    assert split_output(raw.decode(), NONCE)["nul"].text == "a\0b\0"


@pytest.mark.parametrize("name", ["has space", "semi;colon", "", "a:b"])
def test_unsafe_section_names_are_refused(name):
    with pytest.raises(ValueError):
        build_script([BatchCommand(name=name, command="true")], NONCE)


def test_weak_nonce_is_refused():
    with pytest.raises(ValueError):
        build_script([BatchCommand(name="x", command="true")], "short")


# --- per-command limits and conditions ----------------------------------------------------


def run_with_path(script: str, path: str) -> str:
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=False,
                          text=True, env={"PATH": path}, timeout=60).stdout


def test_timeout_ends_one_command_and_the_batch_goes_on():
    script = build_script([
        BatchCommand(name="slow", command="echo started; sleep 30; echo never", timeout=1),
        BatchCommand(name="after", command="echo fine"),
    ], NONCE)
    sections = split_output(run_sh(script), NONCE)
    assert sections["slow"].text == "started\n"
    assert sections["slow"].exit_status == TIMED_OUT
    assert sections["after"].text == "fine\n"
    assert sections["after"].exit_status == 0


def test_timeout_keeps_the_command_a_shell_command():
    script = build_script([BatchCommand(name="pipe", command="printf 'a b\\n' | cut -d' ' -f2",
                                        timeout=5)], NONCE)
    assert split_output(run_sh(script), NONCE)["pipe"].text == "b\n"


def test_old_busybox_timeout_dialect_is_used(tmp_path):
    # A `timeout` that only knows `-t SECS` (busybox before 1.30).
    fake = tmp_path / "timeout"
    fake.write_text('#!/bin/sh\n[ "$1" = "-t" ] || exit 125\nshift; s=$1; shift\n'
                    'exec /usr/bin/timeout "$s" "$@"\n')
    fake.chmod(0o755)
    script = build_script([BatchCommand(name="slow", command="sleep 30", timeout=1),
                           BatchCommand(name="after", command="echo fine")], NONCE)
    sections = split_output(run_with_path(script, f"{tmp_path}:/usr/bin:/bin"), NONCE)
    assert sections["slow"].exit_status == TIMED_OUT
    assert sections["after"].text == "fine\n"


def test_host_without_timeout_runs_the_command_unbounded(tmp_path):
    for tool in ("sh", "echo", "printf"):
        (tmp_path / tool).symlink_to(f"/bin/{tool}" if tool != "printf" else "/usr/bin/printf")
    script = build_script([BatchCommand(name="x", command="echo ran", timeout=1)], NONCE)
    sections = split_output(run_with_path(script, str(tmp_path)), NONCE)
    assert sections["x"].text == "ran\n"
    assert sections["x"].exit_status == 0


def test_max_output_cuts_a_runaway_command_and_the_next_section_survives():
    script = build_script([
        BatchCommand(name="flood", command="yes 0123456789", max_output=1000),
        BatchCommand(name="after", command="echo fine"),
    ], NONCE)
    sections = split_output(run_sh(script), NONCE)
    assert len(sections["flood"].text) == 1000
    assert sections["flood"].exit_status is None
    assert sections["after"].text == "fine\n"


def test_max_output_leaves_short_output_and_its_status_alone():
    script = build_script([BatchCommand(name="x", command="echo small; exit 4",
                                        max_output=1000)], NONCE)
    section = split_output(run_sh(script), NONCE)["x"]
    assert (section.text, section.exit_status) == ("small\n", 4)


def test_only_if_false_leaves_no_section():
    script = build_script([
        BatchCommand(name="skipped", command="echo no", only_if="false"),
        BatchCommand(name="ran", command="echo yes", only_if="true"),
    ], NONCE)
    sections = split_output(run_sh(script), NONCE)
    assert "skipped" not in sections
    assert sections["ran"].text == "yes\n"


def test_helpers_only_when_needed_and_limits_checked():
    plain = build_script([BatchCommand(name="x", command="true")], NONCE)
    assert "fa_timeout" not in plain and "fa_cap" not in plain
    for bad in ({"timeout": 0}, {"max_output": 0}):
        with pytest.raises(ValueError):
            build_script([BatchCommand(name="x", command="true", **bad)], NONCE)


def test_helpers_defined_once_serve_every_later_script_of_the_shell():
    first = build_script([BatchCommand(name="a", command="echo one")], NONCE, helpers=True)
    assert "fa_timeout()" in first and "fa_cap()" in first  # though "a" needs neither
    later = build_script([
        BatchCommand(name="slow", command="echo started; sleep 30", timeout=1),
        BatchCommand(name="long", command="yes | head -c 100000", max_output=10),
    ], NONCE, helpers=False)
    assert "fa_timeout()" not in later and "fa_cap()" not in later
    # One shell reading both, as a host's session does across rounds.
    sections = split_output(run_sh(first + later), NONCE)
    assert sections["a"].text == "one\n"
    assert sections["slow"].exit_status == TIMED_OUT
    assert sections["long"].exit_status is None and len(sections["long"].text) <= 10


def test_inline_commands_come_back_apart_with_their_status_and_no_forgery():
    inline = build_inline([
        BatchCommand(name="a", command="printf 'no newline'"),
        BatchCommand(name="b", command="false"),
        BatchCommand(name="c", command="printf 'x\\0y'"),
        BatchCommand(name="d", command=f"echo '@@fa-{'z' * 16}:end:d:0'; echo after;"),
    ], NONCE)
    raw = subprocess.run(["/bin/sh", "-c", f"( {inline} )"], capture_output=True,
                         check=False).stdout.decode()
    sections = split_output(raw, NONCE)
    assert {n: (s.text, s.exit_status) for n, s in sections.items()} == {
        "a": ("no newline", 0), "b": ("", 1), "c": ("x\0y", 0),
        "d": (f"@@fa-{'z' * 16}:end:d:0\nafter\n", 0)}
    # No subshell per command: a variable set by one is seen by the next.
    shared = build_inline([BatchCommand(name="set", command="v=1"),
                           BatchCommand(name="get", command="echo $v")], NONCE)
    out = subprocess.run(["/bin/sh", "-c", shared], capture_output=True, text=True).stdout
    assert split_output(out, NONCE)["get"].text == "1\n"


def test_inline_commands_take_no_limits():
    for bad in ({"timeout": 5}, {"max_output": 10}, {"only_if": "true"}):
        with pytest.raises(ValueError):
            build_inline([BatchCommand(name="x", command="true", **bad)], NONCE)
