"""The git transport: what it fetches, where the token goes, which remotes work."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess

import pytest

from promoter import smarthttp
from promoter.ci import RunContext
from promoter.config import Environment
from promoter.delivery import DEFAULT_RETRY, Clock, Deliverer, RetryPolicy, Tip, Write
from promoter.errors import GitError, RaceLost, UsageError
from promoter.gitrepo import GitRepo, Identity, Remote
from promoter.message import Provenance
from promoter.model import Change
from promoter.plan import Plan
from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import git_env, list_branches, seed_repo
from tests.helpers import run_cli

FILES = {
    "promoter.yaml": "environments: {dev: {}}\napps:\n  web:\n    images:\n"
    "      web: {file: apps/web/values.yaml, tag: image.tag}\n",
    "apps/web/values.yaml": "image:\n  tag: 1.0.0\n",
    **{f"apps/other{i}/values.yaml": f"image:\n  tag: {i}.9.9\n" for i in range(50)},
}
IDENT = Identity("a", "a@example.com")


def _git(repo: GitRepo, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo.path), *args], capture_output=True, text=True, check=True
    ).stdout


def test_fetch_is_shallow_blobless_and_reads_only_needed_blobs(env_repo, tmp_path):
    repo = env_repo({"env/dev": FILES})
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    tip = scratch.fetch("env/dev")
    assert tip == repo.shas["env/dev"]
    assert _git(scratch, "rev-parse", "--is-shallow-repository").strip() == "true"
    contents = scratch.read_files(tip, ["apps/web/values.yaml", "apps/none.yaml"])
    assert contents == {"apps/web/values.yaml": b"image:\n  tag: 1.0.0\n", "apps/none.yaml": None}
    objects = _git(scratch, "rev-list", "--objects", "--missing=print", tip).splitlines()
    missing = [line for line in objects if line.startswith("?")]
    assert len(missing) == len(FILES) - 1  # every blob but the one we read


def test_a_scratch_repo_is_created_without_a_git_process(env_repo, tmp_path, monkeypatch):
    # What `git init` would write is written directly: here git is not even on PATH.
    repo = env_repo({"main": FILES, "env/dev": FILES})
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    monkeypatch.undo()
    assert _git(scratch, "rev-parse", "--is-bare-repository").strip() == "true"
    assert _git(scratch, "config", "extensions.partialClone").strip() == "origin"
    assert _git(scratch, "config", "remote.origin.url").strip() == repo.url
    # A directory that is not empty is left to git init; both kinds fetch and push alike.
    (tmp_path / "used.git").mkdir()
    (tmp_path / "used.git" / "stray").write_text("x")
    used = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "used.git")
    for each in (GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "fresh.git"), used):
        assert each.fetch_default() == repo.sha("main")
        tip = each.fetch("env/dev")
        assert tip == repo.sha("env/dev")
        assert each.read_files(tip, ["apps/web/values.yaml"])["apps/web/values.yaml"]
        assert each.push(each.commit(tip, {"a.txt": b"x\n"}, "m\n", IDENT, IDENT), "env/dev")


def test_blobs_of_a_plan_arrive_in_one_fetch(env_repo, git_server, tmp_path):
    repo = env_repo({"env/dev": FILES})
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    tip = scratch.fetch("env/dev")
    before = len(git_server.requests)
    paths = [f"apps/other{i}/values.yaml" for i in range(10)]
    contents = scratch.read_files(tip, paths)
    assert all(contents[p] for p in paths)
    assert git_server.wait_idle()
    fetches = [r for r in git_server.requests[before:] if r.method == "POST"]
    assert len(fetches) == 1, fetches


def test_over_http_blobs_arrive_in_one_request_without_a_ref_advertisement(
    env_repo, git_server, tmp_path
):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    tip = scratch.fetch("env/dev")
    assert git_server.wait_idle()
    before = len(git_server.requests)
    paths = [f"apps/other{i}/values.yaml" for i in range(10)]
    assert scratch.read_files(tip, paths) == {p: FILES[p].encode() for p in paths}
    head = scratch.fetch_default()
    config = scratch.read_files(head, ["promoter.yaml"])["promoter.yaml"]
    assert config == FILES["promoter.yaml"].encode()
    assert git_server.wait_idle()
    sent = [(r.method, r.path.rsplit("/", 1)[-1], r.status, r.user) for r in git_server.requests]
    blobs, default = sent[before : before + 1], sent[before + 1 : before + 4]
    assert blobs == [("POST", "git-upload-pack", 200, "x-access-token")], sent[before:]
    assert [m for m, *_ in default] == ["GET", "POST", "POST"]  # git fetch: refs, ls-refs, fetch
    assert sent[before + 4 :] == [("POST", "git-upload-pack", 200, "x-access-token")]
    # The packs are promisor packs, as git fetch writes them: nothing else is missing.
    objects = _git(scratch, "rev-list", "--objects", "--missing=print", tip).splitlines()
    assert sum(1 for line in objects if line.startswith("?")) == len(FILES) - 1 - len(paths)


def test_a_background_tip_fetch_over_http_is_two_requests_and_shallow(
    env_repo, git_server, tmp_path
):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    assert git_server.wait_idle()
    before = len(git_server.requests)
    scratch.start_fetch_default()
    other = scratch.prefetch("env/dev")
    assert scratch.fetch_default() == repo.sha("main")
    tip = other.fetch("env/dev")
    assert tip == repo.sha("env/dev")
    assert git_server.wait_idle()
    sent = [(r.method, r.path.rsplit("/", 1)[-1]) for r in git_server.requests[before:]]
    assert sent == [("POST", "git-upload-pack")] * 4, sent  # ls-refs and fetch, each
    for each in (scratch, other):
        assert _git(each, "rev-parse", "--is-shallow-repository").strip() == "true"
    objects = _git(other, "rev-list", "--objects", "--missing=print", tip).splitlines()
    assert sum(1 for line in objects if line.startswith("?")) == len(FILES)  # blobless
    assert other.push(other.commit(tip, {"a.txt": b"x\n"}, "m\n", IDENT, IDENT), "env/dev")
    assert repo.log("env/dev")[0] == "m"


WEB = "apps/web/values.yaml"


def _writer(env_repo, tmp_path):
    """An env/dev of FILES, another writer's scratch repo on it, its tip and commit time."""
    repo = env_repo({"env/dev": FILES})
    writer = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "writer.git")
    seed = writer.fetch("env/dev")
    return repo, writer, seed, writer.read_commit(seed).committed


