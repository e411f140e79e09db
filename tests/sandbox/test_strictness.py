"""The sandbox as strict as the service: tokens bound to locations, the agency exchange, tokens
that expire or are revoked, the body's type, empty tags, the Version header's own list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batcher.sandbox import Sandbox, SandboxConfig, load_config

from .conftest import SandboxFactory
from .helpers import CONTACT, LOCATION, FakeClock, body, post

OTHER = "otherLocation0000002"
AGENCY = "agency-token-0123456789"
COMPANY = "sandboxCompany000001"


async def exchange(
    session: aiohttp.ClientSession,
    sandbox: Sandbox,
    location: str = LOCATION,
    *,
    token: str = AGENCY,
    version: str = "2021-07-28",
    company: str = COMPANY,
    as_json: bool = False,
) -> tuple[int, Any]:
    """POST /oauth/locationToken as the reference says (a form), or as JSON."""
    fields = {"companyId": company, "locationId": location}
    kwargs: dict[str, Any] = {"json": fields} if as_json else {"data": fields}
    async with session.post(
        f"{sandbox.url}/oauth/locationToken",
        headers={"Authorization": f"Bearer {token}", "Version": version},
        **kwargs,
    ) as response:
        return response.status, await response.json()


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_body_not_sent_as_json_is_read_as_empty_and_refused_with_a_422(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """A JSON body labelled text/plain is not parsed (Express's JSON parser), so it is the 422
    of an empty body, and nothing is applied."""
    raw = json.dumps(body()).encode()
    answer = await post(session, sandbox, None, raw=raw, headers={"Content-Type": "text/plain"})
    assert answer.status == 422
    assert "contacts must be an array" in answer.body["message"]
    assert "locationId must be a string" in answer.body["message"]
    assert sandbox.stats.applied == []


@pytest.mark.parametrize("tag", ["", "  "])
async def test_an_empty_tag_is_refused_with_a_422(
    sandbox: Sandbox, session: aiohttp.ClientSession, tag: str
) -> None:
    """An empty (or blank) tag is refused as class-validator's IsNotEmpty would."""
    answer = await post(session, sandbox, body(tags=["vip", tag]))
    assert answer.status == 422
    assert answer.body["message"] == ["each value in tags should not be empty"]
    assert sandbox.universe.tags(CONTACT) is None


async def test_tags_in_any_case_are_one_tag(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """`vip`, then `VIP`, then `Vip ` leave one tag `vip`; only the first adds it."""
    added = []
    for spelling in ("vip", "VIP", "Vip "):
        answer = await post(session, sandbox, body(tags=[spelling]))
        added.append(answer.body["responses"][0]["tagsAdded"])
    assert added == [["vip"], [], []]
    assert sandbox.universe.tags(CONTACT) == ("vip",)


@pytest.mark.parametrize("version", ["2023-02-21", "2021-04-15"])
async def test_versions_not_in_the_endpoint_s_own_list_are_a_400(
    sandbox: Sandbox, session: aiohttp.ClientSession, version: str
) -> None:
    """HighLevel lists these versions, the endpoint's spec does not: the sandbox refuses them."""
    answer = await post(session, sandbox, body(), headers={"Version": version})
    assert answer.status == 400
    assert answer.body["message"] == "Version header must be one of: 2021-07-28, v3"


async def test_each_token_reaches_only_its_own_locations(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    """A token of one location is refused (403, the service's words) at another; the default
    token keeps the default locations."""
    async with make_sandbox(tokens={"token-other-0001": frozenset({OTHER})}) as sandbox:
        own = await post(session, sandbox, body(locationId=OTHER), headers=as_("token-other-0001"))
        foreign = await post(session, sandbox, body(), headers=as_("token-other-0001"))
        default = await post(session, sandbox, body(locationId=OTHER))
        home = await post(session, sandbox, body())
    assert (own.status, home.status) == (201, 201)
    assert foreign.status == default.status == 403
    assert foreign.body["message"] == "The token does not have access to this location."


async def test_a_revoked_token_is_refused_with_invalid_jwt(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    """`revoke_after = {token = 2}`: two requests pass, the third gets 401 "Invalid JWT"."""
    async with make_sandbox(revoke_after={"sandbox-token": 2}) as sandbox:
        statuses = [(await post(session, sandbox, body())).status for _ in range(2)]
        refused = await post(session, sandbox, body())
    assert statuses == [201, 201]
    assert (refused.status, refused.body["message"]) == (401, "Invalid JWT")


async def test_the_agency_token_is_good_only_for_the_exchange(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    """The agency token gets 401 at the bulk endpoint; the location token it obtains (form,
    Version 2021-07-28) works at its location only (401 at another, as the service words it)."""
    async with make_sandbox(agency_token=AGENCY) as sandbox:
        agency = await post(session, sandbox, body(), headers=as_(AGENCY))
        status, answer = await exchange(session, sandbox)
        token = answer["access_token"]
        used = await post(session, sandbox, body(), headers=as_(token))
        elsewhere = await post(session, sandbox, body(locationId=OTHER), headers=as_(token))
    assert (agency.status, agency.body["message"]) == (
        401,
        "This location is not accessible from this token.",
    )
    assert status == 200
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 86399
    assert answer["locationId"] == LOCATION
    assert used.status == 201
    assert elsewhere.status == 401
    assert elsewhere.body["message"] == "This location is not accessible from this token."
    assert sandbox.tokens.exchanges == 1


async def test_a_location_token_expires_after_its_lifetime(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """After `location_token_ttl_s` on the sandbox's clock the token is 401 "Invalid JWT"."""
    async with make_sandbox(agency_token=AGENCY, location_token_ttl_s=60.0) as sandbox:
        _, answer = await exchange(session, sandbox)
        token = answer["access_token"]
        clock.advance(59.0)
        before = await post(session, sandbox, body(), headers=as_(token))
        clock.advance(1.0)
        after = await post(session, sandbox, body(), headers=as_(token))
    assert answer["expires_in"] == 60
    assert before.status == 201
    assert (after.status, after.body["message"]) == (401, "Invalid JWT")


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ({"as_json": True}, 422),  # the reference says form-encoded
        ({"version": "2023-02-21"}, 400),  # the exchange lists only 2021-07-28
        ({"token": "sandbox-token"}, 401),  # a sub-account token cannot exchange
        ({"company": "anotherCompany000001"}, 400),
        ({"location": "notTheAgencys0000001"}, 400),
    ],
)
async def test_the_exchange_refuses_what_the_service_refuses(
    make_sandbox: SandboxFactory,
    session: aiohttp.ClientSession,
    how: dict[str, Any],
    status: int,
) -> None:
    """Each departure from the reference's request is refused, and no token is issued."""
    async with make_sandbox(agency_token=AGENCY) as sandbox:
        got, _ = await exchange(session, sandbox, **how)
    assert got == status
    assert sandbox.tokens.exchanges == 0


async def test_without_an_agency_token_every_exchange_is_a_401(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """A sandbox configured with no agency token exchanges nothing."""
    status, _ = await exchange(session, sandbox, token="")
    assert status == 401


def test_the_toml_table_binds_tokens_to_locations(tmp_path: Path) -> None:
    """[sandbox.tokens], [sandbox.revoke_after] and the agency keys are read from TOML."""
    path = tmp_path / "b.toml"
    path.write_text(
        "[sandbox]\n"
        f'agency_token = "{AGENCY}"\n'
        "location_token_ttl_s = 5\n"
        "[sandbox.tokens]\n"
        f'"token-other-0001" = ["{OTHER}"]\n'
        "[sandbox.revoke_after]\n"
        '"token-other-0001" = 3\n'
    )
    config = load_config(path)
    assert config.tokens == {"token-other-0001": frozenset({OTHER})}
    assert config.revoke_after == {"token-other-0001": 3}
    assert config.reach("token-other-0001") == frozenset({OTHER})
    assert config.reach("sandbox-token") == config.locations
    assert config.exchangeable == config.locations | {OTHER}
    assert (config.agency_token, config.location_token_ttl_s) == (AGENCY, 5.0)


def test_revoking_a_token_the_sandbox_does_not_serve_is_refused() -> None:
    """A typo in [sandbox.revoke_after] is named rather than silently ignored."""
    with pytest.raises(ValueError, match="revoke_after names tokens not served: nope"):
        SandboxConfig(revoke_after={"nope": 1})


async def test_a_fixture_binds_tokens_to_locations_too(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A fixture's `tokens` reach their locations only, beside the config's."""
    fixture = tmp_path / "fixture.json"
    fixture.write_text(
        json.dumps({"locations": {OTHER: {}}, "tokens": {"fixture-token-0001": [OTHER]}})
    )
    async with make_sandbox(fixture=fixture) as sandbox:
        own = await post(
            session, sandbox, body(locationId=OTHER), headers=as_("fixture-token-0001")
        )
        home = await post(session, sandbox, body(), headers=as_("fixture-token-0001"))
    assert (own.status, home.status) == (201, 403)


def test_a_fixture_s_tokens_must_name_lists_of_locations(tmp_path: Path) -> None:
    """A malformed `tokens` entry is refused naming the key."""
    fixture = tmp_path / "fixture.json"
    fixture.write_text(json.dumps({"tokens": {"t": "not-a-list"}}))
    with pytest.raises(ValueError, match="'tokens' must map tokens to lists of location ids"):
        Sandbox(SandboxConfig(fixture=fixture))
