"""`promoter promote [--from ENV] [--to ENV ...]`: move one environment's versions to the next
ones (fan-out: one commit or pull request per target).

read (source history and values, target values, statuses) → decide (what differs, where those
values began on the source branch, the source's gate) → deliver (promoter.delivery: a commit
pushed to the target branch, or one on `promoter/<from>-to-<to>` and a pull request) → report.
The pure parts are in promoter/promotion.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from promoter.ci import RunContext
from promoter.context import ForgeOpener, read_config, scratch_repo
from promoter.delivery import (
    DEFAULT_RETRY,
    Clock,
    Deliverer,
    RetryPolicy,
    Strategy,
    Tip,
    Write,
    commit_via,
    open_commit_api,
)
from promoter.errors import Held, PromoterError, UsageError
from promoter.message import Provenance, check_reason
from promoter.options import Options
from promoter.promotion import PromoteResult, Promotions, gate_line

if TYPE_CHECKING:
    from promoter import plan as planning
    from promoter.config import Config, Environment
    from promoter.delivery import Reader
    from promoter.forge.base import CommitStatus, Forge
    from promoter.gates import GateResult
    from promoter.gitrepo import GitRepo
    from promoter.promotion import PinKey

# How far back the source branch is searched for where the promoted values began: 32 commits,
# then 128, then 512. A value unchanged over the last 512 commits counts from the oldest of
# them (its statuses, or a descendant's, then decide).
HISTORY_DEPTHS = (32, 128, 512)


def promote(
    options: Options,
    targets: Sequence[str] = (),
    source: str | None = None,
    apps: Sequence[str] = (),
    merge: bool = False,
    auto_merge: bool = False,
    draft: bool = False,
    no_gate: bool = False,
    override_window: str | None = None,
    forge: Forge | None = None,
    run: RunContext | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    clock: Clock | None = None,
) -> Promotions:
    """Promote to each target (`--to`, repeatable; none: every environment whose `from:` is
    `source`). A target's own failure is recorded in its result and the others go on."""
    if merge and auto_merge:
        raise UsageError("--merge and --auto-merge exclude each other: pick one")
    if not targets and not source:
        raise UsageError("promote: pass --to ENV (repeatable), or --from ENV to promote to "
                         "every environment whose `from:` is ENV")  # fmt: skip
    override = None
    if override_window is not None:
        override = check_reason(override_window, "--override-window")
    run = run or RunContext.from_env()
    clock = clock or Clock()
    with scratch_repo(options) as repo:
        if not options.config:
            repo.start_fetch_default()
        config = read_config(options, repo)
        pairs = _pairs(config, source, targets)
        for app in apps:
            config.app(app)
        selected = list(dict.fromkeys(apps)) or list(config.apps)
        opener = ForgeOpener(options, repo, forge)
        _check_forge(pairs, no_gate, options.dry_run, opener)
        # Each target is written the way it asks (--commit-via, its `commit_via:`); the forge's
        # API is opened before anything is read or written (exit 2 without one).
        vias = {to_env.name: commit_via(options, to_env) for _, to_env in pairs}
        api = open_commit_api(options, repo.remote.url) if "api" in vias.values() else None
        deliverers = {
            "git": Deliverer(repo, run, opener.require, policy, clock),
            "api": Deliverer(repo, run, opener.require, policy, clock, api=api),
        }
        sources: dict[str, _Source] = {}
        results = []
        for from_env, to_env in pairs:
            deliverer = deliverers[vias[to_env.name]]
            one = _Promotion(options, config, deliverer, opener, from_env, to_env, selected, clock)
            flags = _Flags(merge, auto_merge, draft, no_gate, override)
            try:
                if from_env.name not in sources:
                    sources[from_env.name] = one.read_source()
                results.append(one.run(sources[from_env.name], flags))
            except PromoterError as err:
                if len(pairs) == 1:
                    raise
                results.append(one.failed(err))
    return Promotions(tuple(results))


