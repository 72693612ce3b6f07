"""The CI files users copy (examples/, the component project, the release workflow) hold the
rules that the schema, zizmor and hadolint lints in .ci/lint-ci do not check: pins, scripts free
of expressions, one writer per environment, and only the inputs the action and the component
declare. The component project's own test jobs run here as GitLab would run them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter.sandbox import TEST_TOKEN
from tests.test_action import APP_SHA, run_action

pytest_plugins = ["tests.forge_fixtures"]

ROOT = Path(__file__).parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
OWN_ACTION = "promoter-gitops/promoter"
GITHUB_FILES = sorted(ROOT.glob("examples/*.github.yml")) + sorted(
    ROOT.glob(".github/workflows/*.yml")
)
GITLAB_EXAMPLES = sorted(ROOT.glob("examples/*.gitlab-ci.yml"))
TEMPLATE = ROOT / "gitlab-component" / "templates" / "promoter.yml"
# Commands that write to an environment branch or watch one: one job at a time per environment.
ENV_COMMANDS = {"update", "wait", "promote", "rollback"}


def _load_all(path: Path) -> list[Any]:
    return [d for d in YAML(typ="safe").load_all(path.read_text()) if d is not None]


def _load(path: Path) -> Any:
    (doc,) = _load_all(path)[-1:]
    return doc


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def _action_inputs() -> dict[str, Any]:
    return dict(_load(ROOT / "action.yml")["inputs"])


def _spec_inputs() -> dict[str, Any]:
    header, _body = _load_all(TEMPLATE)
    return dict(header["spec"]["inputs"])


def _steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield name, job, step


def _is_own(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).split("@")[0] == OWN_ACTION


# --- GitHub workflows ------------------------------------------------------------------------


def test_there_is_an_example_for_every_flow():
    names = {p.name for p in ROOT.glob("examples/*")}
    for flow in ("app-ci", "chart-ci", "promote-dispatch", "env-repo-validate"):
        assert {f"{flow}.github.yml", f"{flow}.gitlab-ci.yml"} <= names, flow


@pytest.mark.parametrize("path", GITHUB_FILES, ids=_ids(GITHUB_FILES))
def test_every_uses_is_pinned_to_a_commit_sha_and_names_its_version(path):
    lines = [line for line in path.read_text().splitlines() if re.match(r"\s*(- )?uses:", line)]
    assert lines, "no uses: at all"
    for line in lines:
        ref = line.split("uses:", 1)[1].split("#")[0].strip()
        if ref.split("@")[0] == OWN_ACTION:
            # promoter's own action names the release it documents (its image is that version).
            assert ref == f"{OWN_ACTION}@v{VERSION}", line
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), line
        assert re.search(r"# v\d+\.\d+\.\d+$", line), f"no '# vX.Y.Z' after the SHA: {line}"


@pytest.mark.parametrize("path", GITHUB_FILES, ids=_ids(GITHUB_FILES))
def test_no_expression_inside_a_run_script(path):
    for job, _, step in _steps(_load(path)):
        assert "${{" not in step.get("run", ""), f"{job}: pass values through env:"


@pytest.mark.parametrize("path", GITHUB_FILES, ids=_ids(GITHUB_FILES))
def test_permissions_are_declared_and_checkout_keeps_no_credentials(path):
    workflow = _load(path)
    for name, job in workflow["jobs"].items():
        assert "permissions" in workflow or "permissions" in job, f"{name}: no permissions"
    for name, _, step in _steps(workflow):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, name


@pytest.mark.parametrize("path", GITHUB_FILES, ids=_ids(GITHUB_FILES))
def test_promoter_steps_pass_only_inputs_the_action_declares(path):
    declared = _action_inputs()
    required = {k for k, v in declared.items() if v.get("required")}
    for job, _, step in _steps(_load(path)):
        if _is_own(step):
            given = set(step.get("with", {}))
            assert given <= set(declared), f"{job}: {sorted(given - set(declared))}"
            assert required <= given, f"{job}: missing {sorted(required - given)}"


def _job_environments(job: dict[str, Any]) -> list[str]:
    """The environments a job's promoter steps write or watch."""
    out = []
    for step in job.get("steps", []):
        if _is_own(step) and step["with"]["command"] in ENV_COMMANDS:
            given = step["with"]
            out += [given.get("environment") or given.get("to") or given["args"].split()[0]]
    return out


