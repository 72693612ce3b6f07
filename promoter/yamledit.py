"""Read and set one scalar in a YAML file, byte-exact everywhere else.

Nothing is re-serialised. ruamel's safe composer gives each node's span as indexes into the
original str, and only the new scalar's characters are spliced in. Comments, quoting, line
endings, document markers and layout survive because nothing else is touched. Each call
composes the file once (about 0.17 s for a 200 KB values.yaml).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from promoter.errors import EditError


@dataclass(frozen=True)
class Selector:
    """`[name=web]`: the one list item whose `field` is the scalar `value`."""

    field: str
    value: str


Segment = str | int | Selector
KeyPath = tuple[Segment, ...]


@dataclass(frozen=True)
class DocSelector:
    """Picks one document of a multi-document file. Every field that is set must match."""

    kind: str | None = None
    name: str | None = None  # metadata.name
    namespace: str | None = None  # metadata.namespace
    index: int | None = None  # 0-based, counting every document YAML sees (empty ones too)


@dataclass(frozen=True)
class Location:
    """Where a scalar's characters are in the text (after any `&anchor` or `!tag`)."""

    start: int
    end: int  # == start for an empty value (`tag:`): the new value is inserted there
    style: str  # "plain", "single", "double", "literal" or "folded"
    value: str | None  # None for YAML null (`tag:`, `~`, `null`)
    line: int  # 1-based
    flow: bool  # inside {...} or [...], where , [ ] { } end a plain scalar
    document: int
    where: str  # the key path, canonical text


# ---- key paths ----------------------------------------------------------------------------


_QUOTED = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
_SEGMENT = re.compile(
    rf"""(?P<dot>\.)?(?:
        (?P<key>[^.\[\]"'][^.\[\]]*)               # plain key
      | \[(?P<index>[0-9]+)\]                       # [0]
      | \[(?P<quoted>{_QUOTED})\]                    # ["key.with.dots"]
      | \[(?P<field>[^\s.\[\]"'=]+)=(?P<value>{_QUOTED}|[^\]"'][^\]]*)\]  # [name=web]
    )""",
    re.VERBOSE,
)


def parse_key_path(text: str) -> KeyPath:
    """Parse `a.b[0].c[name=web]["x.y"]`; raise ValueError saying what is wrong and where."""
    segments: list[Segment] = []
    pos = 0
    while pos < len(text) or not segments:
        m = _SEGMENT.match(text, pos)
        # A dot goes before every plain key but the first, and never before a bracket.
        if not m or bool(m["dot"]) != (bool(segments) and m["key"] is not None):
            raise ValueError(f"bad key path {text!r}: {_path_problem(text, pos)}")
        if m["key"] is not None:
            if m["key"] != m["key"].strip():
                raise ValueError(f"bad key path {text!r}: spaces around key {m['key']!r}")
            segments.append(m["key"])
        elif m["index"] is not None:
            segments.append(int(m["index"]))
        elif m["quoted"] is not None:
            segments.append(_unquote(m["quoted"]))
        else:
            value = m["value"]
            segments.append(Selector(m["field"], _unquote(value) if value[0] in "\"'" else value))
        pos = m.end()
    return tuple(segments)


def _path_problem(text: str, pos: int) -> str:
    rest = text[pos:]
    if rest[:1] in ("", ".") and (pos == 0 or rest[1:2] in ("", ".", "[", "]")):
        why = "empty key"
    elif rest[:1] == "]" or (rest[:1] == "[" and "]" not in rest):
        why = "unbalanced brackets"
    else:
        why = 'expected a key, [0], [name=web] or ["a.b"]' + (" after ']'" if pos else "")
    return f"{why} at character {pos + 1}"


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])


def format_key_path(path: KeyPath) -> str:
    """The canonical text of a key path; parse_key_path(format_key_path(p)) == p."""
    out = []
    for i, seg in enumerate(path):
        if isinstance(seg, Selector):
            raw = bool(seg.value) and "]" not in seg.value and seg.value[0] not in "\"'"
            out.append(f"[{seg.field}={seg.value if raw else _quote_key(seg.value)}]")
        elif isinstance(seg, int):
            out.append(f"[{seg}]")
        elif seg and seg == seg.strip() and seg[0] not in "\"'" and not set(seg) & set(".[]"):
            out.append(f".{seg}" if i else seg)
        else:
            out.append(f"[{_quote_key(seg)}]")
    return "".join(out)


