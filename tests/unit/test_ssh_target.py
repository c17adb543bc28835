"""ssh_config resolution on real config files: what an inventory host means to SSH."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import asyncssh
import pytest

from fleetaudit import orchestrator
from fleetaudit.errors import AuthError, ConfigError
from fleetaudit.host_key_policy import HostKeyPolicy
from fleetaudit.models import (
    InternalView,
    Inventory,
    InventoryHost,
    ListenerSource,
    Proto,
    Socket,
    VerdictKind,
)
from fleetaudit.orchestrator import AuditOptions, audit_dry_run
from fleetaudit.reconcile import reconcile_host
from fleetaudit.ssh_target import parse_jump, resolve_target
from fleetaudit.transport import SSHOptions, connect

CONFIG = """\
# a user's ~/.ssh/config, in the shapes people write
Host alias1
    HostName 10.99.0.11
    User fa-audit
    IdentityFile ~/.ssh/lab_ed25519
    IdentityFile %d/.ssh/second
    UserKnownHostsFile ~/.ssh/lab_known_hosts /etc/ssh/lab_known_hosts2
    StrictHostKeyChecking accept-new
    ConnectTimeout 4

Host inner-*
    ProxyJump bastion,admin@10.99.0.12:2222

Host bastion
    HostName 10.99.0.10
    User jumper
    IdentityFile /keys/bastion

Host web?? !web99
    User deploy
    Port 2200

Host paranoid
    StrictHostKeyChecking yes

Host loose
    StrictHostKeyChecking no

Host via-config-only
    HostName 10.99.0.40
    ProxyJump loop-a

Host loop-a
    ProxyJump loop-b
Host loop-b
    ProxyJump loop-a

Host *
    ServerAliveInterval 30
    Port 22
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def host(address: str, **fields: object) -> InventoryHost:
    return InventoryHost(name=fields.pop("name", address), address=address,  # type: ignore[arg-type]
                         **fields)  # type: ignore[arg-type]


def test_host_pattern_maps_an_alias_to_its_hostname_user_keys_and_rules(config):
    target = resolve_target(host("alias1"), config)
    home = str(Path.home())
    assert (target.asked, target.host, target.port, target.user) == (
        "alias1", "10.99.0.11", 22, "fa-audit")
    assert target.identity_files == (f"{home}/.ssh/lab_ed25519", f"{home}/.ssh/second")
    assert target.known_hosts == (f"{home}/.ssh/lab_known_hosts", "/etc/ssh/lab_known_hosts2")
    assert target.host_key_policy == "accept-new"
    assert target.connect_timeout == 4.0
    assert target.jumps == ()
    assert target.config_file == str(config)


def test_the_inventory_wins_over_ssh_config_for_what_it_sets(config):
    target = resolve_target(host("alias1", user="root", port=2022, key_file="/k/inv"), config)
    assert (target.host, target.user, target.port) == ("10.99.0.11", "root", 2022)
    assert target.key_file == "/k/inv"  # offered first; ssh_config's identities after it
    assert len(target.identity_files) == 2


def test_patterns_match_the_address_not_the_inventory_name(config):
    # As Ansible runs `ssh <ansible_host>`: Host patterns see ansible_host, not the name.
    assert resolve_target(host("10.1.2.3", name="alias1"), config).host == "10.1.2.3"
    assert resolve_target(host("alias1", name="whatever"), config).host == "10.99.0.11"


def test_wildcards_and_negation(config):
    assert (resolve_target(host("web01"), config).user,
            resolve_target(host("web01"), config).port) == ("deploy", 2200)
    assert resolve_target(host("web99"), config).user is None  # negated
    assert resolve_target(host("web100"), config).port == 22  # ?? is exactly two characters


def test_unset_user_and_port_stay_unset_for_the_defaults(config):
    target = resolve_target(host("db01"), config)
    assert (target.user, target.port, target.key_file, target.identity_files) == (
        None, 22, None, ())
    assert target.host_key_policy is None and target.connect_timeout is None


def test_strict_host_key_checking_values(config):
    assert resolve_target(host("paranoid"), config).host_key_policy == "strict"
    assert resolve_target(host("loose"), config).host_key_policy == "off"


def test_proxy_jump_chain_of_two_each_hop_with_its_own_config(config):
    target = resolve_target(host("inner-db", user="root", key_file="/k/inv"), config)
    first, second = target.jumps
    assert (first.asked, first.host, first.user, first.port) == (
        "bastion", "10.99.0.10", "jumper", 22)
    assert first.identity_files == ("/keys/bastion",) and first.key_file is None
    assert (second.host, second.user, second.port) == ("10.99.0.12", "admin", 2222)
    # A hop ssh_config gives no key is offered the inventory's.
    assert second.key_file == "/k/inv"
    assert target.jump_spec == "jumper@10.99.0.10,admin@10.99.0.12:2222"
    assert target.host == "inner-db"  # reached by name by the last jump host


