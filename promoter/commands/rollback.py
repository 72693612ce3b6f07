"""`promoter rollback ENV (--to REV | --steps N)`: set every pin of ENV back to its value at an
earlier commit, in a new commit (or a pull request, where ENV takes pull requests).

History is never rewritten: the rollback is one more commit on top of the branch, built by
the delivery layer like any update (re-planned on a moved tip, nothing written when nothing
differs). Only pinned scalars move, so anything else changed since REV (a person's edit of
replicas, a new file) stays as it is now. A pin that REV does not have (added since), or that
the branch no longer has, is left alone and listed.

`--steps N` counts promoter changes of ENV (commits whose trailers name ENV, and merges of
them), not raw commits: REV is the state just before the Nth most recent one. REV must be a
commit on ENV's branch (exit 2 otherwise); each value restored is checked with the command
line's grammar first (a bad value at REV: exit 2, naming it). The commit records
`Promoter-Rollback-To: <REV>`, which `history` shows.

REV is looked up and its pinned files read in a second scratch repo (commits fetched without
trees, then REV's trees and the few blobs it needs): nothing of that search reaches the repo
that delivers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promoter.ci import RunContext
from promoter.context import ForgeOpener, read_config, scratch_repo
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
from promoter.message import Provenance, check_reason, check_sha
from promoter.model import show_value
from promoter.options import Options

if TYPE_CHECKING:
    from promoter import plan as planning
    from promoter.config import Environment
    from promoter.delivery import Reader
    from promoter.forge.base import Forge
    from promoter.gitrepo import CommitInfo, GitRepo
    from promoter.model import Change
    from promoter.plan import Edit
    from promoter.promotion import PinKey

# How deep the branch is searched for REV, or for N promoter changes: commits only.
SEARCH_DEPTHS = (32, 256, 2048, 16384, 131072)


@dataclass(frozen=True)
class Target:
    """The commit whose pin values are restored, and how it was chosen."""

    sha: str
    subject: str
    undone: tuple[tuple[str, str], ...] = ()  # --steps: (commit, subject) of the changes undone


@dataclass(frozen=True)
class RollbackResult(WriteResult):
    command = "rollback"
    target: Target = Target("", "")
    skipped: tuple[str, ...] = ()  # pins left alone, each with why

    @property
    def rollback_to(self) -> str:
        return self.target.sha

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "rollback_to": self.target.sha,
            "undone": [{"commit": sha, "subject": subject} for sha, subject in self.target.undone],
            "skipped": list(self.skipped),
        }


def rollback(
    options: Options,
    environment: str,
    rev: str | None = None,
    steps: int | None = None,
    merge: bool = False,
    auto_merge: bool = False,
    draft: bool = False,
    override_window: str | None = None,
    run: RunContext | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    clock: Clock | None = None,
    forge: Forge | None = None,
) -> RollbackResult:
    if (rev is None) == (steps is None):
        raise UsageError(
            "rollback: pass either --to REV (a commit of the branch) or --steps N (undo the "
            "last N promoter changes), not both and not neither"
        )
    if merge and auto_merge:
        raise UsageError("--merge and --auto-merge exclude each other: pick one")
    if steps is not None and steps < 1:
        raise UsageError(f"--steps {steps}: give a number of changes from 1 up")
    wanted = check_sha(rev, "--to") if rev is not None else None
    override = None
    if override_window is not None:
        override = check_reason(override_window, "--override-window")
    run = run or RunContext.from_env()
    with scratch_repo(options) as repo:
        if not options.config:
            repo.start_fetch_default()
        from promoter import plan as planning
        from promoter.promotion import pin_keys

        config = read_config(options, repo)
        env = config.environment(environment)
        by_pull_request = env.delivery == "pull-request"
        if not by_pull_request and (merge or auto_merge or draft):
            raise UsageError(
                f"--merge, --auto-merge and --draft apply to pull requests, and {env.name} "
                "takes pushes (delivery: push)"
            )
        auto_merge = auto_merge or (by_pull_request and env.pull_request.auto_merge and not merge)
        opener = ForgeOpener(options, repo, forge)
        if by_pull_request and not options.dry_run:
            opener.require(f"rolling back {env.name} by pull request (delivery: pull-request)")
        # --commit-via api (or the environment's `commit_via: api`): exit 2 here without a forge.
        api = (
            open_commit_api(options, repo.remote.url) if commit_via(options, env) == "api" else None
        )
        deliverer = Deliverer(repo, run, opener.require, policy, clock, api=api)
        tip_reader = deliverer.reader

        # Read: REV, and every pin's value there, in a repo of their own.
        reader = repo.sibling()
        target = _find(reader, env, wanted, steps)
        keys = pin_keys(config, list(config.apps))
        restore, skipped_at_rev, problems = _values_at(reader, keys, env, target.sha)

        skipped: list[str] = []

        def replan(tip: Tip) -> planning.Plan:
            edits = _present(tip_reader, tip.sha, restore, env.name, skipped)
            files = tip_reader.read_files(tip.sha, planning.files_needed(edits))
            plan = planning.apply(edits, files, tip.when)
            for change in plan.changes:
                problem = problems.get((change.pin, change.file, change.key))
                if problem:
                    raise UsageError(
                        f"{change.file} at {target.sha[:12]}: {change.key}: {problem}; it "
                        f"cannot be restored (pin {change.pin}); nothing was written"
                    )
            return plan

        provenance = Provenance(rollback_to=target.sha, pipeline_url=run.pipeline_url,
                                actor=run.actor)  # fmt: skip
        write = Write(
            environment=env,
            verb="rollback",
            replan=replan,
            provenance=provenance,
            head=f"promoter/rollback-{env.name}",
            body=lambda changes: rollback_body(env, target, changes),
            strategy="pull-request" if by_pull_request else "push",
            merge=merge,
            auto_merge=auto_merge,
            draft=draft,
            override_window=override,
            reads=sorted({edit.file for _, edit in restore}),
        )
        if options.dry_run:
            plan = deliverer.preview(write)
            return RollbackResult.planned(write, plan, target=target,
                                          skipped=(*skipped_at_rev, *skipped))  # fmt: skip
        done = deliverer.deliver(write)
        return RollbackResult.of(write, done, target=target, skipped=(*skipped_at_rev, *skipped))


# --------------------------------------------------------------------------- reading


def _find(reader: GitRepo, env: Environment, rev: str | None, steps: int | None) -> Target:
    """REV as a full SHA on the branch: `--to`'s commit (any commit reachable from the tip),
    or the state before the `--steps`th most recent promoter change (its first parent)."""
    if rev is not None:
        sha = reader.lineage(env.branch, rev, limit=SEARCH_DEPTHS[-1] // 8)[0]
        return Target(sha, _subject(reader, sha))
    assert steps is not None
    from promoter.commands.history import promoter_commit

    for depth in SEARCH_DEPTHS:
        chain, complete = reader.first_parents(env.branch, depth, trees=False)
        commits = reader.read_commits(chain)
        seconds = [info.parents[1] for info, _ in commits.values() if len(info.parents) >= 2]
        commits.update(reader.read_commits(s for s in seconds if s not in commits))
        found = [sha for sha in chain if promoter_commit(env.name, commits[sha][0], commits)]
        if len(found) >= steps:
            last = found[steps - 1]
            parents = commits[last][0].parents
            if not parents:
                raise UsageError(
                    f"--steps {steps}: the oldest of those changes ({last[:12]}) is the first "
                    f"commit of {env.branch}: there is no state before it to roll back to"
                )
            undone = tuple((sha, _first_line(env.name, commits, sha)) for sha in found[:steps])
            return Target(parents[0], _subject(reader, parents[0]), undone)
        if complete:
            break
    where = "" if complete else f" in its last {len(chain)} commits"
    raise UsageError(
        f"--steps {steps}: {env.branch} has {len(found)} promoter change"
        f"{'s' if len(found) != 1 else ''} of {env.name}{where}; nothing was written"
    )


def _first_line(env: str, commits: Mapping[str, tuple[CommitInfo, str]], sha: str) -> str:
    """The subject of a promoter change; for a merge of one, the merged commit's."""
    from promoter.commands.history import promoter_commit

    info = commits[sha][0]
    found = promoter_commit(env, info, commits)
    if found is not None and found[1] is not None:
        info = commits[found[1]][0]
    return info.message.partition("\n")[0].strip()


