"""`promoter history ENV` end to end: real git over smart HTTP, commits written by promoter
itself (update, a merged pull request through the GitHub double, rollback) and by people,
the real CLI. History reads the trailers back; what it shows must be what happened."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from promoter.sandbox import TEST_TOKEN, GitHttpServer
from promoter.sandbox.envrepo import EnvRepo, git_env, rev_list_parents
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
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
    chart: {file: apps/web/helmrelease.yaml, version: spec.chart.spec.version}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag}
"""
WEB = 'image:\n  tag: "1.4.1"\nreplicas: 2\n'
API = "image:\n  tag: 2.0.0\n"
RELEASE = "spec:\n  chart:\n    spec:\n      version: 0.3.0\n"
FILES = {
    "promoter.yaml": CONFIG,
    "apps/web/values.yaml": WEB,
    "apps/web/helmrelease.yaml": RELEASE,
    "apps/api/values.yaml": API,
}
APP_SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def repo(env_repo: Any) -> EnvRepo:
    return env_repo({"main": FILES, "env/dev": FILES, "env/prod": FILES})


@pytest.fixture
def ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """promoter runs as a GitHub Actions job started by alice."""
    for name, value in {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "alice",
                        "GITHUB_REPOSITORY": "acme/web", "GITHUB_RUN_ID": "7",
                        "GITHUB_SHA": APP_SHA}.items():  # fmt: skip
        monkeypatch.setenv(name, value)


def cli(capsys: pytest.CaptureFixture[str], repo: EnvRepo, *args: str) -> Run:
    return run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--forge", "none", *args)


def history(capsys: pytest.CaptureFixture[str], repo: EnvRepo, *args: str) -> dict[str, Any]:
    run = cli(capsys, repo, "--output", "json", "history", *args)
    assert run.code == 0, run.err
    data: dict[str, Any] = json.loads(run.out)
    return data


def manual(repo: EnvRepo, branch: str, files: dict[str, str | None], subject: str) -> str:
    return repo.commit(branch, files, subject)


def test_a_branch_mixing_promoter_and_manual_commits(repo, capsys, ci):
    seed = repo.sha("env/dev")
    assert cli(capsys, repo, "update", "dev", "--image", "web=1.5.0").code == 0
    first = repo.sha("env/dev")
    hotfix = manual(repo, "env/dev", {"apps/web/values.yaml": WEB.replace("2", "3"),
                                      "NOTES.md": "scaled up\n"}, "Scale web to 3 replicas")  # fmt: skip
    run = cli(capsys, repo, "update", "dev", "--image", "api=2.1.0", "--chart", "web=0.4.0",
              "--source-url", "https://ci.example/build/9")  # fmt: skip
    assert run.code == 0, run.err
    second = repo.sha("env/dev")

    data = history(capsys, repo, "dev")
    assert (data["environment"], data["branch"], data["limit"]) == ("dev", "env/dev", 20)
    assert data["complete"] is True
    entries = data["entries"]
    assert [e["commit"] for e in entries] == [second, hotfix, first, seed]
    assert [e["kind"] for e in entries] == ["promoter", "manual", "promoter", "manual"]

    newest = entries[0]
    assert newest["verb"] == "update" and newest["who"] == "alice" and newest["actor"] == "alice"
    assert newest["changes"] == [
        {"app": "web", "pin": "web/chart", "key": None, "old": "0.3.0", "new": "0.4.0"},
        {"app": "api", "pin": "api/api", "key": "image.tag", "old": "2.0.0", "new": "2.1.0"},
    ] or newest["changes"] == [
        {"app": "api", "pin": "api/api", "key": "image.tag", "old": "2.0.0", "new": "2.1.0"},
        {"app": "web", "pin": "web/chart", "key": None, "old": "0.3.0", "new": "0.4.0"},
    ]
    assert newest["source"] == f"acme/web@{APP_SHA}"
    assert newest["source_url"] == "https://ci.example/build/9"
    assert newest["pipeline"] == "https://github.com/acme/web/actions/runs/7"
    assert newest["rollback_to"] is None and newest["files"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", newest["time"])

    person = entries[1]
    assert person["author"] == "Promoter Test" and person["who"] == "Promoter Test"
    assert person["subject"] == "Scale web to 3 replicas" and person["changes"] == []
    assert person["files"] == [{"status": "A", "path": "NOTES.md"},
                               {"status": "M", "path": "apps/web/values.yaml"}]  # fmt: skip
    assert person["files_total"] == 2 and person["environment"] is None
    assert entries[2]["changes"] == [{"app": "web", "pin": "web/web", "key": "image.tag",
                                      "old": "1.4.1", "new": "1.5.0"}]  # fmt: skip
    # The seed commit is the root: every file it holds is "added".
    assert entries[3]["files_total"] == 4

    table = cli(capsys, repo, "history", "dev")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0] == "dev (env/dev): 4 commits, the whole branch, newest first"
    assert lines[1].split() == ["WHEN", "(UTC)", "COMMIT", "CHANGE", "WHO", "WHAT"]
    row = next(line for line in lines if second[:12] in line)
    assert "update" in row and "alice" in row
    assert "api/api image.tag 2.0.0 -> 2.1.0" in table.out
    assert "web chart 0.3.0 -> 0.4.0" in table.out
    assert f"from acme/web@{APP_SHA}" in table.out
    assert "pipeline https://github.com/acme/web/actions/runs/7" in table.out
    row = next(line for line in lines if hotfix[:12] in line)
    assert "manual" in row and "Promoter Test" in row and "Scale web to 3 replicas" in row
    assert "A NOTES.md, M apps/web/values.yaml" in table.out


