"""Global options → the things every command needs: the remote, a scratch repo, the config."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.errors import ConfigError, UsageError, register_secret
from promoter.gitrepo import GitRepo, Remote
from promoter.options import Options

if TYPE_CHECKING:
    from promoter.config import Config


def resolve_token(options: Options, repo_url: str = "") -> str | None:
    """--token / PROMOTER_TOKEN, else the token of the forge `forge.detect` picks for this
    remote (GITHUB_TOKEN or GITLAB_TOKEN; either when --forge auto finds none): the token and
    the forge are chosen by the same rule, so they cannot disagree."""
    from promoter.forge import detect

    token = options.token
    if not token:
        kind = detect(options.forge, options.api_url, repo_url).kind
        names = {"github": ["GITHUB_TOKEN"], "gitlab": ["GITLAB_TOKEN"]}.get(
            kind, ["GITHUB_TOKEN", "GITLAB_TOKEN"] if options.forge == "auto" else []
        )
        token = next((os.environ[n] for n in names if os.environ.get(n)), None)
    register_secret(token)
    return token


def remote_for(options: Options) -> Remote:
    location = options.repo or ""
    if not location:
        raise UsageError("no environment repository given: pass --repo URL or set PROMOTER_REPO")
    # Parsed once without a token first: that checks the URL and gives it without credentials,
    # which is what forge detection looks at.
    return Remote.parse(location, resolve_token(options, Remote.parse(location).url))


@contextmanager
def scratch_repo(options: Options) -> Iterator[GitRepo]:
    remote = remote_for(options)
    with tempfile.TemporaryDirectory(prefix="promoter-") as tmp:
        repo = GitRepo(remote, Path(tmp) / "repo.git")
        try:
            yield repo
        finally:
            repo.close()


def read_config(options: Options, repo: GitRepo | None) -> Config:
    """promoter.yaml from --config, else from the repository's default branch."""
    # Imported here (YAML machinery): commands start their git I/O before paying for it.
    from promoter.config import CONFIG_FILE, load_config

    if options.config:
        path = Path(options.config)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot read --config {options.config}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{options.config} is not UTF-8 text") from None
        return load_config(text, source=options.config)
    if repo is None:
        raise UsageError("no configuration: pass --config PATH or --repo URL")
    head = repo.fetch_default()
    data = repo.read_files(head, [CONFIG_FILE])[CONFIG_FILE]
    if data is None:
        raise ConfigError(
            f"{CONFIG_FILE} not found on the default branch of {repo.remote.url}; "
            "add it there or pass --config PATH"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{CONFIG_FILE} is not UTF-8 text") from None
    return load_config(text)
