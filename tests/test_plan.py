"""Planning is pure: requests + config + file contents → the changes and new file contents."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from promoter.config import load_config
from promoter.errors import EditError, UsageError
from promoter.model import parse_chart_flag, parse_image_flag
from promoter.plan import apply, files_needed, resolve

CONFIG = load_config("""\
environments: {dev: {}, prod: {}}
apps:
  web:
    images:
      web: {file: "envs/{env}/web.yaml", tag: image.tag}
  api:
    images:
      api: {file: api.yaml, tag: image.tag, digest: image.digest, repository: image.repository}
      sidecar: {file: api.yaml, tag: sidecar.tag}
  raw:
    images:
      raw: {file: deploy.yaml, ref: "spec.template.spec.containers[name=raw].image",
            doc: {kind: Deployment}}
    chart: {file: Chart.yaml, version: "dependencies[name=raw].version"}
""")

API = 'image:\n  repository: ghcr.io/acme/api\n  tag: 1.0.0\n  digest: ""\nsidecar:\n  tag: 1.0.0\n'
DEPLOY = """\
apiVersion: v1
kind: Service
metadata: {name: raw}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: raw}
spec:
  template:
    spec:
      containers:
      - name: raw
        image: ghcr.io/acme/raw:1.0.0   # pinned
"""


def now() -> datetime:
    return datetime(2026, 11, 28, tzinfo=UTC)


def plan_for(env, *flags, files=None):
    requests = [
        parse_image_flag(f.split(" ", 1)[1])
        if f.startswith("--image")
        else parse_chart_flag(f.split(" ", 1)[1])
        for f in flags
    ]
    edits = resolve(CONFIG, env, requests)
    contents = {path: text.encode() for path, text in (files or {}).items()}
    return edits, apply(edits, {p: contents.get(p) for p in files_needed(edits)}, now)


def test_env_placeholder_picks_the_environments_file():
    edits, plan = plan_for(
        "prod", "--image web=2.0.0", files={"envs/prod/web.yaml": "image: {tag: 1.0.0}\n"}
    )
    assert [e.file for e in edits] == ["envs/prod/web.yaml"]
    assert plan.files == {"envs/prod/web.yaml": b"image: {tag: 2.0.0}\n"}


def test_app_name_selects_the_image_named_like_the_app():
    edits, _ = plan_for("dev", "--image api=2.0.0", files={"api.yaml": API})
    assert {e.pin for e in edits} == {"api/api"}


def test_named_image_of_an_app():
    _, plan = plan_for("dev", "--image api/sidecar=1.1.0", files={"api.yaml": API})
    assert [(c.pin, c.key, c.new) for c in plan.changes] == [
        ("api/sidecar", "sidecar.tag", "1.1.0")
    ]


def test_full_reference_fills_repository_tag_and_digest_in_one_file_edit():
    digest = "sha256:" + "e" * 64
    _, plan = plan_for(
        "dev", f"--image api=ghcr.io/acme/api-v2:2.0.0@{digest}", files={"api.yaml": API}
    )
    assert [(c.key, c.new) for c in plan.changes] == [
        ("image.tag", "2.0.0"),
        ("image.digest", digest),
        ("image.repository", "ghcr.io/acme/api-v2"),
    ]
    assert plan.files["api.yaml"].decode() == (
        "image:\n  repository: ghcr.io/acme/api-v2\n  tag: 2.0.0\n"
        f'  digest: "{digest}"\nsidecar:\n  tag: 1.0.0\n'
    )


def test_whole_reference_field_keeps_its_repository():
    _, plan = plan_for("dev", "--image raw=1.1.0", files={"deploy.yaml": DEPLOY})
    assert plan.files["deploy.yaml"].decode() == DEPLOY.replace("raw:1.0.0", "raw:1.1.0")
    assert [(c.old, c.new) for c in plan.changes] == [
        ("ghcr.io/acme/raw:1.0.0", "ghcr.io/acme/raw:1.1.0")
    ]


def test_same_values_plan_nothing():
    _, plan = plan_for(
        "dev", "--image api=1.0.0", "--image api/sidecar=1.0.0", files={"api.yaml": API}
    )
    assert not plan.changed and plan.files == {}


def test_several_images_and_no_name_is_an_error():
    config = load_config(
        "environments: {dev: {}}\napps:\n  x:\n    images:\n"
        "      a: {file: f.yaml, tag: a}\n      b: {file: f.yaml, tag: b}\n"
    )
    with pytest.raises(UsageError, match=r"several images \(a, b\); name one: --image x/IMAGE="):
        resolve(config, "dev", [parse_image_flag("x=1.0")])


def test_missing_file_is_an_edit_error():
    with pytest.raises(EditError, match=r"api\.yaml does not exist on the environment branch"):
        plan_for("dev", "--image api=2.0.0", files={})


def test_non_utf8_file_is_an_edit_error():
    edits = resolve(CONFIG, "dev", [parse_image_flag("api=2.0.0")])
    with pytest.raises(EditError, match="not UTF-8"):
        apply(edits, {"api.yaml": b"image:\n  tag: \xff\n"}, now)


def test_crlf_file_stays_crlf():
    crlf = API.replace("\n", "\r\n")
    _, plan = plan_for("dev", "--image api/sidecar=1.1.0", files={"api.yaml": crlf})
    expected = crlf.replace("sidecar:\r\n  tag: 1.0.0", "sidecar:\r\n  tag: 1.1.0")
    assert plan.files["api.yaml"] == expected.encode()


def test_two_pins_on_the_same_value_are_refused():
    config = load_config(
        "environments: {dev: {}}\napps:\n"
        "  a: {images: {a: {file: f.yaml, tag: image.tag}}}\n"
        "  b: {images: {b: {file: f.yaml, tag: image.tag}}}\n"
    )
    edits = resolve(config, "dev", [parse_image_flag("a=1.0"), parse_image_flag("b=2.0")])
    with pytest.raises(EditError, match=r"pins (a/a|b/b) and (a/a|b/b) edit the same value"):
        apply(edits, {"f.yaml": b"image:\n  tag: 0.1\n"}, now)
