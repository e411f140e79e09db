"""One batch through pacing and retrying, and what its answer (or its loss) means for the run.

`BatchSender` sends a batch with pacing and retries and returns its `BatchOutcome`: the API's
per-contact answers, or `failed` outcomes for every row when no usable answer came. It returns
None when the run was stopped before an answer came: those rows stay `pending` and the next run
sends them. Whether any attempt of the request may have reached the API without an answer
(`ApiError.exposed`) is kept: in the outcome, or, for a request that ends without one, handed
to `on_exposed` so that the ledger records it all the same. A 401/403 that concerns one
location's credential stops only that location (its rows stay pending, `refused` says why and
what to fix), as the daily quota does; a credential every location shares that is refused ends
the whole run, raised with a message that says what to fix. A location token obtained through
the agency is obtained again once after a 401 (`tokens.py`).
The breakers that stop a run going wrong are in `breakers.py`.

HTTP statuses are read here only through the typed errors of `batcher.domain.errors` (the client
turned them into those); nothing here imports aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass

from batcher.domain.config import RetrySettings
from batcher.domain.credentials import Credential
from batcher.domain.errors import (
    RESUME,
    ApiError,
    AuthError,
    DailyQuotaError,
    ExchangeError,
    FatalApiError,
    ForbiddenError,
    Interrupted,
    ProxyAuthError,
    RateLimitedError,
    RejectedError,
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
from batcher.sending.tokens import Tokens

__all__ = [
    "BatchSender",
    "Counters",
    "PacedRequests",
    "Wire",
    "failure_message",
    "failure_reason",
    "heard",
    "location_token",
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
    """Whether an attempt of one request may have reached the API without an answer, and the
    token its last attempt went with (None: the client's default)."""

    exposed: bool = False
    token: str | None = None


class PacedRequests:
    """What a tag request (`BatchSender`) and a search (`searcher.Searcher`) go through: the
    client, the pacer that keeps each location within its budget, the retry policy (`sleep`
    is its wait; each retry counted in `counters`), and each location's token from `tokens`
    (None: the client's own)."""

    def __init__(
        self,
        *,
        client: BulkTagsClient,
        tokens: Tokens | None,
        pacer: Pacer,
        counters: Counters,
        retry: RetrySettings,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.pacer = pacer
        self.counters = counters
        self.policy = RetryPolicy(retry, sleep=sleep, on_retry=self._count_retry)

    def _count_retry(self, error: ApiError, wait_s: float) -> None:
        self.counters.retries += 1


class BatchSender(PacedRequests):
    """Sends one batch with pacing and retries; turns a lost batch into `failed` outcomes.

    The batch's first attempt uses the pacing slot the scheduler took for it; a retry waits for
    a slot of its own. A 429 pauses the batch's location for every worker; the daily quota
    (429 with X-RateLimit-Daily-Remaining: 0) stops only that location: its rows stay pending.
    `token_source` names where the token came from (`$BATCHER_TOKEN`) for the 401 message.
    With `tokens` (each location's token) and `credential` (each location's Credential), a
    refused credential that `shared` is False for pauses only its location (`refused`).
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
        tokens: Tokens | None = None,
        credential: Callable[[str], Credential] | None = None,
        shared: bool = True,
    ) -> None:
        super().__init__(
            client=client, tokens=tokens, pacer=pacer, counters=counters, retry=retry, sleep=sleep
        )
        self._credential = credential
        self._shared = shared
        # Locations paused because their credential was refused: the credential's name, and
        # the pending rows' message.
        self.refused: dict[str, tuple[str, str]] = {}
        self._on_exposed = on_exposed
        self._wire = wire
        self._events = events
        self._token_source = token_source

    async def _attempt(
        self, batch: Batch, slot: Slot, lost: _Lost, *, renew: str | None = None
    ) -> Answer:
        location = batch.location_id
        try:
            if self.tokens is not None:
                if (why := self.pacer.exhausted(location)) is not None:
                    raise Interrupted(why)
                lost.token = await location_token(
                    self.tokens, self.client, self.pacer, location, renew
                )
            while True:
                async with self._wire.turn() if self._wire is not None else nullcontext():
                    # The slot may have waited for its turn: what answers said meanwhile holds.
                    if (why := self.pacer.exhausted(location)) is not None:
                        raise Interrupted(why)
                    if not self.pacer.paused(location):
                        slot.sent()
                        self.counters.requests += 1
                        answer = await self._send(batch, lost)
                        break
                # A 429 paused the location meanwhile: wait it out, as a retry does.
                slot.finish()
                slot = await self.pacer.start(location)
        except Interrupted:
            slot.finish()
            raise
        except ApiError as exc:
            slot.finish()
            heard(self.pacer, self.counters, location, exc, slot.started)
            raise
        slot.finish()
        self.pacer.observe(location, answer.rate, since=slot.started)
        return answer

    async def _send(self, batch: Batch, lost: _Lost) -> Answer:
        """One attempt on the wire, noting in `lost` whether it may have reached the API."""
        try:
            if lost.token is None:  # the client's own token
                return await self.client.send(batch)
            return await self.client.send(batch, lost.token)
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
        renewed: list[bool] = []

        async def attempt() -> Answer:
            slot = first.pop() if first else await self.pacer.start(batch.location_id)
            try:
                return await self._attempt(batch, slot, lost)
            except AuthError:
                # An obtained location token may have expired or been revoked: a new one, once.
                tokens = self.tokens
                if renewed or tokens is None or not tokens.exchanged(batch.location_id):
                    raise
                renewed.append(True)
                slot = await self.pacer.start(batch.location_id)
                return await self._attempt(batch, slot, lost, renew=lost.token)

        try:
            answer, attempts = await self.policy.call(attempt)
        except Interrupted:
            return None  # stopped while waiting: the rows stay pending for the next run
        except DailyQuotaError as exc:
            self.pacer.exhaust(
                batch.location_id,
                "the API answered 429 with X-RateLimit-Daily-Remaining: 0; "
                + comes_back(exc.retry_after_s),
            )
            return None  # the location is done for today: its rows stay pending
        except FatalApiError as exc:
            if self._pause(exc, batch.location_id):
                return None  # the location's credential is refused: its rows stay pending
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

    def _pause(self, exc: FatalApiError, location: str) -> bool:
        """Pause `location` if `exc` refuses a credential of its own (not one every location
        shares: that one stops the run); True if it did."""
        if self._credential is None:
            return False
        # The agency's exchange refusing one location (not the agency token itself: a 401)
        # concerns that location even when every location goes through the agency.
        of_location = isinstance(exc, ExchangeError) and not exc.agency_refused
        if self._shared and not of_location:
            return False
        if not isinstance(exc, AuthError | ForbiddenError | ExchangeError):
            return False
        credential = self._credential(location)
        reason = f"the API refused {credential.label} for location {location} ({exc.message})"
        self.pacer.refuse(location, reason)
        self.refused.setdefault(
            location,
            (credential.label, f"not sent: {reason}; {credential.fix(location)}, then {RESUME}"),
        )
        return True

    def _explained(self, exc: FatalApiError, batch: Batch) -> FatalApiError:
        """The run-ending error, with what to do about it (SPEC "Exit status": 3)."""
        if isinstance(exc, ProxyAuthError):
            return exc  # about the proxy, not the token or the location: it says so itself
        if isinstance(exc, ExchangeError) and self._credential is not None:
            credential = self._credential(batch.location_id)
            text = f"{credential.label} failed for location {batch.location_id} ({exc.message})"
            advice = f"{credential.fix(batch.location_id)}, then {RESUME}"
        elif isinstance(exc, AuthError):
            source = self._token_source
            if self._credential is not None:
                source = self._credential(batch.location_id).label
            text = f"the API refused the token from {source} ({exc.message})"
            advice = "put a valid token with the contacts.write scope there, then " + RESUME
        elif isinstance(exc, ForbiddenError):
            text = f"the token has no access to location {batch.location_id} ({exc.message})"
            advice = (
                "check the location id (--location-id, the location_id column or "
                "api.location_id) or use a token of that sub-account, then " + RESUME
            )
        else:
            text, advice = exc.message, RESUME
        return exc.reworded(text, advice=advice)


async def location_token(
    tokens: Tokens, client: BulkTagsClient, pacer: Pacer, location: str, renew: str | None
) -> str:
    """The token of `location`'s next request, a tag request or a search (a new one after
    `renew` was refused); the exchange's refusal of a location is an ExchangeError (transient
    trouble is retried like a request)."""
    try:
        if renew is not None:
            return await tokens.renew(location, renew, client, pacer)
        return await tokens.token(location, client, pacer)
    except (FatalApiError, RejectedError) as exc:
        error = ExchangeError(
            f"the location-token exchange answered {exc.message}", status=exc.status
        )
        error.attempts = exc.attempts
        error.agency_refused = isinstance(exc, AuthError)
        raise error from None


def heard(pacer: Pacer, counters: Counters, location_id: str, exc: ApiError, since: float) -> None:
    """What an attempt's error answer tells the location's budget: its headers, and a 429's
    pause for every worker, not only this one (SPEC "Pacing and retries")."""
    if isinstance(exc, RateLimitedError | DailyQuotaError):
        counters.rate_limited += 1
    if exc.rate != RateLimitInfo() and not isinstance(exc, DailyQuotaError):
        # (the daily quota is told by the caller, with when it comes back)
        pacer.observe(location_id, exc.rate, since=since)
    if isinstance(exc, RateLimitedError):
        interval = exc.rate.interval_ms / 1000 if exc.rate.interval_ms else None
        pacer.pause(location_id, exc.retry_after_s or interval or pacer.interval_s(location_id))


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
