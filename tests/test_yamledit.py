"""Unit tests for promoter.yamledit: small inline YAML, one behaviour per test."""

from __future__ import annotations

import random
import warnings
from typing import Any

import pytest
from ruamel.yaml import YAML

from promoter.errors import EditError, UsageError
from promoter.yamledit import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    DocSelector,
    KeyPath,
    LimitError,
    Selector,
    check_limits,
    format_key_path,
    get_scalar,
    locate,
    parse_key_path,
    set_scalar,
)


def edit(text: str, path: str, value: str, doc: DocSelector | None = None) -> str:
    return set_scalar(text, parse_key_path(path), value, doc)


def load(text: str, version: str = "1.2") -> Any:
    """Safe-load as YAML 1.2 (ruamel's default) or 1.1 (what Helm's go-yaml v2 speaks)."""
    if version == "1.1":
        text = "%YAML 1.1\n---\n" + text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ruamel warns about 1.1 floats without a dot
        return YAML(typ="safe", pure=True).load(text)


def edit_error(text: str, path: str, value: str = "x", doc: DocSelector | None = None) -> str:
    with pytest.raises(EditError) as info:
        edit(text, path, value, doc)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(path + ": ") or path == ""
    return message


# ---- key paths ----------------------------------------------------------------------------

GOOD_PATHS: list[tuple[str, KeyPath]] = [
    ("image.tag", ("image", "tag")),
    ("dependencies[name=web].version", ("dependencies", Selector("name", "web"), "version")),
    (
        "spec.template.spec.containers[0].image",
        ("spec", "template", "spec", "containers", 0, "image"),
    ),
    ("images[name=foo].newTag", ("images", Selector("name", "foo"), "newTag")),
    ("[0].name", (0, "name")),
    ('annotations["artifacthub.io/links"]', ("annotations", "artifacthub.io/links")),
    ("a[0][12]", ("a", 0, 12)),
    (
        "images[name=quay.io/konflux-ci/kite].newTag",
        ("images", Selector("name", "quay.io/konflux-ci/kite"), "newTag"),
    ),
    ('l[name="a]b"].v', ("l", Selector("name", "a]b"), "v")),
    ('a["x.\\"y\\""]', ("a", 'x."y"')),
    ("loki-distributed.loki.image.tag", ("loki-distributed", "loki", "image", "tag")),
    ("a[k=x=y]", ("a", Selector("k", "x=y"))),
]


@pytest.mark.parametrize(("text", "expected"), GOOD_PATHS)
def test_parse_key_path_reads_keys_indexes_selectors_and_quoted_keys(
    text: str, expected: KeyPath
) -> None:
    assert parse_key_path(text) == expected


@pytest.mark.parametrize(("text", "expected"), GOOD_PATHS)
def test_format_key_path_is_the_canonical_inverse(text: str, expected: KeyPath) -> None:
    assert format_key_path(expected) == text
    assert parse_key_path(format_key_path(expected)) == expected


def test_single_quoted_bracket_key_is_accepted_and_formatted_canonically() -> None:
    assert parse_key_path("a['x.y'].b") == ("a", "x.y", "b")
    assert format_key_path(("a", "x.y", "b")) == 'a["x.y"].b'


def test_format_quotes_keys_that_plain_syntax_cannot_hold() -> None:
    path: KeyPath = (" padded", "", '"q', Selector("name", ""), Selector("name", '"x'))
    text = format_key_path(path)
    assert text == '[" padded"][""]["\\"q"][name=""][name="\\"x"]'
    assert parse_key_path(text) == path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty key"),
        (".a", "empty key"),
        ("a.", "empty key"),
        ("a..b", "empty key"),
        ("a.[0]", "empty key"),
        ("a[0", "unbalanced"),
        ("a]", "unbalanced"),
        ("a[0]]", "unbalanced"),
        ('a["x', "unbalanced"),
        ("a[x]", "expected a key, [0], [name=web]"),
        ("a[-1]", "expected a key, [0], [name=web]"),
        ("a[0]b", "after ']'"),
        ("a[=x]", "expected a key"),
        ("a[name=]", "expected a key"),
        ("a[na me=x]", "expected a key"),
        ('"a".b', "expected a key"),
        (" a", "spaces"),
        ("a. b", "spaces"),
    ],
)
def test_parse_key_path_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="bad key path") as info:
        parse_key_path(text)
    assert problem in str(info.value)


