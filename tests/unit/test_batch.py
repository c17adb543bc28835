"""The batch framing must survive real sh and hostile output."""

import subprocess

import pytest

from fleetaudit.batch import BatchCommand, build_script, split_output

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
