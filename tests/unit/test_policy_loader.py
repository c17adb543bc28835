"""Policy files: the shipped ones load, and every broken one names its file, line and field."""

from datetime import date
from pathlib import Path

import pytest

from fleetaudit.errors import ConfigError, PolicyError
from fleetaudit.models import Proto, Severity, VerdictKind
from fleetaudit.policy import baseline_policy, effective_rules, load_policy, parse_policy
from fleetaudit.policy.schema import VerdictSetting

EXAMPLE = Path(__file__).parents[2] / "inventories" / "policy-example.yml"


def test_baseline_is_packaged_and_valid():
    policy = baseline_policy()
    assert policy.label == "baseline (built-in)"
    rules = effective_rules(policy, "any-host", ["any-group"])
    assert {"telnet", "ftp", "rsh"} <= rules.forbidden_services
    assert rules.ssh_only_on_22 and rules.package_owned
    assert rules.allowed_ports is None  # the baseline cannot know a fleet's roles
    assert rules.verdicts[VerdictKind.EXTERNAL_ONLY] is VerdictSetting.ON
    assert rules.verdicts[VerdictKind.LOCAL_ONLY] is VerdictSetting.OFF


def test_example_policy_loads_and_means_what_its_comments_say():
    policy = load_policy(EXAMPLE)
    assert policy.label == f"example-fleet ({EXAMPLE})"
    web = effective_rules(policy, "web01.example.internal", ["web"])
    assert [(p.port, p.service) for p in web.allowed_ports] == [
        (22, "ssh"), (443, "https"), (80, None)]
    assert web.severity["max_open_ports"] is Severity.MEDIUM
    assert web.verdicts[VerdictKind.FORWARDED] is VerdictSetting.LOW
    db1 = effective_rules(policy, "db1.example.internal", ["db"])
    assert [p.port for p in db1.allowed_ports] == [2222]
    assert db1.routable_listeners == {(Proto.TCP, 2222)}
    assert not db1.ssh_only_on_22 and db1.max_open_ports == 1
    assert db1.verdicts[VerdictKind.NONSTANDARD_PORT] is VerdictSetting.OFF
    assert [w.expires for w in policy.waivers] == [date(2026, 12, 31), date(2027, 6, 30)]


def test_port_shorthands_say_the_same():
    policy = parse_policy("version: 1\ndefaults:\n  routable_listeners: [22, '22/tcp', "
                          "'53/UDP', {port: 53, proto: udp}, ' 80 / tcp ']\n", source="p.yml")
    assert effective_rules(policy, "h", []).routable_listeners == {
        (Proto.TCP, 22), (Proto.UDP, 53), (Proto.TCP, 80)}


def test_anchors_merge_keys_and_x_keys():
    text = """\
version: 1
x-common: &common {package_owned: true, max_open_ports: 3}
groups:
  web:
    <<: *common
    max_open_ports: 5
"""
    rules = effective_rules(parse_policy(text, source="p.yml"), "h", ["web"])
    assert rules.package_owned and rules.max_open_ports == 5


