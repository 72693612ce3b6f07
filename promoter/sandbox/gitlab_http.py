"""HTTP side of the GitLab API double: framing, auth, faults, OpenAPI checks, pagination and
ETags, and the table from method and path to the handler in gitlab_routes.py."""

from __future__ import annotations

import hashlib
import json
import re
import time
import traceback
import urllib.parse
from typing import TYPE_CHECKING, Any

from promoter.sandbox.gitlab_routes import GitLabState
from promoter.sandbox.gitlab_store import Call, Reply, error
from promoter.sandbox.loopback import LoopbackHandler
from promoter.sandbox.openapi import SpecViolation

if TYPE_CHECKING:
    from promoter.sandbox.gitlab_api import GitLabApiDouble

PREFIX = "/api/v4"
_REASONS = {
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
        ("GET", _P + "/repository/branches/(?P<branch>[^/]+)", "get_branch"),
        ("GET", _P + "/repository/commits", "list_commits"),
        ("GET", _P + "/repository/commits/(?P<sha>[^/]+)", "get_commit"),
        ("GET", _P + "/repository/files/(?P<file_path>[^/]+)", "get_file"),
        ("GET", _P + "/repository/compare", "compare"),
        # Not in the vendored description (see promoter/sandbox/descriptions/README.md): a
        # strict double answers it 422 as a violation; only a double without a spec serves it.
        ("GET", "/users", "list_users"),
    ]
]


class RequestHandler(LoopbackHandler["GitLabApiDouble"]):
    methods = ("GET", "POST", "PUT", "DELETE")
    timeout = 120

    def serve(self) -> None:
        owner = self.owner
        try:
            self._answer(owner)
        except ConnectionError:
            raise  # the client went away mid-request: nothing to answer, not the double's bug
        except Exception:
            with owner._lock:
                owner.errors.append(traceback.format_exc())
            self._send(500, {"message": "500 Internal Server Error"}, {})

    def _answer(self, owner: GitLabApiDouble) -> int:
        split = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        raw = self.read_body() or None
        headers = dict(self.headers.items())
        if owner._latency:
            time.sleep(owner._latency)
        operation = None
        if owner.spec is not None:
            try:
                operation = owner.spec.validate_request(
                    self.command, split.path, query, headers, raw
                )
            except SpecViolation as violation:
                return self._violation(owner, f"request: {violation}")
        if not split.path.startswith(PREFIX + "/"):
            return self._send(404, {"error": "404 Not Found"}, {})
        path = split.path[len(PREFIX) :]
        fault = owner._take_fault(self.command, path)
        if fault is not None:
            fault_status, spec = fault
            time.sleep(spec.latency)
            if fault_status is not None:
                extra = {"Retry-After": spec.retry_after} if spec.retry_after else {}
                reason = _REASONS.get(fault_status, "Injected Fault")
                return self._send(fault_status, {"message": f"{fault_status} {reason}"}, extra)
        if not owner._authorized(self.headers):
            return self._send(401, {"message": "401 Unauthorized"}, {})
        try:
            body = _parse_body(raw, headers.get("Content-Type", ""))
        except ValueError as err:
            return self._send(400, {"error": f"body is not valid: {err}"}, {})
        base = f"http://{self.headers.get('Host') or owner.url.removeprefix('http://')}"
        with owner._lock:
            reply = route(owner.state, self.command, path, query, body, base)
        payload, extra = self._page(reply, base + split.path, query)
        if self.command == "GET" and reply.status == 200:
            etag = 'W/"' + hashlib.sha1(payload).hexdigest() + '"'
            extra["ETag"] = etag
            if etag in [t.strip() for t in (self.headers.get("If-None-Match") or "").split(",")]:
                return self._send_raw(304, b"", extra)
        if operation is not None and owner.spec is not None:
            try:
                owner.spec.validate_response(
                    operation, reply.status, {"Content-Type": "application/json"}, payload
                )
            except SpecViolation as violation:
                return self._violation(owner, f"response: {violation}")
        return self._send_raw(reply.status, payload, extra)

    def _page(
        self, reply: Reply, url: str, query: dict[str, list[str]]
    ) -> tuple[bytes, dict[str, str]]:
        headers = dict(reply.headers)
        if not reply.paginate:
            return json.dumps(reply.body).encode(), headers
        items: list[Any] = reply.body
        page = max(1, _int(query.get("page"), 1))
        per_page = min(100, max(1, _int(query.get("per_page"), 20)))
        pages = max(1, -(-len(items) // per_page))
        headers.update(
            {
                "X-Page": str(page),
                "X-Per-Page": str(per_page),
                "X-Total": str(len(items)),
                "X-Total-Pages": str(pages),
                "X-Next-Page": str(page + 1) if page < pages else "",
                "X-Prev-Page": str(page - 1) if page > 1 else "",
            }
        )

        def link(n: int) -> str:
            q = {k: v for k, v in query.items() if k not in ("page", "per_page")}
            q.update(page=[str(n)], per_page=[str(per_page)])
            return f"<{url}?{urllib.parse.urlencode(q, doseq=True)}>"

        rels = [(page + 1, "next")] if page < pages else []
        rels += [(page - 1, "prev")] if page > 1 else []
        rels += [(1, "first"), (pages, "last")]
        headers["Link"] = ", ".join(f'{link(n)}; rel="{rel}"' for n, rel in rels)
        chunk = items[(page - 1) * per_page : page * per_page]
        return json.dumps(chunk).encode(), headers

    def _violation(self, owner: GitLabApiDouble, message: str) -> int:
        with owner._lock:
            owner.violations.append(message)
        return self._send(422, {"message": f"OpenAPI violation: {message}"}, {})

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> int:
        return self._send_raw(status, json.dumps(body).encode(), headers)

    def _send_raw(self, status: int, payload: bytes, headers: dict[str, str]) -> int:
        # Logged before the client can see the answer, so a test that reads the log right
        # after its call never misses it (nor sees it land after the next test's reset).
        self.owner._log(self.command, self.path, status)
        self.send_response(status)
        if status != 304:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if status != 304:
            self.wfile.write(payload)
        return status


def route(
    state: GitLabState,
    method: str,
    path: str,
    query: dict[str, list[str]],
    body: dict[str, Any],
    base: str,
) -> Reply:
    """Find the handler for one request under /api/v4 and give it its project (and MR)."""
    for route_method, regex, handler in ROUTES:
        match = regex.match(path)
        if match is None or route_method != method:
            continue
        params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        call = Call(params, query, body, base)
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
    return error(404, "404 Not Found")


def _int(values: list[str] | None, default: int) -> int:
    try:
        return int(values[0]) if values else default
    except ValueError:
        return default


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
