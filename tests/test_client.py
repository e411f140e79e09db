"""The client makes exactly the documented request and turns every answer into ours."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import CallbackResult, aioresponses
from jsonschema import Draft7Validator
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from batcher.domain.errors import (
    ApiError,
    AuthError,
    DailyQuotaError,
    ForbiddenError,
    MalformedAnswerError,
    ProxyAuthError,
    RateLimitedError,
    RejectedError,
    ServerError,
    TransportError,
)
from batcher.domain.models import Action, Batch, ContactOutcome, RateLimitInfo, Status
from batcher.sending.client import (
    MAX_ANSWER_BYTES,
    NO_ENTRY_MESSAGE,
    BulkTagsClient,
    parse_rate_limit,
    parse_retry_after,
)
from batcher.support.secrets import REDACTED

BASE = "https://services.leadconnectorhq.com"
ADD_URL = f"{BASE}/contacts/bulk/tags/update/add"
REMOVE_URL = f"{BASE}/contacts/bulk/tags/update/remove"
TOKEN = "pit-7f3c2a9e-5b1d-4c8e-a6f0-SECRETSECRET"
LOCATION = "asdrwHvLUxlfw5SqKVCN"
IDS = ("qFSqySFkVvNzOSqgGqFi", "3ualbhnV7j3n3a9r2moD", "Zx9aB8cD7eF6gH5iJ4kL")


def make_batch(
    *,
    action: Action = Action.ADD,
    tags: tuple[str, ...] = ("vip", "Année-2024"),
    remove_all: bool = False,
    ids: tuple[str, ...] = IDS,
) -> Batch:
    return Batch(
        location_id=LOCATION,
        action=action,
        tags=tags,
        remove_all=remove_all,
        part=0,
        rows=tuple(range(1, len(ids) + 1)),
        contact_ids=ids,
    )


def success(contact_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "contactId": contact_id,
        "message": "Tags updated",
        "type": "success",
        "oldTags": ["old"],
        "tagsAdded": ["vip"],
        "tagsRemoved": [],
        **extra,
    }


def error(contact_id: str, message: str) -> dict[str, Any]:
    return {"contactId": contact_id, "message": message, "type": "error"}


def created(*entries: dict[str, Any], **summary: Any) -> dict[str, Any]:
    return {"succeded": True, "errorCount": 0, "responses": list(entries), **summary}


def sent(mocked: aioresponses, url: str = ADD_URL) -> list[Any]:
    return mocked.requests[("POST", URL(url))]


def sent_body(mocked: aioresponses, url: str = ADD_URL) -> dict[str, Any]:
    (call,) = sent(mocked, url)
    data = call.kwargs["data"]
    assert isinstance(data, bytes), "the body is serialised once and sent as bytes"
    body: dict[str, Any] = json.loads(data)
    return body


@pytest.fixture
async def client() -> AsyncIterator[BulkTagsClient]:
    async with BulkTagsClient(base_url=BASE + "/", token=TOKEN) as bulk:
        yield bulk


# --- the request -------------------------------------------------------------------------------


async def test_the_request_is_the_documented_post_with_every_header(
    mocked: aioresponses, client: BulkTagsClient, update_tags_schema: Draft7Validator
) -> None:
    mocked.post(ADD_URL, status=201, payload=created(*(success(i) for i in IDS)))

    await client.send(make_batch())

    (call,) = sent(mocked)
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Version"] == "2021-07-28"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert call.kwargs["allow_redirects"] is False
    body = sent_body(mocked)
    assert body == {"contacts": list(IDS), "tags": ["vip", "Année-2024"], "locationId": LOCATION}
    update_tags_schema.validate(body)


async def test_remove_all_sends_a_json_true_and_empty_tags(
    mocked: aioresponses, client: BulkTagsClient, update_tags_schema: Draft7Validator
) -> None:
    mocked.post(REMOVE_URL, status=201, payload=created(*(success(i) for i in IDS)))

    await client.send(make_batch(action=Action.REMOVE, tags=(), remove_all=True))

    body = sent_body(mocked, REMOVE_URL)
    assert body["removeAllTags"] is True
    assert body["tags"] == []
    update_tags_schema.validate(body)


async def test_a_plain_remove_carries_no_remove_all_flag(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(REMOVE_URL, status=201, payload=created(*(success(i) for i in IDS)))

    await client.send(make_batch(action=Action.REMOVE))

    assert "removeAllTags" not in sent_body(mocked, REMOVE_URL)


async def test_the_version_header_follows_the_setting(mocked: aioresponses) -> None:
    mocked.post(ADD_URL, status=201, payload=created(*(success(i) for i in IDS)))

    async with BulkTagsClient(base_url=BASE, token=TOKEN, version="v3") as client:
        await client.send(make_batch())

    (call,) = sent(mocked)
    assert call.kwargs["headers"]["Version"] == "v3"


async def test_send_outside_the_context_manager_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await BulkTagsClient(base_url=BASE, token=TOKEN).send(make_batch())


# --- usable 201s -------------------------------------------------------------------------------


async def test_outcomes_are_matched_by_contact_id_whatever_the_answer_order(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    first, second, third = IDS
    mocked.post(
        ADD_URL,
        status=201,
        payload=created(
            error(third, "contact is deleted"),
            success(first, oldTags=["a", "b"], tagsAdded=["vip"], tagsRemoved=[]),
            error(second, "contact does not belong to account"),
            succeded=False,
            errorCount=2,
        ),
        headers={
            "X-RateLimit-Max": "100",
            "X-RateLimit-Remaining": "97",
            "X-RateLimit-Interval-Milliseconds": "10000",
            "X-RateLimit-Limit-Daily": "200000",
            "X-RateLimit-Daily-Remaining": "199000",
        },
    )

    answer = await client.send(make_batch())

    assert answer.outcomes == (
        ContactOutcome(Status.SUCCESS, "Tags updated", ("a", "b"), ("vip",), ()),
        ContactOutcome(Status.ERROR, "contact does not belong to account"),
        ContactOutcome(Status.ERROR, "contact is deleted"),
    )
    assert answer.http_status == 201
    assert answer.rate == RateLimitInfo(100, 97, 10_000, 200_000, 199_000)


@pytest.mark.parametrize(
    "summary",
    [
        pytest.param({"succeded": True, "errorCount": 0}, id="v2 misspelt succeded"),
        pytest.param({"succeeded": True, "succeded": True, "errorCount": 0}, id="v3 succeeded"),
        pytest.param({"succeeded": True, "errorCount": 0}, id="only succeeded"),
    ],
)
async def test_either_spelling_of_the_success_flag_is_accepted(
    mocked: aioresponses, client: BulkTagsClient, summary: dict[str, Any]
) -> None:
    body = {"responses": [success(i) for i in IDS], **summary}
    mocked.post(ADD_URL, status=201, payload=body)

    answer = await client.send(make_batch())

    assert [o.status for o in answer.outcomes] == [Status.SUCCESS] * 3


async def test_a_contact_without_an_entry_is_failed(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(ADD_URL, status=201, payload=created(success(IDS[0]), success(IDS[2])))

    answer = await client.send(make_batch())

    assert answer.outcomes[1] == ContactOutcome(Status.FAILED, NO_ENTRY_MESSAGE)
    assert [o.status for o in answer.outcomes] == [Status.SUCCESS, Status.FAILED, Status.SUCCESS]


async def test_an_entry_of_unknown_type_is_failed_not_guessed(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    odd = {"contactId": IDS[0], "message": "queued", "type": "pending"}
    mocked.post(ADD_URL, status=201, payload=created(odd))

    answer = await client.send(make_batch(ids=IDS[:1]))

    assert answer.outcomes[0].status is Status.FAILED
    assert "queued" in answer.outcomes[0].message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<html>Bad Gateway</html>", id="not JSON"),
        pytest.param(json.dumps({"succeded": True, "errorCount": 0}), id="no responses"),
        pytest.param(json.dumps([success(IDS[0])]), id="a list"),
        pytest.param(json.dumps({"responses": "none"}), id="responses not a list"),
    ],
)
async def test_an_unreadable_201_is_a_malformed_answer(
    mocked: aioresponses, client: BulkTagsClient, body: str
) -> None:
    mocked.post(ADD_URL, status=201, body=body)

    with pytest.raises(MalformedAnswerError) as caught:
        await client.send(make_batch())

    assert caught.value.status == 201


# --- every other answer ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "message"),
    [
        pytest.param(
            400,
            {"statusCode": 400, "message": "locationId is required"},
            {},
            RejectedError,
            "HTTP 400: locationId is required",
            id="400",
        ),
        pytest.param(
            422,
            {
                "statusCode": 422,
                "message": ["contacts must be an array", "tags must contain no more than 50"],
                "error": "Unprocessable Entity",
            },
            {},
            RejectedError,
            "HTTP 422: contacts must be an array; tags must contain no more than 50",
            id="422 list",
        ),
        pytest.param(
            404,
            {"statusCode": 404, "message": "Not Found"},
            {},
            RejectedError,
            "HTTP 404: Not Found",
            id="404",
        ),
        pytest.param(
            401,
            {"statusCode": 401, "message": "Invalid token: access token is invalid"},
            {},
            AuthError,
            "HTTP 401: Invalid token: access token is invalid",
            id="401",
        ),
        pytest.param(
            403,
            {"statusCode": 403, "message": "The token does not have access to this location."},
            {},
            ForbiddenError,
            "HTTP 403: The token does not have access to this location.",
            id="403",
        ),
        pytest.param(
            429,
            {"message": "Too many requests"},
            {"X-RateLimit-Daily-Remaining": "0", "X-RateLimit-Limit-Daily": "200000"},
            DailyQuotaError,
            "HTTP 429: Too many requests",
            id="429 daily",
        ),
        pytest.param(
            429,
            {"message": "Too many requests"},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Daily-Remaining": "150000"},
            RateLimitedError,
            "HTTP 429: Too many requests",
            id="429 burst",
        ),
        pytest.param(
            503, "<html>down</html>", {}, ServerError, "HTTP 503 Service Unavailable", id="503 html"
        ),
        pytest.param(
            500,
            {"statusCode": 500, "message": "Internal server error"},
            {},
            ServerError,
            "HTTP 500: Internal server error",
            id="500",
        ),
        pytest.param(200, {}, {}, MalformedAnswerError, "HTTP 200: unexpected status", id="200"),
    ],
)
async def test_each_answer_class_becomes_its_typed_error(
    mocked: aioresponses,
    client: BulkTagsClient,
    status: int,
    body: dict[str, Any] | str,
    headers: dict[str, str],
    kind: type[ApiError],
    message: str,
) -> None:
    if isinstance(body, str):
        mocked.post(ADD_URL, status=status, body=body, headers=headers, content_type="text/html")
    else:
        mocked.post(ADD_URL, status=status, payload=body, headers=headers)

    with pytest.raises(ApiError) as caught:
        await client.send(make_batch())

    assert type(caught.value) is kind
    assert caught.value.status == status
    assert str(caught.value).startswith(message)
    assert caught.value.message == str(caught.value)
    for name, value in headers.items():
        assert caught.value.headers[name] == value
    assert caught.value.retry_after_s is None


async def test_retry_after_in_seconds_is_carried(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(ADD_URL, status=429, payload={"message": "slow down"}, headers={"Retry-After": "7"})

    with pytest.raises(RateLimitedError) as caught:
        await client.send(make_batch())

    assert caught.value.retry_after_s == 7.0


async def test_an_error_carries_the_rate_limit_headers_it_came_with(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    headers = {"x-ratelimit-interval-milliseconds": "10000", "X-RateLimit-Remaining": "0"}
    mocked.post(ADD_URL, status=429, payload={"message": "slow down"}, headers=headers)

    with pytest.raises(RateLimitedError) as caught:
        await client.send(make_batch())

    assert caught.value.rate == RateLimitInfo(remaining=0, interval_ms=10_000)


async def test_retry_after_as_a_date_is_measured_from_the_answers_own_date(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(
        ADD_URL,
        status=503,
        body="",
        headers={
            "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
            "Retry-After": "Wed, 21 Oct 2015 07:28:42 GMT",
        },
    )

    with pytest.raises(ServerError) as caught:
        await client.send(make_batch())

    assert caught.value.retry_after_s == 42.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:29:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(value: str | None, expected: float) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


def test_rate_limit_headers_are_read_in_any_case_and_unreadable_ones_are_none() -> None:
    info = parse_rate_limit(
        {"x-ratelimit-max": "100", "X-RATELIMIT-REMAINING": "oops", "X-RateLimit-Limit-Daily": "-1"}
    )
    assert info == RateLimitInfo(max=100)


async def test_a_redirect_is_not_followed(mocked: aioresponses, client: BulkTagsClient) -> None:
    elsewhere = "https://elsewhere.example/steal"
    mocked.post(ADD_URL, status=307, headers={"Location": elsewhere})
    mocked.post(elsewhere, status=201, payload=created(*(success(i) for i in IDS)))

    with pytest.raises(RejectedError) as caught:
        await client.send(make_batch())

    assert caught.value.status == 307
    assert "redirect not followed" in str(caught.value)
    assert elsewhere in str(caught.value)
    assert ("POST", URL(elsewhere)) not in mocked.requests


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(TimeoutError(), id="timeout"),
        pytest.param(aiohttp.ServerTimeoutError("read timed out"), id="aiohttp timeout"),
        pytest.param(aiohttp.ServerDisconnectedError(), id="dropped"),
        pytest.param(aiohttp.ClientConnectionError("Connection refused"), id="refused"),
        pytest.param(aiohttp.ClientPayloadError("truncated"), id="truncated body"),
    ],
)
async def test_no_answer_is_a_transport_error(
    mocked: aioresponses, client: BulkTagsClient, exc: Exception
) -> None:
    mocked.post(ADD_URL, exception=exc)

    with pytest.raises(TransportError) as caught:
        await client.send(make_batch())

    assert caught.value.status is None
    assert caught.value.__cause__ is exc


async def test_a_refused_connection_is_a_transport_error() -> None:
    """Nothing was sent: the request cannot have reached the API (not exposed)."""
    # A real refusal on loopback: bind a free port, close it, then connect to it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async with BulkTagsClient(base_url=f"http://127.0.0.1:{port}", token=TOKEN) as client:
        with pytest.raises(TransportError) as caught:
            await client.send(make_batch())

    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert caught.value.exposed is False


# --- what a lost answer may have changed -------------------------------------------------------

EXPOSED: list[Any] = [
    pytest.param({"exception": TimeoutError()}, id="timeout"),
    pytest.param({"exception": aiohttp.SocketTimeoutError("read")}, id="read timeout"),
    pytest.param({"exception": aiohttp.ServerDisconnectedError()}, id="disconnected"),
    pytest.param({"exception": aiohttp.ClientOSError(104, "reset by peer")}, id="reset"),
    pytest.param({"exception": aiohttp.ClientPayloadError("truncated")}, id="truncated body"),
    pytest.param({"status": 500, "payload": {"message": "boom"}}, id="500"),
    pytest.param({"status": 502, "body": "bad gateway"}, id="502"),
    pytest.param({"status": 503, "payload": {}}, id="503"),
    pytest.param({"status": 504, "payload": {}}, id="504"),
    pytest.param({"status": 201, "body": '{"responses": [{"contactId'}, id="201 broken body"),
    pytest.param({"status": 201, "payload": {"succeded": True}}, id="201 without responses"),
    pytest.param({"status": 200, "payload": {}}, id="200"),
]
_CONNECT = aiohttp.RequestInfo(URL(BASE), "CONNECT", CIMultiDictProxy(CIMultiDict()), URL(BASE))
NOT_EXPOSED: list[Any] = [
    pytest.param({"exception": aiohttp.ConnectionTimeoutError("connect")}, id="connect timeout"),
    pytest.param(
        {"exception": aiohttp.ClientHttpProxyError(_CONNECT, (), status=407, message="auth")},
        id="proxy refuses the CONNECT",
    ),
    pytest.param({"status": 429, "payload": {}}, id="429"),
    pytest.param(
        {"status": 429, "payload": {}, "headers": {"X-RateLimit-Daily-Remaining": "0"}},
        id="429 daily",
    ),
    pytest.param({"status": 400, "payload": {"message": "bad"}}, id="400"),
    pytest.param({"status": 401, "payload": {}}, id="401"),
    pytest.param({"status": 403, "payload": {}}, id="403"),
    pytest.param({"status": 413, "payload": {}}, id="413"),
    pytest.param({"status": 422, "payload": {"message": ["bad"]}}, id="422"),
    pytest.param({"status": 302, "headers": {"Location": "https://x.example/"}}, id="302"),
]


@pytest.mark.parametrize(
    ("answer", "exposed"),
    [*((p.values[0], True) for p in EXPOSED), *((p.values[0], False) for p in NOT_EXPOSED)],
    ids=[*(p.id for p in EXPOSED), *(p.id for p in NOT_EXPOSED)],
)
async def test_an_error_says_whether_the_attempt_may_have_reached_the_api(
    mocked: aioresponses, client: BulkTagsClient, answer: dict[str, Any], exposed: bool
) -> None:
    """Exposed: a timeout or a connection lost once the request may have been written, any 5xx
    (a 500 may follow the commit, a gateway may have passed it on), a 201 whose body cannot be
    read and any other 1xx/2xx; not: a connection never made, and the refusals (429, 3xx, 4xx).
    Data on the error, never read from its message."""
    mocked.post(ADD_URL, **answer)

    with pytest.raises(ApiError) as caught:
        await client.send(make_batch())

    assert caught.value.exposed is exposed


# --- the token never leaks ---------------------------------------------------------------------


def echo_token(url: URL, **kwargs: Any) -> CallbackResult:
    """A server that echoes the Authorization header back in its error message."""
    return CallbackResult(
        status=401,
        payload={"statusCode": 401, "message": f"bad token {kwargs['headers']['Authorization']}"},
    )


LEAKS: list[Any] = [
    pytest.param({"callback": echo_token}, id="401 echoing the token"),
    pytest.param({"status": 403, "payload": {"message": f"no access for {TOKEN}"}}, id="403"),
    pytest.param({"status": 422, "payload": {"message": [TOKEN, "bad"]}}, id="422"),
    pytest.param({"status": 400, "payload": {"message": "bad"}}, id="400"),
    pytest.param({"status": 429, "payload": {}}, id="429"),
    pytest.param(
        {"status": 429, "payload": {}, "headers": {"X-RateLimit-Daily-Remaining": "0"}},
        id="429 daily",
    ),
    pytest.param({"status": 502, "body": f"proxy saw {TOKEN}"}, id="502"),
    pytest.param(
        {"status": 302, "headers": {"Location": f"https://x.example/?t={TOKEN}"}}, id="302"
    ),
    pytest.param({"status": 201, "body": "not json"}, id="malformed 201"),
    pytest.param({"exception": TimeoutError()}, id="timeout"),
    pytest.param(
        {"exception": aiohttp.ClientConnectionError(f"refused; Bearer {TOKEN}")}, id="transport"
    ),
]


@pytest.mark.parametrize("answer", LEAKS)
async def test_the_token_is_never_in_an_error(
    mocked: aioresponses, client: BulkTagsClient, answer: dict[str, Any]
) -> None:
    mocked.post(ADD_URL, **answer)

    with pytest.raises(ApiError) as caught:
        await client.send(make_batch())

    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)
    assert TOKEN not in caught.value.message
    assert TOKEN not in repr(client)


def pieces_of_token(text: str) -> list[str]:
    """Every 8-character piece of TOKEN found in `text`, in any case (none may be)."""
    folded = text.casefold()
    token = TOKEN.casefold()
    return [token[i : i + 8] for i in range(len(token) - 7) if token[i : i + 8] in folded]


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(TOKEN, id="verbatim"),
        pytest.param(TOKEN.upper(), id="upper-cased"),
        pytest.param(TOKEN[5:17], id="a 12-character piece"),
        pytest.param(TOKEN.swapcase(), id="swapped case"),
    ],
)
async def test_the_token_is_scrubbed_from_every_kept_text_of_a_201(
    mocked: aioresponses, client: BulkTagsClient, echo: str
) -> None:
    mocked.post(
        ADD_URL,
        status=201,
        payload=created(
            success(IDS[0], message=f"ok {echo}", oldTags=[echo, "old"], tagsAdded=[f"x{echo}"]),
            success(IDS[1], tagsRemoved=[echo]),
            error(IDS[2], f"no: {echo}!"),
        ),
    )

    answer = await client.send(make_batch())

    assert pieces_of_token(repr(answer)) == []
    first, second, third = answer.outcomes
    assert first.message == f"ok {REDACTED}"
    assert first.old_tags == (REDACTED, "old")
    assert first.tags_added == (f"x{REDACTED}",)
    assert second.tags_removed == (REDACTED,)
    assert third.message == f"no: {REDACTED}!"


async def test_an_answer_without_the_token_is_kept_as_it_came(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    entries = [success(i, message="Tags updated", oldTags=["pit-7f3"]) for i in IDS]
    mocked.post(ADD_URL, status=201, payload=created(*entries))

    answer = await client.send(make_batch())

    assert {o.message for o in answer.outcomes} == {"Tags updated"}
    assert answer.outcomes[0].old_tags == ("pit-7f3",)  # 7 characters: a tag, not a piece


async def test_lone_surrogates_and_control_characters_are_replaced_in_texts_of_a_201(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    # Written as JSON escapes, as a server would: json.loads turns them into a lone surrogate.
    body = (
        '{"responses": ['
        f'{{"contactId": "{IDS[0]}", "type": "success", "message": "ok \\ud800 \\u001b[31m",'
        ' "oldTags": ["a\\udfff"], "tagsAdded": ["b\\u0007"], "tagsRemoved": []},'
        f'{{"contactId": "{IDS[1]}", "type": "error", "message": "bad\\ud83d"}},'
        f'{{"contactId": "{IDS[2]}", "type": "weird\\u0000", "message": "?"}}'
        "]}"
    )
    mocked.post(ADD_URL, status=201, body=body)

    answer = await client.send(make_batch())

    first, second, third = answer.outcomes
    assert first.message == "ok \ufffd \ufffd[31m"
    assert first.old_tags == ("a\ufffd",)
    assert first.tags_added == ("b\ufffd",)
    assert second.message == "bad\ufffd"
    assert third.status is Status.FAILED
    assert "\x00" not in third.message
    for outcome in answer.outcomes:
        for text in (outcome.message, *(outcome.old_tags or ()), *(outcome.tags_added or ())):
            text.encode("utf-8")  # a lone surrogate would raise UnicodeEncodeError


async def test_odd_values_in_a_201_are_rendered_short_and_never_recursively(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    odd = {"contactId": IDS[0], "type": ["x" * 5000], "message": "queued"}
    nested = success(IDS[1], oldTags=[[[["deep"]]], 7, None, {"a": 1}])
    mocked.post(ADD_URL, status=201, payload=created(odd, nested, success(IDS[2])))

    answer = await client.send(make_batch())

    assert answer.outcomes[0].status is Status.FAILED
    assert len(answer.outcomes[0].message) < 100
    assert answer.outcomes[1].old_tags == ("<list>", "7", "null", "<dict>")


def deeply_nested(depth: int = 20_000) -> str:
    text = "[" * depth + "]" * depth
    with pytest.raises(RecursionError):  # what the parser does with it, left alone
        json.loads(text)
    return text


async def test_json_nested_too_deep_in_a_201_is_a_malformed_answer(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(ADD_URL, status=201, body='{"responses": ' + deeply_nested() + "}")

    with pytest.raises(MalformedAnswerError) as caught:
        await client.send(make_batch())

    assert caught.value.status == 201
    assert caught.value.message == "HTTP 201 with a body that is not readable JSON"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"message": ' + deeply_nested() + "}", id="nested too deep"),
        pytest.param(b'{"message": "caf\xe9"}', id="invalid UTF-8"),
        pytest.param('{"message": "unterminated', id="not JSON"),
    ],
)
async def test_an_unreadable_error_body_has_no_detail(
    mocked: aioresponses, client: BulkTagsClient, body: str | bytes
) -> None:
    mocked.post(ADD_URL, status=500, body=body)

    with pytest.raises(ServerError) as caught:
        await client.send(make_batch())

    assert caught.value.message == "HTTP 500 Internal Server Error"


async def test_error_messages_are_sanitized_and_scrubbed(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    body = json.dumps({"message": ["\x1b]0;pwned\x07", TOKEN.upper(), "\ud800"]})
    mocked.post(ADD_URL, status=422, body=body.encode("utf-8", "surrogatepass"))

    with pytest.raises(RejectedError) as caught:
        await client.send(make_batch())

    assert caught.value.message == f"HTTP 422: \ufffd]0;pwned\ufffd; {REDACTED}; \ufffd"


async def test_the_headers_an_error_carries_are_scrubbed(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    headers = {"X-Echo": f"Bearer {TOKEN[3:20]}", "Location": f"https://x.example/{TOKEN}"}
    mocked.post(ADD_URL, status=302, headers=headers)

    with pytest.raises(RejectedError) as caught:
        await client.send(make_batch())

    assert pieces_of_token(caught.value.message) == []
    assert pieces_of_token(repr(dict(caught.value.headers))) == []
    assert caught.value.headers["X-Echo"] == f"Bearer {REDACTED}"


async def test_an_exception_holding_the_request_is_never_rendered_into_a_message(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    # aiohttp's ClientResponseError family (a proxy's refusal among them) keeps request_info,
    # whose headers hold our Authorization header; its repr() would print them.
    info = aiohttp.RequestInfo(
        URL(ADD_URL), "POST", {"Authorization": f"Bearer {TOKEN}"}, URL(ADD_URL)
    )
    exc = aiohttp.ClientHttpProxyError(info, (), status=502, message="Bad Gateway")
    assert TOKEN in repr(exc.request_info)  # what must not get out
    mocked.post(ADD_URL, exception=exc)

    with pytest.raises(TransportError) as caught:
        await client.send(make_batch())

    assert caught.value.message == "no answer: ClientHttpProxyError (HTTP 502 Bad Gateway)"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"status": 407, "reason": "Proxy Authentication Required"}, id="plain HTTP"),
        pytest.param(
            {"exception": aiohttp.ClientHttpProxyError(_CONNECT, (), status=407, message="auth")},
            id="CONNECT",
        ),
    ],
)
async def test_a_proxy_refusing_its_credentials_is_a_stop_about_the_proxy(
    mocked: aioresponses, client: BulkTagsClient, answer: dict[str, Any]
) -> None:
    """A 407, whether the proxy answers a plain-HTTP request or refuses the CONNECT, is a
    ProxyAuthError: the run stops (exit 3) telling to fix the proxy's credentials; it is never
    a rejected row ("fix the row") nor a transport error retried for nothing."""
    mocked.post(ADD_URL, **answer)

    with pytest.raises(ProxyAuthError) as caught:
        await client.send(make_batch())

    assert caught.value.exit_code == 3
    assert not caught.value.permanent
    assert not caught.value.exposed
    assert "407" in caught.value.message
    assert "fix the proxy's user and password" in str(caught.value)


async def test_a_transport_error_text_is_scrubbed_in_any_case(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    mocked.post(ADD_URL, exception=aiohttp.ClientConnectionError(f"x {TOKEN[:12].upper()}\n"))

    with pytest.raises(TransportError) as caught:
        await client.send(make_batch())

    assert caught.value.message == f"no answer: ClientConnectionError: x {REDACTED}\ufffd"


def test_the_client_keeps_no_unscrubbed_helper() -> None:
    assert not hasattr(BulkTagsClient, "_scrub")


# --- answers from a real server on loopback: size -----------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """`base = await serve(handler)`: an aiohttp.web server on 127.0.0.1 answering every path."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def padded_201(size: int) -> bytes:
    """A valid 201 for IDS of exactly `size` bytes (JSON whitespace pads it)."""
    body = json.dumps(created(*(success(i) for i in IDS))).encode()
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


