"""Package managers behind one interface (`base.PackageManager`): which package owns an
executable, its version, and whether the file still matches the package.

Adding one (apk, say) is a module beside these with its probes and a `MANAGER`, listed
in `MANAGERS`; collection, the tools probe and `fleetaudit check` ask nothing else of it.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetaudit.packagers import dpkg, pacman, rpm
from fleetaudit.packagers.base import PackageManager

# In order of preference: a host with several tools (an rpm on Debian) uses the first.
MANAGERS: tuple[PackageManager, ...] = (dpkg.MANAGER, rpm.MANAGER, pacman.MANAGER)


def detect(tools: Iterable[str]) -> PackageManager | None:
    """The host's package manager, from the tools it has; None when it has none we know."""
    present = set(tools)
    return next((m for m in MANAGERS if m.tool in present), None)


__all__ = ["MANAGERS", "PackageManager", "detect", "dpkg", "pacman", "rpm"]
