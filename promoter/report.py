"""Human-readable rendering of results. JSON comes from the results' own as_dict()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from promoter.model import show_value

if TYPE_CHECKING:
    from promoter.commands.update import UpdateResult
    from promoter.commands.validate import Validation


def render_update(result: UpdateResult) -> str:
    where = f"{result.environment} ({result.branch})"
    if not result.changed:
        return f"{where}: already up to date, nothing to commit"
    rows = [(c.pin, c.file, c.key, f"{show_value(c.old)} -> {show_value(c.new)}")
            for c in result.changes]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"  {pin:<{widths[0]}}  {file:<{widths[1]}}  {key:<{widths[2]}}  {move}"
        for pin, file, key, move in rows
    ]
    count = f"{len(rows)} change{'s' if len(rows) != 1 else ''}"
    if result.dry_run:
        head = f"{where}: would commit {count} (dry run, nothing written)"
    else:
        retries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
        head = f"{where}: committed {count} as {(result.commit or '')[:12]}{retries}"
    derived = sorted(set(result.files) - {c.file for c in result.changes})
    lines += [f"  + {path} (kept in sync)" for path in derived]
    return "\n".join([head, *lines])


def render_validation(result: Validation) -> str:
    summary = (
        f"{len(result.environments)} environments, {len(result.apps)} apps, "
        f"{result.checked} pinned keys checked"
    )
    if result.valid:
        return f"promoter.yaml is valid: {summary}"
    return "\n".join([f"promoter.yaml: {summary}; problems:", *(f"  {p}" for p in result.problems)])
