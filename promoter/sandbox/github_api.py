"""A strict HTTP double of the GitHub REST API (+ the GraphQL mutations promoter needs), backed
by the real bare repos of a GitHttpServer. Tests and the sandbox point real PyGithub at it.

Served like GitHub Enterprise: REST under a prefix (default `/api/v3`), GraphQL at `/api/graphql`.
With an OpenAPISpec, every request is validated before it is handled and every response before it
is sent; a violation is answered 422 `{"message": "spec violation: ..."}` and kept in
`violations`, so a fixture can fail the test that caused it.

What the double adds around the routes: token auth (401 "Bad credentials"), rate-limit headers,
`Link` pagination (`per_page`, `page`), `ETag` / `If-None-Match` → 304, scripted faults per route
(status sequences with `Retry-After`, latency), and a request log to count API calls.
"""

from __future__ import annotations

import fnmatch
import hmac
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from promoter.sandbox import github_commits, github_routes
from promoter.sandbox.github_http import ApiRequest, RequestHandler
from promoter.sandbox.github_routes import Problem
from promoter.sandbox.github_store import CheckRun, Pull, RepoState, Status, Store, now, resolve
from promoter.sandbox.gitserver import GitHttpServer
from promoter.sandbox.loopback import LoopbackServer
from promoter.sandbox.openapi import OpenAPISpec

RATE_LIMIT = 5000


@dataclass
class _Fault:
    pattern: str
    statuses: deque[int]
    retry_after: float | None
    message: str | None

    def matches(self, method: str, path: str) -> bool:
        return _matches(self.pattern, method, path)


def _matches(pattern: str, method: str, path: str) -> bool:
    target = f"{method} {path}" if " " in pattern else path
    return fnmatch.fnmatchcase(target, pattern)


@dataclass
class _Latency:
    pattern: str
    seconds: float


