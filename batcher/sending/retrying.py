"""What is retried and how long to wait between attempts.

The only module that imports tenacity. The policy is three small tenacity objects built from
RetrySettings ("Small composable policies", DESIGN.md) rather than an if-ladder around a loop:

- retry: only TransientError (429 burst, 5xx, timeouts and dropped connections, an unreadable 201).
  RejectedError (400/422) cannot succeed when resent, and FatalApiError (401/403, daily quota)
  stops the whole run: both are raised at once (SPEC.md, "Pacing and retries").
- stop: after `settings.attempts` attempts in total.
- wait: what the server asked for when it said, else exponential backoff with jitter.

Tests pass their own `sleep` and `rng`, so nothing ever really waits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base

from batcher.domain.config import RetrySettings
from batcher.domain.errors import ApiError, RateLimitedError, TransientError

T = TypeVar("T")

# The longest wait a server hint (Retry-After, the rate-limit interval) can impose on one retry.
# The burst window is 10 s (API-NOTES.md, "Rate limits"); an hour is far beyond any sane hint yet
# keeps a bogus or hostile value (a date years ahead, "inf") from parking a worker forever.
MAX_SERVER_WAIT_S = 3600.0

# Exponents beyond this cannot matter (2**60 * any positive backoff exceeds every sane cap) and
# would overflow float arithmetic for very large `retry.attempts`.
_MAX_DOUBLINGS = 60


class _JitteredBackoff(wait_base):
    """`initial * 2**(n-1)` capped at `maximum`, then "equal jitter": uniform in [w/2, w].

    Half the wait is kept so backoff still grows visibly; the random half spreads out workers
    that failed together so they do not all come back in the same instant.
    """

    def __init__(self, initial: float, maximum: float, rng: random.Random) -> None:
        self._initial = initial
        self._maximum = maximum
        self._rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        doublings = min(retry_state.attempt_number - 1, _MAX_DOUBLINGS)
        ceiling = min(self._maximum, self._initial * 2.0**doublings)
        return self._rng.uniform(ceiling / 2, ceiling)


class _ServerHintedWait(wait_base):
    """The server's word first, our backoff otherwise.

    - `Retry-After` (any status): wait exactly that long, even beyond `max_backoff_s`, because
      coming back earlier only earns another refusal; capped at MAX_SERVER_WAIT_S.
    - 429 without it: whether the API sends Retry-After is undocumented; its advice is to wait
      out the interval (API-NOTES.md, "Rate limits"), so wait at least
      `X-RateLimit-Interval-Milliseconds` when present.
    """

    def __init__(self, backoff: wait_base) -> None:
        self._backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        error = _error_of(retry_state)
        if error is None:
            return backoff
        if error.retry_after_s is not None:
            return min(max(error.retry_after_s, 0.0), MAX_SERVER_WAIT_S)
        interval_ms = error.rate.interval_ms if isinstance(error, RateLimitedError) else None
        if interval_ms:
            return min(max(backoff, interval_ms / 1000), MAX_SERVER_WAIT_S)
        return backoff


class RetryPolicy:
    """Runs one attempt callable until it succeeds, fails for good, or attempts run out."""

    def __init__(
        self,
        settings: RetrySettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        on_retry: Callable[[ApiError, float], None] | None = None,
    ) -> None:
        self._on_retry = on_retry
        backoff = _JitteredBackoff(
            settings.initial_backoff_s, settings.max_backoff_s, rng or random.Random()
        )
        # A template: tenacity keeps per-run state on the object, so each call runs on a copy
        # and many coroutines can share one policy.
        self._template = AsyncRetrying(
            sleep=sleep,
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(settings.attempts),
            wait=_ServerHintedWait(backoff),
            before_sleep=self._before_sleep,
            reraise=True,  # give up with the last ApiError itself, never tenacity's RetryError
        )

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        """Return `attempt`'s result and the number of attempts it took.

        On giving up (or on an error that is never retried) the last ApiError is raised with its
        `attempts` set, so the report can say how many HTTP attempts the batch cost.
        """
        attempts = 0

        async def counted() -> T:
            nonlocal attempts
            attempts += 1
            return await attempt()

        try:
            result: T = await self._template.copy()(counted)
        except ApiError as error:
            error.attempts = attempts
            raise
        return result, attempts

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        error = _error_of(retry_state)
        if self._on_retry is not None and error is not None and retry_state.next_action:
            self._on_retry(error, retry_state.next_action.sleep)


def _error_of(retry_state: RetryCallState) -> ApiError | None:
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None and outcome.failed else None
    return error if isinstance(error, ApiError) else None


__all__ = ["MAX_SERVER_WAIT_S", "RetryPolicy"]
