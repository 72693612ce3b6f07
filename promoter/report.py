"""Human-readable rendering of results. JSON comes from the results' own as_dict()."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from promoter.model import show_value
from promoter.sinks import md_code, md_text

if TYPE_CHECKING:
    from promoter.commands.update import UpdateResult
    from promoter.commands.validate import Validation
    from promoter.commands.wait import WaitResult


def render_update(result: UpdateResult) -> str:
    where = f"{result.environment} ({result.branch})"
    done = result.delivered
    if not result.changes:
        head = f"{where}: already up to date, nothing to commit"
        if done is not None and done.closed is not None:
            head += f"; closed pull request #{done.closed.number} ({done.closed.url})"
        return head
    rows = [(c.pin, c.file, c.key, f"{show_value(c.old)} -> {show_value(c.new)}")
            for c in result.changes]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"  {pin:<{widths[0]}}  {file:<{widths[1]}}  {key:<{widths[2]}}  {move}"
        for pin, file, key, move in rows
    ]
    count = f"{len(rows)} change{'s' if len(rows) != 1 else ''}"
    retries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
    pr = done.pull_request if done else None
    if result.dry_run and result.head is not None:
        head = (f"{where}: would put {count} on {result.head}, for the pull request into "
                f"{result.branch} (dry run, nothing written)")  # fmt: skip
    elif result.dry_run:
        head = f"{where}: would commit {count} (dry run, nothing written)"
    elif pr is not None and done is not None:
        how = "pushed" if done.pushed else "unchanged"
        head = f"{where}: {count} in pull request #{pr.number} ({how}{retries})"
    else:
        head = f"{where}: committed {count} as {(result.commit or '')[:12]}{retries}"
    derived = sorted(set(result.files) - {c.file for c in result.changes})
    lines += [f"  + {path} (kept in sync)" for path in derived]
    if pr is not None and done is not None:
        state = "merged" if done.merged else "auto-merge enabled" if done.auto_merge else "open"
        lines.append(f"  pull request: #{pr.number} {pr.url} ({pr.head} -> {pr.base}, {state})")
    return "\n".join([head, *lines])


def render_validation(result: Validation) -> str:
    summary = (
        f"{len(result.environments)} environments, {len(result.apps)} apps, "
        f"{result.checked} pinned keys checked"
    )
    if result.scanned:
        summary += f", {result.scanned} YAML files checked for plaintext Secrets"
    # Files that mention a Secret but do not parse (Helm templates, say): not a problem, but
    # what the guard could not read is said.
    notes = [f"  not fully checked: {line}" for line in result.unchecked[:10]]
    if len(result.unchecked) > 10:
        notes.append(f"  not fully checked: {len(result.unchecked) - 10} more files")
    if result.valid:
        return "\n".join([f"promoter.yaml is valid: {summary}", *notes])
    lines = [f"promoter.yaml: {summary}; problems:", *(f"  {p}" for p in result.problems)]
    if result.secrets:
        count = len(result.secrets)
        lines.append(
            f"{count} Secret{'s' if count != 1 else ''} in plaintext (values not shown): encrypt "
            "with SOPS, or use a SealedSecret or an ExternalSecret, and rotate what was exposed"
        )
    return "\n".join([*lines, *notes])


def render_wait(result: WaitResult) -> str:
    from datetime import UTC, datetime

    gate = result.gate
    where = f"{result.environment} ({result.branch})"
    if gate.verdict.value == "pass":
        head = f"{where}: gate passed"
    elif gate.verdict.value == "fail":
        head = f"{where}: gate FAILED"
    else:
        head = f"{where}: gate not reached after {int(result.waited.total_seconds())}s"
    if gate.deciding and gate.deciding != gate.target:
        head += f" on {gate.deciding[:12]}, the first deployment that included {gate.target[:12]}"
    elif gate.deciding:
        head += f" on {gate.deciding[:12]}"
    latest = gate.latest
    rows = []
    now = datetime.now(UTC)
    for context in latest.contexts if latest else ():
        if not context.statuses:
            rows.append((show_value(context.pattern), "absent", "", context.reason))
        for status in context.statuses:
            age = f"{int((now - status.updated_at).total_seconds())}s ago"
            link = show_value(status.target_url) if status.target_url else ""
            rows.append((show_value(status.context), status.state, age, link))
    if not rows:
        return head
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"  {ctx:<{widths[0]}}  {state:<{widths[1]}}  {age:<{widths[2]}}  {url}".rstrip()
        for ctx, state, age, url in rows
    ]
    return "\n".join([head, *lines])


# --------------------------------------------------------------------------- CI: summaries, outputs
#
# The action (promoter/action.py) runs a command with `--output json` and hands its JSON here.
# Every result names its kind (`"command"`: update, rollback, promote, wait, validate; promote
# with several targets prints a list of them), and each kind has one Markdown renderer (the
# job summary) and one outputs function (step outputs, dotenv report). Every value from the
# result reaches Markdown through sinks.md_text / md_code / _link.

Result = Mapping[str, Any]


def result_kind(data: Result | Sequence[Result]) -> str:
    """The kind a result names itself (a promote fan-out: a list of promote results); ""
    when it names none (status, history: no summary of their own here)."""
    first = data[0] if isinstance(data, Sequence) and data else data
    kind = first.get("command") if isinstance(first, Mapping) else None
    return kind if isinstance(kind, str) else ""


def ci_summary(kind: str, data: Result | Sequence[Result], command: str) -> str:
    """The job summary (Markdown) of a result of `kind`, from a run of `command`."""
    items = list(data) if isinstance(data, Sequence) else [data]
    render = _SUMMARIES.get(kind)
    if render is None:  # a result that names no kind: status, history, a held write
        error = items[0].get("error") if len(items) == 1 else None
        body = [f"Stopped: {md_text(str(error))}" if error else "Finished.", "",
                "Its JSON is in the step's `result` output."]  # fmt: skip
    else:
        body = [line for item in items for line in render(item)]
    return "\n".join([f"### promoter {md_text(command)}", "", *body]) + "\n"


def ci_outputs(kind: str, data: Result | Sequence[Result]) -> dict[str, str]:
    """Step outputs (also the dotenv report): `result`, the whole JSON, then the fields of
    `kind` that workflows branch on. With several promote targets, each per-target output is
    a JSON object keyed by target environment, and `changed` says whether any changed."""
    out = {"result": json.dumps(data, separators=(",", ":"))}
    fields = _OUTPUTS.get(kind)
    if fields is None:
        return out
    if isinstance(data, Sequence):
        per_target = [(str(item.get("to")), fields(item)) for item in data]
        names = dict.fromkeys(name for _, values in per_target for name in values)
        for name in names:
            if name == "changed":
                out[name] = _flag(any(v.get(name) == "true" for _, v in per_target))
            else:
                out[name] = json.dumps({t: v.get(name, "") for t, v in per_target})
        return out
    return {**out, **fields(data)}


OUTPUT_NAMES = ("result", "changed", "commit", "operation", "pr_number", "pr_url", "merged",
                "verdict", "deciding_commit", "source_commit", "rollback_to", "valid")  # fmt: skip


def _text(value: object) -> str:
    return "" if value is None else _flag(value) if isinstance(value, bool) else str(value)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _write_outputs(data: Result) -> dict[str, str]:
    pr = data.get("pull_request") or data.get("closed_pull_request") or {}
    return {
        "changed": _flag(bool(data.get("changed"))),
        "commit": _text(data.get("commit")),
        "operation": _text(data.get("operation") or "none"),
        "pr_number": _text(pr.get("number")),
        "pr_url": _text(pr.get("url")),
        "merged": _flag(bool((data.get("pull_request") or {}).get("merged"))),
    }


def _rollback_outputs(data: Result) -> dict[str, str]:
    return {**_write_outputs(data), "rollback_to": _text(data.get("rollback_to"))}


def _promote_outputs(data: Result) -> dict[str, str]:
    gate = data.get("gate") or {}
    return {
        **_write_outputs(data),
        "verdict": _text(gate.get("verdict") or "none"),
        "deciding_commit": _text(gate.get("deciding_commit")),
        "source_commit": _text(data.get("source_commit")),
    }


def _wait_outputs(data: Result) -> dict[str, str]:
    return {"verdict": _text(data.get("verdict")),
            "deciding_commit": _text(data.get("deciding_commit"))}  # fmt: skip


def _validate_outputs(data: Result) -> dict[str, str]:
    return {"valid": _flag(bool(data.get("valid")))}


_OUTPUTS: dict[str, Callable[[Result], dict[str, str]]] = {
    "update": _write_outputs,
    "rollback": _rollback_outputs,
    "promote": _promote_outputs,
    "wait": _wait_outputs,
    "validate": _validate_outputs,
}


def _sha(value: object) -> str:
    return md_code(str(value)[:12]) if value else "—"


def _value(value: object) -> str:
    return md_code(str(value)) if value else "—"


def _link(text: str, url: object) -> str:
    """A Markdown link to an http(s) URL from outside, or the text alone: no other scheme,
    and no character Markdown or HTML would read inside the URL."""
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s<>()\[\]`\\|\"']+", url):
        return text
    return f"[{text}]({url})"


def _pull_request(data: Result) -> str:
    """`pull request #N (created)` with its link, or "" when none was touched."""
    pr = data.get("pull_request")
    closed = data.get("closed_pull_request")
    if closed:
        number = _link(f"#{md_text(_text(closed.get('number')))}", closed.get("url"))
        return f"closed pull request {number}: it had nothing left to change"
    if not pr:
        return ""
    number = _link(f"#{md_text(_text(pr.get('number')))}", pr.get("url"))
    operation = data.get("operation") or "none"
    what = {"created": "opened", "updated": "updated", "none": "unchanged"}.get(operation, "")
    state = ("merged" if pr.get("merged") else "auto-merge enabled" if pr.get("auto_merge")
             else "open")  # fmt: skip
    into = f"{_value(pr.get('head'))} → {_value(pr.get('base'))}"
    return f"pull request {number} {md_text(what)} ({into}, {state})"


def _changes_table(data: Result, now: str = "from") -> list[str]:
    changes = data.get("changes") or []
    if not changes:
        return []
    rows = ["| pin | file | key | " + now + " | to |", "|---|---|---|---|---|"]
    for c in changes:
        cells = [md_text(c.get("pin")), md_code(c.get("file")), md_code(c.get("key")),
                 _value(c.get("old")), _value(c.get("new"))]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return [*rows, ""]


def _count(data: Result) -> str:
    n = len(data.get("changes") or [])
    return f"{n} change{'s' if n != 1 else ''}"


def _write_md(data: Result) -> list[str]:
    """update and rollback: where, what happened, the pull request, the changes."""
    where = f"**{md_text(data.get('environment'))}**"
    if data.get("branch"):
        where += f" ({md_code(data.get('branch'))})"
    pr = _pull_request(data)
    if data.get("held"):
        return [f"{where}: held (exit 4): {md_text(data.get('error'))}", ""]
    if data.get("dry_run"):
        head = f"would write {_count(data)} (dry run, nothing written)"
    elif not data.get("changes"):
        head = "already up to date, nothing to change"
    elif data.get("delivery") == "pull-request":
        head = _count(data) + (" pushed" if data.get("changed") else ", already there")
    else:
        head = f"committed {_count(data)} as {_sha(data.get('commit'))}"
    lines = [f"{where}: {head}", ""]
    if pr:
        lines += [pr[0].upper() + pr[1:], ""]
    if data.get("rollback_to"):
        lines += [f"Rolled back to {_sha(data.get('rollback_to'))}.", ""]
    return lines + _changes_table(data)


def _promote_md(data: Result) -> list[str]:
    source, target = md_text(data.get("from")), md_text(data.get("to"))
    title = f"#### {source} → {target}"
    where = f"**{target}** ({md_code(data.get('branch'))})"
    origin = f"from **{source}** at {_sha(data.get('source_commit'))}"
    gate = data.get("gate") or {}
    code = data.get("exit_code") or 0
    if data.get("error"):
        how = "held" if data.get("held") else "failed"
        head = f"{how} (exit {code}): {md_text(data.get('error'))}"
    elif not data.get("changes"):
        head = f"nothing to promote, {target} already has {source}'s versions"
    elif gate.get("verdict") in ("fail", "pending"):
        why = "failed" if gate.get("verdict") == "fail" else "not reached yet"
        head = f"{_count(data)} held back: the gate {why} (exit {code}), {origin}"
    elif data.get("dry_run"):
        head = f"would promote {_count(data)} {origin} (dry run, nothing written)"
    elif data.get("pull_request"):
        head = f"{_count(data)} {origin}"
    else:
        head = f"committed {_count(data)} as {_sha(data.get('commit'))}, {origin}"
    lines = [title, "", f"{where}: {head}", ""]
    pr = _pull_request(data)
    if pr:
        lines += [pr[0].upper() + pr[1:], ""]
    lines += _changes_table(data, f"{target} now")
    if data.get("changes") and not data.get("error"):
        lines += _gate_md(gate, str(data.get("from") or ""))
    return lines


def _gate_md(gate: Result, source: str) -> list[str]:
    """The gate of a promotion's source: verdict, deciding commit, and each required status."""
    verdict = gate.get("verdict")
    name = f"**{md_text(source)}**"
    if verdict == "skipped":
        return [f"Gate of {name}: skipped (`--no-gate`).", ""]
    if verdict is None:
        return [f"Gate of {name}: not evaluated.", ""]
    if not gate.get("required"):
        return [f"Gate of {name}: no statuses required (pass).", ""]
    return _verdict_md(f"Gate of {name}", gate)


