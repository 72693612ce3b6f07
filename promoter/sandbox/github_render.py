"""JSON shapes of the GitHub API double, each complete enough to satisfy GitHub's own description.

Every `url` is built from the request's own scheme, host and prefix (`Urls`), because PyGithub
refuses to follow a URL that does not start with its `base_url`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from promoter.sandbox.github_store import (
    Comment,
    Issue,
    Label,
    Pull,
    RepoState,
    default_branch,
    iso,
    mergeable,
    node_id,
)

Json = dict[str, Any]


@dataclass(frozen=True)
class Urls:
    api: str  # http://host:port/api/v3
    web: str  # http://host:port


def _num(text: str) -> int:
    # Stable small ids for things the double has no counter for (users, teams).
    return zlib.crc32(text.encode()) % 10_000_000 + 1


def user(u: Urls, login: str) -> Json:
    a = f"{u.api}/users/{login}"
    return {
        "login": login,
        "id": _num(login),
        "node_id": node_id("U", login),
        "avatar_url": f"{u.web}/avatars/{login}",
        "gravatar_id": "",
        "url": a,
        "html_url": f"{u.web}/{login}",
        "followers_url": f"{a}/followers",
        "following_url": f"{a}/following{{/other_user}}",
        "gists_url": f"{a}/gists{{/gist_id}}",
        "starred_url": f"{a}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{a}/subscriptions",
        "organizations_url": f"{a}/orgs",
        "repos_url": f"{a}/repos",
        "events_url": f"{a}/events{{/privacy}}",
        "received_events_url": f"{a}/received_events",
        "type": "User",
        "site_admin": False,
    }


def team(u: Urls, org: str, slug: str) -> Json:
    a = f"{u.api}/orgs/{org}/teams/{slug}"
    return {
        "id": _num(f"{org}/{slug}"),
        "node_id": node_id("T", f"{org}/{slug}"),
        "url": a,
        "html_url": f"{u.web}/orgs/{org}/teams/{slug}",
        "name": slug,
        "slug": slug,
        "description": None,
        "privacy": "closed",
        "permission": "pull",
        "members_url": f"{a}/members{{/member}}",
        "repositories_url": f"{a}/repos",
        "parent": None,
        "type": "organization",
    }


REPO_LINKS = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


def repository(u: Urls, repo: RepoState) -> Json:
    a = f"{u.api}/repos/{repo.name}"
    stamp = iso(repo.created_at)  # stable, so ETags of unchanged resources stay equal
    out: Json = {key: a + suffix for key, suffix in REPO_LINKS.items()}
    out.update(
        id=repo.id,
        node_id=node_id("R", repo.name),
        name=repo.short_name,
        full_name=repo.name,
        owner=user(u, repo.owner),
        private=True,
        html_url=f"{u.web}/{repo.name}",
        description=None,
        fork=False,
        url=a,
        git_url=f"{u.web}/{repo.name}.git",
        ssh_url=f"git@{u.web.split('://', 1)[-1]}:{repo.name}.git",
        clone_url=f"{u.web}/{repo.name}.git",
        svn_url=f"{u.web}/{repo.name}",
        mirror_url=None,
        homepage=None,
        language=None,
        forks=0,
        forks_count=0,
        stargazers_count=0,
        watchers=0,
        watchers_count=0,
        size=0,
        default_branch=default_branch(repo.path),
        open_issues=sum(p.state == "open" for p in repo.pulls.values()),
        open_issues_count=sum(p.state == "open" for p in repo.pulls.values()),
        has_issues=True,
        has_projects=False,
        has_wiki=False,
        has_pages=False,
        has_downloads=False,
        archived=False,
        disabled=False,
        license=None,
        pushed_at=stamp,
        created_at=stamp,
        updated_at=stamp,
        allow_auto_merge=True,
        visibility="private",
    )
    return out


def label(u: Urls, repo: RepoState, lbl: Label) -> Json:
    return {
        "id": lbl.id,
        "node_id": node_id("LA", f"{repo.name}:{lbl.name}"),
        "url": f"{u.api}/repos/{repo.name}/labels/{lbl.name}",
        "name": lbl.name,
        "description": lbl.description,
        "color": lbl.color,
        "default": False,
    }


def _labels(u: Urls, repo: RepoState, pull: Pull, *, simple: bool = False) -> list[Json]:
    out = [label(u, repo, repo.labels[name.lower()]) for name in pull.labels]
    if simple:  # `pull-request-simple` (PR lists) types a label's description as non-null
        out = [{**item, "description": item["description"] or ""} for item in out]
    return out


def pull_request(u: Urls, repo: RepoState, pull: Pull, *, full: bool) -> Json:
    """`pull-request` (full=True, single PR) or `pull-request-simple` (lists)."""
    a = f"{u.api}/repos/{repo.name}"
    self_url = f"{a}/pulls/{pull.number}"
    html = f"{u.web}/{repo.name}/pull/{pull.number}"
    issue = f"{a}/issues/{pull.number}"
    statuses = f"{a}/statuses/{pull.head_sha}"
    repo_json = repository(u, repo)
    owner = user(u, repo.owner)
    out: Json = {
        "url": self_url,
        "id": pull.id,
        "node_id": node_id("PR", f"{repo.name}#{pull.number}"),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue,
        "commits_url": f"{self_url}/commits",
        "review_comments_url": f"{self_url}/comments",
        "review_comment_url": f"{a}/pulls/comments{{/number}}",
        "comments_url": f"{issue}/comments",
        "statuses_url": statuses,
        "number": pull.number,
        "state": pull.state,
        "locked": False,
        "title": pull.title,
        "user": user(u, pull.user),
        "body": pull.body,
        "labels": _labels(u, repo, pull, simple=not full),
        "milestone": None,
        "active_lock_reason": None,
        "created_at": iso(pull.created_at),
        "updated_at": iso(pull.updated_at),
        "closed_at": iso(pull.closed_at),
        "merged_at": iso(pull.merged_at),
        "merge_commit_sha": pull.merge_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [user(u, login) for login in pull.reviewers],
        "requested_teams": [team(u, repo.owner, slug) for slug in pull.teams],
        "head": {
            "label": f"{repo.owner}:{pull.head}",
            "ref": pull.head,
            "sha": pull.head_sha,
            "user": owner,
            "repo": repo_json,
        },
        "base": {
            "label": f"{repo.owner}:{pull.base}",
            "ref": pull.base,
            "sha": pull.base_sha,
            "user": owner,
            "repo": repo_json,
        },
        "_links": {
            name: {"href": href}
            for name, href in {
                "self": self_url,
                "html": html,
                "issue": issue,
                "comments": f"{issue}/comments",
                "review_comments": f"{self_url}/comments",
                "review_comment": f"{a}/pulls/comments{{/number}}",
                "commits": f"{self_url}/commits",
                "statuses": statuses,
            }.items()
        },
        "author_association": "OWNER",
        "auto_merge": _auto_merge(u, pull),
        "draft": pull.draft,
    }
    if full:
        can_merge = (
            mergeable(repo.path, pull.base_sha, pull.head_sha) if pull.state == "open" else None
        )
        out.update(
            merged=pull.merged,
            mergeable=can_merge,
            rebaseable=can_merge,
            mergeable_state={True: "clean", False: "dirty", None: "unknown"}[can_merge],
            merged_by=user(u, pull.merged_by) if pull.merged_by else None,
            comments=len(pull.comments),
            review_comments=0,
            maintainer_can_modify=False,
            commits=1,
            additions=0,
            deletions=0,
            changed_files=0,
        )
    return out


def _auto_merge(u: Urls, pull: Pull) -> Json | None:
    if pull.auto_merge is None:
        return None
    return {
        "enabled_by": user(u, pull.auto_merge["enabled_by"]),
        "merge_method": pull.auto_merge["merge_method"],
        "commit_title": pull.auto_merge.get("commit_title") or "",
        "commit_message": pull.auto_merge.get("commit_message") or "",
    }


def issue(u: Urls, repo: RepoState, pull: Pull | Issue, *, single: bool = True) -> Json:
    """An issue, or a PR seen through the Issues API (every PR is an issue). Lists leave out
    `closed_by`, as GitHub's do."""
    if isinstance(pull, Issue):
        out = _plain_issue(u, repo, pull)
        if single:
            out["closed_by"] = None
        return out
    a = f"{u.api}/repos/{repo.name}"
    self_url = f"{a}/issues/{pull.number}"
    html = f"{u.web}/{repo.name}/pull/{pull.number}"
    return {
        "id": pull.id,
        "node_id": node_id("PR", f"{repo.name}#{pull.number}"),
        "url": self_url,
        "repository_url": a,
        "labels_url": f"{self_url}/labels{{/name}}",
        "comments_url": f"{self_url}/comments",
        "events_url": f"{self_url}/events",
        "html_url": html,
        "number": pull.number,
        "state": pull.state,
        "title": pull.title,
        "body": pull.body,
        "user": user(u, pull.user),
        "labels": _labels(u, repo, pull),
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "comments": len(pull.comments),
        "pull_request": {
            "url": f"{a}/pulls/{pull.number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": iso(pull.merged_at),
        },
        "closed_at": iso(pull.closed_at),
        "created_at": iso(pull.created_at),
        "updated_at": iso(pull.updated_at),
        "draft": pull.draft,
        "author_association": "OWNER",
    }


