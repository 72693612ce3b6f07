"""`promoter metrics` on a generated history with known answers: commits with trailers written at
chosen times onto env branches of the session's git server, statuses posted at chosen times on
the strict GitHub double, the clock injected. Every expected figure is worked out by hand below.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from promoter.commands.metrics import metrics, render, sparkline
from promoter.metrics import percentile
from promoter.options import Options
from promoter.sandbox import TEST_TOKEN
from promoter.sandbox.envrepo import _commit_command, _fast_import, rev_parse
from promoter.sandbox.github_api import GitHubApiDouble
from promoter.sinks import md_text
from tests.helpers import run_cli

pytest_plugins = ["tests.forge_fixtures"]

CONFIG = """\
environments:
  dev: {branch: env/dev, gate: {require: ["continuous-delivery/{app}"]}}
  prod:
    branch: env/prod
    from: dev
    gate: {require: ["continuous-delivery/{app}"], soak: 10m}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag}
"""

# The window: 5 days from B, which is midnight 20 days before today (real time: the double
# and the CLI test below read the real clock; the function tests inject NOW = B + 5 days).
B = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=20)
NOW = B + timedelta(days=5)
H, M, D = 3600, 60, 86400


def at(seconds: int) -> datetime:
    return B + timedelta(seconds=seconds)


def message(
    verb: str,
    env: str,
    app: str,
    tag: str,
    source: str | None = None,
    rollback_to: str | None = None,
) -> str:
    lines = [
        f"{verb}({env}): {app} {tag}",
        "",
        f"Promoter-Environment: {env}",
        f"Promoter-Change: {app}/{app} image.tag 1.0.0 -> {tag}",
    ]
    if source:
        lines.append(f"Promoter-Source: {source}")
    if rollback_to:
        lines.append(f"Promoter-Rollback-To: {rollback_to}")
    lines.append("Promoter-Actor: ci-bot")
    return "\n".join(lines) + "\n"


class History:
    """Writes commits at chosen times (fast-import, one commit each, parent = the tip) and
    statuses at chosen times (the double's test control)."""

    def __init__(self, path: Path, name: str, api: GitHubApiDouble) -> None:
        self.path, self.name, self.api = path, name, api

    def commit(self, branch: str, when: int, text: str, parent: bool = True) -> str:
        ref = f"refs/heads/{branch}"
        tip = rev_parse(self.path, ref) if parent else None
        files = {f"{branch}.txt": f"{when}\n", "promoter.yaml": CONFIG}
        _fast_import(self.path, [_commit_command(ref, tip, files, text, int(at(when).timestamp()))])
        return rev_parse(self.path, ref)

    def status(self, sha: str, app: str, state: str, when: int) -> None:
        self.api.add_status(
            self.name, sha, f"continuous-delivery/{app}", state, updated_at=at(when)
        )


@pytest.fixture
def bed(env_repo: Any, github_api: GitHubApiDouble) -> tuple[Any, dict[str, str]]:
    """dev: D1..D8 (a gate failure fixed by the next change, a change deployed only through
    its successor's statuses, a failure after a deployment, a rollback); prod (soak 10m): P0 (source
    unknown), P1..P3 promoted from dev, R1 a rollback after P3 failed, P4 still pending."""
    repo = env_repo()
    h = History(repo.path, repo.name, github_api)
    h.commit("main", -10 * D, "config\n", parent=False)
    h.commit("env/dev", -10 * D, "seed dev\n", parent=False)
    p_seed = h.commit("env/prod", -10 * D, "seed prod\n", parent=False)
    app = "acme/web@" + "a" * 40
    s: dict[str, str] = {}
    s["D1"] = h.commit("env/dev", 1 * H, message("update", "dev", "web", "1.1.0", app))
    h.status(s["D1"], "web", "pending", 1 * H + 2 * M)
    h.status(s["D1"], "web", "success", 1 * H + 10 * M)
    s["P0"] = h.commit(
        "env/prod", 12 * H, message("promote", "prod", "web", "1.0.9", "dev@" + "f" * 40)
    )
    h.status(s["P0"], "web", "success", 12 * H + 5 * M)
    s["D2"] = h.commit("env/dev", D, message("update", "dev", "api", "2.1.0", app))
    h.status(s["D2"], "api", "failure", D + 20 * M)
    s["D3"] = h.commit("env/dev", D + H, message("update", "dev", "api", "2.1.1", app))
    h.status(s["D3"], "api", "success", D + H + 5 * M)
    s["P1"] = h.commit(
        "env/prod", D + 2 * H, message("promote", "prod", "web", "1.1.0", f"dev@{s['D1']}")
    )
    h.status(s["P1"], "web", "success", D + 2 * H + 5 * M)
    s["D4"] = h.commit("env/dev", 2 * D, message("update", "dev", "web", "1.2.0", app))
    s["D5"] = h.commit("env/dev", 2 * D + 5 * M, message("update", "dev", "web", "1.3.0", app))
    h.status(s["D5"], "web", "success", 2 * D + 8 * M)
    s["P2"] = h.commit(
        "env/prod", 2 * D + H, message("promote", "prod", "api", "2.1.1", f"dev@{s['D3']}")
    )
    h.status(s["P2"], "api", "success", 2 * D + H + 10 * M)
    s["D6"] = h.commit("env/dev", 3 * D, message("update", "dev", "web", "1.4.0", app))
    h.status(s["D6"], "web", "success", 3 * D + 30 * M)
    h.status(s["D6"], "web", "failure", 3 * D + 2 * H)
    h.status(s["D6"], "web", "success", 3 * D + 2 * H + 30 * M)
    s["P3"] = h.commit(
        "env/prod", 3 * D + H, message("promote", "prod", "web", "1.3.0", f"dev@{s['D5']}")
    )
    h.status(s["P3"], "web", "success", 3 * D + H + 5 * M)
    h.status(s["P3"], "web", "failure", 3 * D + 3 * H)
    s["R1"] = h.commit(
        "env/prod", 3 * D + 4 * H, message("rollback", "prod", "web", "1.1.0", rollback_to=s["P1"])
    )
    h.status(s["R1"], "web", "success", 3 * D + 4 * H + 5 * M)
    s["D7"] = h.commit("env/dev", 3 * D + 12 * H, message("update", "dev", "web", "1.5.0", app))
    h.status(s["D7"], "web", "success", 3 * D + 12 * H + 10 * M)
    s["D8"] = h.commit(
        "env/dev", 4 * D, message("rollback", "dev", "web", "1.4.0", rollback_to=s["D6"])
    )
    h.status(s["D8"], "web", "success", 4 * D + 5 * M)
    s["P4"] = h.commit(
        "env/prod", 4 * D + H, message("promote", "prod", "web", "1.4.0", f"dev@{s['D6']}")
    )
    h.status(s["P4"], "web", "pending", 4 * D + H + M)
    h.status(p_seed, "web", "failure", -9 * D)  # before the window: not counted
    return repo, s


# The answers, by hand (seconds).
# dev: deployed D1 at 1h10m (lead 10m), D3 at 1d1h05m (5m), D4 and D5 both at 2d0h08m through
# D5's status (8m, 3m), D6 at 3d0h30m (30m); D2's gate failed. Failed: D2 (gate), D6 (a
# failure at 3d2h while it was the newest change), D7 (deployed at 3d12h10m, 10m, no failure
# status, but the next change D8 rolls back; D8 deployed at 4d0h05m, 5m from its own commit).
# Incidents: 1d0h20m -> 1d1h05m (45m), 3d2h -> 3d2h30m (30m).
DEV_LEADS = [600, 300, 480, 180, 1800, 600, 300]
DEV_RESTORES = [2700, 1800]
# prod (soak 10m): P0 at 12h15m (lead 15m from its own commit: its source is unknown), P1 at
# 1d2h15m (from D1 at 1h: 25h15m), P2 at 2d1h20m (from D3 at 1d1h: 24h20m), P3 at 3d1h15m
# (from D5 at 2d0h05m: 25h10m), R1 at 3d4h15m (15m, its own); P4 pending. Failed: P3 (a failure
# at 3d3h, and a rollback next). Incident: 3d3h -> 3d4h05m (1h05m).
PROD_LEADS = [900, 90900, 87600, 90600, 900]
PROD_RESTORES = [3900]


def expected(
    leads: list[int],
    restores: list[int],
    changes: int,
    failed: int,
    settled: int,
    pending: int,
    rollbacks: int,
) -> dict[str, Any]:
    return {
        "changes": changes,
        "rollbacks": rollbacks,
        "pending": pending,
        "deployment_frequency": {"deployments": len(leads), "per_day": len(leads) / 5},
        "lead_time": {
            "count": len(leads),
            "median_seconds": percentile(leads, 50),
            "p90_seconds": percentile(leads, 90),
        },
        "change_failure_rate": {
            "failed": failed,
            "changes": settled,
            "rate": round(failed / settled, 4),
        },
        "time_to_restore": {
            "incidents": len(restores),
            "restored": len(restores),
            "open": 0,
            "median_seconds": percentile(restores, 50),
            "p90_seconds": percentile(restores, 90),
        },
    }


DEV = expected(DEV_LEADS, DEV_RESTORES, changes=8, failed=3, settled=8, pending=0, rollbacks=1)
PROD = expected(PROD_LEADS, PROD_RESTORES, changes=6, failed=1, settled=5, pending=1, rollbacks=1)
ALL = expected(
    DEV_LEADS + PROD_LEADS,
    DEV_RESTORES + PROD_RESTORES,
    changes=14,
    failed=4,
    settled=13,
    pending=1,
    rollbacks=2,
)


def test_known_answers_by_hand():
    # The nearest-rank figures the expectations rely on, spelled out.
    assert (DEV["lead_time"]["median_seconds"], DEV["lead_time"]["p90_seconds"]) == (480, 1800)
    assert (PROD["lead_time"]["median_seconds"], PROD["lead_time"]["p90_seconds"]) == (87600, 90900)
    assert (ALL["lead_time"]["median_seconds"], ALL["lead_time"]["p90_seconds"]) == (600, 90600)
    assert (ALL["time_to_restore"]["median_seconds"], ALL["time_to_restore"]["p90_seconds"]) == (
        2700,
        3900,
    )
    assert ALL["change_failure_rate"]["rate"] == 0.3077


def options(repo: Any, api: GitHubApiDouble, forge: str = "github") -> Options:
    return Options(repo=repo.url, token=TEST_TOKEN, forge=forge, api_url=api.api_url)


def picked(env: dict[str, Any]) -> dict[str, Any]:
    keys = ("changes", "rollbacks", "pending", "deployment_frequency", "change_failure_rate")
    out = {k: env[k] for k in keys}
    out["lead_time"] = {k: env["lead_time"][k] for k in ("count", "median_seconds", "p90_seconds")}
    out["time_to_restore"] = {k: v for k, v in env["time_to_restore"].items()}
    return out


def test_json_reproduces_the_known_answers(bed, github_api):
    repo, _ = bed
    result = metrics(options(repo, github_api), since="5d", now=lambda: NOW)
    data = json.loads(json.dumps(result.as_dict()))
    envs = {e["name"]: e for e in data["environments"]}
    assert picked(envs["dev"]) == DEV
    assert picked(envs["prod"]) == PROD
    assert picked(data["overall"]) == ALL
    assert envs["prod"]["lead_time"]["from_upstream"] == 3  # P1, P2, P3 through dev
    assert envs["prod"]["lead_time"]["unresolved"] == 1  # P0: dev@fff... was never read
    assert data["window"] == {"since": B.isoformat(), "until": NOW.isoformat(), "days": 5.0}
    assert data["forge"] == "github"
    assert envs["dev"]["daily"]["deployments"] == [1, 1, 2, 2, 1]
    assert envs["prod"]["daily"]["deployments"] == [1, 1, 1, 2, 0]
    assert envs["dev"]["daily"]["lead_time"] == [600, 300, 180, 600, 300]
    assert envs["prod"]["daily"]["time_to_restore"] == [None, None, None, 3900, None]
    assert any("cannot read the application commit" in n for n in data["notes"])
    assert any("1 promotion(s)" in n for n in data["notes"])
    # Statuses were read once per commit in the window (14 changes), 2 requests each.
    assert data["status_reads"] == 14


def _row(cells: list[str], env: dict[str, Any]) -> None:
    lead, cfr, ttr = env["lead_time"], env["change_failure_rate"], env["time_to_restore"]
    rate = f"{cfr['rate'] * 100:.1f}% ({cfr['failed']}/{cfr['changes']})"
    freq = env["deployment_frequency"]
    assert cells == [
        str(freq["deployments"]),
        f"{freq['per_day']:.2f}",
        duration_text(lead["median_seconds"]),
        duration_text(lead["p90_seconds"]),
        rate,
        duration_text(ttr["median_seconds"]),
        duration_text(ttr["p90_seconds"]),
        str(ttr["incidents"]),
        str(env["changes"]),
        str(env["pending"]),
        str(env["rollbacks"]),
    ]


def duration_text(seconds: int) -> str:
    # The table's durations, spelled out for the values above.
    return {
        180: "3m00s",
        300: "5m00s",
        480: "8m00s",
        600: "10m00s",
        900: "15m00s",
        1800: "30m00s",
        2700: "45m00s",
        3900: "1h05m",
        87600: "1d00h",
        90600: "1d01h",
        90900: "1d01h",
    }[seconds]


def test_table_reproduces_the_known_answers(bed, github_api):
    repo, _ = bed
    text = render(metrics(options(repo, github_api), since="5d", now=lambda: NOW), "table")
    lines = text.splitlines()
    assert lines[0].startswith("metrics ") and lines[0].endswith("(5 days), statuses from github")
    rows = {line.split()[0]: line for line in lines[2:] if not line.startswith("note:")}
    for name, env in (("dev", DEV), ("prod", PROD), ("(all)", ALL)):
        words = rows[name].split()[1:]
        cells = [*words[:4], f"{words[4]} {words[5]}", *words[6:]]
        _row(cells, env)


def test_markdown_reproduces_the_known_answers_with_a_sparkline_per_metric(bed, github_api):
    repo, _ = bed
    text = render(metrics(options(repo, github_api), since="5d", now=lambda: NOW), "markdown")
    rows: dict[str, str] = {}
    for line in text.splitlines():  # the figures' table comes first, the charts' after it
        if line.startswith("| "):
            rows.setdefault(line.split(" | ")[0].lstrip("| "), line)
    for name, env in (("dev", DEV), ("prod", PROD), ("**all**", ALL)):
        cells = [c.strip() for c in rows[name].strip("| ").split(" | ")][1:12]
        _row([c.replace("\\", "") for c in cells], env)
        assert md_text(cells[4].replace("\\", "")) == cells[4]  # escaped for Markdown
    charts = [line for line in text.splitlines() if line.startswith("| ") and "`" in line]
    dev_chart = next(line for line in charts if line.startswith("| dev |"))
    # deployments [1,1,2,2,1]; lead-time medians [600,300,180,600,300]; failure rate by commit
    # day [0/1, 1/2, 0/2, 2/2, 0/1] (D1 | D2 D3 | D4 D5 | D6 D7 | D8); restores [-,2700,-,1800,-].
    assert dev_chart == (
        f"| dev | `{sparkline([1, 1, 2, 2, 1])}` | `█▄▃█▄` "
        f"| `{sparkline([0, 0.5, 0, 1, 0])}` | `·█·▆·` |"
    )
    assert sparkline([1, 1, 2, 2, 1]) == "▄▄██▄"
    assert sparkline([0, 0.5, 0, 1, None]) == "▁▄▁█·"


def test_the_cli_gives_the_same_figures_and_checks_its_input(bed, github_api, capsys):
    repo, _ = bed
    args = (
        "--repo",
        repo.url,
        "--token",
        TEST_TOKEN,
        "--forge",
        "github",
        "--api-url",
        github_api.api_url,
    )
    # The CLI reads the real clock; --until closes the window where the tests above close it.
    window = ("--since", B.isoformat(), "--until", NOW.isoformat())
    run = run_cli(capsys, *args, "--output", "json", "metrics", *window)
    assert run.code == 0, run.output
    data = json.loads(run.out)
    envs = {e["name"]: e for e in data["environments"]}
    assert (picked(envs["dev"]), picked(envs["prod"]), picked(data["overall"])) == (DEV, PROD, ALL)
    # Without --until, the window ends now: the same changes, the same figures but per day.
    run = run_cli(capsys, *args, "--output", "json", "metrics", "--since", B.isoformat())
    later = json.loads(run.out)["overall"]
    assert picked(later)["lead_time"] == ALL["lead_time"]
    assert picked(later)["change_failure_rate"] == ALL["change_failure_rate"]
    run = run_cli(
        capsys, *args, "metrics", "--env", "prod", "--since", B.isoformat(), "--format", "markdown"
    )
    assert run.code == 0 and "| prod |" in run.out and "| dev |" not in run.out
    bad_input = (
        (("--since", "soon"), "--since 'soon'"),
        (("--env", "qa"), "qa"),
        (("--since", "1d", "--until", "2999-01-01"), "--until 2999-01-01: that is in the future"),
        (("--since", NOW.isoformat(), "--until", B.isoformat()), "the window is empty"),
    )
    for bad, says in bad_input:
        run = run_cli(capsys, *args, "metrics", *bad)
        assert run.code == 2, run.output
        assert says in run.err and len(run.err.strip().splitlines()) == 1


def test_without_a_forge_the_status_metrics_are_unavailable_not_zero(bed, github_api, capsys):
    repo, _ = bed
    result = metrics(options(repo, github_api, forge="none"), since="5d", now=lambda: NOW)
    data = result.as_dict()
    for env in data["environments"]:
        assert env["deployment_frequency"] is None and env["lead_time"] is None
        assert env["change_failure_rate"] is None and env["time_to_restore"] is None
    assert [e["changes"] for e in data["environments"]] == [8, 6]
    assert data["overall"]["rollbacks"] == 2
    assert data["forge"] is None and data["status_reads"] == 0
    assert "unavailable" in data["notes"][0]
    assert "n/a" in render(result, "table") and "no forge" in render(result, "markdown")


# --- the pure figures, at the edges ---------------------------------------------------------


def _status(context: str, state: str, seconds: int) -> Any:
    from promoter.forge.base import CommitStatus

    return CommitStatus(context, state, at(seconds))  # type: ignore[arg-type]


def test_a_soak_that_ends_after_now_is_pending_and_an_open_incident_stays_open():
    from promoter.metrics import Change, EnvInput, figures

    web, api = "continuous-delivery/web", "continuous-delivery/api"
    T = int(B.timestamp())
    env = EnvInput(
        "prod",
        "env/prod",
        ("continuous-delivery/{app}",),
        timedelta(minutes=10),
        chain=[("a" * 40, T + H), ("b" * 40, T + 2 * H)],
        changes=[Change("a" * 40, T + H, ("web",)), Change("b" * 40, T + 2 * H, ("api",))],
        statuses={
            "a" * 40: [_status(web, "success", H + 5 * M), _status(api, "failure", H + 6 * M)],
            "b" * 40: [_status(api, "success", 3 * H - 5 * M)],  # soaks until 3h05m
        },
    )
    data = figures(env, B, at(3 * H)).as_dict()
    # a: web soaked at 1h15m (api is not its app); b: its soak ends after now.
    assert data["deployment_frequency"]["deployments"] == 1
    assert data["pending"] == 1
    # a was the newest change when api failed; b has no verdict, so it is not counted.
    assert data["change_failure_rate"] == {"failed": 1, "changes": 1, "rate": 1.0}
    # api failed at 1h06m and its success at 2h55m restores it.
    assert data["time_to_restore"]["median_seconds"] == 2 * H - 11 * M
    later = figures(env, B, at(4 * H)).as_dict()
    assert later["deployment_frequency"]["deployments"] == 2 and later["pending"] == 0
    still = figures(env, B, at(2 * H)).as_dict()  # before api's success: open
    assert still["time_to_restore"]["open"] == 1 and still["time_to_restore"]["restored"] == 0


def test_a_forge_error_stops_the_status_reads_and_is_one_line(bed, github_api, capsys):
    repo, _ = bed
    github_api.fail("/repos/*/commits/*/statuses", [401] * 100)
    before = len(github_api.request_log)
    run = run_cli(capsys, "--repo", repo.url, "--token", TEST_TOKEN, "--forge", "github",
                  "--api-url", github_api.api_url, "metrics", "--since", B.isoformat())  # fmt: skip
    assert run.code == 1, run.output
    assert "authentication failed" in run.err and len(run.err.strip().splitlines()) == 1
    reads = [p for _, p, _ in github_api.request_log[before:] if p.endswith("/statuses")]
    assert len(reads) < 14, reads  # the first answer stops the rest (4 in flight at most)
    github_api.reset()
