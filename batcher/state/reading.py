"""Reading a run back: the report's rows, rows by status, the first rows never sent, and the
rows by status of a run another process is sending (read-only).

The report's rows come out of one SQL query as the report's columns (`batcher.domain.fields`):
the result fields (lists as their JSON text), then the input's cells. SQL does the joining and
the formatting; only rows of several parts (over 50 tags) are merged in Python: their status
comes as NULL, which no other row has, so that the rows go out as SQLite makes them (no column
to strip).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from batcher.domain.fields import (
    ACTION,
    ATTEMPTS,
    CONTACT_ID,
    HTTP_STATUS,
    INPUT,
    LINE,
    LOCATION_ID,
    MESSAGE,
    OLD_TAGS,
    RESOLVED_BY,
    RESULT_FIELDS,
    ROW,
    STATUS,
    TAGS,
    TAGS_ADDED,
    TAGS_REMOVED,
    UNCERTAIN,
)
from batcher.domain.models import Cell, Inert, ReportLine, Status
from batcher.domain.uncertain import NOTE
from batcher.state.codec import dump, load
from batcher.state.db import read_only
from batcher.state.schema import Schema

__all__ = [
    "LAST_ROW",
    "REPORT_BLOCK",
    "ReportReader",
    "first_rows",
    "lines",
    "live_counts",
    "retryable_failed",
    "status_counts",
]

# Each result field as the report query selects it. `{text}`-wrapped ones are text cells that
# may need making inert (see `ReportReader.blocks`); a row of several parts gets NULL as its
# status, to be merged.
_SELECTED = {
    "row": "r.row",
    "line": "r.line",
    "contact_id": "{contact_id}",
    "location_id": "{location_id}",
    "action": "{action}",
    "tags": "r.tags",
    "status": """CASE WHEN r.pre_status IS NOT NULL THEN r.pre_status{parted}
            WHEN s.status IS NULL THEN 'pending' ELSE s.status END""",
    "message": "{message}",
    "old_tags": "{old_tags}",
    "tags_added": "s.tags_added",
    "tags_removed": "s.tags_removed",
    "http_status": "s.http_status",
    "attempts": "s.attempts",
    "uncertain": """CASE WHEN {uncertain} THEN 'true'
            WHEN (s.status IS NULL OR s.status = 'failed') AND r.pre_status IS NULL
                 AND {exposed} THEN 'true'
            ELSE 'false' END""",
    "resolved_by": "{resolved_by}",
}
# The report, one row per input row in input order, as the report's columns.
REPORT_ROWS = f"""
SELECT {", ".join(_SELECTED[name] for name in RESULT_FIELDS)}{{cells}}
FROM rows AS r{{groups}}
{{answers}}{{pending}}{{lookups}}
WHERE r.row BETWEEN :first AND :last
ORDER BY r.row
"""
# Each row's first part's answer (`s`). In a file of this version, the row's entry in `settled`
# (`t`, which also holds the contact's old tags) and the answer it points at; in an older one,
# its row of the wide `results` table (see `batcher.state.schema.ANSWERS`).
_ANSWERS = """LEFT JOIN settled AS t ON t.row = r.row AND t.part = 0
LEFT JOIN answers AS s ON s.id = t.answer"""
_WIDE = "LEFT JOIN results AS s ON s.row = r.row AND s.part = 0"
# Past any row number (SQLite's largest integer): the report's rows up to the last row.
LAST_ROW = 2**63 - 1
# Report rows are fetched, merged and passed on this many at a time.
REPORT_BLOCK = 2_000
Block = list[tuple[Cell, ...]]
# A report row's status (NULL for a row of several parts, to be merged).
_STATUS = itemgetter(STATUS)
# `{pre_message}` and `{answer}`: the texts from the input and from the API, which may need
# making inert; the others are batcher's own and start with "not sent". A row whose answer is
# not final (failed, pending) and a request of which may have reached the API unanswered
# (`{exposed}`) says so (`:lost`); a final answer's message was judged when it was recorded.
_MESSAGE = """CASE
    WHEN r.pre_status IS NOT NULL THEN {pre_message}
    WHEN s.status IS NOT NULL AND (s.status != 'failed' OR {uncertain} OR NOT {exposed})
        THEN {answer}
    WHEN s.status IS NOT NULL THEN {answer} || :lost
    WHEN r.wait_row IS NOT NULL AND EXISTS (
        SELECT 1 FROM results AS f WHERE f.row = r.wait_row AND f.status = 'failed'
    ) THEN 'not sent: waits for row ' || r.wait_row || ' (the same contact''s previous change), '
           || 'which failed; running the same command again retries both, in order'
    WHEN {exposed} THEN {pending} || :lost
    ELSE {pending}
