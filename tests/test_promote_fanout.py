"""`promoter promote` fan-out (`--to` repeated, `--from` alone, folder-per-environment layouts),
the exit-code order across targets, byte-idempotent re-runs, stale and person-owned promotion
branches: the real CLI over the real git server and the GitHub double (GitLab where cheap)."""

from __future__ import annotations

import itertools
import json
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter.helmlock import check_lock, lock_digest
from promoter.sandbox import TEST_TOKEN, GitHttpServer
from promoter.sandbox.envrepo import (
    EnvRepo,
    EnvRepoFactory,
    commit_message,
    git_env,
    list_branches,
)
from tests.helpers import Run, run_cli

pytest_plugins = ["tests.forge_fixtures"]

CONFIG = """\
environments:
  dev: {branch: env/dev}
  staging:
    branch: env/staging
    from: dev
    gate: {require: ["continuous-delivery/{app}"]}
  prod-eu:
    branch: env/prod-eu
    from: staging
    delivery: pull-request
    pull_request: {labels: [promotion]}
  prod-us:
    branch: env/prod-us
    from: staging
    delivery: pull-request
    pull_request: {labels: [promotion]}
  perf:
    branch: env/perf
    from: staging
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag}
    chart: {file: apps/api/Chart.yaml, version: "dependencies[name=api].version"}
"""

BRANCHES = ("main", "env/dev", "env/staging", "env/prod-eu", "env/prod-us", "env/perf")

WEB = """\
# web front end
image:
  repository: ghcr.io/acme/web
  tag: "1.0.0"   # set by promoter
"""
API = """\
image:
  tag: 2.0.0
"""
CHART = """\
apiVersion: v2
name: api
version: 1.0.0
dependencies:
  - name: api
    version: 0.3.0
    repository: oci://ghcr.io/acme/charts
"""


def chart_lock(version: str) -> str:
    deps = YAML(typ="safe").load(chart(version)["apps/api/Chart.yaml"])["dependencies"]
    locked = [{"name": "api", "repository": "oci://ghcr.io/acme/charts", "version": version}]
    return (
        f"dependencies:\n- name: api\n  repository: oci://ghcr.io/acme/charts\n"
        f'  version: {version}\ndigest: {lock_digest(deps, locked)}\ngenerated: "2026-01-01T00:00:00Z"\n'
    )


def web(tag: str) -> dict[str, str]:
    return {"apps/web/values.yaml": WEB.replace('"1.0.0"', f'"{tag}"')}


def api(tag: str) -> dict[str, str]:
    return {"apps/api/values.yaml": API.replace("2.0.0", tag)}


def chart(version: str) -> dict[str, str]:
    return {"apps/api/Chart.yaml": CHART.replace("0.3.0", version)}


def seed_files(config: str = CONFIG) -> dict[str, str]:
    return {
        "promoter.yaml": config,
        **web("1.0.0"),
        **api("2.0.0"),
        **chart("0.3.0"),
        "apps/api/Chart.lock": chart_lock("0.3.0"),
    }


@dataclass(frozen=True)
class PR:
    """A pull request or merge request as the double holds it, forge-neutral."""

    number: int
    head: str
    base: str
    state: str  # open | closed | merged
    title: str
    head_sha: str
    labels: tuple[str, ...]
    comments: tuple[str, ...]


@dataclass
class Bed:
    repo: EnvRepo
    api: Any  # the GitHub or GitLab double
    forge: str
    server: GitHttpServer

    def args(self, *args: str) -> tuple[str, ...]:
        return ("--repo", self.repo.url, "--token", TEST_TOKEN, "--forge", self.forge,
                "--api-url", self.api.api_url, *args)  # fmt: skip

    def promote(self, capsys: pytest.CaptureFixture[str], *args: str) -> Run:
        return run_cli(capsys, *self.args("promote", *args))

    def json(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Run, Any]:
        run = run_cli(capsys, *self.args("--output", "json", "promote", *args))
        return run, json.loads(run.out) if run.out.strip() else None

    def status(self, sha: str, app: str, state: str) -> None:
        context = f"continuous-delivery/{app}"
        if self.forge == "gitlab":
            state = {"failure": "failed", "pending": "running"}.get(state, state)
        self.api.add_status(self.repo.name, sha, context, state)

    def pulls(self) -> list[PR]:
        if self.forge == "github":
            return [
                PR(
                    p.number,
                    p.head,
                    p.base,
                    "merged" if p.merged else p.state,
                    p.title,
                    p.head_sha,
                    tuple(p.labels),
                    tuple(c.body for c in p.comments),
                )
                for p in self.api.pulls(self.repo.name)
            ]
        mrs = sorted(self.api.project(self.repo.name).mrs.values(), key=lambda mr: mr.iid)
        branches = list_branches(self.repo.path)
        return [
            PR(
                mr.iid,
                mr.source,
                mr.target,
                {"opened": "open"}.get(mr.state, mr.state),
                mr.title,
                branches.get(mr.source, mr.head_sha) if mr.state == "opened" else mr.head_sha,
                tuple(mr.labels),
                tuple(n.body for n in mr.notes),
            )
            for mr in mrs
        ]

    def pull(self, head: str) -> PR:
        [found] = [p for p in self.pulls() if p.head == head]
        return found

    def branches(self) -> dict[str, str]:
        return dict(list_branches(self.repo.path))

    def mark(self) -> int:
        self.server.wait_idle()
        return len(self.server.requests)

    def pushes(self, since: int) -> int:
        """Pushes to this repo since `since`: receive-pack POSTs (one per `git push` that sent
        anything; a push that finds nothing to send makes none)."""
        self.server.wait_idle()
        return sum(
            1
            for r in self.server.requests[since:]
            if r.method == "POST" and r.path == f"/{self.repo.name}.git/git-receive-pack"
        )

    def push_starts(self, since: int) -> int:
        """Pushes begun (receive-pack ref advertisements), whether or not they sent anything."""
        self.server.wait_idle()
        return sum(
            1
            for r in self.server.requests[since:]
            if r.path.startswith(f"/{self.repo.name}.git/info/refs?service=git-receive-pack")
        )


