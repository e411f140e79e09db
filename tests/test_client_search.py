"""Step 16: the client's search, on the wire: the documented body, exact matches only, paging,
typed errors and the token scrubbed, as for a tag request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

from batcher.domain.errors import AuthError, MalformedAnswerError, RateLimitedError, RejectedError
from batcher.sending.client import BulkTagsClient
from batcher.support.secrets import REDACTED

BASE = "https://services.leadconnectorhq.com"
SEARCH_URL = f"{BASE}/contacts/search"
TOKEN = "pit-7f3c2a9e-5b1d-4c8e-a6f0-SECRETSECRET"
LOCATION = "asdrwHvLUxlfw5SqKVCN"
ADA, BOB, CY = "qFSqySFkVvNzOSqgGqFi", "3ualbhnV7j3n3a9r2moD", "Zx9aB8cD7eF6gH5iJ4kL"


@pytest.fixture
async def client() -> AsyncIterator[BulkTagsClient]:
    async with BulkTagsClient(base_url=BASE, token=TOKEN) as opened:
        yield opened


def contact(contact_id: str, email: str | None) -> dict[str, Any]:
    return {"id": contact_id, "email": email, "phone": None, "searchAfter": [1, contact_id]}


def bodies(mocked: aioresponses) -> list[dict[str, Any]]:
    return [json.loads(call.kwargs["data"]) for call in mocked.requests[("POST", URL(SEARCH_URL))]]


async def test_a_search_is_one_or_group_of_email_eq_filters(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """The body carries locationId, pageLimit and one OR group of `eq` filters on email."""
    mocked.post(SEARCH_URL, status=200, payload={"contacts": [], "total": 0})
    page = await client.search(LOCATION, ["ada@x.org", "bob@x.org"], page_limit=500)
    assert page.matches == {}
    assert page.next_after is None
    assert bodies(mocked) == [
        {
            "locationId": LOCATION,
            "pageLimit": 500,
            "filters": [
                {
                    "group": "OR",
                    "filters": [
                        {"field": "email", "operator": "eq", "value": "ada@x.org"},
                        {"field": "email", "operator": "eq", "value": "bob@x.org"},
                    ],
                }
            ],
        }
    ]


async def test_only_exact_matches_count_ignoring_case(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """A contact counts only if its email is exactly an address asked for (case ignored):
    partial matches, other addresses and contacts without an email are dropped; duplicates
    are all kept."""
    mocked.post(
        SEARCH_URL,
        status=200,
        payload={
            "contacts": [
                contact(ADA, "Ada@X.org"),
                contact(BOB, "ada@x.org.evil"),
                contact(CY, None),
                contact(CY, "ADA@x.org"),
                {"email": "ada@x.org"},
                "junk",
            ],
            "total": 6,
        },
    )
    page = await client.search(LOCATION, ["ada@x.org", "bob@x.org"], page_limit=500)
    assert page.matches == {"ada@x.org": (ADA, CY)}


async def test_a_full_page_says_where_the_next_one_starts(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """A page as long as pageLimit gives its last contact's searchAfter to go on with."""
    mocked.post(
        SEARCH_URL,
        status=200,
        payload={"contacts": [contact(ADA, "a@x.org"), contact(BOB, "a@x.org")], "total": 3},
    )
    page = await client.search(LOCATION, ["a@x.org"], page_limit=2, search_after=[0, "z"])
    assert page.next_after == [1, BOB]
    assert bodies(mocked)[0]["searchAfter"] == [0, "z"]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status": 401, "payload": {"message": "Invalid token"}}, AuthError),
        ({"status": 422, "payload": {"message": ["pageLimit must be a number"]}}, RejectedError),
        ({"status": 429, "payload": {"message": "Too Many Requests"}}, RateLimitedError),
        ({"status": 200, "body": "<html>portal</html>"}, MalformedAnswerError),
        ({"status": 200, "payload": {"total": 1}}, MalformedAnswerError),
    ],
)
async def test_answers_other_than_a_page_are_typed_errors(
    mocked: aioresponses, client: BulkTagsClient, answer: dict[str, Any], error: type[Exception]
) -> None:
    """Every other answer leaves the client as one of batcher's errors, as for a tag request."""
    mocked.post(SEARCH_URL, **answer)
    with pytest.raises(error):
        await client.search(LOCATION, ["a@x.org"], page_limit=500)


async def test_the_token_is_scrubbed_from_ids_and_errors(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """An id or an error message echoing the token never carries it out of the client."""
    mocked.post(SEARCH_URL, status=200, payload={"contacts": [contact(TOKEN, "a@x.org")]})
    page = await client.search(LOCATION, ["a@x.org"], page_limit=500)
    assert page.matches == {"a@x.org": (REDACTED,)}
    mocked.post(SEARCH_URL, status=400, payload={"message": f"bad token {TOKEN}"})
    with pytest.raises(RejectedError) as caught:
        await client.search(LOCATION, ["a@x.org"], page_limit=500)
    assert TOKEN not in str(caught.value)


async def test_a_search_goes_with_the_token_given_and_json_headers(mocked: aioresponses) -> None:
    """`search(..., token=)` sends that location's token in Authorization (the client's own
    otherwise), with Version and Content-Type as a tag request; an error naming the token
    given is scrubbed, as the client's own is."""
    other = "pit-0a1b2c3d-4e5f-6789-abcd-LOCATIONTOKEN"
    mocked.post(SEARCH_URL, status=200, payload={"contacts": [], "total": 0})
    mocked.post(SEARCH_URL, status=200, payload={"contacts": [], "total": 0})
    mocked.post(SEARCH_URL, status=401, payload={"message": f"bad token {other}"})
    async with BulkTagsClient(base_url=BASE, token=TOKEN, tokens=[other]) as client:
        await client.search(LOCATION, ["ada@x.org"], page_limit=500, token=other)
        await client.search(LOCATION, ["ada@x.org"], page_limit=500)
        with pytest.raises(AuthError) as refused:
            await client.search(LOCATION, ["ada@x.org"], page_limit=500, token=other)
    calls = mocked.requests[("POST", URL(SEARCH_URL))]
    sent = [call.kwargs["headers"] for call in calls]
    assert [h["Authorization"] for h in sent] == [
        f"Bearer {other}",
        f"Bearer {TOKEN}",
        f"Bearer {other}",
    ]
    assert all(h["Version"] == "2021-07-28" for h in sent)
    assert all(h["Content-Type"] == "application/json" for h in sent)
    assert other not in str(refused.value)
    assert REDACTED in str(refused.value)
