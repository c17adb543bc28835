"""What every package manager offers collection, so that a new one (apk next) is one module.

A manager is found by the tool that marks it present (`command -v`, in the tools probe);
then, with the listening executables' paths, collection asks `owner_probe` which package
owns each, and `integrity_probe` whether each file still matches its package's checksum.
Most managers verify a package by its name, which only the owner probe's answer gives:
their integrity round comes after it. One that verifies by path (`rpm -Vf`) runs both in
one round (`verifies_by_path`). Where the owner lists do not say the version (dpkg's),
`version_probe` asks for it with the integrity round. What else its integrity check runs
(dpkg's `md5sum`) is `integrity_tools`: the tools probe and `fleetaudit check` take every
tool name from here, so a new manager is one module and its entry in `MANAGERS`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from fleetaudit.models import IntegrityResult, PackageLookup
from fleetaudit.probes import Probe


@dataclass(frozen=True)
class PackageManager:
    name: str  # as ProcessInfo.package_manager and IntegrityResult.manager say it
    tool: str  # present on the host: this manager's database is the one asked
    owner_probe: Callable[[Sequence[str]], Probe[list[PackageLookup]]]
    # Each executable path -> what verifies it: the owning package's name, or (by path)
    # the path itself.
    integrity_probe: Callable[[Mapping[str, str]], Probe[list[IntegrityResult]]]
    version_probe: Callable[[Sequence[str]], Probe[dict[str, str]]] | None = None
    verifies_by_path: bool = False
    # Beyond `tool`, what its integrity check runs on the host; without them, owners only.
    integrity_tools: tuple[str, ...] = ()


def quoted_paths(paths: Sequence[str]) -> str:
    """Absolute paths as shell words; anything else is refused (it came from a host)."""
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/") or "\n" in path or "\0" in path:
            raise ValueError(f"not an absolute path: {path!r}")
    return " ".join(shlex.quote(p) for p in paths)


def package_names(names: Iterable[str], pattern: re.Pattern[str], manager: str) -> list[str]:
    """Each name once, every one checked: it goes into a command line."""
    unique = list(dict.fromkeys(names))
    for name in unique:
        if not isinstance(name, str) or not pattern.fullmatch(name):
            raise ValueError(f"not a {manager} package name: {name!r}")
    return unique
