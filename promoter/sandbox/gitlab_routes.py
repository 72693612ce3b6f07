"""What the GitLab double answers: merge requests, statuses and notes, over real repos.

State lives in memory, but branches, commits and merges live in the bare repos of a
GitHttpServer, so what a test reads back with git is exactly what the API reported. HTTP
framing, auth, faults, pagination and OpenAPI checks are in gitlab_http.py and gitlab_api.py;
the records and git plumbing in gitlab_store.py.

Shapes and messages follow GitLab (lib/api/merge_requests.rb, Ci::CreateCommitStatusService).
An MR's `reviewers` and `assignees` are sent as arrays, as GitLab sends them; the description
types them as one object, a quirk the strict double corrects explicitly (gitlab_quirks.py).
Absent values are omitted rather than null, because the description marks few fields nullable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from promoter.sandbox.gitlab_commits import CommitRoutes
from promoter.sandbox.gitlab_store import (
    ACTIVE,
    Call,
    MergeRequest,
    Note,
    Project,
    Reply,
    StatusRecord,
    branch_at,
    branch_sha,
    commit_tree,
    error,
    git,
    resolve_commit,
    stamp,
)
from promoter.sandbox.gitserver import GitHttpServer

# PUT on a merge request must name at least one of these (GitLab answers 400 otherwise).
# fmt: off
_UPDATABLE = ("assignee_id", "assignee_ids", "reviewer_ids", "description", "labels", "add_labels",
              "remove_labels", "milestone_id", "milestone", "remove_source_branch",
              "allow_collaboration", "allow_maintainer_to_push", "squash", "target_branch", "title",
              "state_event", "discussion_locked", "merge_after")
# fmt: on


# Env branches are often seeded as separate roots; GitLab merges them like any other branch.
_UNRELATED = ("--allow-unrelated-histories",)


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


class GitLabState(CommitRoutes):
    """Every project under the git server's root is a GitLab project, by path or numeric id."""

    def __init__(self, git_server: GitHttpServer, clock: Callable[[], datetime]) -> None:
        self.git_server = git_server
        self.clock = clock
        self.projects: dict[str, Project] = {}
        self.users: dict[int, str] = {1: "promoter-bot"}  # id 1 is the token's owner
        self._ids = 0

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def project(self, ident: str) -> Project | None:
        if ident.isdigit():
            if not any(p.id == int(ident) for p in self.projects.values()):
                for bare in sorted(self.git_server.root.rglob("*.git")):
                    self.project(bare.relative_to(self.git_server.root).as_posix()[:-4])
            return next((p for p in self.projects.values() if p.id == int(ident)), None)
        path = ident.removesuffix(".git")
        if path not in self.projects:
            try:
                bare = self.git_server.repo_path(path)
            except ValueError:
                return None
            if not (bare / "HEAD").is_file():
                return None
            self.projects[path] = Project(self.next_id(), path, bare, self.clock())
        return self.projects[path]

    # -- rendering ---------------------------------------------------------------------------
    # Field tables read best packed, a group of related fields per line.
    # fmt: off

    def user(self, base: str, uid: int = 1) -> dict[str, Any]:
        name = self.users[uid]
        return {"id": uid, "username": name, "name": name.title(), "state": "active",
                "locked": False, "avatar_url": "", "web_url": f"{base}/{name}"}

    def render_mr(self, p: Project, mr: MergeRequest, base: str) -> dict[str, Any]:
        if mr.state == "opened":
            mr.head_sha = branch_sha(p.bare, mr.source) or mr.head_sha
        user, ref, merged = self.user(base), f"!{mr.iid}", mr.merged_at is not None
        detailed = "not_open"
        if mr.state == "opened":
            running = any(r.status in ACTIVE for r in p.latest_statuses(mr.head_sha))
            detailed = ("draft_status" if mr.draft else
                        "ci_still_running" if running else "mergeable")
        return _clean({
            "id": mr.id, "iid": mr.iid, "project_id": p.id, "title": mr.title,
            "description": mr.description, "state": mr.state, "author": user,
            "created_at": stamp(mr.created_at), "updated_at": stamp(mr.updated_at or mr.created_at),
            "source_branch": mr.source, "target_branch": mr.target, "sha": mr.head_sha,
            "source_project_id": p.id, "target_project_id": p.id, "labels": list(mr.labels),
            "assignees": [], "reviewers": [self.user(base, uid) for uid in mr.reviewer_ids],
            "draft": mr.draft, "work_in_progress": mr.draft, "squash": mr.squash,
            "squash_on_merge": mr.squash, "merge_when_pipeline_succeeds": mr.auto_merge,
            "merge_status": "can_be_merged", "detailed_merge_status": detailed,
            "has_conflicts": False, "blocking_discussions_resolved": True,
            "discussion_locked": False, "user_notes_count": len(mr.notes), "upvotes": 0,
            "downvotes": 0, "reference": ref,
            "web_url": f"{base}/{p.path}/-/merge_requests/{mr.iid}",
            "references": {"short": ref, "relative": ref, "full": f"{p.path}{ref}"},
            "merged_at": stamp(mr.merged_at), "merged_by": user if merged else None,
            "merge_user": user if merged else None, "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": mr.squash_commit_sha, "closed_at": stamp(mr.closed_at),
            "closed_by": user if mr.closed_at else None,
        })

    def render_status(self, r: StatusRecord, base: str) -> dict[str, Any]:
        return _clean({
            "id": r.id, "sha": r.sha, "ref": r.ref, "status": r.status, "name": r.name,
            "description": r.description, "target_url": r.target_url, "allow_failure": False,
            "created_at": stamp(r.created_at), "started_at": stamp(r.started_at),
            "finished_at": stamp(r.finished_at), "pipeline_id": r.pipeline_id,
            "author": self.user(base),
        })

    def render_note(self, p: Project, mr: MergeRequest, note: Note, base: str) -> dict[str, Any]:
        return {"id": note.id, "body": note.body, "author": self.user(base),
                "created_at": stamp(note.created_at), "updated_at": stamp(note.created_at),
                "system": False, "noteable_id": mr.id, "noteable_type": "MergeRequest",
                "noteable_iid": mr.iid, "project_id": p.id, "resolvable": False,
                "confidential": False, "internal": note.internal}

    # fmt: on
    # -- merge requests ----------------------------------------------------------------------

    def find_open(self, p: Project, source: str, target: str) -> MergeRequest | None:
        for mr in p.mrs.values():
            if mr.state == "opened" and (mr.source, mr.target) == (source, target):
                return mr
        return None

    def create_mr(self, p: Project, call: Call) -> Reply:
        body = call.body
        missing = [k for k in ("title", "source_branch", "target_branch") if not body.get(k)]
        if missing:
            return Reply(400, {"error": f"{', '.join(missing)} is missing"})
        title, source, target = body["title"], body["source_branch"], body["target_branch"]
        # GitLab reports branch problems as 409 with a list of messages (validate_branches).
        if source == target:
            return error(409, ["You can't use same project/branch for source and target"])
        head = branch_sha(p.bare, source)
        if head is None:
            return error(409, [f'Source branch "{source}" does not exist'])
        if branch_sha(p.bare, target) is None:
            return error(409, [f'Target branch "{target}" does not exist'])
        existing = self.find_open(p, source, target)
        if existing is not None:
            return _duplicate(existing)
        iid, description = max(p.mrs, default=0) + 1, body.get("description") or ""
        mr = MergeRequest(
            self.next_id(), iid, source, target, title, description, self.clock(), head
        )
        mr.squash = bool(body.get("squash"))
        self._apply_labels(mr, body)
        mr.reviewer_ids = self._reviewers(body.get("reviewer_ids"))
        p.mrs[mr.iid] = mr
        return Reply(201, self.render_mr(p, mr, call.base))

    def update_mr(self, p: Project, mr: MergeRequest, call: Call) -> Reply:
        body = call.body
        if not any(k in body for k in _UPDATABLE):
            missing = ", ".join(_UPDATABLE)
            return Reply(
                400, {"error": f"{missing} are missing, at least one parameter must be provided"}
            )
        event = body.get("state_event")
        if event == "reopen" and mr.state == "closed":
            other = self.find_open(p, mr.source, mr.target)
            if other is not None:
                return _duplicate(other)
            mr.state, mr.closed_at = "opened", None
        elif event == "close" and mr.state == "opened":
            mr.state, mr.closed_at, mr.auto_merge = "closed", self.clock(), False
        for key in ("title", "description", "target_branch"):
            if body.get(key) is not None:
                setattr(mr, "target" if key == "target_branch" else key, body[key])
        if body.get("squash") is not None:
            mr.squash = bool(body["squash"])
        if body.get("reviewer_ids") is not None:
            mr.reviewer_ids = self._reviewers(body["reviewer_ids"])
        self._apply_labels(mr, body)
        mr.updated_at = self.clock()
        return Reply(200, self.render_mr(p, mr, call.base))

    def _reviewers(self, ids: Any) -> list[int]:
        """The reviewers GitLab keeps: known users, each once; 0 (or none) clears them.

        GitLab filters reviewer_ids down to users who can read the merge request, so an id
        with no user behind it is dropped rather than refused.
        """
        kept: list[int] = []
        for uid in (int(i) for i in ids or []):
            if uid in self.users and uid not in kept:
                kept.append(uid)
        return kept

    def _apply_labels(self, mr: MergeRequest, body: dict[str, Any]) -> None:
        if body.get("labels") is not None:
            mr.labels = []
        for name in _names(body.get("labels")) + _names(body.get("add_labels")):
            if name not in mr.labels:
                mr.labels.append(name)
        mr.labels = [n for n in mr.labels if n not in _names(body.get("remove_labels"))]

    def accept_mr(self, p: Project, mr: MergeRequest, call: Call) -> Reply:
        body = call.body
        if mr.state != "opened":
            return error(405, "405 Method Not Allowed")
        head = branch_sha(p.bare, mr.source) or mr.head_sha
        if body.get("sha") and body["sha"] != head:
            return error(409, f"SHA does not match HEAD of source branch: {head}")
        if body.get("squash") is not None:
            mr.squash = bool(body["squash"])
        if body.get("auto_merge") or body.get("merge_when_pipeline_succeeds"):
            mr.auto_merge = True
            if mr.draft or any(r.status in ACTIVE for r in p.latest_statuses(head)):
                mr.updated_at = self.clock()
                return Reply(200, self.render_mr(p, mr, call.base))
        elif mr.draft:
            return error(405, "405 Method Not Allowed")
        failure = self.merge(
            p, mr, body.get("merge_commit_message"), body.get("squash_commit_message"), head
        )
        if failure is not None:
            return failure
        return Reply(200, self.render_mr(p, mr, call.base))

    def merge(
        self,
        p: Project,
        mr: MergeRequest,
        message: str | None,
        squash_message: str | None,
        head: str | None = None,
    ) -> Reply | None:
        """A real merge (or squash and merge) commit on the target branch; None when done.

        `head` is the source commit the caller checked (the `sha` guard): that one is merged,
        even if a push moves the source branch meanwhile.
        """
        target, head = branch_sha(p.bare, mr.target), head or branch_sha(p.bare, mr.source)
        if target is None or head is None:
            return error(422, "Branch cannot be merged")
        tree = git(p.bare, "merge-tree", "--write-tree", "--no-messages", *_UNRELATED, target, head)
        if tree.returncode != 0:
            return error(422, "Branch cannot be merged")
        second = head
        if mr.squash:
            base = git(p.bare, "merge-base", target, head).stdout.strip()
            parents = ["-p", base] if base else []
            second = commit_tree(p.bare, f"{head}^{{tree}}", parents, squash_message or mr.title)
            mr.squash_commit_sha = second
        default = (
            f"Merge branch '{mr.source}' into '{mr.target}'\n\n{mr.title}\n\n"
            f"See merge request {p.path}!{mr.iid}"
        )
        merged = commit_tree(
            p.bare, tree.stdout.split()[0], ["-p", target, "-p", second], message or default
        )
        # Compare-and-swap: a push that landed meanwhile must not be overwritten.
        if git(p.bare, "update-ref", f"refs/heads/{mr.target}", merged, target).returncode != 0:
            mr.squash_commit_sha = None
            return error(409, "The target branch moved while merging; try again")
        now = self.clock()
        mr.state, mr.merged_at, mr.updated_at = "merged", now, now
        mr.merge_commit_sha, mr.head_sha, mr.auto_merge = merged, head, False
        return None

    def list_mrs(self, p: Project, call: Call) -> Reply:
        state = call.q("state") or "all"
        wanted = _names(call.q("labels"))
        mrs = [
            m
            for m in p.mrs.values()
            if state in ("all", m.state)
            and call.q("source_branch") in (None, m.source)
            and call.q("target_branch") in (None, m.target)
            and all(n in m.labels for n in wanted)
        ]
        key = "updated_at" if call.q("order_by") == "updated_at" else "created_at"
        mrs.sort(
            key=lambda m: (getattr(m, key) or m.created_at, m.iid), reverse=call.q("sort") != "asc"
        )
        return Reply(200, [self.render_mr(p, m, call.base) for m in mrs], paginate=True)

    def add_note(self, p: Project, mr: MergeRequest, call: Call) -> Reply:
        text = call.body.get("body")
        if not text:
            return Reply(400, {"message": {"note": ["can't be blank"]}})
        note = Note(self.next_id(), str(text), self.clock(), bool(call.body.get("internal")))
        mr.notes.append(note)
        return Reply(201, self.render_note(p, mr, note, call.base))

    def list_users(self, call: Call) -> Reply:
        wanted = call.q("username")
        found = [uid for uid, name in self.users.items() if wanted in (None, name)]
        return Reply(200, [self.user(call.base, uid) for uid in found], paginate=True)

    # -- commit statuses ---------------------------------------------------------------------

    def post_status(self, p: Project, call: Call) -> Reply:
        sha = resolve_commit(p.bare, call.params["sha"])
        if sha is None:
            return error(404, "404 Commit Not Found")
        body, now = call.body, self.clock()
        state = body.get("state")
        if state not in ("pending", "running", "success", "failed", "canceled", "skipped"):
            return Reply(400, {"error": "state does not have a valid value"})
        name = body.get("name") or body.get("context") or "default"
        ref = body.get("ref") or branch_at(p.bare, sha)
        pipeline = p.pipelines.setdefault((sha, ref), self.next_id())
        same = [r for r in p.statuses if (r.sha, r.name, r.ref) == (sha, name, ref)]
        active = same[-1] if same and same[-1].status in ACTIVE else None
        if active is not None and (state == "pending" or state == active.status):
            event = {"pending": "enqueue", "running": "run"}.get(str(state), str(state))
            reason = f'(Reason(s): Status cannot transition via "{event}")'
            return error(
                400, f"Cannot transition status via :{event} from :{active.status} {reason}"
            )
        record = active or StatusRecord(self.next_id(), sha, ref, name, "created", now, pipeline)
        record.status = str(state)
        if body.get("description") is not None:
            record.description = body["description"]
        if body.get("target_url") is not None:
            record.target_url = body["target_url"]
        if state == "running" or state not in ACTIVE:
            record.started_at = record.started_at or now
        if state not in ACTIVE:
            record.finished_at = now
        if active is None:
            p.statuses.append(record)
        self._auto_merge(p, sha)
        return Reply(200, self.render_status(record, call.base))

    def _auto_merge(self, p: Project, sha: str) -> None:
        """Merge requests waiting on this head merge once its latest statuses all succeed."""
        latest = p.latest_statuses(sha)
        if any(r.status in ACTIVE for r in latest):
            return
        for mr in list(p.mrs.values()):
            if mr.state != "opened" or not mr.auto_merge or mr.draft:
                continue
            if branch_sha(p.bare, mr.source) != sha:
                continue
            if any(r.status in ("failed", "canceled") for r in latest):
                mr.auto_merge = False  # GitLab drops auto-merge when the pipeline fails
            else:
                self.merge(p, mr, None, None)

    def list_statuses(self, p: Project, call: Call) -> Reply:
        sha = resolve_commit(p.bare, call.params["sha"])
        if sha is None:
            return error(404, "404 Commit Not Found")
        every = call.q("all") == "true"
        records = (
            [r for r in reversed(p.statuses) if r.sha == sha] if every else p.latest_statuses(sha)
        )
        for key in ("name", "ref"):
            wanted = call.q(key)
            records = [r for r in records if wanted is None or getattr(r, key) == wanted]
        if call.q("sort") == "asc":
            records.reverse()
        return Reply(200, [self.render_status(r, call.base) for r in records], paginate=True)


def _duplicate(mr: MergeRequest) -> Reply:
    # GitLab reports branch validation failures as 409 with a list of messages.
    return error(
        409, [f"Another open merge request already exists for this source branch: !{mr.iid}"]
    )


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [item.strip() for item in items if item.strip()]
