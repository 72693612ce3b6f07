"""A GitLab v4 API double on 127.0.0.1, over the bare repos of a GitHttpServer.

The real python-gitlab client is pointed at `api_url`; nothing in it is patched. This module
is what tests hold: lifecycle, test controls (faults, users, direct MRs and statuses) and the
logs. What the double answers lives in gitlab_routes.py (records in gitlab_store.py); the HTTP
surface, in gitlab_http.py, gives it:

- routing under /api/v4, projects addressed as `acme%2Fenvs` or by numeric id;
- auth: `PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`, else 401;
- pagination (`X-Page`, `X-Next-Page`, `X-Total`, `Link`) and `ETag`/`If-None-Match` → 304;
- scripted faults per route (status sequences with `Retry-After`, latency) and a request log;
- strictness: with an OpenAPISpec, each request is checked before it is handled and each
  response before it is sent. A violation answers 422 and is recorded in `violations`, which
  tests assert stays empty: a double that accepted what GitLab would refuse proves nothing.
"""

from __future__ import annotations

import fnmatch
import hmac
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from promoter.sandbox.gitlab_http import PREFIX, RequestHandler
from promoter.sandbox.gitlab_routes import GitLabState
from promoter.sandbox.gitlab_store import Call, Project, Reply
from promoter.sandbox.gitserver import GitHttpServer
from promoter.sandbox.loopback import LoopbackServer

if TYPE_CHECKING:
    from promoter.sandbox.openapi import OpenAPISpec


@dataclass
class Fault:
    method: str
    pattern: str  # fnmatch pattern over the path after /api/v4, query excluded
    statuses: deque[int]
    retry_after: str | None = None
    latency: float = 0.0
    before: Callable[[], object] | None = None  # runs once, before the next matching request
    hits: int = field(default=0)

    def live(self) -> bool:
        return bool(self.statuses or self.latency or self.before)


class GitLabApiDouble(LoopbackServer):
    """Serves http://127.0.0.1:<port>/api/v4 for every repo of `git_server`.

    One lock (`_lock`, re-entrant) guards state and git: handlers run in threads, and a merge
    must not interleave with a status post that may trigger another merge of the same branch.
    """

    thread_name = "gitlab-api"

    def __init__(
        self,
        git_server: GitHttpServer,
        token: str | None = None,
        spec: OpenAPISpec | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(RequestHandler, host, port)
        self.git_server = git_server
        self.token = token or git_server.token
        self.spec = spec
        self.state = GitLabState(git_server, clock or (lambda: datetime.now(UTC)))
        self.violations: list[str] = []
        self._faults: list[Fault] = []
        self._latency = 0.0

    @property
    def api_url(self) -> str:
        return self.url + PREFIX

    # test controls -------------------------------------------------------------------------

    def fail(
        self,
        pattern: str,
        statuses: Sequence[int],
        *,
        method: str = "*",
        retry_after: float | None = None,
        latency: float = 0.0,
        before: Callable[[], object] | None = None,
    ) -> None:
        """Answer the next matching requests with `statuses`, one each, then serve normally.

        `pattern` is an fnmatch pattern over the path after /api/v4 (e.g. "*/merge_requests"),
        optionally preceded by a method ("GET /projects/*/merge_requests").
        `latency` delays every matching request until reset(). `before` runs once, just before
        the next matching request is handled: a race (another job acting first) on cue.
        """
        verb, _, rest = pattern.partition(" ")
        if rest and verb.isupper():
            method, pattern = verb, rest
        retry = None if retry_after is None else f"{retry_after:g}"
        fault = Fault(method.upper(), pattern, deque(statuses), retry, latency, before)
        with self._lock:
            self._faults.append(fault)

    def set_latency(self, seconds: float) -> None:
        self._latency = max(0.0, seconds)

    def reset(self) -> None:
        """Forget faults, logs, violations and all API state (repos stay as they are)."""
        with self._lock:
            self._faults.clear()
            self._latency = 0.0
            self.request_log.clear()
            self.violations.clear()
            self.errors.clear()
            self.state.projects.clear()
            self.state.users = {1: "promoter-bot"}

    def add_user(self, username: str, uid: int | None = None) -> int:
        """A GitLab user (e.g. a reviewer); returns its id (`uid` if given).

        Reviewer ids of users that do not exist are dropped, as GitLab drops them; and
        GET /users?username= finds the user (only on a double without a spec: gitlab_http).
        """
        with self._lock:
            known = [i for i, name in self.state.users.items() if name == username]
            if known and uid in (None, known[0]):
                return known[0]
            if known or uid in self.state.users:
                raise ValueError(f"user {username!r} or id {uid} is already taken")
            uid = uid if uid is not None else max(100, *self.state.users) + 1
            self.state.users[uid] = username
            return uid

    def project(self, path: str) -> Project:
        with self._lock:
            found = self.state.project(path)
        if found is None:
            raise KeyError(path)
        return found

    def open_merge_request(self, project: str, source: str, target: str, title: str) -> int:
        """Open an MR as a person (or another job) would, without going through HTTP."""
        body = {"source_branch": source, "target_branch": target, "title": title}
        reply = self._direct(project, "create_mr", body)
        return int(reply.body["iid"])

    def add_label(self, project: str, iid: int, name: str) -> None:
        """Label a merge request as a person would in the web UI (not over the adapter's HTTP)."""
        with self._lock:
            mr = self.project(project).mrs[iid]
            if name not in mr.labels:
                mr.labels.append(name)
            mr.updated_at = self.state.clock()

    def add_status(
        self, project: str, sha: str, name: str, state: str, *, timed: bool = True, **fields: str
    ) -> None:
        """Post a commit status as a CI job or an operator would, without going through HTTP.

        `timed=False` serves it without created_at, started_at and finished_at: GitLab's API
        description marks none of them required, so a client must cope with their absence.
        """
        body = {"state": state, "name": name, **fields}
        reply = self._direct(project, "post_status", body, sha=sha)
        if not timed:
            with self._lock:
                record = next(r for r in self.project(project).statuses if r.id == reply.body["id"])
                record.created_at = record.started_at = record.finished_at = None

    def _direct(self, project: str, handler: str, body: dict[str, Any], **params: str) -> Reply:
        with self._lock:
            reply: Reply = getattr(self.state, handler)(
                self.project(project), Call(params, {}, body, self.url)
            )
        if reply.status >= 300:
            raise RuntimeError(f"{handler} on {project}: {reply.status} {reply.body}")
        return reply

    # used by the handler -------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> tuple[int | None, Fault] | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in ("*", method) and fnmatch.fnmatchcase(path, fault.pattern):
                    if not fault.live():
                        continue
                    fault.hits += 1
                    status = fault.statuses.popleft() if fault.statuses else None
                    before, fault.before = fault.before, None
                    if before is not None:
                        before()  # under the lock (re-entrant), as if it had happened just now
                    return status, fault
        return None

    def _authorized(self, headers: Any) -> bool:
        candidate = headers.get("PRIVATE-TOKEN")
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        if candidate is None and scheme.lower() == "bearer":
            candidate = value.strip()
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token.encode())