class GitHubApiDouble(LoopbackServer):
    """`with GitHubApiDouble(git_server, token, spec=OpenAPISpec.load(...)) as api:` then point
    PyGithub (or promoter's --api-url) at `api.api_url`; repos are `owner/name` on git_server.

    `errors` holds unexpected handler failures and the routes the double does not implement."""

    thread_name = "github-api"

    def __init__(
        self,
        git: GitHttpServer,
        token: str,
        *,
        spec: OpenAPISpec | None = None,
        prefix: str = "/api/v3",
        login: str = "promoter-bot",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not token:
            raise ValueError("token must not be empty")
        super().__init__(RequestHandler, host, port)
        self.git = git
        self.token = token
        self.spec = spec
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        # PyGithub derives GraphQL from base_url: /api/v3 -> /api/graphql, else <prefix>/graphql.
        root = self.prefix.removesuffix("/v3")
        self.graphql_path = f"{root}/graphql"
        self.login = login
        self.store = Store(git)
        self.requests: list[ApiRequest] = []
        self.violations: list[str] = []
        self.rate_remaining = RATE_LIMIT
        self._reset_at = int(time.time()) + 3600
        self._faults: list[_Fault] = []
        self._latency: list[_Latency] = []
        self._hooks: list[tuple[str, Callable[[], object]]] = []

    @property
    def api_url(self) -> str:
        """What PyGithub takes as base_url (and promoter as --api-url)."""
        return self.url + self.prefix

    # scripting -----------------------------------------------------------------------------

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
        over `METHOD path` when it holds a space (`PUT /repos/*/pulls/*/merge`). GraphQL is
        `/graphql`. 403 and 429 carry GitHub's secondary-rate-limit message unless `message`
        says otherwise; `retry_after` adds a `Retry-After` header (seconds).
        """
        with self._lock:
            self._faults.append(_Fault(route, deque(statuses), retry_after, message))

    def latency(self, seconds: float, route: str = "*") -> None:
        """Delay every request matching `route` (same patterns as `fail`) by `seconds`."""
        with self._lock:
            self._latency.append(_Latency(route, max(0.0, seconds)))

    def before(self, route: str, action: Callable[[], object]) -> None:
        """Run `action` once, just before the next request matching `route` is handled.

        For races: another actor pushes or opens a PR between two of the adapter's calls.
        It runs outside the store's lock, so it may itself call the double over HTTP.
        """
        with self._lock:
            self._hooks.append((route, action))

    def reset(self) -> None:
        """Forget faults, latency, hooks and rate-limit use (not repositories' state)."""
        with self._lock:
            self._faults.clear()
            self._latency.clear()
            self._hooks.clear()
            self.rate_remaining = RATE_LIMIT

    # state, for tests and the sandbox (not over HTTP) -------------------------------------

    def repository(self, name: str) -> RepoState:
        repo = self.store.repo(name)
        if repo is None:
            raise KeyError(f"no repository {name!r} on the git server")
        return repo

    def pulls(self, repository: str) -> list[Pull]:
        with self.store.lock:
            repo = self.repository(repository)
            return [
                self.store.refresh(repo, p)
                for p in sorted(repo.pulls.values(), key=lambda p: p.number)
            ]

    def add_label(self, repository: str, number: int, name: str) -> None:
        """Label a pull request as a person would in the web UI (not over the adapter's HTTP)."""
        with self.store.lock:
            repo = self.repository(repository)
            pull = repo.pulls[number]
            for label in github_routes.ensure_labels(self.store, repo, [name]):
                if label not in pull.labels:
                    pull.labels.append(label)
            github_routes.touch(pull)

    def add_check_run(self, repository: str, sha: str, name: str, **fields: Any) -> CheckRun:
        """Add a check run as a GitHub App would (status=..., conclusion=..., details_url=...)."""
        with self.store.lock:
            try:
                return github_commits.add_check_run(
                    self.store, self.repository(repository), sha, name, **fields
                )
            except Problem as problem:
                raise ValueError(problem.reply.body["message"]) from None

    def add_status(
        self, repository: str, sha: str, context: str, state: str, **fields: Any
    ) -> Status:
        """Add a commit status directly (e.g. with an old `updated_at`, to test soak times)."""
        with self.store.lock:
            repo = self.repository(repository)
            when = fields.pop("updated_at", None) or now()
            status = Status(
                id=self.store.new_id(),
                sha=resolve(repo.path, sha) or sha,
                state=state,
                context=context,
                description=fields.pop("description", None),
                target_url=fields.pop("target_url", None),
                creator=fields.pop("creator", self.login),
                created_at=fields.pop("created_at", when),
                updated_at=when,
            )
            repo.statuses.append(status)
            return status

    # used by the handler -------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.statuses and fault.matches(method, path):
                    status = fault.statuses.popleft()
                    return _Fault(fault.pattern, deque([status]), fault.retry_after, fault.message)
        return None

    def _take_hooks(self, method: str, path: str) -> list[Callable[[], object]]:
        with self._lock:
            due = [h for h in self._hooks if _matches(h[0], method, path)]
            self._hooks = [h for h in self._hooks if h not in due]
        return [action for _, action in due]

    def _delay(self, method: str, path: str) -> float:
        with self._lock:
            return sum(r.seconds for r in self._latency if _matches(r.pattern, method, path))

    def _record(self, entry: ApiRequest) -> None:
        with self._lock:
            self.requests.append(entry)
            self._log(entry.method, entry.path, entry.status)
            if entry.billable:
                self.rate_remaining = max(0, self.rate_remaining - 1)

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(self.rate_remaining),
            "X-RateLimit-Used": str(RATE_LIMIT - self.rate_remaining),
            "X-RateLimit-Reset": str(self._reset_at),
            "X-RateLimit-Resource": "core",
        }

    def _authorized(self, header: str | None) -> bool:
        scheme, _, credential = (header or "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or not credential:
            return False
        return hmac.compare_digest(credential.strip().encode(), self.token.encode())