ERRORS = {
    "port out of range": ("""\
version: 1
groups:
  web:
    allowed_ports:
      - 22
      - 70000
""", 6, "groups.web.allowed_ports[1].port", "less than or equal to 65535"),
    "misspelt rule": ("""\
version: 1
defaults:
  package_owned: true
  allowed_port: [22]
""", 4, "defaults.allowed_port", "Extra inputs are not permitted"),
    "misspelt expectation": ("""\
version: 1
defaults: {allowed_ports: [{port: 22, servce: ssh}]}
""", 2, "defaults.allowed_ports[0].servce", "Extra inputs"),
    "bad port shorthand": ("""\
version: 1
defaults:
  routable_listeners:
    - 22
    - 53/sctp
""", 5, "defaults.routable_listeners[1]", "expected a port such as 22 or '53/udp'"),
    "boolean where a number goes": ("""\
version: 1
hosts:
  db1:
    max_open_ports: yes
""", 4, "hosts.db1.max_open_ports", "valid integer"),
    "negative maximum": ("""\
version: 1
defaults:
  max_open_ports: -1
""", 3, "defaults.max_open_ports", "greater than or equal to 0"),
    "unknown verdict kind": ("""\
version: 1
defaults:
  verdicts:
    EXTERNAL_ONLY: true
    HIDDEN_LISTENR: high
""", 5, "defaults.verdicts.HIDDEN_LISTENR", "'HIDDEN_LISTENER'"),
    "bad verdict setting": ("""\
version: 1
defaults:
  verdicts: {EXTERNAL_ONLY: maybe}
""", 3, "defaults.verdicts.EXTERNAL_ONLY", "'off', 'on', 'critical'"),
    "unknown rule in severity": ("""\
version: 1
severity:
  allowed_ports: high
  max_ports: low
""", 4, "severity.max_ports", "'max_open_ports'"),
    "waiver for an unknown rule": ("""\
version: 1
waivers:
  - rule: allowed_ports
    reason: r
    owner: o
    expires: 2027-01-01
  - rule: allowed_port
    reason: r
    owner: o
    expires: 2027-01-01
""", 7, "waivers[1].rule", "unknown rule 'allowed_port'"),
    "waiver without an owner": ("""\
version: 1
waivers:
  - rule: allowed_ports
    reason: r
    expires: 2027-01-01
""", 3, "waivers[0].owner", "Field required"),
    "waiver with an impossible date": ("""\
version: 1
waivers:
  - rule: allowed_ports
    reason: r
    owner: o
    expires: 2027-13-01
""", 6, "waivers[0].expires", "valid date"),
    "a list given as a mapping": ("""\
version: 1
waivers:
  rule: allowed_ports
  reason: r
""", 2, "waivers", "valid list"),
    "missing version": ("""\
defaults:
  package_owned: true
""", 1, "version", "Field required"),
    "future version": ("version: 2\n", 1, "version", "Input should be 1"),
    "not a mapping": ("- version: 1\n", 1, "(top level)", "valid dictionary"),
    "duplicate key": ("""\
version: 1
defaults:
  package_owned: true
  package_owned: false
""", 4, "defaults.package_owned", "duplicate key"),
}


@pytest.mark.parametrize(("text", "line", "field", "message"), ERRORS.values(),
                         ids=ERRORS.keys())
def test_policy_errors_name_file_line_and_field(tmp_path, text, line, field, message):
    path = tmp_path / "fleet-policy.yml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert f"{path}:{line}: {field}: " in str(caught.value)
    assert message in str(caught.value)


def test_every_problem_is_reported_in_line_order():
    text = """\
version: 1
defaults:
  max_open_ports: many
groups:
  web: {package_owned: perhaps}
"""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="p.yml")
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == ["p.yml:3", "p.yml:5"]


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\ndefaults:\n  allowed_ports: [22\n  package_owned: true\n",
     "p.yml:4: invalid YAML"),
    ("# nothing here\n", "p.yml: the policy is empty"),
    ("version: 1\nx-a: &a [*a]\n", "p.yml:2: nested too deeply"),
    ("version: 1\n" + "".join(
        f"x-{n}: &{n} [{', '.join([f'*{p}'] * 10 if p else ['x'] * 10)}]\n"
        for p, n in zip(["", "a", "b", "c", "d", "e"], "abcdef", strict=True)),
     "p.yml: more than 200000 values once aliases expand"),
])
def test_yaml_problems(text, expected):
    with pytest.raises(PolicyError, match="^" + expected.replace("[", r"\[")):
        parse_policy(text, source="p.yml")


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy") as caught:
        load_policy(tmp_path / "missing.yml")
    assert isinstance(caught.value, ConfigError)
    assert str(tmp_path / "missing.yml") in str(caught.value)
