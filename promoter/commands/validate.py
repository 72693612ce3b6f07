"""`promoter validate`: promoter.yaml is valid, every pin resolves to a valid value on every
environment, and no environment branch holds a Kubernetes Secret in plaintext.

Per environment branch: one shallow blobless fetch, one listing of its tree, one batched fetch
of the blobs wanted (the pinned files, their Chart.lock files and every *.yaml / *.yml), then
everything is read locally.

The secret guard flags `kind: Secret` (apiVersion v1) documents, also inside a v1 `List`,
whose `data` or `stringData` holds a value: it names the branch, file, line and keys, never a
value. It passes a SOPS-encrypted file (a top-level `sops:` block, every value `ENC[...]`), a
value that is only a template reference (`{{ ... }}`, `${VAR}`), an empty or null value, and
every other kind (SealedSecret, ExternalSecret...). Files are foreign input: YAML files over
10 MiB, nested deeper than 200 levels or with aliases expanding past 100,000 nodes are
reported, not read or composed.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from promoter.config import Config
from promoter.context import read_config, scratch_repo
from promoter.errors import EditError, UsageError
from promoter.gitrepo import GitRepo
from promoter.model import pinned_value_problem, show_value
from promoter.options import Options
from promoter.plan import Edit, chart_lock_for
from promoter.promotion import PinKey, pin_keys
from promoter.yamledit import MAX_FILE_BYTES, LimitError, check_limits, locate

# YAML files read into memory at once while scanning a branch (each at most MAX_FILE_BYTES).
_BATCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SecretFinding:
    """A Secret document with values in plaintext: where it is and which keys, no value."""

    branch: str
    environments: tuple[str, ...]
    file: str
    line: int  # of the first plaintext value's key
    document: int  # 1-based, of `documents` in the file
    documents: int
    name: str | None
    namespace: str | None
    keys: tuple[str, ...]  # "stringData.password", "data.token"
    sops: bool  # the file is SOPS-encrypted, but these values were left in plaintext

    @property
    def text(self) -> str:
        what = "a plaintext value in a SOPS-encrypted Secret" if self.sops else "plaintext Secret"
        name = "/".join(show_value(n) for n in (self.namespace, self.name) if n)
        where = f" (document {self.document} of {self.documents})" if self.documents > 1 else ""
        keys = ", ".join(show_value(k[:80]) for k in self.keys[:8])
        more = f" and {len(self.keys) - 8} more" if len(self.keys) > 8 else ""
        return (
            f"{_label(self.environments, self.branch)}: {show_value(self.file)} line "
            f"{self.line}: {what}{' ' + name if name else ''}{where}: {keys}{more}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "environments": list(self.environments),
            "file": self.file,
            "line": self.line,
            "document": self.document,
            "name": self.name,
            "namespace": self.namespace,
            "keys": list(self.keys),
            "sops": self.sops,
        }


@dataclass(frozen=True)
class Validation:
    environments: tuple[str, ...]
    apps: tuple[str, ...]
    checked: int  # pin keys located in files
    problems: tuple[str, ...] = field(default=())
    scanned: int = 0  # YAML files read for Secrets, over all environment branches
    secrets: tuple[SecretFinding, ...] = field(default=())
    unchecked: tuple[str, ...] = field(default=())  # files that mention Secret but do not parse

    @property
    def valid(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": "validate",
            "valid": self.valid,
            "environments": list(self.environments),
            "apps": list(self.apps),
            "checked": self.checked,
            "problems": list(self.problems),
            "scanned": self.scanned,
            "secrets": [s.as_dict() for s in self.secrets],
            "unchecked": list(self.unchecked),
        }


class ValidationFailed(UsageError):
    def __init__(self, result: Validation) -> None:
        count = len(result.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found")
        self.result = result


def validate(options: Options) -> Validation:
    """Raises ConfigError for an invalid promoter.yaml; returns problems found in the repo."""
    if not options.repo:
        config = read_config(options, None)
        return Validation(tuple(config.environments), tuple(config.apps), 0)
    with scratch_repo(options) as repo:
        config = read_config(options, repo)
        found = _Found()
        keys = pin_keys(config, list(config.apps))
        for branch, envs in _branches(config).items():
            _check_branch(repo, branch, envs, keys, found)
    return Validation(
        tuple(config.environments),
        tuple(config.apps),
        found.checked,
        tuple(found.problems),
        found.scanned,
        tuple(found.secrets),
        tuple(found.unchecked),
    )


@dataclass
class _Found:
    checked: int = 0
    scanned: int = 0
    problems: list[str] = field(default_factory=list)
    secrets: list[SecretFinding] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def _branches(config: Config) -> dict[str, list[str]]:
    branches: dict[str, list[str]] = {}
    for env in config.environments.values():
        branches.setdefault(env.branch, []).append(env.name)
    return branches


def _label(envs: tuple[str, ...] | list[str], branch: str) -> str:
    return f"{', '.join(envs)} ({branch})"


def _check_branch(
    repo: GitRepo, branch: str, envs: list[str], keys: list[PinKey], found: _Found
) -> None:
    label = _label(envs, branch)
    try:
        tip = repo.fetch(branch)
    except UsageError as err:  # the branch does not exist: the other branches still count
        found.problems.append(f"{label}: {err}")
        return
    pins = [(env, key) for env in envs for key in keys]
    wanted = {key.path(env) for env, key in pins}
    wanted |= {lock for env, key in pins if (lock := _lock_for(env, key))}
    # One listing and one batched fetch for the pinned files and every YAML file.
    tree = repo.tree_blobs(tip, lambda path: path in wanted or _is_yaml(path))
    contents = repo.read_files(tip, {path for path in wanted if path in tree})
    refused = set()
    for path in sorted(wanted - tree.keys()):  # absent, or not a regular file
        try:
            repo.read_files(tip, [path])  # local: absent or refused before any blob is read
        except EditError as err:  # a symbolic link, a directory or a submodule
            found.problems.append(f"{label}: {err}")
            refused.add(path)
    for env, key in pins:
        found.checked += 1
        if key.path(env) in refused:
            continue
        problem = _check_key(key, env, contents)
        line = f"{env} ({branch}): {problem}"
        if problem and line not in found.problems:  # a missing file is one problem
            found.problems.append(line)
    found.problems += _check_locks(branch, pins, contents)
    _scan_branch(repo, branch, tuple(envs), tree, found)


def _lock_for(env: str, key: PinKey) -> str | None:
    return chart_lock_for(Edit(key.app, key.pin, key.path(env), key.doc, key.key, ""))


def _check_key(key: PinKey, env: str, contents: dict[str, bytes | None]) -> str | None:
    path = key.path(env)
    data = contents.get(path)
    if data is None:
        return f"{path} does not exist (pin {key.pin})"
    try:
        value = locate(data.decode("utf-8"), key.key, key.doc).value
    except UnicodeDecodeError:
        return f"{path} is not UTF-8 text (pin {key.pin})"
    except EditError as err:
        return f"{path}: {err} (pin {key.pin})" if str(err) else f"{path}: {key.where}"
    problem = pinned_value_problem(key.field, value or "")
    return f"{path}: {key.where}: {problem} (pin {key.pin})" if problem else None


def _check_locks(
    branch: str, pins: list[tuple[str, PinKey]], contents: dict[str, bytes | None]
) -> list[str]:
    from promoter.helmlock import check_lock

    problems = []
    seen = set()
    for env, key in pins:
        lock = _lock_for(env, key)
        if lock is None or lock in seen or contents.get(lock) is None:
            continue
        seen.add(lock)
        chart, lock_text = contents.get(key.path(env)), contents[lock]
        if chart is None or lock_text is None:
            continue
        problem = check_lock(chart.decode("utf-8", "replace"), lock_text.decode("utf-8", "replace"))
        if problem:
            problems.append(f"{branch}: {lock}: {problem}")
    return problems


# ---- the secret guard -----------------------------------------------------------------------


def _is_yaml(path: str) -> bool:
    return path.lower().endswith((".yaml", ".yml"))


def _scan_branch(
    repo: GitRepo,
    branch: str,
    envs: tuple[str, ...],
    tree: dict[str, tuple[str, str, int]],
    found: _Found,
) -> None:
    """Every YAML file of the branch, in path order, read in batches of at most _BATCH_BYTES
    (the blobs are here already: reading them is local)."""
    paths = sorted(p for p in tree if _is_yaml(p))
    found.scanned += len(paths)
    batches: list[list[str]] = [[]]
    size = 0
    for path in paths:
        bytes_ = tree[path][2] if tree[path][2] <= MAX_FILE_BYTES else 0  # never read
        if batches[-1] and size + bytes_ > _BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += bytes_
    for batch in batches:
        _scan_batch(repo, branch, envs, tree, batch, found)


def _scan_batch(
    repo: GitRepo,
    branch: str,
    envs: tuple[str, ...],
    tree: dict[str, tuple[str, str, int]],
    paths: list[str],
    found: _Found,
) -> None:
    label = _label(envs, branch)
    blobs = repo.read_blobs(tree[p][1] for p in paths if tree[p][2] <= MAX_FILE_BYTES)
    for path in paths:
        shown = show_value(path)
        _, oid, size = tree[path]
        if size > MAX_FILE_BYTES:
            found.problems.append(
                f"{label}: {shown}: {size:,} bytes is over the 10 MiB limit for YAML files; "
                "not checked for plaintext Secrets"
            )
            continue
        try:
            scan = scan_secrets(blobs[oid])
        except LimitError as err:
            found.problems.append(f"{label}: {shown}: {err}; not checked for plaintext Secrets")
            continue
        if scan.unchecked:
            found.unchecked.append(f"{label}: {shown}: {scan.unchecked}")
        for doc in scan.secrets:
            finding = SecretFinding(
                branch, envs, path, doc.line, doc.document, scan.documents,
                doc.name, doc.namespace, doc.keys, scan.sops,
            )  # fmt: skip
            found.secrets.append(finding)
            found.problems.append(finding.text)


@dataclass(frozen=True)
class PlainSecret:
    line: int
    document: int
    name: str | None
    namespace: str | None
    keys: tuple[str, ...]


@dataclass(frozen=True)
class SecretScan:
    secrets: tuple[PlainSecret, ...] = ()
    documents: int = 0
    sops: bool = False
    unchecked: str | None = None  # why (part of) a file that mentions Secret was not read


_BINARY = "tag:yaml.org,2002:binary"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
# sops writes every value as ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<type>].
_SOPS_VALUE = re.compile(
    r"^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:[a-z]+\]$"
)
# A value that only refers to one rendered elsewhere: Helm/Go templates, envsubst / Flux
# post-build variables.
_REFERENCE = re.compile(
    r"^(?:\s*(?:\{\{.*?\}\}|\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-=+?][^}]*)?\}))+\s*$", re.DOTALL
)
# What Kubernetes' YAML reader (and kustomize) split multi-document files on.
_SEPARATOR = re.compile(r"^---[ \t\r]*(?:#.*)?$", re.MULTILINE)


def scan_secrets(data: bytes) -> SecretScan:
    """The Secret documents of a YAML file that hold plaintext values. Raises LimitError when
    the file is over a YAML limit (it is then not composed). Pure."""
    text = _decode(data)
    if text is None:
        return SecretScan(unchecked="not UTF-8 text") if b"Secret" in data else SecretScan()
    # Only a file that spells "Secret" (or could spell it through an escape or a !!binary
    # tag) can hold one: every other file is not parsed at all.
    if "Secret" not in text and "\\" not in text and "binary" not in text:
        return SecretScan()
    docs, unchecked = _documents(text)
    roots = [(offset, source, _fields(root)) for offset, source, root in docs]
    sops = any(isinstance(v, MappingNode) for _, _, f in roots for _, v in f.get("sops", ()))
    secrets: list[PlainSecret] = []
    for index, (offset, source, fields) in enumerate(roots, start=1):
        for secret, keys in _plain_secrets(fields, source, sops, 0):
            meta = _fields(_first(secret, "metadata"))
            name, namespace = _text_of(_first(meta, "name")), _text_of(_first(meta, "namespace"))
            line = offset + keys[0][1] + 1
            secrets.append(PlainSecret(line, index, name, namespace, tuple(k for k, _ in keys)))
    return SecretScan(tuple(secrets), len(docs), sops, unchecked)


def _decode(data: bytes) -> str | None:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _documents(text: str) -> tuple[list[tuple[int, str, Node | None]], str | None]:
    """(line offset, the text its marks index into, root node) of every document, and why
    some of the file could not be read. A file that does not parse as a whole is read again
    document by document, split where Kubernetes splits it (a `---` line), so one broken
    document hides no other."""
    check_limits(text)
    try:
        return [(0, text, root) for root in _compose_all(text)], None
    except YAMLError:
        pass
    docs: list[tuple[int, str, Node | None]] = []  # None: a document that does not parse
    broken: list[int] = []
    bounds, start = [], 0
    for separator in _SEPARATOR.finditer(text):
        bounds.append((start, separator.start()))
        start = separator.end() + 1
    bounds.append((start, len(text)))
    for start, end in bounds:
        chunk = text[start:end]
        offset = text.count("\n", 0, start)
        check_limits(chunk)
        try:
            docs += [(offset, chunk, root) for root in _compose_all(chunk)]
        except YAMLError as err:
            mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
            broken.append(offset + (mark.line if mark is not None else 0) + 1)
            docs.append((offset, chunk, None))
    lines = ", ".join(str(n) for n in broken[:5]) + (" ..." if len(broken) > 5 else "")
    return docs, f"not valid YAML at line {lines} (the documents that parse were checked)"


def _compose_all(text: str) -> list[Node]:
    """Every document's root node (libyaml when installed; check_limits ran first)."""
    from promoter.yamledit import _HAS_CLIB

    if _HAS_CLIB:
        from ruamel.yaml.cyaml import CSafeLoader

        loader = CSafeLoader(text)
        try:
            roots = []
            while loader.check_node():
                roots.append(loader.get_node())
            return [r for r in roots if r is not None]
        finally:
            loader.dispose()
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.composer.warn_double_anchors = False
    return [root for root in yaml.compose_all(text) if root is not None]


