"""Compliance policy: what a fleet's open ports must look like, and who may be excused.

Pure, apart from reading the policy file. `load_policy(path)` or `baseline_policy()` give
a `Policy`; `apply_policy(results, policy, today)` fills every host's findings and
compliance mark and the per-group and fleet summaries; `exit_code(results, fail_on)`
turns that into the process exit code. Modules: schema (the file's shape), loader (YAML
with line numbers), rules (one host against its rules), apply (findings, waivers,
summaries, exit code).
"""

from fleetaudit.policy.apply import (
    EXIT_CONFIG,
    EXIT_FINDINGS,
    EXIT_INCOMPLETE,
    EXIT_OK,
    apply_policy,
    exit_code,
    finding_id,
    judge_host,
    summarize_judged,
)
from fleetaudit.policy.loader import baseline_policy, load_policy, parse_policy
from fleetaudit.policy.rules import EffectiveRules, effective_rules
from fleetaudit.policy.schema import Policy, PolicyDocument, Rule

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FINDINGS",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EffectiveRules",
    "Policy",
    "PolicyDocument",
    "Rule",
    "apply_policy",
    "baseline_policy",
    "effective_rules",
    "exit_code",
    "finding_id",
    "judge_host",
    "load_policy",
    "parse_policy",
    "summarize_judged",
]