def test_a_refetch_after_the_branch_moved_is_direct_and_brings_only_changed_trees(
    env_repo, git_server, tmp_path
):
    # The retry after a lost race: ls-refs and one fetch offering the tip held here (and
    # the shallow boundary), no ref advertisement; the pack holds the new commit and the
    # trees that changed, even one only the history beyond the boundary had (apps/web's
    # tree of the seed commit comes back). The history is cut at the held tip's time, so
    # the commits since join it: the tip held here is no longer cut from what follows.
    repo, writer, seed, when = _writer(env_repo, tmp_path)
    moved = writer.commit(seed, {WEB: b"image:\n  tag: 2.0.0\n"}, "two\n", IDENT, IDENT,
                          when + 100)  # fmt: skip
    assert writer.push(moved, "env/dev")
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    assert scratch.fetch("env/dev") == moved
    back = writer.commit(moved, {WEB: FILES[WEB].encode()}, "back\n", IDENT, IDENT, when + 200)
    assert writer.push(back, "env/dev")
    packs = set((scratch.path / "objects/pack").glob("*.idx"))
    assert git_server.wait_idle()
    before = len(git_server.requests)
    assert scratch.fetch("env/dev") == back
    assert scratch.read_files(back, [WEB]) == {WEB: FILES[WEB].encode()}
    assert scratch.fetch("env/dev") == back  # unchanged: the ls-refs alone
    tree = _git(scratch, "ls-tree", "-r", "--full-tree", back)  # no lazy fetch of a tree
    assert len(tree.splitlines()) == len(FILES)
    assert git_server.wait_idle()
    sent = [(r.method, r.path.rsplit("/", 1)[-1]) for r in git_server.requests[before:]]
    assert sent == [("POST", "git-upload-pack")] * 4, sent  # ls-refs, fetch, blob, ls-refs
    fetched = set((scratch.path / "objects/pack").glob("*.idx")) - packs
    (new,) = [idx for idx in fetched if not _holds_blob(idx)]  # the tip's pack, not the blob's
    # The commit, the root, apps/ and apps/web/ trees (and the bases --fix-thin adds to a
    # thin pack), not the 54 objects of the whole tree.
    assert _pack_size(new) < 10
    assert (scratch.path / "shallow").read_text().split() == [moved]
    assert _git(scratch, "rev-list", "--count", back).strip() == "2"  # back, moved