def test_limit_fetches_and_shows_only_the_newest(repo, capsys, git_server: GitHttpServer):
    for n in range(6):
        manual(repo, "env/dev", {"NOTES.md": f"{n}\n"}, f"note {n}")
    data = history(capsys, repo, "dev", "--limit", "3")
    assert [e["subject"] for e in data["entries"]] == ["note 5", "note 4", "note 3"]
    assert data["complete"] is False and data["limit"] == 3
    assert [e["files"] for e in data["entries"]] == [[{"status": "M", "path": "NOTES.md"}]] * 3
    table = cli(capsys, repo, "history", "dev", "--limit", "3")
    assert table.out.splitlines()[0] == "dev (env/dev): the last 3 commits, newest first"


def test_history_reads_commits_and_trees_never_a_blob(repo, capsys, ci, tmp_path):
    """Straight through the reading code on a real scratch repo: after it, the repo holds
    commits and trees, and not one blob, though manual changes were listed with files."""
    from promoter.commands.history import read_history
    from promoter.gitrepo import GitRepo, Remote

    assert cli(capsys, repo, "update", "dev", "--image", "web=1.5.0").code == 0
    manual(repo, "env/dev", {"NOTES.md": "x\n", "apps/api/values.yaml": API + "# x\n"}, "note")
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    entries, complete = read_history(scratch, "dev", "env/dev", 20, ["dev", "prod"])
    assert complete and [e.kind for e in entries] == ["manual", "promoter", "manual"]
    assert entries[0].files == (("A", "NOTES.md"), ("M", "apps/api/values.yaml"))
    out = subprocess.run(["git", "--git-dir", str(scratch.path), "cat-file",
                          "--batch-all-objects", "--batch-check=%(objecttype)"],
                         capture_output=True, text=True, check=True, env=git_env()).stdout  # fmt: skip
    kinds = set(out.split())
    assert kinds == {"commit", "tree"}, kinds


