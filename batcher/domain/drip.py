"""The drip: at most N contacts per location per period (`limits.contacts_per_hour`, `--drip
N/PERIOD`), in batches that fit it, and the schedule that follows from it and the send window.

Every tag change fires the contact's "Tag Added"/"Tag Removed" workflows and its
`ContactTagUpdate` webhook (API-NOTES.md, "Tags and what a change sets off"): the drip is how a
run stays at a pace the CRM's automations can take.

**The budget is a sliding window.** A batch of k contacts may start when the contacts in flight
plus those whose request completed within the last period, plus k, are at most N. A sliding
window holds every window of that length, so a server (or a person) counting per clock hour, or
per any hour, sees at most N; a fixed window would allow 2N across its boundary. Counting from
completion (as the request budget does, `batcher.sending.pacing`) covers whenever the API
stamped the request. The completions are kept in the run's state, so a rerun within the period
knows what the last one sent.

**Batches fit the budget.** The API's 500 contacts per request is a maximum: with N per period
a batch holds at most N // ceil(N / batch.size) contacts, the fewest requests that carry the
most contacts a period allows (1,000 per hour: two of 500; 100 per 15 min: one of 100; 700 per
hour: two of 350, not 500 and then a wait).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from batcher.domain.windows import Window

__all__ = ["LARGE_RUN", "Drip", "Due", "Schedule", "last_due", "parse_drip"]

# Above this many contacts a run without a drip is warned that it may set off the CRM's
# automations for every one of them at once: a thousand emails or SMS is already more than a
# campaign someone meant to send by accident; below it the warning would be noise on small jobs.
LARGE_RUN = 1000

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DRIP = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


@dataclass(frozen=True, slots=True)
class Drip:
    """At most `contacts` per location in any `period_s` seconds."""

    contacts: int
    period_s: float

    def batch_size(self, size: int) -> int:
        """The batch size that fits the budget (see the module docstring)."""
        return self.contacts // math.ceil(self.contacts / size)

    def describe(self) -> str:
        """`1,000 contacts per hour`, `500 contacts per 15 min`: as a person says it."""
        for seconds, one, unit in ((86400, "day", "d"), (3600, "hour", "h"), (60, "minute", "min")):
            if self.period_s % seconds == 0:
                count = int(self.period_s // seconds)
                return f"{self.contacts:,} contacts per {one if count == 1 else f'{count} {unit}'}"
        return f"{self.contacts:,} contacts per {int(self.period_s)} s"


def parse_drip(text: str) -> Drip:
    """`500/15m`, `1000/1h`, `10000/1d` (or `1000/h`); ValueError says what is wrong."""
    match = _DRIP.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not N/PERIOD (e.g. 500/15m; PERIOD in s, m, h or d)")
    contacts, count, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    if contacts < 1 or count < 1:
        raise ValueError(f"{text!r}: the contacts and the period must be at least 1")
    return Drip(contacts, count * _PERIODS[unit])


def last_due(
    sizes: Iterable[int],
    drip: Drip | None,
    window: Window | None,
    start: float,
    sent: Iterable[tuple[float, int]] = (),
) -> float | None:
    """When the last of a location's batches (their contact counts, in sending order) is due,
    starting at `start`, under the drip and within the window: the same rule as the run's (each
    batch as soon as it fits, its completion taken as its start); `sent` is what earlier
    invocations sent, `(completed, contacts)`, oldest first. None: no batch. (Without a drip
    every batch is due at once: the API's rate limit is the planner's, `Window.after`.)"""
    sends: deque[tuple[float, int]] = deque(sent)  # in the budget's window: (when, contacts)
    used = sum(contacts for _, contacts in sends)
    at = start
    last: float | None = None
    for size in sizes:
        while True:
            if window is not None:
                at = window.open_at(at)
            if drip is None:
                break
            while sends and sends[0][0] <= at - drip.period_s:
                used -= sends.popleft()[1]
            if used + size <= drip.contacts:
                break
            at = sends[0][0] + drip.period_s  # wait for the oldest to age out
        if drip is not None:
            sends.append((at, size))
            used += size
        last = at
    return last


@dataclass(frozen=True, slots=True)
class Due:
    """One location's schedule: its contacts and requests still to send, and when the last
    request is due (epoch seconds; None: nothing to send)."""

    location_id: str
    contacts: int
    requests: int
    last: float | None


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a run's contacts are due under its drip and window, per location (busiest first);
    `start` is when it was worked out."""

    drip: Drip | None
    window: Window | None
    batch_size: int
    start: float
    locations: tuple[Due, ...]

    @property
    def contacts(self) -> int:
        return sum(due.contacts for due in self.locations)

    @property
    def last(self) -> float | None:
        """When the run's last request is due (its busiest location's)."""
        return max((due.last for due in self.locations if due.last is not None), default=None)

    @property
    def paced(self) -> bool:
        """Whether a drip or a window shapes the run (else it goes at the API's rate)."""
        return self.drip is not None or self.window is not None

    @property
    def warn(self) -> bool:
        """Whether to warn that the run may set off automations for every contact at once."""
        return self.drip is None and self.contacts > LARGE_RUN

    def when(self, at: float) -> str:
        """An instant as the schedule shows it: in the window's zone, else UTC."""
        if self.window is not None:
            return self.window.describe(at)
        return datetime.fromtimestamp(at, UTC).strftime("%a %Y-%m-%d %H:%M UTC")
