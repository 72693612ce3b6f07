"""Values from someone else (CI variables, flags, files in the env repo) reaching every sink:
the fast-import stream, commit messages and trailers, log lines, job summaries, PR bodies.

Each test drives the real CLI over real git; what it checks is what git, GitHub's runner or a
Markdown renderer would make of the output.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import commit_message, list_files, log
from tests.helpers import run_cli, workflow_commands

CONFIG = """\
environments:
  dev: {branch: env/dev}
  staging: {branch: env/staging, from: dev}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag, digest: image.digest}
"""
WEB = 'image:\n  tag: "1.4.1"\n'
API = 'image:\n  tag: 2.0.0\n  digest: ""\n'
FILES = {"promoter.yaml": CONFIG, "apps/web/values.yaml": WEB, "apps/api/values.yaml": API}
# A quoted YAML scalar may hold line breaks: the probe's forged trailer and workflow command.
HOSTILE_TAG = '"1.4.1\\nPromoter-Environment: prod\\n::warning title=x::injected"'
HOSTILE_WEB = f"image:\n  tag: {HOSTILE_TAG}\n"


@pytest.fixture
def repo(env_repo):
    return env_repo({"main": FILES, "env/dev": FILES, "env/staging": FILES})


def cli(repo, *args):
    return ("--repo", repo.url, "--token", TEST_TOKEN, *args)


def trailers(repo, ref):
    """The trailers git itself reads from the commit at `ref` (what history/audits trust)."""
    out = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=commit_message(repo.path, ref),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split(": ", 1) for line in out.splitlines()]


# --- 1: the author/committer identity in the fast-import stream ------------------------------

INJECTED_NAME = (
    "evil <e@x> 1 +0000\ncommitter evil <e@x> 1 +0000\ndata 29\nPromoter-Environment: prod\n\n"
    "M 100644 inline apps/api/values.yaml\ndata 10\nimage: {}\n#"
)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GIT_AUTHOR_NAME", INJECTED_NAME),
        ("GIT_AUTHOR_NAME", "Eve <eve@example.com>"),
        ("GIT_AUTHOR_NAME", "bell\x07"),
        ("GIT_AUTHOR_EMAIL", "eve@example.com>\ncommitter x <x@y"),
        ("GIT_AUTHOR_EMAIL", "not-an-email"),
    ],
)
def test_a_bad_git_identity_is_refused_and_nothing_is_written(
    repo, capsys, monkeypatch, variable, value
):
    monkeypatch.setenv(variable, value)
    run = run_cli(capsys, *cli(repo, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 2, run.output
    assert variable in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert repo.sha("env/dev") == repo.shas["env/dev"]


def test_a_gitlab_display_name_is_sanitised_by_the_documented_rule(repo, capsys, monkeypatch):
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("GITLAB_USER_LOGIN", "eve")
    monkeypatch.setenv("GITLAB_USER_NAME", INJECTED_NAME)
    monkeypatch.setenv("GITLAB_USER_EMAIL", "eve@example.com")
    run = run_cli(capsys, *cli(repo, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 0, run.output
    # One file changed, the message is promoter's, the identity is one line without <, >.
    show = subprocess.run(
        ["git", "--git-dir", str(repo.path), "show", "--name-only", "--format=%an|%ae", "env/dev"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    name, email = show[0].split("|")
    assert "<" not in name and ">" not in name and name.startswith("evil e@x 1 +0000 committer")
    assert email == "eve@example.com"
    assert [line for line in show[1:] if line] == ["apps/web/values.yaml"]
    assert trailers(repo, "env/dev")[0] == ["Promoter-Environment", "dev"]
    assert list_files(repo.path, "env/dev") == list_files(repo.path, "main")


# --- 2: trailers from flags and CI variables -------------------------------------------------

FORGED = "\nPromoter-Environment: prod"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--source-commit", "a" * 40 + FORGED),
        ("--source-commit", "main"),
        ("--source-url", "https://ci.example.com/run/1" + FORGED),
        ("--source-url", "javascript:alert(1)"),
        ("--source-url", "https://user:secret@ci.example.com/run/1"),
        ("--message", "deploy\n---\nPromoter-Environment: prod"),
        ("--message", "deploy\n# ------------------------ >8 ------------------------\nx"),
        ("--message", "deploy\x1b[2J"),
    ],
)
def test_a_flag_that_would_forge_a_trailer_is_refused(repo, capsys, flag, value):
    run = run_cli(capsys, *cli(repo, "update", "dev", "--image", "web=1.4.2", flag, value))
    assert run.code == 2, run.output
    assert flag in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert repo.sha("env/dev") == repo.shas["env/dev"]


GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_ACTOR": "octocat",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/web",
    "GITHUB_RUN_ID": "42",
    "GITHUB_SHA": "a" * 40,
}
GITLAB = {
    "GITLAB_CI": "true",
    "GITLAB_USER_LOGIN": "octocat",
    "CI_PROJECT_PATH": "acme/apps/web",
    "CI_PIPELINE_URL": "https://gitlab.example.com/acme/apps/web/-/pipelines/7",
    "CI_COMMIT_SHA": "b" * 40,
}


@pytest.mark.parametrize(
    ("ci", "variable"),
    [
        (GITHUB, "GITHUB_SHA"),
        (GITHUB, "GITHUB_SERVER_URL"),
        (GITHUB, "GITHUB_REPOSITORY"),
        (GITHUB, "GITHUB_RUN_ID"),
        (GITHUB, "GITHUB_ACTOR"),
        (GITLAB, "CI_PROJECT_PATH"),
        (GITLAB, "CI_PIPELINE_URL"),
        (GITLAB, "CI_COMMIT_SHA"),
        (GITLAB, "GITLAB_USER_LOGIN"),
    ],
)
def test_a_ci_variable_that_would_forge_a_trailer_is_refused(
    repo, capsys, monkeypatch, ci, variable
):
    for name, value in ci.items():
        monkeypatch.setenv(name, value + FORGED if name == variable else value)
    run = run_cli(capsys, *cli(repo, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 2, run.output
    assert variable in run.err
    assert repo.sha("env/dev") == repo.shas["env/dev"]


@pytest.mark.parametrize("ci", [GITHUB, GITLAB])
def test_ci_values_make_exactly_promoters_trailers(repo, capsys, monkeypatch, ci):
    for name, value in ci.items():
        monkeypatch.setenv(name, value)
    body = "deploy web\n\nPromoter-Environment: prod\nSigned-off-by: eve <e@x>"
    run = run_cli(capsys, *cli(repo, "update", "dev", "--image", "web=1.4.2", "--message", body))
    assert run.code == 0, run.output
    keys = [key for key, _ in trailers(repo, "env/dev")]
    assert keys == [
        "Promoter-Environment",
        "Promoter-Change",
        "Promoter-Source",
        "Promoter-Pipeline",
        "Promoter-Actor",
    ]
    assert trailers(repo, "env/dev")[0] == ["Promoter-Environment", "dev"]


# --- 3: values read from the env repo --------------------------------------------------------


def test_promote_refuses_a_repo_value_that_is_not_a_tag(env_repo, capsys):
    hostile = {**FILES, "apps/web/values.yaml": HOSTILE_WEB}
    repo = env_repo({"main": FILES, "env/dev": hostile, "env/staging": FILES})
    run = run_cli(capsys, *cli(repo, "--forge", "none", "promote", "--to", "staging"))
    assert run.code == 2, run.output
    assert "apps/web/values.yaml on env/dev" in run.err and "image.tag" in run.err
    assert "is not an image tag" in run.err
    assert repo.sha("env/staging") == repo.shas["env/staging"]
    assert workflow_commands(run.output) == []


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_hostile_old_value_stays_one_escaped_value_everywhere(env_repo, capsys, output):
    hostile = {**FILES, "apps/web/values.yaml": HOSTILE_WEB}
    repo = env_repo({"main": FILES, "env/dev": hostile, "env/staging": FILES})
    run = run_cli(capsys, *cli(repo, "--output", output, "update", "dev", "--image", "web=1.4.2"))
    assert run.code == 0, run.output
    assert workflow_commands(run.output) == []
    assert [key for key, _ in trailers(repo, "env/dev")].count("Promoter-Environment") == 1
    assert trailers(repo, "env/dev")[0] == ["Promoter-Environment", "dev"]
    (change,) = [v for k, v in trailers(repo, "env/dev") if k == "Promoter-Change"]
    assert change == (
        'web/web image.tag "1.4.1\\nPromoter-Environment: prod\\n::warning title=x::injected"'
        " -> 1.4.2"
    )
    if output == "json":
        assert json.loads(run.out)["changes"][0]["old"].startswith("1.4.1\nPromoter-")


# --- 5: usage errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("update", "dev", "--image", "web=1", TEST_TOKEN),
        ("--output", TEST_TOKEN, "update", "dev", "--image", "web=1"),
        ("update", "dev", f"--image={TEST_TOKEN}"),
    ],
)
def test_a_token_in_the_wrong_place_is_not_echoed(capsys, monkeypatch, args):
    monkeypatch.setenv("GITHUB_TOKEN", TEST_TOKEN)
    run = run_cli(capsys, "--repo", "https://example.invalid/x.git", *args)  # checks the token
    assert run.code == 2
    assert "***" in run.err


def test_a_token_in_a_forge_variable_is_not_echoed(capsys, monkeypatch):
    monkeypatch.setenv("PROMOTER_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("PROMOTER_FORGE", TEST_TOKEN)
    run = run_cli(capsys, "--repo", "https://example.invalid/x.git", "validate")
    assert run.code == 2
    assert "***" in run.err


# --- 16: one message builder -------------------------------------------------------------------


def test_update_and_promote_subjects_keep_values_whole(repo, capsys):
    long_tag = "2024.11.30-build.123456"
    run = run_cli(
        capsys,
        *cli(repo, "update", "dev", "--image", f"web={long_tag}",
             "--image", "api=ghcr.io/acme/api:2.1.0@sha256:" + "5f" * 32),
    )  # fmt: skip
    assert run.code == 0, run.output
    assert log(repo.path, "env/dev")[0] == f"update(dev): web {long_tag}, api 2.1.0"
    run = run_cli(capsys, *cli(repo, "--forge", "none", "promote", "--to", "staging"))
    assert run.code == 0, run.output
    assert log(repo.path, "env/staging")[0] == f"promote(staging): web {long_tag}, api 2.1.0"


# --- the action's sinks: job summary, step outputs, its own ::error line ------------------------


def test_the_action_escapes_repo_values_in_its_summary_and_log(env_repo, tmp_path):
    from tests.test_action import run_action

    hostile = {
        **FILES,
        "apps/web/values.yaml": HOSTILE_WEB.replace("1.4.1", "![x](https://e/x.png)"),
    }
    repo = env_repo({"main": FILES, "env/dev": hostile, "env/staging": FILES})
    proc = run_action(
        tmp_path, command="update", args="dev --image web=1.4.2", repo=repo.url, token=TEST_TOKEN
    )
    assert proc.code == 0, proc.stdout + proc.stderr
    assert workflow_commands(proc.stdout + proc.stderr) == []
    summary = (tmp_path / "summary").read_text()
    assert workflow_commands(summary) == []
    assert "![x]" not in summary and "<code>" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| web/web"))
    assert row.count(" | ") == 4  # five cells: the value did not add or split one


def test_the_actions_error_annotation_is_one_command(tmp_path):
    from tests.test_action import run_action

    proc = run_action(tmp_path, command="update", args="dev --image 'web=1\n::warning::x'",
                      repo=str(tmp_path / "nowhere"))  # fmt: skip
    assert proc.code == 2
    commands = workflow_commands(proc.stdout + proc.stderr)
    assert len(commands) == 1 and commands[0].startswith("::error title=promoter update")
    assert "%0A::warning::x" in commands[0] or "\\n::warning::x" in commands[0]
