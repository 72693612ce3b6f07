"""The global command-line options, as one value every command receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Options:
    repo: str | None = None
    config: str | None = None
    forge: str = "auto"
    api_url: str | None = None
    token: str | None = field(default=None, repr=False)
    output: str = "text"
    dry_run: bool = False
    # --commit-via / PROMOTER_COMMIT_VIA; None: not given (git, unless the environment's
    # `commit_via: api` says otherwise: promoter.delivery.commit_via).
    commit_via: Literal["git", "api"] | None = None
