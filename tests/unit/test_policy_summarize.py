"""summarize_judged: a run judges each host as it finishes; its summaries must be
apply_policy's, without judging every host a second time (issue 13's 5,000 hosts)."""

from __future__ import annotations

from datetime import date

from fleetaudit.policy import apply_policy, baseline_policy, judge_host, summarize_judged
from tests.unit.test_report import sample_results

TODAY = date(2025, 1, 1)


def test_summaries_of_hosts_judged_one_by_one_are_apply_policy_s():
    policy = baseline_policy()
    results = sample_results()
    hosts = [h.model_copy(update={"groups": groups}) for h, groups in zip(
        results.hosts, (["web", "prod"], ["prod", "db", "prod"], []), strict=False)]
    results = results.model_copy(update={"hosts": [*hosts, *results.hosts[len(hosts):]]})
    whole = apply_policy(results, policy, TODAY)
    one_by_one = results.model_copy(
        update={"hosts": [judge_host(h, policy, TODAY) for h in results.hosts]})
    summarized = summarize_judged(one_by_one, policy)
    assert summarized == whole
    assert [c.group for c in summarized.compliance] == [None, "db", "prod", "web"]
    prod = next(c for c in summarized.compliance if c.group == "prod")
    assert prod.hosts_total == 2  # a host listed twice in a group counts once
