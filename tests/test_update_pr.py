"""`promoter update ENV` into an environment with `delivery: pull-request`, end to end: the real
CLI, real git over smart HTTP, and the strict GitHub and GitLab doubles.

Updates accumulate in one promoter-owned branch per environment (`promoter/update-<env>`),
rebuilt on the environment branch's current tip, and one PR/MR into it; the environment branch
moves only when that PR merges."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter.forge import open_forge
from promoter.forge.base import Forge, ForgeInfo
from promoter.helmlock import check_lock, lock_digest
from promoter.sandbox import TEST_TOKEN, GitHttpServer
from promoter.sandbox.envrepo import (
    EnvRepo,
    commit_message,
    git_env,
    list_branches,
    rev_list_parents,
    show_diff,
)
from tests.helpers import Run, run_cli

pytest_plugins = ["tests.forge_fixtures"]

HEAD = "promoter/update-prod"

CONFIG = """\
environments:
  dev: {branch: env/dev}
  prod:
    branch: env/prod
    from: dev
    delivery: pull-request
    pull_request: {labels: [release]}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
    chart: {file: apps/web/Chart.yaml, version: "dependencies[name=web].version"}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag, digest: image.digest}
  worker:
    images:
      worker: {file: apps/worker/values.yaml, tag: image.tag}
"""

WEB = """\
# web front end
image:
  repository: ghcr.io/acme/web
  tag: "1.4.1"   # set by promoter
replicas: 2
"""
API = """\
image:
  tag: 2.0.0
  digest: ""
"""
WORKER = "image:\n  tag: 3.0.0\n"
CHART = """\
apiVersion: v2
name: web
version: 1.0.0
dependencies:
- name: web
  version: 0.3.0
  repository: oci://ghcr.io/acme/charts
"""


def _lock(chart: str) -> str:
    deps = YAML(typ="safe").load(chart)["dependencies"]
    locked = [{"name": "web", "repository": "oci://ghcr.io/acme/charts", "version": "0.3.0"}]
    return (
        "dependencies:\n- name: web\n  repository: oci://ghcr.io/acme/charts\n  version: 0.3.0\n"
        f'digest: {lock_digest(deps, locked)}\ngenerated: "2025-06-01T00:00:00Z"\n'
    )


FILES = {
    "promoter.yaml": CONFIG,
    "README.md": "environments\n",
    "apps/web/values.yaml": WEB,
    "apps/web/Chart.yaml": CHART,
    "apps/web/Chart.lock": _lock(CHART),
    "apps/api/values.yaml": API,
    "apps/worker/values.yaml": WORKER,
}


def web(tag: str) -> dict[str, str]:
    return {"apps/web/values.yaml": WEB.replace('"1.4.1"', f'"{tag}"')}


def api(tag: str) -> dict[str, str]:
    return {"apps/api/values.yaml": API.replace("2.0.0", tag)}


def row(app: str, pin: str, file: str, key: str, old: str, new: str) -> str:
    """A line of the pull request body's table (promotion.changes_table)."""
    return f"| {app} | {pin} | `{file}` | `{key}` | `{old}` | `{new}` |"


WEB_ROW = row("web", "web/web", "apps/web/values.yaml", "image.tag", "1.4.1", "{}")
API_ROW = row("api", "api/api", "apps/api/values.yaml", "image.tag", "2.0.0", "{}")


@dataclass(frozen=True)
class View:
    """A PR/MR as the double holds it, forge-neutral."""

    number: int
    title: str  # GitLab's `Draft: ` prefix removed (`draft` says it)
    body: str
    state: str  # open | closed | merged
    head: str
    base: str
    draft: bool
    labels: tuple[str, ...]
    comments: tuple[str, ...]
    auto_merge: bool