def test_the_inventory_jump_wins_over_ssh_config(config):
    target = resolve_target(host("inner-db", jump="fa-audit@10.99.0.13"), config)
    assert [j.login for j in target.jumps] == ["fa-audit@10.99.0.13"]


def test_a_jump_loop_in_ssh_config_is_a_config_error(config):
    with pytest.raises(ConfigError, match="jump hosts"):
        resolve_target(host("via-config-only"), config)


@pytest.mark.parametrize(("spec", "hops"), [
    ("10.99.0.11", [(None, "10.99.0.11", None)]),
    ("fa-audit@10.99.0.11:2222", [("fa-audit", "10.99.0.11", 2222)]),
    ("a@j1,j2:23", [("a", "j1", None), (None, "j2", 23)]),
    ("ssh://u@h:2200", [("u", "h", 2200)]),
    ("u@[fd00::1]:22", [("u", "fd00::1", 22)]),
])
def test_parse_jump(spec, hops):
    assert parse_jump(spec) == hops


@pytest.mark.parametrize("spec", ["", "a@", "h:99999", "h:x", "a b"])
def test_parse_jump_refuses_what_is_not_a_jump(spec):
    with pytest.raises(ConfigError):
        parse_jump(spec)


def test_a_missing_or_broken_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        resolve_target(host("x"), tmp_path / "absent")
    broken = tmp_path / "broken"
    broken.write_text("Host x\n  Port notanumber\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="Port"):
        resolve_target(host("x"), broken)


def test_no_config_at_all_is_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/config there
    target = resolve_target(host("10.0.0.5"))
    assert (target.host, target.port, target.user, target.config_file) == (
        "10.0.0.5", 22, None, None)


# --- the orchestrator's use of it: no DNS in a dry run, no scan behind a jump host -------


def _no_dns(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"DNS lookup in a dry run: {args}")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "getaddrinfo", refuse)


def test_dry_run_resolves_no_name_and_skips_jump_hosts(config, monkeypatch):
    _no_dns(monkeypatch)
    inventory = Inventory(source="t", hosts=[
        host("alias1"),                                 # ssh_config: 10.99.0.11
        host("db.example.invalid", name="db"),          # a name: shown, not resolved
        host("10.99.0.20", name="hidden", jump="fa-audit@10.99.0.11"),
    ])
    options = AuditOptions(ssh=SSHOptions(ssh_config=config), ports="22")
    lines = asyncio.run(audit_dry_run(inventory, options))
    text = "\n".join(lines)
    assert "# db.example.invalid: a name, resolved only in a real run" in text
    assert ("# hidden (10.99.0.20): not scanned: reached only through jump host "
            "fa-audit@10.99.0.11") in text
    nmap_lines = [line for line in lines if not line.startswith("#")]
    assert nmap_lines and all("10.99.0.11" in line or "<hosts>" in line for line in nmap_lines)
    assert any("10.99.0.11" in line for line in nmap_lines)
    assert not any("10.99.0.20" in line or "db.example" in line for line in nmap_lines)
    assert all(" -n " in f" {line} " for line in nmap_lines)


def test_dry_run_with_a_missing_ssh_config_is_a_config_error(tmp_path):
    inventory = Inventory(source="t", hosts=[host("10.99.0.11")])
    options = AuditOptions(ssh=SSHOptions(ssh_config=tmp_path / "nope"), ports="22")
    with pytest.raises(ConfigError, match="no such file"):
        asyncio.run(audit_dry_run(inventory, options))


def test_a_host_behind_a_jump_host_gets_unknown_on_every_port_never_local_only():
    sockets = [Socket(proto=Proto.TCP, address="127.0.0.1", port=8081, source=ListenerSource.SS),
               Socket(proto=Proto.TCP, address="0.0.0.0", port=22, source=ListenerSource.SS)]
    view = InternalView(sockets=sockets)
    reason = "not scanned: reached only through jump host fa-audit@10.99.0.11"
    ports = reconcile_host(None, view, scanned_address="10.99.0.20",
                           external_missing=reason, not_scanned=reason)
    assert [p.port for p in ports] == [22, 8081]  # a row for every port
    for port in ports:
        assert {v.kind for v in port.verdicts} == {VerdictKind.UNKNOWN}
        assert port.verdicts[0].message == reason