def test_a_branch_moved_back_is_refetched_as_its_tip_alone(env_repo, git_server, tmp_path):
    # Cut at the held tip's time, an older tip has no commit to send: the server refuses
    # ("no commits selected for shallow requests") and the tip alone is fetched.
    repo, writer, seed, when = _writer(env_repo, tmp_path)
    old = writer.commit(seed, {WEB: b"image:\n  tag: 1.5.0\n"}, "old\n", IDENT, IDENT, when + 1)
    new = writer.commit(old, {WEB: b"image:\n  tag: 2.0.0\n"}, "new\n", IDENT, IDENT, when + 100)
    assert writer.push(old, "env/dev") and writer.push(new, "env/dev")
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    assert scratch.fetch("env/dev") == new
    subprocess.run(["git", "--git-dir", str(repo.path), "update-ref", "refs/heads/env/dev", old],
                   check=True)  # moved back by someone else  # fmt: skip
    assert git_server.wait_idle()
    before = len(git_server.requests)
    assert scratch.fetch("env/dev") == old
    assert scratch.read_files(old, [WEB]) == {WEB: b"image:\n  tag: 1.5.0\n"}
    assert git_server.wait_idle()
    sent = [(r.method, r.path.rsplit("/", 1)[-1]) for r in git_server.requests[before:]]
    assert sent == [("POST", "git-upload-pack")] * 4, sent  # ls-refs, refused, tip, blob
    assert _git(scratch, "rev-list", "--count", old).strip() == "1"  # the tip alone


def test_an_upload_pack_answer_past_its_limit_is_no_answer(env_repo, git_server, tmp_path):
    # The bound a re-fetch is read with: past it the connection is dropped, not read on.
    repo = env_repo({"env/dev": FILES})
    remote = Remote.parse(repo.url, TEST_TOKEN)
    tip = repo.sha("env/dev")
    request = smarthttp.fetch_request([tip], shallow=True)
    whole = smarthttp.upload_pack(remote, request)
    assert whole is not None and smarthttp.fetch_answer(whole) is not None
    within = smarthttp.upload_pack(remote, request, limit=2 * len(whole))
    assert within is not None and smarthttp.fetch_answer(within) is not None
    assert smarthttp.upload_pack(remote, request, limit=len(whole) // 2) is None
    again = smarthttp.upload_pack(remote, request)  # a fresh connection serves on
    assert again is not None and smarthttp.fetch_answer(again) is not None


def _pack_objects(idx) -> list[str]:
    out = subprocess.run(["git", "show-index"], stdin=idx.open("rb"), capture_output=True)
    return [line.split()[1] for line in out.stdout.decode().splitlines()]


def _pack_size(idx) -> int:
    return len(_pack_objects(idx))


def _holds_blob(idx) -> bool:
    git_dir = idx.parent.parent.parent
    kinds = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch-check=%(objecttype)"],
        input="\n".join(_pack_objects(idx)).encode(),
        capture_output=True,
    ).stdout.decode()
    return "blob" in kinds.split()


def test_a_missing_branch_fetched_in_the_background_is_named(env_repo, git_server, tmp_path):
    repo = env_repo({"main": FILES})
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    assert git_server.wait_idle()
    before = len(git_server.requests)
    scratch.start_fetch("env/qa")
    with pytest.raises(UsageError, match="branch 'env/qa' does not exist in http://"):
        scratch.fetch("env/qa")
    assert git_server.wait_idle()
    assert [r.method for r in git_server.requests[before:]] == ["POST"]  # ls-refs only


def test_a_server_refusing_the_direct_request_gets_git_fetch(env_repo, git_server, tmp_path):
    repo = env_repo({"env/dev": FILES})
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    tip = scratch.fetch("env/dev")
    assert git_server.wait_idle()
    before = len(git_server.requests)
    git_server.fail_next(1, 400)
    web = "apps/web/values.yaml"
    assert scratch.read_files(tip, [web]) == {web: FILES[web].encode()}
    assert scratch.read_files(tip, ["apps/other1/values.yaml"])  # not tried directly again
    assert git_server.wait_idle()
    sent = [(r.method, r.status) for r in git_server.requests[before:]]
    assert sent == [("POST", 400), ("GET", 200), ("POST", 200), ("GET", 200), ("POST", 200)]