def test_a_merged_pull_request_is_one_promoter_change(
    repo, capsys, ci, github_api: GitHubApiDouble
):
    """prod takes pull requests: the change lands as a merge of promoter/update-prod, which
    history shows as the promoter change it carries, with its number and who merged it."""
    prod = repo.sha("env/prod")
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--forge", "github",
                  "--api-url", github_api.api_url, "--output", "json", "update", "prod",
                  "--image", "web=1.5.0", "--merge")  # fmt: skip
    assert run.code == 0, run.err
    result = json.loads(run.out)
    number, merge = result["pull_request"]["number"], result["pull_request"]["merge_commit"]
    assert repo.sha("env/prod") == merge
    [(_, parents)] = [row for row in rev_list_parents(repo.path, merge) if row[0] == merge]
    assert parents[0] == prod and len(parents) == 2

    data = history(capsys, repo, "prod")
    assert [e["commit"] for e in data["entries"]] == [merge, prod]
    landed = data["entries"][0]
    assert landed["kind"] == "promoter" and landed["verb"] == "update"
    assert landed["pull_request"] == number
    assert landed["merged_commit"] == parents[1] and landed["merged_by"]
    assert landed["actor"] == "alice" and landed["subject"] == "update(prod): web 1.5.0"
    assert landed["changes"] == [{"app": "web", "pin": "web/web", "key": "image.tag",
                                  "old": "1.4.1", "new": "1.5.0"}]  # fmt: skip
    table = cli(capsys, repo, "history", "prod")
    assert f"pull request #{number} merged by" in table.out
    md = cli(capsys, repo, "history", "prod", "--format", "markdown")
    assert f"pull request #{number}" in md.out


def test_a_merge_of_another_branch_is_a_manual_change(repo, capsys):
    """A person merges their own branch into env/dev: a manual change, with the files the
    merge brought in."""
    base = repo.sha("env/dev")
    subprocess.run(["git", "--git-dir", str(repo.path), "branch", "feature", base],
                   check=True, env=git_env())  # fmt: skip
    theirs = repo.commit("feature", {"extra.yaml": "a: 1\n"}, "add extra")
    ours = manual(repo, "env/dev", {"NOTES.md": "n\n"}, "note")
    tree = subprocess.run(["git", "--git-dir", str(repo.path), "merge-tree", "--write-tree",
                           ours, theirs], capture_output=True, text=True, check=True,
                          env=git_env()).stdout.split()[0]  # fmt: skip
    merge = subprocess.run(["git", "--git-dir", str(repo.path), "commit-tree", tree, "-p", ours,
                            "-p", theirs, "-m", "Merge pull request #41 from acme/feature"],
                           capture_output=True, text=True, check=True,
                           env=git_env()).stdout.strip()  # fmt: skip
    subprocess.run(["git", "--git-dir", str(repo.path), "update-ref", "refs/heads/env/dev", merge],
                   check=True, env=git_env())  # fmt: skip
    data = history(capsys, repo, "dev")
    top = data["entries"][0]
    assert (top["commit"], top["kind"], top["pull_request"]) == (merge, "manual", 41)
    assert top["files"] == [{"status": "A", "path": "extra.yaml"}]
    # First-parent walk: the merged branch's own commit is not listed as an entry.
    assert [e["commit"] for e in data["entries"]] == [merge, ours, base]


def test_a_promoter_commit_for_another_environment_is_shown_as_manual(repo, capsys, ci):
    """Its trailers name dev, so on env/prod it is not a change of prod made by promoter."""
    message = ("update(dev): web 9.9.9\n\nPromoter-Environment: dev\n"
               "Promoter-Change: web/web image.tag 1.4.1 -> 9.9.9\n")  # fmt: skip
    manual(repo, "env/prod", {"apps/web/values.yaml": WEB.replace("1.4.1", "9.9.9")}, message)
    top = history(capsys, repo, "prod")["entries"][0]
    assert top["kind"] == "manual" and top["environment"] == "dev" and top["changes"] == []
    table = cli(capsys, repo, "history", "prod")
    assert "manual: update(dev): web 9.9.9 (promoter, for dev)" in table.out


# (No line of a commit message may start with `::`: conftest checks every repo for that.)
HOSTILE_SUBJECT = "pwned <img src=x onerror=alert(1)> | `x` *y* [z](http://e)\x1b[2J"


