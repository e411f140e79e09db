"""Credentials per location: the config keys, which credential a location uses, the check
before sending, and location tokens obtained through the agency (kept, renewed, once at a time)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from batcher.app.credentials import credentials_of, read_credentials, require
from batcher.app.settings import load_settings
from batcher.domain.config import ApiSettings, Settings
from batcher.domain.credentials import (
    Credential,
    credential_for,
    credential_variables,
    credentials_text,
    shared_by_all,
)
from batcher.domain.errors import ConfigError
from batcher.sending.client import BulkTagsClient, LocationToken
from batcher.sending.pacing import Pacer
from batcher.sending.tokens import Agency, Tokens

A, B, C = "locationAAAAAAAAAAAA", "locationBBBBBBBBBBBB", "locationCCCCCCCCCCCC"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "batcher.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_location_tokens_are_read_from_a_table_and_from_the_environment(tmp_path: Path) -> None:
    """`[api.location_tokens]` maps ids to variable names; BATCHER_API_LOCATION_TOKENS too."""
    path = write(tmp_path, f'[api.location_tokens]\n"{A}" = "TOKEN_A"\n"{B}" = "TOKEN_B"\n')
    assert load_settings(path, environ={}).api.location_tokens == {A: "TOKEN_A", B: "TOKEN_B"}
    env = {"BATCHER_API_LOCATION_TOKENS": f"{A}=TOKEN_A, {C}=TOKEN_C"}
    assert load_settings(path, environ=env).api.location_tokens == {A: "TOKEN_A", C: "TOKEN_C"}


def test_a_token_pasted_where_a_variable_s_name_belongs_is_refused_unshown(
    tmp_path: Path,
) -> None:
    """A value that is no variable name is refused naming the key, never quoting the value."""
    pasted = "pit-3f9a1c2e-77d0-4b1e-9a5e-0c4d2b1a9e8f"
    path = write(tmp_path, f'[api.location_tokens]\n"{A}" = "{pasted}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value).startswith(f"api.location_tokens.{A}: must be the NAME")
    assert pasted not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[api]\nagency_token_env = "AGENCY"\n', "api.company_id: api.agency_token_env and"),
        ('[api]\ncompany_id = "company"\n', "api.agency_token_env: api.agency_token_env and"),
        ('[api]\nagency_token_env = "not a name"\ncompany_id = "c"\n', "api.agency_token_env"),
    ],
)
def test_the_agency_keys_go_together_and_name_a_variable(
    tmp_path: Path, text: str, message: str
) -> None:
    """An agency token without its company (or the other way round) is a config error."""
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), environ={})


@pytest.mark.parametrize("version", ["2021-07-28", "2021-04-15", "2023-02-21", "v3"])
def test_every_documented_version_may_be_configured(tmp_path: Path, version: str) -> None:
    """api.version takes each value HighLevel's versioning page lists."""
    path = write(tmp_path, f'[api]\nversion = "{version}"\n')
    assert load_settings(path, environ={}).api.version == version


def test_a_location_s_own_variable_then_the_agency_then_the_default() -> None:
    """The precedence of credentials, and how each is named."""
    api = ApiSettings(location_tokens={A: "TOKEN_A"})
    assert credential_for(api, A) == Credential("TOKEN_A")
    assert credential_for(api, B) == Credential("BATCHER_TOKEN")
    agency = ApiSettings(location_tokens={A: "TOKEN_A"}, agency_token_env="AG", company_id="c")
    assert credential_for(agency, B) == Credential("AG", agency=True)
    assert credential_for(agency, B).label == "agency exchange via $AG"
    assert credential_variables(agency) == ("BATCHER_TOKEN", "TOKEN_A", "AG")
    assert credentials_text(ApiSettings()) == "$BATCHER_TOKEN"
    assert credentials_text(api) == "$TOKEN_A or $BATCHER_TOKEN (per location)"


def test_a_credential_is_shared_when_every_location_uses_the_same_one() -> None:
    """One variable for all: shared (a refusal stops the run); two: not shared."""
    api = ApiSettings(location_tokens={A: "TOKEN_A"})
    assert shared_by_all(api, [B, C])
    assert not shared_by_all(api, [A, B])
    assert shared_by_all(ApiSettings(location_tokens={A: "X", B: "X"}), [A, B])


