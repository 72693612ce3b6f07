"""GitHub-specific behaviour of the adapter and of the strict GitHub double: check-run states,
retries and rate limits through PyGithub's own machinery, the description's strictness,
pagination, ETags, races. Real PyGithub over HTTP throughout; nothing is patched."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

pytest.register_assert_rewrite("tests.forge_fixtures")

from promoter.forge.base import ForgeAuthError, ForgeError, ForgeInfo, PullRequestSpec  # noqa: E402
from promoter.forge.github import GitHubForge, check_run_state  # noqa: E402
from promoter.sandbox import TEST_TOKEN, GitHttpServer  # noqa: E402
from promoter.sandbox.github_api import GitHubApiDouble  # noqa: E402
from promoter.sandbox.openapi import OpenAPISpec  # noqa: E402
from tests.forge_fixtures import OPENAPI, GitHubHarness, api_calls, git  # noqa: E402

pytest_plugins = ["tests.forge_fixtures"]


@pytest.fixture
def gh(github_harness: GitHubHarness) -> GitHubHarness:
    return github_harness


def forge_with(h: GitHubHarness, token: str = TEST_TOKEN, **options: Any) -> GitHubForge:
    return GitHubForge(
        ForgeInfo("github", h.api.api_url, h.repo.name, host="127.0.0.1"), token, **options
    )


def spec(h: GitHubHarness, **changes: Any) -> PullRequestSpec:
    fields: dict[str, Any] = {"head": h.head, "base": h.base, "title": "promote", "body": "b"}
    return PullRequestSpec(**{**fields, **changes})


def raw(
    api: GitHubApiDouble,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with urllib, outside PyGithub: what any other client could send."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api.api_url + path, data=data, method=method)
    request.add_header("Authorization", f"token {TEST_TOKEN}")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# --- check runs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "conclusion", "state"),
    [
        ("queued", None, "pending"),
        ("in_progress", None, "pending"),
        ("waiting", None, "pending"),
        ("completed", "success", "success"),
        ("completed", "neutral", "success"),
        ("completed", "skipped", "success"),  # a path-filtered job must not hold a gate
        ("completed", "failure", "failure"),
        ("completed", "timed_out", "failure"),
        ("completed", "action_required", "failure"),
        ("completed", "startup_failure", "failure"),
        ("completed", "stale", "failure"),
        ("completed", "cancelled", "error"),
        ("completed", "something_new", "error"),  # unknown conclusions fail safe
        ("completed", None, "error"),
    ],
)
def test_check_run_states(status: str, conclusion: str | None, state: str) -> None:
    assert check_run_state(status, conclusion) == state


def test_check_run_context_description_and_url(gh: GitHubHarness) -> None:
    sha = gh.repo.sha(gh.base)
    gh.api.add_check_run(
        gh.repo.name,
        sha,
        "e2e",
        conclusion="failure",
        title="3 tests failed",
        details_url="https://ci.example/e2e",
    )
    (run,) = gh.forge.statuses(sha)
    assert (run.context, run.state, run.kind) == ("e2e", "failure", "check")
    assert (run.description, run.target_url) == ("3 tests failed", "https://ci.example/e2e")


# --- retries, rate limits, auth -----------------------------------------------------------------


def test_retries_are_bounded(gh: GitHubHarness) -> None:
    gh.api.fail("/repos/*/pulls", [502] * 10)
    forge = forge_with(gh, backoff_factor=0.05)
    with api_calls(gh.api) as calls, pytest.raises(ForgeError) as caught:
        forge.find_pull_request(gh.head, gh.base)
    assert [status for _, _, status in calls] == [502] * 4
    assert str(caught.value).startswith("GitHub 502 while finding the pull request")
    assert not isinstance(caught.value, ForgeAuthError)


def test_a_refused_request_prints_nothing_of_pygithubs_own(gh: GitHubHarness) -> None:
    # PyGithub attaches a stderr handler of its own at import and logs refused requests
    # ("Request GET ... failed with 403: Forbidden"); promoter reports the failure once,
    # itself. A process of its own, so the handler is bound to that process's stderr.
    gh.api.fail("/repos/*/pulls", [403], message="Resource not accessible by integration")
    code = (
        "import sys\n"
        "from promoter.forge.base import ForgeError, ForgeInfo\n"
        "from promoter.forge.github import GitHubForge\n"
        f"info = ForgeInfo('github', {gh.api.api_url!r}, {gh.repo.name!r}, '127.0.0.1')\n"
        "forge = GitHubForge(info, sys.argv[1], backoff_factor=0.01)\n"
        "try:\n"
        f"    forge.find_pull_request({gh.head!r}, {gh.base!r})\n"
        "except ForgeError as err:\n"
        "    print('refused', file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, TEST_TOKEN], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "refused\n")


def test_429_with_retry_after_is_retried_and_the_wait_is_capped(gh: GitHubHarness) -> None:
    gh.api.fail("/repos/*/pulls", [429], retry_after=30)
    forge = forge_with(gh, max_wait=1)
    started = time.monotonic()
    with api_calls(gh.api) as calls:
        assert forge.find_pull_request(gh.head, gh.base) is None
    assert [status for _, _, status in calls] == [429, 200]
    assert 0.9 <= time.monotonic() - started < 5  # Retry-After: 30 was capped at max_wait


def test_secondary_limit_without_retry_after_waits_the_configured_time(gh: GitHubHarness) -> None:
    gh.api.fail("/repos/*/pulls", [403])
    forge = forge_with(gh, max_wait=1)
    started = time.monotonic()
    assert forge.find_pull_request(gh.head, gh.base) is None
    assert 0.9 <= time.monotonic() - started < 5


def test_primary_rate_limit_beyond_the_cap_fails_fast(gh: GitHubHarness) -> None:
    # The double's X-RateLimit-Reset is an hour away: far beyond what a CI job should wait.
    gh.api.fail("/repos/*/pulls", [403], message="API rate limit exceeded for user ID 1.")
    started = time.monotonic()
    with pytest.raises(ForgeError) as caught:
        gh.forge.find_pull_request(gh.head, gh.base)
    assert time.monotonic() - started < 2
    assert not isinstance(caught.value, ForgeAuthError)
    assert "rate limit" in str(caught.value)


def test_forbidden_is_a_permission_error_without_retry(gh: GitHubHarness) -> None:
    gh.api.fail("POST /repos/*/statuses/*", [403], message="Resource not accessible by integration")
    with api_calls(gh.api) as calls, pytest.raises(ForgeAuthError) as caught:
        gh.forge.set_status(gh.repo.sha(gh.base), "success", "promoter/prod")
    assert len(calls) == 1
    assert str(caught.value).startswith("GitHub refused setting")
    assert "403 Resource not accessible by integration" in str(caught.value)
    assert "lacks a permission" in str(caught.value)


@pytest.mark.parametrize("what", ["404", "422"])
def test_client_errors_are_not_retried(gh: GitHubHarness, what: str) -> None:
    with api_calls(gh.api) as calls, pytest.raises(ForgeError) as caught:
        if what == "404":
            gh.forge.close_pull_request(999)
        else:
            gh.forge.set_status("f" * 40, "success", "promoter/prod")
    assert [status for _, _, status in calls] == [int(what)]
    assert f"GitHub {what} while" in str(caught.value)


def test_unreachable_api_is_a_one_line_forge_error(gh: GitHubHarness) -> None:
    info = ForgeInfo("github", "http://127.0.0.1:9/api/v3", gh.repo.name, host="127.0.0.1")
    forge = GitHubForge(info, TEST_TOKEN, backoff_factor=0.01, timeout=2)
    with pytest.raises(ForgeError) as caught:
        forge.find_pull_request(gh.head, gh.base)
    message = str(caught.value)
    assert message.startswith("GitHub API at 127.0.0.1 unreachable while finding")
    assert "\n" not in message and TEST_TOKEN not in message


def test_a_token_echoed_by_the_server_is_scrubbed_from_errors(gh: GitHubHarness) -> None:
    gh.api.fail("/repos/*/pulls", [422], message=f"token {TEST_TOKEN} is not allowed here")
    with pytest.raises(ForgeError) as caught:
        gh.forge.find_pull_request(gh.head, gh.base)
    assert TEST_TOKEN not in str(caught.value) and "token *** is not allowed" in str(caught.value)


def test_bearer_and_token_schemes_are_accepted_and_no_auth_is_refused(gh: GitHubHarness) -> None:
    path = f"/repos/{gh.repo.name}/pulls"
    assert raw(gh.api, "GET", path, headers={"Authorization": f"Bearer {TEST_TOKEN}"})[0] == 200
    status, _, body = raw(gh.api, "GET", path, headers={"Authorization": "token nope"})
    assert status == 401 and json.loads(body)["message"] == "Bad credentials"


# --- strictness -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"head": "a", "base": "b", "title": "t", "labels": ["x"]}, "labels"),  # unknown field
        ({"head": "a", "base": "b", "title": 123}, "title"),  # wrong type
        ({"base": "b", "title": "t"}, "head"),  # missing required
    ],
)
def test_a_request_the_description_rejects_is_answered_422_and_recorded(
    gh: GitHubHarness, body: dict[str, Any], why: str
) -> None:
    status, _, answer = raw(gh.api, "POST", f"/repos/{gh.repo.name}/pulls", body)
    assert status == 422  # as GitHub answers: Validation Failed, naming the field
    assert json.loads(answer)["message"] == "Validation Failed"
    [error] = json.loads(answer)["errors"]
    assert (error["resource"], error["field"]) == ("PullRequest", why)
    assert len(gh.api.violations) == 1 and why in gh.api.violations[0]
    gh.api.violations.clear()  # shown on purpose; any other violation fails the test
    assert gh.api.pulls(gh.repo.name) == []  # and nothing was created


def test_pygithubs_legacy_statuses_route_is_rejected(gh: GitHubHarness) -> None:
    """Why the adapter reads statuses through /commits/{ref}/statuses itself."""
    from github import Auth, Github, GithubException

    client = Github(base_url=gh.api.api_url, auth=Auth.Token(TEST_TOKEN), retry=None, lazy=True)
    commit = client.get_repo(gh.repo.name).get_commit(gh.repo.sha(gh.base))
    with pytest.raises(GithubException) as caught:
        list(commit.get_statuses())
    assert caught.value.status == 404  # not served: what GitHub answers a route it lacks
    assert gh.api.violations and "no such operation" in gh.api.violations[0]
    gh.api.violations.clear()


def test_graphql_input_outside_the_schema_is_a_violation(gh: GitHubHarness) -> None:
    query = "mutation Mutation($input: EnablePullRequestAutoMergeInput!) { enablePullRequestAutoMerge(input: $input) { clientMutationId } }"
    request = urllib.request.Request(
        gh.api.url + "/api/graphql",
        data=json.dumps(
            {"query": query, "variables": {"input": {"pullRequestId": "x", "force": True}}}
        ).encode(),
        headers={"Authorization": f"bearer {TEST_TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert "errors" in json.loads(response.read())
    assert len(gh.api.violations) == 1 and "force" in gh.api.violations[0]
    gh.api.violations.clear()


# --- pagination and conditional requests ---------------------------------------------------


def test_statuses_follow_link_pagination(gh: GitHubHarness) -> None:
    sha = gh.repo.sha(gh.base)
    for i in range(130):
        gh.api.add_status(gh.repo.name, sha, f"ctx/{i}", "success")
    with api_calls(gh.api) as calls:
        statuses = gh.forge.statuses(sha)
    assert len(statuses) == 130 and statuses[0].context == "ctx/129"  # newest first
    assert [path.rsplit("/", 1)[-1] for _, path, _ in calls] == [
        "statuses",
        "statuses",
        "check-runs",
    ]
    status, headers, _ = raw(
        gh.api, "GET", f"/repos/{gh.repo.name}/commits/{sha}/statuses?per_page=50&page=2"
    )
    assert status == 200
    assert 'page=3>; rel="next"' in headers["Link"] and 'rel="prev"' in headers["Link"]


def test_etag_makes_a_repeated_get_a_free_304(gh: GitHubHarness) -> None:
    path = f"/repos/{gh.repo.name}/pulls"
    status, headers, _ = raw(gh.api, "GET", path)
    assert status == 200 and headers["ETag"].startswith('W/"')
    remaining = gh.api.rate_remaining
    status, again, body = raw(gh.api, "GET", path, headers={"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")
    assert gh.api.request_log[-1] == ("GET", path, 304)
    assert gh.api.rate_remaining == remaining and again["X-RateLimit-Remaining"] == str(remaining)
    assert not gh.api.requests[-1].billable


def test_pygithub_conditional_update_gets_304(gh: GitHubHarness) -> None:
    from github import Auth, Github

    pr = gh.forge.open_or_update_pull_request(spec(gh))
    client = Github(
        base_url=gh.api.api_url,
        auth=Auth.Token(TEST_TOKEN),
        lazy=True,
        seconds_between_requests=None,
    )
    pull = client.get_repo(gh.repo.name).get_pull(pr.number).complete()  # 200 with an ETag
    with api_calls(gh.api) as calls:
        assert pull.update() is False  # unchanged: 304, no body
    assert calls == [("GET", f"/repos/{gh.repo.name}/pulls/{pr.number}", 304)]


# --- pull request details -------------------------------------------------------------------


def test_a_pull_request_opened_meanwhile_is_adopted(gh: GitHubHarness) -> None:
    def someone_else_opens_it() -> None:
        body = {"head": gh.head, "base": gh.base, "title": "opened by a person"}
        assert raw(gh.api, "POST", f"/repos/{gh.repo.name}/pulls", body)[0] == 201

    gh.api.before("POST /repos/*/pulls", someone_else_opens_it)
    pr = gh.forge.open_or_update_pull_request(spec(gh, title="promote"))
    (only,) = gh.api.pulls(gh.repo.name)
    assert pr.number == only.number and only.title == "promote"


def test_labels_people_added_stay_and_reviewers_are_not_pinged_again(gh: GitHubHarness) -> None:
    pr = gh.forge.open_or_update_pull_request(
        spec(gh, labels=("promotion",), reviewers=("alice", "acme/platform"))
    )
    assert gh.view_pull(pr.number).reviewers == ("alice", f"{gh.repo.name.split('/')[0]}/platform")
    raw(gh.api, "POST", f"/repos/{gh.repo.name}/issues/{pr.number}/labels", {"labels": ["hold"]})
    with api_calls(gh.api) as calls:
        gh.forge.open_or_update_pull_request(spec(gh, labels=("promotion",), reviewers=("alice",)))
    assert len(calls) == 1  # unchanged content: no write, no review request
    updated = gh.forge.open_or_update_pull_request(
        spec(gh, body="new", labels=("promotion", "web"))
    )
    assert updated.labels == ("promotion", "hold", "web")
    assert gh.view_pull(pr.number).labels == ("promotion", "hold", "web")


def test_a_label_a_person_adds_during_an_update_survives_it(gh: GitHubHarness) -> None:
    """Between the adapter's lookup and its writes, someone labels the PR "hold": labels are
    only ever added (POST), never written as a whole set (which would drop "hold")."""
    pr = gh.forge.open_or_update_pull_request(spec(gh, labels=("promotion",)))

    def someone_labels_it() -> None:
        gh.label_by_hand(pr.number, "hold")

    for route in ("PATCH /repos/*/issues/*", "POST /repos/*/issues/*/labels"):
        gh.api.before(route, someone_labels_it)
    gh.forge.open_or_update_pull_request(spec(gh, body="new", labels=("promotion", "web")))
    assert set(gh.view_pull(pr.number).labels) == {"promotion", "hold", "web"}


def test_rebase_merge_replays_the_commits(gh: GitHubHarness) -> None:
    pr = gh.forge.open_or_update_pull_request(spec(gh))
    base_before = gh.repo.sha(gh.base)
    result = gh.forge.merge_pull_request(pr.number, gh.repo.sha(gh.head), method="rebase")
    assert result.merged
    assert git(gh.repo, "rev-list", "--parents", "-n", "1", gh.base).split()[1:] == [base_before]
    assert git(gh.repo, "log", "-1", "--format=%s", gh.base) == "promote web 1.1.0"


def test_auto_merge_on_a_closed_pull_request_fails(gh: GitHubHarness) -> None:
    pr = gh.forge.open_or_update_pull_request(spec(gh))
    gh.forge.close_pull_request(pr.number)
    with pytest.raises(ForgeError, match="auto-merge"):
        gh.forge.enable_auto_merge(pr.number)


def test_deployment_without_auto_merge_false_is_refused_by_the_double(gh: GitHubHarness) -> None:
    """Why the adapter sends auto_merge=false and required_contexts=[]."""
    gh.api.add_status(gh.repo.name, gh.repo.sha(gh.base), "argocd/web", "pending")
    status, _, body = raw(gh.api, "POST", f"/repos/{gh.repo.name}/deployments", {"ref": gh.base})
    assert status == 409 and "status checks failed" in json.loads(body)["message"]
    gh.forge.create_deployment(gh.base, "prod", "pending")
    assert [d.states for d in gh.deployments()] == [("pending",)]


# --- serving like github.com (no prefix), and lazy import ---------------------------------


@pytest.fixture
def dotcom_api(git_server: GitHttpServer) -> Iterator[GitHubApiDouble]:
    spec_ = OpenAPISpec.load(OPENAPI / "github-rest-subset.json")
    with GitHubApiDouble(git_server, TEST_TOKEN, spec=spec_, prefix="") as api:
        yield api
    assert api.violations == [] and api.errors == []


def test_served_without_prefix_like_github_com(
    dotcom_api: GitHubApiDouble, gh: GitHubHarness
) -> None:
    info = ForgeInfo("github", dotcom_api.api_url, gh.repo.name, host="127.0.0.1")
    forge = GitHubForge(info, TEST_TOKEN)
    pr = forge.open_or_update_pull_request(spec(gh))
    forge.enable_auto_merge(pr.number)
    assert ("POST", "/graphql", 200) in dotcom_api.request_log


def test_help_does_not_import_pygithub() -> None:
    code = (
        "import sys\nfrom promoter.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m == 'github' or m.startswith('github.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_polling_unchanged_statuses_costs_only_304s(gh: GitHubHarness) -> None:
    sha = gh.repo.sha(gh.base)
    gh.api.add_status(gh.repo.name, sha, "argocd/web", "pending")
    first = gh.forge.statuses(sha)
    with api_calls(gh.api) as calls:
        for _ in range(5):
            assert gh.forge.statuses(sha) == first
    assert [status for _, _, status in calls] == [304] * 10
    gh.api.add_status(gh.repo.name, sha, "argocd/web", "success")
    assert {s.state for s in gh.forge.statuses(sha)} == {"pending", "success"}


def test_rate_limit_wait_spreads_the_quota_and_holds_the_reserve(gh: GitHubHarness) -> None:
    gh.api.rate_remaining = 3601
    gh.forge.find_pull_request(gh.head, gh.base)  # the response says 3600 left for ~1 h
    assert 0.5 < gh.forge.rate_limit_wait() < 1.5
    gh.api.rate_remaining = 10
    gh.forge.find_pull_request(gh.head, gh.base)
    assert gh.forge.rate_limit_wait() > 3000  # the reserve is kept until the window resets
