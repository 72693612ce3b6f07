"""What the GitHub and GitLab API doubles share: one request pipeline and one control API.

`ApiDouble` (a LoopbackServer) gives both doubles, with one interface for tests and the sandbox:

- strictness: every request is validated against the forge's vendored OpenAPI description
  (promoter/sandbox/descriptions/) before it is handled, and every response before it is sent.
  A request the description refuses is answered as the forge answers a bad request (GitHub:
  422 "Validation Failed" with `errors[].field`; GitLab: 400 `{"error": "<field> is ..."}`),
  recorded in `violations` and passed to `on_violation` (the sandbox prints it on stderr). A
  response the description refuses is the double's own bug: 500, recorded the same way.
  `strict=False` turns validation off (`promoter sandbox --lax`).
- minimal mode (`minimal=True`): every response field the description does not mark required
  is left out before sending, so a client is tried against the least the forge may send.
- auth (forge hook `authorized`), scripted faults (`fail`), `latency`, `before` hooks,
  `ETag` / `If-None-Match` → 304, pagination (forge hook `page_headers`), the request log
  (`request_log`: (method, path after the prefix, status); `requests`: ApiRequest records).

A forge's double supplies the hooks: `strip_prefix`, `authorized`, `error_body`,
`fault_message`, `validation_error`, `parse_body`, `dispatch`, `page_headers`, `extra_headers`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
import time
import traceback
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, ClassVar

from promoter.sandbox.loopback import LoopbackHandler, LoopbackServer
from promoter.sandbox.openapi import OpenAPISpec, Operation, SpecViolation

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class ApiRequest:
    """One request as the double answered it (never holds credentials)."""

    method: str
    path: str  # after the prefix, without the query ("/graphql" for GitHub's GraphQL)
    query: str
    status: int
    seconds: float

    @property
    def billable(self) -> bool:
        # GitHub does not charge conditional requests answered 304 against the rate limit.
        return self.status != 304


@dataclass
class Answer:
    """What a forge's `dispatch` returns: the body before pagination and encoding."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    paginate: bool = False
    page_key: str | None = None  # paginate the list under this key of the body


@dataclass
class Page:
    """One page of a paginated list, for a forge's `page_headers`."""

    url: str  # scheme://host/path as the client asked, without the query
    query: dict[str, list[str]]
    page: int
    per_page: int
    pages: int
    total: int

    gitlab: bool = False

    def link(self, number: int) -> str:
        """`<url?query>` of page `number`: GitHub keeps the client's query, `per_page` and
        `page` last; GitLab writes `page` then `per_page` after the other parameters."""
        if self.gitlab:
            q = {k: v for k, v in self.query.items() if k not in ("page", "per_page")}
            q.update(page=[str(number)], per_page=[str(self.per_page)])
        else:
            q = {**self.query, "per_page": [str(self.per_page)], "page": [str(number)]}
        return f"<{self.url}?{urllib.parse.urlencode(q, doseq=True)}>"


@dataclass
class _Fault:
    pattern: str
    statuses: deque[int]
    retry_after: float | None
    message: str | None


def matches(pattern: str, method: str, path: str) -> bool:
    """fnmatch over the path after the prefix, or over `METHOD path` when `pattern` has a space."""
    target = f"{method} {path}" if " " in pattern else path
    return fnmatch.fnmatchcase(target, pattern)


