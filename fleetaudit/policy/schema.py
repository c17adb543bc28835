"""What a policy file may say: pydantic models, so every mistake is an error with a location.

A file has rule sets at three levels (`defaults`, `groups.<inventory group>`,
`hosts.<inventory name>`) and a list of waivers. A rule left out of a level is not set
there; `EffectiveRules` (in rules.py) resolves the levels for one host.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from fleetaudit.models import Port, Proto, Severity, VerdictKind, Waiver


class Rule(StrEnum):
    """Policy rules by name: the `rule` of their findings and what a waiver names."""

    ALLOWED_PORTS = "allowed_ports"
    FORBIDDEN_SERVICES = "forbidden_services"
    ROUTABLE_LISTENERS = "routable_listeners"
    PACKAGE_OWNED = "package_owned"
    SSH_ONLY_ON_22 = "ssh_only_on_22"
    MAX_OPEN_PORTS = "max_open_ports"


RULE_SEVERITY: dict[Rule, Severity] = {
    Rule.ALLOWED_PORTS: Severity.HIGH,
    Rule.FORBIDDEN_SERVICES: Severity.HIGH,
    Rule.ROUTABLE_LISTENERS: Severity.MEDIUM,
    Rule.PACKAGE_OWNED: Severity.HIGH,
    Rule.SSH_ONLY_ON_22: Severity.MEDIUM,
    Rule.MAX_OPEN_PORTS: Severity.LOW,
}

# Verdicts that are problems become findings (rule = the verdict kind) unless a policy turns
# them off. Not problems: CONSISTENT, LOCAL_ONLY, FILTERED (the firewall doing its job),
# FORWARDED (explained exposure: allowed_ports judges it) and UNKNOWN (a gap in the
# evidence, not a fault of the host).
PROBLEM_VERDICTS = frozenset({
    VerdictKind.NONSTANDARD_PORT, VerdictKind.SERVICE_PROCESS_MISMATCH,
    VerdictKind.EXTERNAL_ONLY, VerdictKind.HIDDEN_LISTENER, VerdictKind.UNOWNED_BINARY,
    VerdictKind.DELETED_BINARY, VerdictKind.MODIFIED_BINARY, VerdictKind.SUSPICIOUS_PATH,
    VerdictKind.TOOLS_DISAGREE,
})

RULE_NAMES = frozenset({*Rule, *VerdictKind})


class PolicyModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_PORT_TEXT = re.compile(r"\s*(\d{1,5})\s*(?:/\s*(tcp|udp)\s*)?", re.IGNORECASE)


class PortRef(PolicyModel):
    """One port: `22`, `"53/udp"` or `{port: 53, proto: udp}`; TCP unless said otherwise."""

    port: Port
    proto: Proto = Proto.TCP

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a port such as 22 or '53/udp', not a boolean")
        if isinstance(value, int):
            return {"port": value}
        if isinstance(value, str):
            match = _PORT_TEXT.fullmatch(value)
            if match is None:
                raise ValueError(f"expected a port such as 22 or '53/udp', not {value!r}")
            return {"port": int(match[1]), "proto": (match[2] or "tcp").lower()}
        return value


class AllowedPort(PortRef):
    """An allowed port, optionally with what must serve it (all given must hold)."""

    service: str | None = None     # nmap's -sV name, compared by family (http-alt is http)
    executable: str | None = None  # absolute path or fnmatch glob: /usr/lib/jvm/*/bin/java
    package: str | None = None     # the package owning the executable


class VerdictSetting(StrEnum):
    """Whether a verdict kind is a finding: `true` (its own severity), `false`, or a severity."""

    OFF = "off"
    ON = "on"
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


def _setting(value: Any) -> Any:
    # YAML 1.1 reads on/off/yes/no as booleans; both spellings mean the same here.
    if value is True:
        return VerdictSetting.ON
    if value is False:
        return VerdictSetting.OFF
    return value


class RuleSet(PolicyModel):
    """Rules at one level; None means "not set here", so an outer level's value applies."""

    allowed_ports: list[AllowedPort] | None = None
    forbidden_services: list[str] | None = None
    routable_listeners: list[PortRef] | None = None
    package_owned: StrictBool | None = None
    ssh_only_on_22: StrictBool | None = None
    max_open_ports: Annotated[StrictInt, Field(ge=0)] | None = None
    verdicts: dict[VerdictKind, Annotated[VerdictSetting, BeforeValidator(_setting)]] | None = None


class WaiverEntry(PolicyModel):
    """A waiver as written; `rule` must name a policy rule or a verdict kind."""

    rule: str
    host: str | None = None
    proto: Proto | None = None
    port: Port | None = None
    reason: Annotated[str, Field(min_length=1)]
    owner: Annotated[str, Field(min_length=1)]
    expires: date

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        if value not in RULE_NAMES:
            raise ValueError(f"unknown rule {value!r}; rules: {', '.join(sorted(RULE_NAMES))}")
        return value

    def to_waiver(self) -> Waiver:
        return Waiver(**self.model_dump())


def _regex(pattern: str) -> str:
    """A bad pattern is an error at load time, with its line, not a crash mid-audit."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {pattern!r}: {exc}") from exc
    return pattern


class PolicyDocument(PolicyModel):
    """A whole policy file."""

    version: Literal[1]
    name: str | None = None
    description: str | None = None
    severity: dict[Rule, Severity] = Field(default_factory=dict)
    defaults: RuleSet = RuleSet()
    groups: dict[str, RuleSet] = Field(default_factory=dict)
    hosts: dict[str, RuleSet] = Field(default_factory=dict)
    waivers: list[WaiverEntry] = Field(default_factory=list)
    # More argument names whose values are secrets, as regexes searched (ignoring case)
    # in option and parameter names; applied when cmdlines are collected, fleet-wide,
    # on top of the built-in names (fleetaudit.parsers.redact).
    redact_arguments: list[Annotated[str, Field(min_length=1),
                                     AfterValidator(_regex)]] = Field(default_factory=list)


class Policy(PolicyModel):
    """A validated policy and where it came from (a path, or "built-in" for the baseline)."""

    source: str
    document: PolicyDocument

    @property
    def name(self) -> str:
        return self.document.name or self.source

    @property
    def label(self) -> str:
        """What AuditResults.policy records: the name and where it came from."""
        return self.source if self.name == self.source else f"{self.name} ({self.source})"

    @property
    def waivers(self) -> list[Waiver]:
        return [entry.to_waiver() for entry in self.document.waivers]
