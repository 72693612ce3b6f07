"""`promoter metrics [--env E ...] [--since 30d] [--format table|markdown|json]`: deployment
frequency, lead time for changes, change failure rate and time to restore, from the environment
branches' promoter commits (their trailers) and the forge's commit statuses; nothing else.

Read path: promoter.yaml; then each branch concerned (the environments shown and, for lead
times, their upstreams) in a repo of its own, all fetched at once, commits only (no trees, no
blobs), 256 first-parent commits deep, then deepened (usually once) to cover the window, the
depth estimated from the commit rate of what arrived; then the statuses of every commit of the shown
environments in the window, read through the forge exactly as `wait` reads them, a few at a
time in parallel (each worker with its own client). The figures are `promoter.metrics`'s.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from promoter.commands.history import Moved, promoter_commit
from promoter.context import read_config, resolve_token, scratch_repo
from promoter.errors import UsageError
from promoter.metrics import Change, EnvInput, Figures, combine, figures
from promoter.options import Options
from promoter.sinks import md_code, md_text

if TYPE_CHECKING:
    from promoter.config import Config, Environment
    from promoter.forge.base import CommitStatus, Forge
    from promoter.gitrepo import CommitInfo, GitRepo

FIRST_DEPTH = 256  # first-parent commits fetched per branch at first
LOOKBACK = timedelta(days=7)  # upstream sources are looked for this far before the window
WORKERS = 4  # status reads in flight at once (GitHub asks clients not to flood it)
_SINCE = re.compile(r"^([0-9]{1,5})([dhm])$")
SPARK = "▁▂▃▄▅▆▇█"
NO_DATA = "·"


@dataclass(frozen=True)
class EnvMetrics:
    name: str
    branch: str
    figures: Figures
    commits: int  # first-parent commits of its branch in the window


@dataclass(frozen=True)
class MetricsResult:
    since: datetime
    until: datetime
    forge: str | None  # where the statuses came from; None: no forge, figures unavailable
    environments: tuple[EnvMetrics, ...]
    overall: Figures
    status_reads: int = 0  # commits whose statuses were read

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": {
                "since": self.since.isoformat(),
                "until": self.until.isoformat(),
                "days": round((self.until - self.since).total_seconds() / 86400, 4),
            },
            "forge": self.forge,
            "environments": [
                {"name": e.name, "branch": e.branch, "commits": e.commits} | e.figures.as_dict()
                for e in self.environments
            ],
            "overall": self.overall.as_dict(),
            "status_reads": self.status_reads,
            "notes": notes(self),
        }


# --------------------------------------------------------------------------- reading


def _utcnow() -> datetime:
    return datetime.now(UTC)


def parse_since(
    text: str, now: datetime, option: str = "--since", later_ok: bool = False
) -> datetime:
    """`30d`, `12h`, `90m` before `now`, or a UTC date `2026-11-01` / time
    `2026-11-01T12:00:00Z` (not after `now`)."""
    match = _SINCE.match(text.strip())
    if match:
        size = {"d": 86400, "h": 3600, "m": 60}[match[2]] * int(match[1])
        if size == 0:
            raise UsageError(f"{option} {text}: the window is empty; give e.g. 30d")
        return now - timedelta(seconds=size)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected a duration like 30d, 12h or 90m, or a date like "
            "2026-11-01"
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment > now and not later_ok:
        raise UsageError(f"{option} {text}: that is in the future")
    return moment


def metrics(
    options: Options,
    envs: Sequence[str] = (),
    since: str = "30d",
    until: str | None = None,
    forge: Forge | None = None,
    now: Callable[[], datetime] = _utcnow,
    workers: int = WORKERS,
) -> MetricsResult:
    """The figures of each environment shown (`envs`, default all) over [since, until]
    (`until`: a date or a duration before now, as `since` takes; default now)."""
    current = now().astimezone(UTC).replace(microsecond=0)
    end = current if until is None else parse_since(until, current, "--until")
    start = parse_since(since, end, later_ok=True)
    if start >= end:
        raise UsageError(
            f"--since {since} is not before --until {until or 'now'}: the window is empty"
        )
    with scratch_repo(options) as repo:
        if not options.config:
            repo.start_fetch_default()
        config = read_config(options, repo)
        for name in envs:
            config.environment(name)
        shown = [env for env in config.environments.values() if not envs or env.name in envs]
        needed = _with_upstreams(config, shown)
        cutoff = int((start - LOOKBACK).timestamp())
        read = _read_branches(repo, [env.branch for env in needed], cutoff)
        inputs = {env.name: _changes(env, config, read) for env in shown}
        windows = {
            name: [(sha, t) for sha, t in chain if t >= int(start.timestamp())]
            for name, (chain, _) in inputs.items()
        }
        statuses, kind = _statuses(options, repo, forge, windows, end, workers)
    parts = []
    for env in shown:
        changes = inputs[env.name][1]
        window = windows[env.name]
        env_input = EnvInput(env.name, env.branch, env.gate.require, env.gate.soak,
                             window, changes, statuses)  # fmt: skip
        commits = sum(1 for _, t in window if t <= int(end.timestamp()))
        parts.append(EnvMetrics(env.name, env.branch, figures(env_input, start, end), commits))
    reads = len({sha for chain in windows.values() for sha, _ in chain}) if kind else 0
    overall = combine([p.figures for p in parts])
    return MetricsResult(start, end, kind, tuple(parts), overall, reads)


def _with_upstreams(config: Config, shown: Sequence[Environment]) -> list[Environment]:
    needed = {env.name: env for env in shown}
    for env in shown:
        source = env.source
        while source is not None and source not in needed:
            needed[source] = config.environments[source]
            source = needed[source].source
    return list(needed.values())


@dataclass
class _Branch:
    chain: list[tuple[str, int]]  # first-parent commits, newest first
    commits: dict[str, tuple[CommitInfo, str]]
    trailers: dict[tuple[str, str], dict[str, list[str]] | None] = field(default_factory=dict)

    def change(self, env: str, sha: str) -> dict[str, list[str]] | None:
        """The Promoter-* trailers when `sha` is a promoter change of `env` (read as `history`
        reads it: its own, or a merged promoter commit's), else None; each read once."""
        key = (env, sha)
        if key not in self.trailers:
            found = promoter_commit(env, self.commits[sha][0], self.commits)
            self.trailers[key] = found[0] if found is not None else None
        return self.trailers[key]


def _read_branches(repo: GitRepo, branches: Sequence[str], cutoff: int) -> dict[str, _Branch]:
    """Each branch's first-parent chain back to `cutoff` (commit time) or its first commit,
    with the commits (and merges' second parents): commits only, one repo per branch, the
    fetches of all branches running at once."""
    readers = {branch: repo.sibling() for branch in dict.fromkeys(branches)}
    depth = dict.fromkeys(readers, FIRST_DEPTH)
    for branch, reader in readers.items():
        reader.start_first_parents(branch, depth[branch], trees=False)
    out: dict[str, _Branch] = {}
    while readers:
        again: dict[str, GitRepo] = {}
        for branch, reader in readers.items():
            shas, complete = reader.first_parents(branch, depth[branch], trees=False)
            commits = reader.read_commits(shas)
            seconds = [i.parents[1] for i, _ in commits.values() if len(i.parents) >= 2]
            commits.update(reader.read_commits(s for s in seconds if s not in commits))
            chain = [(sha, commits[sha][0].committed) for sha in shas]
            out[branch] = _Branch(chain, commits)
            if complete or not chain or chain[-1][1] < cutoff:
                continue
            # Deepen once, to where the commit rate so far says the cutoff is (and a margin).
            span = max(chain[0][1] - chain[-1][1], 1)
            wanted = len(chain) * (chain[0][1] - cutoff) / span
            depth[branch] = max(depth[branch] * 2, math.ceil(wanted * 1.25) + 64)
            reader.start_first_parents(branch, depth[branch], trees=False)
            again[branch] = reader
        readers = again
    return out


def _changes(
    env: Environment, config: Config, read: Mapping[str, _Branch]
) -> tuple[list[tuple[str, int]], list[Change]]:
    """The environment's first-parent chain (oldest first) and its promoter changes."""
    branch = read[env.branch]
    chain = list(reversed(branch.chain))
    changes = []
    for sha, when in chain:
        trailers = branch.change(env.name, sha)
        if trailers is None:
            continue
        apps = [Moved.read(value).app for value in trailers.get("Change", [])]
        rollback = bool(trailers.get("Rollback-To"))
        origin, kind = _origin(trailers, when, config, read)
        changes.append(Change(sha, when, tuple(dict.fromkeys(a for a in apps if a)), rollback,
                              origin, kind))  # fmt: skip
    return chain, changes


def _origin(
    trailers: Mapping[str, list[str]], when: int, config: Config, read: Mapping[str, _Branch]
) -> tuple[int, Any]:
    """When the change entered the environment repository: a promotion's source
    (`Promoter-Source: <env>@<sha>`) followed back through the upstream environments to the
    commit that brought it in (an update, a rollback or a person's commit); an update or a
    rollback is its own origin. A source commit that was not read counts from `when`."""
    kind = "own"
    for _ in range(len(config.environments) + 1):
        source = (trailers.get("Source") or [""])[0]
        env_name, at, sha = source.partition("@")
        if not at or env_name not in config.environments or trailers.get("Rollback-To"):
            return when, kind
        upstream = read.get(config.environments[env_name].branch)
        info = upstream.commits.get(sha.lower()) if upstream is not None else None
        if upstream is None or info is None:
            return when, "unresolved"
        kind, when = "upstream", info[0].committed
        found = upstream.change(env_name, sha.lower())
        if found is None:
            return when, kind
        trailers = found
    return when, kind


def _statuses(
    options: Options,
    repo: GitRepo,
    forge: Forge | None,
    windows: Mapping[str, Sequence[tuple[str, int]]],
    until: datetime,
    workers: int,
) -> tuple[dict[str, list[CommitStatus]] | None, str | None]:
    """sha → its statuses (as `wait` reads them), for every commit in the windows; (None,
    None) without a forge. Commits after `until` are not asked about."""
    from promoter.forge import detect, open_forge

    shas = sorted({sha for chain in windows.values() for sha, t in chain
                   if t <= int(until.timestamp())})  # fmt: skip
    if forge is not None:
        return {sha: forge.statuses(sha) for sha in shas}, forge.info.kind
    info = detect(options.forge, options.api_url, repo.remote.url)
    if info.kind == "none":
        return None, None
    token = resolve_token(options, repo.remote.url)
    local = threading.local()

    def read(sha: str) -> list[CommitStatus]:
        client: Forge | None = getattr(local, "forge", None)
        if client is None:
            client = local.forge = open_forge(info, token)
        return client.statuses(sha)

    # The first error (a 401, an exhausted quota) stops the reads not yet sent: Executor.map
    # cancels its pending calls when its results stop being read.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        found = dict(zip(shas, pool.map(read, shas), strict=True))
    return found, info.kind


# --------------------------------------------------------------------------- rendering


def notes(result: MetricsResult) -> list[str]:
    """What is approximated or missing, in plain sentences (the same in every format)."""
    if result.forge is None:
        return [
            "no forge: deployment frequency, lead time, change failure rate and time to "
            "restore need commit statuses and are unavailable (pass --forge github|gitlab); "
            "changes and rollbacks are counted from git alone"
        ]
    out = [
        "lead time starts when a change entered the environment repository (its update "
        "commit, found by following Promoter-Source back through promotions): the forge "
        "layer cannot read the application commit's own time"
    ]
    unresolved = sum(1 for o in result.overall.deployed if o.change.origin_kind == "unresolved")
    if unresolved:
        out.append(
            f"{unresolved} promotion(s) name a source commit not found in the upstream history "
            f"read (the window and {LOOKBACK.days} days before it): their lead time counts "
            "from the promotion's own commit"
        )
    if result.forge == "gitlab":
        out.append(
            "GitLab lists only the latest status of each context on a commit: a failure "
            "replaced by a success on the same commit is not seen"
        )
    return out


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    value = int(seconds)
    if value < 60:
        return f"{value}s"
    if value < 3600:
        return f"{value // 60}m{value % 60:02d}s"
    if value < 86400:
        return f"{value // 3600}h{value % 3600 // 60:02d}m"
    return f"{value // 86400}d{value % 86400 // 3600:02d}h"


def sparkline(values: Sequence[float | None]) -> str:
    """One character per day: ▁ (lowest, zero included) to █ (the highest), · for none."""
    top = max((v for v in values if v is not None), default=0.0)
    out = []
    for value in values:
        if value is None:
            out.append(NO_DATA)
        elif top <= 0:
            out.append(SPARK[0])
        else:
            out.append(SPARK[max(0, math.ceil(value / top * len(SPARK)) - 1)])
    return "".join(out)


def _cells(fig: Figures) -> list[str]:
    """deployments, per day, lead median, lead p90, failure rate, restore median, restore p90,
    incidents, changes, pending, rollbacks."""
    data = fig.as_dict()
    if not fig.available:
        return ["n/a"] * 8 + [str(fig.changes), "n/a", str(fig.rollbacks)]
    freq, lead = data["deployment_frequency"], data["lead_time"]
    cfr, ttr = data["change_failure_rate"], data["time_to_restore"]
    rate = (
        "-"
        if cfr["rate"] is None
        else f"{cfr['rate'] * 100:.1f}% ({cfr['failed']}/{cfr['changes']})"
    )
    per_day = "-" if freq["per_day"] is None else f"{freq['per_day']:.2f}"
    incidents = f"{ttr['incidents']}" + (f" ({ttr['open']} open)" if ttr["open"] else "")
    return [str(freq["deployments"]), per_day, duration(lead["median_seconds"]),
            duration(lead["p90_seconds"]), rate, duration(ttr["median_seconds"]),
            duration(ttr["p90_seconds"]), incidents, str(fig.changes), str(data["pending"]),
            str(fig.rollbacks)]  # fmt: skip


_TITLES = ["DEPLOYS", "PER DAY", "LEAD MEDIAN", "LEAD P90", "FAILURE RATE", "RESTORE MEDIAN",
           "RESTORE P90", "INCIDENTS", "CHANGES", "PENDING", "ROLLBACKS"]  # fmt: skip


def _window(result: MetricsResult) -> str:
    days = (result.until - result.since).total_seconds() / 86400
    shown = f"{days:g}" if days == int(days) else f"{days:.2f}"
    fmt = "%Y-%m-%d %H:%M"
    unit = "day" if days == 1 else "days"
    return f"{result.since.strftime(fmt)} to {result.until.strftime(fmt)} UTC ({shown} {unit})"


def render(result: MetricsResult, fmt: str = "table") -> str:
    return markdown(result) if fmt == "markdown" else table(result)


def table(result: MetricsResult) -> str:
    source = f"statuses from {result.forge}" if result.forge else "no forge"
    rows = [["ENVIRONMENT", *_TITLES]]
    rows += [[e.name, *_cells(e.figures)] for e in result.environments]
    rows.append(["(all)", *_cells(result.overall)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"metrics {_window(result)}, {source}"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]  # fmt: skip
    return "\n".join([*lines, *(f"note: {n}" for n in notes(result))])


_CHARTS = (
    ("deployments", "Deployments"),
    ("lead_time", "Lead time (median)"),
    ("change_failure_rate", "Change failure rate"),
    ("time_to_restore", "Time to restore (median)"),
)


def markdown(result: MetricsResult) -> str:
    source = f"statuses from {md_text(result.forge)}" if result.forge else "no forge"
    lines = [f"### Delivery metrics, {md_text(_window(result))}, {source}", ""]
    titles = ["Environment", "Deployments", "Per day", "Lead time median", "Lead time p90",
              "Change failure rate", "Time to restore median", "Time to restore p90",
              "Incidents", "Changes", "Pending", "Rollbacks"]  # fmt: skip
    lines += ["| " + " | ".join(titles) + " |", "|---" * len(titles) + "|"]
    named = [(md_text(e.name), e.figures) for e in result.environments]
    for name, fig in [*named, ("**all**", result.overall)]:
        lines.append("| " + " | ".join([name, *(md_text(c) for c in _cells(fig))]) + " |")
    if result.forge is not None:
        lines += ["", "Per day, oldest first (24 hours each from the window's start; ▁ lowest "
                      f"to █ highest, {NO_DATA} nothing that day):", ""]  # fmt: skip
        lines += ["| Environment | " + " | ".join(t for _, t in _CHARTS) + " |",
                  "|---" * (len(_CHARTS) + 1) + "|"]  # fmt: skip
        for name, fig in [*named, ("**all**", result.overall)]:
            daily = fig.daily()
            cells = [md_code(sparkline(daily[key])) for key, _ in _CHARTS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", *(f"- {md_text(n)}" for n in notes(result))]
    return "\n".join(lines)
