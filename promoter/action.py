"""Entry point of the GitHub Action (and usable from GitLab CI): inputs in, outputs out.

GitHub hands a Docker action its inputs as INPUT_<NAME> variables. This runs the promoter
command they describe with `--output json`, passes its progress through, and turns the result
into step outputs (`$GITHUB_OUTPUT`), a job summary (`$GITHUB_STEP_SUMMARY`) and, on failure,
an error annotation. Under GitLab CI, outputs go to a dotenv file for `artifacts:reports:dotenv`.
The exit code is promoter's own, so the CI contract (0, 2, 3, 4, 5) holds through the action.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promoter.errors import register_secret, scrub

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
    lines = [f"### promoter {command}", ""]
    if "changes" in result:
        head = "changed" if result.get("changed") else "nothing to change"
        commit = f" `{str(result.get('commit') or '')[:12]}`" if result.get("commit") else ""
        lines += [f"**{result.get('environment')}** ({result.get('branch')}): {head}{commit}", ""]
        if result["changes"]:
            lines += ["| pin | file | key | from | to |", "|---|---|---|---|---|"]
            for c in result["changes"]:
                moved = f"{c['old'] or '—'} | {c['new'] or '—'}"
                lines.append(f"| {c['pin']} | {c['file']} | `{c['key']}` | {moved} |")
    elif "verdict" in result:
        lines += [
            f"gate **{result['verdict']}** on `{str(result.get('deciding_commit') or '')[:12]}`"
        ]
        lines += ["", "| context | state | link |", "|---|---|---|"]
        for pattern in result.get("contexts", []):
            for ctx in pattern["contexts"] or [{"context": pattern["pattern"], "state": "absent"}]:
                link = f"[details]({ctx['target_url']})" if ctx.get("target_url") else ""
                lines.append(f"| {ctx['context']} | {ctx['state']} | {link} |")
    else:
        lines.append("```json\n" + json.dumps(result, indent=2) + "\n```")
    return "\n".join(lines) + "\n"


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
        print(f"::error title=promoter::{err}")
        sys.exit(2)
    proc = subprocess.Popen(argv, env=child_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    stdout, last_error = _relay(proc)
    command = argv[5]
    try:
        result = json.loads(stdout) if stdout.strip() else {}
    except ValueError:
        result = {}
        sys.stdout.write(scrub(stdout))
    if result:
        values = outputs(result)
        _append(env.get("GITHUB_OUTPUT"), "".join(f"{k}={v}\n" for k, v in values.items()))
        _append(env.get("GITHUB_STEP_SUMMARY"), scrub(summary(command, result)))
        if env.get("GITLAB_CI") == "true":
            dotenv = env.get("PROMOTER_DOTENV", "promoter.env")
            lines = "".join(
                f"PROMOTER_{k.upper()}={v}\n" for k, v in values.items() if k != "result"
            )
            _append(dotenv, lines)
        print(scrub(json.dumps(result, indent=2)))
    if proc.returncode != 0:
        message = last_error.removeprefix("promoter: error: ") or "failed"
        print(f"::error title=promoter {command} (exit {proc.returncode})::{scrub(message)}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
