"""promoter.yaml → frozen dataclasses, validated before any git I/O.

Every error names the key path and the line of promoter.yaml it comes from.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, NoReturn

from promoter.errors import ConfigError
from promoter.windows import Freeze, Schedule, Window, parse_date, parse_window, zone
from promoter.yamledit import (
    MAX_DEPTH,
    DocSelector,
    KeyPath,
    LimitError,
    check_limits,
    parse_key_path,
)

CONFIG_FILE = "promoter.yaml"
MAX_CONFIG_BYTES = 2 * 1024 * 1024  # ~20,000 apps; parsing that much takes about 2 s
_HAS_CLIB = importlib.util.find_spec("_ruamel_yaml") is not None
Delivery = Literal["push", "pull-request"]


@dataclass(frozen=True)
class Gate:
    require: tuple[str, ...] = ()
    soak: timedelta = timedelta(0)
    schedule: Schedule = field(default_factory=Schedule)  # `windows:`, `freeze:`


@dataclass(frozen=True)
class PullRequestSettings:
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    auto_merge: bool = False
    draft: bool = False


@dataclass(frozen=True)
class Environment:
    name: str
    branch: str
    source: str | None = None  # `from:` in promoter.yaml
    gate: Gate = Gate()
    delivery: Delivery = "push"
    pull_request: PullRequestSettings = PullRequestSettings()
    # `commit_via: api`: the environment takes only commits the forge makes (verified): every
    # write to it goes through the forge's API (promoter.delivery.commit_via). None: not set.
    commit_via: Literal["git", "api"] | None = None


@dataclass(frozen=True)
class ImagePin:
    app: str
    name: str
    file: str  # may hold "{env}"
    doc: DocSelector | None
    tag: KeyPath | None
    digest: KeyPath | None = None
    repository: KeyPath | None = None
    ref: KeyPath | None = None  # a field holding the whole reference: repo:tag[@digest]

    @property
    def label(self) -> str:
        return f"{self.app}/{self.name}"


@dataclass(frozen=True)
class ChartPin:
    app: str
    file: str
    doc: DocSelector | None
    version: KeyPath

    @property
    def label(self) -> str:
        return f"{self.app}/chart"


@dataclass(frozen=True)
class App:
    name: str
    images: Mapping[str, ImagePin] = field(default_factory=dict)
    chart: ChartPin | None = None


@dataclass(frozen=True)
class Config:
    environments: Mapping[str, Environment]
    apps: Mapping[str, App]

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            known = ", ".join(self.environments) or "none"
            raise ConfigError(f"unknown environment {name!r} (promoter.yaml defines: {known})")
        return self.environments[name]

    def app(self, name: str) -> App:
        if name not in self.apps:
            known = ", ".join(self.apps) or "none"
            raise ConfigError(f"unknown app {name!r} (promoter.yaml defines: {known})")
        return self.apps[name]


def file_for(template: str, env: str) -> str:
    return template.replace("{env}", env)


# ---------------------------------------------------------------------------- loading


class _Doc:
    """The parsed file plus the line of every key path, for error messages.

    `fast=False` reads through the composer path only (tests compare the two paths)."""

    def __init__(self, source: str, text: str, fast: bool = True) -> None:
        from ruamel.yaml import YAML
        from ruamel.yaml.error import MarkedYAMLError, YAMLError

        self.source = source
        self.lines: dict[str, int] = {}
        if fast and _HAS_CLIB and _within_size(text):
            root = _read_plain(text, self.lines)
            if root is not _UNUSUAL:
                self.root = root
                return
            self.lines.clear()
        # Anything _read_plain leaves (a limit, an error, an anchor, a tag...) is read here, as
        # it always was, so that every message stays what it was.
        try:
            # Before composing: an alias bomb expands in _value, deep nesting recurses there.
            check_limits(text, MAX_CONFIG_BYTES, aliases=False, libyaml=_HAS_CLIB)
        except LimitError as err:
            raise ConfigError.at(source, err.line, err.problem) from None
        try:
            # libyaml through ruamel.yaml.clib when installed: ~9x faster than the pure-Python
            # parser on a large promoter.yaml (it dominated `update` on a 1,000-app repo).
            node = YAML(typ="safe", pure=not _HAS_CLIB).compose(text)
        except MarkedYAMLError as err:
            line = err.problem_mark.line + 1 if err.problem_mark else 0
            raise ConfigError.at(source, line, f"malformed YAML: {err.problem}") from None
        except YAMLError as err:
            raise ConfigError(f"{source}: malformed YAML: {err}") from None
        self.root = self._value(node, "") if node is not None else None

    def _value(self, node: Any, path: str) -> Any:
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                self.lines[child] = key_node.start_mark.line + 1
                if key in out:
                    self.fail(child, "duplicate key")
                out[key] = self._value(value_node, child)
            return out
        if isinstance(node, SequenceNode):
            return [self._value(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return _scalar(node)

    def fail(self, path: str, problem: str) -> NoReturn:
        line = self.lines.get(path)
        while line is None and path:
            path_up = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", path)
            line, path = self.lines.get(path_up), path_up
        raise ConfigError.at(self.source, line, problem)


# ---------------------------------------------------------------------------- fast path

# _read_plain's answer for a file it leaves to the composer above.
_UNUSUAL: Any = object()


def _within_size(text: str) -> bool:
    return len(text) <= MAX_CONFIG_BYTES and (
        len(text.encode("utf-8", "surrogatepass")) <= MAX_CONFIG_BYTES
    )


def _read_plain(text: str, lines: dict[str, int]) -> Any:
    """The tree _Doc's composer path builds (and `lines` as it fills them), in one pass over
    libyaml's events, for the files promoter.yaml almost always is: one document, no anchor,
    alias, tag or directive, scalar keys, no duplicate key, within the depth limit. For any
    other file, or a YAML error, `_UNUSUAL`: the composer path then reads it (and says what is
    wrong). About 3 times faster than composing, resolving every scalar through ruamel's
    resolver and checking the limits in a separate pass (a 1,000-app promoter.yaml)."""
    from ruamel.yaml.events import (
        DocumentEndEvent,
        DocumentStartEvent,
        MappingStartEvent,
        ScalarEvent,
        SequenceStartEvent,
        StreamEndEvent,
    )

    try:
        get = importlib.import_module("_ruamel_yaml").CParser(text).get_event
        get()  # StreamStartEvent
        event = get()
        if type(event) is StreamEndEvent:
            return None
        if type(event) is not DocumentStartEvent or event.version or event.tags:
            return _UNUSUAL
        root: Any = _UNUSUAL
        # Open collections: [container, its key path, the pending key, the key's path].
        stack: list[list[Any]] = []
        while True:
            event = get()
            cls = type(event)
            if cls is ScalarEvent or cls is MappingStartEvent or cls is SequenceStartEvent:
                if event.anchor is not None or event.tag is not None:
                    return _UNUSUAL
                line = event.start_mark.line + 1
                if stack:
                    top = stack[-1]
                    container = top[0]
                    if top[2] is None and type(container) is dict:  # a key
                        if cls is not ScalarEvent:
                            return _UNUSUAL
                        key = event.value
                        child = f"{top[1]}.{key}" if top[1] else key
                        lines[child] = line
                        if key in container:
                            return _UNUSUAL  # duplicate key: said by the composer path
                        top[2], top[3] = key, child
                        continue
                    if type(container) is dict:
                        key, path = top[2], top[3]
                        top[2] = None
                    else:
                        key, path = len(container), f"{top[1]}[{len(container)}]"
                        container.append(None)
                else:
                    container, key, path = None, None, ""
                lines.setdefault(path, line)
                if cls is ScalarEvent:
                    value = _plain(event.value) if event.implicit[0] else event.value
                else:
                    if len(stack) >= MAX_DEPTH:
                        return _UNUSUAL
                    value = {} if cls is MappingStartEvent else []
                    stack.append([value, path, None, None])
                if container is None:
                    root = value
                else:
                    container[key] = value
            elif cls is DocumentEndEvent:
                break
            elif stack:  # MappingEndEvent, SequenceEndEvent
                stack.pop()
            else:  # an alias, or anything unexpected
                return _UNUSUAL
        return root if type(get()) is StreamEndEvent else _UNUSUAL
    except Exception:  # a YAML error, or anything libyaml does differently: the composer says
        return _UNUSUAL


@functools.cache
def _plain_rules() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    from ruamel.yaml.resolver import implicit_resolvers

    rules: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for versions, tag, regexp, first in implicit_resolvers:
        if (1, 2) in versions:
            for char in first:
                rules.setdefault(char, []).append((tag, re.compile(regexp.pattern, regexp.flags)))
    return rules


def _plain(value: str) -> Any:
    """A plain scalar as _scalar reads it: ruamel's YAML 1.2 implicit resolvers decide its
    tag (the same rules, by first character, in the same order)."""
    for tag, regexp in _plain_rules().get(value[:1], ()):
        if regexp.match(value):
            if tag.endswith(":null"):
                return None
            if tag.endswith(":bool"):
                return value.lower() in ("true", "yes", "on")
            if tag.endswith(":int"):
                try:
                    return int(value)
                except ValueError:
                    return value
            return value
    return value


def _scalar(node: Any) -> Any:
    # Plain scalars are resolved as YAML would (bool, int, null); quoted ones stay strings.
    if node.style in ("'", '"', "|", ">"):
        return node.value
    tag = str(node.tag)
    if tag.endswith(":null"):
        return None
    if tag.endswith(":bool"):
        return node.value.lower() in ("true", "yes", "on")
    if tag.endswith(":int"):
        try:
            return int(node.value)
        except ValueError:
            return node.value
    return node.value


def load_config(text: str, source: str = CONFIG_FILE) -> Config:
    doc = _Doc(source, text)
    root = doc.root
    if not isinstance(root, dict):
        doc.fail("", "expected a mapping with `environments:` and `apps:`")
    _only(doc, "", root, {"environments", "apps"})
    envs = _environments(doc, _required_map(doc, root, "environments"))
    apps = {
        name: _app(doc, f"apps.{name}", name, spec)
        for name, spec in _required_map(doc, root, "apps").items()
    }
    return Config(environments=envs, apps=apps)


def _environments(doc: _Doc, specs: dict[str, Any]) -> dict[str, Environment]:
    envs: dict[str, Environment] = {}
    for name, spec in specs.items():
        path = f"environments.{name}"
        _check_name(doc, path, name)
        spec = spec if spec is not None else {}
        _mapping(doc, path, spec)
        _only(doc, path, spec, {"branch", "from", "gate", "delivery", "pull_request",
                                "commit_via"})  # fmt: skip
        branch = _string(doc, f"{path}.branch", spec.get("branch", f"env/{name}"))
        problem = branch_problem(branch)
        if problem:
            doc.fail(f"{path}.branch", f"{path}.branch: {problem}")
        delivery = spec.get("delivery", "push")
        if delivery not in ("push", "pull-request"):
            doc.fail(
                f"{path}.delivery",
                f"{path}.delivery: {delivery!r} is not one of push, pull-request",
            )
        via = spec.get("commit_via")
        if via is not None and via not in ("git", "api"):
            doc.fail(
                f"{path}.commit_via",
                f"{path}.commit_via: {via!r} is not one of git, api (api: every commit is made "
                "by the forge's API, which GitHub signs)",
            )
        envs[name] = Environment(
            name=name,
            branch=branch,
            source=_optional_string(doc, f"{path}.from", spec.get("from")),
            gate=_gate(doc, f"{path}.gate", spec.get("gate")),
            delivery=delivery,
            pull_request=_pull_request(doc, f"{path}.pull_request", spec.get("pull_request")),
            commit_via=via,
        )
    for name, env in envs.items():
        if env.source is not None and env.source not in envs:
            doc.fail(
                f"environments.{name}.from",
                f"environments.{name}.from: unknown environment {env.source!r}",
            )
        seen = [name]
        upstream = env.source
        while upstream is not None:
            if upstream in seen:
                cycle = " -> ".join([*seen, upstream])
                doc.fail(f"environments.{name}.from", f"environments: `from` cycle {cycle}")
            seen.append(upstream)
            upstream = envs[upstream].source
    return envs


def _gate(doc: _Doc, path: str, spec: Any) -> Gate:
    if spec is None:
        return Gate()
    _mapping(doc, path, spec)
    _only(doc, path, spec, {"require", "soak", "windows", "freeze"})
    require = _string_list(doc, f"{path}.require", spec.get("require", []))
    soak = spec.get("soak", 0)
    try:
        soak_delta = parse_duration(str(soak))
    except ValueError as err:
        doc.fail(f"{path}.soak", f"{path}.soak: {err}")
    windows = _windows(doc, f"{path}.windows", spec.get("windows", []))
    default_zone = windows[0].zone if windows else zone("UTC")
    freezes = _freezes(doc, f"{path}.freeze", spec.get("freeze", []), default_zone)
    return Gate(require=tuple(require), soak=soak_delta, schedule=Schedule(windows, freezes))


def _windows(doc: _Doc, path: str, value: Any) -> tuple[Window, ...]:
    found = []
    for i, text in enumerate(_string_list(doc, path, value)):
        try:
            found.append(parse_window(text))
        except ValueError as err:
            doc.fail(f"{path}[{i}]", f"{path}[{i}]: {err}")
    return tuple(found)


_FREEZE_FORM = "{from: 2026-12-20, to: 2027-01-04, reason: year-end}"
_REASON = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")


def _freezes(doc: _Doc, path: str, value: Any, default_zone: Any) -> tuple[Freeze, ...]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        doc.fail(path, f"{path}: expected a list like [{_FREEZE_FORM}], got {_kind(value)}")
    found = []
    for i, spec in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(spec, dict):
            doc.fail(where, f"{where}: expected a freeze like {_FREEZE_FORM}, got {_kind(spec)}")
        _only(doc, where, spec, {"from", "to", "reason", "zone"})
        days = []
        for key in ("from", "to"):
            if spec.get(key) is None:
                doc.fail(where, f"{where}: `{key}:` is missing (a freeze is {_FREEZE_FORM})")
            try:
                days.append(parse_date(str(spec[key])))
            except ValueError as err:
                doc.fail(f"{where}.{key}", f"{where}.{key}: {err}")
        first, last = days
        if first > last:
            doc.fail(
                f"{where}.to",
                f"{where}: from {first} is after to {last}; `to` is the last frozen day",
            )
        reason = _optional_string(doc, f"{where}.reason", spec.get("reason"))
        if reason is not None and not _REASON.match(reason.strip()):
            doc.fail(f"{where}.reason", f"{where}.reason: one printable line, up to 100 characters")
        tz = default_zone
        if spec.get("zone") is not None:
            try:
                tz = zone(_string(doc, f"{where}.zone", spec["zone"]))
            except ValueError as err:
                doc.fail(f"{where}.zone", f"{where}.zone: {err}")
        found.append(Freeze(first, last, reason.strip() if reason else None, tz))
    return tuple(found)


def _pull_request(doc: _Doc, path: str, spec: Any) -> PullRequestSettings:
    if spec is None:
        return PullRequestSettings()
    _mapping(doc, path, spec)
    _only(doc, path, spec, {"labels", "reviewers", "auto_merge", "draft"})
    flags = {}
    for key in ("auto_merge", "draft"):
        value = spec.get(key, False)
        if not isinstance(value, bool):
            doc.fail(f"{path}.{key}", f"{path}.{key}: expected true or false, got {value!r}")
        flags[key] = value
    return PullRequestSettings(
        labels=tuple(_string_list(doc, f"{path}.labels", spec.get("labels", []))),
        reviewers=tuple(_string_list(doc, f"{path}.reviewers", spec.get("reviewers", []))),
        auto_merge=flags["auto_merge"],
        draft=flags["draft"],
    )


def _app(doc: _Doc, path: str, name: str, spec: Any) -> App:
    _check_name(doc, path, name)
    _mapping(doc, path, spec)
    _only(doc, path, spec, {"images", "chart"})
    images_spec = spec.get("images") or {}
    _mapping(doc, f"{path}.images", images_spec)
    images = {}
    for image, image_spec in images_spec.items():
        ipath = f"{path}.images.{image}"
        _check_name(doc, ipath, image)
        _mapping(doc, ipath, image_spec)
        _only(doc, ipath, image_spec, {"file", "doc", "tag", "digest", "repository", "ref"})
        keys = {k: _key_path(doc, ipath, k, image_spec.get(k)) for k in _IMAGE_KEYS}
        if keys["tag"] is None and keys["ref"] is None:
            doc.fail(ipath, f"{ipath}: needs `tag:` (or `ref:` for a field holding repo:tag)")
        images[image] = ImagePin(
            app=name,
            name=image,
            file=_file(doc, f"{ipath}.file", image_spec.get("file")),
            doc=_doc_selector(doc, f"{ipath}.doc", image_spec.get("doc")),
            **keys,
        )
    chart = None
    if spec.get("chart") is not None:
        cpath = f"{path}.chart"
        chart_spec = spec["chart"]
        _mapping(doc, cpath, chart_spec)
        _only(doc, cpath, chart_spec, {"file", "doc", "version"})
        version = _key_path(doc, cpath, "version", chart_spec.get("version"))
        if version is None:
            doc.fail(cpath, f"{cpath}: needs `version:` (the key path of the chart version)")
        chart = ChartPin(
            app=name,
            file=_file(doc, f"{cpath}.file", chart_spec.get("file")),
            doc=_doc_selector(doc, f"{cpath}.doc", chart_spec.get("doc")),
            version=version,
        )
    if not images and chart is None:
        doc.fail(path, f"{path}: an app needs `images:` or `chart:`")
    return App(name=name, images=images, chart=chart)


_IMAGE_KEYS = ("tag", "digest", "repository", "ref")


def _file(doc: _Doc, path: str, value: Any) -> str:
    if value is None:
        doc.fail(path.rsplit(".", 1)[0], f"{path}: missing (the file the pin edits)")
    text = _string(doc, path, value)
    problem = file_problem(text)
    if problem:
        doc.fail(path, f"{path}: {problem}")
    return text


def _key_path(doc: _Doc, parent: str, key: str, value: Any) -> KeyPath | None:
    if value is None:
        return None
    path = f"{parent}.{key}"
    try:
        return _parse_key_path(_string(doc, path, value))
    except ValueError as err:
        doc.fail(path, f"{path}: {err}")


# A thousand apps mostly share a handful of key paths (`image.tag`); a KeyPath is immutable.
_parse_key_path = functools.lru_cache(maxsize=1024)(parse_key_path)


def _doc_selector(doc: _Doc, path: str, value: Any) -> DocSelector | None:
    if value is None:
        return None
    _mapping(doc, path, value)
    _only(doc, path, value, {"kind", "name", "namespace", "index"})
    index = value.get("index")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        doc.fail(f"{path}.index", f"{path}.index: expected a document number from 0")
    strings = {
        k: _optional_string(doc, f"{path}.{k}", value.get(k)) for k in ("kind", "name", "namespace")
    }
    return DocSelector(index=index, **strings)


# ---------------------------------------------------------------------------- checks

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_name(doc: _Doc, path: str, name: str) -> None:
    if not _NAME_RE.match(name):
        doc.fail(path, f"{path}: name {name!r} may hold only letters, digits, . _ -")


def branch_problem(branch: str) -> str | None:
    """Why git would refuse this branch name (git check-ref-format rules), or None."""
    bad = re.search(r"[\x00-\x20\x7f~^:?*\[\\]", branch)
    if not branch:
        return "empty branch name"
    if bad:
        what = "a space" if bad.group() == " " else repr(bad.group())
        return f"branch name {branch!r} contains {what}"
    if ".." in branch or "@{" in branch or "//" in branch:
        return f"branch name {branch!r} contains '..', '@{{' or '//'"
    if branch.startswith(("-", "/")) or branch.endswith(("/", ".", ".lock")) or branch == "@":
        return f"branch name {branch!r} has a forbidden start or end"
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        return f"branch name {branch!r} has a component starting with '.' or ending in '.lock'"
    # git check-ref-format --branch refuses HEAD; FETCH_HEAD, ORIG_HEAD... are pseudo-refs too,
    # and a full ref name would be qualified again (refs/heads/refs/heads/x).
    if re.fullmatch(r"[A-Z_]*HEAD", branch):
        return f"{branch!r} is not a branch name: git reads it as a special ref"
    if branch.startswith("refs/"):
        return f"{branch!r} is not a branch name: write the short name, without refs/.../"
    return None


_DRIVE = re.compile(r"^[A-Za-z]:")


def file_problem(path: str) -> str | None:
    """A pin's file must stay inside the repository."""
    if not path:
        return "empty file path"
    if path.startswith("/") or _DRIVE.match(path) or "\\" in path:
        return f"{path!r} must be a relative path with / separators"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"{path!r} must not contain empty, '.' or '..' components"
    if parts[0] == ".git":
        return f"{path!r} points into .git"
    leftover = path.replace("{env}", "")
    if "{" in leftover or "}" in leftover:
        return f"{path!r}: the only placeholder is {{env}}"
    return None