def git(repo: EnvRepo, *args: str) -> str:
    proc = subprocess.run(["git", "--git-dir", str(repo.path), *args], capture_output=True,
                          text=True, env=git_env(), check=True)  # fmt: skip
    return proc.stdout.strip()


def changed_paths(repo: EnvRepo, sha: str) -> list[str]:
    """The paths a commit changes against its first parent, as git sees them."""
    return git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).splitlines()


def parent(repo: EnvRepo, sha: str) -> str:
    return git(repo, "rev-parse", f"{sha}^")


def make_bed(
    env_repo: EnvRepoFactory,
    api: Any,
    forge: str,
    server: GitHttpServer,
    per_branch: dict[str, dict[str, str | None]] | None = None,
) -> Bed:
    """Every branch seeded alike, then `per_branch` changes committed on top of some."""
    seed = seed_files()
    repo = env_repo({branch: seed for branch in BRANCHES})
    for branch, changes in (per_branch or {}).items():
        repo.commit(branch, changes, f"by hand on {branch}")
    return Bed(repo, api, forge, server)


@pytest.fixture(params=["github", "gitlab"])
def forge_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_api(forge_name: str, request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"{forge_name}_api")


# --- 1. --to is repeatable ---------------------------------------------------------------------


def test_repeated_to_gives_each_target_its_own_branch_gate_and_pull_request(
    env_repo, any_api, forge_name, git_server, capsys
):
    # prod-eu already runs api 2.1.0 (hotfixed by hand); prod-us runs neither new version.
    bed = make_bed(env_repo, any_api, forge_name, git_server, {"env/prod-eu": api("2.1.0")})
    ours = bed.repo.commit("env/staging", {**web("1.1.0"), **api("2.1.0")}, "web and api")
    bed.status(ours, "web", "success")
    bed.status(ours, "api", "success")
    prod = {b: bed.repo.sha(b) for b in ("env/prod-eu", "env/prod-us")}

    run, data = bed.json(capsys, "--to", "prod-eu", "--to", "prod-us")
    assert run.code == 0, run.err
    assert isinstance(data, list) and [d["to"] for d in data] == ["prod-eu", "prod-us"]
    eu, us = data
    assert {d["from"] for d in data} == {"staging"} and all(d["changed"] for d in data)
    # Own gate: each target's required contexts are those of the apps that move into it.
    assert eu["gate"]["required"] == ["continuous-delivery/web"]
    assert us["gate"]["required"] == ["continuous-delivery/web", "continuous-delivery/api"]
    assert eu["gate"]["verdict"] == us["gate"]["verdict"] == "pass"
    assert [c["pin"] for c in eu["changes"]] == ["web/web"]
    assert [c["pin"] for c in us["changes"]] == ["web/web", "api/api"]
    # Own promoter branch and own pull request, into its own environment branch.
    for d, target in ((eu, "prod-eu"), (us, "prod-us")):
        head = f"promoter/staging-to-{target}"
        assert d["pull_request"]["head"] == head and d["pull_request"]["base"] == f"env/{target}"
        assert d["commit"] == bed.repo.sha(head) == bed.pull(head).head_sha
        assert parent(bed.repo, d["commit"]) == prod[f"env/{target}"]
        assert d["exit_code"] == 0 and d["error"] is None
    assert changed_paths(bed.repo, eu["commit"]) == ["apps/web/values.yaml"]
    assert changed_paths(bed.repo, us["commit"]) == ["apps/api/values.yaml", "apps/web/values.yaml"]
    pulls = bed.pulls()
    assert sorted((p.head, p.base, p.state) for p in pulls) == [
        ("promoter/staging-to-prod-eu", "env/prod-eu", "open"),
        ("promoter/staging-to-prod-us", "env/prod-us", "open"),
    ]
    assert {p.title for p in pulls} == {"promote(prod-eu): web 1.1.0",
                                        "promote(prod-us): web 1.1.0, api 2.1.0"}  # fmt: skip
    assert {b: bed.repo.sha(b) for b in prod} == prod  # environment branches untouched

    # Text output lists both targets, each with its own pull request (a re-run: unchanged).
    run = bed.promote(capsys, "--to", "prod-eu", "--to", "prod-us")
    assert run.code == 0, run.err
    eu_pr, us_pr = bed.pull("promoter/staging-to-prod-eu"), bed.pull("promoter/staging-to-prod-us")
    lines = run.out.splitlines()
    assert lines[0] == (
        "staging (env/staging) -> prod-eu (env/prod-eu): "
        f"1 change in pull request #{eu_pr.number} (unchanged)"
    )
    assert (
        "staging (env/staging) -> prod-us (env/prod-us): "
        f"2 changes in pull request #{us_pr.number} (unchanged)"
    ) in lines
    assert "(promoter/staging-to-prod-eu -> env/prod-eu, open)" in run.out
    assert "(promoter/staging-to-prod-us -> env/prod-us, open)" in run.out
    assert len(bed.pulls()) == 2