@pytest.mark.parametrize("path", GITHUB_FILES, ids=_ids(GITHUB_FILES))
def test_a_concurrency_group_per_environment(path):
    workflow = _load(path)
    for name, job in workflow["jobs"].items():
        concurrency = job.get("concurrency") or workflow.get("concurrency")
        for environment in _job_environments(job):
            assert concurrency, f"{name}: no concurrency group"
            group = concurrency["group"] if isinstance(concurrency, dict) else concurrency
            assert environment in group, f"{name}: group {group!r} names no {environment!r}"
            assert concurrency.get("cancel-in-progress") is False, f"{name}: a write cut short"
        if any(_is_own(s) or "promoter " in s.get("run", "") for s in job.get("steps", [])):
            assert concurrency, f"{name}: no concurrency group"


def test_manual_dispatch_offers_environment_apps_and_merge():
    workflow = _load(ROOT / "examples" / "promote-dispatch.github.yml")
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["type"] == "choice" and inputs["environment"]["options"]
    assert inputs["apps"]["type"] == "string"
    assert inputs["merge"]["type"] == "boolean"
    (step,) = [s for _, _, s in _steps(workflow) if _is_own(s)]
    assert step["with"]["command"] == "promote"
    assert step["with"]["to"] == "${{ inputs.environment }}"
    assert step["with"]["apps"] == "${{ inputs.apps }}"
    assert step["with"]["merge"] == "${{ inputs.merge }}"
    assert workflow["jobs"]["promote"]["environment"] == "${{ inputs.environment }}"


# --- the release workflow's version check ------------------------------------------------------


def _release_check(tmp_path: Path, tag: str, action_image: str) -> tuple[int, str, str]:
    """Run the release workflow's check step on a copy of pyproject.toml and an action.yml
    whose image is `action_image`, as the runner would (bash -e, $GITHUB_OUTPUT)."""
    step = _load(ROOT / ".github" / "workflows" / "release.yml")["jobs"]["check"]["steps"][1]
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "action.yml").write_text(f"runs:\n  using: docker\n  image: {action_image}\n")
    out = tmp_path / "output"
    env = {**os.environ, **step["env"], "TAG": tag, "GITHUB_OUTPUT": str(out)}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.returncode, done.stdout, out.read_text() if out.exists() else ""


def test_release_pushes_version_minor_and_major_tags(tmp_path):
    image = "ghcr.io/promoter-gitops/promoter"
    code, _, output = _release_check(tmp_path, f"v{VERSION}", f"docker://{image}:{VERSION}")
    assert code == 0
    major, minor, _ = VERSION.split(".")
    assert f"tags={image}:{VERSION},{image}:{major}.{minor},{image}:{major}\n" in output


def test_release_refuses_a_tag_other_than_pyprojects_version(tmp_path):
    image = f"docker://ghcr.io/promoter-gitops/promoter:{VERSION}"
    code, stdout, output = _release_check(tmp_path, "v99.0.0", image)
    assert code == 1 and output == ""
    assert f"the tag is v99.0.0 but pyproject.toml's version is {VERSION}" in stdout


def test_release_refuses_an_action_that_pulls_another_image(tmp_path):
    code, stdout, _ = _release_check(tmp_path, f"v{VERSION}", "Dockerfile")
    assert code == 1
    assert "::error file=action.yml::runs.image is 'Dockerfile'" in stdout


# --- GitLab ------------------------------------------------------------------------------------


def _includes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in doc.get("include", []) if isinstance(i, dict) and "component" in i]


def _check_input(name: str, value: Any, spec: dict[str, Any], where: str) -> None:
    if spec.get("type") == "boolean":
        assert isinstance(value, bool) or value == f"$[[ inputs.{name} ]]", where
        return
    text = str(value)
    if "$[[" in text:  # checked through the pipeline input it names, below
        return
    if "options" in spec:
        assert value in spec["options"], f"{where}: {value!r} not in {spec['options']}"
    if "regex" in spec:  # GitLab matches the literal text, before any $VARIABLE expands
        assert re.search(spec["regex"], text), f"{where}: {text!r} !~ {spec['regex']}"


