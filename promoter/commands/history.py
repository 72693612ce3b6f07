"""`promoter history ENV [--limit N] [--format table|markdown|json]`: what happened to an
environment, newest first, from its branch's commits alone (nothing is stored elsewhere).

The branch's first-parent chain is walked `--limit` commits deep (fetched just that deep,
commits and trees, never a blob). Each commit is one entry:

- a **promoter change**: its trailers (promoter.message) name this environment. When, who
  (Promoter-Actor, else the author), what moved (each Promoter-Change: pin, key, old → new),
  where from (Promoter-Source: `<env>@<sha>` for a promotion, the app commit for an update),
  the pipeline, the commit it rolled back to (Promoter-Rollback-To), and the pull request
  when the message names one. A merge whose second parent is a promoter commit for this
  environment (a merged promotion or update pull request) is that change, landed when it was
  merged: the merged commit's trailers are read, and the merge's author is who merged it.
- a **manual change**: anything else (a person's commit, a merge of another branch, a
  promoter commit for another environment sharing the branch): author, subject, and the files
  it touched, from its tree and its first parent's (diff-tree: no file is read).

The pull request number comes from the message git forges write on the branch: GitHub's
`Merge pull request #N from ...` and `... (#N)` (squash), GitLab's `See merge request
path!N`. Every value read from the repository is foreign: each sink escapes it (text:
`model.show_value`, or the text itself when every character of it is printable; Markdown:
`sinks.md_text` / `md_code`; JSON: as it is).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from promoter.context import read_config, scratch_repo
from promoter.message import parse_change, parse_trailers
from promoter.model import show_value
from promoter.options import Options

if TYPE_CHECKING:
    from promoter.gitrepo import CommitInfo, GitRepo

FILES_SHOWN = 100  # files listed per manual change in JSON (files_total counts them all)
FILES_IN_TEXT = 5  # ... and in a table or Markdown row
VERBS = ("update", "promote", "rollback")

_GITHUB_MERGE = re.compile(r"^Merge pull request #([0-9]{1,10}) from \S")
_SQUASH = re.compile(r" \(#([0-9]{1,10})\)$")
_GITLAB_MERGE = re.compile(r"^See merge request \S+!([0-9]{1,10})$", re.MULTILINE)


@dataclass(frozen=True)
class Moved:
    """One Promoter-Change read back. `key` is None for a chart; `raw` holds a trailer value
    that is not of promoter's shape (then the other fields are empty)."""

    app: str
    pin: str
    key: str | None
    old: str
    new: str
    raw: str | None = None

    @classmethod
    def read(cls, value: str) -> Moved:
        change = parse_change(value)
        if change is None:
            return cls("", "", None, "", "", raw=value)
        if "/" not in change.pin and change.what == "chart":
            return cls(change.pin, f"{change.pin}/chart", None, change.old, change.new)
        return cls(change.pin.partition("/")[0], change.pin, change.what, change.old, change.new)

    def as_dict(self) -> dict[str, Any]:
        if self.raw is not None:
            return {"raw": self.raw}
        return {"app": self.app, "pin": self.pin, "key": self.key, "old": self.old,
                "new": self.new}  # fmt: skip

    def text(self) -> str:
        if self.raw is not None:
            return show_value(self.raw)
        what = "chart" if self.key is None else show_value(self.key)
        pin = show_value(self.app if self.key is None else self.pin)
        return f"{pin} {what} {show_value(self.old)} -> {show_value(self.new)}"

    def markdown(self) -> str:
        from promoter.sinks import md_code

        if self.raw is not None:
            return md_code(self.raw)
        what = "chart" if self.key is None else md_code(self.key)
        pin = md_code(self.app if self.key is None else self.pin)
        return f"{pin} {what} {md_code(self.old)} → {md_code(self.new)}"