# A mapping's fields: key text -> [(key node, value node)], every value of a duplicated key.
_Fields = dict[str, list[tuple[Node, Node]]]


def _plain_secrets(
    fields: _Fields, text: str, sops: bool, depth: int
) -> Iterator[tuple[_Fields, list[tuple[str, int]]]]:
    """(a Secret's fields, [(key, line)...] of its plaintext values) for a document, and for
    the items of a v1 List."""
    kinds = _texts(fields, "kind")
    api = _texts(fields, "apiVersion")
    if "Secret" in kinds and (not api or "v1" in api):
        keys = [
            (f"{section}.{key}" if key else section, line)
            for section in ("data", "stringData")
            for key, line in _plain_values(fields, section, text, sops)
        ]
        if keys:
            yield fields, sorted(keys, key=lambda k: k[1])
    if depth < 8 and any(kind.endswith("List") for kind in kinds) and "v1" in api:
        items = _first(fields, "items")
        if isinstance(items, SequenceNode):
            for item in items.value:
                yield from _plain_secrets(_fields(item), text, sops, depth + 1)


def _plain_values(fields: _Fields, section: str, text: str, sops: bool) -> list[tuple[str, int]]:
    """(key, line) of every value of `section` (data, stringData) that is in plaintext."""
    plain: list[tuple[str, int]] = []
    for key, node in fields.get(section, ()):
        if _empty(node):
            continue
        if not isinstance(node, MappingNode):  # not a map of values: whatever it is, flag it
            plain.append(("", key.start_mark.line))
            continue
        for name, value in _pairs(node):
            if not _empty(value) and not _protected(value, text, sops):
                plain.append((_text_of(name) or "?", name.start_mark.line))
    return plain


