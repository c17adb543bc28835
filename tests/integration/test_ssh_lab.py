"""SSH as users configure it, on real sshd: jump hosts, ssh_config, agents, known_hosts forms.

One lab of two hosts plus `lab-bastion` and `lab-hidden` behind it (no route from here).
Every error case is checked for its message and for not costing the other hosts.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleetaudit import scan
from fleetaudit.errors import AuthError, HostKeyError, UnsafeTargetError
from fleetaudit.inventory import load_inventories
from fleetaudit.lab import hosts as lab_hosts
from fleetaudit.lab import proc as lab_proc
from fleetaudit.models import HostStatus, Inventory, InventoryHost
from fleetaudit.preflight import run_preflight
from fleetaudit.transport import HostKeyPolicy, SSHOptions, connect, open_session
from tests.integration.labs import running_lab

pytestmark = pytest.mark.lab

STATE_DIR = Path("/run/fleetaudit-ssh-test")
BRIDGE = "fa-ssh0"
SUBNET = "10.99.140.0/24"
PORTS = "22,24,80,2323,8081,8443"
NO_CONFIG = Path("/dev/null")  # as `ssh -F /dev/null`: whatever ~/.ssh/config says


@pytest.fixture(scope="module")
def fleet():
    with running_lab(2, state_dir=STATE_DIR, subnet=SUBNET, bridge=BRIDGE,
                     bastion=True) as info:
        yield info


def fleetaudit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetaudit", *args], capture_output=True,
                          text=True, timeout=600, check=False, env=env)


def root(fleet, name: str, **fields) -> InventoryHost:
    return InventoryHost(name=name, address=fleet.host(name).address, user="root",
                         key_file=str(fleet.client_key), **fields)


def run_id(host: InventoryHost, options: SSHOptions) -> str:
    async def go() -> str:
        async with await connect(host, None, options) as transport:
            session = await open_session(transport)
            try:
                result = await session.run("id -un; hostname -I")
            finally:
                await session.close()
            return result.stdout.decode()
    return asyncio.run(go())


def fingerprint(public: str) -> str:
    """`ssh-keygen -lf`'s SHA256 fingerprint of an OpenSSH public key line."""
    return asyncssh.import_public_key(public).get_fingerprint()


def fail(host: InventoryHost, options: SSHOptions) -> Exception:
    async def go() -> Exception:
        try:
            transport = await connect(host, None, options)
        except Exception as exc:  # the test looks at which
            return exc
        await transport.close()
        raise AssertionError("connected")
    return asyncio.run(go())


def options(fleet, **fields) -> SSHOptions:
    return SSHOptions(**{"known_hosts": fleet.known_hosts, "ssh_config": NO_CONFIG,
                         "connect_timeout": 5, **fields})


# --- the bastion and the host behind it ---------------------------------------------------


def test_the_hidden_host_is_not_routed_from_here(fleet):
    with pytest.raises(UnsafeTargetError):
        scan.check_route(fleet.host("lab-hidden").address, BRIDGE)
    scan.check_route(fleet.host("lab-bastion").address, BRIDGE)  # the jump host is