@dataclass(frozen=True)
class Entry:
    """One commit of the environment branch's first-parent chain."""

    commit: str
    time: int  # commit time (for a merge: when it landed), seconds since the epoch
    kind: Literal["promoter", "manual"]
    author: str
    subject: str
    verb: str | None = None  # update | promote | rollback (promoter changes)
    actor: str | None = None
    changes: tuple[Moved, ...] = ()
    source: str | None = None
    source_url: str | None = None
    pipeline: str | None = None
    rollback_to: str | None = None
    pull_request: int | None = None
    merged_commit: str | None = None  # the promoter commit a merge brought in
    merged_by: str | None = None
    environment: str | None = None  # a manual entry written by promoter for another env
    files: tuple[tuple[str, str], ...] = ()  # (status, path), manual changes only
    files_total: int = 0

    @property
    def who(self) -> str:
        return self.actor or self.author

    def when(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def as_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "time": self.when(),
            "kind": self.kind,
            "verb": self.verb,
            "who": self.who,
            "actor": self.actor,
            "author": self.author,
            "subject": self.subject,
            "changes": [change.as_dict() for change in self.changes],
            "source": self.source,
            "source_url": self.source_url,
            "pipeline": self.pipeline,
            "pull_request": self.pull_request,
            "rollback_to": self.rollback_to,
            "merged_commit": self.merged_commit,
            "merged_by": self.merged_by,
            "environment": self.environment,
            "files": [{"status": status, "path": path} for status, path in self.files],
            "files_total": self.files_total,
        }


@dataclass(frozen=True)
class HistoryResult:
    environment: str
    branch: str
    limit: int
    complete: bool  # the entries reach the branch's first commit
    entries: tuple[Entry, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "branch": self.branch,
            "limit": self.limit,
            "complete": self.complete,
            "entries": [entry.as_dict() for entry in self.entries],
        }


# --------------------------------------------------------------------------- reading


def trailers_for(env: str, message: str) -> dict[str, list[str]] | None:
    """The Promoter-* trailers of a message (key without the prefix → values), when they
    name `env` as their environment; else None."""
    found: dict[str, list[str]] = {}
    for key, value in parse_trailers(message):
        if key.startswith("Promoter-"):
            found.setdefault(key.removeprefix("Promoter-"), []).append(value)
    return found if found.get("Environment") == [env] else None


def environment_of(message: str) -> str | None:
    """The environment a promoter commit names, whichever it is."""
    for key, value in parse_trailers(message):
        if key == "Promoter-Environment":
            return value
    return None


def promoter_commit(
    env: str, info: CommitInfo, commits: Mapping[str, tuple[CommitInfo, str]]
) -> tuple[dict[str, list[str]], str | None] | None:
    """Is this first-parent commit a promoter change of `env`? Its trailers, and the merged
    commit when it is a merge of one (whose second parent carries them); else None.
    `commits` holds the second parents of merges."""
    own = trailers_for(env, info.message)
    if own is not None:
        return own, None
    if len(info.parents) >= 2 and info.parents[1] in commits:
        merged = trailers_for(env, commits[info.parents[1]][0].message)
        if merged is not None:
            return merged, info.parents[1]
    return None


def pull_request_number(message: str) -> int | None:
    """The pull request a forge's merge (or squash) message names, or None."""
    subject = message.partition("\n")[0].strip()
    for pattern, text in ((_GITHUB_MERGE, subject), (_SQUASH, subject)):
        match = pattern.search(text)
        if match:
            return int(match[1])
    found = _GITLAB_MERGE.findall(message.replace("\r\n", "\n"))
    return int(found[-1]) if found else None


def _verb(subject: str, env: str, trailers: Mapping[str, list[str]], envs: Sequence[str]) -> str:
    if trailers.get("Rollback-To"):
        return "rollback"
    match = re.match(rf"^({'|'.join(VERBS)})\({re.escape(env)}\): ", subject)
    if match:
        return match[1]
    source = (trailers.get("Source") or [""])[0]
    return "promote" if source.partition("@")[0] in envs else "update"


def _first(trailers: Mapping[str, list[str]], key: str) -> str | None:
    values = trailers.get(key)
    return values[0] if values else None


