"""One delivery layer for every write (update, promote, rollback).

A command prepares (flags, config, what to set) and decides (a pure re-plan on any tip of the
target branch); this module delivers, with one of two strategies:

- **push**: a commit on the environment branch's tip, fast-forwarded; a lost race is
  re-planned on the new tip.
- **pull request**: a commit on the target's tip, put on a promoter-owned branch
  (`promoter/...`, replaced only under a lease), and one PR/MR opened or updated into the
  environment branch; then merged or auto-merged on request. A promoter branch that carries
  nothing any more is closed (PR) and deleted; one a person pushed to is left alone.

Two ways to write, one code path around them (`Way`): **git** (a commit made in the scratch
repo and pushed: fast-forward, or under a lease on promoter branches) and **api**
(`--commit-via api`, promoter.forge.commits.CommitAPI: the forge makes the commit, as a
compare-and-swap on the branch head; GitHub signs it). Plans, edits, message, trailers, the
no-op rule, admission, retries and the pull request flow do not know which one is used.

It owns the single retry loop (bounded in attempts and time, jittered backoff scaled to the
cycle just lost, no sleep after the last attempt), the no-op rule (nothing to change: nothing
is written; a promoter branch already holding the same tree on the same parent is not pushed
again) and the one commit-message builder (promoter.message). What it writes is a pure function
of its inputs: the clock only reaches commit dates, never trees (`Tip.time`, the tip's own
commit time, is what derived files such as Chart.lock's `generated` use).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

from promoter.errors import Held, PromoterError, RaceLost
from promoter.message import Provenance, build_message

if TYPE_CHECKING:
    from promoter.ci import RunContext
    from promoter.config import Environment
    from promoter.forge.base import Forge, PullRequest
    from promoter.forge.commits import CommitAPI, CommitVia
    from promoter.gitrepo import GitRepo
    from promoter.model import Change
    from promoter.options import Options
    from promoter.plan import Plan

T = TypeVar("T")
R = TypeVar("R", bound="WriteResult")
Strategy = Literal["push", "pull-request"]


@dataclass(frozen=True)
class RetryPolicy:
    """Lost races are retried after full-jitter exponential backoff, bounded in count and time.

    The backoff's unit is how long the attempt just lost took (at least `base`): one
    fetch-commit-push cycle on this repo and server, which is longer the more writers share
    the machine and the server. The window starts at four cycles and grows by `growth` with
    every loss in a row (up to `cap` seconds), so under contention the writers spread out
    over about as many cycles as there are writers instead of colliding again on the next
    tip; the budget bounds the whole in time, `attempts` in count.

    The growth is a quarter per loss, not a doubling: the cycle already widens the window
    with the load, and as writers land the ones left need a narrower window, not a wider one
    (32 writers on one branch: doubling left the branch idle while the last few slept out
    their windows). It still passes 70 cycles by the 14th loss in a row.

    A first attempt counts for at most `first` seconds: it is no retry's measure. It also read
    the configuration and the files, and it ran while every other writer started too; a
    retry is a re-fetch and a push. 32 writers at once at the 1,000-app size: first attempts
    took 1-2.5 s where retries took 0.1 s (0.35-0.65 s through 100 ms round trips), and
    windows 4 first attempts wide (8-10 s) kept the branch idle most of the tail.
    """

    attempts: int = 30
    budget: float = 300.0  # seconds
    base: float = 0.05
    cap: float = 10.0
    growth: float = 1.25
    first: float = 1.5  # seconds

    def delay(self, attempt: int, rng: random.Random, cycle: float = 0.0) -> float:
        unit = max(self.base, min(cycle, self.first) if attempt == 1 else cycle)
        return rng.uniform(0, min(self.cap, unit * 4 * self.growth ** (attempt - 1)))


DEFAULT_RETRY = RetryPolicy()


class _Lost:
    """An attempt lost its race: the branch moved under it."""


LOST = _Lost()


@dataclass(frozen=True)
class Clock:
    """Time as the delivery layer sees it: injectable, so tests never sleep."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    rng: random.Random = field(default_factory=random.Random)


