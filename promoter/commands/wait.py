"""`promoter wait ENV`: poll the operator's statuses until the gate passes, fails or times out.

The loop only repeats read (git lineage, forge statuses) → decide (gates.evaluate). Clock and
sleep are passed in, so tests drive minutes of waiting in milliseconds.
"""

from __future__ import annotations

import fnmatch
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from promoter.config import parse_duration
from promoter.context import read_config, resolve_token, scratch_repo
from promoter.errors import GateFailed, GateTimeout, Terminated, UsageError, scrub
from promoter.forge import detect, open_forge
from promoter.forge.base import CommitStatus, Forge, State
from promoter.gates import PRESETS, GateResult, Verdict, evaluate, expand
from promoter.options import Options


@dataclass(frozen=True)
class WaitResult:
    environment: str
    branch: str
    required: tuple[str, ...]
    gate: GateResult
    polls: int
    waited: timedelta

    @property
    def timed_out(self) -> bool:
        return self.gate.verdict is Verdict.PENDING

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": "wait",
            "environment": self.environment,
            "branch": self.branch,
            "required": list(self.required),
            "timed_out": self.timed_out,
            "polls": self.polls,
            "waited_seconds": round(self.waited.total_seconds(), 1),
            **self.gate.as_dict(),
        }


@dataclass(frozen=True)
class Backoff:
    """Capped exponential polling; conditional requests make an unchanged poll free."""

    first: float = 2.0
    factor: float = 1.5
    cap: float = 30.0

    def delay(self, poll: int) -> float:
        return float(min(self.cap, self.first * self.factor**poll))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def wait(
    options: Options,
    environment: str,
    sha: str | None = None,
    require: Sequence[str] = (),
    preset: str | None = None,
    soak: str | None = None,
    timeout: str = "15m",
    apps: Sequence[str] = (),
    report_to: str | None = None,
    deployment: bool = False,
    forge: Forge | None = None,
    now: Callable[[], datetime] = _utcnow,
    sleep: Callable[[float], None] = time.sleep,
    backoff: Backoff = Backoff(),
    log: TextIO | None = None,
) -> WaitResult:
    log = log or sys.stderr
    try:
        limit = parse_duration(timeout)
        soak_for = parse_duration(soak) if soak is not None else None
    except ValueError as err:
        raise UsageError(f"wait: {err}") from None
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    if deployment and not report_to:
        raise UsageError("--deployment records where the application commit is: add --report-to")
    report = _parse_report_to(report_to) if report_to else None
    with scratch_repo(options) as repo:
        config = read_config(options, repo)
        env = config.environment(environment)
        for app in apps:
            config.app(app)
        patterns = list(require) or list(env.gate.require)
        patterns += PRESETS.get(preset or "", ())
        required = expand(patterns, apps, env.name, env.branch)
        if not required:
            raise UsageError(
                f"nothing to wait for: set environments.{env.name}.gate.require in promoter.yaml "
                "or pass --require PATTERN / --preset"
            )
        soak_for = env.gate.soak if soak_for is None else soak_for
        if forge is None:
            info = detect(options.forge, options.api_url, repo.remote.url)
            forge = open_forge(info, resolve_token(options, repo.remote.url))
        target = repo.lineage(env.branch, sha)[0]
        start = now()
        reporter = _Reporter(forge, *report, env.name, deployment) if report else None
        try:
            if reporter:
                reporter("pending", f"waiting for {env.name}")
            seen: dict[str, str] = {}
            polls = 0
            while True:
                lineage = repo.lineage(env.branch, target)
                statuses = {commit: forge.statuses(commit) for commit in lineage}
                polls += 1
                result = evaluate(required, lineage, statuses, now(), soak_for)
                _log_changes(log, statuses, required, seen, start, now())
                elapsed = now() - start
                if result.verdict is not Verdict.PENDING or elapsed >= limit:
                    break
                pause = backoff.delay(polls - 1)
                soaking = [c.soak_left for c in result.commits if c.soak_left > timedelta(0)]
                if soaking:
                    pause = min(pause, max(1.0, min(soaking).total_seconds()))
                # The quota outranks our pace: hold off as long as the forge says it must last.
                pause = max(pause, forge.rate_limit_wait())
                pause = min(pause, max(0.0, (limit - elapsed).total_seconds())) or 0.01
                _progress(log, result, elapsed, pause)
                sleep(pause)
            print(_clear(log), end="", file=log, flush=True)
            if reporter:
                reporter.finish(result.verdict)
        except BaseException as err:  # Ctrl-C and SIGTERM (errors.Terminated) included
            if reporter:
                reporter.abandon(err, log)
            raise
    return WaitResult(env.name, env.branch, required, result, polls, now() - start)