def test_require_names_each_location_whose_variable_is_not_set() -> None:
    """Exit 2 naming the location and the variable; a set one is not named; no token shown."""
    settings = Settings(api=ApiSettings(location_tokens={A: "TOKEN_A", B: "TOKEN_B"}))
    found = credentials_of(settings, [A, B], {"TOKEN_A": "secret-token-of-a"})
    assert [c.text for c in found] == ["$TOKEN_A (set)", "$TOKEN_B (NOT SET)"]
    with pytest.raises(ConfigError) as caught:
        require(found)
    assert caught.value.exit_code == 2
    assert f"location {B}: $TOKEN_B is not set" in str(caught.value)
    assert A not in str(caught.value)
    assert "secret-token-of-a" not in str(caught.value)


def test_the_run_s_tokens_are_read_per_location() -> None:
    """Each location's own token; the exchange for the agency's; every token to scrub."""
    api = ApiSettings(location_tokens={A: "TOKEN_A"}, agency_token_env="AG", company_id="co")
    env = {"TOKEN_A": "token-a-123456", "AG": "agency-123456"}
    credentials = read_credentials(Settings(api=api), [A, B], lambda: 0.0, env)
    assert set(credentials.secrets) == {"token-a-123456", "agency-123456"}
    assert credentials.tokens.exchanged(B)
    assert not credentials.tokens.exchanged(A)
    assert not credentials.shared
    assert "123456" not in repr(credentials)


class FakeExchange:
    """Stands in for the client's exchange: counts calls, hands out numbered tokens."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.calls: list[tuple[str, str, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def exchange(self, agency: str, company: str, location: str) -> LocationToken:
        self.calls.append((agency, company, location))
        await self.gate.wait()
        return LocationToken(f"obtained-{len(self.calls)}", self.lifetime)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_tokens(clock: Clock) -> Tokens:
    return Tokens(
        "default",
        given={A: "given-a"},
        agency=Agency("agency", "company"),
        exchanged=frozenset({B}),
        clock=clock,
    )


async def test_an_obtained_token_is_kept_until_shortly_before_it_expires() -> None:
    """One exchange serves until 5 minutes before `expires_in`; then a new one is obtained."""
    clock, fake = Clock(), FakeExchange(lifetime=86399.0)
    tokens, pacer = make_tokens(clock), Pacer(100, 10.0, clock=clock)
    client = cast(BulkTagsClient, fake)
    assert await tokens.token(A, client, pacer) == "given-a"
    assert await tokens.token(B, client, pacer) == "obtained-1"
    clock.now = 86399.0 - 300.0 - 1
    assert await tokens.token(B, client, pacer) == "obtained-1"
    clock.now += 1
    assert await tokens.token(B, client, pacer) == "obtained-2"
    assert fake.calls == [("agency", "company", B)] * 2


async def test_a_short_lifetime_is_renewed_a_tenth_before_its_end() -> None:
    """A 60 s token is renewed after 54 s (a 5-minute margin would leave nothing)."""
    clock, fake = Clock(), FakeExchange(lifetime=60.0)
    tokens, pacer = make_tokens(clock), Pacer(100, 10.0, clock=clock)
    client = cast(BulkTagsClient, fake)
    await tokens.token(B, client, pacer)
    clock.now = 53.9
    assert await tokens.token(B, client, pacer) == "obtained-1"
    clock.now = 54.0
    assert await tokens.token(B, client, pacer) == "obtained-2"


async def test_a_refused_token_is_renewed_once_for_every_worker_that_saw_it() -> None:
    """Two workers refused with the same token: one exchange, both get the new token; a worker
    refused with an older token than the current one gets the current one."""
    clock, fake = Clock(), FakeExchange(lifetime=86399.0)
    tokens, pacer = make_tokens(clock), Pacer(100, 10.0, clock=clock)
    client = cast(BulkTagsClient, fake)
    first = await tokens.token(B, client, pacer)
    fake.gate.clear()
    both: Any = asyncio.gather(
        tokens.renew(B, first, client, pacer), tokens.renew(B, first, client, pacer)
    )
    await asyncio.sleep(0)
    fake.gate.set()
    assert await both == ["obtained-2", "obtained-2"]
    assert await tokens.renew(B, first, client, pacer) == "obtained-2"
    assert len(fake.calls) == 2
