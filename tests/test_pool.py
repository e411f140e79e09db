"""The worker pool: every item once, bounded concurrency, lazy pulling, graceful stop.

Work items block on events the test releases, so every interleaving is chosen by the test.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Iterator

import pytest

from batcher.domain.errors import (
    AuthError,
    BatcherError,
    DailyQuotaError,
    FatalApiError,
    Interrupted,
    StateError,
    StopRun,
    TooManyFailuresError,
)
from batcher.sending.pool import run_pool


class Gated:
    """A work function whose calls each wait until the test releases their item."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[int] = asyncio.Queue()
        self.gates: dict[int, asyncio.Event] = {}
        self.raises: dict[int, BaseException] = {}
        self.in_flight = 0
        self.peak = 0

    def _gate(self, item: int) -> asyncio.Event:
        return self.gates.setdefault(item, asyncio.Event())

    async def __call__(self, item: int) -> str:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.started.put_nowait(item)
        try:
            await self._gate(item).wait()
            if item in self.raises:
                raise self.raises[item]
            return f"done {item}"
        finally:
            self.in_flight -= 1

    def release(self, *items: int) -> None:
        for item in items:
            self._gate(item).set()

    async def next_started(self) -> int:
        return await self.started.get()

    def started_so_far(self) -> list[int]:
        items = []
        while not self.started.empty():
            items.append(self.started.get_nowait())
        return items


class Source:
    """An iterable that records how many items were taken from it."""

    def __init__(self, items: Iterable[int]) -> None:
        self._items = items
        self.pulled: list[int] = []

    def __iter__(self) -> Iterator[int]:
        for item in self._items:
            self.pulled.append(item)
            yield item


async def _let_others_run() -> None:
    """Give every ready task its turn (no time passes: a pure scheduling yield)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_runs_every_item_once_with_at_most_concurrency_in_flight() -> None:
    """Ten items at concurrency 3 start in order, three at a time, each finishing once."""
    work = Gated()
    source = Source(range(10))
    done: list[tuple[int, str]] = []
    pool = asyncio.create_task(
        run_pool(source, work, lambda i, r: done.append((i, r)), concurrency=3)
    )
    assert [await work.next_started() for _ in range(3)] == [0, 1, 2]
    await _let_others_run()
    assert work.started_so_far() == []  # all three workers busy: nothing more starts
    assert work.in_flight == 3
    for item in range(10):
        work.release(item)
        if item + 3 < 10:
            assert await work.next_started() == item + 3
    await pool
    assert work.peak == 3
    assert done == [(i, f"done {i}") for i in range(10)]
    assert source.pulled == list(range(10))


@pytest.mark.parametrize("concurrency", [1, 2, 5])
async def test_items_are_pulled_only_when_a_worker_is_free(concurrency: int) -> None:
    """The pool never holds more items taken but unfinished than it has workers."""
    source = Source(range(12))
    done: list[int] = []
    ahead: list[int] = []

    async def work(item: int) -> int:
        ahead.append(len(source.pulled) - len(done))
        await asyncio.sleep(0)
        return item

    await run_pool(source, work, lambda i, _: done.append(i), concurrency=concurrency)
    assert sorted(done) == list(range(12))
    assert max(ahead) == concurrency


async def test_concurrency_above_the_item_count_runs_each_item_once() -> None:
    """More workers than items: every item still runs exactly once."""
    done: list[int] = []

    async def work(item: int) -> int:
        await asyncio.sleep(0)
        return item * 2

    await run_pool([1, 2, 3], work, lambda _, r: done.append(r), concurrency=8)
    assert sorted(done) == [2, 4, 6]


async def test_no_items_is_no_call() -> None:
    """An empty source finishes at once without calling work or on_done."""
    calls: list[object] = []

    async def work(item: int) -> int:
        calls.append(item)
        return item

    await run_pool([], work, lambda i, r: calls.append((i, r)), concurrency=4)
    assert calls == []


async def test_infinite_source_stops_when_on_done_sets_stop() -> None:
    """With an endless source, setting stop after five results ends the pool without error, and
    every item taken is finished."""
    stop = asyncio.Event()
    source = Source(itertools.count())
    done: list[int] = []

    def on_done(item: int, _: int) -> None:
        done.append(item)
        if len(done) == 5:
            stop.set()

    async def work(item: int) -> int:
        await asyncio.sleep(0)
        return item

    await run_pool(source, work, on_done, concurrency=3, stop=stop)
    assert 5 <= len(done) <= 5 + 2  # at most the other workers' items were still in flight
    assert sorted(done) == source.pulled == list(range(len(done)))


async def test_external_stop_takes_no_new_item_and_lets_in_flight_finish() -> None:
    """An external stop: in-flight items finish and reach on_done, none starts, no error."""
    stop = asyncio.Event()
    work = Gated()
    source = Source(range(10))
    done: list[int] = []
    pool = asyncio.create_task(
        run_pool(source, work, lambda i, _: done.append(i), concurrency=3, stop=stop)
    )
    assert [await work.next_started() for _ in range(3)] == [0, 1, 2]
    stop.set()
    work.release(1)
    await _let_others_run()
    assert work.started_so_far() == []
    work.release(0, 2)
    await pool  # no error raised
    assert sorted(done) == [0, 1, 2]
    assert source.pulled == [0, 1, 2]


async def test_stop_set_before_start_runs_nothing() -> None:
    """A pool whose stop is already set takes no item."""
    stop = asyncio.Event()
    stop.set()
    source = Source(range(3))
    work = Gated()
    await run_pool(source, work, lambda i, r: None, concurrency=2, stop=stop)
    assert source.pulled == []


@pytest.mark.parametrize(
    "error",
    [
        StopRun("stopped"),
        Interrupted("interrupted by SIGINT"),
        TooManyFailuresError("10 requests in a row failed"),
        FatalApiError("fatal", status=401),
        AuthError("HTTP 401: token refused", status=401),
        DailyQuotaError("daily quota exhausted", status=429),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_stopping_error_lets_in_flight_finish_then_is_raised(error: BatcherError) -> None:
    """A StopRun or FatalApiError from one item takes no new item, lets the others in flight
    finish and reach on_done, then is raised itself."""
    work = Gated()
    work.raises[1] = error
    source = Source(range(10))
    done: list[int] = []
    pool = asyncio.create_task(run_pool(source, work, lambda i, _: done.append(i), concurrency=3))
    assert [await work.next_started() for _ in range(3)] == [0, 1, 2]
    work.release(1)
    await _let_others_run()
    assert not pool.done()  # still waiting for the two in flight
    assert work.started_so_far() == []
    work.release(0, 2)
    with pytest.raises(type(error)) as raised:
        await pool
    assert raised.value is error
    assert sorted(done) == [0, 2]
    assert source.pulled == [0, 1, 2]


async def test_a_stopping_error_takes_no_new_item_and_leaves_the_callers_event_alone() -> None:
    """An item that stops the run ends the pool; the caller's stop event (a signal's) is its
    own and stays unset."""
    stop = asyncio.Event()
    started: list[int] = []

    async def work(item: int) -> int:
        started.append(item)
        raise StopRun("enough")

    with pytest.raises(StopRun):
        await run_pool([1, 2, 3], work, lambda i, r: None, concurrency=1, stop=stop)
    assert started == [1]
    assert not stop.is_set()


async def test_first_stopping_error_wins() -> None:
    """When two items stop the run, the first one's error is raised."""
    work = Gated()
    first, second = AuthError("401", status=401), TooManyFailuresError("too many")
    work.raises.update({0: first, 1: second})
    pool = asyncio.create_task(run_pool(range(5), work, lambda i, r: None, concurrency=2))
    assert [await work.next_started() for _ in range(2)] == [0, 1]
    work.release(0)
    await _let_others_run()
    work.release(1)
    with pytest.raises(AuthError) as raised:
        await pool
    assert raised.value is first