async def test_an_answer_of_exactly_the_cap_is_read(serve: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=201, body=padded_201(MAX_ANSWER_BYTES))

    async with BulkTagsClient(base_url=await serve(handler), token=TOKEN) as client:
        answer = await client.send(make_batch())

    assert [o.status for o in answer.outcomes] == [Status.SUCCESS] * 3


@pytest.mark.parametrize("status", [201, 500, 401])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_answer_past_the_cap_is_a_malformed_answer(
    serve: Any, status: int, chunked: bool
) -> None:
    body = padded_201(MAX_ANSWER_BYTES + 1)

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status)
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        try:
            for start in range(0, len(body), 256 * 1024):
                await response.write(body[start : start + 256 * 1024])
        except ConnectionError:  # the client hung up once it had enough: expected
            return response
        await response.write_eof()
        return response

    async with BulkTagsClient(base_url=await serve(handler), token=TOKEN) as client:
        with pytest.raises(MalformedAnswerError) as caught:
            await client.send(make_batch())

    assert caught.value.message == f"HTTP {status}: answer larger than 4 MiB"
    assert caught.value.status == status


async def test_a_connection_left_with_an_unread_body_is_not_reused(serve: Any) -> None:
    calls: list[int] = []
    big = padded_201(MAX_ANSWER_BYTES + 1)

    async def handler(request: web.Request) -> web.Response:
        calls.append(len(calls))
        if len(calls) == 1:
            return web.Response(status=201, body=big)
        return web.json_response(created(*(success(i) for i in IDS)), status=201)

    async with BulkTagsClient(
        base_url=await serve(handler), token=TOKEN, max_connections=1
    ) as client:
        with pytest.raises(MalformedAnswerError):
            await client.send(make_batch())
        answer = await client.send(make_batch())

    assert answer.outcomes[0].status is Status.SUCCESS


