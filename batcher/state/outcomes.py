"""Recording answers: each batch's per-contact outcomes in one transaction, and what may have
reached the API unanswered (`batcher.domain.uncertain`: exposure, and judging the rows it
touches)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from batcher.domain.models import Batch, BatchOutcome, ContactOutcome, Status, by_identity
from batcher.domain.uncertain import judge
from batcher.state.codec import dump, encode
from batcher.state.db import insert_many, transaction
from batcher.state.work import Answered

__all__ = ["Outcomes"]

# One answer for many rows, given as a JSON array of row numbers (see `Outcomes.record`).
RECORD_ROWS = """
INSERT OR REPLACE INTO settled SELECT each.value, ?, ?, ? FROM json_each(?) AS each
"""
ADD_ANSWER = "INSERT INTO answers VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?)"
# Rows whose request for `part` may have reached the API without an answer, and which of a
# batch's rows (a JSON array) such a request of an earlier invocation left.
EXPOSE_ROWS = "INSERT OR IGNORE INTO exposed SELECT each.value, ? FROM json_each(?) AS each"
EXPOSED_AMONG = "SELECT row FROM exposed WHERE part = ? AND row IN (SELECT value FROM json_each(?))"
# A batch answered in more ways than this is recorded a row at a time (see `Outcomes.record`).
_FEW_OUTCOMES = 8
# Answers whose ids the recorder remembers, at most (see `Outcomes._id`).
_KEPT_ANSWERS = 1 << 16

# An answer as the answers table keeps it: status, message, tags added and removed (JSON),
# HTTP status, attempts, uncertain, permanent.
Answer = tuple[str, str, str | None, str | None, int | None, int, int, int]


def _answer(result: ContactOutcome, outcome: BatchOutcome, message: str, unsure: int) -> Answer:
    """What the answers table keeps of a contact's outcome in a batch's: all but its old tags."""
    return (
        result.status.value,
        message,
        dump(result.tags_added),
        dump(result.tags_removed),
        outcome.http_status,
        outcome.attempts,
        unsure,
        int(outcome.permanent),
    )


class Outcomes:
    """Writes a run's answers; `answered` is shared with the work queue, `exposed_any` says
    whether any request of the run may have reached the API unanswered (looked up once, then
    kept up to date here)."""

    def __init__(self, db: sqlite3.Connection, answered: Answered, *, exposed_any: bool) -> None:
        self._db = db
        self._answered = answered
        self._exposed_any = exposed_any
        # The answers this recorder wrote, by their fields, and those the open transaction
        # added: forgotten if it does not commit.
        self._ids: dict[Answer, int] = {}
        self._added: list[Answer] = []

    def record(self, outcome: BatchOutcome) -> None:
        """Write one batch's per-contact outcomes in one transaction.

        Each distinct answer is kept once (`answers`, see `_id`) and each row points at its own
        with its contact's old tags (`settled`). Contacts answered alike share one outcome object
        (the client sees to it): each distinct outcome is encoded once; a batch answered in a few
        ways is written by one statement per answer, the rows passed as one JSON array
        (`json_each`), as binding each row's fields from Python cost more than SQLite's work.

        A row a request of which may have reached the API without an answer (this one's
        attempts, or an earlier invocation's: see `batcher.domain.uncertain`) is judged from its
        answer and written with its `uncertain` mark; the request's exposure is kept in the same
        transaction. Nothing of this is looked at for a batch with no exposure in a ledger with
        none (`exposed_any`): the common case costs what it did.
        """
        batch = outcome.batch
        self._answered.up_to = max(self._answered.up_to, max(batch.rows, default=0))
        results = by_identity(outcome.outcomes)
        try:
            with transaction(self._db):
                exposed = self._exposed(outcome, results)
                if exposed:
                    self._record_judged(outcome, results, exposed)
                elif len(results) > _FEW_OUTCOMES:
                    self._record_each(outcome, results)
                else:
                    self._record_alike(outcome, results)
        except BaseException:
            for fields in self._added:
                self._ids.pop(fields, None)
            raise
        finally:
            self._added.clear()

    def record_exposed(self, batch: Batch) -> None:
        """Keep that a request of `batch` may have reached the API without an answer, for a
        request that ends with no outcome to record (its rows stay pending): the next run's
        answer for them is then judged as `record` judges any exposed row."""
        with transaction(self._db):
            self._db.execute(EXPOSE_ROWS, (batch.part, encode(batch.rows)))
        self._exposed_any = True

    def _id(self, fields: Answer) -> int:
        """The id of the answer `fields`, added to the answers table if this recorder has not
        written it yet. Keeping each answer once saves space and time, and is no rule: a
        resumed run starts remembering none, and past `_KEPT_ANSWERS` (answers that differ by
        contact) the remembered ones are forgotten, so memory stays bounded; an answer then
        written again is another row pointed at by the rows after it."""
        answer_id = self._ids.get(fields)
        if answer_id is None:
            if len(self._ids) >= _KEPT_ANSWERS:
                self._ids.clear()
            answer_id = int(self._db.execute(ADD_ANSWER, fields).lastrowid or 0)
            self._ids[fields] = answer_id
            self._added.append(fields)
        return answer_id

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
            result = results[key]
            answer_id = self._id(_answer(result, outcome, result.message, 0))
            self._db.execute(
                RECORD_ROWS, (batch.part, answer_id, dump(result.old_tags), encode(rows))
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
        batch = outcome.batch
        plain: dict[int, tuple[int, str | None]] = {}
        judged: dict[int, tuple[int, str | None]] = {}
        records = []
        for row, result in zip(batch.rows, outcome.outcomes, strict=True):
            key = id(result)
            known = judged if row in exposed else plain
            if key not in known:
                said = judge(batch, result) if known is judged else None
                fields = (
                    _answer(result, outcome, result.message, 0)
                    if said is None
                    else _answer(result, outcome, said, 1)
                )
                known[key] = (self._id(fields), dump(result.old_tags))
            records.append((row, batch.part, *known[key]))
        self._settle(records)

    def _record_each(self, outcome: BatchOutcome, results: Mapping[int, ContactOutcome]) -> None:
        """`record` for a batch answered in many ways (the API's answers name each contact's
        tags before the change, which differ from contact to contact while the rest of their
        answers seldom do): each distinct answer is encoded and looked up once, each row's old
        tags on their own, and the rows go in many a statement (`insert_many`: half the time of
        a statement a row)."""
        ids: dict[tuple[str, str, tuple[str, ...] | None, tuple[str, ...] | None], int] = {}
        encoded: dict[int, tuple[int, str | None]] = {}
        for key, result in results.items():
            fields = (result.status, result.message, result.tags_added, result.tags_removed)
            answer_id = ids.get(fields)
            if answer_id is None:
                answer_id = ids[fields] = self._id(_answer(result, outcome, result.message, 0))
            encoded[key] = (answer_id, dump(result.old_tags))
        part = outcome.batch.part
        self._settle(
            [
                (row, part, *encoded[id(result)])
                for row, result in zip(outcome.batch.rows, outcome.outcomes, strict=True)
            ]
        )

    def _settle(self, records: list[tuple[int, int, int, str | None]]) -> None:
        """Write rows each with its own answer: (row, part, answer id, old tags)."""
        insert_many(self._db, "INSERT OR REPLACE INTO settled", "(?, ?, ?, ?)", 4, records)