@pytest.mark.parametrize("concurrency", [0, -1])
async def test_concurrency_below_one_is_refused(concurrency: int) -> None:
    """A concurrency under 1 raises ValueError before any item is taken."""
    source = Source(range(3))

    async def work(item: int) -> int:
        return item

    with pytest.raises(ValueError, match="at least 1"):
        await run_pool(source, work, lambda i, r: None, concurrency=concurrency)
    assert source.pulled == []


async def test_other_exception_from_work_propagates() -> None:
    """An unexpected exception from a work item is not swallowed: it leaves the pool as itself,
    never wrapped in an ExceptionGroup."""

    async def work(item: int) -> int:
        if item == 2:
            raise KeyError("boom")
        return item

    with pytest.raises(KeyError, match="boom"):
        await run_pool(range(5), work, lambda i, r: None, concurrency=2)


async def test_exception_from_on_done_propagates() -> None:
    """An exception raised by on_done (say, the ledger failing to write) leaves the pool."""

    async def work(item: int) -> int:
        return item

    def on_done(item: int, _: int) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await run_pool(range(3), work, on_done, concurrency=1)


async def test_a_stopping_error_from_on_done_stops_the_pool_like_one_from_work() -> None:
    """The ledger failing to record (StateError) stops new items and is raised, not wrapped."""
    started: list[int] = []

    async def work(item: int) -> int:
        started.append(item)
        return item

    def on_done(item: int, _: int) -> None:
        if item == 1:
            raise StateError("state.sqlite: cannot record outcomes (disk full)")

    with pytest.raises(StateError, match="disk full"):
        await run_pool(range(10), work, on_done, concurrency=1)
    assert started == [0, 1]
