"""Encoders for the places text goes that are not git (fast-import: promoter.fastimport; commit
messages and trailers: promoter.message). One place per sink:

- log lines (promoter's own stdout and stderr): `GuardedStream`. GitHub's runner executes any
  line that starts with `::` (after whitespace) or holds `##[` as a workflow command, and both
  streams of a step are read. Every line promoter prints passes through the guard, which scrubs
  secrets, neutralises those markers (`::` → `\\::`, `##[` → `#\\#[`) and shows other control
  characters as `\\xNN`. Values are made one line before they get here (`model.show_value`).
- Markdown (job summaries, pull-request bodies): `md_text`, `md_code`.
- workflow commands the action writes on purpose (`::error ...::message`): `command_data`,
  `command_property`; `::add-mask::` for a token given to the action: `mask_command`.
- step outputs (`$GITHUB_OUTPUT`) and dotenv reports: `output_lines`, `dotenv_line`.
"""

from __future__ import annotations

import json
import re
from typing import TextIO

from promoter.errors import scrub

_COMMAND = re.compile(r"^(\s*)::")
_LEGACY_COMMAND = "##["
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029]")
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")


def guard_line(line: str, secrets: bool = True) -> str:
    """One line (no line break in it) made safe for a CI log: see the module docstring.
    `secrets=False` leaves registered secrets in (only for `disclose`)."""
    line = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", scrub(line) if secrets else line)
    line = _COMMAND.sub(lambda m: f"{m.group(1)}\\::", line)
    return line.replace(_LEGACY_COMMAND, "#\\#[")


def guard_text(text: str) -> str:
    """Every line of `text` through `guard_line`, line breaks kept."""
    parts = _LINE_BREAK.split(text)
    return "".join(part if i % 2 else guard_line(part) for i, part in enumerate(parts))


class GuardedStream:
    """A text stream that writes whole lines through `guard_line` (partial lines wait for
    their end, or for flush). Installed over sys.stdout and sys.stderr by the CLI."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        parts = _LINE_BREAK.split(self._pending)
        self._pending = parts.pop()
        out = "".join(part if i % 2 else guard_line(part) for i, part in enumerate(parts))
        if out:
            self.inner.write(out)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.inner.write(guard_line(self._pending))
            self._pending = ""
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def writable(self) -> bool:
        return True

    # No `buffer`: click would otherwise write around the guard to the bytes underneath.
    @property
    def encoding(self) -> str:
        return getattr(self.inner, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:
        return getattr(self.inner, "errors", None) or "strict"


def disclose(stream: TextIO, text: str) -> None:
    """Write `text` and a line break with every guard but the secret scrubber: for the one
    secret promoter means to show, the sandbox's own throwaway token."""
    inner = stream.inner if isinstance(stream, GuardedStream) else stream
    if isinstance(stream, GuardedStream):
        stream.flush()
    lines = _LINE_BREAK.split(text)
    inner.write("".join(p if i % 2 else guard_line(p, secrets=False) for i, p in enumerate(lines)))
    inner.write("\n")
    inner.flush()


# --------------------------------------------------------------------------- Markdown


def md_text(value: str | None) -> str:
    """A foreign value as Markdown text: the characters that open links, images, emphasis,
    code, HTML, entities, table cells, headings and autolinks backslash-escaped; line breaks
    as spaces."""
    text = " ".join(str(value or "").split())
    escaped = re.sub(r"([\\`*_\[\](){}<>|!~&#:])", r"\\\1", text)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)


def md_code(value: str | None) -> str:
    """A foreign value as inline code: in backticks when it holds no backtick, `|`, line
    break or control character; else `<code>` with every Markdown or HTML character as a
    numeric entity (nothing can end it or open a link or cell), breaks made visible."""
    if not value:
        return '`""`'
    if not _needs_json(value) and "`" not in value and "|" not in value:
        return f"`{value}`"
    text = json.dumps(value)[1:-1] if _needs_json(value) else value
    # Between HTML tags Markdown still applies: every character that could open syntax
    # (link, image, emphasis, code, HTML, entity, cell, autolink) becomes a numeric entity.
    escaped = re.sub(r"[\\`*_\[\](){}<>|!~&#:\"']", lambda m: f"&#{ord(m.group())};", text)
    return f"<code>{escaped}</code>"


def _needs_json(value: str) -> bool:
    return bool(_CONTROL.search(value) or "\n" in value or "\r" in value or "\t" in value)


# --------------------------------------------------------------------------- CI files


def command_data(value: str) -> str:
    """The message part of a workflow command (`::error title=x::<data>`), escaped as the
    runner unescapes it (%, CR, LF), so the value stays one command."""
    return _escape_data(scrub(value))


def mask_command(secret: str) -> str:
    """`::add-mask::<secret>`, the one workflow command that carries a secret as it is (the
    runner hides it in every later line of the log and does not show the command itself);
    escaped as `command_data`, but not scrubbed. GitHub Actions only: elsewhere it would print
    the secret."""
    return f"::add-mask::{_escape_data(secret)}\n"


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def command_property(value: str) -> str:
    """A property of a workflow command (`title=<value>`): as `command_data`, and `:` `,` too."""
    return command_data(value).replace(":", "%3A").replace(",", "%2C")


def output_lines(name: str, value: str) -> str:
    """`name=value` for $GITHUB_OUTPUT, or the `name<<DELIMITER` form when the value has a line
    break; the delimiter is derived from the value and never occurs in it."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        raise ValueError(f"output name {name!r}")
    value = scrub(value)
    if "\n" not in value and "\r" not in value:
        return f"{name}={value}\n"
    delimiter = "PROMOTER_EOF"
    while delimiter in value:
        delimiter += "_"
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def dotenv_line(name: str, value: str) -> str:
    """`NAME=value` for a GitLab dotenv report. GitLab reads one line per variable and keeps
    quotes as they are (no escapes, no multi-line values), so control characters and line
    breaks become spaces: the value can never start a second variable."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"dotenv name {name!r}")
    value = re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", " ", scrub(value))
    return f"{name}={value}\n"