@dataclass
class Bed:
    repo: EnvRepo
    api: Any  # the GitHub or GitLab double
    forge: str
    server: GitHttpServer
    via: str = "git"  # --commit-via
    _marks: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)

    def args(self, *args: str) -> tuple[str, ...]:
        return ("--repo", self.repo.url, "--token", TEST_TOKEN, "--forge", self.forge,
                "--api-url", self.api.api_url, "--commit-via", self.via, *args)  # fmt: skip

    def update(self, capsys: pytest.CaptureFixture[str], *args: str) -> Run:
        return run_cli(capsys, *self.args("update", "prod", *args))

    def json(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Run, dict[str, Any]]:
        run = run_cli(capsys, *self.args("--output", "json", "update", "prod", *args))
        return run, json.loads(run.out) if run.out.strip() else {}

    def pulls(self) -> list[View]:
        if self.forge == "github":
            return [
                View(
                    p.number,
                    p.title,
                    p.body or "",
                    "merged" if p.merged else p.state,
                    p.head,
                    p.base,
                    p.draft,
                    tuple(p.labels),
                    tuple(c.body for c in p.comments),
                    p.auto_merge is not None,
                )
                for p in self.api.pulls(self.repo.name)
            ]
        mrs = sorted(self.api.project(self.repo.name).mrs.values(), key=lambda mr: mr.iid)
        return [
            View(
                mr.iid,
                mr.title.removeprefix("Draft: "),
                mr.description,
                {"opened": "open"}.get(mr.state, mr.state),
                mr.source,
                mr.target,
                mr.draft,
                tuple(mr.labels),
                tuple(n.body for n in mr.notes),
                mr.auto_merge,
            )
            for mr in mrs
        ]

    def pull(self) -> View:
        [pull] = self.pulls()
        return pull

    def branches(self) -> dict[str, str]:
        return list_branches(self.repo.path)

    def mark(self) -> int:
        """Where the git server's request log stands now (and, on the api path, the branches)."""
        self.server.wait_idle()
        self._marks[len(self.server.requests)] = self.branches()
        return len(self.server.requests)

    def pushes(self, since: int) -> list[str]:
        """receive-pack requests (pushes, their ref advertisements included) since `since`;
        on the api path (which must never push), also each branch the API wrote since."""
        self.server.wait_idle()
        pushed = [
            r.path
            for r in self.server.requests[since:]
            if "git-receive-pack" in r.path and f"/{self.repo.name}.git/" in r.path
        ]
        if self.via == "git":
            return pushed
        assert pushed == [], "the api path pushed over git"
        before, now = self._marks[since], self.branches()
        return sorted(b for b in before.keys() | now.keys() if before.get(b) != now.get(b))

    def forge_as_a_person(self) -> Forge:
        """The same API, driven as a person in the web UI would (not through promoter's run)."""
        info = ForgeInfo(self.forge, self.api.api_url, self.repo.name, host="127.0.0.1")  # type: ignore[arg-type]
        return open_forge(info, TEST_TOKEN)


def _bed(request: pytest.FixtureRequest, env_repo: Any, git_server: GitHttpServer, forge: str,
         files: dict[str, str] = FILES, via: str = "git") -> Bed:  # fmt: skip
    api = request.getfixturevalue(f"{forge}_api")
    repo = env_repo({"main": files, "env/dev": files, "env/prod": files})
    return Bed(repo, api, forge, git_server, via)


@pytest.fixture(params=["github", "gitlab", "github-api", "gitlab-api"])
def bed(request: pytest.FixtureRequest, env_repo: Any, git_server: GitHttpServer) -> Bed:
    """Both forges, and GitHub's api path (`--commit-via api`: GraphQL createCommitOnBranch)."""
    forge, _, via = str(request.param).partition("-")
    return _bed(request, env_repo, git_server, forge, via=via or "git")


@pytest.fixture
def gh(request: pytest.FixtureRequest, env_repo: Any, git_server: GitHttpServer) -> Bed:
    """GitHub only."""
    return _bed(request, env_repo, git_server, "github")


def values(bed: Bed, ref: str) -> dict[str, str]:
    """The three apps' tags on ref, read from the files as they are."""
    found = {}
    for app in ("web", "api", "worker"):
        text = bed.repo.read_file(ref, f"apps/{app}/values.yaml")
        tag = YAML(typ="safe").load(text)["image"]["tag"]
        found[app] = str(tag)
    return found


def trailers(bed: Bed, ref: str) -> list[str]:
    message = commit_message(bed.repo.path, ref)
    return [line for line in message.splitlines() if line.startswith("Promoter-")]


def changed_files(bed: Bed, old: str, new: str) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", str(bed.repo.path), "diff", "--name-only", old, new, "--"],
        capture_output=True, text=True, check=True, env=git_env(),
    )  # fmt: skip
    return out.stdout.split()


def parent(bed: Bed, ref: str) -> tuple[str, ...]:
    return rev_list_parents(bed.repo.path, ref)[0][1]


# --- 1. one pull request, the environment branch untouched ---------------------------------


def test_an_update_opens_one_pull_request_and_leaves_the_branch_alone(bed, capsys):
    prod = bed.repo.sha("env/prod")
    before = bed.mark()
    run, data = bed.json(capsys, "--image", "web=1.5.0")
    assert run.code == 0, run.err
    assert bed.repo.sha("env/prod") == prod  # moves only when the PR merges
    assert len(bed.pushes(before)) >= 1
    head = bed.repo.sha(HEAD)
    pull = bed.pull()
    assert (pull.state, pull.head, pull.base, pull.labels) == ("open", HEAD, "env/prod",
                                                               ("release",))  # fmt: skip
    assert pull.title == "update(prod): web 1.5.0" and not pull.draft
    assert WEB_ROW.format("1.5.0") in pull.body
    assert data["changed"] is True and data["delivery"] == "pull-request"
    assert data["commit"] == head and data["branch"] == "env/prod"
    pr = data["pull_request"]
    assert (pr["number"], pr["head"], pr["base"]) == (pull.number, HEAD, "env/prod")
    assert pr["merged"] is False and pr["merge_commit"] is None and pr["auto_merge"] is False
    assert str(pull.number) in pr["url"]
    assert data["changes"] == [{"app": "web", "pin": "web/web", "file": "apps/web/values.yaml",
                                "key": "image.tag", "old": "1.4.1", "new": "1.5.0"}]  # fmt: skip
    assert data["closed_pull_request"] is None
    # The head is env/prod plus exactly the changed scalar, in one promoter commit.
    assert parent(bed, HEAD) == (prod,)
    diff = show_diff(bed.repo.path, HEAD)
    assert '-  tag: "1.4.1"   # set by promoter\n+  tag: "1.5.0"   # set by promoter' in diff
    assert changed_files(bed, prod, head) == ["apps/web/values.yaml"]
    assert trailers(bed, HEAD)[:2] == ["Promoter-Environment: prod",
                                       "Promoter-Change: web/web image.tag 1.4.1 -> 1.5.0"]  # fmt: skip