def _verdict_md(what: str, gate: Result) -> list[str]:
    target, deciding = gate.get("target"), gate.get("deciding_commit")
    where = f" on {_sha(deciding or target)}"
    if deciding and deciding != target:
        where += f", the first deployment that included {_sha(target)}"
    lines = [f"{what}: **{md_text(gate.get('verdict'))}**{where}", ""]
    lines += ["| required | context | state | since | details |", "|---|---|---|---|---|"]
    for pattern in gate.get("contexts") or []:
        required = md_code(pattern.get("pattern"))
        statuses = pattern.get("contexts") or []
        if not statuses:
            reason = md_text(pattern.get("reason"))
            lines.append(f"| {required} | — | absent | — | {reason} |")
        for ctx in statuses:
            state = md_text(ctx.get("state"))
            since = _value(str(ctx.get("updated_at") or "")[:19].replace("T", " "))
            details = _link("details", ctx.get("target_url")) if ctx.get("target_url") else ""
            lines.append(f"| {required} | {md_code(ctx.get('context'))} | {state} | {since} "
                         f"| {details or md_text(pattern.get('reason'))} |")  # fmt: skip
    return [*lines, ""]


def _wait_md(data: Result) -> list[str]:
    where = f"**{md_text(data.get('environment'))}** ({md_code(data.get('branch'))})"
    polls = data.get("polls")
    waited = f"after {md_text(_text(data.get('waited_seconds')))} s"
    lines = _verdict_md(f"{where}: gate", data)
    lines[0] += f" ({waited}, {md_text(_text(polls))} poll{'' if polls == 1 else 's'})"
    return lines


def _validate_md(data: Result) -> list[str]:
    counts = (f"{len(data.get('environments') or [])} environments, "
              f"{len(data.get('apps') or [])} apps, {_text(data.get('checked'))} pinned keys "
              "checked")  # fmt: skip
    if data.get("valid"):
        return [f"promoter.yaml is **valid**: {md_text(counts)}", ""]
    problems = [f"- {md_text(p)}" for p in data.get("problems") or []]
    many = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return [f"promoter.yaml: **{many}** ({md_text(counts)})", "", *problems, ""]


_SUMMARIES: dict[str, Callable[[Result], list[str]]] = {
    "update": _write_md,
    "rollback": _write_md,
    "promote": _promote_md,
    "wait": _wait_md,
    "validate": _validate_md,
}
