"""One batch through pacing and retrying, and what its answer (or its loss) means for the run.

`BatchSender` sends a batch with pacing and retries and returns its `BatchOutcome`: the API's
per-contact answers, or `failed` outcomes for every row when no usable answer came. It returns
None when the run was stopped before an answer came: those rows stay `pending` and the next run
sends them. Errors that end the whole run (401, 403, the daily quota) are raised with a message
that says what to fix. `FailureBreaker` stops a run whose requests keep failing.

HTTP statuses are read here only through the typed errors of `batcher.errors` (the client turned
them into those); nothing here imports aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from batcher.client import Answer, BulkTagsClient
from batcher.config import RetrySettings
from batcher.errors import (
    ApiError,
    AuthError,
    DailyQuotaError,
    FatalApiError,
    ForbiddenError,
    Interrupted,
    RateLimitedError,
    RejectedError,
    TooManyFailuresError,
)
from batcher.models import Batch, BatchOutcome, ContactOutcome, Status
from batcher.pacing import Pacer
from batcher.retrying import RetryPolicy

__all__ = ["BatchSender", "Counters", "FailureBreaker"]


@dataclass
class Counters:
    """What the summary tells about the requests: made, retried, refused with 429."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


class BatchSender:
    """Sends one batch with pacing and retries; turns a lost batch into `failed` outcomes.

    `token_source` names where the token came from (`$BATCHER_TOKEN`) for the 401 message.
    `sleep` is the retry policy's: the run passes one that a stop interrupts (tests pass a fake
    one and never wait).
    """

    def __init__(
        self,
        client: BulkTagsClient,
        pacer: Pacer,
        retry: RetrySettings,
        counters: Counters,
        *,
        token_source: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._counters = counters
        self._token_source = token_source
        self._policy = RetryPolicy(retry, sleep=sleep, on_retry=self._count_retry)

    def _count_retry(self, error: ApiError, wait_s: float) -> None:
        self._counters.retries += 1

    async def _attempt(self, batch: Batch) -> Answer:
        async with self._pacer.slot(batch.location_id):
            self._counters.requests += 1
            try:
                answer = await self._client.send(batch)
            except (RateLimitedError, DailyQuotaError):
                self._counters.rate_limited += 1
                raise
        self._pacer.observe(batch.location_id, answer.rate)
        return answer

    async def __call__(self, batch: Batch) -> BatchOutcome | None:
        try:
            answer, attempts = await self._policy.call(lambda: self._attempt(batch))
        except Interrupted:
            return None  # stopped while waiting: the rows stay pending for the next run
        except FatalApiError as exc:
            raise self._explained(exc, batch) from None
        except ApiError as exc:
            # Rejected (400/413/422) or retries exhausted: no per-contact answer for these rows.
            lost = ContactOutcome(Status.FAILED, failure_message(exc))
            return BatchOutcome(batch, (lost,) * len(batch.rows), exc.status, exc.attempts)
        return BatchOutcome(batch, answer.outcomes, answer.http_status, attempts)

    def _explained(self, exc: FatalApiError, batch: Batch) -> FatalApiError:
        """The run-ending error, with what to do about it (SPEC "Exit status": 3)."""
        if isinstance(exc, AuthError):
            text = (
                f"the API refused the token from {self._token_source} ({exc.message}); put a "
                "valid token with the contacts.write scope there, then run the same command "
                "again to resume"
            )
        elif isinstance(exc, ForbiddenError):
            text = (
                f"the token has no access to location {batch.location_id} ({exc.message}); check "
                "the location id (--location-id, the location_id column or api.location_id) or "
                "use a token of that sub-account, then run the same command again to resume"
            )
        elif isinstance(exc, DailyQuotaError):
            text = (
                f"the daily request quota of location {batch.location_id} is spent "
                f"({exc.message}); it {_resets(exc.retry_after_s)}: run the same command again "
                "then to resume"
            )
        else:
            text = f"{exc.message}; run the same command again to resume"
        explained = type(exc)(
            text, status=exc.status, retry_after_s=exc.retry_after_s, rate=exc.rate
        )
        explained.attempts = exc.attempts
        return explained


def _resets(retry_after_s: float | None, now: datetime | None = None) -> str:
    """When a spent daily quota comes back: the server's Retry-After if it gave one, else the
    next midnight UTC (the sandbox's day; HighLevel does not document its own)."""
    moment = now or datetime.now(UTC)
    if retry_after_s is not None:
        at = moment + timedelta(seconds=retry_after_s)
    else:
        at = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    left = max(int((at - moment).total_seconds()), 0)
    return f"comes back at {at:%Y-%m-%d %H:%M} UTC (in {left // 3600} h {left % 3600 // 60} min)"


def failure_message(exc: ApiError) -> str:
    """Why a batch's rows are `failed`, and whether sending them again can help."""
    tries = "1 attempt" if exc.attempts == 1 else f"{exc.attempts} attempts"
    if isinstance(exc, RejectedError):
        return (
            f"the API refused the request: {exc.message} (after {tries}); sending it again "
            "will not help: fix the row (its id, tags or location) in the input"
        )
    return f"{exc.message} (after {tries}); running the same command again retries it"


def is_permanent(message: str) -> bool:
    """Whether a `failed` row's message says that retrying cannot help (see failure_message)."""
    return message.startswith("the API refused the request:")


class FailureBreaker:
    """Stops the run after `limit` batches in a row were lost (no usable answer at all).

    A large file against a broken service should not burn through every row: after `limit`
    lost batches in a row the run stops (exit 3) and the rest stay `pending`.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_a_row = 0

    def observe(self, outcome: BatchOutcome) -> None:
        lost = outcome.http_status != 201 and all(
            o.status is Status.FAILED for o in outcome.outcomes
        )
        self._in_a_row = self._in_a_row + 1 if lost else 0
        if self._in_a_row >= self._limit:
            raise TooManyFailuresError(
                f"{self._limit} requests in a row failed (last: {outcome.outcomes[0].message})"
            )
