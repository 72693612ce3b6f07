"""promoter.helmlock against the Chart.yaml/Chart.lock pairs real charts publish.

Every expected digest and JSON text here was written by Helm or checked with Go itself: the
corpus digests come from the charts' own Chart.lock files, and the edge-case vector below was
produced by a Go program that decodes with github.com/ghodss/yaml (the code sigs.k8s.io/yaml
grew from; its YAML -> JSON coercion is the same) into a copy of chart.Dependency and hashes
json.Marshal([2][]*Dependency{...}) the way internal/resolver.HashReq does.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from promoter.errors import EditError
from promoter.helmlock import check_lock, hashreq_json, lock_digest, lock_updates

CORPUS = Path(__file__).parent / "corpus" / "chart-locks"
PAIRS = sorted(p.name for p in CORPUS.iterdir() if (p / "Chart.lock").exists())
NOW = datetime(2024, 6, 19, 12, 0, 0, 123456, tzinfo=UTC)


def read(pair: str) -> tuple[str, str]:
    return (CORPUS / pair / "Chart.yaml").read_text(), (CORPUS / pair / "Chart.lock").read_text()


def safe_load(text: str) -> dict[str, object]:
    data = YAML(typ="safe").load(text)
    assert isinstance(data, dict)
    return data


def splice(lock_text: str, edits: list[tuple[str, str]]) -> str:
    """Apply edits to a lock in the layout Helm writes (yaml.v2: `- name:` items, 2-space keys).

    A stand-in for promoter.yamledit.set_scalar so these tests stand on their own; it only
    knows this one layout, which every corpus lock has. test_full_cycle_with_yamledit checks
    that set_scalar produces the very same bytes.
    """
    lines = lock_text.splitlines(keepends=True)
    for path, value in edits:
        quoted = (
            json.dumps(value)
            if path == "generated" or not re.fullmatch(r"[\w./:+-]+", value)
            else value
        )
        if m := re.fullmatch(r"dependencies\[(\d+)\]\.(\w+)", path):
            items = [i for i, line in enumerate(lines) if line.startswith("- ")]
            start = items[int(m[1])]
            end = next(
                (i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")),
                len(lines),
            )
            key_re = re.compile(rf"(- |  ){m[2]}: ")
            at = next(i for i in range(start, end) if key_re.match(lines[i]))
            lines[at] = key_re.match(lines[at])[0] + quoted + "\n"  # type: ignore[index]
        else:
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{path}: "))
            lines[at] = f"{path}: {quoted}\n"
    return "".join(lines)


def bump(chart_text: str, index: int, old: str, new: str) -> str:
    """Replace the `version:` of the index-th dependency (by occurrence of `version: old`)."""
    doc = safe_load(chart_text)
    deps = doc["dependencies"]
    assert isinstance(deps, list)
    nth = sum(1 for d in deps[:index] if str(d.get("version")) == old)
    # Indented or list-item `version:` lines only: the chart's own top-level version is no pin.
    hits = list(re.finditer(rf'(?m)^((?: +|- )(?:- )?version: )"?{re.escape(old)}"?$', chart_text))
    m = hits[nth]
    return chart_text[: m.start()] + m[1] + json.dumps(new) + chart_text[m.end() :]


# --- the digest --------------------------------------------------------------------------


@pytest.mark.parametrize("pair", PAIRS)
def test_corpus_digest_reproduces(pair: str) -> None:
    chart_text, lock_text = read(pair)
    chart, lock = safe_load(chart_text), safe_load(lock_text)
    assert lock_digest(chart["dependencies"], lock["dependencies"]) == lock["digest"]  # type: ignore[arg-type]
    assert check_lock(chart_text, lock_text) is None


def test_corpus_is_all_there() -> None:
    assert PAIRS == [
        "bitnami-grafana-loki",
        "bitnami-kube-prometheus",
        "grafana-tempo-distributed",
        "kong-ingress",
        "kong-operator",
        "prometheus",
    ]


# What Helm hashed for kong-ingress: struct field order, omitempty (no tags/enabled/import-values,
# lock entries without condition/alias), and ">=" escaped HTML-safe as \u003e.
KONG_JSON = (
    '[[{"name":"kong","version":"\\u003e=2.39.0","repository":"https://charts.konghq.com",'
    '"condition":"controller.enabled","alias":"controller"},'
    '{"name":"kong","version":"\\u003e=2.39.0","repository":"https://charts.konghq.com",'
    '"condition":"gateway.enabled","alias":"gateway"}],'
    '[{"name":"kong","version":"2.39.3","repository":"https://charts.konghq.com"},'
    '{"name":"kong","version":"2.39.3","repository":"https://charts.konghq.com"}]]'
)


def test_kong_hashes_exactly_this_json() -> None:
    chart, lock = (safe_load(text) for text in read("kong-ingress"))
    text = hashreq_json(chart["dependencies"], lock["dependencies"])  # type: ignore[arg-type]
    assert text == KONG_JSON
    assert "sha256:" + hashlib.sha256(text.encode()).hexdigest() == lock["digest"]
    # Without Go's HTML-safe escaping the digest would not match: the escape is load-bearing.
    plain = text.replace("\\u003e", ">")
    assert "sha256:" + hashlib.sha256(plain.encode()).hexdigest() != lock["digest"]


def test_missing_repository_is_marshalled_as_empty_string() -> None:
    chart = safe_load(read("kong-operator")[0])  # no `repository:` key on any dependency
    text = hashreq_json(chart["dependencies"], None)  # type: ignore[arg-type]
    assert text.startswith('[[{"name":"ko-crds","version":"1.1.0","repository":""},')
    assert text.endswith("],null]")  # a nil lock slice is JSON null, as in Go


# A Chart.yaml that exercises every conversion on Helm's road (YAML 1.1 plain scalars, numbers
# coerced into string fields with strconv 'g' at float32 precision, case-insensitive keys,
# sanitizing, interface{} numbers as float64, sorted map keys, omitempty, HTML-safe escapes).
EDGE_CHART = """\
apiVersion: v2
name: edge
version: 1.0.0
dependencies:
  - name: app
    version: 1.0
    repository: "https://example.com/a?x=1&y=<2>"
    condition: "a.enabled,\\tb.enabled"
    tags: [yes, 1.10, 0x1F, null]
    enabled: false
    import-values:
      - child: default.data
        parent: myimports
      - {z: 1, a: [1e6, 0.000001, 1e-7, 12345678901234567890, -0.0], B: ~, 2: on}
    alias: "line\\u2028sep"
    Extra: whatever
  - NAME: local
    Version: "1.x"
    enabled: yes
    tags: []
  - name: big
    version: 123456789
    repository: ""
    condition: 1e21
