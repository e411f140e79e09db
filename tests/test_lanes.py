"""The fair scheduler: locations side by side as their budgets allow, each contact in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from test_pacing import INTERVAL_S, now, on_fake_time

from batcher.domain.models import BatchOutcome, Chunk, ContactOutcome, RateLimitInfo, Row, Status
from batcher.sending.lanes import Dispatch, Lanes
from batcher.sending.pacing import Pacer
from batcher.sending.pool import run_pool
from batcher.state import Ledger

OK = ContactOutcome(Status.SUCCESS, "Tags updated", (), ("vip",), ())


def load(ledger: Ledger, columns: Sequence[str], chunks: list[list[Row]]) -> int:
    """Load rows built one by one, a chunk per list."""
    return ledger.load(columns, [Chunk.of_rows(rows, len(columns)) for rows in chunks])


def _row(n: int, location: str, contact: int | None = None, action: str = "add") -> Row:
    return Row(n, f"C{contact or n:019d}", location, action, ("vip",), False, extra=(), line=n + 1)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "state", "k") as opened:
        yield opened


def run_all(
    ledger: Ledger,
    pacer_limit: int,
    *,
    concurrency: int = 4,
    duration: float | Callable[[tuple[int, ...]], float] = 1.0,
    canary: bool = False,
) -> list[tuple[float, str, tuple[int, ...]]]:
    """Send everything through Lanes with batches of 1 on fake time; (start, location, rows).
    Each request takes `duration` seconds (or `duration(rows)`)."""
    started: list[tuple[float, str, tuple[int, ...]]] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        pacer = Pacer(pacer_limit, INTERVAL_S, clock=now)
        lanes = Lanes(ledger, 1, pacer, stop, canary=canary)

        async def send(dispatch: Dispatch) -> BatchOutcome:
            started.append((now(), dispatch.batch.location_id, dispatch.batch.rows))
            await asyncio.sleep(duration(dispatch.batch.rows) if callable(duration) else duration)
            dispatch.slot.finish()
            return BatchOutcome(dispatch.batch, (OK,) * len(dispatch.batch.rows), 201, 1)

        def on_done(dispatch: Dispatch, outcome: BatchOutcome) -> None:
            ledger.record(outcome)
            lanes.settled(dispatch.batch)

        await run_pool(lanes.next, send, on_done, concurrency=concurrency, stop=stop)

    on_fake_time(scenario)
    return started


def test_locations_go_side_by_side_so_the_busiest_one_sets_the_time(ledger: Ledger) -> None:
    """6 + 3 + 1 requests at 2 per 10 s each: done when the busiest location alone would be
    (its 6 need 3 windows), not one location after another (which would take 5 windows)."""
    rows = [_row(n, "loc-A") for n in range(1, 7)]
    rows += [_row(n, "loc-B") for n in range(7, 10)] + [_row(10, "loc-C")]
    load(ledger, [], [rows])
    started = run_all(ledger, pacer_limit=2, concurrency=6)
    assert len(started) == 10
    by_location: dict[str, list[float]] = {}
    for at, location, _ in started:
        by_location.setdefault(location, []).append(at)
    assert by_location["loc-A"] == [0.0, 0.0, 11.0, 11.0, 22.0, 22.0]
    assert by_location["loc-B"] == [0.0, 0.0, 11.0]
    assert by_location["loc-C"] == [0.0]


def test_with_a_canary_each_location_s_first_request_goes_alone(ledger: Ledger) -> None:
    """loc-A's and loc-B's first requests go at once, side by side; each location's others wait
    for its first answer (1 s), then go together."""
    rows = [_row(n, "loc-A") for n in range(1, 4)] + [_row(n, "loc-B") for n in range(4, 6)]
    load(ledger, [], [rows])
    started = run_all(ledger, pacer_limit=10, concurrency=6, canary=True)
    assert sorted((at, location) for at, location, _ in started) == [
        (0.0, "loc-A"),
        (0.0, "loc-B"),
        (1.0, "loc-A"),
        (1.0, "loc-A"),
        (1.0, "loc-B"),
    ]


def test_a_location_that_must_wait_never_holds_up_another(ledger: Ledger) -> None:
    """With one worker, loc-A's second request must wait 11 s; loc-B's go in the meantime."""
    load(ledger, [], [[_row(1, "loc-A"), _row(2, "loc-A"), _row(3, "loc-B"), _row(4, "loc-B")]])
    started = run_all(ledger, pacer_limit=1, concurrency=1)
    assert [(at, location) for at, location, _ in started] == [
        (0.0, "loc-A"),
        (1.0, "loc-B"),
        (11.0, "loc-A"),
        (12.0, "loc-B"),
    ]


def test_a_contact_s_next_change_waits_for_the_previous_one_to_settle(ledger: Ledger) -> None:
    """Row 2 (round 2, the same contact as row 1) starts only once row 1's answer is in, even
    with a free worker and room in the budget."""
    load(
        ledger,
        [],
        [[_row(1, "loc", contact=7), _row(2, "loc", contact=7, action="remove"), _row(3, "loc")]],
    )
    started = run_all(ledger, pacer_limit=10, duration=5.0)
    assert [(at, rows) for at, _, rows in started] == [(0.0, (1,)), (0.0, (3,)), (5.0, (2,))]


def test_an_exhausted_location_gets_nothing_more_and_says_why(ledger: Ledger) -> None:
    load(ledger, [], [[_row(1, "loc-A"), _row(2, "loc-A"), _row(3, "loc-B")]])

    async def scenario() -> tuple[list[str], dict[str, str]]:
        stop = asyncio.Event()
        pacer = Pacer(10, INTERVAL_S, clock=now)
        pacer.observe("loc-A", RateLimitInfo(daily_remaining=0))
        lanes = Lanes(ledger, 1, pacer, stop, canary=False)
        handed = []
        while (dispatch := await lanes.next()) is not None:
            handed.append(dispatch.batch.location_id)
            dispatch.slot.finish()
            lanes.settled(dispatch.batch)
        return handed, lanes.stopped()

    handed, stopped = on_fake_time(scenario)
    assert handed == ["loc-B"]
    assert list(stopped) == ["loc-A"]
    assert stopped["loc-A"].startswith("X-RateLimit-Daily-Remaining is 0")


def test_a_stop_ends_the_wait_for_a_location_that_may_send(ledger: Ledger) -> None:
    load(ledger, [], [[_row(1, "loc"), _row(2, "loc")]])

    async def scenario() -> tuple[Dispatch | None, float]:
        stop = asyncio.Event()
        pacer = Pacer(1, INTERVAL_S, clock=now)
        lanes = Lanes(ledger, 1, pacer, stop, canary=False)
        first = await lanes.next()
        assert first is not None
        first.slot.finish()
        lanes.settled(first.batch)
        waiting = asyncio.create_task(lanes.next())  # the window is full for 10 s
        await asyncio.sleep(2.0)
        stop.set()
        return await waiting, now()

    assert on_fake_time(scenario) == (None, 2.0)


def test_a_wait_that_ends_while_the_budget_is_read_never_hangs(ledger: Ledger) -> None:
    """Found by the pacing benchmark: the budget was read twice, and a wait that ended between
    the two readings was taken for "nothing to time", so the scheduler slept with no timeout
    and, with nothing in flight, forever. Here the budget says "a moment more", then "now"."""
    load(ledger, [], [[_row(1, "loc")]])

    async def scenario() -> Dispatch | None:
        pacer = Pacer(10, INTERVAL_S, clock=now)
        readings = iter([5e-7])
        pacer.delay = lambda location_id: next(readings, 0.0)  # type: ignore[method-assign]
        lanes = Lanes(ledger, 1, pacer, asyncio.Event(), canary=False)
        return await asyncio.wait_for(lanes.next(), timeout=3)

    dispatched = on_fake_time(scenario)
    assert dispatched is not None
    assert dispatched.batch.rows == (1,)
