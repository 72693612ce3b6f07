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


# --- strict by default: refused as the forge refuses, and shown on stderr ----------------------


def _call(info, method, path, body):
    """One plain HTTP request to the sandbox's API: (status, decoded JSON answer)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        info["api_url"] + path, data=json.dumps(body).encode(), method=method
    )
    request.add_header("Content-Type", "application/json")
    if info["forge"] == "github":
        request.add_header("Authorization", f"token {info['token']}")
    else:
        request.add_header("PRIVATE-TOKEN", info["token"])
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def _tip(info, branch):
    url = info["repo_url"].replace("http://", f"http://x-access-token:{info['token']}@")
    out = subprocess.run(["git", "ls-remote", url, branch], capture_output=True, text=True)
    return out.stdout.split()[0]


def _github_error(answer):
    assert answer["message"] == "Validation Failed" and answer["documentation_url"]
    [error] = answer["errors"]
    return error["field"], error["code"]


def test_the_github_sandbox_refuses_what_github_refuses(start_sandbox):
    proc, info = start_sandbox("--forge", "github", "--operator", "none")
    assert info["strict"] is True
    repo = f"/repos/{info['repository']}"
    sha = _tip(info, "env/dev")

    status, answer = _call(info, "POST", f"{repo}/statuses/{sha}", {"state": "green"})
    assert status == 422 and _github_error(answer) == ("state", "invalid")
    assert answer["errors"][0]["resource"] == "Status"
    pull = {"head": "env/dev", "base": "env/staging", "title": "t"}
    status, answer = _call(info, "POST", f"{repo}/pulls", {**pull, "colour": "red"})
    assert status == 422 and _github_error(answer) == ("colour", "invalid")
    status, answer = _call(info, "POST", f"{repo}/pulls", {"base": "env/staging", "title": "t"})
    assert status == 422 and _github_error(answer) == ("head", "missing_field")
    # A valid request still goes through.
    status, answer = _call(info, "POST", f"{repo}/statuses/{sha}", {"state": "success"})
    assert status == 201 and answer["state"] == "success"

    err = stop(proc)
    refused = [line for line in err.splitlines() if line.startswith("promoter sandbox: refused:")]
    assert len(refused) == 3, err
    assert "'green' is not one of" in refused[0] and "colour" in refused[1]
    assert "'head' is a required property" in refused[2]


def test_the_gitlab_sandbox_refuses_what_gitlab_refuses(start_sandbox):
    proc, info = start_sandbox("--forge", "gitlab", "--operator", "none")
    project = "/projects/" + info["repository"].replace("/", "%2F")
    sha = _tip(info, "env/dev")

    status, answer = _call(info, "POST", f"{project}/statuses/{sha}", {"state": "green"})
    assert (status, answer) == (400, {"error": "state does not have a valid value"})
    mr = {"source_branch": "env/dev", "target_branch": "env/staging", "title": "t"}
    status, answer = _call(info, "POST", f"{project}/merge_requests", {**mr, "colour": "red"})
    assert (status, answer) == (400, {"error": "colour is invalid"})
    del mr["source_branch"]
    status, answer = _call(info, "POST", f"{project}/merge_requests", mr)
    assert (status, answer) == (400, {"error": "source_branch is missing"})
    status, answer = _call(info, "POST", f"{project}/statuses/{sha}", {"state": "success"})
    assert status < 300 and answer["status"] == "success"

    err = stop(proc)
    refused = [line for line in err.splitlines() if line.startswith("promoter sandbox: refused:")]
    assert len(refused) == 3, err


@pytest.mark.parametrize("forge", ["github", "gitlab"])
def test_lax_serves_what_the_description_would_refuse(start_sandbox, forge):
    proc, info = start_sandbox("--forge", forge, "--operator", "none", "--lax")
    assert info["strict"] is False
    sha = _tip(info, "env/dev")
    if forge == "github":
        path = f"/repos/{info['repository']}/statuses/{sha}"
    else:
        path = "/projects/" + info["repository"].replace("/", "%2F") + f"/statuses/{sha}"
    status, _ = _call(info, "POST", path, {"state": "success", "colour": "red"})
    assert status < 300
    assert "refused" not in stop(proc)