def retry(
    what: str,
    attempt: Callable[[int], T | _Lost],
    policy: RetryPolicy = DEFAULT_RETRY,
    clock: Clock | None = None,
) -> tuple[T, int]:
    """Run `attempt(n)` until it does not lose its race; (its result, attempts used).
    RaceLost (exit 5) when the attempts or the time budget run out; never sleeps after the
    last attempt."""
    clock = clock or Clock()
    start = clock.monotonic()
    n = 0
    for n in range(1, policy.attempts + 1):
        began = clock.monotonic()
        out = attempt(n)
        if not isinstance(out, _Lost):
            return out, n
        if n == policy.attempts:
            break
        delay = policy.delay(n, clock.rng, cycle=clock.monotonic() - began)
        if clock.monotonic() + delay - start > policy.budget:
            break
        clock.sleep(delay)
    raise RaceLost(
        f"{what} kept moving: gave up after {n} attempts in "
        f"{clock.monotonic() - start:.0f}s; nothing was pushed, run again"
    )


@dataclass(frozen=True)
class Tip:
    """What a plan is computed on: the target branch's tip, its commit time (for derived
    values such as Chart.lock's `generated`: a function of the tip, not of the clock; read
    only when a plan asks, `when()`), and the promoter branch's current commit when a pull
    request is in flight (`pending`)."""

    sha: str
    when: Callable[[], datetime]
    pending: Pending | None = None


@dataclass(frozen=True)
class Pending:
    """A promoter branch's commit: one commit, built by promoter on `base` (an earlier tip).
    `open`: its pull request is still open, so what it carries is in flight; a branch left
    by a merged or closed one carries nothing (and is replaced under the lease)."""

    sha: str
    base: str
    open: bool = True


@dataclass(frozen=True)
class Write:
    """What a command wants written into one environment, and how to describe it."""

    environment: Environment
    verb: str  # update | promote | rollback: the subject's prefix
    replan: Callable[[Tip], Plan]  # pure but for the git reads it does
    provenance: Provenance
    head: str  # the promoter branch for pull-request delivery
    body: Callable[[Sequence[Change]], str]  # the pull request's body
    subject: str | None = None  # a caller's message instead of `<verb>(<env>): ...`
    strategy: Strategy = "push"
    merge: bool = False
    auto_merge: bool = False
    draft: bool = False
    accumulates: bool = False  # the plan builds on what the open pull request carries
    override_window: str | None = None  # --override-window: the reason to go ahead if held
    reads: Collection[str] = ()  # files the plan will read on the tip (api: same round trip)


@dataclass(frozen=True)
class Delivered:
    """What happened. `changes` are those written (or that would be, in a dry run)."""

    strategy: Strategy
    changes: tuple[Change, ...] = ()
    files: tuple[str, ...] = ()
    commit: str | None = None  # pushed to the branch, or the PR head
    attempts: int = 0
    pushed: bool = False
    pull_request: PullRequest | None = None
    head_branch: str | None = None
    merged: bool = False
    merge_commit: str | None = None
    auto_merge: bool = False
    closed: PullRequest | None = None  # a PR that carried nothing any more, closed
    override_window: str | None = None  # held, but let through for this (recorded) reason

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def pull_request_dict(self) -> dict[str, object] | None:
        return pull_request_json(self.pull_request, self.merged, self.merge_commit,
                                 self.auto_merge)  # fmt: skip

    def closed_dict(self) -> dict[str, object] | None:
        return closed_json(self.closed)


def pull_request_json(
    pr: PullRequest | None, merged: bool, merge_commit: str | None, auto_merge: bool
) -> dict[str, object] | None:
    """`pull_request` in the JSON of update and promote."""
    if pr is None:
        return None
    return {
        "number": pr.number,
        "url": pr.url,
        "head": pr.head,
        "base": pr.base,
        "merged": merged,
        "merge_commit": merge_commit,
        "auto_merge": auto_merge,
    }


