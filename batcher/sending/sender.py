"""One batch through pacing and retrying, and what its answer (or its loss) means for the run.

`BatchSender` sends a batch with pacing and retries and returns its `BatchOutcome`: the API's
per-contact answers, or `failed` outcomes for every row when no usable answer came. It returns
None when the run was stopped before an answer came: those rows stay `pending` and the next run
sends them. Whether any attempt of the request may have reached the API without an answer
(`ApiError.exposed`) is kept: in the outcome, or, for a request that ends without one, handed
to `on_exposed` so that the ledger records it all the same. Errors that end the whole run (401,
403) are raised with a message that says what to fix; the daily quota stops only its location.
The breakers that stop a run going wrong are in `breakers.py`.

HTTP statuses are read here only through the typed errors of `batcher.domain.errors` (the client
turned them into those); nothing here imports aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass

from batcher.domain.config import RetrySettings
from batcher.domain.errors import (
    RESUME,
    ApiError,
    AuthError,
    DailyQuotaError,
    FatalApiError,
    ForbiddenError,
    Interrupted,
    QuotaReachedError,
    RateLimitedError,
    WindowEndError,
)
from batcher.domain.events import Event, EventSink, ignore
from batcher.domain.models import (
    Batch,
    BatchOutcome,
    ContactOutcome,
    RateLimitInfo,
    Status,
)
from batcher.sending.client import Answer, BulkTagsClient
from batcher.sending.lanes import Dispatch
from batcher.sending.pacing import Pacer, Slot, comes_back
from batcher.sending.retrying import RetryPolicy

__all__ = [
    "BatchSender",
    "Counters",
    "Wire",
    "failure_message",
    "failure_reason",
    "quota_message",
    "quota_reached",
    "window_message",
    "window_reached",
]


@dataclass
class Counters:
    """What the summary tells about the requests: made, retried, refused with 429."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


class Wire:
    """At most `permits` requests out at once, and none once the run stops.

    The run has twice as many workers as permits: a worker holds its batch (and its pacing slot,
    which counts from when it was taken, so the wait only makes pacing safer) until a request
    has been answered and read, then sends at once, while the other worker records that answer:
    the API does not wait for batcher between two requests. Once the run stops (`stop` set, or
    `close()` after an error ends it), a batch still waiting here is not sent: Interrupted, and
    its rows stay pending, as for a batch that never left the scheduler.
    """

    def __init__(self, permits: int, stop: asyncio.Event) -> None:
        self._permits = asyncio.Semaphore(permits)
        self._stop = stop
        self._closed = False

    def close(self) -> None:
        self._closed = True

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Held while one request is out."""
        await self._permits.acquire()
        try:
            if self._closed or self._stop.is_set():
                raise Interrupted("stopped before the request went out")
            yield
        finally:
            self._permits.release()


@dataclass
class _Lost:
    """Whether an attempt of one request may have reached the API without an answer."""

    exposed: bool = False


class BatchSender:
    """Sends one batch with pacing and retries; turns a lost batch into `failed` outcomes.

    The batch's first attempt uses the pacing slot the scheduler took for it; a retry waits for
    a slot of its own. A 429 pauses the batch's location for every worker; the daily quota
    (429 with X-RateLimit-Daily-Remaining: 0) stops only that location: its rows stay pending.
    `token_source` names where the token came from (`$BATCHER_TOKEN`) for the 401 message.
    `sleep` is the retry policy's: the run passes one that a stop interrupts (tests pass a fake
    one and never wait). `on_exposed` hears of a request that ends without an outcome (a stop,
    the daily quota, a 401/403) after an attempt that may have reached the API.
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
        events: EventSink = ignore,
        wire: Wire | None = None,
        on_exposed: Callable[[Batch], None] | None = None,
    ) -> None:
        self._client = client
        self._on_exposed = on_exposed
        self._wire = wire
        self._events = events
        self._pacer = pacer
        self._counters = counters
        self._token_source = token_source
        self._policy = RetryPolicy(retry, sleep=sleep, on_retry=self._count_retry)

    def _count_retry(self, error: ApiError, wait_s: float) -> None:
        self._counters.retries += 1

    async def _attempt(self, batch: Batch, slot: Slot, lost: _Lost) -> Answer:
        location = batch.location_id
        try:
            while True:
                async with self._wire.turn() if self._wire is not None else nullcontext():
                    # The slot may have waited for its turn: what answers said meanwhile holds.
                    if (why := self._pacer.exhausted(location)) is not None:
                        raise Interrupted(why)
                    if not self._pacer.paused(location):
                        slot.sent()
                        self._counters.requests += 1
                        answer = await self._send(batch, lost)
                        break
                # A 429 paused the location meanwhile: wait it out, as a retry does.
                slot.finish()
                slot = await self._pacer.start(location)
        except Interrupted:
            slot.finish()
            raise
        except ApiError as exc:
            slot.finish()
            if isinstance(exc, RateLimitedError | DailyQuotaError):
                self._counters.rate_limited += 1
            if exc.rate != RateLimitInfo() and not isinstance(exc, DailyQuotaError):
                # (the daily quota is told below, with when it comes back)
                self._pacer.observe(location, exc.rate, since=slot.started)
            if isinstance(exc, RateLimitedError):
                # Every worker waits, not only this one (SPEC "Pacing and retries").
                interval = exc.rate.interval_ms / 1000 if exc.rate.interval_ms else None
                self._pacer.pause(
                    location, exc.retry_after_s or interval or self._pacer.interval_s(location)
                )
            raise
        slot.finish()
        self._pacer.observe(location, answer.rate, since=slot.started)
        return answer

    async def _send(self, batch: Batch, lost: _Lost) -> Answer:
        """One attempt on the wire, noting in `lost` whether it may have reached the API."""
        try:
            return await self._client.send(batch)
        except ApiError as exc:
            lost.exposed = lost.exposed or exc.exposed
            raise
        except BaseException:
            lost.exposed = True  # cancelled with the request out: it may have been applied
            raise

    async def __call__(self, dispatch: Dispatch) -> BatchOutcome | None:
        batch = dispatch.batch
        lost = _Lost()
        outcome = None
        try:
            outcome = await self._settle(dispatch, lost)
        finally:
            if lost.exposed and outcome is None and self._on_exposed is not None:
                # No outcome to carry it (its rows stay pending): recorded all the same, so
                # that the answer of the next run's attempt is not taken as the whole story.
                self._on_exposed(batch)
        return outcome

    async def _settle(self, dispatch: Dispatch, lost: _Lost) -> BatchOutcome | None:
        batch = dispatch.batch
        first: list[Slot] = [dispatch.slot]

        async def attempt() -> Answer:
            slot = first.pop() if first else await self._pacer.start(batch.location_id)
            return await self._attempt(batch, slot, lost)

        try:
            answer, attempts = await self._policy.call(attempt)
        except Interrupted:
            return None  # stopped while waiting: the rows stay pending for the next run
        except DailyQuotaError as exc:
            self._pacer.exhaust(
                batch.location_id,
                "the API answered 429 with X-RateLimit-Daily-Remaining: 0; it "
                + comes_back(exc.retry_after_s),
            )
            return None  # the location is done for today: its rows stay pending
        except FatalApiError as exc:
            raise self._explained(exc, batch) from None
        except ApiError as exc:
            # Rejected (400/413/422) or retries exhausted: no per-contact answer for these rows.
            failed = ContactOutcome(Status.FAILED, failure_message(exc))
            self._events(
                Event(
                    "request.failed",
                    f"a request of {len(batch.rows)} contacts to location {batch.location_id} "
                    f"failed: {failed.message}",
                    {
                        "location_id": batch.location_id,
                        "contacts": len(batch.rows),
                        "first_row": batch.rows[0] if batch.rows else None,
                        "http_status": exc.status,
                        "attempts": exc.attempts,
                        "reason": exc.message,
                    },
                    level="warning",
                    text=False,
                )
            )
            return BatchOutcome(
                batch,
                (failed,) * len(batch.rows),
                exc.status,
                exc.attempts,
                answered=False,
                exposed=lost.exposed,
                reason=failure_reason(exc),
                permanent=exc.permanent,
            )
        finally:
            for unused in first:  # a stop before the first attempt: give the slot back
                unused.finish()
        return BatchOutcome(
            batch, answer.outcomes, answer.http_status, attempts, exposed=lost.exposed
        )

    def _explained(self, exc: FatalApiError, batch: Batch) -> FatalApiError:
        """The run-ending error, with what to do about it (SPEC "Exit status": 3)."""
        if isinstance(exc, AuthError):
            text = f"the API refused the token from {self._token_source} ({exc.message})"
            advice = "put a valid token with the contacts.write scope there, then " + RESUME
        elif isinstance(exc, ForbiddenError):
            text = f"the token has no access to location {batch.location_id} ({exc.message})"
            advice = (
                "check the location id (--location-id, the location_id column or "
                "api.location_id) or use a token of that sub-account, then " + RESUME
            )
        else:
            text, advice = exc.message, RESUME
        explained = type(exc)(
            text,
            status=exc.status,
            retry_after_s=exc.retry_after_s,
            rate=exc.rate,
            advice=advice,
        )
        explained.attempts = exc.attempts
        return explained


