"""Version validation: OCI tags and references, SemVer 2 chart versions."""

from __future__ import annotations

import pytest

from promoter.model import Change, ImageRef, parse_chart_version

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "repository", "tag", "digest"),
    [
        ("1.4.2", None, "1.4.2", None),
        ("v1.4.2-rc.1_build", None, "v1.4.2-rc.1_build", None),
        ("_x", None, "_x", None),
        ("a" * 128, None, "a" * 128, None),
        ("ghcr.io/acme/web:1.4.2", "ghcr.io/acme/web", "1.4.2", None),
        ("nginx:1.27", "nginx", "1.27", None),
        ("localhost:5000/a/b:v1", "localhost:5000/a/b", "v1", None),
        (f"ghcr.io/acme/web:1.4.2@{DIGEST}", "ghcr.io/acme/web", "1.4.2", DIGEST),
        (f"ghcr.io/acme/web@{DIGEST}", "ghcr.io/acme/web", None, DIGEST),
        (f"@{DIGEST}", None, None, DIGEST),
        (f"nginx@{DIGEST}", "nginx", None, DIGEST),
        (
            "registry.k8s.io/ingress-nginx/controller:v1.15.1",
            "registry.k8s.io/ingress-nginx/controller",
            "v1.15.1",
            None,
        ),
    ],
)
def test_parses_tags_and_references(text, repository, tag, digest):
    ref = ImageRef.parse(text)
    assert (ref.repository, ref.tag, ref.digest) == (repository, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        ".1",
        "a" * 129,
        "has space",
        "tag!",
        "Upper/Case:1",
        "web:1.0@sha256:abc",
        "web@md5:" + "0" * 32,
        "web:",
        "web:-bad",
        "web::1",
        "/web:1",
        "web/:1",
        f"2.2.0@{DIGEST}",  # a tag before @ without a repository: ambiguous, refused
        f"v1.4@{DIGEST}",
    ],
)
def test_refuses_bad_tags_and_references(text):
    with pytest.raises(ValueError):
        ImageRef.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0",
        "1.2.3",
        "10.20.30",
        "1.0.0-alpha.1",
        "1.0.0-0.3.7",
        "1.0.0+20130313144700",
        "1.0.0-beta+exp.sha.5114f85",
        "1.0.0-x-y-z.--",
    ],
)
def test_accepts_semver_2(text):
    assert parse_chart_version(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.3-01",
        "v1.2.3",
        "1.2.3-",
        "1.2.3+",
        "^1.2.3",
        "~1.2",
        "1.x",
        "*",
        ">=1.0.0",
        "1.2.3 ",
    ],
)
def test_refuses_non_semver(text):
    with pytest.raises(ValueError):
        parse_chart_version(text)


def test_change_trailers_name_the_pin_and_both_values():
    image = Change("web", "web/web", "a.yaml", "image.tag", "1.0", "1.1")
    chart = Change(
        "web", "web/chart", "Chart.yaml", "dependencies[name=web].version", None, "0.2.0"
    )
    assert image.trailer == "web/web image.tag 1.0 -> 1.1"
    assert chart.trailer == 'web chart "" -> 0.2.0'