def test_one_target_prints_the_object_and_from_alone_fans_out_to_every_follower(
    env_repo, github_api, git_server, capsys
):
    bed = make_bed(env_repo, github_api, "github", git_server)
    dev = bed.repo.commit("env/dev", web("1.1.0"), "update web")  # dev has no gate
    run, data = bed.json(capsys, "--from", "dev")  # only staging follows dev: one object
    assert run.code == 0, run.err
    assert isinstance(data, dict) and (data["from"], data["to"]) == ("dev", "staging")
    assert data["source_commit"] == dev and data["commit"] == bed.repo.sha("env/staging")

    staging = bed.repo.sha("env/staging")
    bed.status(staging, "web", "success")
    perf = bed.repo.sha("env/perf")
    run, data = bed.json(capsys, "--from", "staging")
    assert run.code == 0, run.err
    # Every environment whose `from:` is staging, in promoter.yaml's order; not staging itself.
    assert [(d["from"], d["to"], d["delivery"]) for d in data] == [
        ("staging", "prod-eu", "pull-request"),
        ("staging", "prod-us", "pull-request"),
        ("staging", "perf", "push"),
    ]
    assert all(d["changed"] and d["source_commit"] == staging for d in data)
    assert data[2]["commit"] == bed.repo.sha("env/perf") != perf
    assert parent(bed.repo, data[2]["commit"]) == perf
    assert sorted(p.head for p in bed.pulls()) == [
        "promoter/staging-to-prod-eu",
        "promoter/staging-to-prod-us",
    ]
    assert bed.repo.sha("env/staging") == staging
    run, single = bed.json(capsys, "--to", "prod-eu")  # one --to: the object, as before
    assert run.code == 0 and isinstance(single, dict) and single["to"] == "prod-eu"


def test_fan_out_reads_the_gate_statuses_once_for_all_targets(
    env_repo, github_api, git_server, capsys
):
    bed = make_bed(env_repo, github_api, "github", git_server)
    ours = bed.repo.commit("env/staging", web("1.1.0"), "web 1.1.0")
    bed.status(ours, "web", "success")
    before = len(github_api.request_log)
    run, data = bed.json(capsys, "--from", "staging")
    assert run.code == 0, run.err
    assert [d["gate"]["deciding_commit"] for d in data] == [ours, ours, ours]
    calls = github_api.request_log[before:]
    gate = [c for c in calls if "/commits/" in c[1]]
    assert len(gate) == 2  # statuses + check runs of one commit, not once per target
    assert len(calls) == 2 + 3 + 3  # + two new pull requests: lookup, create, labels (no reviewers)
    before = len(github_api.request_log)
    run, again = bed.json(capsys, "--from", "staging")
    assert run.code == 0 and [d["changed"] for d in again] == [False, False, False]
    assert len(github_api.request_log) - before == 2 + 1 + 1  # gate + a lookup per PR


def test_fan_out_dry_run_plans_every_target_and_writes_nothing(
    env_repo, github_api, git_server, capsys
):
    bed = make_bed(env_repo, github_api, "github", git_server, {"env/perf": web("1.1.0")})
    bed.status(bed.repo.commit("env/staging", web("1.1.0"), "web"), "web", "success")
    before, start = bed.branches(), bed.mark()
    run = run_cli(
        capsys, *bed.args("--dry-run", "--output", "json", "promote", "--from", "staging")
    )
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert [(d["to"], d["changed"], d["dry_run"]) for d in data] == [
        ("prod-eu", True, True),
        ("prod-us", True, True),
        ("perf", False, True),  # already there
    ]
    assert all(d["commit"] is None and d["pull_request"] is None for d in data)
    run = run_cli(capsys, *bed.args("--dry-run", "promote", "--from", "staging"))
    assert run.code == 0, run.err
    assert run.out.count("would open a pull request with 1 change (dry run, nothing written)") == 2
    assert "perf (env/perf): nothing to promote" in run.out
    assert bed.branches() == before and bed.pulls() == []
    assert bed.push_starts(start) == 0


