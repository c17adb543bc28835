"""pacman (Arch Linux): owners by `pacman -Qo`, integrity by `pacman -Qkk`, on real output.

Captured by tests/fixtures/capture_pacman.sh (pacman 6.0.2, Debian's build) from two
packages built with makepkg and installed into a scratch root with a scratch database
(`--config`): the paths in the output carry the scratch root's prefix, as pacman
prints the root it was given followed by the package's path. The probes run the same
commands without --config, on the host's own root.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from fleetaudit.errors import ParseError
from fleetaudit.models import IntegrityStatus, PackageOwner
from fleetaudit.packagers import pacman
from fleetaudit.parsers.integrity import parse_pacman_verify
from fleetaudit.parsers.packages import parse_pacman_qo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pacman"
ROOT = "/tmp/fa-pacman-capture/root"
DEMO = f"{ROOT}/usr/bin/fa-demo"
SPACED = f"{ROOT}/usr/bin/fa demo"
LIB = f"{ROOT}/usr/bin/fa-lib"
STRAY = f"{ROOT}/usr/bin/fa-stray"
ABSENT = f"{ROOT}/usr/bin/fa-absent"
NO_DIR = f"{ROOT}/nodir/fa-demo"
DEMO_OWNER = PackageOwner(manager="pacman", name="fa-demo", version="1.2-3")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# --- pacman -Qo ----------------------------------------------------------------------


def test_owned_path_has_name_and_version():
    [lookup] = parse_pacman_qo(fixture("qo_owned.txt"), [DEMO])
    assert lookup.path == DEMO and lookup.manager == "pacman" and lookup.owner == DEMO_OWNER


def test_deleted_file_is_still_owned_by_the_database():
    [lookup] = parse_pacman_qo(fixture("qo_owned_deleted.txt"), [DEMO])
    assert lookup.owner == DEMO_OWNER


@pytest.mark.parametrize(("name", "path"), [("qo_not_owned.txt", STRAY),
                                            ("qo_missing.txt", ABSENT),
                                            ("qo_no_dir.txt", NO_DIR)])
def test_not_owned(name, path):
    [lookup] = parse_pacman_qo(fixture(name), [path])
    assert lookup.manager == "pacman" and lookup.owner is None


def test_several_paths_answered_by_path_not_by_position():
    paths = [DEMO, STRAY, ABSENT, SPACED, LIB]
    lookups = parse_pacman_qo(fixture("qo_several.txt"), paths)
    assert [lookup.path for lookup in lookups] == paths
    owners = {lookup.path: lookup.owner for lookup in lookups}
    assert owners[DEMO] == DEMO_OWNER and owners[SPACED] == DEMO_OWNER
    # The epoch stays in the version.
    assert owners[LIB] == PackageOwner(manager="pacman", name="fa-lib", version="1:0.9.1-1")
    assert owners[STRAY] is None and owners[ABSENT] is None
    assert all(lookup.manager == "pacman" for lookup in lookups)


def test_path_without_an_answer_is_unknown():
    lookups = parse_pacman_qo(fixture("qo_owned.txt"), [DEMO, STRAY])
    assert lookups[1].manager is None and lookups[1].owner is None


def test_empty_output_is_unknown_for_every_path():
    assert all(lookup.manager is None and lookup.owner is None
               for lookup in parse_pacman_qo("", [DEMO, STRAY]))


@pytest.mark.parametrize("text", ["hello world", "Segmentation fault",
                                  f"{DEMO} is owned by",
                                  f"{DEMO} is owned by FA-Demo 1.2-3"])
def test_garbage_raises(text):
    with pytest.raises(ParseError):
        parse_pacman_qo(text, [DEMO])


def test_answer_for_a_path_not_asked_raises():
    with pytest.raises(ParseError):
        parse_pacman_qo(fixture("qo_several.txt"), [DEMO])


# --- pacman -Qkk ---------------------------------------------------------------------


def verify(name: str, targets: dict[str, str] | None = None):
    return parse_pacman_verify(fixture(name), targets or {DEMO: "fa-demo"})


def test_clean_package_is_ok():
    [result] = verify("qkk_clean.txt")
    assert result.status is IntegrityStatus.OK and result.manager == "pacman"
    assert result.detail is None


def test_appended_byte_is_modified():
    [result] = verify("qkk_modified.txt")
    assert result.status is IntegrityStatus.MODIFIED
    assert "SHA256 checksum mismatch" in (result.detail or "")


def test_removed_file_is_missing():
    [result] = verify("qkk_missing.txt")
    assert result.status is IntegrityStatus.MISSING


def test_permissions_only_is_ok_with_detail():
    [result] = verify("qkk_permissions.txt")
    assert result.status is IntegrityStatus.OK
    assert result.detail == "Permissions mismatch"


def test_other_file_of_the_package_changed_leaves_this_one_ok():
    # fa-demo's other executable is not named in the warnings.
    [result] = verify("qkk_modified.txt", {SPACED: "fa-demo"})
    assert result.status is IntegrityStatus.OK


def test_package_not_installed_is_unknown():
    [result] = verify("qkk_not_installed.txt", {DEMO: "fa-nosuch"})
    assert result.status is IntegrityStatus.UNKNOWN
    assert "was not found" in (result.detail or "")


def test_output_cut_short_is_unknown():
    text = fixture("qkk_clean.txt")
    cut = text[:text.index("@@fa-status")]
    [result] = parse_pacman_verify(cut, {DEMO: "fa-demo"})
    assert result.status is IntegrityStatus.UNKNOWN


def test_no_block_is_unknown():
    [result] = parse_pacman_verify("", {DEMO: "fa-demo"})
    assert result.status is IntegrityStatus.UNKNOWN


def test_executables_of_one_package_share_its_block():
    results = verify("qkk_modified.txt", {DEMO: "fa-demo", SPACED: "fa-demo"})
    assert [r.status for r in results] == [IntegrityStatus.MODIFIED, IntegrityStatus.OK]


@pytest.mark.parametrize("text", ["hello world", "fa-demo: 7 total files, 0 altered files"])
def test_verify_garbage_raises(text):
    with pytest.raises(ParseError):
        parse_pacman_verify(text, {DEMO: "fa-demo"})


# --- probes --------------------------------------------------------------------------

HOSTILE = "/tmp/x'; touch /tmp/pwned; '$(id) is owned by evil 1-1"


def run_with_fake_pacman(command: str, tmp_path: Path, *, status: int = 0) -> str:
    """Run a probe's command under /bin/sh with a `pacman` that prints its arguments, one
    a line, on stdout and `err` on stderr, then exits with `status`."""
    fake = tmp_path / "pacman"
    fake.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf 'arg:%s\\n' \"$a\"; done\n"
                    f"echo err >&2\nexit {status}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                          check=True, env=env).stdout


def test_owner_probe_quotes_a_hostile_path(tmp_path):
    probe = pacman.owner_probe([HOSTILE, "/usr/bin/a b"])
    assert shlex.quote(HOSTILE) in probe.command
    out = run_with_fake_pacman(probe.command, tmp_path, status=1)
    # Each path one literal argument after --; stdout first, stderr after it.
    assert out == f"arg:-Qo\narg:--\narg:{HOSTILE}\narg:/usr/bin/a b\nerr\n"


def test_owner_probe_parses_a_hostile_path_answer():
    probe = pacman.owner_probe([HOSTILE])
    [lookup] = probe.parse(f"{HOSTILE} is owned by fa-demo 1.2-3\n")
    assert lookup.path == HOSTILE and lookup.owner == DEMO_OWNER


@pytest.mark.parametrize("path", ["relative/x", "/a\nb", "/a\0b", ""])
def test_owner_probe_refuses_what_is_not_an_absolute_path(path):
    with pytest.raises(ValueError):
        pacman.owner_probe([path])


def test_integrity_probe_checks_each_package_once_and_keeps_its_status(tmp_path):
    probe = pacman.integrity_probe({DEMO: "fa-demo", SPACED: "fa-demo", LIB: "fa-lib"})
    assert probe.command.count("-Qkk") == 2
    out = run_with_fake_pacman(probe.command, tmp_path, status=1)
    assert out == ("@@fa-verify 0\narg:-Qkk\narg:--\narg:fa-demo\nerr\n@@fa-status 1\n"
                   "@@fa-verify 1\narg:-Qkk\narg:--\narg:fa-lib\nerr\n@@fa-status 1\n")


def test_integrity_probe_quotes_a_hostile_path():
    # The path is never put in the command: only the validated package name is.
    command = pacman.integrity_probe({HOSTILE: "fa-demo"}).command
    assert "pwned" not in command


@pytest.mark.parametrize("package", ["fa-demo; id", "$(id)", "-Qkk", ".hidden", "Fa-Demo",
                                     "a b", "", "fa-demo\n", "a, b", None])
def test_integrity_probe_refuses_a_bad_package_name(package):
    with pytest.raises(ValueError):
        pacman.integrity_probe({DEMO: package})