"""
EDGE_LOCK = """\
dependencies:
- name: app
  repository: https://example.com/a?x=1&y=<2>
  version: "1"
- name: local
  repository: ""
  version: 1.x
- name: big
  repository: ""
  version: "1.2345679e+08"
digest: sha256:0000
generated: "2024-06-19T11:50:38.361756194+02:00"
"""
EDGE_JSON = (  # printed by the Go program described at the top
    '[[{"name":"app","version":"1","repository":"https://example.com/a?x=1\\u0026y=\\u003c2\\u003e",'
    '"condition":"a.enabled, b.enabled","tags":["true","1.1","31",""],"import-values":'
    '[{"child":"default.data","parent":"myimports"},{"2":true,"B":null,'
    '"a":[1000000,0.000001,1e-7,12345678901234567000,-0],"z":1}],"alias":"line\\u2028sep"},'
    '{"name":"local","version":"1.x","repository":"","enabled":true},'
    '{"name":"big","version":"123456789","repository":"","condition":"1e+21"}],'
    '[{"name":"app","version":"1","repository":"https://example.com/a?x=1\\u0026y=\\u003c2\\u003e"},'
    '{"name":"local","version":"1.x","repository":""},'
    '{"name":"big","version":"1.2345679e+08","repository":""}]]'
)
EDGE_DIGEST = "sha256:7e80a0ba6c209e78d31ebe6769fbd88d599b4992efa010d048a14556644a24d8"


def test_edge_cases_match_go() -> None:
    assert "sha256:" + hashlib.sha256(EDGE_JSON.encode()).hexdigest() == EDGE_DIGEST
    # check_lock reads the text the way Helm does, so it lands on Go's digest, i.e. on EDGE_JSON.
    assert check_lock(EDGE_CHART, EDGE_LOCK.replace("sha256:0000", EDGE_DIGEST)) is None
    assert EDGE_DIGEST in (check_lock(EDGE_CHART, EDGE_LOCK) or "")


@pytest.mark.parametrize(
    ("yaml_value", "helm_sees"),
    [
        ("1.0", "1"),  # a float: strconv.FormatFloat(v, 'g', -1, 32)
        ("1.10", "1.1"),
        ("2.5", "2.5"),
        ("1e6", "1e+06"),
        ("1234567.0", "1.234567e+06"),
        ("0.00001", "1e-05"),
        ("010", "8"),  # yaml.v2 reads a leading 0 as octal
        ("1_000", "1000"),
        ("on", "true"),  # YAML 1.1 booleans
        ("n", "false"),
        ("2024-01-02", "2024-01-02"),  # timestamps stay strings
        ('"1.0"', "1.0"),
        ("'1.0'", "1.0"),
        ("1.2.3", "1.2.3"),
        ("100000.0", "100000"),
        ("0.0001", "0.0001"),
    ],
)
def test_scalars_become_what_helm_reads(yaml_value: str, helm_sees: str) -> None:
    """Each right-hand side is what the Go program printed for that YAML value."""
    chart = f"dependencies:\n- name: x\n  version: {yaml_value}\n  repository: r\n"
    locked = [{"name": "x", "version": "9.9.9", "repository": "r"}]
    digest = lock_digest([{"name": "x", "version": helm_sees, "repository": "r"}], locked)
    lock = f"dependencies:\n- name: x\n  version: 9.9.9\n  repository: r\ndigest: {digest}\n"
    assert check_lock(chart, lock) is None


def test_check_lock_reports_stale_lock_in_one_line() -> None:
    chart_text, lock_text = read("grafana-tempo-distributed")
    stale = bump(chart_text, 0, "4.1.0", "5.0.0")
    message = check_lock(stale, lock_text)
    assert message is not None and "\n" not in message
    assert "sha256:fca11d5c0f53769e7944f4fc0ce727320e8ddd3c660446238580b6e6795bda87" in message
    assert "out of sync" in message


def test_check_lock_reports_unreadable_files() -> None:
    message = check_lock("dependencies: [", "digest: x\n")
    assert message is not None and message.startswith("Chart.lock cannot be checked: Chart.yaml")
    assert "\n" not in message
    assert "must be a list" in (check_lock("dependencies: 3\n", "digest: x\n") or "")


def test_repository_alias_hashes_as_the_locked_url() -> None:
    # Manager.resolveRepoNames rewrites "@name" to the repository URL before hashing, and the
    # lock records that URL: a lock made for the URL spelling also fits the "@name" spelling.
    chart_text, lock_text = read("grafana-tempo-distributed")
    aliased = chart_text.replace("repository: https://charts.min.io/", "repository: '@minio'")
    assert aliased != chart_text
    assert check_lock(aliased, lock_text) is None


# --- updating the lock -------------------------------------------------------------------


@pytest.mark.parametrize("pair", PAIRS)
def test_unchanged_chart_needs_no_lock_edits(pair: str) -> None:
    assert lock_updates(*read(pair), NOW) == []


def test_exact_bump_updates_version_digest_and_generated() -> None:
    chart_text, lock_text = read("grafana-tempo-distributed")
    after = bump(chart_text, 2, "0.40.0", "0.41.2")  # rollout-operator, aliased rollout_operator
    edits = lock_updates(after, lock_text, NOW)
    assert [path for path, _ in edits] == ["dependencies[2].version", "digest", "generated"]
    assert edits[0] == ("dependencies[2].version", "0.41.2")
    assert edits[2] == ("generated", "2024-06-19T12:00:00.123456Z")
    new_lock = splice(lock_text, edits)
    assert check_lock(after, new_lock) is None
    assert check_lock(after, lock_text) is not None
    old_lines, new_lines = lock_text.splitlines(), new_lock.splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [
        ("  version: 0.40.0", "  version: 0.41.2"),
        (f"digest: {safe_load(lock_text)['digest']}", f"digest: {edits[1][1]}"),
        (
            'generated: "2025-12-23T21:46:52.324247+02:00"',
            'generated: "2024-06-19T12:00:00.123456Z"',
        ),
    ]


def test_repeated_names_are_matched_by_index() -> None:
    # Kong: the same chart twice under two aliases. Pinning both to exact versions (different
    # ones) must edit each lock entry by its index, not by name.
    chart_text, lock_text = read("kong-ingress")
    after = bump(bump(chart_text, 0, ">=2.39.0", "2.40.0"), 1, ">=2.39.0", "2.41.1")
    edits = dict(lock_updates(after, lock_text, NOW))
    assert edits["dependencies[0].version"] == "2.40.0"
    assert edits["dependencies[1].version"] == "2.41.1"
    assert check_lock(after, splice(lock_text, list(edits.items()))) is None


def test_range_beside_the_pin_needs_the_old_chart_yaml() -> None:
    # prometheus: four "x.y.*" ranges. Pinning one exactly leaves three ranges whose locked
    # versions are only safe to keep if they did not move; the pre-edit Chart.yaml proves it.
    chart_text, lock_text = read("prometheus")
    after = bump(chart_text, 1, "8.4.*", "8.5.0")
    with pytest.raises(
        EditError, match=r"dependencies\[0\] \(alertmanager\) has the version range"
    ):
        lock_updates(after, lock_text, NOW)
    edits = lock_updates(after, lock_text, NOW, chart_yaml_text_before=chart_text)
    assert [p for p, _ in edits] == ["dependencies[1].version", "digest", "generated"]
    assert check_lock(after, splice(lock_text, edits)) is None


def test_without_old_text_exact_pins_beside_ranges_are_verified_by_the_digest() -> None:
    # bitnami-grafana-loki: make `common` exact first (a lock Helm would accept), then bump it:
    # the recorded digest confirms that only the exact pin moved, so the ranges keep their locks.
    chart_text, lock_text = read("bitnami-grafana-loki")
    pinned = bump(chart_text, 5, "2.x.x", "2.31.4")
    lock_pinned = splice(
        lock_text, lock_updates(pinned, lock_text, NOW, chart_yaml_text_before=chart_text)
    )
    assert check_lock(pinned, lock_pinned) is None
    after = bump(pinned, 5, "2.31.4", "2.31.5")
    edits = lock_updates(after, lock_pinned, NOW)
    assert [p for p, _ in edits] == ["dependencies[5].version", "digest", "generated"]
    assert check_lock(after, splice(lock_pinned, edits)) is None


@pytest.mark.parametrize(
    "version",
    ["^1.2.0", "1.x", ">=2", "~1.2", "*", "1.2.*", "1.2", "1.2.3 || 1.3.0", ">= 1.2.3, < 2"],
)
def test_a_pin_to_a_range_is_refused(version: str) -> None:
    chart_text, lock_text = read("grafana-tempo-distributed")
    after = bump(chart_text, 0, "4.1.0", version)
    for before in (None, chart_text):
        with pytest.raises(EditError) as err:
            lock_updates(after, lock_text, NOW, chart_yaml_text_before=before)
        assert err.value.exit_code == 2
        assert "cannot lock a range without the chart repository index" in str(err.value)
        assert "exact version" in str(err.value)


@pytest.mark.parametrize(
    ("version", "locked"),
    [
        ("4.1.1", "4.1.1"),
        ("=4.2.0", "4.2.0"),
        ("5.0.0-rc.1", "5.0.0-rc.1"),
        ("5.0.0+b.7", "5.0.0+b.7"),
    ],
)
def test_exact_versions_are_copied(version: str, locked: str) -> None:
    chart_text, lock_text = read("grafana-tempo-distributed")
    after = bump(chart_text, 0, "4.1.0", version)
    edits = lock_updates(after, lock_text, NOW)
    assert edits[0] == ("dependencies[0].version", locked)
    assert check_lock(after, splice(lock_text, edits)) is None


def test_repository_change_is_copied() -> None:
    chart_text, lock_text = read("grafana-tempo-distributed")
    after = bump(chart_text, 0, "4.1.0", "4.1.1").replace(
        "https://charts.min.io/", "https://charts.min.io"
    )
    edits = lock_updates(after, lock_text, NOW)
    assert edits[:2] == [
        ("dependencies[0].version", "4.1.1"),
        ("dependencies[0].repository", "https://charts.min.io"),
    ]
    assert check_lock(after, splice(lock_text, edits)) is None


def test_local_subchart_without_repository_copies_its_version_verbatim() -> None:
    # resolver.Resolve locks a charts/ sub-chart (repository "") at the Chart.yaml version as
    # written, range or not: no index is involved, so nothing needs refusing.
    chart_text, lock_text = read("kong-operator")
    for new in ("1.2.0", "1.x"):
        after = bump(chart_text, 0, "1.1.0", new)
        edits = lock_updates(after, lock_text, NOW)
        assert edits[0] == ("dependencies[0].version", new)
        new_lock = splice(lock_text, edits)
        assert 'repository: ""' in new_lock
        assert check_lock(after, new_lock) is None


def test_condition_change_only_rewrites_digest_and_generated() -> None:
    # The digest covers every field, so the lock changes although no version did.
    chart_text, lock_text = read("grafana-tempo-distributed")  # exact versions only
    after = chart_text.replace("condition: minio.enabled", "condition: minio.on")
    edits = lock_updates(after, lock_text, NOW)
    assert [p for p, _ in edits] == ["digest", "generated"]
    assert check_lock(after, splice(lock_text, edits)) is None
    # Beside ranges (kong), the old Chart.yaml is needed to tell that no range moved.
    chart_text, lock_text = read("kong-ingress")
    after = chart_text.replace("condition: gateway.enabled", "condition: gateway.on")
    with pytest.raises(EditError, match="version range"):
        lock_updates(after, lock_text, NOW)
    edits = lock_updates(after, lock_text, NOW, chart_yaml_text_before=chart_text)
    assert [p for p, _ in edits] == ["digest", "generated"]
    assert check_lock(after, splice(lock_text, edits)) is None


def test_adding_a_dependency_is_refused() -> None:
    chart_text, lock_text = read("kong-operator")
    after = chart_text + "  - name: extra\n    version: 1.0.0\n"
    with pytest.raises(EditError, match=r"locks 3 dependencies, Chart\.yaml has 4"):
        lock_updates(after, lock_text, NOW)


def test_reordered_lock_is_refused() -> None:
    chart_text, lock_text = read("grafana-tempo-distributed")
    after = chart_text.replace("name: minio", "name: minio2")
    with pytest.raises(EditError, match=r"dependencies\[0\] is 'minio', Chart.yaml has 'minio2'"):
        lock_updates(after, lock_text, NOW)


def test_generated_is_go_rfc3339nano_in_utc() -> None:
    chart_text, lock_text = read("kong-operator")
    after = bump(chart_text, 0, "1.1.0", "1.2.0")
    plus2 = timezone(timedelta(hours=2))
    for now, text in [
        (datetime(2026, 7, 17, 11, 21, 47, 202490, tzinfo=plus2), "2026-07-17T09:21:47.20249Z"),
        (datetime(2026, 7, 17, 9, 21, 47, tzinfo=UTC), "2026-07-17T09:21:47Z"),
    ]:
        assert lock_updates(after, lock_text, now)[-1] == ("generated", text)
    with pytest.raises(ValueError, match="timezone-aware"):
        lock_updates(after, lock_text, datetime(2026, 7, 17))


def test_full_cycle_with_yamledit() -> None:
    yamledit = pytest.importorskip(
        "promoter.yamledit", reason="promoter.yamledit (set_scalar) has not landed yet"
    )
    for pair, index, new in [
        ("grafana-tempo-distributed", 0, "4.2.0"),
        ("kong-operator", 2, "1.7.0"),
        ("kong-ingress", 0, "2.40.0"),
    ]:
        chart_text, lock_text = read(pair)
        pin = yamledit.parse_key_path(f"dependencies[{index}].version")
        after = yamledit.set_scalar(chart_text, pin, new)
        # The old text lets kong's other entry, still a range, keep its locked version.
        edits = lock_updates(after, lock_text, NOW, chart_yaml_text_before=chart_text)
        new_lock = lock_text
        for path, value in edits:
            new_lock = yamledit.set_scalar(new_lock, yamledit.parse_key_path(path), value)
        assert check_lock(after, new_lock) is None, pair
        assert new_lock == splice(lock_text, edits), pair  # byte-exact: only those scalars moved


# ---- hostile files --------------------------------------------------------------------------


def test_nesting_up_to_the_yaml_limit_is_hashed_without_recursion_trouble():
    from promoter.yamledit import MAX_DEPTH

    # Chart.yaml's top mapping, `dependencies` and the entry: 3 levels before import-values.
    deep = "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3)
    chart = f"dependencies:\n- name: a\n  version: 1.0.0\n  import-values: {deep}\n"
    lock = "dependencies:\n- name: a\n  version: 1.0.0\n  repository: ''\ndigest: x\n"
    assert "out of sync" in (check_lock(chart, lock) or "")
    deeper = chart.replace(deep, f"[{deep}]")
    assert check_lock(deeper, lock) == (
        "Chart.lock cannot be checked: Chart.yaml: "
        f"nested deeper than the limit of {MAX_DEPTH} levels at line 4"
    )


def test_an_alias_bomb_in_chart_lock_is_refused_before_it_expands():
    bomb = "".join(
        f"l{n}: &l{n} [{', '.join([f'*l{n - 1}' if n else 'x'] * 9)}]\n" for n in range(9)
    )
    lock = "dependencies:\n- name: a\n  version: 1.0.0\n" + bomb
    chart = "dependencies:\n- name: a\n  version: 1.0.0\n"
    with pytest.raises(EditError, match=r"^Chart.lock: aliases expand to more than the limit"):
        lock_updates(chart, lock, datetime.now(UTC))
