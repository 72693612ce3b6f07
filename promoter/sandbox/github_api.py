"""A strict HTTP double of the GitHub REST API (+ the GraphQL mutations promoter needs), backed
by the real bare repos of a GitHttpServer. Tests and the sandbox point real PyGithub at it.

Served like GitHub Enterprise: REST under a prefix (default `/api/v3`), GraphQL at `/api/graphql`.
Strict by default: every request is validated against GitHub's description before it is handled
and every response before it is sent (apidouble.py); a refused request gets GitHub's 422
"Validation Failed" naming the field and is kept in `violations`, so a fixture can fail the test
that caused it. Auth, faults, ETags, pagination and the request log are the shared base's
(apidouble.ApiDouble); GitHub's side of them is in github_http.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from promoter.sandbox import github_commits, github_routes
from promoter.sandbox.apidouble import shared_spec
from promoter.sandbox.github_http import RATE_LIMIT, GitHubHttp
from promoter.sandbox.github_routes import Problem
from promoter.sandbox.github_store import CheckRun, Pull, RepoState, Status, Store, now, resolve
from promoter.sandbox.gitserver import GitHttpServer
from promoter.sandbox.openapi import OpenAPISpec


class GitHubApiDouble(GitHubHttp):
    """`with GitHubApiDouble(git_server, token) as api:` then point PyGithub (or promoter's
    --api-url) at `api.api_url`; repos are `owner/name` on git_server.

    Strict by default (the packaged description, or `spec`); `strict=False` serves without
    validation, `minimal=True` sends only the response fields the description requires.
    The control API (fail, latency, before, reset, request_log, violations, errors) is
    ApiDouble's, the same as the GitLab double's."""

    thread_name = "github-api"

    def __init__(
        self,
        git: GitHttpServer,
        token: str,
        *,
        spec: OpenAPISpec | None = None,
        strict: bool = True,
        minimal: bool = False,
        on_violation: Callable[[str], None] | None = None,
        prefix: str = "/api/v3",
        login: str = "promoter-bot",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        if spec is None and strict:
            spec = shared_spec("github", self.prefix)
        super().__init__(
            token,
            spec,
            strict=strict,
            minimal=minimal,
            on_violation=on_violation,
            host=host,
            port=port,
        )
        self.git = git
        # PyGithub derives GraphQL from base_url: /api/v3 -> /api/graphql, else <prefix>/graphql.
        root = self.prefix.removesuffix("/v3")
        self.graphql_path = f"{root}/graphql"
        self.login = login
        self.store = Store(git)
        self.rate_remaining = RATE_LIMIT
        self._reset_at = int(time.time()) + 3600
        self.store.rate = lambda: (RATE_LIMIT, self.rate_remaining, self._reset_at)

    @property
    def api_url(self) -> str:
        """What PyGithub takes as base_url (and promoter as --api-url)."""
        return self.url + self.prefix

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