@pytest.fixture(scope="module")
def yaml_audit(fleet, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit-yaml")
    started = time.monotonic()
    proc = fleetaudit("audit", str(fleet.inventory), "--known-hosts", str(fleet.known_hosts),
                      "--ssh-config", str(NO_CONFIG), "--ports", PORTS, "--out", str(out))
    elapsed = time.monotonic() - started
    return proc, json.loads((out / "results.json").read_text()), out, elapsed


def by_name(results) -> dict:
    return {h["name"]: h for h in results["hosts"]}


def test_a_host_behind_a_jump_host_is_audited_inside_and_never_scanned(fleet, yaml_audit):
    proc, results, out, elapsed = yaml_audit
    hosts = by_name(results)
    hidden = hosts["lab-hidden"]
    jump = fleet.host("lab-hidden").jump
    reason = f"not scanned: reached only through jump host {jump}"
    assert hidden["internal"] is not None, hidden["errors"]
    assert {s["port"] for s in hidden["internal"]["sockets"]} >= {22}
    assert hidden["external"] is None
    assert [e["message"] for e in hidden["errors"]] == [reason]
    assert hidden["ports"], "every listening port has a row"
    for port in hidden["ports"]:
        kinds = {v["kind"] for v in port["verdicts"]}
        assert port["verdicts"][0] == {**port["verdicts"][0], "kind": "UNKNOWN",
                                       "message": reason}
        assert not kinds & {"LOCAL_ONLY", "FILTERED", "CONSISTENT"}
    # The hidden address is in no nmap command line nor report.
    address = fleet.host("lab-hidden").address
    assert address not in results["scan"]["command"]
    assert not [p for p in (out / "nmap").iterdir() if address in p.read_text()]
    # The others are audited as ever: the audit is incomplete only for the hidden host.
    for name in ("lab-01", "lab-02", "lab-bastion"):
        assert hosts[name]["status"] == "ok", hosts[name]["errors"]
    assert hidden["status"] == HostStatus.SCAN_FAILED.value
    assert proc.returncode == 3, proc.stderr
    print(f"audit of {len(hosts)} hosts, one through a bastion: {elapsed:.1f}s")


def test_the_ini_inventory_audits_the_same_fleet(fleet, yaml_audit, tmp_path):
    yaml_hosts = load_inventories([fleet.inventory]).hosts
    ini_hosts = load_inventories([fleet.inventory_ini]).hosts
    fields = ("name", "address", "port", "user", "key_file", "jump", "route_dev", "groups",
              "become", "become_user", "connection")
    assert ([h.model_dump(include=set(fields)) for h in ini_hosts]
            == [h.model_dump(include=set(fields)) for h in yaml_hosts])
    # The outside view is the YAML audit's own nmap XML: two nmap -sV runs may name a
    # slow service differently, and what is compared here is the inventory's path.
    xml = sorted((yaml_audit[2] / "nmap").glob("*.xml"))
    assert xml
    proc = fleetaudit("audit", str(fleet.inventory_ini), "--known-hosts",
                      str(fleet.known_hosts), "--ssh-config", str(NO_CONFIG),
                      *(arg for path in xml for arg in ("--nmap-xml", str(path))),
                      "--out", str(tmp_path))
    assert proc.returncode == yaml_audit[0].returncode, proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())

    def summary(results) -> dict:
        return {h["name"]: (h["status"], h["address"], sorted(
            (p["proto"], p["port"], tuple(sorted(v["kind"] for v in p["verdicts"])))
            for p in h["ports"])) for h in results["hosts"]}

    assert summary(results) == summary(yaml_audit[1])


# --- ssh_config alone -----------------------------------------------------------------------


def audit_alias(tmp_path: Path, alias: str, ssh_config: str,
                ) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """`fleetaudit audit` of an inventory naming only `alias`, which `ssh_config` defines:
    the one host's result and the process."""
    config = tmp_path / "ssh_config"
    config.write_text(ssh_config, encoding="utf-8")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(f"all:\n  hosts:\n    {alias}:\n      fleetaudit_route_dev: {BRIDGE}\n",
                         encoding="utf-8")
    out = tmp_path / "out"
    proc = fleetaudit("audit", str(inventory), "--ssh-config", str(config), "--ports", "22",
                      "--out", str(out))
    [host] = json.loads((out / "results.json").read_text())["hosts"]
    return host, proc


def test_a_host_named_only_in_ssh_config(fleet, tmp_path):
    bastion = fleet.host("lab-bastion").address
    host, proc = audit_alias(tmp_path, "alias1",
                             f"Host alias1\n    HostName {bastion}\n    User fa-audit\n"
                             f"    IdentityFile {fleet.client_key}\n"
                             f"    UserKnownHostsFile {fleet.known_hosts}\n")
    inventory, config = tmp_path / "inventory.yml", tmp_path / "ssh_config"
    assert (host["name"], host["address"], host["status"]) == ("alias1", bastion, "ok"), \
        (host["errors"], proc.stderr)
    assert host["internal"]["system"]["euid"] != 0  # logged in as fa-audit, not root
    assert [p["port"] for p in host["ports"]] == [22]
    dry = fleetaudit("audit", str(inventory), "--ssh-config", str(config), "--ports", "22",
                     "--dry-run")
    assert dry.returncode == 0 and bastion in dry.stdout and " -n " in dry.stdout


@pytest.fixture
def bastion_only_through_lab_01(fleet):
    """The bastion refuses SSH from this machine (the bridge's gateway address) for the
    test: the hidden host is then reachable only through lab-01, then the bastion."""
    rule = ["INPUT", "-s", fleet.gateway, "-p", "tcp", "--dport", "22", "-j", "REJECT",
            "--reject-with", "tcp-reset"]
    netns = fleet.host("lab-bastion").netns
    subprocess.run(["ip", "netns", "exec", netns, "iptables", "-w", "-I", *rule], check=True,
                   capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["ip", "netns", "exec", netns, "iptables", "-w", "-D", *rule],
                       check=True, capture_output=True)


