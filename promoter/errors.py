"""The promoter error tree. Each class carries the exit code that CI sees.

    PromoterError (1)            unexpected failure: network, forge, git
    ├── UsageError (2)           bad input or configuration; nothing was written
    │   ├── ConfigError (2)      promoter.yaml is invalid (names key path and line)
    │   └── EditError (2)        a pin cannot be applied to a file in the repo
    ├── GitError (1)             git failed (auth, network, protocol); token scrubbed
    ├── GateFailed (3)           a required status is failure/error
    ├── GateTimeout (4)          gate not reached before --timeout
    ├── Held (4)                 outside the environment's deploy windows, or in a freeze
    └── RaceLost (5)             lost a write race after all retries

`main()` turns any of these into one line on stderr and its exit code.
"""

from __future__ import annotations

from collections.abc import Iterable


class PromoterError(Exception):
    exit_code = 1


class UsageError(PromoterError):
    exit_code = 2


class ConfigError(UsageError):
    """`at(source, line, problem)` reads `<source> line <N>: <problem>`; `located(text)` reads
    source and line back from such a message (the action annotates the file and line)."""

    source: str | None = None  # the file, when known
    line: int | None = None  # 1-based, when known

    @classmethod
    def at(cls, source: str, line: int | None, problem: str) -> ConfigError:
        err = cls(f"{source} line {line}: {problem}" if line else f"{source}: {problem}")
        err.source, err.line = source, line or None
        return err

    @staticmethod
    def located(text: str) -> tuple[str, int] | None:
        import re

        found = re.match(r"(\S+) line ([1-9][0-9]*): ", text)
        return (found.group(1), int(found.group(2))) if found else None


class EditError(UsageError):
    pass


class GitError(PromoterError):
    pass


class GateFailed(PromoterError):
    exit_code = 3


class GateTimeout(PromoterError):
    exit_code = 4


class Held(PromoterError):
    """A write into an environment outside its windows or inside a freeze: nothing written.
    `details` is what JSON output carries (`held: true`, `reason`, `next_opening`, ...)."""

    exit_code = 4

    def __init__(self, message: str, details: dict[str, object]) -> None:
        super().__init__(message)
        self.details = details

    def as_dict(self) -> dict[str, object]:
        return {"held": True, **self.details, "changed": False, "error": str(self)}


class RaceLost(PromoterError):
    exit_code = 5


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that cleanup runs as it does for Ctrl-C."""


REDACTED = "***"

# Every token promoter learns is registered here, so that any message can be scrubbed of it.
_SECRETS: set[str] = set()


def register_secret(secret: str | None) -> None:
    if secret:
        _SECRETS.add(secret)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove every secret (and its common encodings) from text."""
    import base64
    import urllib.parse

    for secret in {*secrets, *_SECRETS}:
        if not secret:
            continue
        forms = {
            secret,
            urllib.parse.quote(secret, safe=""),
            base64.b64encode(f"x-access-token:{secret}".encode()).decode(),
            base64.b64encode(secret.encode()).decode(),
        }
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, REDACTED)
    return text
