"""The GitLab CI/CD component (gitlab-component/templates/promoter.yml), run as a GitLab runner
runs its job: the `spec: inputs` checked and interpolated as GitLab does (options, regex,
boolean type, defaults), the job's variables expanded against the CI variables, each `script:`
entry run with bash in $CI_PROJECT_DIR, against the session's git server and the strict
GitLab double; then the dotenv report is read back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter.report import OUTPUT_NAMES
from promoter.sandbox import TEST_TOKEN
from tests.helpers import workflow_commands
from tests.test_action import FLOW

pytest_plugins = ["tests.forge_fixtures"]

TEMPLATE = Path(__file__).parent.parent / "gitlab-component" / "templates" / "promoter.yml"
HEADER, JOB = list(YAML(typ="safe").load_all(TEMPLATE.read_text()))
INPUTS: dict[str, dict[str, Any]] = HEADER["spec"]["inputs"]
BIN = Path(sys.executable).parent
APP_SHA = "89abcdef0123456789abcdef0123456789abcdef"
_INPUT = re.compile(r"\$\[\[ inputs\.(\w+) \]\]")


class Rejected(Exception):
    """GitLab refuses the include: a value against the input's options, regex or type."""


def interpolate(given: dict[str, Any]) -> dict[str, Any]:
    """The job as GitLab builds it from `include: component:` with `inputs: given`."""
    unknown = set(given) - set(INPUTS)
    if unknown:
        raise Rejected(f"unknown inputs {sorted(unknown)}")
    values: dict[str, str] = {}
    for name, spec in INPUTS.items():
        if name not in given and "default" not in spec:
            raise Rejected(f"`{name}` input: required value has not been provided")
        value = given.get(name, spec.get("default"))
        if spec.get("type") == "boolean":
            if not isinstance(value, bool):
                raise Rejected(f"`{name}` input: provided value is not a boolean")
            values[name] = "true" if value else "false"
            continue
        value = str(value)
        if "options" in spec and value not in spec["options"]:
            raise Rejected(f"`{name}` input: `{value}` cannot be used because it is not in the "
                           "list of allowed options")  # fmt: skip
        if "regex" in spec and not re.search(spec["regex"], value):
            raise Rejected(f"`{name}` input: provided value does not match required RegEx")
        values[name] = value

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            return _INPUT.sub(lambda m: values[m.group(1)], node)
        if isinstance(node, list):
            return [fill(item) for item in node]
        if isinstance(node, dict):
            return {fill(k): fill(v) for k, v in node.items()}
        return node

    return fill(JOB)


