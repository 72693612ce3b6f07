"""What a promotion moves, from which source commit, and how it is described. Pure.

A promotion copies the pinned values (image tag, digest, repository or whole reference, chart
version) of some apps from one environment's files to another's. Only values that differ
move. The gate looks at the *origin* of those values on the source branch: the oldest commit
from which every promoted value has held its current value, so that a later, unrelated commit
(another app's update, still deploying) does not hold the promotion back.

Also here: the result of a promotion, its exit code (gate FAIL → 3, not reached → 4) and its
text rendering; `--output json` is the result's own as_dict().
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from promoter.config import Config, file_for
from promoter.delivery import closed_json, pull_request_json, pull_request_operation
from promoter.errors import EditError, GateFailed, GateTimeout, PromoterError
from promoter.model import Change, pinned_value_problem, show_value
from promoter.plan import Edit
from promoter.sinks import md_code, md_text
from promoter.yamledit import DocSelector, KeyPath, format_key_path, locate

if TYPE_CHECKING:
    from promoter.forge.base import PullRequest
    from promoter.gates import GateResult

_IMAGE_FIELDS = ("tag", "digest", "repository", "ref")


@dataclass(frozen=True)
class PinKey:
    """One pinned scalar of an app: an image's tag, digest, repository or ref, or its chart."""

    app: str
    pin: str  # "web/web" for an image, "web/chart" for the chart
    field: str  # tag | digest | repository | ref | version
    file: str  # as in promoter.yaml: may hold {env}
    doc: DocSelector | None
    key: KeyPath

    def path(self, env: str) -> str:
        return file_for(self.file, env)

    @property
    def where(self) -> str:
        return format_key_path(self.key)


def pin_keys(config: Config, apps: Sequence[str]) -> list[PinKey]:
    """Every pinned scalar of `apps`, in promoter.yaml's order."""
    keys: list[PinKey] = []
    for name in apps:
        app = config.app(name)
        for image in app.images.values():
            for kind in _IMAGE_FIELDS:
                key = getattr(image, kind)
                if key is not None:
                    keys.append(PinKey(name, image.label, kind, image.file, image.doc, key))
        if app.chart is not None:
            chart = app.chart
            keys.append(PinKey(name, chart.label, "version", chart.file, chart.doc, chart.version))
    return keys


def values_in(
    keys: Sequence[PinKey], env: str, branch: str, contents: Mapping[str, bytes | None]
) -> dict[PinKey, str]:
    """The value of every key in env's files; "" for null. EditError when one is missing."""
    values: dict[PinKey, str] = {}
    for key in keys:
        path = key.path(env)
        data = contents.get(path)
        if data is None:
            raise EditError(f"{path} does not exist on {branch} (pin {key.pin}, {env})")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise EditError(f"{path} on {branch} is not UTF-8 text (pin {key.pin})") from None
        try:
            value = locate(text, key.key, key.doc).value
        except EditError as err:
            raise EditError(f"{path} on {branch}: {err} (pin {key.pin}, {env})") from None
        problem = pinned_value_problem(key.field, value or "")
        if problem:
            raise EditError(
                f"{path} on {branch}: {key.where}: {problem}; fix it on {branch} before "
                f"promoting (pin {key.pin}, {env})"
            )
        values[key] = value or ""
    return values


def edits_for(keys: Sequence[PinKey], source: Mapping[PinKey, str], target_env: str) -> list[Edit]:
    """Set every key of the target to the source's value (plan.apply skips equal ones)."""
    return [
        Edit(k.app, k.pin, k.path(target_env), k.doc, k.key, source[k]) for k in keys if k in source
    ]


def moving(keys: Sequence[PinKey], target_env: str, changes: Sequence[Change]) -> list[PinKey]:
    """The keys whose value a plan's changes move."""
    moved = {(c.pin, c.file, c.key) for c in changes}
    return [k for k in keys if (k.pin, k.path(target_env), k.where) in moved]


Missing = object()  # a key absent from a commit's file: differs from any value


