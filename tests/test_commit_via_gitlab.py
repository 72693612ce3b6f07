"""The api path on GitLab (`--commit-via api`): promoter.forge.gitlab_commits against the strict
GitLab double's files and commits APIs, on the session's real bare repos.

What GitLab checks and what it cannot (no expected head on its commits endpoint) is spelled
out in promoter/forge/gitlab_commits.py; these tests hold the adapter and the double to it."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from typing import Any

import pytest

from promoter.errors import UsageError
from promoter.forge.base import ForgeAuthError, ForgeError, ForgeInfo
from promoter.forge.commits import HEAD_MOVED, CommitAPI, open_commit_api
from promoter.sandbox import TEST_TOKEN, GitHttpServer
from promoter.sandbox.envrepo import EnvRepo, commit_files, commit_message, git_env, is_linear
from promoter.sandbox.gitlab_api import GitLabApiDouble
from tests.helpers import finish, run_cli, spawn

pytest_plugins = ["tests.forge_fixtures"]

VALUES = "apps/web/values.yaml"
CHART = "apps/web/Chart.yaml"
MESSAGE = "update(dev): web 2\n\nPromoter-Environment: dev\nPromoter-Actor: ci-bot\n"


def _git(repo: EnvRepo, *args: str) -> str:
    out = subprocess.run(["git", "--git-dir", str(repo.path), *args], capture_output=True,
                         env=git_env(), check=True)  # fmt: skip
    return out.stdout.decode()


def _api(gitlab_api: GitLabApiDouble, repo: EnvRepo, token: str = TEST_TOKEN) -> CommitAPI:
    return open_commit_api(ForgeInfo("gitlab", gitlab_api.api_url, repo.name, "127.0.0.1"), token)


@pytest.fixture
def bed(gitlab_api: GitLabApiDouble, env_repo: Any) -> tuple[EnvRepo, CommitAPI]:
    repo = env_repo(
        {
            "main": {"promoter.yaml": "environments: {}\n"},
            "env/dev": {VALUES: "tag: 1\r\n", CHART: "version: 0.1.0\n", "bin.dat": b"x\0y"},
        }
    )
    return repo, _api(gitlab_api, repo)


# --- reads -------------------------------------------------------------------------------------


def test_snapshot_reads_head_files_and_config_in_one_round(bed, gitlab_api) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    head, main = repo.sha("env/dev"), repo.sha("main")
    snap = api.snapshot("env/dev", [VALUES, "bin.dat"], ["promoter.yaml"])
    # The branch, two files by the branch's name with their two directories (for the files'
    # modes), promoter.yaml at HEAD: one round of six.
    assert api.requests == 6
    assert (snap.sha, snap.default_sha) == (head, main)
    assert snap.files == {VALUES: b"tag: 1\r\n", "bin.dat": b"x\0y"}  # byte-exact
    assert snap.default_files == {"promoter.yaml": b"environments: {}\n"}
    assert snap.committed is not None and snap.committed.utcoffset() is not None
    # Reads at a SHA are cached; an absent file (a 404 says not at which commit) is read again
    # by SHA, so it costs a second request.
    assert api.read_files(head, [VALUES]) == {VALUES: b"tag: 1\r\n"}
    assert api.requests == 6
    assert api.snapshot("env/dev", ["missing.yaml"]).files == {"missing.yaml": None}
    assert api.requests == 6 + 3 + 2  # the file and its directory again, by SHA
    assert api.snapshot("env/nope", [VALUES]).sha is None
    assert api.branch_head("env/nope") is None


def test_a_snapshot_taken_while_the_branch_moves_is_one_commit(bed, gitlab_api) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    # Someone pushes between the branch read and the file reads: the files answer from the
    # new head, and are read again at the head the snapshot reports.
    gitlab_api.before(
        "GET /projects/*/repository/files/*",
        lambda: commit_files(repo.path, "env/dev", {VALUES: "tag: 9\n"}, "someone"),
    )
    gitlab_api.latency(0.2, "GET /projects/*/repository/files/*")
    snap = api.snapshot("env/dev", [VALUES])
    assert snap.files[VALUES] == repo.read_file(str(snap.sha), VALUES).encode()


def test_a_head_seen_earlier_is_confirmed_by_the_files_or_read_again(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    first = api.snapshot("env/dev", (), ["promoter.yaml"])  # the branch is read here
    before = api.requests
    snap = api.snapshot("env/dev", [VALUES])
    # The file's commit_id is the head read before: no branch request, the file and its
    # directory only.
    assert snap.sha == first.sha and snap.committed == first.committed
    assert api.requests == before + 2
    theirs = commit_files(repo.path, "env/dev", {CHART: "version: 0.2.0\n"}, "someone")
    before = api.requests
    moved = api.snapshot("env/dev", [VALUES])
    # The file names another commit: the branch is read after all, and the snapshot is that
    # head's (the file, unchanged there, is not read again).
    assert moved.sha == theirs and moved.files == {VALUES: b"tag: 1\r\n"}
    assert moved.committed == api.commit_meta(theirs).committed
    assert api.requests == before + 3


# --- writes ------------------------------------------------------------------------------------


def test_a_commit_is_exact_bytes_by_the_tokens_user_unsigned(bed, gitlab_api) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    snap = api.snapshot("env/dev", [VALUES, CHART, "bin.dat", "n.txt"])  # what the plan reads
    before = api.requests
    new = api.create_commit(
        "env/dev", str(snap.sha), {VALUES: b"tag: 2\r\n", "bin.dat": None, "n.txt": b"\0"}, MESSAGE
    )
    assert isinstance(new, str) and api.requests == before + 1  # one POST, nothing else
    assert repo.sha("env/dev") == new
    assert _git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%P", new).strip() == (
        "Promoter-Bot <1-promoter-bot@users.noreply.127.0.0.1>|"
        f"Promoter-Bot <1-promoter-bot@users.noreply.127.0.0.1>|{snap.sha}"
    )
    raw = _git(repo, "cat-file", "commit", new)
    assert "gpgsig" not in raw  # GitLab does not sign API commits
    assert raw.split("\n\n", 1)[1] == MESSAGE  # the trailer block byte for byte
    assert repo.read_file(new, VALUES) == "tag: 2\r\n"
    assert _git(repo, "cat-file", "blob", f"{new}:n.txt") == "\0"
    # Only what was asked changed: the files read and not written are untouched.
    changed = _git(repo, "diff", "--name-only", str(snap.sha), new).split()
    assert sorted(changed) == sorted([VALUES, "bin.dat", "n.txt"])
    meta = api.commit_meta(new)
    assert meta.parents == (snap.sha,) and meta.message == MESSAGE
    assert api.changed_paths(new) == {VALUES, "bin.dat", "n.txt"}


def test_a_concurrent_change_to_a_written_file_is_a_lost_race(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    snap = api.snapshot("env/dev", [VALUES])
    theirs = commit_files(repo.path, "env/dev", {VALUES: "tag: 7\n"}, "someone else")
    assert api.create_commit("env/dev", str(snap.sha), {VALUES: b"tag: 2\n"}, MESSAGE) is HEAD_MOVED
    assert repo.sha("env/dev") == theirs  # nothing written, nothing overwritten
    # Re-read, re-apply: lands on theirs.
    again = api.snapshot("env/dev", [VALUES])
    new = api.create_commit("env/dev", str(again.sha), {VALUES: b"tag: 2\n"}, MESSAGE)
    assert isinstance(new, str) and api.commit_meta(new).parents == (theirs,)


def test_a_concurrent_change_to_a_file_only_read_is_a_lost_race(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    snap = api.snapshot("env/dev", [VALUES, CHART])  # the plan read Chart.yaml, writes values
    commit_files(repo.path, "env/dev", {CHART: "version: 0.2.0\n"}, "someone else")
    assert api.create_commit("env/dev", str(snap.sha), {VALUES: b"tag: 2\n"}, MESSAGE) is HEAD_MOVED


def test_a_file_created_or_deleted_meanwhile_is_a_lost_race(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    snap = api.snapshot("env/dev", ["new.yaml", VALUES])
    theirs = commit_files(repo.path, "env/dev", {"new.yaml": "x\n"}, "someone else")
    assert api.create_commit("env/dev", str(snap.sha), {"new.yaml": b"y\n"}, MESSAGE) is HEAD_MOVED
    commit_files(repo.path, "env/dev", {VALUES: None}, "someone deletes")
    snap = api.snapshot("env/dev", [VALUES])
    assert snap.files[VALUES] is None
    assert repo.sha("env/dev") != theirs


def test_a_commit_on_other_files_meanwhile_stays_under_ours(bed) -> None:  # type: ignore[no-untyped-def]
    """GitLab's commits API has no expected head: a commit that touched none of the files the
    plan read lands first, ours on top of it; nothing is lost and nothing forced."""
    repo, api = bed
    snap = api.snapshot("env/dev", [VALUES])
    theirs = commit_files(repo.path, "env/dev", {"other.yaml": "o\n"}, "someone else")
    new = api.create_commit("env/dev", str(snap.sha), {VALUES: b"tag: 2\n"}, MESSAGE)
    assert isinstance(new, str) and api.commit_meta(new).parents == (theirs,)
    assert repo.read_file(new, "other.yaml") == "o\n" and repo.read_file(new, VALUES) == "tag: 2\n"


def test_eight_concurrent_writers_on_one_file_all_land(gitlab_api, env_repo) -> None:  # type: ignore[no-untyped-def]
    repo = env_repo({"env/dev": {"log.txt": ""}})
    landed: list[int] = []

    def writer(n: int) -> None:
        api = _api(gitlab_api, repo)
        for _ in range(200):
            snap = api.snapshot("env/dev", ["log.txt"])
            text = (snap.files["log.txt"] or b"") + f"writer {n}\n".encode()
            if (
                api.create_commit("env/dev", str(snap.sha), {"log.txt": text}, f"w{n}\n")
                is not HEAD_MOVED
            ):
                landed.append(n)
                return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(landed) == list(range(8))
    lines = repo.read_file("env/dev", "log.txt").splitlines()
    assert sorted(lines) == [f"writer {n}" for n in range(8)]  # none lost, none twice
    assert len(_git(repo, "rev-list", "refs/heads/env/dev").split()) == 1 + 8


# --- promoter/* branches -----------------------------------------------------------------------


def test_owned_branches_move_only_under_their_lease(bed, gitlab_api) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    head, main = repo.sha("env/dev"), repo.sha("main")
    assert api.set_owned("promoter/update-dev", head, None)
    assert not api.set_owned("promoter/update-dev", main, None)  # exists now
    assert not api.set_owned("promoter/update-dev", main, main)  # not where the lease says
    assert api.set_owned("promoter/update-dev", main, head)
    assert api.branch_head("promoter/update-dev") == main
    assert not api.delete_owned("promoter/update-dev", head)
    assert api.delete_owned("promoter/update-dev", main)
    assert api.branch_head("promoter/update-dev") is None
    before = api.requests
    for call in (lambda: api.set_owned("env/dev", main, head),
                 lambda: api.delete_owned("env/dev", head)):  # fmt: skip
        with pytest.raises(ForgeError, match="not a promoter/ branch"):
            call()
    assert api.requests == before and repo.sha("env/dev") == head


def test_a_promoter_branch_is_made_and_rebuilt_in_one_commit_request_each(bed) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    tip = str(api.snapshot("env/dev", [VALUES]).sha)
    before = api.requests
    assert api.set_owned("promoter/update-dev", tip, None)
    first = api.create_commit("promoter/update-dev", tip, {VALUES: b"tag: 2\n"}, MESSAGE)
    # The lease read (no branch yet), then one POST that creates the branch with the commit.
    assert isinstance(first, str) and api.requests == before + 2
    assert api.commit_meta(first).parents == (tip,)
    newer = commit_files(repo.path, "env/dev", {"other.yaml": "o\n"}, "env moved on")
    snap = api.snapshot("env/dev", [VALUES])
    before = api.requests
    assert api.set_owned("promoter/update-dev", newer, first)
    second = api.create_commit("promoter/update-dev", newer, {VALUES: b"tag: 3\n"}, MESSAGE)
    # The lease read, then one POST: start_sha + force on the promoter branch replaces it.
    assert isinstance(second, str) and api.requests == before + 2
    assert repo.sha("promoter/update-dev") == second
    assert api.commit_meta(second).parents == (snap.sha,)
    assert repo.sha("env/dev") == newer  # the environment branch is never moved by this


# --- the double: GitLab's answers --------------------------------------------------------------


def _post(api: GitLabApiDouble, project: str, body: dict[str, Any]) -> tuple[int, Any]:
    import json
    import urllib.parse
    import urllib.request

    url = f"{api.api_url}/projects/{urllib.parse.quote(project, safe='')}/repository/commits"
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "PRIVATE-TOKEN": TEST_TOKEN, "Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _update(path: str, text: str, **extra: str) -> dict[str, str]:
    content = base64.b64encode(text.encode()).decode()
    return {"action": "update", "file_path": path, "content": content, "encoding": "base64",
            **extra}  # fmt: skip


def test_the_double_answers_as_gitlab(bed, gitlab_api) -> None:  # type: ignore[no-untyped-def]
    repo, _ = bed
    head = repo.sha("env/dev")
    stale = repo.sha("main")
    base = {"branch": "env/dev", "commit_message": "m\n"}
    status, body = _post(gitlab_api, repo.name, {**base, "actions": [_update(VALUES, "a\n")]})
    assert status == 201 and body["parent_ids"] == [head] and body["stats"]["total"] == 2
    moved = body["id"]
    # last_commit_id: the file's last commit as read (or a later commit that kept it) passes.
    status, body = _post(gitlab_api, repo.name, {**base, "actions": [
        _update(CHART, "version: 1\n", last_commit_id=head)]})  # fmt: skip
    assert status == 201
    status, body = _post(gitlab_api, repo.name, {**base, "actions": [
        _update(VALUES, "b\n", last_commit_id=head)]})  # fmt: skip
    assert (status, body) == (400, {"message": f"The file has changed since you started "
                                               f"editing it: {VALUES}"})  # fmt: skip
    status, body = _post(gitlab_api, repo.name, {**base, "start_sha": head, "actions": [
        _update(VALUES, "b\n")]})  # fmt: skip
    assert (status, body["message"]) == (
        400,
        "A branch called 'env/dev' already exists. Switch to that branch in order to make changes",
    )
    status, body = _post(gitlab_api, repo.name, {**base, "actions": [
        {"action": "create", "file_path": VALUES, "content": "x"}]})  # fmt: skip
    assert (status, body) == (400, {"message": "A file with this name already exists"})
    status, body = _post(gitlab_api, repo.name, {**base, "actions": [
        {"action": "delete", "file_path": "nope"}]})  # fmt: skip
    assert (status, body) == (400, {"message": "A file with this name doesn't exist"})
    status, body = _post(gitlab_api, repo.name, {**base, "branch": "promoter/x",
                                                 "start_sha": stale, "actions": []})  # fmt: skip
    assert status == 201 and body["parent_ids"] == [stale]
    assert repo.sha("env/dev") != moved and gitlab_api.violations == []
    status, body = _post(gitlab_api, repo.name, {**base, "actions": [
        {"action": "rename", "file_path": VALUES}]})  # fmt: skip
    assert status == 400 and "does not have a valid value" in body["error"]
    assert len(gitlab_api.violations) == 1  # a request GitLab refuses: recorded as such
    gitlab_api.violations.clear()


def test_no_token_in_any_answer_or_error(bed, gitlab_api) -> None:  # type: ignore[no-untyped-def]
    repo, _ = bed
    wrong = "glpat-wrong-" + TEST_TOKEN[::-1]
    api = _api(gitlab_api, repo, wrong)
    with pytest.raises(ForgeAuthError) as caught:
        api.snapshot("env/dev", [VALUES])
    assert wrong not in str(caught.value) and TEST_TOKEN not in str(caught.value)
    gitlab_api.fail("POST /projects/*/repository/commits", [403], message=f"no {wrong}")
    api = _api(gitlab_api, repo)
    snap = api.snapshot("env/dev", [VALUES])
    with pytest.raises(ForgeAuthError) as caught:
        api.create_commit("env/dev", str(snap.sha), {VALUES: b"x\n"}, MESSAGE)
    assert TEST_TOKEN not in str(caught.value)
    with pytest.raises(UsageError) as caught:  # a header could not carry it: never shown
        _api(gitlab_api, repo, TEST_TOKEN + "\n").branch_head("env/dev")
    assert TEST_TOKEN not in str(caught.value) and "line break" in str(caught.value)


def test_transient_answers_are_retried_on_kept_alive_connections(bed, gitlab_api) -> None:  # type: ignore[no-untyped-def]
    repo, api = bed
    gitlab_api.fail("GET /projects/*/repository/branches/*", [502, 429], retry_after=0)
    assert api.branch_head("env/dev") == repo.sha("env/dev")
    assert api.requests == 3  # 502, 429 (Retry-After: 0), then the answer
    gitlab_api.fail("GET /projects/*/repository/branches/*", [503] * 5)
    with pytest.raises(ForgeError, match=r"reading branch env/dev .* answered 503"):
        api.branch_head("env/dev")
    assert api.requests == 3 + 5  # MAX_RETRIES (4) retries, then the error
    gitlab_api.fail("GET /projects/*/repository/branches/*", [404])
    assert api.branch_head("env/dev") is None  # a 404 is no branch, not retried


# --- the commands through `--commit-via api` on GitLab -----------------------------------------

CONFIG = """\
environments:
  dev: {branch: env/dev}
  staging: {branch: env/staging, from: dev}
  prod: {branch: env/prod, from: staging, delivery: pull-request}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag}