def test_from_with_no_follower_is_bad_input(env_repo, github_api, git_server, capsys):
    bed = make_bed(env_repo, github_api, "github", git_server)
    before = bed.branches()
    run = bed.promote(capsys, "--from", "perf")
    assert run.code == 2
    assert run.err.strip().splitlines() == [
        "promoter: error: promote --from perf: no environment in promoter.yaml has "
        "`from: perf`; pass --to ENV"
    ]
    assert bed.branches() == before


def test_an_unknown_target_among_good_ones_writes_nothing(env_repo, github_api, git_server, capsys):
    bed = make_bed(env_repo, github_api, "github", git_server)
    bed.status(bed.repo.commit("env/staging", web("1.1.0"), "web"), "web", "success")
    before = bed.branches()
    run = bed.promote(capsys, "--to", "perf", "--to", "prod-mars", "--to", "prod-eu")
    assert run.code == 2 and "unknown environment 'prod-mars'" in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert bed.branches() == before and bed.pulls() == []


def test_no_forge_for_a_pull_request_target_is_refused_before_any_target_is_written(
    env_repo, github_api, git_server, capsys
):
    # perf takes pushes and prod-eu needs a pull request: without a forge, neither is written
    # (exit 2 means nothing was written), whichever comes first.
    bed = make_bed(env_repo, github_api, "github", git_server)
    bed.repo.commit("env/staging", web("1.1.0"), "web")
    before = bed.branches()
    for order in (("perf", "prod-eu"), ("prod-eu", "perf")):
        run = run_cli(capsys, "--repo", bed.repo.url, "--token", TEST_TOKEN, "--forge", "none",
                      "promote", "--no-gate", *itertools.chain(*(("--to", t) for t in order)))  # fmt: skip
        assert run.code == 2 and "needs a forge API" in run.err, run.err
        assert len(run.err.strip().splitlines()) == 1
        assert bed.branches() == before


def test_no_forge_for_a_gated_source_is_refused_before_any_target_is_written(
    env_repo, github_api, git_server, capsys
):
    # dev → staging needs no forge (dev has no gate, staging takes pushes); staging → perf
    # does (staging's gate reads statuses). Without one, staging is not written either.
    bed = make_bed(env_repo, github_api, "github", git_server)
    bed.repo.commit("env/dev", web("1.1.0"), "web")
    bed.repo.commit("env/staging", api("2.1.0"), "api")
    before = bed.branches()
    for order in (("staging", "perf"), ("perf", "staging")):
        run = run_cli(capsys, "--repo", bed.repo.url, "--token", TEST_TOKEN, "--forge", "none",
                      "promote", *itertools.chain(*(("--to", t) for t in order)))  # fmt: skip
        assert run.code == 2, run.output
        assert run.err.strip().splitlines() == [
            "promoter: error: the gate of staging (continuous-delivery/{app}) reads commit "
            "statuses; it needs a forge API: pass --forge github|gitlab (and --api-url for "
            "GitHub Enterprise or self-managed GitLab) or pass --no-gate to promote without it"
        ]
        assert bed.branches() == before
    # --no-gate needs no forge: both go ahead.
    run = run_cli(capsys, "--repo", bed.repo.url, "--token", TEST_TOKEN, "--forge", "none",
                  "promote", "--no-gate", "--to", "staging", "--to", "perf")  # fmt: skip
    assert run.code == 0, run.output
    assert bed.repo.sha("env/staging") != before["env/staging"]
    assert bed.repo.sha("env/perf") != before["env/perf"]


# --- 3. folder per environment -----------------------------------------------------------------

FOLDERS = """\
environments:
  staging:
    branch: main
    gate: {require: ["continuous-delivery/{app}"]}
  prod-eu: {branch: main, from: staging, pull_request: {labels: [promotion]}}
  prod-us: {branch: main, from: staging, pull_request: {labels: [promotion]}}
apps:
  web:
    images:
      web: {file: "envs/{env}/web/values.yaml", tag: image.tag}
  api:
    images:
      api: {file: "envs/{env}/api/values.yaml", tag: image.tag}
"""


