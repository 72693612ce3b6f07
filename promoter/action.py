"""Entry point of the GitHub Action and of the GitLab CI/CD component: inputs in, outputs out.

GitHub hands a Docker action its inputs as INPUT_<NAME> variables (the GitLab component sets
the same variables from its `spec: inputs`). This runs the promoter command they describe with
`--output json`, passes its progress through, and turns the result into step outputs
(`$GITHUB_OUTPUT`), a job summary (`$GITHUB_STEP_SUMMARY`) and, on failure, an error
annotation (on the line of promoter.yaml for a configuration error). Under GitLab CI, outputs
go to a dotenv file for `artifacts:reports:dotenv`. The result names its own kind (`"command"`
in its JSON); promoter.report renders each kind. The exit code is promoter's own, so the CI
contract (0, 2, 3, 4, 5) holds through the action.

Inputs: `command` and `args` (split like a shell would) are the general form. Typed inputs
say the common things in YAML and are turned into the command's own flags (TYPED): each
applies only to the commands that have that flag, and one given both ways (the `timeout`
input and `--timeout` in `args`) is refused, exit 2, before promoter runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from promoter.errors import ConfigError, register_secret, scrub
from promoter.report import ci_outputs, ci_summary, result_kind
from promoter.sinks import (
    command_data,
    command_property,
    dotenv_line,
    guard_text,
    mask_command,
    output_lines,
)

# Action input → promoter's environment variable (click reads PROMOTER_<OPTION>).
_GLOBAL_INPUTS = {
    "repo": "PROMOTER_REPO",
    "token": "PROMOTER_TOKEN",
    "config": "PROMOTER_CONFIG",
    "forge": "PROMOTER_FORGE",
    "api_url": "PROMOTER_API_URL",
    "dry_run": "PROMOTER_DRY_RUN",
    "commit_via": "PROMOTER_COMMIT_VIA",
}


@dataclass(frozen=True)
class Typed:
    """A typed input: the command parameter (click's name) it sets, and its shape."""

    param: str
    shape: Literal["argument", "list", "value", "flag"]


# Typed input → the parameter of the command it sets. Lists take one item per line (or
# separated by spaces or commas); blank lines and `#` comments are ignored.
TYPED = {
    "environment": Typed("environment", "argument"),
    "images": Typed("images", "list"),
    "charts": Typed("charts", "list"),
    "from": Typed("source", "value"),
    "to": Typed("targets", "list"),
    "apps": Typed("apps", "list"),
    "sha": Typed("sha", "value"),
    "timeout": Typed("timeout", "value"),
    "soak": Typed("soak", "value"),
    "source_commit": Typed("source_commit", "value"),
    "source_url": Typed("source_url", "value"),
    "merge": Typed("merge", "flag"),
    "auto_merge": Typed("auto_merge", "flag"),
    "draft": Typed("draft", "flag"),
    "no_gate": Typed("no_gate", "flag"),
}


def _input(env: Mapping[str, str], name: str) -> str:
    return env.get(f"INPUT_{name.upper()}", "").strip()


def list_items(text: str) -> list[str]:
    """A list input: items one per line, or separated by spaces or commas; blank lines and
    `#` comments (a whole line, or after a space) ignored."""
    items = []
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", line)
        items += [item for item in re.split(r"[\s,]+", line) if item]
    return items


def command_line(env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The promoter argv and the environment it runs with, from the action's inputs."""
    command = _input(env, "command")
    if not command:
        raise ValueError("the `command` input is required (update, wait, promote, validate, ...)")
    try:
        args = shlex.split(_input(env, "args"))
    except ValueError as err:
        raise ValueError(f"the `args` input cannot be split into words: {err}") from None
    child = dict(env)
    for name, variable in _GLOBAL_INPUTS.items():
        value = _input(env, name)
        if value:
            child[variable] = value
    register_secret(child.get("PROMOTER_TOKEN"))
    # An input left at its default ("", or "false" for a flag) says nothing.
    given = {}
    for name, typed in TYPED.items():
        value = _input(env, name)
        if value and not (typed.shape == "flag" and value.lower() == "false"):
            given[name] = value
    argv = typed_arguments(command, args, given)
    return [sys.executable, "-m", "promoter", "--output", "json", command, *argv], child


def typed_arguments(command: str, args: list[str], given: Mapping[str, str]) -> list[str]:
    """`args` with the typed inputs turned into the command's own arguments and flags."""
    if not given:
        return args
    from promoter.cli import cli

    cmd = cli.commands.get(command)
    if cmd is None:
        known = ", ".join(sorted(cli.commands))
        raise ValueError(f"the `command` input is {command!r}: expected one of {known}")
    params = {p.name: p for p in cmd.params}
    in_args = _given_in(cmd, command, args)
    positional: list[str] = []
    flags: list[str] = []
    for name, text in given.items():
        typed = TYPED[name]
        param = params.get(typed.param)
        if param is None:
            users = [c for c, o in sorted(cli.commands.items())
                     if any(p.name == typed.param for p in o.params)]  # fmt: skip
            raise ValueError(
                f"the `{name}` input does not apply to `{command}` (it does to: "
                f"{', '.join(users)}); remove it, or pass what you meant in `args`"
            )
        opt = param.opts[0]
        if typed.param in in_args:
            raise ValueError(
                f"the `{name}` input and {'an argument' if typed.shape == 'argument' else opt} "
                f"in `args` both set {opt if typed.shape != 'argument' else name}: "
                "give it one way only"
            )
        if typed.shape == "flag":
            if text.lower() not in ("true", "false"):
                raise ValueError(f"the `{name}` input is {text!r}: expected true or false")
            flags += [opt] if text.lower() == "true" else []
            continue
        items = list_items(text) if typed.shape == "list" else [text]
        if typed.shape != "list" and ("\n" in text or not text):
            raise ValueError(f"the `{name}` input must be one line")
        if typed.shape == "argument":
            positional = items
        else:
            flags += [word for item in items for word in (opt, item)]
    return [*positional, *args, *flags]


def _given_in(cmd: Any, command: str, args: list[str]) -> set[str]:
    """The parameters `args` sets, as click parses them (nothing run)."""
    import click

    try:
        ctx = cmd.make_context(command, list(args), resilient_parsing=True)
    except click.ClickException:
        return set()  # promoter itself says what is wrong with `args`
    given = click.core.ParameterSource.COMMANDLINE
    return {name for name in ctx.params if ctx.get_parameter_source(name) == given}


def _relay(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Pass promoter's progress (stderr) through as it comes; return stdout and the last
    stderr line, which holds the error message when it failed."""
    last = [""]

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.strip():
                last[0] = line.strip()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    proc.wait()
    thread.join()
    return stdout, last[0]


def _append(path: str | None, text: str) -> None:
    if path:
        with Path(path).open("a", encoding="utf-8") as file:
            file.write(text)


def annotation(command: str, code: int, message: str, config: str) -> str:
    """The `::error` workflow command for a failed run: on promoter.yaml's line when the
    error names one (a configuration error; `config` is the `config` input, if any)."""
    title = command_property(f"promoter {command} (exit {code})")
    where = ConfigError.located(message) if code == 2 else None
    if where is not None and where[0] in {"promoter.yaml", config}:
        file = command_property(where[0])
        return f"::error file={file},line={where[1]},title={title}::{command_data(message)}\n"
    return f"::error title={title}::{command_data(message)}\n"


def main() -> None:
    env = dict(os.environ)
    github = env.get("GITHUB_ACTIONS") == "true"
    token = _input(env, "token")
    if token and github:
        # Before anything else is printed: from here on the runner hides it in the log.
        sys.stdout.write(mask_command(token))
        sys.stdout.flush()
    register_secret(token)
    annotate = env.get("GITLAB_CI") != "true"  # GitLab shows workflow commands as text
    command = _input(env, "command")
    try:
        argv, child_env = command_line(env)
    except ValueError as err:
        if annotate:
            sys.stdout.write(f"::error title=promoter::{command_data(str(err))}\n")
        print(f"promoter: error: {scrub(str(err))}", file=sys.stderr)
        sys.exit(2)
    proc = subprocess.Popen(argv, env=child_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    stdout, last_error = _relay(proc)
    try:
        result = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        result = None
        sys.stdout.write(guard_text(stdout))
    if isinstance(result, dict | list) and result:
        kind = result_kind(result)
        values = ci_outputs(kind, result)
        _append(env.get("GITHUB_OUTPUT"), "".join(output_lines(k, v) for k, v in values.items()))
        _append(env.get("GITHUB_STEP_SUMMARY"), scrub(ci_summary(kind, result, command)))
        if env.get("GITLAB_CI") == "true":
            dotenv = env.get("PROMOTER_DOTENV", "promoter.env")
            lines = "".join(
                dotenv_line(f"PROMOTER_{k.upper()}", v) for k, v in values.items() if k != "result"
            )
            _append(dotenv, lines)
        print(guard_text(json.dumps(result, indent=2)))
    if proc.returncode != 0 and annotate:
        message = last_error.removeprefix("promoter: error: ") or "failed"
        sys.stdout.write(annotation(command, proc.returncode, message, _input(env, "config")))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
