"""A chart pin into Chart.yaml dependencies keeps the Chart.lock beside it in sync, in one commit."""

from __future__ import annotations

from ruamel.yaml import YAML

from promoter.helmlock import check_lock, lock_digest
from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import list_branches, log, show_diff
from tests.helpers import run_cli

CONFIG = """\
environments:
  dev: {branch: env/dev}
apps:
  web:
    images:
      web: {file: charts/web/values.yaml, tag: image.tag}
    chart: {file: charts/web/Chart.yaml, version: "dependencies[name=web].version"}
  cache:
    chart: {file: charts/web/Chart.yaml, version: "dependencies[name=redis].version"}
"""

CHART = """\
apiVersion: v2
name: web-umbrella
version: 1.0.0
dependencies:
  - name: web
    version: 0.3.0
    repository: oci://ghcr.io/acme/charts
  - name: redis
    version: "^20.1.0"
    repository: oci://registry-1.docker.io/bitnamicharts
    condition: redis.enabled
"""


def _lock(chart: str) -> str:
    deps = YAML(typ="safe").load(chart)["dependencies"]
    locked = [
        {"name": "web", "repository": "oci://ghcr.io/acme/charts", "version": "0.3.0"},
        {
            "name": "redis",
            "repository": "oci://registry-1.docker.io/bitnamicharts",
            "version": "20.1.4",
        },
    ]
    entries = "".join(
        f"- name: {d['name']}\n  repository: {d['repository']}\n  version: {d['version']}\n"
        for d in locked
    )
    return f'dependencies:\n{entries}digest: {lock_digest(deps, locked)}\ngenerated: "2026-01-01T00:00:00Z"\n'


FILES = {
    "promoter.yaml": CONFIG,
    "charts/web/Chart.yaml": CHART,
    "charts/web/Chart.lock": _lock(CHART),
    "charts/web/values.yaml": "image:\n  tag: 1.0.0\n",
}


def test_seeded_lock_is_in_sync():
    assert check_lock(CHART, FILES["charts/web/Chart.lock"]) is None


def test_dependency_bump_updates_chart_lock_in_the_same_commit(env_repo, capsys):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    run = run_cli(
        capsys,
        "--repo",
        repo.url,
        "--token",
        TEST_TOKEN,
        "update",
        "dev",
        "--chart",
        "web=0.3.1",
        "--image",
        "web=1.0.1",
    )
    assert run.code == 0, run.err
    assert "charts/web/Chart.lock (kept in sync)" in run.out
    assert len(log(repo.path, "env/dev")) == 2
    chart = repo.read_file("env/dev", "charts/web/Chart.yaml")
    lock = repo.read_file("env/dev", "charts/web/Chart.lock")
    assert check_lock(chart, lock) is None
    assert "  version: 0.3.1\n" in lock and "  version: 20.1.4\n" in lock
    changed = [
        line
        for line in show_diff(repo.path, "env/dev").splitlines()
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert len(changed) == 2 * 5  # values tag, Chart.yaml version, lock version, digest, generated
    assert (
        sum(line.startswith("+digest:") or line.startswith("+generated:") for line in changed) == 2
    )


def test_version_range_cannot_be_locked(env_repo, capsys):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    before = list_branches(repo.path)
    run = run_cli(
        capsys,
        "--repo",
        repo.url,
        "--token",
        TEST_TOKEN,
        "update",
        "dev",
        "--chart",
        "cache=^20.2.0",
    )
    assert run.code == 2  # not SemVer: a range is refused at the flag already
    run = run_cli(
        capsys,
        "--repo",
        repo.url,
        "--token",
        TEST_TOKEN,
        "update",
        "dev",
        "--chart",
        "cache=20.2.0",
    )
    assert run.code == 0, run.err
    lock = repo.read_file("env/dev", "charts/web/Chart.lock")
    assert check_lock(repo.read_file("env/dev", "charts/web/Chart.yaml"), lock) is None
    assert "  version: 20.2.0\n" in lock
    assert list_branches(repo.path) != before


def test_range_left_in_chart_yaml_is_refused(env_repo, capsys):
    # The pin edits another key of the file, but a range moved since the lock was written.
    chart = CHART.replace('"^20.1.0"', '"^20.3.0"')
    files = {**FILES, "charts/web/Chart.yaml": chart}
    repo = env_repo({"main": files, "env/dev": files})
    before = list_branches(repo.path)
    run = run_cli(
        capsys, "--repo", repo.url, "--token", TEST_TOKEN, "update", "dev", "--chart", "web=0.3.1"
    )
    assert run.code == 2, run.output
    assert "version range" in run.err and "exact version" in run.err
    assert list_branches(repo.path) == before
