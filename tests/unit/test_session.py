"""A shell session takes script after script, and nothing a script prints can end it early."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from fleetaudit.errors import CommandError
from fleetaudit.transport import (
    _KILL_SESSION,
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


def test_the_session_knows_its_shells_session_id():
    async def go():
        session = await _session()
        try:
            [pid] = (await session.run("echo $$")).stdout.split()
            return session.sid, os.getsid(int(pid))
        finally:
            await session.close()
    sid, real = run(go())
    # The shell's own session: led by the `sh -c` that started it (dash does not exec
    # its last command), as on a host by sshd's session child.
    assert sid == real


def test_the_kill_script_ends_a_session_but_not_what_left_it():
    """What SSHTransport runs on the host, through a second shell, when a round is cut:
    every process of the stuck shell's session (`timeout`'s own process group too), and
    not a command that left the session (setsid)."""
    stuck = subprocess.Popen(
        ["/bin/sh", "-c", "{ sh -c 'sleep 60' & setsid sleep 61 & wait; } | cat; wait"],
        start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        # Wait for the state under test, not for a count of processes: `setsid` may still
        # be on its way to exec `sleep 61` when the session already has four members.
        inside: list[int] = []
        escaped: list[int] = []
        for _ in range(100):
            sleeps = _all_sleeps()
            inside = [p for p, argv in sleeps if argv == "sleep 60" and _sid(p) == stuck.pid]
            escaped = [p for p, argv in sleeps
                       if argv == "sleep 61" and _sid(p) not in (None, stuck.pid)]
            if inside and escaped:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert inside and escaped, "the pipeline did not start within 10 s"
        subprocess.run(["/bin/sh", "-c", _KILL_SESSION.format(sid=stuck.pid)], check=True,
                       start_new_session=True)
        assert stuck.wait(timeout=5) == -9
        for _ in range(50):
            if not _members(stuck.pid):
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert _members(stuck.pid) == []
        assert Path(f"/proc/{escaped[0]}").exists()  # left the session: not ours to end
    finally:
        for pid, argv in _all_sleeps():
            if argv == "sleep 61":
                os.kill(pid, 9)
        if stuck.poll() is None:
            os.killpg(stuck.pid, 9)


def _members(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _all_sleeps() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip().decode()
            except OSError:
                continue
            if argv.startswith("sleep 6"):
                found.append((int(entry.name), argv))
    return found