def closed_json(pr: PullRequest | None) -> dict[str, object] | None:
    """`closed_pull_request` in the JSON of update and promote: a stale PR promoter closed."""
    return None if pr is None else {"number": pr.number, "url": pr.url}


def pull_request_operation(
    pr: PullRequest | None, closed: PullRequest | None, pushed: bool, merged: bool
) -> str:
    """`operation` in the JSON of update and promote, what this run did to the pull request:
    created, updated (a new commit pushed to it, or merged), closed (it carried nothing any
    more), or none (push delivery, a dry run, or a pull request already as it should be)."""
    if closed is not None:
        return "closed"
    if pr is None:
        return "none"
    if pr.created:
        return "created"
    return "updated" if pushed or merged else "none"


@dataclass(frozen=True)
class WriteResult:
    """What `update` and `rollback` report (promote's result adds the gate): the changes
    written (or that a dry run would write), where, and how they were delivered."""

    command: ClassVar[str]  # the JSON's "command": each subclass names its verb
    environment: str
    branch: str
    changes: tuple[Change, ...]
    commit: str | None
    dry_run: bool
    attempts: int
    files: tuple[str, ...] = ()
    delivered: Delivered | None = None  # None in a dry run
    strategy: Strategy = "push"  # how the environment takes writes (a dry run's too)
    head: str | None = None  # the promoter branch, where the environment takes pull requests

    @classmethod
    def planned(cls: type[R], write: Write, plan: Plan, **extra: Any) -> R:
        """A dry run's result: what `write` would change, nothing written."""
        head = write.head if write.strategy == "pull-request" else None
        env = write.environment
        return cls(env.name, env.branch, plan.changes, None, True, 0, tuple(sorted(plan.files)),
                   None, write.strategy, head, **extra)  # fmt: skip

    @classmethod
    def of(cls: type[R], write: Write, done: Delivered, **extra: Any) -> R:
        """What delivering `write` did."""
        head = write.head if write.strategy == "pull-request" else None
        env = write.environment
        return cls(env.name, env.branch, done.changes, done.commit, False, done.attempts,
                   done.files, done, write.strategy, head, **extra)  # fmt: skip

    @property
    def changed(self) -> bool:
        """Something was (or, in a dry run, would be) written: a commit, a pushed promoter
        branch, or a merge. A re-run that finds its pull request as it should be is not."""
        done = self.delivered
        if done is None or done.strategy == "push":
            return bool(self.changes)
        return bool(self.changes) and (done.pushed or done.merged)

    @property
    def delivery(self) -> Strategy:
        return self.delivered.strategy if self.delivered else self.strategy

    def as_dict(self) -> dict[str, Any]:
        done = self.delivered
        pr, closed = (done.pull_request, done.closed) if done else (None, None)
        return {
            "command": self.command,
            "changed": self.changed,
            "commit": self.commit,
            "environment": self.environment,
            "branch": self.branch,
            "delivery": self.delivery,
            "pull_request": done.pull_request_dict() if done else None,
            "closed_pull_request": done.closed_dict() if done else None,
            "operation": pull_request_operation(
                pr, closed, bool(done and done.pushed), bool(done and done.merged)
            ),
            "dry_run": self.dry_run,
            "attempts": self.attempts,
            "files": list(self.files),
            "changes": [change.as_dict() for change in self.changes],
            "held": False,
            "override_window": done.override_window if done else None,
        }


def admit(env: Environment, now: datetime, override: str | None) -> str | None:
    """The window check of every write (update, promote, rollback): None when `env` takes
    writes at `now`; the override's reason when it is held but `--override-window` lets the
    write through; Held (exit 4, nothing written) otherwise."""
    import sys

    from promoter.windows import when_text

    schedule = env.gate.schedule
    if schedule.always_open:
        return None
    state = schedule.state(now)
    if state.open:
        return None
    if override is not None:
        print(f"promoter: {env.name} is held ({state.reason}); going ahead for "
              f"--override-window: {override}", file=sys.stderr)  # fmt: skip
        return override
    opening = state.next_opening
    when = f"{opening.isoformat()} ({when_text(opening, now)})" if opening else "none ahead"
    raise Held(
        f"{env.name}: held: {state.reason}; next opening {when}; nothing written (for an "
        'emergency: --override-window "<reason>")',
        {
            "environment": env.name,
            "reason": state.reason,
            "next_opening": opening.isoformat() if opening else None,
            "window": state.as_dict(),
        },
    )


