"""rpm (RHEL, Fedora, SUSE): owner and version from `rpm -qf`, integrity from `rpm -Vf`,
which verifies by path (so in the owner's round)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from fleetaudit.models import IntegrityResult, PackageLookup
from fleetaudit.packagers.base import PackageManager, quoted_paths
from fleetaudit.parsers.integrity import parse_rpm_verify
from fleetaudit.parsers.packages import parse_rpm_qf
from fleetaudit.probes import Probe


def owner_probe(paths: Sequence[str]) -> Probe[list[PackageLookup]]:
    wanted = list(paths)
    fmt = shlex.quote("%{NAME} %{VERSION}-%{RELEASE}\n")
    return Probe(
        name="rpm",
        command=f"rpm -qf --queryformat {fmt} -- {quoted_paths(wanted)} 2>&1",
        parse=lambda text: parse_rpm_qf(text, wanted),
    )


def integrity_probe(targets: Mapping[str, str]) -> Probe[list[IntegrityResult]]:
    """`rpm -Vf --nodeps --noscripts PATH` per executable (`targets`' values are ignored):
    a package's %verifyscript would run as the auditing user otherwise."""
    exes = list(targets)
    quoted_paths(exes)
    command = "; ".join(f"echo '@@fa-verify {i}'; rpm -Vf --nodeps --noscripts -- "
                        f"{shlex.quote(exe)} 2>&1; "
                        f"echo \"@@fa-status $?\"" for i, exe in enumerate(exes))
    return Probe(name="integrity", command=command,
                 parse=lambda text: parse_rpm_verify(text, exes))


MANAGER = PackageManager(name="rpm", tool="rpm", owner_probe=owner_probe,
                         integrity_probe=integrity_probe, verifies_by_path=True)
