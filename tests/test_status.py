"""`promoter status` end to end: real git over smart HTTP, the strict GitHub double with
statuses posted on the environment heads, the real CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from promoter.sandbox import TEST_TOKEN, GitHttpServer
from promoter.sandbox.envrepo import EnvRepo
from promoter.sandbox.github_api import GitHubApiDouble
from promoter.sandbox.github_store import now
from tests.helpers import Run, run_cli, workflow_commands

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
    gate: {require: ["continuous-delivery/{app}"], soak: 10m}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag, digest: image.digest}
    chart: {file: apps/api/helmrelease.yaml, version: spec.chart.spec.version}
"""

DIGEST = "sha256:" + "ab" * 32


def web(tag: str) -> dict[str, str]:
    return {
        "apps/web/values.yaml": f'# web\nimage:\n  repository: ghcr.io/acme/web\n  tag: "{tag}"\n'
    }


def api(tag: str, digest: str = "") -> dict[str, str]:
    return {"apps/api/values.yaml": f'image:\n  tag: {tag}\n  digest: "{digest}"\n'}


def chart(version: str) -> dict[str, str]:
    return {
        "apps/api/helmrelease.yaml": "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
        f"metadata: {{name: api}}\nspec:\n  chart:\n    spec:\n      chart: api\n      version: {version}\n"
    }


def seed(config: str = CONFIG) -> dict[str, str]:
    return {"promoter.yaml": config, **web("1.0.0"), **api("2.0.0"), **chart("0.3.0")}


def branches(config: str = CONFIG) -> dict[str, dict[str, str]]:
    """main and one branch per environment, each its own commit (a README names it)."""
    return {b: {**seed(config), "README.md": f"{b}\n"}
            for b in ("main", "env/dev", "env/staging", "env/prod")}  # fmt: skip


@dataclass
class Bed:
    repo: EnvRepo
    api: GitHubApiDouble
    server: GitHttpServer

    def args(self, *args: str, forge: str = "github") -> tuple[str, ...]:
        return ("--repo", self.repo.url, "--token", TEST_TOKEN, "--forge", forge,
                "--api-url", self.api.api_url, *args)  # fmt: skip

    def run(self, capsys: pytest.CaptureFixture[str], *args: str, forge: str = "github") -> Run:
        return run_cli(capsys, *self.args("status", *args, forge=forge))

    def json(
        self, capsys: pytest.CaptureFixture[str], *args: str, forge: str = "github"
    ) -> dict[str, Any]:
        run = run_cli(capsys, *self.args("--output", "json", "status", *args, forge=forge))
        assert run.code == 0, run.output
        data: dict[str, Any] = json.loads(run.out)
        return data

    def status(self, branch: str, app: str, state: str, **fields: Any) -> None:
        sha = self.repo.sha(branch)
        self.api.add_status(self.repo.name, sha, f"continuous-delivery/{app}", state, **fields)


@pytest.fixture
def bed(env_repo, github_api: GitHubApiDouble, git_server: GitHttpServer) -> Bed:
    return Bed(env_repo(branches()), github_api, git_server)


def history(bed: Bed) -> None:
    """dev went 1.1.0 → 1.2.0 → 1.3.0 (web); staging got 1.1.0 then 1.2.0 by promotion;
    prod got 1.1.0 by promotion (it lags) and an api hotfix nobody upstream ever had."""
    for tag in ("1.1.0", "1.2.0", "1.3.0"):
        bed.repo.commit("env/dev", web(tag), f"update(dev): web {tag}")
    for tag in ("1.1.0", "1.2.0"):
        bed.repo.commit("env/staging", web(tag), f"promote(staging): web {tag}")
    bed.repo.commit("env/prod", web("1.1.0"), "promote(prod): web 1.1.0")
    bed.repo.commit("env/prod", api("2.0.1-hotfix", DIGEST), "hotfix api by hand")


