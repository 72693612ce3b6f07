"""Global options → the things every command needs: the remote, a scratch repo, the config."""

from __future__ import annotations

import fcntl
import os
import shutil
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
    from promoter.forge.base import Forge


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
    with scratch_dir() as tmp:
        repo = GitRepo(remote, tmp / "repo.git")
        try:
            yield repo
        finally:
            repo.close()


# Scratch directories: `promoter-*` under the CI's own temp folder when there is one (cleaned
# with the job), else the system's. Each holds a lock file that its run keeps locked (flock)
# while it lives; the kernel drops the lock when the process dies, even by SIGKILL, so the next
# run can tell a dead run's directory from a live one's and reclaim it.
_SCRATCH_PREFIX = "promoter-"
_LOCK_NAME = ".promoter-lock"


def scratch_base() -> Path:
    for name in ("RUNNER_TEMP", "CI_BUILDS_DIR"):
        value = os.environ.get(name)
        if value and os.path.isdir(value):
            return Path(value)
    return Path(tempfile.gettempdir())


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh `promoter-*` directory, locked for this run, removed afterwards."""
    base = scratch_base()
    reclaim_stale(base)
    path = Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX, dir=base))
    lock = -1
    try:
        # Locked before it gets its name, so no other run ever sees it unlocked.
        pending = path / f"{_LOCK_NAME}.new"
        lock = os.open(pending, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(pending, path / _LOCK_NAME)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if lock >= 0:
            os.close(lock)


def reclaim_stale(base: Path) -> None:
    """Remove the `promoter-*` directories under `base` whose run is gone (lock not held).
    A directory without a lock file is never touched: it is not ours, or not ready yet."""
    try:
        candidates = [e for e in os.scandir(base) if e.name.startswith(_SCRATCH_PREFIX)]
    except OSError:
        return
    for entry in candidates:
        try:
            lock = os.open(os.path.join(entry.path, _LOCK_NAME), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)  # held: a live run
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(lock)


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
    repo.warm()  # while the default branch's fetch is under way: its blob comes next
    head = repo.fetch_default()
    return config_from(repo.read_files(head, [CONFIG_FILE])[CONFIG_FILE], repo.remote.url)


def config_from(data: bytes | None, where: str) -> Config:
    """The configuration in promoter.yaml's bytes as read from the default branch of the
    repository `where` (None: the file is not there), read over git or the forge's API."""
    from promoter.config import CONFIG_FILE, load_config

    if data is None:
        raise ConfigError(
            f"{CONFIG_FILE} not found on the default branch of {where}; "
            "add it there or pass --config PATH"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{CONFIG_FILE} is not UTF-8 text") from None
    return load_config(text)


class ForgeOpener:
    """Opens the forge once, when something needs it; says clearly when there is none."""

    def __init__(self, options: Options, repo: GitRepo, forge: Forge | None = None) -> None:
        self._options = options
        self._repo = repo
        self._forge = forge

    def require(self, what: str, hint: str = "") -> Forge:
        if self._forge is None:
            from promoter.forge import detect, open_forge

            url = self._repo.remote.url
            info = detect(self._options.forge, self._options.api_url, url)
            if info.kind == "none":
                raise UsageError(
                    f"{what} needs a forge API: pass --forge github|gitlab (and --api-url for "
                    f"GitHub Enterprise or self-managed GitLab){hint}"
                )
            self._forge = open_forge(info, resolve_token(self._options, url))
        return self._forge
