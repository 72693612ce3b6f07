"""Crash healing (issue 11 item 5): a run that dies anywhere between pushing its promoter branch
and finishing its pull request is completed by the next run: one PR, its labels and reviewers,
no duplicate and no second push.

Each window is hit two ways, both through real parts only:
- an injected fault: the API double answers the step's request with 502 more times than the
  adapter retries, so the run fails there (exit 1, one clear line, no traceback), and the step
  did not happen;
- a real crash: `promoter` runs as its own process (in its own session, with its git children)
  and a `before` hook on the step's request SIGKILLs the whole group; the double then handles
  the request the dead process sent, so the step did happen but nobody saw the answer (the
  worst case for duplicates).
Each test first asserts the state the dead run left (so a fault that hit nothing fails), then
runs again cleanly and asserts the healed state, the second run's API requests and the git
server's request log (the branch pushed once in all)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("tests.forge_fixtures")

from promoter.forge import github, gitlab  # noqa: E402
from promoter.sandbox import TEST_TOKEN, GitHttpServer  # noqa: E402
from promoter.sandbox.envrepo import EnvRepo, EnvRepoFactory, list_branches  # noqa: E402
from tests.forge_fixtures import ForgeHarness, api_calls  # noqa: E402
from tests.helpers import Run, assert_clean, run_cli  # noqa: E402

pytest_plugins = ["tests.forge_fixtures"]

HEAD = "promoter/staging-to-prod"
CONFIG = """\
environments:
  staging: {branch: env/staging}
  prod:
    branch: env/prod
    from: staging
    delivery: pull-request
    pull_request: {labels: [promotion], reviewers: ["REVIEWER"]}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
"""
VALUES = 'image:\n  tag: "1.0.0"\n'

# How many times each adapter sends one request before giving up on 5xx.
TRIES = {"github": github.MAX_TRIES, "gitlab": gitlab.MAX_RETRIES + 1}


@dataclass(frozen=True)
class PullState:
    """A PR/MR as the double holds it, forge-neutral."""

    number: int
    state: str  # open | closed | merged
    head: str
    head_sha: str
    labels: tuple[str, ...]
    reviewers: tuple[str, ...]


@dataclass
class Bed:
    forge: str
    repo: EnvRepo
    api: Any
    git_server: GitHttpServer
    tmp: Path

    def args(self, *args: str) -> list[str]:
        return [
            "--repo",
            self.repo.url,
            "--token",
            TEST_TOKEN,
            "--forge",
            self.forge,
            "--api-url",
            self.api.api_url,
            "--output",
            "json",
            *args,
        ]

    def promote(self, capsys: pytest.CaptureFixture[str], *extra: str) -> Run:
        return run_cli(capsys, *self.args("promote", "--to", "prod", "--no-gate", *extra))

    def pulls(self) -> list[PullState]:
        if self.forge == "github":
            return [
                PullState(
                    p.number,
                    "merged" if p.merged else p.state,
                    p.head,
                    p.head_sha,
                    tuple(p.labels),
                    tuple(p.reviewers),
                )
                for p in self.api.pulls(self.repo.name)
            ]
        users = self.api.state.users
        mrs = sorted(self.api.project(self.repo.name).mrs.values(), key=lambda mr: mr.iid)
        return [
            PullState(
                mr.iid,
                {"opened": "open"}.get(mr.state, mr.state),
                mr.source,
                self.repo.sha(mr.source) if mr.state == "opened" else mr.head_sha,
                tuple(mr.labels),
                tuple(users[i] for i in mr.reviewer_ids),
            )
            for mr in mrs
        ]

    def pushes(self) -> int:
        """Pushes that reached the git server for this repo (receive-pack POSTs)."""
        assert self.git_server.wait_idle()
        return sum(
            1
            for r in self.git_server.requests
            if r.method == "POST" and r.path == f"/{self.repo.name}.git/git-receive-pack"
        )

    def head_sha(self) -> str | None:
        """The promoter branch's tip, None when there is no such branch."""
        return list_branches(self.repo.path).get(HEAD)

    def on(self, route: str, action: Callable[[], object]) -> None:
        """Run `action` just before the next request matching `route` is handled."""
        self.api.before(route, action)

    def fail(self, route: str) -> None:
        """Answer the next requests of `route` with 502, once more than the adapter tries."""
        self.api.fail(route, [502] * TRIES[self.forge])

    def spawn(self, *extra: str, at_api: bool = True) -> Crash:
        return Crash(
            [
                sys.executable,
                "-m",
                "promoter",
                *self.args("promote", "--to", "prod", "--no-gate", *extra),
            ],
            {**os.environ, "TMPDIR": str(self.tmp)},
            self.api.request_log if at_api else None,
        )