def test_text_output_names_the_pull_request(gh, capsys):
    run = gh.update(capsys, "--image", "web=1.5.0")
    assert run.code == 0, run.err
    number = gh.pull().number
    assert f"prod (env/prod): 1 change in pull request #{number} (pushed)" in run.out
    assert f"({HEAD} -> env/prod, open)" in run.out
    run = gh.update(capsys, "--image", "web=1.5.0")
    assert run.code == 0, run.err
    assert f"1 change in pull request #{number} (unchanged)" in run.out


# --- 2, 3. later updates accumulate; a newer value of a pin wins ------------------------------


def test_a_second_update_lands_in_the_same_pull_request(bed, capsys):
    prod = bed.repo.sha("env/prod")
    assert bed.update(capsys, "--image", "web=1.5.0").code == 0
    first = bed.pull()
    run, data = bed.json(capsys, "--image", "api=2.1.0")
    assert run.code == 0, run.err
    pull = bed.pull()  # still exactly one
    assert pull.number == first.number == data["pull_request"]["number"]
    assert bed.repo.sha("env/prod") == prod
    # Rebuilt on env/prod's tip as one commit carrying both pins, not stacked on the first.
    assert parent(bed, HEAD) == (prod,)
    assert values(bed, HEAD) == {"web": "1.5.0", "api": "2.1.0", "worker": "3.0.0"}
    assert sorted(changed_files(bed, prod, HEAD)) == ["apps/api/values.yaml",
                                                      "apps/web/values.yaml"]  # fmt: skip
    # target-now -> pending, for both.
    assert pull.title == "update(prod): web 1.5.0, api 2.1.0"
    assert WEB_ROW.format("1.5.0") in pull.body and API_ROW.format("2.1.0") in pull.body
    assert [(c["pin"], c["old"], c["new"]) for c in data["changes"]] == [
        ("web/web", "1.4.1", "1.5.0"), ("api/api", "2.0.0", "2.1.0")]  # fmt: skip
    assert data["changed"] is True and data["commit"] == bed.repo.sha(HEAD)
    assert trailers(bed, HEAD)[:3] == [
        "Promoter-Environment: prod",
        "Promoter-Change: web/web image.tag 1.4.1 -> 1.5.0",
        "Promoter-Change: api/api image.tag 2.0.0 -> 2.1.0",
    ]


def test_a_newer_value_of_the_same_pin_wins(gh, capsys):
    prod = gh.repo.sha("env/prod")
    assert gh.update(capsys, "--image", "web=1.5.0").code == 0
    assert gh.update(capsys, "--image", "api=2.1.0").code == 0
    run, data = gh.json(capsys, "--image", "web=1.6.0")
    assert run.code == 0, run.err
    pull = gh.pull()
    assert values(gh, HEAD) == {"web": "1.6.0", "api": "2.1.0", "worker": "3.0.0"}
    assert parent(gh, HEAD) == (prod,)
    assert pull.title == "update(prod): web 1.6.0, api 2.1.0"
    assert WEB_ROW.format("1.6.0") in pull.body and "1.5.0" not in pull.body
    assert [(c["pin"], c["old"], c["new"]) for c in data["changes"]] == [
        ("web/web", "1.4.1", "1.6.0"), ("api/api", "2.0.0", "2.1.0")]  # fmt: skip
    # Back to env/prod's own value: that pin leaves the PR, the other stays.
    run, data = gh.json(capsys, "--image", "web=1.4.1")
    assert run.code == 0, run.err
    assert [c["pin"] for c in data["changes"]] == ["api/api"]
    assert gh.pull().title == "update(prod): api 2.1.0"
    assert changed_files(gh, prod, HEAD) == ["apps/api/values.yaml"]


# --- 4. a re-run pushes nothing ---------------------------------------------------------------


