"""What the CI system tells us about the run: who, where, which source commit."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from promoter.gitrepo import Identity

DEFAULT_IDENTITY = Identity("promoter", "promoter@users.noreply.localhost")


@dataclass(frozen=True)
class RunContext:
    actor: str | None = None
    pipeline_url: str | None = None
    source_repo: str | None = None  # owner/name or GitLab project path
    source_commit: str | None = None
    identity: Identity = DEFAULT_IDENTITY

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunContext:
        env = os.environ if env is None else env
        if env.get("GITHUB_ACTIONS") == "true" or env.get("GITHUB_RUN_ID"):
            return cls._github(env)
        if env.get("GITLAB_CI") == "true" or env.get("CI_JOB_URL"):
            return cls._gitlab(env)
        return cls(identity=_git_identity(env, DEFAULT_IDENTITY))

    @classmethod
    def _github(cls, env: Mapping[str, str]) -> RunContext:
        actor = env.get("GITHUB_ACTOR") or None
        server, repo, run = (env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY",
                                                   "GITHUB_RUN_ID"))  # fmt: skip
        url = (
            f"{server or 'https://github.com'}/{repo}/actions/runs/{run}" if repo and run else None
        )
        identity = DEFAULT_IDENTITY
        if actor:
            actor_id = env.get("GITHUB_ACTOR_ID")
            user = f"{actor_id}+{actor}" if actor_id else actor
            identity = Identity(actor, f"{user}@users.noreply.github.com")
        return cls(
            actor=actor,
            pipeline_url=url,
            source_repo=repo,
            source_commit=env.get("GITHUB_SHA") or None,
            identity=_git_identity(env, identity),
        )

    @classmethod
    def _gitlab(cls, env: Mapping[str, str]) -> RunContext:
        login = env.get("GITLAB_USER_LOGIN") or None
        identity = DEFAULT_IDENTITY
        if login:
            email = env.get("GITLAB_USER_EMAIL") or f"{login}@users.noreply.gitlab.com"
            identity = Identity(env.get("GITLAB_USER_NAME") or login, email)
        return cls(
            actor=login,
            pipeline_url=env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL") or None,
            source_repo=env.get("CI_PROJECT_PATH") or None,
            source_commit=env.get("CI_COMMIT_SHA") or None,
            identity=_git_identity(env, identity),
        )


def _git_identity(env: Mapping[str, str], fallback: Identity) -> Identity:
    # The variables git itself honours win, so a user can always say who commits.
    return Identity(
        env.get("GIT_AUTHOR_NAME") or fallback.name,
        env.get("GIT_AUTHOR_EMAIL") or fallback.email,
    )
