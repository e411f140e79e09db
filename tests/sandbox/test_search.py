"""Step 16: the sandbox's `POST /contacts/search`, as documented: eq filters on email in OR
groups, pageLimit and searchAfter, duplicates from the fixture, the rate limit counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from batcher.sandbox import RateConfig

from .conftest import SandboxFactory
from .helpers import CONTACT, HEADERS, LOCATION, OTHER_CONTACT, Answer

THIRD = "Zx9aB8cD7eF6gH5iJ4kL"


def fixture(tmp_path: Path) -> Path:
    """Two contacts share ada's address (in different case); bob has his own."""
    path = tmp_path / "fixture.json"
    document = {
        "locations": {LOCATION: {CONTACT: [], OTHER_CONTACT: [], THIRD: []}},
        "emails": {CONTACT: "ada@x.org", OTHER_CONTACT: "ADA@X.org", THIRD: "bob@x.org"},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def search(*emails: str, **extra: Any) -> dict[str, Any]:
    filters = [{"field": "email", "operator": "eq", "value": email} for email in emails]
    return {
        "locationId": LOCATION,
        "pageLimit": 500,
        "filters": [{"group": "OR", "filters": filters}],
        **extra,
    }


async def post(session: aiohttp.ClientSession, url: str, payload: Any) -> Answer:
    async with session.post(
        f"{url}/contacts/search",
        data=json.dumps(payload).encode(),
        headers={**HEADERS, "Content-Type": "application/json"},
    ) as response:
        return Answer(response.status, dict(response.headers), await response.json())


async def test_an_or_group_finds_every_contact_of_each_address(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """Each address matches its contacts ignoring case, duplicates included, in id order."""
    async with make_sandbox(fixture=fixture(tmp_path)) as sandbox, aiohttp.ClientSession() as s:
        answer = await post(s, sandbox.url, search("ada@x.org", "bob@x.org", "nobody@x.org"))
    assert answer.status == 200
    found = [(c["id"], c["email"]) for c in answer.body["contacts"]]
    assert found == sorted(
        [(CONTACT, "ada@x.org"), (OTHER_CONTACT, "ADA@X.org"), (THIRD, "bob@x.org")]
    )
    assert answer.body["total"] == 3
    assert sandbox.stats.searches_answered == 1


async def test_search_after_pages_through_the_answers(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """pageLimit cuts a page; the last contact's searchAfter gives the next one."""
    async with make_sandbox(fixture=fixture(tmp_path)) as sandbox, aiohttp.ClientSession() as s:
        first = await post(s, sandbox.url, search("ada@x.org", pageLimit=1))
        cursor = first.body["contacts"][-1]["searchAfter"]
        second = await post(s, sandbox.url, search("ada@x.org", pageLimit=1, searchAfter=cursor))
        third = await post(
            s,
            sandbox.url,
            search(
                "ada@x.org", pageLimit=1, searchAfter=second.body["contacts"][-1]["searchAfter"]
            ),
        )
    ids = [answer.body["contacts"][0]["id"] for answer in (first, second)]
    assert ids == sorted([CONTACT, OTHER_CONTACT])
    assert third.body["contacts"] == []


async def test_a_body_without_location_or_page_limit_is_a_422(
    make_sandbox: SandboxFactory,
) -> None:
    """As reported live: no locationId or pageLimit is a 422; an unknown field a 400."""
    async with make_sandbox() as sandbox, aiohttp.ClientSession() as s:
        missing = await post(s, sandbox.url, {"filters": []})
        phone = await post(
            s,
            sandbox.url,
            {
                "locationId": LOCATION,
                "pageLimit": 10,
                "filters": [{"field": "additional_phones", "operator": "eq", "value": "1"}],
            },
        )
    assert missing.status == 422
    assert phone.status == 400
    assert "Invalid field" in phone.body["message"]


async def test_searches_count_in_the_rate_limit(make_sandbox: SandboxFactory) -> None:
    """A search takes a place in its location's window like a tag request: past it, 429."""
    async with make_sandbox(rate=RateConfig(max=2)) as sandbox, aiohttp.ClientSession() as s:
        answers = [await post(s, sandbox.url, search("a@x.org")) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert sandbox.stats.max_window[LOCATION] == 2
    assert sandbox.stats.searches == 3


async def post_as(
    session: aiohttp.ClientSession, url: str, payload: Any, headers: dict[str, str]
) -> Answer:
    async with session.post(
        f"{url}/contacts/search", data=json.dumps(payload).encode(), headers=headers
    ) as response:
        return Answer(response.status, dict(response.headers), await response.json())


async def test_a_search_is_as_strict_as_a_tag_request(make_sandbox: SandboxFactory) -> None:
    """Tokens bound to locations, Version, Content-Type: another location's token is a 403,
    the agency token a 401, an unknown token a 401, no Version a 400, a body not sent as JSON
    the 422 of an empty body; the token bound to the location is answered."""
    other = "token-of-other-location"
    json_type = {"Content-Type": "application/json", "Version": "2021-07-28"}
    async with (
        make_sandbox(
            tokens={other: frozenset({"otherLocation0000002"})},
            agency_token="agency-token-0001",
            company_id="sandboxCompany000001",
        ) as sandbox,
        aiohttp.ClientSession() as s,
    ):
        elsewhere = await post_as(
            s, sandbox.url, search("a@x.org"), {**json_type, "Authorization": f"Bearer {other}"}
        )
        agency = await post_as(
            s,
            sandbox.url,
            search("a@x.org"),
            {**json_type, "Authorization": "Bearer agency-token-0001"},
        )
        unknown = await post_as(
            s, sandbox.url, search("a@x.org"), {**json_type, "Authorization": "Bearer nope"}
        )
        no_version = await post_as(
            s,
            sandbox.url,
            search("a@x.org"),
            {"Content-Type": "application/json", "Authorization": HEADERS["Authorization"]},
        )
        as_text = await post_as(
            s, sandbox.url, search("a@x.org"), {**HEADERS, "Content-Type": "text/plain"}
        )
        own = await post(s, sandbox.url, search("a@x.org"))
    assert (elsewhere.status, elsewhere.body["message"]) == (
        403,
        "The token does not have access to this location.",
    )
    assert (agency.status, agency.body["message"]) == (
        401,
        "This location is not accessible from this token.",
    )
    assert unknown.status == 401
    assert no_version.status == 400
    assert as_text.status == 422
    assert "locationId must be a string" in as_text.body["message"]
    assert own.status == 200
    assert sandbox.stats.searches_answered == 1
