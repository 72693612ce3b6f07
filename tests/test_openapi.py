"""The validator that keeps the API doubles honest must itself reject what the APIs reject."""

from __future__ import annotations

import copy
import json

import pytest

from promoter.sandbox.openapi import DESCRIPTIONS, OpenAPISpec, SpecViolation

SPECS = DESCRIPTIONS
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


# --- quirks: explicit corrections of an official description -------------------------------------

MR_PATH = "/api/v4/projects/acme%2Fenvs/merge_requests/1"
ALICE = {"id": 7, "username": "alice", "name": "Alice", "state": "active"}


def test_gitlab_quirks_make_merge_request_users_and_lists_arrays(gitlab):
    from promoter.sandbox.gitlab_quirks import load_gitlab_spec

    patched = load_gitlab_spec(SPECS / "gitlab-rest-subset.yaml")
    mr = {"id": 1, "iid": 1, "reviewers": [ALICE], "assignees": [], "assignee": ALICE}
    op = patched.validate_request("GET", MR_PATH, {}, {}, None)
    patched.validate_response(op, 200, JSON, body(mr))
    with pytest.raises(SpecViolation, match=r"at reviewers: .* is not of type 'array'"):
        patched.validate_response(op, 200, JSON, body({**mr, "reviewers": ALICE}))
    # `assignee` (singular) is one user on GitLab too: left as the description has it.
    with pytest.raises(SpecViolation, match=r"at assignee: .* is not of type 'object'"):
        patched.validate_response(op, 200, JSON, body({**mr, "assignee": [ALICE]}))
    for path in (MR_PATH + "/notes", "/api/v4/projects/acme%2Fenvs/labels"):
        op = patched.validate_request("GET", path, {}, {}, None)
        patched.validate_response(op, 200, JSON, b"[]")
        with pytest.raises(SpecViolation, match="is not of type 'array'"):
            patched.validate_response(op, 200, JSON, b"{}")
    # The unpatched description, loaded before and after, is untouched: as published.
    op = gitlab.validate_request("GET", MR_PATH, {}, {}, None)
    with pytest.raises(SpecViolation, match="is not of type 'object'"):
        gitlab.validate_response(op, 200, JSON, body(mr))
    again = OpenAPISpec.load(SPECS / "gitlab-rest-subset.yaml")
    assert again.document is gitlab.document and again.document is not patched.document
    schemas = again.document["components"]["schemas"]
    assert schemas["APIEntitiesMergeRequest"]["properties"]["reviewers"] == {
        "$ref": "#/components/schemas/APIEntitiesUserBasic"
    }
    assert load_gitlab_spec(SPECS / "gitlab-rest-subset.yaml").document is patched.document


def test_a_quirk_that_is_gone_fails_loudly_instead_of_patching_blind(gitlab):
    from promoter.sandbox.gitlab_quirks import GITLAB_QUIRKS, QuirkGone

    fixed = copy.deepcopy(gitlab.document)
    for patch in GITLAB_QUIRKS:
        patch(fixed)  # as if GitLab had fixed its description
    for patch in GITLAB_QUIRKS:
        with pytest.raises(QuirkGone, match="expected "):
            patch(fixed)


def test_patches_apply_to_a_private_copy_cached_per_patch_set(tmp_path):
    source = tmp_path / "tiny.json"
    source.write_text(json.dumps({"openapi": "3.0.0", "paths": {}, "x-mark": 0}))

    def mark(document):
        document["x-mark"] += 1

    def other(document):
        document["x-other"] = True

    plain = OpenAPISpec.load(source)
    once = OpenAPISpec.load(source, patches=[mark])
    both = OpenAPISpec.load(source, patches=[mark, other])
    assert (plain.document["x-mark"], once.document["x-mark"], both.document["x-mark"]) == (0, 1, 1)
    assert "x-other" not in once.document and both.document["x-other"] is True
    assert OpenAPISpec.load(source, patches=(mark,)).document is once.document  # applied once
    assert OpenAPISpec.load(source).document["x-mark"] == 0


def test_minimal_keeps_only_required_fields_through_all_of_and_one_of() -> None:
    document = {
        "openapi": "3.0.0",
        "paths": {
            "/things": {
                "get": {
                    "operationId": "things/list",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/thing"},
                                    }
                                }
                            },
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "base": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "integer"}, "note": {"type": "string"}},
                },
                "thing": {
                    "allOf": [
                        {"$ref": "#/components/schemas/base"},
                        {
                            "type": "object",
                            "required": ["owner"],
                            "properties": {
                                "owner": {
                                    "oneOf": [
                                        {
                                            "type": "object",
                                            "required": ["login"],
                                            "properties": {
                                                "login": {"type": "string"},
                                                "email": {"type": "string"},
                                            },
                                        },
                                        {
                                            "type": "object",
                                            "required": ["slug"],
                                            "properties": {
                                                "slug": {"type": "string"},
                                                "size": {"type": "integer"},
                                            },
                                        },
                                    ]
                                },
                                "tags": {"type": "array", "items": {"type": "string"}},
                                "meta": {"type": "object", "additionalProperties": True},
                            },
                        },
                    ]
                },
            }
        },
    }
    spec = OpenAPISpec(document)
    op = spec.validate_request("GET", "/things", {}, {}, None)
    data = [
        {"id": 1, "note": "n", "owner": {"login": "a", "email": "e"}, "tags": ["x"]},
        {"id": 2, "owner": {"slug": "team", "size": 3}, "meta": {"k": 1}},
    ]
    assert spec.minimal(op, 200, data) == [
        {"id": 1, "owner": {"login": "a"}},
        {"id": 2, "owner": {"slug": "team"}},
    ]
    assert spec.minimal(op, 304, None) is None  # nothing described: left as it is
