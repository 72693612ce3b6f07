"""`promoter promote` end to end: real git over smart HTTP, the strict GitHub double (and the
GitLab one), statuses posted as an operator would, the real CLI."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from promoter.forge.base import ForgeInfo
from promoter.forge.github import GitHubForge
from promoter.gitrepo import GitRepo, Remote
from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import EnvRepo, commit_message, rev_list_parents, show_diff
from promoter.sandbox.github_api import GitHubApiDouble
from promoter.sandbox.operator import OperatorSimulator
from tests.helpers import Run, run_cli

pytest_plugins = ["tests.forge_fixtures"]

CONFIG = """\
environments:
  dev:
    branch: env/dev
    gate: {require: ["continuous-delivery/{app}"]}
  staging:
    branch: env/staging
    from: dev
    gate: {require: ["continuous-delivery/{app}"]}
  prod:
    branch: env/prod
    from: staging
    delivery: pull-request
    pull_request: {labels: [promotion], reviewers: [REVIEWERS]}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag, digest: image.digest}
    chart: {file: apps/api/helmrelease.yaml, version: spec.chart.spec.version}
"""

WEB = """\
# web front end
image:
  repository: ghcr.io/acme/web
  tag: "1.0.0"   # set by promoter
replicas: 2
"""
API = """\
image:
  tag: 2.0.0
  digest: ""
"""
HELMRELEASE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: api}
spec:
  chart:
    spec:
      chart: api
      version: 0.3.0
"""


def files(config: str = CONFIG, reviewers: str = "alice") -> dict[str, str]:
    return {
        "promoter.yaml": config.replace("REVIEWERS", reviewers),
        "apps/web/values.yaml": WEB,
        "apps/api/values.yaml": API,
        "apps/api/helmrelease.yaml": HELMRELEASE,
    }


def web(tag: str) -> dict[str, str]:
    return {"apps/web/values.yaml": WEB.replace('"1.0.0"', f'"{tag}"')}


def api(tag: str, digest: str = "") -> dict[str, str]:
    text = API.replace("2.0.0", tag).replace('""', f'"{digest}"' if digest else '""')
    return {"apps/api/values.yaml": text}


@dataclass
class Bed:
    repo: EnvRepo
    api: Any  # the GitHub or GitLab double
    forge: str
    via: str = "git"  # --commit-via

    def args(self, *args: str) -> tuple[str, ...]:
        return ("--repo", self.repo.url, "--token", TEST_TOKEN, "--forge", self.forge,
                "--api-url", self.api.api_url, "--commit-via", self.via, *args)  # fmt: skip

    def promote(self, capsys: pytest.CaptureFixture[str], *args: str) -> Run:
        run = run_cli(capsys, *self.args("promote", *args))
        assert TEST_TOKEN not in run.output
        return run

    def json(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Run, dict[str, Any]]:
        run = run_cli(capsys, *self.args("--output", "json", "promote", *args))
        assert TEST_TOKEN not in run.output
        return run, json.loads(run.out) if run.out.strip() else {}

    def status(self, sha: str, app: str, state: str) -> None:
        self.api.add_status(self.repo.name, sha, f"continuous-delivery/{app}", state)

    def calls(self) -> int:
        return len(self.api.request_log)


@pytest.fixture
def bed(env_repo, github_api: GitHubApiDouble) -> Bed:
    seed = files()
    repo = env_repo({"main": seed, "env/dev": seed, "env/staging": seed, "env/prod": seed})
    return Bed(repo, github_api, "github")


@pytest.fixture(params=["git", "api"])
def bed_via(bed: Bed, request: pytest.FixtureRequest) -> Bed:
    """`bed` on each write path: git, and the api path (GraphQL createCommitOnBranch)."""
    bed.via = request.param
    return bed


def _changed_lines(diff: str) -> int:
    lines = diff.splitlines()
    return sum(1 for line in lines if line[:1] in "+-" and line[:3] not in ("+++", "---"))


