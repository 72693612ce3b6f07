"""Routes of the GitHub API double about pull requests (and the issue side of them: labels,
comments): what each REST call does to the store, answered the way GitHub answers.

Handlers run under the store's lock and return a Reply; github_http.py does HTTP, auth, faults,
pagination, ETags and validation against the official description around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from promoter.sandbox import github_render as render
from promoter.sandbox.github_store import (
    Comment,
    Issue,
    Label,
    MergeConflict,
    Pull,
    RepoState,
    Store,
    branch_sha,
    commits_between,
    merge_pull,
    now,
    resolve,
)


@dataclass
class Request:
    method: str
    path: str  # after the API prefix, without the query: /repos/o/r/pulls
    query: dict[str, list[str]]
    body: Any  # decoded JSON (None when there was none)
    urls: render.Urls
    login: str  # the user the token belongs to
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def field(self, name: str, default: Any = None) -> Any:
        return self.body.get(name, default) if isinstance(self.body, dict) else default


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Paginate the body (a list), or the list under this key of the body (check runs).
    paginate: bool = False
    page_key: str | None = None


class Problem(Exception):
    """Raised by a handler to answer with an error status."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.reply = Reply(status, render.error(message, errors))


def invalid(resource: str, field_name: str, code: str = "invalid") -> Problem:
    return Problem(
        422, "Validation Failed", [{"resource": resource, "field": field_name, "code": code}]
    )


def custom(resource: str, message: str) -> Problem:
    return Problem(
        422, "Validation Failed", [{"resource": resource, "code": "custom", "message": message}]
    )


NOT_FOUND = "Not Found"


# --- helpers ------------------------------------------------------------------------------------


def find_repo(store: Store, req: Request) -> RepoState:
    repo = store.repo(f"{req.params['owner']}/{req.params['repo']}")
    if repo is None:
        raise Problem(404, NOT_FOUND)
    return repo


def find_pull(store: Store, req: Request, key: str = "number") -> tuple[RepoState, Pull]:
    repo = find_repo(store, req)
    pull = repo.pulls.get(int(req.params[key]))
    if pull is None:
        raise Problem(404, NOT_FOUND)
    return repo, store.refresh(repo, pull)


def find_issue(store: Store, req: Request) -> tuple[RepoState, Pull | Issue]:
    """An issue or a pull request by number: the Issues API serves both."""
    repo = find_repo(store, req)
    number = int(req.params["number"])
    if number in repo.issues:
        return repo, repo.issues[number]
    return find_pull(store, req)


def commit_sha(repo: RepoState, ref: str, status: int = 422) -> str:
    sha = resolve(repo.path, ref)
    if sha is None:
        raise Problem(status, f"No commit found for SHA: {ref}")
    return sha


def touch(pull: Pull | Issue) -> None:
    pull.updated_at = now()


def ensure_labels(store: Store, repo: RepoState, names: list[Any]) -> list[str]:
    # Issue label endpoints create labels that do not exist yet (as GitHub does with push access).
    out: list[str] = []
    for item in names:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip():
            raise invalid("Label", "name")
        repo.labels.setdefault(name.lower(), Label(store.new_id(), name))
        canonical = repo.labels[name.lower()].name
        if canonical not in out:
            out.append(canonical)
    return out


# --- pull requests ------------------------------------------------------------------------------


