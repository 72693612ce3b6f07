"""The GitLab double's commits API: `POST /projects/:id/repository/commits` with `actions`,
one commit of several file changes, written on the real bare repository.

What it follows, read in GitLab's source (lib/api/commits.rb; app/services/commits/
create_service.rb, files/multi_service.rb, files/base_service.rb; Gitaly's UserCommitFiles):

- Parameters as grape declares them: `branch`, `commit_message`, `actions` required; each
  action's `action` one of create, update, move, delete, chmod (anything else: 400
  `actions[0][action] does not have a valid value`); `content` required for update,
  `previous_path` for move, `execute_filemode` for chmod; `encoding` text or base64;
  `start_branch` and `start_sha` mutually exclusive; `start_branch` defaults to `branch`.
- The service's checks, in its order and words: a `start_sha` that is not a full commit id or
  not in the repo; a `start_branch` that does not exist; a `branch` that exists while the
  commit starts elsewhere (`start_sha`, or another `start_branch`) without `force`.
- `last_commit_id` on update, move, delete and chmod: the file's last commit on the start
  point must be its last commit as of `last_commit_id` (so the file's own last commit or any
  later commit that did not touch it passes), else 400 `The file has changed since you
  started editing it: <path>`. A path missing on either side is not checked (as GitLab).
- Gitaly's index errors: `A file with this name already exists` (create, move onto a file),
  `A file with this name doesn't exist` (update, delete, chmod, move from a missing file),
  `A directory with this name already exists`, `Path cannot include directory traversal`.
- The branch moves with an expected old value, as Gitaly's update-ref does: the parent (the
  start point), or the branch's head when `force` is set (the branch is then replaced by a
  commit on `start_sha`: what happened on it since is dropped), or none for a new branch.
  GitLab's endpoint has no expected-head parameter: with `start_branch` defaulting to `branch`,
  the parent is whatever the head is when the request runs.
- Author and committer are the token's user (its name and commit email), the author replaced
  only when both `author_name` and `author_email` are given; the commit is not signed.
- 201 with the commit (API::Entities::CommitDetail, `stats` unless `stats: false`).

Requests are handled one at a time under the double's lock, so the window in which Gitaly's
own update-ref can fail between reading the head and moving it does not arise here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from promoter.sandbox.envrepo import git_env
from promoter.sandbox.gitlab_repository import RepositoryRoutes, commit_stats
from promoter.sandbox.gitlab_store import Call, Project, Reply, branch_sha, git, resolve_commit

ACTIONS = ("create", "update", "move", "delete", "chmod")
CHECKED = frozenset({"update", "move", "delete", "chmod"})  # take last_commit_id
_SHA = re.compile(r"^[0-9a-f]{40}$")
_ZERO = "0" * 40


class Refused(Exception):
    """What GitLab answers 400 with: the service's or Gitaly's message."""


@dataclass(frozen=True)
class Action:
    kind: str
    path: str
    content: bytes | None = None
    previous: str | None = None
    last_commit_id: str | None = None
    executable: bool | None = None


class CommitRoutes(RepositoryRoutes):
    """GitLabState's base: the handler gitlab_http's table names `create_commit`."""

    users: dict[int, str]

    def create_commit(self, p: Project, call: Call) -> Reply:
        body = call.body
        try:
            actions = _actions(body)
        except _GrapeError as err:
            return Reply(400, {"error": str(err)})
        try:
            sha = self._commit(p, body, actions, call.base)
        except Refused as err:
            return Reply(400, {"message": str(err)})
        return Reply(201, self._detail(p, sha, call))

    def _commit(self, p: Project, body: dict[str, Any], actions: list[Action], base: str) -> str:
        branch = str(body["branch"])
        start_sha = body.get("start_sha") or None
        start_branch = body.get("start_branch") or (None if start_sha else branch)
        force = body.get("force") in (True, "true")
        head = branch_sha(p.bare, branch)
        empty = not _has_branches(p)
        # Commits::CreateService#validate!
        if start_sha is not None:
            if not _SHA.match(str(start_sha)):
                raise Refused(f"Invalid start_sha '{start_sha}'")
            if resolve_commit(p.bare, str(start_sha)) != start_sha:
                raise Refused(f"Cannot find start_sha '{start_sha}'")
        start = str(start_sha) if start_sha else None
        if start_branch is not None and not empty:
            start = branch_sha(p.bare, str(start_branch))
            if start is None:
                raise Refused("You can only create or edit files when you are on a branch")
        different = start_branch != branch or start_sha is not None
        if not empty and different and head is not None and not force:
            raise Refused(
                f"A branch called '{branch}' already exists. Switch to that branch in order to "
                "make changes"
            )
        if different and git(p.bare, "check-ref-format", f"refs/heads/{branch}").returncode:
            raise Refused(
                f"Something went wrong when we tried to create '{branch}' for you: "
                "Branch name is invalid"
            )
        # Files::MultiService#validate_file_status!
        for action in actions:
            path = action.previous or action.path
            if action.kind in CHECKED and start and _changed(p, start, path, action.last_commit_id):
                raise Refused(f"The file has changed since you started editing it: {path}")
        # Gitaly's UserCommitFiles: the tree, the commit, the branch under an expected old value.
        tree = _tree(p, start, actions)
        name, email = self.committer(base)
        author = (body.get("author_name"), body.get("author_email"))
        if not (author[0] and author[1]):
            author = (name, email)
        when = self.clock()
        sha = _commit_tree(p, tree, start, str(body["commit_message"]), author, (name, email), when)
        old = _ZERO if head is None else head if force else str(start)
        if git(p.bare, "update-ref", f"refs/heads/{branch}", sha, old).returncode != 0:
            raise Refused(f"Could not update refs/heads/{branch}. Please refresh and try again.")
        return sha

    def committer(self, base: str, uid: int = 1) -> tuple[str, str]:
        """The token's user as GitLab writes it into a commit: its name and commit email (the
        private form `<id>-<username>@users.noreply.<host>`)."""
        username = self.users[uid]
        host = urllib.parse.urlsplit(base).hostname or "gitlab.example"
        return str(self.user(base, uid)["name"]), f"{uid}-{username}@users.noreply.{host}"

    def _detail(self, p: Project, sha: str, call: Call) -> dict[str, Any]:
        detail = self.render_commit(p, sha, call.base)
        if call.body.get("stats") not in (False, "false"):
            parents = detail["parent_ids"]
            detail["stats"] = commit_stats(p, parents[0] if parents else None, sha)
        detail["project_id"] = p.id
        return detail


class _GrapeError(Exception):
    """A parameter grape refuses before the service runs: 400 {"error": ...}."""


def _actions(body: dict[str, Any]) -> list[Action]:
    for name in ("branch", "commit_message", "actions"):
        if body.get(name) in (None, ""):
            raise _GrapeError(f"{name} is missing")
    if body.get("start_branch") and body.get("start_sha"):
        raise _GrapeError("start_branch, start_sha are mutually exclusive")
    raw = body["actions"]
    if not isinstance(raw, list):
        raise _GrapeError("actions is invalid")
    out = []
    for i, item in enumerate(raw):
        at = f"actions[{i}]"
        if not isinstance(item, dict):
            raise _GrapeError(f"{at} is invalid")
        kind = item.get("action")
        if kind is None:
            raise _GrapeError(f"{at}[action] is missing")
        if kind not in ACTIONS:
            raise _GrapeError(f"{at}[action] does not have a valid value")
        if item.get("file_path") is None:
            raise _GrapeError(f"{at}[file_path] is missing")
        required = {"update": "content", "move": "previous_path", "chmod": "execute_filemode"}
        if kind in required and item.get(required[kind]) is None:
            raise _GrapeError(f"{at}[{required[kind]}] is missing")
        encoding = item.get("encoding", "text")
        if encoding not in ("text", "base64"):
            raise _GrapeError(f"{at}[encoding] does not have a valid value")
        content = item.get("content")
        data = None
        if content is not None and kind in ("create", "update", "move"):
            data = _decode(str(content), encoding, at)
        out.append(
            Action(
                kind,
                str(item["file_path"]),
                data,
                item.get("previous_path") if kind == "move" else None,
                item.get("last_commit_id") if kind in CHECKED else None,
                item.get("execute_filemode"),
            )
        )
    return out


def _decode(content: str, encoding: str, at: str) -> bytes:
    if encoding == "text":
        return content.encode()
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise _GrapeError(f"{at}[content] is invalid") from None


def _has_branches(p: Project) -> bool:
    return bool(git(p.bare, "for-each-ref", "--count=1", "refs/heads/").stdout.strip())


def _last_commit(p: Project, ref: str, path: str) -> str | None:
    proc = git(p.bare, "log", "-1", "--format=%H", ref, "--", f":(literal){path}")
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _changed(p: Project, start: str, path: str, last_commit_id: str | None) -> bool:
    """Files::BaseService#file_has_changed?: the path's last commit on the start point differs
    from its last commit as of `last_commit_id` (false when either has none)."""
    if not last_commit_id:
        return False
    on_branch = _last_commit(p, start, path)
    if on_branch is None:
        return False
    if resolve_commit(p.bare, last_commit_id) is None:
        return False
    as_of = _last_commit(p, last_commit_id, path)
    return as_of is not None and on_branch != as_of


def _check_path(path: str) -> str:
    if not path:
        raise Refused("You must provide a file path")
    if "//" in path:
        raise Refused(f"invalid path: '{path}'")
    parts = path.split("/")
    if ".." in parts or path.startswith("/"):
        raise Refused("Path cannot include directory traversal")
    return path.strip("/")


def _tree(p: Project, start: str | None, actions: list[Action]) -> str:
    """The start point's tree with `actions` applied. As Gitaly edits a tree, only the
    directories on the changed paths are read and written (see _Overlay), not the whole tree."""
    tree = _Overlay(p, start)
    try:
        for action in actions:
            _apply(action, tree)
        return tree.write()
    except _Conflict:  # a path both a file and a directory: as the whole-index way has it
        return _tree_by_index(p, start, actions)
    finally:
        tree.close()


class _Conflict(Exception):
    """A path that would be both a file and a directory (_Overlay hands it to _tree_by_index)."""


def _apply(action: Action, tree: _Overlay) -> None:
    path = _check_path(action.path)

    def mode(executable: bool | None, old: str = "100644") -> str:
        return old if executable is None else "100755" if executable else "100644"

    if action.kind == "create":
        if tree.get(path) is not None:
            raise Refused("A file with this name already exists")
        if tree.is_dir(path):
            raise Refused("A directory with this name already exists")
        tree.put(path, mode(action.executable), tree.blob(action.content))
        return
    if action.kind == "move":
        previous = _check_path(action.previous or "")
        moved = tree.get(previous)
        if moved is None:
            raise Refused("A file with this name doesn't exist")
        if tree.get(path) is not None:
            raise Refused("A file with this name already exists")
        tree.remove(previous)
        data = tree.blob(action.content) if action.content is not None else moved[1]
        tree.put(path, moved[0], data)
        return
    found = tree.get(path)
    if found is None:
        raise Refused("A file with this name doesn't exist")
    old_mode, old_blob = found
    if action.kind == "delete":
        tree.remove(path)
    elif action.kind == "update":
        tree.put(path, old_mode, tree.blob(action.content))
    else:  # chmod
        tree.put(path, mode(action.executable, old_mode), old_blob)


def _tree_by_index(p: Project, start: str | None, actions: list[Action]) -> str:
    """The start point's tree with `actions` applied, through a private index of the whole
    tree: the actions' order of checks and what `git update-index` makes of a path that is
    both a file and a directory, kept for those requests (_Overlay leaves them to this)."""
    with tempfile.TemporaryDirectory(prefix="gitlab-commit-") as scratch:
        env = git_env({"GIT_INDEX_FILE": os.path.join(scratch, "index")})

        def run(*args: str, data: bytes | None = None) -> str:
            proc = subprocess.run(
                ["git", "--git-dir", str(p.bare), *args],
                input=data,
                capture_output=True,
                env=env,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace')}")
            return proc.stdout.decode()

        run("read-tree", *([start] if start else ["--empty"]))
        files: dict[str, tuple[str, str]] = {}
        for line in run("ls-files", "-s", "-z").split("\0"):
            if line:
                meta, path = line.split("\t", 1)
                mode, blob, _ = meta.split(" ")
                files[path] = (mode, blob)
        for action in actions:
            _apply_to_files(action, files, run)
        run("read-tree", "--empty")
        listing = "".join(f"{mode} {blob}\t{path}\0" for path, (mode, blob) in files.items())
        run("update-index", "--add", "-z", "--index-info", data=listing.encode())
        return run("write-tree").strip()


def _apply_to_files(
    action: Action, files: dict[str, tuple[str, str]], run: Callable[..., str]
) -> None:
    path = _check_path(action.path)
    directories = {d for f in files for d in _parents(f)}

    def blob(data: bytes | None) -> str:
        return run("hash-object", "-w", "--stdin", data=data or b"").strip()

    def mode(executable: bool | None, old: str = "100644") -> str:
        return old if executable is None else "100755" if executable else "100644"

    if action.kind == "create":
        if path in files:
            raise Refused("A file with this name already exists")
        if path in directories:
            raise Refused("A directory with this name already exists")
        files[path] = (mode(action.executable), blob(action.content))
        return
    if action.kind == "move":
        previous = _check_path(action.previous or "")
        if previous not in files:
            raise Refused("A file with this name doesn't exist")
        if path in files:
            raise Refused("A file with this name already exists")
        old_mode, old_blob = files.pop(previous)
        data = blob(action.content) if action.content is not None else old_blob
        files[path] = (old_mode, data)
        return
    if path not in files:
        raise Refused("A file with this name doesn't exist")
    old_mode, old_blob = files[path]
    if action.kind == "delete":
        del files[path]
    elif action.kind == "update":
        files[path] = (old_mode, blob(action.content))
    else:  # chmod
        files[path] = (mode(action.executable, old_mode), old_blob)


_TREE_MODE = "40000"


class _Overlay:
    """A commit's tree as the actions see it: a file is any entry that is not a tree (blobs,
    links, submodules), a directory a tree holding at least one. Directories are read from the
    start point when first walked into (one `git cat-file --batch`), changed in memory (a
    directory left empty disappears, as git writes no empty tree), and the changed ones are
    written back bottom-up: tree objects built and hashed (SHA-1) here, stored by one `git
    hash-object -w -t tree --stdin-paths`, whose ids are checked against ours. A path that
    would be both a file and a directory raises _Conflict: the request is then made again the
    whole-index way (_tree_by_index), whose answers to those it keeps."""

    def __init__(self, p: Project, start: str | None) -> None:
        self.p = p
        root = git(p.bare, "rev-parse", f"{start}^{{tree}}").stdout.strip() if start else ""
        self._start: dict[str, str] = {"": root} if root else {}  # directory → its tree at start
        self._dirs: dict[str, dict[str, tuple[str, str]]] = {}  # directory → name → (mode, id)
        self._dirty: set[str] = set()
        self._cat: subprocess.Popen[bytes] | None = None

    def close(self) -> None:
        if self._cat is not None:
            assert self._cat.stdin is not None
            self._cat.stdin.close()
            self._cat.wait()

    def _read(self, oid: str) -> dict[str, tuple[str, str]]:
        if self._cat is None:
            self._cat = subprocess.Popen(
                ["git", "--git-dir", str(self.p.bare), "cat-file", "--batch"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=git_env(),
            )  # fmt: skip
        assert self._cat.stdin is not None and self._cat.stdout is not None
        self._cat.stdin.write(f"{oid}\n".encode())
        self._cat.stdin.flush()
        header = self._cat.stdout.readline().split()
        if len(header) != 3 or header[1] != b"tree":
            raise RuntimeError(f"git cat-file: {oid} is not a tree")
        data = self._cat.stdout.read(int(header[2]) + 1)[:-1]
        entries: dict[str, tuple[str, str]] = {}
        at = 0
        while at < len(data):
            space = data.index(b" ", at)
            nul = data.index(b"\0", space)
            name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
            entries[name] = (data[at:space].decode(), data[nul + 1 : nul + 21].hex())
            at = nul + 21
        return entries

    def _entries(self, directory: str) -> dict[str, tuple[str, str]]:
        if directory not in self._dirs:
            oid = self._start.get(directory)
            self._dirs[directory] = self._read(oid) if oid else {}
        return self._dirs[directory]

    def _walk(self, directory: str) -> dict[str, tuple[str, str]] | None:
        """The entries of `directory`, None when it is no directory."""
        here = ""
        for part in directory.split("/") if directory else []:
            found = self._entries(here).get(part)
            if found is None or found[0] != _TREE_MODE:
                return None
            here = f"{here}/{part}" if here else part
            self._start.setdefault(here, found[1])
        return self._entries(here)

    def get(self, path: str) -> tuple[str, str] | None:
        parent, _, name = path.rpartition("/")
        found = (self._walk(parent) or {}).get(name)
        return None if found is None or found[0] == _TREE_MODE else found

    def is_dir(self, path: str) -> bool:
        parent, _, name = path.rpartition("/")
        found = (self._walk(parent) or {}).get(name)
        return found is not None and found[0] == _TREE_MODE

    def put(self, path: str, mode: str, oid: str) -> None:
        here = ""
        for part in path.split("/")[:-1]:
            entries = self._entries(here)
            below = f"{here}/{part}" if here else part
            found = entries.get(part)
            if found is None:
                entries[part] = (_TREE_MODE, "")  # a new directory; its id is written later
                self._dirs[below] = {}
            elif found[0] != _TREE_MODE:
                raise _Conflict(below)
            else:
                self._start.setdefault(below, found[1])
            self._dirty.add(here)
            here = below
        name = path.rpartition("/")[2]
        entries = self._entries(here)
        if entries.get(name, ("", ""))[0] == _TREE_MODE:
            raise _Conflict(path)
        entries[name] = (mode, oid)
        self._dirty.add(here)

    def remove(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        self._entries(parent).pop(name)
        self._dirty.add(parent)
        while parent and not self._entries(parent):  # an empty directory is no directory
            up, _, leaf = parent.rpartition("/")
            self._entries(up).pop(leaf)
            self._dirty.add(up)
            parent = up
        for directory in _parents(path) or [""]:
            self._dirty.add(directory)

    def blob(self, data: bytes | None) -> str:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.p.bare), "hash-object", "-w", "--stdin"],
            input=data or b"", capture_output=True, env=git_env(), check=True,
        )  # fmt: skip
        return proc.stdout.decode().strip()

    def write(self) -> str:
        """Write the changed directories (deepest first) and return the root tree's id."""
        dirty = self._dirty | {"", *(d for path in self._dirty for d in _parents(path + "/x"))}
        made: dict[str, bytes] = {}
        for directory in sorted(dirty, key=lambda d: -d.count("/") - bool(d)):
            entries = self._entries(directory)
            for name, (mode, _) in list(entries.items()):
                if mode == _TREE_MODE:
                    below = f"{directory}/{name}" if directory else name
                    if below in made or below in dirty:
                        entries[name] = (mode, self._oid_of(made, below))
            body = b"".join(
                f"{mode} {name}".encode("utf-8", "surrogateescape") + b"\0" + bytes.fromhex(oid)
                for name, (mode, oid) in sorted(entries.items(), key=_git_order)
            )
            made[directory] = body
        with tempfile.TemporaryDirectory(prefix="gitlab-commit-") as scratch:
            files = []
            for i, (_, body) in enumerate(made.items()):
                name = os.path.join(scratch, str(i))
                with open(name, "wb") as out:
                    out.write(body)
                files.append(name)
            proc = subprocess.run(
                ["git", "--git-dir", str(self.p.bare), "hash-object", "-w", "-t", "tree",
                 "--stdin-paths"],
                input="".join(f + "\n" for f in files).encode(), capture_output=True,
                env=git_env(), check=False,
            )  # fmt: skip
        written = proc.stdout.decode().split()
        ours = [_tree_id(body) for body in made.values()]
        if proc.returncode != 0 or written != ours:
            raise RuntimeError(f"git hash-object failed: {proc.stderr.decode(errors='replace')}")
        return ours[list(made).index("")]

    def _oid_of(self, made: dict[str, bytes], directory: str) -> str:
        return _tree_id(made[directory])