def origin(
    history: Sequence[tuple[str, Mapping[str, str | None]]],
    keys: Sequence[PinKey],
    env: str,
    value_at: Callable[[str, PinKey], object],
) -> int:
    """Index in `history` (newest first, [0] the tip) of the oldest commit from which every
    key has held its value at the tip, walking back without a gap.

    `history` rows are (commit, {path: blob id or None}); `value_at(blob, key)` reads a value
    (`Missing` when the key is not there). Commits whose blobs equal the tip's are not read.
    """
    if not history or not keys:
        return 0
    paths = {k.path(env) for k in keys}
    tip_blobs = {p: history[0][1].get(p) for p in paths}
    wanted = {k: value_at(b, k) if (b := tip_blobs[k.path(env)]) else Missing for k in keys}
    for index, (_, blobs) in enumerate(history[1:], start=1):
        if all(blobs.get(p) == tip_blobs[p] for p in paths):
            continue
        for key in keys:
            blob = blobs.get(key.path(env))
            value = value_at(blob, key) if blob else Missing
            if value is Missing or value != wanted[key]:
                return index - 1
    return len(history) - 1


def read_value(text: str, key: PinKey) -> object:
    """The key's value in text ("" for null), or Missing when it cannot be found."""
    from promoter.yamlread import UNUSUAL, read_scalar

    value = read_scalar(text, key.key, key.doc)  # one pass; UNUSUAL: the composer reads it
    if value is not UNUSUAL:
        return value
    try:
        return locate(text, key.key, key.doc).value or ""
    except EditError:
        return Missing


def changes_table(target: str, changes: Sequence[Change]) -> list[str]:
    """The Markdown table of a pull request's changes: target now → after."""
    rows = [
        f"| {md_text(c.app)} | {md_text(c.pin)} | {md_code(c.file)} | {md_code(c.key)} "
        f"| {md_code(c.old)} | {md_code(c.new)} |"
        for c in changes
    ]
    return [
        f"| App | Pin | File | Key | {md_text(target)} now | after |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def pull_request_body(
    source: str,
    source_branch: str,
    target: str,
    origin_sha: str,
    changes: Sequence[Change],
    gate_line: str,
) -> str:
    return "\n".join(
        [
            f"Promotes **{md_text(source)}** → **{md_text(target)}**: the versions on "
            f"{md_code(source_branch)} at {md_code(origin_sha[:12])}.",
            "",
            *changes_table(target, changes),
            "",
            f"**Gate**: {gate_line}",
            "",
            "<sub>Opened by promoter. Its branch is promoter-owned: the next promotion of "
            f"{md_text(source)} to {md_text(target)} replaces it.</sub>",
            "",
        ]
    )


Delivery = Literal["push", "pull-request"]