def trailers(repo: EnvRepo, ref: str) -> list[str]:
    return [
        line for line in commit_message(repo.path, ref).splitlines() if line.startswith("Promoter-")
    ]


# --- push delivery -------------------------------------------------------------------------


def test_promotes_dev_to_staging_by_push_once_the_gate_passes(bed_via, capsys):
    bed = bed_via
    ours = bed.repo.commit("env/dev", web("1.1.0"), "update web")
    bed.status(ours, "web", "success")
    before = bed.calls()
    run, data = bed.json(capsys, "--to", "staging")
    assert run.code == 0, run.err
    # statuses + check runs of one commit (api path: + the target's head and files in one
    # query, and the commit)
    assert bed.calls() - before == (2 if bed.via == "git" else 4)
    staging = bed.repo.sha("env/staging")
    assert data["changed"] is True and data["commit"] == staging
    assert (data["from"], data["to"], data["pull_request"]) == ("dev", "staging", None)
    assert data["gate"]["verdict"] == "pass" and data["gate"]["deciding_commit"] == ours
    assert data["gate"]["required"] == ["continuous-delivery/web"]
    assert data["changes"] == [{"app": "web", "pin": "web/web", "file": "apps/web/values.yaml",
                                "key": "image.tag", "old": "1.0.0", "new": "1.1.0"}]  # fmt: skip
    # Exactly the one scalar moved, quotes and comment kept.
    diff = show_diff(bed.repo.path, staging)
    assert '-  tag: "1.0.0"   # set by promoter\n+  tag: "1.1.0"   # set by promoter' in diff
    assert _changed_lines(diff) == 2
    assert commit_message(bed.repo.path, staging).splitlines()[0] == "promote(staging): web 1.1.0"
    assert trailers(bed.repo, staging) == [
        "Promoter-Environment: staging",
        "Promoter-Change: web/web image.tag 1.0.0 -> 1.1.0",
        f"Promoter-Source: dev@{ours}",
    ]


def test_text_output_names_source_gate_and_commit(bed, capsys):
    ours = bed.repo.commit("env/dev", web("1.1.0"), "update web")
    bed.status(ours, "web", "success")
    run = bed.promote(capsys, "--to", "staging")
    assert run.code == 0, run.err
    assert "dev (env/dev) -> staging (env/staging): committed 1 change as" in run.out
    assert f"source: dev@{ours[:12]}" in run.out
    assert "gate: pass (continuous-delivery/web)" in run.out


