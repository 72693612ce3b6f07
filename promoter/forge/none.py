"""Plain git, no hosting API: push-only flows work; anything needing a PR says so."""

from __future__ import annotations

from typing import NoReturn

from promoter.forge.base import (
    CommitStatus,
    ForgeInfo,
    MergeMethod,
    MergeResult,
    NeedsForge,
    PullRequest,
    PullRequestSpec,
    State,
)


class NoForge:
    def __init__(self, info: ForgeInfo) -> None:
        self.info = info

    def _needs(self, what: str) -> NoReturn:
        raise NeedsForge(
            f"{what} needs a forge API: pass --forge github|gitlab (and --api-url for "
            "GitHub Enterprise or self-managed GitLab)"
        )

    def find_pull_request(self, head: str, base: str) -> PullRequest | None:
        self._needs("finding a pull request")

    def last_pull_request(self, head: str, base: str) -> PullRequest | None:
        self._needs("finding a pull request")

    def open_or_update_pull_request(self, spec: PullRequestSpec) -> PullRequest:
        self._needs("opening a pull request")

    def close_pull_request(self, number: int) -> None:
        self._needs("closing a pull request")

    def merge_pull_request(
        self,
        number: int,
        expected_head_sha: str,
        method: MergeMethod = "merge",
        commit_title: str | None = None,
    ) -> MergeResult:
        self._needs("merging a pull request")

    def enable_auto_merge(self, number: int, method: MergeMethod = "merge") -> MergeResult:
        self._needs("auto-merge")

    def comment(self, number: int, body: str) -> None:
        self._needs("commenting")

    def statuses(self, sha: str) -> list[CommitStatus]:
        self._needs("reading commit statuses")

    def set_status(
        self,
        sha: str,
        state: State,
        context: str,
        description: str = "",
        target_url: str | None = None,
        repository: str | None = None,
    ) -> None:
        self._needs("setting a commit status")

    def create_deployment(
        self,
        ref: str,
        environment: str,
        state: State,
        target_url: str | None = None,
        repository: str | None = None,
    ) -> str:
        self._needs("recording a deployment")

    def set_deployment_status(
        self,
        deployment_id: str,
        environment: str,
        state: State,
        target_url: str | None = None,
        repository: str | None = None,
    ) -> None:
        self._needs("recording a deployment")

    def rate_limit_wait(self) -> float:
        return 0.0