@dataclass(frozen=True)
class PromoteResult:
    source: str
    target: str
    source_branch: str
    target_branch: str
    delivery: Delivery
    changes: tuple[Change, ...]
    origin: str | None  # the source commit carrying the promoted values (X)
    gate: GateResult | None  # None: nothing to promote, or --no-gate
    gate_skipped: bool
    required: tuple[str, ...]
    dry_run: bool
    commit: str | None = None
    pull_request: PullRequest | None = None
    head_branch: str | None = None
    merged: bool = False
    merge_commit: str | None = None
    auto_merge: bool = False
    attempts: int = 0
    history_searched: int = 0  # source commits examined for the origin
    history_complete: bool = True
    files: tuple[str, ...] = field(default=())
    closed: PullRequest | None = None  # a stale pull request closed (nothing left to carry)
    pushed: bool = False  # the promoter branch was pushed (False: it already held this)
    error: str | None = None  # this target failed (fan-out goes on with the others)
    exit_code: int = 0
    held: Mapping[str, object] | None = None  # outside its windows or in a freeze (errors.Held)
    override_window: str | None = None  # held, but let through for this recorded reason

    @property
    def blocked(self) -> bool:
        return self.gate is not None and self.gate.verdict.value != "pass"

    @property
    def changed(self) -> bool:
        """Something was (or, in a dry run, would be) written. A re-run that finds its pull
        request already carrying exactly this is not a change."""
        written = self.pull_request is None or self.pushed or self.merged
        return bool(self.changes) and not self.blocked and self.error is None and written

    @property
    def outcome(self) -> int:
        """This target's exit code: its error's, the gate's (3 failed, 4 not reached), or 0."""
        if self.error is not None:
            return self.exit_code
        if self.gate is not None and self.gate.verdict.value == "fail":
            return 3
        return 4 if self.blocked else 0

    def gate_dict(self) -> dict[str, Any]:
        base: dict[str, Any] = {"environment": self.source, "required": list(self.required)}
        if self.gate_skipped:
            return {**base, "verdict": "skipped", "target": self.origin}
        if self.gate is None:
            return {**base, "verdict": None, "target": self.origin}
        return {**base, **self.gate.as_dict()}

    def as_dict(self) -> dict[str, Any]:
        pr = self.pull_request
        return {
            "command": "promote",
            "changed": self.changed,
            "from": self.source,
            "to": self.target,
            "commit": self.commit,
            "pull_request": pull_request_json(pr, self.merged, self.merge_commit, self.auto_merge),
            "closed_pull_request": closed_json(self.closed),
            "operation": pull_request_operation(pr, self.closed, self.pushed, self.merged),
            "error": self.error,
            "exit_code": self.outcome,
            "gate": self.gate_dict(),
            "changes": [change.as_dict() for change in self.changes],
            "source_commit": self.origin,
            "branch": self.target_branch,
            "delivery": self.delivery,
            "dry_run": self.dry_run,
            "attempts": self.attempts,
            "files": list(self.files),
            "held": self.held is not None,
            **({k: v for k, v in self.held.items() if k != "environment"} if self.held else {}),
            "override_window": self.override_window,
        }


def gate_line(
    source: str, gate: GateResult | None, required: Sequence[str], skipped: bool, origin: str
) -> str:
    if skipped:
        return f"skipped (`--no-gate`); {source}'s gate was not checked."
    if gate is None or not required:
        return f"{source} requires no statuses."
    where = md_code((gate.deciding or origin)[:12])
    if gate.deciding and gate.deciding != origin:
        where += f", the first deployment that included {md_code(origin[:12])}"
    contexts = ", ".join(md_code(p) for p in required)
    return f"{source} passed on {where} ({contexts})."


# Fan-out: the run's exit code is the most severe of its targets', in this order. Errors come
# first (unexpected 1, bad input 2, lost race 5), then gates (failed 3, not reached 4), so one
# target's gate failure never hides another's error.
SEVERITY = (1, 2, 5, 3, 4, 0)


@dataclass(frozen=True)
class Promotions:
    """The results of one `promote` run, one per target, in the order the targets came."""

    results: tuple[PromoteResult, ...]

    @property
    def exit_code(self) -> int:
        codes = {r.outcome for r in self.results}
        return next((code for code in SEVERITY if code in codes), 1 if codes - {0} else 0)

    def as_json(self) -> dict[str, Any] | list[dict[str, Any]]:
        """One target: its object (as before fan-out); several: a list of them."""
        if len(self.results) == 1:
            return self.results[0].as_dict()
        return [r.as_dict() for r in self.results]


def raise_for_all(promotions: Promotions) -> None:
    """One target: its own error (gate 3/4). Several: one line per target that did not end
    at 0, and the most severe exit code (SEVERITY)."""
    if len(promotions.results) == 1:
        raise_for(promotions.results[0])
        return
    code = promotions.exit_code
    if code == 0:
        return
    failing = [r for r in promotions.results if r.outcome != 0]
    lines = []
    for r in failing:
        try:
            raise_for(r)
            lines.append(f"{r.target}: {r.error}")
        except PromoterError as err:
            lines.append(f"{r.target}: {err}")
    error = PromoterError(
        f"{len(failing)} of {len(promotions.results)} targets did not complete: "
        + " | ".join(lines)
    )
    error.exit_code = code
    raise error


