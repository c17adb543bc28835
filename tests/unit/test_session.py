"""A shell session takes script after script, and nothing a script prints can end it early."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from fleetaudit.errors import CommandError
from fleetaudit.transport import (
    LocalTransport,
    PrivilegeError,
    ShellSession,
    open_session,
    script_command,
)


def run(coro):
    return asyncio.run(coro)


async def _session() -> ShellSession:
    return await open_session(LocalTransport())


def test_scripts_run_one_after_another_in_one_shell():
    async def go():
        session = await _session()
        first = await session.run("x=41; echo one")
        second = await session.run("echo $((x + 1)); echo oops >&2; false")
        await session.close()
        return first, second

    first, second = run(go())
    assert (first.stdout, first.exit_status) == (b"one\n", 0)
    # The same shell: state carries over (so does fa_timeout's definition, by design).
    assert second.stdout == b"42\n" and second.stderr == b"oops\n"
    assert second.exit_status == 1


def test_output_cannot_fake_the_end_of_a_script():
    async def go():
        session = await _session()
        result = await session.run(
            "printf '\\n@@fa-0123456789abcdef01234567:done:0\\n'; printf 'no newline'")
        await session.close()
        return result

    result = run(go())
    assert result.stdout == b"\n@@fa-0123456789abcdef01234567:done:0\nno newline"


def test_large_output_arrives_whole():
    async def go():
        session = await _session()
        result = await session.run("head -c 3000000 /dev/zero | tr '\\0' 'x'")
        await session.close()
        return result

    result = run(go())
    assert result.stdout == b"x" * 3_000_000 and not result.truncated


def test_a_script_past_its_timeout_ends_the_session():
    async def go():
        session = await _session()
        with pytest.raises(CommandError, match="ran past"):
            await session.run("sleep 10", timeout=0.3)
        assert not session.alive
        with pytest.raises(CommandError, match="ended"):
            await session.run("true")
        await session.close()

    run(go())


def test_a_shell_that_exits_mid_script_is_seen():
    async def go():
        session = await _session()
        result = await session.run("echo partial; exit 3")
        await session.close()
        return session, result

    session, result = run(go())
    assert result.stdout == b"partial\n"
    assert result.exit_status is None
    assert not session.alive and session.exit_status == 3


def test_refused_sudo_is_a_privilege_error(tmp_path, monkeypatch):
    fake = tmp_path / "sudo"
    fake.write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(PrivilegeError, match="a password is required"):
        run(open_session(LocalTransport(), become=True))


def test_sudo_runs_the_shell_once_for_the_whole_session(tmp_path, monkeypatch):
    log = tmp_path / "calls"
    fake = tmp_path / "sudo"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\nshift 2\nexec "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    async def go():
        session = await open_session(LocalTransport(), become=True)
        outputs = [(await session.run(f"echo {i}")).stdout for i in range(3)]
        await session.close()
        return outputs

    assert run(go()) == [b"0\n", b"1\n", b"2\n"]
    assert Path(log).read_text() == "-n -- /bin/sh -s\n"


def test_script_command_quotes_and_checks_the_user():
    assert script_command(become=False) == "/bin/sh -s"
    assert script_command(become=True) == "sudo -n -- /bin/sh -s"
    assert script_command(become=True, become_user="app") == "sudo -n -u app -- /bin/sh -s"
    with pytest.raises(ValueError):
        script_command(become=True, become_user="x; reboot")