# ---- byte-exact splicing ------------------------------------------------------------------


def test_only_the_scalar_changes_comments_and_blank_lines_survive() -> None:
    text = (
        "# header comment\n"
        "\n"
        "image:   # the image\n"
        "    repository: nginx   # trailing\n"
        "\n"
        "    tag: 1.25.0    # pinned by CI\n"
        "    pullPolicy: IfNotPresent\n"
        "other: {a: 1,   b: [x, y]}\n"
    )
    assert edit(text, "image.tag", "1.26.1") == text.replace("1.25.0", "1.26.1")


def test_plain_value_stays_plain() -> None:
    assert edit("tag: v1.2.3\n", "tag", "v1.2.4") == "tag: v1.2.4\n"


def test_keeps_single_quotes() -> None:
    assert edit("tag: 'v1'\n", "tag", "v2") == "tag: 'v2'\n"


def test_keeps_double_quotes() -> None:
    assert edit('tag: "v1"  # c\n', "tag", "v2") == 'tag: "v2"  # c\n'


def test_quoted_float_like_value_keeps_its_quote_style() -> None:
    assert edit("tag: '1.5'\n", "tag", "1.10") == "tag: '1.10'\n"
    assert edit('tag: "1.5"\n', "tag", "1.10") == 'tag: "1.10"\n'


def test_flow_mapping_value_is_edited_in_place() -> None:
    assert edit("image: {repo: x, tag: v1}\n", "image.tag", "v2") == "image: {repo: x, tag: v2}\n"


def test_flow_context_quotes_values_with_flow_indicators() -> None:
    new = edit("image: {tag: v1, b: 2}\n", "image.tag", "a,b")
    assert new == 'image: {tag: "a,b", b: 2}\n'
    assert load(new)["image"]["tag"] == "a,b"
    assert edit("l: [v1, v2]\n", "l[1]", "x:y") == 'l: [v1, "x:y"]\n'


def test_crlf_line_endings_survive() -> None:
    text = "a:\r\n  tag: v1 # c\r\n  b: 2\r\n"
    assert edit(text, "a.tag", "v2") == "a:\r\n  tag: v2 # c\r\n  b: 2\r\n"


def test_missing_final_newline_survives() -> None:
    assert edit("a: 1\ntag: v1", "tag", "v2") == "a: 1\ntag: v2"


def test_document_markers_and_directives_survive() -> None:
    text = "%YAML 1.2\n---\ntag: v1\n...\n---\nother: 1\n...\n"
    new = edit(text, "tag", "v2")
    assert new == text.replace("v1", "v2")


def test_trailing_spaces_elsewhere_survive() -> None:
    text = "a: 1   \n   \ntag: v1  \nb:  \n  c: 2 \n"
    assert edit(text, "tag", "v2") == text.replace("v1", "v2")


def test_non_ascii_before_the_value_does_not_shift_the_splice() -> None:
    text = "# café \u2019quotes\u2019 😀 中文\nname: é😀\ntag: v1 # ok ✓\n"
    assert edit(text, "tag", "v2") == text.replace("v1", "v2")
    assert edit(text, "name", "ü") == text.replace("é😀", "ü")


def test_byte_order_mark_is_kept() -> None:
    text = "\ufeffa: 1\ntag: v1\n"
    assert edit(text, "tag", "v2") == "\ufeffa: 1\ntag: v2\n"


