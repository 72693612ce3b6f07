"""What the GitLab double answers about the repository itself: the project, its branches and
commits, files and comparisons, all read from the real bare repository. Shapes follow GitLab's
entities (API::Entities::Project, Branch, Commit, CommitDetail, Compare, Diff); absent values are
omitted rather than null, as in gitlab_routes.py.

`RepositoryRoutes` is a base of GitLabState (through gitlab_commits.CommitRoutes), so
gitlab_http's table names these handlers like the others."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from collections.abc import Callable
from datetime import datetime
from typing import Any

from promoter.sandbox.envrepo import git_env
from promoter.sandbox.gitlab_store import Call, Project, Reply, error, git, resolve_commit, stamp
from promoter.sandbox.gitserver import GitHttpServer

_FORMAT = "%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x1e"
_HUNK = re.compile(r"^@@ ", re.MULTILINE)


def _ms(iso: str) -> str:
    # git's strict ISO dates (2026-01-02T03:04:05+00:00) in GitLab's form (...05.000+00:00).
    return iso[:19] + ".000" + iso[19:] if len(iso) > 19 else iso


class RepositoryRoutes:
    git_server: GitHttpServer
    clock: Callable[[], datetime]

    def user(self, base: str, uid: int = 1) -> dict[str, Any]:
        raise NotImplementedError

    # -- rendering ---------------------------------------------------------------------------
    # fmt: off

    def render_project(self, p: Project, base: str) -> dict[str, Any]:
        api = f"{base}/api/v4/projects/{p.id}"
        group, _, name = p.path.rpartition("/")
        web = f"{base}/{p.path}"
        default = _default_branch(p)
        return {
            "id": p.id, "description": "", "name": name, "name_with_namespace":
            f"{group} / {name}" if group else name, "path": name, "path_with_namespace": p.path,
            "created_at": stamp(p.created_at), "default_branch": default, "tag_list": [],
            "topics": [], "ssh_url_to_repo": f"git@{base.split('://', 1)[-1]}:{p.path}.git",
            "http_url_to_repo": self.git_server.repo_url(p.path), "web_url": web,
            "forks_count": 0, "star_count": 0, "last_activity_at": stamp(self.clock()),
            "visibility": "private", "empty_repo": _branches(p) == [], "archived": False,
            "namespace": {"id": p.id, "name": group or name, "path": group or name,
                          "kind": "group", "full_path": group or name,
                          "web_url": f"{base}/groups/{group or name}"},
            "_links": {"self": api, "issues": f"{api}/issues",
                       "merge_requests": f"{api}/merge_requests",
                       "repo_branches": f"{api}/repository/branches", "labels": f"{api}/labels",
                       "events": f"{api}/events", "members": f"{api}/members",
                       "cluster_agents": f"{api}/cluster_agents"},
            "issues_enabled": True, "merge_requests_enabled": True, "jobs_enabled": True,
            "wiki_enabled": False, "snippets_enabled": False, "lfs_enabled": False,
            "merge_method": "merge", "squash_option": "default_off",
            "only_allow_merge_if_pipeline_succeeds": False,
            "only_allow_merge_if_all_discussions_are_resolved": False,
            "remove_source_branch_after_merge": True, "open_issues_count": 0, "creator_id": 1,
            # No `permissions`: GitLab sends access levels as integers, its description types
            # them as strings, and a strict double can only leave the field out.
        }

    def render_commit(
        self, p: Project, sha: str, base: str, fields: list[str] | None = None
    ) -> dict[str, Any]:
        fields = fields or _log(p, "-1", sha, "--")[0]
        message = fields[8]
        return {
            "id": fields[0], "short_id": fields[0][:8], "created_at": _ms(fields[7]),
            "parent_ids": fields[1].split(), "title": message.split("\n", 1)[0],
            "message": message, "author_name": fields[2], "author_email": fields[3],
            "authored_date": _ms(fields[4]), "committer_name": fields[5],
            "committer_email": fields[6], "committed_date": _ms(fields[7]), "trailers": {},
            "extended_trailers": {}, "web_url": f"{base}/{p.path}/-/commit/{fields[0]}",
        }

    def render_branch(self, p: Project, name: str, sha: str, base: str) -> dict[str, Any]:
        return {
            "name": name, "commit": self.render_commit(p, sha, base), "merged": False,
            "protected": False, "developers_can_push": False, "developers_can_merge": False,
            "can_push": True, "default": name == _default_branch(p),
            "web_url": f"{base}/{p.path}/-/tree/{name}",
        }

    # fmt: on
    # -- handlers ----------------------------------------------------------------------------

    def get_project(self, p: Project, call: Call) -> Reply:
        return Reply(200, self.render_project(p, call.base))

    def list_branches(self, p: Project, call: Call) -> Reply:
        search = call.q("search")
        found = [(n, s) for n, s in _branches(p) if search is None or search in n]
        body = [self.render_branch(p, n, s, call.base) for n, s in found]
        return Reply(200, body, paginate=True)

    def get_branch(self, p: Project, call: Call) -> Reply:
        name = call.params["branch"]
        sha = dict(_branches(p)).get(name)
        if sha is None:
            return error(404, "404 Branch Not Found")
        return Reply(200, self.render_branch(p, name, sha, call.base))

    def list_commits(self, p: Project, call: Call) -> Reply:
        """Newest first from ref_name (default branch), filtered as GitLab filters."""
        args = [f"--{k}={call.q(k)}" for k in ("since", "until", "author") if call.q(k)]
        args += ["--first-parent"] if call.q("first_parent") == "true" else []
        args += ["--topo-order"] if call.q("order") == "topo" else []
        if call.q("all") == "true":
            args.append("--all")
        else:
            start = resolve_commit(p.bare, call.q("ref_name") or _default_branch(p))
            if start is None:
                return Reply(200, [], paginate=True)  # GitLab lists nothing for an unknown ref
            args.append(start)
        path = call.q("path")
        if path and call.q("follow") == "true":
            args.insert(0, "--follow")
        found = _log(p, *args, "--", *([path] if path else []))
        body = [self.render_commit(p, f[0], call.base, f) for f in found]
        if call.q("with_stats") == "true":
            for item in body:
                parent = item["parent_ids"][0] if item["parent_ids"] else _EMPTY_TREE
                added, removed = _numstat(p, parent, item["id"])
                item["stats"] = {"additions": added, "deletions": removed, "total": added + removed}
        return Reply(200, body, paginate=True)

    def create_branch(self, p: Project, call: Call) -> Reply:
        name, ref = str(call.body.get("branch") or ""), str(call.body.get("ref") or "")
        sha = resolve_commit(p.bare, ref) if ref else None
        if sha is None:
            return Reply(400, {"message": "Invalid reference name: " + ref})
        valid = git(p.bare, "check-ref-format", f"refs/heads/{name}").returncode == 0
        if not name or not valid:
            return Reply(400, {"message": "Branch name is invalid"})
        # An all-zero old value: the ref is created only if it does not exist yet.
        if git(p.bare, "update-ref", f"refs/heads/{name}", sha, "0" * 40).returncode != 0:
            return Reply(400, {"message": "Branch already exists"})
        return Reply(201, self.render_branch(p, name, sha, call.base))

    def delete_branch(self, p: Project, call: Call) -> Reply:
        name = call.params["branch"]
        sha = dict(_branches(p)).get(name)
        if sha is None:
            return error(404, "404 Branch Not Found")
        if name == _default_branch(p):
            return Reply(400, {"message": "The default branch of a project cannot be deleted."})
        git(p.bare, "update-ref", "-d", f"refs/heads/{name}", sha)
        return Reply(204)

    def get_commit(self, p: Project, call: Call) -> Reply:
        sha = resolve_commit(p.bare, call.params["sha"])
        if sha is None:
            return error(404, "404 Commit Not Found")
        body = self.render_commit(p, sha, call.base)
        parent = body["parent_ids"][0] if body["parent_ids"] else _EMPTY_TREE
        if call.q("stats") != "false":
            added, removed = _numstat(p, parent, sha)
            body["stats"] = {"additions": added, "deletions": removed, "total": added + removed}
        latest = p.latest_statuses(sha)
        if latest:
            body["status"] = latest[0].status
        body["project_id"] = p.id
        return Reply(200, body)

    def get_file(self, p: Project, call: Call) -> Reply:
        found = _blob(p, call)
        if isinstance(found, Reply):
            return found
        commit, path, blob, data = found
        last = git(p.bare, "log", "-1", "--format=%H", commit, "--", f":(literal){path}").stdout
        last = last.strip()
        return Reply(
            200,
            {
                "file_name": path.rsplit("/", 1)[-1],
                "file_path": path,
                "size": len(data),
                "encoding": "base64",
                "content_sha256": hashlib.sha256(data).hexdigest(),
                "ref": call.q("ref"),
                "blob_id": blob,
                "commit_id": commit,
                "last_commit_id": last,
                "execute_filemode": False,
                "content": base64.b64encode(data).decode(),
            },
        )

    def get_file_raw(self, p: Project, call: Call) -> Reply:
        """The file's bytes as they are (Content-Type text/plain, as GitLab sends a blob)."""
        found = _blob(p, call)
        if isinstance(found, Reply):
            return found
        commit, path, blob, data = found
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "X-Gitlab-Blob-Id": blob,
            "X-Gitlab-Commit-Id": commit,
            "X-Gitlab-File-Path": path,
            "X-Gitlab-Size": str(len(data)),
        }
        return Reply(200, data, headers)

    def list_tree(self, p: Project, call: Call) -> Reply:
        """GET /repository/tree: the entries of `path` (the root by default) at `ref` (the
        default branch by default), as `git ls-tree` lists them, one page at a time. A path
        that is not a directory there is a 404, as GitLab (Gitaly) answers it."""
        commit = resolve_commit(p.bare, call.q("ref") or _default_branch(p))
        if commit is None:
            return error(404, "404 Tree Not Found")
        path = (call.q("path") or "").strip("/")
        if path and git(p.bare, "cat-file", "-t", f"{commit}:{path}").stdout.strip() != "tree":
            return error(404, "404 invalid revision or path Not Found")
        recursive = ["-r", "-t"] if call.q("recursive") == "true" else []
        listed = git(
            p.bare, "ls-tree", "-z", *recursive, commit, "--", *([f"{path}/"] if path else [])
        )
        body = []
        for entry in listed.stdout.split("\0"):
            if not entry:
                continue
            meta, entry_path = entry.split("\t", 1)
            mode, kind, oid = meta.split(" ")
            body.append({"id": oid, "name": entry_path.rsplit("/", 1)[-1], "type": kind,
                         "path": entry_path, "mode": mode.zfill(6)})  # fmt: skip
        return Reply(200, body, paginate=True)

    def compare(self, p: Project, call: Call) -> Reply:
        start, end = (resolve_commit(p.bare, call.q(k) or "") for k in ("from", "to"))
        if start is None or end is None:
            return error(404, "404 Ref Not Found")
        if call.q("straight") != "true":
            start = git(p.bare, "merge-base", start, end).stdout.strip() or start
        shas = git(p.bare, "rev-list", "--reverse", f"{start}..{end}", "--").stdout.split()
        commits = [self.render_commit(p, sha, call.base) for sha in shas]
        body: dict[str, Any] = {
            "commits": commits,
            "diffs": _diffs(p, start, end),
            "compare_timeout": False,
            "compare_same_ref": call.q("from") == call.q("to"),
            "web_url": f"{call.base}/{p.path}/-/compare/{call.q('from')}...{call.q('to')}",
        }
        if commits:
            body["commit"] = commits[-1]
        return Reply(200, body)