def test_the_host_result_of_a_jump_host_says_why_it_was_not_scanned():
    state = orchestrator._HostState(host=host("10.99.0.20", name="hidden",
                                              jump="fa-audit@10.99.0.11"))
    orchestrator._plan(state, AuditOptions(ssh=SSHOptions(ssh_config=Path("/dev/null"))))
    state.internal = InternalView(sockets=[
        Socket(proto=Proto.TCP, address="127.0.0.1", port=25, source=ListenerSource.SS)])
    result = orchestrator._host_result(state, orchestrator._ScanSays(run_error="nothing to scan"))
    assert result.address == "10.99.0.20"
    assert result.external is None
    assert [e.message for e in result.errors] == [
        "not scanned: reached only through jump host fa-audit@10.99.0.11"]
    assert {v.kind for v in result.ports[0].verdicts} == {VerdictKind.UNKNOWN}
    assert result.ports[0].verdicts[0].message.startswith("not scanned: reached only")


# --- IdentitiesOnly: a real ssh-agent, a real SSH server in this process -----------------


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """An ssh-agent of the test's own (`-a` binds its socket before it forks: no wait)."""
    if shutil.which("ssh-agent") is None:
        pytest.skip("ssh-agent is not installed")
    sock = tmp_path / "agent.sock"
    said = subprocess.run(["ssh-agent", "-s", "-a", str(sock)], capture_output=True,
                          text=True, check=True).stdout
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", said).group(1))  # type: ignore[union-attr]
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    try:
        yield sock
    finally:
        os.kill(pid, signal.SIGTERM)


def keypair(path: Path, passphrase: str = "") -> asyncssh.SSHKey:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)],
                   check=True, capture_output=True)
    return asyncssh.read_public_key(str(path) + ".pub")


def offered_keys(config_text: str, accepted: asyncssh.SSHKey, tmp_path: Path,
                 key_file: str | None = None) -> tuple[list[str], str | None]:
    """Log in to a server that lists every key it is offered and takes only `accepted`:
    (fingerprints offered, the error or None)."""
    offered: list[str] = []

    class Recording(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            offered.append(key.get_fingerprint())
            return key.public_data == accepted.public_data

    config = tmp_path / "ssh_config"
    config.write_text(config_text)

    async def go() -> str | None:
        server = await asyncssh.create_server(
            Recording, "127.0.0.1", 0, server_host_keys=[asyncssh.generate_private_key(
                "ssh-ed25519")])
        port = server.sockets[0].getsockname()[1]
        host = InventoryHost(name="h", address="127.0.0.1", port=port, user="nobody",
                             key_file=key_file)
        try:
            transport = await connect(host, "127.0.0.1", SSHOptions(
                host_key_policy=HostKeyPolicy.OFF, ssh_config=config, connect_timeout=5))
            await transport.close()
            return None
        except AuthError as exc:
            return str(exc)
        finally:
            server.close()

    error = asyncio.run(go())
    return list(dict.fromkeys(offered)), error


def test_identities_only_keeps_the_agent_to_the_named_keys(tmp_path, agent):
    held = keypair(tmp_path / "held")  # in the agent: the server's one accepted key
    subprocess.run(["ssh-add", "-q", str(tmp_path / "held")], check=True, capture_output=True)
    named = keypair(tmp_path / "named")
    identity = f"Host 127.0.0.1\n    IdentityFile {tmp_path}/named\n"
    # Without IdentitiesOnly, the agent's key is offered too (as by ssh), and logs in.
    offered, error = offered_keys(identity, held, tmp_path)
    assert error is None and held.get_fingerprint() in offered
    # With it, only the named file's key is: the login is refused.
    offered, error = offered_keys(identity + "    IdentitiesOnly yes\n", held, tmp_path)
    assert offered == [named.get_fingerprint()]
    assert error is not None and "authentication refused for nobody@127.0.0.1" in error
    # The inventory's key counts as named (ssh -i): the agent's copy of it is used, here
    # for a file encrypted on disk (fleetaudit never asks for a passphrase); still not
    # the agent's other key.
    locked = keypair(tmp_path / "locked")
    subprocess.run(["ssh-add", "-q", str(tmp_path / "locked")], check=True, capture_output=True)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "secret", "-P", "", "-f",
                    str(tmp_path / "locked")], check=True, capture_output=True)
    offered, error = offered_keys(identity + "    IdentitiesOnly yes\n", locked, tmp_path,
                                  key_file=str(tmp_path / "locked"))
    assert error is None
    assert held.get_fingerprint() not in offered and locked.get_fingerprint() in offered
    # IdentitiesOnly with no key named at all and none of ssh's default files: no agent.
    home = tmp_path / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        offered, error = offered_keys("Host 127.0.0.1\n    IdentitiesOnly yes\n", held,
                                      tmp_path)
    assert offered == [] and error is not None
