"""Choosing and opening the forge adapter. Adapters import their SDK lazily, on open."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping

from promoter.errors import UsageError
from promoter.forge.base import Forge, ForgeInfo

__all__ = ["Forge", "ForgeInfo", "detect", "open_forge", "repository_path"]


def repository_path(repo_url: str) -> str | None:
    """`https://host/acme/envs.git` or `git@host:acme/envs.git` → `acme/envs`."""
    if "://" in repo_url:
        parts = urllib.parse.urlsplit(repo_url)
        if parts.scheme == "file":
            return None
        path = parts.path
    elif "@" in repo_url and ":" in repo_url:
        path = repo_url.split(":", 1)[1]
    else:
        return None
    path = path.strip("/").removesuffix(".git")
    return path or None


def _host(url: str) -> str:
    if "://" in url:
        return urllib.parse.urlsplit(url).hostname or ""
    if "@" in url and ":" in url:
        return url.split("@", 1)[1].split(":", 1)[0]
    return ""


def detect(
    forge: str,
    api_url: str | None,
    repo_url: str,
    env: Mapping[str, str] | None = None,
) -> ForgeInfo:
    """--forge auto: GitHub Actions / GitLab CI variables, then the remote's host, else none."""
    env = os.environ if env is None else env
    if api_url:
        _check_api_url(api_url)
    repository = repository_path(repo_url)
    host = _host(repo_url)
    kind = _auto_kind(api_url, host, env) if forge == "auto" else forge
    if kind == "none":
        return ForgeInfo("none", None, repository, host)
    if kind == "github":
        api = api_url or env.get("GITHUB_API_URL") or _default_api("github", host)
        return ForgeInfo("github", api, repository, host)
    if kind == "gitlab":
        api = api_url or env.get("CI_API_V4_URL") or _default_api("gitlab", host)
        return ForgeInfo("gitlab", api, repository, host)
    raise UsageError(f"--forge {forge!r}: expected auto, github, gitlab or none")


def _check_api_url(api_url: str) -> None:
    # Imported here: gitrepo is the one place URLs given to promoter are taken apart.
    from promoter.gitrepo import redact_url, split_url

    parts = split_url(api_url, "--api-url")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--api-url {redact_url(api_url)!r} is not a valid URL: expected "
            "http(s)://host[:port]/path (e.g. https://github.example.com/api/v3)"
        )


def _auto_kind(api_url: str | None, host: str, env: Mapping[str, str]) -> str:
    if api_url and "/api/v4" in api_url:
        return "gitlab"
    if api_url and ("/api/v3" in api_url or "api.github" in api_url):
        return "github"
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_API_URL"):
        return "github"
    if env.get("GITLAB_CI") == "true" and env.get("CI_API_V4_URL"):
        return "gitlab"
    if host == "github.com" or host.endswith(".github.com"):
        return "github"
    if host == "gitlab.com" or "gitlab" in host:
        return "gitlab"
    return "none"


def _default_api(kind: str, host: str) -> str:
    if kind == "github":
        return "https://api.github.com" if host in ("github.com", "") else f"https://{host}/api/v3"
    return f"https://{host or 'gitlab.com'}/api/v4"


def open_forge(info: ForgeInfo, token: str | None) -> Forge:
    if info.kind == "github":
        from promoter.forge.github import GitHubForge

        return GitHubForge(info, token)
    if info.kind == "gitlab":
        from promoter.forge.gitlab import GitLabForge

        return GitLabForge(info, token)
    from promoter.forge.none import NoForge

    return NoForge(info)
