"""Behaviours a mutation probe found unpinned (issue 23): the work queue of a file mixing short
and long tag sets, and the scheduler's later rounds and its turns across locations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lanes import _row, load, run_all
from test_ledger import COLUMNS, _tags
from test_ledger import _row as ledger_row

from batcher.domain.models import Batch, BatchOutcome, ContactOutcome, Status
from batcher.domain.planning import WorkItem
from batcher.state import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "state", "k") as opened:
        yield opened


def _owed(items: list[WorkItem]) -> list[tuple[int, int, int, int]]:
    """(round, tag count of the group, part, members) of each work item, in order."""
    return [(item.round, len(item.group.tags), item.part, item.members) for item in items]


def test_a_long_row_among_short_ones_owes_each_of_its_parts(ledger: Ledger) -> None:
    """Rows of one tag and one of 60 tags: the 60-tag group owes two parts (50 tags, then 10)
    in the plan and in round 1's ready work, before and after other rows are answered; the
    other groups' single part does not cap it."""
    load(
        ledger,
        COLUMNS,
        [[ledger_row(1), ledger_row(2, tags=_tags(60)), ledger_row(3, tags=("new",))]],
    )
    expected = [(1, 1, 0, 1), (1, 60, 0, 1), (1, 60, 1, 1), (1, 1, 0, 1)]
    assert _owed(ledger.work()) == expected
    assert _owed(ledger.ready_work(1)) == expected

    first = next(item for item in ledger.ready_work(1) if item.group.tags == ("vip",))
    batch = Batch("LOC1", first.group.action, ("vip",), False, 0, (1,), (f"C{1:019d}",))
    ok = ContactOutcome(Status.SUCCESS, "Tags updated", (), ("vip",), ())
    ledger.record(BatchOutcome(batch, (ok,), 201, 1))
    assert _owed(ledger.ready_work(1)) == [(1, 60, 0, 1), (1, 60, 1, 1), (1, 1, 0, 1)]
    assert _owed(ledger.work()) == [(1, 60, 0, 1), (1, 60, 1, 1), (1, 1, 0, 1)]


def test_every_round_goes_out_side_by_side_not_only_the_first(ledger: Ledger) -> None:
    """Four contacts with two changes each, four workers, batches of one, round 1's answers
    arriving after 1, 2, 3 and 4 s: round 2's four requests start together once the last has
    settled (4 s), not one after another (4, 5, 6, 7 s) as when idle workers give up."""
    rows = [_row(n, "loc", contact=n) for n in range(1, 5)]
    rows += [_row(n + 4, "loc", contact=n, action="remove") for n in range(1, 5)]
    load(ledger, [], [rows])

    def seconds(batch_rows: tuple[int, ...]) -> float:
        return float(batch_rows[0]) if batch_rows[0] <= 4 else 1.0

    started = run_all(ledger, pacer_limit=100, concurrency=4, duration=seconds)
    assert [(at, rows) for at, _, rows in started] == [
        (0.0, (1,)),
        (0.0, (2,)),
        (0.0, (3,)),
        (0.0, (4,)),
        (4.0, (5,)),
        (4.0, (6,)),
        (4.0, (7,)),
        (4.0, (8,)),
    ]


def test_a_free_worker_takes_the_locations_in_turn(ledger: Ledger) -> None:
    """One worker, three locations of three requests each, budgets with room: the locations
    take turns (A, B, C, A, B, C, ...), none goes twice while another has work."""
    rows = [_row(n, location) for n, location in enumerate(["loc-A"] * 3 + ["loc-B"] * 3, 1)]
    rows += [_row(n, "loc-C") for n in range(7, 10)]
    load(ledger, [], [rows])
    started = run_all(ledger, pacer_limit=100, concurrency=1)
    assert [location for _, location, _ in started] == ["loc-A", "loc-B", "loc-C"] * 3
    assert [at for at, _, _ in started] == [float(n) for n in range(9)]
