"""Command line: parse options, call promoter.commands.<verb>, render, map errors to exit codes."""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

import click

from promoter import __version__
from promoter.errors import PromoterError, Terminated, register_secret
from promoter.options import Options
from promoter.sinks import GuardedStream


@click.group(
    context_settings={"auto_envvar_prefix": "PROMOTER", "help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="promoter")
@click.option("--repo", metavar="URL|PATH", help="Environment repository (https, ssh or a path).")
@click.option("--config", metavar="PATH", help="promoter.yaml to use instead of the repo's own.")
@click.option(
    "--forge",
    type=click.Choice(["auto", "github", "gitlab", "none"]),
    default="auto",
    show_default=True,
    help="Hosting API to use for pull requests and statuses.",
)
@click.option("--api-url", metavar="URL", help="Forge API base URL (GitHub Enterprise, GitLab).")
@click.option("--token", metavar="TOKEN", help="Token for git and the forge API (never printed).")
@click.option(
    "--commit-via",
    type=click.Choice(["git", "api"]),
    default=None,
    help="How writes reach the repo: git (commit and push; the default) or api (the forge's API "
    "makes each commit, which GitHub signs). promoter.yaml's `commit_via: api` forces api.",
)
@click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object on stdout.",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """promoter: pin versions on GitOps environment branches and promote them through gates."""
    ctx.obj = Options(**options)


_OVERRIDE_HELP = (
    "Write even outside the environment's deploy windows or in a freeze; REASON (one line) "
    "is recorded in the commit trailers and the pull request."
)


@contextmanager
def _held(options: Options, command: str) -> Iterator[None]:
    """A write held by its environment's windows (exit 4) still prints its JSON object
    (`command`, `held`, `reason`, `next_opening`) with --output json; the error line goes to
    stderr."""
    from promoter.errors import Held

    try:
        yield
    except Held as held:
        if options.output == "json":
            click.echo(json.dumps({"command": command, **held.as_dict()}))
        raise


@cli.command()
@click.argument("environment")
@click.option("--image", "images", multiple=True, metavar="APP[/IMAGE]=TAG|REF",
              help="Image tag or full reference (repeatable).")  # fmt: skip
@click.option("--chart", "charts", multiple=True, metavar="APP=VERSION",
              help="Helm chart version (repeatable).")  # fmt: skip
@click.option("--message", metavar="TEXT", help="Commit subject (trailers are always added).")
@click.option("--source-commit", metavar="SHA", help="Commit of the app repo that was built.")
@click.option("--source-url", metavar="URL", help="Link to the build or source.")
@click.option("--merge", is_flag=True, help="Merge the pull request (delivery: pull-request).")
@click.option("--auto-merge", is_flag=True, help="Enable the forge's auto-merge on the PR.")
@click.option("--draft", is_flag=True, help="Open the pull request as a draft.")
@click.option("--override-window", metavar="REASON", help=_OVERRIDE_HELP)
@click.pass_obj
def update(options: Options, /, environment: str, **kwargs: Any) -> None:
    """Pin image tags and chart versions on ENVIRONMENT's branch in one commit (or in one
    accumulating pull request, where ENVIRONMENT has delivery: pull-request)."""
    from promoter.commands.update import update as run_update
    from promoter.report import render_update

    with _held(options, "update"):
        result = run_update(options, environment, **kwargs)
    _emit(options, result.as_dict(), render_update(result))


@cli.command()
@click.argument("environment")
@click.option("--sha", metavar="SHA", help="Commit to wait for (default: the branch head).")
@click.option(
    "--require",
    multiple=True,
    metavar="PATTERN",
    help="Status context or glob that must succeed ({app} expands per --app).",
)
@click.option(
    "--preset",
    type=click.Choice(["argocd", "flux", "gitops-promoter"]),
    help="Add the usual status patterns of an operator.",
)
@click.option("--soak", metavar="DURATION", help="How long success must have held (e.g. 5m).")
@click.option("--timeout", default="15m", show_default=True, metavar="DURATION")
@click.option("--app", "apps", multiple=True, metavar="APP", help="Only these apps' contexts.")
@click.option(
    "--report-to",
    metavar="OWNER/REPO@SHA",
    help="Also set status promoter/<env> on this application commit.",
)
@click.option(
    "--deployment", is_flag=True, help="Also record a GitHub Deployment (with --report-to)."
)
@click.pass_obj
def wait(options: Options, /, environment: str, **kwargs: Any) -> None:
    """Wait until ENVIRONMENT's gate passes (0), fails (3) or times out (4)."""
    from promoter.commands.wait import raise_for
    from promoter.commands.wait import wait as run_wait
    from promoter.report import render_wait

    result = run_wait(options, environment, **kwargs)
    _emit(options, result.as_dict(), render_wait(result))
    raise_for(result)


@cli.command()
@click.option("--from", "source", metavar="ENV", help="Source (default: the target's `from:`).")
@click.option(
    "--to",
    "targets",
    multiple=True,
    metavar="ENV",
    help="Target (repeatable); none: every environment whose `from:` is --from.",
)
@click.option("--app", "apps", multiple=True, metavar="APP", help="Only these apps (repeatable).")
@click.option("--merge", is_flag=True, help="Merge the pull request (guarded by its head SHA).")
@click.option("--auto-merge", is_flag=True, help="Enable the forge's auto-merge on the PR.")
@click.option("--draft", is_flag=True, help="Open the pull request as a draft.")
@click.option("--no-gate", is_flag=True, help="Skip the source environment's gate.")
@click.option("--override-window", metavar="REASON", help=_OVERRIDE_HELP)
@click.pass_obj
def promote(options: Options, /, **kwargs: Any) -> None:
    """Move the source environment's versions to each --to, once the source's gate passes."""
    from promoter.commands.promote import promote as run_promote
    from promoter.promotion import raise_for_all, render_all

    with _held(options, "promote"):
        results = run_promote(options, **kwargs)
    _emit(options, results.as_json(), render_all(results))
    raise_for_all(results)


_FORMAT = click.Choice(["table", "markdown", "json"])


@cli.command()
@click.option("--env", "envs", multiple=True, metavar="ENV", help="Only these (repeatable).")
@click.option("--format", "fmt", type=_FORMAT, help="table (default), markdown or json.")
@click.pass_obj
def status(options: Options, /, envs: tuple[str, ...], fmt: str | None) -> None:
    """Apps x environments: each pin's value, each branch head and its gate."""
    from promoter.commands.status import render
    from promoter.commands.status import status as run_status

    result = run_status(options, envs)
    _emit_format(options, fmt, result.as_dict(), lambda f: render(result, f))


@cli.command()
@click.argument("environment")
@click.option("--limit", default=20, show_default=True, metavar="N", type=click.IntRange(1))
@click.option("--format", "fmt", type=_FORMAT, help="table (default), markdown or json.")
@click.pass_obj
def history(options: Options, /, environment: str, limit: int, fmt: str | None) -> None:
    """ENVIRONMENT's changes, newest first, from the commit trailers alone."""
    from promoter.commands.history import history as run_history
    from promoter.commands.history import render

    result = run_history(options, environment, limit)
    _emit_format(options, fmt, result.as_dict(), lambda f: render(result, f))


@cli.command()
@click.option("--env", "envs", multiple=True, metavar="ENV", help="Only these (repeatable).")
@click.option("--since", default="30d", show_default=True, metavar="30d|12h|DATE",
              help="Start of the window (before --until).")  # fmt: skip
@click.option("--until", metavar="DATE|30d", help="End of the window (default: now).")
@click.option("--format", "fmt", type=_FORMAT, help="table (default), markdown or json.")
@click.pass_obj
def metrics(
    options: Options, /, envs: tuple[str, ...], since: str, until: str | None, fmt: str | None
) -> None:
    """Deployment frequency, lead time, change failure rate and time to restore per
    environment, from promoter's commits and the forge's commit statuses."""
    from promoter.commands.metrics import metrics as run_metrics
    from promoter.commands.metrics import render

    result = run_metrics(options, envs, since, until)
    _emit_format(options, fmt, result.as_dict(), lambda f: render(result, f))


@cli.command()
@click.argument("environment")
@click.option("--to", "rev", metavar="REV", help="Set every pin back to its value at REV.")
@click.option("--steps", type=click.IntRange(1), metavar="N", help="Undo the last N changes.")
@click.option("--merge", is_flag=True, help="Merge the pull request (delivery: pull-request).")
@click.option("--auto-merge", is_flag=True, help="Enable the forge's auto-merge on the PR.")
@click.option("--draft", is_flag=True, help="Open the pull request as a draft.")
@click.option("--override-window", metavar="REASON", help=_OVERRIDE_HELP)
@click.pass_obj
def rollback(options: Options, /, environment: str, **kwargs: Any) -> None:
    """Set ENVIRONMENT's pins back to an earlier commit's values, in a new commit (or PR)."""
    from promoter.commands.rollback import render
    from promoter.commands.rollback import rollback as run_rollback

    with _held(options, "rollback"):
        result = run_rollback(options, environment, **kwargs)
    _emit(options, result.as_dict(), render(result))


@cli.command()
@click.pass_obj
def validate(options: Options, /) -> None:
    """Check promoter.yaml, and that every pin resolves on every environment branch."""
    from promoter.commands.validate import ValidationFailed
    from promoter.commands.validate import validate as run_validate
    from promoter.report import render_validation

    result = run_validate(options)
    _emit(options, result.as_dict(), render_validation(result))
    if not result.valid:
        raise ValidationFailed(result)


@cli.command()
@click.option(
    "--seed", metavar="PATH", help="Folder with a promoter.yaml to serve (default: example)."
)
@click.option(
    "--forge",
    "forge_kind",
    type=click.Choice(["github", "gitlab"]),
    default="github",
    show_default=True,
    help="Which API to serve next to the git repo.",
)
@click.option(
    "--operator",
    type=click.Choice(["argocd", "flux", "none"]),
    default="argocd",
    show_default=True,
    help="Which operator to simulate.",
)
@click.option(
    "--port",
    type=int,
    default=0,
    show_default=True,
    help="Git port (the API takes the next one); 0 picks free ports.",
)
@click.option(
    "--delay",
    type=float,
    default=3.0,
    show_default=True,
    help="Seconds the operator takes to report on a new commit.",
)
@click.option(
    "--lax",
    is_flag=True,
    help="Do not check requests against the forge's API description (strict by default).",
)
def sandbox(
    seed: str | None, forge_kind: str, operator: str, port: int, delay: float, lax: bool
) -> None:
    """Serve an environment repo, a forge API and an operator on 127.0.0.1 until Ctrl-C."""
    from promoter.commands.sandbox import sandbox as run_sandbox

    run_sandbox(seed, forge_kind, operator, port, delay, lax)  # type: ignore[arg-type]


@cli.command()
@click.option("--keep", is_flag=True, help="Leave the sandbox running afterwards (Ctrl-C stops).")
@click.pass_obj
def demo(options: Options, /, keep: bool) -> None:
    """The whole loop (update, wait, promote by pull request, status, history, rollback)
    against a throwaway local sandbox, narrated. No network, token or configuration."""
    from promoter.commands.demo import demo as run_demo

    run_demo(options, keep)


def _emit_format(
    options: Options, fmt: str | None, data: dict[str, Any], render: Callable[[str], str]
) -> None:
    """--format table|markdown|json (json also with --output json)."""
    fmt = fmt or ("json" if options.output == "json" else "table")
    if fmt == "json":
        click.echo(json.dumps(data, indent=None, sort_keys=False))
    else:
        click.echo(render(fmt))


def _emit(options: Options, data: dict[str, Any] | list[dict[str, Any]], text: str) -> None:
    if options.output == "json":
        click.echo(json.dumps(data, indent=None, sort_keys=False))
    else:
        click.echo(text)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (a cancelled CI job) unwinds like Ctrl-C, so every `finally` runs: scratch
    # directories are removed and `wait --report-to` sends its last status.
    raise Terminated


# Where a token may come from, registered before click parses anything, so that even a usage
# error that echoes a misplaced word (`update dev "$TOKEN"`) is scrubbed.
_TOKEN_VARIABLES = ("PROMOTER_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN", "CI_JOB_TOKEN")


def _register_tokens(argv: list[str]) -> None:
    for name in _TOKEN_VARIABLES:
        register_secret(os.environ.get(name))
    for i, word in enumerate(argv):
        if word == "--token" and i + 1 < len(argv):
            register_secret(argv[i + 1])
        elif word.startswith("--token="):
            register_secret(word.removeprefix("--token="))


def main(argv: list[str] | None = None) -> None:
    """The console script (no `argv`: sys.argv), or promoter ARGV run in this process."""
    if argv is not None:
        _main(argv)
        return
    try:
        _main(None)
        code = 0
    except SystemExit as exit_:
        if exit_.code is not None and not isinstance(exit_.code, int):
            raise
        code = exit_.code or 0
    _exit(code)


def _exit(code: int) -> NoReturn:
    """End the process the way the interpreter would, minus tearing down every module and
    object: with promoter's modules loaded that teardown alone takes ~17 ms of each run (lean
    git has no such step). The exit handlers run and the output is flushed first; under a
    tracer or profiler, or while a non-daemon thread still runs, the interpreter exits as usual.
    """
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if sys.gettrace() or sys.getprofile() or any(not t.daemon for t in others if t.is_alive()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: as the interpreter, exit 120
            code = code or 120
    os._exit(code)


def _main(argv: list[str] | None) -> None:
    _register_tokens(sys.argv[1:] if argv is None else argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    # Every line promoter prints goes through the log guard: secrets are scrubbed and
    # workflow commands neutralised there, once, for all output (click's own included).
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = GuardedStream(stdout), GuardedStream(stderr)
    try:
        _run(argv)
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = stdout, stderr
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="promoter", standalone_mode=False)
    except PromoterError as err:
        # One line, whatever the message quotes (a flag's value may hold a line break).
        one_line = str(err).replace("\r", "\\r").replace("\n", "\\n")
        click.echo(f"promoter: error: {one_line}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort as err:  # click turns Ctrl-C (and so SIGTERM) into Abort
        if isinstance(err.__cause__, Terminated):
            click.echo("promoter: terminated", err=True)
            sys.exit(143)
        click.echo("promoter: aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(2 if isinstance(err, click.UsageError) else err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except Terminated:
        click.echo("promoter: terminated", err=True)
        sys.exit(143)
    except KeyboardInterrupt:
        click.echo("promoter: interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # a bug: one line, and the traceback only on request
        if os.environ.get("PROMOTER_DEBUG"):
            raise
        name = type(err).__name__
        click.echo(
            f"promoter: unexpected error: {name}: {err} (PROMOTER_DEBUG=1 shows more)",
            err=True,
        )
        sys.exit(1)
