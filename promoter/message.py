"""The one builder of promoter's commit messages and their trailers.

`history`, `rollback` and `metrics` trust the trailer block, so nothing from outside may add a
line to it: every value that becomes a trailer is checked against its own grammar when it
enters (a flag, a CI variable; see `check_*`), and the builder refuses anything that is not one
printable line. A caller's `--message` goes above the block, never inside or after it, and may
not hold a line that would make git stop reading before the block (a `---` patch divider or a
scissors line).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from promoter.errors import UsageError

if TYPE_CHECKING:
    from promoter.model import Change

_PRINTABLE_LINE = re.compile(r"^[^\x00-\x1f\x7f]*$")
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_PROJECT = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
_ACTOR = re.compile(r"^[A-Za-z0-9_.+-]+(\[bot\])?$")
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Lines after which `git interpret-trailers` stops reading a message (trailer.c): a patch
# divider (`---` then whitespace or the end) and a scissors line.
_DIVIDER = re.compile(r"^---(\s|$)")
_SCISSORS = re.compile(r"^#\s*-+\s*(>8|8<)")
SUBJECT_LIMIT = 200
REASON_LIMIT = 200
MESSAGE_LIMIT = 4000


# --------------------------------------------------------------------------- value grammars


def check_sha(value: str, where: str) -> str:
    if not _SHA.match(value):
        raise UsageError(f"{where}: {_visible(value)} is not a commit SHA (7-64 hex digits)")
    return value.lower()


def check_url(value: str, where: str) -> str:
    parts = urllib.parse.urlsplit(value) if _PRINTABLE_LINE.match(value) else None
    if (
        parts is None
        or " " in value
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(value) > 2000
    ):
        raise UsageError(f"{where}: {_visible(value)} is not an http(s) URL on one line")
    if parts.username or parts.password:
        raise UsageError(f"{where}: the URL carries credentials; pass it without user:password@")
    return value


def check_project(value: str, where: str) -> str:
    if not _PROJECT.match(value) or len(value) > 255:
        raise UsageError(f"{where}: {_visible(value)} is not an owner/name project path")
    return value


def check_actor(value: str, where: str) -> str:
    if not _ACTOR.match(value) or len(value) > 255:
        raise UsageError(f"{where}: {_visible(value)} is not a user name")
    return value


def check_run_id(value: str, where: str) -> str:
    if not _DIGITS.match(value):
        raise UsageError(f"{where}: {_visible(value)} is not a run number")
    return value


def check_reason(value: str, where: str) -> str:
    """A reason recorded as a trailer (`--override-window`): one printable line, at most
    REASON_LIMIT characters, surrounding spaces dropped."""
    text = value.strip()
    if not text:
        raise UsageError(f"{where} is empty: say why the change cannot wait")
    if not _PRINTABLE_LINE.match(text):
        raise UsageError(f"{where}: {_visible(value)} holds a line break or control character; "
                         "give the reason on one line")  # fmt: skip
    if len(text) > REASON_LIMIT:
        raise UsageError(f"{where} is longer than {REASON_LIMIT} characters; shorten it")
    return text


def check_message(value: str) -> str:
    """A caller's commit message (`--message`): printable lines, none that would end git's
    reading of the message before the trailer block."""
    text = value.replace("\r\n", "\n").strip()
    if not text:
        raise UsageError("--message is empty: give a subject, or leave --message out")
    if len(text) > MESSAGE_LIMIT:
        raise UsageError(f"--message is longer than {MESSAGE_LIMIT} characters")
    lines = text.split("\n")
    if len(lines[0]) > SUBJECT_LIMIT:
        raise UsageError(f"--message: the subject is longer than {SUBJECT_LIMIT} characters")
    for number, line in enumerate(lines, start=1):
        if not _PRINTABLE_LINE.match(line.replace("\t", " ")):
            raise UsageError(f"--message line {number} holds a control character; remove it")
        if _DIVIDER.match(line) or _SCISSORS.match(line):
            raise UsageError(
                f"--message line {number} ({line[:20]!r}) would hide promoter's trailers from "
                "git; rephrase it"
            )
    return text


# --------------------------------------------------------------------------- the message


@dataclass(frozen=True)
class Provenance:
    """Where a change comes from and who made it; each field already checked (`check_*`)."""

    source: str | None = None  # "<env>@<sha>", "<project>@<sha>" or "<sha>"
    source_url: str | None = None
    pipeline_url: str | None = None
    actor: str | None = None
    rollback_to: str | None = None  # rollback: the commit whose pin values are restored
    override_window: str | None = None  # the reason a held write went ahead (check_reason)


def build_message(
    verb: str,
    environment: str,
    changes: Sequence[Change],
    provenance: Provenance,
    subject: str | None = None,
) -> str:
    """`<verb>(<env>): <summary>` (or the caller's checked message), a blank line, then the
    trailer block, which is always the message's last paragraph."""
    head = subject if subject is not None else title(verb, environment, changes)
    trailers = [("Environment", environment)]
    trailers += [("Change", change.trailer) for change in changes]
    for key, value in (
        ("Source", provenance.source),
        ("Source-Url", provenance.source_url),
        ("Rollback-To", provenance.rollback_to),
        ("Override-Window", provenance.override_window),
        ("Pipeline", provenance.pipeline_url),
        ("Actor", provenance.actor),
    ):
        if value:
            trailers.append((key, value))
    block = [_trailer(key, value) for key, value in trailers]
    return f"{head.strip()}\n\n" + "\n".join(block) + "\n"


def title(verb: str, environment: str, changes: Sequence[Change]) -> str:
    if not _ENV_NAME.match(environment):
        raise ValueError(f"environment name {environment!r}")  # config.py guarantees it
    return f"{verb}({environment}): {summary(changes)}"


def summary(changes: Sequence[Change]) -> str:
    """`web 1.4.2, api/migrate 2.0.1, web chart 0.3.1`: one item per pin, tags preferred."""
    from promoter.model import show_value

    items: dict[str, str] = {}
    for change in changes:
        if change.pin.endswith("/chart"):
            items[change.pin] = f"{change.app} chart {show_value(change.new)}"
            continue
        name = change.app if change.pin == f"{change.app}/{change.app}" else change.pin
        if change.pin not in items or change.key.endswith("tag"):
            items[change.pin] = f"{name} {_short(change.key, change.new)}"
    return ", ".join(items.values())


def _short(key: str, value: str) -> str:
    from promoter.model import ImageRef, show_value

    if not value:
        return "(cleared)"
    if key.endswith("digest"):
        return show_value(value[:19])
    try:
        ref = ImageRef.parse(value)
    except ValueError:
        return show_value(value)
    return ref.tag or (ref.digest or value)[:19]


def _trailer(key: str, value: str) -> str:
    # Values were checked where they entered; this is the last line of defence of the block.
    if not value or not _PRINTABLE_LINE.match(value) or value != value.strip():
        raise ValueError(f"trailer Promoter-{key} would not be one line: {value!r}")
    return f"Promoter-{key}: {value}"


def _visible(value: str) -> str:
    """A value from outside, for an error message: quoted, control characters shown."""
    shown = value if len(value) <= 80 else value[:80] + "…"
    return repr(shown)


# --------------------------------------------------------------------------- reading back


def parse_trailers(message: str) -> list[tuple[str, str]]:
    """The trailers of a commit message as git reads them: the last paragraph, when every
    line of it is `Key: value`. promoter's own block is always that paragraph."""
    body = message.replace("\r\n", "\n").rstrip("\n")
    block = body.rpartition("\n\n")[2] if "\n\n" in body else ""
    pairs = []
    for line in block.split("\n"):
        key, sep, value = line.partition(": ")
        if not sep or not re.fullmatch(r"[A-Za-z0-9-]+", key):
            return []
        pairs.append((key, value))
    return pairs


@dataclass(frozen=True)
class ChangeTrailer:
    """One `Promoter-Change: <pin> <key|chart> <old> -> <new>` read back."""

    pin: str  # "web/web", or the app for a chart ("web")
    what: str  # the key path, or "chart"
    old: str  # "" for null
    new: str


def parse_change(value: str) -> ChangeTrailer | None:
    """Read a Promoter-Change value written by `Change.trailer` (values JSON-quoted when not
    plain, `""` for empty); None when it is not of that shape."""
    import json

    tokens = []
    rest = value.strip()
    while rest:
        if rest.startswith('"'):
            try:
                decoded, end = json.JSONDecoder().raw_decode(rest)
            except ValueError:
                return None
            tokens.append(str(decoded))
            rest = rest[end:].lstrip(" ")
        else:
            word, _, rest = rest.partition(" ")
            tokens.append(word)
    if len(tokens) != 5 or tokens[3] != "->":
        return None
    pin, what, old, _, new = tokens
    return ChangeTrailer(pin, what, old, new)
