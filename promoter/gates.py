"""Gate evaluation: do the operator's statuses say a change is live and healthy? Pure.

An operator reports on the commit it synced, which is not always the commit we care about: when
commits land quickly it syncs only the newest. So a gate looks at a commit *and its
descendants* on the environment branch, oldest first, and the first commit with a final
verdict (PASS or FAIL) decides: that is the first deployment that included the change.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from promoter.forge.base import CommitStatus

PRESETS: Mapping[str, tuple[str, ...]] = {
    # Argo CD notifications' github.status template: label continuous-delivery/<app>.
    "argocd": ("continuous-delivery/{app}",),
    # Flux notification-controller: <kind>/<name>/<id>, success or failure only.
    "flux": ("kustomization/*",),
    # gitops-promoter style commit statuses: <branch>/health.
    "gitops-promoter": ("{branch}/health",),
}


class Verdict(StrEnum):
    PASS = "pass"
    PENDING = "pending"
    FAIL = "fail"


@dataclass(frozen=True)
class ContextResult:
    """How one required pattern fares on one commit."""

    pattern: str
    verdict: Verdict
    reason: str
    statuses: tuple[CommitStatus, ...] = ()  # the latest status of each matching context
    soak_left: timedelta = timedelta(0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "soak_left_seconds": int(self.soak_left.total_seconds()),
            "contexts": [
                {
                    "context": s.context,
                    "state": s.state,
                    "updated_at": s.updated_at.isoformat(),
                    "target_url": s.target_url,
                    "description": s.description,
                }
                for s in self.statuses
            ],
        }


@dataclass(frozen=True)
class CommitVerdict:
    sha: str
    verdict: Verdict
    contexts: tuple[ContextResult, ...]

    @property
    def soak_left(self) -> timedelta:
        return max((c.soak_left for c in self.contexts), default=timedelta(0))


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    target: str  # the commit whose deployment we asked about
    deciding: str | None  # the commit whose statuses decided (target or a descendant)
    commits: tuple[CommitVerdict, ...] = field(default=())

    @property
    def decided_by(self) -> CommitVerdict | None:
        return next((c for c in self.commits if c.sha == self.deciding), None)

    @property
    def latest(self) -> CommitVerdict | None:
        return self.decided_by or (self.commits[-1] if self.commits else None)

    def as_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "verdict": self.verdict.value,
            "target": self.target,
            "deciding_commit": self.deciding,
            "superseded": self.deciding is not None and self.deciding != self.target,
            "contexts": [c.as_dict() for c in latest.contexts] if latest else [],
        }


def expand(
    patterns: Sequence[str], apps: Sequence[str] = (), env: str = "", branch: str = ""
) -> tuple[str, ...]:
    """`{app}` → one pattern per app concerned (`*` when none is named); `{env}`, `{branch}`."""
    out: list[str] = []
    for pattern in patterns:
        pattern = pattern.replace("{env}", env).replace("{branch}", branch)
        if "{app}" in pattern:
            out += [pattern.replace("{app}", app) for app in apps] or [
                pattern.replace("{app}", "*")
            ]
        else:
            out.append(pattern)
    return tuple(dict.fromkeys(out))


def latest_by_context(statuses: Sequence[CommitStatus]) -> dict[str, CommitStatus]:
    """The newest status of each context; the first listed wins a tie (APIs list newest first)."""
    latest: dict[str, CommitStatus] = {}
    for status in statuses:
        current = latest.get(status.context)
        if current is None or status.updated_at > current.updated_at:
            latest[status.context] = status
    return latest


def evaluate_commit(
    sha: str,
    required: Sequence[str],
    statuses: Sequence[CommitStatus],
    now: datetime,
    soak: timedelta = timedelta(0),
) -> CommitVerdict:
    latest = latest_by_context(statuses)
    results = tuple(_evaluate_pattern(p, latest, now, soak) for p in required)
    verdicts = {r.verdict for r in results}
    if Verdict.FAIL in verdicts:
        verdict = Verdict.FAIL
    elif Verdict.PENDING in verdicts:
        verdict = Verdict.PENDING
    else:
        verdict = Verdict.PASS
    return CommitVerdict(sha, verdict, results)


def _evaluate_pattern(
    pattern: str, latest: Mapping[str, CommitStatus], now: datetime, soak: timedelta
) -> ContextResult:
    matching = tuple(s for ctx, s in sorted(latest.items()) if fnmatch.fnmatchcase(ctx, pattern))
    if not matching:
        return ContextResult(pattern, Verdict.PENDING, "no status reported yet")
    failed = [s for s in matching if s.state in ("failure", "error")]
    if failed:
        names = ", ".join(f"{s.context} is {s.state}" for s in failed)
        return ContextResult(pattern, Verdict.FAIL, names, matching)
    pending = [s for s in matching if s.state != "success"]
    if pending:
        names = ", ".join(f"{s.context} is {s.state}" for s in pending)
        return ContextResult(pattern, Verdict.PENDING, names, matching)
    left = max(soak - (now - s.updated_at) for s in matching)
    if left > timedelta(0):
        return ContextResult(
            pattern, Verdict.PENDING, f"soaking, {_duration(left)} left", matching, left
        )
    return ContextResult(pattern, Verdict.PASS, "success", matching)


def evaluate(
    required: Sequence[str],
    lineage: Sequence[str],
    statuses: Mapping[str, Sequence[CommitStatus]],
    now: datetime,
    soak: timedelta = timedelta(0),
) -> GateResult:
    """`lineage`: the target commit, then its descendants on the branch, oldest first."""
    if not lineage:
        raise ValueError("lineage must start with the target commit")
    if not required:
        return GateResult(Verdict.PASS, lineage[0], lineage[0])
    commits = []
    for sha in lineage:
        verdict = evaluate_commit(sha, required, statuses.get(sha, ()), now, soak)
        commits.append(verdict)
        if verdict.verdict is not Verdict.PENDING:
            return GateResult(verdict.verdict, lineage[0], sha, tuple(commits))
    return GateResult(Verdict.PENDING, lineage[0], None, tuple(commits))


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds() + 0.999)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"