def quota_reached(stopped: Mapping[str, str]) -> QuotaReachedError:
    """The run's stop when some locations' daily quota is reached (the others finished)."""
    names = ", ".join(f"{location} ({reason})" for location, reason in sorted(stopped.items()))
    count = len(stopped)
    return QuotaReachedError(
        f"the daily request quota of {count} location{'s' if count != 1 else ''} is reached: "
        f"{names}",
        advice="their rows stay pending: run the same command again when it resets",
    )


def window_reached(stopped: Mapping[str, str]) -> WindowEndError:
    """The run's stop when the send window stops some locations (`--until-window-end`)."""
    reasons = sorted(set(stopped.values()))
    count = len(stopped)
    return WindowEndError(
        f"stopped by --until-window-end ({count} location{'s' if count != 1 else ''}): "
        + "; ".join(reasons),
        advice="their rows stay pending: run the same command again then",
    )


def window_message(reason: str) -> str:
    """The message of a row left pending by `--until-window-end`."""
    return f"not sent: {reason}; run the same command again then"


def quota_message(reason: str) -> str:
    """The message of a row left pending because its location's daily quota is reached."""
    return (
        f"not sent: the location's daily request quota is reached ({reason}); run the same "
        "command again when it resets"
    )


def failure_reason(exc: ApiError) -> str:
    """Why a batch got no usable answer, and after how many attempts (no advice)."""
    tries = "1 attempt" if exc.attempts == 1 else f"{exc.attempts} attempts"
    refused = "the API refused the request: " if exc.permanent else ""
    return f"{refused}{exc.message} (after {tries})"


def failure_message(exc: ApiError) -> str:
    """Why a batch's rows are `failed`, and whether sending them again can help."""
    if exc.permanent:
        return (
            f"{failure_reason(exc)}; sending it again will not help: fix the row (its id, tags "
            "or location) in the input"
        )
    return f"{failure_reason(exc)}; running the same command again retries it"
