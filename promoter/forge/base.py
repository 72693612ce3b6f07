"""The forge seam: one narrow Protocol over GitHub and GitLab, with forge-neutral values.

Adapters translate their SDK's errors into promoter errors at this edge (token scrubbed), so
nothing above this module knows which forge it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from promoter.errors import PromoterError, UsageError

State = Literal["success", "pending", "failure", "error"]
PullState = Literal["open", "closed", "merged"]
MergeMethod = Literal["merge", "squash", "rebase"]


class ForgeError(PromoterError):
    """The forge refused or failed (exit 1); the message says what and where, never the token."""


class ForgeAuthError(ForgeError):
    """401/403 that is not a rate limit: `authentication failed for <host>`."""


class NeedsForge(UsageError):
    """A pull-request operation was asked of plain git (`--forge none`)."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str  # the web page, for people
    title: str
    body: str
    head: str  # branch names, without refs/heads/
    base: str
    head_sha: str
    state: PullState = "open"
    draft: bool = False
    labels: tuple[str, ...] = ()
    merge_sha: str | None = None  # the merge (or squash) commit once merged
    # open_or_update_pull_request opened it (rather than found it); not part of its identity
    created: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class PullRequestSpec:
    """What a promotion PR should look like; open_or_update makes it so."""

    head: str
    base: str
    title: str
    body: str = ""
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    draft: bool = False


@dataclass(frozen=True)
class CommitStatus:
    """A commit status or a check run, normalised: the input of gate evaluation."""

    context: str
    state: State
    updated_at: datetime  # timezone-aware, UTC; unknown → when it was read (status_time)
    description: str = ""
    target_url: str | None = None
    kind: Literal["status", "check"] = "status"


def status_time(*stamps: object, now: datetime | None = None) -> datetime:
    """When a status last changed, from the first of `stamps` that is set, as aware UTC.

    Missing or unparseable counts as `now` (default: the wall clock), i.e. just reported: a
    status of unknown age must never pass a soak at once, on any forge. Both adapters read
    their timestamps through here."""
    current = now or datetime.now(UTC)
    value = next((stamp for stamp in stamps if stamp not in (None, "")), None)
    if not isinstance(value, str):
        return current
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return current
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class MergeResult:
    """What a merge (or an auto-merge request) came to: merged with its commit, or not (yet)."""

    merged: bool
    sha: str | None = None
    message: str = ""


@dataclass(frozen=True)
class ForgeInfo:
    """Which forge, where its API is, and which repository (owner/name or GitLab path)."""

    kind: Literal["github", "gitlab", "none"]
    api_url: str | None
    repository: str | None
    host: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class Forge(Protocol):
    info: ForgeInfo

    def find_pull_request(self, head: str, base: str) -> PullRequest | None:
        """The open PR from head into base, if any."""
        ...

    def last_pull_request(self, head: str, base: str) -> PullRequest | None:
        """The newest PR from head into base in any state (open, closed or merged), if any:
        one request. Tells a branch whose PR is over from one whose PR was never opened."""
        ...

    def open_or_update_pull_request(self, spec: PullRequestSpec) -> PullRequest:
        """Open the PR, or bring the open one for the same head/base in line with spec.

        Labels and reviewers are added, never removed: a label or reviewer someone put on the
        PR by hand (a "hold" label) survives every update, as does one the spec stopped naming.

        Resumable: a run that died part-way (after creating the PR, before its reviewers or
        labels) is completed by the next call with the same spec, never duplicated. A reviewer
        who has already reviewed is not asked again by a re-run that changes no content.
        """
        ...

    def close_pull_request(self, number: int) -> None: ...

    def merge_pull_request(
        self,
        number: int,
        expected_head_sha: str,
        method: MergeMethod = "merge",
        commit_title: str | None = None,
    ) -> MergeResult:
        """Merge only if the PR head is still expected_head_sha (else merged=False)."""
        ...

    def enable_auto_merge(self, number: int, method: MergeMethod = "merge") -> MergeResult:
        """Merge once the head's checks pass; the outcome is read from the forge's answer.

        merged=True with the merge commit when the forge merged at once (GitLab does when
        nothing is pending on the head); merged=False when auto-merge is armed and waiting."""
        ...

    def comment(self, number: int, body: str) -> None: ...

    def statuses(self, sha: str) -> list[CommitStatus]:
        """Commit statuses and check runs on sha (all of them, newest first per context)."""
        ...

    def set_status(
        self,
        sha: str,
        state: State,
        context: str,
        description: str = "",
        target_url: str | None = None,
        repository: str | None = None,  # another repo (the app's); default: the env repo
    ) -> None: ...

    def create_deployment(
        self,
        ref: str,
        environment: str,
        state: State,
        target_url: str | None = None,
        repository: str | None = None,
    ) -> str:
        """A GitHub Deployment of ref with its first status; returns its id.

        GitLab adapters raise NeedsForge."""
        ...

    def set_deployment_status(
        self,
        deployment_id: str,
        environment: str,
        state: State,
        target_url: str | None = None,
        repository: str | None = None,
    ) -> None:
        """Move a deployment made by create_deployment on (pending → success, ...)."""
        ...

    def rate_limit_wait(self) -> float:
        """Seconds a poller should hold off so the API quota lasts (0 when there is plenty).

        Read from the rate-limit headers of responses already received: costs no request."""
        ...