def test_a_rerun_with_the_same_inputs_pushes_nothing(bed, capsys):
    # Pins enter the PR against promoter.yaml's order; the PR lists them in that order anyway,
    # so what it shows is a function of the set of pins, not of which run came first.
    assert bed.update(capsys, "--image", "api=2.1.0").code == 0
    assert bed.update(capsys, "--image", "web=1.5.0").code == 0
    head, pull = bed.repo.sha(HEAD), bed.pull()
    assert pull.title == "update(prod): web 1.5.0, api 2.1.0"
    for args in (
        ("--image", "web=1.5.0"),
        ("--image", "api=2.1.0"),
        ("--image", "api=2.1.0", "--image", "web=1.5.0"),
    ):
        before, calls = bed.mark(), len(bed.api.request_log)
        run, data = bed.json(capsys, *args)
        assert run.code == 0, run.err
        assert bed.pushes(before) == []  # not even a refused push: no receive-pack at all
        assert bed.repo.sha(HEAD) == head
        assert data["changed"] is False and data["commit"] == head
        assert data["pull_request"]["number"] == pull.number
        assert [c["pin"] for c in data["changes"]] == ["web/web", "api/api"]
        assert bed.pull() == pull  # title, body, labels as they were
        # The pending PR's lookup, then open_or_update finding it as it should be: no write.
        if bed.via == "git":
            assert len(bed.api.request_log) - calls == 2


# --- 5. the environment branch moves meanwhile -------------------------------------------------


def test_a_moved_environment_branch_is_built_on_never_reverted(bed, capsys):
    assert bed.update(capsys, "--image", "web=1.5.0").code == 0
    number = bed.pull().number
    # Someone commits to env/prod directly: another app's hotfix and an unrelated file.
    hotfix = bed.repo.commit("env/prod", {**api("2.0.1"), "README.md": "hotfixed\n"}, "hotfix")
    run, data = bed.json(capsys, "--image", "worker=3.1.0")
    assert run.code == 0, run.err
    assert bed.pull().number == number
    assert parent(bed, HEAD) == (hotfix,)
    assert values(bed, HEAD) == {"web": "1.5.0", "api": "2.0.1", "worker": "3.1.0"}
    assert bed.repo.read_file(HEAD, "README.md") == "hotfixed\n"
    assert sorted(changed_files(bed, hotfix, HEAD)) == ["apps/web/values.yaml",
                                                        "apps/worker/values.yaml"]  # fmt: skip
    assert [c["pin"] for c in data["changes"]] == ["web/web", "worker/worker"]
    # The same inputs again after another direct commit: rebuilt again (it must be), no revert.
    again = bed.repo.commit("env/prod", api("2.0.2"), "hotfix again")
    run, data = bed.json(capsys, "--image", "worker=3.1.0")
    assert run.code == 0 and data["changed"] is True, run.err
    assert parent(bed, HEAD) == (again,)
    assert values(bed, HEAD) == {"web": "1.5.0", "api": "2.0.2", "worker": "3.1.0"}


def test_a_pin_hotfixed_on_env_prod_leaves_the_pr_rather_than_being_reverted(bed, capsys):
    assert bed.update(capsys, "--image", "web=1.5.0").code == 0
    assert bed.update(capsys, "--image", "api=2.1.0").code == 0
    # Someone hotfixes web on env/prod directly, to a value the PR does not carry: newer than
    # the PR's 1.5.0, so it wins; merging the PR must not take web back to 1.5.0.
    hotfix = bed.repo.commit("env/prod", web("1.5.1"), "hotfix web")
    run, data = bed.json(capsys, "--image", "worker=3.1.0")
    assert run.code == 0, run.err
    assert [c["pin"] for c in data["changes"]] == ["api/api", "worker/worker"]
    assert parent(bed, HEAD) == (hotfix,)
    assert values(bed, HEAD) == {"web": "1.5.1", "api": "2.1.0", "worker": "3.1.0"}
    assert sorted(changed_files(bed, hotfix, HEAD)) == ["apps/api/values.yaml",
                                                        "apps/worker/values.yaml"]  # fmt: skip
    pull = bed.pull()
    assert pull.title == "update(prod): api 2.1.0, worker 3.1.0"
    assert "apps/web/values.yaml" not in pull.body
    # Asked for again, web comes back into the PR: this run's value is the newest.
    run, data = bed.json(capsys, "--image", "web=1.5.2")
    assert run.code == 0, run.err
    assert [(c["pin"], c["old"], c["new"]) for c in data["changes"]] == [
        ("web/web", "1.5.1", "1.5.2"), ("api/api", "2.0.0", "2.1.0"),
        ("worker/worker", "3.0.0", "3.1.0")]  # fmt: skip


def test_a_digest_the_pr_cleared_stays_cleared_and_goes_with_its_tag(gh, capsys):
    digest = "sha256:" + "ab" * 32
    pinned = f'image:\n  tag: 2.0.0\n  digest: "{digest}"\n'
    gh.repo.commit("env/prod", {"apps/api/values.yaml": pinned}, "pinned by digest")
    assert gh.update(capsys, "--image", "api=2.1.0").code == 0  # clears the stale digest
    run, data = gh.json(capsys, "--image", "web=1.5.0")
    assert run.code == 0, run.err
    assert [(c["key"], c["old"], c["new"]) for c in data["changes"]] == [
        ("image.tag", "1.4.1", "1.5.0"), ("image.tag", "2.0.0", "2.1.0"),
        ("image.digest", digest, "")]  # fmt: skip
    new = "sha256:" + "cd" * 32
    run, data = gh.json(capsys, "--image", f"api=ghcr.io/acme/api:2.2.0@{new}")
    assert run.code == 0, run.err
    assert [(c["key"], c["new"]) for c in data["changes"]] == [
        ("image.tag", "1.5.0"), ("image.tag", "2.2.0"), ("image.digest", new)]  # fmt: skip
    assert gh.repo.read_file(HEAD, "apps/api/values.yaml") == (
        f'image:\n  tag: 2.2.0\n  digest: "{new}"\n'
    )