class ApiDouble(LoopbackServer):
    """The shared half of an API double; see the module docstring."""

    forge: ClassVar[str] = ""
    default_per_page: ClassVar[int] = 30
    content_type: ClassVar[str] = JSON_TYPE

    def __init__(
        self,
        token: str,
        spec: OpenAPISpec | None,
        *,
        strict: bool = True,
        minimal: bool = False,
        on_violation: Callable[[str], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not token:
            raise ValueError("token must not be empty")
        super().__init__(ApiHandler, host, port)
        self.token = token
        self.spec = spec if strict else None
        self._minimal_spec: OpenAPISpec | None = None
        self.minimal = minimal
        self.on_violation = on_violation
        self.requests: list[ApiRequest] = []
        self.violations: list[str] = []
        self._faults: list[_Fault] = []
        self._latency: list[tuple[str, float]] = []
        self._hooks: list[tuple[str, Callable[[], object]]] = []

    @property
    def minimal(self) -> bool:
        return self._minimal_spec is not None

    @minimal.setter
    def minimal(self, on: bool) -> None:
        if on and self.spec is None:
            raise ValueError("minimal mode needs validation (strict, with the description)")
        self._minimal_spec = self.spec if on else None

    # the control API, the same on both forges ------------------------------------------------

    def fail(
        self,
        route: str,
        statuses: Sequence[int],
        *,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next requests matching `route` with `statuses`, one each, in order.

        `route` is an fnmatch pattern over the path after the prefix (`/repos/*/pulls`), or
        over `METHOD path` when it holds a space (`PUT /repos/*/pulls/*/merge`). The body is
        the forge's error for the status unless `message` says otherwise; `retry_after` adds
        a `Retry-After` header (seconds).
        """
        with self._lock:
            self._faults.append(_Fault(route, deque(statuses), retry_after, message))

    def latency(self, seconds: float, route: str = "*") -> None:
        """Delay every request matching `route` (same patterns as `fail`) by `seconds`."""
        with self._lock:
            self._latency.append((route, max(0.0, seconds)))

    def before(self, route: str, action: Callable[[], object]) -> None:
        """Run `action` once, just before the next request matching `route` is handled.

        For races: another actor pushes or opens a PR between two of the adapter's calls.
        It runs outside the double's locks, so it may itself call the double over HTTP.
        """
        with self._lock:
            self._hooks.append((route, action))

    def reset(self) -> None:
        """Forget faults, latency, hooks, logs, violations and errors (and what `_reset`
        adds for the forge); repositories stay as they are."""
        with self._lock:
            self._faults.clear()
            self._latency.clear()
            self._hooks.clear()
            self.request_log.clear()
            self.requests.clear()
            self.violations.clear()
            self.errors.clear()
            self._reset()

    def _reset(self) -> None:
        """Forge-specific state to forget on reset()."""

    # forge hooks -----------------------------------------------------------------------------

    def strip_prefix(self, path: str) -> str | None:
        """The path after the API prefix, or None when the path is not under it."""
        raise NotImplementedError

    def validated(self, path: str) -> bool:
        """Whether requests to `path` (after the prefix) are held to the description."""
        return True

    def authorized(self, headers: Message) -> bool:
        raise NotImplementedError

    def error_body(self, status: int, message: str | None = None) -> Any:
        """The forge's error body for `status` (message: the forge's default when None)."""
        raise NotImplementedError

    def validation_error(self, violation: SpecViolation) -> tuple[int, Any]:
        """What the forge answers a request that its API refuses (status, body)."""
        raise NotImplementedError

    def parse_body(self, raw: bytes, content_type: str) -> Any:
        """The decoded request body; ValueError answers the forge's 400."""
        return json.loads(raw) if raw.strip() else None

    def bad_body(self, error: ValueError) -> Any:
        return self.error_body(400, f"Problems parsing JSON: {error}")

    def dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, base: str
    ) -> Answer:
        """Handle one request (path after the prefix); `base` is scheme://host as addressed."""
        raise NotImplementedError

    def page_headers(self, page: Page) -> dict[str, str]:
        raise NotImplementedError

    def extra_headers(self) -> dict[str, str]:
        """Headers on every answer (GitHub: rate limits)."""
        return {}

    def answered(self, entry: ApiRequest) -> None:
        """Called once per request, after it is logged (GitHub: rate-limit use)."""

    # the pipeline, run by ApiHandler -----------------------------------------------------------

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)
        if self.on_violation is not None:
            self.on_violation(text)

    def _take_fault(self, method: str, path: str) -> tuple[int, _Fault] | None:
        with self._lock:
            for fault in self._faults:
                if fault.statuses and matches(fault.pattern, method, path):
                    return fault.statuses.popleft(), fault
        return None

    def _take_hooks(self, method: str, path: str) -> list[Callable[[], object]]:
        with self._lock:
            due = [h for h in self._hooks if matches(h[0], method, path)]
            self._hooks = [h for h in self._hooks if h not in due]
        return [action for _, action in due]

    def _delay(self, method: str, path: str) -> float:
        with self._lock:
            return sum(s for route, s in self._latency if matches(route, method, path))

    def _record(self, entry: ApiRequest) -> None:
        # Logged before the client can see the answer, so a test that reads the log right
        # after its call never misses it (nor sees it land after the next test's reset).
        with self._lock:
            self.requests.append(entry)
            self._log(entry.method, entry.path, entry.status)
            self.answered(entry)


