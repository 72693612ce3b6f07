"""State behind the GitHub API double: pull requests, statuses, check runs, deployments, all tied
to real commits in the bare repos of a GitHttpServer.

Nothing here speaks HTTP. Branches and SHAs always come from git itself, so a PR's head SHA moves
when someone pushes to its branch, and a merge is a real commit that moves the base branch.
"""

from __future__ import annotations

import base64
import itertools
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from promoter.sandbox.envrepo import git_env
from promoter.sandbox.gitserver import GitHttpServer

MergeMethod = Literal["merge", "squash", "rebase"]

# The identity the double's merges are committed as, like GitHub's web-flow committer.
_COMMITTER = {
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}


class GitFailure(RuntimeError):
    """git failed in a way the double cannot turn into an API answer."""


class MergeConflict(Exception):
    """The PR cannot be merged cleanly (GitHub answers 405 "Pull Request is not mergeable")."""


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, key: str) -> str:
    """An opaque GraphQL node id, decodable by the double only (as on GitHub)."""
    return f"{kind}_" + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


@dataclass
class Comment:
    id: int
    body: str
    user: str
    created_at: datetime


@dataclass
class Pull:
    number: int
    id: int
    title: str
    body: str | None
    head: str
    base: str
    head_sha: str  # last known; refreshed from the branch whenever the PR is read
    base_sha: str
    user: str
    created_at: datetime
    updated_at: datetime
    draft: bool = False
    state: Literal["open", "closed"] = "open"
    merged: bool = False
    merge_sha: str | None = None
    merged_at: datetime | None = None
    closed_at: datetime | None = None
    merged_by: str | None = None
    labels: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    auto_merge: dict[str, Any] | None = None  # {"merge_method": ..., "enabled_by": login}


@dataclass
class Issue:
    """An issue that is not a pull request (numbers are shared with pull requests)."""

    number: int
    id: int
    title: str
    body: str | None
    user: str
    created_at: datetime
    updated_at: datetime
    state: Literal["open", "closed"] = "open"
    closed_at: datetime | None = None
    labels: list[str] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)


@dataclass
class Status:
    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: datetime
    updated_at: datetime


@dataclass
class CheckRun:
    id: int
    sha: str
    name: str
    status: str  # queued | in_progress | completed | ...
    conclusion: str | None
    started_at: datetime | None
    completed_at: datetime | None
    details_url: str | None = None
    title: str | None = None
    summary: str | None = None


@dataclass
class DeploymentStatus:
    id: int
    state: str
    description: str
    environment: str
    target_url: str
    environment_url: str
    creator: str
    created_at: datetime


@dataclass
class Deployment:
    id: int
    sha: str
    ref: str
    environment: str
    task: str
    description: str | None
    payload: dict[str, Any] | str
    creator: str
    created_at: datetime
    production_environment: bool = False
    transient_environment: bool = False
    statuses: list[DeploymentStatus] = field(default_factory=list)


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None  # as GitHub stores a label made without one


@dataclass
class RepoState:
    name: str  # owner/name
    id: int
    path: Path
    created_at: datetime = field(default_factory=lambda: now())
    next_number: int = 1
    pulls: dict[int, Pull] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # by lower-cased name
    statuses: list[Status] = field(default_factory=list)
    check_runs: list[CheckRun] = field(default_factory=list)
    deployments: dict[int, Deployment] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split("/", 1)[1]


class Store:
    """Everything the double knows, behind one lock (handlers run on many threads)."""

    def __init__(self, git: GitHttpServer) -> None:
        self.git = git
        self.lock = threading.RLock()
        self._repos: dict[str, RepoState] = {}
        self._ids = itertools.count(1000)
        # (limit, remaining, reset epoch) as the HTTP layer counts them, for GET /rate_limit.
        self.rate: Callable[[], tuple[int, int, int]] | None = None

    def new_id(self) -> int:
        return next(self._ids)

    def repo(self, name: str) -> RepoState | None:
        """The state of owner/name, or None when the git server has no such repo."""
        with self.lock:
            state = self._repos.get(name)
            if state is not None:
                return state
            try:
                path = self.git.repo_path(name)
            except ValueError:
                return None
            if not path.is_dir():
                return None
            state = RepoState(name=name, id=self.new_id(), path=path)
            self._repos[name] = state
            return state

    def find_pull_by_node(self, node: str) -> tuple[RepoState, Pull] | None:
        with self.lock:
            for repo in self._repos.values():
                for pull in repo.pulls.values():
                    if node_id("PR", f"{repo.name}#{pull.number}") == node:
                        return repo, pull
        return None

    def refresh(self, repo: RepoState, pull: Pull) -> Pull:
        """Follow pushes: an open PR's head and base SHAs are its branches' tips."""
        if pull.state == "open":
            head = branch_sha(repo.path, pull.head)
            moved = head is not None and head != pull.head_sha
            pull.head_sha = head or pull.head_sha
            pull.base_sha = branch_sha(repo.path, pull.base) or pull.base_sha
            # As GitHub does: a head moved onto the base (no commit ahead any more) closes the
            # pull request, for good (it cannot be reopened).
            if moved and _git(repo.path, "merge-base", "--is-ancestor", pull.head_sha,
                              pull.base_sha).returncode == 0:  # fmt: skip
                pull.state, pull.closed_at = "closed", now()
        return pull


