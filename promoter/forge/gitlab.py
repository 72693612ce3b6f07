"""GitLab adapter: merge requests, commit statuses and notes through python-gitlab.

python-gitlab is imported here only, on first use, so commands that never talk to GitLab do not
pay for it. Everything that leaves this module is forge-neutral (promoter.forge.base), and every
GitLab or transport error is translated at this edge into one line with the token scrubbed.

GitLab specifics, decided here (the value tables and conversions are in gitlab_map.py):
- A draft is a title starting with "Draft: " (GitLab derives `draft` from the title).
- Merge method is a project setting on GitLab; per merge we can only ask for a squash.
  "rebase" is refused up front rather than silently merging another way.
- Labels and reviewers are only added, never removed (`add_labels` on update, not `labels`,
  which would replace the set). Reviewers are user ids on GitLab: numbers are used as they are
  (no extra call), usernames are looked up with GET /users?username= (one call each, cached
  per run). The username lookup is NOT covered by the vendored API description
  (it has no /users path), so the strict double cannot vouch for it: it is tested on a double
  with strict=False. Numeric ids are the path the contract suite holds to the description.
  An MR is created with its labels and reviewers in one request (nothing half-made for a
  crashed run to leave), and a reviewer stays one after approving, so every update may
  re-add missing reviewers without pinging anyone who already reviewed.
- GitHub Deployments have no GitLab equivalent through this API: create_deployment raises.
- Retries use python-gitlab's own machinery: `retry_transient_errors` for 5xx and transport
  errors, and its per-request `obey_rate_limit` (on by default) for 429 + Retry-After. They are
  bounded in count (`max_retries` on every call) and in wait (Retry-After capped by a requests
  session hook), so a CI job cannot hang on a server that keeps asking it to wait.
"""

from __future__ import annotations

import dataclasses
import math
import re
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

from promoter.errors import UsageError, register_secret, scrub
from promoter.forge.base import (
    CommitStatus,
    ForgeAuthError,
    ForgeError,
    ForgeInfo,
    MergeMethod,
    MergeResult,
    NeedsForge,
    PullRequest,
    PullRequestSpec,
    State,
)
from promoter.forge.gitlab_map import STATE_MAP as STATE_MAP  # re-exported: the state table
from promoter.forge.gitlab_map import (
    STATE_OUT,
    commit_status,
    merge_options,
    mr_title,
    pull_request,
    reviewer_name,
)

if TYPE_CHECKING:
    import gitlab
    import requests
    from gitlab.v4.objects import Project

T = TypeVar("T")

MAX_RETRIES = 4  # per request: 0.1 + 0.2 + 0.4 + 0.8 s of backoff for 5xx
MAX_RETRY_AFTER = 20  # seconds; a longer Retry-After is shortened to this
TIMEOUT = 30.0  # seconds per HTTP request
_DUPLICATE_TEXT = "Another open merge request already exists"
_DUPLICATE = re.compile(_DUPLICATE_TEXT + r".*?!(\d+)")
_NO_TRANSITION = "Cannot transition status"


