"""Hold an API double to an official OpenAPI 3.0 description, request by request.

The doubles call `validate_request` before they handle anything and `validate_response` before
they send anything. A request the real API would not accept, or a response the real API would
not give, raises SpecViolation, so a test cannot pass by leaning on behaviour GitHub or GitLab
do not have.

Strictness beyond the letter of the description, on purpose:
- request bodies are closed: a top-level field the description does not name is a violation
  (the real APIs ignore or reject them; either way promoter must not depend on one);
- query parameters the operation does not declare are violations.
Leniency, on purpose: 304 (conditional GET) is always allowed with an empty body, and the
generic error statuses any call may meet (401, 403, 404, 409, 422, 429, 5xx) are allowed where
undocumented, as long as their body is a JSON object.

Where an official description is known to be wrong about what the real API does, the caller
passes explicit patches to `OpenAPISpec.load` (GitLab's: promoter/sandbox/gitlab_quirks.py).
Each patch is a named, commented correction applied once at load time; nothing else about a
description is relaxed.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

GENERIC_ERRORS = frozenset({401, 403, 404, 409, 422, 429, 500, 502, 503, 504})
# A correction applied to a parsed description at load time (OpenAPISpec.load(patches=...)).
Patch = Callable[[dict[str, Any]], None]
# The vendored descriptions (package data; provenance and licences in descriptions/README.md).
DESCRIPTIONS = Path(__file__).parent / "descriptions"
GITHUB_DESCRIPTION = DESCRIPTIONS / "github-rest-subset.json"
GITLAB_DESCRIPTION = DESCRIPTIONS / "gitlab-rest-subset.yaml"
_DOCUMENTS: dict[str, dict[str, Any]] = {}  # parsed as published, never modified
_PATCHED: dict[tuple[str, tuple[Patch, ...]], dict[str, Any]] = {}


class SpecViolation(Exception):
    """A request or response that the official description does not allow.

    `code` says what kind, in the words GitHub's validation errors use: "missing_field",
    "invalid" (wrong type, value or an undeclared field), "unknown_operation" (no such path
    and method in the description), "not_json"; `field` names the field or parameter when
    there is one (dotted for nested fields); `operation` is the operation's id, if matched.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        field: str | None = None,
        operation: str | None = None,
        enum: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.operation = operation
        self.enum = enum  # the value is not one of the declared ones (GitLab words it apart)


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    path_params: dict[str, str]
    operation_id: str


