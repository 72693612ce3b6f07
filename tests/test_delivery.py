"""The delivery layer's pure parts: the one retry loop, on an injected clock (nothing sleeps)."""

from __future__ import annotations

import random

import pytest

from promoter.delivery import LOST, Clock, RetryPolicy, retry
from promoter.errors import RaceLost


class FakeTime:
    """A monotonic clock that moves only when slept on, or by what an attempt `costs`."""

    def __init__(self, cost: float = 0.0) -> None:
        self.now = 100.0
        self.cost = cost
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self, seed: int = 1) -> Clock:
        return Clock(monotonic=self.monotonic, sleep=self.sleep, rng=random.Random(seed))


def losing(times: int, time: FakeTime, result: str = "done"):
    calls: list[int] = []

    def attempt(n: int):
        calls.append(n)
        time.now += time.cost
        return LOST if n <= times else result

    return attempt, calls


def test_the_first_attempt_that_does_not_lose_is_the_answer():
    time = FakeTime()
    attempt, calls = losing(0, time)
    assert retry("env/dev", attempt, RetryPolicy(), time.clock()) == ("done", 1)
    assert (calls, time.sleeps) == ([1], [])


class Widest(random.Random):
    """Full jitter's draw at the top of its window: the window itself."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_lost_races_are_retried_with_a_backoff_window_that_grows_from_the_cycle_lost():
    time = FakeTime(cost=0.5)  # one fetch-commit-push cycle takes 0.5 s here
    attempt, calls = losing(3, time)
    policy = RetryPolicy(attempts=10, base=0.05, cap=10.0)
    assert retry("env/dev", attempt, policy, time.clock()) == ("done", 4)
    assert calls == [1, 2, 3, 4]
    # Attempt n's window is min(cap, cycle * 4 * 1.25^(n-1)): 2 s, 2.5 s, 3.125 s.
    for n, delay in enumerate(time.sleeps, start=1):
        assert 0 <= delay <= min(10.0, 0.5 * 4 * 1.25 ** (n - 1))
    assert len(time.sleeps) == 3
    widest = FakeTime(cost=0.5)
    attempt, _ = losing(3, widest)
    clock = Clock(monotonic=widest.monotonic, sleep=widest.sleep, rng=Widest())
    assert retry("env/dev", attempt, policy, clock) == ("done", 4)
    assert widest.sleeps == [2.0, 2.5, 3.125]


def test_the_backoff_window_is_capped_and_still_grows_to_many_cycles():
    policy = RetryPolicy()
    assert policy.delay(1, Widest(), cycle=0.01) == 4 * policy.base  # at least `base` a cycle
    assert policy.delay(14, Widest(), cycle=0.1) == pytest.approx(0.1 * 4 * 1.25**13)  # ~73
    assert policy.delay(29, Widest(), cycle=0.5) == policy.cap


def test_a_first_attempt_counts_for_no_more_than_a_retry_can_take():
    """The first attempt also read the config and the files beside every other writer
    starting: its cycle, when long, is no measure of a retry's, and widens no window."""
    policy = RetryPolicy()
    assert policy.delay(1, Widest(), cycle=2.5) == 4 * policy.first
    assert policy.delay(1, Widest(), cycle=1.0) == 4 * 1.0
    assert policy.delay(2, Widest(), cycle=2.0) == min(policy.cap, 2.0 * 4 * 1.25)


def test_it_never_sleeps_after_its_last_attempt():
    time = FakeTime(cost=0.1)
    attempt, calls = losing(99, time)
    with pytest.raises(RaceLost, match="env/dev kept moving: gave up after 3 attempts"):
        retry("env/dev", attempt, RetryPolicy(attempts=3), time.clock())
    assert (len(calls), len(time.sleeps)) == (3, 2)


def test_the_time_budget_stops_it_before_a_sleep_would_pass_it():
    time = FakeTime(cost=4.0)
    attempt, calls = losing(99, time)
    policy = RetryPolicy(attempts=1000, budget=60.0, cap=10.0)
    with pytest.raises(RaceLost) as caught:
        retry("env/dev", attempt, policy, time.clock(seed=7))
    assert time.now - 100.0 <= 60.0 + 4.0  # at most one cycle past the budget, no sleep past it
    assert len(calls) < 1000 and len(time.sleeps) == len(calls) - 1
    assert "nothing was pushed, run again" in str(caught.value)


def test_race_lost_is_exit_code_5():
    time = FakeTime()
    attempt, _ = losing(99, time)
    with pytest.raises(RaceLost) as caught:
        retry("x", attempt, RetryPolicy(attempts=1), time.clock())
    assert caught.value.exit_code == 5