def read_history(
    repo: GitRepo, env: str, branch: str, limit: int, envs: Sequence[str]
) -> tuple[list[Entry], bool]:
    """The entries of `branch`'s last `limit` first-parent commits, newest first, and
    whether they reach its first commit. Commits and trees only."""
    chain, complete = repo.first_parents(branch, limit, trees=True)
    commits = repo.read_commits(chain)
    seconds = [info.parents[1] for info, _ in commits.values() if len(info.parents) >= 2]
    commits.update(repo.read_commits(s for s in seconds if s not in commits))
    promoter: dict[str, tuple[dict[str, list[str]], str | None]] = {}
    manual: list[tuple[str, str | None]] = []
    for sha in chain:
        info = commits[sha][0]
        found = promoter_commit(env, info, commits)
        if found is not None:
            promoter[sha] = found
        else:
            manual.append((sha, info.parents[0] if info.parents else None))
    touched = repo.touched(manual)
    entries = []
    for sha in chain:
        info, author = commits[sha]
        subject = info.message.partition("\n")[0].strip()
        number = pull_request_number(info.message)
        if sha not in promoter:
            files = touched.get(sha, [])
            entries.append(Entry(sha, info.committed, "manual", author, subject,
                                 pull_request=number, environment=environment_of(info.message),
                                 files=tuple(files[:FILES_SHOWN]),
                                 files_total=len(files)))  # fmt: skip
            continue
        trailers, merged = promoter[sha]
        merged_by = None
        if merged is not None:
            merged_by = author
            author = commits[merged][1]
            subject = commits[merged][0].message.partition("\n")[0].strip()
        entries.append(
            Entry(
                sha,
                info.committed,
                "promoter",
                author,
                subject,
                verb=_verb(subject, env, trailers, envs),
                actor=_first(trailers, "Actor"),
                changes=tuple(Moved.read(value) for value in trailers.get("Change", [])),
                source=_first(trailers, "Source"),
                source_url=_first(trailers, "Source-Url"),
                pipeline=_first(trailers, "Pipeline"),
                rollback_to=_first(trailers, "Rollback-To"),
                pull_request=number,
                merged_commit=merged,
                merged_by=merged_by,
            )
        )
    return entries, complete


def history(options: Options, environment: str, limit: int = 20) -> HistoryResult:
    from promoter.errors import UsageError

    with scratch_repo(options) as repo:
        if not options.config:
            repo.start_fetch_default()
        # While promoter.yaml arrives and is parsed, the history of env/<name> (its usual
        # branch) is already being fetched, into a repo of its own (two shallow fetches
        # never share one repo). A guess the configuration contradicts is dropped.
        guess = f"env/{environment}"
        reader = repo.sibling()
        # (Not a branch name: the configuration will say what is wrong.)
        with contextlib.suppress(UsageError):
            reader.start_first_parents(guess, limit)
        config = read_config(options, repo)
        env = config.environment(environment)
        if env.branch != guess:
            reader = repo.sibling()
        entries, complete = read_history(reader, env.name, env.branch, limit,
                                         list(config.environments))  # fmt: skip
    return HistoryResult(env.name, env.branch, limit, complete, tuple(entries))


# --------------------------------------------------------------------------- rendering


def render(result: HistoryResult, fmt: str = "table") -> str:
    return markdown(result) if fmt == "markdown" else table(result)


def text(value: str | None) -> str:
    """Free text from the repository (a subject, a name) for one line of text: as it is
    when every character is printable, else JSON-quoted (model.show_value)."""
    if not value:
        return ""
    return value if value.isprintable() else show_value(value)


