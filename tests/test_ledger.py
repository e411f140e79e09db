"""The run's SQLite ledger: every row once, duplicates, work to do, merged outcomes, resume."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime, tzinfo
from pathlib import Path

import pytest

from batcher.app import rendering
from batcher.app.result import pending_message
from batcher.app.stages.report import report
from batcher.domain.errors import StateError, StateLockedError, UsageError
from batcher.domain.fields import RESULT_FIELDS
from batcher.domain.models import (
    Action,
    Batch,
    BatchOutcome,
    Chunk,
    ContactOutcome,
    Group,
    ReportLine,
    Row,
    Status,
)
from batcher.domain.planning import WorkItem
from batcher.state import Ledger, ordering, reading, work
from batcher.state import db as db_module
from batcher.state import outcomes as outcomes_module
from batcher.state import rows as rows_module

COLUMNS = ("email", "tags")
PENDING = "not sent: test stopped"
KEY = "k1"


def load(ledger: Ledger, columns: Sequence[str], chunks: list[list[Row]]) -> int:
    """Load rows built one by one, a chunk per list."""
    return ledger.load(columns, [Chunk.of_rows(rows, len(columns)) for rows in chunks])


def _cid(n: int) -> str:
    return f"C{n:019d}"


def _row(
    n: int,
    *,
    contact: int | None = None,
    location: str = "LOC1",
    action: str = "add",
    tags: tuple[str, ...] = ("vip",),
    remove_all: bool = False,
    invalid: str = "",
) -> Row:
    return Row(
        row=n,
        contact_id=_cid(n if contact is None else contact),
        location_id=location,
        action=action,
        tags=tags,
        remove_all=remove_all,
        status=Status.INVALID if invalid else None,
        message=invalid,
        extra=(f"r{n}@example.com", ",".join(tags)),
        line=n + 1,
    )


def _tags(count: int) -> tuple[str, ...]:
    return tuple(f"t{i:03d}" for i in range(count))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def ledger(state_dir: Path) -> Iterator[Ledger]:
    with Ledger.open(state_dir, KEY) as opened:
        yield opened


def _lines(ledger: Ledger) -> list[ReportLine]:
    return list(ledger.lines(PENDING))


def _by_row(ledger: Ledger) -> dict[int, ReportLine]:
    return {line.row: line for line in _lines(ledger)}


def _members(ledger: Ledger) -> dict[tuple[int, int], list[tuple[int, str]]]:
    return {(item.group_id, item.part): list(ledger.members(item)) for item in ledger.work()}


def _batch(ledger: Ledger, rows: list[int], part: int = 0) -> Batch:
    """The batch of `part` holding `rows` (all of one group), as planning would cut it."""
    lines = _by_row(ledger)
    first = lines[rows[0]]
    tags = tuple(sorted(first.tags))[part * 50 : part * 50 + 50]
    return Batch(
        location_id=first.location_id,
        action=Action(first.action),
        tags=tags,
        remove_all=False,
        part=part,
        rows=tuple(rows),
        contact_ids=tuple(lines[n].contact_id for n in rows),
    )


def _record(
    ledger: Ledger,
    rows: list[int],
    outcome: ContactOutcome,
    *,
    part: int = 0,
    http_status: int | None = 201,
    attempts: int = 1,
) -> None:
    batch = _batch(ledger, rows, part)
    # A `failed` outcome for every row is what a request with no usable answer gives.
    answered = outcome.status is not Status.FAILED
    ledger.record(
        BatchOutcome(batch, (outcome,) * len(rows), http_status, attempts, answered=answered)
    )


OK = ContactOutcome(Status.SUCCESS, "Tags added", ("old",), ("vip",), ())
NOT_FOUND = ContactOutcome(Status.ERROR, "Contact not found")
LOST = ContactOutcome(Status.FAILED, "HTTP 503 Service Unavailable (after 6 attempts)")


# -- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "tags"),
    [("O'Brien's", ("it's", 'say "hi"', "--", "x';DROP TABLE rows;--")), ("LOC\x001", ("a\x00b",))],
)
def test_a_chunk_asking_one_thing_keeps_its_fields_exactly(
    ledger: Ledger, location: str, tags: tuple[str, ...]
) -> None:
    """A chunk whose rows ask one location, action and tags is written with those as SQL text
    (quotes doubled); a value holding NUL, which would end the SQL text, is bound instead."""
    rows = [_row(n, location=location, tags=tags) for n in (1, 2)]
    load(ledger, COLUMNS, [rows, [_row(3)]])
    lines = _lines(ledger)
    assert [(line.location_id, line.tags) for line in lines] == [
        (location, tags),
        (location, tags),
        ("LOC1", ("vip",)),
    ]
    (group,) = {item.group for item in ledger.work() if item.group.location_id == location}
    assert group.tags == tuple(sorted(set(tags)))


def test_load_keeps_every_row_in_input_order_with_its_cells(ledger: Ledger) -> None:
    """After load, lines() gives one pending line per row, in input order, with tags and extra."""
    rows = [_row(1, tags=("b", "a")), _row(2, invalid="contact id is empty"), _row(3)]
    assert load(ledger, COLUMNS, [rows[:2], rows[2:]]) == 3
    assert ledger.columns == COLUMNS
    assert _lines(ledger) == [
        ReportLine(
            row=1,
            contact_id=_cid(1),
            location_id="LOC1",
            action="add",
            tags=("b", "a"),
            status=Status.PENDING,
            message=PENDING,
            extra=("r1@example.com", "b,a"),
            line=2,
            resolved_by="id",
        ),
        ReportLine(
            row=2,
            contact_id=_cid(2),
            location_id="LOC1",
            action="add",
            tags=("vip",),
            status=Status.INVALID,
            message="contact id is empty",
            extra=("r2@example.com", "vip"),
            line=3,
            resolved_by="id",
        ),
        ReportLine(
            row=3,
            contact_id=_cid(3),
            location_id="LOC1",
            action="add",
            tags=("vip",),
            status=Status.PENDING,
            message=PENDING,
            extra=("r3@example.com", "vip"),
            line=4,
            resolved_by="id",
        ),
    ]


def test_load_keeps_unicode_cells_and_tags(ledger: Ledger) -> None:
    """Tags and cells outside ASCII come back exactly as loaded."""
    row = Row(1, _cid(1), "LOC1", "add", ("café ✓", "a,b"), False, extra=("Zoë", "=1+1"))
    load(ledger, ["Contact Id", "naam"], [[row]])
    (line,) = _lines(ledger)
    assert (line.tags, line.extra) == (("café ✓", "a,b"), ("Zoë", "=1+1"))


def test_load_of_no_rows_gives_no_lines_and_no_work(ledger: Ledger) -> None:
    """An input with a header but no rows loads zero rows and leaves nothing to do."""
    assert load(ledger, COLUMNS, []) == 0
    assert _lines(ledger) == []
    assert ledger.work() == []


def test_repeat_of_a_valid_row_is_a_duplicate_naming_the_first(ledger: Ledger) -> None:
    """A row repeating the same contact's previous row (location, action and tag set in any
    order) is a duplicate of the row that carries it; another tag set, action or location is
    not."""
    load(
        ledger,
        COLUMNS,
        [
            [
                _row(1, contact=1, tags=("a", "b")),
                _row(2, contact=1, tags=("b", "a")),
                _row(3, contact=1, tags=("a", "b")),
                _row(4, contact=1, tags=("a",)),
                _row(5, contact=1, tags=("a", "b"), action="remove"),
                _row(6, contact=1, tags=("a", "b"), location="LOC2"),
                _row(7, contact=2, tags=("a", "b")),
                _row(8, contact=1, tags=("A", "b")),
            ]
        ],
    )
    assert [(line.status, line.message) for line in _lines(ledger)] == [
        (Status.PENDING, PENDING),
        (Status.DUPLICATE, "duplicate of row 1"),
        (Status.DUPLICATE, "duplicate of row 1"),
        (Status.PENDING, PENDING),
        (Status.PENDING, PENDING),
        (Status.PENDING, PENDING),
        (Status.PENDING, PENDING),
        (Status.PENDING, PENDING),
    ]


def test_a_repeat_after_another_change_of_the_contact_is_not_a_duplicate(ledger: Ledger) -> None:
    """add vip, remove vip, add vip: the third row changes the contact again, so it is sent."""
    load(
        ledger,
        COLUMNS,
        [[_row(1, contact=1), _row(2, contact=1, action="remove"), _row(3, contact=1)]],
    )
    assert [line.status for line in _lines(ledger)] == [Status.PENDING] * 3
    assert [(item.round, item.members) for item in ledger.work()] == [(1, 1), (2, 1), (3, 1)]


def test_each_contact_s_k_th_change_goes_in_round_k(ledger: Ledger) -> None:
    """Rounds follow each contact's own order; contacts touched once are all in round 1, and a
    group spans rounds only where its contacts need it."""
    load(
        ledger,
        COLUMNS,
        [
            [
                _row(1, contact=1, tags=("a",)),
                _row(2, contact=2, tags=("a",)),
                _row(3, contact=1, tags=("a",), action="remove"),
                _row(4, contact=3, tags=("a",), action="remove"),
                _row(5, contact=2, tags=("a",)),  # duplicate of row 2
            ]
        ],
    )
    work = ledger.work()
    assert [(item.round, item.group.action, item.members) for item in work] == [
        (1, Action.ADD, 2),
        (1, Action.REMOVE, 1),
        (2, Action.REMOVE, 1),
    ]
    assert max(ledger.rounds_by_location().values()) == 2
    assert _by_row(ledger)[5].message == "duplicate of row 2"


def test_a_later_change_waits_until_the_earlier_one_has_settled(ledger: Ledger) -> None:
    """Round 2's row is not free to go until round 1's row has a final answer; a failed earlier
    row holds it back, pending, with a message naming the row it waits for."""
    load(ledger, COLUMNS, [[_row(1, contact=1), _row(2, contact=1, action="remove")]])
    (second,) = [item for item in ledger.work() if item.round == 2]
    assert ledger.ready_work(2) == []
    _record(ledger, [1], LOST, http_status=503, attempts=6)
    assert ledger.ready_work(2) == []
    held = _by_row(ledger)[2]
    assert held.status is Status.PENDING
    assert "waits for row 1" in held.message
    _record(ledger, [1], NOT_FOUND)
    assert ledger.ready_work(2) == [second]
    assert list(ledger.members(second)) == [(2, _cid(1))]


@pytest.mark.parametrize("few", [0, 20_000], ids=["reading-every-row", "candidates"])
def test_contacts_are_ordered_alike_whichever_way_their_rows_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, few: int
) -> None:
    """Rows of contacts that may repeat are found by reading every row, or (few such contacts)
    among the rows the repeat filter names: same rounds, waits and duplicates. The rows come in
    a shard's way too (numbers with gaps), and one contact id is named in two locations."""
    monkeypatch.setattr(ordering, "_FEW_CONTACTS", few)
    rows = [
        _row(2, contact=1, tags=("a",)),
        _row(5, contact=2),
        _row(6, contact=1, tags=("a",), action="remove"),
        _row(9, contact=1, tags=("a",), location="LOC2"),
        _row(11, contact=2),
        _row(12, contact=1, tags=("a",), action="remove"),
        _row(20, contact=1, tags=("a",)),
        _row(21, contact=3),
    ]
    with Ledger.open(tmp_path / "state", KEY) as ledger:
        load(ledger, COLUMNS, [rows[:3], rows[3:6], rows[6:]])
        seen = ledger._db.execute(
            "SELECT row, round, wait_row, pre_status, pre_message FROM rows ORDER BY row"
        ).fetchall()
    assert seen == [
        (2, 1, None, None, ""),
        (5, 1, None, None, ""),
        (6, 2, 2, None, ""),
        (9, 1, None, None, ""),
        (11, None, None, "duplicate", "duplicate of row 5"),
        (12, None, None, "duplicate", "duplicate of row 6"),
        (20, 3, 6, None, ""),
        (21, 1, None, None, ""),
    ]


