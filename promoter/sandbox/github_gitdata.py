"""Git objects of the bare repos as GitHub's REST API shows them: commits (with their changed
files), refs, branches, contents and comparisons. Everything is read from git itself; only the
JSON framing is GitHub's (schemas `commit`, `git-ref`, `short-branch`, `content-file`, ...)."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promoter.sandbox.envrepo import git_env, git_out
from promoter.sandbox.github_render import Json, Urls
from promoter.sandbox.github_store import RepoState, node_id

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_STATUS = {"A": "added", "D": "removed", "M": "modified", "T": "changed"}


def run(
    path: Path, *args: str, data: bytes | None = None, env: dict[str, str] | None = None
) -> str:
    """stdout of git in the bare repo; '' when git fails (callers treat that as 'not there')."""
    proc = subprocess.run(
        ["git", "--git-dir", str(path), *args],
        input=data,
        capture_output=True,
        env=git_env(env),
        check=False,
    )
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""


def _utc(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author: Json
    committer: Json
    message: str


_LOG_FORMAT = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x1e"


def read_commit(path: Path, sha: str) -> CommitInfo:
    return log_commits(path, "-1", sha, "--")[0]


def log_commits(path: Path, *args: str) -> list[CommitInfo]:
    """`git log <args>` as CommitInfo records, in one git call."""
    out = run(path, "log", f"--format={_LOG_FORMAT}", *args)
    return [_commit_info(record.lstrip("\n")) for record in out.split("\x1e") if record.strip()]


def _commit_info(record: str) -> CommitInfo:
    fields = record.split("\0")
    name, email, when, cname, cemail, cwhen = fields[3:9]
    return CommitInfo(
        sha=fields[0],
        tree=fields[1],
        parents=fields[2].split(),
        author={"name": name, "email": email, "date": _utc(when)},
        committer={"name": cname, "email": cemail, "date": _utc(cwhen)},
        message=fields[9].rstrip("\n"),
    )


def commit_json(
    u: Urls, repo: RepoState, sha: str, *, files: bool = True, info: CommitInfo | None = None
) -> Json:
    """Schema `commit`; author/committer are null: no GitHub account owns the sandbox's emails
    (GitHub answers null too when it cannot match a commit's email to a user)."""
    c = info or read_commit(repo.path, sha)
    a = f"{u.api}/repos/{repo.name}"
    out: Json = {
        "url": f"{a}/commits/{c.sha}",
        "sha": c.sha,
        "node_id": node_id("C", f"{repo.name}@{c.sha}"),
        "html_url": f"{u.web}/{repo.name}/commit/{c.sha}",
        "comments_url": f"{a}/commits/{c.sha}/comments",
        "commit": {
            "url": f"{a}/git/commits/{c.sha}",
            "author": c.author,
            "committer": c.committer,
            "message": c.message,
            "tree": {"sha": c.tree, "url": f"{a}/git/trees/{c.tree}"},
            "comment_count": 0,
            # GitHub signs what it commits itself (web UI, createCommitOnBranch): "Verified".
            "verification": _verified(c)
            if c.committer["email"] == "noreply@github.com"
            else _unsigned(),
        },
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{a}/commits/{p}", "html_url": f"{u.web}/{repo.name}/commit/{p}"}
            for p in c.parents
        ],
    }
    if files:
        changed = diff_files(u, repo, c.parents[0] if c.parents else EMPTY_TREE, c.sha)
        additions = sum(f["additions"] for f in changed)
        deletions = sum(f["deletions"] for f in changed)
        out["stats"] = {
            "total": additions + deletions,
            "additions": additions,
            "deletions": deletions,
        }
        out["files"] = changed
    return out


def _verified(c: CommitInfo) -> Json:
    return {"verified": True, "reason": "valid", "signature": None, "payload": None,
            "verified_at": c.committer["date"]}  # fmt: skip


def _unsigned() -> Json:
    return {
        "verified": False,
        "reason": "unsigned",
        "signature": None,
        "payload": None,
        "verified_at": None,
    }


