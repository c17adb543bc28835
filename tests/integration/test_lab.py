"""The lab fleet: its pure helpers (no root), then real labs in network namespaces (root, `lab`).

The real labs use their own bridges and 10.99.20x.0/24 subnets, so they coexist with a
default lab (fa-br0, 10.99.0.0/16) another user may have running.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleetaudit import lab
from fleetaudit.errors import LabError, UnsafeTargetError
from fleetaudit.lab import hosts, net, proc
from fleetaudit.lab.state import RecordedProcess
from fleetaudit.models import VerdictKind

BRIDGE = "fa-test0"
SUBNET = "10.99.200.0/24"


# --- pure helpers: no root needed ---------------------------------------------------------


def test_addresses_start_at_11_and_spread_over_24s():
    net16 = ipaddress.IPv4Network("10.99.0.0/16")
    assert str(net.host_address(net16, 0)) == "10.99.0.11"
    assert str(net.host_address(net16, 239)) == "10.99.0.250"
    assert str(net.host_address(net16, 240)) == "10.99.1.11"
    plan = net.plan_network(1000, "10.99.0.0/16", "fa-br0")
    addresses = [h.address for h in plan.hosts]
    assert len(set(addresses)) == 1000
    assert all(11 <= int(a) % 256 <= 250 for a in addresses)
    assert str(plan.gateway) == "10.99.0.1"
    assert all(a not in (plan.subnet.network_address, plan.subnet.broadcast_address)
               for a in addresses)


def test_plan_names_hosts_namespaces_and_veths():
    plan = net.plan_network(3, "10.99.0.0/16", "fa-br0")
    assert [(h.name, h.netns, h.veth, str(h.address)) for h in plan.hosts] == [
        ("lab-01", "fa-h01", "fa-br0v1", "10.99.0.11"),
        ("lab-02", "fa-h02", "fa-br0v2", "10.99.0.12"),
        ("lab-03", "fa-h03", "fa-br0v3", "10.99.0.13"),
    ]
    big = net.plan_network(250, "10.99.0.0/16", "fa-br0")
    assert big.hosts[0].name == "lab-001" and big.hosts[0].netns == "fa-h001"
    other = net.plan_network(2, "10.99.200.0/24", "fa-test0")
    assert other.hosts[1].netns == "fa-test0-h02"


def test_veth_names_fit_linux_limit_and_differ_between_bridges():
    for bridge in ("fa-br0", "a-long-bridge15"):
        names = {net.veth_name(bridge, i) for i in range(1, 1001)}
        assert len(names) == 1000
        assert all(len(n) <= 15 for n in names)
    assert not {net.veth_name("fa-br0", i) for i in range(1, 100)} & {
        net.veth_name("fa-test0", i) for i in range(1, 100)}


@pytest.mark.parametrize(("subnet", "count", "message"), [
    ("10.98.0.0/16", 1, "outside 10.99.0.0/16"),
    ("192.168.1.0/24", 1, "outside"),
    ("10.99.0.0/25", 1, "smaller than a /24"),
    ("10.99.0.1/16", 1, "not an IPv4 network"),
    ("10.99.200.0/24", 241, "at most 240"),
    ("10.99.0.0/16", 0, "1 to 1000"),
    ("10.99.0.0/16", 1001, "1 to 1000"),
])
def test_plan_refuses_bad_subnets_and_counts(subnet, count, message):
    with pytest.raises(LabError, match=message):
        net.plan_network(count, subnet, "fa-br0")


def test_plan_refuses_bad_bridge_names():
    for bad in ("", "a" * 16, "has space", "-x"):
        with pytest.raises(LabError, match="interface name"):
            net.plan_network(1, "10.99.0.0/16", bad)


def test_route_conflicts_only_for_routes_that_would_win():
    subnet = ipaddress.IPv4Network("10.99.0.0/16")
    used = [ipaddress.IPv4Address("10.99.0.1"), ipaddress.IPv4Address("10.99.0.11")]
    harmless = [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
        {"dst": "10.0.0.0/8", "dev": "tun0"},             # broader: ours wins
        {"dst": "10.99.200.0/24", "dev": "fa-test0"},     # narrower, but none of our addresses
        {"dst": "192.0.2.0/24", "dev": "eth0"},
    ]
    assert net.route_conflicts(harmless, subnet, used) == []
    assert net.route_conflicts([{"dst": "10.99.0.0/16", "dev": "eth1"}], subnet, used) == [
        "10.99.0.0/16 via eth1 (table main)"]
    local = {"type": "local", "dst": "10.99.0.11", "dev": "eth0", "table": "local"}
    assert net.route_conflicts([local], subnet, used) == ["10.99.0.11 via eth0 (table local)"]
    # A /24 lab inside a running /16 lab's route is fine; the reverse is fine while disjoint.
    small = ipaddress.IPv4Network("10.99.200.0/24")
    assert net.route_conflicts([{"dst": "10.99.0.0/16", "dev": "fa-br0"}], small,
                               [ipaddress.IPv4Address("10.99.200.1")]) == []


def test_neigh_limits_raised_only_for_big_labs_and_never_lowered():
    assert net.neigh_targets(5, [128, 512, 1024]) is None
    assert net.neigh_targets(128, [128, 512, 1024]) is None
    assert net.neigh_targets(1000, [128, 512, 1024]) == [2256, 4512, 9024]
    assert net.neigh_targets(500, [4096, 8192, 16384]) is None
    assert net.neigh_targets(500, [2000, 100, 100]) == [2000, 2512, 5024]


def test_sshd_config_has_what_the_lab_relies_on(tmp_path):
    text = hosts.render_sshd_config(ports=[22, 24], host_key=tmp_path / "hk",
                                    pid_file=tmp_path / "pid", authorized_keys=tmp_path / "ak")
    lines = set(text.splitlines())
    for line in ("Port 22", "Port 24", f"HostKey {tmp_path / 'hk'}", f"PidFile {tmp_path / 'pid'}",
                 f"AuthorizedKeysFile {tmp_path / 'ak'}", "PermitRootLogin prohibit-password",
                 "PasswordAuthentication no", "UsePAM no", "MaxStartups 100:30:200"):
        assert line in lines, line


def test_known_hosts_uses_bracket_form_for_other_ports():
    key = "ssh-ed25519 AAAAkey lab-01"
    text = hosts.render_known_hosts([("10.99.0.11", 22, key), ("10.99.0.11", 24, key)])
    assert text.splitlines() == ["10.99.0.11 ssh-ed25519 AAAAkey",
                                 "[10.99.0.11]:24 ssh-ed25519 AAAAkey"]


def test_inventory_is_ansible_style_with_lab_and_planted_groups():
    text = hosts.render_inventory([("lab-01", "10.99.0.11"), ("lab-02", "10.99.0.12")],
                                  key_file=Path("/run/x/key"), bridge="fa-br0",
                                  planted=["lab-01"])
    doc = yaml.safe_load(text)
    children = doc["all"]["children"]
    assert children["lab"]["hosts"]["lab-02"] == {
        "ansible_host": "10.99.0.12", "ansible_port": 22, "ansible_user": "root",
        "ansible_ssh_private_key_file": "/run/x/key", "fleetaudit_route_dev": "fa-br0"}
    assert list(children["planted"]["hosts"]) == ["lab-01"]


def test_plants_spread_over_two_hosts_or_all_on_one():
    packages = {hosts.SSHD: "openssh-server", hosts.PYTHON: "python3.11-minimal"}
    specs = hosts.plan_plants(["lab-01", "lab-02", "lab-03"], Path("/run/s"), packages)
    where = {s.plant.verdict: (s.plant.host, s.plant.port) for s in specs}
    assert where == {
        VerdictKind.NONSTANDARD_PORT: ("lab-01", 24),
        VerdictKind.UNOWNED_BINARY: ("lab-01", 80),
        VerdictKind.LOCAL_ONLY: ("lab-02", 8081),
        VerdictKind.FILTERED: ("lab-02", 8443),
        VerdictKind.CONSISTENT: ("lab-01", 2323),  # the hostile banner
    }
    [unowned] = [s for s in specs if s.plant.verdict == VerdictKind.UNOWNED_BINARY]
    assert unowned.plant.exe == "/run/s/hosts/lab-01/kworker" and unowned.plant.package is None
    assert unowned.argv is not None and unowned.argv[0] == unowned.plant.exe
    single = hosts.plan_plants(["lab-01"], Path("/run/s"), packages)
    assert {s.plant.host for s in single} == {"lab-01"}


def test_internal_plants_go_on_the_last_three_hosts(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/bash\nx:x:64200:64200::/:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ng:x:64201:\n")
    packages = {hosts.SSHD: "openssh-server", hosts.PYTHON: "python3.11-minimal"}
    names = ["lab-01", "lab-02", "lab-03", "lab-04"]
    plan = hosts.plan_internal(names, Path("/run/s"), packages, etc=etc)
    where = {(s.plant.host, s.plant.proto.value, s.plant.port): s.plant.verdict
             for s in plan.specs}
    assert where == {
        ("lab-02", "tcp", 8090): VerdictKind.DELETED_BINARY,
        ("lab-03", "udp", 5355): VerdictKind.SUSPICIOUS_PATH,
        ("lab-03", "tcp", 8080): VerdictKind.CONSISTENT,
        ("lab-03", "tcp", 2222): VerdictKind.FORWARDED,
        ("lab-04", "tcp", 8000): VerdictKind.MODIFIED_BINARY,
        ("lab-04", "tcp", 4444): VerdictKind.TOOLS_DISAGREE,
        ("lab-04", "tcp", 31337): VerdictKind.HIDDEN_LISTENER,
    }
    basic = {s.plant.port for s in hosts.plan_plants(names, Path("/run/s"), packages)}
    assert not basic & {port for _, _, port in where}
    # Lab logins take ids nobody uses, and never copy the machine's password hashes.
    assert [(u.name, u.uid, u.sudo) for u in plan.users] == [
        ("fa-audit", 64202, False), ("fa-sudo", 64203, True)]
    [users] = [s for s in plan.setups if s.host == "lab-03"]
    files = {f.path.name: f for f in users.files}
    assert files["shadow"].text is not None
    assert [line.split(":")[:2] for line in files["shadow"].text.splitlines()] == [
        ["root", "*"], ["fa-audit", "*"], ["fa-sudo", "*"]]
    assert files["sudoers"].mode == 0o440
    assert "fa-sudo ALL=(root) NOPASSWD: /bin/sh" in (files["sudoers"].text or "")
    assert "fa-audit" not in (files["sudoers"].text or "").replace("# ", "")
    assert {dst for _, dst in users.binds} == {Path("/etc") / n for n in
                                               ("passwd", "group", "shadow", "sudoers")}
    [tampered] = [s for s in plan.setups if s.host == "lab-04"]
    assert tampered.replaced == (str(hosts.PYTHON), str(hosts.SS), str(hosts.CAT))
    [deleted] = [s for s in plan.specs if s.plant.verdict is VerdictKind.DELETED_BINARY]
    assert deleted.delete_after_start and deleted.argv is not None
    assert str(plan.tmp_dir).startswith("/tmp/.")
    with pytest.raises(LabError, match="at least 3"):
        hosts.plan_internal(names[:2], Path("/run/s"), packages, etc=etc)


def test_hidden_tools_are_an_overlay_of_whiteouts(tmp_path):
    setup = hosts.HostSetup(host="lab-01", hide=(Path("/usr/bin/ss"), Path("/usr/bin/netstat")),
                            binds=((tmp_path / "a", Path("/etc/passwd")),))
    commands = setup.mount_commands(tmp_path)
    assert commands[0] == f"mount --bind {tmp_path / 'a'} /etc/passwd"
    layer = setup.whiteout_dir(tmp_path, Path("/usr/bin"))
    assert commands[1] == f"mount -t overlay fa-lab-hide -o lowerdir={layer}:/usr/bin /usr/bin"
    assert setup.hidden_tools == ("ss", "netstat")


def test_start_time_and_listening_ports_read_proc():
    assert proc.start_time(os.getpid()) is not None
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port in (proc.listening_tcp_ports(os.getpid()) or set())


def test_stop_leaves_a_reused_pid_alone():
    me = RecordedProcess(pid=os.getpid(), start_time=(proc.start_time(os.getpid()) or 0) + 1,
                         host="x", role="test", argv=[])
    assert not proc.is_ours(me)
    assert proc.stop([me], grace=0.1) == []  # nothing signalled: we are still here


def test_check_route_refuses_non_addresses():
    with pytest.raises(UnsafeTargetError, match="single IP address"):
        lab.check_route("example.com", "fa-br0")


def test_up_refuses_without_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        lab.up(1, state_dir=Path("/run/fleetaudit-never"))


def test_down_is_a_no_op_when_nothing_is_up(tmp_path):
    lab.down(tmp_path / "absent")
    lab.down(tmp_path)  # exists, empty, no lab.json: left alone
    assert tmp_path.exists()


# --- real labs: root, network namespaces, sshd -----------------------------------------------


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, a bridge, sshd)"
    for tool in ("ip", "iptables", "ss"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.access(hosts.SSHD, os.X_OK):
        return "openssh-server (/usr/sbin/sshd) is not installed"
    if not os.access(hosts.PYTHON, os.X_OK):
        return f"{hosts.PYTHON} is not installed"
    return None


needs_lab = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def _state_dir(tag: str) -> Path:
    return Path(f"/run/fleetaudit-test-{tag}-{os.getpid()}")


def _listeners(netns: str) -> set[str]:
    out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-ltnH"], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if line.strip()}


def _namespaces() -> set[str]:
    return net.namespaces()


def _assert_gone(info: lab.LabInfo, pids: list[RecordedProcess]) -> None:
    assert not {h.netns for h in info.hosts} & _namespaces()
    links = net.links()
    assert info.bridge not in links
    assert not {h.veth for h in info.hosts} & set(links)
    assert not [p for p in pids if proc.is_ours(p)]
    assert not info.state_dir.exists()


def _recorded(info: lab.LabInfo) -> list[RecordedProcess]:
    from fleetaudit.lab.state import load_state

    state = load_state(info.state_dir)
    assert state is not None
    return list(state.processes)


@pytest.fixture(scope="module")
def fleet() -> Iterator[lab.LabInfo]:
    state_dir = _state_dir("lab")
    lab.down(state_dir)
    info = lab.up(2, state_dir=state_dir, subnet=SUBNET, bridge=BRIDGE)
    pids = _recorded(info)
    try:
        yield info
    finally:
        lab.down(state_dir)
        _assert_gone(info, pids)


def _ssh(info: lab.LabInfo, address: str, port: int = 22) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(info.client_key), "-p", str(port),
         "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
         "-o", f"UserKnownHostsFile={info.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
         "-o", "StrictHostKeyChecking=yes", f"root@{address}", "true"],
        capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.lab
@needs_lab
def test_every_sshd_sends_a_banner(fleet):
    ports = [(h.address, 22) for h in fleet.hosts] + [(fleet.hosts[0].address, 24)]
    for address, port in ports:
        with socket.create_connection((address, port), timeout=10) as conn:
            banner = conn.makefile("rb").readline()
        assert banner.startswith(b"SSH-2.0-OpenSSH"), (address, port, banner)


@pytest.mark.lab
@needs_lab
@pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client")
def test_real_ssh_login_with_strict_host_key_checking(fleet):
    for host in fleet.hosts:
        done = _ssh(fleet, host.address)
        assert done.returncode == 0, done.stderr
    done = _ssh(fleet, fleet.hosts[0].address, 24)
    assert done.returncode == 0, done.stderr


@pytest.mark.lab
@needs_lab
def test_plants_listen_where_expected(fleet):
    one, two = fleet.hosts
    assert {"0.0.0.0:22", "0.0.0.0:24", "0.0.0.0:80", "0.0.0.0:2323"} <= _listeners(one.netns)
    assert {"0.0.0.0:22", "127.0.0.1:8081", "0.0.0.0:8443"} <= _listeners(two.netns)
    assert {(p.host, p.port, p.verdict) for p in fleet.plants} == {
        ("lab-01", 24, VerdictKind.NONSTANDARD_PORT), ("lab-01", 80, VerdictKind.UNOWNED_BINARY),
        ("lab-02", 8081, VerdictKind.LOCAL_ONLY), ("lab-02", 8443, VerdictKind.FILTERED),
        ("lab-01", 2323, VerdictKind.CONSISTENT)}


@pytest.mark.lab
@needs_lab
def test_plant_executables_are_what_the_audit_must_find(fleet):
    by_port = {p.port: p for p in fleet.plants}
    for plant in fleet.plants:
        netns = fleet.host(plant.host).netns
        out = subprocess.run(
            ["ip", "netns", "exec", netns, "ss", "-ltnpH", f"sport = :{plant.port}"],
            capture_output=True, text=True, check=True).stdout
        pid = int(out.split("pid=")[1].split(",")[0])
        assert os.readlink(f"/proc/{pid}/exe") == plant.exe
    assert by_port[24].package == "openssh-server"
    assert by_port[80].package is None
    assert hosts.package_of(Path(by_port[80].exe)) is None
    python_package = hosts.package_of(hosts.PYTHON)
    assert python_package is not None and by_port[8081].package == python_package


@pytest.mark.lab
@needs_lab
def test_firewalled_port_drops_and_open_port_answers(fleet):
    one, two = fleet.hosts
    with socket.create_connection((one.address, 80), timeout=5):
        pass
    with pytest.raises(TimeoutError), socket.create_connection((two.address, 8443), timeout=1):
        pass


@pytest.mark.lab
@needs_lab
def test_inventory_and_known_hosts(fleet):
    doc = yaml.safe_load(fleet.inventory.read_text())
    children = doc["all"]["children"]
    assert list(children["lab"]["hosts"]) == ["lab-01", "lab-02"]
    assert set(children["planted"]["hosts"]) == {"lab-01", "lab-02"}
    entry = children["lab"]["hosts"]["lab-01"]
    assert entry["ansible_host"] == fleet.hosts[0].address
    assert entry["fleetaudit_route_dev"] == BRIDGE
    assert Path(entry["ansible_ssh_private_key_file"]) == fleet.client_key
    assert fleet.client_key.stat().st_mode & 0o077 == 0
    known = fleet.known_hosts.read_text().splitlines()
    assert len(known) == 3 and f"[{fleet.hosts[0].address}]:24" in known[1]
    inventory = pytest.importorskip("fleetaudit.inventory")
    parsed = inventory.load_inventory(fleet.inventory)
    assert [(h.name, h.route_dev) for h in parsed.hosts] == [("lab-01", BRIDGE),
                                                            ("lab-02", BRIDGE)]
    assert "planted" in parsed.hosts[0].groups


@pytest.mark.lab
@needs_lab
def test_check_route(fleet):
    lab.check_route(fleet.hosts[0].address, BRIDGE)
    with pytest.raises(UnsafeTargetError, match="lo"):
        lab.check_route("127.0.0.1", BRIDGE)
    with pytest.raises(UnsafeTargetError):
        lab.check_route(fleet.hosts[0].address, "fa-br-other")
    with pytest.raises(UnsafeTargetError):
        lab.check_route("10.99.250.5", BRIDGE)  # in the lab block, but not on this bridge


@pytest.mark.lab
@needs_lab
def test_refuses_to_build_over_a_running_lab(fleet):
    other = _state_dir("other")
    with pytest.raises(LabError, match="already exists"):
        lab.up(1, state_dir=other, subnet="10.99.202.0/24", bridge=BRIDGE)
    with pytest.raises(LabError, match="already routed"):
        lab.up(1, state_dir=other, subnet=SUBNET, bridge="fa-test9")
    with pytest.raises(LabError, match="already up"):
        lab.up(1, state_dir=fleet.state_dir, subnet="10.99.202.0/24", bridge="fa-test9")
    assert not other.exists()
    assert "fa-test9" not in net.links()
    # The refusals touched nothing of the running lab.
    assert all(proc.is_ours(p) for p in _recorded(fleet))
    assert lab.load_info(fleet.state_dir) == fleet


@pytest.mark.lab
@needs_lab
def test_single_host_lab_carries_every_plant_and_comes_down_clean():
    state_dir = _state_dir("one")
    lab.down(state_dir)
    info = lab.up(1, state_dir=state_dir, subnet="10.99.201.0/24", bridge="fa-test1")
    client: subprocess.Popen[str] | None = None
    session: list[RecordedProcess] = []
    try:
        pids = _recorded(info)
        assert {p.host for p in info.plants} == {"lab-01"}
        assert {"0.0.0.0:22", "0.0.0.0:24", "0.0.0.0:80", "127.0.0.1:8081",
                "0.0.0.0:8443", "0.0.0.0:2323"} <= _listeners(info.hosts[0].netns)
        assert len(pids) == 5 and all(proc.is_ours(p) for p in pids)
        # A session still open when the lab goes down: sshd forked it, nobody recorded it,
        # and with its namespace gone its peer can never hang up.
        client = subprocess.Popen(
            ["ssh", "-F", "/dev/null", "-i", str(info.client_key), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={info.known_hosts}", "-o", "IdentitiesOnly=yes",
             f"root@{info.hosts[0].address}", "echo in; exec sleep 300"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert client.stdout is not None and client.stdout.readline() == "in\n"
        recorded = {p.pid for p in pids}
        session = [p for p in proc.in_namespaces([info.hosts[0].netns])
                   if p.pid not in recorded]
        assert session, "the open session's processes are in the host's namespace"
    finally:
        lab.down(state_dir)
    try:
        _assert_gone(info, pids)
        assert not [p for p in session if proc.is_ours(p)], session
    finally:
        if client is not None:
            client.kill()
            client.wait()
    lab.down(state_dir)  # idempotent


@pytest.mark.lab
@needs_lab
def test_failed_up_removes_what_it_made(monkeypatch):
    state_dir = _state_dir("fail")
    seen: list[RecordedProcess] = []
    real_wait = hosts.wait_listening

    def fail(targets, timeout, udp=None):
        # The first wait is for the sshds, the second for the plants started after them.
        seen.extend(t[0] for t in targets)
        assert all(proc.is_ours(p) for p in seen)
        if len(seen) == 2:
            real_wait(targets, timeout, udp)
            return
        raise LabError("planned failure")

    monkeypatch.setattr(hosts, "wait_listening", fail)
    with pytest.raises(LabError, match=r"planned failure.*everything it made was removed"):
        lab.up(2, state_dir=state_dir, subnet="10.99.202.0/24", bridge="fa-test2")
    assert len(seen) == 6  # 2 sshds, then the 4 plants with a process
    assert not [p for p in seen if proc.is_ours(p)]
    assert not {"fa-test2-h01", "fa-test2-h02"} & _namespaces()
    assert not {"fa-test2", "fa-test2v1", "fa-test2v2"} & set(net.links())
    assert not state_dir.exists()
