"""Per-location budgets: never more requests than the API allows, as the server counts them.

The API counts requests per app per location: 100 per 10 s and 200,000 a day by default, and an
account may have other limits, which the X-RateLimit-* headers of every answer report
(API-NOTES.md, "Rate limits"; SPEC.md, "Pacing and retries"). Each location has its own budget:

- **Windows.** The configured limit (`requests_per_interval` per `interval_ms`), and once an
  answer has told it, the server's own (`X-RateLimit-Max` per `X-RateLimit-Interval-Milliseconds`):
  both hold, so the lower one rules.
- **Counting from completion.** The server stamps a request's arrival at some instant between our
  start and our completion, and we cannot know which. A request occupies a window from its start
  until `interval` after its completion, which covers every instant it may have been counted at.
  A new request may start only while `in flight + completed within the last interval < max`, so
  any server window of that length holds at most `max` of ours, whether the server counts in
  sliding or in fixed windows (a fixed window is one of the sliding ones).
- **Others' requests.** `X-RateLimit-Remaining` tells how many requests the server counted in its
  window; when that is more than ours (another integration shares the location's budget), the
  difference is booked as completions at the moment of the answer, so we leave it room.
- **429.** A refusal pauses the location, for every worker, until `Retry-After` (or the interval)
  has passed; other locations go on.
- **The daily quota.** When `X-RateLimit-Daily-Remaining` reaches `daily_reserve` (or, without
  that header, this run's own requests reach `daily_requests - daily_reserve`), the location is
  exhausted: nothing more is sent to it; its rows stay pending for the next run.

Why hand-written rather than a well-kept limiter such as aiolimiter (a leaky bucket): a bucket
counts *starts* at a fixed rate, so a slow request could arrive late and share a server window
with the next burst, and its rate is fixed where ours follows the server's headers, its pauses
and its daily quota. What is kept from such libraries: waits are plain sleeps on an injected
clock, so tests run on fake time.

Beside the request budget, `ContactBudget` holds the drip (contacts per location per period,
`batcher.domain.drip`) and the send window (`batcher.domain.windows`), on the run's wall clock.

`try_start` (for the fair scheduler in `lanes.py`, which hands a batch to a worker only for a
location that may send now) and `start` (for a retry, which waits its turn) return a `Slot`;
`slot.finish()` records the completion. Every wait ends at once, with Interrupted, when `stop`
is set.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from batcher.domain.drip import Drip
from batcher.domain.errors import Interrupted
from batcher.domain.events import Event, EventSink, ignore
from batcher.domain.models import RateLimitInfo
from batcher.domain.windows import Window

__all__ = ["ContactBudget", "Pacer", "Slot", "comes_back", "first_of"]


@dataclass(slots=True)
class _Budget:
    """The pacing state of one location."""

    windows: list[tuple[int, float]]
    # Waiting starts are admitted one at a time, in arrival order: asyncio.Lock wakes its
    # waiters FIFO, so only the head of the queue ever sleeps or watches for completions.
    admission: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The start instants of the requests in flight: the oldest one bounds how far back
    # `observe` may look for our completions (see `delay`).
    in_flight: list[float] = field(default_factory=list)
    # Completion instants (real ones, and others' requests booked from the headers), ascending:
    # both are stamped "now" when added.
    completions: list[float] = field(default_factory=list)
    paused_until: float = 0.0
    retries_waiting: int = 0
    sent: int = 0
    daily_limit: int = 0
    exhausted: str | None = None


class Slot:
    """One HTTP attempt's place in a location's budget; `finish()` when its answer is in.

    `started` is when the attempt took its place (the pacer's clock).
    """

    __slots__ = ("_budget", "_done", "_pacer", "started")

    def __init__(self, pacer: Pacer, budget: _Budget, started: float) -> None:
        self._pacer = pacer
        self._budget = budget
        self._done = False
        self.started = started

    def finish(self) -> None:
        if not self._done:
            self._done = True
            self._pacer._finish(self._budget, self.started)

    def sent(self) -> None:
        """The request goes out now: it starts now (it may have waited for its turn since the
        slot was taken, counted in flight all along, which only held others back longer)."""
        now = self._pacer._clock()
        self._budget.in_flight.remove(self.started)
        self._budget.in_flight.append(now)
        self.started = now


class Pacer:
    """Grants request slots per location within every window that applies to it."""

    def __init__(
        self,
        max_requests: int,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stop: asyncio.Event | None = None,
        daily_requests: int = 200_000,
        daily_reserve: int = 0,
        events: EventSink = ignore,
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        if interval_s <= 0:
            raise ValueError("interval_s must be greater than 0")
        self._config = (max_requests, interval_s)
        self._clock = clock
        self._sleep = sleep
        self._stop = stop or asyncio.Event()
        self._daily_requests = daily_requests
        self._daily_reserve = daily_reserve
        self._budgets: dict[str, _Budget] = {}
        # Told of 429 pauses and of a location's daily quota (`location.paused`, `.quota_reached`).
        self._events = events
        # Set whenever room may have appeared (a completion, new headers); waiters clear it.
        self.changed = asyncio.Event()

    # -- the budget ------------------------------------------------------------------------

    def _budget(self, location_id: str) -> _Budget:
        budget = self._budgets.get(location_id)
        if budget is None:
            budget = self._budgets[location_id] = _Budget(
                windows=[self._config], daily_limit=self._daily_requests
            )
        return budget

    def delay(self, location_id: str) -> float | None:
        """Seconds until `location_id` may start a request (0: now); None while only a
        completion can make room (every slot is in flight); `math.inf` once exhausted."""
        budget = self._budget(location_id)
        if budget.exhausted is not None:
            return math.inf
        now = self._clock()
        wait = max(0.0, budget.paused_until - now)
        longest = max(interval for _, interval in budget.windows)
        completions = budget.completions
        # Forget completions no window can see any more, and that the server cannot have
        # counted before the arrival of a request still in flight either: its answer's
        # Remaining is told to `observe`, which counts ours from that request's start. Forgotten
        # too early, ours would be booked as others' and hold back a whole interval.
        drop = bisect.bisect_right(completions, min(budget.in_flight, default=now) - longest)
        if drop:
            del completions[:drop]
        for max_requests, interval in budget.windows:
            free = max_requests - len(budget.in_flight)
            if free <= 0:
                return None
            first = bisect.bisect_right(completions, now - interval)
            recent = len(completions) - first
            if recent < free:
                continue
            # The oldest `recent - free + 1` of the window's completions must age out first.
            wait = max(wait, completions[first + recent - free] + interval - now)
        return wait

    def try_start(self, location_id: str) -> Slot | None:
        """A slot for `location_id` if it may start a request now, else None. Requests already
        waiting in `start` (retries) go first."""
        if self._budget(location_id).retries_waiting or self.delay(location_id) != 0:
            return None
        return self._start(self._budget(location_id))

    def _start(self, budget: _Budget) -> Slot:
        started = self._clock()
        budget.in_flight.append(started)
        budget.sent += 1
        return Slot(self, budget, started)

    def _finish(self, budget: _Budget, started: float) -> None:
        budget.in_flight.remove(started)
        budget.completions.append(self._clock())
        self.changed.set()

    async def start(self, location_id: str) -> Slot:
        """Wait until `location_id` may start a request, then take the slot (for retries)."""
        budget = self._budget(location_id)
        budget.retries_waiting += 1
        try:
            async with budget.admission:
                while True:
                    if self._stop.is_set():
                        raise Interrupted("stopped while waiting for a request slot")
                    if budget.exhausted is not None:
                        raise Interrupted(budget.exhausted)
                    wait = self.delay(location_id)
                    if wait == 0:
                        return self._start(budget)
                    # No await between delay() and clear(): no completion can be missed.
                    self.changed.clear()
                    if wait is None:
                        await first_of(self.changed, self._stop)
                    else:
                        await self._sleep(wait)
        finally:
            budget.retries_waiting -= 1

    def slot(self, location_id: str) -> AbstractAsyncContextManager[None]:
        """`async with pacer.slot(loc):` around exactly one HTTP attempt for `loc`."""
        return self._held(location_id)

    @asynccontextmanager
    async def _held(self, location_id: str) -> AsyncIterator[None]:
        slot = await self.start(location_id)
        try:
            yield
        finally:
            slot.finish()

    # -- what the server says ----------------------------------------------------------------

    def observe(self, location_id: str, info: RateLimitInfo, *, since: float | None = None) -> None:
        """Follow an answer's X-RateLimit-* headers (see the module docstring).

        `since` is when the answered request started: the server counted the window before
        the request's arrival, which came after that start, so every request of ours it can
        have counted completed after `since - interval` (or is still in flight).
        """
        budget = self._budget(location_id)
        now = self._clock()
        if info.max and info.interval_ms:
            server = (info.max, info.interval_ms / 1000)
            budget.windows = [self._config] if server == self._config else [self._config, server]
            if info.remaining is not None:
                horizon = (now if since is None else since) - server[1]
                first = bisect.bisect_right(budget.completions, horizon)
                ours = len(budget.in_flight) + len(budget.completions) - first
                others = min(info.max - info.remaining - ours, info.max)
                if others > 0:
                    budget.completions.extend([now] * others)
        if info.daily_limit:
            budget.daily_limit = info.daily_limit
        if info.daily_remaining is not None:
            if info.daily_remaining <= self._daily_reserve:
                of = f" of {info.daily_limit:,}" if info.daily_limit else ""
                self.exhaust(
                    location_id,
                    f"X-RateLimit-Daily-Remaining is {info.daily_remaining:,}{of}, "
                    f"limits.daily_reserve {self._daily_reserve}; {comes_back(None)}",
                )
        elif budget.sent >= budget.daily_limit - self._daily_reserve:
            self.exhaust(
                location_id,
                f"{budget.sent:,} requests sent in this run, limits.daily_requests "
                f"{budget.daily_limit:,}, limits.daily_reserve {self._daily_reserve}; "
                f"{comes_back(None)}",
            )
        self.changed.set()

    def pause(self, location_id: str, seconds: float) -> None:
        """A 429: no request for `location_id`, from any worker, for `seconds`."""
        budget = self._budget(location_id)
        until = self._clock() + max(seconds, 0.0)
        if until > budget.paused_until:
            budget.paused_until = until
            self._events(
                Event(
                    "location.paused",
                    f"location {location_id}: the API answered 429; every request to it waits "
                    f"{seconds:.1f} s",
                    {"location_id": location_id, "seconds": round(seconds, 3)},
                    level="warning",
                    text=False,
                )
            )

    def exhaust(self, location_id: str, reason: str) -> None:
        """The location's daily quota is reached: nothing more is sent to it in this run."""
        self._close(
            location_id,
            reason,
            "location.quota_reached",
            f"location {location_id}: the daily request quota is reached ({reason}); its "
            "rows stay pending",
        )

    def refuse(self, location_id: str, reason: str) -> None:
        """The location's credential was refused: nothing more is sent to it in this run."""
        self._close(
            location_id,
            reason,
            "location.refused",
            f"location {location_id}: {reason}; its rows stay pending",
        )

    def _close(self, location_id: str, reason: str, name: str, text: str) -> None:
        budget = self._budget(location_id)
        if budget.exhausted is None:
            budget.exhausted = reason
            self._events(
                Event(
                    name,
                    text,
                    {"location_id": location_id, "reason": reason},
                    level="warning",
                    text=False,
                )
            )
        self.changed.set()

    def paused(self, location_id: str) -> bool:
        """Whether a 429 holds `location_id` back now."""
        budget = self._budgets.get(location_id)
        return budget is not None and budget.paused_until > self._clock()

    def exhausted(self, location_id: str) -> str | None:
        """Why `location_id` gets no more requests in this run, or None."""
        budget = self._budgets.get(location_id)
        return budget.exhausted if budget is not None else None

    def interval_s(self, location_id: str) -> float:
        """The longest window that applies to `location_id` (the server's once it has said)."""
        return max(interval for _, interval in self._budget(location_id).windows)


@dataclass(slots=True)
class _Contacts:
    """The drip's state of one location: contacts in flight, and completions in the period."""

    in_flight: int = 0
    completions: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0  # contacts of `completions`


class ContactBudget:
    """The drip and the send window beside the request budget (`batcher.domain.drip`): at most
    `drip.contacts` contacts per location in any `drip.period_s` of `clock` (sliding, counted
    from completion), and only while `window` is open.

    `clock` is wall time in epoch seconds (the window is days and hours in a zone); waits run
    on the event loop's clock, and every wait is read again when it ends. `history` holds what
    earlier invocations of the run sent (`(completed, contacts)` per location), `on_sent` hears
    each completion (to keep it). With `until_window_end`, a location whose next batch cannot
    go before the open window ends (or the window is closed) gets no more batches: `stopped`
    says why and when the next one is due; without it, `events` hears once per opening that
    the run waits for the window (`window.waiting`).
    """

    def __init__(
        self,
        drip: Drip | None,
        window: Window | None,
        clock: Callable[[], float],
        *,
        history: dict[str, list[tuple[float, int]]] | None = None,
        until_window_end: bool = False,
        on_sent: Callable[[str, float, int], None] | None = None,
        events: EventSink = ignore,
    ) -> None:
        self.drip = drip
        self.window = window
        self._events = events
        self._announced = 0.0  # the window's opening last told (`window.waiting`)
        self._clock = clock
        self._until_window_end = until_window_end
        self._on_sent = on_sent
        self._locations: dict[str, _Contacts] = {}
        self._stopped: dict[str, str] = {}
        for location_id, sent in (history or {}).items():
            state = self._state(location_id)
            state.completions.extend(sent)
            state.used = sum(contacts for _, contacts in sent)

    def _state(self, location_id: str) -> _Contacts:
        state = self._locations.get(location_id)
        if state is None:
            state = self._locations[location_id] = _Contacts()
        return state

    def _free(self, location_id: str, contacts: int, now: float) -> float:
        """When the drip has room for a batch of `contacts` (`now` if it has);
        `math.inf` while only a completion can make room."""
        drip = self.drip
        if drip is None:
            return now
        state = self._state(location_id)
        completions = state.completions
        while completions and completions[0][0] <= now - drip.period_s:
            state.used -= completions.popleft()[1]
        used = state.in_flight + state.used
        if used + contacts <= drip.contacts:
            return now
        # The oldest completions age out first; those in flight only by completing.
        for completed, count in completions:
            used -= count
            if used + contacts <= drip.contacts:
                return completed + drip.period_s
        return math.inf

    def delay(self, location_id: str, contacts: int) -> float | None:
        """Seconds until a batch of `contacts` may start for `location_id` (0: now): the drip
        has room and the window is open; None while only a completion can make room;
        `math.inf` once the location is stopped."""
        if location_id in self._stopped:
            return math.inf
        now = self._clock()
        free = self._free(location_id, contacts, now)
        window = self.window
        if window is None or math.isinf(free):
            return None if math.isinf(free) else free - now
        at = window.open_at(free)
        if self._until_window_end:
            closes = window.closes_at(now)
            if closes is None or at >= closes:
                self._stopped[location_id] = (
                    f"the send window ({window.text}) is closed; the next batch is due at "
                    f"{window.describe(at)}"
                    if closes is None
                    else f"the send window ({window.text}) ends at {window.describe(closes)} "
                    f"before the drip allows another batch; the next one is due at "
                    f"{window.describe(at)}"
                )
                return math.inf
        elif at > free and at != self._announced:
            self._announced = at
            self._events(
                Event(
                    "window.waiting",
                    f"outside the send window ({window.text}): waiting until {window.describe(at)}",
                    {"opens": at},
                )
            )
        return at - now

    def take(self, location_id: str, contacts: int) -> None:
        """A batch of `contacts` goes out now."""
        self._state(location_id).in_flight += contacts

    def done(self, location_id: str, contacts: int) -> None:
        """A batch taken by `take` is done (answered, or given up: it may have gone out)."""
        state = self._state(location_id)
        state.in_flight -= contacts
        if self.drip is None:
            return
        now = self._clock()
        state.completions.append((now, contacts))
        state.used += contacts
        if self._on_sent is not None:
            self._on_sent(location_id, now, contacts)

    def stopped(self) -> dict[str, str]:
        """Locations that get no more batches in this run because of the window, and why."""
        return dict(self._stopped)


def comes_back(retry_after_s: float | None) -> str:
    """When a spent daily quota comes back, as far as the API says: its `Retry-After`, if the
    answer had one; else that it does not say. HighLevel documents neither the reset time nor
    the window ("per day" on one page, "per 24 hours" on another: API-NOTES.md, "Credentials
    across locations"), so no time is made up."""
    if retry_after_s is not None:
        return f"the answer's Retry-After says it comes back in {_duration(retry_after_s)}"
    return "the API does not say when it resets"


def _duration(seconds: float) -> str:
    left = max(int(seconds), 0)
    if left < 60:
        return f"{left} s"
    return f"{left // 3600} h {left % 3600 // 60} min"


async def first_of(*events: asyncio.Event, within: float | None = None) -> None:
    """Wait until any of `events` is set, or `within` seconds have passed."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
