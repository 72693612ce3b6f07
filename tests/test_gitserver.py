"""The git test bed against the real git client: auth, partial clone, push, concurrency, faults."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import promoter
from promoter.sandbox import TEST_TOKEN, GitHttpServer, auth_config_env, basic_auth_header
from promoter.sandbox.envrepo import (
    EnvRepo,
    EnvRepoFactory,
    commit_files,
    commit_message,
    git_env,
    is_linear,
    list_files,
    log,
    read_file,
    rev_list_parents,
    seed_repo,
)

pytest_plugins = ["pytester"]

FILES = {
    "promoter.yaml": "environments:\n  dev:\n    branch: env/dev\n",
    "apps/web/values.yaml": "image:\n  tag: 1.0.0\n",
    "apps/api/values.yaml": "image:\n  tag: 2.0.0\n",
}


def git(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args[0]} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def authed(token: str = TEST_TOKEN) -> dict[str, str]:
    return auth_config_env(token)


def clone(repo: EnvRepo, dest: Path, *extra: str) -> Path:
    git("clone", "--quiet", *extra, repo.url, str(dest), env=authed())
    return dest


def make_commit(work: Path, path: str, content: str | bytes, message: str) -> str:
    target = work / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    git("add", path, cwd=work)
    git("commit", "--quiet", "-m", message, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


@pytest.fixture
def repo(env_repo: EnvRepoFactory) -> EnvRepo:
    return env_repo({"main": FILES, "env/dev": FILES, "env/staging": FILES})


# --- auth ----------------------------------------------------------------------------------------


def test_clone_with_basic_auth_extra_header(repo: EnvRepo, tmp_path: Path) -> None:
    work = clone(repo, tmp_path / "w", "-b", "env/dev")
    assert (work / "apps/web/values.yaml").read_text() == FILES["apps/web/values.yaml"]
    assert git("rev-parse", "HEAD", cwd=work).stdout.strip() == repo.shas["env/dev"]


def test_clone_with_token_in_url_userinfo(repo: EnvRepo, tmp_path: Path) -> None:
    url = repo.url.replace("http://", f"http://x-access-token:{TEST_TOKEN}@")
    git("clone", "--quiet", url, str(tmp_path / "w"))
    assert (tmp_path / "w/promoter.yaml").exists()


def test_bearer_token_is_accepted(repo: EnvRepo) -> None:
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {TEST_TOKEN}",
    }
    out = git("ls-remote", repo.url, env=env).stdout
    assert repo.shas["env/dev"] in out


def test_wrong_token_is_rejected(repo: EnvRepo, git_server: GitHttpServer, tmp_path: Path) -> None:
    url = repo.url.replace("http://", "http://x-access-token:not-the-token@")
    proc = git("clone", url, str(tmp_path / "w"), check=False)
    assert proc.returncode != 0
    assert "Authentication failed" in proc.stderr
    assert git_server.wait_idle()
    assert ("GET", "/" + repo.name + ".git/info/refs?service=git-upload-pack", 401) in (
        git_server.request_log
    )


def test_missing_token_is_rejected(repo: EnvRepo, tmp_path: Path) -> None:
    proc = git("clone", repo.url, str(tmp_path / "w"), check=False)
    assert proc.returncode != 0
    assert "terminal prompts disabled" in proc.stderr


def test_push_requires_auth_too(repo: EnvRepo, tmp_path: Path) -> None:
    work = clone(repo, tmp_path / "w", "-b", "env/dev")
    make_commit(work, "x.txt", "x\n", "unauthenticated push")
    proc = git("push", repo.url, "HEAD:refs/heads/env/dev", cwd=work, check=False)
    assert proc.returncode != 0
    assert repo.sha("env/dev") == repo.shas["env/dev"]


def test_401_carries_basic_challenge(git_server: GitHttpServer, repo: EnvRepo) -> None:
    for auth in (None, "Basic !!!notbase64", basic_auth_header("wrong"), "Bearer wrong"):
        conn = http.client.HTTPConnection("127.0.0.1", git_server.port, timeout=10)
        headers = {"Authorization": auth} if auth else {}
        conn.request("GET", f"/{repo.name}.git/info/refs?service=git-upload-pack", headers=headers)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 401, auth
        assert resp.getheader("WWW-Authenticate") == 'Basic realm="promoter-test"'


# --- partial clone, protocol v2, gzip --------------------------------------------------------


def test_blobless_shallow_single_branch_clone_leaves_blobs_missing(
    repo: EnvRepo, tmp_path: Path
) -> None:
    tip = repo.commit("env/dev", {"apps/web/values.yaml": "image:\n  tag: 1.1.0\n"}, "bump web")
    work = tmp_path / "w"
    git(
        "clone",
        "--quiet",
        "--filter=blob:none",
        "--depth",
        "1",
        "--single-branch",
        "-b",
        "env/dev",
        # A checkout would fetch the tip's blobs at once; without it they stay on the server.
        "--no-checkout",
        repo.url,
        str(work),
        env=authed(),
    )
    assert git("rev-parse", "HEAD", cwd=work).stdout.strip() == tip
    assert git("rev-list", "--count", "HEAD", cwd=work).stdout.strip() == "1"
    assert git("branch", "-r", cwd=work).stdout.split() == ["origin/env/dev"]
    objects = git("rev-list", "--objects", "--missing=print", "HEAD", cwd=work).stdout
    missing = [line for line in objects.splitlines() if line.startswith("?")]
    assert len(missing) == len(FILES)

    # A lazy fetch of one blob goes through the same auth (allowAnySHA1InWant + filter).
    blob = git("cat-file", "-p", "HEAD:apps/web/values.yaml", cwd=work, env=authed()).stdout
    assert blob == "image:\n  tag: 1.1.0\n"


def test_protocol_v2_is_spoken(repo: EnvRepo, git_server: GitHttpServer) -> None:
    before = len(git_server.requests)
    proc = git("ls-remote", repo.url, env={**authed(), "GIT_TRACE_PACKET": "1"})
    assert "version 2" in proc.stderr
    assert git_server.wait_idle()
    mine = git_server.requests[before:]
    assert [r.git_protocol for r in mine] == ["version=2", "version=2"]
    assert [(r.method, r.status) for r in mine] == [("GET", 200), ("POST", 200)]


def test_protocol_v0_still_works(repo: EnvRepo) -> None:
    env = {**authed(), "GIT_CONFIG_COUNT": "2"}
    env.update(GIT_CONFIG_KEY_1="protocol.version", GIT_CONFIG_VALUE_1="0")
    out = git("ls-remote", repo.url, env=env).stdout
    assert repo.shas["env/staging"] in out


def test_gzip_request_bodies_are_inflated(
    env_repo: EnvRepoFactory, git_server: GitHttpServer, tmp_path: Path
) -> None:
    # Enough distinct branch tips that the fetch request exceeds git's 1 KiB gzip threshold.
    branches = {f"env/e{i:02d}": {"f.txt": f"{i}\n"} for i in range(40)}
    repo = env_repo(branches)
    before = len(git_server.requests)
    work = clone(repo, tmp_path / "w", "--mirror")
    assert git_server.wait_idle()
    mine = git_server.requests[before:]
    assert any(r.content_encoding == "gzip" and r.status == 200 for r in mine)
    refs = git("for-each-ref", "--format=%(objectname)", "refs/heads/", cwd=work).stdout.split()
    assert sorted(refs) == sorted(repo.shas.values())


# --- push ----------------------------------------------------------------------------------


def test_push_lands_on_the_bare_repo(repo: EnvRepo, tmp_path: Path) -> None:
    work = clone(repo, tmp_path / "w", "-b", "env/dev")
    sha = make_commit(work, "apps/web/values.yaml", "image:\n  tag: 1.2.0\n", "bump web to 1.2.0")
    git("push", "--quiet", "origin", "HEAD:refs/heads/env/dev", cwd=work, env=authed())
    assert repo.sha("env/dev") == sha
    assert repo.read_file("env/dev", "apps/web/values.yaml") == "image:\n  tag: 1.2.0\n"
    assert repo.log("env/dev") == ["bump web to 1.2.0", "seed"]


def test_non_fast_forward_push_is_rejected(repo: EnvRepo, tmp_path: Path) -> None:
    first = clone(repo, tmp_path / "a", "-b", "env/dev")
    second = clone(repo, tmp_path / "b", "-b", "env/dev")
    winner = make_commit(first, "a.txt", "a\n", "first writer")
    git("push", "--quiet", "origin", "HEAD:refs/heads/env/dev", cwd=first, env=authed())
    make_commit(second, "b.txt", "b\n", "second writer")
    proc = git("push", "origin", "HEAD:refs/heads/env/dev", cwd=second, env=authed(), check=False)
    assert proc.returncode != 0
    assert "rejected" in proc.stderr
    assert repo.sha("env/dev") == winner


def test_concurrent_pushes_to_different_branches_all_land(
    repo: EnvRepo, git_server: GitHttpServer, tmp_path: Path
) -> None:
    n = 16
    work = clone(repo, tmp_path / "w", "-b", "env/dev")
    shas = {}
    for i in range(n):
        git("checkout", "--quiet", "-B", f"b{i}", repo.shas["env/dev"], cwd=work)
        shas[f"env/p{i:02d}"] = make_commit(work, f"f{i}.txt", f"{i}\n", f"writer {i}")

    def push(branch: str) -> subprocess.CompletedProcess[str]:
        # A URL instead of a remote name: no shared remote-tracking refs to lock locally.
        refspec = f"{shas[branch]}:refs/heads/{branch}"
        return git("push", repo.url, refspec, cwd=work, env=authed(), check=False)

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(push, shas))
    assert [r.returncode for r in results] == [0] * n, [r.stderr for r in results]
    for branch, sha in shas.items():
        assert repo.sha(branch) == sha
    assert not git_server.errors


def test_concurrent_pushes_to_one_branch_exactly_one_wins(repo: EnvRepo, tmp_path: Path) -> None:
    n = 8
    work = clone(repo, tmp_path / "w", "-b", "env/dev")
    candidates = []
    for i in range(n):
        git("checkout", "--quiet", "-B", f"c{i}", repo.shas["env/dev"], cwd=work)
        candidates.append(make_commit(work, "race.txt", f"{i}\n", f"racer {i}"))

    barrier = threading.Barrier(n)

    def push(sha: str) -> int:
        barrier.wait()
        refspec = f"{sha}:refs/heads/env/dev"
        return git("push", repo.url, refspec, cwd=work, env=authed(), check=False).returncode

    with ThreadPoolExecutor(max_workers=n) as pool:
        codes = list(pool.map(push, candidates))
    assert codes.count(0) == 1
    assert repo.sha("env/dev") == candidates[codes.index(0)]


def test_large_push_uses_chunked_encoding(
    repo: EnvRepo, git_server: GitHttpServer, tmp_path: Path
) -> None:
    work = clone(repo, tmp_path / "w", "-b", "env/dev")
    payload = os.urandom(3 * 1024 * 1024)  # incompressible, so the pack stays > 1 MiB
    sha = make_commit(work, "blob.bin", payload, "large file")
    before = len(git_server.requests)
    git(
        "-c",
        "http.postBuffer=65536",
        "push",
        "--quiet",
        "origin",
        "HEAD:refs/heads/env/dev",
        cwd=work,
        env=authed(),
    )
    assert git_server.wait_idle()
    pushes = [r for r in git_server.requests[before:] if r.path.endswith("/git-receive-pack")]
    assert any(r.chunked and r.status == 200 for r in pushes)
    assert repo.sha("env/dev") == sha
    blob = subprocess.run(
        ["git", "--git-dir", str(repo.path), "cat-file", "blob", "env/dev:blob.bin"],
        capture_output=True,
        check=True,
        env=git_env(),
    ).stdout
    assert blob == payload


def test_branch_deletion_is_allowed(repo: EnvRepo, tmp_path: Path) -> None:
    git("push", "--quiet", repo.url, ":refs/heads/env/staging", env=authed())
    assert "env/staging" not in git("ls-remote", repo.url, env=authed()).stdout


# --- request log and faults ------------------------------------------------------------------


def test_request_log_records_method_path_status(repo: EnvRepo, git_server: GitHttpServer) -> None:
    before = len(git_server.request_log)
    git("ls-remote", repo.url, env=authed())
    assert git_server.wait_idle()
    assert git_server.request_log[before:] == [
        ("GET", f"/{repo.name}.git/info/refs?service=git-upload-pack", 200),
        ("POST", f"/{repo.name}.git/git-upload-pack", 200),
    ]
    assert all(r.user == "x-access-token" for r in git_server.requests[before:])


def test_fail_next_answers_with_the_status(repo: EnvRepo, git_server: GitHttpServer) -> None:
    git_server.fail_next(1, 503)
    proc = git("ls-remote", repo.url, env=authed(), check=False)
    assert proc.returncode != 0
    assert "503" in proc.stderr
    assert git_server.wait_idle()
    assert git_server.request_log[-1][2] == 503
    assert repo.shas["env/dev"] in git("ls-remote", repo.url, env=authed()).stdout


def test_fail_next_counts_requests(repo: EnvRepo, git_server: GitHttpServer) -> None:
    git_server.fail_next(2, 500)
    for _ in range(2):
        assert git("ls-remote", repo.url, env=authed(), check=False).returncode != 0
    git("ls-remote", repo.url, env=authed())


def test_latency_delays_every_request(repo: EnvRepo, git_server: GitHttpServer) -> None:
    git_server.set_latency(0.2)
    started = time.monotonic()
    git("ls-remote", repo.url, env=authed())
    assert time.monotonic() - started >= 0.4  # two requests in protocol v2


def test_unknown_repo_is_404(git_server: GitHttpServer) -> None:
    proc = git("ls-remote", f"{git_server.url}/nobody/nothing.git", env=authed(), check=False)
    assert proc.returncode != 0
    assert git_server.wait_idle()  # the server logs a request after answering it
    assert git_server.request_log[-1][2] == 404


def test_repo_names_are_checked(git_server: GitHttpServer) -> None:
    for bad in ("../escape", "a//b", "/abs", "a/./b", "a b", ""):
        with pytest.raises(ValueError):
            git_server.repo_path(bad)
    assert git_server.repo_url("acme/envs") == f"{git_server.url}/acme/envs.git"


# --- lifecycle --------------------------------------------------------------------------------


def test_stop_closes_idle_connections_and_threads(tmp_path: Path) -> None:
    server = GitHttpServer(tmp_path / "root", TEST_TOKEN)
    with server:
        server.create_repo("acme/envs")
        seed_repo(server.repo_path("acme/envs"), {"main": FILES})
        git("clone", "--quiet", server.repo_url("acme/envs"), str(tmp_path / "w"), env=authed())
        # An idle keep-alive connection, the kind that would pin a handler thread forever.
        idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        idle.request(
            "GET", "/acme/envs.git/HEAD", headers={"Authorization": f"Bearer {TEST_TOKEN}"}
        )
        resp = idle.getresponse()
        assert resp.status == 200
        assert resp.read().startswith(b"ref: refs/heads/main")
        started = time.monotonic()
    assert time.monotonic() - started < 3
    prefix = f"git-http-{server.port}"
    assert [t.name for t in threading.enumerate() if t.name.split("-conn")[0] == prefix] == []
    assert [t.name for t in threading.enumerate() if t.name == f"{prefix}-feed"] == []
    assert idle.sock is not None
    assert idle.sock.recv(1) == b"", "the server should have closed the idle connection"
    assert not server._procs
    assert not server.errors
    idle.close()


# --- envrepo helpers --------------------------------------------------------------------------


def test_envrepo_helpers_roundtrip(repo: EnvRepo) -> None:
    sha = commit_files(
        repo.path,
        "env/dev",
        {"apps/web/values.yaml": "image:\n  tag: 9.9.9\n", "apps/api/values.yaml": None},
        "promote(dev): web 9.9.9\n\nPromoter-Environment: dev\n",
    )
    assert read_file(repo.path, sha, "apps/web/values.yaml") == "image:\n  tag: 9.9.9\n"
    assert "apps/api/values.yaml" not in list_files(repo.path, "env/dev")
    assert log(repo.path, "env/dev") == ["promote(dev): web 9.9.9", "seed"]
    assert commit_message(repo.path, "env/dev").endswith("Promoter-Environment: dev")
    assert rev_list_parents(repo.path, "env/dev") == [
        (sha, (repo.shas["env/dev"],)),
        (repo.shas["env/dev"], ()),
    ]
    assert is_linear(repo.path, "env/dev")
    # Staging was untouched, and odd paths survive quoting.
    commit_files(repo.path, "env/staging", {'dir with space/"q".yaml': b"\x00bin"}, "odd")
    assert 'dir with space/"q".yaml' in list_files(repo.path, "env/staging")
    assert read_file(repo.path, "env/staging", "promoter.yaml") == FILES["promoter.yaml"]


# --- token leak check -------------------------------------------------------------------------


def test_token_leak_check_fails_tests_that_show_the_token(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makepyfile(
        test_inner="""
        import base64, logging, sys
        from promoter.sandbox import TEST_TOKEN

        def test_prints_token():
            print("token is", TEST_TOKEN)

        def test_prints_basic_header():
            raw = f"x-access-token:{TEST_TOKEN}".encode()
            print("Authorization: Basic " + base64.b64encode(raw).decode())

        def test_writes_stderr():
            sys.stderr.write(TEST_TOKEN)

        def test_logs_token():
            logging.getLogger("inner").warning("using %s", TEST_TOKEN)

        def test_token_in_failure():
            assert TEST_TOKEN == "something else"

        def test_clean(token):
            assert token == TEST_TOKEN
            print("nothing secret here")
        """
    )
    monkeypatch.setenv("PYTHONPATH", str(Path(promoter.__file__).resolve().parents[1]))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=5)
    out = result.stdout.str()
    assert out.count("test token leaked into captured output: ") >= 5 + 5  # reports + summary
    assert re.search(r"=+ token leak check =+", out)
    assert TEST_TOKEN not in out + result.stderr.str()
