"""A user's script against `promoter sandbox`: the sandbox is started as a user starts it (a
process that prints its URLs and token as one JSON line) and used only through plain git and the
public clients, PyGithub and python-gitlab, with nothing lazy and nothing known of the doubles."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import github
import gitlab
import pytest

from promoter.sandbox.envrepo import git_env

Sandbox = Callable[[str], dict[str, Any]]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    procs: list[subprocess.Popen[str]] = []

    def start(forge: str) -> dict[str, Any]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "promoter", "sandbox", "--forge", forge, "--operator", "none"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, proc.stderr.read() if proc.stderr else "no output"
        info: dict[str, Any] = json.loads(line)
        return info

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=git_env(), check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _push_branch(info: dict[str, Any], tmp_path: Path, base: str, branch: str) -> str:
    """Clone with the token as a user would, commit on top of base, push branch; its sha."""
    url = info["repo_url"].replace("http://", f"http://x-access-token:{info['token']}@")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", "--branch", base, url, str(clone))
    (clone / "NOTES.md").write_text("promoted by a script\n")
    _git(clone, "add", "NOTES.md")
    _git(clone, "commit", "-q", "-m", "notes")
    _git(clone, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    return _git(clone, "rev-parse", f"origin/{base}")


def test_a_pygithub_script_runs_unchanged(sandbox: Sandbox, tmp_path: Path) -> None:
    info = sandbox("github")
    base_sha = _push_branch(info, tmp_path, "env/dev", "promote/notes")

    gh = github.Github(base_url=info["api_url"], auth=github.Auth.Token(info["token"]))
    repo = gh.get_repo(info["repository"])
    assert (repo.full_name, repo.default_branch) == (info["repository"], "main")
    branch = repo.get_branch("env/dev")
    assert branch.commit.sha == base_sha
    commit = repo.get_commit(base_sha)
    assert commit.sha == base_sha
    status = commit.create_status("success", context="ci/test", description="all good")
    assert (status.state, status.context) == ("success", "ci/test")
    assert commit.get_combined_status().state == "success"
    with pytest.raises(github.GithubException) as refused:
        commit.create_status("green", context="ci/test")  # not a GitHub state
    assert refused.value.status == 422

    assert repo.get_pulls(state="open").totalCount == 0
    pull = repo.create_pull(base="env/dev", head="promote/notes", title="Add notes", body="why")
    assert (pull.number, pull.head.ref, pull.base.sha) == (1, "promote/notes", base_sha)
    assert [p.number for p in repo.get_pulls(state="open")] == [pull.number]
    gh.close()


def test_a_python_gitlab_script_runs_unchanged(sandbox: Sandbox, tmp_path: Path) -> None:
    info = sandbox("gitlab")
    base_sha = _push_branch(info, tmp_path, "env/dev", "promote/notes")

    gl = gitlab.Gitlab(info["api_url"].removesuffix("/api/v4"), private_token=info["token"])
    project = gl.projects.get(info["repository"])
    assert (project.path_with_namespace, project.default_branch) == (info["repository"], "main")
    assert gl.projects.get(project.id).path_with_namespace == info["repository"]
    commit = project.commits.get(base_sha)
    assert commit.id == base_sha
    commit.statuses.create({"state": "success", "name": "ci/test"})
    assert [(s.name, s.status) for s in commit.statuses.list()] == [("ci/test", "success")]
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        commit.statuses.create({"state": "green", "name": "ci/test"})  # not a GitLab state
    assert refused.value.response_code in (400, 422)

    mr = project.mergerequests.create(
        {"source_branch": "promote/notes", "target_branch": "env/dev", "title": "Add notes"}
    )
    assert (mr.iid, mr.source_branch, mr.target_branch) == (1, "promote/notes", "env/dev")
    assert [m.iid for m in project.mergerequests.list(state="opened")] == [mr.iid]
