"""`promoter demo`: run `update` against a throwaway local environment repo and show it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import click

from promoter.ci import RunContext
from promoter.commands.update import update
from promoter.options import Options
from promoter.report import render_update

DEMO_PINS = {
    "images": ("web=1.4.2", "api=ghcr.io/acme/api:2.1.0@sha256:" + "5f" * 32, "worker=0.9.1"),
    "charts": ("web=0.3.1",),
}


def example_files() -> dict[str, bytes]:
    """The built-in example environment repo: path → content."""
    root = resources.files("promoter") / "examples" / "demo"
    files: dict[str, bytes] = {}

    def walk(node: object, prefix: str) -> None:
        for child in node.iterdir():  # type: ignore[attr-defined]
            path = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, f"{path}/")
            else:
                files[path] = child.read_bytes()

    walk(root, "")
    return files


def demo(options: Options) -> None:
    from promoter.testing.envrepo import commit_message, git_env, seed_repo, show_diff

    say = _say(options)
    with tempfile.TemporaryDirectory(prefix="promoter-demo-") as tmp:
        bare = Path(tmp) / "envs.git"
        bare.mkdir()
        _init_bare(bare, git_env())
        files = example_files()
        seed_repo(bare, {b: files for b in ("main", "env/dev", "env/staging", "env/prod")})
        say(f"environment repo: {bare} (branches main, env/dev, env/staging, env/prod)")
        flags = " ".join(f"--image {i}" for i in DEMO_PINS["images"])
        flags += " ".join(f" --chart {c}" for c in DEMO_PINS["charts"])
        say(f"\n$ promoter --repo {bare} update dev {flags}")
        opts = Options(repo=str(bare), output=options.output)
        run = RunContext.from_env({})
        result = update(opts, "dev", DEMO_PINS["images"], DEMO_PINS["charts"], run=run)
        say(render_update(result))
        say("\n" + commit_message(bare, "refs/heads/env/dev"))
        say("\n" + show_diff(bare, "refs/heads/env/dev").rstrip())
        say(f"\n$ promoter --repo {bare} update dev {flags}   # again")
        again = update(opts, "dev", DEMO_PINS["images"], DEMO_PINS["charts"], run=run)
        say(render_update(again))
        if options.output == "json":
            import json

            click.echo(json.dumps({"first": result.as_dict(), "second": again.as_dict()}))


def _init_bare(path: Path, env: dict[str, str]) -> None:
    import subprocess

    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)],
        check=True,
        env=env,
    )


def _say(options: Options) -> Callable[[str], None]:
    err = options.output == "json"

    def say(text: str) -> None:
        click.echo(text, err=err)

    return say
