"""State of the GitLab double: its records (projects, merge requests, notes, statuses), the
reply and call values its handlers pass around, and the git plumbing on the bare repos.

Handlers and rendering are in gitlab_routes.py; HTTP framing in gitlab_http.py.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promoter.sandbox.envrepo import git_env

# Statuses that are still running: a pipeline with one of these has not finished.
ACTIVE = frozenset({"created", "pending", "running", "waiting_for_resource", "preparing"})
_DRAFT = re.compile(r"\s*(\[draft\]|\(draft\)|draft:)", re.IGNORECASE)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    paginate: bool = False  # body is the whole list; the server cuts the requested page


def error(status: int, message: Any) -> Reply:
    return Reply(status, {"message": message})


@dataclass(frozen=True)
class Call:
    params: dict[str, str]  # path parameters, URL-decoded
    query: dict[str, list[str]]
    body: dict[str, Any]
    base: str  # scheme://host:port as the client addressed us, for web_url fields

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class MergeRequest:
    id: int
    iid: int
    source: str
    target: str
    title: str
    description: str
    created_at: datetime
    head_sha: str
    labels: list[str] = field(default_factory=list)
    reviewer_ids: list[int] = field(default_factory=list)
    state: str = "opened"
    updated_at: datetime | None = None
    merged_at: datetime | None = None
    closed_at: datetime | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    squash: bool = False
    auto_merge: bool = False
    notes: list[Note] = field(default_factory=list)

    @property
    def draft(self) -> bool:
        return bool(_DRAFT.match(self.title))


@dataclass(frozen=True)
class Note:
    id: int
    body: str
    created_at: datetime
    internal: bool = False


@dataclass
class StatusRecord:
    id: int
    sha: str
    ref: str
    name: str
    status: str
    created_at: datetime | None  # None: served without it (the description requires no field)
    pipeline_id: int
    description: str | None = None
    target_url: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass
class Project:
    id: int
    path: str
    bare: Path
    created_at: datetime
    mrs: dict[int, MergeRequest] = field(default_factory=dict)
    statuses: list[StatusRecord] = field(default_factory=list)
    pipelines: dict[tuple[str, str], int] = field(default_factory=dict)

    def latest_statuses(self, sha: str) -> list[StatusRecord]:
        latest: dict[str, StatusRecord] = {}
        for record in self.statuses:
            if record.sha == sha:
                latest[record.name] = record  # ids only grow: the last one is the newest
        return sorted(latest.values(), key=lambda r: r.id, reverse=True)


def stamp(when: datetime | None) -> str | None:
    if when is None:
        return None
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


# -- git plumbing on the bare repo ---------------------------------------------------------------


def git(bare: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "--git-dir", str(bare), *args],
        capture_output=True,
        text=True,
        env=git_env(),
        check=False,
    )


def branch_sha(bare: Path, branch: str) -> str | None:
    proc = git(bare, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def resolve_commit(bare: Path, sha_or_ref: str) -> str | None:
    if sha_or_ref.startswith("-"):
        return None
    proc = git(bare, "rev-parse", "--verify", "--quiet", f"{sha_or_ref}^{{commit}}")
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def branch_at(bare: Path, sha: str) -> str:
    """The ref GitLab would file a status under: a branch containing the commit."""
    fmt = "--format=%(refname:strip=2)"
    branches = git(bare, "for-each-ref", "--contains", sha, fmt, "refs/heads/").stdout.split()
    return branches[0] if branches else sha


def commit_tree(bare: Path, tree: str, parents: list[str], message: str) -> str:
    proc = git(bare, "commit-tree", tree, *parents, "-m", message)
    if proc.returncode != 0:
        raise RuntimeError(f"git commit-tree failed in {bare}: {proc.stderr.strip()}")
    return proc.stdout.strip()
