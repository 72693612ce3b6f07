"""`promoter validate`: config errors, pins that do not resolve, stale Chart.lock files."""

from __future__ import annotations

import json

from promoter.testing import TEST_TOKEN
from tests.helpers import run_cli

CONFIG = """\
environments:
  dev: {branch: env/dev}
  prod: {branch: env/prod, from: dev}
apps:
  web:
    images:
      web: {file: "envs/{env}/web.yaml", tag: image.tag, digest: image.digest}
    chart: {file: charts/Chart.yaml, version: "dependencies[name=web].version"}
"""
CHART = "apiVersion: v2\nname: u\nversion: 1.0.0\ndependencies:\n- name: web\n  version: 0.1.0\n  repository: oci://r\n"
GOOD_LOCK = "dependencies:\n- name: web\n  repository: oci://r\n  version: 0.1.0\n"

FILES = {
    "promoter.yaml": CONFIG,
    "envs/dev/web.yaml": "image:\n  tag: 1.0.0\n  digest: ''\n",
    "envs/prod/web.yaml": "image:\n  tag: 1.0.0\n  digest: ''\n",
    "charts/Chart.yaml": CHART,
}


def _with_lock(files):
    from ruamel.yaml import YAML

    from promoter.helmlock import lock_digest

    deps = YAML(typ="safe").load(CHART)["dependencies"]
    lock_deps = YAML(typ="safe").load(GOOD_LOCK)["dependencies"]
    digest = lock_digest(deps, lock_deps)
    return {
        **files,
        "charts/Chart.lock": f"{GOOD_LOCK}digest: {digest}\ngenerated: '2026-01-01T00:00:00Z'\n",
    }


def test_valid_repo(env_repo, capsys):
    files = _with_lock(FILES)
    repo = env_repo({"main": files, "env/dev": files, "env/prod": files})
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "validate")
    assert run.code == 0, run.output
    assert "promoter.yaml is valid: 2 environments, 1 apps, 6 pinned keys checked" in run.out


def test_reports_missing_keys_files_and_stale_locks(env_repo, capsys):
    good = _with_lock(FILES)
    prod = {k: v for k, v in good.items() if k != "envs/prod/web.yaml"}
    prod["charts/Chart.lock"] = good["charts/Chart.lock"].replace("0.1.0", "0.0.9")
    dev = {**good, "envs/dev/web.yaml": "image:\n  tag: 1.0.0\n"}
    repo = env_repo({"main": good, "env/dev": dev, "env/prod": prod})
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--output", "json", "validate")
    assert run.code == 2
    data = json.loads(run.out)
    assert data["valid"] is False
    problems = "\n".join(data["problems"])
    assert 'dev (env/dev): envs/dev/web.yaml: image.digest: key "digest" not found' in problems
    assert "prod (env/prod): envs/prod/web.yaml does not exist (pin web/web)" in problems
    assert "env/prod: charts/Chart.lock: Chart.lock is out of sync with Chart.yaml" in problems
    assert "3 problems found" in run.err


def test_local_config_without_a_repo(tmp_path, capsys):
    path = tmp_path / "promoter.yaml"
    path.write_text(CONFIG)
    assert run_cli(capsys, "--config", str(path), "validate").code == 0
    path.write_text(CONFIG.replace("from: dev", "from: qa"))
    run = run_cli(capsys, "--config", str(path), "validate")
    assert run.code == 2
    assert f"{path} line 3: environments.prod.from: unknown environment 'qa'" in run.err


def test_branch_head_is_refused_before_any_git_io(tmp_path, capsys):
    # `branch: HEAD` used to fetch the remote's default branch and push refs/heads/HEAD.
    path = tmp_path / "promoter.yaml"
    path.write_text(CONFIG.replace("prod: {branch: env/prod,", "prod: {branch: HEAD,"))
    run = run_cli(capsys, "--config", str(path), "validate")
    assert run.code == 2
    assert f"{path} line 3: environments.prod.branch: 'HEAD' is not a branch" in run.err
    assert run.err.count("\n") == 1
