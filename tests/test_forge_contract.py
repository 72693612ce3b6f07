"""The forge contract: every Protocol operation, run against each forge's strict API double with
the real SDK over HTTP (see tests/forge_fixtures.py for the harness each forge provides)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

# The fixtures module is also loaded as a plugin below; marking it first lets pytest rewrite its
# asserts even though this module imports it before the plugin is registered.
pytest.register_assert_rewrite("tests.forge_fixtures")

from promoter.forge.base import ForgeAuthError, ForgeError, NeedsForge, PullRequestSpec  # noqa: E402
from promoter.gates import Verdict, evaluate_commit  # noqa: E402
from tests.forge_fixtures import ForgeHarness, api_calls, git  # noqa: E402

pytest_plugins = ["tests.forge_fixtures"]


def spec_for(h: ForgeHarness, **changes: object) -> PullRequestSpec:
    fields: dict[str, object] = {
        "head": h.head,
        "base": h.base,
        "title": "promote(prod): web 1.1.0",
        "body": "Promoter-Change: web/web image.tag 1.0.0 -> 1.1.0",
        "labels": ("promotion",),
        "reviewers": (h.reviewer,),  # alice, named as this forge takes reviewers
    }
    fields.update(changes)
    return PullRequestSpec(**fields)  # type: ignore[arg-type]


def test_find_returns_none_then_the_open_pull_request(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    with api_calls(h.api) as calls:
        assert h.forge.find_pull_request(h.head, h.base) is None
    assert len(calls) <= h.budgets["find"]
    opened = h.forge.open_or_update_pull_request(spec_for(h))
    found = h.forge.find_pull_request(h.head, h.base)
    assert found is not None and found.number == opened.number
    assert found.head_sha == h.repo.sha(h.head)
    assert h.forge.find_pull_request(h.head, "main") is None  # another base is another PR


def test_open_creates_the_pull_request_as_specified(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    with api_calls(h.api) as calls:
        pr = h.forge.open_or_update_pull_request(spec_for(h, labels=("promotion", "prod")))
    assert len(calls) <= h.budgets["open_new"], calls
    assert (pr.head, pr.base, pr.state, pr.draft) == (h.head, h.base, "open", False)
    assert pr.head_sha == h.repo.sha(h.head)
    assert set(pr.labels) == {"promotion", "prod"}
    view = h.view_pull(pr.number)
    assert view.title == "promote(prod): web 1.1.0"
    assert view.body.startswith("Promoter-Change:")
    assert set(view.labels) == {"promotion", "prod"}
    assert view.reviewers == ("alice",)  # by username, however the spec named her
    assert view.state == "open" and not view.draft


def test_opening_the_same_pull_request_twice_returns_the_same_one(
    forge_harness: ForgeHarness,
) -> None:
    h = forge_harness
    first = h.forge.open_or_update_pull_request(spec_for(h))
    with api_calls(h.api) as calls:
        second = h.forge.open_or_update_pull_request(spec_for(h))
    assert second.number == first.number
    assert len(calls) <= h.budgets["open_unchanged"], calls
    assert all(method == "GET" for method, _, _ in calls), "an unchanged PR needs no write"
    assert h.view_pull(first.number).state == "open"
    assert h.forge.find_pull_request(h.head, h.base) == second


def test_open_updates_an_existing_pull_request_within_budget(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    first = h.forge.open_or_update_pull_request(spec_for(h))
    changed = spec_for(
        h, title="promote(prod): web 1.2.0", body="new body", labels=("promotion", "web")
    )
    with api_calls(h.api) as calls:
        pr = h.forge.open_or_update_pull_request(changed)
    # Reviewers still pending are not requested again: 3 calls. In minimal mode the answer
    # need not list pending reviewers (the description does not require the field), so they
    # are requested again, as the budget's worst case allows.
    expected = h.budgets["open_changed"] if h.api.minimal else min(h.budgets["open_changed"], 3)
    assert len(calls) <= expected, calls
    assert pr.number == first.number
    assert (pr.title, pr.body) == ("promote(prod): web 1.2.0", "new body")
    view = h.view_pull(pr.number)
    assert (view.title, view.body) == ("promote(prod): web 1.2.0", "new body")
    assert set(view.labels) == {"promotion", "web"}


def test_labels_are_added_never_removed(forge_harness: ForgeHarness) -> None:
    """A reviewer's "hold" label, and a label the spec no longer names, survive an update."""
    h = forge_harness
    first = h.forge.open_or_update_pull_request(spec_for(h, labels=("promotion", "prod")))
    h.label_by_hand(first.number, "hold")
    changed = spec_for(h, title="promote(prod): web 1.2.0", labels=("promotion", "web"))
    with api_calls(h.api) as calls:
        pr = h.forge.open_or_update_pull_request(changed)
    assert len(calls) <= h.budgets["open_changed"], calls
    assert set(h.view_pull(pr.number).labels) == {"promotion", "prod", "hold", "web"}
    assert set(pr.labels) == {"promotion", "prod", "hold", "web"}
    # Labels the spec names are all there already: nothing to write, nothing removed.
    with api_calls(h.api) as calls:
        h.forge.open_or_update_pull_request(changed)
    assert all(method == "GET" for method, _, _ in calls), calls
    assert set(h.view_pull(pr.number).labels) == {"promotion", "prod", "hold", "web"}