def expand(value: str, variables: dict[str, str]) -> str:
    """GitLab expands `$NAME` and `${NAME}` in a job variable's value."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: variables.get(m.group(1), ""),
                  value)  # fmt: skip


@dataclass
class Job:
    code: int
    stdout: str
    stderr: str
    dotenv: dict[str, str]
    name: str


def run_job(tmp_path: Path, api: Any, secret: str | None = TEST_TOKEN, **given: Any) -> Job:
    (name, job), = interpolate(given).items()  # fmt: skip
    project_dir = tmp_path / "project"
    project_dir.mkdir(exist_ok=True)
    (project_dir / "promoter.env").unlink(missing_ok=True)
    ci = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_URL": "https://gitlab.example",
        "CI_API_V4_URL": api.api_url,
        "CI_PROJECT_PATH": "acme/web-app",
        "CI_PROJECT_DIR": str(project_dir),
        "CI_BUILDS_DIR": str(tmp_path),
        "CI_JOB_URL": "https://gitlab.example/acme/web-app/-/jobs/77",
        "CI_COMMIT_SHA": APP_SHA,
        "CI_JOB_TOKEN": "job-token-that-cannot-open-merge-requests",
        "GITLAB_USER_LOGIN": "alice",
        "GITLAB_USER_NAME": "Alice",
    }
    if secret is not None:
        ci["PROMOTER_TOKEN"] = secret  # the masked CI/CD variable
    variables = {k: expand(str(v), ci) for k, v in job["variables"].items()}
    env = {**os.environ, **ci, **variables, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    out, err, code = "", "", 0
    for entry in job["script"]:
        proc = subprocess.run(["bash", "-e", "-c", entry], env=env, cwd=project_dir,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        out, err, code = out + proc.stdout, err + proc.stderr, proc.returncode
        if code != 0:
            break
    report = project_dir / job["artifacts"]["reports"]["dotenv"]
    text = report.read_text() if report.exists() else ""
    assert TEST_TOKEN not in text + out + err  # GitLab has no add-mask: it must never print
    assert workflow_commands(out + err) == []  # GitLab shows them as text: none printed
    dotenv = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"PROMOTER_[A-Z_]+", key), line
        dotenv[key] = value
    return Job(code, out, err, dotenv, name)


@pytest.fixture
def flow(env_repo, gitlab_api):
    repo = env_repo({"main": FLOW, "env/dev": FLOW, "env/prod": FLOW})
    return repo, gitlab_api


def test_every_input_is_declared_and_used():
    text = TEMPLATE.read_text()
    assert set(_INPUT.findall(text)) == set(INPUTS)
    (body,) = JOB.values()
    assert body["script"][-1] == "promoter-action"
    assert body["artifacts"]["reports"]["dotenv"] == "promoter.env"
    assert body["variables"]["PROMOTER_DOTENV"] == "promoter.env"
    assert INPUTS["command"]["options"] == ["update", "wait", "promote", "rollback",
                                            "validate", "status", "history", "metrics"]  # fmt: skip
    assert INPUTS["forge"]["options"] == ["auto", "github", "gitlab", "none"]
    # The same typed inputs as the action, as INPUT_* variables for the same entry point.
    from promoter import action

    assert {f"INPUT_{n.upper()}" for n in (*action.TYPED, *action._GLOBAL_INPUTS, "command",
                                           "args") if n != "token"} == {
        k for k in body["variables"] if k.startswith("INPUT_")
    }  # fmt: skip
    # Its header names every output the dotenv report can carry.
    for name in OUTPUT_NAMES:
        if name != "result":
            assert f"PROMOTER_{name.upper()}" in text


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"command": "deploy"}, "not in the list of allowed options"),
        ({"command": "wait", "environment": "../prod"}, "does not match required RegEx"),
        ({"command": "wait", "environment": "dev", "timeout": "soon"}, "RegEx"),
        ({"command": "promote", "merge": "yes"}, "not a boolean"),
        ({"command": "promote", "to": "prod; rm -rf /"}, "RegEx"),
        ({"repo": "x"}, "`command` input: required value"),
    ],
)
def test_gitlab_refuses_bad_input_values(given, message):
    given = {"repo": "https://gitlab.example/acme/envs.git", **given}
    with pytest.raises(Rejected, match=re.escape(message)):
        interpolate(given)


def test_update_wait_promote_write_the_dotenv_report(flow, tmp_path):
    repo, api = flow
    given = {"repo": repo.url}

    update = run_job(tmp_path, api, job_name="update-dev", command="update", environment="dev",
                     images="web=1.1.0\n# api unchanged\n", charts="web=0.2.0",
                     **given)  # fmt: skip
    assert update.name == "update-dev"
    assert update.code == 0, update.stdout + update.stderr
    sha = repo.sha("env/dev")
    assert update.dotenv == {
        "PROMOTER_CHANGED": "true", "PROMOTER_COMMIT": sha, "PROMOTER_OPERATION": "none",
        "PROMOTER_PR_NUMBER": "", "PROMOTER_PR_URL": "", "PROMOTER_MERGED": "false",
    }  # fmt: skip

    api.add_status(repo.name, sha, "continuous-delivery/web", "success")
    wait = run_job(tmp_path, api, command="wait", environment="dev", sha=sha, soak="0s",
                   timeout="1m", **given)  # fmt: skip
    assert wait.code == 0, wait.stdout + wait.stderr
    assert wait.dotenv == {"PROMOTER_VERDICT": "pass", "PROMOTER_DECIDING_COMMIT": sha}

    promote = run_job(tmp_path, api, command="promote", to="prod", **given)
    assert promote.code == 0, promote.stdout + promote.stderr
    (mr,) = api.project(repo.name).mrs.values()
    dotenv = promote.dotenv
    assert dotenv["PROMOTER_OPERATION"] == "created"
    assert dotenv["PROMOTER_PR_NUMBER"] == str(mr.iid)
    assert dotenv["PROMOTER_PR_URL"].endswith(f"/{repo.name}/-/merge_requests/{mr.iid}")
    assert dotenv["PROMOTER_COMMIT"] == repo.sha("promoter/dev-to-prod")
    assert dotenv["PROMOTER_VERDICT"] == "pass" and dotenv["PROMOTER_CHANGED"] == "true"
    assert dotenv["PROMOTER_SOURCE_COMMIT"] == dotenv["PROMOTER_DECIDING_COMMIT"] == sha
    assert "PROMOTER_RESULT" not in dotenv

    merged = run_job(tmp_path, api, command="promote", to="prod", merge=True, **given)
    assert merged.code == 0, merged.stdout + merged.stderr
    assert merged.dotenv["PROMOTER_MERGED"] == "true"
    assert merged.dotenv["PROMOTER_PR_NUMBER"] == str(mr.iid)
    assert repo.sha("env/prod") != repo.shas["env/prod"]


def test_a_gate_failure_keeps_its_exit_code_and_still_reports(flow, tmp_path):
    repo, api = flow
    run_job(tmp_path, api, command="update", environment="dev", images="web=1.1.0", repo=repo.url)
    api.add_status(repo.name, repo.sha("env/dev"), "continuous-delivery/web", "failed")
    job = run_job(tmp_path, api, command="promote", to="prod", repo=repo.url)
    assert job.code == 3, job.stdout + job.stderr
    assert job.dotenv["PROMOTER_VERDICT"] == "fail"
    assert job.dotenv["PROMOTER_OPERATION"] == "none"
    assert api.project(repo.name).mrs == {}


def test_without_a_token_variable_the_job_says_what_to_set(flow, tmp_path):
    repo, api = flow
    job = run_job(tmp_path, api, secret=None, command="promote", to="prod", repo=repo.url)
    assert job.code != 0
    assert "CI_JOB_TOKEN cannot open merge requests or post statuses" in job.stderr
    assert "PROMOTER_TOKEN (project or group access token, api scope)" in job.stderr


def test_a_setting_given_as_input_and_in_args_is_refused(flow, tmp_path):
    # `args` and typed inputs combine; the same setting both ways is refused before anything
    # runs (exit 2, nothing written).
    repo, api = flow
    job = run_job(tmp_path, api, command="update", environment="dev",
                  args="dev --image web=2.0.0", repo=repo.url)  # fmt: skip
    assert job.code == 2
    assert "the `environment` input and an argument in `args` both set environment" in job.stderr
    assert repo.sha("env/dev") == repo.shas["env/dev"] and job.dotenv == {}
