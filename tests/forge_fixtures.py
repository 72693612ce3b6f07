"""Forge fixtures for the contract suite (tests/test_forge_contract.py) and forge-specific tests.

Loaded as a plugin by the test modules that need it (`pytest_plugins = ["tests.forge_fixtures"]`).

Extension point: `FORGES` lists the forges the contract suite runs against. To add one (GitLab),
append its name and provide a fixture named `<name>_harness` (here or in a module listed in the
test modules' `pytest_plugins`) that yields an object satisfying `ForgeHarness`:

- `.forge`   the adapter under test (the real SDK inside), pointed at the double;
- `.repo`    an EnvRepo with branches `.base` and `.head`, where `.head` is `.base` plus one
             commit that merges cleanly; `.conflicting` is a branch that conflicts with `.base`;
- `.api`     the double (apidouble.ApiDouble: one control API on both forges):
             `.request_log` (list of (method, path after the prefix, status)), `.violations`
             (must be empty at teardown: the fixture asserts it), `.minimal` (the `api_mode`),
             `.fail(route, statuses, *, retry_after=None, message=None)` to script faults,
             `.before(route, action)` for races, `.latency(seconds, route)`;
- `.token`   the token the double accepts;
- `.other`   a second repository (an application repo, branch `main`) on the same double;
- `.routes`  fault-route patterns in the double's `fail()` syntax: "find" (the PR lookup);
- `.budgets` the most API requests each operation may cost (see BUDGET_KEYS); a budget of 0
             means the forge has no such operation and the adapter refuses it (NeedsForge)
             before any call;
- `.reviewer` how a spec names the user "alice" to this forge (GitHub: the login; GitLab: her
             numeric user id, as GitLab takes reviewers by id); `view_pull` reports reviewers
             by username on every forge;
- `.squash_merge_commits` merge commits a squash merge adds besides the one squash commit
             (GitHub: 0; GitLab, merge method "merge commit": 1, joining base and squash);
- methods that look at the double's state directly (`view_pull`, `statuses_on`,
  `deployments`), act as a person would in the web UI (`label_by_hand`), write forge-native
  statuses (`seed_statuses`), and open the same adapter with another token (`open_forge`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import pytest

from promoter.forge.base import Forge, ForgeInfo, State
from promoter.forge.gitlab import STATE_MAP, GitLabForge
from promoter.sandbox import TEST_TOKEN, GitHttpServer
from promoter.sandbox.envrepo import EnvRepo, EnvRepoFactory, git_env
from promoter.sandbox.github_api import GitHubApiDouble
from promoter.sandbox.github_store import now
from promoter.sandbox.gitlab_api import GitLabApiDouble
from promoter.sandbox.openapi import DESCRIPTIONS

FORGES = ["github", "gitlab"]

OPENAPI = DESCRIPTIONS
BUDGET_KEYS = (
    "find",  # find_pull_request
    "open_new",  # open_or_update, no PR yet, with labels and a reviewer
    "open_unchanged",  # open_or_update, PR exists and already matches
    "open_changed",  # open_or_update, PR exists, new title/body and one more label
    "open_unfinished",  # open_or_update, PR exists bare (its run died after creating it)
    "close",
    "merge",
    "auto_merge",
    "comment",
    "statuses",  # one page of statuses (and, on GitHub, one of check runs)
    "set_status",
    "deployment",  # 0: not on this forge (NeedsForge, no call)
)


@dataclass(frozen=True)
class PullView:
    """A PR/MR as the double holds it, forge-neutral."""

    number: int
    title: str
    body: str
    state: str  # open | closed | merged
    draft: bool
    labels: tuple[str, ...]
    reviewers: tuple[str, ...]
    comments: tuple[str, ...]
    auto_merge: bool
    head_sha: str


@dataclass(frozen=True)
class DeploymentView:
    ref: str
    sha: str
    environment: str
    states: tuple[str, ...]


class ForgeHarness(Protocol):
    name: str
    forge: Forge
    repo: EnvRepo
    api: Any
    token: str
    base: str
    head: str
    conflicting: str
    other: EnvRepo
    routes: Mapping[str, str]
    budgets: Mapping[str, int]
    reviewer: str
    squash_merge_commits: int

    def open_forge(self, token: str | None) -> Forge: ...

    def seed_statuses(self, sha: str) -> dict[str, State]:
        """Write forge-native statuses/checks on sha; return context -> expected normalised state."""
        ...

    def seed_untimed_success(self, sha: str) -> str:
        """A successful status or check on sha that carries no time (as the API description
        allows); returns its context."""
        ...

    def view_pull(self, number: int) -> PullView: ...

    def label_by_hand(self, number: int, label: str) -> None:
        """A person adds a label in the web UI (not through the adapter)."""
        ...

    def statuses_on(self, repository: str, sha: str) -> list[tuple[str, str]]:
        """(context, state) of every status stored on sha in repository, oldest first."""
        ...

    def deployments(self) -> list[DeploymentView]: ...


@contextmanager
def api_calls(api: Any) -> Iterator[list[tuple[str, str, int]]]:
    """Collect the requests the double answered inside the block."""
    start = len(api.request_log)
    calls: list[tuple[str, str, int]] = []
    yield calls
    calls.extend(api.request_log[start:])


def git(repo: EnvRepo, *args: str) -> str:
    proc = subprocess.run(
        ["git", "--git-dir", str(repo.path), *args],
        capture_output=True,
        text=True,
        env=git_env(),
        check=True,
    )
    return proc.stdout.strip()


def seed_promotion_repo(env_repo: EnvRepoFactory) -> EnvRepo:
    """main, env/prod (base), a promotion branch one commit ahead, and a conflicting branch."""
    files = {"apps/web/values.yaml": "image:\n  tag: 1.0.0\n", "README.md": "envs\n"}
    repo = env_repo({"main": files, "env/prod": files})
    for branch in ("promoter/staging-to-prod", "hotfix"):
        git(repo, "branch", branch, "env/prod")
    repo.commit(
        "promoter/staging-to-prod",
        {"apps/web/values.yaml": "image:\n  tag: 1.1.0\n"},
        "promote web 1.1.0",
    )
    repo.commit("hotfix", {"README.md": "hotfix\n"}, "hotfix readme")
    # The base moves on after the branches forked, so a merge is a real three-way merge.
    repo.commit("env/prod", {"README.md": "envs, patched\n"}, "patch readme")
    return repo


# --- GitHub ----------------------------------------------------------------------------------


class GitHubHarness:
    name = "github"
    base = "env/prod"
    head = "promoter/staging-to-prod"
    conflicting = "hotfix"
    reviewer = "alice"  # GitHub takes reviewers by login
    squash_merge_commits = 0  # the squash commit lands directly on the base
    routes: Mapping[str, str] = {"find": "GET /repos/*/pulls"}
    budgets: Mapping[str, int] = {
        "find": 1,
        "open_new": 4,  # lookup + create + labels (POST, add-only) + reviewers
        "open_unchanged": 1,  # the lookup only
        # lookup + issue PATCH (title, body) + labels POST when the spec names a new one +
        # reviewers when the content changed and one is no longer pending: 4 at worst; the
        # contract test's case (content and labels changed, reviewers pending) costs 3.
        "open_changed": 4,
        # A run that died after creating the PR left it without labels (added last, after the
        # reviewers, so no spec label on it means creation did not finish): lookup + reviewers
        # + labels. The common unchanged re-run does not pay for this check (open_unchanged).
        "open_unfinished": 3,
        "close": 1,
        "merge": 1,
        "auto_merge": 2,  # GET the PR for its node_id + the GraphQL mutation
        "comment": 1,
        "statuses": 2,  # statuses + check runs
        "set_status": 1,
        "deployment": 2,  # deployment + its status
    }

    def __init__(self, api: GitHubApiDouble, repo: EnvRepo, other: EnvRepo, token: str) -> None:
        self.api = api
        self.repo = repo
        self.token = token
        self.other = other
        self.forge = self.open_forge(token)

    def open_forge(self, token: str | None) -> Forge:
        from promoter.forge.github import GitHubForge

        info = ForgeInfo("github", self.api.api_url, self.repo.name, host="127.0.0.1")
        return GitHubForge(info, token)

    def seed_statuses(self, sha: str) -> dict[str, State]:
        api, name = self.api, self.repo.name
        old = now() - timedelta(minutes=10)
        api.add_status(name, sha, "argocd/web", "pending", updated_at=old)
        api.add_status(name, sha, "argocd/web", "success")  # the newer one wins
        api.add_status(name, sha, "argocd/api", "failure")
        api.add_status(name, sha, "argocd/worker", "error")
        api.add_check_run(name, sha, "build", status="in_progress")
        api.add_check_run(name, sha, "lint", conclusion="skipped")
        api.add_check_run(name, sha, "e2e", conclusion="timed_out")
        api.add_check_run(name, sha, "deploy", conclusion="cancelled")
        api.add_check_run(name, sha, "docs", conclusion="neutral")
        return {
            "argocd/web": "success",
            "argocd/api": "failure",
            "argocd/worker": "error",
            "build": "pending",
            "lint": "success",
            "e2e": "failure",
            "deploy": "error",
            "docs": "success",
        }

    def seed_untimed_success(self, sha: str) -> str:
        # A check run's started_at and completed_at are nullable in the description (a status's
        # updated_at is required, so the double always sends one).
        self.api.add_check_run(
            self.repo.name, sha, "deploy/untimed", started_at=None, completed_at=None
        )
        return "deploy/untimed"

    def view_pull(self, number: int) -> PullView:
        pull = next(p for p in self.api.pulls(self.repo.name) if p.number == number)
        return PullView(
            number=pull.number,
            title=pull.title,
            body=pull.body or "",
            state="merged" if pull.merged else pull.state,
            draft=pull.draft,
            labels=tuple(pull.labels),
            reviewers=tuple(pull.reviewers)
            + tuple(f"{self.repo.name.split('/')[0]}/{t}" for t in pull.teams),
            comments=tuple(c.body for c in pull.comments),
            auto_merge=pull.auto_merge is not None,
            head_sha=pull.head_sha,
        )

    def label_by_hand(self, number: int, label: str) -> None:
        self.api.add_label(self.repo.name, number, label)

    def statuses_on(self, repository: str, sha: str) -> list[tuple[str, str]]:
        repo = self.api.repository(repository)
        return [(s.context, s.state) for s in repo.statuses if s.sha == sha]

    def deployments(self) -> list[DeploymentView]:
        repo = self.api.repository(self.repo.name)
        return [
            DeploymentView(d.ref, d.sha, d.environment, tuple(s.state for s in d.statuses))
            for d in sorted(repo.deployments.values(), key=lambda d: d.id)
        ]


@pytest.fixture(scope="session")
def _github_api_session(_git_server_session: GitHttpServer) -> Iterator[GitHubApiDouble]:
    # One double per xdist worker, like the git server; each test works in its own repos.
    # Strict by default: validated against the packaged description.
    with GitHubApiDouble(_git_server_session, TEST_TOKEN) as api:
        yield api


@pytest.fixture
def github_api(
    _github_api_session: GitHubApiDouble, git_server: GitHttpServer, api_mode: str
) -> Iterator[GitHubApiDouble]:
    """The session's strict GitHub double, reset, in `api_mode` (full or minimal responses);
    fails the test on any violation."""
    api = _github_api_session
    yield from _checked(api, api_mode, "GitHub")


@pytest.fixture
def github_harness(
    github_api: GitHubApiDouble, env_repo: EnvRepoFactory, token: str
) -> GitHubHarness:
    repo = seed_promotion_repo(env_repo)
    other = env_repo({"main": {"app.txt": "app\n"}})
    return GitHubHarness(github_api, repo, other, token)


# --- GitLab ----------------------------------------------------------------------------------


class GitLabHarness:
    """The strict GitLab double (GitLab's description with its documented quirks corrected,
    promoter/sandbox/gitlab_quirks.py) driven by the real python-gitlab.

    Where GitLab differs from GitHub, faithfully: reviewers are named by user id (`reviewer`);
    a squash merge adds a merge commit too (`squash_merge_commits`); there are no GitHub-style
    deployments (budget 0: NeedsForge)."""

    name = "gitlab"
    base = "env/prod"
    head = "promoter/staging-to-prod"
    conflicting = "hotfix"
    squash_merge_commits = 1  # squash commit + the merge commit that joins it to the base
    routes: Mapping[str, str] = {"find": "GET /projects/*/merge_requests"}
    budgets: Mapping[str, int] = {
        "find": 1,
        "open_new": 2,  # lookup + create (labels and reviewer ids in it)
        "open_unchanged": 1,  # the lookup: `reviewers` in it shows nothing is missing
        "open_changed": 2,  # lookup + one PUT (title, description, labels)
        "open_unfinished": 2,  # lookup + one PUT (add_labels, reviewer_ids)
        "close": 1,
        "merge": 1,
        "auto_merge": 1,  # the merge endpoint with auto_merge
        "comment": 1,
        "statuses": 1,
        "set_status": 1,
        "deployment": 0,  # GitHub-only: refused before any call
    }

    def __init__(self, api: GitLabApiDouble, repo: EnvRepo, other: EnvRepo, token: str) -> None:
        self.api = api
        self.repo = repo
        self.token = token
        self.other = other
        # GitLab takes reviewers by user id; the adapter uses a numeric one without a lookup.
        self.reviewer = str(api.add_user("alice"))
        self.forge = self.open_forge(token)

    def open_forge(self, token: str | None) -> Forge:
        info = ForgeInfo("gitlab", self.api.api_url, self.repo.name, host="127.0.0.1")
        return GitLabForge(info, token)

    def seed_statuses(self, sha: str) -> dict[str, State]:
        api, name = self.api, self.repo.name
        api.add_status(name, sha, "argocd/web", "pending")
        api.add_status(name, sha, "argocd/web", "success")  # the same status moves on
        api.add_status(name, sha, "argocd/api", "failed")
        api.add_status(name, sha, "argocd/worker", "canceled")
        api.add_status(name, sha, "build", "running")
        api.add_status(name, sha, "lint", "skipped")  # says nothing: left out
        return {
            "argocd/web": "success",
            "argocd/api": "failure",
            "argocd/worker": "error",
            "build": "pending",
        }

    def seed_untimed_success(self, sha: str) -> str:
        # No time field of a commit status is required by GitLab's description.
        self.api.add_status(self.repo.name, sha, "deploy/untimed", "success", timed=False)
        return "deploy/untimed"

    def view_pull(self, number: int) -> PullView:
        mr = self.api.project(self.repo.name).mrs[number]
        users = self.api.state.users
        return PullView(
            number=mr.iid,
            title=mr.title,
            body=mr.description,
            state={"opened": "open"}.get(mr.state, mr.state),
            draft=mr.draft,
            labels=tuple(mr.labels),
            reviewers=tuple(users.get(i, str(i)) for i in mr.reviewer_ids),
            comments=tuple(n.body for n in mr.notes),
            auto_merge=mr.auto_merge,
            head_sha=self.repo.sha(mr.source) if mr.state == "opened" else mr.head_sha,
        )

    def label_by_hand(self, number: int, label: str) -> None:
        self.api.add_label(self.repo.name, number, label)

    def statuses_on(self, repository: str, sha: str) -> list[tuple[str, str]]:
        records = self.api.project(repository).statuses
        return [(r.name, STATE_MAP.get(r.status) or r.status) for r in records if r.sha == sha]

    def deployments(self) -> list[DeploymentView]:
        return []  # GitLab has none through this API; create_deployment raises NeedsForge


@pytest.fixture(scope="session")
def _gitlab_api_session(_git_server_session: GitHttpServer) -> Iterator[GitLabApiDouble]:
    with GitLabApiDouble(_git_server_session, TEST_TOKEN) as api:
        yield api


@pytest.fixture
def gitlab_api(
    _gitlab_api_session: GitLabApiDouble, git_server: GitHttpServer, api_mode: str
) -> Iterator[GitLabApiDouble]:
    """The session's strict GitLab double, state and faults cleared, in `api_mode`; fails on
    any violation."""
    spec = _gitlab_api_session.spec
    if api_mode == "minimal" and spec is not None and not spec.declares_required:
        # GitLab's description marks no response field required (gitlab_quirks.py), so a
        # minimal answer is the full one: the run would repeat the full-mode test exactly.
        pytest.skip("GitLab's description marks no response field required: minimal == full")
    yield from _checked(_gitlab_api_session, api_mode, "GitLab")


def _checked(api: Any, mode: str, forge: str) -> Iterator[Any]:
    api.reset()
    api.minimal = mode == "minimal"
    try:
        yield api
        problems = [f"spec violation: {v}" for v in api.violations] + api.errors
    finally:
        api.reset()
        api.minimal = False
    if problems:
        pytest.fail(f"{forge} double saw problems in this test ({mode}):\n" + "\n".join(problems))


@pytest.fixture
def gitlab_harness(
    gitlab_api: GitLabApiDouble, env_repo: EnvRepoFactory, token: str
) -> GitLabHarness:
    repo = seed_promotion_repo(env_repo)
    other = env_repo({"main": {"app.txt": "app\n"}})
    return GitLabHarness(gitlab_api, repo, other, token)


@pytest.fixture(params=FORGES)
def forge_harness(request: pytest.FixtureRequest, api_mode: str) -> ForgeHarness:
    # api_mode named here so that it is parametrised (the harness is looked up by name).
    harness: ForgeHarness = request.getfixturevalue(f"{request.param}_harness")
    return harness