def test_values_from_the_repo_are_escaped_for_each_sink(repo, capsys):
    """Subjects, author names, paths and trailer values are foreign: the table shows them
    on one line (control characters escaped), Markdown cannot be broken out of, JSON keeps
    them exactly."""
    message = (f"{HOSTILE_SUBJECT}\n\nPromoter-Environment: dev\n"
               'Promoter-Change: web/web image.tag 1.4.1 -> "1.5.0\\n| injected | row |"\n'
               "Promoter-Source: ::error::x\n"
               "Promoter-Pipeline: https://ci.example/<script>\n")  # fmt: skip
    manual(repo, "env/dev", {"apps/web/values.yaml": WEB}, message)
    manual(repo, "env/dev", {"apps/we|b`<b>.yaml": "x: 1\n"}, HOSTILE_SUBJECT)

    data = history(capsys, repo, "dev")
    trailered, person = data["entries"][1], data["entries"][0]
    assert trailered["kind"] == "promoter"
    assert trailered["changes"][0]["new"] == "1.5.0\n| injected | row |"
    assert person["subject"] == HOSTILE_SUBJECT
    assert person["files"] == [{"status": "A", "path": "apps/we|b`<b>.yaml"}]

    table = cli(capsys, repo, "history", "dev")
    assert table.code == 0, table.err
    assert "\x1b" not in table.out
    assert "\\u001b[2J" in table.out  # the subject, JSON-quoted because of ESC
    assert '"1.5.0\\n| injected | row |"' in table.out  # the value stays on its line
    assert not any(line.lstrip().startswith(("::", "| injected")) for line in
                   table.out.splitlines())  # fmt: skip

    md = cli(capsys, repo, "history", "dev", "--format", "markdown")
    assert md.code == 0, md.err
    body = md.out
    assert "\x1b" not in body and "](http" not in body
    # Outside code spans (where nothing is markup), no `<` opens HTML but promoter's <br>.
    prose = re.sub(r"`[^`]*`|<code>[^<]*</code>|<br>", "", body)
    assert not re.search(r"(?<!\\)<", prose), prose
    assert "\\<img" in body
    rows = [line for line in body.splitlines() if line.startswith("| 2")]
    assert len(rows) == 3  # one row per commit: nothing added a row or a line
    # Every row keeps its six cells: no value adds an unescaped `|`.
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row.replace("&#124;", ""))) == 7, row


def test_a_rollback_is_read_back_with_its_target(repo, capsys, ci):
    seed = repo.sha("env/dev")
    assert cli(capsys, repo, "update", "dev", "--image", "web=1.5.0").code == 0
    assert cli(capsys, repo, "rollback", "dev", "--to", seed[:10]).code == 0
    top = history(capsys, repo, "dev")["entries"][0]
    assert top["verb"] == "rollback" and top["rollback_to"] == seed
    assert top["changes"] == [{"app": "web", "pin": "web/web", "key": "image.tag",
                               "old": "1.5.0", "new": "1.4.1"}]  # fmt: skip
    table = cli(capsys, repo, "history", "dev")
    assert f"rolled back to {seed[:12]}" in table.out


def test_bad_input(repo, capsys):
    run = cli(capsys, repo, "history", "nope")
    assert run.code == 2 and "unknown environment 'nope'" in run.err
    run = cli(capsys, repo, "history", "dev", "--limit", "0")
    assert run.code == 2


def test_the_branch_promoter_yaml_names_wins_over_the_usual_one(env_repo, capsys):
    """history starts fetching env/<name> before promoter.yaml is read; when the config
    names another branch, that guess is dropped, even if env/<name> exists."""
    config = CONFIG.replace("dev: {branch: env/dev}", "dev: {branch: deploy/dev}")
    files = {**FILES, "promoter.yaml": config}
    repo = env_repo({"main": files, "deploy/dev": files, "env/dev": files})
    decoy = repo.commit("env/dev", {"NOTES.md": "decoy\n"}, "decoy on env/dev")
    real = repo.commit("deploy/dev", {"NOTES.md": "real\n"}, "real on deploy/dev")
    data = history(capsys, repo, "dev")
    assert data["branch"] == "deploy/dev"
    assert [e["subject"] for e in data["entries"]] == ["real on deploy/dev", "seed"]
    assert data["entries"][0]["commit"] == real and decoy not in json.dumps(data)
