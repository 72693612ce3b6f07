"""The api path's seam (promoter.forge.commits.CommitAPI) on GitHub: GraphQL reads and
`createCommitOnBranch` against the strict GitHub double on the real bare repos."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from promoter.forge.base import ForgeAuthError, ForgeError, ForgeInfo
from promoter.forge.commits import HEAD_MOVED, open_commit_api
from promoter.forge.github_commits import HELPERS_PER_RUN, GitHubCommits
from promoter.forge.graphql import graphql_url
from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import EnvRepo, git_env
from promoter.sandbox.github_api import GitHubApiDouble
from tests.helpers import run_cli

pytest_plugins = ["tests.forge_fixtures"]


def _git(repo: EnvRepo, *args: str) -> str:
    out = subprocess.run(["git", "--git-dir", str(repo.path), *args], capture_output=True,
                         env=git_env(), check=True)  # fmt: skip
    return out.stdout.decode()


@pytest.fixture
def bed(github_api: GitHubApiDouble, env_repo):  # type: ignore[no-untyped-def]
    repo = env_repo(
        {
            "main": {"promoter.yaml": "environments: {}\n"},
            "env/dev": {"apps/web/values.yaml": "tag: 1\r\n", "bin.dat": "x\0y"},
        }
    )
    info = ForgeInfo("github", github_api.api_url, repo.name, "localhost")
    return repo, open_commit_api(info, TEST_TOKEN), github_api


def test_snapshot_reads_head_files_and_config_in_one_request(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api, _ = bed
    head = _git(repo, "rev-parse", "refs/heads/env/dev").strip()
    snap = api.snapshot("env/dev", ["apps/web/values.yaml", "missing.yaml"], ["promoter.yaml"])
    assert api.requests == 1
    assert snap.sha == head
    assert snap.files == {"apps/web/values.yaml": b"tag: 1\r\n", "missing.yaml": None}
    assert snap.default_files == {"promoter.yaml": b"environments: {}\n"}
    assert snap.committed is not None and snap.committed.tzinfo is not None
    # Cached at the SHA: no second request; a binary blob comes over REST, byte-exact.
    assert api.read_files(head, ["apps/web/values.yaml"]) == {"apps/web/values.yaml": b"tag: 1\r\n"}
    assert api.requests == 1
    assert api.read_files(head, ["bin.dat"]) == {"bin.dat": b"x\0y"}
    assert api.snapshot("env/nope").sha is None


def test_create_commit_is_a_compare_and_swap(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api, double = bed
    head = api.branch_head("env/dev")
    message = "update(dev): web 2\n\nPromoter-Environment: dev\nPromoter-Actor: ci\n"
    new = api.create_commit(
        "env/dev", head, {"apps/web/values.yaml": b"tag: 2\n", "bin.dat": None}, message
    )
    assert isinstance(new, str) and api.branch_head("env/dev") == new
    assert _git(repo, "log", "-1", "--format=%an|%cn <%ce>|%P", new).strip() == (
        f"{repo_login(repo)}|GitHub <noreply@github.com>|{head}"
    )
    assert _git(repo, "cat-file", "commit", new).split("\n\n", 1)[1] == message
    assert _git(repo, "show", f"{new}:apps/web/values.yaml") == "tag: 2\n"
    meta = api.commit_meta(new)
    assert meta.parents == (head,) and meta.message == message.rstrip("\n")  # as GitHub
    assert api.changed_paths(new) == {"apps/web/values.yaml", "bin.dat"}
    # GitHub signed it: its REST view of the commit says "Verified".
    assert _get(double, f"/repos/{repo.name}/commits/{new}")["commit"]["verification"]["verified"]
    assert not _get(double, f"/repos/{repo.name}/commits/{head}")["commit"]["verification"][
        "verified"
    ]
    # The head moved: nothing written, HEAD_MOVED.
    assert api.create_commit("env/dev", head, {"a": b"b"}, "x\n") is HEAD_MOVED
    assert api.branch_head("env/dev") == new


def repo_login(repo: EnvRepo) -> str:
    return "promoter-bot"


def test_owned_branches_move_only_under_their_lease(bed) -> None:  # type: ignore[no-untyped-def]
    _repo, api, _ = bed
    head = api.branch_head("env/dev")
    main = api.branch_head("main")
    assert api.set_owned("promoter/update-dev", head, None)
    assert not api.set_owned("promoter/update-dev", main, None)  # exists now
    assert api.set_owned("promoter/update-dev", main, head)
    assert api.branch_head("promoter/update-dev") == main
    assert not api.delete_owned("promoter/update-dev", head)
    assert api.delete_owned("promoter/update-dev", main)
    assert api.branch_head("promoter/update-dev") is None
    with pytest.raises(ForgeError, match="not a promoter/ branch"):
        api.set_owned("env/dev", main, head)


# --- leftover `<branch>-next-<hex>` helpers of a run killed mid-replace ------------------------

OWNED = "promoter/update-dev"
STALE = f"{OWNED}-next-0123abcd"  # what a run killed between the helper and the move leaves
# Names that only look like a helper of OWNED: never deleted.
ALIKE = (
    f"{OWNED}-next-xyz",
    f"{OWNED}-next-0123ABCD",
    f"{OWNED}-next-0123abc",
    f"{OWNED}-next-0123abcd0",
    "promoter/update-prod-next-0123abcd",
    "promoter/x/update-dev-next-0123abcd",
    "update-dev-next-0123abcd",
    "feature/update-dev-next-0123abcd",
)
MESSAGE = "update(dev): web {}\n\nPromoter-Environment: dev\nPromoter-Actor: ci\n"


def _branches(repo: EnvRepo) -> dict[str, str]:
    out = _git(repo, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads/")
    return dict(line.split(" ", 1) for line in out.splitlines())


def _leave(repo: EnvRepo, sha: str, *names: str) -> None:
    for name in names:
        _git(repo, "update-ref", f"refs/heads/{name}", sha)


def _replace(api: Any, parent: str, tag: int) -> Any:
    """What the delivery does on the api path: read the branch (ApiWay.owned), replace it."""
    expected = api.branch_head(OWNED)
    files = {"apps/web/values.yaml": f"tag: {tag}\n".encode()}
    return api.replace_owned(OWNED, parent, files, MESSAGE.format(tag), expected)


def test_a_replace_deletes_the_branchs_leftover_helpers_in_its_own_move(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api, double = bed
    tip = api.branch_head("env/dev")
    first = _replace(api, tip, 2)  # created: no helper on that path
    assert isinstance(first, str)
    _leave(repo, tip, STALE, *ALIKE)
    _leave(repo, first, f"{OWNED}-next-fedcba98")  # killed after its commit, before the move
    before, calls = api.requests, len(double.request_log)
    second = _replace(api, tip, 3)
    # The read, the helper, the commit, one updateRefs: the same four as with nothing left.
    assert api.requests - before == 4
    assert double.request_log[calls:] == [("POST", "/graphql", 200)] * 4
    assert isinstance(second, str) and api.branch_head(OWNED) == second
    branches = _branches(repo)
    assert STALE not in branches and f"{OWNED}-next-fedcba98" not in branches
    assert {b for b in branches if "-next-" in b} == set(ALIKE)
    assert all(branches[name] == tip for name in ALIKE)  # untouched
    before = api.requests
    assert isinstance(_replace(api, tip, 4), str)
    assert api.requests - before == 4
    assert double.violations == []


def test_leftovers_past_one_page_go_in_later_runs_and_a_moved_one_is_left_alone(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api, double = bed
    tip, main = api.branch_head("env/dev"), api.branch_head("main")
    assert isinstance(_replace(api, tip, 2), str)
    names = [f"{OWNED}-next-{i:08x}" for i in range(HELPERS_PER_RUN + 2)]
    _leave(repo, tip, *names)
    before = api.requests
    assert isinstance(_replace(api, tip, 3), str)
    assert api.requests - before == 4
    # GitHub's refs connection is paginated: the first page went, the rest waits.
    assert [b for b in _branches(repo) if "-next-" in b] == names[HELPERS_PER_RUN:]
    # A helper that moves between the read and the move is left alone; the move still
    # happens (the refused mutation is sent again without the deletions: one more request).
    expected = api.branch_head(OWNED)
    _leave(repo, main, names[-1])
    before = api.requests
    files = {"apps/web/values.yaml": b"tag: 4\n"}
    made = api.replace_owned(OWNED, tip, files, MESSAGE.format(4), expected)
    # The helper, the commit, the refused move, a look at the branch and the helper, the move.
    assert api.requests - before == 6
    assert isinstance(made, str) and api.branch_head(OWNED) == made
    branches = _branches(repo)
    assert branches[names[-1]] == main and names[-2] in branches  # all or none: both stay
    assert [b for b in branches if "-next-" in b] == names[-2:]
    assert isinstance(_replace(api, tip, 5), str)  # the next run: gone
    assert [b for b in _branches(repo) if "-next-" in b] == []
    assert double.violations == []


def test_a_run_whose_helper_a_winner_deleted_retries_instead_of_failing(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api, double = bed
    tip = api.branch_head("env/dev")
    first = _replace(api, tip, 2)
    expected = api.branch_head(OWNED)

    def winner() -> None:  # another run moved the branch and deleted this run's helper
        other = _git(repo, "commit-tree", f"{tip}^{{tree}}", "-p", tip, "-m", "other").strip()
        _git(repo, "update-ref", f"refs/heads/{OWNED}", other)
        for name in _branches(repo):
            if name.startswith(f"{OWNED}-next-"):
                _git(repo, "update-ref", "-d", f"refs/heads/{name}")

    _before_request(double, 2, winner)  # 1: the helper's creation, 2: its commit
    files = {"apps/web/values.yaml": b"tag: 3\n"}
    assert api.replace_owned(OWNED, tip, files, MESSAGE.format(3), expected) is HEAD_MOVED
    assert api.branch_head(OWNED) not in (first, None)
    assert [b for b in _branches(repo) if "-next-" in b] == []


def test_a_helper_deleted_between_its_commit_and_the_move_means_retry(bed) -> None:  # type: ignore[no-untyped-def]
    # Even with the branch still where this run read it (deleted and created again at the
    # very same commit, as another run's cleanup on the create path may see it): a retry.
    repo, api, double = bed
    tip = api.branch_head("env/dev")
    first = _replace(api, tip, 2)
    expected = api.branch_head(OWNED)

    def cleanup() -> None:
        for name in _branches(repo):
            if name.startswith(f"{OWNED}-next-"):
                _git(repo, "update-ref", "-d", f"refs/heads/{name}")

    _before_request(double, 3, cleanup)  # 3: the move
    files = {"apps/web/values.yaml": b"tag: 3\n"}
    assert api.replace_owned(OWNED, tip, files, MESSAGE.format(3), expected) is HEAD_MOVED
    assert api.branch_head(OWNED) == first
    assert isinstance(_replace(api, tip, 3), str)  # the retry
    assert [b for b in _branches(repo) if "-next-" in b] == []
    assert double.violations == []


def test_creating_the_branch_again_deletes_the_leftovers_too(bed) -> None:  # type: ignore[no-untyped-def]
    # Its pull request merged, GitHub deleted the branch; a killed run's helper stayed.
    repo, api, double = bed
    tip = api.snapshot("env/dev").sha  # as a run reads it first (the repository's id along)
    _leave(repo, tip, STALE, *ALIKE)
    before = api.requests
    made = _replace(api, tip, 2)
    assert api.requests - before == 3  # the read, the creation, the commit: as with none
    assert isinstance(made, str) and api.branch_head(OWNED) == made
    branches = _branches(repo)
    assert STALE not in branches and {b for b in branches if "-next-" in b} == set(ALIKE)
    # A helper that moved after the read is left alone; the branch is created all the same.
    _git(repo, "update-ref", "-d", f"refs/heads/{OWNED}")
    _leave(repo, tip, STALE)
    expected = api.branch_head(OWNED)
    _leave(repo, made, STALE)
    files = {"apps/web/values.yaml": b"tag: 3\n"}
    again = api.replace_owned(OWNED, tip, files, MESSAGE.format(3), expected)
    assert isinstance(again, str) and _branches(repo)[STALE] == made
    assert double.violations == []


def _before_request(double: GitHubApiDouble, n: int, action: Any) -> None:
    """Run `action` just before the `n`th next GraphQL request reaches the double."""
    if n == 1:
        double.before("POST /graphql", action)
    else:
        double.before("POST /graphql", lambda: _before_request(double, n - 1, action))


# --- the option, the per-environment setting, bad input ----------------------------------------

CONFIG = """\
environments:
  dev: {branch: env/dev}
  prod: {branch: env/prod, from: dev, commit_via: api}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
