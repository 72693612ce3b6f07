"""Corrections to GitLab's official OpenAPI description, applied when the strict double loads it.

The vendored description (promoter/sandbox/descriptions/gitlab-rest-subset.yaml, see
its README) is generated
from GitLab's Grape entities, and a few of its schemas say "one object" where GitLab's API
returns a JSON array. Validating against those schemas as written would make the double
leave real fields out (or answer with shapes GitLab never sends), which is less honest, not
more. So each such schema is corrected here, explicitly and nowhere else:

    OpenAPISpec.load(path, patches=GITLAB_QUIRKS)

Each patch names what the description says, what GitLab really does, and why we correct it.
A patch checks that the quirk is still there before it changes anything: if a regenerated
description no longer has it (GitLab fixed it) or has changed shape, loading fails with a
message saying which patch to revisit, rather than silently patching something else.

Quirks the README lists that need no patch: the HEAD file operations' `requestBody`, the
multipart-only file bodies, and `{noteable_id}` naming the MR iid (promoter and the double use
none of those operations, and the path name does not change what is sent). The multipart-only
commit body is patched: the api path creates commits; so is the repository tree list, one
object in the description, an array from GitLab (gitlab_commits.py has both patches, next to
the handlers they describe).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promoter.sandbox.gitlab_commits import (
    commit_create_takes_json_actions,
    tree_list_is_an_array,
)
from promoter.sandbox.openapi import GITLAB_DESCRIPTION, OpenAPISpec, Patch

_SCHEMAS = "#/components/schemas/"
_USER = _SCHEMAS + "APIEntitiesUserBasic"
# The three merge request entities the kept paths answer with (get/put/list, changes).
_MERGE_REQUEST_ENTITIES = (
    "APIEntitiesMergeRequest",
    "APIEntitiesMergeRequestBasic",
    "APIEntitiesMergeRequestChanges",
)


class QuirkGone(Exception):
    """A patched schema is no longer as the patch expects: revisit the patch."""


def _as_array(node: dict[str, Any], item_ref: str, where: str) -> None:
    """Turn `{$ref: item_ref}` into `{type: array, items: {$ref: item_ref}}`, in place."""
    if node != {"$ref": item_ref}:
        raise QuirkGone(f"{where}: expected a lone $ref to {item_ref}, found {node!r}")
    node.clear()
    node.update({"type": "array", "items": {"$ref": item_ref}})


def merge_request_users_are_lists(document: dict[str, Any]) -> None:
    """`assignees` and `reviewers` of a merge request are arrays of users.

    Description: in APIEntitiesMergeRequest, ...MergeRequestBasic and ...MergeRequestChanges,
    `assignees` and `reviewers` are `$ref: APIEntitiesUserBasic`, one user object. GitLab: both
    are JSON arrays of users, `[]` when there are none (the merge request API docs' example
    responses show `"assignees": [{...}]`, `"reviewers": [{...}]`; an MR can have several of
    each). Why: promoter reads `reviewers` to avoid re-sending reviewers an MR already has;
    validating against one object would make the double omit the field, and an unchanged MR
    would cost a needless PUT. `assignee` (singular) really is one user: left as it is.
    """
    schemas = document["components"]["schemas"]
    for entity in _MERGE_REQUEST_ENTITIES:
        properties = schemas[entity]["properties"]
        for field in ("assignees", "reviewers"):
            _as_array(properties[field], _USER, f"{entity}.{field}")


def label_list_is_an_array(document: dict[str, Any]) -> None:
    """GET /projects/:id/labels answers an array of labels.

    Description: its 200 response schema is `$ref: APIEntitiesProjectLabel`, one label. GitLab:
    the endpoint is paginated and returns a JSON array of labels (API docs "List labels").
    Why: any list response is an array; a double answering one object would be wrong, and one
    answering an array would be flagged as a violation.
    """
    operation = document["paths"]["/api/v4/projects/{id}/labels"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    _as_array(schema, _SCHEMAS + "APIEntitiesProjectLabel", "GET /projects/{id}/labels 200")


def note_list_is_an_array(document: dict[str, Any]) -> None:
    """GET /projects/:id/merge_requests/:iid/notes answers an array of notes.

    Description: its 200 response schema is `$ref: APIEntitiesNote`, one note. GitLab: the
    endpoint is paginated and returns a JSON array of notes (API docs "List all merge request
    notes"). Why: as for labels, a list endpoint answers an array.
    """
    path = "/api/v4/projects/{id}/merge_requests/{noteable_id}/notes"
    operation = document["paths"][path]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    _as_array(schema, _SCHEMAS + "APIEntitiesNote", f"GET {path} 200")


# The corrections the strict GitLab double applies, in order. Keep this list short and each
# entry documented: anything else the description says is held to as written.
GITLAB_QUIRKS: tuple[Patch, ...] = (
    merge_request_users_are_lists,
    label_list_is_an_array,
    note_list_is_an_array,
    commit_create_takes_json_actions,
    tree_list_is_an_array,
)


def load_gitlab_spec(path: Path | str = GITLAB_DESCRIPTION) -> OpenAPISpec:
    """GitLab's description at `path` with GITLAB_QUIRKS applied: what a strict double uses.

    One more quirk, not patched but declared: the description (generated from Grape entities)
    lists no `required` field in any response schema, although GitLab sends every field an
    entity exposes. Read literally, minimal mode would strip every field of every answer; so
    for GitLab a schema without a `required` list keeps its fields (`declares_required`), and
    minimal mode only strips where the description does list required fields."""
    spec = OpenAPISpec.load(path, patches=GITLAB_QUIRKS)
    spec.declares_required = False
    return spec