def diff_files(u: Urls, repo: RepoState, old: str, new: str) -> list[Json]:
    """Schema `diff-entry` for each file that differs between two commits (or trees)."""
    raw = run(repo.path, "diff-tree", "-r", "-z", "--no-renames", "--raw", old, new).split("\0")
    numstat = run(repo.path, "diff-tree", "-r", "-z", "--no-renames", "--numstat", old, new)
    counts: dict[str, tuple[int, int]] = {}
    for entry in numstat.split("\0"):
        plus, _, rest = entry.partition("\t")
        minus, _, name = rest.partition("\t")
        if name:  # binary files count "-": GitHub reports 0 changes for them
            counts[name] = (
                int(plus) if plus.isdigit() else 0,
                int(minus) if minus.isdigit() else 0,
            )
    a = f"{u.api}/repos/{repo.name}"
    out: list[Json] = []
    for meta, name in zip(raw[0::2], raw[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        _, _, _, blob_new, letter = meta[1:].split(" ")
        blob = blob_new if letter != "D" else meta.split(" ")[2]
        added, removed = counts.get(name, (0, 0))
        at = new if letter != "D" else old
        out.append(
            {
                "sha": blob,
                "filename": name,
                "status": _STATUS.get(letter[:1], "changed"),
                "additions": added,
                "deletions": removed,
                "changes": added + removed,
                "blob_url": f"{u.web}/{repo.name}/blob/{at}/{name}",
                "raw_url": f"{u.web}/{repo.name}/raw/{at}/{name}",
                "contents_url": f"{a}/contents/{name}?ref={at}",
            }
        )
    return out


def ref_json(u: Urls, repo: RepoState, ref: str, sha: str) -> Json:
    """Schema `git-ref` for a full ref name (refs/heads/main)."""
    a = f"{u.api}/repos/{repo.name}"
    kind = run(repo.path, "cat-file", "-t", sha).strip() or "commit"
    return {
        "ref": ref,
        "node_id": node_id("REF", f"{repo.name}:{ref}"),
        "url": f"{a}/git/{ref}",
        "object": {"sha": sha, "type": kind, "url": f"{a}/git/{kind}s/{sha}"},
    }


def read_ref(path: Path, ref: str) -> str | None:
    """The object a full ref name points at (exactly that ref, no DWIM)."""
    if not ref.startswith("refs/"):
        return None
    return run(path, "show-ref", "--verify", "--hash", ref).strip() or None


def branches(path: Path) -> list[tuple[str, str]]:
    out = run(path, "for-each-ref", "--format=%(refname:strip=2)%00%(objectname)", "refs/heads/")
    return [tuple(line.split("\0", 1)) for line in out.splitlines() if "\0" in line]  # type: ignore[misc]


def short_branch(u: Urls, repo: RepoState, name: str, sha: str) -> Json:
    return {
        "name": name,
        "commit": {"sha": sha, "url": f"{u.api}/repos/{repo.name}/commits/{sha}"},
        "protected": False,
    }


def branch_json(u: Urls, repo: RepoState, name: str, sha: str) -> Json:
    """Schema `branch-with-protection`: the sandbox protects no branch."""
    a = f"{u.api}/repos/{repo.name}/branches/{name}"
    return {
        "name": name,
        "commit": commit_json(u, repo, sha, files=False),
        "_links": {"self": a, "html": f"{u.web}/{repo.name}/tree/{name}"},
        "protected": False,
        "protection": {
            "enabled": False,
            "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
        },
        "protection_url": f"{a}/protection",
    }


# --- contents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    mode: str
    kind: str  # blob | tree | commit
    sha: str
    size: int
    path: str


def tree_entry(path: Path, commit: str, file_path: str) -> Entry | None:
    """The tree entry at file_path in commit; the root tree for ''."""
    if not file_path:
        tree = run(path, "rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}").strip()
        return Entry("040000", "tree", tree, 0, "") if tree else None
    line = run(path, "ls-tree", "-l", "-z", "--full-tree", commit, "--", file_path).rstrip("\0")
    return _entry(line) if line else None


def _entry(line: str) -> Entry:
    meta, _, name = line.partition("\t")
    mode, kind, sha, size = meta.split()
    return Entry(mode, kind, sha, int(size) if size.isdigit() else 0, name)


def list_tree(path: Path, commit: str, dir_path: str) -> list[Entry]:
    spec = f"{commit}:{dir_path}" if dir_path else f"{commit}^{{tree}}"
    out = run(path, "ls-tree", "-l", "-z", spec)
    entries = [_entry(line) for line in out.split("\0") if line]
    prefix = f"{dir_path}/" if dir_path else ""
    return [Entry(e.mode, e.kind, e.sha, e.size, prefix + e.path) for e in entries]


def content_json(u: Urls, repo: RepoState, ref: str, entry: Entry, *, body: bool) -> Json:
    """Schema `content-file` (with base64 `content` when body) or a `content-directory` item."""
    a = f"{u.api}/repos/{repo.name}"
    kind = {"tree": "dir", "commit": "submodule"}.get(entry.kind, "file")
    if entry.mode == "120000":
        kind = "symlink"
    self_url = f"{a}/contents/{entry.path}?ref={ref}"
    html = f"{u.web}/{repo.name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{entry.path}"
    git_url = f"{a}/git/{'trees' if kind == 'dir' else 'blobs'}/{entry.sha}"
    out: Json = {
        "name": entry.path.rsplit("/", 1)[-1],
        "path": entry.path,
        "sha": entry.sha,
        "size": entry.size,
        "url": self_url,
        "html_url": html,
        "git_url": git_url,
        "download_url": f"{u.web}/{repo.name}/raw/{ref}/{entry.path}" if kind == "file" else None,
        "type": kind,
        "_links": {"self": self_url, "git": git_url, "html": html},
    }
    if body and kind == "file":
        data = blob_bytes(repo.path, entry.sha)
        out["content"] = _wrapped_base64(data)
        out["encoding"] = "base64"
    return out


def blob_bytes(path: Path, sha: str) -> bytes:
    proc = subprocess.run(
        ["git", "--git-dir", str(path), "cat-file", "blob", sha],
        capture_output=True,
        env=git_env(),
        check=False,
    )
    return proc.stdout


def _wrapped_base64(data: bytes) -> str:
    # GitHub wraps the base64 text at 60 characters, each line ending in "\n".
    text = base64.b64encode(data).decode()
    return "".join(text[i : i + 60] + "\n" for i in range(0, len(text), 60))


def commit_file(
    path: Path,
    parent: str,
    file_path: str,
    data: bytes | None,
    message: str,
    identity: dict[str, str],
) -> str:
    """A new commit on top of parent with file_path set to data (None: removed)."""
    tree = edit_tree(path, parent, {file_path: data})
    return run(path, "commit-tree", tree, "-p", parent, "-m", message, env=identity).strip()


def edit_tree(path: Path, commit: str, files: Mapping[str, bytes | None]) -> str:
    """The tree of `commit` with `files` written as plain 100644 files (None: removed), built
    as a forge builds it: only the trees along the changed paths are read and written (one
    `ls-tree` and one `mktree` each), never the whole tree; a directory left empty goes."""
    changes: dict[str, Any] = {}
    for file_path, data in files.items():
        *dirs, name = file_path.split("/")
        node = changes
        for part in dirs:
            node = node.setdefault(part, {})
        node[name] = data
    built = _edit(path, f"{commit}^{{tree}}", changes)
    return built if built is not None else git_out(path, "mktree", stdin=b"").decode().strip()


def _edit(path: Path, tree: str | None, changes: Mapping[str, Any]) -> str | None:
    """`tree` (None: none yet) with `changes` (name → bytes, None, or a nested mapping)
    applied; None when nothing is left in it."""
    entries: dict[bytes, tuple[bytes, bytes, bytes]] = {}  # name → (mode, type, id)
    if tree is not None:
        for line in git_out(path, "ls-tree", "-z", tree).split(b"\0"):
            if line:
                meta, _, listed = line.partition(b"\t")
                mode, kind, oid = meta.split()
                entries[listed] = (mode, kind, oid)
    for name, change in changes.items():
        key = name.encode("utf-8", "surrogateescape")
        if isinstance(change, Mapping):
            mode, kind, oid = entries.get(key, (b"", b"", b""))
            sub = _edit(path, oid.decode() if kind == b"tree" else None, change)
            if sub is None:
                entries.pop(key, None)
            else:
                entries[key] = (b"040000", b"tree", sub.encode())
        elif change is None:
            entries.pop(key, None)
        else:
            blob = git_out(path, "hash-object", "-w", "--stdin", stdin=change).strip()
            entries[key] = (b"100644", b"blob", blob)
    if not entries:
        return None
    listing = b"".join(b"%s %s %s\t%s\0" % (*entry, key) for key, entry in entries.items())
    return git_out(path, "mktree", "-z", stdin=listing).decode().strip()
