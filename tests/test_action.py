"""The GitHub Action / GitLab component entry point, run as CI runs it: inputs in env vars."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from promoter import action
from promoter.sandbox import TEST_TOKEN
from tests.helpers import workflow_commands

ROOT = Path(__file__).parent.parent
FILES = {
    "promoter.yaml": "environments: {dev: {}}\napps:\n  web:\n    images:\n"
    "      web: {file: values.yaml, tag: image.tag}\n",
    "values.yaml": "image:\n  tag: 1.0.0\n",
}


def run_action(tmp_path, **inputs):
    env = dict(os.environ)
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    env["GITHUB_OUTPUT"] = str(tmp_path / "output")
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary")
    proc = subprocess.run(
        [sys.executable, "-m", "promoter.action"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    for path in (tmp_path / "output", tmp_path / "summary"):
        if path.exists():
            assert TEST_TOKEN not in path.read_text()
            assert workflow_commands(path.read_text()) == []
    assert TEST_TOKEN not in proc.stdout + proc.stderr
    own = re.compile(r"^::error title=promoter( [a-z]+ \(exit \d+\))?::")
    assert all(own.match(line) for line in workflow_commands(proc.stdout + proc.stderr))
    return proc


def read_outputs(tmp_path):
    lines = (tmp_path / "output").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_update_sets_outputs_and_a_summary(env_repo, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    proc = run_action(
        tmp_path, command="update", args="dev --image web=1.1.0", repo=repo.url, token=TEST_TOKEN
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = read_outputs(tmp_path)
    assert out["changed"] == "true"
    assert out["commit"] == repo.sha("env/dev")
    summary = (tmp_path / "summary").read_text()
    assert "| web/web | `values.yaml` | `image.tag` | `1.0.0` | `1.1.0` |" in summary


def test_failure_keeps_the_exit_code_and_annotates(env_repo, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    proc = run_action(
        tmp_path,
        command="update",
        args="dev --image 'web=Bad Tag'",
        repo=repo.url,
        token=TEST_TOKEN,
    )
    assert proc.returncode == 2
    assert "::error title=promoter update (exit 2)::--image web=Bad Tag:" in proc.stdout
    assert repo.sha("env/dev") == repo.shas["env/dev"]


def test_missing_command_input(tmp_path):
    proc = run_action(tmp_path, command="")
    assert proc.returncode == 2 and "the `command` input is required" in proc.stdout


def test_gitlab_ci_gets_a_dotenv_report(env_repo, tmp_path, monkeypatch):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    monkeypatch.setenv("GITLAB_CI", "true")
    proc = run_action(
        tmp_path,
        command="update",
        args="dev --image web=1.2.0",
        repo=repo.url,
        token=TEST_TOKEN,
    )
    assert proc.returncode == 0, proc.stderr
    dotenv = (tmp_path / "promoter.env").read_text()
    assert "PROMOTER_CHANGED=true\n" in dotenv
    assert f"PROMOTER_COMMIT={repo.sha('env/dev')}\n" in dotenv


def test_action_yml_inputs_and_outputs_match_the_entry_point():
    spec = YAML(typ="safe").load((ROOT / "action.yml").read_text())
    assert set(spec["inputs"]) == {"command", "args", *action._GLOBAL_INPUTS}
    produced = {"result", "changed", "commit", "verdict", "deciding_commit", "valid"}
    assert set(spec["outputs"]) <= produced
    assert spec["runs"] == {
        "using": "docker",
        "image": "Dockerfile",
        "entrypoint": "promoter-action",
    }


def test_gitlab_component_declares_every_input_it_uses():
    text = (ROOT / "gitlab-component" / "templates" / "promoter.yml").read_text()
    header, job = list(YAML(typ="safe").load_all(text))
    used = set(re.findall(r"\$\[\[ inputs\.(\w+) \]\]", text))
    assert used == set(header["spec"]["inputs"])
    (body,) = job.values()
    assert body["script"] == ["promoter-action"]
    assert body["artifacts"]["reports"]["dotenv"] == "promoter.env"


def test_dockerfile_installs_the_package_with_git():
    text = (ROOT / "Dockerfile").read_text()
    assert "git" in text and "pip install --no-cache-dir ." in text
    assert 'ENTRYPOINT ["promoter"]' in text
