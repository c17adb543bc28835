"""The collection's probes on a busybox-only host: busybox sh, and a PATH holding nothing
but busybox applets (no coreutils, grep, openssl, getconf or dpkg tools).

Each probe's answer must equal what the same probe says through /bin/sh with the full
tools, on this machine at the same moment: busybox's stat, readlink, sha256sum, md5sum,
grep -f and xargs have to speak the dialect the parsers read.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetaudit.batch import Section, build_inline, split_output
from fleetaudit.models import ProcessInfo
from fleetaudit.packagers import dpkg
from fleetaudit.probes import (
    Probe,
    exe_hash_probe,
    host_facts_probe,
    proc_net_probe,
    process_batch,
)
from tests.integration.test_probes_local import Listener, listener  # noqa: F401
from tests.process_singles import process_probes

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed")


@pytest.fixture(scope="module")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory of busybox applets only, as a busybox-based image's /bin."""
    assert BUSYBOX is not None
    where = tmp_path_factory.mktemp("busybox-bin")
    names = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                           check=True).stdout.split()
    for name in names:
        (where / name).symlink_to(BUSYBOX)
    yield where


def on_busybox(probe: Probe[object], applets: Path) -> object:
    return probe.parse(shell_output(probe.command, applets))


def shell_output(command: str, applets: Path | None) -> str:
    argv = [str(applets / "sh") if applets else "/bin/sh", "-c",
            f"LC_ALL=C; export LC_ALL; ( {command} )"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                          stdin=subprocess.DEVNULL,
                          env={"PATH": str(applets)} if applets else None).stdout


def on_full_tools(probe: Probe[object]) -> object:
    return probe.parse(shell_output(probe.command, None))


def batch_read(pids: list[int], applets: Path | None) -> list[ProcessInfo]:
    """process_batch as collection runs it: each chunk of reads inline, one command."""
    reads = process_batch(pids)
    parts: dict[str, Section] = {}
    for chunk in reads.chunks:
        text = shell_output(build_inline([p.batch_command() for p in chunk], "busyboxnonce1234"),
                            applets)
        parts.update(split_output(text, "busyboxnonce1234"))
    return [info.model_copy(update={"libraries": sorted(info.libraries, key=lambda m: m.path)})
            for info in reads.read(parts, None).processes]


def test_busybox_has_no_coreutils_here(applets: Path) -> None:
    assert not (applets / "getconf").exists() and not (applets / "openssl").exists()
    assert (applets / "stat").resolve() == Path(BUSYBOX or "").resolve()


def test_host_facts(applets: Path) -> None:
    facts = on_busybox(host_facts_probe(), applets)
    full = on_full_tools(host_facts_probe())
    # Without getconf the parser falls back to 100, Linux's CLK_TCK everywhere.
    assert facts == full


def test_process_chain_and_file_identity(applets: Path, listener: Listener) -> None:  # noqa: F811
    bundle = process_probes(listener.pid, hash_exe=False, exe_id=True)
    for probe in bundle.probes:
        assert on_busybox(probe, applets) == on_full_tools(probe), probe.name


def test_many_pids_read_at_once(applets: Path, listener: Listener) -> None:  # noqa: F811
    pids = [listener.pid, 1]
    found = batch_read(pids, applets)
    assert found == batch_read(pids, None)
    assert found[0].exe == "/usr/bin/python3.11" and found[0].env_names and found[0].libraries


def test_hash_without_openssl_is_busybox_sha256sum(applets: Path, listener: Listener) -> None:  # noqa: F811
    probe = exe_hash_probe([listener.pid])
    digest = on_busybox(probe, applets)
    assert digest is not None and digest == on_full_tools(probe)


def test_proc_net_with_its_fd_map(applets: Path, listener: Listener) -> None:  # noqa: F811
    def mine(sockets: object) -> object:
        assert isinstance(sockets, list)
        [found] = [s for s in sockets if s.port == listener.port]
        return found

    found = mine(on_busybox(proc_net_probe(), applets))
    assert found == mine(on_full_tools(proc_net_probe()))
    # This test's own listener: its fds are readable without root too.
    assert {o.pid for o in found.owners} == {listener.pid}  # type: ignore[attr-defined]


@pytest.mark.skipif(not Path("/var/lib/dpkg/info").is_dir(), reason="no dpkg database")
def test_dpkg_owner_and_integrity(applets: Path) -> None:
    paths = ["/usr/sbin/sshd", "/bin/sshd", "/usr/bin/ls", "/bin/ls", "/tmp/fa-not-there"]
    owners = on_busybox(dpkg.owner_probe(paths), applets)
    assert owners == on_full_tools(dpkg.owner_probe(paths))
    owned = {lookup.path: lookup.owner.name for lookup in owners  # type: ignore[attr-defined]
             if lookup.owner is not None}
    assert owned, "nothing owned: the lists were not read"
    targets = dict(owned)
    assert on_busybox(dpkg.integrity_probe(targets), applets) == on_full_tools(
        dpkg.integrity_probe(targets))