# --- 6. shrink, then close when nothing is left -----------------------------------------------


def test_pins_env_prod_caught_up_with_leave_the_pr_and_an_empty_pr_is_closed(bed, capsys):
    assert bed.update(capsys, "--image", "web=1.5.0").code == 0
    assert bed.update(capsys, "--image", "api=2.1.0").code == 0
    number = bed.pull().number
    # web reaches env/prod by another route (a direct commit).
    caught = bed.repo.commit("env/prod", web("1.5.0"), "web 1.5.0 by hand")
    run, data = bed.json(capsys, "--image", "api=2.1.0")
    assert run.code == 0, run.err
    pull = bed.pull()
    assert pull.number == number and pull.state == "open"
    assert pull.title == "update(prod): api 2.1.0"
    assert API_ROW.format("2.1.0") in pull.body and "apps/web/values.yaml" not in pull.body
    assert parent(bed, HEAD) == (caught,)
    assert changed_files(bed, caught, HEAD) == ["apps/api/values.yaml"]
    assert [c["pin"] for c in data["changes"]] == ["api/api"] and data["changed"] is True

    # Now env/prod gets api too; an update that re-sets a value env/prod already has finds
    # nothing left to carry: the PR is closed, saying why, and its branch deleted.
    prod = bed.repo.commit("env/prod", api("2.1.0"), "api 2.1.0 by hand")
    before = bed.mark()
    run, data = bed.json(capsys, "--image", "web=1.5.0")
    assert run.code == 0, run.err
    pull = bed.pull()
    assert pull.state == "closed" and pull.number == number
    assert len(pull.comments) == 1 and "env/prod already has every version" in pull.comments[0]
    assert HEAD not in bed.branches()
    assert bed.repo.sha("env/prod") == prod
    assert data["closed_pull_request"]["number"] == number and data["pull_request"] is None
    assert data["changed"] is False and data["changes"] == [] and data["commit"] is None
    assert len(bed.pushes(before)) >= 1  # the branch deletion, and nothing else moved
    # Nothing in flight any more: the next no-op run touches no PR and pushes nothing.
    before = bed.mark()
    run, data = bed.json(capsys, "--image", "web=1.5.0")
    assert run.code == 0 and data["closed_pull_request"] is None, run.err
    assert bed.pushes(before) == [] and len(bed.pulls()) == 1


def test_a_pr_emptied_by_a_direct_commit_is_closed_by_the_next_update(gh, capsys):
    assert gh.update(capsys, "--image", "web=1.5.0").code == 0
    number = gh.pull().number
    gh.repo.commit("env/prod", web("1.5.0"), "web 1.5.0 by hand")
    run = gh.update(capsys, "--image", "web=1.5.0")
    assert run.code == 0, run.err
    assert "prod (env/prod): already up to date, nothing to commit" in run.out
    assert f"closed pull request #{number}" in run.out
    assert gh.pull().state == "closed" and HEAD not in gh.branches()


# --- 7. --merge ---------------------------------------------------------------------------------


def test_merge_moves_env_prod_and_a_later_update_does_not_carry_the_old_values_back(bed, capsys):
    prod = bed.repo.sha("env/prod")
    assert bed.update(capsys, "--image", "api=2.1.0").code == 0
    run, data = bed.json(capsys, "--image", "web=1.5.0", "--merge")
    assert run.code == 0, run.err
    first = bed.pull()
    assert first.state == "merged"
    pr = data["pull_request"]
    assert pr["merged"] is True and pr["number"] == first.number and data["changed"] is True
    assert pr["merge_commit"] == bed.repo.sha("env/prod") != prod
    assert values(bed, "env/prod") == {"web": "1.5.0", "api": "2.1.0", "worker": "3.0.0"}
    assert HEAD not in bed.branches()  # its work is done
    # Someone hotfixes env/prod directly after the merge.
    hotfix = bed.repo.commit("env/prod", {**web("1.5.1"), **api("2.1.1")}, "hotfix")
    run, data = bed.json(capsys, "--image", "worker=3.1.0")
    assert run.code == 0, run.err
    fresh = [p for p in bed.pulls() if p.state == "open"]
    assert len(fresh) == 1 and fresh[0].number != first.number
    assert data["pull_request"]["number"] == fresh[0].number
    assert fresh[0].title == "update(prod): worker 3.1.0"
    assert [c["pin"] for c in data["changes"]] == ["worker/worker"]
    assert parent(bed, HEAD) == (hotfix,)
    assert values(bed, HEAD) == {"web": "1.5.1", "api": "2.1.1", "worker": "3.1.0"}