def _sent_since(git_server, before: int) -> list[tuple[str, str, int]]:
    assert git_server.wait_idle()
    return [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in git_server.requests[before:]]


ADVERTISE = ("GET", "refs?service=git-receive-pack", 200)
RECEIVE = ("POST", "git-receive-pack", 200)


def test_a_push_is_sent_straight_to_the_server_with_one_git_process(
    env_repo, git_server, tmp_path, monkeypatch
):
    # The ref advertisement and one receive-pack request; git runs pack-objects only (git
    # push would run push, remote-http, send-pack and pack-objects). The file was read
    # first, as a plan reads what it edits: its old blob is the thin pack's delta base
    # (missing, pack-objects would fetch it lazily, as git push's does).
    repo = env_repo({"env/dev": FILES})
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    monkeypatch.undo()
    tip = scratch.fetch("env/dev")
    web = "apps/web/values.yaml"
    assert scratch.read_files(tip, [web]) == {web: FILES[web].encode()}
    sha = scratch.commit(tip, {web: b"image:\n  tag: 2.0.0\n"}, "m\n", IDENT, IDENT)
    assert git_server.wait_idle()
    before, lines = len(git_server.requests), len(trace.read_text().splitlines())
    assert scratch.push(sha, "env/dev")
    assert _sent_since(git_server, before) == [ADVERTISE, RECEIVE]
    commands = [
        event["argv"][1]
        for event in map(json.loads, trace.read_text().splitlines()[lines:])
        if event["event"] == "start"
    ]
    assert commands == ["pack-objects"], commands
    assert repo.sha("env/dev") == sha
    assert repo.log("env/dev")[:2] == ["m", "seed"]
    # The same push again finds the branch there already: the advertisement alone.
    before = len(git_server.requests)
    assert scratch.push(sha, "env/dev")
    assert _sent_since(git_server, before) == [ADVERTISE]


def _committed(env_repo, tmp_path):
    """A seeded repo, a scratch repo that fetched env/dev, and a commit "m" on its tip."""
    repo = env_repo({"env/dev": FILES})
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    sha = scratch.commit(scratch.fetch("env/dev"), {"a.txt": b"x\n"}, "m\n", IDENT, IDENT)
    return repo, scratch, sha


def test_a_branch_moved_before_the_push_is_a_lost_race_found_in_the_advertisement(
    env_repo, git_server, tmp_path
):
    # git push, in a blobless repo, first fetched the unknown new tip (a lazy fetch: two
    # more requests and two processes) before refusing; the advertisement says it all.
    repo, scratch, sha = _committed(env_repo, tmp_path)
    git_server.before_push(repo.name, lambda: repo.commit("env/dev", {"b.txt": "y\n"}, "theirs"))
    assert git_server.wait_idle()
    before = len(git_server.requests)
    assert scratch.push(sha, "env/dev") is False
    git_server.before_push(repo.name, None)
    assert _sent_since(git_server, before) == [ADVERTISE]
    assert repo.log("env/dev")[:2] == ["theirs", "seed"]


@pytest.mark.parametrize("fails", ["advertisement", "receive-pack"])
def test_a_push_the_server_answers_oddly_is_left_to_git_push_and_lands_once(
    env_repo, git_server, tmp_path, fails
):
    # No answer to trust (here a 502): git push looks where the branch is and pushes, or
    # finds it there already; either way one commit lands.
    repo, scratch, sha = _committed(env_repo, tmp_path)
    assert git_server.wait_idle()
    before = len(git_server.requests)
    if fails == "advertisement":
        git_server.fail_next(1, 502)
    else:  # during our advertisement, so the request after it fails (once)
        once = iter([1])
        git_server.before_push(repo.name, lambda: git_server.fail_next(next(once, 0), 502))
    assert scratch.push(sha, "env/dev")
    git_server.before_push(repo.name, None)
    sent = _sent_since(git_server, before)
    assert sent[-2:] == [ADVERTISE, RECEIVE], sent  # git push's own
    assert [status for _, _, status in sent].count(502) == 1, sent
    assert repo.sha("env/dev") == sha
    assert repo.log("env/dev")[:2] == ["m", "seed"]


