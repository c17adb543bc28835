"""Which package owns a path: the dpkg file lists, `dpkg -S` and `rpm -qf` output to
PackageLookup.

Collection reads the dpkg file lists (`parse_dpkg_lists`: the same answers as `dpkg -S`
at a fifth of its cost); the tests hold a reader of `dpkg -S` itself, the reference the
lists' answer is checked against (tests/unit/dpkg_search.py).

Three answers per path, never guessed: owned (owner set), not owned (owner None,
manager set) and unknown (both None: the tool said nothing usable about it).

Both parsers expect the C locale (LC_ALL=C): the not-owned messages are translated.

dpkg rules, each checked against real output (tests/fixtures/dpkg/):
- `a, b:amd64: /p` -> name "a, b": every listed package, arch qualifier dropped,
  duplicates (a:amd64, a:i386) merged. PackageOwner has a single name.
- A diverted-from path holds the diverting package's own copy when it ships one
  (the others' copies were moved to the diverted-to path), so it is owned by the
  diverter alone; a local diversion, or one whose diverter does not ship the path,
  leaves a file dpkg no longer vouches for: not owned.
- A diverted-to path holds the copies of the other packages listing the from-path:
  owned by them, or not owned when only the diverter lists it. dpkg prints no owner
  line for it, so the answer needs the from-path's line in the same output;
  without it the path is unknown.
- After any `dpkg-query: warning:` (e.g. a package's .list file is missing) the
  database is incomplete: "no path found" then means unknown, not "not owned".
"""

from __future__ import annotations

import re
from typing import NoReturn

from fleetaudit.errors import ParseError
from fleetaudit.models import PackageLookup, PackageOwner

DPKG = "dpkg"
RPM = "rpm"

_PKG = r"[a-z0-9][a-z0-9+.-]*(?::[a-z0-9-]+)?"

_RPM_NOT_OWNED = re.compile(r"file (?P<path>.*) is not owned by any package")
_RPM_FILE_ERROR = re.compile(r"error: file (?P<path>.*): (?P<why>[^:]*)")
_RPM_PACKAGE = re.compile(r"(?P<name>\S+) (?P<version>\S+)")

# Usr-merge: /bin -> usr/bin etc. The kernel reports /usr/bin/X while dpkg may
# have recorded /bin/X (Debian <= 12), or the other way round on newer releases.
_MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32")


def usrmerge_aliases(path: str) -> list[str]:
    """`path` first, then its other spelling across the usr-merge symlinks, if it has one."""
    for top in _MERGED:
        if path.startswith(f"/{top}/"):
            return [path, "/usr" + path]
        if path.startswith(f"/usr/{top}/"):
            return [path, path[len("/usr"):]]
    return [path]


_LIST_LINE = re.compile(rf"(?P<pkg>{_PKG})\.list:(?P<path>/.*)")
LISTS_DIVERSIONS = "@@fa-diversions"
LISTS_NO_DATABASE = "@@fa-no-dpkg-database"


