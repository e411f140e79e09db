"""Injected faults against the real loopback server: each mode, and their reproducibility."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from batcher.sandbox import FaultConfig, Sandbox, parse_faults

from .conftest import SandboxFactory
from .helpers import CONTACT, HEADERS, FakeSleep, body, post


async def _statuses(sandbox: Sandbox, session: aiohttp.ClientSession, count: int) -> list[int]:
    """The statuses of `count` valid requests, bodies unread (some may be malformed)."""
    statuses = []
    for _ in range(count):
        url = f"{sandbox.url}/contacts/bulk/tags/update/add"
        async with session.post(url, json=body(), headers=HEADERS) as response:
            statuses.append(response.status)
    return statuses


async def test_error_rate_answers_5xx_without_applying(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(faults=FaultConfig(error_rate=1.0)) as sandbox:
        answers = [await post(session, sandbox, body()) for _ in range(20)]
    assert {a.status for a in answers} == {500, 502, 503}
    phrases = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    assert all(a.body == {"statusCode": a.status, "message": phrases[a.status]} for a in answers)
    assert sandbox.universe.tags(CONTACT) is None
    assert sandbox.stats.faults == {"error": 20}


async def test_fail_first_fails_the_first_valid_requests_only(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(faults=FaultConfig(fail_first=2, fail_first_status=500)) as sandbox:
        refused = await post(session, sandbox, body(), headers={"Version": "x"})  # not counted
        statuses = await _statuses(sandbox, session, 4)
    assert refused.status == 400
    assert statuses == [500, 500, 201, 201]


async def test_fail_first_defaults_to_503(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(faults=FaultConfig(fail_first=1)) as sandbox:
        assert await _statuses(sandbox, session, 2) == [503, 201]


async def test_drop_before_disconnects_without_applying(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(faults=FaultConfig(drop_before=1.0)) as sandbox:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, sandbox, body())
    assert sandbox.universe.tags(CONTACT) is None
    assert sandbox.stats.faults == {"drop_before": 1}
    assert sandbox.stats.applied == []


async def test_drop_after_disconnects_after_applying(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(faults=FaultConfig(drop_after=1.0)) as sandbox:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, sandbox, body())
    assert sandbox.universe.tags(CONTACT) == ("tag-1",)
    assert sandbox.stats.changes == {CONTACT: 1}
    assert len(sandbox.stats.applied) == 1
    assert sandbox.stats.by_status == {}


async def test_slow_never_answers_and_stops_cleanly(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    sandbox_context = make_sandbox(faults=FaultConfig(slow=1.0))
    sandbox = await sandbox_context.__aenter__()
    try:
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                f"{sandbox.url}/contacts/bulk/tags/update/add",
                json=body(),
                headers=HEADERS,
                timeout=aiohttp.ClientTimeout(total=0.2),
            ):
                pass
        assert sandbox.stats.faults == {"slow": 1}
    finally:
        async with asyncio.timeout(5):  # a hung stop fails here instead of hanging the suite
            await sandbox_context.__aexit__(None, None, None)
    assert sandbox.universe.tags(CONTACT) is None


async def test_a_slow_request_still_open_at_stop_is_released(
    make_sandbox: SandboxFactory,
) -> None:
    async with aiohttp.ClientSession() as session:
        async with make_sandbox(faults=FaultConfig(slow=1.0)) as sandbox:
            pending = asyncio.create_task(post(session, sandbox, body()))
            # Wait until the request is held by the server (no event to wait on from outside).
            while not sandbox.stats.faults:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await pending


async def test_malformed_is_a_201_with_truncated_json_after_applying(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with (
        make_sandbox(faults=FaultConfig(malformed=1.0)) as sandbox,
        session.post(
            f"{sandbox.url}/contacts/bulk/tags/update/add", json=body(), headers=HEADERS
        ) as response,
    ):
        status, content_type, raw = (
            response.status,
            response.content_type,
            await response.read(),
        )
    assert (status, content_type) == (201, "application/json")
    assert raw.startswith(b'{"succeded":true')
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    assert sandbox.universe.tags(CONTACT) == ("tag-1",)


async def test_latency_is_added_to_every_answer(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    async with make_sandbox(faults=parse_faults("latency_ms=5-50,seed=3")) as sandbox:
        await post(session, sandbox, body())
        await post(session, sandbox, body(), headers={"Authorization": "Bearer x"})
        await post(session, sandbox, body(), type_="x")
    assert len(sleep.calls) == 3
    assert all(0.005 <= s <= 0.05 for s in sleep.calls)
    assert len(set(sleep.calls)) == 3


async def test_the_same_seed_gives_the_same_faults(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    faults = parse_faults("error_rate=0.3,malformed=0.2,latency_ms=1-9,seed=7")
    runs = []
    for _ in range(2):
        async with make_sandbox(faults=faults) as sandbox:
            runs.append((await _statuses(sandbox, session, 30), dict(sandbox.stats.faults)))
    assert runs[0] == runs[1]
    assert sleep.calls[:30] == sleep.calls[30:]
    assert {"error", "malformed"} <= set(runs[0][1])
    async with make_sandbox(faults=FaultConfig(error_rate=0.3, malformed=0.2, seed=8)) as sandbox:
        assert await _statuses(sandbox, session, 30) != runs[0][0]
