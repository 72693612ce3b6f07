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
    pass


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
