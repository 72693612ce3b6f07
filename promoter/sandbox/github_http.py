"""HTTP side of the GitHub API double: its hooks into the shared pipeline (apidouble.py) —
token auth, GitHub's error bodies, `Link` pagination, rate-limit headers, GraphQL — and the
table from method and path to route handler."""

from __future__ import annotations

import hmac
import re
import traceback
import urllib.parse
from collections.abc import Callable
from email.message import Message
from typing import Any

from promoter.sandbox import github_commits as commits
from promoter.sandbox import github_graphql, github_render
from promoter.sandbox import github_repos as repos
from promoter.sandbox import github_routes as pulls
from promoter.sandbox.apidouble import Answer, ApiDouble, ApiRequest, Page
from promoter.sandbox.github_routes import Problem, Reply, Request
from promoter.sandbox.github_store import Store
from promoter.sandbox.openapi import SpecViolation

RATE_LIMIT = 5000
DOCS = "https://docs.github.com/rest"
_FAULT_MESSAGES = {
    401: "Bad credentials",
    403: "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID.",
    404: "Not Found",
    429: "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again.",
}
# GitHub's `errors[].resource` for the operations a script writes to, by operationId.
_RESOURCES = {
    "pulls": "PullRequest",
    "issues": "Issue",
    "repos/create-commit-status": "Status",
    "repos/create-deployment": "Deployment",
    "repos/create-deployment-status": "DeploymentStatus",
    "repos/merge": "Merge",
    "git": "Reference",
    "checks": "CheckRun",
}


class GitHubHttp(ApiDouble):
    """GitHub's answers around the routes; GitHubApiDouble (github_api.py) adds the state."""

    forge = "github"
    default_per_page = 30
    content_type = "application/json; charset=utf-8"
    prefix: str
    graphql_path: str
    login: str
    store: Store
    rate_remaining: int
    _reset_at: int

    def strip_prefix(self, path: str) -> str | None:
        if path == self.graphql_path:
            return "/graphql"
        if not self.prefix:
            return path
        return path[len(self.prefix) :] if path.startswith(self.prefix + "/") else None

    def validated(self, path: str) -> bool:
        return path != "/graphql"  # GraphQL is held to its schema by github_graphql

    def authorized(self, headers: Message) -> bool:
        scheme, _, credential = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or not credential:
            return False
        return hmac.compare_digest(credential.strip().encode(), self.token.encode())

    def error_body(self, status: int, message: str | None = None) -> Any:
        return github_render.error(message or _FAULT_MESSAGES.get(status, "Server Error"))

    def validation_error(self, violation: SpecViolation) -> tuple[int, Any]:
        docs = self.spec.operation_by_id(violation.operation) if self.spec else {}
        url = str(docs.get("externalDocs", {}).get("url") or DOCS)
        if violation.code == "unknown_operation":
            return 404, {"message": "Not Found", "documentation_url": url}
        if violation.code == "not_json":
            return 400, {"message": "Problems parsing JSON", "documentation_url": url}
        error: dict[str, Any] = {"resource": _resource(violation.operation), "code": violation.code}
        if violation.field:
            error["field"] = violation.field
        error["message"] = str(violation).rpartition(": ")[2]
        return 422, {"message": "Validation Failed", "errors": [error], "documentation_url": url}

    def bad_body(self, error: ValueError) -> Any:
        return github_render.error("Problems parsing JSON")

    def dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, base: str
    ) -> Answer:
        urls = github_render.Urls(api=base + self.prefix, web=base)
        try:
            with self.store.lock:
                if path == "/graphql":
                    return Answer(200, github_graphql.execute(self.store, body, urls, self.login))
                found = route(method, path)
                if found is None:
                    self.errors.append(f"the double does not implement {method} {path}")
                    return Answer(404, github_render.error("Not Found"))
                handler, params = found
                reply = handler(self.store, Request(method, path, query, body, urls, self.login,
                                                    params))  # fmt: skip
        except Problem as problem:
            reply = problem.reply
        except github_graphql.GraphQLViolation as violation:
            self._violation(f"graphql: {violation}")
            return Answer(200, {"errors": [{"message": f"spec violation: {violation}"}]})
        except Exception:
            self.errors.append(traceback.format_exc())
            return Answer(500, github_render.error("Server Error"))
        return Answer(reply.status, reply.body, reply.headers, reply.paginate, reply.page_key)

    def page_headers(self, page: Page) -> dict[str, str]:
        rels = []
        if page.page < page.pages:
            rels += [
                f'{page.link(page.page + 1)}; rel="next"',
                f'{page.link(page.pages)}; rel="last"',
            ]
        if page.page > 1:
            rels += [f'{page.link(1)}; rel="first"', f'{page.link(page.page - 1)}; rel="prev"']
        return {"Link": ", ".join(rels)} if rels else {}

    def extra_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(self.rate_remaining),
            "X-RateLimit-Used": str(RATE_LIMIT - self.rate_remaining),
            "X-RateLimit-Reset": str(self._reset_at),
            "X-RateLimit-Resource": "core",
        }

    def answered(self, entry: ApiRequest) -> None:
        if entry.billable:
            self.rate_remaining = max(0, self.rate_remaining - 1)

    def _reset(self) -> None:
        self.rate_remaining = RATE_LIMIT