@pytest.mark.parametrize("path", GITLAB_EXAMPLES, ids=_ids(GITLAB_EXAMPLES))
def test_gitlab_examples_include_the_component_or_use_the_image(path):
    doc = _load(path)
    jobs = {k: v for k, v in doc.items() if isinstance(v, dict) and "script" in v}
    images = [j["image"]["name"] if isinstance(j["image"], dict) else j["image"]
              for j in jobs.values() if "image" in j]  # fmt: skip
    for include in _includes(doc):
        assert include["component"] == f"$CI_SERVER_FQDN/acme/promoter/promoter@{VERSION}"
    assert _includes(doc) or f"ghcr.io/promoter-gitops/promoter:{VERSION}" in images


@pytest.mark.parametrize("path", GITLAB_EXAMPLES, ids=_ids(GITLAB_EXAMPLES))
def test_gitlab_examples_pass_only_inputs_the_component_declares(path):
    spec = _spec_inputs()
    docs = _load_all(path)
    pipeline = docs[0]["spec"]["inputs"] if len(docs) == 2 else {}
    for include in _includes(docs[-1]):
        given = include["inputs"]
        where = f"{path.name} {given['job_name']}"
        assert set(given) <= set(spec), f"{where}: {sorted(set(given) - set(spec))}"
        required = {k for k, v in spec.items() if v is None or "default" not in v}
        assert required <= set(given), f"{where}: missing {sorted(required - set(given))}"
        for name, value in given.items():
            _check_input(name, value, spec[name] or {}, f"{where} {name}")
            # A pipeline input passed on: each value it allows must pass the component's check.
            named = re.fullmatch(r"\$\[\[ inputs\.(\w+) \]\]", str(value))
            if named:
                source = pipeline[named.group(1)]
                assert source.get("type", "string") == (spec[name] or {}).get("type", "string")
                for option in source.get("options", [source.get("default")]):
                    _check_input(name, option, spec[name] or {}, f"{where} {name}={option}")


@pytest.mark.parametrize("path", GITLAB_EXAMPLES, ids=_ids(GITLAB_EXAMPLES))
def test_gitlab_writers_hold_a_resource_group_per_environment(path):
    doc = _load_all(path)[-1]
    for include in _includes(doc):
        given = include["inputs"]
        if given["command"] not in {"update", "promote", "rollback"}:
            continue
        job = doc.get(given["job_name"], {})
        environment = given.get("environment") or given.get("to")
        assert environment in job.get("resource_group", ""), given["job_name"]