def test_a_refused_merge_exits_1_and_leaves_the_pr_open(bed, capsys):
    assert bed.update(capsys, "--image", "api=2.1.0").code == 0
    hotfix: list[str] = []

    def conflict() -> None:  # env/prod changes the same line just before the merge
        hotfix.append(bed.repo.commit("env/prod", web("1.5.9"), "hotfix web"))

    merge = {
        "github": "PUT /repos/*/pulls/*/merge",
        "gitlab": "PUT /projects/*/merge_requests/*/merge",
    }
    bed.api.before(merge[bed.forge], conflict)
    run, data = bed.json(capsys, "--image", "web=1.5.0", "--merge")
    assert run.code == 1, run.output
    [line] = run.err.strip().splitlines()
    pull = bed.pull()
    assert f"pull request #{pull.number}" in line and "is open but was not merged" in line
    assert pull.state == "open" and HEAD in bed.branches()
    assert bed.repo.sha("env/prod") == hotfix[0]
    # The next update builds on the hotfix; web's newer value is env/prod's own.
    run, data = bed.json(capsys, "--image", "api=2.1.0")
    assert run.code == 0, run.err
    assert [c["pin"] for c in data["changes"]] == ["api/api"]
    assert parent(bed, HEAD) == (hotfix[0],)
    assert values(bed, HEAD)["web"] == "1.5.9"


def test_a_pr_merged_by_a_person_leaves_a_branch_that_carries_nothing(bed, capsys):
    assert bed.update(capsys, "--image", "web=1.5.0").code == 0
    first = bed.pull()
    # A person merges it in the web UI; the forge keeps the branch (the default on both).
    outcome = bed.forge_as_a_person().merge_pull_request(first.number, bed.repo.sha(HEAD))
    assert outcome.merged and HEAD in bed.branches()
    hotfix = bed.repo.commit("env/prod", web("1.5.1"), "hotfix")
    run, data = bed.json(capsys, "--image", "api=2.1.0")
    assert run.code == 0, run.err
    assert [c["pin"] for c in data["changes"]] == ["api/api"]
    assert parent(bed, HEAD) == (hotfix,)
    assert values(bed, HEAD) == {"web": "1.5.1", "api": "2.1.0", "worker": "3.0.0"}
    fresh = [p for p in bed.pulls() if p.state == "open"]
    assert len(fresh) == 1 and fresh[0].number != first.number
    assert fresh[0].title == "update(prod): api 2.1.0"


def test_a_pr_a_person_closed_is_not_reopened_with_its_values(bed, capsys):
    assert bed.update(capsys, "--image", "web=1.5.0").code == 0
    first = bed.pull()
    bed.forge_as_a_person().close_pull_request(first.number)  # rejected; the branch stays
    assert HEAD in bed.branches()
    prod = bed.repo.sha("env/prod")
    run, data = bed.json(capsys, "--image", "api=2.1.0")
    assert run.code == 0, run.err
    assert [c["pin"] for c in data["changes"]] == ["api/api"]
    assert parent(bed, HEAD) == (prod,)
    assert changed_files(bed, prod, HEAD) == ["apps/api/values.yaml"]
    fresh = [p for p in bed.pulls() if p.state == "open"]
    assert len(fresh) == 1 and fresh[0].number != first.number
    assert fresh[0].title == "update(prod): api 2.1.0"


# --- 8. a person pushed to the promoter branch ---------------------------------------------------


@pytest.mark.parametrize("how", ["commit on top", "merge of env/prod"])
def test_a_branch_a_person_pushed_to_is_left_alone(gh, capsys, how):
    assert gh.update(capsys, "--image", "web=1.5.0").code == 0
    pull = gh.pull()
    if how == "commit on top":
        theirs = gh.repo.commit(HEAD, {"README.md": "reviewed\n"}, "note from a reviewer")
    else:  # "Update branch": env/prod moved, and the person merged it in
        gh.repo.commit("env/prod", {"README.md": "moved\n"}, "direct")
        theirs = _merge(gh, HEAD, "env/prod")
    before, calls = gh.mark(), len(gh.api.request_log)
    run, data = gh.json(capsys, "--image", "api=2.1.0")
    assert run.code == 1, run.output
    [line] = run.err.strip().splitlines()
    assert HEAD in line and "someone pushed to it" in line and theirs[:12] in line
    assert data == {}
    assert gh.pushes(before) == []
    assert gh.repo.sha(HEAD) == theirs and gh.pull() == pull
    # Its PR untouched: not even looked up.
    assert len(gh.api.request_log) == calls


