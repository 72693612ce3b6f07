"""GitLab ↔ promoter values: job/status states, merge requests, draft titles, merge methods.

Pure functions and tables, no I/O: the GitLab adapter (gitlab.py) feeds them what python-gitlab
returned and sends what they build.
"""

from __future__ import annotations

import re
from typing import Any

from promoter.errors import UsageError
from promoter.forge.base import (
    CommitStatus,
    MergeMethod,
    PullRequest,
    PullState,
    State,
    status_time,
)

DRAFT_PREFIX = "Draft: "
_DRAFT = re.compile(r"\s*(\[draft\]|\(draft\)|draft:)\s*", re.IGNORECASE)

# GitLab job/status states → promoter's four; None = ignored (a skipped job says nothing).
_WAITING = ("created", "pending", "running", "waiting_for_resource", "preparing", "scheduled")
STATE_MAP: dict[str, State | None] = {
    **dict.fromkeys((*_WAITING, "manual"), "pending"),
    "success": "success",
    "failed": "failure",
    "canceled": "error",
    "skipped": None,
}
# promoter → GitLab; error goes out as canceled so that it reads back as error.
STATE_OUT: dict[State, str] = {
    "success": "success",
    "pending": "pending",
    "failure": "failed",
    "error": "canceled",
}
PR_STATE: dict[str, PullState] = {
    "opened": "open",
    "locked": "open",
    "closed": "closed",
    "merged": "merged",
}


def merge_options(method: MergeMethod) -> dict[str, Any]:
    if method == "merge":
        return {}
    if method == "squash":
        return {"squash": True}
    raise UsageError(
        f"merge method {method!r} is a project setting on GitLab (Settings → Merge requests → "
        "Merge method); promoter can ask GitLab for 'merge' or 'squash' per merge request"
    )


def reviewer_name(name: str) -> str:
    """A reviewer as configured ("alice", "@alice", "42") → "alice" / "42"."""
    return name.strip().removeprefix("@")


def mr_title(title: str, draft: bool) -> str:
    bare = _DRAFT.sub("", title, count=1) if _DRAFT.match(title) else title
    return DRAFT_PREFIX + bare if draft else bare


def pull_request(attrs: Any) -> PullRequest:
    state = PR_STATE.get(str(attrs.get("state")), "open")
    return PullRequest(
        number=int(attrs["iid"]),
        url=str(attrs.get("web_url") or ""),
        title=str(attrs.get("title") or ""),
        body=str(attrs.get("description") or ""),
        head=str(attrs.get("source_branch") or ""),
        base=str(attrs.get("target_branch") or ""),
        head_sha=str(attrs.get("sha") or ""),
        state=state,
        draft=bool(attrs.get("draft") or attrs.get("work_in_progress")),
        labels=tuple(str(label) for label in attrs.get("labels") or ()),
        merge_sha=(attrs.get("merge_commit_sha") or attrs.get("squash_commit_sha"))
        if state == "merged"
        else None,
    )


def commit_status(attrs: dict[str, Any]) -> CommitStatus | None:
    state = STATE_MAP.get(str(attrs.get("status")), "pending")
    if state is None:
        return None
    # The description gives statuses created/started/finished times but no updated_at: the
    # last of them that is set is when the status last changed (what a soak is measured from).
    # None of them is required by the description: with none set, it counts as just reported.
    stamps = [attrs.get(k) for k in ("updated_at", "finished_at", "started_at", "created_at")]
    return CommitStatus(
        context=str(attrs.get("name") or "default"),
        state=state,
        updated_at=status_time(*stamps),
        description=str(attrs.get("description") or ""),
        target_url=attrs.get("target_url") or None,
    )
