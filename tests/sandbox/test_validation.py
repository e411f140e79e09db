"""Requests the service refuses: 401, 400, 422 (every DTO rule), 403, and the checks' order."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from batcher.sandbox import EXAMPLE_LOCATION, Sandbox

from .conftest import SandboxFactory
from .helpers import CONTACT, LOCATION, OTHER_CONTACT, body, post

SEED_CURL_BODY = b"""{
  "contacts": [
    "qFSqySFkVvNzOSqgGqFi",
    "abcdef",
    "qFSqySFkVvNzOSqgGqFi",
    "3ualbhnV7j3n3a9r2moD"
  ],
  "tags": [
    "tag-1",
    "tag-2"
  ],
  "locationId": "asdrwHvLUxlfw5SqKVCN",
  "removeAllTags": "false"
}"""  # verbatim from bulk-tags-endpoint.seed.txt, with YOUR_type = remove


async def test_the_seed_curl_example_with_a_json_boolean_is_accepted(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(locations=frozenset({EXAMPLE_LOCATION})) as sandbox:
        fixed = SEED_CURL_BODY.replace(b'"false"', b"false")
        answer = await post(session, sandbox, None, type_="remove", raw=fixed)
    assert answer.status == 201
    assert [e["contactId"] for e in answer.body["responses"]] == [
        CONTACT,
        "abcdef",
        CONTACT,
        OTHER_CONTACT,
    ]
    assert answer.body["errorCount"] == 1


async def test_the_seed_curl_example_as_published_is_a_422(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(locations=frozenset({EXAMPLE_LOCATION})) as sandbox:
        answer = await post(session, sandbox, None, type_="remove", raw=SEED_CURL_BODY)
    assert answer.status == 422
    assert answer.body["message"] == ["removeAllTags must be a boolean value"]


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer wrong", "bearer sandbox-token", "sandbox-token"]
)
async def test_a_missing_or_wrong_token_is_a_401(
    sandbox: Sandbox, session: aiohttp.ClientSession, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with session.post(
        f"{sandbox.url}/contacts/bulk/tags/update/add",
        json=body(),
        headers={"Version": "2021-07-28", **headers},
    ) as response:
        assert response.status == 401
        assert await response.json() == {
            "statusCode": 401,
            "message": "Invalid token: access token is invalid",
            "error": "Unauthorized",
        }


@pytest.mark.parametrize("version", ["2021-04-15", "V3", "", "v2"])
async def test_an_unknown_version_is_a_400(
    sandbox: Sandbox, session: aiohttp.ClientSession, version: str
) -> None:
    answer = await post(session, sandbox, body(), headers={"Version": version})
    assert answer.status == 400
    assert answer.body == {
        "statusCode": 400,
        "message": "Version header must be one of: 2021-07-28, v3",
    }


async def test_a_missing_version_is_a_400(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    async with session.post(
        f"{sandbox.url}/contacts/bulk/tags/update/add",
        json=body(),
        headers={"Authorization": f"Bearer {sandbox.token}"},
    ) as response:
        assert response.status == 400
        assert await response.json() == {
            "statusCode": 400,
            "message": "Version header was not found",
        }


async def test_an_unknown_type_is_a_422(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    answer = await post(session, sandbox, body(), type_="delete")
    assert answer.status == 422
    assert answer.body == {
        "statusCode": 422,
        "message": ["type must be one of the following values: add, remove"],
        "error": "Unprocessable Entity",
    }


@pytest.mark.parametrize(
    ("payload", "messages"),
    [
        ([body()], ["body must be a JSON object"]),
        ("text", ["body must be a JSON object"]),
        (
            {},
            ["contacts must be an array", "tags must be an array", "locationId must be a string"],
        ),
        (body(foo=1, bar=None), ["property foo should not exist", "property bar should not exist"]),
        (body(contacts=CONTACT), ["contacts must be an array"]),
        (body(contacts=[CONTACT, 7]), ["each value in contacts must be a string"]),
        (body(tags=[None]), ["each value in tags must be a string"]),
        (body(tags="vip"), ["tags must be an array"]),
        (body(locationId=12), ["locationId must be a string"]),
        (body(removeAllTags="false"), ["removeAllTags must be a boolean value"]),
        (body(removeAllTags=0), ["removeAllTags must be a boolean value"]),
        (body(removeAllTags=True), ["removeAllTags can only be used with remove type"]),
        (body(contacts=[CONTACT] * 501), ["contacts must contain no more than 500 elements"]),
        (body(tags=[f"t{n}" for n in range(51)]), ["tags must contain no more than 50 elements"]),
        (
            body(contacts=[1] * 501, extra=True),
            [
                "property extra should not exist",
                "each value in contacts must be a string",
                "contacts must contain no more than 500 elements",
            ],
        ),
    ],
)
async def test_body_rules_answer_422_with_every_message(
    sandbox: Sandbox, session: aiohttp.ClientSession, payload: Any, messages: list[str]
) -> None:
    answer = await post(session, sandbox, payload)
    assert answer.status == 422
    assert answer.body == {"statusCode": 422, "message": messages, "error": "Unprocessable Entity"}


async def test_a_body_that_is_not_json_is_a_422(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    answer = await post(session, sandbox, None, raw=b'{"contacts": [')
    assert (answer.status, answer.body["message"]) == (422, ["body must be a JSON object"])


@pytest.mark.parametrize(
    "payload",
    [
        body(contacts=[CONTACT] * 500, tags=[f"t{n}" for n in range(50)]),
        body(contacts=[], tags=[]),
        body(removeAllTags=None),
        body(removeAllTags=False),
    ],
)
async def test_bodies_at_the_limits_are_accepted(
    sandbox: Sandbox, session: aiohttp.ClientSession, payload: Any
) -> None:
    answer = await post(session, sandbox, payload)
    assert answer.status == 201
    assert len(answer.body["responses"]) == len(payload["contacts"])


async def test_a_location_the_token_may_not_use_is_a_403(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    answer = await post(session, sandbox, body(locationId="otherLocation0000002"))
    assert answer.status == 403
    assert answer.body == {
        "statusCode": 403,
        "message": "The token does not have access to this location.",
    }


async def test_configured_locations_are_allowed(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(locations=frozenset({LOCATION, "otherLocation0000002"})) as sandbox:
        answer = await post(session, sandbox, body(locationId="otherLocation0000002"))
    assert answer.status == 201


@pytest.mark.parametrize(
    ("headers", "type_", "payload", "status"),
    [
        ({"Authorization": "Bearer x", "Version": "x"}, "x", {}, 401),
        ({"Version": "x"}, "x", {}, 400),
        ({}, "x", {}, 422),
        ({}, "add", {"locationId": "otherLocation0000002"}, 422),
        ({}, "add", body(locationId="otherLocation0000002"), 403),
    ],
)
async def test_checks_run_in_the_service_order(
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    type_: str,
    payload: Any,
    status: int,
) -> None:
    answer = await post(session, sandbox, payload, type_=type_, headers=headers)
    assert answer.status == status