"""
WEB = '# web\nimage:\n  repository: ghcr.io/acme/web\n  tag: "1.4.1"   # set by promoter\n'
API = "image:\n  tag: 2.0.0\n"
FILES = {"promoter.yaml": CONFIG, "apps/web/values.yaml": WEB, "apps/api/values.yaml": API}


@pytest.fixture
def envs(env_repo: Any) -> EnvRepo:
    repo: EnvRepo = env_repo(
        {"main": FILES, "env/dev": FILES, "env/staging": FILES, "env/prod": FILES}
    )
    return repo


def _cli(repo: EnvRepo, api: GitLabApiDouble, *args: str) -> tuple[str, ...]:
    return ("--repo", repo.url, "--token", TEST_TOKEN, "--forge", "gitlab",
            "--api-url", api.api_url, "--commit-via", "api", *args)  # fmt: skip


def _pushes(server: GitHttpServer, since: int) -> list[str]:
    server.wait_idle()
    return [r.path for r in server.requests[since:] if "git-receive-pack" in r.path]


def test_update_commits_through_the_gitlab_api(
    envs, gitlab_api, git_server, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("GITLAB_USER_LOGIN", "jdoe")
    monkeypatch.setenv("CI_JOB_URL", "https://gitlab.example.com/acme/web/-/jobs/7")
    before, seen = envs.sha("env/dev"), len(git_server.requests)
    run = run_cli(capsys, *_cli(envs, gitlab_api, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 0, run.err
    tip = envs.sha("env/dev")
    assert _pushes(git_server, seen) == []  # nothing went over git
    assert _git(envs, "log", "-1", "--format=%P|%an <%ae>|%cn <%ce>", tip).strip() == (
        f"{before}|Promoter-Bot <1-promoter-bot@users.noreply.127.0.0.1>|"
        "Promoter-Bot <1-promoter-bot@users.noreply.127.0.0.1>"
    )
    message = commit_message(envs.path, tip)
    assert message.startswith("update(dev): web 1.4.2\n\nPromoter-Environment: dev\n")
    assert "Promoter-Change: web/web image.tag 1.4.1 -> 1.4.2\n" in message
    assert "Promoter-Actor: jdoe" in message  # the actor stays in the trailers
    assert envs.read_file(tip, "apps/web/values.yaml") == WEB.replace('"1.4.1"', '"1.4.2"')
    assert _git(envs, "diff", "--name-only", before, tip).split() == ["apps/web/values.yaml"]
    # Round trips: promoter.yaml with the branch; the file and its directory (the file's
    # commit_id confirms the head the first round read: no second branch read); the commit.
    posts = [r for r in gitlab_api.request_log if r[0] == "POST"]
    assert len(posts) == 1 and len(gitlab_api.request_log) == 2 + 2 + 1
    # The same run again writes nothing.
    gitlab_api.request_log.clear()
    again = run_cli(capsys, *_cli(envs, gitlab_api, "update", "dev", "--image", "web=1.4.2"))
    assert again.code == 0 and "already up to date" in again.out
    assert envs.sha("env/dev") == tip
    assert [r for r in gitlab_api.request_log if r[0] != "GET"] == []


def test_a_lost_race_is_reapplied_on_the_new_tip(envs, gitlab_api, capsys) -> None:  # type: ignore[no-untyped-def]
    theirs = WEB.replace("# web", "# web, edited by someone")
    landed: list[str] = []
    gitlab_api.before(
        "POST /projects/*/repository/commits",
        lambda: landed.append(
            commit_files(envs.path, "env/dev", {"apps/web/values.yaml": theirs}, "someone")
        ),
    )
    run = run_cli(capsys, *_cli(envs, gitlab_api, "--output", "json", "update", "dev",
                                "--image", "web=1.4.2"))  # fmt: skip
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["attempts"] == 2 and data["commit"] == envs.sha("env/dev")
    assert api_parents(envs, data["commit"]) == landed  # on their commit, theirs kept
    assert envs.read_file("env/dev", "apps/web/values.yaml") == theirs.replace('"1.4.1"', '"1.4.2"')
    refused = [r for r in gitlab_api.request_log if r[0] == "POST"]
    assert [status for *_, status in refused] == [400, 201]


def api_parents(repo: EnvRepo, sha: str) -> list[str]:
    return _git(repo, "log", "-1", "--format=%P", sha).split()


def test_eight_concurrent_api_updates_all_land(gitlab_api, env_repo) -> None:  # type: ignore[no-untyped-def]
    apps = [f"app{i}" for i in range(8)]
    config = "environments:\n  dev: {branch: env/dev}\napps:\n" + "".join(
        f"  {a}:\n    images:\n      {a}: {{file: apps/{a}/values.yaml, tag: image.tag}}\n"
        for a in apps
    )
    files = {"promoter.yaml": config, "shared.yaml": "x: 1\n"}
    files.update({f"apps/{a}/values.yaml": "image:\n  tag: 1.0.0\n" for a in apps})
    repo = env_repo({"main": files, "env/dev": files})
    env = {"PROMOTER_TOKEN": TEST_TOKEN, "PROMOTER_FORGE": "gitlab",
           "PROMOTER_API_URL": gitlab_api.api_url, "PROMOTER_COMMIT_VIA": "api"}  # fmt: skip
    procs = [spawn("--repo", repo.url, "update", "dev", "--image", f"{a}=2.0.0", env=env)
             for a in apps]  # fmt: skip
    runs = [finish(proc) for proc in procs]
    assert [run.code for run in runs] == [0] * 8, [run.err for run in runs]
    for a in apps:
        assert repo.read_file("env/dev", f"apps/{a}/values.yaml") == "image:\n  tag: 2.0.0\n"
    subjects = _git(repo, "log", "--format=%s", "refs/heads/env/dev").splitlines()
    assert sorted(subjects[:8]) == sorted(f"update(dev): {a} 2.0.0" for a in apps)
    assert is_linear(repo.path, "env/dev")


def test_a_refused_commit_is_one_line_without_the_token(envs, gitlab_api, capsys) -> None:  # type: ignore[no-untyped-def]
    gitlab_api.fail("POST /projects/*/repository/commits", [403],
                    message=f"403 Forbidden - You are not allowed to push ({TEST_TOKEN})")  # fmt: skip
    run = run_cli(capsys, *_cli(envs, gitlab_api, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 1
    assert "access denied" in run.err and len(run.err.strip().splitlines()) == 1
    assert envs.sha("env/dev") == envs.shas["env/dev"]


def test_an_update_by_merge_request_builds_the_promoter_branch_through_the_api(
    envs, gitlab_api, git_server, capsys
) -> None:  # type: ignore[no-untyped-def]
    prod, seen = envs.sha("env/prod"), len(git_server.requests)
    run = run_cli(capsys, *_cli(envs, gitlab_api, "update", "prod", "--image", "web=1.5.0"))
    assert run.code == 0, run.err
    head = envs.sha("promoter/update-prod")
    assert api_parents(envs, head) == [prod] and envs.sha("env/prod") == prod
    (mr,) = gitlab_api.project(envs.name).mrs.values()
    assert (mr.source, mr.target, mr.state) == ("promoter/update-prod", "env/prod", "opened")
    # The environment moves on; a second update rebuilds the promoter branch on its new tip,
    # carrying both values, with start_sha + force on promoter/update-prod only.
    newer = commit_files(envs.path, "env/prod", {"README.md": "prod\n"}, "someone")
    gitlab_api.request_log.clear()
    run = run_cli(capsys, *_cli(envs, gitlab_api, "update", "prod", "--image", "api=2.1.0"))
    assert run.code == 0, run.err
    writes = [(m, p) for m, p, _ in gitlab_api.request_log if m not in ("GET",)]
    assert [m for m, p in writes if "merge_requests" not in p] == ["POST"]  # no delete+create
    rebuilt = envs.sha("promoter/update-prod")
    assert api_parents(envs, rebuilt) == [newer] and envs.sha("env/prod") == newer
    assert 'tag: "1.5.0"' in envs.read_file(rebuilt, "apps/web/values.yaml")
    assert "tag: 2.1.0" in envs.read_file(rebuilt, "apps/api/values.yaml")
    assert len(gitlab_api.project(envs.name).mrs) == 1
    # Once more: nothing to write, nothing sent but reads.
    gitlab_api.request_log.clear()
    run = run_cli(capsys, *_cli(envs, gitlab_api, "update", "prod", "--image", "api=2.1.0"))
    assert run.code == 0, run.err
    assert envs.sha("promoter/update-prod") == rebuilt
    assert [r for r in gitlab_api.request_log if r[0] not in ("GET",)] == []
    assert _pushes(git_server, seen) == []


def test_rollback_through_the_gitlab_api_keeps_a_manual_commit(
    envs, gitlab_api, git_server, capsys
) -> None:  # type: ignore[no-untyped-def]
    seed = envs.sha("env/dev")
    for tag in ("1.5.0", "1.6.0"):
        run = run_cli(capsys, *_cli(envs, gitlab_api, "update", "dev", "--image", f"web={tag}"))
        assert run.code == 0, run.err
    manual = commit_files(envs.path, "env/dev", {"NOTES.md": "scaled\n"}, "a person's note")
    seen = len(git_server.requests)
    gitlab_api.request_log.clear()
    run = run_cli(capsys, *_cli(envs, gitlab_api, "--output", "json", "rollback", "dev",
                                "--steps", "1"))  # fmt: skip
    assert run.code == 0, run.err
    data = json.loads(run.out)
    new = envs.sha("env/dev")
    assert data["changed"] is True and data["commit"] == new
    assert api_parents(envs, new) == [manual]  # on top: nothing rewritten
    assert 'tag: "1.5.0"' in envs.read_file(new, "apps/web/values.yaml")
    assert envs.read_file(new, "NOTES.md") == "scaled\n"
    assert "Promoter-Rollback-To: " in commit_message(envs.path, new)
    assert _git(envs, "log", "-1", "--format=%cn", new).strip() == "Promoter-Bot"
    assert _pushes(git_server, seen) == []  # history read over git, the commit over the API
    assert [r[0] for r in gitlab_api.request_log].count("POST") == 1
    # The same rollback target again: nothing written.
    again = run_cli(capsys, *_cli(envs, gitlab_api, "--output", "json", "rollback", "dev",
                                  "--to", data["rollback_to"]))  # fmt: skip
    assert again.code == 0 and json.loads(again.out)["changed"] is False
    assert envs.sha("env/dev") == new and seed != new


def test_promote_by_push_through_the_gitlab_api(envs, gitlab_api, capsys) -> None:  # type: ignore[no-untyped-def]
    ours = commit_files(envs.path, "env/dev", {"apps/web/values.yaml": WEB.replace(
        '"1.4.1"', '"1.7.0"')}, "update web")  # fmt: skip
    staging = envs.sha("env/staging")
    gitlab_api.request_log.clear()
    run = run_cli(capsys, *_cli(envs, gitlab_api, "--output", "json", "promote", "--to",
                                "staging", "--no-gate"))  # fmt: skip
    assert run.code == 0, run.err
    new = envs.sha("env/staging")
    assert api_parents(envs, new) == [staging]
    assert 'tag: "1.7.0"' in envs.read_file(new, "apps/web/values.yaml")
    assert f"Promoter-Source: dev@{ours}" in commit_message(envs.path, new)
    assert [r[0] for r in gitlab_api.request_log].count("POST") == 1
    again = run_cli(capsys, *_cli(envs, gitlab_api, "promote", "--to", "staging", "--no-gate"))
    assert again.code == 0 and envs.sha("env/staging") == new


def _entry(repo: EnvRepo, branch: str, path: str, mode: str, text: str) -> None:
    """A commit on `branch` putting an entry of `mode` at `path` (git fast-import)."""
    parent = repo.sha(branch)
    data = f"data {len(text.encode())}\n{text}\n"
    line = {"040000": f"D {path}\nM 100644 inline {path}/inner.yaml\n{data}",
            "160000": f"M 160000 {parent} {path}\n"}.get(mode, f"M {mode} inline {path}\n{data}")  # fmt: skip
    stream = (f"commit refs/heads/{branch}\ncommitter t <t@example.com> 0 +0000\ndata 5\nentry\n"
              f"from {parent}\n{line}done\n")  # fmt: skip
    subprocess.run(["git", "--git-dir", str(repo.path), "fast-import", "--quiet", "--done"],
                   input=stream.encode(), check=True, env=git_env())  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "what"),
    [("120000", "a symbolic link"), ("160000", "a submodule"), ("040000", "a directory")],
)
def test_a_pinned_path_that_is_not_a_regular_file_is_refused(
    envs, gitlab_api, capsys, mode, what
) -> None:  # type: ignore[no-untyped-def]
    # A link's target text that reads as YAML: GitLab's files API serves it like a file.
    _entry(envs, "env/dev", "apps/web/values.yaml", mode, "image:\n  tag: 1.4.1\n")
    before = envs.sha("env/dev")
    run = run_cli(capsys, *_cli(envs, gitlab_api, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 2, run.output
    assert "apps/web/values.yaml must be a regular file" in run.err and what in run.err
    assert run.err.count("\n") == 1
    assert envs.sha("env/dev") == before
    assert [r for r in gitlab_api.request_log if r[0] == "POST"] == []


def test_an_executable_pinned_file_keeps_its_mode(envs, gitlab_api, capsys) -> None:  # type: ignore[no-untyped-def]
    _entry(envs, "env/dev", "apps/web/values.yaml", "100755", WEB)
    run = run_cli(capsys, *_cli(envs, gitlab_api, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 0, run.err
    assert 'tag: "1.4.2"' in envs.read_file("env/dev", "apps/web/values.yaml")
    assert _git(envs, "ls-tree", "env/dev", "apps/web/values.yaml").startswith("100755 blob")


def test_both_paths_write_the_same_tree_and_message_on_gitlab(env_repo, gitlab_api, capsys) -> None:  # type: ignore[no-untyped-def]
    from ruamel.yaml import YAML

    from promoter.helmlock import lock_digest

    chart = ("apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n- name: web\n"
             "  version: 0.3.0\n  repository: oci://ghcr.io/acme/charts\n")  # fmt: skip
    deps = YAML(typ="safe").load(chart)["dependencies"]
    lock = ("dependencies:\n- name: web\n  repository: oci://ghcr.io/acme/charts\n  version: 0.3.0\n"
            f"digest: {lock_digest(deps, deps)}\ngenerated: \"2025-06-01T00:00:00Z\"\n")  # fmt: skip
    config = CONFIG.replace(
        "      web: {file: apps/web/values.yaml, tag: image.tag}\n",
        "      web: {file: apps/web/values.yaml, tag: image.tag}\n"
        '    chart: {file: apps/web/Chart.yaml, version: "dependencies[name=web].version"}\n',
    )
    files = {**FILES, "promoter.yaml": config, "apps/web/Chart.yaml": chart,
             "apps/web/Chart.lock": lock, "apps/web/values.yaml": WEB.replace("\n", "\r\n")}  # fmt: skip
    trees, messages = {}, {}
    for via in ("git", "api"):
        repo = env_repo({"main": files, "env/dev": files})
        run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--forge", "gitlab",
                      "--api-url", gitlab_api.api_url, "--commit-via", via, "update", "dev",
                      "--image", "web=1.1.0", "--chart", "web=0.3.1")  # fmt: skip
        assert run.code == 0, run.err
        trees[via] = {path: repo.read_file("env/dev", path) for path in files}
        messages[via] = _git(repo, "cat-file", "commit", "env/dev").split("\n\n", 1)[1]
        tip = _git(repo, "log", "-1", "--format=%cI", "env/dev~1").strip()
        stamp = tip.replace("+00:00", "Z")
        assert f'generated: "{stamp}"' in trees[via]["apps/web/Chart.lock"]  # the tip's time
        trees[via]["apps/web/Chart.lock"] = trees[via]["apps/web/Chart.lock"].replace(stamp, "T")
    assert trees["api"] == trees["git"]
    assert 'tag: "1.1.0"   # set by promoter\r\n' in trees["api"]["apps/web/values.yaml"]
    assert messages["api"] == messages["git"]  # GitLab stores the message as sent


def test_eight_concurrent_api_updates_of_one_file_all_land(gitlab_api, env_repo) -> None:  # type: ignore[no-untyped-def]
    """Every writer edits the same file: each lost race is GitLab's 'file has changed', then
    re-read and re-applied on the new head, until all eight values are in."""
    apps = [f"app{i}" for i in range(8)]
    config = "environments:\n  dev: {branch: env/dev}\napps:\n" + "".join(
        f"  {a}:\n    images:\n      {a}: {{file: shared.yaml, tag: {a}.tag}}\n" for a in apps
    )
    shared = "".join(f"{a}:\n  tag: 1.0.0\n" for a in apps)
    files = {"promoter.yaml": config, "shared.yaml": shared}
    repo = env_repo({"main": files, "env/dev": files})
    env = {"PROMOTER_TOKEN": TEST_TOKEN, "PROMOTER_FORGE": "gitlab",
           "PROMOTER_API_URL": gitlab_api.api_url, "PROMOTER_COMMIT_VIA": "api"}  # fmt: skip
    procs = [spawn("--repo", repo.url, "--output", "json", "update", "dev", "--image",
                   f"{a}=2.0.0", env=env) for a in apps]  # fmt: skip
    runs = [finish(proc) for proc in procs]
    assert [run.code for run in runs] == [0] * 8, [run.err for run in runs]
    assert repo.read_file("env/dev", "shared.yaml") == shared.replace("1.0.0", "2.0.0")
    assert len(_git(repo, "rev-list", "refs/heads/env/dev").split()) == 1 + 8
    refused = [r for r in gitlab_api.request_log if r[0] == "POST" and r[2] == 400]
    attempts = sum(json.loads(run.out)["attempts"] for run in runs)
    assert attempts == 8 + len(refused)  # every refusal was retried, none lost


def test_a_file_read_as_absent_that_appears_meanwhile_is_named(bed, capsys) -> None:  # type: ignore[no-untyped-def]
    """No action can guard an absent file (an update needs it to exist): when one the plan
    read as absent appears under the commit, GitLab lands ours on top and promoter says so."""
    repo, api = bed
    snap = api.snapshot("env/dev", [VALUES, "apps/web/extra.yaml"])
    theirs = commit_files(repo.path, "env/dev", {"apps/web/extra.yaml": "x\n"}, "someone")
    new = api.create_commit("env/dev", str(snap.sha), {VALUES: b"tag: 2\n"}, MESSAGE)
    assert isinstance(new, str) and api.commit_meta(new).parents == (theirs,)
    err = capsys.readouterr().err
    assert "apps/web/extra.yaml changed after" in err and f"check {new[:12]}" in err
    assert err.count("\n") == 1