def _clip(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def _span(result: HistoryResult) -> str:
    count = len(result.entries)
    noun = "commit" if count == 1 else "commits"
    if result.complete:
        return f"{count} {noun}, the whole branch"
    return f"the last {count} {noun}"


def _details(entry: Entry) -> list[str]:
    """The lines of an entry's last column: what moved and where it came from."""
    if entry.kind == "manual":
        head = f"manual: {text(entry.subject) or '(no subject)'}"
        if entry.environment is not None:
            head += f" (promoter, for {show_value(entry.environment)})"
        lines = [head]
        shown = [f"{status} {show_value(path)}" for status, path in entry.files[:FILES_IN_TEXT]]
        more = entry.files_total - len(shown)
        if shown:
            lines.append(", ".join(shown) + (f" and {more} more" if more > 0 else ""))
        if entry.pull_request is not None:
            lines.append(f"pull request #{entry.pull_request}")
        return lines
    lines = [change.text() for change in entry.changes] or ["(no Promoter-Change trailer)"]
    notes = []
    if entry.rollback_to:
        notes.append(f"rolled back to {show_value(entry.rollback_to[:12])}")
    if entry.source:
        notes.append(f"from {show_value(entry.source)}")
    if entry.pull_request is not None or entry.merged_by:
        pr = f"pull request #{entry.pull_request}" if entry.pull_request else "merged"
        if entry.merged_by:
            pr += f" merged by {text(entry.merged_by)}"
        notes.append(pr)
    if entry.pipeline:
        notes.append(f"pipeline {show_value(entry.pipeline)}")
    if entry.source_url:
        notes.append(f"build {show_value(entry.source_url)}")
    return lines + notes


def table(result: HistoryResult) -> str:
    head = f"{result.environment} ({result.branch}): {_span(result)}, newest first"
    if not result.entries:
        return f"{result.environment} ({result.branch}): no commits"
    rows = []
    for entry in result.entries:
        when = datetime.fromtimestamp(entry.time, UTC).strftime("%Y-%m-%d %H:%M")
        what = entry.verb or entry.kind
        rows.append((when, entry.commit[:12], what, _clip(text(entry.who), 24), _details(entry)))
    titles = ("WHEN (UTC)", "COMMIT", "CHANGE", "WHO")
    widths = [max(len(titles[i]), *(len(row[i]) for row in rows)) for i in range(4)]
    indent = " " * (sum(widths) + 2 * 4)

    def line(cells: Sequence[str], last: str) -> str:
        return (
            "  ".join(f"{cell:<{w}}" for cell, w in zip(cells, widths, strict=True)) + "  " + last
        )

    out = [head, line(titles, "WHAT").rstrip()]
    for when, commit, what, who, details in rows:
        out.append(line((when, commit, what, who), details[0]).rstrip())
        out += [indent + detail for detail in details[1:]]
    return "\n".join(out)


def markdown(result: HistoryResult) -> str:
    from promoter.sinks import md_code, md_text

    title = (f"### History of **{md_text(result.environment)}** ({md_code(result.branch)}): "
             f"{_span(result)}, newest first")  # fmt: skip
    lines = [title, "", "| When (UTC) | Commit | Change | Who | What | Source |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for entry in result.entries:
        when = datetime.fromtimestamp(entry.time, UTC).strftime("%Y-%m-%d %H:%M")
        who = md_text(entry.who)
        if entry.merged_by:
            who += f" (merged by {md_text(entry.merged_by)})"
        if entry.kind == "manual":
            what = f"manual: {md_text(entry.subject)}"
            if entry.environment is not None:
                what += f" (promoter, for {md_text(entry.environment)})"
            files = [f"{status} {md_code(path)}" for status, path in entry.files[:FILES_IN_TEXT]]
            more = entry.files_total - len(files)
            if files:
                what += "<br>" + ", ".join(files) + (f" and {more} more" if more > 0 else "")
        else:
            what = "<br>".join(change.markdown() for change in entry.changes)
        source = []
        if entry.rollback_to:
            source.append(f"rolled back to {md_code(entry.rollback_to[:12])}")
        if entry.source:
            source.append(md_code(entry.source))
        if entry.pull_request is not None:
            source.append(f"pull request #{entry.pull_request}")
        if entry.pipeline:
            source.append(f"pipeline {md_code(entry.pipeline)}")
        change = entry.verb or entry.kind
        lines.append(f"| {when} | {md_code(entry.commit[:12])} | {change} | {who} | {what} "
                     f"| {'<br>'.join(source)} |")  # fmt: skip
    return "\n".join(lines)