def _pairs(
    config: Config, source: str | None, targets: Sequence[str]
) -> list[tuple[Environment, Environment]]:
    """(source, target) environments, checked before any write."""
    if not targets:
        assert source is not None
        config.environment(source)
        targets = [env.name for env in config.environments.values() if env.source == source]
        if not targets:
            raise UsageError(
                f"promote --from {source}: no environment in promoter.yaml has `from: {source}`; "
                "pass --to ENV"
            )
    pairs = []
    for target in dict.fromkeys(targets):
        to_env = config.environment(target)
        name = source or to_env.source
        if name is None:
            raise UsageError(
                f"promote --to {target}: no --from given, and environments.{target}.from is "
                "not set in promoter.yaml"
            )
        from_env = config.environment(name)
        if from_env.name == to_env.name:
            raise UsageError(f"promote: --from and --to are both {target!r}")
        pairs.append((from_env, to_env))
    return pairs


def _check_forge(
    pairs: Sequence[tuple[Environment, Environment]],
    no_gate: bool,
    dry_run: bool,
    opener: ForgeOpener,
) -> None:
    """A forge every target will need is required before the first target is written, so
    that bad input (exit 2) writes nothing even when another target could have gone ahead."""
    for from_env, to_env in pairs:
        if not dry_run and _by_pull_request(from_env, to_env):
            opener.require(f"promoting to {to_env.name} by pull request")
        if len(pairs) > 1 and from_env.gate.require and not no_gate:
            # (One target needs it only when something moves: _gate asks then, before writing.)
            opener.require(
                f"the gate of {from_env.name} ({', '.join(from_env.gate.require)}) reads commit "
                "statuses; it",
                hint=" or pass --no-gate to promote without it",
            )


def _by_pull_request(from_env: Environment, to_env: Environment) -> bool:
    """Pull-request delivery: the target asks for it, or both share one branch (folders)."""
    return to_env.delivery == "pull-request" or to_env.branch == from_env.branch


@dataclass(frozen=True)
class _Flags:
    merge: bool
    auto_merge: bool
    draft: bool
    no_gate: bool
    override_window: str | None = None


@dataclass
class _Source:
    """A source environment's history (commits and trees) and its files at the tip."""

    history: list[tuple[str, dict[str, str | None]]]
    complete: bool
    files: dict[str, bytes | None]
    # Commit statuses read for its gate, shared by the targets of one run (fan-out reads a
    # commit's statuses once, and every target's gate judges the same reading).
    statuses: dict[str, list[CommitStatus]] = field(default_factory=dict)