@dataclass
class Crash:
    """`promoter` as its own process group, SIGKILLed (with its git children) on cue."""

    argv: list[str]
    env: dict[str, str]
    log: list[tuple[str, str, int]] | None  # the API double's request log, if killed there
    killed: threading.Event = field(default_factory=threading.Event)
    logged: int | None = None  # the log's length when the run was killed
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the group and return once the process is dead (the double then handles the
        request it sent, whose answer nobody reads)."""
        assert self.proc is not None
        if self.log is not None:  # the request being killed is logged once it is handled
            self.logged = len(self.log)
        self.killed.set()  # first: the test thread may see the process dead at once
        os.killpg(self.proc.pid, signal.SIGKILL)
        stat = Path(f"/proc/{self.proc.pid}/stat")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if stat.read_text().rpartition(")")[2].split()[0] == "Z":
                    return
            except (FileNotFoundError, ProcessLookupError):
                return  # already reaped
            time.sleep(0.005)
        raise AssertionError("the killed run did not die")

    def finish(self) -> Run:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=120)
        run = Run(self.proc.returncode, out, err)
        assert_clean(run)
        # The process is gone, but the double may still be handling its last request.
        deadline = time.monotonic() + 10
        while self.log is not None and self.logged is not None and len(self.log) <= self.logged:
            assert time.monotonic() < deadline, "the killed run's last request was never handled"
            time.sleep(0.01)
        return run


def _seed(env_repo: EnvRepoFactory, reviewer: str) -> EnvRepo:
    """staging one web version ahead of prod; prod takes PRs labelled `promotion`, reviewed by
    `reviewer` (alice, as this forge names her)."""
    files = {"promoter.yaml": CONFIG.replace("REVIEWER", reviewer), "apps/web/values.yaml": VALUES}
    repo = env_repo({"main": files, "env/staging": files, "env/prod": files})
    repo.commit("env/staging", {"apps/web/values.yaml": VALUES.replace("1.0.0", "1.1.0")}, "web")
    return repo


@pytest.fixture
def github_bed(env_repo, github_api, git_server, tmp_path) -> Bed:
    return Bed("github", _seed(env_repo, "alice"), github_api, git_server, tmp_path)


@pytest.fixture
def gitlab_bed(env_repo, gitlab_api, git_server, tmp_path) -> Bed:
    # GitLab takes reviewers by user id; a numeric one needs no user lookup.
    alice = str(gitlab_api.add_user("alice"))
    return Bed("gitlab", _seed(env_repo, alice), gitlab_api, git_server, tmp_path)


def assert_healed(bed: Bed, run: Run, state: str = "open") -> PullState:
    """One PR in all, from the promoter branch, labelled and with alice asked to review; the
    branch pushed once in all (and deleted once when merged); the run reports that PR."""
    assert run.code == 0, run.err
    pulls = bed.pulls()
    assert len(pulls) == 1, pulls  # no duplicate, open or not
    (pull,) = pulls
    assert (pull.head, pull.state) == (HEAD, state)
    assert pull.labels == ("promotion",)
    assert pull.reviewers == ("alice",)
    assert bed.pushes() == (2 if state == "merged" else 1)
    data = json.loads(run.out)
    assert data["pull_request"]["number"] == pull.number
    if state == "open":
        assert pull.head_sha == bed.head_sha() == data["commit"]
    return pull


def assert_one_clear_line(run: Run, *needles: str) -> None:
    """exit 1, one error line naming what failed (run_cli already checked: no traceback, no
    token), nothing on stdout."""
    assert run.code == 1, run.err
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1, run.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert run.out == ""


# --- injected faults: the step fails, the run exits 1, the next run completes it -----------------

# (forge, the route that fails, what the failed run left: None (no PR) or (labels, reviewers))
FAULTS = [
    pytest.param("github", "GET /repos/*/pulls", None, id="github-lookup"),
    pytest.param("github", "POST /repos/*/pulls", None, id="github-create"),
    pytest.param(
        "github", "POST /repos/*/pulls/*/requested_reviewers", ((), ()), id="github-reviewers"
    ),
    pytest.param("github", "POST /repos/*/issues/*/labels", ((), ("alice",)), id="github-labels"),
    pytest.param("gitlab", "GET /projects/*/merge_requests", None, id="gitlab-lookup"),
    pytest.param("gitlab", "POST /projects/*/merge_requests", None, id="gitlab-create"),
]


@pytest.mark.parametrize(("forge", "route", "left"), FAULTS)
def test_a_run_that_failed_at_a_step_is_completed_by_the_next(
    forge: str,
    route: str,
    left: tuple[tuple[str, ...], tuple[str, ...]] | None,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bed: Bed = request.getfixturevalue(f"{forge}_bed")
    bed.fail(route)
    failed = bed.promote(capsys)
    assert_one_clear_line(failed, "502")
    pushed = bed.head_sha()
    assert pushed is not None and bed.pushes() == 1  # the branch went out before the PR step
    if left is None:
        assert bed.pulls() == []
    else:
        (pull,) = bed.pulls()
        assert (pull.labels, pull.reviewers) == left

    with api_calls(bed.api) as calls:
        healed = bed.promote(capsys)
    pull = assert_healed(bed, healed)
    assert pull.head_sha == pushed  # the same commit: nothing pushed again
    writes = [(method, path.rsplit("/", 1)[1]) for method, path, _ in calls if method != "GET"]
    if forge == "github":
        expected = {
            None: [("POST", "pulls"), ("POST", "requested_reviewers"), ("POST", "labels")],
            ((), ()): [("POST", "requested_reviewers"), ("POST", "labels")],
            ((), ("alice",)): [("POST", "labels")],  # alice is still asked: not again
        }[left]
        assert writes == expected, calls
    else:
        assert writes == [("POST", "merge_requests")], calls  # labels and reviewers in it


@pytest.mark.parametrize(
    ("forge", "route", "extra"),
    [
        pytest.param("github", "PUT /repos/*/pulls/*/merge", "--merge", id="github-merge"),
        pytest.param("github", "POST /graphql", "--auto-merge", id="github-auto-merge"),
        pytest.param(
            "gitlab", "PUT /projects/*/merge_requests/*/merge", "--merge", id="gitlab-merge"
        ),
    ],
)
def test_a_run_that_failed_to_merge_is_merged_by_the_next(
    forge: str, route: str, extra: str, request: pytest.FixtureRequest, capsys
) -> None:
    bed: Bed = request.getfixturevalue(f"{forge}_bed")
    prod = bed.repo.sha("env/prod")
    bed.fail(route)
    failed = bed.promote(capsys, extra)
    assert_one_clear_line(failed, "502")
    (pull,) = bed.pulls()
    assert (pull.state, pull.labels, pull.reviewers) == ("open", ("promotion",), ("alice",))
    assert bed.repo.sha("env/prod") == prod

    healed = bed.promote(capsys, extra)
    if extra == "--merge":
        assert_healed(bed, healed, state="merged")
        assert bed.repo.sha("env/prod") != prod
        assert bed.head_sha() is None  # its work done, the promoter branch is deleted
    else:
        assert_healed(bed, healed)
        assert json.loads(healed.out)["pull_request"]["auto_merge"] is True
        assert bed.api.pulls(bed.repo.name)[0].auto_merge is not None


@pytest.mark.parametrize(
    ("forge", "route"),
    [
        pytest.param("github", "POST /repos/*/pulls", id="github-create"),
        pytest.param("github", "POST /repos/*/pulls/*/requested_reviewers", id="github-reviewers"),
        pytest.param("gitlab", "POST /projects/*/merge_requests", id="gitlab-create"),
    ],
)
def test_a_pull_request_delivered_update_that_failed_is_completed_by_the_next(
    forge: str, route: str, request: pytest.FixtureRequest, capsys
) -> None:
    """`update` into a PR-delivered environment goes through the same steps (its promoter branch
    accumulates): the same update run again completes the PR, pushing nothing."""
    bed: Bed = request.getfixturevalue(f"{forge}_bed")
    update = bed.args("update", "prod", "--image", "web=1.1.0")
    bed.fail(route)
    assert_one_clear_line(run_cli(capsys, *update), "502", "promoter/update-prod")
    pushed = bed.repo.sha("promoter/update-prod")
    healed = run_cli(capsys, *update)
    assert healed.code == 0, healed.err
    (pull,) = bed.pulls()
    assert (pull.head, pull.state, pull.head_sha) == ("promoter/update-prod", "open", pushed)
    assert (pull.labels, pull.reviewers) == (("promotion",), ("alice",))
    assert bed.pushes() == 1


# --- real crashes: SIGKILL just as a step's request reaches the server ---------------------------

NO_PR = None
BARE = ((), ())
ASKED = ((), ("alice",))
DONE = (("promotion",), ("alice",))
CREATE = {"github": ["pulls", "requested_reviewers", "labels"], "gitlab": ["merge_requests"]}

# (forge, the route whose request the killed run had just sent (None: its push, as it began),
#  what it left (None: no PR), what the next run still writes)
KILLS = [
    pytest.param("github", None, NO_PR, CREATE["github"], id="github-push"),
    pytest.param("github", "GET /repos/*/pulls", NO_PR, CREATE["github"], id="github-lookup"),
    pytest.param(
        "github", "POST /repos/*/pulls", BARE, ["requested_reviewers", "labels"], id="github-create"
    ),
    pytest.param(
        "github",
        "POST /repos/*/pulls/*/requested_reviewers",
        ASKED,
        ["labels"],
        id="github-reviewers",
    ),
    pytest.param("github", "POST /repos/*/issues/*/labels", DONE, [], id="github-labels"),
    pytest.param("gitlab", None, NO_PR, CREATE["gitlab"], id="gitlab-push"),
    pytest.param(
        "gitlab", "GET /projects/*/merge_requests", NO_PR, CREATE["gitlab"], id="gitlab-lookup"
    ),
    pytest.param("gitlab", "POST /projects/*/merge_requests", DONE, [], id="gitlab-create"),
]


@pytest.mark.parametrize(("forge", "route", "left", "writes"), KILLS)
def test_a_run_killed_at_a_step_is_completed_by_the_next(
    forge: str,
    route: str | None,
    left: tuple[tuple[str, ...], tuple[str, ...]] | None,
    writes: list[str],
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bed: Bed = request.getfixturevalue(f"{forge}_bed")
    crash = bed.spawn(at_api=route is not None)
    if route is None:
        bed.git_server.before_push(bed.repo.name, crash.kill)
    else:
        bed.on(route, crash.kill)
    try:
        crash.start()
        dead = crash.finish()
    finally:
        bed.git_server.before_push(bed.repo.name, None)
    assert crash.killed.is_set(), dead.err
    assert (dead.code, dead.out) == (-signal.SIGKILL, ""), dead.err
    assert bed.pushes() == (0 if route is None else 1)
    assert [(p.labels, p.reviewers) for p in bed.pulls()] == ([] if left is None else [left])

    with api_calls(bed.api) as calls:
        healed = bed.promote(capsys)
    assert_healed(bed, healed)
    assert [path.rsplit("/", 1)[1] for method, path, _ in calls if method != "GET"] == writes


@pytest.mark.parametrize(
    ("forge", "route"),
    [
        pytest.param("github", "PUT /repos/*/pulls/*/merge", id="github"),
        pytest.param("gitlab", "PUT /projects/*/merge_requests/*/merge", id="gitlab"),
    ],
)
def test_a_run_killed_as_it_merged_leaves_the_next_nothing_but_the_branch_to_delete(
    forge: str, route: str, request: pytest.FixtureRequest, capsys
) -> None:
    """Killed as its merge request left: the forge merged, the promoter branch was not deleted.
    The next run finds nothing to promote, opens nothing, and deletes the branch."""
    bed: Bed = request.getfixturevalue(f"{forge}_bed")
    prod = bed.repo.sha("env/prod")
    crash = bed.spawn("--merge")
    bed.on(route, crash.kill)
    crash.start()
    assert crash.finish().code == -signal.SIGKILL
    ((merged, labels, reviewers),) = [(p.state, p.labels, p.reviewers) for p in bed.pulls()]
    assert (merged, labels, reviewers) == ("merged", ("promotion",), ("alice",))
    assert bed.head_sha() is not None  # left behind
    merge = bed.repo.sha("env/prod")
    assert merge != prod

    again = bed.promote(capsys, "--merge")
    assert again.code == 0, again.err
    data = json.loads(again.out)
    assert data["changed"] is False and data["pull_request"] is None
    assert [p.state for p in bed.pulls()] == ["merged"]  # nothing new opened
    assert bed.head_sha() is None
    assert bed.repo.sha("env/prod") == merge
    assert bed.pushes() == 2  # the promoter branch, then its deletion


# --- the adapters on their own --------------------------------------------------------------------


def test_a_pull_request_left_bare_gets_its_labels_and_reviewers(
    forge_harness: ForgeHarness,
) -> None:
    """A PR opened without labels or reviewers (its run died after creating it) is completed by
    an unchanged open_or_update, within its budget."""
    from promoter.forge.base import PullRequestSpec

    h = forge_harness
    spec = PullRequestSpec(
        h.head,
        h.base,
        "promote(prod): web 1.1.0",
        "body",
        labels=("promotion",),
        reviewers=(h.reviewer,),
    )
    bare = h.forge.open_or_update_pull_request(
        PullRequestSpec(spec.head, spec.base, spec.title, spec.body)
    )
    assert (h.view_pull(bare.number).labels, h.view_pull(bare.number).reviewers) == ((), ())
    with api_calls(h.api) as calls:
        pr = h.forge.open_or_update_pull_request(spec)
    assert len(calls) <= h.budgets["open_unfinished"], calls
    assert pr.number == bare.number and pr.labels == ("promotion",)
    view = h.view_pull(pr.number)
    assert (view.labels, view.reviewers) == (("promotion",), ("alice",))


def _reviewed_by(api: Any, repository: str, number: int, login: str) -> None:
    """`login` submits a review on the GitHub double: GitHub then lists them no longer as
    requested (and a new request would notify them again)."""
    with api.store.lock:
        api.repository(repository).pulls[number].reviewers.remove(login)


def test_a_reviewer_who_reviewed_is_not_asked_again(github_bed: Bed, capsys) -> None:
    bed = github_bed
    pull = assert_healed(bed, bed.promote(capsys))
    _reviewed_by(bed.api, bed.repo.name, pull.number, "alice")
    with api_calls(bed.api) as calls:
        again = bed.promote(capsys)
    assert again.code == 0, again.err
    assert calls == [("GET", f"/repos/{bed.repo.name}/pulls", 200)]  # the lookup only
    assert bed.pulls()[0].reviewers == ()


def test_a_label_new_to_the_spec_does_not_ask_a_reviewer_again(github_harness) -> None:
    """Only a PR with none of the spec's labels reads as unfinished: one that lacks just a label
    the configuration gained since is labelled, and alice, who reviewed, is left alone."""
    from promoter.forge.base import PullRequestSpec

    h = github_harness
    spec = PullRequestSpec(h.head, h.base, "t", "b", labels=("promotion",), reviewers=("alice",))
    pr = h.forge.open_or_update_pull_request(spec)
    _reviewed_by(h.api, h.repo.name, pr.number, "alice")
    with api_calls(h.api) as calls:
        h.forge.open_or_update_pull_request(
            PullRequestSpec(h.head, h.base, "t", "b", ("promotion", "prod"), ("alice",))
        )
    assert [(method, path.rsplit("/", 1)[1]) for method, path, _ in calls] == [
        ("GET", "pulls"),
        ("POST", "labels"),
    ]
    view = h.view_pull(pr.number)
    assert (set(view.labels), view.reviewers) == ({"promotion", "prod"}, ())
