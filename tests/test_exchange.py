"""The agency's location-token exchange on the wire (oauth.openapi.json), and a batch sent
with its own location's token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aioresponses import aioresponses
from yarl import URL

from batcher.domain.errors import AuthError, MalformedAnswerError, RejectedError
from batcher.domain.models import Action, Batch
from batcher.sending.client import BulkTagsClient
from batcher.support.secrets import REDACTED

BASE = "https://services.leadconnectorhq.com"
EXCHANGE_URL = f"{BASE}/oauth/locationToken"
ADD_URL = f"{BASE}/contacts/bulk/tags/update/add"
AGENCY = "agency-oauth-4d2f8e1a9c7b"
DEFAULT = "default-pit-0a1b2c3d4e5f"
OBTAINED = "location-token-9f8e7d6c5b4a"
LOCATION = "asdrwHvLUxlfw5SqKVCN"
CONTACT = "qFSqySFkVvNzOSqgGqFi"


@pytest.fixture
async def client() -> AsyncIterator[BulkTagsClient]:
    async with BulkTagsClient(base_url=BASE, token=DEFAULT, version="2023-02-21") as bulk:
        yield bulk


def calls(mocked: aioresponses, url: str) -> list[Any]:
    return mocked.requests[("POST", URL(url))]


async def test_the_exchange_is_the_documented_form_post(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """Form-encoded companyId and locationId, the agency token, Version 2021-07-28 whatever
    api.version says; the answer's access_token and expires_in come back."""
    payload = {"access_token": OBTAINED, "token_type": "Bearer", "expires_in": 86399}
    mocked.post(EXCHANGE_URL, status=200, payload=payload)
    obtained = await client.exchange(AGENCY, "company0000000000001", LOCATION)
    (call,) = calls(mocked, EXCHANGE_URL)
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {AGENCY}"
    assert headers["Version"] == "2021-07-28"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(call.kwargs["data"].decode()) == {
        "companyId": ["company0000000000001"],
        "locationId": [LOCATION],
    }
    assert (obtained.token, obtained.expires_in) == (OBTAINED, 86399.0)
    assert OBTAINED not in repr(obtained)


async def test_a_refused_agency_token_is_an_auth_error_without_the_token(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """A 401 (even one echoing the agency token) is an AuthError whose text holds no token."""
    body = {"statusCode": 401, "message": f"Invalid JWT {AGENCY}", "error": "Unauthorized"}
    mocked.post(EXCHANGE_URL, status=401, payload=body)
    with pytest.raises(AuthError) as caught:
        await client.exchange(AGENCY, "company0000000000001", LOCATION)
    assert AGENCY not in str(caught.value)
    assert REDACTED in str(caught.value)


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        (400, {"statusCode": 400, "message": "Location not found"}, RejectedError),
        (200, {"token_type": "Bearer"}, MalformedAnswerError),
    ],
)
async def test_a_location_refused_or_an_answer_without_token_is_an_error(
    mocked: aioresponses,
    client: BulkTagsClient,
    status: int,
    payload: dict[str, Any],
    error: type[Exception],
) -> None:
    """A 400 for the location, or a 200 with no access_token, never yields a token."""
    mocked.post(EXCHANGE_URL, status=status, payload=payload)
    with pytest.raises(error):
        await client.exchange(AGENCY, "company0000000000001", LOCATION)


async def test_a_batch_goes_with_the_token_given_and_an_obtained_token_is_scrubbed(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """`send(batch, token)` puts that token in Authorization; once obtained through the
    exchange, a token echoed in an error message is replaced."""
    payload = {"access_token": OBTAINED, "expires_in": 86399}
    mocked.post(EXCHANGE_URL, status=200, payload=payload)
    token = (await client.exchange(AGENCY, "company0000000000001", LOCATION)).token
    echo = {"statusCode": 400, "message": f"bad request from {OBTAINED.upper()}"}
    mocked.post(ADD_URL, status=400, payload=echo)
    batch = Batch(LOCATION, Action.ADD, ("vip",), False, 0, (1,), (CONTACT,))
    with pytest.raises(RejectedError) as caught:
        await client.send(batch, token)
    (call,) = calls(mocked, ADD_URL)
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {OBTAINED}"
    assert call.kwargs["headers"]["Version"] == "2023-02-21"
    assert OBTAINED.upper() not in str(caught.value)