_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _log(p: Project, *args: str) -> list[list[str]]:
    out = git(p.bare, "log", f"--format={_FORMAT}", *args).stdout
    return [r.lstrip("\n").split("\0") for r in out.split("\x1e") if r.strip()]


def _default_branch(p: Project) -> str:
    return git(p.bare, "symbolic-ref", "--short", "HEAD").stdout.strip() or "main"


def _branches(p: Project) -> list[tuple[str, str]]:
    out = git(p.bare, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads/")
    return [
        (name, sha)
        for name, _, sha in (line.rpartition(" ") for line in out.stdout.split("\n"))
        if name
    ]


def _blob(p: Project, call: Call) -> tuple[str, str, str, bytes] | Reply:
    path = call.params["file_path"]
    commit = resolve_commit(p.bare, call.q("ref") or _default_branch(p))
    if commit is None:
        return error(404, "404 Commit Not Found")
    listed = git(p.bare, "ls-tree", "--full-tree", commit, "--", path).stdout.split()
    if len(listed) < 3 or listed[1] != "blob":
        return error(404, "404 File Not Found")
    blob = listed[2]
    data = git_bytes(p, "cat-file", "blob", blob)
    return commit, path, blob, data


def git_bytes(p: Project, *args: str) -> bytes:
    proc = subprocess.run(
        ["git", "--git-dir", str(p.bare), *args], capture_output=True, env=git_env(), check=False
    )
    return proc.stdout


def commit_stats(p: Project, parent: str | None, sha: str) -> dict[str, int]:
    """API::Entities::CommitStats of `sha` against `parent` (the empty tree for a root)."""
    added, removed = _numstat(p, parent or _EMPTY_TREE, sha)
    return {"additions": added, "deletions": removed, "total": added + removed}


def _numstat(p: Project, old: str, new: str) -> tuple[int, int]:
    added = removed = 0
    out = git(p.bare, "diff-tree", "-r", "--no-renames", "--numstat", old, new).stdout
    for line in out.splitlines():
        plus, minus, _ = line.split("\t", 2)
        added += int(plus) if plus.isdigit() else 0
        removed += int(minus) if minus.isdigit() else 0
    return added, removed


def _diffs(p: Project, old: str, new: str) -> list[dict[str, Any]]:
    out = git(p.bare, "diff-tree", "-r", "-z", "--no-renames", "--raw", old, new).stdout
    parts = out.split("\0")
    diffs = []
    for meta, path in zip(parts[0::2], parts[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        a_mode, b_mode, _, _, letter = meta[1:].split(" ")
        text = git(p.bare, "diff", "--no-renames", old, new, "--", path).stdout
        hunk = _HUNK.search(text)
        diffs.append(
            {
                "old_path": path,
                "new_path": path,
                "a_mode": "0" if letter == "A" else a_mode,
                "b_mode": "0" if letter == "D" else b_mode,
                "new_file": letter == "A",
                "renamed_file": False,
                "deleted_file": letter == "D",
                "generated_file": False,
                "diff": text[hunk.start() :] if hunk else "",
                "collapsed": False,
                "too_large": False,
            }
        )
    return diffs
