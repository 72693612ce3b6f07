"""`promoter promote [--from ENV] --to ENV`: move one environment's versions to the next.

read (source history and values, target values, statuses) → decide (what differs, where those
values began on the source branch, the source's gate) → write (a commit pushed to the target
branch, or a commit on the promoter-owned branch `promoter/<from>-to-<to>` and a pull request)
→ report. The pure parts are in promoter/promotion.py.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from promoter.ci import RunContext
from promoter.context import read_config, resolve_token, scratch_repo
from promoter.errors import PromoterError, RaceLost, UsageError
from promoter.gitrepo import DEFAULT_RETRY, GitRepo, RetryPolicy, land
from promoter.message import Provenance, build_message
from promoter.options import Options
from promoter.promotion import Delivery, PromoteResult, gate_line

if TYPE_CHECKING:
    from promoter import plan as planning
    from promoter.config import Environment
    from promoter.forge.base import CommitStatus, Forge
    from promoter.gates import GateResult
    from promoter.model import Change
    from promoter.promotion import PinKey

# How far back the source branch is searched for where the promoted values began: 32 commits,
# then 128, then 512. A value unchanged over the last 512 commits counts from the oldest of
# them (its statuses, or a descendant's, then decide).
HISTORY_DEPTHS = (32, 128, 512)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def promote(
    options: Options,
    target: str,
    source: str | None = None,
    apps: Sequence[str] = (),
    merge: bool = False,
    auto_merge: bool = False,
    draft: bool = False,
    no_gate: bool = False,
    forge: Forge | None = None,
    run: RunContext | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    now: Callable[[], datetime] = _utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> PromoteResult:
    from promoter import promotion

    if merge and auto_merge:
        raise UsageError("--merge and --auto-merge exclude each other: pick one")
    run = run or RunContext.from_env()
    with scratch_repo(options) as repo:
        if not options.config:
            repo.start_fetch_default()
        config = read_config(options, repo)
        to_env = config.environment(target)
        source = source or to_env.source
        if source is None:
            raise UsageError(
                f"promote --to {target}: no --from given, and environments.{target}.from is "
                "not set in promoter.yaml"
            )
        from_env = config.environment(source)
        if from_env.name == to_env.name:
            raise UsageError(f"promote: --from and --to are both {target!r}")
        for app in apps:
            config.app(app)
        selected = list(dict.fromkeys(apps)) or list(config.apps)
        keys = promotion.pin_keys(config, selected)
        by_pull_request = to_env.delivery == "pull-request" or to_env.branch == from_env.branch
        delivery: Delivery = "pull-request" if by_pull_request else "push"
        auto_merge = auto_merge or (
            by_pull_request and to_env.pull_request.auto_merge and not merge
        )
        if not by_pull_request and (merge or auto_merge or draft):
            flags = [f for f, on in (("--merge", merge), ("--auto-merge", auto_merge),
                                     ("--draft", draft)) if on]  # fmt: skip
            _note(f"{' '.join(flags)}: {target} takes pushes (delivery: push); ignored")
        opener = _ForgeOpener(options, repo, forge)
        if by_pull_request and not options.dry_run:
            opener.require(f"promoting to {target} by pull request")

        # Read: the source's history (commits and trees) and its values at the tip.
        source_paths = sorted({k.path(source) for k in keys})
        history, complete = repo.history(from_env.branch, source_paths, HISTORY_DEPTHS[0])
        source_values = promotion.values_in(
            keys, source, from_env.branch, repo.read_files(history[0][0], source_paths)
        )
        # Decide: what differs on the target now.
        target_tip = repo.fetch(to_env.branch)
        plan = _plan(repo, target_tip, keys, source_values, target, now)
        result = PromoteResult(source=source, target=target, source_branch=from_env.branch,
                               target_branch=to_env.branch, delivery=delivery, changes=(),
                               origin=None, gate=None, gate_skipped=no_gate, required=(),
                               dry_run=options.dry_run)  # fmt: skip
        if not plan.changed:
            return result
        moving = promotion.moving(keys, target, plan.changes)
        history, complete, index = _find_origin(repo, from_env.branch, source_paths, history,
                                                complete, moving, source)  # fmt: skip
        origin = history[index][0]
        lineage = [sha for sha, _ in reversed(history[: index + 1])]
        promoted_apps = list(dict.fromkeys(k.app for k in moving))
        required, gate = _gate(from_env, promoted_apps, lineage, no_gate, opener, now)
        result = replace(result, changes=plan.changes, origin=origin, gate=gate,
                         required=required, history_searched=len(history),
                         history_complete=complete, files=tuple(sorted(plan.files)))  # fmt: skip
        if result.blocked or options.dry_run:
            return result

        # Write.
        def make_plan(tip: str) -> planning.Plan:
            # Re-planned on the tip of each attempt, moving only what was gated.
            return _plan(repo, tip, moving, source_values, target, now)

        def make_message(changes: Sequence[Change]) -> str:
            provenance = Provenance(f"{source}@{origin}", None, run.pipeline_url, run.actor)
            return build_message("promote", target, changes, provenance)

        if not by_pull_request:
            written: dict[str, planning.Plan] = {}

            def make_commit(tip: str) -> str | None:
                fresh = written["plan"] = make_plan(tip)
                if not fresh.changed:
                    return None
                return repo.commit(tip, fresh.files, make_message(fresh.changes), run.identity,
                                   run.identity, now().timestamp())  # fmt: skip

            sha, attempts = land(repo, to_env.branch, make_commit, policy, sleep=sleep,
                                 tip=target_tip)  # fmt: skip
            final = written["plan"]
            return replace(result, changes=final.changes, files=tuple(sorted(final.files)),
                           commit=sha, attempts=attempts)  # fmt: skip
        return _by_pull_request(
            repo, opener.require(""), result, to_env, from_env, make_plan, make_message,
            run, policy, now, sleep, merge=merge, auto_merge=auto_merge, draft=draft,
            gate_line=gate_line(source, gate, required, no_gate, origin),
        )  # fmt: skip


def _plan(
    repo: GitRepo,
    tip: str,
    keys: Sequence[PinKey],
    source_values: Mapping[PinKey, str],
    target: str,
    now: Callable[[], datetime],
) -> planning.Plan:
    from promoter import plan as planning
    from promoter.promotion import edits_for

    edits = edits_for(keys, source_values, target)
    return planning.apply(edits, repo.read_files(tip, planning.files_needed(edits)), now)


def _find_origin(
    repo: GitRepo,
    branch: str,
    paths: Sequence[str],
    history: list[tuple[str, dict[str, str | None]]],
    complete: bool,
    moving: Sequence[PinKey],
    source: str,
) -> tuple[list[tuple[str, dict[str, str | None]]], bool, int]:
    """Where the moving values began on the source branch, deepening the history as needed."""
    from promoter.promotion import origin, read_value

    depths = iter(HISTORY_DEPTHS[1:])
    wanted = {k.path(source) for k in moving}
    texts: dict[str, str] = {}

    def value_at(blob: str, key: PinKey) -> object:
        return read_value(texts[blob], key)

    while True:
        # Every version of the files concerned, in one fetch (a handful of blobs).
        found = {b for _, row in history for p, b in row.items() if b and p in wanted}
        blobs = repo.read_blobs(found - set(texts))
        texts.update((oid, data.decode("utf-8", errors="replace")) for oid, data in blobs.items())
        index = origin(history, moving, source, value_at)
        if index < len(history) - 1 or complete:
            return history, complete, index
        depth = next(depths, None)
        if depth is None:
            return history, complete, index
        history, complete = repo.history(branch, paths, depth)


class _Statuses(Mapping[str, "Sequence[CommitStatus]"]):
    """Statuses read only for the commits the gate looks at (it stops at the first verdict)."""

    def __init__(self, forge: Forge, lineage: Sequence[str]) -> None:
        self._forge = forge
        self._lineage = lineage
        self._read: dict[str, list[CommitStatus]] = {}

    def __getitem__(self, sha: str) -> Sequence[CommitStatus]:
        if sha not in self._lineage:
            raise KeyError(sha)
        if sha not in self._read:
            self._read[sha] = self._forge.statuses(sha)
        return self._read[sha]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lineage)

    def __len__(self) -> int:
        return len(self._lineage)


def _gate(
    env: Environment,
    apps: Sequence[str],
    lineage: Sequence[str],
    no_gate: bool,
    opener: _ForgeOpener,
    now: Callable[[], datetime],
) -> tuple[tuple[str, ...], GateResult | None]:
    from promoter.gates import evaluate, expand

    required = expand(env.gate.require, apps, env.name, env.branch)
    if no_gate:
        return required, None
    if not required:
        return required, evaluate((), lineage, {}, now())
    forge = opener.require(
        f"the gate of {env.name} ({', '.join(required)}) reads commit statuses; it",
        hint=" or pass --no-gate to promote without it",
    )
    return required, evaluate(required, lineage, _Statuses(forge, lineage), now(), env.gate.soak)


class _ForgeOpener:
    """Opens the forge once, when something needs it; says so early when there is none."""

    def __init__(self, options: Options, repo: GitRepo, forge: Forge | None) -> None:
        self._options = options
        self._repo = repo
        self._forge = forge

    def require(self, what: str, hint: str = "") -> Forge:
        if self._forge is None:
            from promoter.forge import detect, open_forge

            url = self._repo.remote.url
            info = detect(self._options.forge, self._options.api_url, url)
            if info.kind == "none":
                raise UsageError(
                    f"{what} needs a forge API: pass --forge github|gitlab (and --api-url for "
                    f"GitHub Enterprise or self-managed GitLab){hint}"
                )
            self._forge = open_forge(info, resolve_token(self._options, url))
        return self._forge


def _by_pull_request(
    repo: GitRepo,
    forge: Forge,
    result: PromoteResult,
    to_env: Environment,
    from_env: Environment,
    make_plan: Callable[[str], planning.Plan],
    make_message: Callable[[Sequence[Change]], str],
    run: RunContext,
    policy: RetryPolicy,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    *,
    merge: bool,
    auto_merge: bool,
    draft: bool,
    gate_line: str,
) -> PromoteResult:
    """Commit on the target's tip, put it on promoter/<from>-to-<to> (replacing that branch only
    if nobody moved it since we looked), and open or update the pull request."""
    from promoter.forge.base import PullRequestSpec
    from promoter.message import title
    from promoter.promotion import pull_request_body

    head = f"promoter/{from_env.name}-to-{to_env.name}"
    rng = random.Random()
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        began = time.monotonic()
        tip = repo.fetch(to_env.branch)
        plan = make_plan(tip)
        if not plan.changed:  # someone else brought the target in line meanwhile
            return replace(result, changes=(), files=(), attempts=attempt)
        text = make_message(plan.changes)
        sha = repo.commit(tip, plan.files, text, run.identity, run.identity, now().timestamp())
        previous = repo.remote_tip(head)
        if previous is not None and _same_commit(repo, head, previous, sha):
            sha = previous  # the branch already holds exactly this: no push, no new CI run
            break
        if repo.push_owned(sha, head, previous):
            break
        delay = policy.delay(attempt, rng, cycle=time.monotonic() - began)
        if attempt >= policy.attempts or time.monotonic() + delay - start > policy.budget:
            raise RaceLost(
                f"{head} kept moving: gave up after {attempt} attempts; nothing was changed "
                "on it, run again"
            )
        sleep(delay)
    pr_settings = to_env.pull_request
    spec = PullRequestSpec(
        head=head,
        base=to_env.branch,
        title=title("promote", to_env.name, plan.changes),
        body=pull_request_body(
            from_env.name, from_env.branch, to_env.name, str(result.origin), plan.changes, gate_line
        ),
        labels=pr_settings.labels,
        reviewers=pr_settings.reviewers,
        draft=draft or pr_settings.draft,
    )
    pull = forge.open_or_update_pull_request(spec)
    merged, merge_commit = False, None
    if merge:
        answer = forge.merge_pull_request(pull.number, sha, "merge")
        if not answer.merged:
            raise PromoterError(
                f"pull request #{pull.number} ({pull.url}) is open but was not merged: "
                f"{answer.message or 'the forge refused'}"
            )
        merged, merge_commit = True, answer.sha
    elif auto_merge:
        outcome = forge.enable_auto_merge(pull.number, "merge")  # GitLab may merge at once
        merged, merge_commit, auto_merge = outcome.merged, outcome.sha, not outcome.merged
    return replace(
        result,
        changes=plan.changes,
        files=tuple(sorted(plan.files)),
        commit=sha,
        attempts=attempt,
        pull_request=pull,
        head_branch=head,
        merged=merged,
        merge_commit=merge_commit,
        auto_merge=auto_merge and not merge,
    )


def _same_commit(repo: GitRepo, head: str, previous: str, ours: str) -> bool:
    """Does the head branch already hold our commit (same parent, tree and message)?"""
    if repo.fetch(head) != previous:
        return False
    return repo.read_commit(previous) == repo.read_commit(ours)


def _note(text: str) -> None:
    print(f"promoter: {text}", file=sys.stderr)
