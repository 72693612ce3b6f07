"""`promoter sandbox` as a user runs it: a process that serves until SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from promoter.forge.base import ForgeInfo, PullRequestSpec
from tests.helpers import finish, spawn


@pytest.fixture
def start_sandbox():
    procs = []

    def start(*args):
        proc = subprocess.Popen(
            [sys.executable, "-m", "promoter", "sandbox", "--delay", "0.3", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        return proc, json.loads(line)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def env_for(info):
    return {
        "PROMOTER_REPO": info["repo_url"],
        "PROMOTER_API_URL": info["api_url"],
        "PROMOTER_FORGE": info["forge"],
        "PROMOTER_TOKEN": info["token"],
    }


@pytest.mark.parametrize("forge", ["github", "gitlab"])
def test_update_wait_and_a_pull_request_against_a_sandbox(start_sandbox, forge, tmp_path):
    proc, info = start_sandbox("--forge", forge)
    assert set(info) >= {"repo_url", "api_url", "repository", "token", "forge", "environments"}
    assert info["environments"] == {"dev": "env/dev", "staging": "env/staging", "prod": "env/prod"}
    env = env_for(info)

    update = finish(spawn("--output", "json", "update", "dev", "--image", "web=1.4.2", env=env))
    assert update.code == 0, update.err
    commit = json.loads(update.out)["commit"]
    waited = finish(spawn("--output", "json", "wait", "dev", "--soak", "0", "--timeout", "30s",
                          env=env))  # fmt: skip
    assert waited.code == 0, waited.err
    assert json.loads(waited.out)["deciding_commit"] == commit

    # The forge layer opens a PR; the forge's own client sees it.
    from promoter.forge import open_forge

    adapter = open_forge(ForgeInfo(forge, info["api_url"], info["repository"]), info["token"])
    pull = adapter.open_or_update_pull_request(
        PullRequestSpec(head="env/dev", base="env/staging", title="promote dev to staging")
    )
    if forge == "github":
        import github

        gh = github.Github(
            base_url=info["api_url"], auth=github.Auth.Token(info["token"]), lazy=True
        )
        pr = gh.get_repo(info["repository"]).get_pull(pull.number)
        assert (pr.title, pr.head.ref, pr.base.ref) == (
            "promote dev to staging",
            "env/dev",
            "env/staging",
        )
        statuses = gh.get_repo(info["repository"]).get_commit(commit).get_combined_status()
        assert {s.context for s in statuses.statuses} >= {"continuous-delivery/web"}
    else:
        import gitlab

        gl = gitlab.Gitlab(info["api_url"].removesuffix("/api/v4"), private_token=info["token"])
        mr = gl.projects.get(info["repository"], lazy=True).mergerequests.get(pull.number)
        assert (mr.title, mr.source_branch, mr.target_branch) == (
            "promote dev to staging",
            "env/dev",
            "env/staging",
        )

    clone = subprocess.run(
        ["git", "clone", "-q", "--branch", "env/dev",
         info["repo_url"].replace("http://", f"http://x-access-token:{info['token']}@"),
         str(tmp_path / "clone")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert clone.returncode == 0, clone.stderr

    stop(proc)
    assert not Path(info["workdir"]).exists()


def test_seed_folder_and_no_operator(start_sandbox, tmp_path):
    (tmp_path / "promoter.yaml").write_text(
        "environments:\n  qa: {branch: main}\napps:\n  svc:\n    images:\n"
        "      svc: {file: 'envs/{env}/svc.yaml', tag: image.tag}\n"
    )
    (tmp_path / "envs" / "qa").mkdir(parents=True)
    (tmp_path / "envs" / "qa" / "svc.yaml").write_text("image:\n  tag: 0.1.0\n")
    proc, info = start_sandbox("--seed", str(tmp_path), "--operator", "none")
    assert info["environments"] == {"qa": "main"}
    run = finish(spawn("update", "qa", "--image", "svc=0.2.0", env=env_for(info)))
    assert run.code == 0, run.err
    waited = finish(spawn("wait", "qa", "--require", "ci/*", "--timeout", "2s", env=env_for(info)))
    assert waited.code == 4
    stop(proc)


def test_bad_seed_is_a_usage_error(tmp_path):
    run = finish(spawn("sandbox", "--seed", str(tmp_path)))
    assert run.code == 2 and "no promoter.yaml" in run.err