def test_duplicates_across_load_chunks_are_found(ledger: Ledger) -> None:
    """A repeat in a later chunk is still a duplicate of the row in an earlier chunk."""
    load(ledger, COLUMNS, [[_row(1, contact=9)], [_row(2)], [_row(3, contact=9)]])
    assert _by_row(ledger)[3].message == "duplicate of row 1"


def test_repeated_remove_all_row_is_a_duplicate(ledger: Ledger) -> None:
    """Two remove-all rows for one contact and location are the same operation."""
    load(
        ledger,
        COLUMNS,
        [
            [
                _row(1, contact=5, action="remove", tags=(), remove_all=True),
                _row(2, contact=5, action="remove", tags=(), remove_all=True),
            ]
        ],
    )
    assert _by_row(ledger)[2].message == "duplicate of row 1"


def test_repeated_invalid_row_stays_invalid(ledger: Ledger) -> None:
    """An invalid row repeated keeps status invalid and its own message, not duplicate."""
    load(
        ledger,
        COLUMNS,
        [[_row(1, contact=3, invalid="bad action 'tag'"), _row(2, contact=3, invalid="bad id")]],
    )
    assert [(line.status, line.message) for line in _lines(ledger)] == [
        (Status.INVALID, "bad action 'tag'"),
        (Status.INVALID, "bad id"),
    ]


