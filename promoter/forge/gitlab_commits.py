"""GitLab's side of the api path (promoter.forge.commits.CommitAPI): reads through the
repository files API, writes with `POST /projects/:id/repository/commits` and `actions`.

Not through python-gitlab: its import (requests, urllib3) costs ~75 ms before the first request,
and the api path makes a handful of plain REST calls. `_Rest` sends them over http.client with
kept-alive connections pooled across the reading threads, with GitLabForge's retries, timeout
and error wording (this class extends GitLabForge; merge requests stay with python-gitlab, in
the forge adapter). GitLab does not sign a commit made through its API: it
records the token's user as author and committer (its name and commit email), so here the api
path brings the compare-and-swap and fewer round trips, not a signature. No author is ever set;
promoter's actor is in the message's trailers.

Round trips (requests counted in `requests`, retries included):
- `snapshot`: GitLab reads one file per request, and says a path's mode (a symbolic link, a
  submodule or a directory is refused, `not_a_regular_file`, as on the git path) only in a
  listing of its directory. The branch (head and commit date), every file and every directory
  holding one, read by the branch's name, go out together in ONE round of concurrent requests;
  a file answer whose `commit_id` is not the head the branch read reported (the branch moved
  during the read), every absent file (a 404 does not say at which commit), and a directory
  listing that does not name the very blob read, are read again by SHA in a second round.
  promoter.yaml (`default_paths`) is read at `HEAD`, the default branch, in the first round
  too, and its `commit_id` is the default branch's head.
  A branch whose head this run has already seen (an earlier snapshot, as `update` reads the
  branch with promoter.yaml first, or promoter's own commit) is not read again: that head is a
  guess, confirmed when every file found names it as its `commit_id`; else the branch is read
  after all (one more round, then as above).
  An update of one file: promoter.yaml and the branch (2 requests), then the file and its
  directory (2; +1 per more file or directory), then 1 for the commit.
- Reads by SHA are cached with each file's `last_commit_id`, which the write needs.

The head check, what GitLab offers and what it does not. The commits endpoint takes no
expected head (`start_sha` on an existing branch is refused unless `force`, which replaces the
branch: used on promoter/* branches only, never on an environment branch). So:
- every update and delete carries the file's `last_commit_id` as read at `expected_head`:
  GitLab refuses (400 "The file has changed since you started editing it: <path>") when the
  file's last commit on the branch is not that one; a create is refused when the file appeared
  ("A file with this name already exists"), an update or delete when it vanished. Each is a
  lost race (HEAD_MOVED): the caller re-reads, re-plans and retries. So no change to a file
  promoter writes is ever overwritten.
- every other file read at `expected_head` (the plan's inputs on that branch that it does not
  write: promoter.yaml kept on the environment's own branch, a Chart.yaml read for a
  Chart.lock) goes along as an `update` to the very same bytes with its `last_commit_id`: it
  changes nothing in the tree, and GitLab checks it like the others.
- not detected by GitLab: commits since `expected_head` that touched only files the plan did
  not read (or read as absent: an absent file cannot be guarded). The commit then lands on top
  of them (GitLab commits on the branch's current head; nothing is lost, nothing forced), and
  the plan is still right: it depends on the files it read only. The 201's `parent_ids` show
  it; if a file read as absent appeared in between (one compare request), a one-line warning
  on stderr names the commit to check. What does follow the head rather than the files: the
  tip's commit time (Chart.lock's `generated`) stays that of `expected_head`.

promoter/* branches: GitLab's REST API has no way to point an existing branch at a commit,
and no lease on a branch either. `set_owned` reads the branch (the lease: it must be at
`expected`, else nothing is done) and the next `create_commit` on it writes the commit with
`start_sha` (and `force` when the branch exists): one request, the branch replaced. A push to
that promoter branch landing in the one round trip between that read and the commit is
replaced with it (GitHub's `updateRefs` with `beforeOid`, and the git path's lease, close that
window; GitLab offers nothing to close it). One landing before the read wins the branch, as on
every path: promoter leaves a branch a person pushed to alone.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from promoter.errors import UsageError
from promoter.forge.base import ForgeAuthError, ForgeError, ForgeInfo
from promoter.forge.commits import (
    HEAD_MOVED,
    REGULAR_FILE_MODES,
    CommitMeta,
    Snapshot,
    _HeadMoved,
    check_owned,
    not_a_regular_file,
)
from promoter.forge.gitlab import MAX_RETRIES, MAX_RETRY_AFTER, TIMEOUT, GitLabForge
from promoter.httpclient import connect

if TYPE_CHECKING:
    import http.client

    import gitlab
    import requests

T = TypeVar("T")
WORKERS = 8  # concurrent reads; below urllib3's pool of 10 connections per host
# GitLab's answers (400) to an action on a file that is not as read: a lost race.
_LOST = (
    "has changed since you started editing it",  # Files::MultiService (and UpdateService)
    "A file with this name already exists",  # Gitaly: a create whose file appeared
    "A file with this name doesn't exist",  # Gitaly: an update/delete whose file vanished
    "Could not update refs/heads/",  # Gitaly: the branch moved between its read and write
    "You can only create or edit files when you are on a branch",  # the branch is gone
    "already exists. Switch to that branch",  # a promoter/* branch created meanwhile
)


class _File:
    """A file as read at one commit: its bytes (None: absent), its last commit, its blob."""

    __slots__ = ("blob", "data", "last_commit")

    def __init__(
        self, data: bytes | None, last_commit: str | None, blob: str | None = None
    ) -> None:
        self.data = data
        self.last_commit = last_commit
        self.blob = blob


Listing = dict[str, tuple[str, str]]  # a directory's entries: path → (mode, object id)


class GitLabCommits(GitLabForge):
    """CommitAPI over GitLab's REST API v4."""

    kind = "gitlab"

    def __init__(self, info: ForgeInfo, token: str | None) -> None:
        super().__init__(info, token)
        self.requests = 0
        self._count_lock = threading.Lock()
        self._files: dict[tuple[str, str], _File] = {}
        self._metas: dict[str, CommitMeta] = {}
        self._read: dict[str, set[str]] = {}  # sha → every path read at it
        self._modes: dict[tuple[str, str], str | None] = {}  # (sha, path) → mode; None: absent
        # promoter/* branch → (sha, expected) that set_owned was asked for, not yet carried out
        self._moves: dict[str, tuple[str, str | None]] = {}
        # branch → its commit as GET /repository/branches last answered it in this run (the
        # next snapshot of it takes that head as a guess that the files' commit_id confirm)
        self._heads: dict[str, dict[str, Any]] = {}
        self._rest = _Rest(self._api_url, token, self._count)

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def gl(self) -> gitlab.Gitlab:
        fresh = self._gl is None
        client = super().gl
        if fresh:
            client.session.hooks["response"].append(self._counted)
        return client

    def _counted(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._count()

    def _count(self) -> None:
        with self._count_lock:
            self.requests += 1

    def _concurrently(self, calls: Iterable[Callable[[], T]]) -> list[T]:
        todo = list(calls)
        if len(todo) <= 1:
            return [call() for call in todo]
        with ThreadPoolExecutor(min(WORKERS, len(todo))) as pool:
            return list(pool.map(lambda call: call(), todo))

    def _request(
        self,
        what: str,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        missing: bool = False,
    ) -> _Answer | None:
        """One call on this project (`path` after /projects/:id); its errors leave as one
        scrubbed promoter error, except a 404 when `missing` (None)."""
        try:
            return self._rest.call(method, f"/projects/{_enc(self._repository)}{path}", query, body)
        except _Failed as failed:
            if missing and failed.answer.status == 404:
                return None
            raise self._refused(what, failed.answer) from None
        except Exception as err:
            if _transport(err):
                raise self._unreachable(what, err) from None
            raise

    def _refused(self, what: str, answer: _Answer) -> ForgeError:
        """GitLabForge._translate's wording for an answer that is not 2xx."""
        code = answer.status
        if code == 401:
            return ForgeAuthError(f"authentication failed for {self._host}")
        detail = self._clean(answer.message())
        if code == 403:
            return ForgeAuthError(f"{what}: access denied by {self._host}: {detail}")
        return ForgeError(f"{what}: {self._host} answered {code}: {detail}")

    def _unreachable(self, what: str, err: Exception) -> ForgeError:
        return ForgeError(f"{what}: cannot reach {self._host}: {self._clean(str(err))}")

    def _get_file(self, path: str, ref: str) -> tuple[_File, str | None]:
        """(the file at `ref`, the commit GitLab read it at); a 404 is an absent file, read at
        an unknown commit."""
        what = f"reading {path} at {ref[:40]} in {self._repository}"
        found = self._request(
            what, "GET", f"/repository/files/{_enc(path)}", {"ref": ref}, missing=True
        )
        if found is None:
            return _File(None, None), None
        attrs = found.data if isinstance(found.data, dict) else {}
        if attrs.get("encoding") != "base64":
            raise ForgeError(f"{what}: GitLab answered an encoding other than base64")
        data = base64.b64decode(str(attrs.get("content") or ""))
        return _File(data, attrs.get("last_commit_id"), attrs.get("blob_id")), attrs.get(
            "commit_id"
        )

    def _branch(self, branch: str) -> dict[str, Any] | None:
        """GET /repository/branches/:branch: its head commit, None when it does not exist."""
        what = f"reading branch {branch} of {self._repository}"
        found = self._request(what, "GET", f"/repository/branches/{_enc(branch)}", missing=True)
        if found is None:
            self._heads.pop(branch, None)
            return None
        commit = found.data.get("commit") if isinstance(found.data, dict) else None
        if not isinstance(commit, dict) or not commit.get("id"):
            raise ForgeError(f"{what}: GitLab answered a branch without its commit")
        self._heads[branch] = commit
        return commit

    def _list(self, directory: str, ref: str) -> Listing | None:
        """GET /repository/tree of `directory` at `ref` (all pages): its entries' modes and
        ids; None when it is no directory there (GitLab answers 404)."""
        what = f"listing {directory or '/'} at {ref[:40]} in {self._repository}"
        query = {"ref": ref, "per_page": "100", "recursive": "false"}
        if directory:
            query["path"] = directory
        entries: list[Any] = []
        page: str | None = "1"
        while page:
            found = self._request(
                what, "GET", "/repository/tree", {**query, "page": page}, missing=True
            )
            if found is None:
                return None
            entries += found.data if isinstance(found.data, list) else []
            page = found.headers.get("x-next-page") or None
        return {str(e["path"]): (str(e["mode"]), str(e["id"])) for e in entries}

    def _at(self, sha: str, paths: Collection[str], modes: bool = True) -> dict[str, bytes | None]:
        """`paths` at commit `sha`, from the cache or in one round of concurrent reads: the
        files, and (`modes`) the directories that hold them, so that a path that is not a
        regular file is refused as the git path refuses it (not_a_regular_file)."""
        self._read.setdefault(sha, set()).update(paths)
        missing = sorted({p for p in paths if (sha, p) not in self._files})
        unlisted = sorted({_dir(p) for p in paths if modes and (sha, p) not in self._modes})

        def read(path: str) -> Callable[[], None]:
            def run() -> None:
                self._files[(sha, path)] = self._get_file(path, sha)[0]

            return run

        def listing(directory: str) -> Callable[[], None]:
            def run() -> None:
                self._listed(sha, directory, self._list(directory, sha) or {})

            return run

        self._concurrently([*map(read, missing), *map(listing, unlisted)])
        for path in paths if modes else ():
            mode = self._modes.get((sha, path))
            if mode is not None and mode not in REGULAR_FILE_MODES:
                raise not_a_regular_file(path, mode, sha)
        return {p: self._files[(sha, p)].data for p in paths}

    def _listed(self, sha: str, directory: str, entries: Listing) -> None:
        """Record the modes of a directory's entries at `sha` (a path not listed is absent)."""
        for path in [p for (at, p) in self._read_paths(sha) if _dir(p) == directory]:
            found = entries.get(path)
            self._modes[(sha, path)] = found[0] if found else None
        for path, (mode, _) in entries.items():
            self._modes[(sha, path)] = mode

    def _read_paths(self, sha: str) -> list[tuple[str, str]]:
        return [(sha, path) for path in self._read.get(sha, set())]

    # -- CommitAPI: reads --------------------------------------------------------------------

    def snapshot(
        self, branch: str, paths: Collection[str] = (), default_paths: Collection[str] = ()
    ) -> Snapshot:
        self._settle(branch)
        wanted, defaults = sorted(set(paths)), sorted(set(default_paths))
        # The head this run last saw the branch at (an earlier snapshot, or promoter's own
        # commit) is only a guess: the files read by the branch's name confirm it when every
        # one found names it as its commit_id; else the branch is read after all.
        guess = self._heads.get(branch) if wanted else None
        calls: list[Callable[[], Any]] = [] if guess else [lambda: self._branch(branch)]
        first = len(calls)
        calls += [_bind(self._get_file, p, branch) for p in wanted]
        calls += [_bind(self._get_file, p, "HEAD") for p in defaults]
        dirs = sorted({_dir(p) for p in wanted})
        calls += [_bind(self._list, d, branch) for d in dirs]
        answers = self._concurrently(calls)
        on_branch = answers[first : first + len(wanted)]
        on_default = answers[first + len(wanted) : first + len(wanted) + len(defaults)]
        listings = dict(zip(dirs, answers[first + len(wanted) + len(defaults) :], strict=True))
        head: dict[str, Any] | None = answers[0] if guess is None else guess
        if guess is not None and {at for _, at in on_branch if at} != {str(guess["id"])}:
            head = self._branch(branch)  # it moved since, or no file found tells where it is
        default_sha, default_files = self._default(defaults, on_default)
        if head is None:
            files: dict[str, bytes | None] = dict.fromkeys(wanted)
            return Snapshot(branch, None, None, files, default_sha, default_files)
        sha = str(head["id"])
        for path, (found, at) in zip(wanted, on_branch, strict=True):
            if at != sha:  # a 404 or another commit: read again at the head, below
                continue
            self._files[(sha, path)] = found
            # Its directory, listed by the branch's name, is taken for this file when it
            # names the very blob read at the head; else it is listed again at the head.
            entry = (listings.get(_dir(path)) or {}).get(path)
            if entry is not None and entry[1] == found.blob:
                self._modes[(sha, path)] = entry[0]
        files = self._at(sha, wanted)
        committed = _when(str(head.get("committed_date") or head.get("created_at")))
        self._metas.setdefault(sha, _meta(head))
        return Snapshot(branch, sha, committed, files, default_sha, default_files)

    def _default(
        self, paths: list[str], answers: list[tuple[_File, str | None]]
    ) -> tuple[str | None, dict[str, bytes | None]]:
        """The default branch's head and files from reads at HEAD: the commit most answers
        name; files read elsewhere (it moved meanwhile) or absent are read again at it."""
        if not paths:
            return None, {}
        seen = [at for _, at in answers if at]
        if not seen:
            branch = self._project_default_branch()
            head = self._branch(branch) if branch else None
            if head is None:
                return None, dict.fromkeys(paths)
            seen = [str(head["id"])]
        sha = max(set(seen), key=seen.count)
        for path, (found, at) in zip(paths, answers, strict=True):
            if at == sha:
                self._files[(sha, path)] = found
        return sha, self._at(sha, paths, modes=False)

    def _project_default_branch(self) -> str | None:
        what = f"reading project {self._repository}"
        found = self._request(what, "GET", "")
        value = found.data.get("default_branch") if found and isinstance(found.data, dict) else None
        return str(value) if value else None

    def read_files(self, sha: str, paths: Collection[str]) -> dict[str, bytes | None]:
        return self._at(sha, paths)

    def commit_meta(self, sha: str) -> CommitMeta:
        if sha not in self._metas:
            what = f"reading commit {sha[:12]} of {self._repository}"
            found = self._request(what, "GET", f"/repository/commits/{sha}", {"stats": "false"})
            if found is None or not isinstance(found.data, dict) or not found.data.get("id"):
                raise ForgeError(f"{what}: GitLab answered no commit")
            self._metas[sha] = _meta(found.data)
        return self._metas[sha]

    def changed_paths(self, sha: str) -> frozenset[str]:
        parents = self.commit_meta(sha).parents
        if not parents:
            raise ForgeError(f"commit {sha[:12]} of {self._repository} has no parent to compare")
        return self._compare(parents[0], sha)

    def _compare(self, old: str, new: str) -> frozenset[str]:
        """Paths changed from `old` to `new` (GET /repository/compare, straight: the diff of
        the two trees, as `git diff old new`)."""
        what = f"comparing {old[:12]}..{new[:12]} in {self._repository}"
        query = {"from": old, "to": new, "straight": "true"}
        found = self._request(what, "GET", "/repository/compare", query)
        answer = found.data if found is not None else None
        names: set[str] = set()
        diffs = answer.get("diffs") if isinstance(answer, dict) else None
        for diff in diffs or []:
            names.update(str(diff[key]) for key in ("old_path", "new_path") if diff.get(key))
        return frozenset(names)

    def branch_head(self, branch: str) -> str | None:
        self._settle(branch)
        head = self._branch(branch)
        return None if head is None else str(head["id"])

    # -- CommitAPI: writes -------------------------------------------------------------------

    def create_commit(
        self,
        branch: str,
        expected_head: str,
        files: Mapping[str, bytes | None],
        message: str,
    ) -> str | _HeadMoved:
        move = self._moves.pop(branch, None)
        replace = move is not None and move[0] == expected_head
        if move is not None and not replace:
            self._moves[branch] = move
            self._settle(branch)
        actions = self._actions(expected_head, files, guard=not replace)
        if all("_same" in action for action in actions):
            raise ForgeError(f"committing to {branch}: nothing to change at {expected_head[:12]}")
        for action in actions:
            action.pop("_same", None)
        data: dict[str, Any] = {"branch": branch, "commit_message": message, "actions": actions}
        data["stats"] = False  # no diff stats computed for an answer nobody reads
        if replace and move is not None:  # promoter/* only: set_owned checked it, and the lease
            data["start_sha"] = expected_head  # a new branch on expected_head, or
            if move[1] is not None:
                data["force"] = True  # the branch replaced (its lease was read by set_owned)
        answer = self._post_commit(branch, data)
        if isinstance(answer, _HeadMoved):
            return answer
        made, parents = answer
        if parents != [expected_head]:
            self._moved_under(branch, expected_head, parents, made, set(files))
        return made

    def _actions(
        self, expected_head: str, files: Mapping[str, bytes | None], guard: bool
    ) -> list[dict[str, Any]]:
        """GitLab's actions for `files` on `expected_head`: create, update or delete, each
        update and delete with the file's `last_commit_id` there (when `guard`). And, when
        `guard`, one `update` to the same bytes for every other file read at `expected_head`
        (the plan's inputs on that branch): GitLab checks its `last_commit_id` too and changes
        nothing in the tree, so a concurrent change to a file the plan only read is a lost race
        as well. (Marked `_same`: not a change; removed before sending.)"""
        before = self._at(expected_head, files)
        actions: list[dict[str, Any]] = []
        read = sorted(self._read.get(expected_head, set()) - set(files)) if guard else []
        for path in read:
            found = self._files.get((expected_head, path))
            if found is None or found.data is None or not found.last_commit:
                continue  # an absent file cannot be guarded by an update
            encoded = base64.b64encode(found.data).decode("ascii")
            actions.append({"action": "update", "file_path": path, "content": encoded,
                            "encoding": "base64", "last_commit_id": found.last_commit,
                            "_same": True})  # fmt: skip
        for path, content in sorted(files.items()):
            action: dict[str, Any] = {"file_path": path}
            if content is None:
                if before[path] is None:
                    continue  # absent already: nothing to delete
                action["action"] = "delete"
            else:
                action["action"] = "create" if before[path] is None else "update"
                encoded = base64.b64encode(content).decode("ascii")
                action.update(content=encoded, encoding="base64")
            last = self._files[(expected_head, path)].last_commit
            if action["action"] != "create" and last and guard:
                action["last_commit_id"] = last
            actions.append(action)
        return actions

    def _post_commit(self, branch: str, data: dict[str, Any]) -> tuple[str, list[str]] | _HeadMoved:
        what = f"committing to {branch} of {self._repository}"
        path = f"/projects/{_enc(self._repository)}/repository/commits"
        try:
            made = self._rest.call("POST", path, None, data)
        except _Failed as failed:
            if failed.answer.status == 400 and any(
                lost in failed.answer.message() for lost in _LOST
            ):
                self._heads.pop(branch, None)
                return HEAD_MOVED
            raise self._refused(what, failed.answer) from None
        except Exception as err:
            if _transport(err):
                raise self._unreachable(what, err) from None
            raise
        attrs = made.data if isinstance(made.data, dict) else {}
        if not attrs.get("id"):
            raise ForgeError(f"{what}: GitLab answered no commit")
        self._metas[str(attrs["id"])] = _meta(attrs)
        self._heads[branch] = attrs
        return str(attrs["id"]), [str(p) for p in attrs.get("parent_ids") or []]

    def _moved_under(
        self, branch: str, expected: str, parents: list[str], made: str, written: set[str]
    ) -> None:
        """The commit landed on a head past `expected` (GitLab has no head check): every file
        it wrote or read and found was checked by GitLab; warn when a file the plan found absent
        (which no action can guard) appeared in a commit in between."""
        read = {
            path
            for path in self._read.get(expected, set()) - written
            if (expected, path) in self._files and self._files[(expected, path)].data is None
        }
        if not parents or not read:
            return
        touched = sorted(read & self._compare(expected, parents[0]))
        if touched:
            from promoter.model import show_value

            names = ", ".join(map(show_value, touched))
            print(
                f"promoter: {branch} moved while promoter wrote {made[:12]} through the API "
                f"(GitLab cannot check the head): {names} changed after "
                f"{expected[:12]}; the files written had not, check {made[:12]}",
                file=sys.stderr,
            )

    def set_owned(self, branch: str, sha: str, expected: str | None) -> bool:
        check_owned(branch)
        self._settle(branch)
        current = self.branch_head(branch)
        if current != expected:
            return False
        if current == sha:
            return True
        # GitLab's REST API cannot point an existing branch at another commit, and creating one
        # costs a request of its own. The next commit on it (create_commit with expected_head
        # == sha) does either in the same request: start_sha (+ force when it exists). Anything
        # else that looks at the branch first carries the move out (_settle).
        self._moves[branch] = (sha, expected)
        return True

    def _settle(self, branch: str) -> None:
        """Carry out a move set_owned recorded: create the branch at the new commit (after
        deleting it, if it still is as leased)."""
        move = self._moves.pop(branch, None)
        if move is None:
            return
        sha, expected = move
        if expected is None or self.delete_owned(branch, expected):
            self._create_branch(branch, sha)

    def _create_branch(self, branch: str, sha: str) -> bool:
        what = f"creating {branch} in {self._repository}"
        path = f"/projects/{_enc(self._repository)}/repository/branches"
        try:
            self._rest.call("POST", path, None, {"branch": branch, "ref": sha})
        except _Failed as failed:
            if failed.answer.status == 400 and "already exists" in failed.answer.message():
                return False
            raise self._refused(what, failed.answer) from None
        except Exception as err:
            if _transport(err):
                raise self._unreachable(what, err) from None
            raise
        self._heads.pop(branch, None)
        return True

    def delete_owned(self, branch: str, expected: str) -> bool:
        check_owned(branch)
        self._settle(branch)
        if self.branch_head(branch) != expected:
            return False
        what = f"deleting {branch} of {self._repository}"
        found = self._request(what, "DELETE", f"/repository/branches/{_enc(branch)}", missing=True)
        self._heads.pop(branch, None)
        return found is not None


def _bind(fn: Callable[[str, str], T], path: str, ref: str) -> Callable[[], T]:
    return lambda: fn(path, ref)


def _dir(path: str) -> str:
    return path.rpartition("/")[0]


def _meta(commit: Mapping[str, Any]) -> CommitMeta:
    return CommitMeta(
        str(commit["id"]),
        tuple(str(p) for p in commit.get("parent_ids") or []),
        str(commit.get("message") or ""),
        _when(str(commit.get("committed_date") or commit.get("created_at"))),
    )


def _when(stamp: str) -> datetime:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise ForgeError(f"GitLab answered an unreadable commit date {stamp[:40]!r}") from None


# GitLab's transient answers python-gitlab retries (gitlab.const.RETRYABLE_TRANSIENT_ERROR_CODES)
_TRANSIENT = frozenset({500, 502, 503, 504, *range(520, 531)})
# Proxies as requests reads them from the environment: then the calls go through a requests
# session, as python-gitlab's would. Its CA bundle variables are applied here (see _Rest._take).
_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy")
_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class _Answer:
    __slots__ = ("data", "headers", "status", "text")

    def __init__(self, status: int, headers: Mapping[str, str], raw: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.text = raw.decode("utf-8", "replace")
        try:
            self.data: Any = json.loads(raw) if raw else None
        except ValueError:
            self.data = None

    def message(self) -> str:
        """What GitLab said, as python-gitlab reads it: `message`, else `error`, else the body."""
        if isinstance(self.data, dict):
            for key in ("message", "error"):
                if key in self.data:
                    return str(self.data[key])
        return self.text


class _Failed(Exception):
    """An answer that is not 2xx, after retries (kept for the caller to read or translate)."""

    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


class _Rest:
    """The handful of REST v4 calls the api path makes, without python-gitlab (whose import,
    with requests and urllib3, is ~75 ms before the first request): http.client, one pool of
    kept-alive connections shared by the reading threads (a thread takes an idle connection or
    opens one, and gives it back after the whole answer is read), the token in PRIVATE-TOKEN as
    python-gitlab sends it. Retries as GitLabForge's client does them: 429 and GitLab's
    transient 5xx answers and transport errors, at most MAX_RETRIES times, 0.1 s doubling, or
    Retry-After capped at MAX_RETRY_AFTER. TLS is verified against requests' CA bundle variables
    when set, as requests would. When the environment sets a proxy, the calls go through a
    requests session instead (it applies proxies and their exceptions)."""

    def __init__(self, api_url: str, token: str | None, count: Callable[[], None]) -> None:
        base = urllib.parse.urlsplit(api_url.rstrip("/").removesuffix("/api/v4"))
        self._https = base.scheme == "https"
        self._host = base.hostname or "localhost"
        self._port = base.port
        self._origin = f"{base.scheme}://{base.netloc}"
        self._prefix = base.path.rstrip("/") + "/api/v4"
        self._headers = {"Accept": "application/json", "User-Agent": "promoter"}
        if token:
            if token != token.strip() or any(c in token for c in "\r\n\0"):
                # http.client would refuse it with the value in its message: named, not shown
                raise UsageError(
                    "the GitLab token has a line break or surrounding blanks: pass it without"
                )
            self._headers["PRIVATE-TOKEN"] = token
        self._count = count
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._plain = not any(k.lower() in _PROXY_ENV and v for k, v in os.environ.items())
        self.sleep: Callable[[float], None] = time.sleep

    def call(
        self, method: str, path: str, query: Mapping[str, str] | None = None, body: Any = None
    ) -> _Answer:
        """One call (retried as above); a non-2xx answer raises _Failed, a transport error
        OSError (or requests' RequestException on the requests route)."""
        url = self._prefix + path + ("?" + urllib.parse.urlencode(query) if query else "")
        payload = None if body is None else json.dumps(body).encode()
        retries = 0
        while True:
            try:
                answer = self._send(method, url, payload)
            except Exception as err:
                if not _transport(err) or retries >= MAX_RETRIES:
                    raise
                self.sleep(2**retries * 0.1)
                retries += 1
                continue
            if 200 <= answer.status < 300:
                return answer
            if (answer.status == 429 or answer.status in _TRANSIENT) and retries < MAX_RETRIES:
                self.sleep(_wait(answer.headers.get("retry-after"), retries))
                retries += 1
                continue
            raise _Failed(answer)

    def _send(self, method: str, url: str, payload: bytes | None) -> _Answer:
        headers = dict(self._headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if not self._plain:
            return self._send_requests(method, url, payload, headers)
        import http.client

        while True:
            conn, reused = self._take()
            try:
                if not reused:  # Nagle's algorithm off: the body would wait 40 ms for an ACK
                    connect(conn)
                self._count()
                conn.request(method, url, body=payload, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if reused:  # the server closed an idle kept-alive connection: a fresh one
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if response.will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            return _Answer(response.status, dict(response.getheaders()), raw)

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        import http.client

        if self._https:
            import ssl

            # requests verifies against REQUESTS_CA_BUNDLE (else CURL_CA_BUNDLE) when set: so
            # does this; else the system's store (SSL_CERT_FILE/SSL_CERT_DIR apply).
            bundle = next((os.environ[k] for k in _CA_ENV if os.environ.get(k)), None)
            if bundle is None:
                context = ssl.create_default_context()
            elif os.path.isdir(bundle):
                context = ssl.create_default_context(capath=bundle)
            else:
                context = ssl.create_default_context(cafile=bundle)
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=TIMEOUT, context=context
            ), False
        return http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT), False

    def _send_requests(
        self, method: str, url: str, payload: bytes | None, headers: dict[str, str]
    ) -> _Answer:
        with self._lock:
            if self._session is None:
                import requests

                self._session = requests.Session()
            session = self._session
        self._count()
        response = session.request(
            method, self._origin + url, data=payload, headers=headers, timeout=TIMEOUT,
            allow_redirects=False,
        )  # fmt: skip
        return _Answer(response.status_code, dict(response.headers), response.content)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _transport(err: Exception) -> bool:
    """A transport error (refused, reset, timed out, cut short): worth a retry."""
    if isinstance(err, OSError):
        return True
    import http.client

    if isinstance(err, http.client.HTTPException):
        return True
    requests = sys.modules.get("requests")
    return requests is not None and isinstance(err, requests.RequestException)


def _wait(retry_after: str | None, retries: int) -> float:
    """Seconds before retry number `retries` + 1: Retry-After (seconds or an HTTP date),
    capped at MAX_RETRY_AFTER, else 0.1 s doubling."""
    if retry_after is None:
        return float(2**retries * 0.1)
    try:
        seconds = float(retry_after)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = (parsedate_to_datetime(retry_after) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            seconds = 1.0
    return min(max(seconds, 0.0), float(MAX_RETRY_AFTER))


def _enc(value: str) -> str:
    return urllib.parse.quote(value, safe="")
