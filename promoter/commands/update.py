"""`promoter update ENV --image ... --chart ...`: one commit on the environment branch, or,
where the environment takes pull requests, one accumulating PR into it (promoter.delivery)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from promoter.ci import RunContext
from promoter.context import ForgeOpener, config_from, read_config, scratch_repo
from promoter.delivery import (
    DEFAULT_RETRY,
    Clock,
    Deliverer,
    RetryPolicy,
    Tip,
    Write,
    WriteResult,
    commit_via,
    open_commit_api,
)
from promoter.errors import UsageError
from promoter.message import Provenance, check_message, check_reason, check_sha, check_url
from promoter.model import parse_chart_flag, parse_image_flag
from promoter.options import Options

if TYPE_CHECKING:
    from promoter import plan as planning
    from promoter.config import Config
    from promoter.delivery import Reader
    from promoter.forge.base import Forge
    from promoter.forge.commits import CommitAPI, Snapshot
    from promoter.model import Change
    from promoter.plan import Edit
    from promoter.promotion import PinKey


class UpdateResult(WriteResult):
    """What `update` reports (promoter.delivery.WriteResult)."""

    command = "update"


def update(
    options: Options,
    environment: str,
    images: Sequence[str] = (),
    charts: Sequence[str] = (),
    message: str | None = None,
    source_commit: str | None = None,
    source_url: str | None = None,
    merge: bool = False,
    auto_merge: bool = False,
    draft: bool = False,
    override_window: str | None = None,
    run: RunContext | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    clock: Clock | None = None,
    forge: Forge | None = None,
) -> UpdateResult:
    if not images and not charts:
        raise UsageError("update: nothing to do; pass --image APP=TAG and/or --chart APP=VERSION")
    if merge and auto_merge:
        raise UsageError("--merge and --auto-merge exclude each other: pick one")
    # The flags are checked before any git I/O: a bad tag is reported even if the repo is down.
    requests = [parse_image_flag(i) for i in images] + [parse_chart_flag(c) for c in charts]
    run = run or RunContext.from_env()
    subject = check_message(message) if message is not None else None
    override = None
    if override_window is not None:
        override = check_reason(override_window, "--override-window")
    provenance = provenance_for(run, source_commit, source_url)
    with scratch_repo(options) as repo:
        # --commit-via api: the forge's API reads and writes (exit 2 here without a forge).
        api = open_commit_api(options, repo.remote.url) if options.commit_via == "api" else None
        # Network first: start fetching the default branch (for promoter.yaml) and, in a
        # second scratch repo, the environment branch under its likely name env/<name>
        # (promoter.yaml's default), so both round trips run while the planning code is
        # imported, the flags are checked and the configuration is parsed. Not with
        # --config: a local configuration is validated before any git I/O.
        guess = f"env/{environment}"
        speculative = None
        if not options.config and api is None:
            repo.start_fetch_default()
            speculative = repo.prefetch(guess)
        # The api path's first request (promoter.yaml with the environment branch's likely
        # head) leaves now, in a thread, and travels while those imports run.
        early = None
        if api is not None and not options.config:
            early = _Soon(partial(api.snapshot, guess, (), [_CONFIG_FILE]))
        from promoter import plan as planning
        from promoter.promotion import pin_keys

        if api is None:
            config = read_config(options, repo)
        else:
            config = _config_via_api(options, api, guess, early)
        env = config.environment(environment)
        if commit_via(options, env) == "api" and api is None:
            api = open_commit_api(options, repo.remote.url)  # promoter.yaml asks for it
        if speculative is not None:
            if env.branch == guess:
                repo = speculative
            else:
                speculative.discard(guess)
        edits = planning.resolve(config, environment, requests)
        by_pull_request = env.delivery == "pull-request"
        if not by_pull_request and (merge or auto_merge or draft):
            raise UsageError(
                f"--merge, --auto-merge and --draft apply to pull requests, and {env.name} "
                "takes pushes (delivery: push)"
            )
        auto_merge = auto_merge or (by_pull_request and env.pull_request.auto_merge and not merge)
        # Only a pull request carries pending pins: no need to know every key otherwise.
        keys = pin_keys(config, list(config.apps)) if by_pull_request else []

        # A pull request lists its pins in promoter.yaml's order: what it shows (title, body,
        # commit message) is then a function of the set of pins it carries, not of which run
        # brought which, so a re-run finds it as it is and writes nothing.
        rank = {(key.path(environment), key.key): i for i, key in enumerate(keys)}

        opener = ForgeOpener(options, repo, forge)
        deliverer = Deliverer(repo, run, opener.require, policy, clock, api=api)
        reader = deliverer.reader

        def replan(tip: Tip) -> planning.Plan:
            # Updates waiting in the pull request come first; this run's values win.
            wanted = {(e.file, e.key): e for e in _pending(reader, keys, environment, tip)}
            wanted.update({(e.file, e.key): e for e in edits})
            todo = list(wanted.values())
            if by_pull_request:
                todo.sort(key=lambda e: rank.get((e.file, e.key), len(rank)))
            files = reader.read_files(tip.sha, planning.files_needed(todo))
            return planning.apply(todo, files, tip.when)

        write = Write(
            environment=env,
            verb="update",
            replan=replan,
            provenance=provenance,
            head=f"promoter/update-{env.name}",
            body=lambda changes: update_body(env.name, env.branch, changes, provenance),
            subject=subject,
            strategy="pull-request" if by_pull_request else "push",
            merge=merge,
            auto_merge=auto_merge,
            draft=draft,
            accumulates=True,
            override_window=override,
            reads=planning.files_needed(edits),
        )
        if by_pull_request and not options.dry_run:
            opener.require(f"updating {env.name} by pull request (delivery: pull-request)")
        if options.dry_run:
            return UpdateResult.planned(write, deliverer.preview(write))
        return UpdateResult.of(write, deliverer.deliver(write))


def _config_via_api(
    options: Options, api: CommitAPI, branch: str, early: _Soon[Snapshot] | None = None
) -> Config:
    """promoter.yaml from --config, else from the default branch through the forge's API (in
    the query that reads `branch`, the environment branch's likely name; `early`: that query,
    already sent)."""
    if options.config:
        return read_config(options, None)
    snapshot = early.result() if early else api.snapshot(branch, (), [_CONFIG_FILE])
    return config_from(snapshot.default_files.get(_CONFIG_FILE), "the repository")


_CONFIG_FILE = "promoter.yaml"  # promoter.config.CONFIG_FILE, before that module is imported

T = TypeVar("T")


class _Soon(Generic[T]):
    """`fn()` running in a thread from now on; `result()` waits for its value or re-raises
    what it raised, in the caller's thread."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to result()'s caller
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast("T", self._value)