def test_valid_row_after_an_invalid_one_of_the_same_contact_is_sent(ledger: Ledger) -> None:
    """Only an earlier valid row makes a row a duplicate."""
    load(ledger, COLUMNS, [[_row(1, contact=3, invalid="bad id"), _row(2, contact=3)]])
    assert _by_row(ledger)[2].status is Status.PENDING
    assert list(_members(ledger).values()) == [[(2, _cid(3))]]


# -- work and members -------------------------------------------------------------------------


def test_work_lists_each_group_with_its_rows_to_send(ledger: Ledger) -> None:
    """work() has one item per group with its member count; members() lists exactly the rows to
    send (not invalid, not duplicate), in row order."""
    load(
        ledger,
        COLUMNS,
        [
            [
                _row(1, tags=("a",)),
                _row(2, tags=("b",)),
                _row(3, tags=("a",)),
                _row(4, contact=1, tags=("a",)),
                _row(5, tags=("a",), invalid="bad id"),
                _row(6, tags=("b",), location="LOC2"),
            ]
        ],
    )
    work = ledger.work()
    assert work == [
        WorkItem(1, Group("LOC1", Action.ADD, ("a",), False), 0, 2),
        WorkItem(2, Group("LOC1", Action.ADD, ("b",), False), 0, 1),
        WorkItem(3, Group("LOC2", Action.ADD, ("b",), False), 0, 1),
    ]
    assert [list(ledger.members(item)) for item in work] == [
        [(1, _cid(1)), (3, _cid(3))],
        [(2, _cid(2))],
        [(6, _cid(6))],
    ]


def test_a_plan_s_ledger_without_cells_plans_the_same(state_dir: Path) -> None:
    """A plan's scratch ledger loaded without the input's cells (a plan that gives no rows
    back) has the same work, members, counts, first invalid rows and columns as a run's, no
    cell in its rows table, and no index for sending."""
    rows = [
        _row(1, tags=("a",)),
        _row(2, tags=("b",)),
        _row(3, contact=1, tags=("b",)),
        _row(4, contact=1, tags=("b",)),
        _row(5, invalid="bad id"),
        _row(6, tags=_tags(60), location="LOC2"),
    ]
    seen = []
    for key, cells in (("with", True), ("without", False)):
        with Ledger.open(state_dir, key, scratch=not cells) as opened:
            opened.load(COLUMNS, [Chunk.of_rows(rows, len(COLUMNS))], cells=cells)
            seen.append(
                (
                    opened.work(),
                    _members(opened),
                    opened.status_counts(),
                    opened.first_rows("invalid", 5),
                    opened.first_rows("duplicate", 5),
                    opened.columns,
                )
            )
            names = [c[1] for c in opened._db.execute("PRAGMA table_info(rows)")]
            assert any(name.startswith("c") and name[1:].isdigit() for name in names) is cells
            indexes = {name for (name,) in opened._db.execute("SELECT name FROM sqlite_master")}
            assert ("rows_by_group" in indexes) is cells
    assert seen[0] == seen[1]
    # Both kinds of rows settled before sending are there.
    assert seen[0][3]
    assert seen[0][4]


def test_work_of_a_long_tag_set_has_one_item_per_part(ledger: Ledger) -> None:
    """A 120-tag group (tags in any order) is three work items, parts 0..2, each with all rows."""
    load(ledger, COLUMNS, [[_row(1, tags=_tags(120)), _row(2, tags=tuple(reversed(_tags(120))))]])
    work = ledger.work()
    assert [(item.group_id, item.part, item.members) for item in work] == [
        (1, 0, 2),
        (1, 1, 2),
        (1, 2, 2),
    ]
    assert work[0].group.tags == _tags(120)
    assert all(list(ledger.members(item)) == [(1, _cid(1)), (2, _cid(2))] for item in work)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7])
