"""The validator that keeps the API doubles honest must itself reject what the APIs reject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promoter.testing.openapi import OpenAPISpec, SpecViolation

SPECS = Path(__file__).parent / "openapi"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def github():
    return OpenAPISpec.load(SPECS / "github-rest-subset.json", prefix="/api/v3")


@pytest.fixture(scope="module")
def gitlab():
    return OpenAPISpec.load(SPECS / "gitlab-rest-subset.yaml")


def body(data):
    return json.dumps(data).encode()


def test_documented_request_passes(github):
    op = github.validate_request(
        "POST",
        "/api/v3/repos/acme/envs/pulls",
        {},
        JSON,
        body({"title": "t", "head": "a", "base": "b"}),
    )
    assert (op.template, op.path_params) == (
        "/repos/{owner}/{repo}/pulls",
        {"owner": "acme", "repo": "envs"},
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "payload", "problem"),
    [
        (
            "POST",
            "/api/v3/repos/a/b/pulls",
            {},
            {"title": "t", "head": "a", "base": "b", "colour": 1},
            "'colour' was unexpected",
        ),
        (
            "POST",
            "/api/v3/repos/a/b/pulls",
            {},
            {"title": 5, "head": "a", "base": "b"},
            "is not of type 'string'",
        ),
        ("POST", "/api/v3/repos/a/b/pulls", {}, {"title": "t"}, "is a required property"),
        (
            "GET",
            "/api/v3/repos/a/b/pulls",
            {"colour": ["red"]},
            None,
            "undocumented query parameter",
        ),
        (
            "GET",
            "/api/v3/repos/a/b/pulls",
            {"per_page": ["many"]},
            None,
            "is not of type 'integer'",
        ),
        ("GET", "/api/v3/repos/a/b/pulls/abc", {}, None, "is not of type 'integer'"),
        ("GET", "/api/v3/repos/a/b/statuses/abc", {}, None, "no such operation"),
        ("GET", "/repos/a/b", {}, None, "not under /api/v3"),
        ("DELETE", "/api/v3/repos/a/b/pulls/1", {}, None, "no such operation"),
    ],
)
def test_undocumented_requests_are_violations(github, method, path, query, payload, problem):
    with pytest.raises(SpecViolation, match=problem):
        github.validate_request(method, path, query, JSON, body(payload) if payload else None)


def test_slashes_in_refs_and_paths(github):
    op = github.validate_request("GET", "/api/v3/repos/a/b/git/ref/heads/env/dev", {}, {}, None)
    assert op.path_params["ref"] == "heads/env/dev"
    op = github.validate_request("GET", "/api/v3/repos/a/b/commits/abc/status", {}, {}, None)
    assert op.template.endswith("/commits/{ref}/status")


def test_responses_are_checked_against_their_schema(github):
    op = github.validate_request("GET", "/api/v3/repos/a/b/commits/abc/status", {}, {}, None)
    with pytest.raises(SpecViolation, match="'state' is a required property"):
        github.validate_response(op, 200, JSON, b"{}")
    with pytest.raises(SpecViolation, match="status 418 is not documented"):
        github.validate_response(op, 418, JSON, b"{}")
    with pytest.raises(SpecViolation, match="a 304 has no body"):
        github.validate_response(op, 304, {}, b"{}")
    github.validate_response(op, 304, {}, b"")
    github.validate_response(op, 401, JSON, b'{"message": "Bad credentials"}')


def test_gitlab_project_paths_and_bodies(gitlab):
    op = gitlab.validate_request(
        "POST",
        "/api/v4/projects/acme%2Fenvs/statuses/abc",
        {},
        JSON,
        body({"state": "success", "name": "argocd/web"}),
    )
    assert op.path_params == {"id": "acme/envs", "sha": "abc"}
    with pytest.raises(SpecViolation, match="'bogus' was unexpected"):
        gitlab.validate_request(
            "POST",
            "/api/v4/projects/acme%2Fenvs/statuses/abc",
            {},
            JSON,
            body({"state": "success", "bogus": 1}),
        )
