"""promoter.yamlread: the one-pass reader status and promote use must answer exactly what
yamledit.locate answers (`.value or ""`), or leave the file to it (UNUSUAL)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from promoter.errors import EditError
from promoter.yamledit import DocSelector, KeyPath, Selector, locate, parse_key_path
from promoter.yamlread import UNUSUAL, read_scalar
from tests.test_hostile_yaml import CHART, LOCK, VALUES, billion_laughs, deep

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("_ruamel_yaml") is None,
    reason="libyaml (ruamel.yaml.clib) is not installed: read_scalar always says UNUSUAL",
)

ROOT = Path(__file__).resolve().parent
CORPORA = [ROOT / "corpus", ROOT.parent.parent / "shared" / "corpus"]


def locate_value(text: str, path: KeyPath, doc: DocSelector | None = None) -> str | None:
    """What status reads today: the value, or None when locate raises."""
    try:
        return locate(text, path, doc).value or ""
    except EditError:
        return None


def agrees(text: str, path: KeyPath, doc: DocSelector | None = None) -> bool:
    """Assert read_scalar answers what locate does (or UNUSUAL); True if it answered."""
    got = read_scalar(text, path, doc)
    if got is UNUSUAL:
        return False
    want = locate_value(text, path, doc)
    assert want is not None, f"read_scalar read {got!r} where locate refuses {path} in {text!r}"
    assert got == want, (path, doc, text)
    return True


# ---- the corpus -----------------------------------------------------------------------------


def corpus_files() -> list[Path]:
    files = []
    for corpus in CORPORA:
        if corpus.is_dir():
            files += sorted(p for p in corpus.rglob("*") if p.suffix in (".yaml", ".yml"))
    return files


def every_path(node: Any, path: KeyPath = ()) -> list[KeyPath]:
    """Every node's key path (scalars, mappings and lists), plus `[name=...]` selectors."""
    out = [path] if path else []
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode):
                out += every_path(v, (*path, str(k.value)))
    elif isinstance(node, SequenceNode):
        for n, item in enumerate(node.value):
            out += every_path(item, (*path, n))
            if isinstance(item, MappingNode):
                for k, v in item.value:
                    if k.value == "name" and isinstance(v, ScalarNode):
                        out += every_path(item, (*path, Selector("name", str(v.value))))
    return out


def selectors(roots: list[Any]) -> list[DocSelector | None]:
    sels: list[DocSelector | None] = [None]
    for i, root in enumerate(roots):
        sels.append(DocSelector(index=i))
        if isinstance(root, MappingNode):
            fields = {str(k.value): v for k, v in root.value if isinstance(k, ScalarNode)}
            kind = fields.get("kind")
            meta = fields.get("metadata")
            name = next((v for k, v in getattr(meta, "value", []) if k.value == "name"), None)
            if isinstance(kind, ScalarNode) and isinstance(name, ScalarNode):
                sels.append(DocSelector(kind=str(kind.value), name=str(name.value)))
                sels.append(DocSelector(kind=str(kind.value)))
    return sels


