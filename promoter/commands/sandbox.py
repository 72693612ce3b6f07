"""`promoter sandbox`: an environment repo, a forge API and an operator, all on 127.0.0.1.

The test bed, turned into a product: users try their promoter.yaml and pipeline steps offline,
and `promoter demo` could drive one. Prints one JSON line on stdout, a hint on stderr, and
serves until SIGINT/SIGTERM, then removes everything it made.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from promoter.config import CONFIG_FILE, load_config
from promoter.errors import UsageError
from promoter.forge.base import ForgeInfo
from promoter.sinks import disclose

REPOSITORY = "acme/envs"
Forge = Literal["github", "gitlab"]
Operator = Literal["argocd", "flux", "none"]


def seed_files(seed: str | None) -> dict[str, bytes]:
    """The files of the default branch: --seed folder, else the built-in 3-app example."""
    if seed is None:
        from promoter.commands.demo import example_files

        return example_files()
    root = Path(seed)
    if not (root / CONFIG_FILE).is_file():
        raise UsageError(f"--seed {seed}: no {CONFIG_FILE} in that folder")
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


@contextmanager
def running_sandbox(
    seed: str | None = None,
    forge: Forge = "github",
    operator: Operator = "argocd",
    port: int = 0,
    delay: float = 3.0,
    files: Mapping[str, bytes] | None = None,
    *,
    lax: bool = False,
    on_violation: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Start everything; yield the JSON-able description; stop and clean up on exit.
    `files` (path → content) replaces the seed folder (the demo uses its own).

    The API double is strict unless `lax`: each request is checked against the forge's API
    description and refused as the forge would refuse it; `on_violation` gets one line per
    refusal (default: printed on stderr)."""
    from promoter.sandbox.envrepo import seed_repo
    from promoter.sandbox.gitserver import GitHttpServer

    files = dict(files) if files is not None else seed_files(seed)
    try:
        config = load_config(files[CONFIG_FILE].decode("utf-8"), source=CONFIG_FILE)
    except UnicodeDecodeError:
        raise UsageError(f"{CONFIG_FILE} is not UTF-8 text") from None
    token = "sbx_" + secrets.token_hex(16)
    root = Path(tempfile.mkdtemp(prefix="promoter-sandbox-"))
    git = GitHttpServer(root / "git", token, port=port)
    api: Any = None
    simulator: Any = None
    try:
        git.start()
        bare = git.create_repo(REPOSITORY, default_branch="main")
        branches = {"main": files} | {env.branch: files for env in config.environments.values()}
        seed_repo(bare, branches, message="sandbox seed")
        report = on_violation or print_violation
        api = _start_api(forge, git, token, port + 1 if port else 0, lax, report)
        if operator != "none":
            simulator = _start_operator(forge, api.api_url, token, bare, config, operator, delay)
        yield {
            "repo_url": git.repo_url(REPOSITORY),
            "api_url": api.api_url,
            "repository": REPOSITORY,
            "token": token,
            "forge": forge,
            "operator": operator,
            "strict": not lax,
            "environments": {name: env.branch for name, env in config.environments.items()},
            "workdir": str(root),
        }
    finally:
        if simulator is not None:
            simulator.stop()
        if api is not None:
            api.stop()
        git.stop()
        shutil.rmtree(root, ignore_errors=True)


_PRINT_LOCK = threading.Lock()


def print_violation(text: str) -> None:
    """One line on stderr (through promoter's log guard) for a request the forge would refuse,
    or an answer the sandbox got wrong."""
    kind, _, what = text.partition(": ")
    label = "refused" if kind == "request" else f"{kind} broke the API description"
    line = " ".join(f"promoter sandbox: {label}: {what}".split())
    with _PRINT_LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _start_api(
    forge: Forge, git: Any, token: str, port: int, lax: bool, report: Callable[[str], None]
) -> Any:
    api: Any
    if forge == "github":
        from promoter.sandbox.github_api import GitHubApiDouble

        api = GitHubApiDouble(git, token, port=port, strict=not lax, on_violation=report)
    else:
        from promoter.sandbox.gitlab_api import GitLabApiDouble

        api = GitLabApiDouble(git, token, port=port, strict=not lax, on_violation=report)
    api.start()
    return api


def _start_operator(
    forge: Forge,
    api_url: str,
    token: str,
    bare: Path,
    config: Any,
    kind: Operator,
    delay: float,
) -> Any:
    from promoter.forge import open_forge
    from promoter.sandbox.operator import OperatorSimulator

    adapter = open_forge(ForgeInfo(forge, api_url, REPOSITORY, "127.0.0.1"), token)
    apps: dict[str, list[str]] = {}
    for env in config.environments.values():
        apps.setdefault(env.branch, list(config.apps))
    simulator = OperatorSimulator(adapter, bare, apps, kind="flux" if kind == "flux" else "argocd",
                                  delay=delay)  # fmt: skip
    simulator.start()
    return simulator


def hint(info: Mapping[str, Any]) -> str:
    first = next(iter(info["environments"]), "dev")
    return "\n".join(
        [
            f"promoter sandbox: serving {info['repository']} with a {info['forge']} API"
            + (f" and an {info['operator']} operator" if info["operator"] != "none" else ""),
            "Point promoter at it:",
            f"  export PROMOTER_REPO={info['repo_url']}",
            f"  export PROMOTER_API_URL={info['api_url']}",
            f"  export PROMOTER_FORGE={info['forge']}",
            f"  export PROMOTER_TOKEN={info['token']}",
            "Then try:",
            f"  promoter --dry-run update {first} --image web=1.4.2",
            f"  promoter update {first} --image web=1.4.2 && promoter wait {first} --soak 0",
            f"  git clone http://x-access-token:$PROMOTER_TOKEN@{info['repo_url'][7:]}",
            (
                "Requests are checked against the forge's API description; what it would "
                "refuse is refused and shown here."
                if info.get("strict", True)
                else "--lax: requests are not checked against the API description."
            ),
            "Stop with Ctrl-C.",
        ]
    )


def sandbox(
    seed: str | None = None,
    forge: Forge = "github",
    operator: Operator = "argocd",
    port: int = 0,
    delay: float = 3.0,
    lax: bool = False,
) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with running_sandbox(seed, forge, operator, port, delay, lax=lax) as info:
            # The token is the sandbox's own and meant to be seen: past the scrubber.
            disclose(sys.stdout, json.dumps(info))
            disclose(sys.stderr, hint(info))
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