def _protected(node: Node, text: str, sops: bool) -> bool:
    value = _text_of(node) if isinstance(node, ScalarNode) else None
    if sops and value and _SOPS_VALUE.match(value):
        return True
    # A template reference, quoted or not (unquoted `{{ x }}` composes as a flow mapping).
    if value is None:
        value = text[node.start_mark.index : node.end_mark.index]
    return bool(value and _REFERENCE.match(value))


def _empty(node: Node) -> bool:
    if isinstance(node, ScalarNode):
        return not _text_of(node)  # null or ""
    return not node.value


def _pairs(node: Node | None, depth: int = 0) -> Iterator[tuple[Node, Node]]:
    """A mapping's key/value pairs, with `<<` merge keys expanded (aliases are bounded by
    check_limits; the depth guards a merge that refers to itself)."""
    if not isinstance(node, MappingNode) or depth > 16:
        return
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.tag == _MERGE:
            merged = value.value if isinstance(value, SequenceNode) else [value]
            for item in merged:
                yield from _pairs(item, depth + 1)
        else:
            yield key, value


def _fields(node: Node | None) -> _Fields:
    fields: _Fields = {}
    for key, value in _pairs(node):
        name = _text_of(key)
        if name is not None:
            fields.setdefault(name, []).append((key, value))
    return fields


def _first(fields: _Fields, name: str) -> Node | None:
    pairs = fields.get(name)
    return pairs[0][1] if pairs else None


def _texts(fields: _Fields, name: str) -> set[str]:
    """Every value of `name` (a duplicated key counts with each of its values)."""
    return {t for _, value in fields.get(name, ()) if (t := _text_of(value))}


def _text_of(node: Node | None) -> str | None:
    """A scalar's string as a Kubernetes reader sees it (!!binary decoded), else None."""
    if not isinstance(node, ScalarNode):
        return None
    tag = node.tag
    if tag == _NULL:
        return None
    value = str(node.value)
    if tag == _BINARY:
        try:
            return base64.b64decode("".join(value.split())).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return value
    return value