def _plain_issue(u: Urls, repo: RepoState, item: Issue) -> Json:
    a = f"{u.api}/repos/{repo.name}"
    self_url = f"{a}/issues/{item.number}"
    return {
        "id": item.id,
        "node_id": node_id("I", f"{repo.name}#{item.number}"),
        "url": self_url,
        "repository_url": a,
        "labels_url": f"{self_url}/labels{{/name}}",
        "comments_url": f"{self_url}/comments",
        "events_url": f"{self_url}/events",
        "html_url": f"{u.web}/{repo.name}/issues/{item.number}",
        "number": item.number,
        "state": item.state,
        "state_reason": "completed" if item.state == "closed" else None,
        "title": item.title,
        "body": item.body,
        "user": user(u, item.user),
        "labels": [label(u, repo, repo.labels[n.lower()]) for n in item.labels],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "active_lock_reason": None,
        "comments": len(item.comments),
        "closed_at": iso(item.closed_at),
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "author_association": "OWNER",
        "timeline_url": f"{self_url}/timeline",
        "performed_via_github_app": None,
        "reactions": {
            "url": f"{self_url}/reactions",
            "total_count": 0,
            **dict.fromkeys(("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket"), 0),
            "eyes": 0,
        },
    }


def comment(u: Urls, repo: RepoState, pull: Pull | Issue, c: Comment) -> Json:
    a = f"{u.api}/repos/{repo.name}"
    return {
        "id": c.id,
        "node_id": node_id("IC", str(c.id)),
        "url": f"{a}/issues/comments/{c.id}",
        "html_url": f"{u.web}/{repo.name}/{'issues' if isinstance(pull, Issue) else 'pull'}/"
        f"{pull.number}#issuecomment-{c.id}",
        "issue_url": f"{a}/issues/{pull.number}",
        "body": c.body,
        "user": user(u, c.user),
        "created_at": iso(c.created_at),
        "updated_at": iso(c.created_at),
        "author_association": "OWNER",
    }


def error(message: str, errors: list[Json] | None = None) -> Json:
    out: Json = {"message": message, "documentation_url": "https://docs.github.com/rest"}
    if errors is not None:
        out["errors"] = errors
    return out