def pin(data: dict[str, Any], label: str) -> dict[str, Any]:
    found = [p for p in data["pins"] if f"{p['pin']} {p['field']}" == label]
    assert len(found) == 1, label
    return found[0]


def cells(data: dict[str, Any], label: str) -> dict[str, tuple[str | None, bool, bool]]:
    values = pin(data, label)["values"]
    return {env: (v["value"], v["pending"], v["drift"]) for env, v in values.items()}


# --- the matrix ----------------------------------------------------------------------------------


def test_marks_pending_promotions_and_drift_from_the_upstream_history(bed, capsys):
    history(bed)
    data = bed.json(capsys)
    assert cells(data, "web/web tag") == {
        "dev": ("1.3.0", False, False),
        "staging": ("1.2.0", True, False),  # dev held 1.2.0 and moved on: a promotion is due
        "prod": ("1.1.0", True, False),  # lags: staging held 1.1.0
    }
    assert cells(data, "api/api tag") == {
        "dev": ("2.0.0", False, False),
        "staging": ("2.0.0", False, False),
        "prod": ("2.0.1-hotfix", True, True),  # staging never held it: no promotion brought it
    }
    assert cells(data, "api/api digest")["prod"] == (DIGEST, True, True)
    assert cells(data, "api/chart version") == {env: ("0.3.0", False, False)
                                                 for env in ("dev", "staging", "prod")}  # fmt: skip
    by_env = {e["name"]: e for e in data["environments"]}
    assert [(e["promotion_pending"], e["drift"]) for e in by_env.values()] == [
        (0, 0),
        (1, 0),
        (3, 2),
    ]
    assert (data["promotion_pending"], data["drift"]) == (4, 2)
    # staging's whole history was searched (it is short) to tell prod's lag from its drift.
    assert by_env["prod"]["upstream_history"] == {"commits": 3, "complete": True}
    assert by_env["dev"]["upstream_history"] is None


def test_drift_search_deepens_past_32_upstream_commits(bed, capsys):
    bed.repo.commit("env/staging", web("1.1.0"), "promote(staging): web 1.1.0")
    for n in range(40):  # unrelated commits since
        bed.repo.commit("env/staging", chart(f"0.3.{n + 1}"), f"promote(staging): api chart {n}")
    bed.repo.commit("env/staging", web("1.2.0"), "promote(staging): web 1.2.0")
    bed.repo.commit("env/prod", web("1.1.0"), "promote(prod): web 1.1.0")
    data = bed.json(capsys, "--env", "prod")
    assert cells(data, "web/web tag")["prod"] == ("1.1.0", True, False)  # 42 commits back
    assert cells(data, "api/chart version")["prod"] == ("0.3.0", True, False)  # the seed's
    assert data["environments"][0]["upstream_history"] == {"commits": 43, "complete": True}


def test_table_shows_heads_gates_values_and_marks(bed, capsys):
    history(bed)
    bed.status("env/dev", "web", "success")
    bed.status("env/dev", "api", "success")
    bed.status("env/staging", "web", "failure", description="CrashLoopBackOff")
    bed.status("env/staging", "api", "success")
    bed.status("env/prod", "web", "success")
    bed.status("env/prod", "api", "success")  # just now: prod soaks 10m
    before = len(bed.api.request_log)
    run = bed.run(capsys)
    assert run.code == 0, run.output
    # Statuses and check runs of each head: 2 requests per environment.
    assert len(bed.api.request_log) - before == 6
    lines = run.out.splitlines()
    rows: dict[str, str] = {}
    for line in lines[1:]:
        words = line.split()
        if words:  # the first line of each name is the table's (notes come after)
            rows.setdefault(
                " ".join(words[:2]) if line.startswith(("web/", "api/")) else words[0], line
            )
    assert lines[0].split() == ["dev", "staging", "prod"]
    assert rows["branch"].split() == ["branch", "env/dev", "env/staging", "env/prod"]
    heads = [bed.repo.sha(b)[:12] for b in ("env/dev", "env/staging", "env/prod")]
    assert [w for w in rows["head"].split() if len(w) == 12] == heads
    assert "ago)" in rows["head"]
    assert rows["gate"].split() == ["gate", "pass", "fail", "pending"]
    assert rows["web/web tag"].split() == ["web/web", "tag", "1.3.0", "1.2.0", "*", "1.1.0", "*"]
    assert rows["api/api tag"].split() == ["api/api", "tag", "2.0.0", "2.0.0", "2.0.1-hotfix", "!"]
    # A digest is cut like a short SHA in the table (JSON has it whole).
    assert rows["api/api digest"].split() == ["api/api", "digest", '""', '""',
                                              "sha256:abababababab...", "!"]  # fmt: skip
    assert "promotion pending" in run.out and "staging 1 from dev, prod 3 from staging" in run.out
    assert "! drift in prod: 2 values staging never held (not brought by a promotion)" in run.out
    staging = bed.repo.sha("env/staging")[:12]
    assert f"gate fail in staging on {staging}: continuous-delivery/web is failure" in run.out
    assert "gate pending in prod" in run.out and "soaking" in run.out


