"""`promoter rollback ENV (--to REV | --steps N)` end to end: real git over smart HTTP, the
strict GitHub double for the pull-request case, the real CLI.

A rollback is a new commit (or pull request) setting every pin back to its value at REV;
everything else stays as it is now, and history is never rewritten."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import EnvRepo, commit_message, git_env, rev_list_parents
from promoter.sandbox.github_api import GitHubApiDouble
from tests.helpers import Run, run_cli

pytest_plugins = ["tests.forge_fixtures"]

CONFIG = """\
environments:
  dev: {branch: env/dev}
  prod:
    branch: env/prod
    from: dev
    delivery: pull-request
    pull_request: {labels: [rollback]}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag}
    chart: {file: apps/api/helmrelease.yaml, version: spec.chart.spec.version}
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
API = "image:\n  tag: 2.0.0\n"
RELEASE = "spec:\n  chart:\n    spec:\n      version: 0.3.0\n"
FILES = {
    "promoter.yaml": CONFIG,
    "apps/web/values.yaml": WEB,
    "apps/api/values.yaml": API,
    "apps/api/helmrelease.yaml": RELEASE,
}
# apps/worker/values.yaml is not there at first: worker arrives later (a pin REV lacks).


@pytest.fixture
def repo(env_repo: Any) -> EnvRepo:
    return env_repo({"main": FILES, "env/dev": FILES, "env/prod": FILES})


# The forge options of `cli`: plain git (`--forge none`), or, where a test takes the `via`
# fixture, GitHub's api path for everything it runs (`--commit-via api`, the GitHub double;
# `gh` adds only `--commit-via api`, its last two).
_WAY: list[str] = ["--forge", "none"]


@pytest.fixture(params=["git", "api"])
def via(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "api":
        api = request.getfixturevalue("github_api")
        _WAY[:] = ["--forge", "github", "--api-url", api.api_url, "--commit-via", "api"]
    try:
        yield str(request.param)
    finally:
        _WAY[:] = ["--forge", "none"]


def cli(capsys: pytest.CaptureFixture[str], repo: EnvRepo, *args: str) -> Run:
    return run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, *_WAY, *args)


def rollback(capsys: pytest.CaptureFixture[str], repo: EnvRepo, *args: str) -> dict[str, Any]:
    run = cli(capsys, repo, "--output", "json", "rollback", "dev", *args)
    assert run.code == 0, run.err
    data: dict[str, Any] = json.loads(run.out)
    return data


def update(capsys: pytest.CaptureFixture[str], repo: EnvRepo, *pins: str) -> str:
    args = [a for pin in pins for a in (("--chart", pin[6:]) if pin.startswith("chart:")
                                        else ("--image", pin))]  # fmt: skip
    run = cli(capsys, repo, "update", "dev", *args)
    assert run.code == 0, run.err
    return repo.sha("env/dev")


def tags(repo: EnvRepo, ref: str) -> dict[str, str]:
    yaml = YAML(typ="safe")
    found = {app: str(yaml.load(repo.read_file(ref, f"apps/{app}/values.yaml"))["image"]["tag"])
             for app in ("web", "api")}  # fmt: skip
    found["chart"] = str(yaml.load(repo.read_file(ref, "apps/api/helmrelease.yaml"))["spec"]
                         ["chart"]["spec"]["version"])  # fmt: skip
    return found


def trailers(repo: EnvRepo, ref: str) -> list[str]:
    return [line for line in commit_message(repo.path, ref).splitlines()
            if line.startswith("Promoter-")]  # fmt: skip


def parents(repo: EnvRepo, sha: str) -> tuple[str, ...]:
    return dict(rev_list_parents(repo.path, sha))[sha]


def changed_files(repo: EnvRepo, old: str, new: str) -> list[str]:
    out = subprocess.run(["git", "--git-dir", str(repo.path), "diff", "--name-only", old, new],
                         capture_output=True, text=True, check=True, env=git_env())  # fmt: skip
    return out.stdout.split()


def diff(repo: EnvRepo, old: str, new: str) -> str:
    out = subprocess.run(["git", "--git-dir", str(repo.path), "diff", "--unified=0", old, new],
                         capture_output=True, text=True, check=True, env=git_env())  # fmt: skip
    return out.stdout