@pytest.mark.parametrize("file", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_every_key_path_reads_as_locate_reads_it(file: Path) -> None:
    text = file.read_text(encoding="utf-8")
    try:
        roots = list(YAML(typ="safe", pure=True).compose_all(text))
    except YAMLError:
        roots = []
    paths = sorted({p for root in roots for p in every_path(root)}, key=str)[:3000]
    paths += [("no-such-key",), ("kind", "x"), (0,)]
    for sel in selectors(roots)[:12]:
        for path in paths:
            agrees(text, path, sel)
            agrees(text.replace("\n", "\r\n"), path, sel)


def test_corpus_plain_files_are_mostly_read_in_one_pass() -> None:
    """The point of it: the ordinary files are read without the composer."""
    read = scalars = 0
    for file in corpus_files():
        text = file.read_text(encoding="utf-8")
        roots = list(YAML(typ="safe", pure=True).compose_all(text))
        if len(roots) != 1:
            continue
        for path in every_path(roots[0]):
            if locate_value(text, path) not in (None, ""):
                scalars += 1
                read += agrees(text, path)
    assert scalars > 1000
    assert read > scalars * 0.8, (read, scalars)  # 92% when written


# ---- hostile files --------------------------------------------------------------------------

HOSTILE = [
    VALUES + billion_laughs(),
    VALUES + deep(),
    VALUES + deep(200),
    VALUES + "".join(f"{' ' * n}k:\n" for n in range(300)),
    VALUES + "".join(f"{' ' * n}k:\n" for n in range(199)) + " " * 199 + "k:\n  - v\n",
    LOCK + billion_laughs(),
    LOCK + "loop: &loop [a, *loop]\n",
    CHART + "x: *undefined\n",
    "base: &base {pullPolicy: Always}\nimage:\n  <<: *base\n  tag: 1.0.0\nother: *base\n",
    "base: &t 1.0.0\nimage:\n  tag: *t\n",
    "image: &i\n  tag: 1.0.0\ncopy: *i\n",
    "image:\n  <<: {tag: 1.0.0}\n",
    "image:\n  <<: {pullPolicy: Always}\n  tag: 1.0.0\n",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_files_are_left_to_locate(text: str) -> None:
    for path in ("image.tag", "dependencies[name=web].version", "dependencies[0].version"):
        assert read_scalar(text, parse_key_path(path)) is UNUSUAL


def test_depth_up_to_the_limit_is_read() -> None:
    flow, block = VALUES + deep(199), VALUES + "".join(f"{' ' * n}k:\n" for n in range(199))
    for text in (flow, block + " " * 199 + "k: v\n"):
        assert (
            read_scalar(text, ("image", "tag")) == "1.0.0" == locate_value(text, ("image", "tag"))
        )


def test_a_file_over_the_size_limit_is_left_to_locate() -> None:
    filler = "".join(f"key{n:07d}: some value that pads the file {n:07d}\n" for n in range(230_000))
    assert read_scalar(VALUES + filler, ("image", "tag")) is UNUSUAL
    assert locate_value(VALUES + filler, ("image", "tag")) is None
    # Under the limit in characters, over it in bytes.
    wide = VALUES + "# " + "é" * 6_000_000 + "\n"
    assert read_scalar(wide, ("image", "tag")) is UNUSUAL
    assert locate_value(wide, ("image", "tag")) is None


# ---- tricky scalars -------------------------------------------------------------------------

VALUES_MATRIX = [
    "1.0.0",
    "'1.0.0'",
    '"1.0.0"',
    "1.0",
    "010",
    "0x1F",
    "0o17",
    "1e3",
    "1_000",
    "-1",
    "+1",
    ".inf",
    ".nan",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "true",
    "False",
    "~",
    "null",
    "Null",
    "NULL",
    "nULL",
    '"~"',
    "'null'",
    "",
    '""',
    "''",
    "'it''s'",
    '"say \\"hi\\""',
    '"a\\tb"',
    '"\\u00e9"',
    '"\\x41"',
    '"\\/"',
    "é",
    "日本",
    "🚀",
    "'🚀'",
    "ghcr.io/acme/app:1.0@sha256:ab",
    "sha256:" + "ab" * 32,
    "a b",
    "a  b",
    "a:b",
    "a#b",
    "'a #b'",
    "2026-12-01",
    "2026-12-01T10:00:00Z",
    "12:30",
    "1.0 # a comment",
    "1.0   ",
    "'1.0'   # c",
    '"1.0"#c',
    "|\n    block\n",
    ">\n    folded\n    text\n",
    "|-\n    x\n",
    "multi\n    line",
    '"multi\n    line"',
    "'multi\n\n    line'",
    "!!str 1.0",
    "!custom x",
    "&a 1.0",
    "<<",
    "[1, 2]",
    "{a: 1}",
    "[]",
    "{}",
    "- a",
    "-1.0",
    "? x",
    "%x",
    "@x",
    "`x",
    "a\u00a0b",
    "\u00a0",
    "'\u2028'",
    "x\x85y",
    "\ufeffx",
]


def matrix_texts() -> list[tuple[str, str]]:
    out = []
    for value in VALUES_MATRIX:
        text = f"# app\nimage:\n  repository: r\n  tag: {value}\n  pullPolicy: Always\n"
        out.append((f"tag: {value}", text))
        out.append((f"crlf tag: {value}", text.replace("\n", "\r\n")))
        out.append((f"flow tag: {value}", f"image: {{tag: {value}, x: 1}}\n"))
        out.append((f"list tag: {value}", f"images:\n- name: web\n  tag: {value}\n"))
    return out


LAYOUTS = [
    "image:\n  tag: 1.0.0\n",
    "image:\n  tag: 1.0.0",  # no final newline
    "image:\n    tag: 1.0.0\n",
    "\n\nimage:  \n  tag:    1.0.0    \n\n",
    "image: # comment\n  # comment\n  tag: 1.0.0 # comment\n",
    "---\nimage:\n  tag: 1.0.0\n...\n",
    "---\nimage:\n  tag: 1.0.0\n---\nother:\n  tag: 2.0.0\n",
    "---\nimage:\n  tag: 1.0.0\n---\nimage:\n  tag: 2.0.0\n",
    "---\n---\nimage:\n  tag: 1.0.0\n",
    "%YAML 1.1\n---\nimage:\n  tag: 1.0.0\n",
    "%YAML 1.2\n---\nimage:\n  tag: 1.0.0\n",
    "%TAG !e! tag:example.com,2000:\n---\nimage:\n  tag: 1.0.0\n",
    "image:\n  tag: 1.0.0\n  tag: 2.0.0\n",
    "image:\n  tag: 1.0.0\nimage:\n  tag: 2.0.0\n",
    "image:\n  tag: 1.0.0\n'image':\n  tag: 2.0.0\n",
    "image:\n  tag: 1.0.0\nother:\n  x: 1\n  x: 2\n",
    "image:\n  tag: 1.0.0\n? [a, b]\n: c\n",
    "? image\n: tag: 1.0.0\n",
    "image:\n  ? tag\n  : 1.0.0\n",
    "image:\n  ? tag\n",
    "image:\n\ttag: 1.0.0\n",
    "image:\n  tag: 1.0.0\nbad: [\n",
    "image:\n  tag: 1.0.0\nbad: 'x\n",
    "image:\n  tag: 1.0.0\n  - x\n",
    "image:\n  tag: 1.0.0\n\x07\n",
    "\ufeffimage:\n  tag: 1.0.0\n",
    "image:\n  tag: 1.0.0\r",
    "image:\r  tag: 1.0.0\r",
    "image:\n  tag: 1.0.0\u2028",
    "image: {tag: 1.0.0}\n",
    "image: {tag: 1.0.0,}\n",
    "{image: {tag: '1.0.0'}}\n",
    "image: {tag: }\n",
    "image: {tag}\n",
    "image: [tag, 1.0.0]\n",
    "image:\n- tag: 1.0.0\n",
    "image: 1.0.0\n",
    "image:\n  tag:\n    - 1.0.0\n",
    "image:\n  tag: {}\n",
    "image:\n  tag:\n",
    "image:\n  tag:\nnext: 1\n",
    "image:\n  tag: ''\n",
    "image:\n  tag: !!null\n",
    "image:\n  tag: !!str\n",
    "- 1\n- 2\n",
    "just a scalar\n",
    "",
    "# only a comment\n",
    "---\n",
    "---\n...\n---\n",
    "image:\n  tag: 1.0.0\n--- !tagged\nx: 1\n",
    "image:\n  'tag': 1.0.0\n",
    'image:\n  "tag": 1.0.0\n',
    '"image":\n  "ta\\u0067": 1.0.0\n',
    '"image":\n  "tag": "1.0.0"\nx: "\\n"\n',
    "image.tag: 1.0.0\n",
    "'image.tag': 1.0.0\nimage:\n  tag: 2.0.0\n",
    "image[0]: 1.0.0\n",
    "1: one\n~: null-key\n'': empty\ntrue: yes\n",
    # Block scalars whose first line holds only spaces: libyaml reads some that ruamel refuses.
    "x: |\n \n   y\nimage:\n  tag: 1.0.0\n",
    "x: >-\n  \n   y\nimage:\n  tag: 1.0.0\n",
    "x: |  # c\r\n \r\n   y\r\nimage:\r\n  tag: 1.0.0\r\n",
    "x: |\n  \n  y\nimage:\n  tag: 1.0.0\n",
    "x: |\n\n   y\nimage:\n  tag: 1.0.0\n",
    "x: |2\n \n   y\nimage:\n  tag: 1.0.0\n",
    "x: |\n y\n  \n   z\nimage:\n  tag: 1.0.0\n",
    "x: |\n \r   y\nimage:\n  tag: 1.0.0\n",
    "x: >#-\n  y\nimage:\n  tag: 1.0.0\n",
    "x: >-#\n  y\nimage:\n  tag: 1.0.0\n",
    "x: |+2 # c\n    y\nimage:\n  tag: 1.0.0\n",
    "x: |-\n  y\nimage:\n  tag: 1.0.0\nz: >",
]

PATHS = [
    "image.tag",
    '["image.tag"]',
    "image",
    "image[0]",
    "image[0].tag",
    "images[0].tag",
    "images[1].tag",
    "images[name=web].tag",
    "images[name=api].tag",
    "image.tag[0]",
    "other.tag",
    "tag",
    "1",
    "~",
    "true",
    '["image[0]"]',
    "missing",
]


def tricky_cases() -> list[tuple[str, str]]:
    return matrix_texts() + [(repr(t), t) for t in LAYOUTS]


@pytest.mark.parametrize(("label", "text"), tricky_cases(), ids=[c[0] for c in tricky_cases()])
def test_tricky_scalars_read_as_locate_reads_them(label: str, text: str) -> None:
    docs = [None, DocSelector(index=0), DocSelector(index=1), DocSelector(index=2)]
    for path in PATHS:
        for doc in docs:
            agrees(text, parse_key_path(path), doc)


def test_multi_document_files_and_doc_selectors() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: a}\ndata:\n  v: '1'\n"
        "---\n"
        "kind: Deployment\nmetadata:\n  name: web\n  namespace: b\nspec:\n"
        "  template:\n    spec:\n      containers:\n      - name: web\n        image: web:1.0\n"
        "      - name: side\n        image: side:2.0\n"
        "---\n"
        "kind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n"
        "      containers:\n      - name: api\n        image: api:3.0\n"
        "---\n"
        "kind: ~\nmetadata:\n  name: 'null'\nspec: {}\n"
    )
    image = parse_key_path("spec.template.spec.containers[name=web].image")
    read: dict[Any, Any] = {
        (image, None): "web:1.0",
        (image, DocSelector(kind="Deployment", name="web")): "web:1.0",
        (image, DocSelector(index=1)): "web:1.0",
        (image, DocSelector(namespace="b")): "web:1.0",
        (parse_key_path("data.v"), None): "1",
        (parse_key_path("metadata.name"), DocSelector(kind="ConfigMap")): "web",
        (parse_key_path("metadata.name"), DocSelector(index=3)): "null",
        (parse_key_path("spec.template.spec.containers[0].image"), DocSelector(name="api")): (
            "api:3.0"
        ),
        (parse_key_path("kind"), DocSelector(name="null")): "",  # kind: ~ (null)
    }
    for (path, doc), want in read.items():
        assert read_scalar(text, path, doc) == want == locate_value(text, path, doc)
    left = [
        (parse_key_path("metadata.name"), None),  # in every document: locate names them
        (image, DocSelector(kind="Deployment")),  # two documents match
        (image, DocSelector(kind="Service")),  # none matches
        (image, DocSelector(index=2)),  # not in that one
        (parse_key_path("spec"), DocSelector(name="null")),  # a mapping
        (parse_key_path("spec.template.spec.containers[name=x].image"), None),
    ]
    for path, doc in left:
        assert read_scalar(text, path, doc) is UNUSUAL
        assert locate_value(text, path, doc) in (None, "")
        agrees(text, path, doc)


