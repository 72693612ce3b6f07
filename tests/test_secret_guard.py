"""`promoter validate`'s secret guard, over the real git server: plaintext Kubernetes Secrets on
any environment branch are findings (branch, file, line; never the value); SOPS-encrypted
Secrets, SealedSecrets, ExternalSecrets, empty Secrets and template references pass; hostile
files are bounded, and a branch's files arrive in one batched blob fetch."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import git_env, git_out
from promoter.sandbox.gitserver import auth_config_env
from tests.helpers import Run, assert_clean, run_cli

CONFIG = """\
environments:
  dev: {branch: env/dev}
  prod: {branch: env/prod, from: dev}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
"""
BASE = {"promoter.yaml": CONFIG, "apps/web/values.yaml": "image:\n  tag: 1.0.0\n"}

# Must never appear in any output, in any form a Secret holds it.
VALUE = "hunter2-S3cr3t-must-never-print"
VALUE_B64 = base64.b64encode(VALUE.encode()).decode()

PLAIN_DATA = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
type: Opaque
data:
  username: YWRtaW4=
  password: {VALUE_B64}
"""
PLAIN_STRING_DATA = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: api-token
stringData:
  token: "{VALUE}"
"""
# As `sops --encrypt --encrypted-regex '^(data|stringData)$'` writes it (age recipient).
SOPS = """\
apiVersion: v1
kind: Secret
metadata:
    name: db
    namespace: shop
type: Opaque
stringData:
    password: ENC[AES256_GCM,data:dGhpcyBpcyBub3QgcmVhbA==,iv:q2yJ3mM0bH1Vp7Qm3lKqKUxXGdP1d1nCq2yJ3mM0bH0=,tag:Qm3lKqKUxXGdP1d1nCq2yA==,type:str]
data:
    ca.crt: ENC[AES256_GCM,data:bm90IGEgcmVhbCBjZXJ0,iv:bH1Vp7Qm3lKqKUxXGdP1d1nCq2yJ3mM0bH1Vp7Qm3lI=,tag:KUxXGdP1d1nCq2yJ3mM0bA==,type:str]
sops:
    kms: []
    gcp_kms: []
    azure_kv: []
    hc_vault: []
    age:
        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBub3QgcmVhbAo=
            -----END AGE ENCRYPTED FILE-----
    lastmodified: "2025-01-01T00:00:00Z"
    mac: ENC[AES256_GCM,data:bm90IGEgbWFj,iv:d1nCq2yJ3mM0bH1Vp7Qm3lKqKUxXGdP1d1nCq2yJ3mI=,tag:GdP1d1nCq2yJ3mM0bH1Vpw==,type:str]
    pgp: []
    encrypted_regex: ^(data|stringData)$
    version: 3.9.0
"""
SEALED = """\
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: db
  namespace: shop
spec:
  encryptedData:
    password: AgBy3i4OJSWK+PiTySYZZA9rO43cGDEq4rrqy9RqVXm7P0lUBdaDf1k4OI3Q
  template:
    metadata:
      name: db
      namespace: shop
    type: Opaque
"""
EXTERNAL = """\
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: db
spec:
  refreshInterval: 1h
  secretStoreRef: {name: vault, kind: ClusterSecretStore}
  target: {name: db}
  data:
  - secretKey: password
    remoteRef: {key: prod/db, property: password}
"""
HARMLESS_SECRETS = """\
apiVersion: v1
kind: Secret
metadata: {name: no-data}
type: kubernetes.io/service-account-token
---
apiVersion: v1
kind: Secret
metadata: {name: empty-values}
data: {}
stringData:
  a: ""
  b: ~
  c:
---
apiVersion: v1
kind: Secret
metadata: {name: rendered-later}
stringData:
  password: ${DB_PASSWORD}
  token: "{{ .Values.token }}"
data:
  key: {{ .Values.key | b64enc }}