def test_members_pages_through_every_row_once(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """members() returns every member exactly once, in order, whatever the page size."""
    monkeypatch.setattr(work, "PAGE_ROWS", 2)
    rows = [_row(n) for n in range(1, count + 1)]
    rows.insert(1, _row(100, contact=1))  # a duplicate between pages must not appear
    load(ledger, COLUMNS, [rows])
    (item,) = ledger.work()
    assert item.members == count
    assert list(ledger.members(item)) == [(n, _cid(n)) for n in range(1, count + 1)]


def test_members_may_be_recorded_between_pages(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording outcomes of one page while paging neither skips nor repeats a member."""
    monkeypatch.setattr(work, "PAGE_ROWS", 2)
    load(ledger, COLUMNS, [[_row(n) for n in range(1, 8)]])
    (item,) = ledger.work()
    seen = []
    for row, _ in ledger.members(item):
        seen.append(row)
        _record(ledger, [row], OK if row % 2 else LOST)
    assert seen == [1, 2, 3, 4, 5, 6, 7]


def test_work_after_recording_excludes_settled_rows_but_keeps_failed_ones(ledger: Ledger) -> None:
    """Rows answered success or error are not sent again; failed and unsent rows are."""
    load(ledger, COLUMNS, [[_row(n) for n in range(1, 6)]])
    _record(ledger, [1], OK)
    _record(ledger, [2], NOT_FOUND)
    _record(ledger, [3], LOST, http_status=503, attempts=6)
    (item,) = ledger.work()
    assert item.members == 3
    assert list(ledger.members(item)) == [(3, _cid(3)), (4, _cid(4)), (5, _cid(5))]


def test_work_is_empty_when_everything_is_settled(ledger: Ledger) -> None:
    """Once every row has an answer there is no work item left."""
    load(ledger, COLUMNS, [[_row(1), _row(2)]])
    _record(ledger, [1, 2], OK)
    assert ledger.work() == []


def test_work_of_a_multi_part_row_lists_only_parts_still_owed(ledger: Ledger) -> None:
    """A row whose part 0 succeeded and part 1 failed is owed part 1 only."""
    load(ledger, COLUMNS, [[_row(1, tags=_tags(60))]])
    _record(ledger, [1], OK, part=0)
    _record(ledger, [1], LOST, part=1)
    assert [(item.part, item.members) for item in ledger.work()] == [(1, 1)]


# -- outcomes in the report -------------------------------------------------------------------


@pytest.mark.parametrize("ways", [1, 2, 8, 9, 30])  # a statement per outcome up to 8
def test_a_batch_answered_in_many_ways_keeps_each_rows_own_outcome(
    ledger: Ledger, ways: int
) -> None:
    """However many distinct answers a batch has (the API names each contact's tags before the
    change), each row gets its own; a batch recorded again replaces its rows' outcomes."""
    load(ledger, COLUMNS, [[_row(n) for n in range(1, 31)]])
    answers = [
        ContactOutcome(Status.SUCCESS, "Tags added", (f"t{k}", "old"), ("vip",), ())
        if k % 3
        else ContactOutcome(Status.ERROR, f"Contact {k} not found")
        for k in range(ways)
    ]
    outcomes = tuple(answers[n % ways] for n in range(30))
    batch = _batch(ledger, list(range(1, 31)))
    ledger.record(BatchOutcome(batch, (LOST,) * 30, 503, 6, answered=False))
    ledger.record(BatchOutcome(batch, outcomes, 201, 2))
    lines = _by_row(ledger)
    for n in range(1, 31):
        answer = answers[(n - 1) % ways]
        assert (lines[n].status, lines[n].message, lines[n].old_tags) == (
            answer.status,
            answer.message,
            answer.old_tags,
        )
        assert (lines[n].tags_added, lines[n].http_status, lines[n].attempts) == (
            answer.tags_added,
            201,
            2,
        )


def test_recorded_outcomes_show_in_the_lines(ledger: Ledger) -> None:
    """Each row's line carries its status, message, tag lists, http status and attempts."""
    load(ledger, COLUMNS, [[_row(n) for n in range(1, 5)]])
    _record(ledger, [1], OK, attempts=2)
    _record(ledger, [2], NOT_FOUND)
    _record(ledger, [3], LOST, http_status=503, attempts=6)
    lines = _by_row(ledger)
    assert lines[1] == ReportLine(
        row=1,
        contact_id=_cid(1),
        location_id="LOC1",
        action="add",
        tags=("vip",),
        status=Status.SUCCESS,
        message="Tags added",
        old_tags=("old",),
        tags_added=("vip",),
        tags_removed=(),
        http_status=201,
        attempts=2,
        extra=("r1@example.com", "vip"),
        line=2,
        resolved_by="id",
    )
    assert (lines[2].status, lines[2].message, lines[2].old_tags, lines[2].tags_added) == (
        Status.ERROR,
        "Contact not found",
        None,
        None,
    )
    assert (lines[2].http_status, lines[2].attempts) == (201, 1)
    assert (lines[3].status, lines[3].message, lines[3].http_status, lines[3].attempts) == (
        Status.FAILED,
        "HTTP 503 Service Unavailable (after 6 attempts)",
        503,
        6,
    )


def test_rows_never_recorded_are_pending_with_the_given_message(ledger: Ledger) -> None:
    """A row no request settled is pending, with the caller's message and no http fields."""
    load(ledger, COLUMNS, [[_row(1), _row(2)]])
    _record(ledger, [1], OK)
    line = _by_row(ledger)[2]
    assert (line.status, line.message) == (Status.PENDING, PENDING)
    assert (line.old_tags, line.tags_added, line.http_status, line.attempts) == (
        None,
        None,
        None,
        None,
    )
    assert [line.message for line in ledger.lines("would be sent")] == [
        "Tags added",
        "would be sent",
    ]


def test_a_request_with_no_http_answer_records_failed_without_status(ledger: Ledger) -> None:
    """A batch lost to the network is failed with an empty http status."""
    load(ledger, COLUMNS, [[_row(1)]])
    _record(ledger, [1], LOST, http_status=None, attempts=6)
    line = _by_row(ledger)[1]
    assert (line.status, line.http_status, line.attempts) == (Status.FAILED, None, 6)


def test_failed_row_recorded_later_as_success_is_success(ledger: Ledger) -> None:
    """A retried row's later answer replaces its failure (resume)."""
    load(ledger, COLUMNS, [[_row(1)]])
    _record(ledger, [1], LOST, http_status=502, attempts=6)
    _record(ledger, [1], OK, attempts=1)
    line = _by_row(ledger)[1]
    assert (line.status, line.message, line.http_status, line.attempts) == (
        Status.SUCCESS,
        "Tags added",
        201,
        1,
    )


def test_duplicate_keeps_its_status_after_the_first_row_is_answered(ledger: Ledger) -> None:
    """A duplicate stays a duplicate in the report whatever became of the row it repeats."""
    load(ledger, COLUMNS, [[_row(1, contact=1), _row(2, contact=1)]])
    _record(ledger, [1], OK)
    assert [line.status for line in _lines(ledger)] == [Status.SUCCESS, Status.DUPLICATE]


def test_the_report_stage_counts_every_row_across_blocks(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner counts the report's rows a block at a time: the counts, the top reasons and
    the examples of rows never sent are those of every row, wherever the blocks split them."""
    monkeypatch.setattr(reading, "REPORT_BLOCK", 3)
    monkeypatch.setattr(rendering, "REPORT_BLOCK", 2)
    rows = [
        _row(1, invalid="contact id is empty"),
        _row(2),
        _row(3, contact=2),  # a duplicate of row 2
        *(_row(n) for n in range(4, 10)),
        _row(10, invalid="location id is empty"),
    ]
    load(ledger, COLUMNS, [rows])
    _record(ledger, [2, 4], OK)
    _record(ledger, [5, 6, 7], LOST, http_status=503, attempts=6)
    _record(ledger, [8], NOT_FOUND)
    result = report(
        ledger,
        tmp_path / "report.csv",
        pending_message(None),
        {},
        rejects=None,
        summary=lambda tallied: {},
        split=None,
        notify=lambda text: None,
    )
    assert result.counts == {
        Status.INVALID: 2,
        Status.SUCCESS: 2,
        Status.DUPLICATE: 1,
        Status.FAILED: 3,
        Status.ERROR: 1,
        Status.PENDING: 1,
    }
    assert result.reasons == [
        (Status.FAILED, LOST.message, 3),
        (Status.ERROR, "Contact not found", 1),
    ]
    assert [(e.row, e.message) for e in result.examples[Status.INVALID]] == [
        (1, "contact id is empty"),
        (10, "location id is empty"),
    ]
    assert [e.row for e in result.examples[Status.DUPLICATE]] == [3]
    assert len((tmp_path / "report.csv").read_text("utf-8").splitlines()) == 1 + 10


# -- rows sent in several parts ---------------------------------------------------------------


def _part(n: int, *, old: tuple[str, ...], added: tuple[str, ...]) -> ContactOutcome:
    return ContactOutcome(Status.SUCCESS, f"part {n} ok", old, added, ())


def test_multi_part_row_is_pending_until_every_part_answered(ledger: Ledger) -> None:
    """A 60-tag row answered only for part 0 is still pending."""
    load(ledger, COLUMNS, [[_row(1, tags=_tags(60))]])
    _record(ledger, [1], _part(0, old=("x",), added=_tags(50)), part=0)
    line = _by_row(ledger)[1]
    assert (line.status, line.message) == (Status.PENDING, PENDING)


def test_multi_part_row_never_answered_is_pending_with_its_reason(ledger: Ledger) -> None:
    """No part answered: pending, with the pending message; a duplicate of it stays one."""
    load(ledger, COLUMNS, [[_row(1, tags=_tags(60)), _row(2, contact=1, tags=_tags(60))]])
    lines = _by_row(ledger)
    assert (lines[1].status, lines[1].message) == (Status.PENDING, PENDING)
    assert (lines[1].old_tags, lines[1].http_status, lines[1].attempts) == (None, None, None)
    assert (lines[2].status, lines[2].message) == (Status.DUPLICATE, "duplicate of row 1")


def test_report_rows_come_in_order_across_blocks_with_multi_part_rows_merged(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are fetched a block at a time: every row once, in input order, each multi-part row
    merged wherever it falls in a block."""
    monkeypatch.setattr(reading, "REPORT_BLOCK", 2)
    load(
        ledger,
        COLUMNS,
        [[_row(n, tags=_tags(60) if n in (2, 5) else ("vip",)) for n in range(1, 7)]],
    )
    _record(ledger, [1, 3, 4, 6], OK)
    _record(ledger, [2, 5], _part(0, old=("x",), added=("t000",)), part=0)
    _record(ledger, [5], _part(1, old=("x",), added=("t050",)), part=1)
    lines = _lines(ledger)
    assert [line.row for line in lines] == [1, 2, 3, 4, 5, 6]
    assert [line.status for line in lines] == [
        Status.SUCCESS,
        Status.PENDING,
        Status.SUCCESS,
        Status.SUCCESS,
        Status.SUCCESS,
        Status.SUCCESS,
    ]
    assert lines[4].tags_added == ("t000", "t050")
    assert [len(cells) for cells in ledger.report_rows(PENDING)] == [len(RESULT_FIELDS) + 2] * 6


def test_multi_part_row_succeeds_when_every_part_succeeded(ledger: Ledger) -> None:
    """Every part succeeded: success, tags_added is the union in order, old_tags from part 0."""
    load(ledger, COLUMNS, [[_row(1, tags=_tags(60))]])
    # Part 1 answers first: the merge must still take old_tags from part 0.
    _record(ledger, [1], _part(1, old=("x", "t000"), added=("t050", "t059")), part=1, attempts=3)
    _record(ledger, [1], _part(0, old=("x",), added=("t000", "t049")), part=0, attempts=2)
    line = _by_row(ledger)[1]
    assert line.status is Status.SUCCESS
    assert line.old_tags == ("x",)
    assert line.tags_added == ("t000", "t049", "t050", "t059")
    assert line.tags_removed == ()
    assert line.message == "part 0 ok"


def test_multi_part_tags_removed_are_the_union_without_repeats(ledger: Ledger) -> None:
    """tags_removed of a multi-part row is every part's list merged, each tag once."""
    load(ledger, COLUMNS, [[_row(1, action="remove", tags=_tags(60))]])
    first = ContactOutcome(Status.SUCCESS, "ok", ("t000", "t055"), (), ("t000", "shared"))
    second = ContactOutcome(Status.SUCCESS, "ok", ("t055",), (), ("shared", "t055"))
    _record(ledger, [1], first, part=0)
    _record(ledger, [1], second, part=1)
    line = _by_row(ledger)[1]
    assert line.tags_removed == ("t000", "shared", "t055")
    assert line.tags_added == ()


def test_multi_part_row_with_a_failed_part_is_failed(ledger: Ledger) -> None:
    """A part that failed makes the row failed, with that part's message, status and attempts."""
    load(ledger, COLUMNS, [[_row(1, tags=_tags(60))]])
    _record(ledger, [1], _part(0, old=("x",), added=("t000",)), part=0, attempts=1)
    _record(ledger, [1], LOST, part=1, http_status=503, attempts=6)
    line = _by_row(ledger)[1]
    assert (line.status, line.message, line.http_status, line.attempts) == (
        Status.FAILED,
        "HTTP 503 Service Unavailable (after 6 attempts)",
        503,
        6,
    )
    assert line.tags_added == ("t000",)


def test_multi_part_row_with_an_error_part_is_error(ledger: Ledger) -> None:
    """A part the API answered with an error makes the (fully answered) row an error."""
    load(ledger, COLUMNS, [[_row(1, tags=_tags(60))]])
    _record(ledger, [1], _part(0, old=("x",), added=("t000",)), part=0)
    _record(ledger, [1], NOT_FOUND, part=1)
    line = _by_row(ledger)[1]
    assert (line.status, line.message) == (Status.ERROR, "Contact not found")


def test_multi_part_failed_part_retried_to_success_makes_the_row_success(ledger: Ledger) -> None:
    """Resuming: a failed part answered later turns the whole row into success."""
    load(ledger, COLUMNS, [[_row(1, tags=_tags(60))]])
    _record(ledger, [1], _part(0, old=("x",), added=("t000",)), part=0)
    _record(ledger, [1], LOST, part=1, http_status=500, attempts=6)
    _record(ledger, [1], _part(1, old=("x", "t000"), added=("t050",)), part=1, attempts=2)
    line = _by_row(ledger)[1]
    assert (line.status, line.old_tags, line.tags_added) == (
        Status.SUCCESS,
        ("x",),
        ("t000", "t050"),
    )
    assert ledger.work() == []


# -- opening, resuming, locking ---------------------------------------------------------------


def test_reopening_an_unfinished_run_resumes_it(state_dir: Path) -> None:
    """Opening the same key again continues the run: resumed, rows and outcomes kept."""
    with Ledger.open(state_dir, KEY) as first:
        assert first.resumed is False
        load(first, COLUMNS, [[_row(1), _row(2)]])
        _record(first, [1], OK)
    with Ledger.open(state_dir, KEY) as again:
        assert again.resumed is True
        assert again.columns == COLUMNS
        assert [line.status for line in _lines(again)] == [Status.SUCCESS, Status.PENDING]
        assert [list(again.members(item)) for item in again.work()] == [[(2, _cid(2))]]


def test_another_key_is_another_run(state_dir: Path) -> None:
    """A different run key (other input or operation) does not see this run's rows."""
    with Ledger.open(state_dir, KEY) as first:
        load(first, COLUMNS, [[_row(1)]])
    with Ledger.open(state_dir, "k2") as other:
        assert other.resumed is False
        assert _lines(other) == []


def _archived(state_dir: Path) -> list[str]:
    return sorted(p.name for p in state_dir.glob(f"run-{KEY}.*.sqlite"))


def test_finished_run_is_kept_under_a_dated_name_and_a_new_one_starts(state_dir: Path) -> None:
    """After finish(), the same key starts a new, empty run; the old file keeps its rows."""
    with Ledger.open(state_dir, KEY) as first:
        load(first, COLUMNS, [[_row(1)]])
        _record(first, [1], OK)
        first.save_counts({}, finished=True)
    with Ledger.open(state_dir, KEY) as second:
        assert second.resumed is False
        assert _lines(second) == []
        load(second, COLUMNS, [[_row(1), _row(2)]])
        assert [line.status for line in _lines(second)] == [Status.PENDING, Status.PENDING]
    (archived,) = _archived(state_dir)
    assert re.fullmatch(rf"run-{KEY}\.\d{{8}}T\d{{6}}Z\.sqlite", archived)
    # The archived file still holds the old run's row and its outcome.
    with contextlib.closing(sqlite3.connect(state_dir / archived)) as db:
        assert db.execute("SELECT row, status FROM results").fetchall() == [(1, "success")]


class _FrozenDatetime(datetime):
    """Every run is created in the same second."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _FrozenDatetime:
        return cls(2026, 1, 2, 3, 4, 5, tzinfo=tz)


def test_runs_created_in_the_same_second_are_all_kept(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two finished runs with the same creation stamp are archived under two names, none lost."""
    monkeypatch.setattr(db_module, "datetime", _FrozenDatetime)
    for rows in (1, 2):
        with Ledger.open(state_dir, KEY) as run:
            assert run.resumed is False
            load(run, COLUMNS, [[_row(n) for n in range(1, rows + 1)]])
            run.save_counts({}, finished=True)
    Ledger.open(state_dir, KEY).close()
    archived = _archived(state_dir)
    assert len(archived) == 2
    assert f"run-{KEY}.20260102T030405Z.sqlite" in archived
    counts = []
    for name in archived:
        with contextlib.closing(sqlite3.connect(state_dir / name)) as db:
            counts.append(db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])
    assert sorted(counts) == [1, 2]


def test_fresh_starts_a_new_run_and_keeps_the_unfinished_one(state_dir: Path) -> None:
    """fresh=True starts a new run even though the old one is unfinished, and keeps the old file."""
    with Ledger.open(state_dir, KEY) as first:
        load(first, COLUMNS, [[_row(1)]])
    with Ledger.open(state_dir, KEY, fresh=True) as second:
        assert second.resumed is False
        assert _lines(second) == []
    assert len(_archived(state_dir)) == 1


def test_run_killed_while_loading_is_discarded_and_restarted(state_dir: Path) -> None:
    """A run that never finished loading is thrown away, not resumed nor archived."""
    Ledger.open(state_dir, KEY).close()  # opened, never loaded: state 'loading'
    with Ledger.open(state_dir, KEY) as again:
        assert again.resumed is False
        assert load(again, COLUMNS, [[_row(1)]]) == 1
        assert len(_lines(again)) == 1
    assert _archived(state_dir) == []


def test_a_load_that_fails_after_committing_some_rows_is_discarded_by_the_next_open(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big file is loaded in committed parts; one that breaks halfway stays 'loading', so the
    next open throws its committed rows away instead of resuming a half-loaded run."""
    monkeypatch.setattr(rows_module, "_LOAD_COMMIT_ROWS", 2)

    def chunks() -> Iterator[Chunk]:
        yield Chunk.of_rows([_row(1), _row(2)], len(COLUMNS))
        yield Chunk.of_rows([_row(3)], len(COLUMNS))
        raise StateError("the input broke halfway")

    with Ledger.open(state_dir, KEY) as first:
        with pytest.raises(StateError, match="halfway"):
            first.load(COLUMNS, chunks())
        committed = first._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
        assert committed == 2  # the first part was committed
    with Ledger.open(state_dir, KEY) as again:
        assert again.resumed is False
        assert load(again, COLUMNS, [[_row(1)]]) == 1
        assert len(_lines(again)) == 1
    assert _archived(state_dir) == []


def test_a_load_writes_the_file_itself_and_answers_then_go_to_the_wal(state_dir: Path) -> None:
    """A load's pages go straight into the state file (not into the WAL, to be copied back
    later); then the file is in WAL mode with NORMAL syncing, which keeps each answer safe."""
    with Ledger.open(state_dir, KEY) as ledger:
        load(ledger, COLUMNS, [[_row(n) for n in range(1, 2_001)]])
        wal = Path(f"{ledger.path}-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        assert ledger._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ledger._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        _record(ledger, [1], OK)
        assert wal.stat().st_size > 0
    reader = sqlite3.connect(ledger.path)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert reader.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 2_000
    finally:
        reader.close()


def test_a_load_that_fails_leaves_the_file_in_wal_mode(state_dir: Path) -> None:
    def chunks() -> Iterator[Chunk]:
        yield Chunk.of_rows([_row(1)], len(COLUMNS))
        raise StateError("the input broke")

    with Ledger.open(state_dir, KEY) as ledger:
        with pytest.raises(StateError, match="broke"):
            ledger.load(COLUMNS, chunks())
        assert ledger._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ledger._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 0


def test_second_open_of_a_busy_state_dir_is_refused(state_dir: Path) -> None:
    """While one ledger holds the state directory, another open (even in this process) raises
    StateLockedError naming the directory and the holder's pid."""
    with Ledger.open(state_dir, KEY):
        with pytest.raises(StateLockedError) as refused:
            Ledger.open(state_dir, "another-key")
        assert str(state_dir) in str(refused.value)
        assert f"pid {os.getpid()}" in str(refused.value)
        assert refused.value.exit_code == 2
    with Ledger.open(state_dir, KEY) as after:  # released on close
        assert after.resumed is False


def test_a_refused_open_leaves_the_holder_able_to_continue(state_dir: Path) -> None:
    """A refused second open neither releases the first one's lock nor touches its run."""
    with Ledger.open(state_dir, KEY) as holder:
        load(holder, COLUMNS, [[_row(1)]])
        with pytest.raises(StateLockedError):
            Ledger.open(state_dir, KEY)
        with pytest.raises(StateLockedError):
            Ledger.open(state_dir, KEY)
        _record(holder, [1], OK)
        assert [line.status for line in _lines(holder)] == [Status.SUCCESS]


def test_unusable_state_dir_is_a_usage_error(tmp_path: Path) -> None:
    """A state directory that cannot be created raises UsageError naming it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    state_dir = blocker / "state"
    with pytest.raises(UsageError, match=re.escape(str(state_dir))):
        Ledger.open(state_dir, KEY)


def test_state_dir_is_created_when_missing(tmp_path: Path) -> None:
    """A missing state directory (and its parents) is created."""
    state_dir = tmp_path / "deep" / "er" / ".batcher"
    with Ledger.open(state_dir, KEY):
        pass
    assert (state_dir / f"run-{KEY}.sqlite").is_file()


def test_a_write_that_fails_stops_the_run_with_a_state_error(ledger: Ledger) -> None:
    """A ledger that cannot record (disk full, file gone) raises StateError (exit 3)."""
    load(ledger, COLUMNS, [[_row(1)]])
    batch = _batch(ledger, [1])
    ledger._db.execute("DROP TABLE settled")  # any sqlite failure on the write will do
    with pytest.raises(StateError, match="cannot record outcomes") as raised:
        ledger.record(BatchOutcome(batch, (OK,), 201, 1))
    assert raised.value.exit_code == 3


@pytest.mark.parametrize(("cores", "threads"), [(1, 0), (2, 2), (8, 2)])
def test_sqlite_sorts_in_two_threads_only_with_a_second_core(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, cores: int, threads: int
) -> None:
    """A second thread for SQLite's sorter (a big index) pays with a core to run on; on one
    core the two take turns and it costs."""
    monkeypatch.setattr(db_module, "cores", lambda: cores)
    with Ledger.open(state_dir, KEY) as ledger:
        assert ledger._db.execute("PRAGMA threads").fetchone()[0] == threads


def _own(n: int) -> ContactOutcome:
    """A success naming contact `n`'s own old tags: a new object each call."""
    return ContactOutcome(Status.SUCCESS, "Tags added", (f"own-{n % 3}",), ("vip",), ())


def test_each_distinct_answer_is_kept_once_and_each_row_keeps_its_old_tags(ledger: Ledger) -> None:
    """Answers alike in all but the contacts' old tags are one row of `answers`, across batches
    and whether recorded a statement per answer (few) or per row (many ways); the report gives
    each row its own old tags."""
    load(ledger, COLUMNS, [[_row(i) for i in range(1, 25)]])
    ledger.record(BatchOutcome(_batch(ledger, [1, 2]), (OK, OK), 201, 1))
    many = list(range(3, 25))  # more ways than a statement per outcome takes
    ledger.record(BatchOutcome(_batch(ledger, many), tuple(_own(n) for n in many), 201, 1))
    again = [OK._replace(old_tags=(f"own-{n % 3}",)) for n in (3, 4)]
    ledger.record(BatchOutcome(_batch(ledger, [3, 4]), tuple(again), 201, 1))

    answers = ledger._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    assert answers == 1
    rows = ledger._db.execute("SELECT row, old_tags FROM results ORDER BY row").fetchall()
    assert rows == [(1, '["old"]'), (2, '["old"]')] + [(n, f'["own-{n % 3}"]') for n in many]
    lines = {line.row: line for line in reading.lines(ledger.report_rows(PENDING))}
    assert lines[5].old_tags == ("own-2",)
    assert lines[5].tags_added == ("vip",)
    assert lines[5].status is Status.SUCCESS


@pytest.mark.parametrize("bound_values", [None, 20, 9])
def test_a_batch_answered_in_many_ways_keeps_each_rows_own_answer(
    ledger: Ledger, bound_values: int | None
) -> None:
    """A batch answered in many ways is written many rows a statement (`db.insert_many`), as
    many as SQLite's limit on bound values allows (9: two a statement): each of its rows, not
    consecutive, keeps its own status, message and old tags, and rows outside it none."""
    load(ledger, COLUMNS, [[_row(i) for i in range(1, 301)]])
    rows = list(range(1, 301, 2))  # 150 rows: two statements of 64, then 22
    batch = _batch(ledger, rows)
    if bound_values is not None:
        ledger._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, bound_values)

    def said(n: int) -> ContactOutcome:
        if n % 7 == 0:
            return ContactOutcome(Status.ERROR, f"contact {n} is deleted")
        return _own(n)

    ledger.record(BatchOutcome(batch, tuple(said(n) for n in rows), 201, 1))

    found = ledger._db.execute(
        "SELECT row, status, message, old_tags FROM results ORDER BY row"
    ).fetchall()
    assert found == [
        (n, "error", f"contact {n} is deleted", None)
        if n % 7 == 0
        else (n, "success", "Tags added", f'["own-{n % 3}"]')
        for n in rows
    ]
    assert ledger._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 1 + len(
        [n for n in rows if n % 7 == 0]
    )


def test_an_answer_a_failed_write_added_is_written_again(ledger: Ledger) -> None:
    """A batch whose transaction does not commit takes its new answers with it: the next batch
    answered so writes them again, rather than pointing at an answer the file never kept."""
    load(ledger, COLUMNS, [[_row(i) for i in range(1, 21)]])
    rows = list(range(1, 11))
    failing = BatchOutcome(_batch(ledger, rows), tuple(_own(n) for n in rows), 201, 1)
    ledger._db.execute("ALTER TABLE settled RENAME TO kept")  # the row writes fail
    with pytest.raises(StateError):
        ledger.record(failing)
    ledger._db.execute("ALTER TABLE kept RENAME TO settled")
    assert ledger._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0

    ledger.record(failing)
    found = ledger._db.execute("SELECT row, status FROM results ORDER BY row").fetchall()
    assert found == [(n, "success") for n in rows]
    later = list(range(11, 21))
    ledger.record(BatchOutcome(_batch(ledger, later), tuple(_own(n) for n in later), 201, 1))

    found = ledger._db.execute("SELECT row, status FROM results ORDER BY row").fetchall()
    assert found == [(n, "success") for n in range(1, 21)]


@pytest.mark.parametrize("bound_values", [None, 20, 9])
def test_rows_inserted_many_a_statement_are_each_kept_as_given(
    ledger: Ledger, bound_values: int | None
) -> None:
    """Valid rows go in many a statement (`db._ROWS_A_STATEMENT`), as many as SQLite's limit on
    bound values allows (9: one a statement), the last few one a statement: every row is kept
    with its own cells and line, whether the chunk asks one thing or several."""
    if bound_values is not None:
        ledger._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, bound_values)
    one_ask = [_row(n) for n in range(1, 151)]  # two statements of 64 rows, then 22
    several = [_row(n, location=f"LOC{n % 3}", tags=(f"t{n % 2}",)) for n in range(151, 301)]
    load(ledger, COLUMNS, [one_ask, several])

    lines = _by_row(ledger)
    assert sorted(lines) == list(range(1, 301))
    for asked in one_ask + several:
        line = lines[asked.row]
        assert (line.contact_id, line.location_id, line.tags) == (
            asked.contact_id,
            asked.location_id,
            asked.tags,
        )
        assert (line.extra, line.line) == (asked.extra, asked.line)


def test_answers_that_differ_by_contact_are_each_recorded_past_the_remembered_ones(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder remembers a bounded number of answers (`outcomes._KEPT_ANSWERS`): past it,
    it forgets them and writes again the ones that come back; every row keeps its own."""
    monkeypatch.setattr(outcomes_module, "_KEPT_ANSWERS", 3)
    load(ledger, COLUMNS, [[_row(i) for i in range(1, 41)]])

    def said(n: int) -> ContactOutcome:
        return ContactOutcome(Status.ERROR, f"contact {n % 10} is deleted")

    for first in (1, 21):
        rows = list(range(first, first + 20))
        ledger.record(BatchOutcome(_batch(ledger, rows), tuple(said(n) for n in rows), 201, 1))

    found = ledger._db.execute("SELECT row, status, message FROM results ORDER BY row").fetchall()
    assert found == [(n, "error", f"contact {n % 10} is deleted") for n in range(1, 41)]
    assert len(ledger._outcomes._ids) <= 3
