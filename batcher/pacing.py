"""Per-location request pacing: never more requests than the API's burst limit allows.

The API counts requests per app per location: 100 per 10 s by default, and an account may have
other limits, which the X-RateLimit-* headers report (API-NOTES.md, "Rate limits"; SPEC.md,
"Pacing and retries"). The Pacer gets `max_requests` per `interval_s` from LimitSettings
(`requests_per_interval`, `interval_ms / 1000`), and each location has its own window.

Why a window counts from a request's *completion*: the server stamps a request's arrival at some
instant between our start and our completion, and we cannot know which. Counting a request as
occupying the window from its start until `interval_s` after its completion covers every instant
it may have been counted at. A new request may start only while

    in flight + completed within the last interval_s  <  max_requests

so that any server window of length interval_s (whatever arrival instants the server saw) holds at
most max_requests of ours: of the requests the server counted in one window, the last one to start
found every other one still in flight or completed less than interval_s before its start. A
start-based window would let a slow request arrive late and share a server window with the next
burst.

Step 3 grows this seam: `observe` records what the server says is left; it will then tighten
the budget (X-RateLimit-Remaining, X-RateLimit-Max, the interval) and stop at the daily quota.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from batcher.errors import Interrupted
from batcher.models import RateLimitInfo


@dataclass(slots=True)
class _Location:
    """The pacing state of one location."""

    # Admission is one at a time, in arrival order: asyncio.Lock wakes its waiters FIFO, so the
    # queue is fair and only its head ever sleeps or watches for releases (no thundering herd).
    admission: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Set whenever a slot of this location is released; the head of the queue waits on it when
    # every slot is in flight and there is no completion to age out yet.
    released: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    # Completion instants, oldest first, still within the window (at most max_requests of them).
    completions: deque[float] = field(default_factory=deque)
    latest: RateLimitInfo | None = None


class Pacer:
    """Grants request slots per location within `max_requests` per `interval_s`."""

    def __init__(
        self,
        max_requests: int,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stop: asyncio.Event | None = None,
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        if interval_s <= 0:
            raise ValueError("interval_s must be greater than 0")
        self._max = max_requests
        self._interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        # Set when the run stops: a wait for a slot ends at once with Interrupted.
        self._stop = stop or asyncio.Event()
        self._locations: dict[str, _Location] = {}

    def slot(self, location_id: str) -> AbstractAsyncContextManager[None]:
        """`async with pacer.slot(loc):` around exactly one HTTP attempt for `loc`."""
        return self._slot(self._location(location_id))

    def observe(self, location_id: str, info: RateLimitInfo) -> None:
        """Record the X-RateLimit-* headers of an answer for `location_id`.

        For now only kept (see `latest`); Step 3 will let them tighten this location's budget.
        """
        self._location(location_id).latest = info

    def latest(self, location_id: str) -> RateLimitInfo | None:
        """The rate-limit headers last observed for `location_id`, if any."""
        state = self._locations.get(location_id)
        return state.latest if state is not None else None

    def _location(self, location_id: str) -> _Location:
        state = self._locations.get(location_id)
        if state is None:
            state = self._locations[location_id] = _Location()
        return state

    @asynccontextmanager
    async def _slot(self, state: _Location) -> AsyncIterator[None]:
        async with state.admission:
            await self._wait_for_room(state)
            state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1
            state.completions.append(self._clock())
            state.released.set()

    async def _wait_for_room(self, state: _Location) -> None:
        """Return once one more request fits; the caller holds the admission lock."""
        while True:
            now = self._clock()
            while state.completions and state.completions[0] + self._interval_s <= now:
                state.completions.popleft()
            if state.in_flight + len(state.completions) < self._max:
                return
            if state.completions:
                # The oldest completion is the first to leave the window: sleep until it does.
                await self._sleep(state.completions[0] + self._interval_s - now)
            else:
                # Every slot is in flight: nothing can age out before one of them completes.
                # No await between the check above and clear(): no release can be missed.
                state.released.clear()
                await _first_of(state.released, self._stop)
                if self._stop.is_set():
                    raise Interrupted("stopped while waiting for a request slot")


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until any of `events` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


__all__ = ["Pacer"]
