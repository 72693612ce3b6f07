"""Deploy windows and freezes: when an environment takes writes. Pure; zoneinfo only.

- A **window** (`"Mon-Thu 09:00-16:00 Europe/Berlin"`) opens on each day it lists at its start
  and closes at its end, both wall-clock times in its zone: start inclusive, end exclusive.
  Days: `Mon`, `Mon-Thu`, `Fri-Mon` (wrapping), lists `Mon,Wed,Fri-Sat`, or `daily`. An end at
  or before the start closes on the next day (`Fri 22:00-02:00 UTC` runs into Saturday);
  `24:00` is the end of the day.
- Wall times are read as zoneinfo reads them (fold=0): a time that does not exist (the hour
  skipped when clocks go forward) is shifted forward by the gap, 02:30 → 03:30 in Europe/Berlin
  on 2026-03-29; a time that occurs twice (clocks go back) is its first occurrence. So a window
  over a clock change is as long in real time as the clocks say: `Sun 01:00-04:00` lasts two
  hours on the spring day and four on the autumn one.
- A **freeze** closes whole days, `from` through `to` inclusive: from 00:00 of `from` to 00:00
  of the day after `to`, in its zone (promoter.yaml: `zone:`, else the first window's zone,
  else UTC).
- Open = inside some window (or no windows at all) and inside no freeze.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Imported where a zone is made: zoneinfo imports sysconfig (~6 ms), and most
    # configurations have no window or freeze.
    from zoneinfo import ZoneInfo

EXAMPLE = '"Mon-Thu 09:00-16:00 Europe/Berlin"'
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SPEC = re.compile(r"^(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s+(\S+)$")
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")
_DAY = timedelta(days=1)
_MAX_STEPS = 100_000  # boundaries walked looking for the next opening or closing


def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name (`Europe/Berlin`, `UTC`); ValueError naming it otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if _ZONE_NAME.match(name):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValueError(
        f"unknown time zone {name!r}: write an IANA name such as Europe/Berlin, "
        "America/New_York or UTC"
    )


@dataclass(frozen=True)
class Window:
    text: str  # as written, spaces normalised: what messages quote
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight, 0..1439
    end: int  # minutes after midnight, 1..1440; at or before start: the next day
    zone: ZoneInfo

    def occurrences(self, around: datetime) -> Iterator[tuple[datetime, datetime]]:
        """[start, end) in UTC of every occurrence starting on a local day from the day
        before `around`'s to eight days after it (enough to contain `around` and reach the
        next boundary of any window). An occurrence the clocks skip entirely is left out."""
        first = around.astimezone(self.zone).date() - _DAY
        for offset in range(10):
            day = first + offset * _DAY
            if day.weekday() not in self.days:
                continue
            start = _instant(day, self.start, self.zone)
            end = _instant(day if self.end > self.start else day + _DAY, self.end, self.zone)
            if end > start:
                yield start, end


@dataclass(frozen=True)
class Freeze:
    first: date  # `from`
    last: date  # `to`, inclusive
    reason: str | None
    zone: ZoneInfo

    def span(self) -> tuple[datetime, datetime]:
        return _instant(self.first, 0, self.zone), _instant(self.last + _DAY, 0, self.zone)

    @property
    def label(self) -> str:
        return f'freeze "{self.reason}"' if self.reason else "a freeze"

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "zone": self.zone.key,
        }


def _instant(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    if minutes >= 1440:
        day, minutes = day + _DAY, minutes - 1440
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
    return local.astimezone(UTC)


# ------------------------------------------------------------------------------ parsing


def parse_window(text: str) -> Window:
    """`DAYS HH:MM-HH:MM ZONE`; ValueError saying what is wrong and the expected form."""
    spec = " ".join(text.split())
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(
            f"{text!r} is not a window: write DAYS HH:MM-HH:MM ZONE, e.g. {EXAMPLE} "
            'or "Sat 10:00-12:00 UTC"'
        )
    days_text, start_h, start_m, end_h, end_m, zone_name = match.groups()
    days = _parse_days(days_text)
    start = _minutes(int(start_h), int(start_m), text, end=False)
    end = _minutes(int(end_h), int(end_m), text, end=True)
    if start == end:
        raise ValueError(
            f"{text!r}: the window starts and ends at the same time; for whole days write "
            "00:00-24:00"
        )
    return Window(spec, days, start, end, zone(zone_name))


def _parse_days(text: str) -> frozenset[int]:
    if text.lower() == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for item in text.split(","):
        first, dash, last = item.partition("-")
        a = _day(first, text)
        b = _day(last, text) if dash else a
        span = (b - a) % 7
        days.update((a + i) % 7 for i in range(span + 1))
    return frozenset(days)


def _day(name: str, whole: str) -> int:
    low = name.lower()
    for names in (_DAY_NAMES, _FULL_NAMES):
        if low in names:
            return names.index(low)
    raise ValueError(
        f"{whole!r}: {name!r} is not a day; write Mon Tue Wed Thu Fri Sat Sun, a range "
        "(Mon-Thu), a list (Mon,Wed,Fri) or daily"
    )


def _minutes(hours: int, minutes: int, text: str, end: bool) -> int:
    total = hours * 60 + minutes
    if minutes > 59 or total > (1440 if end else 1439):
        raise ValueError(f"{text!r}: {hours:02d}:{minutes:02d} is not a time of day (00:00-24:00)")
    return total


def parse_date(text: str) -> date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date: write YYYY-MM-DD, e.g. 2026-12-20") from None
    if day.year >= 9999:
        raise ValueError(f"{text!r}: a freeze must end before the year 9999")
    return day


# ------------------------------------------------------------------------------ evaluating


@dataclass(frozen=True)
class WindowState:
    """Whether an environment takes writes at one moment, and when that changes."""

    open: bool
    freeze: Freeze | None  # the freeze holding now (the latest-ending, if several)
    next_opening: datetime | None  # in the zone of the window that opens (or the schedule's)
    next_closing: datetime | None
    reason: str  # why it is closed, "" when open
    always: bool = False  # no windows, no freezes

    def as_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "next_opening": _iso(self.next_opening),
            "next_closing": _iso(self.next_closing),
            "freeze": self.freeze.as_dict() if self.freeze else None,
            "reason": self.reason or None,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...] = ()
    freezes: tuple[Freeze, ...] = ()

    @property
    def always_open(self) -> bool:
        return not self.windows and not self.freezes

    @property
    def zone(self) -> ZoneInfo:
        """Where times are shown: the first window's zone, else the first freeze's, else UTC."""
        if self.windows:
            return self.windows[0].zone
        return self.freezes[0].zone if self.freezes else zone("UTC")

    def freeze_at(self, now: datetime) -> Freeze | None:
        holding = [f for f in self.freezes if f.span()[0] <= now < f.span()[1]]
        return max(holding, key=lambda f: f.span()[1], default=None)

    def in_window(self, now: datetime) -> bool:
        if not self.windows:
            return True
        return any(s <= now < e for w in self.windows for s, e in w.occurrences(now))

    def is_open(self, now: datetime) -> bool:
        return self.freeze_at(now) is None and self.in_window(now)

    def next_opening(self, now: datetime) -> datetime | None:
        """The next moment after `now` at which it opens (when open now: the opening after
        this open period ends); None when it never opens again (or never closes)."""
        return self._next_change(now, to_open=True)

    def next_closing(self, now: datetime) -> datetime | None:
        """The next moment after `now` at which it closes (when open now: the end of this
        open period); None when it never closes."""
        return self._next_change(now, to_open=False)

    def state(self, now: datetime) -> WindowState:
        freeze = self.freeze_at(now)
        is_open = freeze is None and self.in_window(now)
        reason = ""
        if freeze is not None:
            reason = f"{freeze.label} through {freeze.last.isoformat()}"
        elif not is_open:
            reason = "outside " + " or ".join(f'"{w.text}"' for w in self.windows)
        return WindowState(
            is_open, freeze, self.next_opening(now), self.next_closing(now), reason,
            self.always_open,
        )  # fmt: skip

    # ---------------------------------------------------------------- the walk

    def _next_change(self, now: datetime, to_open: bool) -> datetime | None:
        if self.always_open:
            return None
        now = now.astimezone(UTC)
        state = self.is_open(now)
        moment = now
        for _ in range(_MAX_STEPS):
            after = self._boundary_after(moment)
            if after is None:
                return None
            moment = after
            now_open = self.is_open(moment)
            if now_open != state:
                if now_open == to_open:
                    return moment.astimezone(self._zone_at(moment))
                state = now_open
        return None

    def _boundary_after(self, moment: datetime) -> datetime | None:
        """The first moment after `moment` at which openness may change. Inside a freeze it
        cannot change before the freeze ends, so the walk jumps there."""
        freeze = self.freeze_at(moment)
        if freeze is not None:
            return freeze.span()[1]
        found = [x for f in self.freezes for x in f.span() if x > moment]
        found += [x for w in self.windows for span in w.occurrences(moment) for x in span
                  if x > moment]  # fmt: skip
        return min(found, default=None)

    def _zone_at(self, moment: datetime) -> ZoneInfo:
        for window in self.windows:
            if any(start == moment for start, _ in window.occurrences(moment)):
                return window.zone
        return self.zone


def when_text(moment: datetime, now: datetime) -> str:
    """`Mon 09:00 CET` within the coming six days, `Tue 2027-01-05 09:00 CET` further out."""
    if moment - now < timedelta(days=6):
        return moment.strftime("%a %H:%M %Z")
    return moment.strftime("%a %Y-%m-%d %H:%M %Z")