def test_a_person_pushing_while_promoter_runs_wins_the_branch(bed, capsys):
    assert bed.update(capsys, "--image", "web=1.5.0").code == 0
    pull = bed.pull()
    theirs: list[str] = []

    def person() -> None:  # lands between promoter's look at the branch and its push
        if not theirs:
            theirs.append(bed.repo.commit(HEAD, {"README.md": "mine\n"}, "a person's fix"))

    bed.server.before_push(bed.repo.name, person)
    if bed.via == "api":  # after promoter read the branch, before its lease (updateRefs)
        commits = {"github": "/repos/*/commits/*", "gitlab": "/projects/*/repository/commits/*"}
        bed.api.before(f"GET {commits[bed.forge]}", person)
    try:
        run = bed.update(capsys, "--image", "api=2.1.0")
    finally:
        bed.server.before_push(bed.repo.name, None)
    assert run.code == 1, run.output
    [line] = run.err.strip().splitlines()
    assert "someone pushed to it" in line and theirs[0][:12] in line
    assert bed.repo.sha(HEAD) == theirs[0]  # the lease held: nothing of theirs overwritten
    assert bed.pull() == pull
    assert not [b for b in bed.branches() if "-next-" in b]  # the api path's helper is gone


def _merge(bed: Bed, into: str, other: str) -> str:
    """A merge commit of `other` into branch `into`, made on the server as a person's push."""
    path = str(bed.repo.path)

    def git(*args: str) -> str:
        return subprocess.run(["git", "--git-dir", path, *args], capture_output=True, text=True,
                              check=True, env=git_env()).stdout.strip()  # fmt: skip

    tree = git("merge-tree", "--write-tree", into, other)
    sha = git("commit-tree", tree.splitlines()[0], "-p", into, "-p", other, "-m", "Merge env/prod")
    git("update-ref", f"refs/heads/{into}", sha)
    return sha


# --- 9. --auto-merge, --draft, and flags that do not apply -------------------------------------


def test_auto_merge_and_draft(bed, capsys):
    run, data = bed.json(capsys, "--image", "web=1.5.0", "--draft")
    assert run.code == 0, run.err
    assert bed.pull().draft and data["pull_request"]["auto_merge"] is False
    run, data = bed.json(capsys, "--image", "api=2.1.0", "--draft")
    assert run.code == 0, run.err
    pull = bed.pull()
    assert pull.draft and pull.title == "update(prod): web 1.5.0, api 2.1.0"
    # Ready for review, then auto-merge.
    run, data = bed.json(capsys, "--image", "worker=3.1.0", "--auto-merge")
    assert run.code == 0, run.err
    pull = bed.pull()
    assert not pull.draft
    pr = data["pull_request"]
    if bed.forge == "github":  # armed: GitHub merges once the checks pass
        assert pull.state == "open" and pull.auto_merge
        assert pr["auto_merge"] is True and pr["merged"] is False
    else:  # nothing pending on the head: GitLab merges at once
        assert pull.state == "merged"
        assert pr["auto_merge"] is False and pr["merged"] is True
        assert pr["merge_commit"] == bed.repo.sha("env/prod")
        assert values(bed, "env/prod") == {"web": "1.5.0", "api": "2.1.0", "worker": "3.1.0"}


def test_auto_merge_from_promoter_yaml(request, env_repo, git_server, capsys):
    config = CONFIG.replace("labels: [release]", "labels: [release], auto_merge: true")
    bed = _bed(request, env_repo, git_server, "github", {**FILES, "promoter.yaml": config})
    run, data = bed.json(capsys, "--image", "web=1.5.0")
    assert run.code == 0, run.err
    assert data["pull_request"]["auto_merge"] is True and bed.pull().auto_merge
    # --merge wins over the configured auto-merge.
    run, data = bed.json(capsys, "--image", "web=1.5.0", "--merge")
    assert run.code == 0, run.err
    assert data["pull_request"]["merged"] is True and bed.pull().state == "merged"


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ("dev", ("--merge",), "apply to pull requests, and dev takes pushes"),
        ("dev", ("--auto-merge",), "apply to pull requests, and dev takes pushes"),
        ("dev", ("--draft",), "apply to pull requests, and dev takes pushes"),
        ("prod", ("--merge", "--auto-merge"), "exclude each other"),
    ],
)
def test_flags_that_do_not_apply_exit_2_before_writing(gh, capsys, env, flags, message):
    branches, before = gh.branches(), gh.mark()
    run = run_cli(capsys, *gh.args("update", env, "--image", "web=1.5.0", *flags))
    assert run.code == 2, run.output
    [line] = run.err.strip().splitlines()
    assert message in line
    assert gh.pushes(before) == [] and gh.branches() == branches and gh.pulls() == []


def test_pull_request_delivery_without_a_forge_exits_2_before_writing(gh, capsys):
    branches, before = gh.branches(), gh.mark()
    run = run_cli(capsys, "--repo", gh.repo.url, "--token", TEST_TOKEN, "--forge", "none",
                  "update", "prod", "--image", "web=1.5.0")  # fmt: skip
    assert run.code == 2, run.output
    [line] = run.err.strip().splitlines()
    assert "needs a forge API" in line
    assert gh.pushes(before) == [] and gh.branches() == branches


