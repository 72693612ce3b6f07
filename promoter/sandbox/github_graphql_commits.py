"""GitHub's GraphQL for the api path (`--commit-via api`), on the real bare repos: the read
queries (a branch head, its commit date, file contents at a commit, a commit's parents and
message) and the `createCommitOnBranch` mutation.

Queries are parsed (a small GraphQL subset: one operation, variables, aliases, arguments,
inline fragments) and run against the slice of GitHub's public schema below; a field, an
argument or a variable outside it is a GraphQLViolation (recorded, as the REST validator
records REST violations). The mutation behaves as GitHub's does: the commit's parent is the
branch head, which must be `expectedHeadOid` (else the STALE_DATA error GitHub answers);
author the token's user, committer `GitHub <noreply@github.com>`; message headline, blank
line, body; files added with exactly the bytes given (base64) or deleted.
"""

from __future__ import annotations

import base64
import binascii
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promoter.sandbox import github_gitdata as gd
from promoter.sandbox.envrepo import git_env
from promoter.sandbox.github_graphql import NESTED_INPUTS, GraphQLViolation, error
from promoter.sandbox.github_store import RepoState, Store, node_id

COMMITTER = {"GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}

# The slice of GitHub's GraphQL schema the api path reads: type -> field -> (type, arguments).
_SCHEMA: dict[str, dict[str, tuple[str, frozenset[str]]]] = {
    "Query": {"repository": ("Repository", frozenset({"owner", "name"}))},
    "Repository": {
        "ref": ("Ref", frozenset({"qualifiedName"})),
        "refs": ("RefConnection", frozenset({"refPrefix", "first", "query"})),
        "defaultBranchRef": ("Ref", frozenset()),
        "object": ("GitObject", frozenset({"oid", "expression"})),
        "nameWithOwner": ("String", frozenset()),
        "id": ("ID", frozenset()),
    },
    "Ref": {
        "name": ("String", frozenset()),
        "prefix": ("String", frozenset()),
        "target": ("GitObject", frozenset()),
    },
    "Commit": {
        "oid": ("GitObjectID", frozenset()),
        "committedDate": ("DateTime", frozenset()),
        "message": ("String", frozenset()),
        "messageHeadline": ("String", frozenset()),
        "messageBody": ("String", frozenset()),
        "parents": ("CommitConnection", frozenset({"first", "after", "last", "before"})),
        "file": ("TreeEntry", frozenset({"path"})),
        "tree": ("Tree", frozenset()),
    },
    "RefConnection": {
        "nodes": ("Ref", frozenset()),
        "totalCount": ("Int", frozenset()),
    },
    "CommitConnection": {
        "nodes": ("Commit", frozenset()),
        "totalCount": ("Int", frozenset()),
    },
    "TreeEntry": {
        "name": ("String", frozenset()),
        "path": ("String", frozenset()),
        "mode": ("Int", frozenset()),
        "oid": ("GitObjectID", frozenset()),
        "type": ("String", frozenset()),
        "object": ("GitObject", frozenset()),
    },
    "Blob": {
        "oid": ("GitObjectID", frozenset()),
        "text": ("String", frozenset()),
        "isBinary": ("Boolean", frozenset()),
        "isTruncated": ("Boolean", frozenset()),
        "byteSize": ("Int", frozenset()),
    },
    "Tree": {"oid": ("GitObjectID", frozenset())},
}
_INTERFACES = {"GitObject": ("Commit", "Blob", "Tree")}
_OBJECT_FIELDS = {"oid"}  # GitObject's own fields, readable without a fragment


# --- a small GraphQL parser ----------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<punct>\.\.\.|[{}():!$\[\]=@])|(?P<name>[_A-Za-z][_0-9A-Za-z]*)"
    r'|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<number>-?\d+)|(?P<comma>,)|(?P<comment>#[^\n]*))'
)


@dataclass
class Field:
    alias: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    selections: list[Field | Fragment] | None = None