def raise_for(result: PromoteResult) -> None:
    """A gate that blocked the promotion: FAIL → 3, not reached (yet) → 4."""
    if result.error is not None:
        error = PromoterError(result.error)
        error.exit_code = result.exit_code
        raise error
    gate = result.gate
    if gate is None or gate.verdict.value == "pass":
        return
    origin = (result.origin or "")[:12]
    latest = gate.latest
    if gate.verdict.value == "fail":
        decided = gate.decided_by
        reasons = "; ".join(
            c.reason for c in (decided.contexts if decided else ()) if c.verdict.value == "fail"
        )
        where = (gate.deciding or "")[:12]
        if gate.deciding and gate.deciding != result.origin:
            where += f" (the first deployment that included {origin})"
        raise GateFailed(f"{result.source}: gate failed on {where}: {reasons}; nothing promoted")
    waiting = "; ".join(
        f"{c.pattern}: {c.reason}"
        for c in (latest.contexts if latest else ())
        if c.verdict.value != "pass"
    )
    raise GateTimeout(
        f"{result.source}: gate not reached yet for {origin} ({waiting}); nothing promoted: "
        f"run `promoter wait {result.source} --sha {origin}` first, then promote again"
    )


def render_all(promotions: Promotions) -> str:
    return "\n".join(render(result) for result in promotions.results)


def render(result: PromoteResult) -> str:
    move = f"{result.source} ({result.source_branch}) -> {result.target} ({result.target_branch})"
    if result.error is not None:
        how = "held" if result.held is not None else "failed"
        return f"{move}: {how} (exit {result.exit_code}): {result.error}"
    if not result.changes:
        head = f"{move}: nothing to promote, {result.target} already has {result.source}'s versions"
        if result.closed is not None:
            head += f"; closed pull request #{result.closed.number} ({result.closed.url})"
        return head
    count = f"{len(result.changes)} change{'s' if len(result.changes) != 1 else ''}"
    if result.blocked:
        head = f"{move}: {count} held back by the gate"
    elif result.dry_run:
        how = "push" if result.delivery == "push" else "open a pull request with"
        head = f"{move}: would {how} {count} (dry run, nothing written)"
    elif result.pull_request is not None:
        # As update says it: a re-run that finds its branch already holding this pushes nothing.
        how = "pushed" if result.pushed else "unchanged"
        retries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
        head = f"{move}: {count} in pull request #{result.pull_request.number} ({how}{retries})"
    else:
        retries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
        head = f"{move}: committed {count} as {(result.commit or '')[:12]}{retries}"
    rows = [(c.pin, c.file, c.key, f"{show_value(c.old)} -> {show_value(c.new)}")
            for c in result.changes]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"  {pin:<{widths[0]}}  {file:<{widths[1]}}  {key:<{widths[2]}}  {moved}"
        for pin, file, key, moved in rows
    ]
    derived = sorted(set(result.files) - {c.file for c in result.changes})
    lines += [f"  + {path} (kept in sync)" for path in derived]
    lines.append(f"  source: {result.source}@{(result.origin or '')[:12]}")
    lines.append(f"  gate: {_gate_text(result)}")
    pr = result.pull_request
    if pr is not None:
        state = "merged" if result.merged else "auto-merge enabled" if result.auto_merge else "open"
        lines.append(f"  pull request: #{pr.number} {pr.url} ({pr.head} -> {pr.base}, {state})")
    return "\n".join([head, *lines])


def _gate_text(result: PromoteResult) -> str:
    if result.gate_skipped:
        return "skipped (--no-gate)"
    gate = result.gate
    if gate is None:
        return "not evaluated"
    if not result.required:
        return f"{result.source} requires no statuses: pass"
    text = f"{gate.verdict.value} ({', '.join(result.required)})"
    if gate.deciding:
        text += f" on {gate.deciding[:12]}"
        if gate.deciding != result.origin:
            text += f", the first deployment that included {(result.origin or '')[:12]}"
    return text