def parse_dpkg_lists(text: str, paths: list[str]) -> list[PackageLookup]:
    """`dpkg.owner_probe` output -> one lookup per path, in order, as `dpkg -S` would answer.

    The probe greps every package's file list (/var/lib/dpkg/info/PKG[:ARCH].list, what
    `dpkg -S` reads, at a fifth of its cost) for the paths and for every path named in
    /var/lib/dpkg/diversions, whose text follows a `@@fa-diversions` line: records of
    three lines, from-path, to-path, diverting package (`:` for a local diversion). The
    diversion rules are those of the module docstring. A `grep:` message (a list it could not read)
    makes "no owner" unknown rather than "not owned", as dpkg's own warning does.
    """
    listed: dict[str, list[str]] = {}
    diversion_lines: list[str] = []
    warned = in_diversions = False
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line == LISTS_NO_DATABASE:
            return [PackageLookup(path=path, manager=None, owner=None) for path in paths]
        if line == LISTS_DIVERSIONS:
            in_diversions = True
        elif in_diversions:
            diversion_lines.append(line)
        elif not line.strip():
            continue
        elif line.startswith("grep: "):
            warned = True
        elif (own := _LIST_LINE.fullmatch(line)) is not None:
            names = listed.setdefault(own["path"], [])
            name = own["pkg"].partition(":")[0]
            if name not in names:
                names.append(name)
        else:
            _fail("dpkg file lists", lineno, line, "not a 'PACKAGE.list:PATH' line")
    if not in_diversions:
        raise ParseError("dpkg file lists: no diversions marker (output cut short?)")
    diverted_from: dict[str, str | None] = {}  # from-path -> diverting package
    diverted_to: dict[str, tuple[str | None, str]] = {}  # to-path -> (diverter, from-path)
    records = [line for line in diversion_lines if line]
    for start in range(0, len(records) - len(records) % 3, 3):
        source, target, by = records[start:start + 3]
        diverter = None if by == ":" else by
        diverted_from[source] = diverter
        diverted_to[target] = (diverter, source)

    def answer(path: str) -> PackageLookup:
        names = listed.get(path, [])
        if path in diverted_from:
            # Only the diverter's own copy stays at the diverted path.
            names = [name for name in names if name == diverted_from[path]]
        elif not names and path in diverted_to:
            diverter, source = diverted_to[path]
            names = [name for name in listed.get(source, []) if name != diverter]
        if not names and warned:
            return PackageLookup(path=path, manager=None, owner=None)
        owner = PackageOwner(manager=DPKG, name=", ".join(names)) if names else None
        return PackageLookup(path=path, manager=DPKG, owner=owner)

    return [answer(path) for path in paths]


_VERSION_LINE = re.compile(r"(?P<pkg>[a-z0-9][a-z0-9+.-]*)\t(?P<version>[A-Za-z0-9.+~:-]+)")
_NO_PACKAGE = "dpkg-query: no packages found matching "


def parse_dpkg_versions(text: str) -> dict[str, str]:
    """`dpkg-query -W -f '${Package}\\t${Version}\\n' PKG... 2>&1` -> package -> version.

    A package dpkg does not know is left out (its `no packages found` line says so); a
    Multi-Arch: same package installed for two architectures answers once per
    architecture, with one version.
    """
    versions: dict[str, str] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.startswith(_NO_PACKAGE):
            continue
        match = _VERSION_LINE.fullmatch(line)
        if match is None:
            _fail("dpkg-query -W", lineno, line, "not a 'PACKAGE<TAB>VERSION' line")
        versions.setdefault(match["pkg"], match["version"])
    return versions


def parse_rpm_qf(text: str, paths: list[str]) -> list[PackageLookup]:
    """`rpm -qf --queryformat '%{NAME} %{VERSION}-%{RELEASE}\\n' PATH...` -> one lookup per path.

    Package lines do not name their path, so they are matched by position between
    the lines that do ("not owned", "error: file"). A path owned by several
    packages prints several lines: fine when it is alone between two anchors,
    ambiguous (ParseError) when it shares the stretch with other unanchored paths;
    query such paths one at a time.
    """
    results: list[PackageLookup | None] = [None] * len(paths)
    next_path = 0
    unanchored: list[tuple[int, str, str]] = []  # (lineno, name, version) since last anchor
    lines = text.split("\n")

    def settle(upto: int) -> None:
        """Give the package lines seen since the last anchor to paths[next_path:upto]."""
        waiting = range(next_path, upto)
        if len(unanchored) == len(waiting):
            for index, (_, name, version) in zip(waiting, unanchored, strict=True):
                results[index] = _rpm_owned(paths[index], [(name, version)])
        elif len(waiting) == 1 and unanchored:
            results[waiting[0]] = _rpm_owned(paths[waiting[0]], [(n, v) for _, n, v in unanchored])
        elif unanchored:
            first = unanchored[0][0]
            _fail("rpm -qf", first, lines[first - 1],
                  f"{len(unanchored)} package lines for {len(waiting)} paths: ambiguous")
        unanchored.clear()

    def anchor(path: str, lineno: int, line: str) -> int:
        for index in range(next_path, len(paths)):
            if paths[index] == path:
                settle(index)
                return index
        _fail("rpm -qf", lineno, line, "answer for a path not asked, or out of order")

    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("warning: "):
            continue
        if (hit := _RPM_NOT_OWNED.fullmatch(line)) is not None:
            index = anchor(hit["path"], lineno, line)
            results[index] = PackageLookup(path=paths[index], manager=RPM, owner=None)
            next_path = index + 1
        elif (err := _RPM_FILE_ERROR.fullmatch(line)) is not None:
            # "No such file or directory" for a path the database does not know
            # (rpm 4.18 still answers for a deleted file it owns): not an answer.
            index = anchor(err["path"], lineno, line)
            results[index] = PackageLookup(path=paths[index], manager=None, owner=None)
            next_path = index + 1
        elif (pkg := _RPM_PACKAGE.fullmatch(line)) is not None and not line.startswith("error:"):
            unanchored.append((lineno, pkg["name"], pkg["version"]))
        else:
            _fail("rpm -qf", lineno, line, "not an rpm -qf answer")
    settle(len(paths))
    return [
        result if result is not None else PackageLookup(path=path, manager=None, owner=None)
        for path, result in zip(paths, results, strict=True)
    ]