def test_gate_json_is_the_gate_of_each_head(bed, capsys):
    bed.status("env/dev", "web", "success", updated_at=now() - timedelta(hours=1))
    bed.status("env/dev", "api", "success", updated_at=now() - timedelta(hours=1))
    bed.status("env/staging", "web", "pending")
    data = bed.json(capsys)
    assert data["forge"] == "github"
    gates = {e["name"]: e["gate"] for e in data["environments"]}
    assert gates["dev"]["verdict"] == "pass"
    assert gates["dev"]["required"] == ["continuous-delivery/*"]
    assert gates["dev"]["target"] == bed.repo.sha("env/dev")
    assert {c["pattern"] for c in gates["dev"]["contexts"]} == {"continuous-delivery/*"}
    assert [s["context"] for s in gates["dev"]["contexts"][0]["contexts"]] == [
        "continuous-delivery/api", "continuous-delivery/web"]  # fmt: skip
    assert gates["staging"]["verdict"] == "pending"
    assert gates["prod"]["verdict"] == "pending"  # nothing reported on prod's head yet
    assert gates["prod"]["contexts"][0]["reason"] == "no status reported yet"


def test_environment_without_required_statuses_reads_nothing_from_the_forge(env_repo, github_api,
                                                                            git_server, capsys):  # fmt: skip
    config = CONFIG.replace('    gate: {require: ["continuous-delivery/{app}"], soak: 10m}\n', "")
    bed = Bed(env_repo(branches(config)), github_api, git_server)
    before = len(github_api.request_log)
    data = bed.json(capsys, "--env", "prod")
    assert len(github_api.request_log) == before
    assert data["environments"][0]["gate"] == {"required": [], "verdict": "none", "error": None}
    run = bed.run(capsys, "--env", "prod")
    assert [line.split() for line in run.out.splitlines() if line.startswith("gate")] == [
        ["gate", "no", "gate"]]  # fmt: skip


def test_a_forge_that_fails_shows_in_the_gate_and_the_rest_still_renders(bed, capsys):
    bed.api.fail("/repos/*/commits/*/statuses", [401] * 3, message="Bad credentials")
    run = bed.run(capsys, "--env", "dev")
    assert run.code == 0, run.output
    gate = [line for line in run.out.splitlines() if line.startswith("gate")]
    assert gate[0].split() == ["gate", "error"]
    assert "gate error in dev:" in run.out
    assert "1.0.0" in run.out