class Reader(Protocol):
    """What plans read on a tip, whichever way delivers (a GitRepo-backed `GitReader`, or the
    api path's `ApiReader`)."""

    def read_files(self, sha: str, paths: Iterable[str]) -> dict[str, bytes | None]:
        """Contents at commit `sha` (None: absent)."""
        ...

    def touched(self, sha: str, parent: str, paths: Sequence[str]) -> list[str]:
        """Those of `paths` whose content differs between commit `sha` and its first parent
        `parent`, in the order given."""
        ...


class GitReader:
    """Reads through the scratch repo."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo

    def read_files(self, sha: str, paths: Iterable[str]) -> dict[str, bytes | None]:
        return self.repo.read_files(sha, paths)

    def touched(self, sha: str, parent: str, paths: Sequence[str]) -> list[str]:
        # Trees are compared first: a large repo costs a few blobs, not every pinned file.
        ours, base = self.repo.list_files(sha, paths), self.repo.list_files(parent, paths)
        return [path for path in paths if ours.get(path) != base.get(path)]


class ApiReader:
    """Reads through the forge's API (cached at each SHA by the CommitAPI)."""

    def __init__(self, api: CommitAPI) -> None:
        self.api = api

    def read_files(self, sha: str, paths: Iterable[str]) -> dict[str, bytes | None]:
        return self.api.read_files(sha, list(paths))

    def touched(self, sha: str, parent: str, paths: Sequence[str]) -> list[str]:
        changed = self.api.changed_paths(sha)  # promoter's own one-commit branch: small
        return [path for path in paths if path in changed]


@dataclass(frozen=True)
class Owned:
    """A promoter branch's head commit as the delivery layer checks it."""

    sha: str
    parents: tuple[str, ...]
    message: str


class Way(Protocol):
    """How commits reach the remote: the only part of delivery that differs between
    `--commit-via git` and `--commit-via api`."""

    @property
    def via(self) -> CommitVia: ...

    @property
    def reader(self) -> Reader: ...

    def head(self, branch: str, reads: Collection[str]) -> str:
        """The environment branch's head now (reading `reads` there too, when that is free)."""
        ...

    def committed(self, sha: str) -> datetime:
        """The commit time of `sha` (a tip read by `head`), aware UTC."""
        ...

    def owned(self, branch: str) -> Owned | None:
        """The promoter branch's head commit, None when the branch does not exist."""
        ...

    def write(
        self, branch: str, parent: str, files: Mapping[str, bytes], message: str
    ) -> str | None:
        """A commit of `files` over `parent` put on environment branch `branch`, which must
        still be at `parent` (fast-forward / compare-and-swap); None when it moved (lost)."""
        ...

    def put_owned(
        self,
        branch: str,
        parent: str,
        files: Mapping[str, bytes],
        message: str,
        previous: Owned | None,
    ) -> tuple[str, bool] | None:
        """A commit of `files` over `parent` as the one commit of promoter branch `branch`,
        replacing `previous` under a lease: (its sha, pushed); (previous's sha, False) when
        `previous` already holds the same files on the same parent (nothing is written);
        None when the branch moved meanwhile (lost)."""
        ...

    def delete_owned(self, branch: str, expected: str) -> bool: ...