def test_a_promoter_branch_is_pushed_straight_to_the_server_under_its_lease(
    env_repo, git_server, tmp_path
):
    # Created (lease: must not exist), replaced (lease: where it was), refused when it moved
    # (the advertisement shows it: nothing more sent); each a compare-and-swap the server does.
    repo, scratch, sha = _committed(env_repo, tmp_path)
    branch = "promoter/update-dev"
    other = scratch.commit(repo.shas["env/dev"], {"a.txt": b"y\n"}, "n\n", IDENT, IDENT)
    assert git_server.wait_idle()
    before = len(git_server.requests)
    assert scratch.push_owned(sha, branch, None)
    assert scratch.push_owned(other, branch, sha)  # not a fast-forward: replaced
    assert _sent_since(git_server, before) == [ADVERTISE, RECEIVE] * 2
    assert repo.sha(branch) == other
    before = len(git_server.requests)
    assert scratch.push_owned(sha, branch, sha) is False  # the lease no longer holds
    assert scratch.push_owned(sha, branch, None) is False  # it exists
    assert _sent_since(git_server, before) == [ADVERTISE] * 2
    assert repo.sha(branch) == other
    assert scratch.delete_owned(branch, other)  # git push, as before
    assert branch not in list_branches(repo.path)


def test_a_push_whose_answer_was_lost_is_found_landed_and_counted_once(
    env_repo, git_server, tmp_path
):
    # The server ran the push and the connection closed before its answer: git push finds
    # the branch at our commit already ("up to date"), and the push counts as made.
    repo, scratch, sha = _committed(env_repo, tmp_path)
    assert git_server.wait_idle()
    before = len(git_server.requests)
    git_server.lose_answers(1)
    assert scratch.push(sha, "env/dev")
    assert repo.sha("env/dev") == sha
    assert repo.log("env/dev")[:2] == ["m", "seed"]
    sent = _sent_since(git_server, before)
    assert sent[:2] == [ADVERTISE, RECEIVE] and RECEIVE not in sent[2:], sent


def test_a_push_whose_answer_was_lost_while_the_branch_moved_on_is_not_guessed(
    env_repo, git_server, tmp_path
):
    # Landed, answer lost, and another writer pushed on top before git push looked: whether
    # ours is in there cannot be told from the tip alone, so the run says so (exit 1; a
    # re-run writes nothing if it landed) instead of calling it a lost race and re-planning.
    repo, scratch, sha = _committed(env_repo, tmp_path)
    git_server.lose_answers(1)
    pushes = iter(range(2))

    def theirs_on_the_second() -> None:
        if next(pushes, 2) == 1:
            repo.commit("env/dev", {"b.txt": "y\n"}, "theirs")

    git_server.before_push(repo.name, theirs_on_the_second)
    with pytest.raises(GitError, match="whether the push landed is unknown") as caught:
        scratch.push(sha, "env/dev")
    git_server.before_push(repo.name, None)
    assert TEST_TOKEN not in str(caught.value)
    assert repo.log("env/dev")[:3] == ["theirs", "m", "seed"]


def test_promoters_own_http_connections_turn_nagles_algorithm_off(git_server):
    # As curl and urllib3 do: http.client writes headers and body apart, and with Nagle on
    # the body would wait for the server's delayed ACK (not visible on loopback, so checked).
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    from promoter.httpclient import connect

    parts = urlsplit(git_server.url)
    connection = HTTPConnection(parts.hostname or "", parts.port)
    connect(connection)
    try:
        assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        connection.close()


def test_a_proxy_in_the_environment_leaves_fetching_to_git(env_repo, git_server, tmp_path,
                                                          monkeypatch):  # fmt: skip
    # git applies the proxy (here: no_proxy exempts the local server); promoter does not try.
    repo = env_repo({"env/dev": FILES})
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    tip = scratch.fetch("env/dev")
    assert git_server.wait_idle()
    before = len(git_server.requests)
    assert scratch.read_files(tip, ["apps/web/values.yaml"])
    assert git_server.wait_idle()
    assert [r.method for r in git_server.requests[before:]] == ["GET", "POST"]


def test_token_is_never_written_to_the_scratch_repo(env_repo, tmp_path):
    repo = env_repo({"env/dev": FILES})
    url_with_token = repo.url.replace("http://", f"http://x-access-token:{TEST_TOKEN}@")
    scratch = GitRepo(Remote.parse(url_with_token), tmp_path / "scratch.git")
    tip = scratch.fetch("env/dev")
    sha = scratch.commit(tip, {"a.txt": b"x\n"}, "m\n", Identity("a", "a@b"), Identity("a", "a@b"))
    assert scratch.push(sha, "env/dev")
    for root, _, files in os.walk(scratch.path):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                assert TEST_TOKEN.encode() not in file.read(), path
    assert scratch.remote.url == repo.url


