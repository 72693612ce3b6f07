"""Routes of the GitHub API double that scripts call first: the repository, its branches and
commits, git refs, contents, comparisons, labels and the rate limit. All of it is read from (and
written to) the real bare repository; messages and statuses are GitHub's."""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

from promoter.sandbox import github_gitdata as gd
from promoter.sandbox import github_render as render
from promoter.sandbox.github_routes import (
    NOT_FOUND,
    Problem,
    Reply,
    Request,
    commit_sha,
    ensure_labels,
    find_repo,
    invalid,
)
from promoter.sandbox.github_store import (
    Issue,
    Label,
    Pull,
    RepoState,
    Store,
    default_branch,
    now,
)

_SHA = re.compile(r"^[0-9a-f]{40}$")
_COLOR = re.compile(r"^[0-9a-fA-F]{6}$")
_LIMIT = 5000  # GitHub's core limit for a token, as the double's X-RateLimit-Limit header


def get_repository(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    out = render.repository(req.urls, repo)
    out.update(
        has_discussions=False,
        network_count=0,
        subscribers_count=0,
        allow_merge_commit=True,
        allow_squash_merge=True,
        allow_rebase_merge=True,
        delete_branch_on_merge=False,
        is_template=False,
        topics=[],
        web_commit_signoff_required=False,
        permissions={"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
        allow_forking=False,
        allow_update_branch=False,
        use_squash_pr_title_as_default=False,
        temp_clone_token="",
    )
    return Reply(200, out)


# --- branches and commits ------------------------------------------------------------------------


def list_branches(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    found = gd.branches(repo.path)
    if req.arg("protected") == "true":
        found = []  # the sandbox protects no branch
    body = [gd.short_branch(req.urls, repo, name, sha) for name, sha in found]
    return Reply(200, body, paginate=True)


def get_branch(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    name = req.params["branch"]
    sha = gd.read_ref(repo.path, f"refs/heads/{name}")
    if sha is None:
        raise Problem(404, "Branch not found")
    return Reply(200, gd.branch_json(req.urls, repo, name, sha))


def get_commit(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    sha = commit_sha(repo, req.params["ref"])
    return Reply(200, gd.commit_json(req.urls, repo, sha))


def list_commits(store: Store, req: Request) -> Reply:
    """Newest first from `sha` (default branch), filtered as GitHub filters."""
    repo = find_repo(store, req)
    start = req.arg("sha") or default_branch(repo.path)
    sha = commit_sha(repo, start, status=404)
    args = [f"--{k}={req.arg(k)}" for k in ("author", "committer", "since", "until") if req.arg(k)]
    path = req.arg("path")
    found = gd.log_commits(repo.path, *args, sha, "--", *([path] if path else []))
    body = [gd.commit_json(req.urls, repo, c.sha, files=False, info=c) for c in found]
    return Reply(200, body, paginate=True)


def compare(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    spec = req.params["basehead"]
    base_ref, sep, head_ref = spec.partition("...")
    if not sep:
        base_ref, sep, head_ref = spec.partition("..")
    if not sep:
        raise Problem(404, NOT_FOUND)
    base, head = (_compare_side(repo, ref) for ref in (base_ref, head_ref))
    merge_base = gd.run(repo.path, "merge-base", base, head).strip()
    if not merge_base:
        raise Problem(404, f"No common ancestor between {base_ref} and {head_ref}.")
    ahead = gd.run(repo.path, "rev-list", "--reverse", f"{merge_base}..{head}", "--").split()
    behind = gd.run(repo.path, "rev-list", "--count", f"{merge_base}..{base}", "--").strip()
    behind_by = int(behind or 0)
    status = (
        "identical"
        if not ahead and not behind_by
        else "ahead"
        if not behind_by
        else "behind"
        if not ahead
        else "diverged"
    )
    u, a = req.urls, f"{req.urls.api}/repos/{repo.name}"
    html = f"{u.web}/{repo.name}/compare/{spec}"
    body = {
        "url": f"{a}/compare/{spec}",
        "html_url": html,
        "permalink_url": f"{u.web}/{repo.name}/compare/{repo.owner}:{base}...{repo.owner}:{head}",
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "base_commit": gd.commit_json(u, repo, base, files=False),
        "merge_base_commit": gd.commit_json(u, repo, merge_base, files=False),
        "status": status,
        "ahead_by": len(ahead),
        "behind_by": behind_by,
        "total_commits": len(ahead),
        # GitHub lists at most 250 commits here, oldest first.
        "commits": [gd.commit_json(u, repo, sha, files=False) for sha in ahead[:250]],
        "files": gd.diff_files(u, repo, merge_base, head),
    }
    return Reply(200, body)


def _compare_side(repo: RepoState, ref: str) -> str:
    # `owner:ref` names a fork's branch; the sandbox has no forks, so only its own owner works.
    owner, _, name = ref.rpartition(":")
    if owner and owner != repo.owner:
        raise Problem(404, NOT_FOUND)
    return commit_sha(repo, name, status=404)


# --- git refs ------------------------------------------------------------------------------------


def get_ref(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    ref = "refs/" + req.params["ref"]
    sha = gd.read_ref(repo.path, ref)
    if sha is None:
        raise Problem(404, NOT_FOUND)
    return Reply(200, gd.ref_json(req.urls, repo, ref, sha))


def matching_refs(store: Store, req: Request) -> Reply:
    """Every ref whose name starts with refs/<ref> (GitHub's prefix match, not a path match)."""
    repo = find_repo(store, req)
    prefix = "refs/" + req.params.get("ref", "")
    out = gd.run(repo.path, "for-each-ref", "--format=%(refname) %(objectname)", "refs/")
    found = [line.split(" ") for line in out.splitlines() if line.startswith(prefix)]
    return Reply(200, [gd.ref_json(req.urls, repo, ref, sha) for ref, sha in found])


def create_ref(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    ref, sha = str(req.field("ref", "")), str(req.field("sha", ""))
    if not ref.startswith("refs/") or ref.count("/") < 2 or not _valid_ref(repo, ref):
        raise Problem(422, f"{ref} is not a valid ref name.")
    if not _SHA.match(sha) or not gd.run(repo.path, "cat-file", "-t", sha).strip():
        raise Problem(422, "Object does not exist")
    # update-ref with an all-zero old value creates the ref only if it does not exist yet.
    if gd.read_ref(repo.path, ref) is not None or not _update_ref(repo, ref, sha, "0" * 40):
        raise Problem(422, "Reference already exists")
    body = gd.ref_json(req.urls, repo, ref, sha)
    return Reply(201, body, {"Location": body["url"]})


def update_ref(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    ref, sha = "refs/" + req.params["ref"], str(req.field("sha", ""))
    old = gd.read_ref(repo.path, ref)
    if old is None:
        raise Problem(422, "Reference does not exist")
    if not _SHA.match(sha) or not gd.run(repo.path, "cat-file", "-t", sha).strip():
        raise Problem(422, "Object does not exist")
    if not req.field("force", False) and old != sha:
        fast_forward = gd.run(repo.path, "merge-base", old, sha).strip() == old
        if not fast_forward:
            raise Problem(422, "Update is not a fast forward")
    if not _update_ref(repo, ref, sha, old):
        raise Problem(422, "Reference update failed")
    return Reply(200, gd.ref_json(req.urls, repo, ref, sha))


def delete_ref(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    ref = "refs/" + req.params["ref"]
    old = gd.read_ref(repo.path, ref)
    if old is None or not _delete_ref(repo, ref, old):
        raise Problem(422, "Reference does not exist")
    return Reply(204)


def _valid_ref(repo: RepoState, ref: str) -> bool:
    return gd.run(repo.path, "check-ref-format", "--normalize", ref).strip() == ref


def _update_ref(repo: RepoState, ref: str, new: str, old: str) -> bool:
    # Compare-and-swap on the old value: a push that lands meanwhile is never overwritten.
    gd.run(repo.path, "update-ref", ref, new, old)
    return gd.read_ref(repo.path, ref) == new


def _delete_ref(repo: RepoState, ref: str, old: str) -> bool:
    gd.run(repo.path, "update-ref", "-d", ref, old)
    return gd.read_ref(repo.path, ref) is None


# --- contents ------------------------------------------------------------------------------------


def get_contents(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    ref = req.arg("ref") or default_branch(repo.path)
    sha = commit_sha(repo, ref, status=404)
    path = req.params.get("path", "").strip("/")
    entry = gd.tree_entry(repo.path, sha, path)
    if entry is None:
        raise Problem(404, NOT_FOUND)
    if entry.kind == "tree":
        items = gd.list_tree(repo.path, sha, path)
        return Reply(200, [gd.content_json(req.urls, repo, ref, e, body=False) for e in items])
    return Reply(200, gd.content_json(req.urls, repo, ref, entry, body=True))


def put_contents(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    path = req.params["path"].strip("/")
    branch = req.field("branch") or default_branch(repo.path)
    parent = gd.read_ref(repo.path, f"refs/heads/{branch}")
    if parent is None:
        raise Problem(404, f"Branch {branch} not found")
    try:
        data = base64.b64decode(str(req.field("content", "")), validate=True)
    except binascii.Error:
        raise invalid("Content", "content") from None
    entry = gd.tree_entry(repo.path, parent, path)
    if entry is not None and entry.kind != "blob":
        raise Problem(422, f"{path} is a directory")
    given = req.field("sha")
    if entry is not None and given is None:
        raise Problem(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
    if entry is not None and given != entry.sha:
        raise Problem(409, f"{path} does not match {given}")
    identity = _identity(req)
    new = gd.commit_file(repo.path, parent, path, data, str(req.field("message")), identity)
    if not new or not _update_ref(repo, f"refs/heads/{branch}", new, parent):
        raise Problem(409, f"{path} does not match {given or parent}")
    written = gd.tree_entry(repo.path, new, path)
    assert written is not None
    content = gd.content_json(req.urls, repo, branch, written, body=False)
    commit = _file_commit(req, repo, new)
    return Reply(201 if entry is None else 200, {"content": content, "commit": commit})


def delete_contents(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    path = req.params["path"].strip("/")
    branch = req.field("branch") or default_branch(repo.path)
    parent = gd.read_ref(repo.path, f"refs/heads/{branch}")
    if parent is None:
        raise Problem(404, f"Branch {branch} not found")
    entry = gd.tree_entry(repo.path, parent, path)
    if entry is None or entry.kind != "blob":
        raise Problem(404, NOT_FOUND)
    given = req.field("sha")
    if given != entry.sha:
        raise Problem(409, f"{path} does not match {given}")
    message = str(req.field("message"))
    new = gd.commit_file(repo.path, parent, path, None, message, _identity(req))
    if not new or not _update_ref(repo, f"refs/heads/{branch}", new, parent):
        raise Problem(409, f"{path} does not match {given}")
    return Reply(200, {"content": None, "commit": _file_commit(req, repo, new)})


def _file_commit(req: Request, repo: RepoState, sha: str) -> dict[str, Any]:
    """The `commit` of a contents write (schema `file-commit`): the git commit's fields."""
    c = gd.commit_json(req.urls, repo, sha, files=False)
    commit = {k: v for k, v in c["commit"].items() if k != "comment_count"}
    commit.update(sha=sha, node_id=c["node_id"], html_url=c["html_url"], parents=c["parents"])
    return commit


def _identity(req: Request) -> dict[str, str]:
    committer: Any = req.field("committer") or {}
    author: Any = req.field("author") or committer
    name = committer.get("name") or req.login
    email = committer.get("email") or f"{req.login}@users.noreply.example"
    return {
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_AUTHOR_NAME": author.get("name") or name,
        "GIT_AUTHOR_EMAIL": author.get("email") or email,
    }


# --- labels of the repository --------------------------------------------------------------------


def list_repo_labels(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    labels = sorted(repo.labels.values(), key=lambda lbl: lbl.name.lower())
    return Reply(200, [render.label(req.urls, repo, lbl) for lbl in labels], paginate=True)


def create_label(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    name, color = str(req.field("name", "")), str(req.field("color", "ededed")).lstrip("#")
    if not name.strip():
        raise invalid("Label", "name", "missing_field")
    if not _COLOR.match(color):
        raise invalid("Label", "color")
    if name.lower() in repo.labels:
        raise invalid("Label", "name", "already_exists")
    label = Label(store.new_id(), name, color.lower(), req.field("description"))
    repo.labels[name.lower()] = label
    body = render.label(req.urls, repo, label)
    return Reply(201, body, {"Location": body["url"]})


def _find_label(repo: RepoState, req: Request) -> Label:
    label = repo.labels.get(req.params["name"].lower())
    if label is None:
        raise Problem(404, NOT_FOUND)
    return label


def get_label(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    return Reply(200, render.label(req.urls, repo, _find_label(repo, req)))


def update_label(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    label = _find_label(repo, req)
    color = req.field("color")
    if color is not None and not _COLOR.match(str(color).lstrip("#")):
        raise invalid("Label", "color")
    new_name = req.field("new_name")
    if new_name and new_name.lower() != label.name.lower() and new_name.lower() in repo.labels:
        raise invalid("Label", "name", "already_exists")
    if new_name:
        old = label.name
        del repo.labels[old.lower()]
        label.name = new_name
        repo.labels[new_name.lower()] = label
        for pull in repo.pulls.values():
            pull.labels = [new_name if n.lower() == old.lower() else n for n in pull.labels]
    if color is not None:
        label.color = str(color).lstrip("#").lower()
    if req.field("description") is not None:
        label.description = req.field("description")
    return Reply(200, render.label(req.urls, repo, label))


def delete_label(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    label = _find_label(repo, req)
    del repo.labels[label.name.lower()]
    for pull in repo.pulls.values():
        pull.labels = [n for n in pull.labels if n.lower() != label.name.lower()]
    return Reply(204)


# --- issues --------------------------------------------------------------------------------------


def create_issue(store: Store, req: Request) -> Reply:
    repo = find_repo(store, req)
    title = req.field("title")
    if title is None or not str(title).strip():
        raise invalid("Issue", "title", "missing_field")
    when = now()
    issue = Issue(repo.next_number, store.new_id(), str(title), req.field("body"), req.login,
                  when, when)  # fmt: skip
    issue.labels = ensure_labels(store, repo, req.field("labels") or [])
    repo.issues[issue.number] = issue
    repo.next_number += 1
    body = render.issue(req.urls, repo, issue)
    return Reply(201, body, {"Location": body["url"]})


def list_issues(store: Store, req: Request) -> Reply:
    """Issues and pull requests (GitHub lists both here), newest first unless asked."""
    repo = find_repo(store, req)
    items: list[Pull | Issue] = [*repo.issues.values()]
    items += [store.refresh(repo, p) for p in repo.pulls.values()]
    state = req.arg("state", "open")
    if state != "all":
        items = [i for i in items if i.state == state]
    wanted = [n.strip().lower() for n in (req.arg("labels") or "").split(",") if n.strip()]
    items = [i for i in items if all(w in {n.lower() for n in i.labels} for w in wanted)]
    key = "updated_at" if req.arg("sort") == "updated" else "created_at"
    items.sort(key=lambda i: (getattr(i, key), i.number), reverse=req.arg("direction") != "asc")
    body = [render.issue(req.urls, repo, i, single=False) for i in items]
    return Reply(200, body, paginate=True)


# --- rate limit ----------------------------------------------------------------------------------


def rate_limit(store: Store, req: Request) -> Reply:
    """The same numbers as the X-RateLimit-* headers (the double tells the store them)."""
    limit, remaining, reset = store.rate() if store.rate else (_LIMIT, _LIMIT, 0)
    reset = reset or int(time.time()) + 3600
    core = {"limit": limit, "remaining": remaining, "reset": reset, "used": limit - remaining}
    other = {"limit": limit, "remaining": limit, "reset": reset, "used": 0}
    resources = {"core": core, "search": {**other, "limit": 30, "remaining": 30}}
    resources["graphql"] = dict(other)
    return Reply(200, {"resources": resources, "rate": core})