class OpenAPISpec:
    def __init__(self, document: dict[str, Any], prefix: str = "") -> None:
        self.document = document
        self.prefix = prefix.rstrip("/")
        self._routes = self._compile_routes()
        self._validators: dict[tuple[str, str, str], Any] = {}
        # Whether an object schema without a `required` list means "every field optional"
        # (True, as OpenAPI reads) or "not said" (GitLab's generated description lists no
        # required response field at all, though GitLab sends them: see gitlab_quirks.py).
        self.declares_required = True

    @classmethod
    def load(cls, path: Path | str, prefix: str = "", patches: Sequence[Patch] = ()) -> OpenAPISpec:
        """The description at `path`, parsed once per process, with `patches` applied.

        A patch corrects a known quirk of an official description (see gitlab_quirks.py) in
        place, on a private deep copy: the parsed original is cached and never modified, and a
        patched document is cached per (path, patches), so loads with and without patches (or
        with other patches) never see each other's changes.
        """
        key = str(Path(path).resolve())
        if key not in _DOCUMENTS:  # the GitLab YAML takes a quarter of a second to parse
            text = Path(path).read_text(encoding="utf-8")
            if key.endswith(".json"):
                _DOCUMENTS[key] = json.loads(text)
            else:
                from ruamel.yaml import YAML

                # libyaml when installed (ruamel.yaml.clib): 3x faster, the same document.
                _DOCUMENTS[key] = YAML(typ="safe").load(text)
        if not patches:
            return cls(_DOCUMENTS[key], prefix)
        patched_key = (key, tuple(patches))
        if patched_key not in _PATCHED:
            document = copy.deepcopy(_DOCUMENTS[key])
            for patch in patches:
                patch(document)
            _PATCHED[patched_key] = document
        return cls(_PATCHED[patched_key], prefix)

    # ------------------------------------------------------------------ routing

    def _compile_routes(self) -> list[tuple[re.Pattern[str], re.Pattern[str], str]]:
        routes = []
        for template in self.document["paths"]:
            strict, greedy = (_route_regex(template, greedy) for greedy in (False, True))
            routes.append((strict, greedy, template))
        # Literal-rich templates first, so /commits/{ref}/status beats /commits/{ref}.
        routes.sort(key=lambda r: -len(re.sub(r"\{[^}]+\}", "", r[2])))
        return routes

    def _match(self, method: str, raw_path: str) -> Operation:
        path = raw_path.split("?", 1)[0]
        if self.prefix:
            if not path.startswith(self.prefix):
                raise SpecViolation(
                    f"{method} {path}: not under {self.prefix}", code="unknown_operation"
                )
            path = path[len(self.prefix) :] or "/"
        for pass_index in (0, 1):
            for strict, greedy, template in self._routes:
                match = (strict, greedy)[pass_index].match(path)
                if not match:
                    continue
                item = self.document["paths"][template]
                operation = item.get(method.lower())
                if operation is None:
                    continue
                names = re.findall(r"\{([^}]+)\}", template)
                params = {name: urllib.parse.unquote(match.group(_group(name))) for name in names}
                op_id = str(operation.get("operationId", f"{method} {template}"))
                return Operation(method.upper(), template, params, op_id)
        raise SpecViolation(
            f"{method} {path}: no such operation in the API description", code="unknown_operation"
        )

    # ------------------------------------------------------------------ requests

    def validate_request(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> Operation:
        op = self._match(method, path)
        try:
            self._check_request(op, query, headers, body)
        except SpecViolation as violation:
            violation.operation = violation.operation or op.operation_id
            raise
        return op

    def _check_request(
        self,
        op: Operation,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> None:
        spec = self._operation(op)
        where = f"{op.method} {op.template} ({op.operation_id})"
        params = self._parameters(op)
        for name, value in op.path_params.items():
            declared = params.get(("path", name))
            if declared is not None:
                self._check_param(where, f"path parameter {name}", declared, [value])
        declared_query = {n: p for (loc, n), p in params.items() if loc == "query"}
        for raw_name, values in query.items():
            name = raw_name.removesuffix("[]")
            if name not in declared_query:
                raise SpecViolation(
                    f"{where}: undocumented query parameter {raw_name!r}",
                    field=name,
                    operation=op.operation_id,
                )
            self._check_param(where, f"query parameter {name}", declared_query[name], values)
        for name, param in declared_query.items():
            if param.get("required") and name not in query and f"{name}[]" not in query:
                raise SpecViolation(
                    f"{where}: missing required query parameter {name!r}",
                    code="missing_field",
                    field=name,
                    operation=op.operation_id,
                )
        self._check_body(where, op, spec, headers, body)

    def _operation(self, op: Operation) -> dict[str, Any]:
        result: dict[str, Any] = self.document["paths"][op.template][op.method.lower()]
        return result

    def _parameters(self, op: Operation) -> dict[tuple[str, str], dict[str, Any]]:
        item = self.document["paths"][op.template]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*item.get("parameters", []), *self._operation(op).get("parameters", [])]:
            param = self._deref(raw)
            found[(param["in"], param["name"])] = param
        return found

    def _check_param(
        self, where: str, label: str, param: dict[str, Any], values: list[str]
    ) -> None:
        schema = self._deref(param.get("schema", {}))
        if schema.get("type") == "array":
            items = self._deref(schema.get("items", {}))
            flat = [v for value in values for v in value.split(",")]
            coerced: Any = [_coerce(items, v) for v in flat]
        else:
            if len(values) > 1:
                raise SpecViolation(
                    f"{where}: {label} given {len(values)} times", field=param["name"]
                )
            coerced = _coerce(schema, values[0])
        key = ("param", where, label)
        self._validate(where, label, key, schema, coerced, field=param["name"])

    def _check_body(
        self,
        where: str,
        op: Operation,
        spec: dict[str, Any],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> None:
        request_body = self._deref(spec.get("requestBody", {}))
        content = request_body.get("content", {})
        empty = not body or body.strip() in (b"", b"{}", b"null")
        if not content:
            if not empty:
                raise SpecViolation(f"{where}: takes no request body")
            return
        if empty:
            if request_body.get("required") and not body:
                raise SpecViolation(f"{where}: request body is required", code="missing_field")
            if not body:
                return
        media = _media_type(headers)
        if media == "application/x-www-form-urlencoded" and media in content:
            data: Any = {
                k: v[0] if len(v) == 1 else v
                for k, v in urllib.parse.parse_qs((body or b"").decode()).items()
            }
        else:
            if "application/json" not in content:
                raise SpecViolation(f"{where}: request body must be one of {sorted(content)}")
            try:
                data = json.loads(body or b"null")
            except ValueError as err:
                raise SpecViolation(
                    f"{where}: request body is not JSON: {err}", code="not_json"
                ) from None
            media = "application/json"
        schema = self._deref(content[media].get("schema", {}))
        closed = _closed(schema)
        self._validate(where, "request body", ("request", where, media), closed, data)

    def operation_by_id(self, operation_id: str | None) -> dict[str, Any]:
        """The operation object with that operationId ({} when there is none)."""
        found: dict[str, Any] = self._by_id.get(operation_id or "", {})
        return found

    @cached_property
    def _by_id(self) -> dict[str, dict[str, Any]]:
        return {
            str(op["operationId"]): op
            for item in self.document["paths"].values()
            for op in item.values()
            if isinstance(op, dict) and "operationId" in op
        }

    # ------------------------------------------------------------------ responses

    def validate_response(
        self,
        operation: Operation,
        status: int,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> None:
        where = f"{operation.method} {operation.template} ({operation.operation_id}) -> {status}"
        if status == 304:
            if body:
                raise SpecViolation(f"{where}: a 304 has no body")
            return
        responses = self._operation(operation).get("responses", {})
        declared = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        if declared is None and status in GENERIC_ERRORS:
            if body and not isinstance(_json(where, body), dict):
                raise SpecViolation(f"{where}: an error body must be a JSON object")
            return
        declared = declared or responses.get("default")
        if declared is None:
            raise SpecViolation(f"{where}: status {status} is not documented for this operation")
        content = self._deref(declared).get("content", {})
        if not content or operation.method == "HEAD":
            return
        media = _media_type(headers)
        if media not in content:
            if "application/json" not in content or not body:
                return  # e.g. raw file downloads: only JSON bodies are checked
            media = "application/json"
        if media != "application/json" and not media.endswith("+json"):
            return
        schema = self._deref(content[media].get("schema", {}))
        data = _json(where, body or b"null")
        self._validate(where, "response body", ("response", where, media), schema, data)

    # ------------------------------------------------------------------ minimal responses

    def minimal(self, operation: Operation, status: int, data: Any) -> Any:
        """`data` (a JSON response of `operation` with `status`) with every field the
        description does not mark required left out, recursively: the least the API may send.

        allOf parts are merged (their required lists add up); of oneOf/anyOf alternatives, the
        one that fits the data best is followed (right type; for objects, every required field
        present and most property names shared); objects without declared properties (maps,
        free-form) are kept whole."""
        responses = self._operation(operation).get("responses", {})
        declared = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        if declared is None:
            return data
        content = self._deref(declared).get("content", {})
        media = content.get("application/json")
        if media is None:
            return data
        return self._strip(media.get("schema", {}), data, 0)

    def _strip(self, node: dict[str, Any], data: Any, depth: int) -> Any:
        if depth > 64 or data is None:
            return data
        schema = self._effective(node, data)
        if isinstance(data, list):
            items = schema.get("items")
            if not isinstance(items, dict):
                return data
            return [self._strip(items, item, depth + 1) for item in data]
        if not isinstance(data, dict):
            return data
        properties = schema.get("properties")
        if not properties:
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                return {k: self._strip(extra, v, depth + 1) for k, v in data.items()}
            return data
        if "required" not in schema and not self.declares_required:
            required = set(data)  # the description says nothing either way: keep them all
        else:
            required = set(schema.get("required", ()))
        return {
            key: self._strip(properties[key], value, depth + 1) if key in properties else value
            for key, value in data.items()
            if key in required
        }

    def _effective(self, node: dict[str, Any], data: Any) -> dict[str, Any]:
        """One schema for `data`: allOf merged, the best oneOf/anyOf alternative chosen."""
        schema = self._deref(node)
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k not in _COMBINERS}
        parts = [self._deref(p) for p in schema.get("allOf", [])]
        choices = [self._deref(p) for p in [*schema.get("oneOf", []), *schema.get("anyOf", [])]]
        if choices:
            parts.append(self._effective(_best(choices, data), data))
        for part in parts:
            part = self._effective(part, data)
            properties = {**part.get("properties", {}), **merged.get("properties", {})}
            required = [*merged.get("required", []), *part.get("required", [])]
            merged = {**part, **merged}
            if properties:
                merged["properties"] = properties
            if required:
                merged["required"] = required
        return merged

    # ------------------------------------------------------------------ schemas

    def _deref(self, node: dict[str, Any]) -> dict[str, Any]:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    @cached_property
    def _components(self) -> dict[str, Any]:
        return {"components": {"schemas": _to_json_schema(self.document.get("components", {})
                                                          .get("schemas", {}))}}  # fmt: skip

    def _validate(
        self,
        where: str,
        what: str,
        key: tuple[str, str, str],
        schema: dict[str, Any],
        data: Any,
        field: str | None = None,
    ) -> None:
        import jsonschema

        validator = self._validators.get(key)
        if validator is None:
            root = {**_to_json_schema(schema), **self._components}
            validator = jsonschema.Draft4Validator(root)
            self._validators[key] = validator
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
        if error is not None:
            at = "/".join(str(p) for p in error.absolute_path) or "(top)"
            code, named = _blame(error)
            raise SpecViolation(
                f"{where}: {what} at {at}: {error.message[:300]}",
                code=code,
                field=field or named,
                enum=error.validator == "enum",
            )


def _blame(error: Any) -> tuple[str, str | None]:
    """(code, field) for a jsonschema error: the field a person would fix, dotted."""
    path = [str(p) for p in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [name for name in error.validator_value if name not in instance]
        return "missing_field", ".".join([*path, *missing[:1]]) or None
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        extra = [name for name in instance if name not in known]
        return "invalid", ".".join([*path, *extra[:1]]) or None
    return "invalid", ".".join(path) or None


_COMBINERS = ("allOf", "oneOf", "anyOf")
_KINDS: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


def _best(choices: list[dict[str, Any]], data: Any) -> dict[str, Any]:
    def fit(schema: dict[str, Any]) -> tuple[int, int, int]:
        kind = schema.get("type")
        typed = kind is None or isinstance(data, _KINDS.get(kind, object))
        if not isinstance(data, dict):
            return (int(typed), 0, 0)
        names = set(schema.get("properties", {}))
        complete = all(name in data for name in schema.get("required", ()))
        return (int(typed), int(complete), len(names & set(data)))

    return max(choices, key=fit)


# Parameters that hold git refs or file paths may contain "/" (GitHub sends them unencoded).
_SLASHY = frozenset({"path", "ref", "file_path", "basehead", "branch"})


def _route_regex(template: str, greedy: bool) -> re.Pattern[str]:
    def param(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"(?P<{_group(name)}>{_segment(name, greedy)})"

    return re.compile("^" + re.sub(r"\\\{([^}]+)\\\}", param, re.escape(template)) + "$")


def _segment(name: str, greedy: bool) -> str:
    return ".+" if greedy and name in _SLASHY else "[^/]+"


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


def _media_type(headers: Mapping[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return "application/json"


def _json(where: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as err:
        raise SpecViolation(f"{where}: body is not JSON: {err}") from None


def _coerce(schema: dict[str, Any], value: str) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        return value  # left as a string, so the schema reports the wrong type
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "object" and "properties" in schema:
        return {"additionalProperties": False, **schema}
    return schema


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema draft 4: `nullable` becomes a null alternative."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _to_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-") and key not in ("example", "examples", "discriminator", "xml")
    }
    if "properties" in node and isinstance(node["properties"], dict):
        # property names are data, not keywords: don't strip "example" or "x-*" named fields
        out["properties"] = {k: _to_json_schema(v) for k, v in node["properties"].items()}
    if out.pop("nullable", False):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return copy.deepcopy(out) if out is node else out
