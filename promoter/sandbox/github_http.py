"""HTTP side of the GitHub API double: framing, auth, faults, spec validation, pagination, ETags,
and the table from method and path to route handler."""

from __future__ import annotations

import hashlib
import json
import re
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promoter.sandbox import github_commits as commits
from promoter.sandbox import github_graphql, github_render
from promoter.sandbox import github_repos as repos
from promoter.sandbox import github_routes as pulls
from promoter.sandbox.github_routes import Problem, Reply, Request
from promoter.sandbox.github_store import Store
from promoter.sandbox.loopback import LoopbackHandler
from promoter.sandbox.openapi import SpecViolation

if TYPE_CHECKING:
    from promoter.sandbox.github_api import GitHubApiDouble

_FAULT_MESSAGES = {
    403: "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID.",
    429: "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again.",
}


@dataclass(frozen=True)
class ApiRequest:
    """One request as the double answered it (never holds credentials)."""

    method: str
    path: str  # after the prefix, without the query; "/graphql" for GraphQL
    query: str
    status: int
    seconds: float

    @property
    def billable(self) -> bool:
        # GitHub does not charge conditional requests answered 304 against the rate limit.
        return self.status != 304


class RequestHandler(LoopbackHandler["GitHubApiDouble"]):
    methods = ("GET", "POST", "PUT", "PATCH", "DELETE")
    # Headers and body leave in one write (flushed after each request by handle_one_request):
    # written separately, Nagle plus the client's delayed ACK cost ~40 ms per request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def serve(self) -> None:
        api = self.owner
        started = time.monotonic()
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        raw = self.read_body()
        if parts.path == api.graphql_path:
            path = "/graphql"
        elif parts.path.startswith(api.prefix + "/"):
            path = parts.path[len(api.prefix) :]
        else:
            path = parts.path
        delay = api._delay(self.command, path)
        if delay:
            time.sleep(delay)
        for action in api._take_hooks(self.command, path):
            action()
        status, body, headers = self._answer(api, path, parts, query, raw)
        api._record(ApiRequest(self.command, path, parts.query, status, time.monotonic() - started))
        headers.update(api._rate_headers())
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(
        self,
        api: GitHubApiDouble,
        path: str,
        parts: urllib.parse.SplitResult,
        query: dict[str, list[str]],
        raw: bytes,
    ) -> tuple[int, bytes, dict[str, str]]:
        operation = None
        if path != "/graphql" and api.spec is not None:
            try:
                operation = api.spec.validate_request(
                    self.command, parts.path, query, dict(self.headers.items()), raw or None
                )
            except SpecViolation as violation:
                return _violation(api, f"request: {violation}")
        reply = self._dispatch(api, path, query, raw)
        status, body, headers = _encode(self, reply, parts, query)
        if operation is not None and api.spec is not None:
            try:
                api.spec.validate_response(operation, status, headers, body or None)
            except SpecViolation as violation:
                return _violation(api, f"response: {violation}")
        return status, body, headers

    def _dispatch(
        self, api: GitHubApiDouble, path: str, query: dict[str, list[str]], raw: bytes
    ) -> Reply:
        if not api._authorized(self.headers.get("Authorization")):
            return Reply(401, github_render.error("Bad credentials"))
        fault = api._take_fault(self.command, path)
        if fault is not None:
            status = fault.statuses[0]
            message = fault.message or _FAULT_MESSAGES.get(status, "Server Error")
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return Reply(status, github_render.error(message), headers)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return Reply(400, github_render.error("Problems parsing JSON"))
        host = self.headers.get("Host") or f"{api.host}:{api.port}"
        urls = github_render.Urls(api=f"http://{host}{api.prefix}", web=f"http://{host}")
        try:
            with api.store.lock:
                if path == "/graphql":
                    data = github_graphql.execute(api.store, body, urls, api.login)
                    return Reply(200, data)
                found = route(self.command, path)
                if found is None:
                    api.errors.append(f"the double does not implement {self.command} {path}")
                    return Reply(404, github_render.error("Not Found"))
                handler, params = found
                request = Request(self.command, path, query, body, urls, api.login, params)
                return handler(api.store, request)
        except Problem as problem:
            return problem.reply
        except github_graphql.GraphQLViolation as violation:
            api.violations.append(f"graphql: {violation}")
            return Reply(200, {"errors": [{"message": f"spec violation: {violation}"}]})
        except Exception:
            api.errors.append(traceback.format_exc())
            return Reply(500, github_render.error("Server Error"))


def _violation(api: GitHubApiDouble, text: str) -> tuple[int, bytes, dict[str, str]]:
    with api._lock:
        api.violations.append(text)
    body = json.dumps(github_render.error(f"spec violation: {text}")).encode()
    return 422, body, {"Content-Type": "application/json; charset=utf-8"}


def _encode(
    handler: RequestHandler,
    reply: Reply,
    parts: urllib.parse.SplitResult,
    query: dict[str, list[str]],
) -> tuple[int, bytes, dict[str, str]]:
    headers = dict(reply.headers)
    data = reply.body
    if reply.paginate:
        data, link = _paginate(handler, data, reply.page_key, parts, query)
        if link:
            headers["Link"] = link
    if data is None:
        return reply.status, b"", headers
    body = json.dumps(data).encode()
    headers["Content-Type"] = "application/json; charset=utf-8"
    if handler.command == "GET" and reply.status == 200:
        etag = 'W/"' + hashlib.sha1(body + headers.get("Link", "").encode()).hexdigest() + '"'
        headers["ETag"] = etag
        wanted = [t.strip() for t in (handler.headers.get("If-None-Match") or "").split(",")]
        if etag in wanted or "*" in wanted:
            return 304, b"", {"ETag": etag}
    return reply.status, body, headers


def _paginate(
    handler: RequestHandler,
    data: Any,
    key: str | None,
    parts: urllib.parse.SplitResult,
    query: dict[str, list[str]],
) -> tuple[Any, str]:
    items = data[key] if key else data
    try:
        per_page = min(100, max(1, int((query.get("per_page") or ["30"])[-1])))
        page = max(1, int((query.get("page") or ["1"])[-1]))
    except ValueError:
        per_page, page = 30, 1
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    host = handler.headers.get("Host") or "127.0.0.1"

    def link(number: int, rel: str) -> str:
        q = {**query, "per_page": [str(per_page)], "page": [str(number)]}
        target = f"http://{host}{parts.path}?{urllib.parse.urlencode(q, doseq=True)}"
        return f'<{target}>; rel="{rel}"'

    rels = []
    if page < last:
        rels += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        rels += [link(1, "first"), link(page - 1, "prev")]
    return ({**data, key: chunk} if key else chunk), ", ".join(rels)


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