def _subject(reader: GitRepo, sha: str) -> str:
    info = reader.read_commits([sha])[sha][0]
    return info.message.partition("\n")[0].strip()


def _values_at(
    reader: GitRepo, keys: Sequence[PinKey], env: Environment, sha: str
) -> tuple[list[tuple[PinKey, Edit]], list[str], dict[tuple[str, str, str], str]]:
    """Each pin's value at REV as an edit; the pins REV does not have (each with why); and
    the values that are not what their field takes ((pin, file, key) → problem), refused
    only if they would move."""
    from promoter.model import pinned_value_problem
    from promoter.plan import Edit
    from promoter.promotion import Missing, read_value

    reader.fetch_trees([sha])
    paths = sorted({key.path(env.name) for key in keys})
    files = reader.read_files(sha, paths)
    restore: list[tuple[PinKey, Edit]] = []
    skipped: list[str] = []
    problems: dict[tuple[str, str, str], str] = {}
    for key in keys:
        path = key.path(env.name)
        data = files.get(path)
        if data is None:
            skipped.append(f"{key.pin} {key.where}: {path} does not exist at {sha[:12]}")
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{path} at {sha[:12]} is not UTF-8 text (pin {key.pin})") from None
        value = read_value(text, key)
        if value is Missing:
            skipped.append(f"{key.pin} {key.where}: not in {path} at {sha[:12]}")
            continue
        value = str(value)
        problem = pinned_value_problem(key.field, value)
        if problem:
            problems[(key.pin, path, key.where)] = problem
        restore.append((key, Edit(key.app, key.pin, path, key.doc, key.key, value)))
    return restore, skipped, problems


