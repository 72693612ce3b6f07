"""A GitLab v4 API double on 127.0.0.1, over the bare repos of a GitHttpServer.

The real python-gitlab client is pointed at `api_url`; nothing in it is patched. This module
is what tests hold: lifecycle, test controls (faults, users, direct MRs and statuses) and the
logs. What the double answers lives in gitlab_routes.py (records in gitlab_store.py); the HTTP
surface, in gitlab_http.py, gives it:

- routing under /api/v4, projects addressed as `acme%2Fenvs` or by numeric id;
- auth: `PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`, else 401;
- pagination (`X-Page`, `X-Next-Page`, `X-Total`, `Link`) and `ETag`/`If-None-Match` → 304;
- strictness (by default): each request is checked against GitLab's description before it is
  handled and each response before it is sent. A refused request gets grape's 400 naming the
  parameter and is recorded in `violations`, which tests assert stays empty: a double that
  accepted what GitLab would refuse proves nothing.
The faults, latency, hooks and logs are the shared base's (apidouble.ApiDouble).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from promoter.sandbox.apidouble import shared_spec
from promoter.sandbox.gitlab_http import PREFIX, GitLabHttp
from promoter.sandbox.gitlab_routes import GitLabState
from promoter.sandbox.gitlab_store import Call, Project, Reply
from promoter.sandbox.gitserver import GitHttpServer
from promoter.sandbox.openapi import OpenAPISpec


class GitLabApiDouble(GitLabHttp):
    """Serves http://127.0.0.1:<port>/api/v4 for every repo of `git_server`.

    Strict by default (the packaged description with gitlab_quirks applied, or `spec`);
    `strict=False` serves without validation, `minimal=True` sends only the response fields
    the description requires. The control API (fail, latency, before, reset, request_log,
    violations, errors) is ApiDouble's, the same as the GitHub double's.

    One lock (`_lock`, re-entrant) guards state and git: handlers run in threads, and a merge
    must not interleave with a status post that may trigger another merge of the same branch.
    """

    thread_name = "gitlab-api"

    def __init__(
        self,
        git_server: GitHttpServer,
        token: str | None = None,
        *,
        spec: OpenAPISpec | None = None,
        strict: bool = True,
        minimal: bool = False,
        on_violation: Callable[[str], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if spec is None and strict:
            spec = shared_spec("gitlab", "")
        super().__init__(
            token or git_server.token,
            spec,
            strict=strict,
            minimal=minimal,
            on_violation=on_violation,
            host=host,
            port=port,
        )
        self.git_server = git_server
        self.state = GitLabState(git_server, clock or (lambda: datetime.now(UTC)))

    @property
    def api_url(self) -> str:
        return self.url + PREFIX

    def _reset(self) -> None:
        self.state.projects.clear()
        self.state.users = {1: "promoter-bot"}

    def add_user(self, username: str, uid: int | None = None) -> int:
        """A GitLab user (e.g. a reviewer); returns its id (`uid` if given).

        Reviewer ids of users that do not exist are dropped, as GitLab drops them; and
        GET /users?username= finds the user (only on a double with strict=False: gitlab_http).
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