def test_json_shape(bed, capsys):
    data = bed.json(capsys)
    assert list(data) == ["environments", "pins", "forge", "promotion_pending", "drift"]
    env = data["environments"][0]
    assert list(env) == ["name", "branch", "from", "delivery", "head", "gate",
                         "promotion_pending", "drift", "upstream_history", "window"]  # fmt: skip
    assert env["window"] == {"open": True, "next_opening": None, "next_closing": None,
                             "freeze": None, "reason": None}  # fmt: skip
    assert (env["name"], env["branch"], env["from"], env["delivery"]) == (
        "dev",
        "env/dev",
        None,
        "push",
    )
    assert data["environments"][2]["delivery"] == "pull-request"
    assert env["head"]["sha"] == bed.repo.sha("env/dev")
    assert 0 <= env["head"]["age_seconds"] < 600 and env["head"]["committed_at"].endswith("+00:00")
    assert [(p["app"], p["pin"], p["field"], p["key"]) for p in data["pins"]] == [
        ("web", "web/web", "tag", "image.tag"),
        ("api", "api/api", "tag", "image.tag"),
        ("api", "api/api", "digest", "image.digest"),
        ("api", "api/chart", "version", "spec.chart.spec.version"),
    ]
    assert data["pins"][0]["values"]["staging"] == {
        "value": "1.0.0", "file": "apps/web/values.yaml", "pending": False, "drift": False,
        "problem": None,
    }  # fmt: skip
    assert data["pins"][2]["values"]["dev"]["value"] == ""  # digest: "" (cleared)


def test_format_json_prints_the_same_object_as_output_json(bed, capsys):
    by_format = json.loads(bed.run(capsys, "--format", "json").out)
    by_output = bed.json(capsys)
    for data in (by_format, by_output):
        for env in data["environments"]:
            env["head"].pop("age_seconds")
    assert by_format == by_output


# --- --env -----------------------------------------------------------------------------------------


def test_env_filter_shows_only_those_and_still_compares_with_their_upstream(bed, capsys):
    history(bed)
    data = bed.json(capsys, "--env", "prod", "--env", "staging")
    # promoter.yaml's order, whatever the order on the command line.
    assert [e["name"] for e in data["environments"]] == ["staging", "prod"]
    assert all(list(p["values"]) == ["staging", "prod"] for p in data["pins"])
    assert cells(data, "web/web tag")["staging"] == ("1.2.0", True, False)  # dev, not shown
    run = bed.run(capsys, "--env", "prod")
    assert run.out.splitlines()[0].split() == ["prod"]
    assert "dev" not in run.out.replace("env/dev", "")


def test_unknown_env_is_exit_2_in_one_line(bed, capsys):
    before = len(bed.api.request_log)
    run = bed.run(capsys, "--env", "prdo")
    assert run.code == 2
    assert run.out == ""
    assert (
        run.err
        == "promoter: error: unknown environment 'prdo' (promoter.yaml defines: dev, staging, prod)\n"
    )
    assert len(bed.api.request_log) == before


# --- --forge none ------------------------------------------------------------------------------------


def test_forge_none_has_no_gate_row_and_makes_no_api_call(bed, capsys):
    history(bed)
    bed.status("env/dev", "web", "success")
    before = len(bed.api.request_log)
    run = bed.run(capsys, forge="none")
    assert run.code == 0, run.output
    assert len(bed.api.request_log) == before
    assert not [line for line in run.out.splitlines() if line.startswith("gate")]
    assert "web/web tag" in run.out
    data = bed.json(capsys, forge="none")
    assert data["forge"] is None
    assert [e["gate"] for e in data["environments"]] == [None, None, None]
    markdown = bed.run(capsys, "--format", "markdown", forge="none").out
    assert "| gate |" not in markdown and "| branch |" in markdown


# --- folder per environment ------------------------------------------------------------------------

FOLDERS = """\
environments:
  staging: {branch: main}
  prod-eu: {branch: main, from: staging}
  prod-us: {branch: main, from: staging}
apps:
  web:
    images:
      web: {file: "envs/{env}/web/values.yaml", tag: image.tag}
"""


