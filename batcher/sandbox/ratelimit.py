"""Per-location rate limits: a burst window and a daily quota, with their headers.

HighLevel counts requests per app per location: 100 per 10 s and 200,000 per day by default, and
tells the limits applied in five `X-RateLimit-*` headers on every answer (API-NOTES.md,
"Rate limits"). Requests refused with 429 are not counted, so a client that waits out the window
gets through.

The burst window is sliding by default: no span of `interval_ms` holds more than `max` admitted
requests, and a refusal's Retry-After is the time until the oldest of them leaves. With
`window = "fixed"` a request is counted in the window `floor(now / interval)`, which resets at
once when the next one starts (so up to twice `max` can arrive within one interval across a
boundary); `X-RateLimit-Remaining` is what is left in the current window, and a refusal's
Retry-After the time until the next window starts. Which one the real API uses is not documented.

The clocks are injected so tests never sleep: `clock` is monotonic seconds (the window; fixed
windows are numbered from its zero), `wall_clock` epoch seconds (the UTC day of the daily quota).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from batcher.sandbox.config import UNTHROTTLED, RateConfig

_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the limiter says about one request."""

    allowed: bool
    headers: dict[str, str]
    window_count: int  # requests counted in the window, this one included if allowed
    retry_after_s: int  # whole seconds until a request would be admitted (0 if allowed)


@dataclass(slots=True)
class _Bucket:
    # The admitted requests' instants counted in the current window (ascending).
    window: deque[float]
    # Fixed windows only: the number of the window being counted, floor(now / interval).
    fixed_index: int = -1
    day: int = -1
    daily_count: int = 0


class RateLimiter:
    """Admits or refuses requests per key (a location id, or the token's own bucket)."""

    def __init__(
        self,
        config: RateConfig | None,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.config = config or UNTHROTTLED
        self._clock = clock
        self._wall_clock = wall_clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, key: str) -> Verdict:
        """Count the request if both limits allow it; else refuse it without counting."""
        now = self._clock()
        bucket = self._refreshed(key, now)
        limits = self.config
        if bucket.daily_count >= limits.daily:
            wall = self._wall_clock()
            wait = _SECONDS_PER_DAY - wall % _SECONDS_PER_DAY
            return self._verdict(bucket, allowed=False, retry_after=wait)
        if len(bucket.window) >= limits.max:
            interval = limits.interval_ms / 1000
            if limits.window == "fixed":
                wait = (bucket.fixed_index + 1) * interval - now
            else:
                wait = bucket.window[0] + interval - now
            return self._verdict(bucket, allowed=False, retry_after=wait)
        bucket.window.append(now)
        bucket.daily_count += 1
        return self._verdict(bucket, allowed=True, retry_after=0.0)

    def peek(self, key: str) -> Verdict:
        """The headers for an answer that is not counted (401: not authenticated)."""
        return self._verdict(self._refreshed(key, self._clock()), allowed=True, retry_after=0.0)

    def _refreshed(self, key: str, now: float) -> _Bucket:
        """The key's bucket at `now`: expired window entries and a past day's count dropped."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(deque())
        interval = self.config.interval_ms / 1000
        window = bucket.window
        if self.config.window == "fixed":
            index = math.floor(now / interval)
            if index != bucket.fixed_index:
                bucket.fixed_index = index
                window.clear()
        else:
            horizon = now - interval
            while window and window[0] <= horizon:
                window.popleft()
        day = int(self._wall_clock() // _SECONDS_PER_DAY)  # epoch days are UTC days
        if day != bucket.day:
            bucket.day, bucket.daily_count = day, 0
        return bucket

    def _verdict(self, bucket: _Bucket, *, allowed: bool, retry_after: float) -> Verdict:
        limits = self.config
        headers = {
            "X-RateLimit-Max": str(limits.max),
            "X-RateLimit-Remaining": str(limits.max - len(bucket.window)),
            "X-RateLimit-Interval-Milliseconds": str(limits.interval_ms),
            "X-RateLimit-Limit-Daily": str(limits.daily),
            "X-RateLimit-Daily-Remaining": str(limits.daily - bucket.daily_count),
        }
        wait = 0 if allowed else max(1, math.ceil(retry_after))
        return Verdict(allowed, headers, len(bucket.window), wait)
