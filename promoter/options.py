"""The global command-line options, as one value every command receives."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Options:
    repo: str | None = None
    config: str | None = None
    forge: str = "auto"
    api_url: str | None = None
    token: str | None = field(default=None, repr=False)
    output: str = "text"
    dry_run: bool = False
