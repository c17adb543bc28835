"""Everything that can be known wrong before a host is contacted stops the audit before any
is (issue 14): exit 2, one line per mistake naming the option or host and the file, and
nothing scanned, connected to or written.

Each case runs the command as a user would, in a subprocess. Its one host is this
machine's loopback, at a port where the test listens: a connection there, or a run
folder, would mean the audit went on. Unreadable files and unwritable folders need a user
that permissions stop: as root, the command runs as nobody (setpriv).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NMAP_XML = ROOT / "tests" / "fixtures" / "nmap" / "sv-connect.xml"
NOTHING_DONE = "Nothing was scanned or contacted"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Where the inventory's host is: the test sees any connection the audit makes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder any user may read (pytest's own is root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="fleetaudit-precheck-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def inventory(folder: Path, listener: socket.socket, extra: str = "") -> Path:
    path = folder / "hosts.ini"
    port = listener.getsockname()[1]
    path.write_text(f"[web]\nweb1 ansible_host=127.0.0.1 ansible_port={port} {extra}\n")
    path.chmod(0o644)
    return path


def audit(*args: str | Path, env: dict[str, str] | None = None, as_nobody: bool = False
          ) -> subprocess.CompletedProcess[str]:
    prefix: list[str] = []
    if as_nobody and os.geteuid() == 0:
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    environment = {**os.environ, "HOME": tempfile.gettempdir(), **(env or {})}
    return subprocess.run([*prefix, sys.executable, "-m", "fleetaudit", "audit", *map(str, args),
                           "--history", "none", "--ssh-config", "/dev/null"],
                          cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def assert_refused_early(done: subprocess.CompletedProcess[str], listener: socket.socket,
                         message: str, run: Path) -> None:
    """Refused before the precheck (a usage error, a policy): exit 2, and nothing done."""
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr
    assert "Auditing" not in done.stderr and not run.exists()
    with pytest.raises(BlockingIOError):
        listener.accept()


def assert_stopped(done: subprocess.CompletedProcess[str], listener: socket.socket,
                   *messages: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    for message in messages:
        assert any(message in line for line in errors), (message, done.stderr)
    assert done.stderr.splitlines()[-1].startswith(NOTHING_DONE), done.stderr
    assert "Auditing" not in done.stderr and done.stdout == "", done.stderr
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody came


def test_the_listener_would_see_an_audit_that_went_on(place, listener):
    """The cases below prove something only if an audit that goes on reaches the listener.
    It answers as no SSH server does and hangs up, so the login fails at once (a silent
    peer would hold the audit for the whole login limit)."""
    came: list[bytes] = []

    def answer() -> None:
        listener.setblocking(True)
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"not an ssh server\r\n")
            came.append(connection.recv(256))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    hosts = inventory(place, listener, "ansible_connection=ssh")
    done = audit(hosts, "--nmap-xml", NMAP_XML, "--out", place / "run",
                 "--known-hosts", "/dev/null", "--connect-timeout", "2")
    thread.join(timeout=10)
    assert done.returncode == 3, done.stderr  # it connected, the handshake failed
    assert came and came[0].startswith(b"SSH-2.0-"), came  # the audit's own greeting


def test_out_that_is_a_file(place, listener):
    target = place / "report"
    target.write_text("mine\n")
    done = audit(inventory(place, listener), "--nmap-xml", NMAP_XML, "--out", target)
    assert_stopped(done, listener, f"--out {target}: is a file, not a folder")
    assert target.read_text() == "mine\n"


def test_out_that_holds_other_files(place, listener):
    target = place / "notes"
    target.mkdir()
    (target / "todo.txt").write_text("mine\n")
    done = audit(inventory(place, listener), "--nmap-xml", NMAP_XML, "--out", target)
    assert_stopped(done, listener, "holds files that are not part of a fleetaudit report "
                                   "(todo.txt)")
    assert sorted(p.name for p in target.iterdir()) == ["todo.txt"]  # no journal either


def test_out_inside_the_inventory_folder(place, listener):
    folder = place / "inventory"
    folder.mkdir()
    inventory(folder, listener)
    target = folder / "reports" / "today"
    done = audit(folder, "--nmap-xml", NMAP_XML, "--out", target)
    assert_stopped(done, listener, f"--out {target} is inside the inventory folder {folder}: "
                                   "the next audit of that inventory would read the report's "
                                   "files as inventory")
    assert not (folder / "reports").exists()


def test_out_that_cannot_be_made(place, listener):
    locked = place / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    target = locked / "run"
    done = audit(inventory(place, listener), "--nmap-xml", NMAP_XML, "--out", target,
                 as_nobody=True)
    assert_stopped(done, listener, f"--out {target}: cannot be made: this user cannot write "
                                   f"in {locked}")


def test_known_hosts_missing_under_strict(place, listener):
    missing = place / "known_hosts"
    done = audit(inventory(place, listener), "--nmap-xml", NMAP_XML, "--out", place / "run",
                 "--known-hosts", missing)
    assert_stopped(done, listener, f"--known-hosts {missing}: no such file; under "
                                   "--host-key-policy strict every host would be refused")
    assert not (place / "run").exists()


def test_known_hosts_missing_is_fine_under_accept_new_unreadable_is_not(place, listener):
    hosts = inventory(place, listener, "ansible_ssh_private_key_file=/nonexistent/key")
    done = audit(hosts, "--nmap-xml", NMAP_XML, "--out", place / "run", "--known-hosts",
                 place / "new_known_hosts", "--host-key-policy", "accept-new")
    assert_stopped(done, listener, "key file /nonexistent/key (host web1): no such file")
    assert "known_hosts" not in done.stderr
    secret = place / "known_hosts"
    secret.write_text("")
    secret.chmod(0o600)
    done = audit(inventory(place, listener), "--nmap-xml", NMAP_XML, "--out", place / "run",
                 "--known-hosts", secret, as_nobody=True)
    # Refused by the option's own check (click's), as a usage error, before anything.
    assert_refused_early(done, listener, f"Invalid value for '--known-hosts': path '{secret}' "
                                         "is not readable", place / "run")


def test_key_files_missing_a_folder_or_unreadable(place, listener):
    key = place / "id_ed25519"
    key.write_text("not for nobody\n")
    key.chmod(0o600)
    hosts = place / "hosts.ini"
    port = listener.getsockname()[1]
    hosts.write_text(
        "[web]\n"
        f"web1 ansible_host=127.0.0.1 ansible_port={port} ansible_ssh_private_key_file={key}\n"
        f"web2 ansible_host=127.0.0.1 ansible_port={port} ansible_ssh_private_key_file={place}\n"
        + "".join(f"db{i} ansible_host=127.0.0.1 ansible_port={port} "
                  "ansible_ssh_private_key_file=/nonexistent/key\n" for i in range(5)))
    hosts.chmod(0o644)
    done = audit(hosts, "--nmap-xml", NMAP_XML, "--out", place / "run", "--known-hosts",
                 "/dev/null", as_nobody=True)
    assert_stopped(done, listener,
                   f"the inventory's key file {key}: cannot be read: Permission denied "
                   "(host web1)",
                   f"the inventory's key file {place} (host web2): is a folder, not a key file",
                   "the inventory's key file /nonexistent/key (hosts db0, db1, db2 and 2 "
                   "others): no such file")


def test_nmap_missing_when_a_scan_is_needed(place, listener):
    empty = place / "bin"
    empty.mkdir()
    done = audit(inventory(place, listener), "--out", place / "run", "--known-hosts",
                 "/dev/null", env={"PATH": str(empty)})
    assert_stopped(done, listener, "nmap not found in PATH",
                   "(or give scans made elsewhere with --nmap-xml)")
    assert not (place / "run").exists()


def test_a_broken_policy_is_refused_before_anything_else(place, listener):
    policy = place / "policy.yml"
    policy.write_text("version: 1\ndefaults:\n  allowed_ports: [{port: x}]\n")
    done = audit(inventory(place, listener), "--nmap-xml", NMAP_XML, "--out", place / "run",
                 "--policy", policy)
    assert_refused_early(done, listener, f"error: {policy}:3: defaults.allowed_ports[0].port",
                         place / "run")


def test_every_mistake_is_said_at_once(place, listener):
    target = place / "report"
    target.write_text("")
    done = audit(inventory(place, listener), "--out", target, "--known-hosts",
                 place / "missing", env={"PATH": str(place)})
    assert_stopped(done, listener, "--out", "--known-hosts", "nmap not found")
    assert done.stderr.splitlines()[-1] == (f"{NOTHING_DONE}: fix these and run the same "
                                            "command again.")
