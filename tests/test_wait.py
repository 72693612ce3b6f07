"""`promoter wait` end to end: update over git, an w.operator simulator posting statuses through
the GitHub double, and wait reading them with the real PyGithub client."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from promoter.commands.wait import raise_for, wait
from promoter.errors import GateTimeout
from promoter.forge.base import ForgeInfo
from promoter.forge.github import GitHubForge
from promoter.options import Options
from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import EnvRepo
from promoter.sandbox.github_api import GitHubApiDouble
from promoter.sandbox.operator import OperatorSimulator
from tests.helpers import finish, run_cli, spawn

pytest_plugins = ["tests.forge_fixtures"]

CONFIG = """\
environments:
  dev:
    branch: env/dev
    gate: {require: ["continuous-delivery/{app}"]}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag}
"""
FILES = {
    "promoter.yaml": CONFIG,
    "apps/web/values.yaml": "image:\n  tag: 1.0.0\n",
    "apps/api/values.yaml": "image:\n  tag: 1.0.0\n",
}


class Clock:
    """Wall time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.time = datetime.now(UTC)
        self.monotonic = 0.0

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)
        self.monotonic += seconds


@dataclass
class Setup:
    repo: EnvRepo
    api: GitHubApiDouble
    operator: OperatorSimulator
    clock: Clock
    options: Options


@pytest.fixture
def w(env_repo, github_api):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    forge = GitHubForge(ForgeInfo("github", github_api.api_url, repo.name), TEST_TOKEN)
    clock = Clock()
    operator = OperatorSimulator(
        forge,
        repo.path,
        {"env/dev": ["web", "api"]},
        delay=30,
        bad_versions={"6.6.6"},
        clock=lambda: clock.monotonic,
    )
    options = Options(repo=repo.url, token=TEST_TOKEN, forge="github", api_url=github_api.api_url)
    return Setup(repo, github_api, operator, clock, options)


def cli(options, *args):
    return (
        "--repo",
        options.repo,
        "--token",
        TEST_TOKEN,
        "--forge",
        "github",
        "--api-url",
        options.api_url,
        *args,
    )


def test_wait_passes_on_a_later_commit_and_names_it(w, capsys):
    assert run_cli(capsys, *cli(w.options, "update", "dev", "--image", "web=1.1.0")).code == 0
    ours = w.repo.sha("env/dev")
    assert run_cli(capsys, *cli(w.options, "update", "dev", "--image", "api=1.1.0")).code == 0
    later = w.repo.sha("env/dev")
    w.operator.step()  # sees only the newest commit: ours is skipped, as Argo CD would
    w.clock.sleep(31)
    w.operator.step()
    assert {sha for sha, _, _ in w.operator.posted} == {later}
    run = run_cli(capsys, *cli(w.options, "--output", "json", "wait", "dev", "--sha", ours[:10]))
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["verdict"] == "pass"
    assert (data["target"], data["deciding_commit"], data["superseded"]) == (ours, later, True)
    text = run_cli(capsys, *cli(w.options, "wait", "dev", "--sha", ours))
    assert f"the first deployment that included {ours[:12]}" in text.out
    assert "continuous-delivery/web  success" in text.out


def test_failure_exits_3_within_one_poll(w, capsys):
    assert run_cli(capsys, *cli(w.options, "update", "dev", "--image", "web=6.6.6")).code == 0
    w.operator.step()
    w.clock.sleep(31)
    w.operator.step()
    before = len(w.api.request_log)
    run = run_cli(capsys, *cli(w.options, "wait", "dev", "--app", "web"))
    assert run.code == 3, run.output
    assert "gate failed" in run.err and "continuous-delivery/web is failure" in run.err
    statuses_calls = [p for _, p, _ in w.api.request_log[before:] if "/commits/" in p]
    assert len(statuses_calls) == 2  # one poll: statuses + check runs


def test_nothing_posted_times_out_with_exit_4(w):
    result = wait(w.options, "dev", timeout="2m", now=w.clock.now, sleep=w.clock.sleep)
    assert result.timed_out
    assert result.waited >= timedelta(minutes=2)
    with pytest.raises(GateTimeout) as caught:
        raise_for(result)
    assert caught.value.exit_code == 4
    assert "no status reported yet" in str(caught.value)