@pytest.fixture
def story(repo: EnvRepo, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """seed → A: update web 1.5.0 → M: a person scales web and adds a file → B: update web
    1.6.0, api 2.1.0 and the api chart 0.4.0."""
    shas = {"seed": repo.sha("env/dev")}
    shas["A"] = update(capsys, repo, "web=1.5.0")
    scaled = WEB.replace("1.4.1", "1.5.0").replace("replicas: 2", "replicas: 5")
    shas["M"] = repo.commit("env/dev", {"apps/web/values.yaml": scaled, "NOTES.md": "scaled\n"},
                            "Scale web to 5 replicas for the sale")  # fmt: skip
    shas["B"] = update(capsys, repo, "web=1.6.0", "api=2.1.0", "chart:api=0.4.0")
    assert tags(repo, "env/dev") == {"web": "1.6.0", "api": "2.1.0", "chart": "0.4.0"}
    return shas


# --- --to: a new commit, the manual change survives ---------------------------------------


def test_rollback_across_a_manual_commit_keeps_it(repo, capsys, story, via):
    run = cli(capsys, repo, "rollback", "dev", "--to", story["seed"][:9])
    assert run.code == 0, run.err
    new = repo.sha("env/dev")
    # A new commit on top: nothing rewritten.
    assert parents(repo, new) == (story["B"],)
    assert tags(repo, new) == {"web": "1.4.1", "api": "2.0.0", "chart": "0.3.0"}
    # The person's change after REV survives: replicas, NOTES.md, the comment.
    web = repo.read_file(new, "apps/web/values.yaml")
    assert web == WEB.replace("replicas: 2", "replicas: 5")
    assert repo.read_file(new, "NOTES.md") == "scaled\n"
    # Only the pinned scalars moved.
    assert sorted(changed_files(repo, story["B"], new)) == [
        "apps/api/helmrelease.yaml", "apps/api/values.yaml", "apps/web/values.yaml"]  # fmt: skip
    moved = [line for line in diff(repo, story["B"], new).splitlines()
             if line[:1] in "+-" and line[:3] not in ("+++", "---")]  # fmt: skip
    assert sorted(moved) == sorted(['-  tag: "1.6.0"   # set by promoter',
                                    '+  tag: "1.4.1"   # set by promoter',
                                    "-  tag: 2.1.0", "+  tag: 2.0.0",
                                    "-      version: 0.4.0", "+      version: 0.3.0"])  # fmt: skip
    assert trailers(repo, new) == [
        "Promoter-Environment: dev",
        "Promoter-Change: web/web image.tag 1.6.0 -> 1.4.1",
        "Promoter-Change: api/api image.tag 2.1.0 -> 2.0.0",
        "Promoter-Change: api chart 0.4.0 -> 0.3.0",
        f"Promoter-Rollback-To: {story['seed']}",
    ]
    assert commit_message(repo.path, new).startswith("rollback(dev): web 1.4.1, api 2.0.0, ")
    # The output says plainly what moved and where to.
    lines = run.out.splitlines()
    assert lines[0] == (f'dev (env/dev): rolled back to {story["seed"][:12]} ("seed"): 3 pin '
                        f"values in new commit {new[:12]}")  # fmt: skip
    assert lines[1].split() == ["web/web", "apps/web/values.yaml", "image.tag", "1.6.0", "->",
                                "1.4.1"]  # fmt: skip
    assert "worker/worker image.tag: apps/worker/values.yaml does not exist" in run.out


def test_json_like_update_and_a_rerun_writes_nothing(repo, capsys, story, git_server, via):
    data = rollback(capsys, repo, "--to", story["A"])
    new = repo.sha("env/dev")
    assert data["changed"] is True and data["commit"] == new and data["rollback_to"] == story["A"]
    assert (data["environment"], data["branch"], data["delivery"]) == ("dev", "env/dev", "push")
    assert data["pull_request"] is None and data["dry_run"] is False and data["attempts"] == 1
    assert data["files"] == ["apps/api/helmrelease.yaml", "apps/api/values.yaml",
                             "apps/web/values.yaml"]  # fmt: skip
    assert [(c["pin"], c["old"], c["new"]) for c in data["changes"]] == [
        ("web/web", "1.6.0", "1.5.0"), ("api/api", "2.1.0", "2.0.0"),
        ("api/chart", "0.4.0", "0.3.0")]  # fmt: skip
    assert data["undone"] == []
    assert data["skipped"] == [
        f"worker/worker image.tag: apps/worker/values.yaml does not exist at {story['A'][:12]}"
    ]
    # The same REV again: nothing to do, nothing pushed.
    git_server.wait_idle()
    before = len(git_server.requests)
    again = rollback(capsys, repo, "--to", story["A"])
    assert again["changed"] is False and again["commit"] is None and again["changes"] == []
    assert repo.sha("env/dev") == new
    git_server.wait_idle()
    assert not [r for r in git_server.requests[before:] if "git-receive-pack" in r.path]
    run = cli(capsys, repo, "rollback", "dev", "--to", story["A"])
    assert "every pin already has its value at" in run.out and "no commit" in run.out


def test_dry_run_shows_the_plan_and_writes_nothing(repo, capsys, story, via):
    run = cli(capsys, repo, "--dry-run", "rollback", "dev", "--steps", "1")
    assert run.code == 0, run.err
    assert repo.sha("env/dev") == story["B"]
    assert f"would roll back to {story['M'][:12]}" in run.out and "dry run" in run.out
    assert "1.6.0 -> 1.5.0" in run.out and "2.1.0 -> 2.0.0" in run.out
    assert f"undoes {story['B'][:12]} update(dev): web 1.6.0, api 2.1.0" in run.out


# --- --steps counts promoter changes ----------------------------------------------------------


def test_steps_count_promoter_changes_not_commits(repo, capsys, story):
    # One step: before B, i.e. M (the person's commit is the state B was built on).
    one = json.loads(cli(capsys, repo, "--dry-run", "--output", "json", "rollback", "dev",
                         "--steps", "1").out)  # fmt: skip
    assert one["rollback_to"] == story["M"]
    assert [u["commit"] for u in one["undone"]] == [story["B"]]
    # Two steps: before A (M is not a promoter change: raw commits would have given A).
    data = rollback(capsys, repo, "--steps", "2")
    assert data["rollback_to"] == story["seed"]
    assert [u["commit"] for u in data["undone"]] == [story["B"], story["A"]]
    new = repo.sha("env/dev")
    assert tags(repo, new) == {"web": "1.4.1", "api": "2.0.0", "chart": "0.3.0"}
    assert "replicas: 5" in repo.read_file(new, "apps/web/values.yaml")
    run = cli(capsys, repo, "rollback", "dev", "--steps", "4")
    assert run.code == 2
    assert "--steps 4: env/dev has 3 promoter changes of dev" in run.err
    assert repo.sha("env/dev") == new


def test_a_rollback_of_a_rollback(repo, capsys, story):
    first = rollback(capsys, repo, "--to", story["seed"])
    assert tags(repo, "env/dev") == {"web": "1.4.1", "api": "2.0.0", "chart": "0.3.0"}
    # The rollback is itself a promoter change: one step back undoes it.
    second = rollback(capsys, repo, "--steps", "1")
    assert second["rollback_to"] == story["B"]
    assert [u["commit"] for u in second["undone"]] == [first["commit"]]
    assert tags(repo, "env/dev") == {"web": "1.6.0", "api": "2.1.0", "chart": "0.4.0"}
    assert parents(repo, second["commit"]) == (first["commit"],)
    assert f"Promoter-Rollback-To: {story['B']}" in trailers(repo, "env/dev")
    # history reads both back.
    run = cli(capsys, repo, "--output", "json", "history", "dev", "--limit", "2")
    entries = json.loads(run.out)["entries"]
    assert [(e["verb"], e["rollback_to"]) for e in entries] == [
        ("rollback", story["B"]), ("rollback", story["seed"])]  # fmt: skip


def test_a_pin_the_branch_has_now_but_rev_lacks_is_left_alone(repo, capsys, story):
    worker = "image:\n  tag: 3.0.0\n"
    repo.commit("env/dev", {"apps/worker/values.yaml": worker}, "add worker")
    update(capsys, repo, "worker=3.1.0")
    data = rollback(capsys, repo, "--to", story["M"])
    assert repo.read_file("env/dev", "apps/worker/values.yaml") == "image:\n  tag: 3.1.0\n"
    assert [c["pin"] for c in data["changes"]] == ["web/web", "api/api", "api/chart"]
    assert any(s.startswith("worker/worker image.tag:") for s in data["skipped"])


# --- refused: exit 2, nothing written -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "pass either --to REV"),
        (("--to", "abcdef12", "--steps", "1"), "pass either --to REV"),
        (("--to", "HEAD~1"), "is not a commit SHA"),
        (("--to", "abcdef1"), "commit abcdef1 is not on env/dev"),
        (("--steps", "1", "--merge"), "takes pushes"),
    ],
)
def test_refused(repo, capsys, story, args, message):
    run = cli(capsys, repo, "rollback", "dev", *args)
    assert run.code == 2, run.out + run.err
    assert message in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert repo.sha("env/dev") == story["B"]


