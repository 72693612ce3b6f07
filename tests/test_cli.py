"""The command line as users and CI meet it: version, help, environment variables, demo."""

from __future__ import annotations

import json
import subprocess
import sys

from promoter import __version__
from promoter.sandbox import TEST_TOKEN
from tests.helpers import run_cli

FILES = {
    "promoter.yaml": "environments: {dev: {}}\napps:\n  web:\n    images:\n"
    "      web: {file: values.yaml, tag: image.tag}\n",
    "values.yaml": "image:\n  tag: 1.0.0\n",
}


def test_version(capsys):
    run = run_cli(capsys, "--version")
    assert run.code == 0
    assert run.out.strip() == f"promoter, version {__version__}"


def test_help_lists_commands_and_imports_no_forge_or_git_client():
    code = (
        "import sys\n"
        "from promoter.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('github', 'gitlab', 'git', 'ruamel') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "update" in out.stdout and "demo" in out.stdout
    assert "HEAVY []" in out.stdout


def test_options_come_from_promoter_environment_variables(env_repo, capsys, monkeypatch):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    monkeypatch.setenv("PROMOTER_REPO", repo.url)
    monkeypatch.setenv("PROMOTER_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("PROMOTER_OUTPUT", "json")
    run = run_cli(capsys, "update", "dev", "--image", "web=1.0.1")
    assert run.code == 0, run.err
    assert json.loads(run.out)["changed"] is True


def test_github_token_is_used_for_a_github_forge(env_repo, capsys, monkeypatch):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    monkeypatch.setenv("GITHUB_TOKEN", TEST_TOKEN)
    run = run_cli(
        capsys, "--repo", repo.url, "--forge", "github", "update", "dev", "--image", "web=1.0.2"
    )
    assert run.code == 0, run.err
    assert repo.read_file("env/dev", "values.yaml") == "image:\n  tag: 1.0.2\n"


def test_demo_runs_the_whole_loop_offline(capsys):
    run = run_cli(capsys, "demo")
    assert run.code == 0, run.err
    out = run.out
    steps = [line for line in out.splitlines() if line.startswith("$ promoter ")]
    assert [step.split()[2] for step in steps] == [
        "update", "update", "wait", "promote", "promote", "status", "history", "rollback",
        "history",
    ]  # fmt: skip
    assert "dev (env/dev): committed 5 changes" in out
    assert "already up to date" in out
    assert "gate passed" in out
    assert "# The pull request as reviewers see it: #1 promote(staging): web 1.4.2" in out
    assert "| Promotes **dev** → **staging**" in out
    assert "(promoter/dev-to-staging -> env/staging, merged)" in out
    assert "rolling back to" in out and "rolled back to" in out


def test_demo_json_reports_every_step(capsys):
    run = run_cli(capsys, "--output", "json", "demo")
    assert run.code == 0, run.err
    steps = json.loads(run.out)["steps"]
    assert len(steps) == 9 and all(step["exit_code"] == 0 for step in steps)


# The console script (main() without arguments) ends the process without the interpreter's
# teardown: what a normal exit does that anyone can see must still happen.
EXIT_PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('EXIT HANDLER RAN\\n'))\n"
    "sys.stdout.write('x' * 200000)\n"  # buffered, larger than any pipe: flushed at the end
    "sys.argv = ['promoter', *sys.argv[1:]]\n"
    "from promoter.cli import main\n"
    "main()\n"
)


def test_console_script_exit_runs_exit_handlers_and_flushes_output():
    out = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert out.stdout == "x" * 200000 + f"promoter, version {__version__}\n"
    assert out.stderr == "EXIT HANDLER RAN\n"


def test_console_script_exit_keeps_the_exit_code_of_an_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, "--config", str(tmp_path / "none.yaml"), "validate"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("promoter: error: cannot read --config ")
    assert out.stderr.endswith("EXIT HANDLER RAN\n")


def test_console_script_exit_code_of_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "promoter", "update"], capture_output=True)
    assert out.returncode == 2
    assert b"Missing argument 'ENVIRONMENT'" in out.stderr