END"""
# Whether a row has a request that may have reached the API without an answer.
_EXPOSED = "EXISTS (SELECT 1 FROM exposed AS x WHERE x.row = r.row)"
PARTS_OF_GROUP = """
SELECT g.parts FROM rows AS r JOIN groups AS g ON g.id = r.group_id WHERE r.row = ?
"""
PARTS_OF_ROW = """
SELECT part, status, message, old_tags, tags_added, tags_removed, http_status, attempts,
       {uncertain}
FROM results WHERE row = ? ORDER BY part
"""


class ReportReader:
    """The report's rows of a state file (`schema` says what it keeps: an older file has no
    exposure, so nothing uncertain)."""

    def __init__(self, db: sqlite3.Connection, schema: Schema) -> None:
        self._db = db
        self._schema = schema

    def blocks(
        self,
        columns: int,
        pending_message: str,
        by_location: Mapping[str, str],
        inert: Inert | None,
        span: tuple[int, int],
    ) -> Iterator[Block]:
        """The rows numbered `span` (first, last), `REPORT_BLOCK` at a time, with the input's
        `columns` cells. Rows never sent get `pending_message`, or their location's own in
        `by_location`. With `inert`, text cells that could start a spreadsheet formula are made
        inert (for CSV): SQL picks the few cells whose first character is suspect, and only
        those go through `inert.make`."""
        db = self._db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS pending_messages (location_id, message)")
        db.execute("DELETE FROM temp.pending_messages")
        db.executemany("INSERT INTO temp.pending_messages VALUES (?, ?)", by_location.items())
        if inert is not None:
            if any(48 <= ord(c) <= 57 or 65 <= ord(c) <= 126 for c in inert.suspects):
                raise ValueError("a suspect first character among the plain ones")
            if any(inert.make(f"{c}x") != f"'{c}x" for c in inert.triggers):
                raise ValueError("a trigger that inert.make does not mark")
            db.create_function("inert", 1, inert.make, deterministic=True)
            # NUL is left to `make`: SQL text would end at it.
            marked = ", ".join(str(ord(c)) for c in sorted(inert.triggers) if c != "\0")

            def text(expr: str) -> str:
                # Letters and digits first (nearly every cell): a range test in SQL. A trigger
                # (a phone number's "+", a whole column of many files) is marked in SQL too: a
                # call into Python for each cost a tenth of the report's time. Any other first
                # character goes to `inert.make`, which knows the suspect ones.
                plain = f"unicode({expr}) BETWEEN 65 AND 126 OR unicode({expr}) BETWEEN 48 AND 57"
                trigger = (
                    f"WHEN unicode({expr}) IN ({marked}) THEN '''' || {expr} " if marked else ""
                )
                return f"CASE WHEN {plain} THEN {expr} {trigger}ELSE inert({expr}) END"
        else:

            def text(expr: str) -> str:
                return expr

        schema = self._schema
        # A state file of a version that kept no exposure has nothing uncertain, and nor has a
        # run with no request that may have gone unanswered (most): no lookup a row then.
        uncertain = "s.uncertain" if schema.uncertain else "0"
        exposed = _EXPOSED if schema.exposed and _any(db, "exposed") else "0"
        # How each row's contact id was found (Step 16): a row given by email is `email` once
        # resolved, empty while not (or not found, ambiguous); a row with an id is `id`.
        by_id = "CASE WHEN r.contact_id != '' THEN 'id' ELSE '' END"
        emailed = schema.lookups and _any(db, "lookups")
        resolved_by = (
            f"CASE WHEN l.row IS NULL THEN {by_id} WHEN r.contact_id != '' THEN 'email' ELSE '' END"
            if emailed
            else by_id
        )
        # Most runs have no row of several parts, and no location with a message of its own:
        # the joins they would need are left out (a ninth of the query's time).
        parted = _any(db, "groups WHERE parts > 1")
        query = REPORT_ROWS.format(
            contact_id=text("r.contact_id"),
            location_id=text("r.location_id"),
            action=text("r.action"),
            # Only the message's outside texts are looked at: making the whole CASE inert
            # would have SQLite work it out three times a row.
            message=_MESSAGE.format(
                pre_message=text("r.pre_message"),
                answer=text("s.message"),
                uncertain=uncertain,
                exposed=exposed,
                pending="COALESCE(p.message, :pending)" if by_location else ":pending",
            ),
            parted="\n            WHEN g.parts > 1 THEN NULL" if parted else "",
            groups="\nLEFT JOIN groups AS g ON g.id = r.group_id" if parted else "",
            pending=(
                "\nLEFT JOIN temp.pending_messages AS p ON p.location_id = r.location_id"
                if by_location
                else ""
            ),
            uncertain=uncertain,
            exposed=exposed,
            resolved_by=resolved_by,
            lookups="\nLEFT JOIN lookups AS l ON l.row = r.row" if emailed else "",
            answers=_ANSWERS if schema.answers else _WIDE,
            old_tags="t.old_tags" if schema.answers else "s.old_tags",
            cells="".join(f", {text(f'r.c{i}')}" for i in range(columns)),
        )
        make = inert.make if inert is not None else None
        first, last = span
        cursor = db.execute(
            query, {"pending": pending_message, "lost": NOTE, "first": first, "last": last}
        )
        while block := cursor.fetchmany(REPORT_BLOCK):
            # Without rows of several parts, blocks are passed on without a look.
            if parted and None in map(_STATUS, block):
                block = [
                    record
                    if record[STATUS] is not None
                    else self._merged(record, by_location, pending_message, make)
                    for record in block
                ]
            yield block

    def _merged(
        self,
        record: tuple[Cell, ...],
        by_location: Mapping[str, str],
        pending_message: str,
        make: Callable[[str], str] | None,
    ) -> tuple[Cell, ...]:
        """A row sent in several requests, its parts folded (SPEC "Report"): `success` only if
        every part succeeded; tags_added/tags_removed the unions, old_tags from the first answer.
        It is uncertain when a part is, or a part without a final answer was exposed; its
        message is then an uncertain part's (which says what is known), or says so.
        """
        cells = list(record)
        row = record[ROW]
        parts = int(self._db.execute(PARTS_OF_GROUP, (row,)).fetchone()[0])
        query = PARTS_OF_ROW.format(uncertain="uncertain" if self._schema.uncertain else "0")
        results = [
            _Result(part, Status(status), message, load(old), load(added), load(removed), h, n, u)
            for part, status, message, old, added, removed, h, n, u in self._db.execute(
                query, (row,)
            )
        ]
        if not results:
            # Never answered: pending, with the query's message and mark (which know why).
            cells[STATUS] = Status.PENDING.value
            return tuple(cells)
        final = {r.part for r in results if r.status is not Status.FAILED}
        exposed = self._schema.exposed and any(
            part not in final
            for (part,) in self._db.execute("SELECT part FROM exposed WHERE row = ?", (row,))
        )
        unsure = exposed or any(r.uncertain for r in results)
        failed = [r for r in results if r.status is Status.FAILED]
        errors = [r for r in results if r.status is Status.ERROR]
        # The request that settled the row: the failed one if any, else the last one answered.
        settling = failed[0] if failed else results[-1]
        if failed:
            status, message = Status.FAILED, _said(failed, unsure)
        elif len(results) < parts:
            status = Status.PENDING
            message = by_location.get(str(record[LOCATION_ID]), pending_message)
            message += NOTE if unsure else ""
        elif errors:
            status, message = Status.ERROR, _said(errors, unsure)
        else:
            status, message = Status.SUCCESS, _said(results, unsure)
        cells[STATUS] = status.value
        cells[MESSAGE] = make(message) if make is not None else message
        cells[OLD_TAGS] = dump(results[0].old_tags)
        cells[TAGS_ADDED] = dump(_union(r.tags_added for r in results))
        cells[TAGS_REMOVED] = dump(_union(r.tags_removed for r in results))
        cells[HTTP_STATUS] = settling.http_status
        cells[ATTEMPTS] = settling.attempts
        cells[UNCERTAIN] = "true" if unsure else "false"
        return tuple(cells)


def _any(db: sqlite3.Connection, source: str) -> bool:
    """Whether `source` (a table, and a WHERE clause) has a row."""
    return db.execute(f"SELECT 1 FROM {source} LIMIT 1").fetchone() is not None


def lines(rows: Iterable[tuple[Cell, ...]]) -> Iterator[ReportLine]:
    """Report rows as ReportLines (lists as tuples): for undo, tests and library callers."""
    for cells in rows:
        tags, old, added = cells[TAGS], cells[OLD_TAGS], cells[TAGS_ADDED]
        removed, http, attempts = cells[TAGS_REMOVED], cells[HTTP_STATUS], cells[ATTEMPTS]
        yield ReportLine(
            row=int(cells[ROW] or 0),
            contact_id=str(cells[CONTACT_ID]),
            location_id=str(cells[LOCATION_ID]),
            action=str(cells[ACTION]),
            tags=load(None if tags is None else str(tags)) or (),
            status=Status(str(cells[STATUS])),
            message=str(cells[MESSAGE]),
            old_tags=load(None if old is None else str(old)),
            tags_added=load(None if added is None else str(added)),
            tags_removed=load(None if removed is None else str(removed)),
            http_status=None if http is None else int(http),
            attempts=None if attempts is None else int(attempts),
            extra=tuple(str(cell) for cell in cells[INPUT:]),
            line=int(cells[LINE] or 0),
            uncertain=cells[UNCERTAIN] == "true",
            resolved_by=str(cells[RESOLVED_BY] or ""),
        )


def status_counts(db: sqlite3.Connection, rows: int) -> dict[str, int]:
    """Rows by status as the report would show them, counted in SQL (for a plan), of `rows`.

    A row sent in several parts counts by its first part's answer.
    """
    # No scan of the rows: those settled before sending come from their small index, the
    # answered ones from the results (a sent row has no pre-status), the rest are pending.
    counts: dict[str, int] = dict(
        db.execute(
            "SELECT pre_status, COUNT(*) FROM rows WHERE pre_status IS NOT NULL GROUP BY 1"
        ).fetchall()
    )
    for status, count in db.execute(
        "SELECT status, COUNT(*) FROM results WHERE part = 0 GROUP BY 1"
    ).fetchall():
        counts[status] = counts.get(status, 0) + count
    pending = rows - sum(counts.values())
    if pending:
        counts["pending"] = pending
    return counts


def first_rows(
    db: sqlite3.Connection, pre_status: str, limit: int
) -> list[tuple[int, int, str, str]]:
    """(row, line, contact id, message) of the first rows settled before sending as
    `pre_status` (invalid, duplicate): the examples a plan shows."""
    return db.execute(
        "SELECT row, line, contact_id, pre_message FROM rows WHERE pre_status = ? "
        "ORDER BY row LIMIT ?",
        (pre_status, limit),
    ).fetchall()


def retryable_failed(db: sqlite3.Connection, schema: Schema) -> int:
    """Failed rows that sending again may settle: those with a failed request that the API did
    not refuse (`permanent`, kept with each outcome)."""
    permanent = "permanent" if schema.permanent else "0"
    (count,) = db.execute(
        f"SELECT COUNT(DISTINCT row) FROM results WHERE status = 'failed' AND NOT {permanent}"
    ).fetchone()
    return int(count)


# Rows by status as the report would give them now (a row of several parts as `_merged` folds
# it): failed if a part failed, pending while a part is unanswered, error if a part was refused.
LIVE_COUNTS = """
WITH by_row AS (
    SELECT row, COUNT(*) AS n, MAX(status = 'failed') AS failed, MAX(status = 'error') AS error
    FROM results GROUP BY row
)
SELECT CASE WHEN r.pre_status IS NOT NULL THEN r.pre_status
            WHEN a.row IS NULL THEN 'pending'
            WHEN a.failed THEN 'failed'
            WHEN a.n < g.parts THEN 'pending'
            WHEN a.error THEN 'error'
            ELSE 'success' END AS status,
       COUNT(*)