def test_a_two_hop_jump_chain_set_only_in_ssh_config(fleet, tmp_path,
                                                     bastion_only_through_lab_01):
    """ProxyJump with two hops, from ssh_config alone (the inventory names an alias and
    nothing else), through the real CLI and transport: this machine -> lab-01 -> the
    bastion (which refuses this machine) -> lab-hidden (no route from here)."""
    one, bastion = fleet.host("lab-01").address, fleet.host("lab-bastion").address
    hidden = fleet.host("lab-hidden").address
    direct = fail(root(fleet, "lab-bastion"), options(fleet))
    assert "cannot connect" in str(direct) or "refused" in str(direct), direct
    host, proc = audit_alias(tmp_path, "deep",
                             f"Host deep\n    HostName {hidden}\n    User root\n"
                             f"    ProxyJump root@{one},fa-audit@{bastion}\n"
                             f"Host *\n    IdentityFile {fleet.client_key}\n"
                             f"    UserKnownHostsFile {fleet.known_hosts}\n")
    out, inventory, config = tmp_path / "out", tmp_path / "inventory.yml", tmp_path / "ssh_config"
    results = json.loads((out / "results.json").read_text())
    reason = f"not scanned: reached only through jump host root@{one},fa-audit@{bastion}"
    assert host["name"] == "deep" and host["internal"] is not None, (host["errors"],
                                                                     proc.stderr)
    assert [e["message"] for e in host["errors"]] == [reason]
    assert {s["port"] for s in host["internal"]["sockets"]} >= {22}
    assert host["external"] is None  # never scanned: no nmap run names it
    assert hidden not in json.dumps(results["scan"])
    assert not [p for p in (out / "nmap").glob("*") if hidden in p.read_text()]
    assert proc.returncode == 3, proc.stderr
    # `check` goes the same way, and says through which hops.
    report = asyncio.run(run_preflight(
        Inventory(source="t", hosts=load_inventories([inventory]).hosts),
        options(fleet, ssh_config=config, known_hosts=None)))
    [checked] = report.hosts
    assert (checked.status, checked.via, checked.user) == (
        HostStatus.OK, f"root@{one},fa-audit@{bastion}", "root"), checked.error


# --- keys -----------------------------------------------------------------------------------


@pytest.fixture
def encrypted_key(fleet, tmp_path) -> Path:
    key = tmp_path / "encrypted_ed25519"
    shutil.copyfile(fleet.client_key, key)
    key.chmod(0o600)
    shutil.copyfile(str(fleet.client_key) + ".pub", str(key) + ".pub")
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "secret", "-P", "", "-f", str(key)],
                   check=True, capture_output=True)
    return key


def test_an_encrypted_key_without_an_agent_is_a_clear_error_never_a_prompt(fleet, encrypted_key,
                                                                          monkeypatch,
                                                                          tmp_path):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    exc = fail(root(fleet, "lab-01").model_copy(update={"key_file": str(encrypted_key)}),
               options(fleet))
    assert isinstance(exc, AuthError)
    assert f"key {encrypted_key} is encrypted and no ssh-agent holds it" in str(exc)
    # The command, with nothing to prompt on: no terminal (a session of its own), stdin
    # closed. A prompt would read EOF there and fail otherwise, or warn on stderr
    # (getpass without a terminal); the host must fail with the message, alone.
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        + "".join(f"    {name}:\n      ansible_host: {fleet.host(name).address}\n"
                  f"      ansible_user: root\n      fleetaudit_route_dev: {BRIDGE}\n"
                  f"      ansible_ssh_private_key_file: {key}\n"
                  for name, key in (("lab-01", encrypted_key), ("lab-02", fleet.client_key))),
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "fleetaudit", "audit", str(inventory), "--known-hosts",
         str(fleet.known_hosts), "--ssh-config", str(NO_CONFIG), "--ports", "22", "--out",
         str(out)], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
        start_new_session=True, timeout=600, check=False)
    assert proc.returncode == 3, proc.stderr
    hosts = by_name(json.loads((out / "results.json").read_text()))
    assert hosts["lab-01"]["status"] == "auth_failed"
    assert (f"key {encrypted_key} is encrypted and no ssh-agent holds it (fleetaudit never "
            "asks for a passphrase: ssh-add it)") in [e["message"]
                                                     for e in hosts["lab-01"]["errors"]]
    assert hosts["lab-02"]["status"] == "ok", hosts["lab-02"]["errors"]
    assert "Enter passphrase" not in proc.stderr and "GetPassWarning" not in proc.stderr


def test_a_key_path_that_is_a_folder_is_a_key_error(fleet, tmp_path):
    exc = fail(root(fleet, "lab-01").model_copy(update={"key_file": str(tmp_path)}),
               options(fleet))
    assert isinstance(exc, AuthError) and "is a directory" in str(exc)


