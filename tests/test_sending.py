"""One batch on the wire with pacing and retries (aioresponses): what is retried, how long it
waits, what stops the run, and what a lost batch becomes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aioresponses import aioresponses

from batcher.domain.config import RetrySettings
from batcher.domain.errors import AuthError, Interrupted
from batcher.domain.models import Action, Batch, BatchOutcome, Status
from batcher.sending.client import BulkTagsClient
from batcher.sending.lanes import Dispatch
from batcher.sending.pacing import Pacer
from batcher.sending.sender import BatchSender, Counters, Wire

BASE = "https://api.example.test"
URL = f"{BASE}/contacts/bulk/tags/update/add"
IDS = ("qFSqySFkVvNzOSqgGqFi", "3ualbhnV7j3n3a9r2moD")
BATCH = Batch("asdrwHvLUxlfw5SqKVCN", Action.ADD, ("vip",), False, 0, (1, 2), IDS)
RETRY = RetrySettings(attempts=4, initial_backoff_s=1.0, max_backoff_s=8.0)


def created() -> dict[str, object]:
    entries = [
        {"contactId": c, "message": "Tags updated", "type": "success", "oldTags": [],
         "tagsAdded": ["vip"], "tagsRemoved": []}
        for c in IDS
    ]  # fmt: skip
    return {"succeded": True, "errorCount": 0, "responses": entries}


class Sleeps:
    """A fake sleep on a fake clock: records each wait and moves the clock on."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 0.0
        self.on_sleep: list[Callable[[], None]] = []

    async def __call__(self, seconds: float) -> None:
        for hook in self.on_sleep:
            hook()
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
async def client() -> AsyncIterator[BulkTagsClient]:
    async with BulkTagsClient(base_url=BASE, token="t0ken") as bulk:
        yield bulk


class Sending:
    """A BatchSender with its own pacer; called with a batch as the scheduler would hand it.

    The pacer runs on the fake clock of `sleeps`, so its waits are recorded, never waited.
    """

    def __init__(self, client: BulkTagsClient, sleeps: Sleeps, counters: Counters) -> None:
        self.pacer = Pacer(100, 10.0, clock=lambda: sleeps.now, sleep=sleeps)
        self.exposed: list[Batch] = []
        self.sender = BatchSender(
            client,
            self.pacer,
            RETRY,
            counters,
            token_source="$BATCHER_TOKEN",
            sleep=sleeps,
            on_exposed=self.exposed.append,
        )

    async def __call__(self, batch: Batch) -> BatchOutcome | None:
        slot = self.pacer.try_start(batch.location_id)
        assert slot is not None
        return await self.sender(Dispatch(batch, slot))


def sender(client: BulkTagsClient, sleeps: Sleeps, result: Counters) -> Sending:
    return Sending(client, sleeps, result)