class GitWay:
    """`--commit-via git`: commits made in the scratch repo, pushed."""

    via: CommitVia = "git"

    def __init__(self, repo: GitRepo, run: RunContext, clock: Clock) -> None:
        self.repo = repo
        self.run = run
        self.clock = clock
        self.reader = GitReader(repo)

    def head(self, branch: str, reads: Collection[str]) -> str:
        return self.repo.fetch(branch)

    def committed(self, sha: str) -> datetime:
        return datetime.fromtimestamp(self.repo.read_commit(sha).committed, UTC)

    def owned(self, branch: str) -> Owned | None:
        head = self.repo.remote_tip(branch)
        if head is None:
            return None
        self.repo.fetch(branch, depth=2)
        info = self.repo.read_commit(head)
        return Owned(head, info.parents, info.message)

    def _commit(self, parent: str, files: Mapping[str, bytes], message: str) -> str:
        who = self.run.identity
        return self.repo.commit(parent, files, message, who, who, self.clock.now().timestamp())

    def write(
        self, branch: str, parent: str, files: Mapping[str, bytes], message: str
    ) -> str | None:
        commit = self._commit(parent, files, message)
        return commit if self.repo.push(commit, branch) else None

    def put_owned(
        self,
        branch: str,
        parent: str,
        files: Mapping[str, bytes],
        message: str,
        previous: Owned | None,
    ) -> tuple[str, bool] | None:
        commit = self._commit(parent, files, message)
        if previous is not None and self._same_tree(previous.sha, commit):
            return previous.sha, False
        if not self.repo.push_owned(commit, branch, previous.sha if previous else None):
            return None
        return commit, True

    def _same_tree(self, previous: str, ours: str) -> bool:
        """Does the promoter branch already hold what we would push (same parent and tree)?"""
        mine, theirs = self.repo.read_commit(ours), self.repo.read_commit(previous)
        return (mine.tree, mine.parents) == (theirs.tree, theirs.parents)

    def delete_owned(self, branch: str, expected: str) -> bool:
        return self.repo.delete_owned(branch, expected)


class ApiWay:
    """`--commit-via api`: the forge makes each commit (promoter.forge.commits.CommitAPI), as a
    compare-and-swap on the branch head; a promoter branch is first reset to the tip under its
    lease, then committed on."""

    via: CommitVia = "api"

    def __init__(self, api: CommitAPI) -> None:
        self.api = api
        self.reader = ApiReader(api)
        self._dates: dict[str, datetime] = {}

    def head(self, branch: str, reads: Collection[str]) -> str:
        snap = self.api.snapshot(branch, sorted(set(reads)))
        if snap.sha is None:
            from promoter.errors import UsageError

            raise UsageError(
                f"branch {branch!r} does not exist in the repository: create it, or fix the "
                "environment's `branch:` in promoter.yaml"
            )
        if snap.committed is not None:
            self._dates[snap.sha] = snap.committed
        return snap.sha

    def committed(self, sha: str) -> datetime:
        if sha not in self._dates:
            self._dates[sha] = self.api.commit_meta(sha).committed
        return self._dates[sha]

    def owned(self, branch: str) -> Owned | None:
        head = self.api.branch_head(branch)
        if head is None:
            return None
        meta = self.api.commit_meta(head)
        return Owned(head, meta.parents, meta.message)

    def write(
        self, branch: str, parent: str, files: Mapping[str, bytes], message: str
    ) -> str | None:
        from promoter.forge.commits import HEAD_MOVED

        made = self.api.create_commit(branch, parent, files, message)
        return None if made is HEAD_MOVED else str(made)

    def put_owned(
        self,
        branch: str,
        parent: str,
        files: Mapping[str, bytes],
        message: str,
        previous: Owned | None,
    ) -> tuple[str, bool] | None:
        if previous is not None and self._same_content(previous, parent, files):
            return previous.sha, False
        expected = previous.sha if previous else None
        # A forge that can replace the branch's commit in one step does (GitHub must never see
        # the branch reset onto the tip: it would close the pull request for good); else the
        # branch is reset to the tip under its lease and committed on (GitLab does both in the
        # commit request itself).
        replace = getattr(self.api, "replace_owned", None)
        if replace is not None:
            made: object = replace(branch, parent, files, message, expected)
            from promoter.forge.commits import HEAD_MOVED

            return None if made is HEAD_MOVED else (str(made), True)
        if not self.api.set_owned(branch, parent, expected):
            return None
        written = self.write(branch, parent, files, message)
        return None if written is None else (written, True)

    def _same_content(self, previous: Owned, parent: str, files: Mapping[str, bytes]) -> bool:
        """Same parent, and every path either commit changes has the same content in both:
        the same tree, compared without building ours."""
        if previous.parents != (parent,):
            return False
        paths = sorted(self.api.changed_paths(previous.sha) | set(files))
        theirs = self.api.read_files(previous.sha, paths)
        base = self.api.read_files(parent, [p for p in paths if p not in files])
        return all(theirs[p] == (files[p] if p in files else base[p]) for p in paths)

    def delete_owned(self, branch: str, expected: str) -> bool:
        return self.api.delete_owned(branch, expected)