def test_remote_parse_lifts_credentials_out_of_urls():
    remote = Remote.parse(f"https://oauth2:{TEST_TOKEN}@gitlab.example.com/acme/envs.git")
    assert remote.url == "https://gitlab.example.com/acme/envs.git"
    assert (remote.username, remote.token) == ("oauth2", TEST_TOKEN)
    bare = Remote.parse(f"https://{TEST_TOKEN}@github.com/acme/envs.git")
    assert (bare.url, bare.token) == ("https://github.com/acme/envs.git", TEST_TOKEN)
    assert TEST_TOKEN not in repr(remote)
    assert Remote.parse("git@github.com:acme/envs.git").url == "git@github.com:acme/envs.git"
    assert Remote.parse("git@github.com:acme/envs.git").host == "github.com"
    with pytest.raises(UsageError):
        Remote.parse("ftp://example.com/envs.git")


SECRET = "pw-4f8e2b7c-not-the-test-token"


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("location", "clean"),
    [
        ("git://u:{secret}@127.0.0.1:{port}/acme/envs.git", "git://127.0.0.1:{port}/acme/envs.git"),
        (
            "file://u:{secret}@localhost/nonexistent/envs.git",
            "file://localhost/nonexistent/envs.git",
        ),
        (
            "ssh://git:{secret}@127.0.0.1:{port}/acme/envs.git",
            "ssh://git@127.0.0.1:{port}/acme/envs.git",
        ),
        ("ssh://git:{secret}@[::1]:{port}/acme/envs.git", "ssh://git@[::1]:{port}/acme/envs.git"),
        ("git:{secret}@127.0.0.1:acme/envs.git", "git@127.0.0.1:acme/envs.git"),
    ],
)
def test_credentials_in_non_http_remotes_never_reach_git_config_or_output(
    tmp_path, capsys, location, clean
):
    port = _closed_port()
    location = location.format(secret=SECRET, port=port)
    remote = Remote.parse(location)
    assert remote.url == clean.format(port=port)
    scratch = GitRepo(remote, tmp_path / "scratch.git")
    assert SECRET not in (scratch.path / "config").read_text()
    with pytest.raises(GitError) as caught:
        scratch.fetch("env/dev")
    assert SECRET not in str(caught.value)
    run = run_cli(capsys, "--repo", location, "update", "dev", "--image", "web=2.0")
    assert run.code == 1, run.err
    assert run.err.startswith("promoter: error: ") and run.err.count("\n") == 1, run.err
    assert SECRET not in run.output


def test_git_error_text_is_scrubbed(tmp_path):
    # git echoes the URL it was given, here with the token in its path: the message must show
    # that URL with the token redacted (not merely leave the token out, or say something else).
    port = _closed_port()
    remote = Remote.parse(f"http://x-access-token:{TEST_TOKEN}@127.0.0.1:{port}/{TEST_TOKEN}.git")
    scratch = GitRepo(remote, tmp_path / "scratch.git")
    with pytest.raises(GitError) as caught:
        scratch.fetch("env/dev")
    message = str(caught.value)
    assert TEST_TOKEN not in message
    assert message.startswith(
        f"cannot reach 127.0.0.1: unable to access 'http://127.0.0.1:{port}/***.git/': "
    ), message


@pytest.mark.parametrize("branch", ["HEAD", "FETCH_HEAD", "refs/heads/env/dev", "-x", "a..b", ""])
def test_a_branch_argument_that_is_not_a_branch_name_is_refused_by_the_git_layer(
    env_repo, tmp_path, branch
):
    # `HEAD` used to fetch the remote's default branch and push to a new refs/heads/HEAD.
    repo = env_repo({"main": FILES, "env/dev": FILES})
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    assert scratch.fetch_default() == repo.shas["main"]
    tip = scratch.fetch("env/dev")
    sha = scratch.commit(tip, {"a.txt": b"x\n"}, "m\n", IDENT, IDENT)
    calls = {
        "fetch": lambda: scratch.fetch(branch),
        "start_fetch": lambda: scratch.start_fetch(branch),
        "prefetch": lambda: scratch.prefetch(branch),
        "push": lambda: scratch.push(sha, branch),
        "land": lambda: land(scratch, branch),
        "lineage": lambda: scratch.lineage(branch),
        "history": lambda: scratch.history(branch, ["a.txt"], 1),
        "remote_tip": lambda: scratch.remote_tip(branch),
    }
    for name, call in calls.items():
        with pytest.raises(UsageError, match="is not a branch name") as caught:
            call()
        assert repr(branch) in str(caught.value), name
    scratch.close()
    assert list_branches(repo.path) == repo.shas  # no refs/heads/HEAD, main untouched