@dataclass
class Fragment:
    on: str
    selections: list[Field | Fragment]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise GraphQLViolation(f"cannot parse the document at {text[pos : pos + 30]!r}")
            pos = match.end()
            kind = match.lastgroup or ""
            if kind not in ("comma", "comment"):
                self.tokens.append((kind, match.group(kind)))
        self.i = 0

    def peek(self) -> str:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise GraphQLViolation("the document ends early")
        value = self.tokens[self.i][1]
        if expected is not None and value != expected:
            raise GraphQLViolation(f"expected {expected!r}, found {value!r}")
        self.i += 1
        return value

    def name(self) -> str:
        kind, value = self.tokens[self.i] if self.i < len(self.tokens) else ("", "")
        if kind != "name":
            raise GraphQLViolation(f"expected a name, found {value!r}")
        self.i += 1
        return value

    def operation(self) -> tuple[dict[str, str], list[Field | Fragment]]:
        variables: dict[str, str] = {}
        if self.peek() == "query":
            self.take()
            if self.peek() not in ("(", "{"):
                self.name()
            if self.peek() == "(":
                self.take("(")
                while self.peek() != ")":
                    self.take("$")
                    var = self.name()
                    self.take(":")
                    variables[var] = self.type()
                self.take(")")
        selections = self.selections()
        if self.i != len(self.tokens):
            raise GraphQLViolation("one operation per document, and nothing after it")
        return variables, selections

    def type(self) -> str:
        if self.peek() == "[":
            self.take("[")
            inner = self.type()
            self.take("]")
            out = f"[{inner}]"
        else:
            out = self.name()
        if self.peek() == "!":
            self.take()
            out += "!"
        return out

    def selections(self) -> list[Field | Fragment]:
        self.take("{")
        out: list[Field | Fragment] = []
        while self.peek() != "}":
            if self.peek() == "...":
                self.take()
                self.take("on")
                on = self.name()
                out.append(Fragment(on, self.selections()))
                continue
            alias = name = self.name()
            if self.peek() == ":":
                self.take()
                name = self.name()
            args: dict[str, Any] = {}
            if self.peek() == "(":
                self.take("(")
                while self.peek() != ")":
                    key = self.name()
                    self.take(":")
                    args[key] = self.value()
                self.take(")")
            sub = self.selections() if self.peek() == "{" else None
            out.append(Field(alias, name, args, sub))
        self.take("}")
        return out

    def value(self) -> Any:
        kind, token = self.tokens[self.i] if self.i < len(self.tokens) else ("", "")
        if token == "$":
            self.take()
            return _Var(self.name())
        self.i += 1
        if kind == "string":
            import json

            return json.loads(token)
        if kind == "number":
            return int(token)
        if token in ("true", "false"):
            return token == "true"
        raise GraphQLViolation(f"unsupported argument value {token!r}")


@dataclass(frozen=True)
class _Var:
    name: str


# --- running a query -----------------------------------------------------------------------------


@dataclass
class _Context:
    store: Store
    variables: dict[str, Any]
    declared: dict[str, str]
    repo: RepoState | None = None