@pytest.fixture
def agent(fleet, tmp_path, monkeypatch):
    if shutil.which("ssh-agent") is None:
        pytest.skip("ssh-agent is not installed")
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():  # the agent creates its socket, then serves
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        yield sock
    finally:
        process.terminate()
        process.wait(10)


def test_keys_from_ssh_agent(fleet, agent, encrypted_key):
    env = {**os.environ, "SSH_AUTH_SOCK": str(agent)}
    subprocess.run(["ssh-add", "-q", str(fleet.client_key)], check=True, env=env,
                   capture_output=True)
    # No key file at all: the agent's key logs in.
    assert run_id(root(fleet, "lab-01").model_copy(update={"key_file": None}),
                  options(fleet)).startswith("root\n")
    # An encrypted key file whose key the agent holds: no prompt, no error.
    assert run_id(root(fleet, "lab-02").model_copy(update={"key_file": str(encrypted_key)}),
                  options(fleet)).startswith("root\n")


# --- known_hosts ----------------------------------------------------------------------------


def host_key_line(fleet, name: str, where: str | None = None) -> str:
    public = (lab_hosts.host_files(fleet.state_dir, name).host_key.with_suffix(".pub")
              .read_text().split())
    return f"{where or fleet.host(name).address} {public[0]} {public[1]}\n"


def test_a_missing_known_hosts_file_says_what_to_do(fleet, tmp_path):
    absent = tmp_path / "absent_known_hosts"
    exc = fail(root(fleet, "lab-01"), options(fleet, known_hosts=absent))
    assert isinstance(exc, HostKeyError)
    assert str(exc) == (f"no known_hosts at {absent}: use --known-hosts or "
                        "--host-key-policy accept-new")
    # accept-new records the key; strict then trusts it.
    assert run_id(root(fleet, "lab-01"), options(
        fleet, known_hosts=absent, host_key_policy=HostKeyPolicy.ACCEPT_NEW)).startswith("root")
    assert fleet.host("lab-01").address in absent.read_text()
    assert run_id(root(fleet, "lab-01"), options(fleet, known_hosts=absent)).startswith("root")


def test_a_changed_host_key_is_refused_distinctly_and_costs_no_other_host(fleet, tmp_path):
    forged = tmp_path / "forged_known_hosts"
    other = lab_hosts.write_keypair(tmp_path / "other_key", "someone-else").split()
    lines = [line for line in fleet.known_hosts.read_text().splitlines()
             if not line.startswith(fleet.host("lab-02").address + " ")]
    lines.append(f"{fleet.host('lab-02').address} {other[0]} {other[1]}")
    forged.write_text("\n".join(lines) + "\n")
    changed = fail(root(fleet, "lab-02"), options(fleet, known_hosts=forged))
    assert isinstance(changed, HostKeyError)
    assert "HOST KEY CHANGED" in str(changed) and "man-in-the-middle" in str(changed)
    # accept-new never accepts a changed key.
    again = fail(root(fleet, "lab-02"), options(fleet, known_hosts=forged,
                                                host_key_policy=HostKeyPolicy.ACCEPT_NEW))
    assert "HOST KEY CHANGED" in str(again)
    # Unknown is another message.
    unknown_file = tmp_path / "unknown_known_hosts"
    unknown_file.write_text(host_key_line(fleet, "lab-01"))
    unknown = fail(root(fleet, "lab-02"), options(fleet, known_hosts=unknown_file))
    assert isinstance(unknown, HostKeyError) and "is unknown" in str(unknown)
    assert "CHANGED" not in str(unknown)
    # In a fleet check, only that host is refused.
    report = asyncio.run(run_preflight(
        Inventory(source="t", hosts=[root(fleet, "lab-01"), root(fleet, "lab-02")]),
        options(fleet, known_hosts=forged)))
    status = {h.name: (h.status, h.error) for h in report.hosts}
    assert status["lab-01"] == (HostStatus.OK, None)
    assert status["lab-02"][0] is HostStatus.HOST_KEY_REJECTED
    assert "HOST KEY CHANGED" in (status["lab-02"][1] or "")
    # And the audit reports it as a security finding, with both keys' fingerprints.
    out = tmp_path / "audit"
    proc = fleetaudit("audit", str(fleet.inventory), "--known-hosts", str(forged),
                      "--ssh-config", str(NO_CONFIG), "--ports", "22", "--limit",
                      "lab-01,lab-02", "--out", str(out))
    assert proc.returncode == 3, proc.stderr
    hosts = by_name(json.loads((out / "results.json").read_text()))
    assert hosts["lab-01"]["status"] == "ok"
    assert not [f for f in hosts["lab-01"]["findings"] if f["rule"] == "HOST_KEY_CHANGED"]
    two = hosts["lab-02"]
    assert two["status"] == "host_key_rejected"
    [finding] = [f for f in two["findings"] if f["rule"] == "HOST_KEY_CHANGED"]
    offered = " ".join(host_key_line(fleet, "lab-02").split()[1:])
    assert finding["severity"] == "high" and finding["port"] is None
    assert finding["evidence"] == [
        f"offered: {fingerprint(offered)}", f"on record: {fingerprint(' '.join(other[:2]))}",
        f"known_hosts: {forged}"]
    assert two["compliant"] is False


