"""Keep a Helm chart's Chart.lock in sync with its Chart.yaml. Pure functions, no I/O.

`helm dependency build` (Argo CD runs it) refuses a lock whose `digest` is not Helm's
internal/resolver.HashReq: sha256 of json.Marshal([2][]*chart.Dependency{chart deps, lock deps}).
To get those exact bytes we follow each value along Helm's road: yaml.v2 (YAML 1.1 plain scalars)
-> sigs.k8s.io/yaml (YAML numbers coerced into string fields) -> chart.Dependency ->
Metadata.Validate (sanitizes Chart.yaml entries only) -> encoding/json (struct order, omitempty,
HTML-safe escapes, sorted map keys, every import-values number a float64).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from promoter.errors import EditError
from promoter.yamledit import LimitError, check_limits

# pkg/chart/dependency.go, struct order; only name and repository lack omitempty.
_FIELDS: tuple[str, ...] = ("name", "version", "repository", "condition", "tags", "enabled")
_FIELDS += ("import-values", "alias")
_SANITIZED = ("name", "version", "repository", "condition")  # chart.Dependency.Validate
_V2_WORDS: dict[str, Any] = {"": None}  # yaml.v2 resolve.go: plain scalars that are no strings
for _words, _value in (
    ("y Y yes Yes YES true True TRUE on On ON", True),
    ("n N no No NO false False FALSE off Off OFF", False),
    ("~ null Null NULL", None),
    (".nan .NaN .NAN", math.nan),
    (".inf .Inf .INF +.inf +.Inf +.INF", math.inf),
    ("-.inf -.Inf -.INF", -math.inf),
):
    _V2_WORDS.update(dict.fromkeys(_words.split(" "), _value))
del _words, _value
_V2_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_GO_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z")
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000").union(
    map(chr, range(0x2000, 0x200B))
)  # unicode.IsSpace
_HTML_SAFE = str.maketrans({c: f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"})
# What Masterminds/semver reads as one exact version, not a range (no x, *, ~, ^, <, ||, ...).
_EXACT = re.compile(r"=?\s*(v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)\Z")
Deps = list[dict[str, Any] | None] | None  # None: Go's nil slice or nil pointer


def _fail(msg: str) -> Any:  # raise from inside an expression
    raise EditError(msg)


def _v2_plain(s: str) -> Any:
    """What yaml.v2 makes of an unquoted scalar (into interface{}, timestamps stay strings)."""
    if s in _V2_WORDS:
        return _V2_WORDS[s]
    plain = s if s[0] == "." else s.replace("_", "")
    if s[0] != "." and (m := _GO_INT.match(plain)):  # strconv.ParseInt/ParseUint(plain, 0, 64)
        body = m[2]
        v = int(body, 0) if body[1:2].isalpha() else int(body, 8 if body[0] == "0" else 10)
        v = -v if m[1] == "-" else v
        if -(2**63) <= v < 2**63 or (not m[1] and v < 2**64):
            return v
    if s[0] in "+-.0123456789" and _V2_FLOAT.match(plain) and math.isfinite(f := float(plain)):
        return f  # Go's ParseFloat fails on overflow, so "1e999" stays a string
    return s


def _py(node: Node) -> Any:
    if isinstance(node, ScalarNode):
        return _v2_plain(node.value) if node.style is None else node.value
    if isinstance(node, SequenceNode):
        return [_py(child) for child in node.value]
    assert isinstance(node, MappingNode)
    out: dict[str, Any] = {}
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.style is None and key.value == "<<":
            merged = _py(value)  # yaml.v2 merges in document order: later keys win
            for m in merged if isinstance(merged, list) else [merged]:
                out.update(m if isinstance(m, dict) else _fail("YAML merge of a non-mapping"))
        else:  # key to its JSON string now, before Python equates True, 1 and 1.0
            out[_go_key(_py(key))] = _py(value)
    return out


def _load(text: str, what: str) -> dict[str, Any]:
    try:
        check_limits(text)  # before _py, which expands aliases
    except LimitError as e:
        raise EditError(f"{what}: {e}") from None
    try:
        # The pure-Python composer on purpose: the conversions below follow its node styles
        # and tags, and libyaml (picked by default when ruamel.yaml.clib is installed) differs.
        doc = next((_py(n) for n in YAML(typ="safe", pure=True).compose_all(text)), None)
    except (YAMLError, TypeError) as e:  # TypeError: a list or map used as a key
        raise EditError(f"{what} is not valid YAML: {' '.join(str(e).split())}") from e
    return {} if doc is None else doc if isinstance(doc, dict) else _fail(f"{what} is no mapping")


def _digits(x: float, f32: bool) -> tuple[str, int]:
    """Shortest round-tripping digits of x > 0 (no trailing zeros), exponent of the first one."""
    s = repr(x)
    for p in range(9 if f32 else 0):
        if _f32(float(s := f"{x:.{p}e}")) == x:
            break
    _, digits, exp = Decimal(s).as_tuple()
    assert isinstance(exp, int)
    return "".join(map(str, digits)).rstrip("0"), len(digits) + exp - 1


def _f32(x: float) -> float:
    try:
        return float(struct.unpack("f", struct.pack("f", x))[0])
    except OverflowError:  # Go's float32() conversion gives ±Inf
        return math.copysign(math.inf, x)


def _go_float(x: float, f32: bool) -> str:
    """strconv.FormatFloat(x, 'g', -1, 32) for f32 (sigs.k8s.io/yaml's number -> string), else
    encoding/json's float64: 'f' within [1e-6, 1e21), else 'e' with e-07 cleaned to e-7."""
    x = _f32(x) if f32 else x
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else "+Inf" if x > 0 else "-Inf"
    digits, exp = _digits(abs(x), f32) if x else ("0", 0)
    e_form = exp < -4 or exp >= 6 if f32 else x != 0 and not 1e-6 <= abs(x) < 1e21
    if e_form:
        text = f"{digits[0]}{'.' if digits[1:] else ''}{digits[1:]}e{exp:+03d}"
    elif exp < 0:
        text = "0." + "0" * (-exp - 1) + digits
    else:
        text = digits[: exp + 1].ljust(exp + 1, "0") + ("." + digits[exp + 1 :]).rstrip(".")
    sign = "-" if math.copysign(1, x) < 0 else ""
    return sign + (text if f32 else re.sub(r"e-0(\d)\Z", r"e-\1", text))


def _go_key(k: Any) -> str:
    """sigs.k8s.io/yaml: a YAML map key becomes a JSON string."""
    if isinstance(k, float) and not math.isfinite(k):
        return ".nan" if math.isnan(k) else ".inf" if k > 0 else "-.inf"
    return k if isinstance(k, str) else _go_str(k, "a map key") or _fail(f"bad map key {k!r}")


def _go_str(v: Any, where: str) -> str | None:
    """A YAML value decoded into a Go string; None is JSON null, which leaves the field alone."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v) if isinstance(v, int) else _go_float(v, True)
    raise EditError(f"{where} must be a string, not a {'list' if isinstance(v, list) else 'map'}")


def _go_any(v: Any) -> Any:
    """A YAML value decoded into interface{}: numbers have all become float64 on the way."""
    if isinstance(v, int | float) and not isinstance(v, bool):  # yamlToJSON rejects NaN, ±Inf
        return float(v) if math.isfinite(v) else _fail(f"{v} cannot be encoded as JSON")
    if isinstance(v, list):
        return [_go_any(x) for x in v]
    if isinstance(v, dict):
        return {k: _go_any(x) for k, x in sorted((_go_key(k), x) for k, x in v.items())}
    return v


def _hits(doc: dict[Any, Any], field: str) -> list[tuple[str, Any]]:
    """encoding/json takes exact or case-folded keys, met in sorted (Go map) order."""
    keyed = ((_go_key(k), v) for k, v in doc.items())
    return sorted(((k, v) for k, v in keyed if k.casefold() == field), key=lambda kv: kv[0])


def _sanitize(s: str) -> str:
    """sanitizeString: unicode.IsSpace -> ' '; drops what unicode.IsPrint rejects."""
    keep = (c for c in s if c in _GO_SPACE or unicodedata.category(c)[0] in "LMNPS")
    return "".join(" " if c in _GO_SPACE else c for c in keep)


def _dep(raw: Any, where: str, chart: bool) -> dict[str, Any] | None:
    if raw is None or not isinstance(raw, dict):
        return None if raw is None and not chart else _fail(f"{where} is not a mapping")
    for k, v in raw.items():  # unknown keys are dropped, but a NaN there still fails YAML -> JSON
        if _go_key(k).casefold() not in _FIELDS:
            _go_any(v)
    d: dict[str, Any] = dict.fromkeys(_FIELDS, "") | {"tags": None, "enabled": False}
    d["import-values"] = None
    for f in _FIELDS:
        for key, v in _hits(raw, f):  # JSON null empties a slice, leaves a string or bool
            if f in ("tags", "import-values") and v is not None:
                items = v if isinstance(v, list) else _fail(f"{where}.{key} must be a list")
                tags = f == "tags"
                d[f] = [_go_str(x, f"{where}.{key}") or "" if tags else _go_any(x) for x in items]
            elif f in ("tags", "import-values"):
                d[f] = None
            elif f == "enabled" and v is not None:
                d[f] = v if isinstance(v, bool) else _fail(f"{where}.{key} must be a bool")
            elif (s := _go_str(v, f"{where}.{key}")) is not None:
                d[f] = s
    if chart:
        d |= {f: _sanitize(d[f]) for f in _SANITIZED}
        d["tags"] = d["tags"] and [_sanitize(t) for t in d["tags"]]
    return d


def _deps(raw: Any, what: str, chart: bool) -> Deps:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else _fail(f"{what} dependencies must be a list")
    return [_dep(d, f"{what} dependencies[{i}]", chart) for i, d in enumerate(items)]


def _enc(v: Any) -> str:
    if isinstance(v, float):
        return _go_float(v, False)
    if isinstance(v, str):  # Go escapes as Python does, plus its HTML-safe set
        return json.dumps(v, ensure_ascii=False).translate(_HTML_SAFE)
    if isinstance(v, list):
        return "[" + ",".join(map(_enc, v)) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{_enc(k)}:{_enc(x)}" for k, x in v.items()) + "}"
    return json.dumps(v)  # None, True, False


def _json(chart_deps: Deps, lock_deps: Deps) -> str:
    def omit(d: dict[str, Any] | None) -> Any:  # omitempty on all but name and repository
        return d and {f: d[f] for f in _FIELDS if d[f] or f in ("name", "repository")}

    return _enc([ds if ds is None else [omit(d) for d in ds] for ds in (chart_deps, lock_deps)])


def _hash(chart_deps: Deps, lock_deps: Deps) -> str:
    return "sha256:" + hashlib.sha256(_json(chart_deps, lock_deps).encode()).hexdigest()


def hashreq_json(chart_deps: list[Any] | None, lock_deps: list[Any] | None) -> str:
    """The exact text Helm hashes, for YAML-loaded `dependencies` of Chart.yaml and Chart.lock."""
    return _json(_deps(chart_deps, "Chart.yaml", True), _deps(lock_deps, "Chart.lock", False))


def lock_digest(chart_deps: list[Any] | None, lock_deps: list[Any] | None) -> str:
    """Helm's digest: "sha256:" + hex(sha256(hashreq_json(chart_deps, lock_deps)))."""
    return "sha256:" + hashlib.sha256(hashreq_json(chart_deps, lock_deps).encode()).hexdigest()


def _read(chart_text: str, lock_text: str) -> tuple[Deps, Deps, str, str]:
    """Chart.yaml deps, Chart.lock deps, the lock's digest and its dependencies key."""
    chart, lock = _load(chart_text, "Chart.yaml"), _load(lock_text, "Chart.lock")
    req = _deps(([("", None), *_hits(chart, "dependencies")])[-1][1], "Chart.yaml", True)
    key, raw = [("dependencies", None), *_hits(lock, "dependencies")][-1]
    digest = _go_str([("", None), *_hits(lock, "digest")][-1][1], "Chart.lock digest") or ""
    locked = _deps(raw, "Chart.lock", False)
    # Manager.Build's resolveRepoNames swaps "@repo"/"alias:repo" for its URL (from the user's
    # repositories.yaml) before hashing; the lock entry at the same index holds that URL.
    for dep, old in zip(req or [], locked or [], strict=False):
        if dep and old and dep["repository"].startswith(("@", "alias:")):
            dep["repository"] = old["repository"]
    return req, locked, digest, key


def check_lock(chart_yaml_text: str, lock_text: str) -> str | None:
    """None if Chart.lock's recorded digest is the one Helm computes, else a one-line reason."""
    try:
        req, locked, recorded, _ = _read(chart_yaml_text, lock_text)
    except EditError as e:
        return f"Chart.lock cannot be checked: {e}"
    if (actual := _hash(req, locked)) == recorded:
        return None
    return (
        f"Chart.lock is out of sync with Chart.yaml (digest {recorded or 'missing'}, "
        f"Helm computes {actual}): `helm dependency build` will refuse it"
    )


def lock_updates(
    chart_yaml_text_after: str,
    lock_text: str,
    now: datetime,
    *,
    chart_yaml_text_before: str | None = None,
) -> list[tuple[str, str]]:
    """The (key path, value) edits that bring Chart.lock in sync with the edited Chart.yaml.

    As in resolver.Resolve, lock entry i is Chart.yaml dependency i (names repeat under
    aliases). An exact version is copied; a local chart (no repository) keeps its Chart.yaml
    version verbatim; a range keeps its locked version only while provably unchanged since
    the lock matched: by `chart_yaml_text_before`, or else if only exact pins moved.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    req, locked, recorded, key = _read(chart_yaml_text_after, lock_text)
    if req is None or locked is None or len(req) != len(locked):
        raise EditError(
            f"Chart.lock locks {len(locked or [])} dependencies, Chart.yaml has {len(req or [])}: "
            "adding or removing one needs `helm dependency update`"
        )
    new: list[dict[str, Any] | None] = []
    ranges = []
    for i, (dep, old) in enumerate(zip(req, locked, strict=True)):
        assert dep is not None  # _dep refuses null Chart.yaml entries
        if old is None or old["name"] != dep["name"]:
            raise EditError(
                f"Chart.lock dependencies[{i}] is {old and old['name']!r}, Chart.yaml has "
                f"{dep['name']!r}: the lock does not follow Chart.yaml (`helm dependency update`)"
            )
        version = dep["version"]
        if dep["repository"] and (m := _EXACT.match(version)):
            version = m[1]  # "=1.2.3" locks as the index spells it: 1.2.3
        elif dep["repository"]:
            ranges.append(i)
            version = old["version"]
        new.append(old | {"version": version, "repository": dep["repository"]})
    if ranges and not _ranges_kept(
        req, locked, recorded, ranges, chart_yaml_text_before, lock_text
    ):
        dep = req[ranges[0]] or {}
        raise EditError(
            f"Chart.yaml dependencies[{ranges[0]}] ({dep['name']}) has the version range "
            f"{dep['version']!r}: promoter cannot lock a range without the chart repository index, "
            "so the pin must set an exact version (or Chart.lock was already out of sync)"
        )
    edits = [
        (f"{key}[{i}].{f}", n[f])
        for i, (n, o) in enumerate(zip(new, locked, strict=True))
        for f in ("version", "repository")
        if n and o and n[f] != o[f]
    ]
    if edits or _hash(req, new) != recorded:  # Manager.Update rewrites only a changed lock
        edits += [("digest", _hash(req, new)), ("generated", _go_time(now))]
    return edits


def _ranges_kept(
    req: Deps, locked: Deps, recorded: str, ranges: list[int], before: str | None, lock_text: str
) -> bool:
    """True when the lock matched Chart.yaml before the edit and no range has moved since."""
    req, locked = req or [], locked or []
    if before is not None:
        old = _read(before, lock_text)[0] or []
        if len(old) != len(req) or _hash(old, locked) != recorded:
            return False
        same = ("name", "version", "repository")
        return all((old[i] or {}).get(f) == (req[i] or {}).get(f) for i in ranges for f in same)
    # Without the old text: suppose each exact pin used to be its locked version, and ask the
    # recorded digest whether that is the Chart.yaml it was computed from.
    guess = [
        d if i in ranges or not d or not o else d | {f: o[f] for f in ("version", "repository")}
        for i, (d, o) in enumerate(zip(req, locked, strict=True))
    ]
    return _hash(guess, locked) == recorded


def _go_time(now: datetime) -> str:
    """time.Time in JSON (RFC3339Nano, trailing zeros cut), in UTC as Helm in CI writes it."""
    t = now.astimezone(UTC)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"
