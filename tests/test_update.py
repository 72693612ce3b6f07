"""`promoter update` over real git: a smart-HTTP server on 127.0.0.1 with token auth."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from promoter.commands.update import update
from promoter.delivery import RetryPolicy
from promoter.errors import RaceLost
from promoter.options import Options
from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import (
    commit_message,
    git_env,
    is_linear,
    list_branches,
    log,
    rev_list_parents,
)
from tests.helpers import finish, run_cli, spawn

pytest_plugins = ["tests.forge_fixtures"]

CONFIG = """\
environments:
  dev: {branch: env/dev}
  prod: {branch: env/prod, from: dev}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
    chart: {file: apps/web/Chart.yaml, version: "dependencies[name=web].version"}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag, digest: image.digest}
"""

WEB_VALUES = """\
# web front end
image:
  repository: ghcr.io/acme/web
  tag: "1.4.1"   # set by promoter
replicas: 2
"""

WEB_CHART = """\
apiVersion: v2
name: web
version: 1.0.0
dependencies:
- name: web
  version: 0.3.0
  repository: oci://ghcr.io/acme/charts
"""

API_VALUES = """\
image:
  tag: 2.0.0
  digest: ""
"""

FILES = {
    "promoter.yaml": CONFIG,
    "apps/web/values.yaml": WEB_VALUES,
    "apps/web/Chart.yaml": WEB_CHART,
    "apps/api/values.yaml": API_VALUES,
}


@pytest.fixture
def repo(env_repo):
    return env_repo({"main": FILES, "env/dev": FILES, "env/prod": FILES})


def cli(repo, *args):
    return ("--repo", repo.url, "--token", TEST_TOKEN, *args)


@pytest.fixture(params=["git", "api"])
def via(request):
    """The global options of each write path: `--commit-via git` (the default: nothing to add)
    or `--commit-via api` through the GitHub double (GraphQL createCommitOnBranch)."""
    if request.param == "git":
        return ()
    api = request.getfixturevalue("github_api")
    return ("--forge", "github", "--api-url", api.api_url, "--commit-via", "api")


def via_options(via):
    """`via` as Options fields, for tests that call the command function."""
    if not via:
        return {}
    return {"forge": "github", "api_url": via[3], "commit_via": "api"}


def diff_lines(repo, sha):
    """The +/- lines of one commit's diff, without headers."""
    import subprocess

    out = subprocess.run(
        ["git", "--git-dir", str(repo.path), "show", "--format=", "--unified=0", sha],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        line
        for line in out.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


THREE_PINS = (
    "update",
    "dev",
    "--image",
    "web=1.4.2",
    "--image",
    "api=2.1.0",
    "--chart",
    "web=0.3.1",
)


def test_update_combines_images_and_chart_into_one_commit(repo, capsys, via):
    before = repo.sha("env/dev")
    run = run_cli(
        capsys,
        *cli(repo, *via, *THREE_PINS),
    )
    assert run.code == 0, run.err
    tip = repo.sha("env/dev")
    assert rev_list_parents(repo.path, "env/dev")[0][1] == (before,)
    assert sorted(diff_lines(repo, tip)) == sorted(
        [
            '-  tag: "1.4.1"   # set by promoter',
            '+  tag: "1.4.2"   # set by promoter',
            "-  tag: 2.0.0",
            "+  tag: 2.1.0",
            "-  version: 0.3.0",
            "+  version: 0.3.1",
        ]
    )
    assert repo.sha("env/prod") == repo.shas["env/prod"]
    assert "committed 3 changes" in run.out

    again = run_cli(
        capsys,
        *cli(repo, *via, *THREE_PINS),
    )
    assert again.code == 0
    assert repo.sha("env/dev") == tip
    assert "already up to date" in again.out


def test_the_users_git_config_is_read_once_a_run(repo, capsys, monkeypatch, tmp_path):
    """The background fetch and the main thread both ask whether git would talk to the server
    plainly, at about the same moment: one `git config --list` answers both."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # not what a test read
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    run = run_cli(capsys, *cli(repo, *THREE_PINS))
    assert run.code == 0, run.err
    started = [event["argv"][1:3] for event in map(json.loads, trace.read_text().splitlines())
               if event["event"] == "start"]  # fmt: skip
    assert started.count(["config", "--list"]) == 1, started


def test_commit_message_carries_trailers_and_ci_identity(repo, capsys, monkeypatch, via):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("GITHUB_ACTOR_ID", "583231")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/web")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    run = run_cli(capsys, *cli(repo, *via, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 0, run.err
    assert commit_message(repo.path, "refs/heads/env/dev") == (
        "update(dev): web 1.4.2\n\n"
        "Promoter-Environment: dev\n"
        "Promoter-Change: web/web image.tag 1.4.1 -> 1.4.2\n"
        f"Promoter-Source: acme/web@{'a' * 40}\n"
        "Promoter-Pipeline: https://github.com/acme/web/actions/runs/42\n"
        "Promoter-Actor: octocat"
    )
    import subprocess

    who = subprocess.run(
        [
            "git",
            "--git-dir",
            str(repo.path),
            "log",
            "-1",
            "--format=%an <%ae>|%cn <%ce>",
            "env/dev",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if via:  # GitHub chose both: the token's user, and itself as committer (it signs)
        assert who == (
            "promoter-bot <promoter-bot@users.noreply.github.com>|GitHub <noreply@github.com>"
        )
        return
    assert who == (
        "octocat <583231+octocat@users.noreply.github.com>|"
        "octocat <583231+octocat@users.noreply.github.com>"
    )


def test_gitlab_identity_and_job_url(repo, capsys, monkeypatch):
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("GITLAB_USER_LOGIN", "jdoe")
    monkeypatch.setenv("GITLAB_USER_NAME", "Jane Doe")
    monkeypatch.setenv("GITLAB_USER_EMAIL", "jane@example.com")
    monkeypatch.setenv("CI_JOB_URL", "https://gitlab.example.com/acme/web/-/jobs/7")
    run = run_cli(
        capsys, *cli(repo, "update", "dev", "--image", "web=1.4.2", "--message", "deploy web")
    )
    assert run.code == 0, run.err
    message = commit_message(repo.path, "refs/heads/env/dev")
    assert message.startswith("deploy web\n\nPromoter-Environment: dev\n")
    assert "Promoter-Pipeline: https://gitlab.example.com/acme/web/-/jobs/7" in message
    assert "Promoter-Actor: jdoe" in message


def test_dry_run_prints_plan_and_writes_nothing(repo, capsys, via):
    run = run_cli(
        capsys,
        *cli(
            repo, *via, "--dry-run", "update", "dev", "--image", "web=1.4.2", "--chart", "web=0.3.1"
        ),
    )
    assert run.code == 0, run.err
    assert repo.sha("env/dev") == repo.shas["env/dev"]
    assert "would commit 2 changes (dry run, nothing written)" in run.out
    assert "apps/web/values.yaml" in run.out and "1.4.1 -> 1.4.2" in run.out
    assert "dependencies[name=web].version  0.3.0 -> 0.3.1" in run.out


def test_json_output(repo, capsys, via):
    run = run_cli(
        capsys,
        *cli(
            repo,
            *via,
            "--output",
            "json",
            "update",
            "dev",
            "--image",
            "api=ghcr.io/acme/api:2.1.0@sha256:" + "ab" * 32,
        ),
    )
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["changed"] is True
    assert data["commit"] == repo.sha("env/dev")
    assert (data["environment"], data["branch"]) == ("dev", "env/dev")
    assert [(c["key"], c["old"], c["new"]) for c in data["changes"]] == [
        ("image.tag", "2.0.0", "2.1.0"),
        ("image.digest", "", "sha256:" + "ab" * 32),
    ]
    nothing = json.loads(
        run_cli(
            capsys,
            *cli(
                repo,
                *via,
                "--output",
                "json",
                "update",
                "dev",
                "--image",
                "api=ghcr.io/acme/api:2.1.0@sha256:" + "ab" * 32,
            ),
        ).out
    )
    assert nothing["changed"] is False and nothing["commit"] is None


def test_new_tag_without_digest_clears_a_pinned_digest(repo, capsys):
    assert (
        run_cli(
            capsys, *cli(repo, "update", "dev", "--image", "api=x/api:2.1.0@sha256:" + "cd" * 32)
        ).code
        == 0
    )
    assert run_cli(capsys, *cli(repo, "update", "dev", "--image", "api=2.2.0")).code == 0
    assert (
        repo.read_file("env/dev", "apps/api/values.yaml") == 'image:\n  tag: 2.2.0\n  digest: ""\n'
    )


def _set_entry(repo, branch, path, mode, content):
    """One commit on `branch` that puts a non-regular entry (or an executable file) at `path`."""
    parent = repo.sha(branch)
    if mode == "040000":  # a directory: the path holds another file
        entry = f"D {path}\nM 100644 inline {path}/inner.yaml\ndata {len(content)}\n{content}\n"
    elif mode == "160000":  # a submodule: a gitlink to a commit
        entry = f"M 160000 {parent} {path}\n"
    else:
        entry = f"M {mode} inline {path}\ndata {len(content)}\n{content}\n"
    stream = (
        f"commit refs/heads/{branch}\ncommitter t <t@example.com> 0 +0000\ndata 4\nedit\n"
        f"from {parent}\n{entry}done\n"
    )
    subprocess.run(
        ["git", "--git-dir", str(repo.path), "fast-import", "--quiet", "--done"],
        input=stream.encode(),
        check=True,
        env=git_env(),
    )


@pytest.mark.parametrize(
    ("mode", "what"),
    [("120000", "a symbolic link"), ("160000", "a submodule"), ("040000", "a directory")],
)
def test_a_pinned_path_that_is_not_a_regular_file_is_refused(repo, capsys, mode, what, via):
    # The link's target text is YAML-like on purpose: it used to be edited and committed.
    _set_entry(repo, "env/dev", "apps/web/values.yaml", mode, "image:\n  tag: 1.4.1\n")
    before = list_branches(repo.path)
    run = run_cli(capsys, *cli(repo, *via, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 2, run.output
    assert "apps/web/values.yaml must be a regular file" in run.err, run.err
    assert what in run.err and run.err.count("\n") == 1, run.err
    assert list_branches(repo.path) == before


def test_an_executable_pinned_file_is_edited_and_keeps_its_mode(repo, capsys, via):
    _set_entry(repo, "env/dev", "apps/web/values.yaml", "100755", WEB_VALUES)
    run = run_cli(capsys, *cli(repo, *via, "update", "dev", "--image", "web=1.4.2"))
    if via:  # GitHub's createCommitOnBranch would make it 100644: refused, nothing written
        assert run.code == 2, run.output
        [line] = run.err.strip().splitlines()
        assert "apps/web/values.yaml is executable (mode 100755)" in line
        assert "--commit-via git" in line
        assert 'tag: "1.4.1"' in repo.read_file("env/dev", "apps/web/values.yaml")
        return
    assert run.code == 0, run.err
    assert 'tag: "1.4.2"' in repo.read_file("env/dev", "apps/web/values.yaml")
    ls = subprocess.run(
        ["git", "--git-dir", str(repo.path), "ls-tree", "env/dev", "apps/web/values.yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ls.startswith("100755 blob "), ls


def _second_writer(git_server, repo, files_for_push):
    """Another writer on env/dev: as promoter's push `n` begins (1, 2, ...), after promoter has
    fetched and committed, it lands `files_for_push(n)` (if any) on the branch."""
    pushes = {"n": 0}

    def write() -> None:
        pushes["n"] += 1
        files = files_for_push(pushes["n"])
        if files:
            repo.commit("env/dev", files, f"someone else {pushes['n']}")

    git_server.before_push(repo.name, write)
    return pushes


def _api_second_writer(request, repo, files_for_write):
    """_second_writer for the api path: as promoter's mutation `n` (createCommitOnBranch)
    begins, after it has read the tip and planned, `files_for_write(n)` lands on env/dev.
    GraphQL requests come as: promoter.yaml (with the head), then per attempt the snapshot
    and the mutation, so the mutations are the 3rd, 5th, ... POST /graphql."""
    api = request.getfixturevalue("github_api")
    seen = {"graphql": 0, "n": 0}

    def hook() -> None:
        seen["graphql"] += 1
        if seen["graphql"] >= 3 and seen["graphql"] % 2 == 1:
            seen["n"] += 1
            files = files_for_write(seen["n"])
            if files:
                repo.commit("env/dev", files, f"someone else {seen['n']}")
        api.before("POST /graphql", hook)

    api.before("POST /graphql", hook)
    return seen


def _writer(request, via, git_server, repo, files_for):
    if via:
        return _api_second_writer(request, repo, files_for)
    return _second_writer(git_server, repo, files_for)


def test_lost_race_is_reapplied_on_the_new_tip(repo, git_server, via, request):
    other = WEB_VALUES.replace("replicas: 2", "replicas: 3")
    pushes = _writer(
        request,
        via,
        git_server,
        repo,
        lambda n: {"apps/web/values.yaml": other} if n == 1 else None,
    )
    options = Options(repo=repo.url, token=TEST_TOKEN, **via_options(via))
    result = update(options, "dev", images=["web=1.4.2"])
    assert (result.attempts, pushes["n"]) == (2, 2)
    assert result.commit == repo.sha("env/dev")
    text = repo.read_file("env/dev", "apps/web/values.yaml")
    assert 'tag: "1.4.2"' in text and "replicas: 3" in text
    assert log(repo.path, "env/dev")[:2] == ["update(dev): web 1.4.2", "someone else 1"]
    assert is_linear(repo.path, "env/dev")


def test_race_lost_after_all_retries_leaves_nothing(repo, git_server, via, request):
    pushes = _writer(request, via, git_server, repo, lambda n: {"noise.txt": f"{n}\n"})
    with pytest.raises(RaceLost) as caught:
        update(
            Options(repo=repo.url, token=TEST_TOKEN, **via_options(via)),
            "dev",
            images=["web=1.4.2"],
            policy=RetryPolicy(attempts=3, base=0.001, cap=0.01),
        )
    assert caught.value.exit_code == 5
    assert pushes["n"] == 3
    assert not any(subject.startswith("update(") for subject in log(repo.path, "env/dev"))


def test_eight_concurrent_updates_all_land(env_repo, via):
    apps = [f"app{i}" for i in range(8)]
    config = "environments:\n  dev: {branch: env/dev}\napps:\n" + "".join(
        f"  {a}:\n    images:\n      {a}: {{file: apps/{a}/values.yaml, tag: image.tag}}\n"
        for a in apps
    )
    files = {"promoter.yaml": config} | {
        f"apps/{a}/values.yaml": "image:\n  tag: 1.0.0\n" for a in apps
    }
    repo = env_repo({"main": files, "env/dev": files})
    procs = [
        spawn(
            "--repo",
            repo.url,
            "update",
            "dev",
            "--image",
            f"{a}=2.0.0",
            env={"PROMOTER_TOKEN": TEST_TOKEN, **_via_env(via)},
        )
        for a in apps
    ]
    runs = [finish(proc) for proc in procs]
    assert [run.code for run in runs] == [0] * 8, [run.err for run in runs]
    for app in apps:
        assert repo.read_file("env/dev", f"apps/{app}/values.yaml") == "image:\n  tag: 2.0.0\n"
    assert len(log(repo.path, "env/dev")) == 9
    assert is_linear(repo.path, "env/dev")


def _via_env(via):
    """`via` as environment variables (PROMOTER_COMMIT_VIA and the forge's)."""
    if not via:
        return {}
    return {"PROMOTER_FORGE": "github", "PROMOTER_API_URL": via[3], "PROMOTER_COMMIT_VIA": "api"}


def test_folder_per_environment_layout(env_repo, capsys):
    config = (
        "environments:\n  dev: {branch: main}\n  prod: {branch: main, from: dev}\n"
        "apps:\n  web:\n    images:\n      web: {file: 'envs/{env}/web.yaml', tag: image.tag}\n"
    )
    files = {
        "promoter.yaml": config,
        "envs/dev/web.yaml": "image:\n  tag: 1.0.0\n",
        "envs/prod/web.yaml": "image:\n  tag: 1.0.0\n",
    }
    repo = env_repo({"main": files})
    assert run_cli(capsys, *cli(repo, "update", "prod", "--image", "web=1.1.0")).code == 0
    assert repo.read_file("main", "envs/prod/web.yaml") == "image:\n  tag: 1.1.0\n"
    assert repo.read_file("main", "envs/dev/web.yaml") == "image:\n  tag: 1.0.0\n"


def test_config_from_local_file(repo, capsys, tmp_path, via):
    local = tmp_path / "promoter.yaml"
    local.write_text(CONFIG.replace("dev: {branch: env/dev}", "dev: {branch: env/prod}"))
    run = run_cli(
        capsys,
        *cli(repo, *via, "--config", str(local), "update", "dev", "--image", "web=9.9.9"),
    )
    assert run.code == 0, run.err
    assert 'tag: "9.9.9"' in repo.read_file("env/prod", "apps/web/values.yaml")


def test_the_token_follows_the_forge_that_detection_picks(env_repo, capsys, monkeypatch):
    # "github" in the path, a GitLab API: the forge is GitLab, so the token is GITLAB_TOKEN
    # (it used to be GITHUB_TOKEN, chosen by the substring, and the push failed to authenticate).
    from promoter.context import resolve_token
    from promoter.forge import detect

    repo = env_repo({"main": FILES, "env/dev": FILES}, name="github-mirror/envs")
    monkeypatch.setenv("GITHUB_TOKEN", "not-the-token")
    monkeypatch.setenv("GITLAB_TOKEN", TEST_TOKEN)
    api = "--api-url", "http://127.0.0.1:9/api/v4"
    run = run_cli(capsys, "--repo", repo.url, *api, "update", "dev", "--image", "web=1.4.2")
    assert run.code == 0, run.err
    assert 'tag: "1.4.2"' in repo.read_file("env/dev", "apps/web/values.yaml")
    url = "https://gitlab.example.com/github-mirror/envs.git"
    assert detect("auto", None, url).kind == "gitlab"
    assert resolve_token(Options(repo=url), url) == TEST_TOKEN


# --- scratch directories: SIGTERM, SIGKILL ------------------------------------------------------

HOLD_HOOK = """#!/bin/sh
# Holds the first push mid-way (the client waits for the server's answer) until released.
if mkdir "{hold}/taken" 2>/dev/null; then
  touch "{hold}/held"
  i=0
  while [ ! -e "{hold}/release" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
fi
"""


def _hold_first_push(git_server, repo, hold):
    hold.mkdir()
    git_server.install_hook(repo.name, "pre-receive", HOLD_HOOK.format(hold=hold))


def _wait_for(path, proc, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, finish(proc).err
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _scratch_dirs(base):
    return sorted(p.name for p in base.iterdir() if p.name.startswith("promoter-"))


def test_sigterm_mid_push_leaves_no_scratch_dir(repo, git_server, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    _hold_first_push(git_server, repo, tmp_path / "hold")
    proc = spawn(*cli(repo, "update", "dev", "--image", "web=1.4.2"), env={"TMPDIR": str(tmp)})
    try:
        _wait_for(tmp_path / "hold" / "held", proc)
        assert _scratch_dirs(tmp), "the run keeps its scratch repo elsewhere than TMPDIR"
        proc.send_signal(signal.SIGTERM)
        run = finish(proc)
    finally:
        (tmp_path / "hold" / "release").touch()
    assert run.code == 143, run.err
    assert run.err.strip() == "promoter: terminated", run.err
    assert _scratch_dirs(tmp) == []


def test_a_killed_runs_scratch_dir_is_reclaimed_by_the_next_run_never_a_live_ones(
    repo, git_server, tmp_path, capsys, monkeypatch
):
    runner_temp, tmp = tmp_path / "runner-temp", tmp_path / "tmp"
    runner_temp.mkdir()
    tmp.mkdir()
    monkeypatch.setenv("RUNNER_TEMP", str(runner_temp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    _hold_first_push(git_server, repo, tmp_path / "hold")
    held = spawn(*cli(repo, "update", "dev", "--image", "web=1.4.2"))
    try:
        _wait_for(tmp_path / "hold" / "held", held)
        live = _scratch_dirs(runner_temp)
        assert len(live) == 1 and _scratch_dirs(tmp) == [], (live, _scratch_dirs(tmp))
        # Another run while the first is alive: it must leave the live run's directory alone.
        assert run_cli(capsys, *cli(repo, "update", "dev", "--image", "api=2.1.0")).code == 0
        assert _scratch_dirs(runner_temp) == live
        held.kill()  # SIGKILL: no cleanup runs
        held.wait(timeout=30)
    finally:
        (tmp_path / "hold" / "release").touch()
    assert _scratch_dirs(runner_temp) == live
    # The next run finds the dead run's directory and reclaims it.
    assert run_cli(capsys, *cli(repo, "update", "dev", "--image", "web=1.4.3")).code == 0
    assert _scratch_dirs(runner_temp) == []
    assert _scratch_dirs(tmp) == []
