"""Human-readable rendering of results. JSON comes from the results' own as_dict()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from promoter.model import show_value

if TYPE_CHECKING:
    from promoter.commands.update import UpdateResult


def render_update(result: UpdateResult) -> str:
    where = f"{result.environment} ({result.branch})"
    if not result.changed:
        return f"{where}: already up to date, nothing to commit"
    rows = [
        (c.file, c.key, f"{show_value(c.old)} -> {show_value(c.new)}", c.pin)
        for c in result.changes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"  {file:<{widths[0]}}  {key:<{widths[1]}}  {move:<{widths[2]}}  ({pin})"
        for file, key, move, pin in rows
    ]
    count = f"{len(rows)} change{'s' if len(rows) != 1 else ''}"
    if result.dry_run:
        head = f"{where}: would commit {count} (dry run, nothing written)"
    else:
        retries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
        head = f"{where}: committed {count} as {(result.commit or '')[:12]}{retries}"
    return "\n".join([head, *lines])