# --- proxies ------------------------------------------------------------------------------------

UNRESOLVABLE = "http://api.batcher-test.invalid"  # .invalid never resolves (RFC 6761)


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy variables it needs; none come from the machine running it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def proxy_recorder(seen: list[dict[str, Any]]) -> Handler:
    """A tiny forward proxy: it takes absolute-URI requests and answers a 201 itself."""

    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(
            {
                "target": request.raw_path,
                "authorization": request.headers.get("Authorization"),
                "body": body,
            }
        )
        return web.json_response(created(*(success(i) for i in body["contacts"])), status=201)

    return handler


async def test_http_proxy_from_the_environment_is_used_for_a_remote_api(
    serve: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[dict[str, Any]] = []
    proxy = await serve(proxy_recorder(seen))
    monkeypatch.setenv("HTTP_PROXY", proxy)
    # A .netrc entry for the API host must neither be used nor clash with our Authorization.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.batcher-test.invalid login someone password secret\n")
    monkeypatch.setenv("NETRC", str(netrc))

    async with BulkTagsClient(base_url=UNRESOLVABLE, token=TOKEN) as client:
        assert client.proxy == proxy
        answer = await client.send(make_batch(action=Action.REMOVE))

    assert [o.status for o in answer.outcomes] == [Status.SUCCESS] * 3
    (request,) = seen
    assert request["target"] == f"{UNRESOLVABLE}/contacts/bulk/tags/update/remove"
    assert request["authorization"] == f"Bearer {TOKEN}"
    assert request["body"]["contacts"] == list(IDS)


async def test_no_proxy_from_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "batcher-test.invalid")

    async with BulkTagsClient(base_url=UNRESOLVABLE, token=TOKEN) as client:
        assert client.proxy is None


