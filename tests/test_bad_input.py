"""Bad input: one clear line, the right exit code, no traceback, no token, nothing pushed."""

from __future__ import annotations

import socket

import pytest

from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import list_branches
from tests.helpers import run_cli

CONFIG = """\
environments:
  dev: {branch: env/dev}
  prod: {branch: env/prod, from: dev, delivery: pull-request}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
    chart: {file: apps/web/Chart.yaml, version: "dependencies[name=web].version"}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag}
      migrate: {file: apps/api/values.yaml, tag: migrate.tag}
  shared:
    images:
      shared: {file: apps/shared.yaml, tag: b.tag}
  block:
    images:
      block: {file: apps/shared.yaml, tag: notes}
  nokey:
    images:
      nokey: {file: apps/web/values.yaml, tag: image.nope}
  nofile:
    images:
      nofile: {file: apps/missing.yaml, tag: image.tag}
  broken:
    images:
      broken: {file: apps/broken.yaml, tag: image.tag}
  mapping:
    images:
      mapping: {file: apps/web/values.yaml, tag: image}
"""

FILES = {
    "promoter.yaml": CONFIG,
    "apps/web/values.yaml": "image:\n  tag: 1.0.0\n",
    "apps/web/Chart.yaml": "dependencies:\n- name: web\n  version: 0.1.0\n",
    "apps/api/values.yaml": "image:\n  tag: 1.0.0\nmigrate:\n  tag: 1.0.0\n",
    "apps/shared.yaml": "a: &t {tag: 1.0.0}\nb: *t\nnotes: |\n  free text\n",
    "apps/broken.yaml": "image:\n  tag: [1.0.0\n",
}
DIGEST = "sha256:" + "0" * 64

# (global args, command args, exit code, text the one-line message must contain)
CASES = [
    ((), ("--image", "web=Bad Tag"), 2, "not a valid image tag"),
    ((), ("--image", "web=-1.0"), 2, "not a valid image tag"),
    ((), ("--image", "web="), 2, "expected APP[/IMAGE]=TAG|REFERENCE"),
    ((), ("--image", "=1.0"), 2, "expected APP[/IMAGE]=TAG|REFERENCE"),
    ((), ("--image", "web"), 2, "expected APP[/IMAGE]=TAG|REFERENCE"),
    ((), ("--image", "web=x/web:1.0@sha256:123"), 2, "malformed digest"),
    ((), ("--image", "web=" + "a" * 129), 2, "at most 128"),
    ((), ("--image", "web=UPPER/Case:1"), 2, "not a valid image reference"),
    ((), ("--chart", "web=1.2"), 2, "not a SemVer 2 version"),
    ((), ("--chart", "web=v1.2.3"), 2, "drop the leading v"),
    ((), ("--chart", "web=1.2.3.4"), 2, "not a SemVer 2 version"),
    ((), ("--chart", "web=01.2.3"), 2, "not a SemVer 2 version"),
    ((), ("--image", "nope=1.0"), 2, "unknown app 'nope'"),
    ((), ("--image", "api/nope=1.0"), 2, "has no image 'nope' (its images: api, migrate)"),
    ((), ("--chart", "api=1.0.0"), 2, "app 'api' has no `chart:` pin"),
    ((), ("--image", f"web=x/web:1@{DIGEST}"), 2, "has no `digest:` key"),
    ((), ("--image", "web=1", "--image", "web=2"), 2, "already set by --image web=1"),
    ((), (), 2, "nothing to do"),
    ((), ("--image", "nokey=2.0"), 2, "apps/web/values.yaml"),
    ((), ("--image", "nofile=2.0"), 2, "apps/missing.yaml does not exist"),
    ((), ("--image", "broken=2.0"), 2, "apps/broken.yaml"),
    ((), ("--image", "shared=2.0"), 2, "anchor"),
    ((), ("--image", "block=2.0"), 2, "block"),
    ((), ("--image", "mapping=2.0"), 2, "apps/web/values.yaml"),
    (("--output", "xml"), ("--image", "web=1"), 2, "xml"),
    (("--config", "/nonexistent/promoter.yaml"), ("--image", "web=1"), 2, "cannot read --config"),
]


