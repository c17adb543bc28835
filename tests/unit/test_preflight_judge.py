"""`fleetaudit check`'s judgement and text (issue 14): only the tools that matter for the
host's kind are named, every heading has something under it, counts agree with nouns.

Inputs are real captures: the check's tools probe answered by dash on a Debian host and by
busybox sh on a busybox-only PATH (tests/fixtures/preflight/), host facts as root and as
nobody (tests/fixtures/hostfacts/). A host lacking a tool is that answer without the tool's
line, as `command -v` would give it.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from fleetaudit import packagers
from fleetaudit.models import HostStatus, SystemFacts
from fleetaudit.packagers import pacman
from fleetaudit.parsers.hostfacts import parse_host_facts
from fleetaudit.parsers.tools import parse_command_v
from fleetaudit.preflight import (
    CHECKED_TOOLS,
    PreflightHost,
    PreflightReport,
    judge,
    render_text,
)
from fleetaudit.probes import tools_probe

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURES = FIXTURES / "preflight"
ROOT = parse_host_facts((FIXTURES / "hostfacts" / "root.txt").read_text())
NOBODY = parse_host_facts((FIXTURES / "hostfacts" / "nobody.txt").read_text())


def captured(name: str, without: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """A captured answer's (present, missing), minus `without`'s lines."""
    lines = [line for line in (CAPTURES / name).read_text().splitlines()
             if line.rsplit("/", 1)[-1] not in without]
    return parse_command_v("\n".join(lines) + "\n", list(CHECKED_TOOLS))


def debian_tools(without: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    return captured("tools_debian.txt", without)


def check(present: list[str], missing: list[str], facts: SystemFacts = ROOT,
          *, become: bool = False) -> PreflightHost:
    base = PreflightHost(name="web1", address="192.0.2.10", status=HostStatus.OK,
                         user="root" if facts is ROOT else "nobody", become=become)
    return judge(base, present, missing, facts, "not asked", [])


def text_of(*hosts: PreflightHost) -> str:
    return render_text(PreflightReport(inventory="hosts.ini", hosts=list(hosts)))


def test_the_captures_answer_today_s_probe():
    command = (CAPTURES / "tools_command.txt").read_text().strip()
    assert command == tools_probe(CHECKED_TOOLS).command, "re-run preflight/capture.sh"
    present, missing = debian_tools()
    assert {"dpkg", "ss", "netstat", "busybox", "lsof"} <= set(present)
    assert {"rpm", "pacman", "nft"} <= set(missing)


def test_a_dpkg_host_names_no_other_kind_of_host_s_tools():
    host = check(*debian_tools())
    assert host.complete and host.listing == "ss"
    # netstat, busybox and lsof exist but this audit would not run them; rpm and pacman
    # are missing but would never be used here; nft's job is done by iptables-save.
    for tool in ("rpm", "pacman", "busybox", "netstat", "lsof", "nft"):
        assert tool not in host.uses and tool not in host.missing_tools
    assert host.uses[:1] == ["ss"] and {"dpkg", "md5sum", "openssl"} <= set(host.uses)
    assert host.missing_tools == [] and host.wont_see == []
    text = text_of(host)
    for tool in ("rpm", "pacman", "busybox", "lsof"):
        assert not re.search(rf"\b{tool}\b", text), text
    assert "won't see" not in text and "tools missing" not in text
    assert text.startswith("Preflight of 1 host from hosts.ini\n")
    assert text.endswith("An audit would be complete: it would see all of the above on the "
                         "host.\n")


def test_the_next_listing_tool_is_named_only_where_the_one_before_is_missing():
    host = check(*debian_tools(without=("ss",)))
    assert host.listing == "netstat" and "netstat" in host.uses
    assert "ss" not in host.missing_tools  # netstat stands in: nothing is lost
    assert host.complete
    assert "busybox" not in host.uses
    applet = check(*debian_tools(without=("ss", "netstat")))
    assert applet.listing == "busybox netstat" and applet.uses[:1] == ["busybox"]
    assert applet.complete and not {"ss", "netstat"} & set(applet.missing_tools)
    bare = check(*debian_tools(without=("ss", "netstat", "busybox")))
    assert bare.listing == "/proc/net only" and bare.missing_tools[:1] == ["ss"]
    assert bare.wont_see == ["a second listing to cross-check /proc/net against (no ss, "
                             "netstat or busybox)"]


def test_each_missing_tool_that_matters_says_what_it_costs():
    host = check(*debian_tools(without=("md5sum", "openssl", "sha256sum", "python3", "perl",
                                        "timeout", "getconf")))
    assert host.missing_tools == ["sha256sum", "md5sum", "python3", "timeout", "getconf"]
    assert "package owner of each executable (dpkg)" in host.will_see
    assert "integrity of packaged executables (no md5sum)" in host.wont_see
    assert "executable hashes (no sha256sum or openssl)" in host.wont_see
    assert any(w.startswith("bind probes") and "no python3 or perl" in w
               for w in host.wont_see)
    # Limits, not evidence: said, and the host is still complete on their account alone.
    assert len(host.notes) == 2 and not any("timeout" in w for w in host.wont_see)
    text = text_of(host)
    assert "    tools missing: sha256sum, md5sum, python3, timeout, getconf\n" in text
    assert "note: no per-command time limit (no timeout)" in text
    assert text.endswith("An audit would be incomplete: on 1 host it would miss what its "
                         "\"won't see\" lines name.\n")


def test_a_busybox_host_lists_with_busybox_s_applets_and_says_what_it_lacks():
    host = check(*captured("tools_busybox.txt"))
    assert host.listing == "netstat"  # busybox's applet, found by that name
    assert host.uses[:4] == ["netstat", "readlink", "stat", "cat"]
    assert "sha256sum" in host.uses and "openssl" not in host.missing_tools
    assert host.missing_tools == ["python3", "iptables-save", "getconf"]
    assert "NAT rules (no iptables-save or nft)" in host.wont_see
    for tool in ("dpkg", "pacman", "ss", "lsof", "perl", "openssl", "nft", "ip6tables-save"):
        assert tool not in host.missing_tools


def test_one_hash_tool_is_enough():
    host = check(*debian_tools(without=("openssl",)))
    assert "sha256sum" in host.uses and "openssl" not in host.missing_tools and host.complete


def test_an_unprivileged_login_says_what_root_would_add():
    host = check(*debian_tools(), facts=NOBODY)
    assert host.privileged is False
    assert "NAT rules (reading them needs root)" in host.wont_see
    assert "iptables-save" not in host.uses and "iptables-save" not in host.missing_tools
    assert any(w.startswith("PIDs of other users' listeners") for w in host.wont_see)


def test_a_host_without_a_package_manager_we_read_lists_none_as_missing():
    host = check(*debian_tools(without=("dpkg",)))
    assert not {"dpkg", "rpm", "pacman", "md5sum"} & set(host.missing_tools)
    assert any(w.startswith("package ownership and integrity (no package manager") for w
               in host.wont_see)


def test_a_new_manager_s_integrity_tools_come_from_its_module(monkeypatch):
    """A manager registered in packagers.MANAGERS is judged by its own `integrity_tools`:
    no list in this module to edit."""
    apk = dataclasses.replace(pacman.MANAGER, name="apk", tool="apk",
                              integrity_tools=("sha512sum",))
    monkeypatch.setattr(packagers, "MANAGERS", (apk,))
    present, missing = debian_tools()
    lacking = check([*present, "apk"], missing)
    assert "apk" in lacking.uses and lacking.missing_tools == ["sha512sum"]
    assert lacking.will_see.count("package owner of each executable (apk)") == 1
    assert "integrity of packaged executables (no sha512sum)" in lacking.wont_see
    whole = check([*present, "apk", "sha512sum"], missing)
    assert {"apk", "sha512sum"} <= set(whole.uses) and whole.complete
    assert "package owner and integrity of each executable (apk)" in whole.will_see
    # The checked list is built from the registered managers' tools too.
    assert {"md5sum", "dpkg", "rpm", "pacman"} <= set(CHECKED_TOOLS)


def test_sudo_is_named_only_when_the_audit_would_use_it():
    assert "sudo" not in check(*debian_tools()).uses
    assert "sudo" in check(*debian_tools(), facts=NOBODY, become=True).uses


@pytest.mark.parametrize(("hosts", "verdict"), [
    ([], "No host to audit."),
    (["ok", "ok"], "An audit would be complete: it would see all of the above on every host."),
    (["down"], "An audit would be incomplete: 1 host could not be checked (the reason is on "
               "its line)."),
    (["partial", "partial", "down", "down", "ok"],
     "An audit would be incomplete: on 2 hosts it would miss what their \"won't see\" lines "
     "name; 2 hosts could not be checked (the reason is on each one's line)."),
])
def test_the_last_line_counts_what_is_missing_and_never_points_at_nothing(hosts, verdict):
    made = {"ok": check(*debian_tools()),
            "partial": check(*debian_tools(), facts=NOBODY),
            "down": PreflightHost(name="db1", address="192.0.2.11", user="root",
                                  status=HostStatus.UNREACHABLE, error="connection refused")}
    text = text_of(*(made[h] for h in hosts))
    assert text.splitlines()[-1] == verdict
    count = len(hosts)
    assert text.splitlines()[0] == (f"Preflight of {count} host{'' if count == 1 else 's'} "
                                    "from hosts.ini")
    if "partial" not in hosts:
        assert "won't see" not in text  # not even in the last line