def list_pulls(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    state, head, base = req.arg("state", "open"), req.arg("head"), req.arg("base")
    pulls = [store.refresh(repo, p) for p in sorted(repo.pulls.values(), key=lambda p: -p.number)]
    if state != "all":
        pulls = [p for p in pulls if p.state == state]
    if head:
        # GitHub filters on `user:ref`; a bare ref matches nothing useful, so it is ignored there.
        owner, _, ref = head.rpartition(":")
        if owner:
            pulls = [p for p in pulls if owner == repo.owner and p.head == ref]
    if base:
        pulls = [p for p in pulls if p.base == base]
    if req.arg("direction") == "asc":
        pulls.reverse()
    body = [render.pull_request(req.urls, repo, p, full=False) for p in pulls]
    return Reply(200, body, paginate=True)


def create_pull(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    title, head, base = req.field("title"), req.field("head"), req.field("base")
    if not title:
        raise invalid("PullRequest", "title", "missing_field")
    owner, _, head_ref = str(head).rpartition(":")
    if owner and owner != repo.owner:
        raise invalid("PullRequest", "head")  # forks are outside the double
    head_sha, base_sha = (
        branch_sha(repo.path, head_ref),
        branch_sha(repo.path, str(base)),
    )
    if head_sha is None:
        raise invalid("PullRequest", "head")
    if base_sha is None:
        raise invalid("PullRequest", "base")
    for other in repo.pulls.values():
        if other.state == "open" and other.head == head_ref and other.base == base:
            raise custom(
                "PullRequest", f"A pull request already exists for {repo.owner}:{head_ref}."
            )
    if not commits_between(repo.path, base_sha, head_sha):
        raise custom("PullRequest", f"No commits between {base} and {head_ref}")
    when = now()
    pull = Pull(
        number=repo.next_number,
        id=store.new_id(),
        title=str(title),
        body=req.field("body"),
        head=head_ref,
        base=str(base),
        head_sha=head_sha,
        base_sha=base_sha,
        user=req.login,
        created_at=when,
        updated_at=when,
        draft=bool(req.field("draft", False)),
    )
    repo.pulls[pull.number] = pull
    repo.next_number += 1
    body = render.pull_request(req.urls, repo, pull, full=True)
    return Reply(201, body, {"Location": body["url"]})


def get_pull(store: Store, req: Request) -> Reply:
    repo, pull = find_pull(store, req)
    return Reply(200, render.pull_request(req.urls, repo, pull, full=True))


def update_pull(store: Store, req: Request) -> Reply:
    repo, pull = find_pull(store, req)
    _edit(pull, req)
    if req.field("base") is not None:
        if branch_sha(repo.path, req.field("base")) is None:
            raise invalid("PullRequest", "base")
        pull.base = req.field("base")
        store.refresh(repo, pull)
    touch(pull)
    return Reply(200, render.pull_request(req.urls, repo, pull, full=True))


def _edit(pull: Pull, req: Request) -> None:
    if req.field("title") is not None:
        pull.title = req.field("title")
    if "body" in (req.body or {}):
        pull.body = req.field("body")
    state = req.field("state")
    if state == "closed" and pull.state == "open":
        pull.state, pull.closed_at = "closed", now()
    elif state == "open" and pull.state == "closed":
        if pull.merged:
            raise custom(
                "PullRequest", "state cannot be changed. The pull request has been merged."
            )
        pull.state, pull.closed_at = "open", None


def _edit_issue(issue: Issue, req: Request) -> None:
    if req.field("title") is not None:
        issue.title = req.field("title")
    if "body" in (req.body or {}):
        issue.body = req.field("body")
    state = req.field("state")
    if state == "closed" and issue.state == "open":
        issue.state, issue.closed_at = "closed", now()
    elif state == "open" and issue.state == "closed":
        issue.state, issue.closed_at = "open", None


def merge(store: Store, req: Request) -> Reply:
    repo, pull = find_pull(store, req)
    if pull.state != "open" or pull.draft:
        raise Problem(405, "Pull Request is not mergeable")
    expected = req.field("sha")
    if expected is not None and expected != pull.head_sha:
        raise Problem(409, "Head branch was modified. Review and try the merge again.")
    method = req.field("merge_method", "merge")
    pull.merged_by = req.login
    try:
        sha = merge_pull(repo, pull, method, req.field("commit_title"), req.field("commit_message"))
    except MergeConflict:
        pull.merged_by = None
        raise Problem(405, "Pull Request is not mergeable") from None
    when = now()
    pull.state, pull.merged, pull.merge_sha = "closed", True, sha
    pull.merged_at = pull.closed_at = pull.updated_at = when
    pull.base_sha = sha
    return Reply(200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"})


def check_merged(store: Store, req: Request) -> Reply:
    _, pull = find_pull(store, req)
    return Reply(204) if pull.merged else Reply(404, render.error(NOT_FOUND))


def request_reviewers(store: Store, req: Request) -> Reply:
    repo, pull = find_pull(store, req)
    users, teams = req.field("reviewers", []) or [], req.field("team_reviewers", []) or []
    if pull.user in users:
        raise custom("PullRequest", "Review cannot be requested from pull request author.")
    pull.reviewers += [u for u in users if u not in pull.reviewers]
    pull.teams += [t for t in teams if t not in pull.teams]
    touch(pull)
    return Reply(201, render.pull_request(req.urls, repo, pull, full=False))


# --- issues (every PR is an issue): edit, labels, comments ----------------------------------


def update_issue(store: Store, req: Request) -> Reply:
    repo, pull = find_issue(store, req)
    if isinstance(pull, Issue):
        _edit_issue(pull, req)
    else:
        _edit(pull, req)
    if req.field("labels") is not None:
        pull.labels = ensure_labels(store, repo, req.field("labels"))
    touch(pull)
    return Reply(200, render.issue(req.urls, repo, pull))


def list_labels(store: Store, req: Request) -> Reply:
    repo, pull = find_issue(store, req)
    return Reply(200, [render.label(req.urls, repo, repo.labels[n.lower()]) for n in pull.labels])


def add_labels(store: Store, req: Request) -> Reply:
    repo, pull = find_issue(store, req)
    for name in ensure_labels(store, repo, req.field("labels", []) or []):
        if name not in pull.labels:
            pull.labels.append(name)
    touch(pull)
    return list_labels(store, req)


def set_labels(store: Store, req: Request) -> Reply:
    repo, pull = find_issue(store, req)
    pull.labels = ensure_labels(store, repo, req.field("labels", []) or [])
    touch(pull)
    return list_labels(store, req)


def list_comments(store: Store, req: Request) -> Reply:
    repo, pull = find_issue(store, req)
    body = [render.comment(req.urls, repo, pull, c) for c in pull.comments]
    return Reply(200, body, paginate=True)


def create_comment(store: Store, req: Request) -> Reply:
    repo, pull = find_issue(store, req)
    text = req.field("body")
    if not isinstance(text, str) or not text:
        raise invalid("IssueComment", "body", "missing_field")
    c = Comment(store.new_id(), text, req.login, now())
    pull.comments.append(c)
    body = render.comment(req.urls, repo, pull, c)
    return Reply(201, body, {"Location": body["url"]})