def _present(
    reader: Reader,
    tip: str,
    restore: Sequence[tuple[PinKey, Edit]],
    env: str,
    skipped: list[str],
) -> list[Edit]:
    """The edits whose key the tip still has; the others are listed in `skipped`."""
    from promoter.promotion import Missing, read_value

    paths = sorted({edit.file for _, edit in restore})
    files = reader.read_files(tip, paths)
    skipped.clear()
    edits = []
    for key, edit in restore:
        data = files.get(edit.file)
        text = data.decode("utf-8", "replace") if data is not None else None
        if text is None or read_value(text, key) is Missing:
            skipped.append(f"{key.pin} {key.where}: not in {edit.file} on the branch now")
            continue
        edits.append(edit)
    return edits


# --------------------------------------------------------------------------- rendering


def rollback_body(env: Environment, target: Target, changes: Sequence[Change]) -> str:
    from promoter.promotion import changes_table
    from promoter.sinks import md_code, md_text

    lines = [
        f"Rolls **{md_text(env.name)}** ({md_code(env.branch)}) back to the pinned values of "
        f"{md_code(target.sha[:12])} ({md_text(target.subject)}).",
        "",
        *changes_table(env.name, changes),
        "",
    ]
    if target.undone:
        lines += ["Undoes:", ""]
        lines += [f"- {md_code(sha[:12])} {md_text(subject)}" for sha, subject in target.undone]
        lines.append("")
    lines += [
        "<sub>Opened by promoter rollback. Only pinned values move; every other change made "
        "since stays as it is.</sub>",
        "",
    ]
    return "\n".join(lines)


def render(result: RollbackResult) -> str:
    from promoter.commands.history import text

    where = f"{result.environment} ({result.branch})"
    to = f"{result.target.sha[:12]}"
    if result.target.subject:
        to += f' ("{text(result.target.subject)}")'
    done = result.delivered
    lines = []
    if not result.changes:
        head = f"{where}: every pin already has its value at {to}: nothing to roll back, no commit"
        if done is not None and done.closed is not None:
            head += f"; closed pull request #{done.closed.number} ({done.closed.url})"
    else:
        count = f"{len(result.changes)} pin value{'s' if len(result.changes) != 1 else ''}"
        retries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
        pr = done.pull_request if done else None
        if result.dry_run:
            how = f"on {result.head} for a pull request" if result.head else "in a new commit"
            head = f"{where}: would roll back to {to}: {count} {how} (dry run, nothing written)"
        elif pr is not None and done is not None:
            how = "pushed" if done.pushed else "unchanged"
            head = f"{where}: rolling back to {to}: {count} in pull request #{pr.number} ({how}"
            head += f"{retries})"
        else:
            head = f"{where}: rolled back to {to}: {count} in new commit "
            head += f"{(result.commit or '')[:12]}{retries}"
        rows = [(c.pin, c.file, c.key, f"{show_value(c.old)} -> {show_value(c.new)}")
                for c in result.changes]  # fmt: skip
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines += [
            f"  {pin:<{widths[0]}}  {file:<{widths[1]}}  {key:<{widths[2]}}  {move}"
            for pin, file, key, move in rows
        ]
        derived = sorted(set(result.files) - {c.file for c in result.changes})
        lines += [f"  + {path} (kept in sync)" for path in derived]
        if pr is not None and done is not None:
            state = "merged" if done.merged else "auto-merge enabled" if done.auto_merge else "open"
            lines.append(f"  pull request: #{pr.number} {pr.url} ({pr.head} -> {pr.base}, {state})")
    for sha, subject in result.target.undone:
        lines.append(f"  undoes {sha[:12]} {text(subject)}")
    lines += [f"  left alone: {text(reason)}" for reason in result.skipped]
    return "\n".join([head, *lines])