def test_hashed_known_hosts_and_bracketed_ports(fleet, tmp_path):
    hashed = tmp_path / "hashed_known_hosts"
    address = fleet.host("lab-01").address
    hashed.write_text(host_key_line(fleet, "lab-01")
                      + host_key_line(fleet, "lab-01", f"[{address}]:24"))
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True,
                   capture_output=True)
    assert address not in hashed.read_text() and "|1|" in hashed.read_text()
    assert run_id(root(fleet, "lab-01"), options(fleet, known_hosts=hashed)).startswith("root")
    assert run_id(root(fleet, "lab-01", port=24),
                  options(fleet, known_hosts=hashed)).startswith("root")
    # The [host]:24 entry does not vouch for port 22 of another host.
    only_24 = tmp_path / "only_24"
    only_24.write_text(host_key_line(fleet, "lab-01", f"[{address}]:24"))
    assert isinstance(fail(root(fleet, "lab-01"), options(fleet, known_hosts=only_24)),
                      HostKeyError)


def test_a_revoked_host_key(fleet, tmp_path):
    revoked = tmp_path / "revoked_known_hosts"
    line = host_key_line(fleet, "lab-01")
    revoked.write_text(line + "@revoked * " + line.split(" ", 1)[1])
    exc = fail(root(fleet, "lab-01"), options(fleet, known_hosts=revoked))
    assert isinstance(exc, HostKeyError) and "revoked" in str(exc)


def test_a_host_certificate_trusted_through_cert_authority(fleet, tmp_path):
    """An sshd of the test's own in lab-01's namespace presents a host certificate signed
    by `ssh-keygen -s`; known_hosts holds only the @cert-authority line."""
    ca, host_key = tmp_path / "ca", tmp_path / "host_ed25519"
    for key in (ca, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True, capture_output=True)
    address = fleet.host("lab-01").address
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "lab-01", "-h", "-n", address,
                    str(host_key) + ".pub"], check=True, capture_output=True)
    config = tmp_path / "sshd_config"
    config.write_text(lab_hosts.render_sshd_config(
        ports=[2200], host_key=host_key, pid_file=tmp_path / "sshd.pid",
        authorized_keys=fleet.state_dir / "authorized_keys")
        + f"HostCertificate {host_key}-cert.pub\n")
    log = tmp_path / "sshd.log"
    sshd = lab_proc.spawn_in_netns(fleet.host("lab-01").netns,
                                   [str(lab_hosts.SSHD), "-D", "-e", "-f", str(config)],
                                   host="lab-01", role="test sshd", log=log, cwd=tmp_path)
    try:
        lab_hosts.wait_listening([(sshd, {2200}, log)], 15)
        trusted = tmp_path / "ca_known_hosts"
        ca_public = (tmp_path / "ca.pub").read_text().split()
        trusted.write_text(f"@cert-authority 10.99.140.* {ca_public[0]} {ca_public[1]}\n")
        assert run_id(root(fleet, "lab-01", port=2200),
                      options(fleet, known_hosts=trusted)).startswith("root")
        # Another CA vouches for nothing.
        other = tmp_path / "other_ca_known_hosts"
        other.write_text("@cert-authority 10.99.140.* "
                         + " ".join(host_key_line(fleet, "lab-02").split()[1:3]) + "\n")
        assert isinstance(fail(root(fleet, "lab-01", port=2200),
                               options(fleet, known_hosts=other)), HostKeyError)
    finally:
        lab_proc.stop([sshd])


def test_check_goes_through_the_jump_host_and_says_so(fleet):
    hidden = fleet.host("lab-hidden")
    report = asyncio.run(run_preflight(
        Inventory(source="t", hosts=[root(fleet, "lab-hidden", jump=hidden.jump)]),
        options(fleet)))
    [host] = report.hosts
    assert (host.status, host.address, host.via, host.user) == (
        HostStatus.OK, hidden.address, hidden.jump, "root"), host.error