# --- 10. --dry-run ------------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_shows_the_accumulated_plan(bed, capsys):
    assert bed.update(capsys, "--image", "web=1.5.0").code == 0
    head, pull = bed.repo.sha(HEAD), bed.pull()
    branches, before = bed.branches(), bed.mark()
    run = run_cli(capsys, *bed.args("--dry-run", "--output", "json", "update", "prod",
                                    "--image", "api=2.1.0"))  # fmt: skip
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["dry_run"] is True and data["delivery"] == "pull-request"
    assert data["commit"] is None
    assert [(c["pin"], c["old"], c["new"]) for c in data["changes"]] == [
        ("web/web", "1.4.1", "1.5.0"), ("api/api", "2.0.0", "2.1.0")]  # fmt: skip
    run = run_cli(capsys, *bed.args("--dry-run", "update", "prod", "--image", "api=2.1.0"))
    assert run.code == 0, run.err
    assert "would" in run.out and "dry run, nothing written" in run.out
    assert "web/web" in run.out and "api/api" in run.out
    assert HEAD in run.out
    assert bed.pushes(before) == [] and bed.branches() == branches
    assert bed.repo.sha(HEAD) == head and bed.pulls() == [pull]


def test_dry_run_before_any_pull_request(gh, capsys):
    before = gh.mark()
    run = run_cli(capsys, *gh.args("--dry-run", "--output", "json", "update", "prod",
                                   "--image", "web=1.5.0"))  # fmt: skip
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["delivery"] == "pull-request" and data["pull_request"] is None
    assert data["changed"] is True and [c["pin"] for c in data["changes"]] == ["web/web"]
    assert gh.pushes(before) == [] and HEAD not in gh.branches() and gh.pulls() == []


# --- 11. chart versions: derived files are a function of the tip ------------------------------


def _date_tip(bed: Bed, branch: str, when: str) -> str:
    """Give `branch` a new tip with the same tree, committed at `when` (a past date)."""
    path = str(bed.repo.path)
    env = {**git_env(), "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when}
    tip = bed.repo.sha(branch)
    sha = subprocess.run(
        ["git", "--git-dir", path, "commit-tree", f"{tip}^{{tree}}", "-p", tip, "-m", "dated"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.strip()  # fmt: skip
    subprocess.run(["git", "--git-dir", path, "update-ref", f"refs/heads/{branch}", sha, tip],
                   check=True, env=git_env())  # fmt: skip
    return sha


def test_a_chart_update_rerun_is_byte_identical(gh, capsys):
    tip = _date_tip(gh, "env/prod", "2024-03-01T12:00:00+00:00")
    run, data = gh.json(capsys, "--chart", "web=0.3.1")
    assert run.code == 0, run.err
    head = gh.repo.sha(HEAD)
    assert parent(gh, HEAD) == (tip,)
    assert data["files"] == ["apps/web/Chart.lock", "apps/web/Chart.yaml"]
    lock = gh.repo.read_file(HEAD, "apps/web/Chart.lock")
    # `generated` is the tip's commit time, not the clock's: a pure function of the inputs.
    assert 'generated: "2024-03-01T12:00:00Z"' in lock
    assert check_lock(gh.repo.read_file(HEAD, "apps/web/Chart.yaml"), lock) is None
    before = gh.mark()
    run, data = gh.json(capsys, "--chart", "web=0.3.1")
    assert run.code == 0, run.err
    assert data["changed"] is False and gh.repo.sha(HEAD) == head
    assert gh.pushes(before) == []
    # Accumulating an image on top keeps the lock as it was.
    run, data = gh.json(capsys, "--image", "api=2.1.0")
    assert run.code == 0 and data["changed"] is True, run.err
    assert gh.repo.read_file(HEAD, "apps/web/Chart.lock") == lock
    assert [c["pin"] for c in data["changes"]] == ["web/chart", "api/api"]


def test_values_of_a_run_that_died_before_opening_its_pull_request_are_not_lost(
    bed: Bed, capsys: pytest.CaptureFixture[str]
) -> None:
    # The branch is pushed, then opening the PR fails past the adapter's retries: the next,
    # different update must carry both pins (the branch is in flight: no PR ever closed it).
    route = "POST /repos/*/pulls" if bed.forge == "github" else "POST /projects/*/merge_requests"
    bed.api.fail(route, [502] * 10)
    failed = bed.update(capsys, "--image", "web=1.5.0")
    assert failed.code == 1, failed.output
    assert f"the change is on {HEAD}: run the same command again to finish" in failed.err
    assert HEAD in bed.branches() and bed.pulls() == []
    bed.api.reset()
    run = bed.update(capsys, "--image", "api=2.1.0")
    assert run.code == 0, run.output
    pull = bed.pull()
    assert pull.state == "open" and "1.5.0" in pull.title and "2.1.0" in pull.title
    assert values(bed, HEAD)["web"] == "1.5.0" and values(bed, HEAD)["api"] == "2.1.0"
