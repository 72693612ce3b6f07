"""The api path's seam (promoter.forge.commits.CommitAPI) on GitHub: GraphQL reads and
`createCommitOnBranch` against the strict GitHub double on the real bare repos."""

from __future__ import annotations

import subprocess

import pytest

from promoter.forge.base import ForgeError, ForgeInfo
from promoter.forge.commits import HEAD_MOVED, open_commit_api
from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import EnvRepo, git_env
from promoter.sandbox.github_api import GitHubApiDouble

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
    return repo, open_commit_api(info, TEST_TOKEN)


def test_snapshot_reads_head_files_and_config_in_one_request(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
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
    repo, api = bed
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
    # The head moved: nothing written, HEAD_MOVED.
    assert api.create_commit("env/dev", head, {"a": b"b"}, "x\n") is HEAD_MOVED
    assert api.branch_head("env/dev") == new


def repo_login(repo: EnvRepo) -> str:
    return "promoter-bot"


def test_owned_branches_move_only_under_their_lease(bed) -> None:  # type: ignore[no-untyped-def]
    _repo, api = bed
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