def query(store: Store, document: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Run one read query of the schema slice above; GitHub's answer shape."""
    declared, selections = _Parser(document).operation()
    if not isinstance(variables, dict):
        raise GraphQLViolation("variables must be an object")
    missing = [v for v, t in declared.items() if t.endswith("!") and variables.get(v) is None]
    if missing:
        raise GraphQLViolation(f"variables {missing} are declared non-null but not given")
    ctx = _Context(store, variables, declared)
    errors: list[dict[str, Any]] = []
    data = _select(ctx, "Query", None, selections, errors, [])
    out: dict[str, Any] = {"data": data}
    if errors:
        out["errors"] = errors
    return out


def _args(ctx: _Context, f: Field, allowed: frozenset[str]) -> dict[str, Any]:
    unknown = set(f.args) - allowed
    if unknown:
        raise GraphQLViolation(f"field {f.name!r} has no argument {sorted(unknown)}")
    out = {}
    for key, value in f.args.items():
        if isinstance(value, _Var):
            if value.name not in ctx.declared:
                raise GraphQLViolation(f"variable ${value.name} is not declared")
            value = ctx.variables.get(value.name)
        out[key] = value
    return out


def _select(
    ctx: _Context,
    kind: str,
    obj: Any,
    selections: list[Field | Fragment],
    errors: list[dict[str, Any]],
    path: list[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sel in selections:
        if isinstance(sel, Fragment):
            if sel.on not in _SCHEMA:
                raise GraphQLViolation(f"unknown type {sel.on!r} in a fragment")
            if _concrete(kind, obj) == sel.on:
                out.update(_select(ctx, sel.on, obj, sel.selections, errors, path))
            continue
        if sel.name == "__typename":
            out[sel.alias] = _concrete(kind, obj)
            continue
        fields = _SCHEMA.get(kind, {})
        if kind in _INTERFACES and sel.name in _OBJECT_FIELDS:
            fields = _SCHEMA[_concrete(kind, obj)]
        if sel.name not in fields:
            raise GraphQLViolation(f"type {kind} has no field {sel.name!r}")
        result_type, allowed = fields[sel.name]
        args = _args(ctx, sel, allowed)
        value = _resolve(ctx, kind, obj, sel.name, args, errors, [*path, sel.alias])
        composite = result_type in _SCHEMA or result_type in _INTERFACES
        if composite and sel.selections is None:
            raise GraphQLViolation(f"field {sel.name!r} needs a selection")
        if not composite and sel.selections is not None:
            raise GraphQLViolation(f"field {sel.name!r} is a scalar: no selection")
        if value is None or not composite or sel.selections is None:
            out[sel.alias] = value
        elif isinstance(value, list):
            out[sel.alias] = [
                _select(ctx, result_type, v, sel.selections, errors, [*path, sel.alias])
                for v in value
            ]
        else:
            out[sel.alias] = _select(
                ctx, result_type, value, sel.selections, errors, [*path, sel.alias]
            )
    return out


@dataclass(frozen=True)
class _Obj:
    kind: str  # Commit | Blob | Tree | TreeEntry | Ref
    sha: str = ""
    path: str = ""
    mode: str = ""
    name: str = ""


@dataclass(frozen=True)
class _Connection:
    nodes: tuple[_Obj, ...]
    total: int | None = None  # of every node, when `nodes` is one page


def _concrete(kind: str, obj: Any) -> str:
    return obj.kind if isinstance(obj, _Obj) else kind


def _object(repo: RepoState, sha: str) -> _Obj | None:
    kind = gd.run(repo.path, "cat-file", "-t", sha).strip()
    return {
        "commit": _Obj("Commit", sha),
        "blob": _Obj("Blob", sha),
        "tree": _Obj("Tree", sha),
    }.get(kind)


def _resolve(
    ctx: _Context,
    kind: str,
    obj: Any,
    name: str,
    args: dict[str, Any],
    errors: list[dict[str, Any]],
    path: list[str],
) -> Any:
    if kind == "Query":
        full = f"{args.get('owner')}/{args.get('name')}"
        ctx.repo = ctx.store.repo(full)
        if ctx.repo is None:
            errors.append(
                {
                    "type": "NOT_FOUND",
                    "path": path,
                    "message": f"Could not resolve to a Repository with the name '{full}'.",
                }
            )
        return ctx.repo
    repo = ctx.repo
    assert repo is not None
    if kind == "Repository":
        if name == "nameWithOwner":
            return repo.name
        if name == "id":
            return node_id("R", repo.name)
        if name == "defaultBranchRef":
            branch = gd.run(repo.path, "symbolic-ref", "--short", "HEAD").strip() or "main"
            sha = gd.read_ref(repo.path, f"refs/heads/{branch}")
            return _Obj("Ref", sha, name=branch) if sha else None
        if name == "ref":
            ref = str(args.get("qualifiedName") or "")
            ref = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
            sha = gd.read_ref(repo.path, ref)
            return _Obj("Ref", sha, name=ref) if sha else None
        if name == "refs":
            return _refs(repo, args)
        if name == "object":
            spec = args.get("oid") or args.get("expression")
            if not isinstance(spec, str) or not spec or spec.startswith("-"):
                return None
            sha = gd.run(repo.path, "rev-parse", "--verify", "--quiet", spec).strip()
            return _object(repo, sha) if sha else None
    if kind == "Ref":
        if name == "target":
            return _object(repo, obj.sha)
        if name == "name":  # relative to the prefix (the refPrefix, for a listed ref)
            return obj.name.removeprefix(obj.path or "refs/heads/")
        return obj.path or "refs/heads/"
    if isinstance(obj, _Obj) and name == "oid":
        return obj.sha
    if kind == "Commit":
        return _commit_field(repo, obj.sha, name, args)
    if kind in ("CommitConnection", "RefConnection"):
        if name == "nodes":
            return list(obj.nodes)
        return len(obj.nodes) if obj.total is None else obj.total
    if kind == "TreeEntry":
        return {
            "name": obj.path.rsplit("/", 1)[-1],
            "path": obj.path,
            "mode": int(obj.mode, 8),
            "type": obj.name,
            "object": _object(repo, obj.sha),
        }[name]
    if kind == "Blob":
        data = gd.blob_bytes(repo.path, obj.sha)
        binary = b"\0" in data[:8000]
        text = None
        if not binary:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                binary = True
        return {
            "text": text,
            "isBinary": binary,
            "isTruncated": False,
            "byteSize": len(data),
        }[name]
    raise GraphQLViolation(f"type {kind} has no field {name!r}")


def _refs(repo: RepoState, args: dict[str, Any]) -> _Connection:
    """`Repository.refs` as GitHub resolves it: `refPrefix` must start with `refs/` and end
    with `/`; refs in name order, `query` a case-insensitive substring of the name (exact
    matches first, then those starting with it, then the rest); a paginated connection, so
    `first` (1..100) is required and only that many nodes come back. Each Ref's `name` is
    relative to `refPrefix`, its `prefix` the refPrefix."""
    prefix, first, text = args.get("refPrefix"), args.get("first"), args.get("query")
    if not isinstance(prefix, str) or not prefix.startswith("refs/") or not prefix.endswith("/"):
        raise GraphQLViolation(f"refs: `refPrefix` {prefix!r} must start with `refs/` and end "
                               "with a `/`")  # fmt: skip
    if not isinstance(first, int) or not 1 <= first <= 100:
        raise GraphQLViolation("refs: you must provide a `first` value (1 to 100) to paginate "
                               "the `refs` connection")  # fmt: skip
    out = gd.run(repo.path, "for-each-ref", "--format=%(refname) %(objectname)", prefix)
    refs = [tuple(line.split(" ", 1)) for line in out.splitlines() if line.strip()]
    if text:
        want = str(text).lower()

        def rank(ref: str) -> int:
            short = ref[len(prefix) :].lower()
            return 0 if short == want else 1 if short.startswith(want) else 2

        refs = sorted((r for r in refs if want in r[0][len(prefix) :].lower()),
                      key=lambda r: rank(r[0]))  # fmt: skip
    nodes = tuple(_Obj("Ref", sha, path=prefix, name=ref) for ref, sha in refs)
    return _Connection(nodes[:first], total=len(nodes))


def _commit_field(repo: RepoState, sha: str, name: str, args: dict[str, Any]) -> Any:
    info = gd.read_commit(repo.path, sha)
    if name == "committedDate":
        return info.committer["date"]
    if name == "message":
        return info.message
    if name == "messageHeadline":
        return info.message.partition("\n")[0]
    if name == "messageBody":
        return info.message.partition("\n")[2].lstrip("\n")
    if name == "parents":
        first = args.get("first")
        parents = info.parents[: int(first)] if isinstance(first, int) else info.parents
        return _Connection(tuple(_Obj("Commit", p) for p in parents))
    if name == "tree":
        return _Obj("Tree", info.tree)
    if name == "file":
        target = str(args.get("path") or "").strip("/")
        entry = gd.tree_entry(repo.path, sha, target) if target else None
        if entry is None:
            return None
        return _Obj("TreeEntry", entry.sha, entry.path, entry.mode, entry.kind)
    raise GraphQLViolation(f"type Commit has no field {name!r}")


# --- createCommitOnBranch ------------------------------------------------------------------------

_NAME = "createCommitOnBranch"
_OID = re.compile(r"^[0-9a-f]{40}$")


def _check(kind: str, value: Any) -> dict[str, Any]:
    """An input object of `kind`: an object with only its fields and all its required ones."""
    fields = NESTED_INPUTS[kind]
    if not isinstance(value, dict):
        raise GraphQLViolation(f"{_NAME}: {kind} must be an object, not {type(value).__name__}")
    unknown = set(value) - set(fields)
    missing = [k for k, required in fields.items() if required and value.get(k) is None]
    if unknown or missing:
        raise GraphQLViolation(f"{_NAME}: {kind} has unknown {sorted(unknown)} or lacks {missing}")
    return value


def create_commit_on_branch(store: Store, data: dict[str, Any], login: str) -> dict[str, Any]:
    for required in ("branch", "expectedHeadOid", "message"):
        if data.get(required) is None:
            raise GraphQLViolation(f"{_NAME}: input lacks the required {required}")
    branch = _check("CommittableBranch", data["branch"])
    message = _check("CommitMessage", data["message"])
    changes = _check("FileChanges", data.get("fileChanges") or {})
    additions = [_check("FileAddition", a) for a in changes.get("additions") or []]
    deletions = [_check("FileDeletion", d) for d in changes.get("deletions") or []]
    expected = data["expectedHeadOid"]
    if not isinstance(expected, str) or not _OID.match(expected):
        raise GraphQLViolation(f"{_NAME}: expectedHeadOid {expected!r} is not a GitObjectID")
    if branch.get("id") is not None:
        raise GraphQLViolation(f"{_NAME}: the double locates a branch by name, not by node id")
    name, full = branch.get("branchName"), branch.get("repositoryNameWithOwner")
    if not isinstance(name, str) or not isinstance(full, str):
        raise GraphQLViolation(f"{_NAME}: CommittableBranch needs repositoryNameWithOwner and "
                               "branchName (or id)")  # fmt: skip
    repo = store.repo(full)
    if repo is None:
        return error(_NAME, f"Could not resolve to a Repository with the name '{full}'.",
                     "NOT_FOUND")  # fmt: skip
    ref = name if name.startswith("refs/heads/") else f"refs/heads/{name}"
    head = gd.read_ref(repo.path, ref)
    if head is None:
        return error(_NAME, f'A ref named "{ref}" could not be found', "NOT_FOUND")
    if head != expected:
        return _stale(expected)
    files: dict[str, bytes | None] = {}
    for addition in additions:
        try:
            files[str(addition["path"])] = base64.b64decode(str(addition["contents"]),
                                                            validate=True)  # fmt: skip
        except binascii.Error:
            return error(_NAME, f"contents of {addition['path']} is not a Base64String",
                         "UNPROCESSABLE")  # fmt: skip
    for deletion in deletions:
        path = str(deletion["path"])
        if gd.tree_entry(repo.path, head, path) is None:
            return error(_NAME, f"A path was requested for deletion which does not exist "
                         f"as of commit oid `{head}`", "UNPROCESSABLE")  # fmt: skip
        files[path] = None
    body = message.get("body")
    text = str(message["headline"]) + (f"\n\n{body}" if body else "")
    author = {"GIT_AUTHOR_NAME": login, "GIT_AUTHOR_EMAIL": f"{login}@users.noreply.github.com"}
    new = _commit(repo.path, head, files, text, {**author, **COMMITTER})
    # A compare-and-swap on the ref, as GitHub's own update is: a push that landed since the
    # head was read is never overwritten; it makes this write a stale one.
    gd.run(repo.path, "update-ref", ref, new, head)
    if gd.read_ref(repo.path, ref) != new:
        return _stale(expected)
    _pushed(store, repo, {ref})
    return {"data": {_NAME: {"commit": {"oid": new}}}}


def _stale(expected: str) -> dict[str, Any]:
    out = error(
        _NAME,
        f'Expected branch to point to "{expected}" but it did not. Pull and try again.',
        "STALE_DATA",
    )
    out["errors"][0]["locations"] = [{"line": 1, "column": 58}]
    return out


def _commit(
    path: Path, parent: str, files: dict[str, bytes | None], message: str, env: dict[str, str]
) -> str:
    """A commit on `parent` with `files` written (None: removed). Every file written is a
    plain 100644 file, an executable one too: createCommitOnBranch takes no mode."""
    tree = gd.edit_tree(path, parent, files)
    proc = subprocess.run(
        ["git", "--git-dir", str(path), "commit-tree", tree, "-p", parent, "-F", "-"],
        input=message.encode(),
        capture_output=True,
        env=git_env(env),
        check=True,
    )
    return proc.stdout.decode().strip()


# --- updateRefs ----------------------------------------------------------------------------------

_ZERO = "0" * 40


def update_refs(store: Store, data: dict[str, Any]) -> dict[str, Any]:
    """GitHub's `updateRefs`: every RefUpdate checked (`beforeOid` the value the ref must hold
    now, zeros: must not exist; `afterOid` zeros: delete; a non-fast-forward move only with
    `force`), then all applied, or none when one is refused."""
    name = "updateRefs"
    for required in ("repositoryId", "refUpdates"):
        if data.get(required) is None:
            raise GraphQLViolation(f"{name}: input lacks the required {required}")
    updates = data["refUpdates"]
    if not isinstance(updates, list) or not updates:
        raise GraphQLViolation(f"{name}: refUpdates must be a non-empty list of RefUpdate")
    updates = [_check_ref_update(u) for u in updates]
    repo = _repo_by_node(store, str(data["repositoryId"]))
    if repo is None:
        node = data["repositoryId"]
        return error(name, f"Could not resolve to a node with the global id of '{node}'",
                     "NOT_FOUND")  # fmt: skip
    plan: list[tuple[str, str, str | None]] = []
    for update in updates:
        ref, after = str(update["name"]), str(update["afterOid"])
        before = update.get("beforeOid")
        current = gd.read_ref(repo.path, ref)
        if before is not None and (current or _ZERO) != before:
            return error(name, f"A ref update was rejected: {ref} is at {current or 'nothing'}, "
                         f"not {before}", "UNPROCESSABLE")  # fmt: skip
        if after != _ZERO and not gd.run(repo.path, "cat-file", "-t", after).strip():
            return error(name, f"Object {after} does not exist", "UNPROCESSABLE")
        forward = (
            current is None
            or after == _ZERO
            or (gd.run(repo.path, "merge-base", current, after).strip() == current)
        )
        if not forward and not update.get("force"):
            return error(name, f"A ref update was rejected: {ref} is not a fast forward",
                         "UNPROCESSABLE")  # fmt: skip
        plan.append((ref, after, current))
    # One transaction with each old value verified: all or none, and a push landing
    # meanwhile makes it fail instead of being overwritten.
    lines = "".join(
        f"delete {ref} {old or _ZERO}\n" if new == _ZERO else f"update {ref} {new} {old or _ZERO}\n"
        for ref, new, old in plan
    )
    proc = subprocess.run(
        ["git", "--git-dir", str(repo.path), "update-ref", "--stdin"],
        input=lines.encode(), capture_output=True, env=git_env(), check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return error(name, "A ref update was rejected: a ref moved meanwhile", "UNPROCESSABLE")
    _pushed(store, repo, {ref for ref, _, _ in plan})
    return {"data": {name: {"clientMutationId": data.get("clientMutationId")}}}


def _pushed(store: Store, repo: RepoState, refs: set[str]) -> None:
    """What GitHub does on a push to a pull request's head at once: follow it (and close the
    pull request when its head no longer has a commit ahead of its base)."""
    for pull in list(repo.pulls.values()):
        if pull.state == "open" and f"refs/heads/{pull.head}" in refs:
            store.refresh(repo, pull)


def _repo_by_node(store: Store, node: str) -> RepoState | None:
    """The repository a node id (`R_` + base64 of owner/name, as node_id makes it) names."""
    if not node.startswith("R_"):
        return None
    try:
        name = base64.urlsafe_b64decode(node[2:] + "=" * (-len(node[2:]) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    repo = store.repo(name)
    return repo if repo is not None and node_id("R", repo.name) == node else None


def _check_ref_update(value: Any) -> dict[str, Any]:
    update = _check("RefUpdate", value)
    ref = update["name"]
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise GraphQLViolation(f"updateRefs: name {ref!r} is not a fully qualified GitRefname")
    for key in ("afterOid", "beforeOid"):
        oid = update.get(key)
        if oid is not None and (not isinstance(oid, str) or not _OID.match(oid)):
            raise GraphQLViolation(f"updateRefs: {key} {oid!r} is not a GitObjectID")
    return update