def _resource(operation: str | None) -> str:
    name = operation or ""
    for key in (name, name.partition("/")[0]):
        if key in _RESOURCES:
            return _RESOURCES[key]
    return name.partition("/")[0].capitalize() or "Resource"


# --- routing ------------------------------------------------------------------------------------

_R = "/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
Handler = Callable[[Store, Request], Reply]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(f"^{_R}{pattern}$"), handler)
    for method, pattern, handler in [
        ("GET", "/pulls", pulls.list_pulls),
        ("POST", "/pulls", pulls.create_pull),
        ("GET", r"/pulls/(?P<number>\d+)", pulls.get_pull),
        ("PATCH", r"/pulls/(?P<number>\d+)", pulls.update_pull),
        ("PUT", r"/pulls/(?P<number>\d+)/merge", pulls.merge),
        ("GET", r"/pulls/(?P<number>\d+)/merge", pulls.check_merged),
        ("POST", r"/pulls/(?P<number>\d+)/requested_reviewers", pulls.request_reviewers),
        ("PATCH", r"/issues/(?P<number>\d+)", pulls.update_issue),
        ("GET", r"/issues/(?P<number>\d+)/labels", pulls.list_labels),
        ("POST", r"/issues/(?P<number>\d+)/labels", pulls.add_labels),
        ("PUT", r"/issues/(?P<number>\d+)/labels", pulls.set_labels),
        ("GET", r"/issues/(?P<number>\d+)/comments", pulls.list_comments),
        ("POST", r"/issues/(?P<number>\d+)/comments", pulls.create_comment),
        ("GET", "/commits/(?P<ref>.+)/statuses", commits.list_statuses),
        ("GET", "/commits/(?P<ref>.+)/status", commits.combined_status),
        ("GET", "/commits/(?P<ref>.+)/check-runs", commits.list_check_runs),
        ("POST", "/statuses/(?P<sha>[^/]+)", commits.create_status),
        ("GET", "/deployments", commits.list_deployments),
        ("POST", "/deployments", commits.create_deployment),
        ("GET", r"/deployments/(?P<deployment_id>\d+)/statuses", commits.list_deployment_statuses),
        ("POST", r"/deployments/(?P<deployment_id>\d+)/statuses", commits.create_deployment_status),
        ("GET", "", repos.get_repository),
        ("GET", "/branches", repos.list_branches),
        ("GET", "/branches/(?P<branch>.+)", repos.get_branch),
        ("GET", "/commits", repos.list_commits),
        ("GET", "/commits/(?P<ref>.+)", repos.get_commit),
        ("GET", "/compare/(?P<basehead>.+)", repos.compare),
        ("GET", "/git/ref/(?P<ref>.+)", repos.get_ref),
        ("GET", "/git/matching-refs/(?P<ref>.*)", repos.matching_refs),
        ("POST", "/git/refs", repos.create_ref),
        ("PATCH", "/git/refs/(?P<ref>.+)", repos.update_ref),
        ("DELETE", "/git/refs/(?P<ref>.+)", repos.delete_ref),
        ("GET", "/contents/?(?P<path>.*)", repos.get_contents),
        ("PUT", "/contents/(?P<path>.+)", repos.put_contents),
        ("DELETE", "/contents/(?P<path>.+)", repos.delete_contents),
        ("GET", "/issues", repos.list_issues),
        ("POST", "/issues", repos.create_issue),
        ("GET", "/labels", repos.list_repo_labels),
        ("POST", "/labels", repos.create_label),
        ("GET", "/labels/(?P<name>[^/]+)", repos.get_label),
        ("PATCH", "/labels/(?P<name>[^/]+)", repos.update_label),
        ("DELETE", "/labels/(?P<name>[^/]+)", repos.delete_label),
    ]
]
ROUTES.append(("GET", re.compile("^/rate_limit$"), repos.rate_limit))


def route(method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
    for verb, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match and verb == method:
            # Clients percent-encode refs (`env%2Fdev`); handlers see the decoded values.
            params = match.groupdict().items()
            return handler, {k: urllib.parse.unquote(v) for k, v in params if v is not None}
    return None
