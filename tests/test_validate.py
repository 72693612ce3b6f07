"""`promoter validate`: config errors, pins that do not resolve, stale Chart.lock files."""

from __future__ import annotations

import json
import subprocess

from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import git_env
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


# --- issue 12: what validate catches on the environment branches, end to end -----------------

SOPS_SECRET = """\
apiVersion: v1
kind: Secret
metadata:
    name: db
stringData:
    password: ENC[AES256_GCM,data:bm90IHJlYWw=,iv:q2yJ3mM0bH1Vp7Qm3lKqKUxXGdP1d1nCq2yJ3mM0bH0=,tag:Qm3lKqKUxXGdP1d1nCq2yA==,type:str]
sops:
    age:
        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    lastmodified: "2025-01-01T00:00:00Z"
    mac: ENC[AES256_GCM,data:bm90IGEgbWFj,iv:d1nCq2yJ3mM0bH1Vp7Qm3lKqKUxXGdP1d1nCq2yJ3mI=,tag:GdP1d1nCq2yJ3mM0bH1Vpw==,type:str]
    version: 3.9.0
"""
PLAIN_SECRET = (
    "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData:\n  password: pw-123\n"
)
THREE_ENVS = CONFIG.replace(
    "  prod: {branch: env/prod, from: dev}\n",
    "  staging: {branch: env/staging, from: dev}\n  prod: {branch: env/prod, from: staging}\n",
)


def test_catches_missing_file_key_invalid_values_and_a_plaintext_secret(env_repo, capsys):
    """Issue 12's "Done when": each kind of problem on its own branch, a SOPS Secret passes."""
    good = {**_with_lock(FILES), "promoter.yaml": THREE_ENVS}
    good["envs/staging/web.yaml"] = good["envs/dev/web.yaml"]
    good["secrets/db.yaml"] = SOPS_SECRET
    dev = {**good, "envs/dev/web.yaml": "image:\n  tag: 1.0 beta\n  digest: sha256:abc\n"}
    dev["charts/Chart.yaml"] = CHART.replace("version: 0.1.0", "version: 0.1.0 (old)")
    del dev["charts/Chart.lock"]  # only the version itself is wrong here
    staging = {**good, "envs/staging/web.yaml": "image:\n  tag: 1.0.0\n"}
    staging["secrets/plain.yaml"] = PLAIN_SECRET
    prod = {k: v for k, v in good.items() if k != "envs/prod/web.yaml"}
    repo = env_repo({"main": good, "env/dev": dev, "env/staging": staging, "env/prod": prod})
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--output", "json", "validate")
    assert run.code == 2, run.output
    data = json.loads(run.out)
    assert data["problems"] == [
        'dev (env/dev): envs/dev/web.yaml: image.tag: "1.0 beta" is not an image tag (pin web/web)',
        "dev (env/dev): envs/dev/web.yaml: image.digest: sha256:abc is not an image digest "
        "(sha256:<64 hex>) (pin web/web)",
        'dev (env/dev): charts/Chart.yaml: dependencies[name=web].version: "0.1.0 (old)" is not '
        "a chart version or constraint (pin web/chart)",
        'staging (env/staging): envs/staging/web.yaml: image.digest: key "digest" not found '
        'under "image" (line 1) (pin web/web)',
        "staging (env/staging): secrets/plain.yaml line 5: plaintext Secret db: "
        "stringData.password",
        "prod (env/prod): envs/prod/web.yaml does not exist (pin web/web)",
    ]
    assert "pw-123" not in run.output
    assert data["checked"] == 9
    assert data["scanned"] == 6 + 7 + 5  # staging adds plain.yaml, prod lacks its web.yaml
    assert [s["file"] for s in data["secrets"]] == ["secrets/plain.yaml"]
    # The SOPS Secret is on every branch and was read on every branch: not a finding.
    ok = env_repo({"main": good, "env/dev": good, "env/staging": good, "env/prod": good})
    run = run_cli(capsys, "--repo", ok.url, "--token", TEST_TOKEN, "validate")
    assert run.code == 0, run.output
    assert "3 environments, 1 apps, 9 pinned keys checked, 18 YAML files checked" in run.out


def test_a_missing_branch_is_one_problem_and_the_others_are_still_checked(env_repo, capsys):
    files = {**_with_lock(FILES), "secrets/db.yaml": PLAIN_SECRET}
    repo = env_repo({"main": files, "env/dev": files})
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "validate")
    assert run.code == 2, run.output
    lines = run.out.splitlines()
    assert lines[1] == "  dev (env/dev): secrets/db.yaml line 5: plaintext Secret db: " + (
        "stringData.password"
    )
    assert lines[2].startswith("  prod (env/prod): branch 'env/prod' does not exist in ")
    assert "2 problems found" in run.err


def test_a_symlink_where_a_pinned_file_should_be_is_one_problem(env_repo, capsys):
    files = _with_lock(FILES)
    repo = env_repo({"main": files, "env/dev": files, "env/prod": files})
    # A person replaces prod's file by a symbolic link to dev's (mode 120000).
    env = git_env({"GIT_INDEX_FILE": str(repo.path / "tmp-index")})

    def git(*args: str, stdin: bytes | None = None) -> str:
        done = subprocess.run(["git", "--git-dir", str(repo.path), *args],
                              input=stdin, capture_output=True, env=env, check=True)  # fmt: skip
        return done.stdout.decode().strip()

    link = git("hash-object", "-w", "--stdin", stdin=b"../dev/web.yaml")
    git("read-tree", "env/prod")
    git("update-index", "--cacheinfo", f"120000,{link},envs/prod/web.yaml")
    commit = git("commit-tree", git("write-tree"), "-p", "env/prod", "-m", "symlink")
    git("update-ref", "refs/heads/env/prod", commit)
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "validate")
    assert run.code == 2, run.output
    assert run.out.splitlines()[1:] == [
        "  prod (env/prod): envs/prod/web.yaml must be a regular file, but it is a symbolic "
        f"link in commit {commit[:12]}: pin the file itself"
    ]