def test_non_indented_sequences_and_key_order_survive() -> None:
    text = "images:\n- name: b\n  newTag: '1'\n\n- newTag: '2'\n  name: a\nkind: K\n"
    assert edit(text, "images[name=a].newTag", "3") == text.replace("'2'", "'3'")


def test_multi_line_plain_scalar_is_replaced_whole() -> None:
    text = "desc: one\n  two\nnext: 1\n"
    assert edit(text, "desc", "three") == "desc: three\nnext: 1\n"


def test_locate_gives_the_span_and_style_of_the_scalar() -> None:
    text = "a:\n  tag: 'v1' # c\n"
    loc = locate(text, ("a", "tag"))
    assert text[loc.start : loc.end] == "'v1'"
    assert (loc.style, loc.value, loc.line, loc.flow, loc.document) == ("single", "v1", 2, False, 0)
    assert loc.where == "a.tag"


# ---- quoting and types --------------------------------------------------------------------

NOT_STRINGS_AS_PLAIN = [
    "1.10", "1.5", "1e3", "12e45678", "on", "On", "yes", "no", "NO", "y", "n", "off",
    "null", "Null", "~", "true", "False", "0x1F", "0o17", "0b101", "012", "1_000", "+1",
    ".5", "1.", ".inf", "-.inf", ".NaN", "2024-01-01", "2001-12-14t21:59:43.10-05:00",
    "1:30", "", "<<", "=",
]  # fmt: skip


@pytest.mark.parametrize("value", NOT_STRINGS_AS_PLAIN)
def test_plain_float_like_value_gains_quotes(value: str) -> None:
    new = edit("tag: v1 # c\n", "tag", value)
    assert new == f'tag: "{value}" # c\n'
    assert load(new)["tag"] == value
    assert load(new, "1.1")["tag"] == value


@pytest.mark.parametrize(
    "value",
    ["a: b", "a #b", "-x", "- x", "?x", ":x", "x:", ",x", "[x", "]x", "{x", "}x", "#x", "&x",
     "*x", "!x", "|x", ">x", "'x", '"x', "%x", "@x", "`x", " x", "x ", "a\nb", "tab\there",
     "...x", "bell\a", "nel\x85", "ls\u2028", "bom\ufeff"],
)  # fmt: skip
def test_value_that_plain_style_cannot_hold_gains_double_quotes(value: str) -> None:
    new = edit("tag: v1\n", "tag", value)
    assert new.startswith('tag: "')
    assert "\n" not in new[:-1]
    assert load(new)["tag"] == value
    assert load(new, "1.1")["tag"] == value


@pytest.mark.parametrize(
    "value",
    ["1.2.3", "v1.5", "8.2.3-alpine", "12-debian-12-r51", "latest", "a8f90611" + "0" * 32,
     "sha256:0123abcd", "registry.k8s.io:5000/x", "a-b_c", "x#y", "it's", 'say "x"', "é😀",
     "^0.80.5", 'back\\slash "q"', "0.12.*", "CONTAINER_IMAGES_TAG", "2024-01", "1.2e", "v1e3"],
)  # fmt: skip
def test_version_like_strings_stay_plain(value: str) -> None:
    new = edit("tag: v1\n", "tag", value)
    assert new == f"tag: {value}\n"
    assert load(new)["tag"] == value
    assert load(new, "1.1")["tag"] == value


def test_single_quote_inside_single_quoted_value_is_doubled() -> None:
    new = edit("tag: 'v1'\n", "tag", "it's")
    assert new == "tag: 'it''s'\n"
    assert load(new)["tag"] == "it's"


def test_double_quoted_value_escapes_backslash_quote_and_control_characters() -> None:
    new = edit('tag: "v1"\n', "tag", 'a\\b"c\td\x01é')
    assert new == 'tag: "a\\\\b\\"c\\td\\u0001é"\n'
    assert load(new)["tag"] == 'a\\b"c\td\x01é'


