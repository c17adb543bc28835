"""`dpkg -S` read as dpkg answers it: the reference `parse_dpkg_lists` (what collection
runs, over the file lists) is checked against, on the same real captures. A test's
tool, so it lives with the tests, not in the package.

dpkg -S takes glob patterns: a path with `*?[\\` must be sent as dpkg_pattern(path), and
an owner line for another path never answers it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fleetaudit.models import PackageLookup, PackageOwner
from fleetaudit.parsers.packages import _PKG, DPKG, _fail, usrmerge_aliases

_DPKG_OWNER = re.compile(rf"(?P<pkgs>{_PKG}(?:, {_PKG})*): (?P<path>/.*)")
_DPKG_NOT_FOUND = "dpkg-query: no path found matching pattern "
_DPKG_WARNING = "dpkg-query: warning: "
_DPKG_DIVERSION = re.compile(
    r"(?:diversion by (?P<by>[a-z0-9][a-z0-9+.-]*) |local diversion )(?P<end>from|to): (?P<path>.*)"
)
_GLOB = re.compile(r"([\\*?\[])")


def dpkg_pattern(path: str) -> str:
    """`path` as a dpkg -S argument that matches only itself (dpkg globs its arguments)."""
    return _GLOB.sub(r"\\\1", path)


def resolve_usrmerge(lookups: Sequence[PackageLookup], path: str) -> PackageLookup:
    """One answer for `path` from the lookups of all its usrmerge_aliases.

    Owned if any spelling is owned; not owned only if every spelling was answered
    "not owned"; unknown otherwise.
    """
    answers = {lookup.path: lookup for lookup in lookups}
    spelled = [answers.get(alias) for alias in usrmerge_aliases(path)]
    for lookup in spelled:
        if lookup is not None and lookup.owner is not None:
            return PackageLookup(path=path, manager=lookup.manager, owner=lookup.owner)
    managers = {lookup.manager if lookup is not None else None for lookup in spelled}
    if len(managers) == 1 and None not in managers:
        return PackageLookup(path=path, manager=managers.pop(), owner=None)
    return PackageLookup(path=path, manager=None, owner=None)


def parse_dpkg_search(text: str, paths: list[str]) -> list[PackageLookup]:
    """`dpkg -S PATH...` (stdout and stderr merged) -> one lookup per path, in order."""
    listed: dict[str, list[str]] = {}
    not_found: set[str] = set()
    diverted_from: dict[str, str | None] = {}  # from-path -> diverting package
    diverted_to: dict[str, tuple[str | None, str]] = {}  # to-path -> (diverter, from-path)
    pending_from: tuple[str | None, str] | None = None
    warned = False
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if line.startswith(_DPKG_WARNING):
            warned = True
            continue
        if line.startswith(_DPKG_NOT_FOUND):
            not_found.add(line[len(_DPKG_NOT_FOUND):])
        elif (div := _DPKG_DIVERSION.fullmatch(line)) is not None:
            if div["end"] == "from":
                pending_from = (div["by"], div["path"])
                diverted_from[div["path"]] = div["by"]
            elif pending_from is None or pending_from[0] != div["by"]:
                _fail("dpkg -S", lineno, line, "diversion 'to' without its 'from'")
            else:
                diverted_to[div["path"]] = pending_from
                pending_from = None
        elif (own := _DPKG_OWNER.fullmatch(line)) is not None:
            names = listed.setdefault(own["path"], [])
            for pkg in own["pkgs"].split(", "):
                name = pkg.partition(":")[0]
                if name not in names:
                    names.append(name)
        else:
            _fail("dpkg -S", lineno, line, "not a dpkg -S answer")

    def answer(path: str) -> PackageLookup:
        names: list[str] | None = listed.get(path)
        if path in diverted_from:
            diverter = diverted_from[path]
            if not names and warned:
                return PackageLookup(path=path, manager=None, owner=None)
            names = [diverter] if names and diverter in names else []
        elif names is None and path in diverted_to:
            diverter, source = diverted_to[path]
            if source not in listed:
                return PackageLookup(path=path, manager=None, owner=None)
            names = [name for name in listed[source] if name != diverter]
        elif names is None:
            if warned or (path not in not_found and dpkg_pattern(path) not in not_found):
                return PackageLookup(path=path, manager=None, owner=None)
            names = []
        owner = PackageOwner(manager=DPKG, name=", ".join(names)) if names else None
        return PackageLookup(path=path, manager=DPKG, owner=owner)

    return [answer(path) for path in paths]