def test_pipeline_and_actor_trailers_come_from_ci(bed, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/web")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)  # the app commit: not the promotion's source
    ours = bed.repo.commit("env/dev", {**web("1.1.0"), **api("2.1.0")}, "update both")
    bed.status(ours, "web", "success")
    bed.status(ours, "api", "success")
    assert bed.promote(capsys, "--to", "staging").code == 0
    staging = bed.repo.sha("env/staging")
    assert commit_message(bed.repo.path, staging).splitlines()[0] == (
        "promote(staging): web 1.1.0, api 2.1.0"
    )
    assert trailers(bed.repo, staging) == [
        "Promoter-Environment: staging",
        "Promoter-Change: web/web image.tag 1.0.0 -> 1.1.0",
        "Promoter-Change: api/api image.tag 2.0.0 -> 2.1.0",
        f"Promoter-Source: dev@{ours}",
        "Promoter-Pipeline: https://github.com/acme/web/actions/runs/42",
        "Promoter-Actor: octocat",
    ]


def test_a_later_unrelated_pending_commit_does_not_hold_the_promotion_back(bed, capsys):
    ours = bed.repo.commit("env/dev", web("1.1.0"), "update web")
    bed.status(ours, "web", "success")
    later = bed.repo.commit("env/dev", api("2.1.0"), "update api")
    bed.status(later, "web", "pending")  # the operator is syncing the newer commit
    bed.status(later, "api", "pending")
    run, data = bed.json(capsys, "--to", "staging", "--app", "web")
    assert run.code == 0, run.err
    assert data["source_commit"] == ours and data["gate"]["deciding_commit"] == ours
    assert trailers(bed.repo, "env/staging")[-1] == f"Promoter-Source: dev@{ours}"
    # All apps: api's value began on the later commit, which is still deploying.
    run = bed.promote(capsys, "--to", "staging")
    assert run.code == 4, run.output
    assert f"gate not reached yet for {later[:12]}" in run.err
    assert f"promoter wait dev --sha {later[:12]}" in run.err


def test_the_first_deployment_that_included_the_values_decides(bed, capsys):
    ours = bed.repo.commit("env/dev", web("1.1.0"), "update web")  # skipped by the operator
    later = bed.repo.commit("env/dev", api("2.1.0"), "update api")
    bed.status(later, "web", "success")
    run, data = bed.json(capsys, "--to", "staging", "--app", "web")
    assert run.code == 0, run.err
    assert (data["gate"]["target"], data["gate"]["deciding_commit"]) == (ours, later)
    assert data["gate"]["superseded"] is True
    assert trailers(bed.repo, "env/staging")[-1] == f"Promoter-Source: dev@{ours}"


def test_origin_is_found_beyond_the_first_history_window(bed, capsys):
    ours = bed.repo.commit("env/dev", web("1.1.0"), "update web")
    for i in range(40):  # more than the first 32-commit window
        bed.repo.commit("env/dev", {"notes.txt": f"{i}\n"}, f"unrelated {i}")
    bed.status(ours, "web", "success")
    run, data = bed.json(capsys, "--to", "staging", "--app", "web")
    assert run.code == 0, run.err
    assert data["source_commit"] == ours and data["gate"]["deciding_commit"] == ours


def test_with_the_operator_simulator(bed, capsys):
    forge = GitHubForge(ForgeInfo("github", bed.api.api_url, bed.repo.name), TEST_TOKEN)
    clock = [0.0]
    operator = OperatorSimulator(forge, bed.repo.path, {"env/dev": ["web", "api"]}, delay=30,
                                 bad_versions={"6.6.6"}, clock=lambda: clock[0])  # fmt: skip
    assert run_cli(capsys, *bed.args("update", "dev", "--image", "web=1.1.0")).code == 0
    operator.step()
    assert bed.promote(capsys, "--to", "staging").code == 4  # pending
    clock[0] += 31
    operator.step()
    run = bed.promote(capsys, "--to", "staging")
    assert run.code == 0, run.err
    assert (
        bed.repo.read_file("env/staging", "apps/web/values.yaml")
        == web("1.1.0")["apps/web/values.yaml"]
    )
    assert run_cli(capsys, *bed.args("update", "dev", "--image", "web=6.6.6")).code == 0
    operator.step()
    clock[0] += 31
    operator.step()
    staging = bed.repo.sha("env/staging")
    run = bed.promote(capsys, "--to", "staging")
    assert run.code == 3 and "continuous-delivery/web is failure" in run.err
    assert bed.repo.sha("env/staging") == staging


def test_gate_failure_exits_3_naming_the_deciding_commit(bed, capsys):
    ours = bed.repo.commit("env/dev", web("1.1.0"), "update web")
    bed.status(ours, "web", "failure")
    staging = bed.repo.sha("env/staging")
    run, data = bed.json(capsys, "--to", "staging")
    assert run.code == 3
    assert f"dev: gate failed on {ours[:12]}: continuous-delivery/web is failure" in run.err
    assert data["changed"] is False and data["commit"] is None
    assert data["gate"]["verdict"] == "fail"
    assert bed.repo.sha("env/staging") == staging


def test_unrelated_app_failure_does_not_block(bed, capsys):
    ours = bed.repo.commit("env/dev", web("1.1.0"), "update web")
    bed.status(ours, "web", "success")
    bed.status(ours, "api", "failure")  # api's values are the same on both sides
    assert bed.promote(capsys, "--to", "staging").code == 0


def test_no_status_yet_exits_4_and_no_gate_skips_it(bed, capsys):
    bed.repo.commit("env/dev", web("1.1.0"), "update web")
    staging = bed.repo.sha("env/staging")
    run = bed.promote(capsys, "--to", "staging")
    assert run.code == 4 and "no status reported yet" in run.err
    assert bed.repo.sha("env/staging") == staging
    before = bed.calls()
    run, data = bed.json(capsys, "--to", "staging", "--no-gate")
    assert run.code == 0, run.err
    assert bed.calls() == before  # no API call at all
    assert data["gate"]["verdict"] == "skipped" and data["changed"] is True
    assert bed.repo.sha("env/staging") != staging


def test_an_empty_gate_passes_without_api_calls(env_repo, github_api, capsys):
    config = CONFIG.replace('    gate: {require: ["continuous-delivery/{app}"]}\n', "")
    seed = files(config)
    repo = env_repo({"main": seed, "env/dev": seed, "env/staging": seed, "env/prod": seed})
    bed = Bed(repo, github_api, "github")
    repo.commit("env/dev", web("1.1.0"), "update web")
    before = bed.calls()
    run, data = bed.json(capsys, "--to", "staging")
    assert run.code == 0, run.err
    assert bed.calls() == before
    assert data["gate"]["verdict"] == "pass" and data["gate"]["required"] == []


def test_nothing_to_promote_is_a_no_op(bed_via, capsys):
    bed = bed_via
    staging = bed.repo.sha("env/staging")
    before = bed.calls()
    run, data = bed.json(capsys, "--to", "staging")
    assert run.code == 0, run.err
    assert data["changed"] is False and data["commit"] is None and data["changes"] == []
    assert bed.repo.sha("env/staging") == staging
    assert bed.calls() - before == (0 if bed.via == "git" else 1)  # api: the one read
    assert "nothing to promote" in bed.promote(capsys, "--to", "staging").out


def test_app_filter_moves_only_that_app_and_the_chart_and_digest(bed, capsys):
    digest = "sha256:" + "ab" * 32
    ours = bed.repo.commit(
        "env/dev",
        {**web("1.1.0"), **api("2.1.0", digest),
         "apps/api/helmrelease.yaml": HELMRELEASE.replace("0.3.0", "0.4.0")},
        "update",
    )  # fmt: skip
    bed.status(ours, "api", "success")
    run, data = bed.json(capsys, "--to", "staging", "--app", "api")
    assert run.code == 0, run.err
    assert [(c["pin"], c["key"], c["new"]) for c in data["changes"]] == [
        ("api/api", "image.tag", "2.1.0"),
        ("api/api", "image.digest", digest),
        ("api/chart", "spec.chart.spec.version", "0.4.0"),
    ]
    assert data["gate"]["required"] == ["continuous-delivery/api"]
    assert bed.repo.read_file("env/staging", "apps/web/values.yaml") == WEB
    assert commit_message(bed.repo.path, "env/staging").splitlines()[0] == (
        "promote(staging): api 2.1.0, api chart 0.4.0"
    )


def test_dry_run_writes_nothing(bed, capsys):
    ours = bed.repo.commit("env/dev", web("1.1.0"), "update web")
    bed.status(ours, "web", "success")
    staging = bed.repo.sha("env/staging")
    run = run_cli(capsys, *bed.args("--dry-run", "promote", "--to", "staging"))
    assert run.code == 0, run.err
    assert "would push 1 change (dry run, nothing written)" in run.out
    assert "gate: pass" in run.out
    run = run_cli(capsys, *bed.args("--dry-run", "--output", "json", "promote", "--to", "prod",
                                    "--from", "dev", "--merge"))  # fmt: skip
    data = json.loads(run.out)
    assert run.code == 0 and data["dry_run"] and data["commit"] is None
    assert data["changed"] and data["delivery"] == "pull-request" and data["pull_request"] is None
    assert bed.repo.sha("env/staging") == staging
    assert "promoter/dev-to-prod" not in _branches(bed.repo)
    assert bed.api.pulls(bed.repo.name) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "dev"), "no --from given, and environments.dev.from is not set"),
        (("--to", "qa"), "unknown environment 'qa'"),
        (("--to", "staging", "--app", "nope"), "unknown app 'nope'"),
        (("--to", "staging", "--from", "staging"), "--from and --to are both"),
        (("--to", "prod", "--merge", "--auto-merge"), "exclude each other"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(bed, capsys, args, message):
    bed.repo.commit("env/dev", web("1.1.0"), "update web")
    before = {b: bed.repo.sha(b) for b in ("env/staging", "env/prod")}
    run = bed.promote(capsys, *args)
    assert run.code == 2 and message in run.err, run.err
    assert len(run.err.strip().splitlines()) == 1
    assert {b: bed.repo.sha(b) for b in before} == before


def test_pull_request_delivery_without_a_forge_is_refused_before_writing(bed, capsys):
    run = run_cli(capsys, "--repo", bed.repo.url, "--token", TEST_TOKEN, "--forge", "none",
                  "promote", "--to", "prod", "--no-gate")  # fmt: skip
    assert run.code == 2 and "needs a forge API" in run.err


# --- pull-request delivery -----------------------------------------------------------------


def _branches(repo: EnvRepo) -> set[str]:
    from promoter.sandbox.envrepo import list_branches

    return set(list_branches(repo.path))


def test_staging_to_prod_opens_updates_and_merges_a_pull_request(bed_via, capsys):
    bed = bed_via
    ours = bed.repo.commit("env/staging", web("1.1.0"), "promote web")
    bed.status(ours, "web", "success")
    prod = bed.repo.sha("env/prod")
    before = bed.calls()
    run, data = bed.json(capsys, "--to", "prod")
    assert run.code == 0, run.err
    calls = bed.calls() - before
    # gate (statuses, check runs) + PR (lookup, create, labels, reviewers); the api path adds
    # the target's snapshot, the promoter branch's head, its creation and the commit
    assert calls == 2 + 4 + (0 if bed.via == "git" else 4)
    assert bed.repo.sha("env/prod") == prod  # the protected branch is untouched
    head = "promoter/staging-to-prod"
    assert data["pull_request"]["head"] == head and data["commit"] == bed.repo.sha(head)
    [pull] = bed.api.pulls(bed.repo.name)
    assert (pull.number, pull.base, pull.head) == (data["pull_request"]["number"], "env/prod", head)
    assert pull.title == "promote(prod): web 1.1.0"
    assert pull.labels == ["promotion"] and pull.reviewers == ["alice"] and not pull.draft
    assert "| web | web/web | `apps/web/values.yaml` | `image.tag` | `1.0.0` | `1.1.0` |" in (
        pull.body or ""
    )
    assert f"staging passed on `{ours[:12]}`" in (pull.body or "")
    # The head branch is the target plus exactly the changed line.
    assert rev_list_parents(bed.repo.path, head)[0][1] == (prod,)
    diff = show_diff(bed.repo.path, head)
    assert _changed_lines(diff) == 2 and '+  tag: "1.1.0"' in diff
    assert trailers(bed.repo, head)[-1] == f"Promoter-Source: staging@{ours}"

    # Again, nothing new: the same PR, the same head commit (no push, no new CI run).
    sha = bed.repo.sha(head)
    before = bed.calls()
    run, again = bed.json(capsys, "--to", "prod")
    assert run.code == 0, run.err
    assert again["pull_request"]["number"] == pull.number and bed.repo.sha(head) == sha
    # gate + the PR lookup (api path: + the snapshot, the branch's head with its commit, the
    # paths that commit changed, and their contents there)
    assert bed.calls() - before == 2 + 1 + (0 if bed.via == "git" else 4)
    assert len(bed.api.pulls(bed.repo.name)) == 1

    # Staging moves on: the promoter-owned branch is replaced, the same PR updated.
    newer = bed.repo.commit("env/staging", web("1.2.0"), "promote web")
    bed.status(newer, "web", "success")
    run, third = bed.json(capsys, "--to", "prod", "--merge")
    assert run.code == 0, run.err
    assert third["pull_request"]["number"] == pull.number and third["pull_request"]["merged"]
    [pull] = bed.api.pulls(bed.repo.name)
    assert pull.title == "promote(prod): web 1.2.0" and pull.merged
    merge = bed.repo.sha("env/prod")
    assert merge == third["pull_request"]["merge_commit"]
    assert dict(rev_list_parents(bed.repo.path, "env/prod"))[merge] == (prod, third["commit"])
    assert (
        bed.repo.read_file("env/prod", "apps/web/values.yaml")
        == web("1.2.0")["apps/web/values.yaml"]
    )
    # Merged: nothing is left to promote.
    run, last = bed.json(capsys, "--to", "prod")
    assert run.code == 0 and last["changed"] is False


def test_auto_merge_and_draft(bed, capsys):
    ours = bed.repo.commit("env/staging", web("1.1.0"), "promote web")
    bed.status(ours, "web", "success")
    run, data = bed.json(capsys, "--to", "prod", "--auto-merge")
    assert run.code == 0, run.err
    assert data["pull_request"]["auto_merge"] is True and not data["pull_request"]["merged"]
    [pull] = bed.api.pulls(bed.repo.name)
    assert pull.auto_merge is not None and not pull.merged
    run = bed.promote(capsys, "--to", "prod", "--draft")
    assert run.code == 0, run.err
    assert "(promoter/staging-to-prod -> env/prod, open)" in run.out
    [pull] = bed.api.pulls(bed.repo.name)
    assert pull.draft


def test_auto_merge_from_promoter_yaml(env_repo, github_api, capsys):
    config = CONFIG.replace("labels: [promotion]", "labels: [promotion], auto_merge: true")
    seed = files(config)
    repo = env_repo({"main": seed, "env/dev": seed, "env/staging": seed, "env/prod": seed})
    bed = Bed(repo, github_api, "github")
    repo.commit("env/staging", web("1.1.0"), "promote web")
    run, data = bed.json(capsys, "--to", "prod", "--no-gate")
    assert run.code == 0, run.err
    assert data["pull_request"]["auto_merge"] is True
    assert github_api.pulls(repo.name)[0].auto_merge is not None


def test_someone_elses_push_to_the_head_branch_is_not_overwritten_blindly(bed, tmp_path):
    repo = GitRepo(Remote.parse(bed.repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    tip = repo.fetch("env/prod")
    from promoter.ci import DEFAULT_IDENTITY

    ours = repo.commit(tip, {"a.txt": b"a\n"}, "ours", DEFAULT_IDENTITY, DEFAULT_IDENTITY)
    assert repo.push_owned(ours, "promoter/staging-to-prod", None)
    assert bed.repo.sha("promoter/staging-to-prod") == ours
    theirs = bed.repo.commit("promoter/staging-to-prod", {"b.txt": "b\n"}, "theirs")
    again = repo.commit(tip, {"a.txt": b"c\n"}, "again", DEFAULT_IDENTITY, DEFAULT_IDENTITY)
    assert not repo.push_owned(again, "promoter/staging-to-prod", ours)  # lease on ours: lost
    assert not repo.push_owned(again, "promoter/staging-to-prod", None)  # must not exist: lost
    assert bed.repo.sha("promoter/staging-to-prod") == theirs
    assert repo.push_owned(again, "promoter/staging-to-prod", theirs)
    from promoter.errors import GitError

    with pytest.raises(GitError, match="is not a promoter/ branch"):
        repo.push_owned(again, "env/prod", tip)
    repo.close()


FOLDERS = """\
environments:
  dev:
    branch: main
    gate: {require: ["continuous-delivery/{app}"]}
  staging: {branch: main, from: dev}
apps:
  web:
    images:
      web: {file: "envs/{env}/web/values.yaml", tag: image.tag}
  api:
    images:
      api: {file: "envs/{env}/api/values.yaml", tag: image.tag}
"""


def test_folder_per_environment_layout_promotes_by_pull_request(env_repo, github_api, capsys):
    seed = {"promoter.yaml": FOLDERS}
    for env in ("dev", "staging"):
        seed[f"envs/{env}/web/values.yaml"] = WEB
        seed[f"envs/{env}/api/values.yaml"] = API
    repo = env_repo({"main": seed})
    bed = Bed(repo, github_api, "github")
    ours = repo.commit("main", {"envs/dev/web/values.yaml": web("1.1.0")["apps/web/values.yaml"]},
                       "update dev web")  # fmt: skip
    bed.status(ours, "web", "success")
    main = repo.sha("main")
    run, data = bed.json(capsys, "--to", "staging")
    assert run.code == 0, run.err
    assert data["delivery"] == "pull-request" and data["source_commit"] == ours
    assert [(c["file"], c["old"], c["new"]) for c in data["changes"]] == [
        ("envs/staging/web/values.yaml", "1.0.0", "1.1.0")
    ]
    assert repo.sha("main") == main
    [pull] = github_api.pulls(repo.name)
    assert (pull.head, pull.base) == ("promoter/dev-to-staging", "main")
    diff = show_diff(repo.path, "promoter/dev-to-staging")
    assert "envs/staging/web/values.yaml" in diff and "envs/dev/" not in diff


# --- GitLab --------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["git", "api"])
def test_gitlab_gate_and_merge_request(env_repo, gitlab_api, capsys, via):
    seed = files(reviewers="")
    repo = env_repo({"main": seed, "env/dev": seed, "env/staging": seed, "env/prod": seed})
    bed = Bed(repo, gitlab_api, "gitlab", via)  # api: GitLab's commits API writes
    # dev → staging by push, gated on GitLab commit statuses.
    ours = repo.commit("env/dev", web("1.1.0"), "update web")
    gitlab_api.add_status(repo.name, ours, "continuous-delivery/web", "running")
    assert bed.promote(capsys, "--to", "staging").code == 4
    gitlab_api.add_status(repo.name, ours, "continuous-delivery/web", "success")
    run, data = bed.json(capsys, "--to", "staging")
    assert run.code == 0, run.err
    assert data["gate"]["deciding_commit"] == ours
    # staging → prod by merge request, merged at the head we pushed.
    staging = repo.sha("env/staging")
    gitlab_api.add_status(repo.name, staging, "continuous-delivery/web", "success")
    run, data = bed.json(capsys, "--to", "prod", "--merge")
    assert run.code == 0, run.err
    mr = gitlab_api.project(repo.name).mrs[data["pull_request"]["number"]]
    assert (mr.source, mr.target, mr.state) == ("promoter/staging-to-prod", "env/prod", "merged")
    assert mr.labels == ["promotion"] and mr.title == "promote(prod): web 1.1.0"
    assert (
        repo.read_file("env/prod", "apps/web/values.yaml") == web("1.1.0")["apps/web/values.yaml"]
    )
    posts = [r for r in gitlab_api.request_log if r[0] == "POST"]
    commits = [r for r in posts if r[1].endswith("/repository/commits")]
    assert len(commits) == (2 if via == "api" else 0)  # staging's commit, the MR branch's


def test_history_reads_blob_ids_without_fetching_blobs(bed, tmp_path):
    for tag in ("1.1.0", "1.2.0"):
        bed.repo.commit("env/dev", web(tag), f"web {tag}")
    bed.repo.commit("env/dev", {"apps/web/values.yaml": None}, "drop web")
    repo = GitRepo(Remote.parse(bed.repo.url, TEST_TOKEN), tmp_path / "scratch.git")
    rows, complete = repo.history("env/dev", ["apps/web/values.yaml"], 32)
    assert complete and len(rows) == 4
    blobs = [row["apps/web/values.yaml"] for _, row in rows]
    assert blobs[0] is None and None not in blobs[1:] and len(set(blobs[1:])) == 3
    kinds = subprocess.run(
        ["git", "--git-dir", str(tmp_path / "scratch.git"), "cat-file", "--batch-all-objects",
         "--batch-check=%(objecttype)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert "blob" not in kinds  # only commits and trees came over
    assert (
        repo.read_blobs([str(blobs[1])])[str(blobs[1])]
        == web("1.2.0")["apps/web/values.yaml"].encode()
    )
    rows, complete = repo.history("env/dev", ["apps/web/values.yaml"], 2)
    assert not complete and len(rows) == 2
    repo.close()


# --- pure parts ----------------------------------------------------------------------------


def test_origin_is_the_oldest_commit_since_which_every_moving_value_held():
    from promoter.message import summary
    from promoter.promotion import Missing, PinKey, origin
    from promoter.yamledit import parse_key_path

    tag = PinKey("web", "web/web", "tag", "envs/{env}/web.yaml", None, parse_key_path("tag"))
    digest = PinKey("web", "web/web", "digest", "envs/{env}/web.yaml", None, parse_key_path("d"))
    texts = {"b1": {"tag": "1", "d": ""}, "b2": {"tag": "2", "d": ""}, "b3": {"tag": "2", "d": "x"}}

    def value_at(blob: str, key: PinKey) -> object:
        return texts[blob].get(key.field, Missing)

    def rows(*blobs: str | None) -> list[tuple[str, dict[str, str | None]]]:
        return [(f"c{i}", {"envs/dev/web.yaml": b}) for i, b in enumerate(blobs)]

    # newest first: c0..c1 hold b3 (tag 2, digest x); c2 has b2; c3 has b1
    history = rows("b3", "b3", "b2", "b1")
    assert origin(history, [tag], "dev", value_at) == 2  # tag became 2 at c2
    assert origin(history, [tag, digest], "dev", value_at) == 1  # digest became x at c1
    assert origin(history, [digest], "dev", value_at) == 1
    assert origin(rows("b2", "b2", "b2"), [tag], "dev", value_at) == 2  # held all along
    assert origin(rows("b2", None, "b2"), [tag], "dev", value_at) == 0  # file absent before
    from promoter.model import Change

    changes = [
        Change("web", "web/web", "f", "image.repository", "a", "ghcr.io/acme/web"),
        Change("web", "web/web", "f", "image.tag", "1", "1.4.2"),
        Change("api", "api/migrate", "f", "ref", "x", "ghcr.io/acme/m:2.0.1@sha256:" + "a" * 64),
        Change("api", "api/chart", "f", "version", "0.3.0", "0.3.1"),
    ]
    assert summary(changes) == "web 1.4.2, api/migrate 2.0.1, api chart 0.3.1"


def test_a_lost_race_on_the_target_is_replanned_on_its_new_tip(bed_via, git_server):
    from promoter.commands.promote import promote
    from promoter.options import Options

    bed = bed_via
    bed.repo.commit("env/dev", web("1.1.0"), "update web")
    pushes = {"n": 0}

    def hotfix() -> None:  # another writer: lands on staging as promoter's first push begins
        pushes["n"] += 1
        if pushes["n"] == 1:
            bed.repo.commit("env/staging", api("2.0.1"), "hotfix api on staging")

    git_server.before_push(bed.repo.name, hotfix)
    if bed.via == "api":  # GraphQL: the target's snapshot, then per attempt the commit (the
        # first attempt plans on that snapshot), then the snapshot of the next attempt...
        graphql = {"n": 0}

        def before_graphql() -> None:
            graphql["n"] += 1
            if graphql["n"] % 2 == 0:
                hotfix()
            bed.api.before("POST /graphql", before_graphql)

        bed.api.before("POST /graphql", before_graphql)
    options = Options(repo=bed.repo.url, token=TEST_TOKEN, forge="github",
                      api_url=bed.api.api_url, commit_via=bed.via)  # fmt: skip
    (result,) = promote(options, ["staging"], apps=["web"], no_gate=True).results
    assert (result.attempts, pushes["n"]) == (2, 2)
    assert result.commit == bed.repo.sha("env/staging")
    assert bed.repo.log("env/staging")[:2] == ["promote(staging): web 1.1.0",
                                               "hotfix api on staging"]  # fmt: skip
    assert (
        bed.repo.read_file("env/staging", "apps/api/values.yaml")
        == api("2.0.1")["apps/api/values.yaml"]
    )