def test_rev_not_on_the_branch_is_refused(repo, capsys, story):
    """A real commit, of another branch: not a state env/dev ever had."""
    other = repo.commit("env/prod", {"NOTES.md": "prod only\n"}, "prod note")
    run = cli(capsys, repo, "rollback", "dev", "--to", other)
    assert run.code == 2 and f"commit {other} is not on env/dev" in run.err
    assert repo.sha("env/dev") == story["B"]


def test_a_bad_value_at_rev_is_refused_naming_it(repo, capsys):
    bad = repo.commit("env/dev", {"apps/web/values.yaml": WEB.replace('"1.4.1"', '"1.4.1 evil"')},
                      "typo")  # fmt: skip
    repo.commit("env/dev", {"apps/api/values.yaml": "image:\n  tag: 'x y'\n"}, "typo in api")
    good = update(capsys, repo, "web=1.5.0")
    run = cli(capsys, repo, "rollback", "dev", "--to", bad)
    assert run.code == 2, run.out
    assert f"apps/web/values.yaml at {bad[:12]}: image.tag" in run.err
    assert '"1.4.1 evil" is not an image tag' in run.err and "nothing was written" in run.err
    assert repo.sha("env/dev") == good
    # A bad value that would not move is no obstacle (api's 'x y' is the same now).
    web_ok = update(capsys, repo, "web=1.6.0")
    data = rollback(capsys, repo, "--to", good)
    assert [c["pin"] for c in data["changes"]] == ["web/web"]
    assert parents(repo, data["commit"]) == (web_ok,)