def test_component_readme_lists_every_input_with_its_default():
    readme = (ROOT / "gitlab-component" / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", readme, re.MULTILINE))
    for name, spec in _spec_inputs().items():
        assert name in rows, f"gitlab-component/README.md: no row for input {name}"
        if spec is None or "default" not in spec:
            assert rows[name].strip() == "(required)", name
        elif name != "image":
            default = spec["default"]
            text = ("true" if default else "false") if isinstance(default, bool) else default
            assert rows[name].strip() == (f"`{text}`" if text else '`""`'), name
    assert f"promoter:{VERSION}" in _spec_inputs()["image"]["default"]


def test_multi_document_gitlab_files_are_a_spec_header_and_a_body():
    for path in [*GITLAB_EXAMPLES, TEMPLATE]:
        docs = _load_all(path)
        if len(docs) > 1:
            assert len(docs) == 2 and set(docs[0]) == {"spec"}, path


def test_check_gitlab_ci_validates_both_documents(tmp_path):
    """.ci/check-gitlab-ci splits a spec-header file rather than skipping it: an error in
    either document fails."""
    good = (ROOT / "examples" / "promote-dispatch.gitlab-ci.yml").read_text()
    bad_body = tmp_path / "body.gitlab-ci.yml"
    bad_body.write_text(good.replace("resource_group: promoter-", "resource_group: [1] #"))
    bad_head = tmp_path / "head.gitlab-ci.yml"
    bad_head.write_text(good.replace("type: boolean", "type: banana"))
    script = [sys.executable, str(ROOT / ".ci" / "check-gitlab-ci")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    runs = {
        p.name: subprocess.run([*script, str(p)], env=env, capture_output=True, text=True)
        for p in (ROOT / "examples" / "promote-dispatch.gitlab-ci.yml", bad_body, bad_head)
    }
    assert runs["promote-dispatch.gitlab-ci.yml"].returncode == 0
    assert runs["body.gitlab-ci.yml"].returncode == 1
    assert "document-2.yml::$.promote.resource_group" in runs["body.gitlab-ci.yml"].stdout
    assert runs["head.gitlab-ci.yml"].returncode == 1
    assert "document-1.yml::$.spec.inputs.merge" in runs["head.gitlab-ci.yml"].stdout


# --- the component project's pipeline, run as GitLab runs its jobs ------------------------------


def _interpolate(node: Any, values: dict[str, Any]) -> Any:
    """`$[[ inputs.x ]]` as GitLab interpolates it, in the parsed document: a value that is one
    such block takes the input's value and type, one that holds it among other text its text."""
    pattern = re.compile(r"\$\[\[ inputs\.(\w+) \]\]")

    def text(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    if isinstance(node, dict):
        return {_interpolate(k, values): _interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, values) for v in node]
    if isinstance(node, str):
        whole = pattern.fullmatch(node)
        if whole:
            return values[whole.group(1)]
        return pattern.sub(lambda m: text(values[m.group(1)]), node)
    return node


def _render(include: dict[str, Any]) -> dict[str, Any]:
    """The component's job for these inputs (the spec's defaults for the others)."""
    values = {k: (v or {}).get("default", "") for k, v in _spec_inputs().items()}
    values.update(include["inputs"])
    rendered = _interpolate(_load_all(TEMPLATE)[1], values)
    assert list(rendered) == [include["inputs"]["job_name"]]
    return dict(rendered[include["inputs"]["job_name"]])


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def _run_job(
    job: dict[str, Any], ci: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """before_script and script in one shell, job variables expanded against the CI ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PROMOTER_", "INPUT_"))}
    env.update(ci)
    for name, raw in (job.get("variables") or {}).items():
        text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        env[name] = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), text)
    script = "\n".join([*job.get("before_script", []), *job["script"]])
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_component_project_pipeline_runs_its_test_jobs(tmp_path):
    pipeline = _load(ROOT / "gitlab-component" / ".gitlab-ci.yml")
    bin_dir = Path(sys.executable).parent  # promoter and promoter-action, as in the image
    ci = {
        "GITLAB_CI": "true",
        "CI_PROJECT_DIR": str(tmp_path),
        "CI_COMMIT_SHORT_SHA": "1a2b3c4d",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    dotenv: dict[str, str] = {}
    for include in _includes(pipeline):
        name = include["inputs"]["job_name"]
        assert include["component"] == "$CI_SERVER_FQDN/$CI_PROJECT_PATH/promoter@$CI_COMMIT_SHA"
        local = pipeline[name]
        job = _merge(_merge(_render(include), pipeline[local["extends"]]), local)
        shutil.rmtree(tmp_path / "envs.git", ignore_errors=True)
        (tmp_path / "promoter.env").unlink(missing_ok=True)
        done = _run_job(job, ci, tmp_path)
        assert done.returncode == 0, f"{name}:\n{done.stdout}\n{done.stderr}"
        assert job["artifacts"]["reports"]["dotenv"] == "promoter.env"
        lines = (tmp_path / "promoter.env").read_text().splitlines()
        dotenv = dict(line.split("=", 1) for line in lines)
        if include["inputs"]["command"] == "update":
            show = ["git", "-C", str(tmp_path / "envs.git"), "show", "env/dev:apps/web/values.yaml"]
            assert "1a2b3c4d" in subprocess.run(show, capture_output=True, text=True).stdout
            # The next stage's job reads the outputs the dotenv report carries.
            verify = pipeline["test-outputs"]
            assert verify["needs"] == [name]
            done = _run_job(verify, {**ci, **dotenv}, tmp_path)
            assert done.returncode == 0, f"test-outputs: {dotenv}\n{done.stderr}"
    assert dotenv["PROMOTER_CHANGED"] == "true"


# --- the GitHub examples' promoter steps, run in order against the git server and the double ---

ENVS = """\
environments:
  dev:
    gate: {require: ["continuous-delivery/{app}"]}
  staging:
    from: dev
  prod:
    from: staging
    delivery: pull-request
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
    chart: {file: apps/web/Chart.yaml, version: version}
"""
FILES = {
    "promoter.yaml": ENVS,
    "apps/web/values.yaml": "image:\n  tag: 1.0.0\n",
    "apps/web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
}
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


def _evaluate(value: Any, context: dict[str, Any]) -> str:
    """`${{ a.b.c }}` as the runner expands it, for the plain context paths the examples use; a
    path the context does not hold fails the test."""

    def lookup(match: re.Match[str]) -> str:
        node: Any = context
        for part in match.group(1).split("."):
            node = node[part]
        return ("true" if node else "false") if isinstance(node, bool) else str(node)

    return EXPRESSION.sub(lookup, str(value))


def _run_workflow(path: Path, repo: Any, api: Any, tmp_path: Path, **context: Any) -> None:
    """Every job in order; in each, promoter's steps run through promoter-action with their
    `with:` expanded, aimed at the test repository and the GitHub double instead of
    github.com. The App token step yields the test token; other steps are the user's own
    (docker, helm), whose outputs come from `context`. After an `update`, the simulated
    Argo CD reports success on the commit it pushed."""
    context = {
        "github": {"sha": APP_SHA, "server_url": "https://github.example",
                   "repository": "acme/web", "run_id": "4242"},
        "needs": {}, **context,
    }  # fmt: skip
    for name, job in _load(path)["jobs"].items():
        steps: dict[str, Any] = dict(context.pop("steps", {}).get(name, {}))
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/create-github-app-token@"):
                steps[step["id"]] = {"outputs": {"token": TEST_TOKEN}}
            if not _is_own(step):
                continue
            given = {k: _evaluate(v, {**context, "steps": steps}) for k, v in step["with"].items()}
            assert given.pop("token") == TEST_TOKEN, "the promoter step takes the App's token"
            given.update(repo=repo.url, forge="github", api_url=api.api_url)
            if "timeout" in given:  # a gate that never passes fails the test in seconds
                given["timeout"] = "5s"
            done = run_action(tmp_path, token=TEST_TOKEN, **given)
            assert done.code == 0, f"{path.name} {name}: {done.log}"
            if "id" in step:
                steps[step["id"]] = {"outputs": done.outputs}
            if given["command"] == "update" and done.outputs["changed"] == "true":
                commit = done.outputs["commit"]
                api.add_status(repo.name, commit, "continuous-delivery/web", "success")
        outputs = {
            k: _evaluate(v, {**context, "steps": steps}) for k, v in job.get("outputs", {}).items()
        }
        context["needs"][name] = {"outputs": outputs}


def test_app_ci_example_pins_waits_and_promotes(env_repo, github_api, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES, "env/staging": FILES, "env/prod": FILES})
    _run_workflow(ROOT / "examples" / "app-ci.github.yml", repo, github_api, tmp_path)
    values = f"image:\n  tag: {APP_SHA}\n"
    assert repo.read_file("env/dev", "apps/web/values.yaml") == values
    assert repo.read_file("env/staging", "apps/web/values.yaml") == values
    assert repo.read_file("env/prod", "apps/web/values.yaml") == FILES["apps/web/values.yaml"]
    # A re-run writes nothing and still passes (wait then watches the branch head).
    before = repo.sha("env/dev"), repo.sha("env/staging")
    _run_workflow(ROOT / "examples" / "app-ci.github.yml", repo, github_api, tmp_path)
    assert (repo.sha("env/dev"), repo.sha("env/staging")) == before


def test_chart_ci_example_pins_the_packaged_version(env_repo, github_api, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    helm = {"package": {"package": {"outputs": {"version": "0.2.0"}}}}  # helm's step, as run
    _run_workflow(ROOT / "examples" / "chart-ci.github.yml", repo, github_api, tmp_path, steps=helm)
    assert "version: 0.2.0" in repo.read_file("env/dev", "apps/web/Chart.yaml")


def test_dispatch_example_promotes_by_pull_request_and_merges(env_repo, github_api, tmp_path):
    staged = {**FILES, "apps/web/values.yaml": "image:\n  tag: 1.1.0\n"}
    repo = env_repo({"main": FILES, "env/staging": staged, "env/prod": FILES})
    chosen = {"environment": "prod", "apps": "web", "merge": True}
    _run_workflow(ROOT / "examples" / "promote-dispatch.github.yml", repo, github_api, tmp_path,
                  inputs=chosen)  # fmt: skip
    (pull,) = github_api.pulls(repo.name)
    assert (pull.head, pull.base, pull.merged) == ("promoter/staging-to-prod", "env/prod", True)
    assert repo.read_file("env/prod", "apps/web/values.yaml") == staged["apps/web/values.yaml"]


# --- the GitLab examples' component jobs, run in order against the git server and the double ---


def _run_pipeline(
    path: Path,
    repo: Any,
    api: Any,
    tmp_path: Path,
    inputs: dict[str, Any] | None = None,
    reports: dict[str, dict[str, str]] | None = None,
) -> dict[str, dict[str, str]]:
    """Every component job of a GitLab example in order, as its runner would run it: the
    pipeline's own inputs interpolated first, then the component's; the job completed by the
    example's job of the same name; each job sees the dotenv reports of the jobs it needs.
    The environment repository and API are the test's, the token PROMOTER_TOKEN. The user's
    own jobs (docker, helm) are given by their dotenv `reports`. Returns every job's report."""
    docs = _load_all(path)
    body = docs[-1]
    if len(docs) == 2:
        values = {k: v.get("default") for k, v in docs[0]["spec"]["inputs"].items()}
        body = _interpolate(body, {**values, **(inputs or {})})
    reports = dict(reports or {})
    ci = {
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": APP_SHA,
        "CI_PROJECT_PATH": "acme/web",
        "CI_PIPELINE_URL": "https://gitlab.example/acme/web/-/pipelines/42",
        "PROMOTER_TOKEN": TEST_TOKEN,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
    }
    for include in _includes(body):
        name = include["inputs"]["job_name"]
        job = _merge(_render(include), body.get(name, {}))
        env = dict(ci)
        for needed in job.get("needs", []):
            env.update(reports[needed])
        job["variables"].update(INPUT_REPO=repo.url, INPUT_API_URL=api.api_url)
        if job["variables"].get("INPUT_TIMEOUT"):  # a gate that never passes fails in seconds
            job["variables"]["INPUT_TIMEOUT"] = "5s"
        (tmp_path / "promoter.env").unlink(missing_ok=True)
        done = _run_job(job, env, tmp_path)
        assert done.returncode == 0, f"{path.name} {name}:\n{done.stdout}\n{done.stderr}"
        lines = (tmp_path / "promoter.env").read_text().splitlines()
        reports[name] = dict(line.split("=", 1) for line in lines)
        if include["inputs"]["command"] == "update" and reports[name]["PROMOTER_CHANGED"] == "true":
            commit = reports[name]["PROMOTER_COMMIT"]
            api.add_status(repo.name, commit, "continuous-delivery/web", "success")
    return reports


def test_gitlab_app_ci_example_pins_waits_and_promotes(env_repo, gitlab_api, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES, "env/staging": FILES, "env/prod": FILES})
    reports = _run_pipeline(ROOT / "examples" / "app-ci.gitlab-ci.yml", repo, gitlab_api,
                            tmp_path, reports={"build": {}})  # fmt: skip
    values = f"image:\n  tag: {APP_SHA}\n"
    assert repo.read_file("env/dev", "apps/web/values.yaml") == values
    assert repo.read_file("env/staging", "apps/web/values.yaml") == values
    assert reports["wait-dev"]["PROMOTER_VERDICT"] == "pass"
    assert reports["promote-staging"]["PROMOTER_COMMIT"] == repo.sha("env/staging")


def test_gitlab_chart_ci_example_pins_the_packaged_version(env_repo, gitlab_api, tmp_path):
    repo = env_repo({"main": FILES, "env/dev": FILES})
    helm = {"package-chart": {"CHART_VERSION": "0.2.0"}}  # package-chart's dotenv report
    _run_pipeline(ROOT / "examples" / "chart-ci.gitlab-ci.yml", repo, gitlab_api, tmp_path,
                  reports=helm)  # fmt: skip
    assert "version: 0.2.0" in repo.read_file("env/dev", "apps/web/Chart.yaml")


def test_gitlab_dispatch_example_promotes_by_merge_request(env_repo, gitlab_api, tmp_path):
    staged = {**FILES, "apps/web/values.yaml": "image:\n  tag: 1.1.0\n"}
    repo = env_repo({"main": FILES, "env/staging": staged, "env/prod": FILES})
    chosen = {"environment": "prod", "apps": "web", "merge": True}
    reports = _run_pipeline(ROOT / "examples" / "promote-dispatch.gitlab-ci.yml", repo,
                            gitlab_api, tmp_path, inputs=chosen)  # fmt: skip
    (mr,) = gitlab_api.project(repo.name).mrs.values()
    assert (mr.source, mr.target, mr.state) == ("promoter/staging-to-prod", "env/prod", "merged")
    assert reports["promote"]["PROMOTER_MERGED"] == "true"
    assert repo.read_file("env/prod", "apps/web/values.yaml") == staged["apps/web/values.yaml"]
