"""Recording answers: each batch's per-contact outcomes in one transaction, and what may have
reached the API unanswered (`batcher.domain.uncertain`: exposure, and judging the rows it
touches)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from batcher.domain.models import Batch, BatchOutcome, ContactOutcome, Status, by_identity
from batcher.domain.uncertain import judge
from batcher.state.codec import dump, encode
from batcher.state.db import transaction
from batcher.state.work import Answered

__all__ = ["Outcomes"]

# One outcome for many rows, given as a JSON array of row numbers (see `Outcomes.record`).
RECORD_ROWS = """
INSERT OR REPLACE INTO results
SELECT each.value, ?, ?, ?, ?, ?, ?, ?, ?, 0, ? FROM json_each(?) AS each
"""
# Rows whose request for `part` may have reached the API without an answer, and which of a
# batch's rows (a JSON array) such a request of an earlier invocation left.
EXPOSE_ROWS = "INSERT OR IGNORE INTO exposed SELECT each.value, ? FROM json_each(?) AS each"
EXPOSED_AMONG = "SELECT row FROM exposed WHERE part = ? AND row IN (SELECT value FROM json_each(?))"
# A batch answered in more ways than this is recorded a row at a time (see `Outcomes.record`).
_FEW_OUTCOMES = 8


def _fields(result: ContactOutcome) -> tuple[str, str, str | None, str | None, str | None]:
    """An outcome's fields as the results table keeps them."""
    return (
        result.status.value,
        result.message,
        dump(result.old_tags),
        dump(result.tags_added),
        dump(result.tags_removed),
    )


class Outcomes:
    """Writes a run's answers; `answered` is shared with the work queue, `exposed_any` says
    whether any request of the run may have reached the API unanswered (looked up once, then
    kept up to date here)."""

    def __init__(self, db: sqlite3.Connection, answered: Answered, *, exposed_any: bool) -> None:
        self._db = db
        self._answered = answered
        self._exposed_any = exposed_any

    def record(self, outcome: BatchOutcome) -> None:
        """Write one batch's per-contact outcomes in one transaction.

        Contacts answered alike share one outcome object (the client sees to it): each distinct
        outcome is encoded once and written for all its rows by one statement, the rows passed
        as one JSON array (`json_each`): binding a row's nine fields from Python cost more than
        SQLite's own work for it.

        A row a request of which may have reached the API without an answer (this one's
        attempts, or an earlier invocation's: see `batcher.domain.uncertain`) is judged from its
        answer and written with its `uncertain` mark; the request's exposure is kept in the same
        transaction. Nothing of this is looked at for a batch with no exposure in a ledger with
        none (`exposed_any`): the common case costs what it did.
        """
        batch = outcome.batch
        self._answered.up_to = max(self._answered.up_to, max(batch.rows, default=0))
        results = by_identity(outcome.outcomes)
        with transaction(self._db):
            exposed = self._exposed(outcome, results)
            if exposed:
                self._record_judged(outcome, results, exposed)
            elif len(results) > _FEW_OUTCOMES:
                self._record_each(outcome, results)
            else:
                self._record_alike(outcome, results)

    def record_exposed(self, batch: Batch) -> None:
        """Keep that a request of `batch` may have reached the API without an answer, for a
        request that ends with no outcome to record (its rows stay pending): the next run's
        answer for them is then judged as `record` judges any exposed row."""
        with transaction(self._db):
            self._db.execute(EXPOSE_ROWS, (batch.part, encode(batch.rows)))
        self._exposed_any = True

    def _record_alike(self, outcome: BatchOutcome, results: Mapping[int, ContactOutcome]) -> None:
        """`record` for a batch answered in a few ways: a statement per distinct outcome."""
        batch = outcome.batch
        rows_of: dict[int, list[int]] = {}
        if len(results) == 1:
            rows_of = {key: list(batch.rows) for key in results}
        else:
            for row, result in zip(batch.rows, outcome.outcomes, strict=True):
                rows_of.setdefault(id(result), []).append(row)
        for key, rows in rows_of.items():
            self._db.execute(
                RECORD_ROWS,
                (
                    batch.part,
                    *_fields(results[key]),
                    outcome.http_status,
                    outcome.attempts,
                    int(outcome.permanent),
                    encode(rows),
                ),
            )

    def _exposed(
        self, outcome: BatchOutcome, results: Mapping[int, ContactOutcome]
    ) -> frozenset[int]:
        """The batch's rows a request of which may have reached the API without an answer;
        this batch's own exposure is written to the `exposed` table on the way.

        Exposed: every row of a request with such an attempt, and the contacts a 201 left
        without a usable entry (`failed`: the API applied the request, and says nothing of
        them); and, once the ledger holds any, the rows an earlier request left so.
        """
        batch = outcome.batch
        if outcome.exposed:
            newly: Sequence[int] = batch.rows
        elif outcome.answered and any(r.status is Status.FAILED for r in results.values()):
            newly = [
                row
                for row, result in zip(batch.rows, outcome.outcomes, strict=True)
                if result.status is Status.FAILED
            ]
        else:
            newly = ()
        if newly:
            self._db.execute(EXPOSE_ROWS, (batch.part, encode(newly)))
            self._exposed_any = True
        if outcome.exposed:
            return frozenset(batch.rows)
        if not self._exposed_any:
            return frozenset()
        found = self._db.execute(EXPOSED_AMONG, (batch.part, encode(batch.rows)))
        return frozenset(row for (row,) in found)

    def _record_judged(
        self,
        outcome: BatchOutcome,
        results: Mapping[int, ContactOutcome],
        exposed: frozenset[int],
    ) -> None:
        """`record` for a batch with exposed rows: a statement a row, each exposed one judged
        (`batcher.domain.uncertain.judge`: once per distinct outcome) and marked uncertain
        unless its answer proves that the lost attempt changed nothing."""
        encoded = {key: _fields(result) for key, result in results.items()}
        judged: dict[int, str | None] = {}
        batch, http_status, attempts = outcome.batch, outcome.http_status, outcome.attempts
        permanent = int(outcome.permanent)
        records = []
        for row, result in zip(batch.rows, outcome.outcomes, strict=True):
            status, message, *lists = encoded[id(result)]
            unsure = 0
            if row in exposed:
                key = id(result)
                if key not in judged:
                    judged[key] = judge(batch, result)
                said = judged[key]
                if said is not None:
                    message, unsure = said, 1
            records.append(
                (row, batch.part, status, message, *lists, http_status, attempts, unsure, permanent)
            )
        self._db.executemany(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", records
        )

    def _record_each(self, outcome: BatchOutcome, results: Mapping[int, ContactOutcome]) -> None:
        """`record` for a batch answered in many ways (the API's answers name each contact's
        tags before the change, which differ from contact to contact): a statement a row, in one
        `executemany`, each distinct outcome encoded once; a statement per outcome cost ten
        times more."""
        encoded = {key: _fields(result) for key, result in results.items()}
        batch, http_status, attempts = outcome.batch, outcome.http_status, outcome.attempts
        permanent = int(outcome.permanent)
        self._db.executemany(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            [
                (row, batch.part, *encoded[id(result)], http_status, attempts, permanent)
                for row, result in zip(batch.rows, outcome.outcomes, strict=True)
            ],
        )
