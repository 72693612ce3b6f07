"""The one encoder of `git fast-import` streams.

fast-import reads commands line by line, so a newline (or any control character) in a value
would start a command of its own: an author name could carry `M 100644 inline other/file`.
Everything that reaches the stream goes through here: identities are checked against git's
own rules for an ident (no control characters, no `<` or `>`; an email is `local@domain`),
messages and file contents travel as `data <exact byte count>`, and paths are C-style quoted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from promoter.errors import UsageError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^\s<>@\x00-\x1f\x7f]+@[^\s<>@\x00-\x1f\x7f]+$")


def identity_problem(name: str, email: str) -> str | None:
    """Why (name, email) cannot be a git identity, or None when it can."""
    if not name.strip():
        return "the name is empty"
    if _CONTROL.search(name):
        return "the name holds a control character (a newline, say)"
    if "<" in name or ">" in name:
        return "the name holds '<' or '>'"
    if not _EMAIL.match(email):
        return f"the email {_show(email)} is not of the form local@domain"
    return None


@dataclass(frozen=True)
class Identity:
    """A commit author or committer. Constructing one checks it (see `identity_problem`)."""

    name: str
    email: str

    def __post_init__(self) -> None:
        problem = identity_problem(self.name, self.email)
        if problem:
            raise UsageError(f"commit identity {_show(self.name)}: {problem}")

    def signature(self, when: float) -> str:
        return f"{self.name} <{self.email}> {int(when)} +0000"


def commit(
    ref: str,
    parent: str,
    message: str,
    author: Identity,
    committer: Identity,
    when: float,
    files: Mapping[str, tuple[str, bytes]],
) -> bytes:
    """One `commit` command: `files` maps path → (mode, content) over `parent`'s tree, and the
    new commit gets mark :1 and is printed on stdout (`get-mark`)."""
    if _CONTROL.search(ref) or " " in ref or _CONTROL.search(parent) or " " in parent:
        raise ValueError(f"fast-import: bad ref or parent {ref!r} {parent!r}")
    stream = bytearray()
    stream += b"commit %s\nmark :1\n" % ref.encode()
    stream += b"author %s\n" % author.signature(when).encode()
    stream += b"committer %s\n" % committer.signature(when).encode()
    stream += data(message.encode())
    stream += b"from %s\n" % parent.encode()
    for path, (mode, content) in files.items():
        if mode not in ("100644", "100755"):
            raise ValueError(f"fast-import: mode {mode} of {path!r} is not a regular file's")
        stream += b"M %s inline %s\n" % (mode.encode(), quote_path(path))
        stream += data(content)
    stream += b"get-mark :1\ndone\n"
    return bytes(stream)


def data(payload: bytes) -> bytes:
    """`data <count>` with the exact byte count: the payload cannot end the command early."""
    return b"data %d\n%s\n" % (len(payload), payload)


_C_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def quote_path(path: str) -> bytes:
    """A path in git's C-style quotes: `"`, `\\` and control characters escaped (octal for the
    rest), so no path can end the line or the quoted string."""
    if not path or "\0" in path:
        raise ValueError(f"fast-import: bad path {path!r}")
    out = []
    for char in path:
        if char in _C_ESCAPES:
            out.append(_C_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\{ord(char):03o}")
        else:
            out.append(char)
    return ('"' + "".join(out) + '"').encode()


def _show(value: str) -> str:
    """A value for an error message: quoted, control characters made visible, not too long."""
    shown = repr(value[:60] + ("…" if len(value) > 60 else ""))
    return shown