def test_folder_layout_fan_out_opens_one_pull_request_per_region_touching_only_its_folder(
    env_repo, any_api, forge_name, git_server, capsys
):
    seed = {"promoter.yaml": FOLDERS}
    for env in ("staging", "prod-eu", "prod-us"):
        seed[f"envs/{env}/web/values.yaml"] = WEB
        seed[f"envs/{env}/api/values.yaml"] = API
    repo = env_repo({"main": seed})
    bed = Bed(repo, any_api, forge_name, git_server)
    ours = repo.commit("main", {"envs/staging/web/values.yaml": web("1.1.0")["apps/web/values.yaml"],
                                "envs/staging/api/values.yaml": api("2.1.0")["apps/api/values.yaml"]},
                       "update staging")  # fmt: skip
    bed.status(ours, "web", "success")
    bed.status(ours, "api", "success")
    main = repo.sha("main")

    run, data = bed.json(capsys, "--to", "prod-eu", "--to", "prod-us")
    assert run.code == 0, run.err
    assert [(d["to"], d["delivery"], d["source_commit"]) for d in data] == [
        ("prod-eu", "pull-request", ours),
        ("prod-us", "pull-request", ours),
    ]
    assert repo.sha("main") == main  # the shared branch moves only when a PR merges
    for d in data:
        region = d["to"]
        head = f"promoter/staging-to-{region}"
        pull = bed.pull(head)
        assert (pull.base, pull.state, pull.head_sha) == ("main", "open", d["commit"])
        assert parent(repo, pull.head_sha) == main
        assert changed_paths(repo, pull.head_sha) == [
            f"envs/{region}/api/values.yaml",
            f"envs/{region}/web/values.yaml",
        ]
        assert {c["file"] for c in d["changes"]} == {f"envs/{region}/api/values.yaml",
                                                     f"envs/{region}/web/values.yaml"}  # fmt: skip

    # prod-eu merges; main moved, so prod-us's PR is rebuilt on it and still touches only its
    # own folder (the merged region's files are not carried along or reverted).
    run, merged = bed.json(capsys, "--to", "prod-eu", "--merge")
    assert run.code == 0 and merged["pull_request"]["merged"], run.err
    main = repo.sha("main")
    run, again = bed.json(capsys, "--to", "prod-us")
    assert run.code == 0, run.err
    pull = bed.pull("promoter/staging-to-prod-us")
    assert again["pull_request"]["number"] == pull.number and len(bed.pulls()) == 2
    assert parent(repo, pull.head_sha) == main
    assert changed_paths(repo, pull.head_sha) == [
        "envs/prod-us/api/values.yaml",
        "envs/prod-us/web/values.yaml",
    ]


# --- 4. exit code across targets ---------------------------------------------------------------


def _staging_with_failed_web_and_passed_api(bed: Bed, api_state: str = "success") -> None:
    """staging: web 1.1.0 (its deployment failed), then api 2.1.0 (deployed as `api_state`)."""
    first = bed.repo.commit("env/staging", web("1.1.0"), "web 1.1.0")
    bed.status(first, "web", "failure")
    second = bed.repo.commit("env/staging", api("2.1.0"), "api 2.1.0")
    bed.status(second, "api", api_state)


@pytest.mark.parametrize(
    "order", [("prod-eu", "prod-us", "perf"), ("perf", "prod-us", "prod-eu")], ids=str
)
def test_a_gate_failure_does_not_hide_another_targets_error(
    env_repo, github_api, git_server, capsys, order
):
    # prod-eu: moves web, whose gate failed (3). prod-us: its pinned web file is missing (2).
    # perf: moves api, whose gate passed: it is pushed whatever the others did.
    bed = make_bed(env_repo, github_api, "github", git_server, {
        "env/prod-eu": api("2.1.0"),
        "env/prod-us": {"apps/web/values.yaml": None},
        "env/perf": web("1.1.0"),
    })  # fmt: skip
    _staging_with_failed_web_and_passed_api(bed)
    perf = bed.repo.sha("env/perf")

    run, data = bed.json(capsys, *itertools.chain(*(("--to", t) for t in order)))
    assert run.code == 2, run.output
    by = {d["to"]: d for d in data}
    assert [d["to"] for d in data] == list(order)
    assert {t: by[t]["exit_code"] for t in order} == {"prod-eu": 3, "prod-us": 2, "perf": 0}
    assert by["prod-eu"]["gate"]["verdict"] == "fail" and by["prod-eu"]["changed"] is False
    assert "apps/web/values.yaml" in by["prod-us"]["error"]
    assert by["prod-us"]["changed"] is False and by["prod-us"]["commit"] is None
    assert by["perf"]["changed"] and by["perf"]["commit"] == bed.repo.sha("env/perf") != perf
    assert (
        bed.repo.read_file("env/perf", "apps/api/values.yaml")
        == api("2.1.0")["apps/api/values.yaml"]
    )
    assert bed.pulls() == []
    # One line on stderr naming both failed targets, in the order they came.
    [line] = run.err.strip().splitlines()
    assert line.startswith("promoter: error: 2 of 3 targets did not complete: ")
    eu_at, us_at = line.index("prod-eu: staging: gate failed"), line.index("prod-us: ")
    assert (eu_at < us_at) == (order.index("prod-eu") < order.index("prod-us"))

    # Text output reports every target too.
    run = bed.promote(capsys, *itertools.chain(*(("--to", t) for t in order)))
    assert run.code == 2
    assert (
        "staging (env/staging) -> prod-eu (env/prod-eu): 1 change held back by the gate" in run.out
    )
    assert "staging (env/staging) -> prod-us (env/prod-us): failed (exit 2): " in run.out
    assert "staging (env/staging) -> perf (env/perf): nothing to promote" in run.out


@pytest.mark.parametrize("order", [("prod-us", "prod-eu", "perf"), ("perf", "prod-eu", "prod-us")],
                         ids=str)  # fmt: skip