def test_five_idle_minutes_cost_at_most_five_billable_requests(w):
    w.operator.step()  # pending on the tip, and it stays pending
    before = len(w.api.request_log)
    result = wait(w.options, "dev", timeout="5m", now=w.clock.now, sleep=w.clock.sleep)
    assert result.timed_out and result.polls > 5
    calls = [status for _, path, status in w.api.request_log[before:] if "/commits/" in path]
    billable = [s for s in calls if s != 304]
    assert len(billable) <= 5, calls
    assert calls.count(304) >= 2 * (result.polls - 1)


def test_soak_is_waited_out_with_an_injected_clock(w):
    w.operator.step()
    w.clock.sleep(31)
    w.operator.step()  # success, stamped with the double's real clock
    result = wait(w.options, "dev", soak="10m", timeout="30m", now=w.clock.now, sleep=w.clock.sleep)
    assert result.gate.verdict.value == "pass"
    assert timedelta(minutes=9) <= result.waited <= timedelta(minutes=11)


def test_report_back_status_and_deployment(w, env_repo, capsys):
    app = env_repo({"main": {"src.txt": "app\n"}})
    app_sha = app.sha("main")
    w.operator.step()
    w.clock.sleep(31)
    w.operator.step()
    run = run_cli(
        capsys,
        *cli(w.options, "wait", "dev", "--report-to", f"{app.name}@{app_sha}", "--deployment"),
    )
    assert run.code == 0, run.err
    statuses = [
        (s.context, s.state) for s in w.api.repository(app.name).statuses if s.sha == app_sha
    ]
    assert statuses == [("promoter/dev", "pending"), ("promoter/dev", "success")]
    deployments = list(w.api.repository(app.name).deployments.values())
    assert [(d.environment, d.sha, [s.state for s in d.statuses]) for d in deployments] == [
        ("dev", app_sha, ["pending", "success"])
    ]


def _reports(w, app):
    """(statuses, deployment states) the application commit has been given, oldest first."""
    repo = w.api.repository(app.name)
    statuses = [(s.context, s.state) for s in repo.statuses if s.sha == app.sha("main")]
    deployments = [[s.state for s in d.statuses] for d in repo.deployments.values()]
    return statuses, deployments


def test_an_error_after_the_first_report_ends_in_error_on_the_app_commit(w, env_repo, capsys):
    app = env_repo({"main": {"src.txt": "app\n"}})
    w.api.fail("GET /repos/*/commits/*/statuses", [404])  # the env repo's statuses, once
    report = ("--report-to", f"{app.name}@{app.sha('main')}", "--deployment")
    run = run_cli(capsys, *cli(w.options, "wait", "dev", *report))
    assert run.code == 1 and "404" in run.err, run.output
    assert _reports(w, app) == (
        [("promoter/dev", "pending"), ("promoter/dev", "error")],
        [["pending", "error"]],
    )


def test_sigterm_while_waiting_ends_in_error_on_the_app_commit(w, env_repo):
    app = env_repo({"main": {"src.txt": "app\n"}})
    report = ("--report-to", f"{app.name}@{app.sha('main')}", "--deployment")
    proc = spawn(*cli(w.options, "wait", "dev", "--timeout", "10m", *report))
    try:
        # A separate process has its own clock: watch the double for the first report.
        deadline = time.monotonic() + 60
        while _reports(w, app)[0] != [("promoter/dev", "pending")]:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no pending report within 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        run = finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run.code == 143, run.output
    assert _reports(w, app) == (
        [("promoter/dev", "pending"), ("promoter/dev", "error")],
        [["pending", "error"]],
    )


def test_deployment_needs_report_to(w, capsys):
    run = run_cli(capsys, *cli(w.options, "wait", "dev", "--deployment"))
    assert run.code == 2 and "add --report-to" in run.err


def test_nothing_to_wait_for_is_a_usage_error(w, capsys):
    config = CONFIG.replace('    gate: {require: ["continuous-delivery/{app}"]}\n', "")
    files = {**FILES, "promoter.yaml": config}
    from promoter.sandbox.envrepo import commit_files

    commit_files(w.repo.path, "main", files, "no gate")
    run = run_cli(capsys, *cli(w.options, "wait", "dev"))
    assert run.code == 2 and "nothing to wait for" in run.err