def test_single_quoted_value_needing_escapes_switches_to_double_quotes() -> None:
    # Single quotes cannot hold a newline or control character on one line.
    new = edit("tag: 'v1'\n", "tag", "a\nb")
    assert new == 'tag: "a\\nb"\n'


@pytest.mark.parametrize(
    "text",
    ["tag: v1\n", "tag: 'v1'\n", 'tag: "v1"\n', "tag:\n", 'tag: ""\n', "tag: ~\n",
     "a: {tag: v1, x: 1}\n", "a: [v1, x]\n"],
)  # fmt: skip
@pytest.mark.parametrize("value", ["plain", "1.0", "", " sp ", "a'b", 'a"b', "é\u2029😀", "x\\"])
def test_reloaded_value_equals_the_new_string_in_every_style(text: str, value: str) -> None:
    path = {"a: {": "a.tag", "a: [": "a[0]"}.get(text[:4], "tag")
    loaded = load(edit(text, path, value))
    got = loaded["a"]["tag"] if path == "a.tag" else loaded["a"][0] if path == "a[0]" else None
    assert (loaded["tag"] if path == "tag" else got) == value


def test_random_strings_read_back_exactly_in_every_style_and_context() -> None:
    rng = random.Random(20240101)
    alphabet = "aZ09 .:-_#'\"\\,[]{}&*!|>%@`?=~+\t\n\r\x00\x7f\x85\xa0é😀\u2028\ufeff\ud800"
    texts = {
        "tag": ["tag: v1\n", "tag: 'v1'\n", 'tag: "v1"\n', "tag:\n"],
        "a.tag": ["a: {tag: v}\n"],
    }
    for _ in range(300):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        for path, olds in texts.items():
            for old in olds:
                new = edit(old, path, value)
                for version in ("1.2", "1.1"):
                    loaded = load(new, version)
                    got = loaded["a"]["tag"] if path == "a.tag" else loaded["tag"]
                    assert got == value, (old, value, new, version)


@pytest.mark.parametrize("text", ["tag: |\n  v1\n", "tag: >-\n  v1\n"])
def test_block_scalar_target_is_refused(text: str) -> None:
    assert "block scalar" in edit_error(text, "tag")


def test_get_scalar_reads_the_string_value() -> None:
    text = "a: ~\nb: ''\nc:\nd: 1.5\ne: 'x''y'\nf: null\ng: |\n  blk\n"
    got = {k: get_scalar(text, (k,)) for k in "abcdefg"}
    assert got == {"a": None, "b": "", "c": None, "d": "1.5", "e": "x'y", "f": None, "g": "blk\n"}


def test_explicit_str_tag_survives_and_other_tags_are_refused() -> None:
    assert edit("tag: !!str 1.0\n", "tag", "2.0") == 'tag: !!str "2.0"\n'
    assert "explicit tag" in edit_error("tag: !!int 1\n", "tag", "2")


# ---- empty and null targets ---------------------------------------------------------------


def test_empty_value_gets_the_value_right_after_the_colon() -> None:
    assert edit("a:\n  tag:\n  b: 1\n", "a.tag", "v1") == "a:\n  tag: v1\n  b: 1\n"


def test_empty_value_followed_by_a_comment() -> None:
    assert edit("tag: # set by CI\nb: 1\n", "tag", "v1") == "tag: v1 # set by CI\nb: 1\n"


def test_empty_value_at_end_of_file_without_newline() -> None:
    assert edit("a: 1\ntag:", "tag", "v1") == "a: 1\ntag: v1"


def test_empty_value_with_crlf() -> None:
    assert edit("tag:\r\nb: 1\r\n", "tag", "1.0") == 'tag: "1.0"\r\nb: 1\r\n'


def test_empty_value_in_a_flow_mapping() -> None:
    assert edit("a: {tag: , b: 1}\n", "a.tag", "v1") == "a: {tag: v1 , b: 1}\n"