def test_a_forge_fault_on_one_target_outranks_another_targets_gate_failure(
    env_repo, github_api, git_server, capsys, order
):
    # prod-us: moves web, gate failed (3). prod-eu: moves api, gate passed, but the forge
    # refuses to open its pull request (1). perf: moves api by push (0).
    bed = make_bed(env_repo, github_api, "github", git_server, {
        "env/prod-eu": web("1.1.0"),
        "env/prod-us": api("2.1.0"),
        "env/perf": web("1.1.0"),
    })  # fmt: skip
    _staging_with_failed_web_and_passed_api(bed)
    github_api.fail("POST /repos/*/pulls", [422], message="Validation Failed")
    run, data = bed.json(capsys, *itertools.chain(*(("--to", t) for t in order)))
    assert run.code == 1, run.output
    by = {d["to"]: d for d in data}
    assert {t: by[t]["exit_code"] for t in order} == {"prod-eu": 1, "prod-us": 3, "perf": 0}
    assert "Validation Failed" in by["prod-eu"]["error"], by["prod-eu"]["error"]
    assert by["perf"]["commit"] == bed.repo.sha("env/perf")
    assert bed.pulls() == []
    assert "promoter/staging-to-prod-us" not in bed.branches()  # the gate held it back
    [line] = run.err.strip().splitlines()
    assert "prod-eu: " in line and "prod-us: staging: gate failed" in line


@pytest.mark.parametrize("order", [("prod-eu", "perf"), ("perf", "prod-eu")], ids=str)
def test_a_failed_gate_outranks_a_gate_not_reached(env_repo, github_api, git_server, capsys, order):
    bed = make_bed(env_repo, github_api, "github", git_server,
                   {"env/prod-eu": api("2.1.0"), "env/perf": web("1.1.0")})  # fmt: skip
    _staging_with_failed_web_and_passed_api(bed, api_state="pending")
    run, data = bed.json(capsys, *itertools.chain(*(("--to", t) for t in order)))
    assert run.code == 3, run.output
    assert {d["to"]: d["exit_code"] for d in data} == {"prod-eu": 3, "perf": 4}
    assert "perf: staging: gate not reached yet" in run.err


def test_severity_order_is_most_severe_first_whatever_the_order_of_targets():
    from promoter.promotion import SEVERITY, PromoteResult, Promotions

    assert SEVERITY == (1, 2, 5, 3, 4, 0)

    def result(code: int) -> PromoteResult:
        base = PromoteResult(source="a", target=f"t{code}", source_branch="a", target_branch="b",
                             delivery="push", changes=(), origin=None, gate=None,
                             gate_skipped=False, required=(), dry_run=False)  # fmt: skip
        return base if code == 0 else PromoteResult(**{**base.__dict__, "error": "x",
                                                       "exit_code": code})  # fmt: skip

    for size in (1, 2, 3):
        for codes in itertools.permutations((1, 2, 5, 3, 4, 0), size):
            if 3 in codes or 4 in codes:
                continue  # gate outcomes come from a gate, tested end to end above
            got = Promotions(tuple(result(c) for c in codes)).exit_code
            assert got == next(c for c in SEVERITY if c in codes), codes


# --- 5, 6. byte-idempotent re-runs -------------------------------------------------------------


def test_two_identical_runs_push_once_with_a_chart_lock_in_the_change(
    env_repo, any_api, forge_name, git_server, capsys
):
    bed = make_bed(env_repo, any_api, forge_name, git_server)
    ours = bed.repo.commit("env/staging", {**api("2.1.0"), **chart("0.4.0"),
                                           "apps/api/Chart.lock": chart_lock("0.4.0")},
                           "api 2.1.0, chart 0.4.0")  # fmt: skip
    bed.status(ours, "api", "success")
    head = "promoter/staging-to-prod-eu"

    start = bed.mark()
    run, first = bed.json(capsys, "--to", "prod-eu")
    assert run.code == 0, run.err
    assert first["changed"] is True
    assert first["files"] == ["apps/api/Chart.lock", "apps/api/Chart.yaml", "apps/api/values.yaml"]
    sha = bed.repo.sha(head)
    lock = bed.repo.read_file(head, "apps/api/Chart.lock")
    assert check_lock(bed.repo.read_file(head, "apps/api/Chart.yaml"), lock) is None
    assert "version: 0.4.0" in lock and '"2026-01-01T00:00:00Z"' not in lock  # regenerated
    assert bed.pushes(start) == 1

    run, second = bed.json(capsys, "--to", "prod-eu")
    assert run.code == 0, run.err
    assert second["changed"] is False
    assert (
        second["commit"] == sha
        and second["pull_request"]["number"] == first["pull_request"]["number"]
    )
    assert bed.repo.sha(head) == sha and bed.pull(head).head_sha == sha
    assert bed.repo.read_file(head, "apps/api/Chart.lock") == lock  # same `generated:`
    assert bed.pushes(start) == 1  # one push in all, over both runs
    assert len(bed.pulls()) == 1