@pytest.fixture
def repo(env_repo):
    return env_repo({"main": FILES, "env/dev": FILES})


def _check(run, code, text, repo, before):
    assert run.code == code, run.output
    assert text in run.err, run.err
    assert list_branches(repo.path) == before, "something was pushed"


@pytest.mark.parametrize(("global_args", "args", "code", "text"), CASES)
def test_bad_flags_and_pins(repo, capsys, global_args, args, code, text):
    before = list_branches(repo.path)
    run = run_cli(
        capsys, "--repo", repo.url, "--token", TEST_TOKEN, *global_args, "update", "dev", *args
    )
    _check(run, code, text, repo, before)
    if text != "xml":  # click's own usage errors print a usage block first
        assert run.err.count("\n") == 1, run.err


CONFIG_CASES = [
    ("environments: [dev\n", "promoter.yaml line 2: malformed YAML"),
    ("environments:\n  dev: {branch: 'env/../dev'}\napps: {}\n", "environments.dev.branch"),
    ("environments:\n  dev: {branch: 'env dev'}\napps: {}\n", "contains a space"),
    (
        "environments: {dev: {}}\napps:\n  web:\n    images:\n"
        "      web: {file: ../../etc/passwd, tag: t}\n",
        "apps.web.images.web.file: '../../etc/passwd'",
    ),
    ("environments: {dev: {}}\napps: {web: {}}\n", "apps.web: an app needs"),
    (None, "promoter.yaml not found on the default branch"),
]


@pytest.mark.parametrize(("config", "text"), CONFIG_CASES)
def test_bad_promoter_yaml_in_the_repo(env_repo, capsys, config, text):
    files = {k: v for k, v in FILES.items() if k != "promoter.yaml"}
    if config is not None:
        files["promoter.yaml"] = config
    repo = env_repo({"main": files, "env/dev": files})
    before = list_branches(repo.path)
    run = run_cli(
        capsys, "--repo", repo.url, "--token", TEST_TOKEN, "update", "dev", "--image", "web=2.0"
    )
    _check(run, 2, text, repo, before)


def test_unknown_environment(repo, capsys):
    before = list_branches(repo.path)
    run = run_cli(
        capsys, "--repo", repo.url, "--token", TEST_TOKEN, "update", "qa", "--image", "web=2.0"
    )
    _check(run, 2, "unknown environment 'qa' (promoter.yaml defines: dev, prod)", repo, before)


def test_pull_request_delivery_without_a_forge_is_refused_before_writing(repo, capsys):
    before = list_branches(repo.path)
    run = run_cli(
        capsys, "--repo", repo.url, "--token", TEST_TOKEN, "update", "prod", "--image", "web=2.0"
    )
    _check(run, 2, "updating prod by pull request (delivery: pull-request) needs a forge API",
           repo, before)  # fmt: skip


def test_branch_missing_on_the_remote(env_repo, capsys):
    repo = env_repo({"main": FILES})
    run = run_cli(
        capsys, "--repo", repo.url, "--token", TEST_TOKEN, "update", "dev", "--image", "web=2.0"
    )
    _check(run, 2, "branch 'env/dev' does not exist", repo, {"main": repo.shas["main"]})


def test_wrong_token_is_an_auth_failure(repo, capsys):
    before = list_branches(repo.path)
    run = run_cli(
        capsys,
        "--repo",
        repo.url,
        "--token",
        "wrong-" + TEST_TOKEN,
        "update",
        "dev",
        "--image",
        "web=2.0",
    )
    _check(run, 1, "authentication failed for 127.0.0.1", repo, before)
    assert "wrong-" not in run.output


