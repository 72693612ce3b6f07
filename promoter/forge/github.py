"""GitHub (and GitHub Enterprise) through PyGithub, behind the forge Protocol.

Imported only by `open_forge`, so `promoter --help` and plain-git runs never load PyGithub.

Choices the official REST description imposed (a strict double holds us to it):
- statuses are read from `GET /repos/{o}/{r}/commits/{ref}/statuses`, not PyGithub's
  `Commit.get_statuses()`, which calls the undocumented legacy `/statuses/{sha}`;
- title and body are updated with `PATCH /issues/{n}` (every PR is an issue); labels are only
  ever added, with `POST /issues/{n}/labels` and the object `{"labels": [...]}` the
  description gives (PyGithub's `add_to_labels` sends a bare array it does not describe), so a
  label a person adds meanwhile is never lost; the pulls endpoint has no `labels` (nor
  `draft`) field;
- draft state changes through the GraphQL mutations, as REST has no field for it.

Creating a PR takes up to three writes (create, request reviewers, add labels), in that order,
so that the spec's labels mark a finished creation: a run that died between them leaves a PR
with none of its labels, and the next run requests the reviewers still missing before adding
them. Otherwise a reviewer no longer pending is taken to have reviewed (GitHub drops a
reviewer from the requests on review) and is not asked again unless the content changed. The
price: a PR from which a person removed every spec label is taken for unfinished too; and with
no labels configured there is no mark, so that crash leaves the reviewers unasked until the
content next changes.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from promoter.errors import register_secret, scrub
from promoter.forge.base import (
    CommitStatus,
    ForgeAuthError,
    ForgeError,
    ForgeInfo,
    MergeMethod,
    MergeResult,
    PullRequest,
    PullRequestSpec,
    State,
    status_time,
)

if TYPE_CHECKING:
    import github
    from github.PullRequest import PullRequest as GhPullRequest
    from github.Repository import Repository

T = TypeVar("T")

# Bounded so a CI job never hangs: at most 4 tries, exponential backoff capped at 8 s, and a
# server's Retry-After (or secondary-rate-limit wait) honoured only up to MAX_WAIT seconds.
MAX_TRIES = 4
BACKOFF_FACTOR = 0.5
MAX_WAIT = 60
TIMEOUT = 30

# A check run's conclusion, normalised. `skipped` and `neutral` count as success: GitHub itself
# treats them as passing for required checks, and a job skipped by a path filter must not hold a
# gate forever. `cancelled` is error (nobody decided the outcome); unknown ones fail safe.
_CHECK_CONCLUSIONS: dict[str, State] = {
    "success": "success",
    "neutral": "success",
    "skipped": "success",
    "failure": "failure",
    "timed_out": "failure",
    "action_required": "failure",
    "startup_failure": "failure",
    "stale": "failure",
    "cancelled": "error",
}
_STATUS_STATES: dict[str, State] = {s: s for s in ("success", "pending", "failure", "error")}
_GRAPHQL_METHODS = {"merge": "MERGE", "squash": "SQUASH", "rebase": "REBASE"}


def check_run_state(status: str, conclusion: str | None) -> State:
    """queued / in_progress / waiting... → pending; completed → by conclusion (unknown: error)."""
    if status != "completed":
        return "pending"
    return _CHECK_CONCLUSIONS.get(conclusion or "", "error")


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        if 'rel="next"' in part:
            return part.split(";", 1)[0].strip().strip("<>")
    return None


# Requests kept back when the quota runs low, for the writes that follow a wait.
RATE_RESERVE = 20


class GitHubForge:
    def __init__(
        self,
        info: ForgeInfo,
        token: str | None,
        *,
        max_tries: int = MAX_TRIES,
        backoff_factor: float = BACKOFF_FACTOR,
        max_wait: int = MAX_WAIT,
        timeout: int = TIMEOUT,
    ) -> None:
        if not info.api_url or not info.repository:
            raise ForgeError("GitHub needs an API URL and an owner/name repository")
        self.info = info
        self._token = token
        register_secret(token)
        self.host = urllib.parse.urlsplit(info.api_url).hostname or info.host
        self._etags: dict[str, tuple[str, Any, str | None]] = {}
        self._settings = (max_tries, backoff_factor, max_wait, timeout)
        self._owner = info.repository.split("/", 1)[0]

    # --- plumbing -----------------------------------------------------------------------------

    @functools.cached_property
    def _gh(self) -> github.Github:
        """PyGithub's client, built (and PyGithub imported) on first use: the api path
        (promoter.forge.github_commits) reaches GitHub without it."""
        import github
        from github import Auth, GithubRetry

        _quiet_pygithub()
        max_tries, backoff_factor, max_wait, timeout = self._settings
        info, token = self.info, self._token
        retry = GithubRetry(
            total=max_tries - 1,
            backoff_factor=backoff_factor,
            backoff_max=8,
            # 5xx and 429 (403 is added by GithubRetry, which retries it only for rate limits).
            status_forcelist=[429, 500, 502, 503, 504],
            # PATCH is idempotent here (title/body/state); GithubRetry already adds GET and POST.
            allowed_methods=["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "POST", "PATCH"],
            secondary_rate_wait=max_wait,
            max_rate_limit_wait=max_wait,
            retry_after_max=max_wait,
            # Hand the last error response to PyGithub, so it raises GithubException with the
            # status and message instead of an opaque urllib3 MaxRetryError.
            raise_on_status=False,
        )
        return github.Github(
            base_url=str(info.api_url).rstrip("/"),
            auth=Auth.Token(token) if token else None,
            retry=retry,
            timeout=timeout,
            per_page=100,
            user_agent="promoter",
            lazy=True,  # objects built from a URL cost no request until a missing field is read
            # PyGithub's default pacing (0.25 s between requests, 1 s between writes) is meant
            # for bulk clients; promoter makes a handful of calls per run, and secondary rate
            # limits, should they come, are retried above with their Retry-After.
            seconds_between_requests=None,
            seconds_between_writes=None,
        )

    def _repo(self, repository: str | None = None) -> Repository:
        return self._gh.get_repo(repository or str(self.info.repository))

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        """Run fn; PyGithub/requests failures become one-line promoter errors, token scrubbed."""
        import requests
        from github import GithubException

        try:
            return fn()
        except GithubException as exc:
            raise self._translate(what, exc.status, exc.data, exc.message) from None
        except requests.RequestException as exc:
            detail = self._clean(str(exc))
            raise ForgeError(
                f"GitHub API at {self.host} unreachable while {what}: {detail}"
            ) from None

    def _clean(self, text: str) -> str:
        return " ".join(scrub(text, [self._token or ""]).split())[:300]

    def _translate(self, what: str, status: int, data: Any, message: str | None) -> ForgeError:
        text = ""
        if isinstance(data, dict):
            text = str(data.get("message") or "")
            errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
            details = [str(e.get("message") or e.get("code")) for e in errors]
            if details:
                text += ": " + "; ".join(details)
        text = self._clean(text or message or "")
        rate_limited = status == 429 or "rate limit" in text.lower()
        if status == 401:
            return ForgeAuthError(f"authentication failed for {self.host} ({status} {text})")
        if status == 403 and not rate_limited:
            # The token is valid but may not do this (a missing scope or permission).
            return ForgeAuthError(
                f"GitHub refused {what} in {self.info.repository} (403 {text}): the token "
                "lacks a permission it needs (pull-requests, contents or statuses: write)"
            )
        return ForgeError(f"GitHub {status} while {what} in {self.info.repository}: {text}")

    def _to_pull(self, pr: GhPullRequest) -> PullRequest:
        # Only fields present in both `pull-request` and `pull-request-simple` are read: reading a
        # missing one (e.g. `merged`) would make PyGithub fetch the whole PR again.
        merged = pr.merged_at is not None
        return PullRequest(
            number=pr.number,
            url=pr.html_url,
            title=pr.title,
            body=pr.body or "",
            head=pr.head.ref,
            base=pr.base.ref,
            head_sha=pr.head.sha,
            state="merged" if merged else "open" if pr.state == "open" else "closed",
            draft=bool(pr.draft),
            labels=tuple(label.name for label in pr.labels),
            merge_sha=pr.merge_commit_sha if merged else None,
        )

    def _find(self, head: str, base: str) -> GhPullRequest | None:
        # At most one open PR per head/base pair: the first of the first page.
        return self._first_pull(state="open", head=head, base=base)

    def _first_pull(self, state: str, head: str, base: str) -> GhPullRequest | None:
        """The first PR GitHub lists for head -> base in `state` (newest first), built from the
        listed JSON alone: a field the list leaves out (the description does not require
        `draft`, `requested_reviewers`, `requested_teams`) reads None, and never costs the
        GET of the whole PR that PyGithub's lazy list items would make (which leaves them
        out just the same)."""
        from github.PullRequest import PullRequest as GhPull

        query = {"state": state, "head": f"{self._owner}:{head}", "base": base}
        _, data = self._gh.requester.requestJsonAndCheck(
            "GET", f"{self._repo().url}/pulls", parameters=query
        )
        for item in data if isinstance(data, list) else ():
            if isinstance(item, dict):
                return self._gh.create_from_raw_data(GhPull, item)
        return None

    # --- the Protocol -------------------------------------------------------------------------

    def find_pull_request(self, head: str, base: str) -> PullRequest | None:
        pr = self._guard(
            f"finding the pull request {head} -> {base}", lambda: self._find(head, base)
        )
        return None if pr is None else self._to_pull(pr)

    def last_pull_request(self, head: str, base: str) -> PullRequest | None:
        def newest() -> GhPullRequest | None:
            # Listed newest first (sort=created, direction=desc are GitHub's defaults).
            return self._first_pull(state="all", head=head, base=base)

        pr = self._guard(f"finding the last pull request {head} -> {base}", newest)
        return None if pr is None else self._to_pull(pr)

    def open_or_update_pull_request(self, spec: PullRequestSpec) -> PullRequest:
        return self._guard(
            f"opening the pull request {spec.head} -> {spec.base}",
            lambda: self._open_or_update(spec),
        )

    def _open_or_update(self, spec: PullRequestSpec) -> PullRequest:
        from github import GithubException

        existing = self._find(spec.head, spec.base)
        if existing is not None:
            return self._update(existing, spec)
        try:
            created = self._repo().create_pull(
                base=spec.base, head=spec.head, title=spec.title, body=spec.body, draft=spec.draft
            )
        except GithubException as exc:
            # Someone opened it between our lookup and our create: adopt theirs.
            if exc.status != 422 or "already exists" not in str(exc.data):
                raise
            existing = self._find(spec.head, spec.base)
            if existing is None:
                raise
            return self._update(existing, spec)
        # Reviewers first, labels last: the spec's labels on the PR say creation finished (a
        # run that died before them left none, and the next run completes it: see _update).
        self._request_reviewers(created, spec.reviewers, already=())
        # `draft` is not a required field of the answer: absent, it is what was asked for.
        draft = spec.draft if created.draft is None else bool(created.draft)
        out = dataclasses.replace(self._to_pull(created), created=True, draft=draft)
        if spec.labels:
            out = dataclasses.replace(out, labels=self._add_labels(created, list(spec.labels)))
        return out

    def _update(self, pr: GhPullRequest, spec: PullRequestSpec) -> PullRequest:
        """Bring an open PR in line with spec, one request per kind of difference.

        Labels are added, never removed (people label promotion PRs too). Reviewers missing from
        the pending requests are requested again when the content changed, or when creation did
        not finish: the spec names labels and none of them is on the PR (creation adds them
        last, after the reviewers, in one request). Otherwise a reviewer no longer pending has
        reviewed (GitHub drops a reviewer from the requests on review) and is not re-pinged,
        and an unchanged PR costs exactly one request (the lookup).
        """
        current = self._to_pull(pr)
        content_changed = pr.title != spec.title or (pr.body or "") != spec.body
        missing_labels = [name for name in spec.labels if name not in current.labels]
        unfinished = bool(spec.labels) and not set(spec.labels) & set(current.labels)
        labels = current.labels + tuple(missing_labels)
        if content_changed:
            self._repo().get_issue(pr.number).edit(title=spec.title, body=spec.body)
        if content_changed or unfinished:
            self._request_reviewers(pr, spec.reviewers, already=self._requested(pr))
        if missing_labels:  # after the reviewers, as on creation
            labels = self._add_labels(pr, missing_labels)
        if pr.draft is None:
            # The answer did not say (`draft` is optional in the description): ask for a draft
            # when one is wanted (converting a draft again changes nothing); a PR opened ready
            # stays ready, so no ready-for-review call is made blind.
            if spec.draft:
                pr.convert_to_draft()
        elif spec.draft != current.draft:
            if spec.draft:
                pr.convert_to_draft()
            else:
                pr.mark_ready_for_review()
        return dataclasses.replace(
            current, title=spec.title, body=spec.body, labels=labels, draft=spec.draft
        )

    def _add_labels(self, pr: GhPullRequest, names: list[str]) -> tuple[str, ...]:
        """Add labels (`POST .../issues/{n}/labels`, which only adds: a label someone sets
        meanwhile survives, as it would not a PATCH of the whole set); the PR's labels after."""
        _, data = self._gh.requester.requestJsonAndCheck(
            "POST", f"{pr.issue_url}/labels", input={"labels": names}
        )
        return tuple(label["name"] for label in data or () if isinstance(label, dict))

    def _requested(self, pr: GhPullRequest) -> tuple[str, ...]:
        # Neither list is a required field of a PR answer: absent reads as none pending.
        users = tuple(user.login for user in pr.requested_reviewers or ())
        return users + tuple(f"{self._owner}/{team.slug}" for team in pr.requested_teams or ())

    def _request_reviewers(
        self, pr: GhPullRequest, wanted: tuple[str, ...], already: tuple[str, ...]
    ) -> None:
        missing = [r for r in wanted if r not in already]
        users = [r for r in missing if "/" not in r]
        teams = [r.split("/", 1)[1] for r in missing if "/" in r]  # "org/team" names a team
        if users or teams:
            pr.create_review_request(reviewers=users, team_reviewers=teams)

    def close_pull_request(self, number: int) -> None:
        self._guard(
            f"closing pull request #{number}",
            lambda: self._repo().get_pull(number).edit(state="closed"),
        )

    def merge_pull_request(
        self,
        number: int,
        expected_head_sha: str,
        method: MergeMethod = "merge",
        commit_title: str | None = None,
    ) -> MergeResult:
        return self._guard(
            f"merging pull request #{number}",
            lambda: self._merge(number, expected_head_sha, method, commit_title),
        )

    def _merge(
        self, number: int, expected: str, method: MergeMethod, title: str | None
    ) -> MergeResult:
        from github import GithubException
        from github.GithubObject import NotSet

        pr = self._repo().get_pull(number)
        try:
            # GitHub compares `sha` with the head atomically; no separate read is needed.
            result = pr.merge(
                sha=expected, merge_method=method, commit_title=NotSet if title is None else title
            )
        except GithubException as exc:
            # 409: the head moved since the caller looked; 405: not mergeable (conflict, draft,
            # closed, branch protection). Both are answers, not failures.
            if exc.status not in (405, 409):
                raise
            message = exc.data.get("message", "") if isinstance(exc.data, dict) else ""
            return MergeResult(merged=False, sha=None, message=f"{exc.status} {message}".strip())
        return MergeResult(merged=bool(result.merged), sha=result.sha, message=result.message)

    def enable_auto_merge(self, number: int, method: MergeMethod = "merge") -> MergeResult:
        # Reading node_id completes the lazy PR (one GET); the mutation needs the GraphQL id.
        # GitHub only ever arms auto-merge here (the mutation answers nothing about a merge).
        self._guard(
            f"enabling auto-merge on pull request #{number}",
            lambda: (
                self._repo()
                .get_pull(number)
                .enable_automerge(merge_method=_GRAPHQL_METHODS[method])
            ),
        )
        return MergeResult(merged=False, sha=None, message="auto-merge enabled")

    def comment(self, number: int, body: str) -> None:
        self._guard(
            f"commenting on pull request #{number}",
            lambda: self._repo().get_issue(number).create_comment(body),
        )

    def statuses(self, sha: str) -> list[CommitStatus]:
        return self._guard(f"reading statuses of {sha[:12]}", lambda: self._statuses(sha))

    def _statuses(self, sha: str) -> list[CommitStatus]:
        # Conditional requests: a poll that finds nothing new is a 304, which GitHub does not
        # count against the rate limit, so `wait` can poll often for free.
        repo_url = f"{self._repo().url}/commits/{sha}"
        statuses = self._get_cached(f"{repo_url}/statuses", {"per_page": "100"})
        runs = self._get_cached(f"{repo_url}/check-runs", {"per_page": "100"})
        out = [
            CommitStatus(
                context=str(s["context"]),
                state=_STATUS_STATES.get(str(s["state"]), "error"),
                updated_at=status_time(s.get("updated_at")),
                description=str(s.get("description") or ""),
                target_url=s.get("target_url"),
            )
            for s in statuses or []
        ]
        for run in (runs or {}).get("check_runs", []):
            output = run.get("output") or {}
            out.append(
                CommitStatus(
                    context=str(run["name"]),
                    state=check_run_state(str(run["status"]), run.get("conclusion")),
                    updated_at=status_time(run.get("completed_at"), run.get("started_at")),
                    description=str(output.get("title") or output.get("summary") or ""),
                    target_url=run.get("details_url") or run.get("html_url"),
                    kind="check",
                )
            )
        return out

    def _get_cached(self, url: str, params: dict[str, str]) -> Any:
        """GET every page with If-None-Match; a page the server answers 304 comes from cache.

        Lists come back concatenated; for {"check_runs": [...]} pages, the runs are."""
        pages: list[Any] = []
        next_url: str | None = f"{url}?{urllib.parse.urlencode(sorted(params.items()))}"
        while next_url:
            etag, cached, cached_next = self._etags.get(next_url, (None, None, None))
            headers = {"If-None-Match": etag} if etag else {}
            response_headers, data = self._gh.requester.requestJsonAndCheck(
                "GET", next_url, headers=headers
            )
            lowered = {k.lower(): v for k, v in response_headers.items()}
            if data is None and etag:  # 304 Not Modified
                data, following = cached, cached_next
            else:
                following = _next_link(lowered.get("link", ""))
                if lowered.get("etag"):
                    self._etags[next_url] = (lowered["etag"], data, following)
            pages.append(data)
            next_url = following
        if all(isinstance(page, list) for page in pages):
            return [item for page in pages for item in page]
        return {"check_runs": [run for page in pages for run in (page or {}).get("check_runs", [])]}

    def set_status(
        self,
        sha: str,
        state: State,
        context: str,
        description: str = "",
        target_url: str | None = None,
        repository: str | None = None,
    ) -> None:
        from github.GithubObject import NotSet

        # GitHub rejects descriptions over 140 characters with a 422.
        short = description if len(description) <= 140 else description[:139] + "…"
        self._guard(
            f"setting status {context} on {sha[:12]}",
            lambda: (
                self._repo(repository)
                .get_commit(sha)
                .create_status(
                    state=state, target_url=target_url or NotSet, description=short, context=context
                )
            ),
        )

    def create_deployment(
        self,
        ref: str,
        environment: str,
        state: State,
        target_url: str | None = None,
        repository: str | None = None,
    ) -> str:
        def run() -> str:
            deployment = self._repo(repository).create_deployment(
                ref=ref,
                environment=environment,
                # promoter has gated this commit already, and GitHub must never merge the
                # default branch into an environment branch.
                auto_merge=False,
                required_contexts=[],
                description=f"promoter: {environment}",
            )
            self._deployment_status(deployment, environment, state, target_url)
            return str(deployment.id)

        return self._guard(f"recording a deployment of {ref} to {environment}", run)

    def set_deployment_status(
        self,
        deployment_id: str,
        environment: str,
        state: State,
        target_url: str | None = None,
        repository: str | None = None,
    ) -> None:
        def run() -> None:
            deployment = self._repo(repository).get_deployment(int(deployment_id))
            self._deployment_status(deployment, environment, state, target_url)

        self._guard(f"updating deployment {deployment_id} of {environment}", run)

    @staticmethod
    def _deployment_status(
        deployment: Any, environment: str, state: State, target_url: str | None
    ) -> None:
        from github.GithubObject import NotSet

        deployment.create_status(
            state=state, target_url=target_url or NotSet, environment=environment
        )

    def rate_limit_wait(self) -> float:
        remaining, _ = self._gh.requester.rate_limiting
        if remaining < 0:  # no response seen yet
            return 0.0
        left = max(0.0, self._gh.requester.rate_limiting_resettime - time.time())
        if remaining <= RATE_RESERVE:
            return left  # keep the last requests for the rest of the job
        return left / remaining  # spread what is left over the window


def _quiet_pygithub() -> None:
    """PyGithub attaches its own stderr handler at import and logs every retried request
    ("Request POST ... failed with 502"): promoter reports errors itself, in one line through
    its log guard, so that handler goes (and a closed stream can never make it print a
    traceback)."""
    import logging

    log = logging.getLogger("github")
    for handler in list(log.handlers):
        if type(handler) is logging.StreamHandler:
            log.removeHandler(handler)
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