def test_empty_list_item_gets_the_value_after_the_dash() -> None:
    assert edit("l:\n-\n- x\n", "l[0]", "v1") == "l:\n- v1\n- x\n"


def test_empty_double_quoted_value_keeps_double_quotes() -> None:
    assert edit('tag: "" # defaults\n', "tag", "v1") == 'tag: "v1" # defaults\n'


@pytest.mark.parametrize("null", ["~", "null", "Null"])
def test_null_value_is_replaced(null: str) -> None:
    assert edit(f"tag: {null} # c\n", "tag", "v1") == "tag: v1 # c\n"


# ---- errors -------------------------------------------------------------------------------

NESTED = "a: 1\nimage:\n  repository: r\n  tags: [t]\nlist:\n- name: web\n  v: 1\n- name: api\n"


def test_missing_key_names_the_path_the_parent_and_its_line() -> None:
    message = edit_error(NESTED, "image.tag")
    assert message == 'image.tag: key "tag" not found under "image" (line 2)'


def test_missing_top_level_key() -> None:
    assert 'key "nope" not found under the top level' in edit_error(NESTED, "nope")


def test_index_out_of_range() -> None:
    message = edit_error(NESTED, "list[5].v")
    assert 'index 5 is out of range: "list" has 2 items (line 5)' in message


def test_no_list_item_matching_the_selector_lists_what_is_there() -> None:
    message = edit_error(NESTED, "list[name=db].v")
    assert 'no item with name=db in "list" (line 5); names there: api, web' in message


def test_several_list_items_matching_the_selector_are_refused() -> None:
    text = "deps:\n- name: m\n  version: 1\n- name: m\n  version: 2\n"
    message = edit_error(text, "deps[name=m].version")
    assert "2 items match [name=m]" in message
    assert "(lines 2, 4)" in message
    assert "deps[0]" in message


def test_target_that_is_a_mapping_or_a_list_is_refused() -> None:
    assert "is a mapping, not a scalar value (line 2)" in edit_error(NESTED, "image")
    assert "is a list, not a scalar value" in edit_error(NESTED, "image.tags")


def test_path_going_through_a_scalar_is_refused() -> None:
    message = edit_error(NESTED, "image.repository.x")
    assert '"image.repository" is a scalar, not a mapping (line 3)' in message


def test_key_on_a_list_and_index_on_a_mapping_are_refused() -> None:
    assert '"list" is a list, not a mapping' in edit_error(NESTED, "list.name")
    assert '"image" is a mapping, not a list' in edit_error(NESTED, "image[0]")


def test_missing_item_selector_field_skips_items_without_it() -> None:
    text = "l:\n- other: 1\n- plain\n- name: x\n  v: 1\n"
    assert edit(text, "l[name=x].v", "2") == text.replace("v: 1", 'v: "2"')


def test_edit_error_is_a_usage_error_with_exit_code_2() -> None:
    with pytest.raises(UsageError) as info:
        edit(NESTED, "image.tag", "x")
    assert info.value.exit_code == 2


def test_key_path_may_be_given_as_text() -> None:
    assert set_scalar("a:\n  tag: v1\n", "a.tag", "v2") == "a:\n  tag: v2\n"
    assert get_scalar("l: [{name: x, v: '1'}]\n", "l[name=x].v") == "1"
    with pytest.raises(EditError, match=r"bad key path 'a\.\.b'"):
        set_scalar("a: 1\n", "a..b", "x")


def test_empty_key_path_is_refused() -> None:
    with pytest.raises(EditError, match="empty key path"):
        set_scalar("a: 1\n", (), "x")


def test_empty_file_is_refused() -> None:
    assert "no YAML document" in edit_error("# only a comment\n", "tag")


# ---- anchors and aliases ------------------------------------------------------------------

ANCHORED = (
    "image: &image\n"
    "  repository: r\n"
    "  tag: v1\n"
    "version: &v 1.0.0\n"
    "sub:\n"
    "  loki:\n"
    "    image: *image\n"
    "  version: *v\n"
    "  list:\n"
    "  - *image\n"
)