def test_missing_token_is_an_auth_failure(repo, capsys):
    run = run_cli(capsys, "--repo", repo.url, "update", "dev", "--image", "web=2.0")
    assert run.code == 1 and "authentication failed" in run.err


def test_unreachable_repo(capsys):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://x-access-token:{TEST_TOKEN}@127.0.0.1:{port}/acme/envs.git"
    run = run_cli(capsys, "--repo", url, "update", "dev", "--image", "web=2.0")
    assert run.code == 1
    assert "cannot reach 127.0.0.1" in run.err
    assert run.err.count("\n") == 1


def test_repo_not_found(git_server, capsys):
    url = git_server.repo_url("acme/no-such-repo")
    run = run_cli(
        capsys, "--repo", url, "--token", TEST_TOKEN, "update", "dev", "--image", "web=2.0"
    )
    assert run.code == 1
    assert "not found" in run.err


@pytest.mark.parametrize(
    ("repo_arg", "text"),
    [
        ("/nonexistent/envs", "repository path '/nonexistent/envs' does not exist"),
        ("ftp://example.com/envs.git", "unsupported repository URL scheme 'ftp'"),
        ("", "no environment repository given"),
        ("http://h:abc/x", "--repo 'http://h:abc/x' is not a valid URL: the port"),
        ("https://h:99999/x", "--repo 'https://h:99999/x' is not a valid URL: the port"),
        ("ssh://git@h:port/x", "--repo 'ssh://git@h:port/x' is not a valid URL: the port"),
        ("http://[::1/x", "--repo 'http://[::1/x' is not a valid URL: unclosed '['"),
        ("http://u:pw@[::1/x", "--repo 'http://u:***@[::1/x' is not a valid URL"),
    ],
)
def test_bad_repo_argument(capsys, repo_arg, text):
    args = ("--repo", repo_arg) if repo_arg else ()
    run = run_cli(capsys, *args, "update", "dev", "--image", "web=2.0")
    assert run.code == 2, run.err
    assert text in run.err
    assert run.err.count("\n") == 1, run.err
    assert ":pw@" not in run.err


def test_unknown_command_is_a_usage_error(capsys):
    assert run_cli(capsys, "frobnicate").code == 2


def test_bad_flags_are_reported_before_the_repository_is_contacted(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = run_cli(
        capsys,
        "--repo",
        f"http://127.0.0.1:{port}/acme/envs.git",
        "update",
        "dev",
        "--image",
        "web=Bad Tag",
    )
    assert run.code == 2 and "not a valid image tag" in run.err


@pytest.mark.parametrize(
    ("api_url", "text"),
    [
        ("http://h:abc/api/v3", "--api-url 'http://h:abc/api/v3' is not a valid URL: the port"),
        ("http://[::1/api/v4", "--api-url 'http://[::1/api/v4' is not a valid URL: unclosed '['"),
        ("https://h:99999/api/v3", "is not a valid URL: the port must be a number"),
        ("ftp://h/api/v3", "--api-url 'ftp://h/api/v3' is not a valid URL: expected http(s)://"),
    ],
)
@pytest.mark.parametrize("forge", ["github", "gitlab", "auto"])
def test_malformed_api_url(repo, capsys, api_url, text, forge):
    args = ("--repo", repo.url, "--token", TEST_TOKEN, "--forge", forge, "--api-url", api_url)
    run = run_cli(capsys, *args, "wait", "dev", "--require", "ci/*", "--timeout", "1s")
    assert run.code == 2, run.err
    assert text in run.err and run.err.count("\n") == 1, run.err


def test_unreachable_git_protocol_repo_says_why(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = run_cli(capsys, "--repo", f"git://127.0.0.1:{port}/x.git", "update", "dev",
                  "--image", "web=2.0")  # fmt: skip
    assert run.code == 1
    assert "cannot reach 127.0.0.1" in run.err and "Connection refused" in run.err
    assert run.err.count("\n") == 1
