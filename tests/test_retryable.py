"""Whether failed rows are worth retrying is data kept with each outcome (`permanent`), not read
from their message; a state file from before it was kept learns it once, when migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from batcher.domain.errors import RejectedError, ServerError
from batcher.domain.models import Action, Batch, BatchOutcome, Chunk, ContactOutcome, Row, Status
from batcher.sending.sender import failure_message
from batcher.state import Ledger

CONTACTS = [f"C{n:019d}" for n in range(1, 5)]


def _load(ledger: Ledger) -> None:
    rows = [
        Row(n, contact, "LOC1", "add", ("vip",), False, extra=(contact,))
        for n, contact in enumerate(CONTACTS, start=1)
    ]
    ledger.load(["contact_id"], [Chunk.of_rows(rows, 1)])


def _lost(rows: tuple[int, ...], error: Exception) -> BatchOutcome:
    """What the sender records for a request with no usable answer after `error`."""
    assert isinstance(error, RejectedError | ServerError)
    batch = Batch(
        "LOC1", Action.ADD, ("vip",), False, 0, rows, tuple(CONTACTS[n - 1] for n in rows)
    )
    failed = ContactOutcome(Status.FAILED, failure_message(error))
    return BatchOutcome(
        batch, (failed,) * len(rows), error.status, 1, answered=False, permanent=error.permanent
    )


def test_rows_the_api_refused_are_not_counted_as_worth_retrying(tmp_path: Path) -> None:
    """A 422 is permanent (`RejectedError.permanent`), a 503 is not: only the 503's rows count."""
    with Ledger.open(tmp_path, "k") as ledger:
        _load(ledger)
        assert ledger.retryable_failed() == 0
        ledger.record(_lost((1, 2), RejectedError("HTTP 422: bad contact", status=422)))
        assert ledger.retryable_failed() == 0
        ledger.record(_lost((3,), ServerError("HTTP 503: Service Unavailable", status=503)))
        assert ledger.retryable_failed() == 1


# A state file's answers as Step 14 kept them: one wide `results` row per (row, part), without
# `permanent` (see `batcher.state.schema.ANSWERS`).
BEFORE_STEP_15 = """
CREATE TABLE wide (
    row INTEGER NOT NULL,
    part INTEGER NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    old_tags TEXT,
    tags_added TEXT,
    tags_removed TEXT,
    http_status INTEGER,
    attempts INTEGER NOT NULL,
    uncertain INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (row, part)
) WITHOUT ROWID;
INSERT INTO wide SELECT row, part, status, message, old_tags, tags_added, tags_removed,
    http_status, attempts, uncertain FROM results;
DROP VIEW results;
DROP TABLE settled;
DROP TABLE answers;
ALTER TABLE wide RENAME TO results;
"""


def test_an_older_state_file_learns_which_failed_rows_were_refused_when_continued(
    tmp_path: Path,
) -> None:
    """A results table without `permanent` (before Step 15) gets it on being continued, set
    for the failed rows whose message said the API refused them."""
    with Ledger.open(tmp_path, "k") as ledger:
        _load(ledger)
        ledger.record(_lost((1, 2), RejectedError("HTTP 422: bad contact", status=422)))
        ledger.record(_lost((3,), ServerError("HTTP 503: Service Unavailable", status=503)))
        path = ledger.path
    db = sqlite3.connect(path)
    db.executescript(BEFORE_STEP_15)
    db.close()
    with Ledger.open(tmp_path, "k") as ledger:
        assert ledger.resumed
        assert ledger.retryable_failed() == 1
    db = sqlite3.connect(path)
    marked = dict(db.execute("SELECT row, permanent FROM results"))
    db.close()
    assert marked == {1: 1, 2: 1, 3: 0}
