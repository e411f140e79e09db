"""Bookkeeping, from Python and from GET /_sandbox/stats."""

from __future__ import annotations

import aiohttp

from batcher.sandbox import (
    AppliedRequest,
    FaultConfig,
    RateConfig,
    Sandbox,
    SandboxConfig,
    TagUpdate,
)
from batcher.sandbox.stats import SandboxStats

from .conftest import SandboxFactory
from .helpers import CONTACT, LOCATION, body, post

FRESH = "aFreshContact0000001"


async def _traffic(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    await post(session, sandbox, body([CONTACT, FRESH], ["a"]))
    await post(session, sandbox, body([CONTACT], ["a"]), headers={"Version": "v3"})  # no change
    await post(session, sandbox, body([CONTACT], ["a"]), type_="remove")
    await post(session, sandbox, body(), headers={"Authorization": "Bearer x"})
    await post(session, sandbox, body(), type_="x")


async def test_python_stats_count_statuses_requests_and_changes(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(rate=RateConfig(max=4)) as sandbox:
        await _traffic(sandbox, session)
    stats = sandbox.stats
    assert stats.total_requests == 5
    assert stats.by_status == {201: 3, 401: 1, 422: 1}
    assert stats.changes == {CONTACT: 2, FRESH: 1}
    assert stats.max_window == {LOCATION: 4}
    assert stats.applied[1] == AppliedRequest(
        "v3",
        TagUpdate("add", LOCATION, [CONTACT], ["a"], False),
        {"contacts": [CONTACT], "tags": ["a"], "locationId": LOCATION},
    )
    assert [r.update.type for r in stats.applied] == ["add", "add", "remove"]


async def test_the_stats_route_reports_the_same(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    await _traffic(sandbox, session)
    async with session.get(f"{sandbox.url}/_sandbox/stats") as response:
        report = await response.json()
    assert report["total_requests"] == 5
    assert report["by_status"] == {"201": 3, "401": 1, "422": 1}
    assert report["changes"] == {CONTACT: 2, FRESH: 1}
    assert report["max_window"] == {LOCATION: 4}
    assert report["faults"] == {}
    assert report["applied"][0] == {
        "type": "add",
        "locationId": LOCATION,
        "contacts": [CONTACT, FRESH],
        "tags": ["a"],
        "removeAllTags": False,
        "version": "2021-07-28",
    }


async def test_record_requests_false_keeps_counts_but_no_bodies(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(record_requests=False) as sandbox:
        await _traffic(sandbox, session)
    assert sandbox.stats.applied == []
    assert sandbox.stats.by_status[201] == 3
    assert sandbox.stats.changes == {CONTACT: 2, FRESH: 1}


async def test_faults_are_counted_by_kind(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(faults=FaultConfig(fail_first=2)) as sandbox:
        for _ in range(3):
            await post(session, sandbox, body())
        async with session.get(f"{sandbox.url}/_sandbox/stats") as response:
            report = await response.json()
    assert report["faults"] == {"fail_first": 2}
    assert report["by_status"] == {"201": 1, "503": 2}


def test_the_most_contacts_in_any_hour_slides_with_the_wall_clock() -> None:
    """Contacts count in every hour-long span (not only clock hours), per location: 600 at
    09:30 and 600 at 10:10 are 1,200 in one hour; 10:30 lets the first go."""
    stats = SandboxStats()
    stats.note_contacts("a", 600, 9.5 * 3600)
    stats.note_contacts("b", 100, 9.9 * 3600)
    stats.note_contacts("a", 600, (10 + 1 / 6) * 3600)
    stats.note_contacts("a", 500, 10.5 * 3600)
    assert stats.max_contacts_per_hour == {"a": 1200, "b": 100}
    assert stats.to_json()["max_contacts_per_hour"] == {"a": 1200, "b": 100}


async def test_applied_requests_count_their_contacts_on_the_wall_clock(
    session: aiohttp.ClientSession,
) -> None:
    """The endpoint notes each applied request's contacts at its `wall_clock`'s time."""
    now = [0.0]
    async with Sandbox(SandboxConfig(rate=None), wall_clock=lambda: now[0]) as sandbox:
        await post(session, sandbox, body([CONTACT, FRESH], ["a"]))
        now[0] = 3600.0
        await post(session, sandbox, body([CONTACT], ["b"]))
    assert sandbox.stats.max_contacts_per_hour == {LOCATION: 2}