def test_ordinary_values_are_read_in_one_pass() -> None:
    """Not everything UNUSUAL: the files status and promote read every day."""
    ordinary = {
        "image:\n  repository: r\n  tag: 1.2.3\n": "1.2.3",
        "image:\n  tag: '1.2.3'  # pinned\n": "1.2.3",
        'image:\n  tag: "1.2.3"\n': "1.2.3",
        "image:\r\n  tag: 1.2.3\r\n": "1.2.3",
        "image:\n  tag: ~\n": "",
        "image:\n  tag: null\n": "",
        "image:\n  tag: '~'\n": "~",
        "image:\n  tag: ''\n": "",
        "image:\n  tag: 010\n": "010",
        "image:\n  tag: 0x1F\n": "0x1F",
        "image:\n  tag: yes\n": "yes",
        "image:\n  tag: 1.0\n": "1.0",
        "image:\n  tag: é\n": "é",
        "image: {tag: 1.2.3}\nresources: {requests: {cpu: 1}}\nlist: []\n": "1.2.3",
        "---\nimage:\n  tag: 1.2.3\n...\n": "1.2.3",
    }
    for text, want in ordinary.items():
        assert read_scalar(text, ("image", "tag")) == want == locate_value(text, ("image", "tag"))
    text = "'image.tag': 1\nimages:\n- name: a\n  tag: 2\n- {name: b, tag: 3}\n"
    assert read_scalar(text, parse_key_path('["image.tag"]')) == "1"
    assert read_scalar(text, parse_key_path("images[1].tag")) == "3"
    assert read_scalar(text, parse_key_path("images[name=a].tag")) == "2"


def test_without_libyaml_every_file_goes_to_locate() -> None:
    code = (
        "import sys; sys.modules['_ruamel_yaml'] = None\n"
        "from promoter.yamlread import UNUSUAL, read_scalar\n"
        "from promoter.promotion import read_value, PinKey\n"
        "text = 'image:\\n  tag: 1.2.3\\n'\n"
        "assert read_scalar(text, ('image', 'tag')) is UNUSUAL\n"
        "key = PinKey('web', 'web/web', 'tag', 'v.yaml', None, ('image', 'tag'))\n"
        "assert read_value(text, key) == '1.2.3'\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT.parent, check=False
    )
    assert done.stdout == "ok\n", done.stderr