def test_draft_is_set_on_open_and_changed_on_update(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    pr = h.forge.open_or_update_pull_request(spec_for(h, draft=True))
    assert pr.draft and h.view_pull(pr.number).draft
    if h.name == "github" and h.api.minimal:
        # GitHub's description does not require `draft` in a PR answer: not knowing whether
        # the PR is a draft, the adapter makes no blind ready-for-review call (it would cost a
        # call on every run); it still asks for a draft when one is wanted.
        pr = h.forge.open_or_update_pull_request(spec_for(h, draft=True, body="again"))
        assert pr.draft and h.view_pull(pr.number).draft
        return
    pr = h.forge.open_or_update_pull_request(spec_for(h, draft=False))
    assert not pr.draft and not h.view_pull(pr.number).draft


def test_close(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    pr = h.forge.open_or_update_pull_request(spec_for(h))
    with api_calls(h.api) as calls:
        h.forge.close_pull_request(pr.number)
    assert len(calls) <= h.budgets["close"]
    assert h.view_pull(pr.number).state == "closed"
    assert h.forge.find_pull_request(h.head, h.base) is None


def test_the_last_pull_request_of_a_head_in_any_state(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    assert h.forge.last_pull_request(h.head, h.base) is None
    pr = h.forge.open_or_update_pull_request(spec_for(h))
    with api_calls(h.api) as calls:
        last = h.forge.last_pull_request(h.head, h.base)
    assert len(calls) == 1
    assert last is not None and (last.number, last.state) == (pr.number, "open")
    h.forge.close_pull_request(pr.number)
    closed = h.forge.last_pull_request(h.head, h.base)
    assert closed is not None and (closed.number, closed.state) == (pr.number, "closed")
    assert closed.head_sha == h.repo.sha(h.head)
    assert h.forge.last_pull_request(h.head, "env/other") is None


def test_merge_with_a_stale_expected_sha_refuses(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    pr = h.forge.open_or_update_pull_request(spec_for(h))
    base_before = h.repo.sha(h.base)
    h.repo.commit(h.head, {"apps/web/values.yaml": "image:\n  tag: 1.2.0\n"}, "someone pushed")
    result = h.forge.merge_pull_request(pr.number, expected_head_sha=pr.head_sha)
    assert not result.merged and result.sha is None
    assert h.repo.sha(h.base) == base_before, "the base branch must not move"
    assert h.view_pull(pr.number).state == "open"


def test_merge_makes_a_real_merge_commit_on_the_base_branch(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    pr = h.forge.open_or_update_pull_request(spec_for(h))
    base_before, head_sha = h.repo.sha(h.base), h.repo.sha(h.head)
    with api_calls(h.api) as calls:
        result = h.forge.merge_pull_request(pr.number, expected_head_sha=head_sha)
    assert len(calls) <= h.budgets["merge"]
    assert result.merged and result.sha == h.repo.sha(h.base)
    assert git(h.repo, "rev-list", "--parents", "-n", "1", result.sha).split()[1:] == [
        base_before,
        head_sha,
    ]
    assert h.repo.read_file(h.base, "apps/web/values.yaml") == "image:\n  tag: 1.1.0\n"
    assert h.repo.read_file(h.base, "README.md") == "envs, patched\n"  # the base's own change kept
    assert h.view_pull(pr.number).state == "merged"
    assert h.forge.find_pull_request(h.head, h.base) is None


def test_squash_merge_makes_one_commit(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    h.repo.commit(h.head, {"apps/web/extra.yaml": "a: 1\n"}, "a second commit to squash")
    pr = h.forge.open_or_update_pull_request(spec_for(h))
    base_before = h.repo.sha(h.base)
    result = h.forge.merge_pull_request(
        pr.number, h.repo.sha(h.head), method="squash", commit_title="promote web"
    )
    assert result.merged and result.sha is not None
    base = h.repo.sha(h.base)
    # The base only moves forward, by exactly one non-merge commit (the squash) plus whatever
    # merge commits this forge adds around it (GitHub: none, so the squash is the new tip on
    # top of base_before; GitLab: one, joining base_before and the squash).
    assert git(h.repo, "merge-base", "--is-ancestor", base_before, base) == ""
    (squash,) = git(h.repo, "rev-list", "--no-merges", f"{base_before}..{base}").split()
    merges = git(h.repo, "rev-list", "--merges", f"{base_before}..{base}").split()
    assert len(merges) == h.squash_merge_commits
    assert git(h.repo, "log", "-1", "--format=%s", squash) == "promote web"
    assert len(git(h.repo, "rev-list", "--parents", "-n", "1", squash).split()) == 2
    # Both head commits' changes, in that one commit.
    changed = git(h.repo, "diff", "--name-only", f"{squash}^", squash).split()
    assert sorted(changed) == ["apps/web/extra.yaml", "apps/web/values.yaml"]
    if not merges:
        assert base == squash
    assert result.sha == base
    assert h.repo.read_file(h.base, "apps/web/values.yaml") == "image:\n  tag: 1.1.0\n"
    assert h.repo.read_file(h.base, "apps/web/extra.yaml") == "a: 1\n"
    assert h.repo.read_file(h.base, "README.md") == "envs, patched\n"  # the base's own change kept
    assert h.view_pull(pr.number).state == "merged"


def test_merge_of_a_conflicting_pull_request_is_refused(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    pr = h.forge.open_or_update_pull_request(spec_for(h, head=h.conflicting))
    base_before = h.repo.sha(h.base)
    result = h.forge.merge_pull_request(pr.number, h.repo.sha(h.conflicting))
    assert not result.merged
    assert h.repo.sha(h.base) == base_before


def test_enable_auto_merge(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    pr = h.forge.open_or_update_pull_request(spec_for(h))
    # A check still running on the head, so auto-merge has something to wait for (GitLab merges
    # at once when nothing is running; GitHub would too, were nothing required).
    h.forge.set_status(h.repo.sha(h.head), "pending", "ci/test")
    base_before = h.repo.sha(h.base)
    with api_calls(h.api) as calls:
        armed = h.forge.enable_auto_merge(pr.number, method="squash")
    assert len(calls) <= h.budgets["auto_merge"]
    assert (armed.merged, armed.sha) == (False, None)  # armed, not merged
    view = h.view_pull(pr.number)
    assert view.auto_merge and view.state == "open"
    assert h.repo.sha(h.base) == base_before, "nothing merges while a check is pending"


def test_comment(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    pr = h.forge.open_or_update_pull_request(spec_for(h))
    with api_calls(h.api) as calls:
        h.forge.comment(pr.number, "Gate passed on env/staging@abc (argocd/web success)")
    assert len(calls) <= h.budgets["comment"]
    assert h.view_pull(pr.number).comments == (
        "Gate passed on env/staging@abc (argocd/web success)",
    )


def test_statuses_are_normalised(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    sha = h.repo.sha(h.base)
    expected = h.seed_statuses(sha)
    with api_calls(h.api) as calls:
        statuses = h.forge.statuses(sha)
    assert len(calls) <= h.budgets["statuses"]
    latest: dict[str, str] = {}
    for status in statuses:  # newest first per context
        latest.setdefault(status.context, status.state)
        assert status.updated_at.tzinfo is not None
        assert status.updated_at.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - status.updated_at) < timedelta(hours=1)
    assert latest == expected


def test_a_status_without_a_time_counts_as_just_reported(forge_harness: ForgeHarness) -> None:
    """A status of unknown age must not pass a soak at once (it was epoch 0 on GitLab)."""
    h = forge_harness
    sha = h.repo.sha(h.base)
    context = h.seed_untimed_success(sha)
    before = datetime.now(UTC)
    mine = [s for s in h.forge.statuses(sha) if s.context == context]
    after = datetime.now(UTC)
    assert [s.state for s in mine] == ["success"]
    assert before <= mine[0].updated_at <= after
    verdict = evaluate_commit(sha, [context], mine, after, soak=timedelta(minutes=5))
    assert verdict.verdict is Verdict.PENDING
    assert verdict.soak_left > timedelta(minutes=4)


def test_set_status_on_this_and_another_repository(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    sha = h.repo.sha(h.base)
    with api_calls(h.api) as calls:
        h.forge.set_status(
            sha, "success", "promoter/prod", "deployed web 1.1.0", "https://ci.example/1"
        )
    assert len(calls) <= h.budgets["set_status"]
    assert ("promoter/prod", "success") in h.statuses_on(h.repo.name, sha)
    mine = [s for s in h.forge.statuses(sha) if s.context == "promoter/prod"]
    assert [(s.state, s.description, s.target_url) for s in mine] == [
        ("success", "deployed web 1.1.0", "https://ci.example/1")
    ]
    # Reporting back to the application repository; an over-long description is shortened.
    app_sha = h.other.sha("main")
    h.forge.set_status(app_sha, "pending", "promoter/prod", "x" * 300, repository=h.other.name)
    assert h.statuses_on(h.other.name, app_sha) == [("promoter/prod", "pending")]


def test_set_status_on_an_unknown_commit_fails(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    with pytest.raises(ForgeError) as caught:
        h.forge.set_status("0" * 40, "success", "promoter/prod")
    assert not isinstance(caught.value, ForgeAuthError)
    assert "\n" not in str(caught.value)


def test_create_deployment(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    if h.budgets["deployment"] == 0:  # not on this forge: refused up front, nothing sent
        with api_calls(h.api) as calls, pytest.raises(NeedsForge):
            h.forge.create_deployment(h.base, "prod", "success", "https://ci.example/run/7")
        assert calls == [] and h.deployments() == []
        return
    with api_calls(h.api) as calls:
        ident = h.forge.create_deployment(h.base, "prod", "pending", "https://ci.example/run/7")
    assert len(calls) <= h.budgets["deployment"]
    with api_calls(h.api) as calls:
        h.forge.set_deployment_status(ident, "prod", "success", "https://ci.example/run/7")
    assert len(calls) == 1  # the deployment is addressed by id, not fetched again
    (deployment,) = h.deployments()
    assert (deployment.ref, deployment.sha) == (h.base, h.repo.sha(h.base))
    assert (deployment.environment, deployment.states) == ("prod", ("pending", "success"))


def test_rate_limit_wait_costs_nothing_and_is_small_with_quota_left(
    forge_harness: ForgeHarness,
) -> None:
    h = forge_harness
    h.forge.find_pull_request(h.head, h.base)
    with api_calls(h.api) as calls:
        wait = h.forge.rate_limit_wait()
    assert calls == []
    assert 0.0 <= wait < 5.0


def test_wrong_token_fails_at_once_with_authentication_failed(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    wrong = "ptk_wrong_3c1d9e5b7a"
    forge = h.open_forge(wrong)
    with api_calls(h.api) as calls, pytest.raises(ForgeAuthError) as caught:
        forge.find_pull_request(h.head, h.base)
    message = str(caught.value)
    assert "authentication failed for 127.0.0.1" in message
    assert caught.value.exit_code == 1
    assert len(calls) == 1, f"401 must not be retried: {calls}"
    assert wrong not in message and h.token not in message


def test_two_502s_then_success(forge_harness: ForgeHarness) -> None:
    h = forge_harness
    h.api.fail(h.routes["find"], [502, 502])
    started = time.monotonic()
    with api_calls(h.api) as calls:
        assert h.forge.find_pull_request(h.head, h.base) is None
    assert [status for _, _, status in calls] == [502, 502, 200]
    assert time.monotonic() - started < 10


def test_secondary_rate_limit_with_retry_after_waits_and_succeeds(
    forge_harness: ForgeHarness,
) -> None:
    h = forge_harness
    h.api.fail(h.routes["find"], [403 if h.name == "github" else 429], retry_after=1)
    started = time.monotonic()
    with api_calls(h.api) as calls:
        assert h.forge.find_pull_request(h.head, h.base) is None
    elapsed = time.monotonic() - started
    assert len(calls) == 2 and calls[-1][2] == 200
    assert 0.9 <= elapsed < 5, elapsed


def test_minimal_mode_sends_only_what_the_description_requires(forge_harness: ForgeHarness) -> None:
    """The doubles' minimal mode, seen from a client: a PR answer without the fields GitHub's
    description leaves optional (GitLab's lists none as required: its answers stay whole)."""
    import json
    import urllib.request

    h = forge_harness
    pr = h.forge.open_or_update_pull_request(spec_for(h))
    if h.name == "github":
        url = f"{h.api.api_url}/repos/{h.repo.name}/pulls/{pr.number}"
        headers = {"Authorization": f"token {h.token}"}
    else:
        url = f"{h.api.api_url}/projects/{h.repo.name.replace('/', '%2F')}/merge_requests/1"
        headers = {"PRIVATE-TOKEN": h.token}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as answer:
        data = json.loads(answer.read())
    optional = {"draft", "requested_reviewers", "requested_teams", "assignees"}
    if h.name == "github" and h.api.minimal:
        assert not optional & set(data) and data["number"] == pr.number
        assert set(data["user"]) >= {"login", "id"} and "email" not in data["user"]
    elif h.name == "github":
        assert optional <= set(data)
    else:
        assert data["iid"] == pr.number and "reviewers" in data
