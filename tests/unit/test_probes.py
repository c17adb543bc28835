"""The probe constructors: what they refuse, how they quote, and that they batch.

A PID, path, package, variable name or port may come from a hostile host (a process can
name its executable anything), so each constructor validates or quotes it. Each case
here is checked on the command string and, where quoting is the defence, by running the
command through /bin/sh with `echo` standing in for the tool.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys

import pytest

from fleetaudit import packagers
from fleetaudit.batch import Section, build_script, split_output
from fleetaudit.models import Proto
from fleetaudit.packagers import dpkg, pacman, rpm
from fleetaudit.probes import (
    INTERNAL_TOOLS,
    bind_probe,
    host_facts_probe,
    internal_tools,
    nat_probe,
    netstat_probe,
    proc_net_probe,
    tools_probe,
)
from tests.process_singles import environ_value_probe, process_probes

BAD_PIDS = [0, -1, 2**32, True, "1", "1; rm -rf /", 1.0, None]


@pytest.mark.parametrize("pid", BAD_PIDS)
def test_process_probes_refuse_what_is_not_a_pid(pid):
    with pytest.raises(ValueError, match="not a PID"):
        process_probes(pid)
    with pytest.raises(ValueError, match="not a PID"):
        environ_value_probe(pid, "PATH")


@pytest.mark.parametrize("name", ["", "1PATH", "A B", "A;B", "$(id)", "A'B", "PATH=", "é",
                                  "A\nB", None])
def test_environ_value_probe_refuses_what_is_not_a_name(name):
    with pytest.raises(ValueError, match="not an environment variable name"):
        environ_value_probe(1, name)


def test_secret_looking_names_never_get_their_value_sent():
    assert environ_value_probe(7, "API_TOKEN").command.endswith(" | sed 's/=.*/=/'")
    assert environ_value_probe(7, "DB_PASSWORD").command.endswith(" | sed 's/=.*/=/'")
    assert environ_value_probe(7, "HOME").command.endswith("grep -m 1 '^HOME='")


def test_every_process_probe_is_about_that_pid_only():
    bundle = process_probes(4242)
    kinds = [p.name for p in bundle.probes]
    assert kinds == ["exe.4242", "cmdline.4242", "owner.4242", "status.4242", "stat.4242",
                     "cwd.4242", "netns.4242", "cgroup.4242", "envnames.4242", "sha256.4242",
                     "maps.4242"]
    for probe in bundle.probes:
        assert "/proc/4242/" in probe.command or probe.command.endswith("/proc/4242")
    assert [p.name for p in process_probes(5, hash_exe=False, maps=False).probes][-1] == (
        "envnames.5")


def test_env_names_command_prints_names_only(tmp_path):
    environ = tmp_path / "environ"
    environ.write_bytes(b"A=1\0SECRET_THING=hunter2\0MULTI=x\nFAKE=y\0=title junk\0B=\0")
    command = process_probes(1).probes[8].command.replace("/proc/1/environ", str(environ))
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=True).stdout
    assert out == b"A\nSECRET_THING\nMULTI\nB\n"


def test_build_keeps_every_failure_as_evidence():
    bundle = process_probes(9)
    sections = {"exe.9": Section(name="exe.9", text="/usr/sbin/sshd\n", exit_status=0),
                "stat.9": Section(name="stat.9", text="garbage", exit_status=0)}
    info = bundle.build(sections)
    assert info.exe == "/usr/sbin/sshd" and info.started_at is None
    assert any(e.startswith("stat.9: ") for e in info.errors)
    assert any(e.startswith("maps.9: no output") for e in info.errors)


@pytest.mark.parametrize(("manager", "targets", "why"), [
    ("dpkg", {"/usr/bin/x": "x; rm -rf /"}, "not a dpkg package name"),
    ("dpkg", {"/usr/bin/x": "Upper"}, "not a dpkg package name"),
    ("dpkg", {"/usr/bin/x": "a, b"}, "not a dpkg package name"),
    ("dpkg", {"relative/x": "coreutils"}, "not an absolute path"),
    ("rpm", {"/usr/bin/x\n": ""}, "not an absolute path"),
])
def test_integrity_probe_refuses(manager, targets, why):
    with pytest.raises(ValueError, match=why):
        {"dpkg": dpkg, "rpm": rpm}[manager].integrity_probe(targets)


def test_a_host_is_asked_through_the_first_package_manager_it_has():
    assert packagers.detect(["ss", "rpm", "dpkg"]) is dpkg.MANAGER
    assert packagers.detect(["pacman"]) is pacman.MANAGER
    assert packagers.detect(["apk", "ss"]) is None  # not known yet: one module away
    # Each manager's tools are ones the tools probe asks about: the list is built from them.
    assert internal_tools(packagers.MANAGERS) == INTERNAL_TOOLS
    assert {"dpkg", "rpm", "pacman", "md5sum"} <= set(INTERNAL_TOOLS)


def test_a_new_manager_s_tools_are_asked_about_with_no_other_edit(monkeypatch):
    apk = dataclasses.replace(pacman.MANAGER, name="apk", tool="apk",
                              integrity_tools=("sha512sum",))
    monkeypatch.setattr(packagers, "MANAGERS", (*packagers.MANAGERS, apk))
    assert packagers.detect(["apk", "ss"]) is apk
    tools = internal_tools(packagers.MANAGERS)
    assert {"apk", "sha512sum"} <= set(tools) and len(tools) == len(set(tools))
    assert "sha512sum" not in INTERNAL_TOOLS  # the registered list is not touched


def test_integrity_probe_quotes_a_hostile_path():
    hostile = "/tmp/x'; touch /tmp/pwned; '$(id)"
    command = rpm.integrity_probe({hostile: ""}).command
    assert shlex.quote(hostile) in command
    # With `rpm` replaced by echo, the path comes back as one literal argument.
    echoed = subprocess.run(["/bin/sh", "-c", command.replace("rpm -Vf", "echo")],
                            capture_output=True, text=True, check=True).stdout
    assert f"--nodeps --noscripts -- {hostile}\n" in echoed


def test_dpkg_integrity_quotes_a_hostile_path_and_reads_only_its_package_md5sums():
    hostile = "/tmp/x'; touch /tmp/pwned; '$(id)"
    command = dpkg.integrity_probe({hostile: "coreutils"}).command
    assert f"md5sum -- {shlex.quote(hostile)} 2>&1" in command
    assert f"grep -hF -e {shlex.quote('  ' + hostile[1:])} -- " in command
    assert "/var/lib/dpkg/info/coreutils.md5sums /var/lib/dpkg/info/coreutils:*.md5sums" \
        in command
    # Each argument comes back as one literal word.
    echoed = subprocess.run(["/bin/sh", "-c", command.replace("md5sum", "echo")
                             .replace("grep -hF", "echo")],
                            capture_output=True, text=True, check=True).stdout
    assert f"-- {hostile}\n" in echoed and f"-e   {hostile[1:]} -- " in echoed


@pytest.mark.parametrize("port", [0, 65536, -1, "22", True, 22.0, None])
def test_bind_probe_refuses_what_is_not_a_port(port):
    with pytest.raises(ValueError, match="not a port"):
        bind_probe([(Proto.TCP, port)])


def test_bind_probe_refuses_other_protocols():
    with pytest.raises(ValueError):
        bind_probe([("sctp", 22)])  # type: ignore[list-item]


def test_bind_probe_picks_an_interpreter_with_command_v():
    command = bind_probe([(Proto.TCP, 22), (Proto.UDP, 53), (Proto.TCP, 22)]).command
    assert command.startswith("if command -v python3 >/dev/null 2>&1; then python3 -c ")
    assert "elif command -v perl >/dev/null 2>&1; then perl -e " in command
    assert command.count(" tcp:22 udp:53;") == 2  # deduplicated, for both interpreters


@pytest.mark.parametrize("name", ["ss; id", "a b", "$(id)", ""])
def test_tools_probe_refuses_odd_names(name):
    with pytest.raises(ValueError):
        tools_probe([name])


def test_all_probes_batch_and_come_back_apart():
    probes = [netstat_probe(), netstat_probe(busybox=True), proc_net_probe(), nat_probe(),
              host_facts_probe(), bind_probe([(Proto.TCP, 41199)]),
              dpkg.integrity_probe({"/usr/bin/ls": "coreutils"}),
              environ_value_probe(1, "HOME"), *process_probes(1).probes]
    names = [p.name for p in probes]
    assert len(set(names)) == len(names)
    script = build_script([p.batch_command() for p in probes], "abcdefgh12345678")
    fake = "\n".join(f"@@fa-abcdefgh12345678:begin:{n}\nx\n@@fa-abcdefgh12345678:end:{n}:0"
                     for n in names)
    assert set(split_output(fake, "abcdefgh12345678")) == set(names)
    assert script.count("( ") >= len(names)


PARSERS = ["netstat", "proc_net", "process", "integrity", "bindprobe", "nat", "hostfacts"]


@pytest.mark.parametrize("module", PARSERS)
def test_parsers_are_pure(module):
    code = (f"import sys, json; import fleetaudit.parsers.{module}; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                           text=True, check=True).stdout))
    assert not loaded & {"asyncssh", "nmap", "subprocess", "typer", "asyncio.subprocess"}