def _rpm_owned(path: str, packages: list[tuple[str, str]]) -> PackageLookup:
    names = list(dict.fromkeys(name for name, _ in packages))
    versions = {version for _, version in packages}
    owner = PackageOwner(manager=RPM, name=", ".join(names),
                         version=versions.pop() if len(versions) == 1 else None)
    return PackageLookup(path=path, manager=RPM, owner=owner)


def _fail(tool: str, lineno: int, line: str, why: str) -> NoReturn:
    shown = line if len(line) <= 120 else line[:120] + "..."
    raise ParseError(f"{tool} output line {lineno}: {why}: {shown!r}")


PACMAN = "pacman"
# Arch package names: lowercase alphanumerics and @._+-, not starting with - or .
PACMAN_PACKAGE = re.compile(r"[a-z0-9@_+][a-z0-9@._+-]*")
_PACMAN_OWNED = re.compile(rf"(?P<path>/.*) is owned by (?P<name>{PACMAN_PACKAGE.pattern}) "
                           r"(?P<version>[A-Za-z0-9._+:~-]+)")
_PACMAN_NOT_OWNED = re.compile(r"error: No package owns (?P<path>/.*)")


def parse_pacman_qo(text: str, paths: list[str]) -> list[PackageLookup]:
    """`pacman -Qo -- PATH...` (stdout, then stderr) -> one lookup per path, in order.

    `PATH is owned by NAME VERSION` (version with its epoch, `1:0.9.1-1`) or
    `error: No package owns PATH`, each naming its path, so their order does not matter.
    pacman answers from its database: a deleted file it owns is still owned, and a path
    no package lists, existing or not, is "not owned". Any other `error:`/`warning:`
    line (e.g. the database cannot be read) answers nothing: a path without its own
    line is unknown. Names have no spaces, so a path containing " is owned by " still
    parses (the last occurrence is pacman's).
    """
    asked = set(paths)
    owners: dict[str, PackageOwner] = {}
    not_owned: set[str] = set()
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if (miss := _PACMAN_NOT_OWNED.fullmatch(line)) is not None:
            if miss["path"] not in asked:
                _fail("pacman -Qo", lineno, line, "answer for a path not asked")
            not_owned.add(miss["path"])
        elif line.startswith(("error: ", "warning: ")):
            continue
        elif (own := _PACMAN_OWNED.fullmatch(line)) is not None:
            if own["path"] not in asked:
                _fail("pacman -Qo", lineno, line, "answer for a path not asked")
            # pacman stops at the first owner of a file.
            owners.setdefault(own["path"], PackageOwner(manager=PACMAN, name=own["name"],
                                                        version=own["version"]))
        else:
            _fail("pacman -Qo", lineno, line, "not a pacman -Qo answer")

    def answer(path: str) -> PackageLookup:
        if path in owners:
            return PackageLookup(path=path, manager=PACMAN, owner=owners[path])
        if path in not_owned:
            return PackageLookup(path=path, manager=PACMAN, owner=None)
        return PackageLookup(path=path, manager=None, owner=None)

    return [answer(path) for path in paths]