_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """`90`, `90s`, `5m`, `1h30m` → timedelta."""
    text = text.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    match = _DURATION_RE.match(text)
    if not text or not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h30m")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _required_map(doc: _Doc, root: dict[str, Any], key: str) -> dict[str, Any]:
    if root.get(key) is None:
        doc.fail("", f"`{key}:` is missing")
    _mapping(doc, key, root[key])
    if not root[key]:
        doc.fail(key, f"{key}: is empty")
    return dict(root[key])


def _mapping(doc: _Doc, path: str, value: Any) -> None:
    if not isinstance(value, dict):
        doc.fail(path, f"{path}: expected a mapping, got {_kind(value)}")


def _only(doc: _Doc, path: str, spec: dict[str, Any], allowed: set[str]) -> None:
    for key in spec:
        if key not in allowed:
            child = f"{path}.{key}" if path else key
            expected = ", ".join(sorted(allowed))
            doc.fail(child, f"{child}: unknown key (expected one of: {expected})")


def _string(doc: _Doc, path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        doc.fail(path, f"{path}: expected a non-empty string, got {_kind(value)}")
    return str(value)


def _optional_string(doc: _Doc, path: str, value: Any) -> str | None:
    return None if value is None else _string(doc, path, value)


def _string_list(doc: _Doc, path: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        doc.fail(path, f"{path}: expected a list of strings, got {_kind(value)}")
    return [_string(doc, f"{path}[{i}]", item) for i, item in enumerate(value)]


def _kind(value: Any) -> str:
    kinds: dict[type, str] = {dict: "a mapping", list: "a list", bool: "a boolean", int: "a number"}
    if value is None:
        return "nothing"
    return kinds.get(type(value), repr(value))
