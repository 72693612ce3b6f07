"""Human-readable rendering of results. JSON comes from the results' own as_dict()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from promoter.model import show_value

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