def test_alias_on_the_way_is_refused_naming_the_anchor_definition() -> None:
    message = edit_error(ANCHORED, "sub.loki.image.tag")
    assert '"sub.loki.image" is an alias (*image)' in message
    assert "&image defined at line 1" in message
    assert message.endswith("pin the anchor's definition instead: image.tag")


def test_alias_list_item_is_refused() -> None:
    assert "instead: image.tag" in edit_error(ANCHORED, "sub.list[0].tag")


def test_scalar_reached_through_an_alias_is_refused() -> None:
    message = edit_error(ANCHORED, "sub.version")
    assert "alias (*v) of the anchor &v defined at line 4" in message
    assert message.endswith("instead: version")


def test_anchored_scalar_definition_is_edited_and_keeps_its_anchor() -> None:
    new = edit(ANCHORED, "version", "1.1.0")
    assert new == ANCHORED.replace("&v 1.0.0", "&v 1.1.0")
    assert load(new)["sub"]["version"] == "1.1.0"


def test_anchored_mapping_definition_is_edited_and_every_alias_follows() -> None:
    new = edit(ANCHORED, "image.tag", "v2")
    assert new == ANCHORED.replace("tag: v1", "tag: v2")
    assert load(new)["sub"]["loki"]["image"]["tag"] == "v2"


def test_anchor_then_comment_then_value_on_the_next_line() -> None:
    text = "tag: &t # shared\n  v1\nother: *t\n"
    assert edit(text, "tag", "v2") == "tag: &t # shared\n  v2\nother: *t\n"


def test_anchor_on_an_empty_value() -> None:
    assert edit("tag: &t\nb: 1\n", "tag", "v1") == "tag: &t v1\nb: 1\n"


def test_key_merged_in_with_merge_key_is_refused() -> None:
    text = "base: &b\n  tag: v1\napp:\n  <<: *b\n  name: x\n"
    message = edit_error(text, "app.tag")
    assert 'merged in by "<<" (line 3)' in message
    assert message.endswith("instead: base.tag")


def test_recursive_alias_is_refused_without_hanging() -> None:
    # Refused before composing, like yaml.v2 ("anchor 'a' value contains itself"): code that
    # walks the whole document (helmlock) would otherwise recurse forever.
    text = "a: &a\n  v: 1\n  self: *a\n"
    assert (
        edit_error(text, "a.self.v")
        == "a.self.v: alias *a refers to a node that contains it at line 3"
    )


# ---- multi-document files -----------------------------------------------------------------

MULTI = (
    "---\n"
    "kind: Deployment\n"
    "metadata: {name: web, namespace: prod}\n"
    "spec:\n  image: web:1\n"
    "---\n"
    "kind: Deployment\n"
    "metadata: {name: api, namespace: prod}\n"
    "spec:\n  image: api:1\n"
    "---\n"
    "kind: Service\n"
    "metadata: {name: web, namespace: prod}\n"
    "port: 80\n"
)


def test_multi_doc_without_selector_uses_the_only_document_with_the_path() -> None:
    assert edit(MULTI, "port", "8080") == MULTI.replace("port: 80", 'port: "8080"')


def test_multi_doc_path_in_several_documents_asks_for_a_doc_selector() -> None:
    message = edit_error(MULTI, "spec.image")
    assert "found in 2 documents" in message
    assert "document 0 (Deployment/web, line 2)" in message
    assert "doc selector" in message


def test_doc_selector_by_kind_and_name() -> None:
    new = edit(MULTI, "spec.image", "api:2", DocSelector(kind="Deployment", name="api"))
    assert new == MULTI.replace("api:1", "api:2")


def test_doc_selector_by_namespace_and_index() -> None:
    new = edit(MULTI, "spec.image", "web:2", DocSelector(namespace="prod", index=0))
    assert new == MULTI.replace("web:1", "web:2")


