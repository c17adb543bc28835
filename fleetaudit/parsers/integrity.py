"""Package verification output (`dpkg --verify PKG`, `rpm -Vf PATH`) to IntegrityResults.

Input is `fleetaudit.probes.integrity_probe`'s output: one block per package (dpkg) or
per path (rpm), opened by `@@fa-verify KEY` and closed by `@@fa-status N`.

Both tools print a line only for a file that fails, in rpm's format:

    ??5??????   /usr/sbin/sshd        dpkg: only the digest is checked; '?' = not checked
    ?????????   /usr/sbin/sshd        dpkg, file unreadable to the reader: unknown
    missing     /usr/sbin/sshd
    ??5?????? c /etc/pam.d/sshd       'c': a conffile
    S.5....T.    /opt/x/bin/x         rpm: Size, Mode, 5 = digest, D, L, U, G, T = mtime, P

Only the executable's line matters; the digest column (3rd) says modified. Other flags
(mode, mtime) are reported as detail of an ok file. dpkg names files by the path its
package registered, which on a merged-/usr host may be /bin/x for /usr/bin/x: both
spellings are matched. dpkg --verify exits 0 even when files fail (dpkg 1.21); a block
whose package is not installed, or a path rpm says is not owned, is "unknown".
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
_DPKG_NOT_INSTALLED = re.compile(r"dpkg: package '(?P<pkg>[^']*)' is not installed")
# Known noise: rpm's dependency report (absent with --nodeps), dpkg's unreadable ~/.dpkg.cfg.
_NOISE = (re.compile(r"Unsatisfied dependencies for .*:"), re.compile(r"\t.* is needed by .*"),
          re.compile(r"dpkg: warning: failed to open configuration file .*"))


def parse_dpkg_verify(text: str, owner: Mapping[str, str]) -> list[IntegrityResult]:
    """One result per executable in `owner` (exe -> package), in its order."""
    blocks = _blocks(text, "dpkg --verify")
    results = []
    for exe, package in owner.items():
        block = blocks.get(package)
        if block is None:
            results.append(_unknown(exe, "dpkg", f"no answer for package {package}"))
            continue
        results.append(_judge(exe, "dpkg", block))
    return results


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
            if _DPKG_NOT_INSTALLED.fullmatch(line):
                return _unknown(exe, manager, line)
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
