"""Gate evaluation, branch by branch: the decision CI makes before it promotes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from promoter.forge.base import CommitStatus, status_time
from promoter.gates import Verdict, evaluate, evaluate_commit, expand, latest_by_context

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def status(context, state, minutes_ago=10, url=None):
    return CommitStatus(context, state, NOW - timedelta(minutes=minutes_ago), target_url=url)


def verdict(required, statuses, soak=timedelta(0)):
    return evaluate_commit("a" * 40, required, statuses, NOW, soak)


def test_missing_context_is_pending():
    result = verdict(["argocd/web"], [])
    assert result.verdict is Verdict.PENDING
    assert result.contexts[0].reason == "no status reported yet"


def test_pending_state_is_pending():
    assert verdict(["argocd/web"], [status("argocd/web", "pending")]).verdict is Verdict.PENDING


def test_success_passes():
    assert verdict(["argocd/web"], [status("argocd/web", "success")]).verdict is Verdict.PASS


@pytest.mark.parametrize("state", ["failure", "error"])
def test_failure_and_error_fail(state):
    result = verdict(["argocd/web", "argocd/api"], [status("argocd/web", state)])
    assert result.verdict is Verdict.FAIL  # fails fast even though argocd/api is missing
    assert result.contexts[0].reason == f"argocd/web is {state}"


def test_mixed_contexts_pending_until_all_succeed():
    statuses = [status("argocd/web", "success"), status("argocd/api", "pending")]
    assert verdict(["argocd/web", "argocd/api"], statuses).verdict is Verdict.PENDING


def test_latest_status_per_context_wins():
    statuses = [status("argocd/web", "success", 1), status("argocd/web", "failure", 5)]
    assert verdict(["argocd/web"], statuses).verdict is Verdict.PASS
    statuses = [status("argocd/web", "success", 5), status("argocd/web", "failure", 1)]
    assert verdict(["argocd/web"], statuses).verdict is Verdict.FAIL
    assert latest_by_context(statuses)["argocd/web"].state == "failure"


def test_glob_needs_one_match_and_all_matches_successful():
    assert verdict(["argocd/*"], [status("flux/x", "success")]).verdict is Verdict.PENDING
    assert verdict(["argocd/*"], [status("argocd/web", "success")]).verdict is Verdict.PASS
    both = [status("argocd/web", "success"), status("argocd/api", "failure")]
    assert verdict(["argocd/*"], both).verdict is Verdict.FAIL
    slow = [status("argocd/web", "success"), status("argocd/api", "pending")]
    assert verdict(["argocd/*"], slow).verdict is Verdict.PENDING


def test_soak_not_yet_met_is_pending_with_time_left():
    result = verdict(
        ["argocd/web"], [status("argocd/web", "success", 3)], soak=timedelta(minutes=5)
    )
    assert result.verdict is Verdict.PENDING
    assert result.soak_left == timedelta(minutes=2)
    assert result.contexts[0].reason == "soaking, 2m00s left"


def test_soak_met_passes():
    result = verdict(
        ["argocd/web"], [status("argocd/web", "success", 6)], soak=timedelta(minutes=5)
    )
    assert result.verdict is Verdict.PASS


def test_soak_counts_from_each_status_own_update():
    statuses = [status("argocd/web", "success", 30), status("argocd/api", "success", 1)]
    result = verdict(["argocd/*"], statuses, soak=timedelta(minutes=5))
    assert result.verdict is Verdict.PENDING and result.soak_left == timedelta(minutes=4)


def test_superseded_by_a_descendant_that_passed():
    lineage = ["a" * 40, "b" * 40, "c" * 40]
    statuses = {"c" * 40: [status("argocd/web", "success")]}
    result = evaluate(["argocd/web"], lineage, statuses, NOW)
    assert result.verdict is Verdict.PASS
    assert (result.target, result.deciding) == ("a" * 40, "c" * 40)
    assert result.as_dict()["superseded"] is True


def test_descendant_that_failed_decides_fail():
    lineage = ["a" * 40, "b" * 40, "c" * 40]
    statuses = {
        "b" * 40: [status("argocd/web", "failure")],
        "c" * 40: [status("argocd/web", "success")],
    }
    result = evaluate(["argocd/web"], lineage, statuses, NOW)
    assert (result.verdict, result.deciding) == (Verdict.FAIL, "b" * 40)


def test_target_own_verdict_comes_first():
    lineage = ["a" * 40, "b" * 40]
    statuses = {
        "a" * 40: [status("argocd/web", "success")],
        "b" * 40: [status("argocd/web", "failure")],
    }
    result = evaluate(["argocd/web"], lineage, statuses, NOW)
    assert (result.verdict, result.deciding) == (Verdict.PASS, "a" * 40)
    assert result.as_dict()["superseded"] is False


def test_nothing_final_anywhere_is_pending():
    result = evaluate(["argocd/web"], ["a" * 40, "b" * 40], {}, NOW)
    assert (result.verdict, result.deciding) == (Verdict.PENDING, None)
    assert len(result.commits) == 2


def test_no_requirements_pass_at_once():
    assert evaluate([], ["a" * 40], {}, NOW).verdict is Verdict.PASS


def test_expand_app_env_and_branch_placeholders():
    assert expand(["continuous-delivery/{app}"], ["web", "api"]) == (
        "continuous-delivery/web",
        "continuous-delivery/api",
    )
    assert expand(["continuous-delivery/{app}"]) == ("continuous-delivery/*",)
    assert expand(["{branch}/health", "argocd/{env}-*"], env="dev", branch="env/dev") == (
        "env/dev/health",
        "argocd/dev-*",
    )


def test_unrelated_app_failure_does_not_block():
    statuses = [
        status("continuous-delivery/web", "success"),
        status("continuous-delivery/api", "failure"),
    ]
    required = expand(["continuous-delivery/{app}"], ["web"])
    assert verdict(required, statuses).verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        (("2026-11-28T11:50:00Z",), NOW - timedelta(minutes=10)),
        (("2026-11-28T12:50:00+01:00",), NOW - timedelta(minutes=10)),
        (("2026-11-28T11:50:00",), NOW - timedelta(minutes=10)),  # naive: UTC
        ((None, "", "2026-11-28T11:50:00.000Z"), NOW - timedelta(minutes=10)),  # first one set
        ((), NOW),  # missing: just reported
        ((None,), NOW),
        (("yesterday",), NOW),  # unparseable: just reported
        ((12345,), NOW),
        (("yesterday", "2026-11-28T11:50:00Z"), NOW),  # no falling back to an older field
    ],
)
def test_status_time_counts_missing_or_unparseable_times_as_just_reported(stamps, expected):
    assert status_time(*stamps, now=NOW) == expected


def test_a_status_of_unknown_age_does_not_pass_a_soak():
    untimed = CommitStatus("argocd/web", "success", status_time(None, now=NOW))
    assert verdict(["argocd/web"], [untimed], soak=timedelta(minutes=5)).verdict is Verdict.PENDING
