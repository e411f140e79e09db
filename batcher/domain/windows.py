"""Send windows (`run.window`): the days and hours, in an IANA time zone, when a run may send.

The form is days and time ranges, then the zone: `"Mon-Fri 09:00-17:00 America/New_York"`,
`"Mon-Fri 09:00-12:00 13:00-17:00 Sat,Sun 10:00-14:00 Europe/Berlin"`, `"22:00-06:00 UTC"`.
Days are `Mon`..`Sun`, lists (`Sat,Sun`) and ranges (`Mon-Fri`, `Fri-Mon`); time ranges without
days before them hold every day. A range ending at or before its start runs over midnight into
the next day (`22:00-06:00` on Fri is Fri 22:00 to Sat 06:00); `24:00` is the day's end. Each
range is half-open: `09:00-17:00` sends at 16:59:59, not at 17:00.

**Clock changes (DST).** Times are what a clock on the wall in that zone shows, so a window is
shorter or longer on the night the clocks change, as a person there expects:
- a boundary in the hour the clocks skip (02:30 on a spring-forward night in New York) is the
  moment the clock jumps (03:00): the first instant whose wall time is at or past it;
- a boundary in the hour the clocks repeat (01:30 on a fall-back night) is its first occurrence.

The standard library's `zoneinfo` does the zone arithmetic (the system's tz database, or the
`tzdata` package where the system has none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Window", "parse_window"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
# One week and a day either side covers every range that can hold or follow an instant.
_LOOKAROUND_DAYS = 8


@dataclass(frozen=True, slots=True)
class _Range:
    days: frozenset[int]  # weekdays (Monday 0) on which the range starts
    start: int  # minutes after midnight
    end: int  # minutes after midnight; <= start: the next day's


@dataclass(frozen=True, slots=True)
class Window:
    """When sending is allowed; instants are epoch seconds (the run's clock)."""

    text: str
    zone: ZoneInfo
    ranges: tuple[_Range, ...]

    def spans(self, at: float, days: int = _LOOKAROUND_DAYS) -> list[tuple[float, float]]:
        """The window's open spans `[start, end)` that end after `at` and start within `days`
        days of it, merged where they touch, in order."""
        local = datetime.fromtimestamp(at, self.zone).date()
        found: list[tuple[float, float]] = []
        for offset in range(-1, days + 1):
            day = local + timedelta(days=offset)
            for rng in self.ranges:
                if day.weekday() not in rng.days:
                    continue
                start = _instant(day, rng.start, self.zone)
                end_day = day if rng.end > rng.start else day + timedelta(days=1)
                end = _instant(end_day, rng.end, self.zone)
                if end > at and end > start:
                    found.append((start, end))
        found.sort()
        merged: list[tuple[float, float]] = []
        for start, end in found:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def open_at(self, at: float) -> float:
        """The first instant at or after `at` inside the window (`at` itself when open)."""
        spans = self.spans(at)
        return max(spans[0][0], at)

    def closes_at(self, at: float) -> float | None:
        """When the span holding `at` ends; None when the window is closed at `at`."""
        start, end = self.spans(at)[0]
        return end if start <= at else None

    def after(self, at: float, seconds: float) -> float:
        """When `seconds` of open time have passed from `at` (waiting for the window first):
        sending that takes `seconds` and pauses while the window is closed ends then."""
        at = self.open_at(at)
        while True:
            closes = self.closes_at(at)
            assert closes is not None  # `at` is open
            if at + seconds <= closes:
                return at + seconds
            seconds -= closes - at
            at = self.open_at(closes)

    def describe(self, at: float) -> str:
        """An instant as a person in the window's zone reads it: `Tue 2026-03-10 09:00 EDT`."""
        return datetime.fromtimestamp(at, self.zone).strftime("%a %Y-%m-%d %H:%M %Z")


def _instant(day: date, minutes: int, zone: ZoneInfo) -> float:
    """Epoch seconds of wall time `minutes` after midnight of `day` in `zone` (see the module's
    rule for clock changes)."""
    if minutes >= 24 * 60:
        day, minutes = day + timedelta(days=1), minutes - 24 * 60
    wall = datetime.combine(day, time(minutes // 60, minutes % 60))
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.timestamp()
    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall:
        return instant  # the time exists (the first occurrence, if it repeats)
    # Skipped by a spring-forward: the first instant whose wall time is at or past it. Both
    # readings of a skipped wall time bracket the jump (fold=1 reads it with the offset after
    # the change, so earlier); halve the gap down to the second.
    low, high = wall.replace(tzinfo=zone, fold=1).timestamp(), instant
    low, high = min(low, high), max(low, high)
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def _days(text: str) -> frozenset[int]:
    chosen: set[int] = set()
    for part in text.lower().split(","):
        first, dash, last = part.partition("-")
        if first not in DAYS or (dash and last not in DAYS):
            raise ValueError(f"{part!r} is not a day or a day range (Mon..Sun, e.g. Mon-Fri)")
        begin = DAYS.index(first)
        finish = DAYS.index(last) if dash else begin
        chosen.update((begin + step) % 7 for step in range((finish - begin) % 7 + 1))
    return frozenset(chosen)


def _time_range(match: re.Match[str]) -> tuple[int, int]:
    sh, sm, eh, em = (int(group) for group in match.groups())
    if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
        raise ValueError(f"{match.group(0)!r} is not a time range (HH:MM-HH:MM, 00:00 to 24:00)")
    return sh * 60 + sm, eh * 60 + em


def parse_window(text: str) -> Window:
    """A `run.window` value; ValueError says what is wrong with it."""
    tokens = text.split()
    if len(tokens) < 2:
        raise ValueError(
            'expected days, time ranges and a time zone, e.g. "Mon-Fri 09:00-17:00 '
            'America/New_York"'
        )
    try:
        zone = ZoneInfo(tokens[-1])
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{tokens[-1]!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)"
        ) from None
    ranges: list[_Range] = []
    days = frozenset(range(7))
    for token in tokens[:-1]:
        match = _TIME_RANGE.match(token)
        if match is None:
            days = _days(token)
            continue
        start, end = _time_range(match)
        ranges.append(_Range(days, start, end if end != start else start + 24 * 60))
    if not ranges:
        raise ValueError("no time range (HH:MM-HH:MM) in the window")
    return Window(text, zone, tuple(ranges))
