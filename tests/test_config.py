"""promoter.yaml: what loads, and what is refused with a key path and a line number."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest

from promoter.config import branch_problem, file_problem, load_config, parse_duration
from promoter.errors import ConfigError
from promoter.yamledit import Selector

GOOD = """\
environments:
  dev:
    branch: env/dev
    gate: {require: ["argocd/*"], soak: 5m}
  staging:
    branch: env/staging
    from: dev
    gate: {require: ["argocd/*"], soak: 30m}
  prod:
    from: staging
    delivery: pull-request
    pull_request: {labels: [promotion], reviewers: [alice], auto_merge: false, draft: true}
apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
    chart: {file: apps/web/Chart.yaml, version: "dependencies[name=web].version"}
  api:
    images:
      api: {file: "envs/{env}/api.yaml", tag: image.tag, digest: image.digest, repository: image.repository}
      migrate: {file: apps/api/values.yaml, tag: migrations.image.tag}
    chart: {file: apps/api/hr.yaml, version: spec.chart.spec.version, doc: {kind: HelmRelease, name: api}}
"""


def test_loads_environments_apps_and_pins():
    config = load_config(GOOD)
    assert list(config.environments) == ["dev", "staging", "prod"]
    prod = config.environments["prod"]
    assert prod.branch == "env/prod"  # defaulted
    assert prod.source == "staging"
    assert prod.delivery == "pull-request"
    assert prod.pull_request.labels == ("promotion",)
    assert prod.pull_request.draft is True
    assert config.environments["staging"].gate.soak == timedelta(minutes=30)
    assert config.environments["dev"].gate.require == ("argocd/*",)
    web = config.apps["web"]
    assert web.images["web"].tag == ("image", "tag")
    assert web.chart is not None
    assert web.chart.version == ("dependencies", Selector("name", "web"), "version")
    api = config.apps["api"]
    assert api.images["api"].file == "envs/{env}/api.yaml"
    assert api.images["api"].digest == ("image", "digest")
    assert api.chart is not None and api.chart.doc is not None
    assert api.chart.doc.kind == "HelmRelease"


BAD = [
    ("environments: [dev]\napps: {}", "line 1", "environments: expected a mapping"),
    ("apps: {web: {images: {}}}", "line 1", "`environments:` is missing"),
    ("environments: {dev: {}}", "line 1", "`apps:` is missing"),
    (
        "environments:\n  dev:\n    branch: env dev\napps: {}",
        "line 3",
        "environments.dev.branch: branch name 'env dev' contains a space",
    ),
    (
        "environments:\n  dev:\n    branch: env/../x\napps: {}",
        "line 3",
        "environments.dev.branch",
    ),
    (
        "environments:\n  dev:\n    brnch: env/dev\napps: {}",
        "line 3",
        "environments.dev.brnch: unknown key",
    ),
    (
        "environments:\n  dev:\n    from: qa\n",
        "line 3",
        "environments.dev.from: unknown environment",
    ),
    (
        "environments:\n  a: {from: b}\n  b: {from: a}\n",
        "line 2",
        "`from` cycle a -> b -> a",
    ),
    (
        "environments:\n  dev:\n    delivery: email\n",
        "line 3",
        "environments.dev.delivery: 'email' is not one of push, pull-request",
    ),
    (
        "environments:\n  dev:\n    gate: {soak: soon}\n",
        "line 3",
        "environments.dev.gate.soak: 'soon' is not a duration",
    ),
    (
        "environments:\n  dev:\n    pull_request: {draft: maybe}\n",
        "line 3",
        "environments.dev.pull_request.draft: expected true or false",
    ),
]

APPS_BAD = [
    ("  web: {}", "line 4", "apps.web: an app needs `images:` or `chart:`"),
    (
        "  web:\n    images:\n      web: {file: ../../etc/passwd, tag: image.tag}",
        "line 6",
        "apps.web.images.web.file: '../../etc/passwd' must not contain",
    ),
    (
        "  web:\n    images:\n      web: {file: /etc/passwd, tag: image.tag}",
        "line 6",
        "must be a relative path",
    ),
    (
        "  web:\n    images:\n      web: {file: .git/config, tag: image.tag}",
        "line 6",
        "points into .git",
    ),
    (
        "  web:\n    images:\n      web: {file: 'envs/{stage}/v.yaml', tag: image.tag}",
        "line 6",
        "the only placeholder is {env}",
    ),
    (
        "  web:\n    images:\n      web: {file: v.yaml, tag: 'image..tag'}",
        "line 6",
        "apps.web.images.web.tag:",
    ),
    (
        "  web:\n    images:\n      web: {file: v.yaml, tag: 'images[name=web.tag'}",
        "line 6",
        "apps.web.images.web.tag:",
    ),
    ("  web:\n    images:\n      web: {file: v.yaml}", "line 6", "needs `tag:`"),
    ("  web:\n    images:\n      web: {tag: image.tag}", "line 6", "file: missing"),
    (
        "  web:\n    images:\n      web: {file: v.yaml, tag: a, colour: blue}",
        "line 6",
        "apps.web.images.web.colour: unknown key",
    ),
    ("  web:\n    chart: {file: Chart.yaml}", "line 5", "apps.web.chart: needs `version:`"),
    (
        "  web:\n    chart: {file: c.yaml, version: v, doc: {index: -1}}",
        "line 5",
        "apps.web.chart.doc.index: expected a document number",
    ),
    ("  'we b':\n    chart: {file: c.yaml, version: v}", "line 4", "may hold only letters"),
    ("  web:\n    images:\n      web: {file: 3, tag: t}", "line 6", "expected a non-empty string"),
]

HEAD = "environments:\n  dev: {}\napps:\n"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    BAD + [(HEAD + text, where, message) for text, where, message in APPS_BAD],
)
def test_refuses_bad_config_naming_key_path_and_line(text, where, message):
    with pytest.raises(ConfigError) as caught:
        load_config(text)
    error = str(caught.value)
    assert message in error
    assert error.startswith(f"promoter.yaml {where}:" if where else "promoter.yaml:")
    assert "\n" not in error


def test_malformed_yaml_names_the_line():
    with pytest.raises(ConfigError, match=r"promoter.yaml line 4: malformed YAML"):
        load_config("environments:\n  dev: {}\n  bad: [unclosed\napps: {}\n")


def test_duplicate_keys_are_refused():
    with pytest.raises(ConfigError, match=r"line 3: duplicate key"):
        load_config("environments:\n  dev: {}\n  dev: {}\napps: {}\n")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2h", 7200), ("1m5s", 65)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5 minutes", "m", "-5s", "1.5h"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    "branch",
    [
        "env dev",
        "env/../x",
        "-x",
        "x/",
        "x.lock",
        "a~b",
        "a^b",
        "a:b",
        "a?b",
        "a*b",
        "a[b",
        "@",
        "a\\b",
        "a//b",
        "a/.b",
        "a@{b",
        "",
    ],
)
def test_bad_branch_names(branch):
    assert branch_problem(branch)


# Names git itself takes as something other than a branch: `HEAD` and the other pseudo-refs
# (the remote's default branch, or a file in the scratch repo), and full ref names, which
# would become refs/heads/refs/heads/x once qualified.
NOT_BRANCHES = ["HEAD", "FETCH_HEAD", "ORIG_HEAD", "refs/heads/env/dev", "refs/tags/v1", "refs/x"]


@pytest.mark.parametrize("branch", NOT_BRANCHES)
def test_head_and_full_ref_names_are_not_branch_names(branch):
    problem = branch_problem(branch)
    assert problem and repr(branch) in problem


@pytest.mark.parametrize("branch", NOT_BRANCHES[:4])
def test_branch_head_is_refused_naming_key_path_and_line(branch):
    text = f"environments:\n  dev: {{}}\n  prod:\n    branch: {branch}\napps: {{}}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(text)
    assert str(caught.value).startswith("promoter.yaml line 4: environments.prod.branch: ")


CANDIDATES = [
    *NOT_BRANCHES, "env/dev", "main", "head", "x/HEAD", "HEAD/x", "@", "@{-1}", "a@{b", "-x",
    "x.lock", "a/.b", "a..b", "a b", "a.b.", ".a", "a/", "a.lock/b", "a\tb", "é/ü", "a//b",
    "a~1", "a^", "a:b", "a?", "a*", "a[b", "a\\b", "x@", "@/x", "refs",
]  # fmt: skip


def test_every_name_git_refuses_as_a_branch_is_refused():
    for branch in CANDIDATES:
        git = subprocess.run(
            ["git", "check-ref-format", "--branch", branch], capture_output=True, check=False
        )
        if git.returncode != 0:
            assert branch_problem(branch), f"git refuses {branch!r}, promoter accepts it"


@pytest.mark.parametrize("branch", ["env/dev", "main", "release/2024.1", "env/prod-eu_1"])
def test_good_branch_names(branch):
    assert branch_problem(branch) is None


@pytest.mark.parametrize("path", ["apps/web/values.yaml", "envs/{env}/v.yaml", "Chart.yaml"])
def test_good_files(path):
    assert file_problem(path) is None


# ---- hostile files: refused before composing -----------------------------------------------


def test_anchors_and_aliases_are_refused_naming_the_line():
    text = "environments:\n  dev: &gate {gate: {soak: 5m}}\n  prod: *gate\napps: {}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(text)
    assert str(caught.value) == (
        "promoter.yaml line 2: anchor &gate: anchors and aliases are not allowed in this file; "
        "write the values out"
    )


def test_nesting_up_to_the_limit_reaches_validation_and_past_it_is_refused():
    from promoter.yamledit import MAX_DEPTH

    def config(levels):  # 4 mappings (top, environments, dev, gate), then lists
        return "environments:\n  dev:\n    gate:\n      require: " + "[" * levels + "]" * levels

    with pytest.raises(ConfigError, match=r"line 4: environments.dev.gate.require\[0\]: expected"):
        load_config(config(MAX_DEPTH - 4))
    with pytest.raises(
        ConfigError,
        match=f"^promoter.yaml line 4: nested deeper than the limit of {MAX_DEPTH} levels$",
    ):
        load_config(config(MAX_DEPTH - 3))


def test_size_limit():
    from promoter.config import MAX_CONFIG_BYTES

    text = GOOD + "#" * (MAX_CONFIG_BYTES - len(GOOD) - 1) + "\n"
    assert load_config(text).apps.keys() == {"web", "api"}
    with pytest.raises(
        ConfigError, match=r"^x.yaml: file size 2,097,153 bytes is over the 2 MiB limit$"
    ):
        load_config(text + "\n", source="x.yaml")


# ---- the one-pass reader reads what the composer reads ------------------------------------

# Plain scalars YAML 1.2 and 1.1 read differently, or as numbers, nulls, dates, in every style.
SCALARS = [
    "true", "True", "TRUE", "false", "yes", "no", "on", "off", "y", "N", "~", "null", "Null",
    "NULL", "0", "7", "012", "0o17", "0x1F", "0b101", "1_000", "+5", "-3", "-_", "1__2", "1.10",
    "1.0", "1e3", ".5", ".inf", "-.inf", ".nan", "2026-12-20", "2026-12-20T10:00:00Z", "<<", "=",
    "5m", "1h30m", "1:30", "tRUE", "nULL", "v1.2.3", "a b", "é", "08", "0o8", "1e", "-0",
]  # fmt: skip


def _scalar_matrix() -> str:
    lines = ["block:"]
    lines += [f"  k{i}: {s}" for i, s in enumerate(SCALARS)]
    lines += [f"  q{i}: '{s}'" for i, s in enumerate(SCALARS)]
    lines += [f'  d{i}: "{s}"' for i, s in enumerate(SCALARS)]
    flow = [s for s in SCALARS if ":" not in s]  # libyaml ends a plain scalar at : in flow
    lines += ["flow: {" + ", ".join(f"f{i}: {s}" for i, s in enumerate(flow)) + "}"]
    lines += ["list:"] + [f"  - {s}" for s in SCALARS]
    lines += ["flowlist: [" + ", ".join(flow) + "]"]
    lines += [f"{s}: key" for s in SCALARS if s not in ("~", "<<", "=")] + ["'~': k", '"<<": k']
    lines += ["empty:", "empty2: ''", "lit: |\n  a\n  b", "fold: >-\n  c\n  d", "multi: a\n  b"]
    lines += ["a.b: dotted", "a: {b: nested}", "'': empty key", "x[0]: odd"]
    return "\n".join(lines) + "\n"


def _texts() -> list[str]:
    from pathlib import Path

    root = Path(__file__).parent.parent
    files = [*(root / "tests" / "corpus").rglob("*.y*ml"), *root.glob("examples/**/*.y*ml")]
    texts = [GOOD, _scalar_matrix(), "", "# only a comment\n", "---\n", "--- 5\n", "[a, b]\n"]
    texts += ["\ufeffenvironments: {}\r\napps:\r\n  web: {}\r\n", "a: 1\n...\n"]
    texts += [text for text, _, _ in BAD] + [HEAD + text for text, _, _ in APPS_BAD]
    return texts + [f.read_text(encoding="utf-8") for f in sorted(files)]


UNUSUAL = [
    "a: &x 1\nb: *x\n",  # anchors and aliases
    "a: !!str 5\n",  # tags
    "a: ! 5\n",
    "%YAML 1.1\n---\na: yes\n",  # directives
    "a: 1\n---\nb: 2\n",  # two documents
    "? [a, b]\n: c\n",  # a key that is not a scalar
    "a: 1\na: 2\n",  # duplicate key
    "a: [unclosed\n",  # malformed
    "a: b: c\n",
    "a:\n\tb: 1\n",
]


@pytest.mark.parametrize("text", _texts() + UNUSUAL)
def test_one_pass_reader_builds_what_the_composer_builds(text):
    """_Doc reads promoter.yaml in one pass over libyaml's events; its tree (types included),
    its line table and its errors must be those of the composer path it replaces."""
    from promoter.config import _Doc

    def read(fast):
        try:
            doc = _Doc("promoter.yaml", text, fast=fast)
        except ConfigError as err:
            return str(err)
        return repr(doc.root), doc.lines

    assert read(True) == read(False)


@pytest.mark.parametrize("text", [GOOD, _scalar_matrix()])
def test_one_pass_reader_reads_an_ordinary_config_itself(text):
    from promoter.config import _UNUSUAL, _read_plain

    assert _read_plain(text, {}) is not _UNUSUAL


@pytest.mark.parametrize("text", UNUSUAL)
def test_one_pass_reader_leaves_the_unusual_to_the_composer(text):
    from promoter.config import _UNUSUAL, _read_plain

    assert _read_plain(text, {}) is _UNUSUAL