def test_fan_out_rerun_pushes_nothing_to_any_target(env_repo, github_api, git_server, capsys):
    bed = make_bed(env_repo, github_api, "github", git_server)
    ours = bed.repo.commit("env/staging", {**web("1.1.0"), **chart("0.4.0"),
                                           "apps/api/Chart.lock": chart_lock("0.4.0")},
                           "web 1.1.0, chart 0.4.0")  # fmt: skip
    bed.status(ours, "web", "success")
    bed.status(ours, "api", "success")
    start = bed.mark()
    run, first = bed.json(capsys, "--from", "staging")
    assert run.code == 0, run.err
    assert [d["changed"] for d in first] == [True, True, True]
    assert bed.pushes(start) == 3  # two promoter branches and env/perf, once each
    after = bed.branches()

    mark = bed.mark()
    run, second = bed.json(capsys, "--from", "staging")
    assert run.code == 0, run.err
    assert [d["changed"] for d in second] == [False, False, False]
    assert [d["commit"] for d in second[:2]] == [d["commit"] for d in first[:2]]
    assert second[2]["changes"] == [] and second[2]["commit"] is None
    assert bed.pushes(mark) == 0 and bed.push_starts(mark) == 0
    assert bed.branches() == after
    assert [p.head_sha for p in bed.pulls()] == [d["commit"] for d in first[:2]]


def test_push_delivery_rerun_pushes_nothing(env_repo, github_api, git_server, capsys):
    bed = make_bed(env_repo, github_api, "github", git_server)
    ours = bed.repo.commit("env/staging", {**chart("0.4.0"),
                                           "apps/api/Chart.lock": chart_lock("0.4.0")},
                           "chart 0.4.0")  # fmt: skip
    bed.status(ours, "api", "success")
    start = bed.mark()
    run, first = bed.json(capsys, "--to", "perf")
    assert run.code == 0 and first["changed"], run.err
    assert first["files"] == ["apps/api/Chart.lock", "apps/api/Chart.yaml"]
    perf = bed.repo.sha("env/perf")
    assert first["commit"] == perf and bed.pushes(start) == 1

    mark = bed.mark()
    before = len(github_api.request_log)
    run, second = bed.json(capsys, "--to", "perf")
    assert run.code == 0, run.err
    assert (second["changed"], second["commit"], second["changes"]) == (False, None, [])
    assert bed.pushes(mark) == 0 and bed.push_starts(mark) == 0
    assert bed.repo.sha("env/perf") == perf
    assert len(github_api.request_log) == before  # nothing moves: no gate, no API call


# --- 7. stale promotion pull requests ----------------------------------------------------------


def test_a_pull_request_whose_target_caught_up_is_closed_and_its_branch_deleted(
    env_repo, any_api, forge_name, git_server, capsys
):
    bed = make_bed(env_repo, any_api, forge_name, git_server)
    ours = bed.repo.commit("env/staging", web("1.1.0"), "web 1.1.0")
    bed.status(ours, "web", "success")
    run, opened = bed.json(capsys, "--to", "prod-eu", "--to", "prod-us")
    assert run.code == 0, run.err
    eu, us = (d["pull_request"]["number"] for d in opened)

    # Someone brings prod-eu to the same values by another route (a hotfix push).
    bed.repo.commit("env/prod-eu", web("1.1.0"), "hotfix: web 1.1.0 by hand")
    start = bed.mark()
    run, data = bed.json(capsys, "--to", "prod-eu", "--to", "prod-us")
    assert run.code == 0, run.err
    closed, kept = data
    assert closed["changed"] is False and closed["changes"] == [] and closed["pull_request"] is None
    assert closed["closed_pull_request"]["number"] == eu
    assert closed["closed_pull_request"]["url"]
    assert kept["closed_pull_request"] is None and kept["pull_request"]["number"] == us
    pull = bed.pull("promoter/staging-to-prod-eu")
    assert pull.state == "closed"
    assert any("already has every version" in c for c in pull.comments), pull.comments
    branches = bed.branches()
    assert "promoter/staging-to-prod-eu" not in branches
    assert (
        "promoter/staging-to-prod-us" in branches
        and bed.pull(kept["pull_request"]["head"]).state == "open"
    )
    assert bed.pushes(start) == 1  # the deletion of the closed PR's branch, nothing else

    # Once closed, a re-run finds nothing in flight: nothing to close, nothing pushed.
    start = bed.mark()
    run = bed.promote(capsys, "--to", "prod-eu")
    assert (
        run.code == 0 and "nothing to promote" in run.out and "closed pull request" not in run.out
    )
    assert bed.pushes(start) == 0 and len(bed.pulls()) == 2


def test_text_output_names_the_closed_pull_request(env_repo, github_api, git_server, capsys):
    bed = make_bed(env_repo, github_api, "github", git_server)
    bed.status(bed.repo.commit("env/staging", web("1.1.0"), "web"), "web", "success")
    assert bed.promote(capsys, "--to", "prod-eu").code == 0
    [pull] = bed.pulls()
    bed.repo.commit("env/prod-eu", web("1.1.0"), "by hand")
    run = bed.promote(capsys, "--to", "prod-eu")
    assert run.code == 0, run.err
    assert (
        f"nothing to promote, prod-eu already has staging's versions; closed pull request #{pull.number}"
        in run.out
    )


