"""Which rule hits are one problem: the facts several rules and verdicts flag together.

A binary that no package owns is UNOWNED_BINARY and breaks `package_owned`; ssh on
2222 is NONSTANDARD_PORT and breaks `ssh_only_on_22`. Counting each as a finding
makes 21 findings of 11 problems, and a reader fixes the same thing twice. So hits on
one port (or on the host) whose rules fall in one family become one finding, listing
every rule; the others stay findings of their own. The families are the facts:

    binary      where the listening executable comes from: package_owned,
                UNOWNED_BINARY, MODIFIED_BINARY, DELETED_BINARY, SUSPICIOUS_PATH
    placement   a service away from its port: ssh_only_on_22, NONSTANDARD_PORT
    concealment something answers that the host's tools do not show: HIDDEN_LISTENER,
                EXTERNAL_ONLY, TOOLS_DISAGREE
    exposure    reachable where it should not be: allowed_ports, routable_listeners,
                FILTERED

A rule in no family (forbidden_services, SERVICE_PROCESS_MISMATCH, FORWARDED,
max_open_ports, HOST_KEY_CHANGED...) is a problem of its own. One family swallows
another on the same port: where something answers that no tool shows, that it answers
on an odd port is part of the same problem, and "move it to its standard port" would be
the wrong advice (concealment absorbs placement).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import TypeVar

from fleetaudit.models import Proto, VerdictKind
from fleetaudit.policy.schema import Rule

FAMILIES: Mapping[str, tuple[str, ...]] = {
    "binary": (Rule.PACKAGE_OWNED.value, VerdictKind.UNOWNED_BINARY.value,
               VerdictKind.MODIFIED_BINARY.value, VerdictKind.DELETED_BINARY.value,
               VerdictKind.SUSPICIOUS_PATH.value),
    "placement": (Rule.SSH_ONLY_ON_22.value, VerdictKind.NONSTANDARD_PORT.value),
    "concealment": (VerdictKind.HIDDEN_LISTENER.value, VerdictKind.EXTERNAL_ONLY.value,
                    VerdictKind.TOOLS_DISAGREE.value),
    "exposure": (Rule.ALLOWED_PORTS.value, Rule.ROUTABLE_LISTENERS.value,
                 VerdictKind.FILTERED.value),
}
_FAMILY_OF = {rule: family for family, rules in FAMILIES.items() for rule in rules}

ProblemKey = tuple[str, Proto | None, int | None]
ABSORBS: Mapping[str, tuple[str, ...]] = {"concealment": ("placement",)}
T = TypeVar("T")


def family_of(rule: str) -> str:
    """The fact a rule flags: its family, or the rule itself when it stands alone."""
    return _FAMILY_OF.get(rule, rule)


def problem_key(rule: str, proto: Proto | None, port: int | None) -> ProblemKey:
    return family_of(rule), proto, port


def ordered_rules(rules: Iterable[str], order: Sequence[str]) -> list[str]:
    """The rules of one problem, each once, in the policy's fixed rule order (so the
    first one, which names the finding and its id, does not depend on hit order)."""
    rank = {rule: index for index, rule in enumerate(order)}
    return sorted(dict.fromkeys(rules), key=lambda r: (rank.get(r, len(rank)), r))


def absorb(problems: MutableMapping[ProblemKey, list[T]]) -> None:
    """Move the hits of an absorbed family into the absorbing one on the same port."""
    for (family, proto, port), hits in list(problems.items()):
        for swallowed in ABSORBS.get(family, ()):
            hits.extend(problems.pop((swallowed, proto, port), []))
