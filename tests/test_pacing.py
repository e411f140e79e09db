"""The pacer keeps each location within its burst limit as the server counts it, on fake time."""

from __future__ import annotations

import asyncio
import random
import selectors
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import pytest

from batcher.domain.models import RateLimitInfo
from batcher.sending.pacing import Pacer
from batcher.support.stopping import Stop, interruptible_sleep

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


@pytest.mark.parametrize(("max_requests", "interval_s"), [(0, 10.0), (1, 0.0), (1, -1.0)])
def test_a_limit_that_allows_nothing_is_refused(max_requests: int, interval_s: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        Pacer(max_requests, interval_s)


# -- following the server -----------------------------------------------------------------------


def test_a_server_that_allows_less_than_the_config_is_followed() -> None:
    """Once an answer says X-RateLimit-Max 2 per 10 s, the lower limit rules."""
    paced = Paced(max_requests=100)

    async def scenario() -> list[float]:
        first = await paced.request("loc")
        paced.pacer.observe("loc", RateLimitInfo(max=2, remaining=1, interval_ms=10_000))
        rest = await asyncio.gather(*(paced.request("loc") for _ in range(4)))
        return [first[0], *(start for start, _ in rest)]

    assert on_fake_time(scenario) == [0.0, 0.0, 10.0, 10.0, 20.0]


def test_a_longer_server_interval_is_held_as_well_as_the_configured_one() -> None:
    paced = Paced(max_requests=4)  # 4 per 10 s configured

    async def scenario() -> list[float]:
        paced.pacer.observe("loc", RateLimitInfo(max=6, remaining=6, interval_ms=60_000))
        spans = await asyncio.gather(*(paced.request("loc") for _ in range(8)))
        return [start for start, _ in spans]

    # 4 per 10 s, and no more than 6 in any 60 s: the 7th waits for the first to be 60 s old.
    assert on_fake_time(scenario) == [0.0] * 4 + [10.0, 10.0, 60.0, 60.0]


def test_requests_of_others_counted_by_the_server_leave_them_room() -> None:
    """Remaining 1 of 5 while we have 1 request in the window: 3 belong to someone else (another
    integration on the same location), and we leave them their room."""
    pacer = Pacer(5, INTERVAL_S, clock=lambda: 0.0)
    slot = pacer.try_start("loc")
    assert slot is not None
    slot.finish()
    pacer.observe("loc", RateLimitInfo(max=5, remaining=1, interval_ms=10_000))
    assert pacer.try_start("loc") is not None
    assert pacer.try_start("loc") is None
    assert pacer.delay("loc") == INTERVAL_S


def test_no_room_is_booked_for_others_when_the_server_counts_only_ours() -> None:
    pacer = Pacer(5, INTERVAL_S, clock=lambda: 0.0)
    for _ in range(3):
        slot = pacer.try_start("loc")
        assert slot is not None
        slot.finish()
    pacer.observe("loc", RateLimitInfo(max=5, remaining=2, interval_ms=10_000))
    assert [pacer.try_start("loc") is not None for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize("seed", range(5))
def test_a_sliding_window_server_never_counts_more_than_its_limit(seed: int) -> None:
    """Against a server allowing 3 per 10 s (config says 8), every answer's headers followed:
    wherever between start and completion each request arrived, no window holds more than 3
    once the first answer has told the limit."""
    rng = random.Random(seed)
    paced = Paced(max_requests=8)
    spans: list[tuple[float, float]] = []

    async def one(duration: float) -> None:
        span = await paced.request("loc", duration)
        spans.append(span)
        paced.pacer.observe("loc", RateLimitInfo(max=3, remaining=0, interval_ms=10_000))

    async def scenario() -> None:
        await one(0.0)  # the first answer tells the server's limit
        await asyncio.gather(*(one(rng.choice([0.0, 0.5, 4.0])) for _ in range(30)))

    on_fake_time(scenario)
    later = spans[1:]
    assert most_the_server_can_count(later) <= 3


def test_a_pause_holds_back_only_its_location() -> None:
    """A 429: every request of that location waits until the pause is over; others go on."""
    paced = Paced(max_requests=10)

    async def scenario() -> tuple[float, float]:
        paced.pacer.pause("loc-A", 30.0)
        a = asyncio.create_task(paced.request("loc-A"))
        b = await paced.request("loc-B")
        return (await a)[0], b[0]

    assert on_fake_time(scenario) == (30.0, 0.0)


def test_the_daily_reserve_stops_one_location_and_not_another() -> None:
    pacer = Pacer(10, INTERVAL_S, daily_requests=1000, daily_reserve=5)
    pacer.observe("loc-A", RateLimitInfo(daily_limit=1000, daily_remaining=5))
    pacer.observe("loc-B", RateLimitInfo(daily_limit=1000, daily_remaining=6))
    reason = pacer.exhausted("loc-A")
    assert reason is not None
    assert reason == (
        "X-RateLimit-Daily-Remaining is 5 of 1,000, limits.daily_reserve 5; the API does not "
        "say when it resets"
    )
    assert pacer.try_start("loc-A") is None
    assert pacer.delay("loc-A") == float("inf")
    assert pacer.exhausted("loc-B") is None
    assert pacer.try_start("loc-B") is not None


def test_without_daily_headers_the_run_counts_its_own_requests() -> None:
    pacer = Pacer(10, INTERVAL_S, clock=lambda: 0.0, daily_requests=3, daily_reserve=1)
    for _ in range(2):
        slot = pacer.try_start("loc")
        assert slot is not None
        slot.finish()
        pacer.observe("loc", RateLimitInfo())
    assert pacer.exhausted("loc") is not None


def test_a_stop_ends_every_kind_of_wait() -> None:
    """A window's wait, a wait for a completion and a pause all end at once with Interrupted;
    so does a backoff or Retry-After sleep taken through interruptible_sleep."""
    stop = Stop()

    async def scenario() -> list[str]:
        event = stop.event()
        pacer = Pacer(
            1, INTERVAL_S, clock=now, sleep=partial(interruptible_sleep, stop), stop=event
        )
        busy = pacer.try_start("in-flight")  # held: the next one waits for a completion
        assert busy is not None
        window = pacer.try_start("window")
        assert window is not None
        window.finish()  # the next one waits for the window
        pacer.pause("paused", 3600.0)
        waits = [
            asyncio.create_task(pacer.start("in-flight")),
            asyncio.create_task(pacer.start("window")),
            asyncio.create_task(pacer.start("paused")),
            asyncio.create_task(interruptible_sleep(stop, 3600.0)),
        ]
        await asyncio.sleep(1.0)
        stop.request("interrupted by SIGTERM")
        results = await asyncio.gather(*waits, return_exceptions=True)
        assert now() == 1.0  # nobody waited any longer
        return [type(r).__name__ for r in results]

    assert on_fake_time(scenario) == ["Interrupted"] * 4


def test_our_requests_answered_before_the_server_s_window_closed_are_not_others() -> None:
    """Found by the pacing benchmark: the server counts the window before the request's
    arrival, we looked at the window before its answer; our own requests that completed in
    between were booked as someone else's and slowed every burst. Counting from the answered
    request's start sees them as ours."""
    clock = [0.0]
    pacer = Pacer(5, INTERVAL_S, clock=lambda: clock[0])
    early = pacer.try_start("loc")
    assert early is not None
    clock[0] = 0.25
    early.finish()  # within 10 s before the next one arrives: the server counts it
    clock[0] = 10.2
    answered = pacer.try_start("loc")
    assert answered is not None
    clock[0] = 10.3
    answered.finish()
    # The server counted both of ours: 3 of 5 left. Nobody else is there.
    info = RateLimitInfo(max=5, remaining=3, interval_ms=10_000)
    pacer.observe("loc", info, since=answered.started)
    # In our window only the answered one remains (the early one aged out at 10.25): 4 free.
    assert [pacer.try_start("loc") is not None for _ in range(5)] == [True] * 4 + [False]


def test_our_completions_are_kept_while_a_request_the_server_may_count_them_with_is_in_flight() -> (
    None
):
    """Found by the pacing benchmark: another worker's look at the budget while a request was in
    flight forgot our completions older than one interval, which the server still counted in that
    request's window; its answer then booked them as someone else's, and that room was lost for a
    whole interval (a 600-request run took a second longer)."""
    clock = [0.0]
    pacer = Pacer(5, INTERVAL_S, clock=lambda: clock[0])
    early = pacer.try_start("loc")
    assert early is not None
    clock[0] = 0.25
    early.finish()
    clock[0] = 10.2
    answered = pacer.try_start("loc")
    assert answered is not None
    clock[0] = 10.28
    assert pacer.delay("loc") == 0  # another worker looks: the early one is out of our window
    clock[0] = 10.3
    answered.finish()
    # The server counted both of ours (the early one within 10 s before the answered one's
    # arrival): 3 of 5 left. Nobody else is there.
    info = RateLimitInfo(max=5, remaining=3, interval_ms=10_000)
    pacer.observe("loc", info, since=answered.started)
    assert [pacer.try_start("loc") is not None for _ in range(5)] == [True] * 4 + [False]


@pytest.mark.parametrize("seed", range(5))
def test_alone_against_a_truthful_server_every_request_starts_as_soon_as_our_own_room_allows(
    seed: int,
) -> None:
    """The pacing benchmark's case on fake time: two workers send one after another to a
    sliding-window server that counts each request at an instant between its start and its
    answer, and tells the truth in Remaining; a third worker looks at the budget now and then (as
    the scheduler does). Nobody else uses the location, so no room may be held for others: each
    request starts when its worker asks or, if later, one interval after the completion that
    leaves it room (the k-th start after the first `limit`: the (k - limit)-th completion)."""
    rng = random.Random(seed)
    limit = 4
    pacer = Pacer(limit, INTERVAL_S, clock=now)
    arrivals: list[float] = []
    todo = [(rng.uniform(0.5, 6.0), rng.random()) for _ in range(60)]
    spans: list[tuple[float, float, float]] = []  # (start, completion, when its worker asked)

    async def one(duration: float, share: float) -> None:
        asked = now()
        slot = await pacer.start("loc")
        arrival = slot.started + share * duration
        arrivals.append(arrival)  # every request that arrived before it has started by now
        await asyncio.sleep(duration)
        slot.finish()
        counted = sum(1 for at in arrivals if arrival - INTERVAL_S < at <= arrival)
        info = RateLimitInfo(max=limit, remaining=limit - counted, interval_ms=10_000)
        pacer.observe("loc", info, since=slot.started)
        spans.append((slot.started, now(), asked))

    async def worker() -> None:
        while todo:
            await one(*todo.pop(0))

    async def looker() -> None:
        while todo:
            pacer.delay("loc")
            await asyncio.sleep(0.25)

    async def scenario() -> None:
        await asyncio.gather(worker(), worker(), looker())

    on_fake_time(scenario)
    spans.sort()
    completions = sorted(end for _, end, _ in spans)
    room = [0.0] * limit + [end + INTERVAL_S for end in completions[:-limit]]
    assert [start for start, _, _ in spans] == pytest.approx(
        [max(asked, free) for (_, _, asked), free in zip(spans, room, strict=True)]
    )