def fetches(server: GitHttpServer, since: int) -> int:
    """Requests to upload-pack since `since`: a `git fetch` sends 3 (ref advertisement,
    ls-refs, fetch), a direct tip fetch 2 (ls-refs, fetch), a direct blob batch 1
    (gitrepo._fetch_tip_direct, _fetch_direct)."""
    server.wait_idle()
    return sum(1 for _, path, _ in server.request_log[since:] if "upload-pack" in path)


def test_folder_layout_reads_the_shared_branch_once(env_repo, github_api, git_server, capsys):
    files = {"promoter.yaml": FOLDERS}
    for env, tag in (("staging", "1.2.0"), ("prod-eu", "1.1.0"), ("prod-us", "1.0.5")):
        files[f"envs/{env}/web/values.yaml"] = web(tag)["apps/web/values.yaml"]
    repo = env_repo({"main": files})
    bed = Bed(repo, github_api, git_server)
    # staging held 1.1.0 before 1.2.0 (so prod-eu lags); it never held 1.0.5 (prod-us drifts).
    repo.commit("main", {"envs/staging/web/values.yaml": web("1.1.0")["apps/web/values.yaml"]}, "a")
    repo.commit("main", {"envs/staging/web/values.yaml": web("1.2.0")["apps/web/values.yaml"]}, "b")
    github_api.add_status(repo.name, repo.sha("main"), "continuous-delivery/web", "success")
    git_server.wait_idle()
    start = len(git_server.request_log)
    data = bed.json(capsys, "--env", "prod-us", "--env", "prod-eu", forge="none")
    assert cells(data, "web/web tag") == {"prod-eu": ("1.1.0", True, False),
                                          "prod-us": ("1.0.5", True, True)}  # fmt: skip
    assert {e["head"]["sha"] for e in data["environments"]} == {repo.sha("main")}
    # promoter.yaml's tip (2) and blob (1), the tips of every branch concerned (main, once: 3),
    # their pinned files (one batch, 1) and staging's history (commits and trees, 3) for the
    # drift mark.
    assert fetches(git_server, start) == 10
    start = len(git_server.request_log)
    bed.json(capsys, "--env", "staging", forge="none")  # nothing to compare: no history
    assert fetches(git_server, start) == 7


def test_three_branches_are_fetched_as_one(bed, capsys):
    start = len(bed.server.request_log)
    data = bed.json(capsys, "--env", "dev", forge="none")  # one branch (dev has no upstream)
    assert len(data["environments"]) == 1
    # promoter.yaml's tip (2) and blob (1), the branch tips (3), the pinned blobs (2)
    assert fetches(bed.server, start) == 8
    start = len(bed.server.request_log)
    data = bed.json(capsys, forge="none")  # three branches, all in sync
    assert len(data["environments"]) == 3 and data["promotion_pending"] == 0
    assert fetches(bed.server, start) == 8


# --- foreign values --------------------------------------------------------------------------------

HOSTILE = "1.0|<img src=x>`[x](http://e.vil)\n::error::pwned"


def test_hostile_value_is_escaped_in_markdown_and_table(bed, capsys):
    text = '# web\nimage:\n  tag: "1.0|<img src=x>`[x](http://e.vil)\\n::error::pwned"\n'
    bed.repo.commit("env/prod", {"apps/web/values.yaml": text}, "hand edit")
    markdown = bed.run(capsys, "--format", "markdown").out
    row = next(line for line in markdown.splitlines() if line.startswith("| web/web"))
    # The row keeps its four cells: no `|` from the value, no raw HTML, link or backtick.
    assert row.count("|") == 5
    prod = row.split(" | ")[3]
    assert "<img" not in prod and "](http" not in prod and "`" not in prod and "::" not in prod
    assert prod.startswith("<code>1.0&#124;&#60;img src=x&#62;&#96;&#91;x&#93;&#40;http&#58;")
    assert prod.endswith("&#92;n&#58;&#58;error&#58;&#58;pwned</code> **drift** |")
    assert workflow_commands(markdown) == []
    table = bed.run(capsys).out
    line = next(line for line in table.splitlines() if line.startswith("web/web tag"))
    assert '"1.0|<img src=x>`[x](http://e.vil)\\n::error::pwned" !' in line  # JSON-quoted
    assert workflow_commands(table) == []
    data = bed.json(capsys)
    assert cells(data, "web/web tag")["prod"] == (HOSTILE, True, True)


