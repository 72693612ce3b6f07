"""The api path's seam (`--commit-via api`): reading an environment repository and writing
commits on it through the forge's API instead of git.

One small Protocol, `CommitAPI`, with what the delivery layer (promoter.delivery) and the
planners need; one implementation per forge (GitHub: promoter.forge.github_commits, GraphQL
`createCommitOnBranch`; GitLab: promoter.forge.gitlab_commits, the repository files and commits
APIs). `open_commit_api` picks it from the same `ForgeInfo` and token as the forge adapter.

Everything above this module is forge-neutral and shared with the git path: the plan, the
byte-exact edits, the commit message (built by promoter.message, handed over whole), the
no-op rule (the delivery layer compares contents before calling any write here), the retry
loop (a `HEAD_MOVED` answer is a lost race: the caller re-reads, re-plans and retries).

Rules every implementation keeps (the contract tests in tests/ hold both to them):

- Paths are repository paths as promoter.yaml names them (`apps/web/values.yaml`, no leading
  slash). Branch names are without `refs/heads/`. SHAs are 40 lower-case hex digits.
- File contents are bytes, byte-exact both ways (no newline or encoding changes; a file that
  does not exist reads as None). A path whose tree entry is not a regular file (a symbolic
  link, a submodule, a directory: any mode but 100644/100755) is refused as the git path
  refuses it: raise `not_a_regular_file(path, mode, sha)` (an EditError, exit 2), never read
  a link's target text as the file.
- Errors are promoter errors raised at this edge: `ForgeAuthError` for 401/403 (not rate
  limits), `ForgeError` for the rest, one line naming the operation, the repository and what
  the forge said; never the token (nor a URL that carries it). A missing environment branch is
  not an error here (`Snapshot.sha` is None); the caller says what to do.
- Only `create_commit` writes to an environment branch, and only as a compare-and-swap on its
  head: never force, never a branch that is not at `expected_head`. `set_owned` and
  `delete_owned` touch promoter-owned branches only (`promoter/...`; anything else raises
  ForgeError before any request) and only under a lease: they read the branch's current head
  first and change nothing when it is not `expected`.
- `requests` counts the HTTP requests sent (for tests and bench/: round trips matter).
- Optional: `replace_owned(branch, parent, files, message, expected) -> str | HEAD_MOVED`, one
  commit over `parent` as the only commit of promoter branch `branch` under the lease
  `expected`. When an implementation has it (GitHub's does), the delivery layer uses it for
  promoter branches instead of `set_owned(branch, parent, expected)` + `create_commit(branch,
  parent, ...)`: GitHub closes a pull request whose head is moved onto its base, so there the
  branch must never point at `parent` in between.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal, Protocol, cast

from promoter.errors import EditError, UsageError
from promoter.forge.base import ForgeError

if TYPE_CHECKING:
    from promoter.forge.base import ForgeInfo

CommitVia = Literal["git", "api"]
COMMIT_VIA: Final = ("git", "api")
OWNED_PREFIX: Final = "promoter/"


class _HeadMoved:
    """`create_commit`'s answer when the branch head was not `expected_head`: a lost race."""

    def __repr__(self) -> str:
        return "HEAD_MOVED"


HEAD_MOVED: Final = _HeadMoved()


@dataclass(frozen=True)
class Snapshot:
    """One round trip's read of a branch (see `CommitAPI.snapshot`).

    `sha`: the branch head, None when the branch does not exist (then `committed` is None and
    `files` maps every asked path to None). `committed`: the head commit's committer date,
    timezone-aware UTC (what Chart.lock's `generated` is derived from, never the clock).
    `files`: every asked path → its bytes at `sha`, None when absent. `default_sha` and
    `default_files`: the same for the repository's default branch, when `default_paths` were
    asked (else None and {}).
    """

    branch: str
    sha: str | None
    committed: datetime | None
    files: Mapping[str, bytes | None] = field(default_factory=dict)
    default_sha: str | None = None
    default_files: Mapping[str, bytes | None] = field(default_factory=dict)


@dataclass(frozen=True)
class CommitMeta:
    """A commit as the delivery layer needs it: parents in order (first parent first), the
    full message as stored (headline, blank line, body), except that trailing newlines may be
    missing (GitHub's `message` drops them); the committer date (aware UTC)."""

    sha: str
    parents: tuple[str, ...]
    message: str
    committed: datetime


