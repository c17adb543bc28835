"""pacman (Arch): owner and version from `pacman -Qo`, integrity from `pacman -Qkk` of
each owning package (its files against the package's mtree, checksums included)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleetaudit.models import IntegrityResult, PackageLookup
from fleetaudit.packagers.base import PackageManager, package_names, quoted_paths
from fleetaudit.parsers.integrity import parse_pacman_verify
from fleetaudit.parsers.packages import PACMAN_PACKAGE, parse_pacman_qo
from fleetaudit.probes import Probe


# pacman writes its answers to stdout (buffered, flushed when the buffer fills) and its
# errors to stderr: merged with 2>&1 a buffer flush could split a line. So stdout goes
# straight out (fd 3) and stderr is kept and printed after it; $s is pacman's status.
def _pacman(args: str) -> str:
    return (f"{{ s=0; e=$(pacman {args} 2>&1 >&3) || s=$?; printf '%s\\n' \"$e\"; }} 3>&1")


def owner_probe(paths: Sequence[str]) -> Probe[list[PackageLookup]]:
    """`pacman -Qo -- PATH...`: owner and version of each path, from the local database."""
    wanted = list(paths)
    return Probe(
        name="pacman",
        command=_pacman(f"-Qo -- {quoted_paths(wanted)}"),
        parse=lambda text: parse_pacman_qo(text, wanted),
    )


def integrity_probe(targets: Mapping[str, str]) -> Probe[list[IntegrityResult]]:
    """`pacman -Qkk PKG` once per package (`targets`: path -> package), however many of
    its executables run; only the executables' lines are read."""
    quoted_paths(list(targets))
    packages = package_names(targets.values(), PACMAN_PACKAGE, "pacman")
    owned = dict(targets)
    command = "; ".join(f"echo '@@fa-verify {i}'; {_pacman(f'-Qkk -- {pkg}')}; "
                        "echo \"@@fa-status $s\"" for i, pkg in enumerate(packages))
    return Probe(name="integrity", command=command,
                 parse=lambda text: parse_pacman_verify(text, owned))


MANAGER = PackageManager(name="pacman", tool="pacman", owner_probe=owner_probe,
                         integrity_probe=integrity_probe)