class _Promotion:
    """One source → target promotion: read, decide, deliver."""

    def __init__(
        self,
        options: Options,
        config: Config,
        deliverer: Deliverer,
        opener: ForgeOpener,
        from_env: Environment,
        to_env: Environment,
        apps: Sequence[str],
        clock: Clock,
    ) -> None:
        from promoter import promotion

        self.options, self.config, self.deliverer, self.opener = options, config, deliverer, opener
        self.repo = deliverer.repo
        self.from_env, self.to_env, self.clock = from_env, to_env, clock
        self.keys = promotion.pin_keys(config, apps)
        self.source_paths = sorted({k.path(from_env.name) for k in self.keys})
        by_pr = _by_pull_request(from_env, to_env)
        self.strategy: Strategy = "pull-request" if by_pr else "push"
        self.result = PromoteResult(source=from_env.name, target=to_env.name,
                                    source_branch=from_env.branch, target_branch=to_env.branch,
                                    delivery=self.strategy, changes=(), origin=None, gate=None,
                                    gate_skipped=False, required=(),
                                    dry_run=options.dry_run)  # fmt: skip

    def read_source(self) -> _Source:
        history, complete = self.repo.history(
            self.from_env.branch, self.source_paths, HISTORY_DEPTHS[0]
        )
        return _Source(history, complete, self.repo.read_files(history[0][0], self.source_paths))

    def failed(self, err: PromoterError) -> PromoteResult:
        held = err.details if isinstance(err, Held) else None
        return replace(self.result, error=str(err), exit_code=err.exit_code, held=held)

    def run(self, src: _Source, flags: _Flags) -> PromoteResult:
        from promoter import plan as planning
        from promoter import promotion

        source, target = self.from_env.name, self.to_env.name
        by_pr = self.strategy == "pull-request"
        auto_merge = flags.auto_merge or (
            by_pr and self.to_env.pull_request.auto_merge and not flags.merge
        )
        if not by_pr and (flags.merge or auto_merge or flags.draft):
            used = [f for f, on in (("--merge", flags.merge), ("--auto-merge", auto_merge),
                                    ("--draft", flags.draft)) if on]  # fmt: skip
            _note(f"{' '.join(used)}: {target} takes pushes (delivery: push); ignored")
        if by_pr and not self.options.dry_run:
            self.opener.require(f"promoting to {target} by pull request")
        values = promotion.values_in(self.keys, source, self.from_env.branch, src.files)
        result = replace(self.result, gate_skipped=flags.no_gate)

        run = self.deliverer.run

        def write_for(keys: Sequence[PinKey], origin: str, gate_text: str) -> Write:
            def replan(tip: Tip) -> planning.Plan:
                return _plan(self.deliverer.reader, tip, keys, values, target)

            return Write(
                environment=self.to_env,
                verb="promote",
                replan=replan,
                provenance=Provenance(f"{source}@{origin}", None, run.pipeline_url, run.actor),
                head=f"promoter/{source}-to-{target}",
                body=lambda changes: promotion.pull_request_body(
                    source, self.from_env.branch, target, origin, changes, gate_text
                ),
                strategy=self.strategy,
                merge=flags.merge,
                auto_merge=auto_merge,
                draft=flags.draft,
                override_window=flags.override_window,
                reads=planning.files_needed(promotion.edits_for(keys, values, target)),
            )

        # Decide: what differs on the target now.
        first = write_for(self.keys, src.history[0][0], "")
        target_tip = self.deliverer.head(self.to_env.branch, first.reads)
        plan = self.deliverer.preview(replace(first, strategy="push"), target_tip)
        if not plan.changed:
            if by_pr and not self.options.dry_run:
                # A pull request still asking for what the target has is stale: closed.
                done = self.deliverer.deliver(first)
                return replace(result, closed=done.closed)
            return result
        moving = promotion.moving(self.keys, target, plan.changes)
        history, complete, index = _find_origin(self.repo, self.from_env.branch,
                                                self.source_paths, src.history, src.complete,
                                                moving, source)  # fmt: skip
        src.history, src.complete = history, complete
        origin = history[index][0]
        lineage = [sha for sha, _ in reversed(history[: index + 1])]
        promoted_apps = list(dict.fromkeys(k.app for k in moving))
        required, gate = _gate(self.from_env, promoted_apps, lineage, flags.no_gate, self.opener,
                               self.clock.now, src.statuses)  # fmt: skip
        result = replace(result, changes=plan.changes, origin=origin, gate=gate,
                         required=required, history_searched=len(history),
                         history_complete=complete, files=tuple(sorted(plan.files)))  # fmt: skip
        if result.blocked or self.options.dry_run:
            return result
        # Write: re-planned on the tip of each attempt, moving only what was gated.
        gate_text = gate_line(source, gate, required, flags.no_gate, origin)
        done = self.deliverer.deliver(write_for(moving, origin, gate_text), target_tip)
        return replace(result, changes=done.changes, files=done.files, commit=done.commit,
                       attempts=done.attempts, pull_request=done.pull_request,
                       head_branch=done.head_branch, merged=done.merged,
                       merge_commit=done.merge_commit, auto_merge=done.auto_merge,
                       closed=done.closed, pushed=done.pushed,
                       override_window=done.override_window)  # fmt: skip


def _plan(
    reader: Reader,
    tip: Tip,
    keys: Sequence[PinKey],
    source_values: Mapping[PinKey, str],
    target: str,
) -> planning.Plan:
    from promoter import plan as planning
    from promoter.promotion import edits_for

    edits = edits_for(keys, source_values, target)
    files = reader.read_files(tip.sha, planning.files_needed(edits))
    return planning.apply(edits, files, tip.when)


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

    def __init__(
        self, forge: Forge, lineage: Sequence[str], read: dict[str, list[CommitStatus]]
    ) -> None:
        self._forge = forge
        self._lineage = lineage
        self._read = read

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
    opener: ForgeOpener,
    now: Callable[[], datetime],
    read: dict[str, list[CommitStatus]],
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
    return required, evaluate(
        required, lineage, _Statuses(forge, lineage, read), now(), env.gate.soak
    )


def _note(text: str) -> None:
    print(f"promoter: {text}", file=sys.stderr)