def test_a_pull_request_shrinks_to_the_pins_still_needed(
    env_repo, any_api, forge_name, git_server, capsys
):
    bed = make_bed(env_repo, any_api, forge_name, git_server)
    ours = bed.repo.commit("env/staging", {**web("1.1.0"), **api("2.1.0")}, "web and api")
    bed.status(ours, "web", "success")
    bed.status(ours, "api", "success")
    head = "promoter/staging-to-prod-eu"
    run, first = bed.json(capsys, "--to", "prod-eu")
    assert run.code == 0, run.err
    assert changed_paths(bed.repo, first["commit"]) == [
        "apps/api/values.yaml",
        "apps/web/values.yaml",
    ]

    caught_up = bed.repo.commit("env/prod-eu", web("1.1.0"), "web 1.1.0 by hand")
    run, data = bed.json(capsys, "--to", "prod-eu")
    assert run.code == 0, run.err
    assert data["changed"] is True and [c["pin"] for c in data["changes"]] == ["api/api"]
    assert data["gate"]["required"] == ["continuous-delivery/api"]
    pull = bed.pull(head)
    assert (
        data["pull_request"]["number"] == first["pull_request"]["number"] and pull.state == "open"
    )
    assert pull.head_sha == data["commit"] == bed.repo.sha(head) != first["commit"]
    assert parent(bed.repo, pull.head_sha) == caught_up
    assert changed_paths(bed.repo, pull.head_sha) == ["apps/api/values.yaml"]
    assert pull.title == "promote(prod-eu): api 2.1.0"
    assert len(bed.pulls()) == 1


# --- 8. a person's commits on a promoter branch ------------------------------------------------


def test_a_promoter_branch_a_person_pushed_to_is_left_alone_and_the_others_proceed(
    env_repo, any_api, forge_name, git_server, capsys
):
    bed = make_bed(env_repo, any_api, forge_name, git_server)
    first = bed.repo.commit("env/staging", web("1.1.0"), "web 1.1.0")
    bed.status(first, "web", "success")
    run = bed.promote(capsys, "--to", "prod-eu")
    assert run.code == 0, run.err
    head = "promoter/staging-to-prod-eu"
    [opened] = bed.pulls()
    assert f"1 change in pull request #{opened.number} (pushed)" in run.out
    theirs = bed.repo.commit(head, {"apps/web/NOTES.md": "please hold\n"}, "hold: wait for QA")

    newer = bed.repo.commit("env/staging", web("1.2.0"), "web 1.2.0")  # something new to carry
    bed.status(newer, "web", "success")
    perf = bed.repo.sha("env/perf")
    run, data = bed.json(capsys, "--to", "prod-eu", "--to", "prod-us", "--to", "perf")
    assert run.code == 1, run.output
    eu, us, pf = data
    assert eu["exit_code"] == 1 and eu["changed"] is False and eu["pull_request"] is None
    assert f"{head} holds a commit promoter did not write ({theirs[:12]})" in eu["error"]
    assert "someone pushed to it" in eu["error"]
    [line] = run.err.strip().splitlines()
    assert f"prod-eu: {head} holds a commit promoter did not write" in line
    # The person's branch and pull request are untouched.
    assert bed.repo.sha(head) == theirs
    pull = bed.pull(head)
    assert (pull.number, pull.state, pull.title, pull.comments) == (
        opened.number, "open", opened.title, opened.comments)  # fmt: skip
    # The other targets went ahead.
    assert (
        us["exit_code"] == 0
        and us["changed"]
        and bed.pull(us["pull_request"]["head"]).state == "open"
    )
    assert pf["exit_code"] == 0 and pf["commit"] == bed.repo.sha("env/perf") != perf

    # Even when the target catches up, promoter neither closes it nor deletes the branch.
    bed.repo.commit("env/prod-eu", web("1.2.0"), "web 1.2.0 by hand")
    run = bed.promote(capsys, "--to", "prod-eu")
    assert run.code == 1 and "someone pushed to it" in run.err, run.output
    assert len(run.err.strip().splitlines()) == 1
    assert bed.repo.sha(head) == theirs and bed.pull(head).state == "open"


def test_trailers_name_each_target(env_repo, github_api, git_server, capsys):
    bed = make_bed(env_repo, github_api, "github", git_server)
    ours = bed.repo.commit("env/staging", web("1.1.0"), "web")
    bed.status(ours, "web", "success")
    run, data = bed.json(capsys, "--to", "prod-us", "--to", "perf")
    assert run.code == 0, run.err
    for d in data:
        lines = commit_message(bed.repo.path, d["commit"]).splitlines()
        assert lines[0] == f"promote({d['to']}): web 1.1.0"
        assert f"Promoter-Environment: {d['to']}" in lines
        assert f"Promoter-Source: staging@{ours}" in lines