def _pending(reader: Reader, keys: Sequence[PinKey], env: str, tip: Tip) -> list[Edit]:
    """The values a promoter/update-<env> pull request carries: every pin its commit sets to
    something else than the tip it was built on (its parent) had.

    A pin the environment branch itself moved since then (a hotfix, or the same value by
    another route) is dropped: the branch's value is the newer one, and the pull request must
    never take it back. Only files whose blob differs between the commit and its parent are
    read (trees are compared first), so a large repo costs a few blobs, not every pinned file.
    """
    from promoter.plan import Edit
    from promoter.promotion import Missing, read_value

    pending = tip.pending
    if pending is None or not pending.open:
        return []
    paths = sorted({key.path(env) for key in keys})
    touched = reader.touched(pending.sha, pending.base, paths)
    if not touched:
        return []
    now, before = reader.read_files(pending.sha, touched), reader.read_files(pending.base, touched)
    target = before if tip.sha == pending.base else reader.read_files(tip.sha, touched)

    def value(files: dict[str, bytes | None], key: PinKey) -> object:
        data = files.get(key.path(env))
        return Missing if data is None else read_value(data.decode("utf-8", "replace"), key)

    carried: dict[str, list[Edit]] = {}
    moved: set[str] = set()  # pins the environment branch changed since the PR's commit
    for key in keys:
        path = key.path(env)
        if path not in touched:
            continue
        new, was = value(now, key), value(before, key)
        if target is not before and value(target, key) != was:
            moved.add(key.pin)
        if new is not Missing and new != was:
            carried.setdefault(key.pin, []).append(
                Edit(key.app, key.pin, path, key.doc, key.key, str(new))
            )
    return [edit for pin, edits in carried.items() if pin not in moved for edit in edits]


def update_body(env: str, branch: str, changes: Sequence[Change], source: Provenance) -> str:
    from promoter.promotion import changes_table
    from promoter.sinks import md_code, md_text

    lines = [
        f"Updates **{md_text(env)}** ({md_code(branch)}) with versions built by CI.",
        "",
        *changes_table(env, changes),
        "",
    ]
    for label, value in (("Source", source.source), ("Build", source.source_url),
                         ("Pipeline", source.pipeline_url)):  # fmt: skip
        if value:
            lines.append(f"- {label}: {md_code(value)}")
    lines += [
        "",
        "<sub>Opened by promoter. Later updates of this environment accumulate here until it "
        "merges; its branch is promoter-owned and rebuilt on each update.</sub>",
        "",
    ]
    return "\n".join(lines)


def provenance_for(
    run: RunContext, source_commit: str | None, source_url: str | None
) -> Provenance:
    """The trailers of an update: the app commit built (`--source-commit`, else the CI's),
    a link (`--source-url`), the pipeline and the actor."""
    commit = check_sha(source_commit, "--source-commit") if source_commit else None
    commit = commit or run.source_commit
    source = None
    if commit:
        source = f"{run.source_repo}@{commit}" if run.source_repo else commit
    return Provenance(
        source=source,
        source_url=check_url(source_url, "--source-url") if source_url else None,
        pipeline_url=run.pipeline_url,
        actor=run.actor,
    )