class ApiHandler(LoopbackHandler[ApiDouble]):
    methods = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    timeout = 120
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
        inner = api.strip_prefix(parts.path)
        path = parts.path if inner is None else inner
        delay = api._delay(self.command, path)
        if delay:
            time.sleep(delay)
        for action in api._take_hooks(self.command, path):
            action()
        try:
            status, body, headers = self._answer(api, inner, parts, query, raw)
        except ConnectionError:
            raise  # the client went away mid-request: nothing to answer, not the double's bug
        except Exception:
            with api._lock:
                api.errors.append(traceback.format_exc())
            status, body, headers = self._json(500, api.error_body(500), {})
        api._record(ApiRequest(self.command, path, parts.query, status, time.monotonic() - started))
        headers.update(api.extra_headers())
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304 and self.command != "HEAD":
            self.wfile.write(body)

    def _json(
        self, status: int, data: Any, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        return (
            status,
            json.dumps(data).encode(),
            {"Content-Type": self.owner.content_type, **headers},
        )

    def _answer(
        self,
        api: ApiDouble,
        path: str | None,
        parts: urllib.parse.SplitResult,
        query: dict[str, list[str]],
        raw: bytes,
    ) -> tuple[int, bytes, dict[str, str]]:
        spec = api.spec if path is None or api.validated(path) else None
        operation: Operation | None = None
        if spec is not None:
            try:
                operation = spec.validate_request(
                    self.command, parts.path, query, dict(self.headers.items()), raw or None
                )
            except SpecViolation as violation:
                api._violation(f"request: {violation}")
                return self._json(*api.validation_error(violation), {})
        if path is None:
            return self._json(404, api.error_body(404), {})
        if not api.authorized(self.headers):
            return self._json(401, api.error_body(401), {})
        fault = api._take_fault(self.command, path)
        if fault is not None:
            status, scripted = fault
            extra = {}
            if scripted.retry_after is not None:
                extra["Retry-After"] = f"{scripted.retry_after:g}"
            return self._json(status, api.error_body(status, scripted.message), extra)
        try:
            body = api.parse_body(raw, self.headers.get("Content-Type", ""))
        except ValueError as err:
            return self._json(400, api.bad_body(err), {})
        base = f"http://{self.headers.get('Host') or f'{api.host}:{api.port}'}"
        answer = api.dispatch(self.command, path, query, body, base)
        headers = dict(answer.headers)
        data = answer.body
        if answer.paginate:
            data = self._paginate(api, answer, base + parts.path, query, headers)
        # A bytes body (a raw file download) is sent as it is, with the handler's Content-Type.
        payload = (
            b"" if data is None else data if isinstance(data, bytes) else json.dumps(data).encode()
        )
        if operation is not None and spec is not None:
            try:
                spec.validate_response(operation, answer.status, {}, payload or None)
            except SpecViolation as violation:
                api._violation(f"response: {violation}")
                message = "the sandbox's answer broke the API description (see its stderr)"
                return self._json(500, api.error_body(500, message), {})
        if data is None:
            return answer.status, b"", headers
        minimal = api._minimal_spec
        if (
            minimal is not None
            and operation is not None
            and answer.status < 300
            and not isinstance(data, bytes)
        ):
            payload = json.dumps(minimal.minimal(operation, answer.status, data)).encode()
        headers.setdefault("Content-Type", api.content_type)
        if answer.status in (200, 201):
            # Both forges tag every 200/201 body (GitHub's API, GitLab's Rack::ETag), writes
            # included; only a GET can be answered 304 from it.
            digest = hashlib.sha1(payload + headers.get("Link", "").encode()).hexdigest()
            etag = f'W/"{digest}"'
            headers["ETag"] = etag
            wanted = [t.strip() for t in (self.headers.get("If-None-Match") or "").split(",")]
            if self.command == "GET" and answer.status == 200 and (etag in wanted or "*" in wanted):
                return 304, b"", {"ETag": etag}
        return answer.status, payload, headers

    def _paginate(
        self,
        api: ApiDouble,
        answer: Answer,
        url: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
    ) -> Any:
        key = answer.page_key
        items = answer.body[key] if key else answer.body
        page = max(1, _int(query.get("page"), 1))
        per_page = min(100, max(1, _int(query.get("per_page"), api.default_per_page)))
        pages = max(1, -(-len(items) // per_page))
        found = Page(url, query, page, per_page, pages, len(items), api.forge == "gitlab")
        headers.update(api.page_headers(found))
        chunk = items[(page - 1) * per_page : page * per_page]
        return {**answer.body, key: chunk} if key else chunk


def _int(values: list[str] | None, default: int) -> int:
    try:
        return int(values[-1]) if values else default
    except ValueError:
        return default


_SHARED: dict[tuple[str, str, str], OpenAPISpec] = {}
_SHARED_LOCK = threading.Lock()


def shared_spec(forge: str, prefix: str) -> OpenAPISpec:
    """The packaged description of `forge`, loaded and compiled once per process per prefix
    (its schema validators are compiled on first use and kept)."""
    from promoter.sandbox.gitlab_quirks import load_gitlab_spec
    from promoter.sandbox.openapi import GITHUB_DESCRIPTION, GITLAB_DESCRIPTION

    with _SHARED_LOCK:
        key = (forge, prefix, "")
        if key not in _SHARED:
            if forge == "github":
                _SHARED[key] = OpenAPISpec.load(GITHUB_DESCRIPTION, prefix=prefix)
            else:
                _SHARED[key] = load_gitlab_spec(GITLAB_DESCRIPTION)
        return _SHARED[key]
