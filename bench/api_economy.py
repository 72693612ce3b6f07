"""API economy: requests per forge operation, and what `wait` costs per minute of waiting.

Measured against the API doubles (the same ones the tests hold to GitHub's and GitLab's
official descriptions), by their request logs. `wait` runs with an injected clock, so ten
minutes of polling take seconds; the count is what a real wait would send.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from promoter.commands.wait import wait
from promoter.forge import open_forge
from promoter.forge.base import Forge, ForgeInfo, PullRequestSpec
from promoter.options import Options
from promoter.sandbox.envrepo import git_env, make_env_repo
from promoter.sandbox.github_api import GitHubApiDouble
from promoter.sandbox.gitlab_api import GitLabApiDouble
from promoter.sandbox.gitserver import GitHttpServer

TOKEN = "bench_api_token_51c2"
CONFIG = """\
environments:
  dev: {branch: env/dev, gate: {require: ["continuous-delivery/{app}"]}}
  prod: {branch: env/prod, from: dev}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
"""
FILES = {"promoter.yaml": CONFIG, "apps/web/values.yaml": "image:\n  tag: 1.0.0\n"}
IDLE_MINUTES = 10


class _Clock:
    def __init__(self) -> None:
        self.time = datetime.now(UTC)

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)


def _count(api: Any, fn: Callable[[], object]) -> tuple[int, int]:
    """(requests, of which 304) that fn cost."""
    before = len(api.request_log)
    fn()
    calls = api.request_log[before:]
    return len(calls), sum(1 for _, _, status in calls if status == 304)


def _operations(api: Any, forge: Forge, repo: Any, kind: str) -> list[tuple[str, int]]:
    spec = PullRequestSpec(
        head="promoter/dev-to-prod",
        base="env/prod",
        title="promote(prod): web 1.1.0",
        body="first",
        labels=("promotion",),
    )
    repo.commit("env/prod", {"README.md": "prod\n"}, "prod moves on")
    sha = repo.sha("env/dev")
    number: dict[str, int] = {}
    ops: list[tuple[str, Callable[[], object]]] = [
        ("find pull request (none open)", lambda: forge.find_pull_request(spec.head, spec.base)),
        (
            "open pull request (new, 1 label)",
            lambda: number.update(pr=forge.open_or_update_pull_request(spec).number),
        ),
        ("open-or-update (exists, unchanged)", lambda: forge.open_or_update_pull_request(spec)),
        (
            "open-or-update (exists, new body)",
            lambda: forge.open_or_update_pull_request(
                PullRequestSpec(**{**spec.__dict__, "body": "second"})
            ),
        ),
        ("statuses of a commit", lambda: forge.statuses(sha)),
        ("statuses again, unchanged", lambda: forge.statuses(sha)),
        ("set a commit status", lambda: forge.set_status(sha, "success", "ci/x", "ok")),
        ("comment", lambda: forge.comment(number["pr"], "hello")),
    ]
    if kind == "github":
        ops.append(("deployment + status", lambda: forge.create_deployment(sha, "dev", "success")))
    ops.append(
        (
            "merge (guarded on the head SHA)",
            lambda: forge.merge_pull_request(number["pr"], repo.sha(spec.head)),
        )
    )
    rows = []
    for label, fn in ops:
        total, not_modified = _count(api, fn)
        rows.append((label, total - not_modified))
    return rows


def _idle_wait(api: Any, repo: Any, forge: Forge, options: Options) -> dict[str, float]:
    forge.set_status(repo.sha("env/dev"), "pending", "continuous-delivery/web", "syncing")
    clock = _Clock()
    before = len(api.request_log)
    result = wait(options, "dev", timeout=f"{IDLE_MINUTES}m", now=clock.now, sleep=clock.sleep)
    calls = [
        status
        for _, path, status in api.request_log[before:]
        if "/commits/" in path or "/statuses" in path
    ]
    billable = sum(1 for status in calls if status != 304)
    return {
        "polls": result.polls,
        "requests": len(calls),
        "billable": billable,
        "not_modified": len(calls) - billable,
        "billable_per_minute": billable / IDLE_MINUTES,
    }


def measure() -> tuple[str, list[tuple[str, str, bool | None]]]:
    """The report section (Markdown) and the issue-6 targets it decides."""
    with tempfile.TemporaryDirectory(prefix="promoter-bench-api-") as tmp:
        git = GitHttpServer(Path(tmp) / "git", TOKEN).start()
        try:
            return _measure(git)
        finally:
            git.stop()


def _measure(git: GitHttpServer) -> tuple[str, list[tuple[str, str, bool | None]]]:
    tables: dict[str, list[tuple[str, int]]] = {}
    idle: dict[str, dict[str, float]] = {}
    for kind, double in (("github", GitHubApiDouble), ("gitlab", GitLabApiDouble)):
        api = double(git, TOKEN).start()
        try:
            name = f"acme/envs-{kind}"
            repo = make_env_repo(git, name, {"main": FILES, "env/dev": FILES, "env/prod": FILES})
            # The promotion branch forks from env/prod, as promote makes it.
            subprocess.run(
                ["git", "--git-dir", str(repo.path), "branch", "promoter/dev-to-prod", "env/prod"],
                check=True,
                env=git_env(),
            )
            repo.commit(
                "promoter/dev-to-prod",
                {"apps/web/values.yaml": "image:\n  tag: 1.1.0\n"},
                "promote(prod): web 1.1.0",
            )
            forge = open_forge(ForgeInfo(kind, api.api_url, name, "127.0.0.1"), TOKEN)  # type: ignore[arg-type]
            options = Options(repo=repo.url, token=TOKEN, forge=kind, api_url=api.api_url)
            idle[kind] = _idle_wait(api, repo, forge, options)
            tables[kind] = _operations(api, forge, repo, kind)
        finally:
            api.stop()
    lines = [
        f"`wait` on a commit whose status stays pending for {IDLE_MINUTES} minutes (injected "
        "clock; polls every 2 s growing to 30 s). Billable = any answer but 304 Not Modified.",
        "",
        "| forge | polls | requests | billable | 304 | billable per minute |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, row in idle.items():
        lines.append(
            f"| {kind} | {row['polls']:.0f} | {row['requests']:.0f} | {row['billable']:.0f} | "
            f"{row['not_modified']:.0f} | {row['billable_per_minute']:.2f} |"
        )
    lines += [
        "",
        "API requests per forge operation (billable; 304s not counted), real PyGithub and "
        "python-gitlab against the doubles:",
        "",
        "| operation | GitHub | GitLab |",
        "|---|---:|---:|",
    ]
    gitlab = dict(tables["gitlab"])
    for label, count in tables["github"]:
        lines.append(f"| {label} | {count} | {gitlab.get(label, '—')} |")
    unchanged = max(
        dict(tables["github"])["open-or-update (exists, unchanged)"],
        gitlab["open-or-update (exists, unchanged)"],
    )
    changed = max(
        dict(tables["github"])["open-or-update (exists, new body)"],
        gitlab["open-or-update (exists, new body)"],
    )
    per_minute = max(row["billable_per_minute"] for row in (idle["github"],))
    targets: list[tuple[str, str, bool | None]] = [
        (
            "`wait` ≤ 1 billable request per minute idle (GitHub)",
            f"{per_minute:.2f}/min",
            per_minute <= 1,
        ),
        (
            "open-or-update PR ≤ 3 requests when it exists",
            f"{unchanged} unchanged, {changed} changed",
            max(unchanged, changed) <= 3,
        ),
    ]
    return "\n".join(lines), targets


if __name__ == "__main__":
    text, targets = measure()
    print(text)
    for what, figure, ok in targets:
        print(f"{what}: {figure} ({'met' if ok else 'missed'})")