def test_never_pushes_an_empty_or_bogus_sha(env_repo, tmp_path):
    repo = env_repo({"env/dev": FILES})
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    for bogus in ("", "HEAD", "refs/heads/main", "1234"):
        with pytest.raises(GitError, match="refusing to push"):
            scratch.push(bogus, "env/dev")
    assert repo.sha("env/dev") == repo.shas["env/dev"]


def _bare_with(tmp_path, files):
    bare = tmp_path / "envs.git"
    subprocess.run(
        ["git", "init", "-q", "--bare", "--initial-branch=main", str(bare)],
        check=True,
        env=git_env(),
    )
    seed_repo(bare, {"main": files, "env/dev": files})
    return bare


def test_update_a_repo_given_as_a_local_path(tmp_path, capsys):
    bare = _bare_with(tmp_path, FILES)
    run = run_cli(capsys, "--repo", str(bare), "update", "dev", "--image", "web=1.1.0")
    assert run.code == 0, run.err
    show = ["git", "--git-dir", str(bare), "show", "env/dev:apps/web/values.yaml"]
    assert subprocess.run(show, capture_output=True, text=True).stdout == "image:\n  tag: 1.1.0\n"


def test_update_over_ssh(tmp_path, capsys, monkeypatch):
    # A stand-in for ssh that runs the remote command locally: git's ssh transport end to end.
    bare = _bare_with(tmp_path, FILES)
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text('#!/bin/sh\nshift\nexec sh -c "$1"\n')
    fake_ssh.chmod(fake_ssh.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(fake_ssh))
    monkeypatch.setenv("GIT_SSH_VARIANT", "simple")
    run = run_cli(
        capsys, "--repo", f"ssh://git@envs.example{bare}", "update", "dev", "--image", "web=1.2.0"
    )
    assert run.code == 0, run.err
    show = ["git", "--git-dir", str(bare), "show", "env/dev:apps/web/values.yaml"]
    assert subprocess.run(show, capture_output=True, text=True).stdout == "image:\n  tag: 1.2.0\n"


def test_lineage_of_a_commit_is_it_and_its_descendants_oldest_first(env_repo, tmp_path):
    repo = env_repo({"env/dev": {"a.txt": "0\n"}})
    shas = [repo.shas["env/dev"]]
    for i in range(1, 100):
        shas.append(repo.commit("env/dev", {"a.txt": f"{i}\n"}, f"commit {i}"))
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    assert scratch.lineage("env/dev") == [shas[-1]]
    assert scratch.lineage("env/dev", shas[95]) == shas[95:]
    assert scratch.lineage("env/dev", shas[2][:10]) == shas[2:]  # short id, needs deepening
    objects = _git(scratch, "cat-file", "--batch-all-objects", "--batch-check").split("\n")
    assert not any(" tree " in line or " blob " in line for line in objects)
    with pytest.raises(UsageError, match="is not on env/dev"):
        scratch.lineage("env/dev", "f" * 40)


# --- pushes the server refuses, and lost races --------------------------------------------------


class FakeClock:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _pushes(git_server, repo) -> int:
    """How many pushes began (ref advertisements; a push git refuses itself sends no more)."""
    assert git_server.wait_idle()
    begin = f"/{repo.name}.git/info/refs?service=git-receive-pack"
    return sum(1 for r in git_server.requests if r.method == "GET" and r.path == begin)


def land(scratch: GitRepo, branch: str, policy=DEFAULT_RETRY, clock: FakeClock | None = None):
    """Push one change ("ours", a new ours.txt each attempt) through the delivery layer;
    (pushed SHA, attempts)."""
    clock = clock or FakeClock()
    n = [0]

    def replan(tip: Tip) -> Plan:
        n[0] += 1
        change = Change("web", "web/web", "ours.txt", "n", None, str(n[0]))
        return Plan((change,), {"ours.txt": f"{n[0]}\n".encode()})

    write = Write(Environment("dev", branch), "update", replan, Provenance(), "promoter/x",
                  body=lambda changes: "", subject="ours")  # fmt: skip
    run = RunContext(identity=IDENT)
    deliverer = Deliverer(scratch, run, _no_forge, policy,
                          Clock(monotonic=clock, sleep=clock.sleep))  # fmt: skip
    done = deliverer.deliver(write)
    return done.commit, done.attempts