def _quote_key(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- limits -------------------------------------------------------------------------------

# What promoter agrees to read from the environment repo. Checked before composing, on the
# event stream, so that a hostile file is refused quickly and in bounded memory. The depth
# limit keeps well inside Python's recursion limit (the composer and the code walking its
# nodes recurse, two or three frames per level).
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 200
MAX_ALIAS_NODES = 100_000
_HAS_CLIB = importlib.util.find_spec("_ruamel_yaml") is not None


class LimitError(EditError):
    """A file is too large, too deep or expands too far through aliases to be read."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem if line is None else f"{problem} at line {line}")
        self.problem = problem
        self.line = line


def check_limits(
    text: str, max_bytes: int = MAX_FILE_BYTES, *, aliases: bool = True, libyaml: bool = True
) -> None:
    """Raise LimitError if `text` is over a limit; `aliases=False` refuses any anchor or alias.

    Syntax errors are left to the composer: what comes before one has been checked here, and
    the composer stops there too. libyaml reads the events when installed (about 30 times
    faster than the pure-Python parser); `libyaml=False` or a file it refuses uses the latter.
    """
    size = len(text)
    if size <= max_bytes:
        size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise LimitError(f"file size {size:,} bytes is over the {_mib(max_bytes)} limit")
    if libyaml and _HAS_CLIB:
        try:
            _check_events(_libyaml_events(text), aliases)
            return
        except YAMLError:
            pass
    with contextlib.suppress(YAMLError):
        _check_events(YAML(typ="safe", pure=True).parse(text), aliases)


def _mib(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB" if size % (1024 * 1024) == 0 else f"{size:,} bytes"


def _libyaml_events(text: str) -> Iterator[Any]:
    parser = importlib.import_module("_ruamel_yaml").CParser(text)
    while (event := parser.get_event()) is not None:
        yield event


def _check_events(events: Iterable[Any], aliases: bool) -> None:
    sizes: list[int] = []  # open collections: nodes so far, aliases expanded
    open_anchors: list[str | None] = []
    done: dict[str, int] = {}  # anchor -> its node's size, aliases expanded
    expanded = 0
    for event in events:  # the commonest events first: this loop runs on every file read
        if isinstance(event, ScalarEvent):
            if event.anchor is not None:
                _no_anchor(event, aliases)
                done[event.anchor] = 1
            if sizes:
                sizes[-1] += 1
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            size = sizes.pop()
            if (name := open_anchors.pop()) is not None:
                done[name] = size
            if sizes:
                sizes[-1] += size
        elif isinstance(event, MappingStartEvent | SequenceStartEvent):
            if event.anchor is not None:
                _no_anchor(event, aliases)
            if len(sizes) >= MAX_DEPTH:
                raise LimitError(
                    f"nested deeper than the limit of {MAX_DEPTH} levels", _line(event)
                )
            sizes.append(1)
            open_anchors.append(event.anchor)
        elif isinstance(event, AliasEvent):
            _no_anchor(event, aliases)
            if event.anchor in open_anchors:
                raise LimitError(
                    f"alias *{event.anchor} refers to a node that contains it", _line(event)
                )
            size = done.get(event.anchor, 0)  # an undefined alias is the composer's to report
            expanded += size
            if expanded > MAX_ALIAS_NODES:
                raise LimitError(
                    f"aliases expand to more than the limit of {MAX_ALIAS_NODES:,} nodes",
                    _line(event),
                )
            if sizes:
                sizes[-1] += size
        elif isinstance(event, DocumentStartEvent):
            done.clear()  # anchors are local to their document


def _no_anchor(event: Any, aliases: bool) -> None:
    if not aliases:
        what = (
            f"alias *{event.anchor}" if isinstance(event, AliasEvent) else f"anchor &{event.anchor}"
        )
        raise LimitError(
            f"{what}: anchors and aliases are not allowed in this file; write the values out",
            _line(event),
        )


def _line(event: Any) -> int:
    return int(event.start_mark.line) + 1


# ---- finding the scalar -------------------------------------------------------------------

_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_STYLES = {None: "plain", "'": "single", '"': "double", "|": "literal", ">": "folded"}


class _Miss(Exception):
    """The path is not in this document; `depth` segments of it were."""

    def __init__(self, message: str, depth: int) -> None:
        super().__init__(message)
        self.depth = depth


class _Refused(Exception):
    """The path is in this document but must not be edited there."""


def locate(text: str, path: KeyPath | str, doc: DocSelector | None = None) -> Location:
    """Find the scalar at `path`; EditError says why it cannot be pinned."""
    if isinstance(path, str):  # a str would otherwise be walked one character per key
        try:
            path = parse_key_path(path)
        except ValueError as exc:
            raise EditError(str(exc)) from None
    if not path:
        raise EditError("empty key path")
    where = format_key_path(path)
    docs = _compose(text, where)
    if not docs:
        raise EditError(f"{where}: the file holds no YAML document")
    picked: list[int] = list(range(len(docs)))
    if doc is not None:
        picked = [i for i, d in enumerate(docs) if _doc_matches(d, i, doc)]
        if len(picked) != 1:
            count = f"{len(picked)} documents match" if picked else "no document matches"
            shown = ", ".join(_describe(docs[i], i) for i in (picked or range(len(docs)))[:12])
            wanted = ", ".join(f"{k}: {v}" for k, v in vars(doc).items() if v is not None)
            raise EditError(f"{where}: {count} doc: {{{wanted}}}: {shown}")
    found: list[tuple[int, tuple[Any, Any, Any] | _Refused]] = []
    misses: list[tuple[int, _Miss]] = []
    for i in picked:
        try:
            found.append((i, _resolve(docs[i], path)))
        except _Miss as miss:
            misses.append((i, miss))
        except _Refused as refused:
            found.append((i, refused))

    def in_doc(i: int) -> str:
        return f" in {_describe(docs[i], i)}" if len(docs) > 1 else ""

    if not found:
        i, deepest = max(misses, key=lambda m: m[1].depth)
        several = f"not in any of the {len(docs)} documents; " if len(picked) > 1 else ""
        raise EditError(f"{where}: {several}{deepest}{in_doc(i)}")
    if len(found) > 1:
        shown = ", ".join(_describe(docs[i], i) for i, _ in found[:12])
        raise EditError(
            f"{where}: found in {len(found)} documents ({shown}); "
            "say which with a doc selector, e.g. doc: {kind: ..., name: ...}"
        )
    i, result = found[0]
    if isinstance(result, _Refused):
        raise EditError(f"{where}: {result}{in_doc(i)}")
    return _location(text, where, i, *result)


@functools.lru_cache(maxsize=4)
def _compose_text(text: str) -> tuple[Any, ...]:
    # Cached: reading a pin and then setting it (or several pins of one file) composes once.
    # Callers only read the nodes.
    check_limits(text)
    yaml = YAML(typ="safe", pure=True)
    # Re-using an anchor name is legal YAML; ruamel would print a warning for it.
    yaml.composer.warn_double_anchors = False
    return tuple(yaml.compose_all(text))


def _compose(text: str, where: str) -> list[Any]:
    try:
        return list(_compose_text(text))
    except LimitError as exc:
        raise EditError(f"{where}: {exc}") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is not None:
            problem += f" (line {mark.line + 1}, column {mark.column + 1})"
        elif isinstance(position := getattr(exc, "position", None), int):  # ReaderError
            problem += f" (line {text.count(chr(10), 0, position) + 1})"
        raise EditError(f"{where}: the file is not valid YAML: {problem}") from None


def _resolve(root: Any, path: KeyPath) -> tuple[Any, Any, Any]:
    """Walk `path` from `root`; return (the node it names, its parent, its key node)."""
    node, parent, key = root, None, None
    for depth, seg in enumerate(path):
        here = f'"{format_key_path(path[:depth])}"' if depth else "the top level"
        line = (key or node).start_mark.line + 1
        want, want_type = (
            ("a mapping", MappingNode) if isinstance(seg, str) else ("a list", SequenceNode)
        )
        if not isinstance(node, want_type):
            raise _Miss(f"{here} is {_kind(node)}, not {want} (line {line})", depth)
        # A node reached through an alias is the anchored node itself, so its span starts
        # before the text walked so far (`floor`): that is how an alias is recognised.
        floor, hits = node.start_mark.index, []
        for n, item in enumerate(node.value):
            k, v = item if isinstance(seg, str) else (None, item)
            if k is not None and k.start_mark.index >= floor:
                floor = k.end_mark.index
            aliased = v.start_mark.index < floor
            if not aliased:
                floor = v.end_mark.index
            if isinstance(seg, str):
                hit = isinstance(k, ScalarNode) and k.value == seg
            else:
                hit = n == seg if isinstance(seg, int) else _field(v, seg.field) == seg.value
            if hit:
                hits.append((n, k, v, aliased))
        if not hits:
            if isinstance(seg, str):
                _check_merge(root, node, seg, path[depth + 1 :], line)
                raise _Miss(f'key "{seg}" not found under {here} (line {line})', depth)
            if isinstance(seg, int):
                n = len(node.value)
                raise _Miss(
                    f"index {seg} is out of range: {here} has {n} items (line {line})", depth
                )
            have = sorted({x for x in (_field(v, seg.field) for v in node.value) if x is not None})
            names = f"; {seg.field}s there: {', '.join(have[:20])}" if have else ""
            raise _Miss(
                f"no item with {seg.field}={seg.value} in {here} (line {line}){names}", depth
            )
        if len(hits) > 1:
            lines = ", ".join(str(hit[2].start_mark.line + 1) for hit in hits)
            if isinstance(seg, str):
                raise _Refused(
                    f'key "{seg}" appears {len(hits)} times under {here} (lines {lines})'
                )
            raise _Refused(
                f"{len(hits)} items match {format_key_path((seg,))} in {here} (lines {lines}); "
                f"pick one by index, e.g. {format_key_path((*path[:depth], hits[0][0]))}"
            )
        parent, (_, key, node, aliased) = node, hits[0]
        if aliased:
            at = format_key_path(path[: depth + 1])
            _refuse_shared(root, node, path[depth + 1 :], f'"{at}" is an alias (*{node.anchor}) of')
    return node, parent, key


def _check_merge(root: Any, node: Any, key: str, rest: KeyPath, line: int) -> None:
    """A key merged in with `<<: *base` lives in the anchor's definition: refuse, naming it."""
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.tag == "tag:yaml.org,2002:merge":
            for source in v.value if isinstance(v, SequenceNode) else [v]:
                if _field(source, key, scalar=False) is not None:
                    why = f'key "{key}" is merged in by "<<" (line {line}) from'
                    _refuse_shared(root, source, (key, *rest), why)


def _refuse_shared(root: Any, target: Any, rest: KeyPath, why: str) -> NoReturn:
    line = target.start_mark.line + 1
    defined = _path_to(root, target)
    instead = format_key_path((*defined, *rest)) if defined else f"the value at line {line}"
    raise _Refused(
        f"{why} the anchor &{target.anchor} defined at line {line}, so the value is shared; "
        f"pin the anchor's definition instead: {instead}"
    )


def _path_to(root: Any, target: Any) -> KeyPath | None:
    """The path of the first (defining) occurrence of `target`, in document order."""
    stack: list[tuple[Any, KeyPath]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in seen or isinstance(node, ScalarNode):
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            kids = [(v, (*path, k.value)) for k, v in node.value if isinstance(k, ScalarNode)]
        else:
            kids = [(v, (*path, n)) for n, v in enumerate(node.value)]
        stack.extend(reversed(kids))
    return None


def _field(node: Any, key: str, scalar: bool = True) -> Any:
    """The value of `key` in a mapping node (its str value if `scalar`), else None."""
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                if not scalar:
                    return v
                return v.value if isinstance(v, ScalarNode) and v.tag != _NULL else None
    return None


def _kind(node: Any) -> str:
    return {MappingNode: "a mapping", SequenceNode: "a list"}.get(type(node), "a scalar")


def _doc_matches(root: Any, index: int, sel: DocSelector) -> bool:
    meta = _field(root, "metadata", scalar=False)
    return (
        (sel.index is None or sel.index == index)
        and (sel.kind is None or sel.kind == _field(root, "kind"))
        and (sel.name is None or sel.name == _field(meta, "name"))
        and (sel.namespace is None or sel.namespace == _field(meta, "namespace"))
    )


def _describe(root: Any, index: int) -> str:
    kind, name = _field(root, "kind"), _field(_field(root, "metadata", scalar=False), "name")
    what = "/".join(x for x in (kind, name) if x)
    return f"document {index} ({what + ', ' if what else ''}line {root.start_mark.line + 1})"


def _location(text: str, where: str, doc: int, node: Any, parent: Any, key: Any) -> Location:
    line = node.start_mark.line + 1
    if not isinstance(node, ScalarNode):
        at = (key or node).start_mark.line + 1
        raise EditError(f"{where}: is {_kind(node)}, not a scalar value (line {at})")
    start, end = node.start_mark.index, node.end_mark.index
    # The span includes `&anchor` and `!tag` properties; the scalar's characters follow them.
    while start < end and text[start] in "&!":
        if text[start] == "!" and node.tag != _STR:
            raise EditError(f"{where}: the value has an explicit tag (line {line})")
        while start < end and not text[start].isspace():
            start += 1
        while start < end and (text[start].isspace() or text[start] == "#"):  # comment
            newline = text.find("\n", start, end) if text[start] == "#" else start
            start = end if newline < 0 else newline + 1
    if start == end and start == node.start_mark.index:
        # An empty value's mark sits at the next token; the insertion point is right after
        # the `:` of its key (or the `-` of its list item, which is where ruamel puts it).
        if isinstance(parent, MappingNode):
            start = key.end_mark.index
            while start < len(text) and text[start] in " \t\r\n":
                start += 1
            if text[start : start + 1] != ":":
                raise EditError(f"{where}: cannot find the ':' after the key (line {line})")
            start = end = start + 1
        elif text[start - 1 : start] != "-":
            raise EditError(f"{where}: cannot place a value in this empty item (line {line})")
    value = None if node.tag == _NULL else str(node.value)
    flow = bool(getattr(parent, "flow_style", False))
    return Location(start, end, _STYLES.get(node.style, "plain"), value, line, flow, doc, where)


# ---- reading and writing ------------------------------------------------------------------


def get_scalar(text: str, path: KeyPath | str, doc: DocSelector | None = None) -> str | None:
    """The scalar's string value; None for YAML null (`tag:`, `~`); "" for `tag: ""`."""
    return locate(text, path, doc).value


def set_scalar(text: str, path: KeyPath | str, value: str, doc: DocSelector | None = None) -> str:
    """`text` with the scalar at `path` set to the string `value`; `text` itself if unchanged."""
    return set_at(text, locate(text, path, doc), value)


def set_at(text: str, loc: Location, value: str) -> str:
    """`text` with the scalar found by `locate(text, ...)` set to `value`.

    Spans found in the same text stay valid for edits applied from the end backwards."""
    if loc.style in ("literal", "folded"):
        raise EditError(
            f"{loc.where}: is a block scalar (| or >) at line {loc.line}; "
            "only one-line values can be pinned"
        )
    if loc.value == value and (loc.style != "plain" or _plain_ok(value, loc.flow)):
        return text
    new = _render(value, loc.style, loc.flow)
    return text[: loc.start] + (" " if loc.start == loc.end else "") + new + text[loc.end :]


# Characters a plain or single-quoted scalar may hold on one line: YAML's printable set
# minus tab, line breaks (\x85, \u2028, \u2029) and the BOM.
_PRINTABLE = re.compile(
    "[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*"
)
# Plain scalars that YAML 1.1 (Helm's go-yaml, PyYAML) or 1.2 would not read as a string.
_NOT_A_STRING = re.compile(
    r"""~|null|Null|NULL|[yYnN]|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE
    |on|On|ON|off|Off|OFF|<<|=
    |[-+]?(\.[0-9_]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?  # 3, 012, 1_000, 1.10, 1e3
    |[-+]?0[xXoObB][0-9a-fA-F_]+  # 0x1F, 0o17, 0b101
    |[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?  # sexagesimal 1:30 (YAML 1.1)
    |[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)
    |[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt\ \t].*)?  # dates and timestamps
    """,
    re.VERBOSE,
)


def _plain_ok(value: str, flow: bool) -> bool:
    return bool(
        value
        and value == value.strip()
        and value[0] not in "-?:,[]{}#&*!|>'\"%@`"
        and _PRINTABLE.fullmatch(value)
        and ": " not in value
        and " #" not in value
        and not value.endswith(":")
        and not value.startswith("...")
        and not (flow and set(value) & set(",[]{}:?"))  # YAML 1.1 ends flow plain at ? too
        and not _NOT_A_STRING.fullmatch(value)
    )


def _render(value: str, style: str, flow: bool) -> str:
    if style == "single" and _PRINTABLE.fullmatch(value):
        preferred = "'" + value.replace("'", "''") + "'"
    elif style == "plain" and _plain_ok(value, flow):
        preferred = value
    else:
        preferred = _double(value)
    # The rules above are meant to be conservative; check the result reads back, as YAML 1.2
    # and as 1.1, before trusting it, and fall back to double quotes, which hold any string.
    for candidate in (preferred, _double(value)):
        snippet = f"{{k: {candidate}}}" if flow else f"k: {candidate}"
        if all(_reads_as(value, version + snippet) for version in ("", "%YAML 1.1\n---\n")):
            return candidate
    raise EditError(f"cannot write {value!r} as a YAML string")  # not expected to happen


def _reads_as(value: str, snippet: str) -> bool:
    try:
        loaded = YAML(typ="safe", pure=True).load(snippet)
    except YAMLError:
        return False
    return isinstance(loaded, dict) and loaded.get("k") == value


def _double(value: str) -> str:
    # JSON's string escapes are all valid in YAML double quotes. YAML also forbids raw DEL,
    # C1 controls, surrogates, the BOM and the line breaks \x85 \u2028 \u2029: escape those.
    quoted = json.dumps(value, ensure_ascii=False)
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m[0]):04x}", quoted)


_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