class CommitAPI(Protocol):
    """Reads and compare-and-swap writes of one repository through its forge's API."""

    kind: str  # "github" | "gitlab"
    requests: int  # HTTP requests sent so far

    def snapshot(
        self, branch: str, paths: Collection[str] = (), default_paths: Collection[str] = ()
    ) -> Snapshot:
        """In ONE round trip where the forge allows it (GitHub: one GraphQL query): the head of
        `branch`, its commit's committer date, the contents of `paths` at that head, and, when
        `default_paths` is not empty, the default branch's head and the contents of
        `default_paths` there (promoter.yaml). A forge that needs more requests (GitLab: one per
        file) may send them concurrently; it must still read every file at the one head SHA it
        reports (read the head first, then files by SHA, never by branch name), so that what
        is returned is one consistent commit even while the branch moves."""
        ...

    def read_files(self, sha: str, paths: Collection[str]) -> dict[str, bytes | None]:
        """The contents of `paths` at commit `sha` (every path a key; None when absent). Reads
        at a SHA are immutable: an implementation may cache them (snapshot's files included)
        and answer repeated reads without a request."""
        ...

    def commit_meta(self, sha: str) -> CommitMeta:
        """Parents, message and committer date of commit `sha` (ForgeError when unknown)."""
        ...

    def changed_paths(self, sha: str) -> frozenset[str]:
        """The paths commit `sha` adds, modifies or deletes against its FIRST parent (renames
        count as both paths). GitHub: REST `GET /repos/{o}/{r}/commits/{sha}` `files[].filename`
        (+ `previous_filename`); GitLab: `GET /projects/:id/repository/commits/:sha/diff`
        `new_path`/`old_path` (all pages). Used on promoter's own one-commit PR branches only,
        so the commit is small."""
        ...

    def branch_head(self, branch: str) -> str | None:
        """The SHA `branch` points at now, None when it does not exist (one request)."""
        ...

    def create_commit(
        self,
        branch: str,
        expected_head: str,
        files: Mapping[str, bytes | None],
        message: str,
    ) -> str | _HeadMoved:
        """One new commit on existing `branch`, whose parent is `expected_head` and whose tree
        is `expected_head`'s with `files` applied (bytes: added or replaced with exactly these
        bytes; None: deleted; `files` is never empty), with `message` exactly (its first line
        is the headline, the rest after the blank line the body; the trailer block is the
        body's end and must survive byte for byte). Returns the new commit's SHA.

        Compare-and-swap: when the branch head is not `expected_head` at the moment of the
        write (or the branch is gone), nothing is written and HEAD_MOVED is returned; the
        caller re-reads and retries. GitHub: `createCommitOnBranch` with `expectedHeadOid`
        (its STALE_DATA error "Expected branch to point to ... but it did not" is HEAD_MOVED).
        GitLab: `POST /projects/:id/repository/commits` with `actions` (base64 content); its
        head check must be at least as strict as "no file in `files` changed after
        `expected_head`" (e.g. `last_commit_id` on every action) and, after a 201, the new
        commit's parent must be verified to be `expected_head` when the forge cannot check the
        head itself; say in the implementation which it does. A refusal that is not a lost
        race (protected branch, permissions, validation) raises ForgeError.

        Identity: the forge chooses author and committer (GitHub: author = the token's user,
        committer GitHub, signed). Implementations never set an author or committer: the
        actor is recorded by promoter in the message's trailers."""
        ...

    def set_owned(self, branch: str, sha: str, expected: str | None) -> bool:
        """Point promoter-owned `branch` (`promoter/...`) at existing commit `sha` under a lease:
        `expected` None means the branch must not exist (it is created); else it must point at
        `expected` now (it is then moved to `sha`, force, as the lease allows). Reads the
        current head first; when it is not `expected`, changes nothing and returns False (a
        lost race, or someone else's push). True when the branch points at `sha` afterwards
        (also when it already did and `expected == sha`: nothing is sent then)."""
        ...

    def delete_owned(self, branch: str, expected: str) -> bool:
        """Delete promoter-owned `branch` if it still points at `expected` (read first); False,
        and nothing deleted, when it does not (or is already gone)."""
        ...


REGULAR_FILE_MODES: Final = frozenset({"100644", "100755"})
_ENTRY_KINDS: Final = {
    "120000": "a symbolic link",
    "160000": "a submodule",
    "040000": "a directory",
}


def not_a_regular_file(path: str, mode: str, commit: str) -> EditError:
    """The git path's refusal of a pinned path that is not a regular file; `mode` is git's
    octal mode as text ("120000"; "40000" is taken as "040000")."""
    mode = mode.zfill(6)
    what = _ENTRY_KINDS.get(mode, f"an entry of mode {mode}")
    return EditError(
        f"{path} must be a regular file, but it is {what} in commit {commit[:12]}: "
        "pin the file itself"
    )


def check_commit_via(value: str, source: str = "--commit-via") -> CommitVia:
    """`git` or `api`, else a UsageError (exit 2) naming `source` (the flag, the environment
    variable PROMOTER_COMMIT_VIA or promoter.yaml's `commit_via`)."""
    if value == "git":
        return "git"
    if value == "api":
        return "api"
    raise UsageError(f"{source} {value!r}: expected git or api")


def check_owned(branch: str) -> None:
    """Implementations call this before touching a branch in set_owned/delete_owned."""
    if not branch.startswith(OWNED_PREFIX) or branch == OWNED_PREFIX:
        raise ForgeError(
            f"internal error: {branch!r} is not a promoter/ branch; promoter does not move it"
        )


def open_commit_api(info: ForgeInfo, token: str | None) -> CommitAPI:
    """The CommitAPI of `info.kind` (github | gitlab); with no forge, a UsageError (exit 2):
    the api path needs a forge API. Implementations' constructors take (info, token), import
    their client lazily and send no request before the first call."""
    classes = {"github": "GitHubCommits", "gitlab": "GitLabCommits"}
    if info.kind in classes:
        # Imported by name: each forge's module (and its client library) loads only when used.
        module = importlib.import_module(f"promoter.forge.{info.kind}_commits")
        return cast("CommitAPI", getattr(module, classes[info.kind])(info, token))
    raise UsageError(
        "--commit-via api writes through the forge's API and there is none (--forge none): "
        "pass --forge github|gitlab (and --api-url for GitHub Enterprise or self-managed "
        "GitLab), or use --commit-via git"
    )
