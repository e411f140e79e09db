"""One batch on the wire with pacing and retries (aioresponses): what is retried, how long it
waits, what stops the run, and what a lost batch becomes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest
from aioresponses import aioresponses

from batcher.client import BulkTagsClient
from batcher.config import RetrySettings
from batcher.errors import AuthError
from batcher.lanes import Dispatch
from batcher.models import Action, Batch, BatchOutcome, Status
from batcher.pacing import Pacer
from batcher.sending import BatchSender, Counters

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
        self.sender = BatchSender(
            client, self.pacer, RETRY, counters, token_source="$BATCHER_TOKEN", sleep=sleeps
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
    assert reason.startswith("the API answered 429 with X-RateLimit-Daily-Remaining: 0; it comes")
    assert "UTC (in " in reason
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