# --- pull-request delivery -----------------------------------------------------------------------


def gh(capsys: pytest.CaptureFixture[str], repo: EnvRepo, api: GitHubApiDouble, *args: str) -> Run:
    return run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--forge", "github",
                   "--api-url", api.api_url, *_WAY[4:], *args)  # fmt: skip


def test_rollback_by_pull_request(repo, capsys, github_api: GitHubApiDouble, via: str):
    seed = repo.sha("env/prod")
    run = gh(capsys, repo, github_api, "update", "prod", "--image", "web=1.5.0", "--merge")
    assert run.code == 0, run.err
    merged = repo.sha("env/prod")
    assert len(parents(repo, merged)) == 2  # a merge of promoter/update-prod

    run = gh(capsys, repo, github_api, "--output", "json", "rollback", "prod", "--steps", "1")
    assert run.code == 0, run.err
    data = json.loads(run.out)
    # The merge counts as one promoter change; the state before it is its first parent.
    assert data["rollback_to"] == seed and data["undone"][0]["commit"] == merged
    assert data["delivery"] == "pull-request" and data["changed"] is True
    assert repo.sha("env/prod") == merged  # moves only when the pull request merges
    head = repo.sha("promoter/rollback-prod")
    assert data["commit"] == head and parents(repo, head) == (merged,)
    assert trailers(repo, head) == ["Promoter-Environment: prod",
                                    "Promoter-Change: web/web image.tag 1.5.0 -> 1.4.1",
                                    f"Promoter-Rollback-To: {seed}"]  # fmt: skip
    [pull] = [p for p in github_api.pulls(repo.name) if p.head == "promoter/rollback-prod"]
    assert data["pull_request"]["number"] == pull.number and pull.base == "env/prod"
    assert pull.title == "rollback(prod): web 1.4.1" and pull.labels == ["rollback"]
    assert f"back to the pinned values of `{seed[:12]}`" in (pull.body or "")
    assert "| web | web/web | `apps/web/values.yaml` | `image.tag` | `1.5.0` | `1.4.1` |" in (
        pull.body or "")  # fmt: skip

    # The same rollback again: the pull request already carries it.
    again = json.loads(gh(capsys, repo, github_api, "--output", "json", "rollback", "prod",
                          "--to", seed).out)  # fmt: skip
    assert again["changed"] is False and again["commit"] == head
    assert again["pull_request"]["number"] == pull.number
    assert repo.sha("promoter/rollback-prod") == head

    # Merged on request; history reads the rollback back, with its pull request.
    run = gh(capsys, repo, github_api, "--output", "json", "rollback", "prod", "--to", seed,
             "--merge")  # fmt: skip
    assert run.code == 0, run.err
    done = json.loads(run.out)
    assert done["pull_request"]["merged"] is True
    assert repo.read_file("env/prod", "apps/web/values.yaml") == WEB
    top = json.loads(gh(capsys, repo, github_api, "--output", "json", "history", "prod").out)
    entry = top["entries"][0]
    assert entry["commit"] == done["pull_request"]["merge_commit"]
    assert (entry["verb"], entry["rollback_to"], entry["pull_request"]) == (
        "rollback", seed, pull.number)  # fmt: skip


