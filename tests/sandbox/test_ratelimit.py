"""Rate limits on the injected clocks: burst windows (sliding, fixed), daily quota, headers,
Retry-After."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from batcher.sandbox import FaultConfig, RateConfig, Sandbox
from batcher.sandbox.config import config_from_options, load_config, parse_rate

from .conftest import SandboxFactory
from .helpers import LOCATION, RATE_HEADERS, FakeClock, body, post

TOO_MANY = {"statusCode": 429, "message": "Too Many Requests"}


async def test_the_window_admits_max_then_429_until_it_frees(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with make_sandbox(rate=RateConfig(max=3, interval_ms=1000)) as sandbox:
        answers = [await post(session, sandbox, body()) for _ in range(5)]
        assert [a.status for a in answers] == [201, 201, 201, 429, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0", "0"]
        assert answers[3].body == TOO_MANY
        clock.advance(0.999)
        assert (await post(session, sandbox, body())).status == 429
        clock.advance(0.001)  # the first three leave the window together
        assert [(await post(session, sandbox, body())).status for _ in range(4)] == [
            201,
            201,
            201,
            429,
        ]
        assert sandbox.stats.max_window == {LOCATION: 3}


async def test_the_window_slides_request_by_request(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with make_sandbox(rate=RateConfig(max=2, interval_ms=10_000)) as sandbox:
        await post(session, sandbox, body())
        clock.advance(6)
        await post(session, sandbox, body())
        assert (await post(session, sandbox, body())).status == 429
        clock.advance(4)  # the first left; the second stays until t=16
        assert (await post(session, sandbox, body())).status == 201
        assert (await post(session, sandbox, body())).status == 429
        assert sandbox.stats.max_window[LOCATION] == 2


async def test_429s_do_not_count_toward_the_window(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with make_sandbox(rate=RateConfig(max=1, interval_ms=1000)) as sandbox:
        await post(session, sandbox, body())
        for _ in range(5):
            clock.advance(0.5)
            await post(session, sandbox, body())  # 429 at 0.5, then 201 at 1.0, ...
        assert sandbox.stats.by_status == {201: 3, 429: 3}


async def test_retry_after_says_when_the_window_frees(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    rate = RateConfig(max=2, interval_ms=10_000, retry_after=True)
    async with make_sandbox(rate=rate) as sandbox:
        ok = await post(session, sandbox, body())
        clock.advance(4.5)
        await post(session, sandbox, body())
        refused = await post(session, sandbox, body())
    assert "Retry-After" not in ok.headers
    assert refused.headers["Retry-After"] == "6"  # ceil(10 - 4.5)


async def test_no_retry_after_unless_configured(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(rate=RateConfig(max=1)) as sandbox:
        await post(session, sandbox, body())
        refused = await post(session, sandbox, body())
    assert refused.status == 429
    assert "Retry-After" not in refused.headers


async def test_daily_exhaustion_says_daily_remaining_zero_until_the_next_utc_day(
    make_sandbox: SandboxFactory,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    wall_clock: FakeClock,
) -> None:
    rate = RateConfig(max=100, daily=3, retry_after=True)
    async with make_sandbox(rate=rate) as sandbox:
        answers = [await post(session, sandbox, body()) for _ in range(3)]
        assert [a.headers["X-RateLimit-Daily-Remaining"] for a in answers] == ["2", "1", "0"]
        wall_clock.advance(86_399)
        clock.advance(86_399)
        refused = await post(session, sandbox, body())
        assert (refused.status, refused.body) == (429, TOO_MANY)
        assert refused.headers["X-RateLimit-Daily-Remaining"] == "0"
        assert refused.headers["X-RateLimit-Remaining"] == "100"  # not the burst limit
        assert refused.headers["Retry-After"] == "1"  # until 00:00 UTC
        wall_clock.advance(1)
        again = await post(session, sandbox, body())
    assert again.status == 201
    assert again.headers["X-RateLimit-Daily-Remaining"] == "2"


async def test_locations_have_their_own_buckets(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(rate=RateConfig(max=1)) as sandbox:
        assert (await post(session, sandbox, body())).status == 201
        foreign = await post(session, sandbox, body(locationId="otherLocation0000002"))
        assert foreign.status == 403  # counted in its own bucket, not refused by the first
        assert foreign.headers["X-RateLimit-Remaining"] == "0"
        assert (await post(session, sandbox, body())).status == 429


async def test_a_body_without_location_counts_against_the_token(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(rate=RateConfig(max=1)) as sandbox:
        assert (await post(session, sandbox, None, raw=b"not json")).status == 422
        assert (await post(session, sandbox, {"locationId": 5})).status == 429
        assert (await post(session, sandbox, body())).status == 201


async def test_unauthenticated_requests_are_not_counted(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(rate=RateConfig(max=2)) as sandbox:
        for _ in range(3):
            refused = await post(session, sandbox, body(), headers={"Authorization": "Bearer x"})
            assert refused.status == 401
        answer = await post(session, sandbox, body())
    assert answer.headers["X-RateLimit-Remaining"] == "1"


@pytest.mark.parametrize(
    ("headers", "type_", "payload", "status"),
    [
        ({}, "add", body(), 201),
        ({"Authorization": "Bearer x"}, "add", body(), 401),
        ({"Version": "x"}, "add", body(), 400),
        ({}, "x", body(), 422),
        ({}, "add", body(locationId="otherLocation0000002"), 403),
    ],
)
async def test_every_answer_carries_the_five_headers(
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    type_: str,
    payload: object,
    status: int,
) -> None:
    answer = await post(session, sandbox, payload, type_=type_, headers=headers)
    assert answer.status == status
    assert {name: answer.headers[name] for name in RATE_HEADERS} == {
        "X-RateLimit-Max": "100",
        "X-RateLimit-Remaining": "100" if status == 401 else "99",
        "X-RateLimit-Interval-Milliseconds": "10000",
        "X-RateLimit-Limit-Daily": "200000",
        "X-RateLimit-Daily-Remaining": "200000" if status == 401 else "199999",
    }


async def test_429_and_5xx_carry_the_headers_too(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(rate=RateConfig(max=1)) as sandbox:
        await post(session, sandbox, body())
        refused = await post(session, sandbox, body())
    async with make_sandbox(faults=FaultConfig(fail_first=1)) as sandbox:
        failed = await post(session, sandbox, body())
    assert (refused.status, failed.status) == (429, 503)
    assert all(name in refused.headers and name in failed.headers for name in RATE_HEADERS)


async def test_unthrottled_admits_everything_and_shows_huge_limits(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(rate=None) as sandbox:
        statuses = {(await post(session, sandbox, body())).status for _ in range(150)}
        last = await post(session, sandbox, body())
    assert statuses == {201}
    assert int(last.headers["X-RateLimit-Max"]) >= 1_000_000_000
    assert int(last.headers["X-RateLimit-Daily-Remaining"]) > 1_000_000
    assert sandbox.stats.max_window[LOCATION] == 151


# -- fixed windows ---------------------------------------------------------------------------
# The fake clock starts at 1000.0: with a 10 s interval that is the start of window 100.


async def test_fixed_windows_reset_at_once_at_the_boundary(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    rate = RateConfig(max=2, interval_ms=10_000, window="fixed")
    async with make_sandbox(rate=rate) as sandbox:
        clock.advance(9)  # 1009: late in window 100
        first = [await post(session, sandbox, body()) for _ in range(3)]
        assert [a.status for a in first] == [201, 201, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in first] == ["1", "0", "0"]
        clock.advance(0.999)
        assert (await post(session, sandbox, body())).status == 429
        clock.advance(0.001)  # 1010: window 101 starts empty, 1 s after the first two
        second = [await post(session, sandbox, body()) for _ in range(3)]
        assert [a.status for a in second] == [201, 201, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in second] == ["1", "0", "0"]
        # Four admitted within one second: fixed windows allow it; each window held two.
        assert sandbox.stats.max_window == {LOCATION: 2}
        assert sandbox.stats.by_status == {201: 4, 429: 3}


async def test_a_sliding_window_refuses_what_a_fixed_one_admits(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with make_sandbox(rate=RateConfig(max=2, interval_ms=10_000)) as sandbox:
        clock.advance(9)
        await post(session, sandbox, body())
        await post(session, sandbox, body())
        clock.advance(1)  # the same instants as above: the sliding window still holds both
        assert (await post(session, sandbox, body())).status == 429


async def test_fixed_window_retry_after_is_the_time_to_the_next_window(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    rate = RateConfig(max=1, interval_ms=10_000, retry_after=True, window="fixed")
    async with make_sandbox(rate=rate) as sandbox:
        clock.advance(2.5)  # 1002.5: admitted
        assert (await post(session, sandbox, body())).status == 201
        clock.advance(4)  # 1006.5: window 100 ends at 1010
        refused = await post(session, sandbox, body())
        assert (refused.status, refused.headers["Retry-After"]) == (429, "4")  # ceil(3.5)
        clock.advance(3.25)  # 1009.75: a quarter second left, said as 1 (whole seconds)
        refused = await post(session, sandbox, body())
        assert (refused.status, refused.headers["Retry-After"]) == (429, "1")
        clock.advance(0.25)
        admitted = await post(session, sandbox, body())
    assert admitted.status == 201
    assert admitted.headers["X-RateLimit-Remaining"] == "0"


async def test_fixed_windows_count_each_location_and_the_daily_quota_alike(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    rate = RateConfig(max=1, interval_ms=1000, daily=2, window="fixed")
    locations = frozenset({LOCATION, "otherLocation0000002"})
    async with make_sandbox(rate=rate, locations=locations) as sandbox:
        assert (await post(session, sandbox, body())).status == 201
        other = await post(session, sandbox, body(locationId="otherLocation0000002"))
        assert other.status == 201
        clock.advance(1)
        answer = await post(session, sandbox, body())
        assert answer.headers["X-RateLimit-Daily-Remaining"] == "0"
        clock.advance(1)
        refused = await post(session, sandbox, body())
        assert refused.status == 429
        assert refused.headers["X-RateLimit-Remaining"] == "1"  # the daily quota refused it


def test_window_is_sliding_or_fixed_from_options_and_toml(tmp_path: Path) -> None:
    assert RateConfig().window == "sliding"
    assert parse_rate("100/10000,window=fixed") == RateConfig(100, 10_000, window="fixed")
    assert parse_rate("window=fixed", RateConfig(daily=5)) == RateConfig(daily=5, window="fixed")
    toml = tmp_path / "sandbox.toml"
    toml.write_text('[sandbox.rate]\nmax = 30\ninterval_ms = 1000\nwindow = "fixed"\n')
    assert load_config(toml).rate == RateConfig(max=30, interval_ms=1000, window="fixed")
    toml.write_text('[sandbox]\nrate = "30/1000,window=fixed"\n')
    assert load_config(toml).rate == RateConfig(max=30, interval_ms=1000, window="fixed")
    config = config_from_options(config_file=toml, rate="window=sliding")
    assert config.rate == RateConfig(max=30, interval_ms=1000)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda p: parse_rate("100/10000,window=tumbling"), "--rate: window must be"),
        (lambda p: RateConfig(window="Fixed"), "window must be 'sliding' or 'fixed'"),
        (lambda p: load_config(p), "sandbox.rate: window must be"),
    ],
)
def test_any_other_window_is_refused_naming_the_key(
    tmp_path: Path, build: Callable[[Path], object], expected: str
) -> None:
    toml = tmp_path / "sandbox.toml"
    toml.write_text('[sandbox.rate]\nwindow = "calendar"\n')
    with pytest.raises(ValueError, match=re.escape(expected)):
        build(toml)