def raise_for(result: WaitResult) -> None:
    """Exit codes are the CI contract: FAIL → 3, still pending at the timeout → 4."""
    gate = result.gate
    decided = gate.decided_by
    if gate.verdict is Verdict.FAIL and decided is not None:
        reasons = "; ".join(c.reason for c in decided.contexts if c.verdict is Verdict.FAIL)
        raise GateFailed(f"{result.environment}: gate failed on {decided.sha[:12]}: {reasons}")
    if gate.verdict is Verdict.PENDING:
        latest = gate.latest
        waiting = "; ".join(
            f"{c.pattern}: {c.reason}"
            for c in (latest.contexts if latest else ())
            if c.verdict is not Verdict.PASS
        )
        raise GateTimeout(
            f"{result.environment}: gate not reached after {int(result.waited.total_seconds())}s"
            f" ({waiting})"
        )


def _parse_report_to(text: str) -> tuple[str, str]:
    repository, sep, sha = text.rpartition("@")
    if not sep or not repository or len(sha) < 7:
        raise UsageError(f"--report-to {text!r}: expected OWNER/REPO@SHA (or PROJECT@SHA)")
    return repository, sha


@dataclass
class _Reporter:
    """Tells the application commit where it is: a status, and on GitHub a Deployment.

    Once anything is written, the wait ends with a final state on every way out: the verdict,
    or `error` when promoter stops for any other reason (an exception, Ctrl-C, SIGTERM), so the
    application commit is never left pending.
    """

    forge: Forge
    repository: str
    sha: str
    env: str
    deployment: bool
    deployment_id: str | None = None
    started: bool = False  # something was written to the application commit
    done: bool = False  # its final state was written

    def __call__(self, state: State, text: str) -> None:
        # The deployment first: on a forge without deployments this refuses before anything
        # is written to the application commit.
        if self.deployment and self.deployment_id is None:
            self.deployment_id = self.forge.create_deployment(
                self.sha, self.env, state, repository=self.repository
            )
            self.started = True
        elif self.deployment_id is not None:
            self.forge.set_deployment_status(
                self.deployment_id, self.env, state, repository=self.repository
            )
        context = f"promoter/{self.env}"
        self.forge.set_status(self.sha, state, context, text, repository=self.repository)
        self.started = True
        self.done = state != "pending"

    def finish(self, verdict: Verdict) -> None:
        final: dict[Verdict, State] = {Verdict.PASS: "success", Verdict.FAIL: "failure"}
        state = final.get(verdict, "error")
        words = {"success": "live and healthy", "failure": "failed", "error": "timed out"}[state]
        self(state, f"{self.env}: {words}")

    def abandon(self, why: BaseException, log: TextIO) -> None:
        """Best effort `error` after a failure: never masks what stopped the wait."""
        if not self.started or self.done:
            return
        self.done = True
        try:
            self("error", f"{self.env}: {_stopped(why)}")
        except Exception as err:  # a second Ctrl-C or SIGTERM still stops promoter
            where = f"{self.repository}@{self.sha[:12]}"
            print(f"promoter: could not report error to {where}: {scrub(str(err))}", file=log)


def _stopped(why: BaseException) -> str:
    if isinstance(why, Terminated):
        return "wait cancelled (SIGTERM)"
    if isinstance(why, KeyboardInterrupt):
        return "wait interrupted"
    detail = str(why).splitlines()[0] if str(why) else type(why).__name__
    return f"wait failed: {scrub(detail)}"


def _progress(log: TextIO, result: GateResult, elapsed: timedelta, pause: float) -> None:
    """On a terminal, one line rewritten in place; in CI logs, nothing (changes are logged)."""
    if not _is_tty(log):
        return
    latest = result.latest
    waiting = ", ".join(
        c.reason for c in (latest.contexts if latest else ()) if c.verdict is not Verdict.PASS
    )
    line = f"[{int(elapsed.total_seconds()):>4}s] waiting: {waiting}; next poll in {pause:.0f}s"
    width = _width()
    print(f"\r{line[:width]:<{width}}", end="", file=log, flush=True)


def _is_tty(log: TextIO) -> bool:
    return bool(getattr(log, "isatty", lambda: False)())


def _width() -> int:
    import shutil

    return max(20, shutil.get_terminal_size().columns - 1)


def _clear(log: TextIO) -> str:
    return "\r" + " " * _width() + "\r" if _is_tty(log) else ""


def _log_changes(
    log: TextIO,
    statuses: dict[str, list[CommitStatus]],
    required: Sequence[str],
    seen: dict[str, str],
    start: datetime,
    now: datetime,
) -> None:
    from promoter.gates import latest_by_context

    elapsed = int((now - start).total_seconds())
    for commit, found in statuses.items():
        for context, status in sorted(latest_by_context(found).items()):
            if not any(fnmatch.fnmatchcase(context, pattern) for pattern in required):
                continue
            key = f"{commit}:{context}"
            if seen.get(key) != status.state:
                before = seen.get(key, "absent")
                seen[key] = status.state
                clear = _clear(log)
                change = f"{context} on {commit[:12]}: {before} -> {status.state}"
                print(
                    f"{clear}[{elapsed:>4}s] {change}",
                    file=log,
                    flush=True,
                )