def _no_forge(what: str):
    raise AssertionError(f"no forge here: {what}")


def test_a_push_declined_by_a_server_hook_fails_at_once_with_the_servers_reason(
    env_repo, git_server, capsys
):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    git_server.install_hook(
        repo.name,
        "pre-receive",
        "#!/bin/sh\necho 'policy: env/dev is protected, open a pull request' >&2\nexit 1\n",
    )
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN,
                  "update", "dev", "--image", "web=1.1.0")  # fmt: skip
    assert run.code == 1, run.err
    assert run.err.count("\n") == 1, run.err
    assert "push to env/dev refused by 127.0.0.1: pre-receive hook declined" in run.err, run.err
    assert "policy: env/dev is protected, open a pull request" in run.err
    assert _pushes(git_server, repo) == 1
    assert repo.sha("env/dev") == repo.shas["env/dev"]


def test_cannot_lock_ref_on_the_server_is_not_a_lost_race(env_repo, git_server, tmp_path):
    # A lock file left behind by a crashed server process: every push fails the same way.
    repo = env_repo({"env/dev": FILES})
    (repo.path / "refs" / "heads" / "env" / "dev.lock").write_text("")
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    clock = FakeClock()
    with pytest.raises(GitError) as caught:
        land(scratch, "env/dev", clock=clock)
    assert "push to env/dev refused by 127.0.0.1: failed to update ref" in str(caught.value)
    assert "cannot lock ref 'refs/heads/env/dev'" in str(caught.value)
    assert (clock.sleeps, _pushes(git_server, repo)) == ([], 1)


def test_a_branch_moved_while_the_server_updates_it_is_a_lost_race(env_repo, git_server, tmp_path):
    # The other writer lands after our push was accepted, before the ref is updated: the
    # server's compare-and-swap fails ("failed to update ref"), and the branch has moved.
    repo = env_repo({"env/dev": FILES})
    git_server.install_hook(
        repo.name,
        "pre-receive",
        '#!/bin/sh\nrm -f "$0"\n'
        "unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n"
        "export GIT_AUTHOR_NAME=o GIT_AUTHOR_EMAIL=o@example.com\n"
        "export GIT_COMMITTER_NAME=o GIT_COMMITTER_EMAIL=o@example.com\n"
        "tree=$(git rev-parse refs/heads/env/dev^{tree})\n"
        "c=$(git commit-tree -p refs/heads/env/dev -m 'someone else' $tree)\n"
        "git update-ref refs/heads/env/dev $c\n",
    )
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    clock = FakeClock()
    sha, attempts = land(scratch, "env/dev", clock=clock)
    assert (sha, attempts, len(clock.sleeps)) == (repo.sha("env/dev"), 2, 1)
    assert repo.log("env/dev")[:2] == ["ours", "someone else"]


def test_delivery_never_sleeps_after_its_last_attempt(env_repo, git_server, tmp_path):
    repo = env_repo({"env/dev": FILES})
    n = iter(range(100))
    git_server.before_push(
        repo.name, lambda: repo.commit("env/dev", {"theirs.txt": f"{next(n)}\n"}, "theirs")
    )
    scratch = GitRepo(Remote.parse(repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    clock = FakeClock()
    policy = RetryPolicy(attempts=3, base=1.0, cap=10.0)
    with pytest.raises(RaceLost, match="gave up after 3 attempts"):
        land(scratch, "env/dev", policy, clock)
    assert (len(clock.sleeps), _pushes(git_server, repo)) == (2, 3)


def test_ssh_permission_denied_is_about_the_ssh_key_not_the_token(tmp_path, capsys, monkeypatch):
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text("#!/bin/sh\necho 'git@envs.example: Permission denied (publickey).' >&2\n"
                        "exit 255\n")  # fmt: skip
    fake_ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(fake_ssh))
    run = run_cli(capsys, "--repo", "git@envs.example:acme/envs.git", "--token", TEST_TOKEN,
                  "update", "dev", "--image", "web=1.2.0")  # fmt: skip
    assert run.code == 1
    assert "authentication failed for envs.example" in run.err
    assert "SSH key" in run.err and "token" not in run.err, run.err