"""
FILES = {"promoter.yaml": CONFIG, "apps/web/values.yaml": "image:\n  tag: 1.0.0\n"}


@pytest.fixture
def envs(env_repo):  # type: ignore[no-untyped-def]
    return env_repo({"main": FILES, "env/dev": FILES, "env/prod": FILES})


def _committer(repo: EnvRepo, ref: str) -> str:
    return _git(repo, "log", "-1", "--format=%cn <%ce>", ref).strip()


@pytest.mark.parametrize(
    "args",
    [
        ("update", "dev", "--image", "web=2.0.0"),
        ("promote", "--from", "dev", "--no-gate"),
        ("rollback", "dev", "--steps", "1"),
    ],
)
def test_api_path_without_a_forge_exits_2_before_anything_is_written(
    envs, git_server, capsys, args
):  # type: ignore[no-untyped-def]
    envs.commit(
        "env/dev", {"apps/web/values.yaml": "image:\n  tag: 1.5.0\n"}, "update(dev): web 1.5.0"
    )
    before = {b: envs.sha(b) for b in ("main", "env/dev", "env/prod")}
    git_server.wait_idle()
    mark = len(git_server.requests)
    run = run_cli(capsys, "--repo", envs.url, "--token", TEST_TOKEN, "--forge", "none",
                  "--commit-via", "api", *args)  # fmt: skip
    assert run.code == 2, run.output
    [line] = run.err.strip().splitlines()
    assert "--commit-via api" in line and "--forge github|gitlab" in line
    assert {b: envs.sha(b) for b in before} == before
    git_server.wait_idle()
    assert not [r for r in git_server.requests[mark:] if "git-receive-pack" in r.path]


def test_an_environment_that_requires_api_commits_gets_them_without_the_flag(
    envs, github_api, capsys
):  # type: ignore[no-untyped-def]
    forge = ("--repo", envs.url, "--token", TEST_TOKEN, "--forge", "github",
             "--api-url", github_api.api_url)  # fmt: skip
    run = run_cli(capsys, *forge, "update", "prod", "--image", "web=2.0.0")
    assert run.code == 0, run.err
    assert _committer(envs, "env/prod") == "GitHub <noreply@github.com>"
    run = run_cli(capsys, *forge, "update", "dev", "--image", "web=2.0.0")
    assert run.code == 0, run.err
    assert _committer(envs, "env/dev") != "GitHub <noreply@github.com>"  # git, as asked
    # Asking git for it explicitly is refused, before anything is written.
    prod = envs.sha("env/prod")
    run = run_cli(capsys, *forge, "--commit-via", "git", "update", "prod", "--image", "web=3.0.0")
    assert run.code == 2 and "requires commits made through the forge's API" in run.err
    assert envs.sha("env/prod") == prod
    # A re-run with the same inputs writes nothing on the api path either.
    run = run_cli(capsys, *forge, "update", "prod", "--image", "web=2.0.0")
    assert run.code == 0 and envs.sha("env/prod") == prod


def test_bad_commit_via_values_exit_2(envs, capsys, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    local = tmp_path / "promoter.yaml"
    local.write_text(CONFIG.replace("commit_via: api", "commit_via: ssh"))
    base = ("--repo", envs.url, "--token", TEST_TOKEN)
    run = run_cli(capsys, *base, "--config", str(local), "update", "dev", "--image", "web=2.0.0")
    assert run.code == 2
    [line] = run.err.strip().splitlines()
    assert "environments.prod.commit_via: 'ssh' is not one of git, api" in line
    monkeypatch.setenv("PROMOTER_COMMIT_VIA", "ssh")
    run = run_cli(capsys, *base, "update", "dev", "--image", "web=2.0.0")
    assert run.code == 2 and "--commit-via" in run.err and "'ssh'" in run.err
    assert envs.sha("env/dev") == envs.shas["env/dev"]


# --- errors of the api path: one line, never the token -----------------------------------------


def test_api_path_errors_are_one_line_without_the_token(envs, github_api, capsys):  # type: ignore[no-untyped-def]
    forge = ("--repo", envs.url, "--token", TEST_TOKEN, "--forge", "github",
             "--api-url", github_api.api_url, "--commit-via", "api")  # fmt: skip
    github_api.fail("POST /graphql", [401])
    run = run_cli(capsys, *forge, "update", "dev", "--image", "web=2.0.0")
    assert run.code != 0 and TEST_TOKEN not in run.output
    [line] = run.err.strip().splitlines()
    assert "authentication failed" in line
    github_api.fail("POST /graphql", [500] * 8)
    run = run_cli(capsys, *forge, "update", "dev", "--image", "web=2.0.0")
    assert run.code == 1 and TEST_TOKEN not in run.output
    assert len(run.err.strip().splitlines()) == 1
    assert envs.sha("env/dev") == envs.shas["env/dev"]
    # An unknown repository: the error names it, not the token.
    info = ForgeInfo("github", github_api.api_url, "acme/nope", "localhost")
    with pytest.raises(ForgeError) as caught:
        open_commit_api(info, TEST_TOKEN).snapshot("env/dev", ["a.yaml"])
    assert "acme/nope" in str(caught.value) and TEST_TOKEN not in str(caught.value)


def test_a_missing_environment_branch_exits_2_naming_it_on_the_api_path(
    env_repo, github_api, capsys
):  # type: ignore[no-untyped-def]
    repo = env_repo({"main": FILES, "env/dev": FILES})
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--forge", "github",
                  "--api-url", github_api.api_url, "--commit-via", "api",
                  "update", "prod", "--image", "web=2.0.0")  # fmt: skip
    assert run.code == 2
    [line] = run.err.strip().splitlines()
    assert "branch 'env/prod' does not exist" in line


# --- the double holds the mutations to GitHub's schema ------------------------------------------


def _get(api: GitHubApiDouble, path: str) -> Any:
    import json
    import urllib.request

    request = urllib.request.Request(
        api.api_url + path, headers={"Authorization": f"token {TEST_TOKEN}"}
    )
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


def _post(api: GitHubApiDouble, query: str, variables: dict[str, object]) -> dict[str, object]:
    import json
    import urllib.request

    request = urllib.request.Request(
        api.api_url.replace("/api/v3", "/api/graphql"),
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Authorization": f"token {TEST_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        return dict(json.load(answer))


_CREATE = (
    "mutation($input: CreateCommitOnBranchInput!) "
    "{ createCommitOnBranch(input: $input) { commit { oid } } }"
)


def test_the_double_answers_a_stale_head_as_github_does_and_refuses_unknown_input_fields(
    bed,
) -> None:  # type: ignore[no-untyped-def]
    repo, api, double = bed
    head = api.branch_head("env/dev")
    stale = "1" * 40
    good = {
        "branch": {"repositoryNameWithOwner": repo.name, "branchName": "env/dev"},
        "expectedHeadOid": stale,
        "message": {"headline": "x"},
        "fileChanges": {"additions": [{"path": "a.txt", "contents": "YQo="}]},
    }
    answer = _post(double, _CREATE, {"input": good})
    assert answer["data"] == {"createCommitOnBranch": None}
    [error] = answer["errors"]  # type: ignore[misc]
    assert error["type"] == "STALE_DATA" and error["path"] == ["createCommitOnBranch"]
    assert error["message"] == (
        f'Expected branch to point to "{stale}" but it did not. Pull and try again.'
    )
    assert api.branch_head("env/dev") == head
    for bad in (
        {**good, "author": {"name": "x"}},  # no such field: GitHub chooses the author
        {**good, "fileChanges": {"additions": [{"path": "a", "content": "YQo="}]}},
        {**good, "message": {"headline": "x", "title": "y"}},
        {**good, "branch": {"repository": repo.name, "branchName": "env/dev"}},
    ):
        assert "spec violation" in str(_post(double, _CREATE, {"input": bad}))
    assert len(double.violations) == 4
    double.violations.clear()


_REFS = (
    "query($owner: String!, $name: String!, $prefix: String!, $q: String) "
    "{ repository(owner: $owner, name: $name) { refs(refPrefix: $prefix, query: $q, first: 2) "
    "{ totalCount nodes { name prefix target { oid } } } } }"
)


def test_the_doubles_refs_is_paginated_and_takes_only_prefixes_github_takes(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api, double = bed
    tip = api.branch_head("env/dev")
    _leave(repo, tip, "promoter/a-next-1", "promoter/b", "promoter/xa-next-2", "promoter/a-next-3")
    owner, name = repo.name.split("/")
    variables = {"owner": owner, "name": name, "prefix": "refs/heads/promoter/"}
    refs = _post(double, _REFS, {**variables, "q": "A-next-"})["data"]["repository"]["refs"]  # type: ignore[index]
    # Names relative to the prefix; those starting with the query first; one page of `first`.
    assert refs["totalCount"] == 3
    assert refs["nodes"] == [
        {"name": n, "prefix": "refs/heads/promoter/", "target": {"oid": tip}}
        for n in ("a-next-1", "a-next-3")
    ]
    every = _post(double, _REFS, variables)["data"]["repository"]["refs"]  # type: ignore[index]
    assert every["totalCount"] == 4 and [n["name"] for n in every["nodes"]] == [
        "a-next-1",
        "a-next-3",
    ]
    assert double.violations == []
    for bad in (
        _REFS.replace("$prefix, query", '"refs/heads/promoter", query'),  # no trailing /
        _REFS.replace(", first: 2", ""),  # a connection needs `first`
        _REFS.replace("first: 2", "first: 101"),
    ):
        assert "spec violation" in str(_post(double, bad, {**variables, "q": None}))
    assert len(double.violations) == 3
    double.violations.clear()


# --- the same bytes and message on both paths ---------------------------------------------------

_CHART = (
    "apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n- name: web\n  version: 0.3.0\n"
    "  repository: oci://ghcr.io/acme/charts\n"
)


def _chart_files() -> dict[str, str]:
    from ruamel.yaml import YAML

    from promoter.helmlock import lock_digest

    deps = YAML(typ="safe").load(_CHART)["dependencies"]
    locked = [{"name": "web", "repository": "oci://ghcr.io/acme/charts", "version": "0.3.0"}]
    lock = (
        "dependencies:\n- name: web\n  repository: oci://ghcr.io/acme/charts\n  version: 0.3.0\n"
        f'digest: {lock_digest(deps, locked)}\ngenerated: "2025-06-01T00:00:00Z"\n'
    )
    config = (
        CONFIG
        + '    chart: {file: apps/web/Chart.yaml, version: "dependencies[name=web].version"}\n'
    )
    return {**FILES, "promoter.yaml": config, "apps/web/Chart.yaml": _CHART,
            "apps/web/Chart.lock": lock, "apps/web/values.yaml": 'image:\r\n  tag: "1.0.0"  # kept\r\n'}  # fmt: skip


def test_both_paths_write_the_same_tree_and_message(env_repo, github_api, capsys):  # type: ignore[no-untyped-def]
    files = _chart_files()
    trees, messages = {}, {}
    for via in ("git", "api"):
        repo = env_repo({"main": files, "env/dev": files})
        run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--forge", "github",
                      "--api-url", github_api.api_url, "--commit-via", via, "update", "dev",
                      "--image", "web=1.1.0", "--chart", "web=0.3.1")  # fmt: skip
        assert run.code == 0, run.err
        assert "apps/web/Chart.lock (kept in sync)" in run.out
        trees[via] = {path: repo.read_file("env/dev", path) for path in files}
        messages[via] = _git(repo, "log", "-1", "--format=%B", "env/dev")
        assert _git(repo, "rev-list", "--count", "env/dev").strip() == "2"
        # Chart.lock's `generated` is the commit time of the tip planned on, on both paths.
        stamp = int(_git(repo, "log", "-1", "--format=%ct", "env/dev~1"))
        seeded = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lock = trees[via]["apps/web/Chart.lock"]
        assert f'generated: "{seeded}"' in lock
        trees[via]["apps/web/Chart.lock"] = lock.replace(seeded, "<the tip's time>")
    assert trees["api"] == trees["git"]
    assert trees["api"]["apps/web/values.yaml"] == 'image:\r\n  tag: "1.1.0"  # kept\r\n'
    assert messages["api"] == messages["git"]


def test_an_api_path_update_costs_three_requests_and_a_rerun_two(
    envs, github_api, git_server, capsys
):  # type: ignore[no-untyped-def]
    forge = ("--repo", envs.url, "--token", TEST_TOKEN, "--forge", "github",
             "--api-url", github_api.api_url, "--commit-via", "api")  # fmt: skip
    git_server.wait_idle()
    mark = len(git_server.requests)
    for expected in (3, 2):  # promoter.yaml; the tip with its files; the commit (none again)
        before = len(github_api.request_log)
        run = run_cli(capsys, *forge, "update", "dev", "--image", "web=2.0.0")
        assert run.code == 0, run.err
        assert github_api.request_log[before:] == [("POST", "/graphql", 200)] * expected
    git_server.wait_idle()
    assert [r.path for r in git_server.requests[mark:]] == []  # no git at all


# --- the api path's own HTTP client (promoter.forge.graphql): PyGithub's URL, policy, errors ------


@pytest.mark.parametrize(
    "base",
    [
        "https://api.github.com",
        "https://ghe.example.com/api/v3",
        "https://ghe.example.com/api/v3/",
        "http://127.0.0.1:8080/prefix/api/v3",
        "https://ghe.example.com:8443/github",
    ],
)
def test_the_graphql_url_is_the_one_pygithub_derives(base: str) -> None:
    import github

    assert graphql_url(base.rstrip("/")) == github.Github(base_url=base).requester.graphql_url


def test_an_api_path_update_never_imports_pygithub(envs, github_api, no_proxy) -> None:  # type: ignore[no-untyped-def]
    # A process of its own: this one has imported PyGithub long ago.
    code = (
        "import sys\n"
        "from promoter.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('github', 'requests')))\n"
    )
    argv = ["--repo", envs.url, "--token", TEST_TOKEN, "--forge", "github", "--api-url",
            github_api.api_url, "--commit-via", "api", "update", "dev", "--image", "web=2.0.0"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env=git_env(), timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert _committer(envs, "env/dev") == "GitHub <noreply@github.com>"


def _statuses(double: GitHubApiDouble, mark: int) -> list[int]:
    return [status for _, _, status in double.request_log[mark:]]


@pytest.fixture
def no_proxy(monkeypatch):  # type: ignore[no-untyped-def]
    for name in ("https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def _commits_api(bed: Any, api_url: str | None = None, **options: Any) -> Any:
    repo, _, double = bed
    waits: list[float] = []
    info = ForgeInfo("github", api_url or double.api_url, repo.name, "127.0.0.1")
    return GitHubCommits(info, TEST_TOKEN, sleep=waits.append, **options), waits


def test_retries_follow_the_forge_adapters_policy_without_sleeping(bed, no_proxy) -> None:  # type: ignore[no-untyped-def]
    _, _, double = bed
    api, waits = _commits_api(bed)
    assert api.direct
    double.fail("POST /graphql", [502, 503])
    mark = len(double.request_log)
    assert api.snapshot("env/dev", ["apps/web/values.yaml"]).sha is not None
    assert _statuses(double, mark) == [502, 503, 200]
    assert waits == [0.0, 1.0]  # none before the first retry, then 0.5 * 2**(n-1)
    # Bounded: 4 tries, then the last answer, as one line.
    api, waits = _commits_api(bed)
    double.fail("POST /graphql", [502] * 4)
    mark = len(double.request_log)
    with pytest.raises(ForgeError) as caught:
        api.branch_head("env/dev")
    assert _statuses(double, mark) == [502] * 4 and waits == [0.0, 1.0, 2.0]
    assert str(caught.value).startswith("GitHub 502 while reading env/dev")


def test_rate_limits_and_refusals_on_the_api_path(bed, no_proxy) -> None:  # type: ignore[no-untyped-def]
    _, _, double = bed
    # Retry-After is honoured up to max_wait.
    api, waits = _commits_api(bed, max_wait=1)
    double.fail("POST /graphql", [429], retry_after=30)
    assert api.branch_head("env/dev") is not None and waits == [1.0]
    # A secondary rate limit without Retry-After waits max_wait.
    api, waits = _commits_api(bed, max_wait=7)
    double.fail("POST /graphql", [403])
    assert api.branch_head("env/dev") is not None and waits == [7.0]
    # A primary rate limit lifting an hour later fails at once, not as a permission error.
    api, waits = _commits_api(bed)
    double.fail("POST /graphql", [403], message="API rate limit exceeded for user ID 1.")
    with pytest.raises(ForgeError) as caught:
        api.branch_head("env/dev")
    assert waits == [] and "rate limit" in str(caught.value)
    assert not isinstance(caught.value, ForgeAuthError)
    # A refusal is a permission error, sent once.
    double.fail("POST /graphql", [403], message="Resource not accessible by integration")
    mark = len(double.request_log)
    with pytest.raises(ForgeAuthError) as refused:
        api.branch_head("env/dev")
    assert _statuses(double, mark) == [403] and "lacks a permission" in str(refused.value)


def test_an_unreachable_api_is_one_line_without_the_token(bed, no_proxy) -> None:  # type: ignore[no-untyped-def]
    api, waits = _commits_api(bed, "http://127.0.0.1:9/api/v3", timeout=2)
    with pytest.raises(ForgeError) as caught:
        api.snapshot("env/dev", ["apps/web/values.yaml"])
    message = str(caught.value)
    assert message.startswith("GitHub API at 127.0.0.1 unreachable while reading env/dev")
    assert "\n" not in message and TEST_TOKEN not in message and len(waits) == 3


def test_with_a_proxy_set_the_api_path_goes_through_pygithub(bed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    repo, _, double = bed
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # requests skips it for the double
    api, _ = _commits_api(bed)
    assert not api.direct
    head = api.branch_head("env/dev")
    assert api.snapshot("env/dev", ["apps/web/values.yaml"]).files == {
        "apps/web/values.yaml": b"tag: 1\r\n"
    }
    new = api.create_commit("env/dev", head, {"apps/web/values.yaml": b"tag: 2\n"}, "m\n")
    assert isinstance(new, str)
    assert api.create_commit("env/dev", head, {"a": b"b"}, "x\n") is HEAD_MOVED
    double.fail("POST /graphql", [401])
    with pytest.raises(ForgeAuthError) as caught:
        api.branch_head("env/dev")
    assert TEST_TOKEN not in str(caught.value) and repo.name


PR_CONFIG = CONFIG.replace(
    "prod: {branch: env/prod, from: dev, commit_via: api}",
    "prod: {branch: env/prod, from: dev, commit_via: api, delivery: pull-request}",
)


def test_an_update_by_pull_request_removes_a_killed_runs_helper(env_repo, github_api, capsys):  # type: ignore[no-untyped-def]
    files = {**FILES, "promoter.yaml": PR_CONFIG}
    repo = env_repo({"main": files, "env/dev": files, "env/prod": files})
    forge = ("--repo", repo.url, "--token", TEST_TOKEN, "--forge", "github",
             "--api-url", github_api.api_url)  # fmt: skip
    head = "promoter/update-prod"
    calls = []
    for i, tag in enumerate(("2.0.0", "2.1.0", "2.2.0")):
        if i == 1:  # a run killed between creating its helper and the move left these
            _leave(repo, repo.sha("env/prod"), f"{head}-next-0badcafe", f"{head}-next-later")
        mark = len(github_api.request_log)
        run = run_cli(capsys, *forge, "update", "prod", "--image", f"web={tag}")
        assert run.code == 0, run.err
        calls.append(len(github_api.request_log) - mark)
        assert _committer(repo, head) == "GitHub <noreply@github.com>"
    assert [b for b in _branches(repo) if "-next-" in b] == [f"{head}-next-later"]
    assert calls[1] == calls[2]  # removing it cost no request
    assert [p.state for p in github_api.pulls(repo.name)] == ["open"]
    assert github_api.violations == []