def test_doc_selector_matching_no_document() -> None:
    message = edit_error(MULTI, "spec.image", doc=DocSelector(kind="StatefulSet"))
    assert "no document matches doc: {kind: StatefulSet}" in message


def test_doc_selector_matching_several_documents() -> None:
    message = edit_error(MULTI, "spec.image", doc=DocSelector(name="web"))
    assert "2 documents match doc: {name: web}" in message


def test_doc_selector_naming_a_document_without_the_path() -> None:
    message = edit_error(MULTI, "spec.image", doc=DocSelector(kind="Service"))
    assert 'key "spec" not found under the top level' in message
    assert "in document 2 (Service/web, line 12)" in message


def test_path_missing_from_every_document_reports_the_deepest_miss() -> None:
    message = edit_error(MULTI, "spec.tag")
    assert "not in any of the 3 documents" in message
    assert 'key "tag" not found under "spec"' in message


def test_doc_index_counts_empty_documents() -> None:
    text = "a: 1\n---\n---\na: 2\n"
    assert edit(text, "a", "x", DocSelector(index=2)) == "a: 1\n---\n---\na: x\n"


# ---- duplicates, malformed files, no-ops --------------------------------------------------


def test_duplicate_key_on_the_path_is_refused() -> None:
    message = edit_error("image:\n  tag: a\n  tag: b\n", "image.tag")
    assert 'key "tag" appears 2 times under "image" (lines 2, 3)' in message


def test_duplicate_key_elsewhere_does_not_block_the_edit() -> None:
    assert edit("x: 1\nx: 2\ntag: v1\n", "tag", "v2") == "x: 1\nx: 2\ntag: v2\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [1\n", "line 2"),
        ("a: b: c\n", "mapping values are not allowed here (line 1, column 5)"),
        ("a: 1\n\tb: 2\n", "line 2"),
        ("a: *missing\n", "found undefined alias"),
        ("a: \x07\n", "unacceptable character"),
    ],
)
def test_malformed_yaml_is_a_one_line_edit_error_with_the_line(text: str, problem: str) -> None:
    message = edit_error(text, "a")
    assert "the file is not valid YAML" in message
    assert problem in message


@pytest.mark.parametrize("text", ["tag: v1\n", "tag: 'v1'\n", 'tag: "v1"\n', 'tag: "\\x76\\x31"\n'])
def test_setting_the_current_value_returns_the_same_text(text: str) -> None:
    assert set_scalar(text, ("tag",), "v1") is text


def test_current_value_that_is_not_a_string_is_quoted_rather_than_kept() -> None:
    # `tag: 1.10` reads back as the float 1.1; the pin wants the string "1.10".
    assert edit("tag: 1.10\n", "tag", "1.10") == 'tag: "1.10"\n'


# ---- limits -------------------------------------------------------------------------------


def nested(levels: int) -> str:
    """`levels` collections deep: the top-level mapping, then lists in lists."""
    return "tag: v1\ndeep: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"


def test_nesting_up_to_the_limit_is_read() -> None:
    assert edit(nested(MAX_DEPTH), "tag", "v2") == nested(MAX_DEPTH).replace("v1", "v2")
    text = "tag: v1\n" + "".join(f"{' ' * n}k:\n" for n in range(MAX_DEPTH))
    assert get_scalar(text, "tag") == "v1"


@pytest.mark.parametrize("libyaml", [True, False])
def test_nesting_past_the_limit_is_refused(libyaml: bool) -> None:
    with pytest.raises(LimitError, match=f"deeper than the limit of {MAX_DEPTH} levels at line 2"):
        check_limits(nested(MAX_DEPTH + 1), libyaml=libyaml)
    text = "tag: v1\n" + "".join(f"{' ' * n}k:\n" for n in range(MAX_DEPTH + 1))
    with pytest.raises(LimitError, match=f"at line {MAX_DEPTH + 2}$"):
        check_limits(text, libyaml=libyaml)