def _git_order(item: tuple[str, tuple[str, str]]) -> bytes:
    """Git's order of tree entries: by name, a tree's name compared as if it ended in '/'."""
    name, (mode, _) = item
    return (name + "/" if mode == _TREE_MODE else name).encode("utf-8", "surrogateescape")


def _tree_id(body: bytes) -> str:
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _commit_tree(
    p: Project,
    tree: str,
    parent: str | None,
    message: str,
    author: tuple[Any, Any],
    committer: tuple[str, str],
    when: datetime,
) -> str:
    date = f"@{int(when.timestamp())} +0000"
    env = git_env(
        {
            "GIT_AUTHOR_NAME": str(author[0]),
            "GIT_AUTHOR_EMAIL": str(author[1]),
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": committer[0],
            "GIT_COMMITTER_EMAIL": committer[1],
            "GIT_COMMITTER_DATE": date,
        }
    )
    proc = subprocess.run(
        ["git", "--git-dir", str(p.bare), "commit-tree", tree, *(["-p", parent] if parent else [])],
        input=message.encode(),
        capture_output=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git commit-tree failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode().strip()


# -- the description's quirk on this endpoint (applied by gitlab_quirks.GITLAB_QUIRKS) ------------

_CREATE_COMMIT = "/api/v4/projects/{id}/repository/commits"
_MULTIPART = {"$ref": "#/components/schemas/RequestBody_2ce858a8cd90"}
_STRING = {"type": "string"}
_BOOLEAN = {"type": "boolean"}


def commit_create_takes_json_actions(document: dict[str, Any]) -> None:
    """`POST /projects/:id/repository/commits` takes a JSON body with `actions` and answers 201.

    Description: its request body is `multipart/form-data` with one required binary `file`
    (RequestBody_2ce858a8cd90, "generated by Multipart middleware": the generator's rendering of
    grape's `Array` of hashes), and its only success is 200. GitLab: the endpoint takes the
    parameters lib/api/commits.rb declares (`branch`, `commit_message`, `actions` required;
    `start_branch`, `start_sha`, `start_project`, `author_email`, `author_name`, `stats`,
    `force`), as JSON (the API docs' example and python-gitlab send JSON), each action with
    `action` one of create, update, move, delete, chmod, `file_path`, `previous_path`,
    `content`, `encoding` text or base64, `last_commit_id`, `execute_filemode`; and, as every
    grape POST, answers 201 Created with the CommitDetail entity. Why: as written, no request
    that creates a commit validates, so a strict double could not serve the api path
    (`--commit-via api`); the schema below is that parameter list, nothing more (grape's
    per-action conditions, e.g. `content` required for update, are checked by the handler).
    """
    operation = document["paths"][_CREATE_COMMIT]["post"]
    content = operation["requestBody"]["content"]
    if (
        set(content) != {"multipart/form-data"}
        or content["multipart/form-data"].get("schema") != _MULTIPART
    ):
        raise _quirk_gone(f"POST {_CREATE_COMMIT}: expected the multipart `file` body")
    responses = operation["responses"]
    if "201" in responses or "200" not in responses:
        raise _quirk_gone(f"POST {_CREATE_COMMIT}: expected a 200 and no 201")
    action = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": list(ACTIONS)},
            "file_path": _STRING,
            "previous_path": _STRING,
            "content": _STRING,
            "encoding": {"type": "string", "enum": ["text", "base64"], "default": "text"},
            "last_commit_id": _STRING,
            "execute_filemode": _BOOLEAN,
        },
        "required": ["action", "file_path"],
        "additionalProperties": False,
    }
    body = {
        "type": "object",
        "properties": {
            "branch": _STRING,
            "commit_message": _STRING,
            "actions": {"type": "array", "items": action},
            "start_branch": _STRING,
            "start_sha": _STRING,
            "start_project": {"oneOf": [{"type": "integer"}, _STRING]},
            "author_email": _STRING,
            "author_name": _STRING,
            "stats": {"type": "boolean", "default": True},
            "force": {"type": "boolean", "default": False},
        },
        "required": ["branch", "commit_message", "actions"],
    }
    content.clear()
    content["application/json"] = {"schema": body}
    responses["201"] = responses.pop("200")


def tree_list_is_an_array(document: dict[str, Any]) -> None:
    """GET /projects/:id/repository/tree answers an array of tree entries.

    Description: its 200 response schema is `$ref: APIEntitiesTreeObject`, one entry. GitLab:
    the endpoint is paginated and returns a JSON array of entries (API docs "List repository
    tree"; `present paginate(tree), with: Entities::TreeObject`). Why: as for labels and
    notes (gitlab_quirks.py), a list endpoint answers an array; the api path reads a pinned
    file's mode from it.
    """
    from promoter.sandbox.gitlab_quirks import _as_array

    path = "/api/v4/projects/{id}/repository/tree"
    operation = document["paths"][path]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    _as_array(schema, "#/components/schemas/APIEntitiesTreeObject", f"GET {path} 200")


def _quirk_gone(message: str) -> Exception:
    from promoter.sandbox.gitlab_quirks import QuirkGone

    return QuirkGone(message)