# --- git plumbing on the bare repo -------------------------------------------------------------


def _git(
    path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "--git-dir", str(path), *args],
        capture_output=True,
        text=True,
        env=git_env(env),
        check=False,
    )


def _checked(path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = _git(path, *args, env=env)
    if proc.returncode != 0:
        raise GitFailure(f"git {args[0]} failed in {path}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve(path: Path, ref: str) -> str | None:
    """A commit SHA for a SHA, branch or tag name; None when git knows no such commit."""
    if not ref or ref.startswith("-"):
        return None
    proc = _git(path, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    return proc.stdout.strip() if proc.returncode == 0 else None


def branch_sha(path: Path, branch: str) -> str | None:
    return resolve(path, f"refs/heads/{branch}")


def default_branch(path: Path) -> str:
    proc = _git(path, "symbolic-ref", "--short", "HEAD")
    return proc.stdout.strip() or "main"


def commits_between(path: Path, base: str, head: str) -> list[str]:
    """Commits reachable from head but not base, oldest first."""
    out = _checked(path, "rev-list", "--reverse", f"{base}..{head}", "--")
    return out.split()


def _merge_tree(path: Path, ours: str, theirs: str) -> str:
    # `merge-tree --write-tree` (git >= 2.38) merges without a worktree; exit 1 means conflicts.
    proc = _git(path, "merge-tree", "--write-tree", "--no-messages", ours, theirs)
    if proc.returncode == 1:
        raise MergeConflict(proc.stdout.strip())
    if proc.returncode != 0:
        raise GitFailure(f"git merge-tree failed in {path}: {proc.stderr.strip()}")
    return proc.stdout.split()[0]


def mergeable(path: Path, base_sha: str, head_sha: str) -> bool:
    try:
        _merge_tree(path, base_sha, head_sha)
    except MergeConflict:
        return False
    return True


def _commit_tree(
    path: Path, tree: str, parents: list[str], message: str, author: dict[str, str]
) -> str:
    args = ["commit-tree", tree, "-m", message]
    for parent in parents:
        args += ["-p", parent]
    return _checked(path, *args, env={**_COMMITTER, **author})


def _author_of(path: Path, sha: str) -> dict[str, str]:
    name, email, date = _checked(path, "log", "-1", "--format=%an%x00%ae%x00%ad", sha).split("\0")
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date}


def merge_pull(
    repo: RepoState, pull: Pull, method: MergeMethod, title: str | None, message: str | None
) -> str:
    """Merge the PR as GitHub would, move the base branch, return the new base tip.

    The base branch moves with a compare-and-swap on its old tip, so a concurrent push to the
    base is never overwritten (the merge is reported as a conflict instead).
    """
    path = repo.path
    base_sha, head_sha = pull.base_sha, pull.head_sha
    actor = {
        "GIT_AUTHOR_NAME": pull.merged_by or pull.user,
        "GIT_AUTHOR_EMAIL": f"{pull.merged_by or pull.user}@users.noreply.example",
    }
    if method == "merge":
        tree = _merge_tree(path, base_sha, head_sha)
        subject = title or f"Merge pull request #{pull.number} from {repo.owner}/{pull.head}"
        text = subject + "\n\n" + (message if message is not None else pull.title)
        new = _commit_tree(path, tree, [base_sha, head_sha], text, actor)
    elif method == "squash":
        tree = _merge_tree(path, base_sha, head_sha)
        subject = title or f"{pull.title} (#{pull.number})"
        text = subject + ("\n\n" + message if message else "")
        new = _commit_tree(path, tree, [base_sha], text, actor)
    else:
        new = base_sha
        for commit in commits_between(path, base_sha, head_sha):
            new = _cherry_pick(path, new, commit)
    proc = _git(path, "update-ref", f"refs/heads/{pull.base}", new, base_sha)
    if proc.returncode != 0:
        raise MergeConflict(f"base branch {pull.base} moved during the merge")
    return new


def _cherry_pick(path: Path, onto: str, commit: str) -> str:
    # git 2.39 has no `merge-tree --merge-base`: a throwaway commit with onto's tree and commit's
    # parent makes that parent the merge base, which is exactly a cherry-pick.
    parent = _checked(path, "rev-parse", f"{commit}^")
    onto_tree = _checked(path, "rev-parse", f"{onto}^{{tree}}")
    probe = _commit_tree(path, onto_tree, [parent], "probe", {})
    tree = _merge_tree(path, probe, commit)
    message = _checked(path, "log", "-1", "--format=%B", commit)
    return _commit_tree(path, tree, [onto], message, _author_of(path, commit))
