"""The pacer keeps each location within its burst limit as the server counts it, on fake time."""

from __future__ import annotations

import asyncio
import random
import selectors
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from batcher.models import RateLimitInfo
from batcher.pacing import Pacer

T = TypeVar("T")
INTERVAL_S = 10.0


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: where the loop would wait `timeout` seconds, time jumps ahead instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("deadlock: every coroutine waits and no timer is pending")
            self.now += timeout
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on fake time: `asyncio.sleep` returns at once, `loop.time()` moves on.

    Coroutines still run truly concurrently, so a fake sleep in one never distorts the time
    another one sees (as a shared "sleep advances the clock" counter would).
    """

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def on_fake_time(scenario: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await scenario()

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())


def now() -> float:
    return asyncio.get_running_loop().time()


class Paced:
    """A pacer on the running loop's (fake) clock whose sleeps are recorded."""

    def __init__(self, max_requests: int) -> None:
        self.sleeps: list[float] = []
        self.pacer = Pacer(max_requests, INTERVAL_S, clock=now, sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(seconds)

    async def request(self, location_id: str, duration: float = 0.0) -> tuple[float, float]:
        """One request in flight for `duration`; its start and completion instants."""
        async with self.pacer.slot(location_id):
            start = now()
            await asyncio.sleep(duration)
            return start, now()


def most_the_server_can_count(spans: list[tuple[float, float]]) -> int:
    """The most requests that any server window of INTERVAL_S can hold, wherever between its
    start and completion each one arrived. Of the requests in one window, the last to start
    shares it with another only if that one was in flight or completed less than INTERVAL_S
    before: so count, at each start, the requests occupying [start, completion + INTERVAL_S)."""
    return max(
        sum(1 for start, end in spans if start <= later < end + INTERVAL_S) for later, _ in spans
    )


@pytest.mark.parametrize("seed", range(5))
def test_concurrent_requests_never_exceed_the_limit_in_any_window(seed: int) -> None:
    rng = random.Random(seed)
    paced = Paced(max_requests=4)
    durations = [rng.choice([0.0, 0.5, 3.0, 12.0]) for _ in range(40)]

    async def scenario() -> list[tuple[float, float]]:
        return await asyncio.gather(*(paced.request("loc", d) for d in durations))

    spans = on_fake_time(scenario)

    assert most_the_server_can_count(spans) == 4
    # The head of the queue sleeps until the oldest completion ages out: no polling.
    assert len(paced.sleeps) <= len(durations)
    assert all(wait > 0 for wait in paced.sleeps)


def test_requests_go_out_in_full_bursts_one_interval_apart_in_arrival_order() -> None:
    paced = Paced(max_requests=4)

    async def scenario() -> list[tuple[float, float]]:
        return await asyncio.gather(*(paced.request("loc") for _ in range(12)))

    spans = on_fake_time(scenario)

    assert [start for start, _ in spans] == [(n // 4) * INTERVAL_S for n in range(12)]
    assert paced.sleeps == [INTERVAL_S, INTERVAL_S]


def test_the_window_runs_from_completion_so_a_slow_request_delays_the_next() -> None:
    paced = Paced(max_requests=2)

    async def scenario() -> list[float]:
        first = await paced.request("loc")  # occupies [0, 10)
        slow = await paced.request("loc", 7.0)  # may arrive as late as 7: occupies [0, 17)
        third = await paced.request("loc")  # the first frees at 10
        fourth = await paced.request("loc")  # a start-based window would allow 10 here
        return [first[0], slow[0], third[0], fourth[0]]

    assert on_fake_time(scenario) == [0.0, 0.0, 10.0, 17.0]


def test_with_every_slot_in_flight_a_request_waits_for_a_completion_then_the_interval() -> None:
    paced = Paced(max_requests=2)

    async def scenario() -> list[tuple[float, float]]:
        spans = paced.request("loc", 25.0), paced.request("loc", 30.0), paced.request("loc")
        return list(await asyncio.gather(*spans))

    spans = on_fake_time(scenario)

    assert spans[2][0] == 25.0 + INTERVAL_S


def test_another_location_is_not_held_up() -> None:
    paced = Paced(max_requests=1)

    async def scenario() -> tuple[list[tuple[float, float]], tuple[float, float]]:
        busy = asyncio.gather(*(paced.request("loc-A", 5.0) for _ in range(3)))
        await asyncio.sleep(1.0)
        other = await paced.request("loc-B")
        return await busy, other

    busy, other = on_fake_time(scenario)

    assert other == (1.0, 1.0)
    assert [start for start, _ in busy] == [0.0, 15.0, 30.0]


def test_a_request_that_fails_still_counts_against_the_window() -> None:
    paced = Paced(max_requests=1)

    async def scenario() -> tuple[float, float]:
        with pytest.raises(ConnectionError):
            async with paced.pacer.slot("loc"):
                raise ConnectionError("dropped after the server may have counted it")
        return await paced.request("loc")

    assert on_fake_time(scenario)[0] == INTERVAL_S


def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    paced = Paced(max_requests=1)

    async def scenario() -> tuple[float, float]:
        await paced.request("loc")
        doomed = asyncio.create_task(paced.request("loc"))
        after = asyncio.create_task(paced.request("loc"))
        await asyncio.sleep(1.0)
        doomed.cancel()
        return await after

    assert on_fake_time(scenario)[0] == INTERVAL_S


def test_observe_keeps_the_latest_rate_limit_headers_per_location() -> None:
    pacer = Pacer(100, INTERVAL_S)
    pacer.observe("loc-A", RateLimitInfo(max=100, remaining=99))
    pacer.observe("loc-A", RateLimitInfo(max=100, remaining=42))

    assert pacer.latest("loc-A") == RateLimitInfo(max=100, remaining=42)
    assert pacer.latest("loc-B") is None


@pytest.mark.parametrize(("max_requests", "interval_s"), [(0, 10.0), (1, 0.0), (1, -1.0)])
def test_a_limit_that_allows_nothing_is_refused(max_requests: int, interval_s: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        Pacer(max_requests, interval_s)