async def test_proxy_credentials_are_used_but_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pa55word@proxy.example:3128")

    async with BulkTagsClient(base_url=BASE, token=TOKEN) as client:
        assert client.proxy == "http://proxy.example:3128"
        assert "pa55word" not in repr(client)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "[::1]", "localhost", "LOCALHOST", "localhost."]
)
async def test_a_loopback_api_never_goes_through_a_proxy(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")

    async with BulkTagsClient(base_url=f"http://{host}:8080", token=TOKEN) as client:
        assert client.proxy is None


async def test_a_loopback_api_is_reached_directly_with_a_proxy_set(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    via_proxy: list[dict[str, Any]] = []
    direct: list[dict[str, Any]] = []
    monkeypatch.setenv("HTTP_PROXY", await serve(proxy_recorder(via_proxy)))
    api = await serve(proxy_recorder(direct))

    async with BulkTagsClient(base_url=api, token=TOKEN) as client:
        await client.send(make_batch())

    assert via_proxy == []
    assert [request["target"] for request in direct] == ["/contacts/bulk/tags/update/add"]


async def test_contacts_answered_alike_share_one_outcome_and_others_keep_their_own(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """Entries alike but for `contactId` share one outcome (the ledger encodes it once); any
    other difference gives an outcome of its own."""
    mocked.post(
        ADD_URL,
        status=201,
        payload=created(success(IDS[0]), success(IDS[1]), success(IDS[2], oldTags=["other"])),
    )

    first, second, third = (await client.send(make_batch())).outcomes

    assert first is second
    assert first.old_tags == ("old",)
    assert third.old_tags == ("other",)


async def test_an_entry_nested_deeper_than_orjson_writes_is_still_read(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """orjson reads 1,024 levels but writes 254: the entry is read field by field instead."""
    deep: Any = "x"
    for _ in range(600):
        deep = [deep]
    entries = [success(IDS[0]), success(IDS[1], extra=deep), success(IDS[2], extra=deep)]
    mocked.post(ADD_URL, status=201, payload=created(*entries))

    first, second, third = (await client.send(make_batch())).outcomes

    assert [o.status for o in (first, second, third)] == [Status.SUCCESS] * 3
    assert second.tags_added == ("vip",)


async def test_an_answer_only_the_standard_parser_reads_is_read_entry_by_entry(
    mocked: aioresponses, client: BulkTagsClient
) -> None:
    """NaN is no JSON for orjson; its fallback reads it, and then NaN and null, which orjson
    would write alike, stay apart."""
    body = (
        '{"responses": ['
        f'{{"contactId": "{IDS[0]}", "type": "success", "message": "m", "oldTags": [NaN]}},'
        f'{{"contactId": "{IDS[1]}", "type": "success", "message": "m", "oldTags": [null]}}'
        "]}"
    )
    mocked.post(ADD_URL, status=201, body=body)

    first, second, third = (await client.send(make_batch())).outcomes

    assert first.old_tags == ("NaN",)
    assert second.old_tags == ("null",)
    assert third.status is Status.FAILED
