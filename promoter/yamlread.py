"""Read one pinned scalar in one pass over libyaml's events, for the files values.yaml almost
always is; hand any other file back to yamledit.locate.

`read_scalar(text, path, doc)` returns exactly `locate(text, path, doc).value or ""` for every
file it accepts, and `UNUSUAL` for any file it does not read with certainty: over the size or
depth limit, an anchor, alias, tag, directive, merge key (`<<`), BOM, tab or control
character, a non-scalar, duplicate or escaped (`"a\\tb"`) key anywhere, a YAML error
(libyaml's), a path that is not found, names a non-scalar or is found in several documents, a
doc selector matching other than one document, or a value that is empty (`tag:`), a block
scalar (| or >), spans lines or is double-quoted with an escape. The caller then calls
`locate` as before, so every error text stays what it was. About 25 times faster than
composing (status reads 2,500 values.yaml files).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from typing import Any

from promoter.yamledit import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    DocSelector,
    KeyPath,
    Selector,
)

_HAS_CLIB = importlib.util.find_spec("_ruamel_yaml") is not None

# read_scalar's answer for a file it leaves to yamledit.locate.
UNUSUAL: Any = object()

# A scalar's style from libyaml: '' plain (ruamel's composer says None), quoted, | or >.
_ONE_LINE_STYLES = frozenset(("", None, "'", '"'))
_BLOCK = frozenset(("|", ">"))
# The block scalars read here: a plain header (`|`, `>-`, `|2`, `|  # comment`) and a first
# line that is not spaces only. ruamel's scanner refuses some others that libyaml reads
# ("more indented follow up line than first", `>#-`), so they are left to locate.
_BLOCK_HEADER = re.compile(
    "[|>](?:[1-9][-+]?|[-+][1-9]?)?(?: +(?:#[^\r\n]*)?)?(?:\r\n|\r(?!\n)|\n)(?! +[\r\n])"
)
# Plain scalars ruamel's resolver reads as null (YAML 1.1 and 1.2 agree); "" is left out,
# an empty value is UNUSUAL.
_NULLS = frozenset(("~", "null", "Null", "NULL"))
# Characters outside what both parsers surely read alike: tab, controls, NEL, the BOM, the
# line separators \u2028 \u2029, surrogates, U+FFFE/U+FFFF.
_ODD = re.compile(
    "[^\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


def read_scalar(text: str, path: KeyPath, doc: DocSelector | None = None) -> Any:
    """The str `locate(text, path, doc).value or ""` is, or UNUSUAL (then call `locate`)."""
    if not path or not _HAS_CLIB:
        return UNUSUAL
    docs = _documents(text)
    if docs is None:
        return UNUSUAL
    try:
        return _read(docs, path, doc)
    except _Unusual:
        return UNUSUAL


def _read(docs: tuple[Any, ...], path: KeyPath, doc: DocSelector | None) -> Any:
    hits: list[Any] = []
    picked = 0
    for index, root in enumerate(docs):
        if doc is not None and not _doc_matches(root, index, doc):
            continue
        picked += 1
        node = _resolve(root, path)
        if node is UNUSUAL:
            return UNUSUAL
        if node is not None:
            hits.append(node)
    if doc is not None and picked != 1:  # locate says which documents match
        return UNUSUAL
    if len(hits) != 1:
        return UNUSUAL
    node = hits[0]
    if type(node) is dict or type(node) is list or not _clean(node):
        return UNUSUAL
    if not node.style and node.value == "":  # `tag:`: locate places a value after the ':'
        return UNUSUAL
    if not node.style and node.value in _NULLS:
        return ""
    return node.value


def _clean(event: Any) -> bool:
    """A scalar whose value libyaml and ruamel surely read alike: one line, not a block
    scalar, no escape in double quotes (the tree holds _ESCAPED for those)."""
    return bool(event.style in _ONE_LINE_STYLES and event.start_mark.line == event.end_mark.line)


class _Escaped:
    """Stands for a double-quoted scalar with an escape (`"a\\tb"`): never read here."""

    style = "escaped"
    value = ""


_ESCAPED = _Escaped()


class _Unusual(Exception):
    pass


def _doc_matches(root: Any, index: int, sel: DocSelector) -> bool:
    # As yamledit._doc_matches; a field whose value is not certain makes the file UNUSUAL.
    if sel.index is not None and sel.index != index:
        return False
    meta = root.get("metadata") if type(root) is dict else None
    for want, node, key in (
        (sel.kind, root, "kind"),
        (sel.name, meta, "name"),
        (sel.namespace, meta, "namespace"),
    ):
        if want is not None and want != _field(node, key):
            return False
    return True


def _field(node: Any, key: str) -> str | None:
    """The str value of `key` in a mapping (None: no mapping, no such key, null or not a
    scalar), as yamledit._field with scalar=True; raises _Unusual if not certain."""
    if type(node) is not dict:
        return None
    value = node.get(key)
    if value is None or type(value) is dict or type(value) is list:
        return None
    if not _clean(value):
        raise _Unusual
    if not value.style and (value.value in _NULLS or value.value == ""):
        return None
    return str(value.value)


def _resolve(root: Any, path: KeyPath) -> Any:
    """The node at `path` (a ScalarEvent, dict or list), None if it is not there, UNUSUAL if
    yamledit would refuse it or the answer is not certain."""
    node = root
    for seg in path:
        if type(seg) is str:
            if type(node) is not dict:
                return None
            node = node.get(seg)
            if node is None:
                return None
        elif type(seg) is int:
            if type(node) is not list or seg >= len(node):
                return None
            node = node[seg]
        else:
            assert isinstance(seg, Selector)
            if type(node) is not list:
                return None
            items = [item for item in node if _field(item, seg.field) == seg.value]
            if len(items) != 1:
                return UNUSUAL if items else None
            node = items[0]
    return node


@functools.lru_cache(maxsize=8)
def _documents(text: str) -> tuple[Any, ...] | None:
    """Every document's tree (dict by key, list, or the ScalarEvent itself), or None for a
    file read_scalar leaves to the composer. Cached: status reads several keys of one file."""
    if len(text) > MAX_FILE_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > (
        MAX_FILE_BYTES
    ):
        return None
    if _ODD.search(text):
        return None
    backslash = "\\" in text
    try:
        return _events_to_trees(text, backslash)
    except Exception:  # a YAML error, or anything libyaml does differently: locate says
        return None


def _events_to_trees(text: str, backslash: bool) -> tuple[Any, ...] | None:
    from ruamel.yaml.events import (
        DocumentEndEvent,
        DocumentStartEvent,
        MappingStartEvent,
        ScalarEvent,
        SequenceStartEvent,
        StreamEndEvent,
    )

    get = importlib.import_module("_ruamel_yaml").CParser(text).get_event
    get()  # StreamStartEvent
    docs: list[Any] = []
    while True:
        event = get()
        cls = type(event)
        if cls is StreamEndEvent:
            break
        if cls is not DocumentStartEvent or event.version or event.tags:
            return None
        root: Any = None
        # Open collections: [container, the pending key or None].
        stack: list[list[Any]] = []
        while True:
            event = get()
            cls = type(event)
            if cls is ScalarEvent or cls is MappingStartEvent or cls is SequenceStartEvent:
                if event.anchor is not None or event.tag is not None:
                    return None
                if cls is ScalarEvent:
                    value: Any = event
                    if event.style in _BLOCK and not _BLOCK_HEADER.match(
                        text, event.start_mark.index
                    ):
                        return None  # ruamel refuses some of these ("more indented follow up")
                    if (
                        backslash
                        and event.style == '"'
                        and "\\" in text[event.start_mark.index : event.end_mark.index]
                    ):
                        value = _ESCAPED  # not read here: ruamel decodes its escapes
                else:
                    if len(stack) >= MAX_DEPTH:
                        return None
                    value = {} if cls is MappingStartEvent else []
                if stack:
                    top = stack[-1]
                    container = top[0]
                    if type(container) is list:
                        container.append(value)
                    elif top[1] is None:  # a key
                        if value is _ESCAPED or cls is not ScalarEvent or not _clean(event):
                            return None
                        key = event.value
                        if key in container or key == "<<":
                            return None  # duplicate or merge key: locate says or reads it
                        top[1] = key
                        continue
                    else:
                        container[top[1]] = value
                        top[1] = None
                else:
                    root = value
                if cls is not ScalarEvent:
                    stack.append([value, None])
            elif cls is DocumentEndEvent:
                break
            elif stack:  # MappingEndEvent, SequenceEndEvent
                stack.pop()
            else:  # an alias, or anything unexpected
                return None
        docs.append(root)
    return tuple(docs) if docs else None
