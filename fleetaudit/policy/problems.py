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

    forwarding  a NAT rule decides what answers: FORWARDED

A rule in no family (forbidden_services, SERVICE_PROCESS_MISMATCH, max_open_ports,
HOST_KEY_CHANGED...) is a problem of its own. One family swallows another on the same
port: where something answers that no tool shows, or a NAT rule sends the port
elsewhere, that it answers on an odd port is part of the same problem, and "move it to
its standard port" (or "edit sshd_config") would be the wrong advice (concealment and
forwarding absorb placement).

The advice of a problem is that of its dominant kind: the first of its rules in
DOMINANCE, a fixed order of what a reader must deal with first, whatever severities a
policy gives them (a policy that makes NONSTANDARD_PORT critical does not make a hidden
listener a matter of moving a port). A verdict the policy does not count (FORWARDED by
default) is still a fact about the port: where it would absorb the problem, it takes
part in choosing the advice (`absorbing`).
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
    "forwarding": (VerdictKind.FORWARDED.value,),
}
_FAMILY_OF = {rule: family for family, rules in FAMILIES.items() for rule in rules}

ProblemKey = tuple[str, Proto | None, int | None]
# In this order: on a port both hidden and forwarded, concealment takes the placement.
ABSORBS: Mapping[str, tuple[str, ...]] = {"concealment": ("placement",),
                                          "forwarding": ("placement",)}
# What dominates a problem, first to last; a rule alone in its problem needs no rank.
DOMINANCE: tuple[str, ...] = (
    # something answers that the host's tools do not show: the host may be compromised
    VerdictKind.HIDDEN_LISTENER.value, VerdictKind.TOOLS_DISAGREE.value,
    VerdictKind.EXTERNAL_ONLY.value,
    # a NAT rule decides what answers: the fix is in the rule, not in the service
    VerdictKind.FORWARDED.value,
    # where the binary comes from, the most specific fact first
    VerdictKind.SUSPICIOUS_PATH.value, VerdictKind.MODIFIED_BINARY.value,
    VerdictKind.DELETED_BINARY.value, VerdictKind.UNOWNED_BINARY.value,
    Rule.PACKAGE_OWNED.value,
    # a service away from its port
    Rule.SSH_ONLY_ON_22.value, VerdictKind.NONSTANDARD_PORT.value,
    # reachable where it should not be
    Rule.ALLOWED_PORTS.value, Rule.ROUTABLE_LISTENERS.value, VerdictKind.FILTERED.value,
)
_RANK = {rule: index for index, rule in enumerate(DOMINANCE)}
_ABSORBING = {family: frozenset(rule for absorber, swallowed in ABSORBS.items()
                                if family in swallowed for rule in FAMILIES[absorber])
              for family in FAMILIES}
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


def dominance(rule: str) -> int:
    """Where a rule stands in DOMINANCE: lower dominates; unranked rules come last."""
    return _RANK.get(rule, len(_RANK))


def absorbing(family: str) -> frozenset[str]:
    """The rules whose problem would absorb a problem of `family` on the same port."""
    return _ABSORBING.get(family, frozenset())


def absorb(problems: MutableMapping[ProblemKey, list[T]]) -> None:
    """Move the hits of an absorbed family into the absorbing one on the same port (the
    first absorber in ABSORBS' order takes them, whatever order the hits came in)."""
    for absorber, swallowed in ABSORBS.items():
        for family, proto, port in [k for k in problems if k[0] == absorber]:
            for other in swallowed:
                problems[(family, proto, port)].extend(problems.pop((other, proto, port), []))
