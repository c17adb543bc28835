"""What /proc says about one process: its executable, command line and owner.

Each function takes one command's output. A process can vanish between `ss` and
these reads, and an unprivileged reader is refused /proc/PID/exe: both are normal,
so they give None rather than an error. Only output of a shape the command never
produces raises ParseError.
"""

from __future__ import annotations

import re

from fleetaudit.errors import ParseError

_DELETED = " (deleted)"
# The kernel's marker for an unlinked executable. A file can also be *named*
# "x (deleted)"; readlink alone cannot tell the two apart (`stat -L` nlink can).

# A rewritten process title, "name: what it is doing" (sshd, nginx, postgres,
# php-fpm...). What follows it in the argv area is padding and stale bytes.
_TITLE = re.compile(r"[\w.+-]+: ")


def parse_exe_link(text: str) -> tuple[str | None, bool]:
    """`readlink /proc/PID/exe` -> (path, deleted); (None, False) when it was refused."""
    path = text[:-1] if text.endswith("\n") else text
    if not path.strip() or path.startswith("readlink: "):
        # Empty: plain readlink is silent on EACCES/ENOENT (gone, kernel thread,
        # not ours). "readlink: ...": the same refusals from readlink -v.
        return None, False
    if not path.startswith("/"):
        raise ParseError(f"readlink output is not an absolute path: {_shown(path)}")
    if path.endswith(_DELETED):
        return path[: -len(_DELETED)], True
    return path, False


def parse_cmdline(raw: str) -> list[str]:
    """/proc/PID/cmdline (NUL-separated argv) -> argv, with a retitled process as one string.

    A process that rewrote its title (sshd: "sshd: root@notty") leaves the kernel
    handing back the whole old argv area: the title, NUL padding, then leftovers of
    the old last argument (real sshd 9.2 output ends in "\\0R\\0"). Only the title
    is meaningful there. A title written over the whole area with no NUL at all
    comes back as one space-separated string and stays one element.
    """
    body = raw.rstrip("\0")
    if not body:
        return []
    args = body.split("\0")
    if len(args) > 1 and _TITLE.match(args[0]):
        return [args[0]]
    return args


def parse_stat_owner(text: str) -> tuple[int | None, str | None]:
    """`stat -c '%u %U' /proc/PID` -> (uid, user); user None when no passwd entry names it."""
    line = text.strip()
    if not line or line.startswith("stat: "):
        return None, None  # the process exited before stat ran
    uid_text, _, user = line.partition(" ")
    if "\n" in line or not (uid_text.isascii() and uid_text.isdigit()) or len(uid_text) > 10:
        raise ParseError(f"stat output is not 'UID USER': {_shown(line)}")
    if not user or user == "UNKNOWN":  # stat prints UNKNOWN for a uid without a name
        return int(uid_text), None
    return int(uid_text), user


def parse_exe_id(text: str) -> tuple[int, int] | None:
    """`stat -L -c '%d %i' /proc/PID/exe` -> (device, inode) of the running file; None when
    refused or gone (stat's message went to stderr)."""
    line = text.strip()
    if not line:
        return None
    device, _, inode = line.partition(" ")
    if not (device.isascii() and device.isdigit() and inode.isascii() and inode.isdigit()) \
            or len(device) > 20 or len(inode) > 20:
        raise ParseError(f"stat output is not 'DEVICE INODE': {_shown(line)}")
    return int(device), int(inode)


def _shown(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