def commit_via(options: Options, env: Environment) -> CommitVia:
    """How `env` is written: `commit_via: api` in promoter.yaml (an environment that requires
    verified commits) or --commit-via / PROMOTER_COMMIT_VIA, else git. Asking git for an
    environment that requires api is a UsageError (exit 2), before anything is written."""
    wanted = options.commit_via
    if env.commit_via == "api":
        if wanted == "git":
            from promoter.errors import UsageError

            raise UsageError(
                f"--commit-via git: environment {env.name} requires commits made through the "
                "forge's API (commit_via: api in promoter.yaml); drop --commit-via git"
            )
        return "api"
    return wanted or "git"


def open_commit_api(options: Options, repo_url: str) -> CommitAPI:
    """The CommitAPI of the forge promoter talks to (same detection and token as the forge
    adapter); with none (--forge none), a UsageError (exit 2), before any write."""
    from promoter.context import resolve_token
    from promoter.forge import detect
    from promoter.forge.commits import open_commit_api as open_api

    info = detect(options.forge, options.api_url, repo_url)
    return open_api(info, resolve_token(options, repo_url))


class PersonPushed(PromoterError):
    """Someone pushed their own commits to a promoter branch: it is theirs now."""


class Deliverer:
    """Delivers `Write`s through one scratch repo (`--commit-via git`) or the forge's API
    (`api`: a CommitAPI); opens the forge only when a PR needs it."""

    def __init__(
        self,
        repo: GitRepo,
        run: RunContext,
        forge: Callable[[str], Forge],
        policy: RetryPolicy = DEFAULT_RETRY,
        clock: Clock | None = None,
        api: CommitAPI | None = None,
    ) -> None:
        self.repo = repo
        self.run = run
        self._forge = forge
        self.policy = policy
        self.clock = clock or Clock()
        self.way: Way = ApiWay(api) if api is not None else GitWay(repo, run, self.clock)

    @property
    def reader(self) -> Reader:
        """Where plans read files on a tip: the same way the commits go."""
        return self.way.reader

    def head(self, branch: str, reads: Collection[str] = ()) -> str:
        """The environment branch's head now (for a caller that decides before delivering)."""
        return self.way.head(branch, reads)

    # ---------------------------------------------------------------- planning only

    def preview(self, write: Write, tip_sha: str | None = None) -> Plan:
        """The plan as it stands now (for --dry-run and for deciding before writing)."""
        branch = write.environment.branch
        tip = self._tip(tip_sha or self.way.head(branch, write.reads))
        if write.strategy == "pull-request":
            tip = self._with_pending(tip, write, forge_optional=True)
        plan = write.replan(tip)
        if plan.changed:  # a run that would write is held as the real one would be
            admit(write.environment, self.clock.now(), write.override_window)
        return plan

    # ---------------------------------------------------------------- delivering

    def deliver(self, write: Write, tip_sha: str | None = None) -> Delivered:
        if write.strategy == "pull-request":
            return self._by_pull_request(write, tip_sha)
        return self._by_push(write, tip_sha)

    def _by_push(self, write: Write, tip_sha: str | None) -> Delivered:
        branch = write.environment.branch
        admitted = self._admission(write)

        def attempt(n: int) -> Delivered | _Lost:
            # The caller's freshly fetched tip serves the first attempt.
            sha = tip_sha if n == 1 and tip_sha else self.way.head(branch, write.reads)
            plan = write.replan(self._tip(sha))
            if not plan.changed:
                return Delivered("push")
            override = admitted()
            commit = self.way.write(branch, sha, plan.files, self._message(plan, write, override))
            if commit is None:
                return LOST
            return Delivered("push", plan.changes, tuple(sorted(plan.files)), commit, pushed=True,
                             override_window=override)  # fmt: skip

        done, attempts = retry(branch, attempt, self.policy, self.clock)
        return _with_attempts(done, attempts)

    def _by_pull_request(self, write: Write, tip_sha: str | None = None) -> Delivered:
        env = write.environment
        admitted = self._admission(write)

        def attempt(n: int) -> Delivered | _Lost:
            # The caller's freshly read tip serves the first attempt.
            sha = tip_sha if n == 1 and tip_sha else self.way.head(env.branch, write.reads)
            tip, owned = self._pending_tip(self._tip(sha), write)
            plan = write.replan(tip)
            previous = tip.pending.sha if tip.pending else None
            if not plan.changed:
                return Delivered("pull-request", head_branch=write.head, commit=previous)
            override = admitted()
            message = self._message(plan, write, override)
            files = tuple(sorted(plan.files))
            put = self.way.put_owned(write.head, tip.sha, plan.files, message, owned)
            if put is None:
                return LOST
            commit, pushed = put
            return Delivered("pull-request", plan.changes, files, commit, pushed=pushed,
                             override_window=override)  # fmt: skip

        done, attempts = retry(write.head, attempt, self.policy, self.clock)
        done = _with_attempts(done, attempts)
        if not done.changed:
            return self._close_stale(write, done)
        try:
            return self._open(write, done)
        except PromoterError as err:
            if isinstance(err, RaceLost):
                raise
            resumable = PromoterError(
                f"{err}; the change is on {write.head}: run the same command again to finish"
            )
            resumable.exit_code = err.exit_code
            raise resumable from None

    def _open(self, write: Write, done: Delivered) -> Delivered:
        from promoter.forge.base import PullRequestSpec
        from promoter.message import title

        env = write.environment
        forge = self._forge(f"delivering to {env.name} by pull request")
        settings = env.pull_request
        spec = PullRequestSpec(
            head=write.head,
            base=env.branch,
            title=write.subject.splitlines()[0]
            if write.subject
            else title(write.verb, env.name, done.changes),
            body=write.body(done.changes) + _override_note(done.override_window),
            labels=settings.labels,
            reviewers=settings.reviewers,
            draft=write.draft or settings.draft,
        )
        pull = forge.open_or_update_pull_request(spec)
        merged, merge_commit, auto = False, None, False
        if write.merge:
            answer = forge.merge_pull_request(pull.number, str(done.commit), "merge")
            if not answer.merged:
                raise PromoterError(
                    f"pull request #{pull.number} ({pull.url}) is open but was not merged: "
                    f"{answer.message or 'the forge refused'}"
                )
            merged, merge_commit = True, answer.sha
            self.way.delete_owned(write.head, str(done.commit))  # its work is done
        elif write.auto_merge:
            outcome = forge.enable_auto_merge(pull.number, "merge")  # GitLab may merge at once
            merged, merge_commit, auto = outcome.merged, outcome.sha, not outcome.merged
        return _replace(
            done,
            pull_request=pull,
            head_branch=write.head,
            merged=merged,
            merge_commit=merge_commit,
            auto_merge=auto,
        )

    def _close_stale(self, write: Write, done: Delivered) -> Delivered:
        """Nothing left to carry: close the PR that still asks for it, delete its branch."""
        if done.commit is None:  # no promoter branch: nothing was in flight
            return done
        env = write.environment
        forge = self._forge(f"closing the pull request of {write.head}")
        pull = forge.find_pull_request(write.head, env.branch)
        if pull is not None:
            forge.comment(
                pull.number,
                f"Closed by promoter: {env.branch} already has every version this pull "
                "request carried, so it has nothing left to change.",
            )
            forge.close_pull_request(pull.number)
        self.way.delete_owned(write.head, done.commit)
        return _replace(done, commit=None, closed=pull)

    # ---------------------------------------------------------------- helpers

    def _tip(self, sha: str) -> Tip:
        def when() -> datetime:
            return self.way.committed(sha)

        return Tip(sha, when)

    def _with_pending(self, tip: Tip, write: Write, forge_optional: bool = False) -> Tip:
        return self._pending_tip(tip, write, forge_optional)[0]

    def _pending_tip(
        self, tip: Tip, write: Write, forge_optional: bool = False
    ) -> tuple[Tip, Owned | None]:
        """The promoter branch's commit while its pull request is open (what is in flight),
        and that branch's head as read. A branch left over from a merged or closed pull
        request carries nothing, nor one that points at the tip itself (an api-path run that
        stopped between resetting it and committing on it); a branch a person pushed to is
        theirs (PersonPushed)."""
        owned = self.way.owned(write.head)
        if owned is None:
            return tip, None
        head = owned.sha
        if head == tip.sha:
            return Tip(tip.sha, tip.when, Pending(head, head, open=False)), owned
        marker = f"Promoter-Environment: {write.environment.name}"
        if len(owned.parents) != 1 or marker not in _trailer_block(owned.message):
            raise PersonPushed(
                f"{write.head} holds a commit promoter did not write ({head[:12]}): someone "
                "pushed to it, so promoter leaves it and its pull request alone; merge or "
                f"close that pull request, delete {write.head}, then run again"
            )
        if not write.accumulates:  # what the branch carries does not matter to the plan
            return Tip(tip.sha, tip.when, Pending(head, owned.parents[0])), owned
        try:
            forge = self._forge(f"delivering to {write.environment.name} by pull request")
        except PromoterError:
            if not forge_optional:
                raise
            return Tip(tip.sha, tip.when, Pending(head, owned.parents[0])), owned
        # Its newest pull request says whether it is in flight: open, or none for this very
        # commit (a run died between pushing and opening: its values must not be lost); one
        # merged or closed at this commit means the branch is a leftover carrying nothing.
        last = forge.last_pull_request(write.head, write.environment.branch)
        over = last is not None and last.state != "open" and last.head_sha == head
        return Tip(tip.sha, tip.when, Pending(head, owned.parents[0], open=not over)), owned

    def _admission(self, write: Write) -> Callable[[], str | None]:
        """`admit` once per delivery, when it first has something to write (a write with
        nothing to change is never held); its answer is kept for the retries."""
        answer: list[str | None] = []

        def admitted() -> str | None:
            if not answer:
                answer.append(admit(write.environment, self.clock.now(), write.override_window))
            return answer[0]

        return admitted

    def _message(self, plan: Plan, write: Write, override: str | None) -> str:
        """The one commit message of every way: promoter.message's, with the override."""
        provenance = write.provenance
        if override is not None:
            provenance = dataclasses.replace(provenance, override_window=override)
        return build_message(
            write.verb, write.environment.name, plan.changes, provenance, write.subject
        )


def _override_note(reason: str | None) -> str:
    """The pull request body's record of a window override (its reason as Markdown text)."""
    if reason is None:
        return ""
    from promoter.sinks import md_text

    return f"\n**Deploy window overridden:** {md_text(reason)}\n"


def _trailer_block(message: str) -> str:
    return message.rstrip("\n").rpartition("\n\n")[2]


def _with_attempts(done: Delivered, attempts: int) -> Delivered:
    return _replace(done, attempts=attempts)


def _replace(done: Delivered, **changes: object) -> Delivered:
    import dataclasses

    return dataclasses.replace(done, **changes)  # type: ignore[arg-type]
