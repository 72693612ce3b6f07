"""Delivery metrics (DORA) from an environment's promoter commits and its commit statuses. Pure.

Every figure is computed from what `promoter metrics` read (no I/O here), with these
definitions, stated once (README repeats them):

- A **change** is a promoter commit of the environment (update, promote, rollback, or a merged
  promoter pull request) whose commit time is in the window [since, now].
- Its **gate** is judged by `promoter.gates.evaluate` as `wait` and `promote` judge it (the
  commit and its descendants, oldest first; `{app}` expanded to the apps it moves; the
  environment's soak), replayed over time: at each moment a status arrived (or a success
  finished its soak) with only the statuses known by then. The first moment it is PASS is the
  change's **deployment time**; a change that never passes but whose gate was FAIL at some
  moment is a **failed change**; the rest have no verdict yet (pending, left out of every rate).
- **Deployment frequency**: changes deployed in the window, per day (and per calendar day, UTC).
- **Lead time for changes**: deployment time minus the change's origin time (given by the
  caller: when the change first entered the environment repository).
- **Change failure rate**: among changes with a verdict (deployed or failed), the share that
  failed: a failure/error status of the environment's gate contexts arrived while the change
  was the environment's newest change (from its commit to the next change's), or the next
  change was a rollback.
- **Time to restore**: an incident opens at a failure/error status of the environment's gate
  contexts while none was failing, and closes at the success status after which none is
  (a pending status does not close it); the time between. Still open at `now`: counted open.

Medians and p90 use the nearest-rank method (the value at rank ceil(p * n), never
interpolated), in whole seconds, so every figure is a duration that actually occurred.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from promoter.forge.base import CommitStatus
from promoter.gates import Verdict, evaluate, expand

DAY = 86400
FAILED = ("failure", "error")


@dataclass(frozen=True)
class Change:
    """One promoter commit of an environment, as the command read it."""

    sha: str  # the first-parent commit (for a merged pull request, the merge)
    time: int  # commit time (a merge: when it landed), seconds since the epoch
    apps: tuple[str, ...] = ()  # the apps it moves (`{app}` in the gate)
    rollback: bool = False
    origin: int | None = None  # when the change entered the environment repo; None: `time`
    origin_kind: Literal["own", "upstream", "unresolved"] = "own"


@dataclass(frozen=True)
class EnvInput:
    """What one environment's figures are computed from."""

    name: str
    branch: str
    require: tuple[str, ...]  # gate.require as configured ({app}, {env}, {branch} unexpanded)
    soak: timedelta
    chain: Sequence[tuple[str, int]]  # first-parent commits in the window, oldest first
    changes: Sequence[Change]  # oldest first
    statuses: Mapping[str, Sequence[CommitStatus]] | None  # None: no forge


@dataclass(frozen=True)
class Outcome:
    change: Change
    verdict: Literal["deployed", "failed", "pending"]
    deployed_at: int | None = None
    deciding: str | None = None
    failed: bool = False  # for the change failure rate (verdict "deployed" or "failed" only)


@dataclass(frozen=True)
class Incident:
    opened: int
    closed: int | None  # None: still open


