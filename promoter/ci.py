"""What the CI system tells us about the run: who, where, which source commit."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from promoter.errors import UsageError
from promoter.fastimport import Identity, identity_problem
from promoter.message import check_actor, check_project, check_run_id, check_sha, check_url

DEFAULT_IDENTITY = Identity("promoter", "promoter@users.noreply.localhost")


@dataclass(frozen=True)
class RunContext:
    """Values read from CI variables. Each is checked against its own grammar on the way in
    (promoter.message's check_*): they end up in commit trailers, which audits trust."""

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
        actor = _read(env, "GITHUB_ACTOR", check_actor)
        server = _read(env, "GITHUB_SERVER_URL", check_url) or "https://github.com"
        repo = _read(env, "GITHUB_REPOSITORY", check_project)
        run = _read(env, "GITHUB_RUN_ID", check_run_id)
        url = f"{server.rstrip('/')}/{repo}/actions/runs/{run}" if repo and run else None
        identity = DEFAULT_IDENTITY
        if actor:
            actor_id = _read(env, "GITHUB_ACTOR_ID", check_run_id)
            user = f"{actor_id}+{actor}" if actor_id else actor
            identity = Identity(actor, f"{user}@users.noreply.github.com")
        return cls(
            actor=actor,
            pipeline_url=url,
            source_repo=repo,
            source_commit=_read(env, "GITHUB_SHA", check_sha),
            identity=_git_identity(env, identity),
        )

    @classmethod
    def _gitlab(cls, env: Mapping[str, str]) -> RunContext:
        login = _read(env, "GITLAB_USER_LOGIN", check_actor)
        identity = DEFAULT_IDENTITY
        if login:
            noreply = f"{login}@users.noreply.gitlab.com"
            email = env.get("GITLAB_USER_EMAIL") or noreply
            name = display_name(env.get("GITLAB_USER_NAME") or "") or login
            identity = Identity(name, noreply if identity_problem(name, email) else email)
        pipeline = _read(env, "CI_JOB_URL", check_url) or _read(env, "CI_PIPELINE_URL", check_url)
        return cls(
            actor=login,
            pipeline_url=pipeline,
            source_repo=_read(env, "CI_PROJECT_PATH", check_project),
            source_commit=_read(env, "CI_COMMIT_SHA", check_sha),
            identity=_git_identity(env, identity),
        )


def display_name(name: str) -> str:
    """A display name someone chose in their forge profile, made fit for a git identity:
    control characters, `<` and `>` dropped, runs of whitespace made one space."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f<>]", " ", name).split())


def _read(env: Mapping[str, str], name: str, check: Callable[[str, str], str]) -> str | None:
    value = env.get(name)
    return check(value, name) if value else None


def _git_identity(env: Mapping[str, str], fallback: Identity) -> Identity:
    # The variables git itself honours win, so a user can always say who commits; being
    # set on purpose, they are refused rather than repaired when git could not use them.
    name = env.get("GIT_AUTHOR_NAME") or fallback.name
    email = env.get("GIT_AUTHOR_EMAIL") or fallback.email
    problem = identity_problem(name, email)
    if problem:
        variables = [v for v in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL") if env.get(v)]
        raise UsageError(
            f"{' / '.join(variables) or 'commit identity'}: {problem}; set a plain name and "
            "an email of the form local@domain"
        )
    return Identity(name, email)
