"""The GitHub Action's entry point, run as the Actions runner runs it: a process of
`promoter-action` with INPUT_* variables for every input of action.yml (defaults included),
GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files and the runner's GITHUB_* variables, against the
session's git server and the strict GitHub double. Outputs are read back per GitHub's file
format (`name=value`, or `name<<DELIMITER` ... `DELIMITER`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter import action
from promoter.report import OUTPUT_NAMES
from promoter.sandbox import TEST_TOKEN
from tests.helpers import workflow_commands

pytest_plugins = ["tests.forge_fixtures"]

ROOT = Path(__file__).parent.parent
SPEC = YAML(typ="safe").load((ROOT / "action.yml").read_text())
BIN = Path(sys.executable).parent
APP_SHA = "0123456789abcdef0123456789abcdef01234567"

FILES = {
    "promoter.yaml": "environments: {dev: {}}\napps:\n  web:\n    images:\n"
    "      web: {file: values.yaml, tag: image.tag}\n",
    "values.yaml": "image:\n  tag: 1.0.0\n",
}

CONFIG = """\
environments:
  dev:
    gate: {require: ["continuous-delivery/{app}"]}
  prod:
    from: dev
    delivery: pull-request
    pull_request: {labels: [promotion]}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
    chart: {file: apps/web/Chart.yaml, version: version}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag}
"""
FLOW = {
    "promoter.yaml": CONFIG,
    "apps/web/values.yaml": "image:\n  tag: 1.0.0\n",
    "apps/web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "apps/api/values.yaml": "image:\n  tag: 2.0.0\n",
}


@dataclass
class Step:
    """One finished run of the action: exit code, log, outputs and job summary."""

    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str

    @property
    def log(self) -> str:
        return self.stdout + self.stderr


def parse_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: `name=value` lines and `name<<DELIMITER`
    blocks; a name set twice keeps its last value."""
    out: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition("=")
        if "<<" in line and (not sep or "<<" in name):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            else:
                raise AssertionError(f"output {name}: delimiter {delimiter!r} never closes")
            out[name] = "\n".join(body)
        else:
            assert sep, f"not an output line: {line!r}"
            out[name] = value
    return out