async def test_5xx_then_201_is_one_success_after_three_attempts(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(URL, status=503, payload={"statusCode": 503, "message": "Service Unavailable"})
    mocked.post(URL, status=502, body="bad gateway")
    mocked.post(URL, status=201, payload=created())
    sleeps, result = Sleeps(), Counters()

    outcome = await sender(client, sleeps, result)(BATCH)

    assert [o.status for o in outcome.outcomes] == [Status.SUCCESS, Status.SUCCESS]
    assert (outcome.http_status, outcome.attempts) == (201, 3)
    assert len(sleeps.waits) == 2
    assert (result.requests, result.retries) == (3, 2)


async def test_retry_after_is_honoured_and_the_429_counted(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(URL, status=429, headers={"Retry-After": "7"}, payload={"message": "Too Many"})
    mocked.post(URL, status=201, payload=created())
    sleeps, result = Sleeps(), Counters()

    outcome = await sender(client, sleeps, result)(BATCH)

    assert outcome.attempts == 2
    assert sleeps.waits == [7.0]
    assert result.rate_limited == 1


async def test_a_401_stops_at_once_without_a_retry(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(
        URL,
        status=401,
        payload={"statusCode": 401, "message": "Invalid token: access token is invalid"},
    )
    sleeps, result = Sleeps(), Counters()

    with pytest.raises(AuthError) as caught:
        await sender(client, sleeps, result)(BATCH)

    assert caught.value.exit_code == 3
    assert sleeps.waits == []
    assert "t0ken" not in str(caught.value)


async def test_a_daily_quota_s_retry_after_is_quoted_as_the_api_gave_it(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """A daily 429 with Retry-After: the reason says what that header says, nothing more."""
    headers = {"X-RateLimit-Daily-Remaining": "0", "Retry-After": "5400"}
    mocked.post(URL, status=429, headers=headers, payload={})
    sending = sender(client, Sleeps(), Counters())
    assert await sending(BATCH) is None
    assert sending.pacer.exhausted(BATCH.location_id) == (
        "the API answered 429 with X-RateLimit-Daily-Remaining: 0; the answer's Retry-After "
        "says it comes back in 1 h 30 min"
    )


async def test_an_exhausted_daily_quota_stops_only_its_location(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """429 with X-RateLimit-Daily-Remaining: 0: no retry, the rows stay pending (no outcome),
    and the location gets nothing more; the run itself goes on."""
    mocked.post(URL, status=429, headers={"X-RateLimit-Daily-Remaining": "0"}, payload={})
    sending = sender(client, Sleeps(), Counters())
    assert await sending(BATCH) is None
    reason = sending.pacer.exhausted(BATCH.location_id)
    assert reason is not None
    assert reason == (
        "the API answered 429 with X-RateLimit-Daily-Remaining: 0; the API does not say when "
        "it resets"
    )
    assert sending.pacer.exhausted("another0location0001") is None


async def test_a_429_pauses_its_location_for_every_worker(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """The Retry-After of a burst 429 holds back every request of the location, not only the
    retry of the batch that got it."""
    mocked.post(URL, status=429, headers={"Retry-After": "7"}, payload={})
    mocked.post(URL, status=201, payload=created())
    sleeps = Sleeps()
    sending = sender(client, sleeps, Counters())
    seen: list[tuple[bool, bool]] = []
    sleeps.on_sleep.append(
        lambda: seen.append(
            (
                sending.pacer.try_start(BATCH.location_id) is None,
                sending.pacer.try_start("another0location0001") is not None,
            )
        )
    )
    outcome = await sending(BATCH)
    assert outcome is not None
    assert outcome.attempts == 2
    assert seen[0] == (True, True)  # paused for everyone of that location, no one else
    assert sleeps.now == 7.0  # the retry's wait and the pause are the same 7 s, not 14


async def test_a_422_is_not_retried_and_its_rows_say_a_retry_cannot_help(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    message = ["removeAllTags must be a boolean value"]
    mocked.post(URL, status=422, payload={"statusCode": 422, "message": message})
    sleeps = Sleeps()

    outcome = await sender(client, sleeps, Counters())(BATCH)

    assert {o.status for o in outcome.outcomes} == {Status.FAILED}
    assert outcome.outcomes[0].message == (
        "the API refused the request: HTTP 422: removeAllTags must be a boolean value "
        "(after 1 attempt); sending it again will not help: fix the row (its id, tags or "
        "location) in the input"
    )
    assert (outcome.http_status, outcome.attempts) == (422, 1)
    assert sleeps.waits == []


async def test_retries_exhausted_fail_the_batch_with_the_last_status(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    for _ in range(RETRY.attempts):
        mocked.post(URL, status=500, payload={"statusCode": 500, "message": "Internal"})
    sleeps = Sleeps()

    outcome = await sender(client, sleeps, Counters())(BATCH)

    assert {o.status for o in outcome.outcomes} == {Status.FAILED}
    assert outcome.outcomes[0].message == (
        "HTTP 500: Internal (after 4 attempts); running the same command again retries it"
    )
    assert (outcome.http_status, outcome.attempts) == (500, 4)
    assert len(sleeps.waits) == 3


async def test_the_request_on_the_wire_is_exactly_the_documented_one(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(URL, status=201, payload=created())
    await sender(client, Sleeps(), Counters())(BATCH)
    ((method, url), calls) = next(iter(mocked.requests.items()))
    assert (method, str(url)) == ("POST", URL)
    call = calls[0]
    assert call.kwargs["headers"]["Authorization"] == "Bearer t0ken"
    assert call.kwargs["headers"]["Version"] == "2021-07-28"
    assert json.loads(call.kwargs["data"]) == {
        "contacts": list(IDS),
        "tags": ["vip"],
        "locationId": "asdrwHvLUxlfw5SqKVCN",
    }


class Waiting:
    """A batch handed to its sender while the only turn on the wire is held elsewhere."""

    def __init__(self, client: BulkTagsClient, sleeps: Sleeps, counters: Counters) -> None:
        self.stop = asyncio.Event()
        self.wire = Wire(1, self.stop)
        self.pacer = Pacer(100, 10.0, clock=lambda: sleeps.now, sleep=sleeps, stop=self.stop)
        self.sender = BatchSender(
            client,
            self.pacer,
            RETRY,
            counters,
            token_source="$BATCHER_TOKEN",
            sleep=sleeps,
            wire=self.wire,
        )

    async def send_after(self, meanwhile: Callable[[], None]) -> BatchOutcome | None:
        """Send BATCH (its slot taken now) while another request holds the wire; `meanwhile`
        happens before that request's turn ends."""
        slot = self.pacer.try_start(BATCH.location_id)
        assert slot is not None
        async with self.wire.turn():
            sending = asyncio.ensure_future(self.sender(Dispatch(BATCH, slot)))
            for _ in range(3):
                await asyncio.sleep(0)
            assert not sending.done()  # waiting for its turn
            meanwhile()
        return await sending


@pytest.mark.parametrize("how", ["stop", "close"])
async def test_a_batch_waiting_for_the_wire_is_not_sent_once_the_run_ends(
    mocked: aioresponses, client: BulkTagsClient, how: str
) -> None:
    """A stop (a signal) or an error that ends the run (`Wire.close`: a breaker, the ledger)
    while a batch waits for its turn: it is not sent, its rows stay pending (no outcome), and
    its pacing slot is given back."""
    mocked.post(URL, status=201, payload=created())
    counters = Counters()
    waiting = Waiting(client, Sleeps(), counters)

    outcome = await waiting.send_after(waiting.stop.set if how == "stop" else waiting.wire.close)

    assert outcome is None
    assert counters.requests == 0
    assert not mocked.requests
    assert waiting.pacer._budget(BATCH.location_id).in_flight == []


async def test_a_batch_waiting_when_its_location_s_daily_quota_runs_out_is_not_sent(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(URL, status=201, payload=created())
    counters = Counters()
    waiting = Waiting(client, Sleeps(), counters)

    outcome = await waiting.send_after(
        lambda: waiting.pacer.exhaust(BATCH.location_id, "the daily quota is reached")
    )

    assert outcome is None
    assert counters.requests == 0
    assert not mocked.requests


async def test_a_batch_waiting_when_a_429_pauses_its_location_goes_after_the_pause(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """The pause another request's 429 set holds for a batch that took its slot before it:
    the batch waits it out with a slot of its own, then goes, once."""
    mocked.post(URL, status=201, payload=created())
    sleeps, counters = Sleeps(), Counters()
    waiting = Waiting(client, sleeps, counters)

    outcome = await waiting.send_after(lambda: waiting.pacer.pause(BATCH.location_id, 5.0))

    assert outcome is not None
    assert outcome.attempts == 1
    assert sleeps.waits == [5.0]
    assert counters.requests == 1
    assert waiting.pacer._budget(BATCH.location_id).in_flight == []


# --- attempts that may have reached the API without an answer -----------------------------------


async def test_a_lost_answer_before_a_success_is_kept_in_the_outcome(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """The retry's answer shows the change as already made: the outcome says an earlier attempt
    may have made it."""
    mocked.post(URL, exception=aiohttp.ServerDisconnectedError())
    mocked.post(URL, status=429, payload={})
    mocked.post(URL, status=201, payload=created())
    sending = sender(client, Sleeps(), Counters())

    outcome = await sending(BATCH)

    assert outcome is not None
    assert outcome.exposed is True
    assert outcome.attempts == 3
    assert sending.exposed == []  # carried by the outcome


async def test_refusals_and_a_connection_never_made_expose_nothing(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(URL, status=429, payload={})
    mocked.post(URL, exception=aiohttp.ConnectionTimeoutError("connect"))
    mocked.post(URL, status=201, payload=created())

    outcome = await sender(client, Sleeps(), Counters())(BATCH)

    assert outcome is not None
    assert outcome.exposed is False


async def test_a_request_failed_after_a_lost_answer_is_exposed_whatever_its_last_error(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(URL, status=504, payload={})
    for _ in range(RETRY.attempts - 1):
        mocked.post(URL, status=429, payload={})

    outcome = await sender(client, Sleeps(), Counters())(BATCH)

    assert outcome is not None
    assert not outcome.answered
    assert outcome.exposed is True


def interrupt() -> None:
    """A stop while waiting to retry (as `interruptible_sleep` raises it)."""
    raise Interrupted("stopped")


async def test_a_stop_after_a_lost_answer_hands_the_exposure_over(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """No outcome to carry it (the rows stay pending): `on_exposed` hears of the batch, so that
    the next run's answer for it is judged."""
    mocked.post(URL, exception=TimeoutError())
    sleeps = Sleeps()
    sleeps.on_sleep.append(interrupt)
    sending = sender(client, sleeps, Counters())

    assert await sending(BATCH) is None
    assert sending.exposed == [BATCH]


async def test_a_stop_before_any_attempt_reached_the_api_hands_nothing_over(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(URL, status=429, payload={})
    sleeps = Sleeps()
    sleeps.on_sleep.append(interrupt)
    sending = sender(client, sleeps, Counters())

    assert await sending(BATCH) is None
    assert sending.exposed == []
