"""Hostile YAML (alias bombs, deep nesting, huge files) is refused: exit 2, one line naming the
file and the limit, nothing pushed, and no hang.

Commands that could hang run as a separate process with a timeout: the timeout is only a guard
against a hang, not a performance claim.
"""

from __future__ import annotations

import subprocess

import pytest

from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import list_branches
from tests.helpers import Run, assert_clean, run_cli, spawn

HANG_GUARD = 10.0  # seconds

CONFIG = """\
environments:
  dev: {branch: env/dev}
  staging: {branch: env/staging, from: dev}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
    chart: {file: apps/web/Chart.yaml, version: "dependencies[name=web].version"}
"""
VALUES = "image:\n  tag: 1.0.0\n"
CHART = "apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n- name: web\n  version: 0.1.0\n  repository: oci://r\n"
LOCK = "dependencies:\n- name: web\n  repository: oci://r\n  version: 0.1.0\ndigest: sha256:0\ngenerated: '2026-01-01T00:00:00Z'\n"
FILES = {
    "promoter.yaml": CONFIG,
    "apps/web/values.yaml": VALUES,
    "apps/web/Chart.yaml": CHART,
    "apps/web/Chart.lock": LOCK,
}


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic: each level is a list of `width` aliases of the level before."""
    lines = [f"lol0: &l0 [{', '.join(['lol'] * width)}]"]
    for n in range(1, levels):
        lines.append(f"lol{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def deep(levels: int = 10_000) -> str:
    return "deep: " + "[" * levels + "]" * levels + "\n"


def run_guarded(*args: str) -> Run:
    proc = spawn(*args)
    try:
        out, err = proc.communicate(timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode < 0:
        pytest.fail(f"promoter {' '.join(args[-4:])} still running after {HANG_GUARD} s")
    run = Run(proc.returncode, out, err)
    assert_clean(run)
    return run


def assert_refused(run: Run, *texts: str) -> None:
    assert run.code == 2, run.output
    assert run.out == ""
    assert run.err.count("\n") == 1, run.err
    for text in texts:
        assert text in run.err, run.err


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    # Through the environment: a command line shows up in a timeout's message.
    monkeypatch.setenv("PROMOTER_TOKEN", TEST_TOKEN)


@pytest.fixture
def make_repo(env_repo):
    def make(changed: dict[str, str] | None = None):
        files = {**FILES, **(changed or {})}
        return env_repo({"main": files, "env/dev": files, "env/staging": FILES})

    return make


def update(repo, *args: str) -> tuple[str, ...]:
    return ("--repo", repo.url, *args, "update", "dev")


# --- promoter.yaml ---------------------------------------------------------------------------


def test_alias_bomb_in_promoter_yaml_given_with_config(make_repo, tmp_path):
    repo = make_repo()
    before = list_branches(repo.path)
    path = tmp_path / "promoter.yaml"
    path.write_text(CONFIG + billion_laughs())
    run = run_guarded(*update(repo, "--config", str(path)), "--image", "web=2.0")
    line = CONFIG.count("\n") + 1
    assert_refused(run, f"{path} line {line}: ", "anchors and aliases")
    assert list_branches(repo.path) == before


def test_alias_bomb_in_promoter_yaml_in_the_repo(make_repo):
    repo = make_repo({"promoter.yaml": CONFIG + billion_laughs()})
    before = list_branches(repo.path)
    run = run_guarded(*update(repo), "--image", "web=2.0")
    line = CONFIG.count("\n") + 1
    assert_refused(run, f"promoter.yaml line {line}: ", "anchors and aliases")
    assert list_branches(repo.path) == before


def test_any_anchor_or_alias_in_promoter_yaml_is_refused_naming_its_line(tmp_path, capsys):
    path = tmp_path / "promoter.yaml"
    path.write_text(CONFIG.replace("{branch: env/dev}", "&d {branch: env/dev}"))
    run = run_cli(capsys, "--config", str(path), "validate")
    assert_refused(run, f"{path} line 2: ", "&d")


def test_deep_promoter_yaml(tmp_path):
    path = tmp_path / "promoter.yaml"
    path.write_text(CONFIG + deep())
    run = run_guarded("--config", str(path), "validate")
    assert_refused(run, f"{path} line {CONFIG.count(chr(10)) + 1}: ", "200 levels")


def test_big_promoter_yaml(tmp_path, capsys):
    path = tmp_path / "promoter.yaml"
    path.write_text(CONFIG + "# padding\n" * 300_000)  # 3 MB
    run = run_cli(capsys, "--config", str(path), "validate")
    assert_refused(run, f"{path}: ", "2 MiB")


# --- files in the environment repo -----------------------------------------------------------


def test_deep_values_file(make_repo):
    repo = make_repo({"apps/web/values.yaml": VALUES + deep()})
    before = list_branches(repo.path)
    run = run_guarded(*update(repo), "--image", "web=2.0")
    assert_refused(run, "apps/web/values.yaml: ", "line 3", "200 levels")
    assert list_branches(repo.path) == before


def test_deep_block_mapping_in_a_values_file(make_repo, capsys):
    nested = "".join(f"{' ' * n}k:\n" for n in range(300))
    repo = make_repo({"apps/web/values.yaml": VALUES + nested})
    run = run_cli(capsys, *update(repo), "--image", "web=2.0")
    assert_refused(run, "apps/web/values.yaml: ", "200 levels")


def test_big_values_file(make_repo):
    filler = "".join(f"key{n:07d}: some value that pads the file {n:07d}\n" for n in range(230_000))
    assert len(filler) > 11_000_000
    repo = make_repo({"apps/web/values.yaml": VALUES + filler})
    before = list_branches(repo.path)
    run = run_guarded(*update(repo), "--image", "web=2.0")
    assert_refused(run, "apps/web/values.yaml: ", "10 MiB")
    assert list_branches(repo.path) == before


def test_alias_bomb_in_a_values_file(make_repo):
    repo = make_repo({"apps/web/values.yaml": VALUES + billion_laughs()})
    before = list_branches(repo.path)
    run = run_guarded(*update(repo), "--image", "web=2.0")
    assert_refused(run, "apps/web/values.yaml: ", "100,000 nodes")
    assert list_branches(repo.path) == before


def test_alias_bomb_in_a_chart_lock(make_repo):
    repo = make_repo({"apps/web/Chart.lock": LOCK + billion_laughs()})
    before = list_branches(repo.path)
    run = run_guarded(*update(repo), "--chart", "web=0.2.0")
    assert_refused(run, "apps/web/Chart.lock: ", "100,000 nodes")
    assert list_branches(repo.path) == before


def test_alias_to_its_own_enclosing_node_in_a_chart_lock(make_repo):
    repo = make_repo({"apps/web/Chart.lock": LOCK + "loop: &loop [a, *loop]\n"})
    before = list_branches(repo.path)
    run = run_guarded(*update(repo), "--chart", "web=0.2.0")
    assert_refused(run, "apps/web/Chart.lock: ", "*loop", "line 7")
    assert list_branches(repo.path) == before


def test_validate_reports_a_hostile_file_as_a_problem(make_repo, capsys):
    repo = make_repo({"apps/web/values.yaml": VALUES + deep()})
    run = run_cli(capsys, "--repo", repo.url, "validate")
    assert run.code == 2
    assert "dev (env/dev): apps/web/values.yaml: " in run.out + run.err
    assert "200 levels" in run.out + run.err


def test_promote_refuses_an_alias_bomb_in_the_source(make_repo):
    repo = make_repo({"apps/web/values.yaml": VALUES + billion_laughs()})
    before = list_branches(repo.path)
    run = run_guarded(
        "--repo", repo.url, "--forge", "none", "promote", "--to", "staging", "--no-gate"
    )
    assert_refused(run, "apps/web/values.yaml", "100,000 nodes")
    assert list_branches(repo.path) == before


def test_ordinary_anchors_and_merge_keys_in_env_files_still_work(make_repo, capsys):
    values = "base: &base {pullPolicy: Always}\nimage:\n  <<: *base\n  tag: 1.0.0\nother: *base\n"
    repo = make_repo({"apps/web/values.yaml": values})
    run = run_cli(capsys, *update(repo), "--image", "web=2.0.1")
    assert run.code == 0, run.output
    assert repo.read_file("env/dev", "apps/web/values.yaml") == values.replace("1.0.0", "2.0.1")