def run_action(tmp_path: Path, runner: bool = True, **inputs: str) -> Step:
    """The action's container as the runner starts it: every declared input as INPUT_<NAME>
    (its default when not given), the runner's files and variables."""
    env = {k: v for k, v in os.environ.items()}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for name, spec in SPEC["inputs"].items():
        env[f"INPUT_{name.upper()}"] = str(spec.get("default", ""))
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    output, summary = tmp_path / "output", tmp_path / "summary"
    for path in (output, summary):
        path.unlink(missing_ok=True)
    env.update(GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary))
    if runner:
        env.update(
            GITHUB_ACTIONS="true",
            GITHUB_REPOSITORY="acme/web-app",
            GITHUB_RUN_ID="4242",
            GITHUB_SERVER_URL="https://github.example",
            GITHUB_ACTOR="octocat",
            GITHUB_SHA=APP_SHA,
            RUNNER_TEMP=str(tmp_path),
        )
    proc = subprocess.run(
        ["promoter-action"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    files = {p: p.read_text() for p in (output, summary) if p.exists()}
    for text in files.values():
        assert TEST_TOKEN not in text
        assert workflow_commands(text) == []
    # The token is printed once, in the mask command, first of all (the runner hides it
    # from every later line); nowhere else.
    stdout = proc.stdout
    if runner and inputs.get("token"):
        mask = f"::add-mask::{inputs['token']}\n"
        assert stdout.startswith(mask), stdout[:200]
        stdout = stdout.removeprefix(mask)
    assert TEST_TOKEN not in stdout + proc.stderr
    own = re.compile(r"^::error (file=[^,:]+,line=\d+,)?title=promoter( [a-z]+ \(exit \d+\))?::")
    assert all(own.match(line) for line in workflow_commands(stdout + proc.stderr))
    return Step(
        proc.returncode,
        stdout,
        proc.stderr,
        parse_outputs(files.get(output, "")),
        files.get(summary, ""),
    )


# --- unit: inputs → command line ------------------------------------------------------------


def test_list_inputs_take_lines_spaces_commas_and_comments():
    text = "web=1.2.0\n\n  # a comment\napi/migrate=2.0.1   # why\nworker=3.0, db=4.0\n"
    assert action.list_items(text) == ["web=1.2.0", "api/migrate=2.0.1", "worker=3.0", "db=4.0"]


def test_typed_inputs_become_the_commands_own_flags():
    argv = action.typed_arguments(
        "update", ["--message", "hotfix"], {"environment": "dev", "images": "web=1\napi=2\n",
                                            "charts": "web=0.3.1", "merge": "true"}
    )  # fmt: skip
    assert argv == ["dev", "--message", "hotfix", "--image", "web=1", "--image", "api=2",
                    "--chart", "web=0.3.1", "--merge"]  # fmt: skip
    argv = action.typed_arguments("promote", [], {"to": "prod-eu prod-us", "apps": "web,api"})
    assert argv == ["--to", "prod-eu", "--to", "prod-us", "--app", "web", "--app", "api"]


@pytest.mark.parametrize(
    ("command", "args", "given", "message"),
    [
        ("wait", ["dev", "--timeout", "5m"], {"timeout": "1m"},
         "the `timeout` input and --timeout in `args` both set --timeout"),
        ("update", ["dev", "--image", "web=1"], {"environment": "dev"},
         "the `environment` input and an argument in `args` both set environment"),
        ("promote", ["--to", "prod"], {"to": "staging"}, "the `to` input and --to in `args`"),
        ("wait", ["dev"], {"images": "web=1"},
         "the `images` input does not apply to `wait` (it does to: update)"),
        ("rollback", ["dev"], {"to": "abc1234"},
         "the `to` input does not apply to `rollback` (it does to: promote)"),
        ("update", ["dev"], {"merge": "yes"}, "the `merge` input is 'yes': expected true or false"),
        ("wait", ["dev"], {"timeout": "5m\n10m"}, "the `timeout` input must be one line"),
    ],
)  # fmt: skip
def test_a_typed_input_that_conflicts_is_refused(command, args, given, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        action.typed_arguments(command, args, given)


def test_action_yml_declares_what_the_entry_point_reads_and_writes():
    assert set(SPEC["inputs"]) == {"command", "args", *action._GLOBAL_INPUTS, *action.TYPED}
    assert set(SPEC["outputs"]) == set(OUTPUT_NAMES)
    # The prebuilt image of this version (the release workflow pushes it), not a build per run.
    from promoter import __version__

    assert SPEC["runs"] == {
        "using": "docker",
        "image": f"docker://ghcr.io/promoter-gitops/promoter:{__version__}",
        "entrypoint": "promoter-action",
    }
    for name, spec in SPEC["inputs"].items():
        if name in action.TYPED and action.TYPED[name].shape == "flag":
            assert spec["default"] == "false", name


# --- the runner's contract: push delivery --------------------------------------------------


def test_update_sets_outputs_and_a_summary(env_repo, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    step = run_action(tmp_path, command="update", environment="dev", images="web=1.1.0\n",
                      repo=repo.url, token=TEST_TOKEN, forge="none")  # fmt: skip
    assert step.code == 0, step.log
    sha = repo.sha("env/dev")
    assert step.outputs == {
        "result": step.outputs["result"],
        "changed": "true",
        "commit": sha,
        "operation": "none",
        "pr_number": "",
        "pr_url": "",
        "merged": "false",
    }
    result = json.loads(step.outputs["result"])
    assert result["command"] == "update" and result["commit"] == sha
    assert step.summary == (
        "### promoter update\n\n"
        f"**dev** (`env/dev`): committed 1 change as `{sha[:12]}`\n\n"
        "| pin | file | key | from | to |\n|---|---|---|---|---|\n"
        "| web/web | `values.yaml` | `image.tag` | `1.0.0` | `1.1.0` |\n\n"
    )
    # The same again writes nothing, and says so.
    again = run_action(tmp_path, command="update", args="dev --image web=1.1.0",
                       repo=repo.url, token=TEST_TOKEN, forge="none")  # fmt: skip
    assert again.code == 0 and again.outputs["changed"] == "false"
    assert again.outputs["commit"] == "" and repo.sha("env/dev") == sha
    assert "already up to date, nothing to change" in again.summary


def test_failure_keeps_the_exit_code_and_annotates(env_repo, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    step = run_action(tmp_path, command="update", args="dev --image 'web=Bad Tag'",
                      repo=repo.url, token=TEST_TOKEN)  # fmt: skip
    assert step.code == 2
    assert "::error title=promoter update (exit 2)::--image web=Bad Tag:" in step.stdout
    assert repo.sha("env/dev") == repo.shas["env/dev"]


def test_a_config_error_is_annotated_on_its_line(env_repo, tmp_path):
    broken = {**FILES, "promoter.yaml": FILES["promoter.yaml"].replace("tag: image", "tg: image")}
    repo = env_repo({"main": broken, "env/dev": broken})
    step = run_action(tmp_path, command="update", environment="dev", images="web=1.1.0",
                      repo=repo.url, token=TEST_TOKEN)  # fmt: skip
    assert step.code == 2, step.log
    (line,) = [line for line in step.stdout.splitlines() if line.startswith("::error")]
    assert line.startswith("::error file=promoter.yaml,line=5,title=promoter update (exit 2)::")
    assert "promoter.yaml line 5: " in line
    assert repo.sha("env/dev") == repo.shas["env/dev"]


def test_a_conflicting_input_is_exit_2_before_promoter_runs(tmp_path):
    step = run_action(tmp_path, command="wait", environment="dev", args="dev",
                      repo="https://127.0.0.1:9/none.git", token=TEST_TOKEN)  # fmt: skip
    assert step.code == 2
    assert "the `environment` input and an argument in `args` both set environment" in step.log
    assert step.outputs == {} and step.summary == ""


def test_missing_command_input(tmp_path):
    step = run_action(tmp_path, command="")
    assert step.code == 2 and "the `command` input is required" in step.stdout


def test_the_token_is_masked_only_under_github_actions(env_repo, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    step = run_action(tmp_path, runner=False, command="update", environment="dev",
                      images="web=1.3.0", repo=repo.url, token=TEST_TOKEN)  # fmt: skip
    assert step.code == 0, step.log
    assert "add-mask" not in step.log  # elsewhere it would only print the token


def test_gitlab_ci_gets_a_dotenv_report(env_repo, tmp_path, monkeypatch):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    monkeypatch.setenv("GITLAB_CI", "true")
    step = run_action(tmp_path, runner=False, command="update", args="dev --image web=1.2.0",
                      repo=repo.url, token=TEST_TOKEN)  # fmt: skip
    assert step.code == 0, step.stderr
    dotenv = (tmp_path / "promoter.env").read_text()
    assert "PROMOTER_CHANGED=true\n" in dotenv
    assert f"PROMOTER_COMMIT={repo.sha('env/dev')}\n" in dotenv


# --- the runner's contract: update → wait → promote by pull request -------------------------


@pytest.fixture
def flow(env_repo, github_api):
    repo = env_repo({"main": FLOW, "env/dev": FLOW, "env/prod": FLOW})
    return repo, github_api


def github_inputs(repo: Any, api: Any) -> dict[str, str]:
    return {"repo": repo.url, "token": TEST_TOKEN, "forge": "github", "api_url": api.api_url}


def test_update_wait_promote_by_pull_request(flow, tmp_path):
    repo, api = flow
    given = github_inputs(repo, api)

    update = run_action(tmp_path, command="update", environment="dev",
                        images="web=1.1.0\n# the api is not rebuilt\n", charts="web=0.2.0",
                        **given)  # fmt: skip
    assert update.code == 0, update.log
    sha = repo.sha("env/dev")
    assert {k: v for k, v in update.outputs.items() if k != "result"} == {
        "changed": "true", "commit": sha, "operation": "none", "pr_number": "", "pr_url": "",
        "merged": "false",
    }  # fmt: skip

    # Not reported yet: wait gives up at its timeout, exit 4, verdict pending.
    pending = run_action(tmp_path, command="wait", environment="dev", sha=sha, timeout="0s",
                         **given)  # fmt: skip
    assert pending.code == 4, pending.log
    assert pending.outputs["verdict"] == "pending"
    assert "::error title=promoter wait (exit 4)::" in pending.stdout

    url = "https://argo.example/applications/web"
    api.add_status(repo.name, sha, "continuous-delivery/web", "success", target_url=url)
    wait = run_action(tmp_path, command="wait", environment="dev", sha=sha, soak="0s",
                      timeout="1m", apps="web", **given)  # fmt: skip
    assert wait.code == 0, wait.log
    assert {k: v for k, v in wait.outputs.items() if k != "result"} == {
        "verdict": "pass", "deciding_commit": sha,
    }  # fmt: skip
    assert wait.summary.startswith(f"### promoter wait\n\n**dev** (`env/dev`): gate: **pass** "
                                   f"on `{sha[:12]}` (after ")  # fmt: skip
    assert "| `continuous-delivery/web` | `continuous-delivery/web` | success | " in wait.summary
    assert f"| [details]({url}) |" in wait.summary

    promote = run_action(tmp_path, command="promote", to="prod", **given)
    assert promote.code == 0, promote.log
    (pull,) = api.pulls(repo.name)
    head = repo.sha("promoter/dev-to-prod")
    pr_url = json.loads(promote.outputs["result"])["pull_request"]["url"]
    assert pr_url.endswith(f"/{repo.name}/pull/{pull.number}")
    assert {k: v for k, v in promote.outputs.items() if k != "result"} == {
        "changed": "true", "commit": head, "operation": "created",
        "pr_number": str(pull.number), "pr_url": pr_url, "merged": "false",
        "verdict": "pass", "deciding_commit": sha, "source_commit": sha,
    }  # fmt: skip
    result = json.loads(promote.outputs["result"])
    assert result["command"] == "promote" and result["operation"] == "created"
    summary = promote.summary
    assert summary.startswith("### promoter promote\n\n#### dev → prod\n\n")
    assert f"**prod** (`env/prod`): 2 changes from **dev** at `{sha[:12]}`" in summary
    assert (f"Pull request [#{pull.number}]({pr_url}) opened "
            "(`promoter/dev-to-prod` → `env/prod`, open)") in summary  # fmt: skip
    assert "| pin | file | key | prod now | to |" in summary
    assert "| web/web | `apps/web/values.yaml` | `image.tag` | `1.0.0` | `1.1.0` |" in summary
    assert "| web/chart | `apps/web/Chart.yaml` | `version` | `0.1.0` | `0.2.0` |" in summary
    assert f"Gate of **dev**: **pass** on `{sha[:12]}`" in summary
    assert "| `continuous-delivery/web` | `continuous-delivery/web` | success |" in summary

    # The same again: the pull request already carries it.
    same = run_action(tmp_path, command="promote", to="prod", **given)
    assert same.code == 0, same.log
    assert same.outputs["operation"] == "none" and same.outputs["changed"] == "false"
    assert same.outputs["pr_number"] == str(pull.number)
    assert "opened" not in same.summary and f"[#{pull.number}]" in same.summary

    # A newer version on dev: the pull request is updated (a new commit on its branch).
    update = run_action(tmp_path, command="update", environment="dev", images="web=1.2.0",
                        **given)  # fmt: skip
    newer = repo.sha("env/dev")
    api.add_status(repo.name, newer, "continuous-delivery/web", "success")
    moved = run_action(tmp_path, command="promote", to="prod", merge="true", **given)
    assert moved.code == 0, moved.log
    assert moved.outputs["operation"] == "updated" and moved.outputs["merged"] == "true"
    assert moved.outputs["pr_number"] == str(pull.number)
    assert "| web/web | `apps/web/values.yaml` | `image.tag` | `1.0.0` | `1.2.0` |" in moved.summary
    assert ", merged)" in moved.summary


def test_a_held_back_promotion_says_why(flow, tmp_path):
    repo, api = flow
    given = github_inputs(repo, api)
    run_action(tmp_path, command="update", environment="dev", images="web=1.1.0", **given)
    sha = repo.sha("env/dev")
    api.add_status(repo.name, sha, "continuous-delivery/web", "failure")
    step = run_action(tmp_path, command="promote", to="prod", **given)
    assert step.code == 3, step.log
    assert step.outputs["verdict"] == "fail" and step.outputs["changed"] == "false"
    assert step.outputs["operation"] == "none" and step.outputs["pr_number"] == ""
    assert "1 change held back: the gate failed (exit 3)" in step.summary
    assert "| `continuous-delivery/web` | `continuous-delivery/web` | failure |" in step.summary
    assert api.pulls(repo.name) == []


def test_a_stale_promotion_pull_request_is_closed(flow, tmp_path):
    repo, api = flow
    given = github_inputs(repo, api)
    run_action(tmp_path, command="update", environment="dev", images="web=1.1.0", **given)
    opened = run_action(tmp_path, command="promote", to="prod", no_gate="true", **given)
    assert opened.outputs["operation"] == "created", opened.log
    # prod gets the version another way; the promotion has nothing left to carry.
    repo.commit("env/prod", {"apps/web/values.yaml": "image:\n  tag: 1.1.0\n"}, "hotfix")
    closed = run_action(tmp_path, command="promote", to="prod", no_gate="true", **given)
    assert closed.code == 0, closed.log
    assert closed.outputs["operation"] == "closed"
    assert closed.outputs["pr_number"] == opened.outputs["pr_number"]
    assert "Closed pull request [#" in closed.summary


def test_fan_out_outputs_are_keyed_by_target(env_repo, github_api, tmp_path):
    config = CONFIG.replace("  prod:\n", "  qa:\n    from: dev\n  prod:\n")
    files = {**FLOW, "promoter.yaml": config}
    repo = env_repo({"main": files, "env/dev": files, "env/prod": files, "env/qa": files})
    given = github_inputs(repo, github_api)
    run_action(tmp_path, command="update", environment="dev", images="web=1.1.0", **given)
    step = run_action(tmp_path, command="promote", to="qa\nprod\n", no_gate="true", **given)
    assert step.code == 0, step.log
    assert len(github_api.pulls(repo.name)) == 1
    pr_url = json.loads(step.outputs["result"])[1]["pull_request"]["url"]
    assert step.outputs["changed"] == "true"
    assert json.loads(step.outputs["operation"]) == {"qa": "none", "prod": "created"}
    assert json.loads(step.outputs["pr_url"]) == {"qa": "", "prod": pr_url}
    assert json.loads(step.outputs["commit"])["qa"] == repo.sha("env/qa")
    assert "#### dev → qa" in step.summary and "#### dev → prod" in step.summary
    assert [r["to"] for r in json.loads(step.outputs["result"])] == ["qa", "prod"]


def test_summary_values_from_outside_cannot_add_markdown():
    from promoter.report import ci_summary

    evil = "x](javascript:alert(1)) | <img src=x> **b**\n| cell |"
    gate = {
        "verdict": "pass", "target": "a" * 40, "deciding_commit": "a" * 40, "required": [evil],
        "contexts": [{"pattern": evil, "reason": evil, "contexts": [
            {"context": evil, "state": "success", "updated_at": evil,
             "target_url": "javascript:alert(1)"},
            {"context": "ok", "state": evil, "target_url": "https://x.example/a)(b"},
        ]}],
    }  # fmt: skip
    data = {
        "command": "promote", "from": evil, "to": "prod", "branch": evil, "changed": True,
        "source_commit": "a" * 40, "gate": gate, "operation": "created",
        "pull_request": {"number": 3, "url": "javascript:alert(1)", "head": evil, "base": evil},
        "changes": [{"pin": evil, "file": evil, "key": evil, "old": evil, "new": evil}],
    }  # fmt: skip
    text = ci_summary("promote", data, "promote")
    # Outside code spans (where nothing is syntax) no link, HTML or emphasis came through.
    plain = re.sub(r"<code>.*?</code>|`[^`]*`", "code", text)
    assert "](javascript" not in plain and "**b**" not in plain
    assert not re.search(r"(?<!\\)<img", plain)
    assert "](https://x.example/a)(b)" not in plain
    rows = [line for line in plain.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 1 + 2 + 2
    for row in rows:  # five columns each: no value added or split a cell
        assert len(re.split(r"(?<!\\)\|", row)) == 7, row
    assert "[#3]" not in text and "pull request #3 opened" in text.lower()


def test_rollback_and_validate_render_their_own_kind(env_repo, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    given = {"repo": repo.url, "token": TEST_TOKEN, "forge": "none"}
    first = run_action(tmp_path, command="update", environment="dev", images="web=1.1.0", **given)
    assert first.code == 0, first.log
    back = run_action(tmp_path, command="rollback", environment="dev", args="--steps 1", **given)
    assert back.code == 0, back.log
    sha = repo.sha("env/dev")
    assert {k: v for k, v in back.outputs.items() if k != "result"} == {
        "changed": "true", "commit": sha, "operation": "none", "pr_number": "", "pr_url": "",
        "merged": "false", "rollback_to": repo.shas["env/dev"],
    }  # fmt: skip
    assert back.summary.startswith(f"### promoter rollback\n\n**dev** (`env/dev`): committed "
                                   f"1 change as `{sha[:12]}`\n\nRolled back to "
                                   f"`{repo.shas['env/dev'][:12]}`.\n")  # fmt: skip
    assert "| web/web | `values.yaml` | `image.tag` | `1.1.0` | `1.0.0` |" in back.summary

    broken = {**FILES, "values.yaml": "image:\n  name: web\n"}
    bad = env_repo({"main": broken, "env/dev": broken})
    step = run_action(tmp_path, command="validate", repo=bad.url, token=TEST_TOKEN, forge="none")
    assert step.code == 2, step.log
    assert {k: v for k, v in step.outputs.items() if k != "result"} == {"valid": "false"}
    assert step.summary.startswith("### promoter validate\n\npromoter.yaml: **1 problem**")
    assert "- " in step.summary and "image.tag" in step.summary


def test_an_update_delivered_as_a_pull_request_reports_it(flow, tmp_path):
    repo, api = flow
    given = github_inputs(repo, api)
    first = run_action(tmp_path, command="update", environment="prod", images="web=1.5.0",
                       **given)  # fmt: skip
    assert first.code == 0, first.log
    (pull,) = api.pulls(repo.name)
    url = json.loads(first.outputs["result"])["pull_request"]["url"]
    assert {k: v for k, v in first.outputs.items() if k != "result"} == {
        "changed": "true", "commit": repo.sha("promoter/update-prod"), "operation": "created",
        "pr_number": str(pull.number), "pr_url": url, "merged": "false",
    }  # fmt: skip
    assert f"**prod** (`env/prod`): 1 change pushed\n\nPull request [#{pull.number}]({url}) " \
           "opened (`promoter/update-prod` → `env/prod`, open)" in first.summary  # fmt: skip
    more = run_action(tmp_path, command="update", environment="prod", images="api=2.1.0",
                      merge="true", **given)  # fmt: skip
    assert more.code == 0, more.log
    assert more.outputs["operation"] == "updated" and more.outputs["merged"] == "true"
    assert more.outputs["pr_number"] == str(pull.number)


def test_commit_via_api_input_commits_through_the_forge(flow, tmp_path):
    repo, api = flow
    step = run_action(tmp_path, command="update", environment="dev", images="web=1.1.0",
                      commit_via="api", **github_inputs(repo, api))  # fmt: skip
    assert step.code == 0, step.log
    assert step.outputs["commit"] == repo.sha("env/dev")
    committer = subprocess.run(
        ["git", "--git-dir", str(repo.path), "log", "-1", "--format=%cn <%ce>", "env/dev"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert committer == "GitHub <noreply@github.com>"  # createCommitOnBranch, not a push