def test_a_pull_request_environment_needs_a_forge(repo, capsys):
    run = cli(capsys, repo, "rollback", "prod", "--steps", "1")
    assert run.code == 2 and "needs a forge API" in run.err


def test_a_chart_dependency_rollback_keeps_chart_lock_in_sync(env_repo, capsys, via):
    """A chart pin in a Chart.yaml `dependencies` entry goes back with its Chart.lock (the
    plan is update's), so `helm dependency build` still takes the result."""
    from promoter.helmlock import check_lock, lock_digest

    chart = ("apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n- name: web\n"
             "  version: 0.3.0\n  repository: oci://ghcr.io/acme/charts\n")  # fmt: skip
    deps = YAML(typ="safe").load(chart)["dependencies"]
    locked = [{"name": "web", "repository": "oci://ghcr.io/acme/charts", "version": "0.3.0"}]
    lock = ("dependencies:\n- name: web\n  repository: oci://ghcr.io/acme/charts\n"
            f'  version: 0.3.0\ndigest: {lock_digest(deps, locked)}\n'
            'generated: "2025-06-01T00:00:00Z"\n')  # fmt: skip
    config = CONFIG.replace("{file: apps/api/helmrelease.yaml, version: spec.chart.spec.version}",
                            '{file: apps/api/Chart.yaml, version: "dependencies[name=web].version"}')  # fmt: skip
    files = {**FILES, "promoter.yaml": config, "apps/api/Chart.yaml": chart,
             "apps/api/Chart.lock": lock}  # fmt: skip
    repo = env_repo({"main": files, "env/dev": files})
    seed = repo.sha("env/dev")
    update(capsys, repo, "chart:api=0.4.0")
    data = rollback(capsys, repo, "--to", seed)
    assert data["files"] == ["apps/api/Chart.lock", "apps/api/Chart.yaml"]
    assert [(c["key"], c["old"], c["new"]) for c in data["changes"]] == [
        ("dependencies[name=web].version", "0.4.0", "0.3.0")]  # fmt: skip
    now_chart = repo.read_file("env/dev", "apps/api/Chart.yaml")
    now_lock = repo.read_file("env/dev", "apps/api/Chart.lock")
    assert now_chart == chart and "version: 0.3.0" in now_lock
    assert check_lock(now_chart, now_lock) is None
