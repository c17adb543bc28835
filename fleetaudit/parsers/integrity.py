"""Package verification output to IntegrityResults: dpkg by the executable's md5 against
its package's md5sums (what `dpkg --verify` and debsums compare), rpm by `rpm -Vf PATH`.

Input is a `fleetaudit.packagers` manager's `integrity_probe` output: one block per
executable, opened by `@@fa-verify KEY` and closed by `@@fa-status N`. dpkg hosts are not asked
`dpkg --verify`: it hashes every file of the package and loads dpkg's database first,
about 14 ms for openssh-server against 5 for the one file's md5 and its md5sums line.
The md5sums name files by the path the package registered (relative), which on a
merged-/usr host may be bin/x for /usr/bin/x: collection asks by that spelling.

rpm prints a line only for a file that fails:

    S.5....T.    /opt/x/bin/x         Size, Mode, 5 = digest, D, L, U, G, T = mtime, P
    missing     /opt/x/bin/x
    .M.......  c /opt/x/etc/x.conf   'c': a config file

Only the executable's line matters; the digest column (3rd) says modified. Other flags
(mode, mtime) are reported as detail of an ok file. A path rpm says is not owned is
"unknown".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NoReturn

from fleetaudit.errors import ParseError
from fleetaudit.models import IntegrityResult, IntegrityStatus
from fleetaudit.parsers.packages import usrmerge_aliases

DPKG_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*(?::[a-z0-9-]+)?")
_OPEN = "@@fa-verify "
_CLOSE = re.compile(r"@@fa-status (\d{1,3})")
_FLAGS_LINE = re.compile(r"(?P<flags>[SM5DLUGTP.?]{8,9}) +(?:(?P<attr>[cdglr]) +)?(?P<path>/.*)")
_MISSING_LINE = re.compile(r"missing +(?:(?P<attr>[cdglr]) +)?(?P<path>/.*)")
_RPM_NOT_OWNED = re.compile(r"file (?P<path>/.*) is not owned by any package")
# Known noise: rpm's dependency report (absent with --nodeps).
_NOISE = (re.compile(r"Unsatisfied dependencies for .*:"), re.compile(r"\t.* is needed by .*"))
_MD5_LINE = re.compile(r"\\?(?P<digest>[0-9a-f]{32})  (?P<path>.+)")
_MD5_ERROR = re.compile(r"md5sum: (?P<path>/.*): (?P<why>[^:]+)")


def parse_dpkg_md5(text: str, targets: Mapping[str, str]) -> list[IntegrityResult]:
    """`dpkg.integrity_probe(...)` output -> one result per executable, in order.

    Block i answers the i-th executable (as the package's file list spells it): `md5sum`
    of the file on disk, then its package's md5sums lines that may name it (`DIGEST
    relative/path`), exactly what `dpkg --verify` and debsums compare for one file.
    """
    blocks = _blocks(text, "md5sum")
    results = []
    for i, (exe, package) in enumerate(targets.items()):
        block = blocks.get(str(i))
        if block is None:
            results.append(_unknown(exe, "dpkg", "no answer from md5sum"))
            continue
        actual = expected = None
        errors = []
        registered = {alias.lstrip("/") for alias in usrmerge_aliases(exe)}
        for line in block.lines:
            error = _MD5_ERROR.fullmatch(line)
            if error is not None and error["path"] == exe:
                if error["why"] == "No such file or directory":
                    results.append(IntegrityResult(path=exe, status=IntegrityStatus.MISSING,
                                                   manager="dpkg", detail=line))
                    break
                errors.append(line)
                continue
            digest = _MD5_LINE.fullmatch(line)
            if digest is not None and digest["path"] == exe:
                actual = digest["digest"]
            elif digest is not None and digest["path"] in registered:
                expected = digest["digest"]
            elif digest is None:
                errors.append(line)
        else:
            results.append(_md5_verdict(exe, package, actual, expected, errors, block))
    return results


def _md5_verdict(exe: str, package: str, actual: str | None, expected: str | None,
                 errors: list[str], block: _Block) -> IntegrityResult:
    if expected is None:
        why = "; ".join(errors) if errors else f"no checksum for it in {package}'s md5sums"
        return _unknown(exe, "dpkg", why[:300])
    if actual is None:
        why = "; ".join(errors) if errors else "md5sum printed nothing"
        return _unknown(exe, "dpkg", why[:300] if block.status is not None
                        else "verification cut short")
    if actual != expected:
        return IntegrityResult(path=exe, status=IntegrityStatus.MODIFIED, manager="dpkg",
                               detail=f"md5 {actual}, {package}'s md5sums say {expected}")
    return IntegrityResult(path=exe, status=IntegrityStatus.OK, manager="dpkg")


def parse_rpm_verify(text: str, exes: list[str]) -> list[IntegrityResult]:
    """One result per executable, block i answering exes[i]."""
    blocks = _blocks(text, "rpm -V")
    return [
        _judge(exe, "rpm", blocks[str(i)]) if str(i) in blocks
        else _unknown(exe, "rpm", "no answer from rpm -V")
        for i, exe in enumerate(exes)
    ]


class _Block:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.status: int | None = None


def _blocks(text: str, tool: str) -> dict[str, _Block]:
    blocks: dict[str, _Block] = {}
    current: _Block | None = None
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.startswith(_OPEN):
            key = line[len(_OPEN):]
            if key in blocks:
                _fail(tool, lineno, line, "repeated block")
            current = blocks[key] = _Block()
            continue
        close = _CLOSE.fullmatch(line)
        if close is not None:
            if current is None:
                _fail(tool, lineno, line, "status outside a block")
            current.status = int(close[1])
            current = None
            continue
        if not line.strip():
            continue
        if current is None:
            _fail(tool, lineno, line, "output outside any '@@fa-verify' block")
        current.lines.append(line)
    return blocks


def _judge(exe: str, manager: str, block: _Block) -> IntegrityResult:
    names = set(usrmerge_aliases(exe))
    other: list[str] = []
    for line in block.lines:
        if any(p.fullmatch(line) for p in _NOISE):
            continue
        flags = _FLAGS_LINE.fullmatch(line)
        missing = _MISSING_LINE.fullmatch(line)
        path = flags["path"] if flags else missing["path"] if missing else None
        if path is None:
            not_owned = _RPM_NOT_OWNED.fullmatch(line)
            if not_owned is not None and not_owned["path"] in names:
                return _unknown(exe, manager, "not owned by any package")
            other.append(line)
            continue
        if path not in names:
            continue  # another file of the same package
        if missing is not None:
            return IntegrityResult(path=exe, status=IntegrityStatus.MISSING, manager=manager,
                                   detail=line)
        assert flags is not None
        digest = flags["flags"][2]
        if digest == "5":
            status = IntegrityStatus.MODIFIED
        elif digest == "?":
            status = IntegrityStatus.UNKNOWN  # not readable, or no digest on record
        else:
            status = IntegrityStatus.OK
        return IntegrityResult(path=exe, status=status, manager=manager, detail=line)
    if block.status is None:
        return _unknown(exe, manager, "verification cut short")
    if other:
        return _unknown(exe, manager, "; ".join(other)[:300])
    return IntegrityResult(path=exe, status=IntegrityStatus.OK, manager=manager)


def _unknown(exe: str, manager: str, why: str) -> IntegrityResult:
    return IntegrityResult(path=exe, status=IntegrityStatus.UNKNOWN, manager=manager, detail=why)


def _fail(tool: str, lineno: int, line: str, why: str) -> NoReturn:
    shown = line if len(line) <= 120 else line[:120] + "..."
    raise ParseError(f"{tool} output line {lineno}: {why}: {shown!r}")


_PACMAN_WARNING = re.compile(r"warning: (?P<pkg>[a-z0-9@._+-]+): (?P<path>/.*) \((?P<why>[^()]*)\)")
_PACMAN_SUMMARY = re.compile(r"(?P<pkg>[a-z0-9@._+-]+): \d+ total files?, \d+ altered files?")
# What says the file's content is not the package's; other reasons (Modification time,
# Permissions, UID, GID mismatch) are detail of an ok file, as rpm's other flags are.
_PACMAN_CHANGED = ("MD5 checksum mismatch", "SHA256 checksum mismatch", "Size mismatch",
                   "File type mismatch", "Symlink path mismatch")
_PACMAN_METADATA = ("Modification time mismatch", "Permissions mismatch", "UID mismatch",
                    "GID mismatch")


def parse_pacman_verify(text: str, targets: Mapping[str, str]) -> list[IntegrityResult]:
    """`pacman.integrity_probe(...)` output -> one result per executable, in order.

    `targets` maps each executable to its package; block i answers the i-th distinct
    package (`pacman -Qkk -- PKG`: every file of it against the package's mtree, sizes
    and checksums included). pacman prints `warning: PKG: PATH (REASON)` for each
    failed check of a file, and `PKG: N total files, M altered files` when it checked
    the package. For the executable: `No such file or directory` -> missing; a
    checksum, size, type or symlink mismatch -> modified; only metadata mismatches ->
    ok with them as detail; any other reason (e.g. Permission denied, checksum not
    computable) -> unknown. No line for it: ok once the summary line is there; unknown
    otherwise (package not installed, no mtree file, output cut short).
    """
    blocks = _blocks(text, "pacman -Qkk")
    packages = list(dict.fromkeys(targets.values()))
    results = []
    for exe, package in targets.items():
        block = blocks.get(str(packages.index(package)))
        if block is None:
            results.append(_unknown(exe, "pacman", "no answer from pacman -Qkk"))
            continue
        results.append(_pacman_judge(exe, package, block))
    return results


def _pacman_judge(exe: str, package: str, block: _Block) -> IntegrityResult:
    names = set(usrmerge_aliases(exe))
    reasons: list[str] = []
    checked = False
    other: list[str] = []
    for line in block.lines:
        warning = _PACMAN_WARNING.fullmatch(line)
        if warning is not None and warning["pkg"] == package:
            if warning["path"] in names:
                reasons.append(warning["why"])
            continue  # another file of the package
        summary = _PACMAN_SUMMARY.fullmatch(line)
        if summary is not None and summary["pkg"] == package:
            checked = True
        elif not line.startswith("backup file: "):
            other.append(line)
    detail = "; ".join(reasons)
    if "No such file or directory" in reasons:
        return IntegrityResult(path=exe, status=IntegrityStatus.MISSING, manager="pacman",
                               detail=detail)
    if any(why in _PACMAN_CHANGED for why in reasons):
        return IntegrityResult(path=exe, status=IntegrityStatus.MODIFIED, manager="pacman",
                               detail=detail)
    if any(why not in _PACMAN_METADATA for why in reasons):
        return _unknown(exe, "pacman", detail[:300])
    if not checked or block.status is None:
        why = "; ".join(other) if other else "verification cut short"
        return _unknown(exe, "pacman", why[:300])
    return IntegrityResult(path=exe, status=IntegrityStatus.OK, manager="pacman",
                           detail=detail or None)
