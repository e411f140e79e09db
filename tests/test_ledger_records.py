"""What the ledger keeps beyond the answers: which rows a lost answer may have changed (and
their `uncertain` mark), the run's id, and the report each command wrote (issue 20)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.domain.models import BatchOutcome, ContactOutcome, Status
from batcher.domain.uncertain import NOTE
from batcher.state import Ledger, runs_in
from tests.test_ledger import KEY, PENDING, _batch, _by_row, _row, _tags, load

OK = ContactOutcome(Status.SUCCESS, "Tags updated", ("old",), ("vip",), ())
ALREADY = ContactOutcome(Status.SUCCESS, "Tags updated", ("old", "vip"), (), ())
LOST = ContactOutcome(Status.FAILED, "HTTP 502 (after 6 attempts)")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def ledger(state_dir: Path) -> Iterator[Ledger]:
    with Ledger.open(state_dir, KEY) as opened:
        yield opened


def _exposed(path: Path) -> set[tuple[int, int]]:
    db = sqlite3.connect(path)
    try:
        return set(db.execute("SELECT row, part FROM exposed"))
    finally:
        db.close()


def test_an_exposed_request_marks_its_rows_uncertain_unless_the_answer_proves_otherwise(
    ledger: Ledger,
) -> None:
    """Row 1's answer adds the tag (the lost attempt added nothing); row 2's finds it there."""
    load(ledger, ["email", "tags"], [[_row(1), _row(2), _row(3)]])
    batch = _batch(ledger, [1, 2])
    ledger.record(BatchOutcome(batch, (OK, ALREADY), 201, 3, exposed=True))
    ledger.record(BatchOutcome(_batch(ledger, [3]), (ALREADY,), 201, 1))

    lines = _by_row(ledger)
    assert [lines[n].uncertain for n in (1, 2, 3)] == [False, True, False]
    assert lines[1].message == "Tags updated"
    assert lines[2].message.startswith("Tags updated (uncertain: ")
    assert lines[3].message == "Tags updated"  # never exposed: the API's message as it came
    assert _exposed(ledger.path) == {(1, 0), (2, 0)}


def test_a_request_stopped_after_a_lost_answer_leaves_its_rows_pending_and_uncertain(
    ledger: Ledger,
) -> None:
    load(ledger, ["email", "tags"], [[_row(1), _row(2)]])
    ledger.record_exposed(_batch(ledger, [1]))

    lines = _by_row(ledger)
    assert (lines[1].status, lines[1].uncertain) == (Status.PENDING, True)
    assert lines[1].message == PENDING + NOTE
    assert (lines[2].status, lines[2].uncertain, lines[2].message) == (
        Status.PENDING,
        False,
        PENDING,
    )


def test_the_next_invocation_judges_the_answer_of_a_row_an_earlier_one_exposed(
    state_dir: Path,
) -> None:
    """Known from the state file alone: the answer of the continued run shows nothing lost, but
    the row stays uncertain unless that answer proves otherwise."""
    with Ledger.open(state_dir, KEY) as ledger:
        load(ledger, ["email", "tags"], [[_row(1), _row(2)]])
        ledger.record_exposed(_batch(ledger, [1, 2]))
    with Ledger.open(state_dir, KEY) as ledger:
        assert ledger.resumed
        batch = _batch(ledger, [1, 2])
        ledger.record(BatchOutcome(batch, (ALREADY, OK), 201, 1))
        lines = _by_row(ledger)
    assert [lines[1].uncertain, lines[2].uncertain] == [True, False]


def test_a_failed_row_exposed_later_is_uncertain(ledger: Ledger) -> None:
    """Failed without exposure, then its re-sending stopped after a lost answer: failed still,
    and uncertain."""
    load(ledger, ["email", "tags"], [[_row(1)]])
    batch = _batch(ledger, [1])
    ledger.record(BatchOutcome(batch, (LOST,), 429, 6, answered=False))
    assert not _by_row(ledger)[1].uncertain
    ledger.record_exposed(batch)
    line = _by_row(ledger)[1]
    assert (line.status, line.uncertain) == (Status.FAILED, True)
    assert line.message == LOST.message + NOTE


def test_a_contact_a_201_left_without_an_entry_is_exposed(ledger: Ledger) -> None:
    """The API applied the request and said nothing of that contact."""
    load(ledger, ["email", "tags"], [[_row(1), _row(2)]])
    missing = ContactOutcome(Status.FAILED, "no per-contact answer in the API's response")
    ledger.record(BatchOutcome(_batch(ledger, [1, 2]), (OK, missing), 201, 1))
    lines = _by_row(ledger)
    assert [lines[1].uncertain, lines[2].uncertain] == [False, True]
    assert _exposed(ledger.path) == {(2, 0)}


def test_a_row_of_several_requests_is_uncertain_when_one_part_is(ledger: Ledger) -> None:
    load(ledger, ["email", "tags"], [[_row(1, tags=_tags(60))]])
    part0 = ContactOutcome(Status.SUCCESS, "Tags updated", (), _tags(50), ())
    part1 = ContactOutcome(Status.SUCCESS, "Tags updated", ("t050",), _tags(60)[51:], ())
    ledger.record(BatchOutcome(_batch(ledger, [1], 0), (part0,), 201, 1))
    assert not _by_row(ledger)[1].uncertain
    ledger.record_exposed(_batch(ledger, [1], 1))
    line = _by_row(ledger)[1]
    assert (line.status, line.uncertain) == (Status.PENDING, True)
    ledger.record(BatchOutcome(_batch(ledger, [1], 1), (part1,), 201, 2))
    line = _by_row(ledger)[1]
    assert (line.status, line.uncertain) == (Status.SUCCESS, True)
    assert 'had ["t050"] before this answer' in line.message


def test_each_run_has_its_own_id_also_a_fresh_run_of_the_same_input(state_dir: Path) -> None:
    with Ledger.open(state_dir, KEY) as ledger:
        load(ledger, ["email", "tags"], [[_row(1)]])
        first = ledger.run_id
        assert ledger.invocation == 1
    with Ledger.open(state_dir, KEY) as ledger:
        assert (ledger.run_id, ledger.invocation) == (first, 2)
    with Ledger.open(state_dir, KEY, fresh=True) as ledger:
        assert ledger.run_id not in ("", first)
        assert ledger.invocation == 1


def test_the_run_names_its_latest_complete_report_and_keeps_every_commands(
    state_dir: Path, tmp_path: Path
) -> None:
    """A partial report (rows pending) of a later command does not replace the complete one as
    the run's report; every command's report is kept, with its fingerprint."""
    a, b, c = (tmp_path / name for name in ("a.csv", "b.csv", "c.jsonl"))
    with Ledger.open(state_dir, KEY) as ledger:
        load(ledger, ["email", "tags"], [[_row(1)]])
        ledger.record_report(a, rows=1, complete=False, sha256="aa")
    (info,) = runs_in(state_dir)
    assert (info.report, info.latest_report) == (str(a), str(a))  # none complete: the latest
    with Ledger.open(state_dir, KEY) as ledger:
        ledger.record_report(b, rows=1, complete=True, sha256="bb")
    with Ledger.open(state_dir, KEY) as ledger:
        ledger.record_report(c, rows=1, complete=False, sha256="cc")
    (info,) = runs_in(state_dir)
    assert info.report == str(b)
    assert info.latest_report == str(c)
    assert [(r.invocation, r.format, r.complete, r.sha256) for r in info.reports] == [
        (1, "csv", False, "aa"),
        (2, "csv", True, "bb"),
        (3, "jsonl", False, "cc"),
    ]


def test_a_run_taken_back_by_a_finished_undo_says_so(state_dir: Path) -> None:
    """Only a finished undo counts: one stopped midway is continued, not refused."""
    with Ledger.open(state_dir, "run") as ledger:
        load(ledger, ["email", "tags"], [[_row(1)]])
        ledger.save_counts({"success": 1}, finished=True)
        undone = ledger.run_id
    with Ledger.open(state_dir, "undo", about={"undoes": undone, "report": "/x/u.csv"}) as undo:
        load(undo, ["email", "tags"], [[_row(1)]])
        undo.save_counts({"pending": 1}, finished=False)
    assert [info.undone for info in runs_in(state_dir)] == [None, None]
    with Ledger.open(state_dir, "undo") as undo:
        undo.save_counts({"success": 1}, finished=True)
    run, by = runs_in(state_dir)
    assert by.undoes == undone
    assert run.undone is not None
    assert (run.undone.report, run.undone.run_id) == ("/x/u.csv", by.run_id)
