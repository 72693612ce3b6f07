"""The `metrics` figure: `promoter metrics` over 90 days x 20 deployments a day on 5 environments
(9,000 commits with trailers, 9,225 commit statuses on the GitHub double), against the least
work that reads the same commits, trailers and statuses.

Repo (cached under bench/work/repos/bench-metrics/, by VERSION): `main` holds promoter.yaml (5
environments in a chain, dev → qa → staging → preprod → prod, gate `continuous-delivery/{app}`,
20 apps); each environment branch has a root commit 10 days before the window, then 1,800
promoter commits, one every 72 minutes: on dev an update (`Promoter-Source: acme/appN@...`),
downstream a promotion 15 minutes after its upstream's (`Promoter-Source: <upstream>@<sha>`);
every 100th commit (k % 100 == 50) is a rollback instead (`Promoter-Rollback-To`; its value is
not read by metrics). Written by one `git fast-import` per branch (each needs its upstream's
SHAs), then repacked with a bitmap and a commit-graph, as a forge keeps it.

Statuses (posted on the double at the start of the section, in memory): each commit gets
`continuous-delivery/appN` success 5 minutes after it; every 40th (k % 40 == 20) first a
failure after 2 minutes and the success after 10. So, known answers checked before timing:
9,000 changes, all deployed, 315 failed (45 failures + 18 changes followed by a rollback per
environment), 225 incidents restored in 8 minutes each.

Rows: `promoter metrics` (table, the 90-day window by `--since`/`--until`, statuses from the
GitHub double); the same with `--forge none` (git only: the status figures are unavailable);
`git floor`: one blobless, treeless fetch of the 5 branches `--shallow-since` the window, then
`git log --first-parent` of each printing hash, time and the Promoter-Source / Rollback-To
trailers; `git + statuses floor`: that, plus one `GET /commits/{sha}/statuses` per commit
(4 in flight, like promoter) with the standard library's HTTP client: the fewest requests that
read the same data (promoter sends 2 per commit on GitHub: statuses and check runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bench.repos import REPOS, WORK, BenchRepo, Spec, _data, _git
from promoter.sandbox.envrepo import git_env
from promoter.sandbox.gitserver import GitHttpServer

if TYPE_CHECKING:
    from bench.run import Harness
    from promoter.sandbox.github_api import GitHubApiDouble

# 2: packs with their reverse index on disk (GitHttpServer's repo config, git >= 2.41's default).
VERSION = 2
ENVS = ("dev", "qa", "staging", "preprod", "prod")
APPS = 20
DAYS = 90
PER_DAY = 20
COMMITS = DAYS * PER_DAY  # per environment
STEP = 86400 // PER_DAY  # 72 minutes
HOP = 900  # a promotion lands 15 minutes after its upstream's commit
START = 1_700_006_400  # 2023-11-15 00:00 UTC: the window's start
END = START + DAYS * 86400
NAME = f"bench-metrics/envs-5x90-v{VERSION}"
META = WORK / f"metrics-5x90-v{VERSION}.json"
X = "\N{MULTIPLICATION SIGN}"
EXPECTED = {"changes": 9000, "deployments": 9000, "failed": 315, "incidents": 225,
            "restore_median": 480}  # fmt: skip


def _iso(stamp: int) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def promoter_yaml() -> bytes:
    lines = ["environments:"]
    for n, env in enumerate(ENVS):
        lines += [f"  {env}:", f"    branch: env/{env}"]
        if n:
            lines.append(f"    from: {ENVS[n - 1]}")
        lines.append("    gate: {require: ['continuous-delivery/{app}']}")
    lines.append("apps:")
    for app in range(APPS):
        pin = f"{{file: apps/app{app}/values.yaml, tag: image.tag}}"
        lines += [f"  app{app}:", "    images:", f"      app{app}: {pin}"]
    return ("\n".join(lines) + "\n").encode()


def when(env: int, k: int) -> int:
    return START + k * STEP + 60 + env * HOP


def _message(env: int, k: int, upstream: list[str]) -> str:
    name, app = ENVS[env], k % APPS
    old, new = f"1.{k // APPS}.{k % 7}", f"1.{k // APPS}.{k % 7 + 1}"
    if k % 100 == 50:
        head = f"rollback({name}): app{app} {old}"
        tail = f"Promoter-Rollback-To: {k:040x}\n"
    elif env == 0:
        head = f"update({name}): app{app} {new}"
        tail = f"Promoter-Source: acme/app{app}@{k + 1:040x}\n"
    else:
        head = f"promote({name}): app{app} {new}"
        tail = f"Promoter-Source: {ENVS[env - 1]}@{upstream[k]}\n"
    return (f"{head}\n\nPromoter-Environment: {name}\n"
            f"Promoter-Change: app{app}/app{app} image.tag {old} -> {new}\n{tail}"
            "Promoter-Actor: ci-bot\n")  # fmt: skip


def _commit(ref: str, stamp: int, message: str, body: bytes, root: bool = False) -> bytes:
    ident = f"ci-bot <ci-bot@users.noreply.example> {stamp} +0000".encode()
    head = b"commit %s\nauthor %s\ncommitter %s\n" % (ref.encode(), ident, ident)
    return head + _data(message.encode()) + (b"deleteall\n" if root else b"") + body


def _fast_import(path: object, pieces: list[bytes]) -> None:
    subprocess.run(["git", "--git-dir", str(path), "fast-import", "--quiet", "--done"],
                   input=b"feature done\n" + b"".join(pieces) + b"done\n", env=git_env(),
                   check=True, capture_output=True)  # fmt: skip


def generate() -> dict[str, list[str]]:
    """Write the repo; env → its 1,800 commits' SHAs, oldest first."""
    import shutil

    path = REPOS / f"{NAME}.git"
    if path.exists():
        shutil.rmtree(path)
    GitHttpServer(REPOS, token="unused").create_repo(NAME, default_branch="main")
    config = b"M 100644 inline promoter.yaml\n" + _data(promoter_yaml())
    _fast_import(path, [_commit("refs/heads/main", START - 10 * 86400, "promoter.yaml", config,
                                root=True)])  # fmt: skip
    shas: dict[str, list[str]] = {}
    upstream: list[str] = []
    for n, env in enumerate(ENVS):
        ref = f"refs/heads/env/{env}"
        files = b"".join(b"M 100644 inline apps/app%d/values.yaml\n" % app
                         + _data(b"image:\n  tag: 1.0.0\n") for app in range(APPS))  # fmt: skip
        pieces = [_commit(ref, START - 10 * 86400, f"seed {env}", files, root=True)]
        for k in range(COMMITS):
            values = b"image:\n  tag: 1.%d.%d\n" % (k // APPS, k % 7 + 1)
            body = b"M 100644 inline apps/app%d/values.yaml\n" % (k % APPS) + _data(values)
            pieces.append(_commit(ref, when(n, k), _message(n, k, upstream), body))
        _fast_import(path, pieces)
        listed = _git(path, "rev-list", "--first-parent", "--reverse", ref).decode().split()
        shas[env] = upstream = listed[1:]
    _git(path, "repack", "-a", "-d", "-b", "-q")
    _git(path, "commit-graph", "write", "--reachable")
    _git(path, "symbolic-ref", "HEAD", "refs/heads/main")
    return shas


def ensure() -> tuple[BenchRepo, dict[str, list[str]]]:
    path = REPOS / f"{NAME}.git"
    if not (META.exists() and path.exists()):
        print(f"generating {NAME}: {len(ENVS)} x {COMMITS} commits", flush=True)
        start = time.perf_counter()
        shas = generate()
        META.write_text(json.dumps({"shas": shas, "seconds": time.perf_counter() - start}))
    meta = json.loads(META.read_text())
    config = WORK / f"metrics-5x90-v{VERSION}.promoter.yaml"
    config.write_bytes(promoter_yaml())
    spec = Spec("metrics 5x90", apps=APPS, files=APPS, commits=COMMITS * len(ENVS))
    tip = _git(path, "rev-parse", "refs/heads/env/dev").decode().strip()
    repo = BenchRepo(spec, path, NAME, tip, config, meta["seconds"], True)
    return repo, meta["shas"]


def post_statuses(api: GitHubApiDouble, shas: dict[str, list[str]]) -> int:
    """Every commit's statuses, at their times (the double's test control); how many."""
    count = 0
    for n, env in enumerate(ENVS):
        for k, sha in enumerate(shas[env]):
            context, t = f"continuous-delivery/app{k % APPS}", when(n, k)
            if k % 40 == 20:
                api.add_status(NAME, sha, context, "failure", updated_at=_at(t + 120))
                api.add_status(NAME, sha, context, "success", updated_at=_at(t + 600))
                count += 2
            else:
                api.add_status(NAME, sha, context, "success", updated_at=_at(t + 300))
                count += 1
    return count


def _at(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


FLOOR = r"""
set -eu
url=$1 since=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
auth=$(printf 'x-access-token:%s' "$TOKEN" | base64 | tr -d '\n')
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader
export GIT_CONFIG_VALUE_0="Authorization: Basic $auth"
git init --quiet --bare "$dir/r.git"
git --git-dir "$dir/r.git" fetch --quiet --no-tags --filter=tree:0 --shallow-since="$since" \
    "$url" 'refs/heads/env/*:refs/heads/env/*'
keys='key=Promoter-Source,key=Promoter-Rollback-To,valueonly,separator=%x20'
for b in dev qa staging preprod prod; do
    git --git-dir "$dir/r.git" log --first-parent --since="$since" \
        --format="%H %ct %(trailers:$keys)" "env/$b" > "$dir/$b.log"
done
cat "$dir"/*.log | cut -d' ' -f1 > "$dir/shas"
test "$(wc -l < "$dir/shas")" -eq 9000
if [ -n "${API:-}" ]; then
    python3 - "$dir/shas" <<'PY'
import base64, concurrent.futures, http.client, os, sys, threading, urllib.parse
api = urllib.parse.urlsplit(os.environ["API"])
auth = {"Authorization": "token " + os.environ["TOKEN"], "Accept": "application/vnd.github+json"}
local = threading.local()
def get(sha):
    conn = getattr(local, "conn", None) or http.client.HTTPConnection(api.hostname, api.port)
    local.conn = conn
    path = f"{api.path}/repos/{os.environ['REPOSITORY']}/commits/{sha}/statuses"
    conn.request("GET", path + "?per_page=100", headers=auth)
    body = conn.getresponse().read()
    assert body.startswith(b"["), body[:200]
    return len(body)
shas = open(sys.argv[1]).read().split()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(get, shas))
PY
fi
"""


def section_metrics(h: Harness) -> None:
    from bench.run import Variant, _progress
    from promoter.sandbox.github_api import GitHubApiDouble

    repo, shas = ensure()
    api = GitHubApiDouble(h.server, h.env["PROMOTER_TOKEN"])
    api.start()
    try:
        _progress("metrics: posting statuses ")
        posted = post_statuses(api, shas)
        url = h.server.repo_url(repo.name)
        window = ["--since", _iso(START), "--until", _iso(END)]
        github = [h.promoter, "--repo", url, "--forge", "github", "--api-url", api.api_url]
        plain = [h.promoter, "--repo", url, "--forge", "none"]
        before = len(api.request_log)
        _check(h, [*github, "--output", "json", "metrics", *window])
        api_requests = len(api.request_log) - before
        floor_env = {"API": api.api_url, "REPOSITORY": NAME}
        variants = [
            Variant("promoter metrics", "table; 5 environments, 90 days; statuses from the "
                    "GitHub double (2 requests per commit)",
                    lambda _: ([*github, "metrics", *window], {}), kind="plain",
                    ratio_to="git + statuses floor"),
            Variant("promoter metrics --forge none", "the same, git only (status figures "
                    "unavailable)", lambda _: ([*plain, "metrics", *window], {}), kind="plain",
                    ratio_to="git floor"),
            Variant("git floor", "fetch --filter=tree:0 --shallow-since of the 5 branches, git "
                    "log --first-parent with the trailers",
                    lambda _: (["sh", "-c", FLOOR, "floor", url, _iso(START)], {}),
                    kind="script"),
            Variant("git + statuses floor", "the git floor, then GET .../statuses once per "
                    "commit (4 in flight, http.client)",
                    lambda _: (["sh", "-c", FLOOR, "floor", url, _iso(START)], {}),
                    kind="script", env=floor_env),
        ]  # fmt: skip
        _progress("\nmetrics ")
        rows = h.compare(repo, variants, reps=min(h.reps, 3))
        _progress("\n")
    finally:
        api.stop()
    by = {r.label: r for r in rows}
    full = by["promoter metrics"].time.median
    ratio = full / by["git + statuses floor"].time.median
    git_ratio = by["promoter metrics --forge none"].time.median / by["git floor"].time.median
    h.add_section(
        "metrics",
        f"metrics over {DAYS} days x {PER_DAY} deployments a day on {len(ENVS)} environments",
        f"`promoter metrics --since {_iso(START)} --until {_iso(END)}` on {len(ENVS)} branches "
        f"of {COMMITS:,} promoter commits each ({len(ENVS) * COMMITS:,} in the window) and "
        f"{posted:,} commit statuses on the GitHub double. HTTP requests are the git "
        f"server's; the GitHub double answered {api_requests:,} requests per `promoter "
        "metrics` run (statuses and check runs of each commit). Nothing is written.",
        rows,
        extra=f"promoter metrics / git + statuses floor: **{ratio:.2f}{X}**; git side "
        f"(`--forge none` / git floor): {git_ratio:.2f}{X}.",
    )


def _check(h: Harness, argv: list[str]) -> None:
    """One untimed run: the answers the history was built with, or the figure means nothing."""
    proc = subprocess.run(argv, env=h.env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"promoter metrics failed:\n{proc.stderr.decode(errors='replace')}")
    overall = json.loads(proc.stdout)["overall"]
    found = {
        "changes": overall["changes"],
        "deployments": overall["deployment_frequency"]["deployments"],
        "failed": overall["change_failure_rate"]["failed"],
        "incidents": overall["time_to_restore"]["restored"],
        "restore_median": overall["time_to_restore"]["median_seconds"],
    }
    if found != EXPECTED:
        raise SystemExit(f"promoter metrics saw {found}; expected {EXPECTED}")


def main() -> None:
    """`python -m bench.metrics`: generate the repo and time one run of promoter metrics."""
    import os

    from promoter.sandbox.github_api import GitHubApiDouble

    repo, shas = ensure()
    with GitHttpServer(REPOS, "bench_token") as server:
        api = GitHubApiDouble(server, "bench_token")
        api.start()
        start = time.perf_counter()
        posted = post_statuses(api, shas)
        print(f"{posted} statuses posted in {time.perf_counter() - start:.1f} s")
        env = {**os.environ, "PROMOTER_TOKEN": "bench_token"}
        argv = [sys.executable, "-m", "promoter", "--repo", server.repo_url(repo.name),
                "--forge", "github", "--api-url", api.api_url, "metrics",
                "--since", _iso(START), "--until", _iso(END)]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, check=False, text=True)
        print(f"promoter metrics: {time.perf_counter() - start:.2f} s, exit {proc.returncode}, "
              f"{len(api.request_log)} API requests")  # fmt: skip
        print(proc.stdout or proc.stderr)
        api.stop()


if __name__ == "__main__":
    main()
