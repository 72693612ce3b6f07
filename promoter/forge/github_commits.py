"""GitHub's side of the api path (promoter.forge.commits.CommitAPI): reads in one GraphQL
query, writes with the `createCommitOnBranch` mutation, promoter/* branches moved or deleted
with `updateRefs`, whose `beforeOid` is the lease (GitHub checks it atomically with the move).

Through promoter.forge.graphql's client (http.client, one kept-alive connection; the same
auth, timeout, retry policy and GraphQL URL as the forge adapter's PyGithub client, and its
error translation: this class extends the adapter), so PyGithub is never imported on this
path; PyGithub's requester instead when that client would not connect as requests does (a
proxy variable set, no token). GitHub signs a commit made by `createCommitOnBranch`
("Verified"): it sets the author (the token's user) and the committer (GitHub) itself, which is
why promoter never sets an identity here; its actor stays in the message's trailers.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from promoter.errors import EditError
from promoter.forge.base import ForgeError, ForgeInfo
from promoter.forge.commits import (
    HEAD_MOVED,
    OWNED_PREFIX,
    REGULAR_FILE_MODES,
    CommitMeta,
    Snapshot,
    _HeadMoved,
    check_owned,
    not_a_regular_file,
)
from promoter.forge.github import BACKOFF_FACTOR, MAX_TRIES, MAX_WAIT, TIMEOUT, GitHubForge
from promoter.forge.graphql import GitHubApi, HttpFailure, Unreachable

# What a file read asks of the tree entry at a path: a blob's text, or enough to fetch its
# bytes over REST when GitHub gives no text (binary, or too large to inline).
_ENTRY = "{ mode object { __typename ... on Blob { oid text isBinary isTruncated } } }"
_COMMIT = "oid message committedDate parents(first: 2) { nodes { oid } }"
_ZERO = "0" * 40
_UPDATE_REFS = (
    "mutation($input: UpdateRefsInput!) { updateRefs(input: $input) { clientMutationId } }"
)
# Stale `<branch>-next-<hex>` helpers one run deletes at most: GitHub's `refs` connection is
# paginated (more are left for the next run).
HELPERS_PER_RUN = 10
_CREATE = (
    "mutation($input: CreateCommitOnBranchInput!) "
    "{ createCommitOnBranch(input: $input) { commit { oid } } }"
)


class GitHubCommits(GitHubForge):
    """CommitAPI over GitHub's GraphQL API (and two REST reads: a file too large to inline,
    a commit's changed paths)."""

    kind = "github"

    def __init__(
        self,
        info: ForgeInfo,
        token: str | None,
        *,
        max_tries: int = MAX_TRIES,
        backoff_factor: float = BACKOFF_FACTOR,
        max_wait: int = MAX_WAIT,
        timeout: int = TIMEOUT,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(
            info, token, max_tries=max_tries, backoff_factor=backoff_factor,
            max_wait=max_wait, timeout=timeout,
        )  # fmt: skip
        self._http = GitHubApi(
            str(info.api_url), token, max_tries=max_tries, backoff_factor=backoff_factor,
            max_wait=max_wait, timeout=timeout, sleep=sleep,
        )  # fmt: skip
        # http.client straight to GitHub; False: through PyGithub (a proxy set, or no token).
        self.direct = self._http.usable()
        self.requests = 0
        self._blobs: dict[tuple[str, str], bytes | None] = {}
        self._modes: dict[tuple[str, str], str] = {}  # git modes of the files read
        self._metas: dict[str, CommitMeta] = {}
        self._owner_name = str(info.repository).split("/", 1)
        self._node: str | None = None  # the repository's GraphQL node id
        # promoter branch -> {helper ref: oid}: its stale helpers, as branch_head read them
        self._helpers: dict[str, dict[str, str]] = {}

    # --- plumbing -----------------------------------------------------------------------------

    def _post(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One GraphQL request, its whole answer; HttpFailure / Unreachable when it fails."""
        self.requests += 1
        if self.direct:
            return self._http.graphql(document, variables)
        data = self._pygithub(lambda: self._gh.requester.graphql_query(document, variables)[1])
        return dict(data)

    def _get(self, path: str) -> Any:
        """One REST GET under the repository's URL, decoded."""
        url = f"{self._http.base_url}/repos/{self.info.repository}{path}"
        self.requests += 1
        if self.direct:
            return self._http.get(url)
        return self._pygithub(lambda: self._gh.requester.requestJsonAndCheck("GET", url)[1])

    @staticmethod
    def _pygithub(send: Callable[[], Any]) -> Any:
        """PyGithub's failures as the direct client's (HttpFailure, Unreachable)."""
        import requests
        from github import GithubException

        try:
            return send()
        except GithubException as exc:
            raise HttpFailure(exc.status, exc.data, exc.message) from None
        except requests.RequestException as exc:
            raise Unreachable(str(exc)) from None

    def _failed(self, what: str, exc: HttpFailure | Unreachable) -> ForgeError:
        """A failure as one line naming `what` (the token scrubbed)."""
        if isinstance(exc, HttpFailure):
            return self._translate(what, exc.status, exc.data, exc.message)
        detail = self._clean(str(exc))
        return ForgeError(f"GitHub API at {self.host} unreachable while {what}: {detail}")

    def _query(self, what: str, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One GraphQL request; its `data` (errors become ForgeError, token scrubbed)."""
        try:
            return dict(self._post(document, variables).get("data") or {})
        except (HttpFailure, Unreachable) as exc:
            raise self._failed(what, exc) from None

    def _rest(self, what: str, path: str) -> Any:
        try:
            return self._get(path)
        except (HttpFailure, Unreachable) as exc:
            raise self._failed(what, exc) from None

    def _files(
        self, what: str, sha: str, entries: Mapping[str, Any], paths: list[str]
    ) -> dict[str, bytes | None]:
        """Bytes of each path from its GraphQL tree entry (`f<i>` aliases), cached by SHA; a
        blob GitHub gives no text for is read over REST, as base64."""
        out: dict[str, bytes | None] = {}
        for i, path in enumerate(paths):
            entry = entries.get(f"f{i}") or {}
            blob = entry.get("object") or {}
            mode = f"{int(entry.get('mode') or 0):o}"
            if entry and mode.zfill(6) not in REGULAR_FILE_MODES:
                raise not_a_regular_file(path, mode, sha)
            data: bytes | None = None
            if blob.get("__typename") == "Blob":
                text = blob.get("text")
                if text is None or blob.get("isBinary") or blob.get("isTruncated"):
                    data = self._raw(what, sha, path)
                else:
                    data = str(text).encode("utf-8")
            self._blobs[(sha, path)] = data
            if entry:
                self._modes[(sha, path)] = mode.zfill(6)
            out[path] = data
        return out

    def _raw(self, what: str, sha: str, path: str) -> bytes | None:
        quoted = urllib.parse.quote(path)
        found = self._rest(what, f"/contents/{quoted}?ref={sha}")
        if not isinstance(found, dict) or found.get("encoding") != "base64":
            # GitHub inlines the contents of files up to 1 MB only.
            raise ForgeError(
                f"GitHub did not send the contents of {path} at {sha[:12]} (too large for its "
                "API?): write this environment with --commit-via git"
            )
        return base64.b64decode(str(found.get("content") or ""))

    @staticmethod
    def _file_fields(paths: list[str], prefix: str = "p") -> tuple[str, str]:
        """(variable declarations, `f<i>: file(path: $<prefix><i>)` fields) for `paths`."""
        decls = "".join(f", ${prefix}{i}: String!" for i in range(len(paths)))
        fields = " ".join(f"f{i}: file(path: ${prefix}{i}) {_ENTRY}" for i in range(len(paths)))
        return decls, fields

    # --- CommitAPI ----------------------------------------------------------------------------

    def snapshot(
        self, branch: str, paths: Collection[str] = (), default_paths: Collection[str] = ()
    ) -> Snapshot:
        wanted, defaults = sorted(paths), sorted(default_paths)
        decls, fields = self._file_fields(wanted)
        ddecls, dfields = self._file_fields(defaults, "d")
        default = ""
        if defaults:
            default = f"defaultBranchRef {{ target {{ oid ... on Commit {{ {dfields} }} }} }}"
        document = (
            f"query($owner: String!, $name: String!, $ref: String!{decls}{ddecls}) "
            "{ repository(owner: $owner, name: $name) { id "
            "ref(qualifiedName: $ref) { target { oid ... on Commit { committedDate "
            f"{fields} }} }} }} "
            f"{default} }} }}"
        )
        variables: dict[str, Any] = {
            "owner": self._owner_name[0],
            "name": self._owner_name[1],
            "ref": f"refs/heads/{branch}",
        }
        variables.update({f"p{i}": p for i, p in enumerate(wanted)})
        variables.update({f"d{i}": p for i, p in enumerate(defaults)})
        what = f"reading {branch}"
        repository = self._repository(self._query(what, document, variables), what)
        if repository.get("id"):
            self._node = str(repository["id"])
        target = (repository.get("ref") or {}).get("target") or {}
        sha = target.get("oid")
        files: dict[str, bytes | None] = dict.fromkeys(wanted)
        committed = None
        if sha:
            committed = _when(str(target.get("committedDate")))
            files = self._files(what, str(sha), target, wanted)
        default_sha, default_files = None, {}
        if defaults:
            head = (repository.get("defaultBranchRef") or {}).get("target") or {}
            default_sha = head.get("oid")
            if default_sha:
                default_files = self._files(what, str(default_sha), head, defaults)
        return Snapshot(branch, sha, committed, files, default_sha, default_files)

    def read_files(self, sha: str, paths: Collection[str]) -> dict[str, bytes | None]:
        missing = sorted(p for p in set(paths) if (sha, p) not in self._blobs)
        if missing:
            decls, fields = self._file_fields(missing)
            document = (
                f"query($owner: String!, $name: String!, $oid: GitObjectID!{decls}) "
                "{ repository(owner: $owner, name: $name) { "
                f"object(oid: $oid) {{ ... on Commit {{ {fields} }} }} }} }}"
            )
            variables: dict[str, Any] = {
                "owner": self._owner_name[0],
                "name": self._owner_name[1],
                "oid": sha,
            }
            variables.update({f"p{i}": p for i, p in enumerate(missing)})
            what = f"reading files at {sha[:12]}"
            commit = self._repository(self._query(what, document, variables), what).get("object")
            if commit is None:
                raise ForgeError(f"GitHub has no commit {sha[:12]} in {self.info.repository}")
            self._files(what, sha, commit, missing)
        return {p: self._blobs[(sha, p)] for p in paths}

    def commit_meta(self, sha: str) -> CommitMeta:
        if sha in self._metas:
            return self._metas[sha]
        document = (
            "query($owner: String!, $name: String!, $oid: GitObjectID!) "
            "{ repository(owner: $owner, name: $name) { "
            f"object(oid: $oid) {{ ... on Commit {{ {_COMMIT} }} }} }} }}"
        )
        variables = {"owner": self._owner_name[0], "name": self._owner_name[1], "oid": sha}
        what = f"reading commit {sha[:12]}"
        commit = self._repository(self._query(what, document, variables), what).get("object")
        if not commit or not commit.get("oid"):
            raise ForgeError(f"GitHub has no commit {sha[:12]} in {self.info.repository}")
        return self._meta(commit)

    def _meta(self, commit: dict[str, Any]) -> CommitMeta:
        """A commit's fields (`_COMMIT`) as CommitMeta, kept: a commit never changes."""
        parents = tuple(str(n["oid"]) for n in (commit.get("parents") or {}).get("nodes") or [])
        meta = CommitMeta(
            str(commit["oid"]),
            parents,
            str(commit.get("message") or ""),
            _when(str(commit.get("committedDate"))),
        )
        self._metas[meta.sha] = meta
        return meta

    def changed_paths(self, sha: str) -> frozenset[str]:
        data = self._rest(f"reading commit {sha[:12]}", f"/commits/{sha}")
        names: set[str] = set()
        for item in (data or {}).get("files") or []:
            names.add(str(item.get("filename")))
            if item.get("previous_filename"):
                names.add(str(item["previous_filename"]))
        return frozenset(names)

    def branch_head(self, branch: str) -> str | None:
        """One GraphQL query; the head commit's parents and message come along (kept for
        commit_meta: the delivery layer checks a promoter branch's head next), and for a
        promoter branch its leftover helpers (kept for replace_owned, which deletes them)."""
        return self._head(branch, helpers=branch.startswith(OWNED_PREFIX))

    def _head(self, branch: str, helpers: bool = False) -> str | None:
        """The head of `branch` (None: no such branch); with `helpers`, the same query lists
        refs named `<branch>-next-<8 hex>` (the first HELPERS_PER_RUN: `refs` takes a ref
        prefix ending in `/`, so the branch's directory, and `query` narrows it to names
        holding `<last part>-next-`; each name is checked exactly here)."""
        decls, listing = "", ""
        variables = {"owner": self._owner_name[0], "name": self._owner_name[1],
                     "ref": f"refs/heads/{branch}"}  # fmt: skip
        if helpers:
            directory, _, last = branch.rpartition("/")
            decls = ", $refPrefix: String!, $helper: String!"
            listing = (
                f"helpers: refs(refPrefix: $refPrefix, query: $helper, first: {HELPERS_PER_RUN})"
                " { nodes { name prefix target { oid } } }"
            )
            variables["refPrefix"] = f"refs/heads/{directory}/"
            variables["helper"] = f"{last}-next-"
        document = (
            f"query($owner: String!, $name: String!, $ref: String!{decls}) "
            "{ repository(owner: $owner, name: $name) { "
            f"ref(qualifiedName: $ref) {{ target {{ oid ... on Commit {{ {_COMMIT} }} }} }} "
            f"{listing} }} }}"
        )
        what = f"reading {branch}"
        repository = self._repository(self._query(what, document, variables), what)
        if helpers:
            self._helpers[branch] = _helpers(branch, repository.get("helpers"))
        target = (repository.get("ref") or {}).get("target") or {}
        if not target.get("oid"):
            return None
        if target.get("parents") is not None:
            self._meta(target)
        return str(target["oid"])

    def create_commit(
        self,
        branch: str,
        expected_head: str,
        files: Mapping[str, bytes | None],
        message: str,
    ) -> str | _HeadMoved:
        self._keeps_modes(expected_head, files)
        headline, _, body = message.partition("\n")
        changes: dict[str, Any] = {}
        additions = [
            {"path": p, "contents": base64.b64encode(data).decode("ascii")}
            for p, data in sorted(files.items())
            if data is not None
        ]
        deletions = [{"path": p} for p, data in sorted(files.items()) if data is None]
        if additions:
            changes["additions"] = additions
        if deletions:
            changes["deletions"] = deletions
        commit_message: dict[str, str] = {"headline": headline}
        if body.startswith("\n"):
            body = body[1:]
        if body:
            commit_message["body"] = body
        variables = {
            "input": {
                "branch": {
                    "repositoryNameWithOwner": str(self.info.repository),
                    "branchName": branch,
                },
                "expectedHeadOid": expected_head,
                "message": commit_message,
                "fileChanges": changes,
            }
        }
        what = f"committing to {branch}"
        try:
            data = self._post(_CREATE, variables)
        except HttpFailure as exc:
            if _stale(exc.data):
                return HEAD_MOVED
            raise self._failed(what, exc) from None
        except Unreachable as exc:
            raise self._failed(what, exc) from None
        made = ((data.get("data") or {}).get("createCommitOnBranch") or {}).get("commit") or {}
        if not made.get("oid"):
            raise ForgeError(f"GitHub answered no commit while {what} in {self.info.repository}")
        return str(made["oid"])

    def replace_owned(
        self,
        branch: str,
        parent: str,
        files: Mapping[str, bytes | None],
        message: str,
        expected: str | None,
    ) -> str | _HeadMoved:
        """One commit of `files` over `parent` as the only commit of promoter branch `branch`,
        which must be at `expected` (None: must not exist); HEAD_MOVED when it is not.

        GitHub closes a pull request for good when its head is moved onto its base (zero
        commits ahead), so an existing branch is never reset to `parent` first: the commit is
        made on a fresh `<branch>-next-<hex>` branch, then one `updateRefs` moves `branch`
        onto it under the lease and deletes the helper, atomically (3 writes). A branch that
        does not exist yet has no open pull request: created at `parent`, then committed on.

        A run killed between creating its helper and that move leaves the helper behind: the
        `updateRefs` that moves (or creates) `branch` also deletes the stale helpers of
        `branch` that branch_head listed when it read `expected` (no extra request), each
        under its own lease (`beforeOid`: the oid read, so a helper that moved since is left
        alone). That is safe: once this run moves `branch` off `expected`, any concurrent run
        still holding a helper of `branch` has already lost its race (its lease on `branch`
        no longer holds), so deleting its helper only makes it retry, which it would do anyway:
        a helper gone before its commit or its move is HEAD_MOVED here, never an error (so
        even a run whose lease would still hold, `branch` deleted and created again at the
        very commit it read, only retries). The mutation is all or none: refused while
        `branch` is still as read (a helper moved or went meanwhile), it is sent once more
        without the deletions."""
        check_owned(branch)
        self._keeps_modes(parent, files)
        stale = self._helpers.pop(branch, {})
        if expected is None:
            create = {"name": f"refs/heads/{branch}", "afterOid": parent, "beforeOid": _ZERO,
                      "force": True}  # fmt: skip
            cleanup = _deletions(stale)
            if not self._update_refs(
                [create, *cleanup],
                f"moving {branch}",
                lambda: self._head(branch) is not None,
                optional=len(cleanup),
            ):
                return HEAD_MOVED
            return self.create_commit(branch, parent, files, message)
        import secrets  # here: hmac and hashlib cost ~3 ms, and an update by push never needs it

        helper = f"{branch}-next-{secrets.token_hex(4)}"
        if not self._update_ref(helper, parent, None):
            raise ForgeError(f"GitHub refused to create {helper} in {self.info.repository}")
        stale.pop(f"refs/heads/{helper}", None)
        try:
            made = self.create_commit(helper, parent, files, message)
        except ForgeError:
            if self._head(helper) is not None:
                raise
            return HEAD_MOVED  # another run that won the race deleted our helper
        if isinstance(made, _HeadMoved):  # nobody else writes the helper: gone meanwhile
            self._update_ref(helper, _ZERO, parent)
            return made
        cleanup = _deletions(stale)
        moved = self._update_refs(
            [
                {"name": f"refs/heads/{branch}", "afterOid": made, "beforeOid": expected,
                 "force": True},
                {"name": f"refs/heads/{helper}", "afterOid": _ZERO, "beforeOid": made},
                *cleanup,
            ],
            f"moving {branch}",
            lambda: self._head(branch) != expected or self._head(helper) != made,
            optional=len(cleanup),
        )  # fmt: skip
        if not moved:  # lost the race (or another run's cleanup took the helper): retry
            self._update_ref(helper, _ZERO, made)
            return HEAD_MOVED
        return made

    def _keeps_modes(self, parent: str, files: Mapping[str, bytes | None]) -> None:
        """createCommitOnBranch takes no file mode and writes every file as 100644: an
        executable file it would rewrite is refused (EditError, exit 2) before any write."""
        for path, data in sorted(files.items()):
            if data is not None and self._modes.get((parent, path)) == "100755":
                raise EditError(
                    f"{path} is executable (mode 100755) in commit {parent[:12]}, and GitHub's "
                    "API commit (--commit-via api) writes every file as 100644: drop its "
                    "executable bit, or write this environment with --commit-via git"
                )

    def set_owned(self, branch: str, sha: str, expected: str | None) -> bool:
        check_owned(branch)
        if expected == sha:
            return self._head(branch) == sha  # nothing to move
        return self._update_ref(branch, sha, expected)

    def delete_owned(self, branch: str, expected: str) -> bool:
        check_owned(branch)
        return self._update_ref(branch, _ZERO, expected)

    def _update_ref(self, branch: str, after: str, before: str | None) -> bool:
        """One `updateRefs` mutation: the lease is GitHub's own check of `beforeOid` (zeros:
        the branch must not exist), atomic with the move; `afterOid` zeros deletes. Refused
        while the branch is not at `before`: False (re-read to tell that from other errors)."""
        update = {"name": f"refs/heads/{branch}", "afterOid": after,
                  "beforeOid": before or _ZERO, "force": True}  # fmt: skip
        what = f"{'deleting' if after == _ZERO else 'moving'} {branch}"
        return self._update_refs([update], what, lambda: self._head(branch) != before)

    def _update_refs(
        self,
        updates: list[dict[str, Any]],
        what: str,
        moved: Callable[[], bool],
        optional: int = 0,
    ) -> bool:
        """`updateRefs` with `updates` (all or none); False when GitHub refused it and
        `moved()` says a lease did not hold; refused otherwise, it is sent once more without
        the last `optional` updates (deletions that may go undone) when there are any, else
        the refusal raises."""
        variables = {"input": {"repositoryId": self._repository_id(), "refUpdates": updates}}
        try:
            self._post(_UPDATE_REFS, variables)
        except HttpFailure as exc:
            if moved():
                return False
            if optional:
                return self._update_refs(updates[:-optional], what, moved)
            raise self._failed(what, exc) from None
        except Unreachable as exc:
            raise self._failed(what, exc) from None
        return True

    def _repository_id(self) -> str:
        """The repository's node id (read with the first snapshot, else asked once)."""
        if self._node is None:
            document = (
                "query($owner: String!, $name: String!) "
                "{ repository(owner: $owner, name: $name) { id } }"
            )
            variables = {"owner": self._owner_name[0], "name": self._owner_name[1]}
            what = "reading the repository's id"
            answer = self._repository(self._query(what, document, variables), what)
            self._node = str(answer.get("id"))
        return self._node

    # --- answers ------------------------------------------------------------------------------

    def _repository(self, data: dict[str, Any], what: str) -> dict[str, Any]:
        repository = data.get("repository")
        if not isinstance(repository, dict):
            raise ForgeError(f"GitHub knows no repository {self.info.repository} ({what})")
        return repository


def _helpers(branch: str, listing: Any) -> dict[str, str]:
    """{ref: oid} of the refs in a `refs` answer named exactly `<branch>-next-<8 hex>`
    (lowercase hex, as replace_owned names them) of promoter branch `branch`: nothing else
    is ever deleted as a helper."""
    check_owned(branch)
    pattern = re.compile(re.escape(f"refs/heads/{branch}-next-") + "[0-9a-f]{8}")
    found: dict[str, str] = {}
    for node in (listing or {}).get("nodes") or []:
        if not isinstance(node, dict):
            continue
        ref = f"{node.get('prefix') or ''}{node.get('name') or ''}"
        oid = (node.get("target") or {}).get("oid")
        if pattern.fullmatch(ref) and isinstance(oid, str) and len(oid) == 40:
            found[ref] = oid
    return found


def _deletions(helpers: Mapping[str, str]) -> list[dict[str, Any]]:
    """RefUpdates deleting each of `helpers` ({ref: oid}) under its lease (the oid read)."""
    return [
        {"name": ref, "afterOid": _ZERO, "beforeOid": oid} for ref, oid in sorted(helpers.items())
    ]


def _stale(data: Any) -> bool:
    """GitHub's answer to an `expectedHeadOid` that is not the head: a STALE_DATA error,
    "Expected branch to point to \\"<oid>\\" but it did not. Pull and try again."."""
    if not isinstance(data, dict):
        return False
    for error in data.get("errors") or []:
        if isinstance(error, dict) and (
            error.get("type") == "STALE_DATA"
            or "expected branch to point to" in str(error.get("message", "")).lower()
        ):
            return True
    return False


def _when(stamp: str) -> datetime:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise ForgeError(f"GitHub answered an unreadable commit date {stamp[:40]!r}") from None