def test_missing_file_and_key_are_shown_not_fatal(bed, capsys):
    bed.repo.commit("env/staging", {"apps/web/values.yaml": None}, "remove web")
    bed.repo.commit("env/prod", {"apps/api/values.yaml": "image:\n  tag: 2.0.0\n"}, "no digest")
    run = bed.run(capsys)
    assert run.code == 0, run.output
    web_row = next(line for line in run.out.splitlines() if line.startswith("web/web tag"))
    assert web_row.split() == ["web/web", "tag", "1.0.0", "(missing)", "1.0.0"]
    assert "staging: web/web tag: apps/web/values.yaml does not exist on env/staging" in run.out
    assert 'prod: api/api digest: image.digest: key "digest" not found' in run.out
    data = bed.json(capsys)
    # prod's web cannot be compared with a staging that has none: no mark.
    assert cells(data, "web/web tag")["prod"] == ("1.0.0", False, False)
    assert pin(data, "api/api digest")["values"]["prod"]["value"] is None


def test_an_environment_branch_that_does_not_exist_is_exit_2_naming_it(env_repo, github_api,
                                                                        git_server, capsys):  # fmt: skip
    files = branches()
    del files["env/staging"]
    bed = Bed(env_repo(files), github_api, git_server)
    run = bed.run(capsys)
    assert run.code == 2 and run.out == ""
    assert run.err.startswith("promoter: error: branch 'env/staging' does not exist in ")
    assert len(run.err.splitlines()) == 1


def test_files_the_one_pass_reader_leaves_show_what_locate_says(bed, capsys):
    """status reads most files in one pass over libyaml's events (promoter.yamlread); any
    other file goes to yamledit.locate, and its cell shows locate's error, word for word."""
    from promoter.errors import EditError
    from promoter.yamledit import locate
    from promoter.yamlread import UNUSUAL, read_scalar

    unusual = {
        "env/dev": "image:\n  tag: 1.0.0\n  tag: 1.1.0\n",  # duplicate key
        "env/staging": "base: &t 1.0.0\nimage:\n  tag: *t\n",  # an alias of an anchor
        "env/prod": "image:\n  tag: 1.0.0\nbad: [\n",  # not valid YAML
    }
    for branch, text in unusual.items():
        bed.repo.commit(branch, {"apps/web/values.yaml": text}, "hand edit")
    run = bed.run(capsys, forge="none")
    assert run.code == 0, run.output
    for branch, text in unusual.items():
        assert read_scalar(text, ("image", "tag")) is UNUSUAL
        with pytest.raises(EditError) as err:
            locate(text, ("image", "tag"))
        assert f"{branch.removeprefix('env/')}: web/web tag: {err.value}" in run.out
    # The staging alias reads as 1.0.0 nowhere: a cell that cannot be read shows no value.
    web_row = next(line for line in run.out.splitlines() if line.startswith("web/web tag"))
    assert "1.0.0" not in web_row


def test_values_the_one_pass_reader_reads_show_as_before(bed, capsys):
    values = {"env/dev": "image:\n  tag: ~\n", "env/staging": "image: {tag: '010'}\n",
              "env/prod": "image:\r\n  tag: 1.0  # pinned\r\n"}  # fmt: skip
    for branch, text in values.items():
        bed.repo.commit(branch, {"apps/web/values.yaml": text}, "hand edit")
    data = bed.json(capsys, forge="none")
    got = {env: v["value"] for env, v in pin(data, "web/web tag")["values"].items()}
    assert got == {"dev": "", "staging": "010", "prod": "1.0"}
