"""HTTP side of the GitLab API double: its hooks into the shared pipeline (apidouble.py) —
`PRIVATE-TOKEN` / Bearer auth, GitLab's error bodies (grape's 400 `{"error": ...}` for refused
parameters), `X-Page`/`X-Total`/`Link` pagination, form or JSON bodies — and the table from
method and path to the handler in gitlab_routes.py."""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import urllib.parse
from contextlib import AbstractContextManager
from email.message import Message
from typing import Any

from promoter.sandbox.apidouble import Answer, ApiDouble, Page
from promoter.sandbox.gitlab_routes import GitLabState
from promoter.sandbox.gitlab_store import Call, Reply, error
from promoter.sandbox.openapi import SpecViolation

PREFIX = "/api/v4"
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


_P = r"/projects/(?P<id>[^/]+)"
_MR = _P + r"/merge_requests/(?P<iid>\d+)"
# (method, path after /api/v4, handler). Parameters are URL-decoded after matching, so an
# encoded project path ("acme%2Fenvs") is one segment, as on GitLab. Handlers named *_mr /
# add_note take the merge request; the others take the project.
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(f"^{regex}$"), handler)
    for method, regex, handler in [
        ("GET", _P + "/merge_requests", "list_mrs"),
        ("POST", _P + "/merge_requests", "create_mr"),
        ("GET", _MR, "get_mr"),
        ("PUT", _MR, "update_mr"),
        ("PUT", _MR + "/merge", "accept_mr"),
        ("POST", _MR + "/notes", "add_note"),
        ("GET", _P + r"/repository/commits/(?P<sha>[^/]+)/statuses", "list_statuses"),
        ("POST", _P + r"/statuses/(?P<sha>[^/]+)", "post_status"),
        ("GET", _P, "get_project"),
        ("GET", _P + "/repository/branches", "list_branches"),
        ("POST", _P + "/repository/branches", "create_branch"),
        ("GET", _P + "/repository/branches/(?P<branch>[^/]+)", "get_branch"),
        ("DELETE", _P + "/repository/branches/(?P<branch>[^/]+)", "delete_branch"),
        ("GET", _P + "/repository/commits", "list_commits"),
        ("POST", _P + "/repository/commits", "create_commit"),
        ("GET", _P + "/repository/commits/(?P<sha>[^/]+)", "get_commit"),
        ("GET", _P + "/repository/files/(?P<file_path>[^/]+)", "get_file"),
        ("GET", _P + "/repository/files/(?P<file_path>[^/]+)/raw", "get_file_raw"),
        ("GET", _P + "/repository/compare", "compare"),
        ("GET", _P + "/repository/tree", "list_tree"),
        # Not in the vendored description (see promoter/sandbox/descriptions/README.md): a
        # strict double answers it 404 as a violation; only a double with strict=False serves it.
        ("GET", "/users", "list_users"),
    ]
]


class GitLabHttp(ApiDouble):
    """GitLab's answers around the routes; GitLabApiDouble (gitlab_api.py) adds the state."""

    forge = "gitlab"
    default_per_page = 20
    state: GitLabState

    def strip_prefix(self, path: str) -> str | None:
        return path[len(PREFIX) :] if path.startswith(PREFIX + "/") else None

    def authorized(self, headers: Message) -> bool:
        candidate: str | None = headers.get("PRIVATE-TOKEN")
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        if candidate is None and scheme.lower() == "bearer":
            candidate = value.strip()
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def error_body(self, status: int, message: str | None = None) -> Any:
        return {"message": message or f"{status} {_REASONS.get(status, 'Injected Fault')}"}

    def validation_error(self, violation: SpecViolation) -> tuple[int, Any]:
        # What grape answers a parameter it refuses: 400 {"error": "<param> is missing" | "...
        # does not have a valid value" | "... is invalid"}; an unknown route is a 404.
        if violation.code == "unknown_operation":
            return 404, {"error": "404 Not Found"}
        name = violation.field or "body"
        if violation.code == "missing_field":
            return 400, {"error": f"{name} is missing"}
        if violation.code == "not_json":
            return 400, {"error": "The provided content-type is not supported."}
        if violation.enum:
            return 400, {"error": f"{name} does not have a valid value"}
        return 400, {"error": f"{name} is invalid"}

    def parse_body(self, raw: bytes, content_type: str) -> Any:
        return _parse_body(raw, content_type)

    def bad_body(self, error: ValueError) -> Any:
        return {"error": f"body is not valid: {error}"}

    def dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, base: str
    ) -> Answer:
        reply = route(self.state, method, path, query, body, base, self._lock)
        return Answer(reply.status, reply.body, dict(reply.headers), reply.paginate)

    def page_headers(self, page: Page) -> dict[str, str]:
        rels = [(page.page + 1, "next")] if page.page < page.pages else []
        rels += [(page.page - 1, "prev")] if page.page > 1 else []
        rels += [(1, "first"), (page.pages, "last")]
        return {
            "X-Page": str(page.page),
            "X-Per-Page": str(page.per_page),
            "X-Total": str(page.total),
            "X-Total-Pages": str(page.pages),
            "X-Next-Page": str(page.page + 1) if page.page < page.pages else "",
            "X-Prev-Page": str(page.page - 1) if page.page > 1 else "",
            "Link": ", ".join(f'{page.link(n)}; rel="{rel}"' for n, rel in rels),
        }


# Handlers that read the git repository only (no state of the double's but the project): GitLab
# serves requests concurrently, and the double runs these outside its lock too (a read sees the
# branch before or after a concurrent commit, never half of one: refs move atomically). All
# others run one at a time under the lock.
CONCURRENT = frozenset({"get_file", "get_file_raw", "list_tree", "get_branch"})


def route(
    state: GitLabState,
    method: str,
    path: str,
    query: dict[str, list[str]],
    body: dict[str, Any],
    base: str,
    lock: AbstractContextManager[Any] | None = None,
) -> Reply:
    """Find the handler for one request under /api/v4 and give it its project (and MR);
    under `lock`, except the CONCURRENT handlers (only their project is looked up under it)."""
    for route_method, regex, handler in ROUTES:
        match = regex.match(path)
        if match is None or route_method != method:
            continue
        params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        call = Call(params, query, body, base)
        if handler in CONCURRENT and "id" in params and "iid" not in params:
            with lock or contextlib.nullcontext():
                project = state.project(params["id"])
            if project is None:
                return error(404, "404 Project Not Found")
            result: Reply = getattr(state, handler)(project, call)
            return result
        with lock or contextlib.nullcontext():
            return _locked(state, handler, params, call, base)
    return error(404, "404 Not Found")


def _locked(
    state: GitLabState, handler: str, params: dict[str, str], call: Call, base: str
) -> Reply:
    if "id" not in params:
        result: Reply = getattr(state, handler)(call)
        return result
    project = state.project(params["id"])
    if project is None:
        return error(404, "404 Project Not Found")
    if "iid" not in params:
        result = getattr(state, handler)(project, call)
        return result
    mr = project.mrs.get(int(params["iid"]))
    if mr is None:
        return error(404, "404 Not found")
    if handler == "get_mr":
        return Reply(200, state.render_mr(project, mr, base))
    result = getattr(state, handler)(project, mr, call)
    return result


def _parse_body(raw: bytes | None, content_type: str) -> dict[str, Any]:
    if not raw or not raw.strip():
        return {}
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        return {k.removesuffix("[]"): v if k.endswith("[]") else v[0] for k, v in form.items()}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data