"""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  password: hunter\n"


def validate(repo, capsys, *extra: str) -> tuple[Run, Run]:
    """`validate` in text and in JSON; neither may show the value, in any form."""
    args = ("--repo", repo.url, "--token", TEST_TOKEN, *extra)
    text = run_cli(capsys, *args, "validate")
    data = run_cli(capsys, *args, "--output", "json", "validate")
    assert text.code == data.code
    for run in (text, data):
        for form in (VALUE, VALUE_B64, "hunter2"):
            assert form not in run.output, f"a Secret's value reached the output: {run.output}"
    return text, data


def test_plaintext_data_and_string_data_on_any_branch(env_repo, capsys):
    dev = {**BASE, "apps/db/secret.yaml": PLAIN_DATA}
    prod = {**BASE, "apps/api/token.yml": PLAIN_STRING_DATA}
    repo = env_repo({"main": BASE, "env/dev": dev, "env/prod": prod})
    text, data = validate(repo, capsys)
    assert text.code == 2, text.output
    lines = text.out.splitlines()
    assert (
        "  dev (env/dev): apps/db/secret.yaml line 8: plaintext Secret shop/db: "
        "data.username, data.password"
    ) in lines
    assert (
        "  prod (env/prod): apps/api/token.yml line 6: plaintext Secret api-token: stringData.token"
    ) in lines
    assert "2 problems found" in text.err
    assert "2 Secrets in plaintext (values not shown)" in text.out
    result = json.loads(data.out)
    assert result["valid"] is False
    assert result["scanned"] == 6  # promoter.yaml, values.yaml and a Secret on each branch
    assert [(s["branch"], s["file"], s["line"], s["keys"]) for s in result["secrets"]] == [
        ("env/dev", "apps/db/secret.yaml", 8, ["data.username", "data.password"]),
        ("env/prod", "apps/api/token.yml", 6, ["stringData.token"]),
    ]
    assert result["secrets"][0]["namespace"] == "shop"


def test_encrypted_sealed_external_and_empty_secrets_pass(env_repo, capsys):
    files = {
        **BASE,
        "apps/db/secret.enc.yaml": SOPS,
        "apps/db/sealed.yaml": SEALED,
        "apps/db/external.yaml": EXTERNAL,
        "apps/db/harmless.yaml": HARMLESS_SECRETS,
        "apps/db/configmap.yaml": CONFIGMAP,
        "apps/db/kustomization.yaml": "resources: [secret.enc.yaml, sealed.yaml]\n",
    }
    repo = env_repo({"main": BASE, "env/dev": files, "env/prod": files})
    text, data = validate(repo, capsys)
    assert text.code == 0, text.output
    assert text.out.strip() == (
        "promoter.yaml is valid: 2 environments, 1 apps, 2 pinned keys checked, "
        "16 YAML files checked for plaintext Secrets"
    )
    result = json.loads(data.out)
    assert (result["valid"], result["secrets"], result["unchecked"]) == (True, [], [])


def test_a_value_left_in_plaintext_in_a_sops_file_is_flagged(env_repo, capsys):
    # sops --encrypted-regex '^password$' leaves other keys in plaintext; so does an edit
    # made without sops.
    leaky = SOPS.replace("stringData:\n", f"stringData:\n    api_key: {VALUE}\n")
    # ENC[...] values without a sops: block cannot be decrypted by anyone: not a SOPS file.
    orphan = SOPS[: SOPS.index("sops:")]
    dev = {**BASE, "secret.enc.yaml": leaky, "orphan.yaml": orphan}
    repo = env_repo({"main": BASE, "env/dev": dev, "env/prod": BASE})
    text, _ = validate(repo, capsys)
    assert text.code == 2, text.output
    assert (
        "  dev (env/dev): secret.enc.yaml line 8: a plaintext value in a SOPS-encrypted Secret "
        "shop/db: stringData.api_key"
    ) in text.out.splitlines()
    assert (
        "  dev (env/dev): orphan.yaml line 8: plaintext Secret shop/db: "
        "stringData.password, data.ca.crt"
    ) in text.out.splitlines()


def test_secret_at_document_3_of_a_multi_document_file(env_repo, capsys):
    bundle = "\n---\n".join(
        [
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
            CONFIGMAP,
            PLAIN_STRING_DATA.replace("api-token", "third"),
            SEALED,
        ]
    )
    line = bundle.splitlines().index(f'  token: "{VALUE}"') + 1
    assert line == 18
    dev = {**BASE, "apps/web/all.yaml": bundle}
    repo = env_repo({"main": BASE, "env/dev": dev, "env/prod": dev})
    text, data = validate(repo, capsys)
    assert text.code == 2, text.output
    for branch in ("dev (env/dev)", "prod (env/prod)"):
        assert (
            f"  {branch}: apps/web/all.yaml line 18: plaintext Secret third "
            "(document 3 of 4): stringData.token"
        ) in text.out.splitlines()
    found = json.loads(data.out)["secrets"]
    assert [(s["line"], s["document"], s["name"]) for s in found] == [(18, 3, "third")] * 2


def test_a_secret_spelt_with_escapes_merges_or_in_a_list_is_still_found(env_repo, capsys):
    escaped = 'apiVersion: "v\\x31"\nkind: "Secr\\u0065t"\nstringData: {password: x1}\n'
    binary = "apiVersion: v1\nkind: !!binary U2VjcmV0\nstringData: {password: x2}\n"
    merged = "apiVersion: v1\nkind: Secret\nbase: &b {password: x3}\nstringData:\n  <<: *b\n"
    listed = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, data: {a: b}}\n"
        "- {apiVersion: v1, kind: Secret, metadata: {name: in-list}, data: {password: eDQ=}}\n"
    )
    dev = {**BASE, "a.yaml": escaped, "b.yaml": binary, "c.yaml": merged, "d.yaml": listed}
    repo = env_repo({"main": BASE, "env/dev": dev, "env/prod": BASE})
    text, data = validate(repo, capsys)
    assert text.code == 2, text.output
    found = [(s["file"], s["line"], s["keys"]) for s in json.loads(data.out)["secrets"]]
    assert found == [
        ("a.yaml", 3, ["stringData.password"]),
        ("b.yaml", 3, ["stringData.password"]),
        ("c.yaml", 3, ["stringData.password"]),
        ("d.yaml", 5, ["data.password"]),
    ]


def test_no_value_reaches_any_output(env_repo, capsys):
    # The value sits in a plaintext Secret, in a SOPS file's plaintext key, in a Secret whose
    # data is not a map, in a document that does not parse, and as a Secret's key's neighbour.
    broken = f"apiVersion: v1\nkind: Secret\nstringData:\n  password: [{VALUE}\n"
    not_a_map = f"apiVersion: v1\nkind: Secret\ndata: {VALUE_B64}\n"
    leaky = SOPS.replace("stringData:\n", f"stringData:\n    api_key: {VALUE}\n")
    dev = {
        **BASE,
        "s1.yaml": PLAIN_DATA,
        "s2.yaml": PLAIN_STRING_DATA,
        "s3.yaml": broken,
        "s4.yaml": not_a_map,
        "s5.yaml": leaky,
    }
    repo = env_repo({"main": BASE, "env/dev": dev, "env/prod": dev})
    text, data = validate(repo, capsys)  # asserts the value is in no output, text or JSON
    assert text.code == 2
    assert "s4.yaml line 3: plaintext Secret: data" in text.out
    assert "not fully checked: dev (env/dev): s3.yaml: not valid YAML at line 5" in text.out
    assert len(json.loads(data.out)["secrets"]) == 2 * 4


def test_a_file_over_the_size_limit_is_a_finding_not_a_crash(env_repo, capsys):
    huge = "padding: |\n" + "  " + "x" * 100 + "\n"
    huge = huge * (10 * 1024 * 1024 // len(huge) + 1)  # just over 10 MiB
    size = len(huge.encode())
    dev = {**BASE, "apps/web/huge.yaml": huge, "apps/db/secret.yaml": PLAIN_DATA}
    repo = env_repo({"main": BASE, "env/dev": dev, "env/prod": BASE})
    started = time.monotonic()
    text, data = validate(repo, capsys)
    assert time.monotonic() - started < 20
    assert text.code == 2, text.output
    assert (
        f"  dev (env/dev): apps/web/huge.yaml: {size:,} bytes is over the 10 MiB limit for "
        "YAML files; not checked for plaintext Secrets"
    ) in text.out.splitlines()
    assert "apps/db/secret.yaml line 8: plaintext Secret shop/db" in text.out  # still checked
    assert json.loads(data.out)["problems"][0].startswith("dev (env/dev): apps/db/secret.yaml")


def test_hostile_yaml_that_mentions_a_secret_is_bounded(env_repo, capsys):
    bomb = ["kind: Secret", "lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    bomb += [f"lol{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)]
    deep = "kind: Secret\ndeep: " + "[" * 10_000 + "]" * 10_000 + "\n"
    dev = {**BASE, "bomb.yaml": "\n".join(bomb) + "\n", "deep.yaml": deep}
    repo = env_repo({"main": BASE, "env/dev": dev, "env/prod": BASE})
    started = time.monotonic()
    text, _ = validate(repo, capsys)
    assert time.monotonic() - started < 20
    assert text.code == 2, text.output
    lines = text.out.splitlines()
    assert any(
        line.startswith("  dev (env/dev): bomb.yaml: aliases expand to more than the limit")
        and line.endswith("not checked for plaintext Secrets")
        for line in lines
    ), text.out
    assert any(line.startswith("  dev (env/dev): deep.yaml: nested deeper") for line in lines)


def test_files_named_yaml_that_are_not_yaml(env_repo, capsys):
    template = (
        "{{- if .Values.enabled }}\napiVersion: v1\nkind: Secret\nmetadata:\n"
        "  name: {{ .Release.Name }}\n{{- end }}\n"
    )
    dev = {
        **BASE,
        "bin.yaml": bytes(range(256)) * 4,
        "latin1.yml": "kind: Secret # caf\xe9\n".encode("latin-1"),
        "prose.yaml": "This is not YAML: [ it only looks like it\n",
        "chart/templates/secret.yaml": template,
        "empty.yaml": "",
    }
    repo = env_repo({"main": BASE, "env/dev": dev, "env/prod": BASE})
    text, data = validate(repo, capsys)
    assert text.code == 0, text.output
    result = json.loads(data.out)
    assert result["scanned"] == 9
    # Only files that mention a Secret and could not be read are named; nothing fails.
    assert result["unchecked"] == [
        "dev (env/dev): chart/templates/secret.yaml: not valid YAML at line 1 "
        "(the documents that parse were checked)",
        "dev (env/dev): latin1.yml: not UTF-8 text",
    ]
    assert "  not fully checked: dev (env/dev): latin1.yml: not UTF-8 text" in text.out


def test_a_hostile_path_is_escaped(env_repo, capsys):
    path = "apps/\n::error::pwned\u2028.yaml"
    dev = {**BASE, path: PLAIN_STRING_DATA}
    repo = env_repo({"main": BASE, "env/dev": dev, "env/prod": BASE})
    text, data = validate(repo, capsys)  # run_cli asserts no workflow command got out
    assert text.code == 2
    assert '"apps/\\n::error::pwned\\u2028.yaml" line 6' in text.out
    assert json.loads(data.out)["secrets"][0]["file"] == path


def test_one_batched_blob_fetch_per_branch(env_repo, git_server, capsys):
    def requests(count: int) -> int:
        files = {**BASE, **{f"apps/a{i}/secret.yaml": SEALED for i in range(count)}}
        repo = env_repo({"main": BASE, "env/dev": files, "env/prod": files})
        git_server.wait_idle()
        before = len(git_server.requests)
        run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "validate")
        assert run.code == 0, run.output
        assert f"{2 * count + 4} YAML files checked" in run.out
        git_server.wait_idle()
        return len(git_server.requests) - before

    assert requests(2) == requests(200)


# --- the example job for the environment repo's own CI ----------------------------------------


def _example_script(name: str) -> tuple[str, dict[str, str]]:
    """The shell lines of examples/<name> (its validate step) and the CI variables it reads,
    for a pull request into env/prod."""
    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load((Path(__file__).parents[1] / "examples" / name).read_text())
    if "jobs" in doc:  # GitHub Actions
        step = doc["jobs"]["validate"]["steps"][-1]
        return step["run"], {"TARGET": "env/prod", "DEFAULT": "main"}
    script = "\n".join(doc["validate"]["script"])
    return script, {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "env/prod", "CI_DEFAULT_BRANCH": "main"}


@pytest.mark.parametrize(
    "example", ["env-repo-validate.github.yml", "env-repo-validate.gitlab-ci.yml"]
)
def test_the_example_job_checks_a_pull_request_before_it_lands(example, env_repo, tmp_path):
    repo = env_repo({"main": BASE, "env/dev": BASE, "env/prod": BASE})
    # The pull request: a branch off env/prod that adds a plaintext Secret.
    repo.commit("env/prod", {}, "base")  # env/prod moves on: the branch is still mergeable
    git_out(repo.path, "branch", "add-db", "env/prod")
    head = repo.commit("add-db", {"apps/db/secret.yaml": PLAIN_DATA}, "add the db secret")
    # The CI checkout: the commit under test, detached; origin authenticates as in CI.
    env = {**git_env(auth_config_env(TEST_TOKEN)), "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig")}
    work = tmp_path / "checkout"
    clone = ["git", "clone", "--quiet", "--depth=1", "--branch", "add-db", repo.url, str(work)]
    subprocess.run(clone, env=env, check=True, capture_output=True)
    subprocess.run(["git", "checkout", "--quiet", "--detach", head], cwd=work, env=env, check=True)
    script, variables = _example_script(example)
    variables["CI_PROJECT_DIR"] = str(work)
    bin_dir = Path(sys.executable).parent  # promoter's console script is installed beside it
    env = {**env, **variables, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    run = Run(done.returncode, done.stdout, done.stderr)
    assert_clean(run)
    assert run.code == 2, run.output
    assert "  prod (env/prod): apps/db/secret.yaml line 8: plaintext Secret shop/db" in run.out
    assert "dev (env/dev)" not in run.out
    for form in (VALUE, VALUE_B64):
        assert form not in run.output
    # Nothing landed: env/prod on the server is as it was, and validates.
    assert "apps/db/secret.yaml" not in git_out(repo.path, "ls-tree", "-r", "env/prod").decode()