FROM rows AS r
LEFT JOIN groups AS g ON g.id = r.group_id
LEFT JOIN by_row AS a ON a.row = r.row
GROUP BY status
"""


def live_counts(path: Path) -> dict[str, int] | None:
    """A run's rows by status now, read from its state file without changing it (None when the
    file cannot be read, or holds no rows yet). Works while another process is sending: the
    counts are those of the outcomes it has recorded so far."""
    try:
        db = read_only(path)
        try:
            counts = {str(status): int(n) for status, n in db.execute(LIVE_COUNTS)}
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return counts or None


class _Result(NamedTuple):
    part: int
    status: Status
    message: str
    old_tags: tuple[str, ...] | None
    tags_added: tuple[str, ...] | None
    tags_removed: tuple[str, ...] | None
    http_status: int | None
    attempts: int
    uncertain: int


def _said(results: list[_Result], unsure: bool) -> str:
    """The message of a row of several parts from `results` (those of its status): an
    uncertain part's, which says what is known, or the first one's, noted when the row is
    uncertain all the same."""
    found = next((r for r in results if r.uncertain), None)
    if found is not None:
        return found.message
    return results[0].message + (NOTE if unsure else "")


def _union(lists: Iterable[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """Tags of every answer in first-seen order; None when no answer carried the list."""
    present = [tags for tags in lists if tags is not None]
    if not present:
        return None
    return tuple(dict.fromkeys(tag for tags in present for tag in tags))
