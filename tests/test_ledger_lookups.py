"""Step 16 in the ledger: rows given by email wait for their contacts, answers are kept as they
come, and resolved rows are ordered with the rows given by id."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.domain.models import Chunk, Row, Status
from batcher.state import Ledger

COLUMNS = ("email", "tags")
PENDING = "not sent: test stopped"


def _cid(n: int) -> str:
    return f"C{n:019d}"


def _chunk(rows: list[tuple[str, str, tuple[str, ...]]]) -> Chunk:
    """Rows of (contact id or "", email, tags): an id-less row is given by its email."""
    built = [
        Row(n, contact, "LOC1", "add", tags, False, extra=(email, ",".join(tags)), line=n + 1)
        for n, (contact, email, tags) in enumerate(rows, start=1)
    ]
    chunk = Chunk.of_rows(built, len(COLUMNS))
    emails = {i: email for i, (contact, email, _) in enumerate(rows) if not contact}
    return dataclasses.replace(chunk, emails=emails)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "state", "k1") as opened:
        yield opened


def _lines(ledger: Ledger) -> dict[int, tuple[str, str, str]]:
    return {
        line.row: (line.status.value, line.contact_id, line.resolved_by)
        for line in ledger.lines(PENDING)
    }


def test_rows_given_by_email_are_pending_and_unsent_until_resolved(ledger: Ledger) -> None:
    """Before resolving, an id-less row is pending, has no work, and its address is listed once."""
    ledger.load(
        COLUMNS,
        [_chunk([("", "a@x.org", ("vip",)), ("", "a@x.org", ("vip",)), (_cid(3), "", ("vip",))])],
    )
    assert ledger.unresolved() == {"LOC1": ["a@x.org"]}
    assert _lines(ledger) == {
        1: ("pending", "", ""),
        2: ("pending", "", ""),
        3: ("pending", _cid(3), "id"),
    }
    assert [row for item in ledger.work() for row, _ in ledger.members(item)] == [3]


def test_answers_settle_the_rows_and_order_them_with_rows_by_id(ledger: Ledger) -> None:
    """One match is the row's contact (a repeat of a row by id is a duplicate), none is
    not_found, several ambiguous naming the ids; neither of those two is ever sent."""
    ledger.load(
        COLUMNS,
        [
            _chunk(
                [
                    (_cid(7), "", ("vip",)),
                    ("", "seven@x.org", ("vip",)),
                    ("", "nobody@x.org", ("vip",)),
                    ("", "twins@x.org", ("vip",)),
                    ("", "seven@x.org", ("gold",)),
                ]
            )
        ],
    )
    ledger.record_resolutions(
        "LOC1",
        {"seven@x.org": [_cid(7)], "nobody@x.org": [], "twins@x.org": [_cid(8), _cid(9)]},
    )
    assert ledger.unresolved() == {}
    ledger.apply_resolutions()
    lines = {line.row: line for line in ledger.lines(PENDING)}
    assert (lines[2].status, lines[2].contact_id, lines[2].resolved_by) == (
        Status.DUPLICATE,
        _cid(7),
        "email",
    )
    assert lines[2].message == "duplicate of row 1"
    assert (lines[3].status, lines[3].resolved_by) == (Status.NOT_FOUND, "")
    assert '"nobody@x.org"' in lines[3].message
    assert lines[4].status is Status.AMBIGUOUS
    assert _cid(8) in lines[4].message
    assert _cid(9) in lines[4].message
    assert (lines[5].status, lines[5].contact_id) == (Status.PENDING, _cid(7))
    # Row 5 (gold) is contact 7's second change: it waits for row 1.
    work = {(item.round, item.group.tags, item.members) for item in ledger.work()}
    assert work == {(1, ("vip",), 1), (2, ("gold",), 1)}


def test_answers_survive_a_killed_run(tmp_path: Path) -> None:
    """An answer recorded before the process died is not asked for again by the next run."""
    with Ledger.open(tmp_path / "state", "k1") as first:
        first.load(COLUMNS, [_chunk([("", "a@x.org", ("vip",)), ("", "b@x.org", ("vip",))])])
        first.record_resolutions("LOC1", {"a@x.org": [_cid(1)]})
    with Ledger.open(tmp_path / "state", "k1") as again:
        assert again.resumed
        assert again.unresolved() == {"LOC1": ["b@x.org"]}
        summary = again.resolution(examples=5)
        assert summary is not None
        assert (summary.matched, summary.unanswered) == ({"LOC1": 1}, {"LOC1": 1})
        assert [(m.email, m.contact_id) for m in summary.first] == [("a@x.org", _cid(1))]
