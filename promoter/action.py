"""Entry point of the GitHub Action (and usable from GitLab CI): inputs in, outputs out.

GitHub hands a Docker action its inputs as INPUT_<NAME> variables. This runs the promoter
command they describe with `--output json`, passes its progress through, and turns the result
into step outputs (`$GITHUB_OUTPUT`), a job summary (`$GITHUB_STEP_SUMMARY`) and, on failure,
an error annotation. Under GitLab CI, outputs go to a dotenv file for `artifacts:reports:dotenv`.
The exit code is promoter's own, so the CI contract (0, 2, 3, 4, 5) holds through the action.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promoter.errors import register_secret, scrub
from promoter.sinks import (
    command_data,
    command_property,
    dotenv_line,
    guard_text,
    md_code,
    md_text,
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
}


def _input(env: Mapping[str, str], name: str) -> str:
    return env.get(f"INPUT_{name.upper()}", "").strip()


def command_line(env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The promoter argv and the environment it runs with, from the action's inputs."""
    command = _input(env, "command")
    if not command:
        raise ValueError("the `command` input is required (update, wait, validate, ...)")
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
    return [sys.executable, "-m", "promoter", "--output", "json", command, *args], child


def outputs(result: Mapping[str, Any]) -> dict[str, str]:
    """Step outputs: the whole JSON, plus the fields workflows branch on."""
    out = {"result": json.dumps(result, separators=(",", ":"))}
    for key in ("changed", "commit", "verdict", "deciding_commit", "valid"):
        if key in result:
            value = result[key]
            out[key] = json.dumps(value) if isinstance(value, bool) else str(value or "")
    return out


def summary(command: str, result: Mapping[str, Any]) -> str:
    """The job summary (Markdown): every value from the result escaped (sinks.md_*)."""
    lines = [f"### promoter {md_text(command)}", ""]
    if "changes" in result:
        head = "changed" if result.get("changed") else "nothing to change"
        commit = f" {md_code(str(result.get('commit'))[:12])}" if result.get("commit") else ""
        where = f"**{md_text(result.get('environment'))}** ({md_text(result.get('branch'))})"
        lines += [f"{where}: {head}{commit}", ""]
        if result["changes"]:
            lines += ["| pin | file | key | from | to |", "|---|---|---|---|---|"]
            for c in result["changes"]:
                cells = [md_text(c["pin"]), md_code(c["file"]), md_code(c["key"])]
                cells += [md_code(c["old"]) if c["old"] else "—", md_code(c["new"]) or "—"]
                lines.append("| " + " | ".join(cells) + " |")
    elif "verdict" in result:
        deciding = str(result.get("deciding_commit") or "")[:12]
        lines += [f"gate **{md_text(result['verdict'])}** on {md_code(deciding)}"]
        lines += ["", "| context | state | link |", "|---|---|---|"]
        for pattern in result.get("contexts", []):
            for ctx in pattern["contexts"] or [{"context": pattern["pattern"], "state": "absent"}]:
                link = _link("details", ctx.get("target_url"))
                lines.append(f"| {md_code(ctx['context'])} | {md_text(ctx['state'])} | {link} |")
    else:
        body = html.escape(json.dumps(result, indent=2))
        lines.append(f"<pre>{body}</pre>")
    return "\n".join(lines) + "\n"


def _link(text: str, url: object) -> str:
    """A Markdown link to an http(s) URL from outside, or nothing: no other scheme, and the
    URL percent-encoded where Markdown or HTML would read it."""
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s<>()\[\]`\\]+", url):
        return ""
    return f"[{md_text(text)}]({url})"


def _relay(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Pass promoter's progress (stderr) through as it comes; return stdout and the last
    stderr line, which holds the error message when it failed."""
    import threading

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


def main() -> None:
    env = dict(os.environ)
    try:
        argv, child_env = command_line(env)
    except ValueError as err:
        print(f"::error title=promoter::{command_data(str(err))}")
        sys.exit(2)
    proc = subprocess.Popen(argv, env=child_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    stdout, last_error = _relay(proc)
    command = argv[5]
    try:
        result = json.loads(stdout) if stdout.strip() else {}
    except ValueError:
        result = {}
        sys.stdout.write(guard_text(stdout))
    if result:
        values = outputs(result)
        _append(env.get("GITHUB_OUTPUT"), "".join(output_lines(k, v) for k, v in values.items()))
        _append(env.get("GITHUB_STEP_SUMMARY"), scrub(summary(command, result)))
        if env.get("GITLAB_CI") == "true":
            dotenv = env.get("PROMOTER_DOTENV", "promoter.env")
            lines = "".join(
                dotenv_line(f"PROMOTER_{k.upper()}", v) for k, v in values.items() if k != "result"
            )
            _append(dotenv, lines)
        print(guard_text(json.dumps(result, indent=2)))
    if proc.returncode != 0:
        message = last_error.removeprefix("promoter: error: ") or "failed"
        title = f"promoter {command} (exit {proc.returncode})"
        print(f"::error title={command_property(title)}::{command_data(message)}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
