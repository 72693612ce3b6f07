"""`promoter demo`: the whole loop against an in-process sandbox, narrated.

No network, token or configuration: a git server, a GitHub-compatible API and an Argo CD-like
operator simulator start on 127.0.0.1 (promoter.commands.sandbox), and each step is printed as
a user would type it, then run through the real command line:

    update dev → the operator reports → wait dev → promote --to staging (a pull request: its
    title and body) → promote --merge → status → history staging → rollback staging --steps 1

`--keep` leaves the sandbox running afterwards and prints the lines to point promoter at it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from importlib import resources
from typing import Any

import click

from promoter.errors import PromoterError
from promoter.options import Options

DEMO_PINS = {
    "images": ("web=1.4.2", "api=ghcr.io/acme/api:2.1.0@sha256:" + "5f" * 32, "worker=0.9.1"),
    "charts": ("web=0.3.1",),
}

# The demo's promoter.yaml: the built-in example with gates short enough to watch (the operator
# simulator answers in about a second) and staging taking pull requests, so that the loop shows
# one. `promoter sandbox` serves the example itself.
DEMO_CONFIG = """\
# promoter demo: three apps, three environments, one branch per environment.
environments:
  dev:
    branch: env/dev
    gate: {require: ["continuous-delivery/{app}"], soak: 2s}
  staging:
    branch: env/staging
    from: dev
    delivery: pull-request
    pull_request: {labels: [promotion]}
    gate: {require: ["continuous-delivery/{app}"], soak: 2s}
  prod:
    branch: env/prod
    from: staging
    delivery: pull-request
    pull_request: {labels: [promotion]}
    gate: {require: ["continuous-delivery/{app}"]}

apps:
  web:
    images:
      web: {file: apps/web/values.yaml, tag: image.tag}
    chart: {file: apps/web/Chart.yaml, version: "dependencies[name=web].version"}
  api:
    images:
      api: {file: apps/api/values.yaml, tag: image.tag, digest: image.digest,
            repository: image.repository}
      migrate: {file: apps/api/values.yaml, tag: migrations.image.tag}
    chart: {file: apps/api/helmrelease.yaml, version: spec.chart.spec.version,
            doc: {kind: HelmRelease}}
  worker:
    images:
      worker: {file: apps/worker/kustomization.yaml, tag: "images[name=worker].newTag"}
"""


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


def demo(options: Options, keep: bool = False) -> None:
    from promoter.commands.sandbox import hint, running_sandbox
    from promoter.sinks import disclose

    files = example_files() | {"promoter.yaml": DEMO_CONFIG.encode()}
    say = _say(options)
    steps: list[dict[str, Any]] = []
    with running_sandbox(forge="github", operator="argocd", delay=1.0, files=files) as info:
        say(
            "A throwaway environment repo (env/dev, env/staging, env/prod), a GitHub-compatible "
            "API and an Argo CD-like operator run on 127.0.0.1; promoter talks to them as to "
            "the real thing (PROMOTER_REPO, PROMOTER_API_URL, PROMOTER_FORGE, PROMOTER_TOKEN "
            "are set)."
        )
        with _environment(info):
            run = _runner(say, steps, options.output == "json")
            flags = " ".join(f"--image {i}" for i in DEMO_PINS["images"])
            flags += "".join(f" --chart {c}" for c in DEMO_PINS["charts"])
            say("\n# CI built new versions: pin them on dev, in one commit.")
            run(f"update dev {flags}")
            run(f"update dev {flags}", "# again: nothing to change, nothing written")
            say("\n# Argo CD syncs env/dev and reports on the commit; wait for dev's gate.")
            run("wait dev --timeout 60s")
            say("\n# staging takes pull requests: the promotion opens one.")
            run("promote --to staging")
            _show_pull_request(say, info, "promoter/dev-to-staging", "env/staging")
            run("promote --to staging --merge", "# a reviewer approved: merge it")
            run("status")
            run("history staging --limit 5")
            say("\n# 3 a.m.: the new versions misbehave on staging. Step back one change.")
            run("rollback staging --steps 1 --merge")
            run("history staging --limit 3")
        if options.output == "json":
            import json

            click.echo(json.dumps({"steps": steps}))
        if keep:
            disclose(sys.stderr, "\n" + hint(info))
            _serve_until_interrupted()
    failed = [s for s in steps if s["exit_code"] != 0]
    if failed:
        raise PromoterError(f"demo step failed: promoter {failed[0]['command']}")


def _runner(
    say: Callable[[str], None], steps: list[dict[str, Any]], json_mode: bool
) -> Callable[..., int]:
    from promoter.cli import main

    def run(command: str, comment: str = "") -> int:
        say(f"\n$ promoter {command}" + (f"   {comment}" if comment else ""))
        # With --output json the narration, these steps' output included, goes to stderr.
        out = sys.stderr if json_mode else sys.stdout
        try:
            with redirect_stdout(out):
                main(_split(command))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        steps.append({"command": command, "exit_code": code})
        return code

    return run


def _split(command: str) -> list[str]:
    import shlex

    return shlex.split(command)


@contextmanager
def _environment(info: Mapping[str, Any]) -> Iterator[None]:
    """PROMOTER_* pointing at the sandbox for the steps, the caller's restored afterwards."""
    wanted = {
        "PROMOTER_REPO": info["repo_url"],
        "PROMOTER_API_URL": info["api_url"],
        "PROMOTER_FORGE": info["forge"],
        "PROMOTER_TOKEN": info["token"],
    }
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _show_pull_request(say: Callable[[str], None], info: Mapping[str, Any], head: str,
                       base: str) -> None:  # fmt: skip
    from promoter.forge import open_forge
    from promoter.forge.base import ForgeInfo

    forge = open_forge(
        ForgeInfo(info["forge"], info["api_url"], info["repository"], "127.0.0.1"), info["token"]
    )
    pull = forge.find_pull_request(head, base)
    if pull is None:
        return
    say(f"\n# The pull request as reviewers see it: #{pull.number} {pull.title}")
    say("\n".join(f"  | {line}" for line in pull.body.rstrip().splitlines()))


def _serve_until_interrupted() -> None:
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        return


def _say(options: Options) -> Callable[[str], None]:
    err = options.output == "json"

    def say(text: str) -> None:
        click.echo(text, err=err)

    return say
