"""The endpoints scripts call first, on both strict doubles, through the real clients: the
repository, branches, commits, git refs, contents, comparisons, rate limit (GitHub); the project,
branches, commits, statuses, files and comparisons (GitLab). Git objects come from git itself."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import github
import gitlab
import pytest

from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import EnvRepo, EnvRepoFactory, git_env, list_files, rev_parse
from promoter.sandbox.github_api import GitHubApiDouble
from promoter.sandbox.gitlab_api import GitLabApiDouble

pytest_plugins = ["tests.forge_fixtures"]


@pytest.fixture
def repo(env_repo: EnvRepoFactory) -> EnvRepo:
    made = env_repo({"main": {"README.md": "hello\n", "apps/web.yaml": "image: web:1\n"}})
    subprocess.run(
        ["git", "--git-dir", str(made.path), "branch", "env/dev", "main"], check=True, env=git_env()
    )
    made.commit("main", {"apps/web.yaml": "image: web:2\n"}, "web 2")
    made.commit("env/dev", {"apps/api.yaml": "image: api:1\n"}, "dev: api 1")
    return made


@pytest.fixture
def gh(github_api: GitHubApiDouble) -> Iterator[github.Github]:
    client = github.Github(base_url=github_api.api_url, auth=github.Auth.Token(TEST_TOKEN))
    yield client
    client.close()


@pytest.fixture
def gl(gitlab_api: GitLabApiDouble) -> gitlab.Gitlab:
    return gitlab.Gitlab(gitlab_api.url, private_token=TEST_TOKEN)


# --- GitHub ----------------------------------------------------------------------------------


def test_github_get_repository_names_its_default_branch(gh: github.Github, repo: EnvRepo) -> None:
    got = gh.get_repo(repo.name)
    assert (got.full_name, got.default_branch, got.private) == (repo.name, "main", True)
    assert got.clone_url.endswith(f"/{repo.name}.git")


def test_github_unknown_repository_is_404(gh: github.Github, repo: EnvRepo) -> None:
    with pytest.raises(github.UnknownObjectException):
        gh.get_repo(repo.name + "-missing")


def test_github_branches_list_and_get_are_git_tips(gh: github.Github, repo: EnvRepo) -> None:
    r = gh.get_repo(repo.name)
    assert {(b.name, b.commit.sha) for b in r.get_branches()} == {
        ("main", repo.sha("main")),
        ("env/dev", repo.sha("env/dev")),
    }
    dev = r.get_branch("env/dev")
    assert (dev.commit.sha, dev.protected) == (repo.sha("env/dev"), False)
    assert dev.commit.commit.message == "dev: api 1"
    with pytest.raises(github.GithubException) as missing:
        r.get_branch("nope")
    assert missing.value.status == 404


def test_github_get_commit_lists_changed_files(gh: github.Github, repo: EnvRepo) -> None:
    commit = gh.get_repo(repo.name).get_commit(repo.sha("main"))
    assert commit.sha == repo.sha("main")
    assert commit.commit.message == "web 2"
    assert [(f.filename, f.status, f.additions, f.deletions) for f in commit.files] == [
        ("apps/web.yaml", "modified", 1, 1)
    ]
    assert [p.sha for p in commit.parents] == [rev_parse(repo.path, "main~1")]
    by_branch = gh.get_repo(repo.name).get_commit("main")
    assert by_branch.sha == repo.sha("main")


def test_github_unknown_commit_is_422_as_on_github(gh: github.Github, repo: EnvRepo) -> None:
    with pytest.raises(github.GithubException) as err:
        gh.get_repo(repo.name).get_commit("0" * 40)
    assert err.value.status == 422
    assert "No commit found" in str(err.value.data)


def test_github_git_refs_create_get_update_delete(gh: github.Github, repo: EnvRepo) -> None:
    r = gh.get_repo(repo.name)
    first, new = rev_parse(repo.path, "main~1"), repo.sha("main")
    ref = r.create_git_ref("refs/heads/feature", first)
    assert (ref.ref, ref.object.sha, ref.object.type) == ("refs/heads/feature", first, "commit")
    assert repo.sha("feature") == first
    with pytest.raises(github.GithubException) as exists:
        r.create_git_ref("refs/heads/feature", first)
    assert (exists.value.status, exists.value.data["message"]) == (
        422,
        "Reference already exists",
    )
    assert r.get_git_ref("heads/feature").object.sha == first
    ref.edit(new)  # a fast-forward
    assert repo.sha("feature") == new
    with pytest.raises(github.GithubException) as rewind:
        ref.edit(first)
    assert (rewind.value.status, rewind.value.data["message"]) == (
        422,
        "Update is not a fast forward",
    )
    assert repo.sha("feature") == new
    ref.edit(first, force=True)
    assert repo.sha("feature") == first
    ref.delete()
    with pytest.raises(github.UnknownObjectException):
        r.get_git_ref("heads/feature")


def test_github_contents_file_and_directory(gh: github.Github, repo: EnvRepo) -> None:
    r = gh.get_repo(repo.name)
    f = r.get_contents("apps/web.yaml")
    assert not isinstance(f, list)
    assert (f.encoding, f.decoded_content, f.type) == ("base64", b"image: web:2\n", "file")
    old = r.get_contents("apps/web.yaml", ref=rev_parse(repo.path, "main~1"))
    assert not isinstance(old, list) and old.decoded_content == b"image: web:1\n"
    listing = r.get_contents("apps", ref="env/dev")
    assert isinstance(listing, list)
    assert sorted((c.path, c.type) for c in listing) == [
        ("apps/api.yaml", "file"),
        ("apps/web.yaml", "file"),
    ]
    with pytest.raises(github.UnknownObjectException):
        r.get_contents("nope.yaml")


def test_github_create_and_update_file_commit_to_the_branch(
    gh: github.Github, repo: EnvRepo
) -> None:
    r = gh.get_repo(repo.name)
    made = r.create_file("apps/new.yaml", "add new", "a: 1\n", branch="env/dev")
    assert repo.read_file("env/dev", "apps/new.yaml") == "a: 1\n"
    assert made["commit"].sha == repo.sha("env/dev")
    r.update_file("apps/new.yaml", "bump", "a: 2\n", made["content"].sha, branch="env/dev")
    assert repo.read_file("env/dev", "apps/new.yaml") == "a: 2\n"
    with pytest.raises(github.GithubException) as unsupplied:
        r.create_file("apps/new.yaml", "again", "a: 3\n", branch="env/dev")
    assert unsupplied.value.status == 422
    assert repo.read_file("env/dev", "apps/new.yaml") == "a: 2\n"


def test_github_compare_reports_ahead_behind_and_files(gh: github.Github, repo: EnvRepo) -> None:
    r = gh.get_repo(repo.name)
    ahead = r.compare("main~1", "main")
    assert (ahead.status, ahead.ahead_by, ahead.behind_by) == ("ahead", 1, 0)
    assert [c.sha for c in ahead.commits] == [repo.sha("main")]
    assert [f.filename for f in ahead.files] == ["apps/web.yaml"]
    assert r.compare("main", "main~1").status == "behind"
    assert r.compare("main", "main").status == "identical"
    diverged = r.compare("main", "env/dev")
    assert (diverged.status, diverged.ahead_by, diverged.behind_by) == ("diverged", 1, 1)


def test_github_rate_limit_is_served(gh: github.Github, repo: EnvRepo) -> None:
    gh.get_repo(repo.name)
    core = gh.get_rate_limit().resources.core
    assert core.limit == 5000
    # The headers count down as the body does; the double also counts this call, after the body.
    assert core.remaining == gh.rate_limiting[0] + 1 < core.limit


# --- GitLab ----------------------------------------------------------------------------------


def test_gitlab_project_by_path_and_by_id(gl: gitlab.Gitlab, repo: EnvRepo) -> None:
    by_path = gl.projects.get(repo.name)
    assert (by_path.path_with_namespace, by_path.default_branch) == (repo.name, "main")
    assert by_path.http_url_to_repo == repo.url
    assert gl.projects.get(by_path.id).path_with_namespace == repo.name
    with pytest.raises(gitlab.GitlabGetError) as missing:
        gl.projects.get(repo.name + "-missing")
    assert missing.value.response_code == 404


def test_gitlab_branches_list_and_get(gl: gitlab.Gitlab, repo: EnvRepo) -> None:
    project = gl.projects.get(repo.name)
    listed = {(b.name, b.commit["id"]) for b in project.branches.list(get_all=True)}
    assert listed == {("main", repo.sha("main")), ("env/dev", repo.sha("env/dev"))}
    dev = project.branches.get("env/dev")
    assert (dev.commit["id"], dev.commit["title"], dev.default) == (
        repo.sha("env/dev"),
        "dev: api 1",
        False,
    )
    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.branches.get("nope")
    assert missing.value.response_code == 404


def test_gitlab_commit_and_its_statuses(gl: gitlab.Gitlab, repo: EnvRepo) -> None:
    project = gl.projects.get(repo.name)
    commit = project.commits.get(repo.sha("main"))
    assert (commit.id, commit.title, commit.parent_ids) == (
        repo.sha("main"),
        "web 2",
        [rev_parse(repo.path, "main~1")],
    )
    assert commit.stats == {"additions": 1, "deletions": 1, "total": 2}
    commit.statuses.create({"state": "success", "name": "ci/test"})
    assert [(s.name, s.status) for s in commit.statuses.list()] == [("ci/test", "success")]
    assert project.commits.get("main").id == repo.sha("main")
    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.commits.get("0" * 40)
    assert missing.value.response_code == 404


def test_gitlab_repository_file_get(gl: gitlab.Gitlab, repo: EnvRepo) -> None:
    project = gl.projects.get(repo.name)
    f = project.files.get("apps/web.yaml", ref="main")
    assert (f.decode(), f.encoding, f.blob_id) == (b"image: web:2\n", "base64", f.blob_id)
    assert f.last_commit_id == repo.sha("main")
    old = project.files.get("apps/web.yaml", ref=rev_parse(repo.path, "main~1"))
    assert old.decode() == b"image: web:1\n"
    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.files.get("nope.yaml", ref="main")
    assert missing.value.response_code == 404
    assert project.files.raw("apps/web.yaml", ref="env/dev") == b"image: web:1\n"
    with pytest.raises(gitlab.GitlabGetError):
        project.files.raw("nope.yaml", ref="main")


def test_gitlab_compare(gl: gitlab.Gitlab, repo: EnvRepo) -> None:
    project = gl.projects.get(repo.name)
    result = project.repository_compare("main", "env/dev")
    assert [c["id"] for c in result["commits"]] == [repo.sha("env/dev")]
    assert [(d["new_path"], d["new_file"]) for d in result["diffs"]] == [("apps/api.yaml", True)]
    assert "+image: api:1" in result["diffs"][0]["diff"]
    assert project.repository_compare("main", "main")["compare_same_ref"] is True


def test_github_list_commits_and_matching_refs(gh: github.Github, repo: EnvRepo) -> None:
    r = gh.get_repo(repo.name)
    assert [c.sha for c in r.get_commits()] == [repo.sha("main"), rev_parse(repo.path, "main~1")]
    assert [c.commit.message for c in r.get_commits(sha="env/dev", path="apps/api.yaml")] == [
        "dev: api 1"
    ]
    assert [ref.ref for ref in r.get_git_matching_refs("heads/env")] == ["refs/heads/env/dev"]


def test_gitlab_list_commits(gl: gitlab.Gitlab, repo: EnvRepo) -> None:
    project = gl.projects.get(repo.name)
    assert [c.id for c in project.commits.list(get_all=True)] == [
        repo.sha("main"),
        rev_parse(repo.path, "main~1"),
    ]
    # python-gitlab keeps `path=` for its own URL: a file filter goes in query_parameters.
    query = {"ref_name": "env/dev", "path": "apps/api.yaml", "with_stats": "true"}
    on_dev = project.commits.list(query_parameters=query)
    assert [(c.title, c.stats["additions"]) for c in on_dev] == [("dev: api 1", 1)]


def test_github_delete_file_commits_its_removal(gh: github.Github, repo: EnvRepo) -> None:
    r = gh.get_repo(repo.name)
    f = r.get_contents("apps/api.yaml", ref="env/dev")
    assert not isinstance(f, list)
    r.delete_file("apps/api.yaml", "drop api", f.sha, branch="env/dev")
    assert "apps/api.yaml" not in list_files(repo.path, "env/dev")
    assert repo.log("env/dev")[0] == "drop api"


def test_gitlab_branch_create_and_delete(gl: gitlab.Gitlab, repo: EnvRepo) -> None:
    project = gl.projects.get(repo.name)
    made = project.branches.create({"branch": "feature/x", "ref": "env/dev"})
    assert (made.name, made.commit["id"]) == ("feature/x", repo.sha("env/dev"))
    assert repo.sha("feature/x") == repo.sha("env/dev")
    with pytest.raises(gitlab.GitlabCreateError) as twice:
        project.branches.create({"branch": "feature/x", "ref": "main"})
    assert twice.value.response_code == 400
    project.branches.delete("feature/x")
    with pytest.raises(gitlab.GitlabGetError):
        project.branches.get("feature/x")