def test_size_is_counted_in_utf8_bytes_before_parsing() -> None:
    check_limits("#" * MAX_FILE_BYTES)
    with pytest.raises(LimitError, match=r"file size 10,485,761 bytes is over the 10 MiB limit$"):
        check_limits("#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(LimitError, match="over the 10 MiB limit"):
        check_limits("# " + "é" * (MAX_FILE_BYTES // 2))  # fewer characters than bytes
    with pytest.raises(LimitError, match=r"file size 101 bytes is over the 100 bytes limit"):
        check_limits("[" * 101, max_bytes=100)  # refused on size, whatever the content


def laughs(levels: int, width: int, name: str = "l") -> str:
    lines = [f"{name}0: &{name}0 [{', '.join(['x'] * width)}]"]
    for n in range(1, levels):
        aliases = ", ".join([f"*{name}{n - 1}"] * width)
        lines.append(f"{name}{n}: &{name}{n} [{aliases}]")
    return "tag: v1\n" + "\n".join(lines) + "\n"


def test_alias_expansion_up_to_the_limit_is_read() -> None:
    # One list of MAX_ALIAS_NODES - 1 scalars, aliased once: the alias reaches the limit exactly.
    items = ", ".join(["x"] * (MAX_ALIAS_NODES - 1))
    text = f"tag: v1\nbig: &big [{items}]\ncopy: *big\n"
    assert get_scalar(text, "tag") == "v1"
    with pytest.raises(LimitError, match=f"more than the limit of {MAX_ALIAS_NODES:,} nodes"):
        check_limits(text + "again: *big\n")


@pytest.mark.parametrize("libyaml", [True, False])
def test_alias_bomb_is_refused_where_it_crosses_the_limit(libyaml: bool) -> None:
    # 9 x 9: 387 million nodes once expanded. Level 6 (9**6 > 100,000) is on line 7.
    with pytest.raises(
        LimitError, match="expand to more than the limit of 100,000 nodes at line 7"
    ):
        check_limits(laughs(9, 9), libyaml=libyaml)


def test_alias_bomb_that_libyaml_cannot_parse_is_still_refused() -> None:
    # libyaml refuses non-ASCII anchor names that YAML 1.2 (and the composer used here) allows.
    text = laughs(9, 9, name="é")
    with pytest.raises(EditError, match="tag: aliases expand to more than the limit"):
        get_scalar(text, "tag")


def test_anchors_are_per_document_and_the_alias_limit_per_file() -> None:
    assert "undefined alias" in edit_error("a: &x 1\n---\nb: *x\n", "b", doc=DocSelector(index=1))
    doc = laughs(5, 9)  # aliases reach 74,718 nodes: under the limit once, not twice
    assert get_scalar(doc, "tag") == "v1"
    with pytest.raises(LimitError, match=r"more than the limit of 100,000 nodes at line 13$"):
        check_limits(doc + "---\n" + doc)


def test_limit_errors_name_the_key_path() -> None:
    assert edit_error(nested(MAX_DEPTH + 1), "tag") == (
        f"tag: nested deeper than the limit of {MAX_DEPTH} levels at line 2"
    )


def test_anchors_and_aliases_can_be_refused_altogether() -> None:
    check_limits("a: 1\n", aliases=False)
    with pytest.raises(LimitError, match=r"^anchor &a: anchors and aliases are not allowed") as e:
        check_limits("x: 1\na: &a 1\nb: *a\n", aliases=False)
    assert e.value.line == 2
    with pytest.raises(LimitError, match=r"^alias \*nowhere: .* at line 1$"):
        check_limits("a: *nowhere\n", aliases=False)


def test_a_syntax_error_is_left_to_the_composer() -> None:
    check_limits("a: [1\n")
    assert "not valid YAML" in edit_error("a: [1\n", "a")
