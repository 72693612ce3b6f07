"""Small helpers shared by command tests: run the real CLI in-process or as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from promoter.cli import main
from promoter.sandbox import TEST_TOKEN


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """Run `promoter ARGS` in this process through main(), as the console script does."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    run = Run(code, captured.out, captured.err)
    assert_clean(run)
    return run


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `python -m promoter ARGS` as a separate process."""
    return subprocess.Popen(
        [sys.executable, "-m", "promoter", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> Run:
    out, err = proc.communicate(timeout=timeout)
    run = Run(proc.returncode, out, err)
    assert_clean(run)
    return run


def assert_clean(run: Run) -> None:
    """No token, no traceback and no workflow command, whatever the outcome."""
    assert TEST_TOKEN not in run.output
    assert "Traceback" not in run.output
    assert workflow_commands(run.output) == []


def workflow_commands(text: str) -> list[str]:
    """Lines GitHub's runner would execute as workflow commands (`::` after whitespace, or
    the legacy `##[` anywhere). promoter itself never prints one; its action prints only
    `::error title=promoter ...` lines of its own."""
    return [line for line in text.splitlines() if line.strip().startswith("::") or "##[" in line]
