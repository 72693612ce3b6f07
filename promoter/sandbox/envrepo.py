"""Build and inspect environment repos in a few lines, straight in a bare repo.

Everything here goes through git plumbing on the bare repo itself (no clone, no network), so a
test can set up history quickly and then check what promoter pushed over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from promoter.sandbox.gitserver import GitHttpServer

FileContent = str | bytes
# None in a commit_files mapping removes the path; seeding has nothing to remove.
FileChange = str | bytes | None

AUTHOR_NAME = "Promoter Test"
AUTHOR_EMAIL = "promoter-test@example.invalid"

IDENTITY_ENV: Mapping[str, str] = {
    "GIT_AUTHOR_NAME": AUTHOR_NAME,
    "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
    "GIT_COMMITTER_NAME": AUTHOR_NAME,
    "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
}


class EnvRepoError(RuntimeError):
    """A git command run by these helpers failed; carries git's stderr."""


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for git subprocesses of the test bed.

    Inherited GIT_* variables (GIT_DIR, GIT_INDEX_FILE, GIT_TRACE...) would silently retarget
    or pollute these commands, and user/system config would make results depend on the machine.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        **IDENTITY_ENV,
    )
    if extra:
        env.update(extra)
    return env


def git_out(bare: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """stdout of git in the bare repo `bare`; EnvRepoError (with git's words) if it fails."""
    proc = subprocess.run(
        ["git", "--git-dir", str(bare), *args],
        input=stdin,
        capture_output=True,
        env=git_env(),
        check=False,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise EnvRepoError(f"git {' '.join(args[:2])} in {bare} failed: {err}")
    return proc.stdout


def _quote_path(path: str) -> bytes:
    # fast-import takes C-style quoted paths; quoting always avoids special-casing
    # leading quotes and spaces in unquoted form.
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in path.split("/")):
        raise ValueError(f"invalid repository path: {path!r}")
    raw = path.encode("utf-8")
    raw = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
    return b'"' + raw + b'"'


def _as_bytes(content: FileContent) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def _commit_command(
    ref: str,
    parent: str | None,
    files: Mapping[str, FileChange],
    message: str,
    when: int,
) -> bytes:
    ident = f"{AUTHOR_NAME} <{AUTHOR_EMAIL}> {when} +0000".encode()
    msg = message.encode("utf-8")
    out = bytearray()
    out += b"commit " + ref.encode() + b"\n"
    out += b"author " + ident + b"\n"
    out += b"committer " + ident + b"\n"
    out += b"data %d\n" % len(msg) + msg + b"\n"
    if parent is not None:
        out += b"from " + parent.encode() + b"\n"
    for path, content in sorted(files.items()):
        quoted = _quote_path(path)
        if content is None:
            out += b"D " + quoted + b"\n"
        else:
            blob = _as_bytes(content)
            out += b"M 100644 inline " + quoted + b"\n"
            out += b"data %d\n" % len(blob) + blob + b"\n"
    return bytes(out)


def _fast_import(bare: Path, commands: Sequence[bytes]) -> None:
    # "feature done" makes a truncated stream an error instead of a partial import.
    stream = b"feature done\n" + b"".join(commands) + b"done\n"
    git_out(bare, "fast-import", "--quiet", stdin=stream)


def rev_parse(bare: Path, ref: str) -> str:
    return (
        git_out(bare, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}")
        .decode()
        .strip()
    )


def list_branches(bare: Path) -> dict[str, str]:
    """Branch name -> tip sha for every branch in the repo."""
    out = git_out(bare, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads/")
    pairs = (line.split(" ", 1) for line in out.decode().splitlines() if line)
    return {name: sha for name, sha in pairs}


def seed_repo(
    bare: Path,
    branches: Mapping[str, Mapping[str, FileContent]],
    message: str = "seed",
) -> dict[str, str]:
    """Write each branch as one root commit holding exactly the given files.

    Returns branch -> commit sha. Branches that already exist are refused by git (not a
    fast-forward); use commit_files to add history.
    """
    when = int(time.time())
    commands = [
        _commit_command(f"refs/heads/{name}", None, files, message, when)
        for name, files in branches.items()
    ]
    _fast_import(bare, commands)
    return {name: rev_parse(bare, f"refs/heads/{name}") for name in branches}


def commit_files(
    bare: Path,
    branch: str,
    files: Mapping[str, FileChange],
    message: str,
) -> str:
    """Add one commit on top of the branch tip changing `files` (None deletes); returns its sha.

    fast-import refuses to move the ref if the tip changed meanwhile (e.g. a concurrent push),
    so this never silently drops someone else's commit.
    """
    parent = rev_parse(bare, f"refs/heads/{branch}")
    _fast_import(
        bare, [_commit_command(f"refs/heads/{branch}", parent, files, message, int(time.time()))]
    )
    return rev_parse(bare, f"refs/heads/{branch}")


def read_bytes(bare: Path, ref: str, path: str) -> bytes:
    return git_out(bare, "cat-file", "blob", f"{ref}:{path}")


def read_file(bare: Path, ref: str, path: str) -> str:
    return read_bytes(bare, ref, path).decode("utf-8")


def list_files(bare: Path, ref: str) -> list[str]:
    out = git_out(bare, "ls-tree", "-r", "-z", "--name-only", f"{ref}^{{tree}}")
    return [p.decode("utf-8") for p in out.split(b"\0") if p]


def log(bare: Path, ref: str) -> list[str]:
    """Commit subjects reachable from ref, newest first."""
    out = git_out(bare, "log", "--format=%s", ref, "--")
    return out.decode("utf-8").splitlines()


def commit_message(bare: Path, ref: str) -> str:
    """The full message of one commit (subject, body and trailers)."""
    return git_out(bare, "log", "-1", "--format=%B", ref, "--").decode("utf-8").rstrip("\n")


def show_diff(bare: Path, ref: str, context: int = 0) -> str:
    """The patch of one commit (no header), as `git show` prints it."""
    out = git_out(bare, "show", "--format=", f"--unified={context}", "--no-color", ref, "--")
    return out.decode("utf-8")


def rev_list_parents(bare: Path, ref: str) -> list[tuple[str, tuple[str, ...]]]:
    """(commit, parents) for every commit reachable from ref, newest first."""
    out = git_out(bare, "rev-list", "--parents", ref, "--")
    rows = (line.split() for line in out.decode().splitlines() if line)
    return [(row[0], tuple(row[1:])) for row in rows]


def is_linear(bare: Path, ref: str) -> bool:
    """True when no commit reachable from ref is a merge."""
    return all(len(parents) <= 1 for _, parents in rev_list_parents(bare, ref))


@dataclass(frozen=True)
class EnvRepo:
    """A bare repo served by a GitHttpServer, with the shas it was seeded with."""

    name: str
    url: str
    path: Path
    shas: dict[str, str] = field(default_factory=dict)

    def sha(self, branch: str) -> str:
        return rev_parse(self.path, f"refs/heads/{branch}")

    def read_file(self, ref: str, path: str) -> str:
        return read_file(self.path, ref, path)

    def log(self, ref: str) -> list[str]:
        return log(self.path, ref)

    def commit(self, branch: str, files: Mapping[str, FileChange], message: str) -> str:
        return commit_files(self.path, branch, files, message)


class EnvRepoFactory(Protocol):
    """What the `env_repo` test fixture returns: a fresh, uniquely named repo per call."""

    def __call__(
        self,
        files_by_branch: Mapping[str, Mapping[str, FileContent]] | None = None,
        *,
        name: str | None = None,
        default_branch: str = "main",
        message: str = "seed",
    ) -> EnvRepo: ...


def make_env_repo(
    server: GitHttpServer,
    name: str,
    files_by_branch: Mapping[str, Mapping[str, FileContent]],
    *,
    default_branch: str = "main",
    message: str = "seed",
) -> EnvRepo:
    """Create `name` on the server and seed one commit per branch."""
    path = server.create_repo(name, default_branch=default_branch)
    shas = seed_repo(path, files_by_branch, message=message) if files_by_branch else {}
    return EnvRepo(name=name, url=server.repo_url(name), path=path, shas=shas)
