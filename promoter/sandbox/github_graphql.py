"""The GraphQL side of the GitHub API double: the named mutations PyGithub sends for pull
requests (auto-merge, draft / ready for review), and the api path's (`--commit-via api`)
read queries and `createCommitOnBranch` (promoter.sandbox.github_graphql_commits).

GraphQL is outside the REST description, so these inputs are checked here, against the input
types of GitHub's GraphQL schema; anything else is answered with a GraphQL error and recorded as
a violation, as the REST validator does for REST.
"""

from __future__ import annotations

import re
from typing import Any

from promoter.sandbox import github_render as render
from promoter.sandbox.github_store import Store, now

# Fields of each mutation's input type in GitHub's GraphQL schema (public schema, 2024).
_INPUTS: dict[str, set[str]] = {
    "enablePullRequestAutoMerge": {
        "pullRequestId",
        "mergeMethod",
        "commitHeadline",
        "commitBody",
        "authorEmail",
        "expectedHeadOid",
        "clientMutationId",
    },
    "convertPullRequestToDraft": {"pullRequestId", "clientMutationId"},
    "markPullRequestReadyForReview": {"pullRequestId", "clientMutationId"},
    "createCommitOnBranch": {
        "branch",
        "expectedHeadOid",
        "fileChanges",
        "message",
        "clientMutationId",
    },
    "updateRefs": {"repositoryId", "refUpdates", "clientMutationId"},
}
# The nested input types of createCommitOnBranch and updateRefs (same schema): field -> required.
NESTED_INPUTS: dict[str, dict[str, bool]] = {
    "CommittableBranch": {"id": False, "repositoryNameWithOwner": False, "branchName": False},
    "FileChanges": {"additions": False, "deletions": False},
    "FileAddition": {"path": True, "contents": True},
    "FileDeletion": {"path": True},
    "CommitMessage": {"headline": True, "body": False},
    "RefUpdate": {"name": True, "afterOid": True, "beforeOid": False, "force": False},
}
_MERGE_METHODS = {"MERGE": "merge", "SQUASH": "squash", "REBASE": "rebase"}
_MUTATION = re.compile(r"^\s*mutation\b[^{]*\{\s*(\w+)\s*\(\s*input\s*:\s*\$input\s*\)")


class GraphQLViolation(Exception):
    """A request GitHub's GraphQL schema would reject."""


def error(name: str | None, message: str, kind: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message}
    if kind:
        err["type"] = kind
    if name:
        err["path"] = [name]
    return {"data": {name: None} if name else None, "errors": [err]}


def execute(store: Store, body: Any, urls: render.Urls, login: str) -> dict[str, Any]:
    """Run one mutation; raises GraphQLViolation for requests outside the schema."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise GraphQLViolation("a GraphQL request is a JSON object with a string `query`")
    from promoter.sandbox import github_graphql_commits as commits

    if not body["query"].lstrip().startswith("mutation"):
        return commits.query(store, body["query"], body.get("variables") or {})
    match = _MUTATION.match(body["query"])
    if match is None or match.group(1) not in _INPUTS:
        raise GraphQLViolation(f"unsupported GraphQL document: {body['query'][:120]!r}")
    name = match.group(1)
    data = (body.get("variables") or {}).get("input")
    if not isinstance(data, dict):
        raise GraphQLViolation(f"{name}: variables.input must be an object")
    unknown = set(data) - _INPUTS[name]
    if name in ("createCommitOnBranch", "updateRefs"):
        if unknown:
            raise GraphQLViolation(f"{name}: input has unknown {sorted(unknown)}")
        if name == "updateRefs":
            return commits.update_refs(store, data)
        return commits.create_commit_on_branch(store, data, login)
    if unknown or "pullRequestId" not in data:
        raise GraphQLViolation(f"{name}: input has unknown {sorted(unknown)} or no pullRequestId")
    method = data.get("mergeMethod", "MERGE")
    if name == "enablePullRequestAutoMerge" and method not in _MERGE_METHODS:
        raise GraphQLViolation(f"{name}: mergeMethod {method!r} is not a PullRequestMergeMethod")

    found = store.find_pull_by_node(str(data["pullRequestId"]))
    if found is None:
        node = data["pullRequestId"]
        return error(
            name, f"Could not resolve to a node with the global id of '{node}'", "NOT_FOUND"
        )
    pull = store.refresh(*found)
    if pull.state != "open":
        return error(name, "Pull request is closed", "UNPROCESSABLE")
    result: dict[str, Any] = {"clientMutationId": data.get("clientMutationId")}
    if name == "enablePullRequestAutoMerge":
        expected = data.get("expectedHeadOid")
        if expected is not None and expected != pull.head_sha:
            return error(name, "Head branch was modified", "UNPROCESSABLE")
        pull.auto_merge = {
            "merge_method": _MERGE_METHODS[method],
            "enabled_by": login,
            "commit_title": data.get("commitHeadline"),
            "commit_message": data.get("commitBody"),
        }
        me = render.user(urls, login)
        result["actor"] = {
            "avatarUrl": me["avatar_url"],
            "login": login,
            "resourcePath": f"/{login}",
            "url": me["html_url"],
        }
    else:
        pull.draft = name == "convertPullRequestToDraft"
        result["pullRequest"] = {"isDraft": pull.draft}
    pull.updated_at = now()
    return {"data": {name: result}}
