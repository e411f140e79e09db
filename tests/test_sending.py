"""One batch on the wire with pacing and retries (aioresponses): what is retried, how long it
waits, what stops the run, and what a lost batch becomes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aioresponses import aioresponses

from batcher.client import BulkTagsClient
from batcher.config import RetrySettings
from batcher.errors import AuthError, DailyQuotaError
from batcher.models import Action, Batch, Status
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
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def client() -> AsyncIterator[BulkTagsClient]:
    async with BulkTagsClient(base_url=BASE, token="t0ken") as bulk:
        yield bulk


def sender(client: BulkTagsClient, sleeps: Sleeps, result: Counters) -> BatchSender:
    return BatchSender(
        client, Pacer(100, 10.0), RETRY, result, token_source="$BATCHER_TOKEN", sleep=sleeps
    )


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


async def test_an_exhausted_daily_quota_stops_the_run(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(URL, status=429, headers={"X-RateLimit-Daily-Remaining": "0"}, payload={})
    with pytest.raises(DailyQuotaError):
        await sender(client, Sleeps(), Counters())(BATCH)


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