@dataclass(frozen=True)
class Figures:
    """The four metrics of one environment, or of all of them together."""

    changes: int
    rollbacks: int
    start: int  # the window, seconds since the epoch
    end: int
    outcomes: tuple[Outcome, ...] = ()
    incidents: tuple[Incident, ...] = ()
    available: bool = True  # False without a forge: nothing that needs statuses is known

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY

    @property
    def deployed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict == "deployed"]

    @property
    def settled(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict != "pending"]

    @property
    def lead_times(self) -> list[int]:
        return sorted(_lead(o) for o in self.deployed)

    @property
    def restore_times(self) -> list[int]:
        return sorted(i.closed - i.opened for i in self.incidents if i.closed is not None)

    def daily(self) -> dict[str, list[float | None]]:
        """Per day of the window (24 hours each from `since`, the last one ending at `now`,
        possibly shorter): deployments (by deployment time), median lead time (same),
        failure rate (of the changes with a verdict, by commit time) and median time to
        restore (by the time the incident opened). None: nothing to measure that day."""
        count = max(1, math.ceil(self.days))
        deploys: list[list[int]] = [[] for _ in range(count)]
        settled: list[list[bool]] = [[] for _ in range(count)]
        restores: list[list[int]] = [[] for _ in range(count)]
        for o in self.deployed:
            assert o.deployed_at is not None
            deploys[self._bucket(o.deployed_at, count)].append(_lead(o))
        for o in self.settled:
            settled[self._bucket(o.change.time, count)].append(o.failed)
        for i in self.incidents:
            if i.closed is not None:
                restores[self._bucket(i.opened, count)].append(i.closed - i.opened)
        return {
            "deployments": [float(len(day)) for day in deploys],
            "lead_time": [_opt(percentile(day, 50)) for day in deploys],
            "change_failure_rate": [sum(day) / len(day) if day else None for day in settled],
            "time_to_restore": [_opt(percentile(day, 50)) for day in restores],
        }

    def _bucket(self, stamp: int, count: int) -> int:
        return min(max(0, (stamp - self.start) // DAY), count - 1)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"changes": self.changes, "rollbacks": self.rollbacks}
        if not self.available:
            return out | dict.fromkeys(
                ("pending", "deployment_frequency", "lead_time", "change_failure_rate",
                 "time_to_restore", "daily"), None)  # fmt: skip
        leads, restores = self.lead_times, self.restore_times
        failed = [o for o in self.settled if o.failed]
        out["pending"] = len(self.outcomes) - len(self.settled)
        out["deployment_frequency"] = {
            "deployments": len(self.deployed),
            "per_day": round(len(self.deployed) / self.days, 2) if self.days else None,
        }
        out["lead_time"] = {
            "count": len(leads),
            "median_seconds": percentile(leads, 50),
            "p90_seconds": percentile(leads, 90),
            "from_upstream": sum(1 for o in self.deployed if o.change.origin_kind == "upstream"),
            "unresolved": sum(1 for o in self.deployed if o.change.origin_kind == "unresolved"),
        }
        out["change_failure_rate"] = {
            "failed": len(failed),
            "changes": len(self.settled),
            "rate": round(len(failed) / len(self.settled), 4) if self.settled else None,
        }
        out["time_to_restore"] = {
            "incidents": len(self.incidents),
            "restored": len(restores),
            "open": len(self.incidents) - len(restores),
            "median_seconds": percentile(restores, 50),
            "p90_seconds": percentile(restores, 90),
        }
        out["daily"] = self.daily()
        return out


def percentile(values: Sequence[int], p: int) -> int | None:
    """Nearest rank: the value at rank ceil(p/100 * n) of the sorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered) / 100))
    return ordered[rank - 1]


def _opt(value: int | None) -> float | None:
    return None if value is None else float(value)


def _lead(outcome: Outcome) -> int:
    assert outcome.deployed_at is not None
    change = outcome.change
    return outcome.deployed_at - (change.origin if change.origin is not None else change.time)


# --------------------------------------------------------------------------- computing


def figures(env: EnvInput, since: datetime, now: datetime) -> Figures:
    """One environment's figures over [since, now]."""
    start, end = int(since.timestamp()), int(now.timestamp())
    changes = [c for c in env.changes if start <= c.time <= end]
    base = Figures(
        changes=len(changes),
        rollbacks=sum(1 for c in changes if c.rollback),
        start=start,
        end=end,
    )
    if env.statuses is None:
        return Figures(base.changes, base.rollbacks, start, end, available=False)
    chain = [(sha, t) for sha, t in env.chain if t <= end]
    statuses = {
        sha: [s for s in env.statuses.get(sha, ()) if _ts(s) <= end] for sha, _ in chain
    }  # fmt: skip
    watched = expand(env.require, (), env.name, env.branch) or ("*",)
    events = sorted(
        (_ts(s), s.state, s.context)
        for sha, _ in chain
        for s in statuses[sha]
        if _matches(s.context, watched)
    )
    replay = _Replay(env, chain, statuses, end)
    outcomes = []
    for n, change in enumerate(changes):
        verdict, deployed_at, deciding = replay.gate(change)
        if verdict == "pending":
            outcomes.append(Outcome(change, "pending"))
            continue
        until = changes[n + 1].time if n + 1 < len(changes) else end + 1
        failure = any(
            state in FAILED
            for _, state, _ in events[
                bisect.bisect_left(events, (change.time,)) : bisect.bisect_left(events, (until,))
            ]
        )
        rolled_back = n + 1 < len(changes) and changes[n + 1].rollback
        failed = verdict == "failed" or failure or rolled_back
        outcomes.append(Outcome(change, verdict, deployed_at, deciding, failed))
    return Figures(
        base.changes,
        base.rollbacks,
        start,
        end,
        tuple(outcomes),
        tuple(incidents(events)),
    )


def combine(parts: Sequence[Figures]) -> Figures:
    """All environments together: counts summed, durations pooled (one window)."""
    first = parts[0]
    return Figures(
        changes=sum(p.changes for p in parts),
        rollbacks=sum(p.rollbacks for p in parts),
        start=first.start,
        end=first.end,
        outcomes=tuple(o for p in parts for o in p.outcomes),
        incidents=tuple(i for p in parts for i in p.incidents),
        available=all(p.available for p in parts),
    )


def incidents(events: Iterable[tuple[int, str, str]]) -> list[Incident]:
    """Incidents from (time, state, context) events in time order: see the module docstring."""
    broken: set[str] = set()
    opened: int | None = None
    found = []
    for when, state, context in events:
        if state in FAILED:
            if not broken:
                opened = when
            broken.add(context)
        elif state == "success" and context in broken:
            broken.discard(context)
            if not broken and opened is not None:
                found.append(Incident(opened, when))
                opened = None
    if opened is not None:
        found.append(Incident(opened, None))
    return found


def _ts(status: CommitStatus) -> int:
    return int(status.updated_at.timestamp())


def _matches(context: str, patterns: Sequence[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(context, p) for p in patterns)


class _Replay:
    """The gate of each change replayed over time (see `gate`)."""

    def __init__(
        self,
        env: EnvInput,
        chain: Sequence[tuple[str, int]],
        statuses: Mapping[str, Sequence[CommitStatus]],
        end: int,
    ) -> None:
        self.env = env
        self.chain = chain
        self.statuses = statuses
        self.index = {sha: n for n, (sha, _) in enumerate(chain)}
        # A commit dated before its parent (a skewed clock) counts as landing with it.
        self.times = list(itertools.accumulate((t for _, t in chain), max))
        soak = int(env.soak.total_seconds())
        # Every moment a status could change a verdict: when it arrived, and when a success
        # finished its soak; (moment, position of its commit in the chain, context).
        marks = set()
        for n, (sha, _) in enumerate(chain):
            for s in statuses.get(sha, ()):
                marks.add((_ts(s), n, s.context))
                if s.state == "success" and soak:
                    marks.add((_ts(s) + soak, n, s.context))
        self.marks = sorted(m for m in marks if m[0] <= end)

    def gate(
        self, change: Change
    ) -> tuple[Literal["deployed", "failed", "pending"], int | None, str | None]:
        """(verdict, deployment time, deciding commit). At each moment a status of a context
        the gate requires arrived (or finished its soak), `gates.evaluate` judges the change
        with the commits that existed then and the statuses known then, as `wait` would have;
        the first PASS is the deployment."""
        start = self.index.get(change.sha)
        if start is None:
            return "pending", None, None
        required = expand(self.env.require, change.apps, self.env.name, self.env.branch)
        required = required or ("*",)
        relevant: dict[str, bool] = {}
        failed = False
        seen: set[int] = set()
        for moment, position, context in self.marks[
            bisect.bisect_left(self.marks, (change.time,)) :
        ]:
            if position < start or moment in seen:
                continue
            if context not in relevant:
                relevant[context] = _matches(context, required)
            if not relevant[context]:
                continue
            seen.add(moment)
            last = max(bisect.bisect_right(self.times, moment), start + 1)
            lineage = [sha for sha, _ in self.chain[start:last]]
            known = {sha: [s for s in self.statuses.get(sha, ()) if _ts(s) <= moment]
                     for sha in lineage}  # fmt: skip
            at = datetime.fromtimestamp(moment, UTC)
            result = evaluate(required, lineage, known, at, self.env.soak)
            if result.verdict is Verdict.PASS:
                return "deployed", moment, result.deciding
            failed = failed or result.verdict is Verdict.FAIL
        return ("failed" if failed else "pending"), None, None