class GitLabForge:
    def __init__(self, info: ForgeInfo, token: str | None) -> None:
        if not info.api_url or not info.repository:
            raise UsageError("GitLab needs an API URL and a project path (--api-url, --repo)")
        self.info = info
        self._api_url: str = info.api_url
        self._repository: str = info.repository
        self._token = token
        register_secret(token)
        self._host = urllib.parse.urlsplit(info.api_url).hostname or info.host or info.api_url
        self._gl: gitlab.Gitlab | None = None
        self._user_cache: dict[str, int] = {}

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def gl(self) -> gitlab.Gitlab:
        if self._gl is None:
            import gitlab
            import requests

            session = requests.Session()
            session.hooks["response"].append(_bound_retry_after)
            self._gl = gitlab.Gitlab(
                url=self._api_url.rstrip("/").removesuffix("/api/v4"),
                private_token=self._token,
                retry_transient_errors=True,
                timeout=TIMEOUT,
                session=session,
            )
        return self._gl

    def _project(self, repository: str | None = None) -> Project:
        # lazy=True: no GET /projects/:id round trip; the path is URL-encoded into each call.
        return self.gl.projects.get(repository or self._repository, lazy=True)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one python-gitlab call; its errors leave as one scrubbed promoter error."""
        import gitlab.exceptions as glexc
        import requests

        try:
            return fn()
        except (glexc.GitlabError, requests.RequestException) as err:
            raise self._translate(what, err) from None

    def _translate(self, what: str, err: Exception) -> ForgeError:
        import gitlab.exceptions as glexc

        if not isinstance(err, glexc.GitlabError):  # transport: refused, reset, timed out
            return ForgeError(f"{what}: cannot reach {self._host}: {self._clean(str(err))}")
        code = err.response_code
        if code == 401 or isinstance(err, glexc.GitlabAuthenticationError):
            return ForgeAuthError(f"authentication failed for {self._host}")
        detail = self._clean(str(err.error_message))
        if code == 403:
            return ForgeAuthError(f"{what}: access denied by {self._host}: {detail}")
        where = f"{self._host} answered {code}" if code else f"GitLab at {self._host}"
        return ForgeError(f"{what}: {where}: {detail}")

    def _clean(self, text: str) -> str:
        return " ".join(scrub(text, [self._token or ""]).split())[:300]

    # -- merge requests ----------------------------------------------------------------------

    def find_pull_request(self, head: str, base: str) -> PullRequest | None:
        found = self._find(head, base)
        return None if found is None else pull_request(found)

    def _find(self, head: str, base: str) -> dict[str, Any] | None:
        mrs = self._call(
            f"finding the merge request {head} → {base}",
            lambda: self._project().mergerequests.list(
                source_branch=head,
                target_branch=base,
                state="opened",
                get_all=False,
                max_retries=MAX_RETRIES,
            ),
        )
        return dict(mrs[0].attributes) if mrs else None

    def last_pull_request(self, head: str, base: str) -> PullRequest | None:
        mrs = self._call(
            f"finding the last merge request {head} → {base}",
            lambda: self._project().mergerequests.list(
                source_branch=head,
                target_branch=base,
                state="all",
                order_by="created_at",
                sort="desc",
                get_all=False,
                max_retries=MAX_RETRIES,
            ),
        )
        return pull_request(dict(mrs[0].attributes)) if mrs else None

    def open_or_update_pull_request(self, spec: PullRequestSpec) -> PullRequest:
        title = mr_title(spec.title, spec.draft)
        current = self._find(spec.head, spec.base)
        if current is None:
            data: dict[str, Any] = {
                "source_branch": spec.head,
                "target_branch": spec.base,
                "title": title,
                "description": spec.body,
                "labels": list(spec.labels),
            }
            if spec.reviewers:
                data["reviewer_ids"] = self._user_ids(spec.reviewers)
            created = self._create(data)
            if isinstance(created, PullRequest):
                return dataclasses.replace(created, created=True)
            # Another job opened the same MR between our lookup and our create: adopt it
            # (GitLab names it in the 409) and bring it in line with the spec below.
            current = self._get(created) if created else self._find(spec.head, spec.base)
            if current is None:
                raise ForgeError(f"GitLab reported a duplicate of {spec.head} → {spec.base}")
        return self._update(current, spec, title)

    def _create(self, data: dict[str, Any]) -> PullRequest | int | None:
        """The new MR; or, when one already exists, its number (None if GitLab did not say)."""
        import gitlab.exceptions as glexc

        what = f"opening a merge request {data['source_branch']} → {data['target_branch']}"
        try:
            created = self._project().mergerequests.create(data, max_retries=MAX_RETRIES)
        except glexc.GitlabCreateError as err:
            message = str(err.error_message)
            if err.response_code != 409 or _DUPLICATE_TEXT not in message:
                raise self._translate(what, err) from None
            number = _DUPLICATE.search(message)
            return int(number.group(1)) if number else None
        except (glexc.GitlabError, _requests_error()) as err:
            raise self._translate(what, err) from None
        return pull_request(created.attributes)

    def _get(self, number: int) -> dict[str, Any]:
        mr = self._call(
            f"reading merge request !{number}",
            lambda: self._project().mergerequests.get(number, max_retries=MAX_RETRIES),
        )
        return dict(mr.attributes)

    def _update(self, current: dict[str, Any], spec: PullRequestSpec, title: str) -> PullRequest:
        changes: dict[str, Any] = {}
        if current.get("title") != title:
            changes["title"] = title
        if (current.get("description") or "") != spec.body:
            changes["description"] = spec.body
        # Added, never replaced: `labels` would drop the ones people put on the MR ("hold").
        have = set(current.get("labels") or [])
        missing_labels = [name for name in spec.labels if name not in have]
        if missing_labels:
            changes["add_labels"] = missing_labels
        if spec.reviewers:
            reviewer_ids = self._reviewers_to_set(current, spec.reviewers)
            if reviewer_ids is not None:
                changes["reviewer_ids"] = reviewer_ids
        if not changes:
            return pull_request(current)
        number = int(current["iid"])
        updated = self._call(
            f"updating merge request !{number}",
            lambda: self._project().mergerequests.update(number, changes, max_retries=MAX_RETRIES),
        )
        return pull_request(updated)

    def _reviewers_to_set(
        self, current: dict[str, Any], wanted: tuple[str, ...]
    ) -> list[int] | None:
        """The reviewer ids to PUT so that every wanted reviewer is one, or None if all are.

        Reviewers are added, never removed: people may have asked others to review too. GitLab
        sends `reviewers` as a list of users (its API description says one object: a quirk, see
        promoter/sandbox/gitlab_quirks.py). A wanted reviewer already there, by id or username,
        costs nothing; if the field is missing altogether, the wanted ones are simply set.
        """
        have = current.get("reviewers")
        if not isinstance(have, list):
            return self._user_ids(wanted)
        users = [r for r in have if isinstance(r, dict)]
        known = {str(u.get("username")) for u in users} | {str(u.get("id")) for u in users}
        missing = tuple(r for r in wanted if reviewer_name(r) not in known)
        if not missing:
            return None
        return sorted({int(u["id"]) for u in users if "id" in u} | set(self._user_ids(missing)))

    def _user_ids(self, reviewers: tuple[str, ...]) -> list[int]:
        """GitLab takes reviewers by user id: numbers pass as they are, usernames are looked up."""
        ids: list[int] = []
        for reviewer in map(reviewer_name, reviewers):
            if reviewer.isdigit():
                ids.append(int(reviewer))
                continue
            if reviewer not in self._user_cache:
                self._user_cache[reviewer] = self._lookup_user(reviewer)
            ids.append(self._user_cache[reviewer])
        return ids

    def _lookup_user(self, username: str) -> int:
        # GET /users?username= is outside the vendored API description (in
        # promoter/sandbox/descriptions/): it is exercised against a double with strict=False
        # only. Pass numeric ids to avoid it.
        found = self._call(
            f"looking up GitLab user {username!r}",
            lambda: self.gl.users.list(username=username, get_all=False, max_retries=MAX_RETRIES),
        )
        if not found:
            raise UsageError(f"reviewer {username!r}: GitLab has no user by that name")
        return int(found[0].attributes["id"])

    def close_pull_request(self, number: int) -> None:
        self._call(
            f"closing merge request !{number}",
            lambda: self._project().mergerequests.update(
                number, {"state_event": "close"}, max_retries=MAX_RETRIES
            ),
        )

    def merge_pull_request(
        self,
        number: int,
        expected_head_sha: str,
        method: MergeMethod = "merge",
        commit_title: str | None = None,
    ) -> MergeResult:
        import gitlab.exceptions as glexc

        data: dict[str, Any] = {"sha": expected_head_sha, **merge_options(method)}
        if commit_title:
            key = "squash_commit_message" if method == "squash" else "merge_commit_message"
            data[key] = commit_title
        try:
            result = self._merge_call(number, data)
        except glexc.GitlabHttpError as err:
            if err.response_code not in (405, 406, 409, 422):
                raise self._translate(f"merging merge request !{number}", err) from None
            # 409: the head moved past expected_head_sha; 405/406/422: not mergeable (closed,
            # draft, conflicts). Nothing was merged; the caller decides what that means.
            return MergeResult(False, None, self._clean(str(err.error_message)))
        except _requests_error() as err:
            raise self._translate(f"merging merge request !{number}", err) from None
        if result.get("state") != "merged":
            return MergeResult(False, None, f"merge request !{number} is {result.get('state')}")
        sha = result.get("merge_commit_sha") or result.get("squash_commit_sha")
        return MergeResult(True, sha, f"merged !{number}")

    def enable_auto_merge(self, number: int, method: MergeMethod = "merge") -> MergeResult:
        # auto_merge is the current name; merge_when_pipeline_succeeds is what GitLab before
        # 17.11 understands. Both are in the API description; each version ignores the other.
        data = {"auto_merge": True, "merge_when_pipeline_succeeds": True, **merge_options(method)}
        what = f"enabling auto-merge on !{number}"
        mr = self._call(what, lambda: self._merge_call(number, data))
        # With nothing pending on the head, GitLab merges at once: the answer says which.
        if mr.get("state") == "merged":
            sha = mr.get("merge_commit_sha") or mr.get("squash_commit_sha")
            return MergeResult(True, sha, f"merged !{number}")
        if mr.get("state") == "opened" and mr.get("merge_when_pipeline_succeeds"):
            return MergeResult(False, None, "auto-merge enabled")
        raise ForgeError(f"{what}: GitLab neither merged nor armed it (it is {mr.get('state')})")

    def _merge_call(self, number: int, data: dict[str, Any]) -> dict[str, Any]:
        # Through http_put rather than ProjectMergeRequest.merge(): merge() sends extra options
        # (sha, squash, auto_merge) as query parameters, which the API description (and so the
        # strict double) only accepts in the JSON body.
        path = f"/projects/{self._project().encoded_id}/merge_requests/{number}/merge"
        result = self.gl.http_put(path, post_data=data, max_retries=MAX_RETRIES)
        if not isinstance(result, dict):
            raise ForgeError(f"merging merge request !{number}: unexpected answer from GitLab")
        return result

    def comment(self, number: int, body: str) -> None:
        mr = self._project().mergerequests.get(number, lazy=True)
        self._call(
            f"commenting on merge request !{number}",
            lambda: mr.notes.create({"body": body}, max_retries=MAX_RETRIES),
        )

    # -- commit statuses ---------------------------------------------------------------------

    def statuses(self, sha: str) -> list[CommitStatus]:
        commit = self._project().commits.get(sha, lazy=True)
        raw = self._call(
            f"reading the statuses of {sha[:12]}",
            lambda: commit.statuses.list(get_all=True, per_page=100, max_retries=MAX_RETRIES),
        )
        out = [s for s in (commit_status(item.attributes) for item in raw) if s is not None]
        out.sort(key=lambda s: (s.context, -s.updated_at.timestamp()))
        return out

    def set_status(
        self,
        sha: str,
        state: State,
        context: str,
        description: str = "",
        target_url: str | None = None,
        repository: str | None = None,
    ) -> None:
        data: dict[str, Any] = {"state": STATE_OUT[state], "name": context}
        if description:
            data["description"] = description[:255]
        if target_url:
            data["target_url"] = target_url
        commit = self._project(repository).commits.get(sha, lazy=True)
        what = f"setting status {context!r} on {sha[:12]}"
        import gitlab.exceptions as glexc

        try:
            commit.statuses.create(data, max_retries=MAX_RETRIES)
        except glexc.GitlabCreateError as err:
            # GitLab refuses pending→pending and running→running with 400: the status already
            # says what we want it to say, so that is success, not an error.
            if err.response_code == 400 and _NO_TRANSITION in str(err.error_message):
                return
            raise self._translate(what, err) from None
        except (glexc.GitlabError, _requests_error()) as err:
            raise self._translate(what, err) from None

    def create_deployment(
        self,
        ref: str,
        environment: str,
        state: State,
        target_url: str | None = None,
        repository: str | None = None,
    ) -> str:
        raise NeedsForge(_NO_DEPLOYMENTS)

    def set_deployment_status(
        self,
        deployment_id: str,
        environment: str,
        state: State,
        target_url: str | None = None,
        repository: str | None = None,
    ) -> None:
        raise NeedsForge(_NO_DEPLOYMENTS)

    def rate_limit_wait(self) -> float:
        # python-gitlab already waits out a 429 (obey_rate_limit); GitLab has no free
        # conditional requests to budget, so polling keeps its own pace.
        return 0.0


_NO_DEPLOYMENTS = (
    "GitHub Deployments are GitHub-only; on GitLab, report the deployment with a commit "
    "status (set_status) or declare `environment:` in the GitLab CI job"
)


# -- helpers --------------------------------------------------------------------------------------


def _bound_retry_after(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Cap Retry-After (and turn an HTTP date into seconds) before python-gitlab sleeps on it.

    python-gitlab sleeps int(Retry-After) seconds per retry with no upper bound and fails on
    the HTTP-date form; this keeps its retry loop but bounds it.
    """
    value = response.headers.get("Retry-After")
    if value is None:
        return
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            seconds = 1.0
    response.headers["Retry-After"] = str(math.ceil(min(max(seconds, 0.0), MAX_RETRY_AFTER)))


def _requests_error() -> type[Exception]:
    import requests

    return requests.RequestException
