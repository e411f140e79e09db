"""The run's state in one SQLite file: every input row once, each request's outcomes, the lock.

The ledger is the spine of a run (DESIGN.md): loading writes each row here once; planning reads
the rows still to do; each batch's per-contact outcomes are written in one transaction as they
arrive; the report is read back from here. A process killed at any instant therefore loses no
row: a batch is either recorded whole or will be sent again by the next run of the same command.

Layout of `state.dir`:
    lock                          held (flock) by the one batcher process using the directory
    run-<key>.sqlite              the run of one input content + operation, finished or not
    run-<key>.<created>.sqlite    an earlier finished run of the same key, kept for the record
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import json
import math
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, ParamSpec, Self, TypeVar

from batcher.errors import StateError, StateLockedError, UsageError
from batcher.fields import (
    ACTION,
    ATTEMPTS,
    CONTACT_ID,
    HTTP_STATUS,
    INPUT,
    LINE,
    LOCATION_ID,
    MESSAGE,
    OLD_TAGS,
    ROW,
    STATUS,
    TAGS,
    TAGS_ADDED,
    TAGS_REMOVED,
    UNCERTAIN,
)
from batcher.files import check_trusted, open_private, private_dir
from batcher.machine import cores
from batcher.models import (
    MAX_INPUT_COLUMNS,
    Action,
    Batch,
    BatchOutcome,
    Cell,
    Chunk,
    ContactOutcome,
    Group,
    Inert,
    ReportLine,
    Status,
    by_identity,
)
from batcher.planning import group_of, tag_parts
from batcher.uncertain import NOTE, judge

if TYPE_CHECKING:
    from batcher.repeats import RepeatFinder

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    location_id TEXT NOT NULL,
    action TEXT NOT NULL,
    tags TEXT NOT NULL,            -- JSON array, canonical order
    remove_all INTEGER NOT NULL,
    parts INTEGER NOT NULL         -- requests per member: one per 50-tag slice
);
CREATE TABLE results (             -- one per (row, part) that a request settled
    row INTEGER NOT NULL,
    part INTEGER NOT NULL,
    status TEXT NOT NULL,          -- success, error or failed
    message TEXT NOT NULL,
    old_tags TEXT,
    tags_added TEXT,
    tags_removed TEXT,
    http_status INTEGER,
    attempts INTEGER NOT NULL,
    uncertain INTEGER NOT NULL DEFAULT 0,  -- 1: see batcher.uncertain
    PRIMARY KEY (row, part)
) WITHOUT ROWID;
"""
# Tables a state file written before Step 9 lacks: created with the others, and added when such
# a file is opened to be continued (see `_migrate`).
ADDED_TABLES = """
CREATE TABLE IF NOT EXISTS exposed (  -- (row, part) of a request that may have reached the API
    row INTEGER NOT NULL,             -- without an answer (see batcher.uncertain)
    part INTEGER NOT NULL,
    PRIMARY KEY (row, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reports (  -- the report each invocation of the run wrote
    invocation INTEGER PRIMARY KEY,  -- 1: the command that started the run, 2: the next...
    path TEXT NOT NULL,            -- resolved
    format TEXT NOT NULL,          -- csv, xlsx or jsonl
    rows INTEGER NOT NULL,
    complete INTEGER NOT NULL,     -- 1: no row pending
    sha256 TEXT NOT NULL,          -- of the file's bytes, as written
    written TEXT NOT NULL          -- UTC, ISO 8601
);
"""

# Created by `load`, with one column per input column (c0, c1, ...): the report's input cells
# come back as they are, with no encoding per row.
ROWS_TABLE = """
CREATE TABLE rows (
    row INTEGER PRIMARY KEY,       -- 1-based data row of the input
    line INTEGER NOT NULL,         -- where a person finds it: line in the file, row in the sheet
    contact_id TEXT NOT NULL,
    location_id TEXT NOT NULL,
    action TEXT NOT NULL,
    tags TEXT NOT NULL,            -- JSON array, as the row asked
    group_id INTEGER,              -- NULL when the row is invalid
    round INTEGER,                 -- k: the contact's k-th operation (NULL: never sent)
    wait_row INTEGER,              -- the contact's previous operation, which must settle first
    pre_status TEXT,               -- settled before sending: 'invalid', 'duplicate', or an
                                   -- undo's 'skipped' or 'nothing_to_undo'
    pre_message TEXT NOT NULL{cells}
)
"""

# Built after loading: bulk inserts into an unindexed table are several times faster.
INDEXES = """
CREATE INDEX rows_by_group ON rows (group_id, round, row) WHERE group_id IS NOT NULL;
CREATE INDEX rows_settled_before ON rows (pre_status, row) WHERE pre_status IS NOT NULL;
"""

# Input order per contact (SPEC "Input"). Only contacts (a location's contact id) with more than
# one valid row need any of this; `temp.maybe` holds the rows that may repeat an earlier row's
# contact (see repeats.py: every real repeat is there, with a few rows that merely share a hash
# bit), so only their contacts (`multi`) are looked at. Their rows are found among `{source}`:
# every row, or the rows the repeat filter names as possibly theirs (`temp.candidates`), which
# spares reading every row when there are few such contacts. For those, in row order: a row
# asking exactly what the contact's previous row asked (same group) is a duplicate of the row
# that carries it, and every other row is the contact's next operation: round k+1, waiting for
# the row of round k. (A contact named once that is in `multi` by chance gets round 1 and no
# wait: no change.)
FIND_MULTI = """
CREATE TEMP TABLE multi (location_id, contact_id, PRIMARY KEY (location_id, contact_id))
WITHOUT ROWID;

INSERT OR IGNORE INTO multi
SELECT m.location_id, m.contact_id
FROM temp.maybe CROSS JOIN rows AS m ON m.row = maybe.row
WHERE m.group_id IS NOT NULL;
"""
ALL_ROWS = "rows AS r NOT INDEXED"
CANDIDATE_ROWS = "temp.candidates AS c CROSS JOIN rows AS r ON r.row = c.row"
ORDER_CONTACTS = """
CREATE TEMP TABLE touches AS
SELECT r.row, r.location_id, r.contact_id, r.group_id,
       r.group_id IS LAG(r.group_id) OVER contact AS repeats
FROM {source}
JOIN temp.multi USING (location_id, contact_id)
WHERE r.group_id IS NOT NULL
WINDOW contact AS (PARTITION BY r.location_id, r.contact_id ORDER BY r.row);

CREATE INDEX temp.touches_by_contact ON touches (location_id, contact_id, row);

CREATE TEMP TABLE sequence AS
SELECT row, ROW_NUMBER() OVER contact AS round, LAG(row) OVER contact AS wait_row
FROM touches WHERE NOT repeats
WINDOW contact AS (PARTITION BY location_id, contact_id ORDER BY row);

UPDATE rows SET round = sequence.round, wait_row = sequence.wait_row
FROM sequence WHERE rows.row = sequence.row;

UPDATE rows SET
    round = NULL,
    pre_status = 'duplicate',
    pre_message = 'duplicate of row ' || (
        SELECT MAX(t.row) FROM touches AS t
        WHERE t.location_id = rows.location_id AND t.contact_id = rows.contact_id
          AND t.row < rows.row AND NOT t.repeats
    )
WHERE row IN (SELECT row FROM touches WHERE repeats);

DROP TABLE touches;
DROP TABLE sequence;
DROP TABLE multi;
DROP TABLE maybe;
DROP TABLE IF EXISTS temp.candidates;
"""
# Contacts that may repeat, at most, for their rows to be looked for as candidates (a few rows
# each, kept in a list) rather than by reading every row.
_FEW_CONTACTS = 20_000

# One outcome for many rows, given as a JSON array of row numbers (see `Ledger.record`).
RECORD_ROWS = """
INSERT OR REPLACE INTO results
SELECT each.value, ?, ?, ?, ?, ?, ?, ?, ?, 0 FROM json_each(?) AS each
"""
# Rows whose request for `part` may have reached the API without an answer, and which of a
# batch's rows (a JSON array) such a request of an earlier invocation left.
EXPOSE_ROWS = "INSERT OR IGNORE INTO exposed SELECT each.value, ? FROM json_each(?) AS each"
EXPOSED_AMONG = "SELECT row FROM exposed WHERE part = ? AND row IN (SELECT value FROM json_each(?))"

# A row is settled when every part of it has a final answer (success or error).
_SETTLED = """(
    SELECT COUNT(*) FROM results AS s
    WHERE s.row = {row} AND s.status IN ('success', 'error')
) >= (SELECT g.parts FROM rows AS w JOIN groups AS g ON g.id = w.group_id WHERE w.row = {row})"""

# Free to go: the contact's previous row (if any) has settled.
_FREE = f"(r.wait_row IS NULL OR {_SETTLED.format(row='r.wait_row')})"

# Still owing an answer for `:part`, and free to go.
_OWED = f"""
r.pre_status IS NULL
AND NOT EXISTS (
    SELECT 1 FROM results AS s
    WHERE s.row = r.row AND s.part = :part AND s.status IN ('success', 'error')
)
AND {_FREE}
"""

# Rows of a group and round still to send for one part; keyset-paginated by row number.
MEMBERS_PAGE = f"""
SELECT r.row, r.contact_id FROM rows AS r
WHERE r.group_id = :group AND r.round = :round AND r.row > :after AND {_OWED}
ORDER BY r.row LIMIT :limit
"""
# The same for a page after which no row can have an answer yet (see `Ledger._page`): looking
# for one was a third of the paging cost (1M rows, outcomes written between pages).
UNANSWERED_MEMBERS_PAGE = f"""
SELECT r.row, r.contact_id FROM rows AS r
WHERE r.group_id = :group AND r.round = :round AND r.row > :after
  AND r.pre_status IS NULL AND {_FREE}
ORDER BY r.row LIMIT :limit
"""

# What is still owed per (round, group) for one part: free to go now, or (for a plan) at all.
COUNT_READY = f"""
SELECT r.round, r.group_id, COUNT(*) FROM rows AS r
WHERE r.group_id IN (
    SELECT id FROM groups
    WHERE parts > :part AND (:location IS NULL OR location_id = :location)
  )
  AND r.round = :round AND {_OWED}
GROUP BY r.round, r.group_id
"""
# COUNT_OWED for a run without answers: a row with a round is valid and not a duplicate.
COUNT_ALL = """
SELECT r.round, r.group_id, COUNT(*) FROM rows AS r
WHERE r.group_id IN (SELECT id FROM groups WHERE parts > :part) AND r.round IS NOT NULL
GROUP BY r.round, r.group_id
"""
# COUNT_READY for round 1 of a run without answers (see `Ledger.ready_work`).
COUNT_ALL_OF_ROUND = """
SELECT r.round, r.group_id, COUNT(*) FROM rows AS r
WHERE r.group_id IN (
    SELECT id FROM groups
    WHERE parts > :part AND (:location IS NULL OR location_id = :location)
  )
  AND r.round = :round
GROUP BY r.round, r.group_id
"""
COUNT_OWED = """
SELECT r.round, r.group_id, COUNT(*) FROM rows AS r
WHERE r.group_id IN (SELECT id FROM groups WHERE parts > :part) AND r.pre_status IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM results AS s
    WHERE s.row = r.row AND s.part = :part AND s.status IN ('success', 'error')
  )
GROUP BY r.round, r.group_id
"""

# The report, one row per input row in input order, as the report's columns: the result fields
# (lists as their JSON text), then the input's cells. `{text}` wraps a text cell that may need
# making inert (see `report_rows`). Rows of several parts (over 50 tags) are merged in Python:
# their status comes as NULL, which no other row has, so that the rows go out as SQLite makes
# them (no column to strip).
REPORT_ROWS = """
SELECT r.row, r.line, {contact_id}, {location_id}, {action}, r.tags,
       CASE WHEN r.pre_status IS NOT NULL THEN r.pre_status
            WHEN g.parts > 1 THEN NULL
            WHEN s.status IS NULL THEN 'pending' ELSE s.status END,
       {message},
       s.old_tags, s.tags_added, s.tags_removed, s.http_status, s.attempts,
       CASE WHEN {uncertain} THEN 'true'
            WHEN (s.status IS NULL OR s.status = 'failed') AND r.pre_status IS NULL
                 AND {exposed} THEN 'true'
            ELSE 'false' END{cells}
FROM rows AS r
LEFT JOIN groups AS g ON g.id = r.group_id
LEFT JOIN results AS s ON s.row = r.row AND s.part = 0
LEFT JOIN temp.pending_messages AS p ON p.location_id = r.location_id
WHERE r.row BETWEEN :first AND :last
ORDER BY r.row
"""
# Past any row number (SQLite's largest integer): `report_rows` up to the last row.
LAST_ROW = 2**63 - 1
# Report rows are fetched, merged and passed on this many at a time.
REPORT_BLOCK = 2_000
_Block = list[tuple[Cell, ...]]
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
    WHEN {exposed} THEN COALESCE(p.message, :pending) || :lost
    ELSE COALESCE(p.message, :pending)
END"""
# Whether a row has a request that may have reached the API without an answer.
_EXPOSED = "EXISTS (SELECT 1 FROM exposed AS x WHERE x.row = r.row)"
_WAITS_FOR = (
    "not sent: waits for row {row} (the same contact's previous change), which failed; "
    "running the same command again retries both, in order"
)
PARTS_OF_GROUP = """
SELECT g.parts FROM rows AS r JOIN groups AS g ON g.id = r.group_id WHERE r.row = ?
"""
PARTS_OF_ROW = """
SELECT part, status, message, old_tags, tags_added, tags_removed, http_status, attempts,
       {uncertain}
FROM results WHERE row = ? ORDER BY part
"""

PAGE_ROWS = 5_000
# A batch answered in more ways than this is recorded a row at a time (see `Ledger.record`).
_FEW_OUTCOMES = 8
# Rows loaded between commits (see `Ledger.load`).
_LOAD_COMMIT_ROWS = 250_000


P = ParamSpec("P")
T = TypeVar("T")


# Tag lists repeat across rows (every row of a group asks the same tags, most answers look
# alike): each distinct list is encoded and decoded once, not once per row.
@functools.lru_cache(maxsize=4096)
def _dump(values: tuple[str, ...] | None) -> str | None:
    """A list as the report shows it: compact JSON text (`["vip","new"]`)."""
    return None if values is None else _compact(values)


def _fields(result: ContactOutcome) -> tuple[str, str, str | None, str | None, str | None]:
    """An outcome's fields as the results table keeps them."""
    return (
        result.status.value,
        result.message,
        _dump(result.old_tags),
        _dump(result.tags_added),
        _dump(result.tags_removed),
    )


def _dumped(lists: list[tuple[str, ...]]) -> list[str | None]:
    """`_dump` of each list; loading shares one tuple among the rows asking the same tags, so
    each distinct tuple is encoded once (looked up by identity: no hashing of its contents)."""
    distinct = by_identity(lists)
    texts = {key: _dump(tags) for key, tags in distinct.items()}
    return list(map(texts.__getitem__, map(id, lists)))


@functools.lru_cache(maxsize=4096)
def _load(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


# One encoder for the per-row cells, one for the report's lists: json.dumps would build a new one
# per call (a third of the cost of recording answers that differ from contact to contact).
_encode = json.JSONEncoder(ensure_ascii=False).encode
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _GroupIds:
    """Group ids while loading, written to the groups table the first time a group is seen.

    Rows asking the same thing share one tags tuple (loading parses each distinct tags cell
    once), so the row's own fields are looked up first and the canonical Group (sorted tags) is
    built only for a new combination.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._by_fields: dict[tuple[str, str, tuple[str, ...], bool], int] = {}
        self._by_group: dict[Group, int] = {}

    def of(self, location_id: str, action: str, tags: tuple[str, ...], remove_all: bool) -> int:
        fields = (location_id, action, tags, remove_all)
        group_id = self._by_fields.get(fields)
        if group_id is None:
            group = group_of(location_id, action, tags, remove_all)
            group_id = self._by_group.get(group)
            if group_id is None:
                group_id = self._by_group[group] = len(self._by_group) + 1
                self._db.execute(
                    "INSERT INTO groups VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        group_id,
                        group.location_id,
                        group.action.value,
                        _dump(group.tags),
                        int(group.remove_all),
                        len(tag_parts(group)),
                    ),
                )
            self._by_fields[fields] = group_id
        return group_id

    def column(self, chunk: Chunk) -> list[int]:
        """The group id of each row of `chunk`, whose rows are all valid.

        Rows asking the same thing share their fields' objects (loading parses each distinct
        cell once), so each distinct (location, action, tags object) is looked up once.
        """
        locations, actions, tags = chunk.location_ids, chunk.actions, chunk.tags
        if chunk.rows and _uniform(locations) and _uniform(actions) and _uniform(tags):
            # Common: one location, action and tags for the whole chunk (options, or columns
            # holding one value).
            return [self.of(locations[0], actions[0], tags[0], chunk.remove_all)] * len(locations)
        keys = list(zip(chunk.location_ids, chunk.actions, map(id, chunk.tags), strict=True))
        # The last row of each distinct key, whose fields stand for all of its rows.
        last = dict(zip(keys, range(len(keys)), strict=True))
        found = {
            key: self.of(chunk.location_ids[i], chunk.actions[i], chunk.tags[i], chunk.remove_all)
            for key, i in last.items()
        }
        if len(found) == 1:
            return [next(iter(found.values()))] * len(keys)
        return list(map(found.__getitem__, keys))


def _insert_valid(db: sqlite3.Connection, chunk: Chunk, groups: _GroupIds, marks: str) -> None:
    """Insert the rows of `chunk`, all valid; `marks` holds one `, ?` per input cell."""
    # Round 1, no wait, no status: a valid row's defaults until ORDER_CONTACTS says more.
    same = _same_ask(chunk)
    if same is not None:
        # One location, action and tags for the chunk (the common case: options, or columns
        # holding one value): SQL literals, not bound for each row (a sixth of the time).
        location, action, tags = same
        group = groups.of(location, action, tags, chunk.remove_all)
        asked = f"{_sql_text(location)}, {_sql_text(action)}, {_sql_text(tags)}, {group}"
        db.executemany(
            f"INSERT INTO rows VALUES (?, ?, ?, {asked}, 1, NULL, NULL, ''{marks})",
            zip(chunk.rows, chunk.lines, chunk.contact_ids, *chunk.cells, strict=True),
        )
    elif len(chunk):
        db.executemany(
            f"INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, 1, NULL, NULL, ''{marks})",
            zip(
                chunk.rows,
                chunk.lines,
                chunk.contact_ids,
                chunk.location_ids,
                chunk.actions,
                _dumped(chunk.tags),
                groups.column(chunk),
                *chunk.cells,
                strict=True,
            ),
        )


def _order_contacts(db: sqlite3.Connection, repeats: RepeatFinder) -> None:
    """Run ORDER_CONTACTS, on the rows of the contacts that may repeat."""
    _script(db, FIND_MULTI)
    source = ALL_ROWS
    if db.execute("SELECT COUNT(*) FROM temp.multi").fetchone()[0] <= _FEW_CONTACTS:
        contacts = [contact for (contact,) in db.execute("SELECT contact_id FROM temp.multi")]
        db.execute("DROP TABLE IF EXISTS temp.candidates")  # left by a load that failed
        db.execute("CREATE TEMP TABLE candidates (row INTEGER PRIMARY KEY)")
        db.executemany(
            "INSERT OR IGNORE INTO temp.candidates VALUES (?)",
            zip(repeats.earlier(contacts), strict=True),
        )
        source = CANDIDATE_ROWS
    _script(db, ORDER_CONTACTS.format(source=source))


def _script(db: sqlite3.Connection, statements: str) -> None:
    """Run `;`-separated statements inside the open transaction (`executescript` commits)."""
    for statement in statements.strip().split(";"):
        if statement.strip():
            db.execute(statement)


def _same_ask(chunk: Chunk) -> tuple[str, str, tuple[str, ...]] | None:
    """The location, action and tags of every row of `chunk`, if one for all; else None."""
    locations, actions, tags = chunk.location_ids, chunk.actions, chunk.tags
    if not (chunk.rows and _uniform(locations) and _uniform(actions) and _uniform(tags)):
        return None
    if "\0" in "".join((locations[0], actions[0], *tags[0])):
        return None  # SQL text would end at the NUL: such values are bound
    return locations[0], actions[0], tags[0]


def _sql_text(value: str | tuple[str, ...]) -> str:
    """A text (or a tag list, as its JSON) as an SQL string literal."""
    text = value if isinstance(value, str) else str(_dump(value))
    return "'" + text.replace("'", "''") + "'"


def _uniform(values: Sequence[object]) -> bool:
    """All values equal (a list's `count` compares by identity first, at C speed)."""
    return values.count(values[0]) == len(values)


@contextlib.contextmanager
def _written_once(db: sqlite3.Connection, path: Path) -> Iterator[None]:
    """A load whose pages are written once, the file synced once at the end.

    In WAL mode every page of the load was written twice (to the WAL, then copied back by a
    checkpoint), and synced at each checkpoint: a fourteenth of loading a million rows. A load
    needs no such care: nothing is sent before it ends, and a run killed while loading is
    discarded whole (`Ledger.open`). So it runs with the journal in memory (enough to roll back
    a load that fails) and no syncing; then the file is synced and WAL mode, which keeps every
    answer recorded afterwards, comes back. A plan's scratch file has no journal at all: left
    as it is.
    """
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        yield
        return
    db.execute("PRAGMA journal_mode = MEMORY")
    db.execute("PRAGMA synchronous = OFF")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # the load's own error says more
            _keep_safe(db)
        raise
    _keep_safe(db)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _keep_safe(db: sqlite3.Connection) -> None:
    """WAL mode with NORMAL syncing (see `Ledger._connect`), back after a load."""
    db.execute("PRAGMA synchronous = NORMAL")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise sqlite3.OperationalError(f"the journal stays in {mode} mode, not WAL")


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One explicit transaction: the connection is in autocommit mode (isolation_level=None),
    where `with db:` would commit each statement of an executemany on its own."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        # SQLite may have rolled the transaction back itself (a full disk does: SQLITE_FULL);
        # a ROLLBACK then fails with "no transaction is active" and would hide why.
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class _Schema(NamedTuple):
    """What a state file holds of what this version keeps (an older one's lacks some, and is
    only read, or migrated when it is continued: see `_migrate`)."""

    uncertain: bool  # results.uncertain
    exposed: bool  # the exposed table
    reports: bool  # the reports table

    @classmethod
    def of(cls, db: sqlite3.Connection) -> _Schema:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
        return cls("uncertain" in columns, "exposed" in tables, "reports" in tables)


def _migrate(db: sqlite3.Connection, *, run_id: str, invocation: bool) -> None:
    """Give a state file of an older version what this one keeps (a run it started is being
    continued): the `uncertain` column, the `exposed` and `reports` tables, its `run_id`; and,
    with `invocation`, count this command as the run's next invocation."""
    schema = _Schema.of(db)
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if all(schema) and "run_id" in meta and not invocation:
        return
    with _transaction(db):
        if not schema.uncertain:
            db.execute("ALTER TABLE results ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0")
        if not (schema.exposed and schema.reports):
            _script(db, ADDED_TABLES)
        if "run_id" not in meta:
            db.execute("INSERT INTO meta VALUES ('run_id', ?)", (run_id,))
        if invocation:
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('invocation', ?)",
                (str(int(meta.get("invocation", "1")) + 1),),
            )


def new_run_id() -> str:
    """A run's id: unique per run, also across `--fresh` runs of the same input."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One (round, group, part) with rows still to send."""

    group_id: int
    group: Group
    part: int
    members: int
    round: int = 1


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """The report one invocation of a run wrote (the `reports` table)."""

    invocation: int  # 1: the command that started the run; 2: the next that continued it...
    path: str  # resolved
    format: str  # csv, xlsx or jsonl
    rows: int
    complete: bool  # no row was pending
    sha256: str  # of the file's bytes as written
    written: str  # UTC, ISO 8601


@dataclass(frozen=True, slots=True)
class Undone:
    """The finished undo of a run: when it finished, its report and its run id."""

    finished: str
    report: str
    run_id: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the state directory knows of one run, without opening it for writing.

    `report` is the run's latest complete report (no row pending), or its latest report when
    none is complete: the one `batcher status` and the page name; `latest_report` is the last
    one written, complete or not. `reports` lists every invocation's report (empty for a run of
    a version that did not keep them: `keeps_reports` False). `undoes` is, for an undo, the id
    of the run it takes back; `undone` says when and by which undo this run was taken back.
    """

    path: Path
    state: str  # loading, ready or finished
    created: str
    input: str
    operation: str
    target: str
    counts: dict[str, int]  # rows by status when the run last stopped (see `live_counts`)
    report: str = ""
    run_id: str = ""
    reports: tuple[ReportRecord, ...] = ()
    keeps_reports: bool = False
    finished: str = ""  # when it finished (UTC), if it did
    undoes: str = ""
    undone: Undone | None = None

    @property
    def latest_report(self) -> str:
        return self.reports[-1].path if self.reports else self.report

    @property
    def undo_key(self) -> str:
        """What an undo of this run keeps as `undoes`: its id (a run of a version that kept
        none: its state file's name)."""
        return self.run_id or self.path.name


def _state_errors(method: Callable[P, T]) -> Callable[P, T]:
    """Turn SQLite and OS errors of a Ledger method into a StateError naming the file (exit 3).

    Whatever goes wrong with the state file (disk full, a read-only folder, a file changed
    under us), the user gets one line naming it; what was recorded before stays recorded.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            ledger = args[0]
            if isinstance(ledger, Ledger):
                raise _state_error(ledger.path, exc, scratch=ledger.scratch) from exc
            where = getattr(ledger, "path", "the state file")
            raise StateError(f"{where}: cannot use the run's state file ({_reason(exc)})") from exc

    return wrapper


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from or while handling, is a full disk."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:  # SQLite's own
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _state_error(
    path: Path, exc: BaseException, doing: str = "cannot use the run's state file", *, scratch: bool
) -> StateError:
    """The StateError for `exc` on the state file `path`; a full disk is named as such."""
    if _disk_full(exc) and scratch:
        return StateError(
            f"no space left on the device holding the temporary folder {path.parent} (a plan's "
            "scratch state); free some space there (or set TMPDIR to another folder) and plan "
            "again"
        )
    if _disk_full(exc):
        return StateError(
            f"no space left on the device holding the state directory {path.parent}; free some "
            "space (or set state.dir to another device) and run the same command again: what "
            "was saved is kept"
        )
    return StateError(f"{path}: {doing} ({_reason(exc)})")


class StateLock:
    """An exclusive flock on `state.dir/lock`, released when the process ends, however it ends.

    The lock file is opened owner-only and never through a symlink (a planted link would make
    us write our pid into its target).
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            private_dir(self.path.parent)
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise UsageError(
                f"{self.path}: cannot use the state directory's lock ({_reason(exc)}); "
                "set state.dir to a folder of your own"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "another process"
            os.close(fd)
            raise StateLockedError(
                f"{self.path.parent}: another batcher run (pid {holder}) is using this state "
                "directory; wait for it to finish or set another state.dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
        except OSError as exc:
            os.close(fd)
            raise _state_error(self.path, exc, "cannot write the lock", scratch=False) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def prepare_state_dir(state_dir: Path, warn: Callable[[str], None]) -> None:
    """Create the state directory owner-only, or check that an existing one is the user's own."""
    try:
        private_dir(state_dir)
    except OSError as exc:
        raise UsageError(
            f"{state_dir}: cannot create the state directory ({_reason(exc)}); "
            "set state.dir to a writable folder"
        ) from None
    check_trusted(state_dir, "state directory", warn)


def _ignore(message: str) -> None:
    """The default `notify`: a library caller that passes none hears nothing."""


class Ledger:
    """One run's SQLite state. Use `Ledger.open(...)` as a context manager."""

    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        lock: StateLock | None,
        *,
        resumed: bool,
        scratch: tempfile.TemporaryDirectory[str] | None = None,
    ):
        self._db = db
        self.path = path
        self._lock = lock
        self.resumed = resumed
        self._scratch = scratch
        # No row past this one has an answer: a new run starts with none and `record` raises
        # it; a resumed run may have answers anywhere.
        self._answered_up_to: float = math.inf if resumed else 0
        # Whether any request of the run may have reached the API unanswered (see `record`):
        # looked up once, then kept up to date by `record` and `record_exposed`.
        self._exposed_any = (
            resumed
            and self._schema.exposed
            and bool(db.execute("SELECT EXISTS (SELECT 1 FROM exposed)").fetchone()[0])
        )

    @functools.cached_property
    def _schema(self) -> _Schema:
        return _Schema.of(self._db)

    @property
    def scratch(self) -> bool:
        """Whether this is a plan's throwaway state file (in a temporary folder)."""
        return self._scratch is not None

    @classmethod
    def open(
        cls,
        state_dir: Path,
        run_key: str,
        *,
        fresh: bool = False,
        scratch: bool = False,
        notify: Callable[[str], None] = _ignore,
        about: dict[str, str] | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> Self:
        """Continue the unfinished run of `run_key`, or start a new one.

        A finished run, or any run when `fresh`, is kept under a dated name and a new one starts;
        a run killed while loading is discarded (nothing of it was sent); a state file that
        cannot be read is set aside under a new name and `notify` says so. With `scratch` (a plan)
        nothing is changed in `state_dir`: a run that would start anew lives in a temporary file.
        `about` (input, operation, target) is kept in a new run's meta for `batcher status`.
        `on_start` hears the run's id as soon as it is known, before a new run's file is made.
        """
        prepare_state_dir(state_dir, notify)
        lock = StateLock(state_dir)
        lock.acquire()
        path = run_file(state_dir, run_key)
        try:
            return cls._open_locked(
                state_dir, path, lock, fresh, scratch, notify, about or {}, on_start
            )
        except (sqlite3.Error, OSError) as exc:
            lock.release()
            raise _state_error(path, exc, scratch=scratch) from exc
        except BaseException:
            lock.release()
            raise

    @classmethod
    def reader(cls, path: Path) -> Self:
        """A run's state file opened read-only, beside the process that holds it: for a second
        process writing part of the report. Takes no lock (the holder keeps it) and changes
        nothing in the file."""
        try:
            # Autocommit: each query reads the latest outcomes (the temporary table that
            # `report_rows` fills would otherwise open a transaction that pins its snapshot).
            db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StateError(f"{path}: cannot read the run's state ({_reason(exc)})") from exc
        return cls(db, path, None, resumed=True)

    @classmethod
    def _open_locked(
        cls,
        state_dir: Path,
        path: Path,
        lock: StateLock,
        fresh: bool,
        scratch: bool,
        notify: Callable[[str], None],
        about: dict[str, str],
        on_start: Callable[[str], None] | None,
    ) -> Self:
        resumed = False
        scratch_dir = None
        state, created, run_id = ("absent", "", "")
        if path.exists():
            try:
                state, created, run_id = cls._peek(path)
            except sqlite3.DatabaseError as exc:
                if scratch:
                    state = "unreadable"
                else:
                    aside = _set_aside(path, "unreadable")
                    notify(
                        f"{path}: the state file cannot be read ({exc}); set aside as "
                        f"{aside.name}, and a new run starts (rows it had settled are sent again, "
                        "which changes nothing for tags already applied)"
                    )
                    state = "absent"
        if scratch and (fresh or state != "ready"):
            scratch_dir = tempfile.TemporaryDirectory(prefix="batcher-plan-")
            path = Path(scratch_dir.name) / path.name
        elif state == "loading":
            cls._remove(path)
        elif state == "finished" or (fresh and state == "ready"):
            _set_aside(path, created.replace(":", "").replace("-", ""))
        elif state == "ready":
            resumed = True
        if not resumed or not run_id:  # a new run, or one of a version that kept no id
            run_id = new_run_id()
        if on_start is not None:
            on_start(run_id)
        db = cls._connect(path, create=not resumed, throwaway=scratch_dir is not None)
        if resumed:
            _migrate(db, run_id=run_id, invocation=not scratch)
        else:
            db.executescript(SCHEMA + ADDED_TABLES)
            db.execute(ROWS_TABLE.format(cells=""))  # `load` gives it the input's columns
            with _transaction(db):
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("state", "loading"),
                        ("created", _now()),
                        ("run_id", run_id),
                        ("invocation", "1"),
                        *about.items(),
                    ],
                )
        return cls(db, path, lock, resumed=resumed, scratch=scratch_dir)

    @staticmethod
    def _connect(path: Path, *, create: bool, throwaway: bool = False) -> sqlite3.Connection:
        if create:
            # Owner-only from the first byte (it holds the input's emails and phones); SQLite
            # gives its -wal and -shm files the same permissions as the database file.
            os.close(open_private(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC))
        db = sqlite3.connect(path, isolation_level=None)
        if throwaway:
            # A plan's scratch file, deleted when the plan ends: nothing to keep safe, so no
            # journal and no syncing (a twentieth of a plan's time on a million rows). Temporary
            # tables stay on disk: in memory, ordering a file that names each contact ten times
            # took 380 MiB instead of 150.
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
        else:
            # WAL + NORMAL: a committed transaction survives the process being killed (only a
            # power cut may lose the last ones), at a fraction of FULL's fsync cost per batch.
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        if cores() > 1:
            # SQLite's sorter may then sort in two threads: building the index of a million
            # rows takes 0.33 s instead of 0.43 s (on one core, 0.47 s instead of 0.39 s).
            db.execute("PRAGMA threads = 2")
        try:
            db.execute("SELECT value FROM json_each('[1]')")
        except sqlite3.OperationalError:
            db.close()
            raise StateError(
                f"this Python's SQLite ({sqlite3.sqlite_version}) has no JSON functions, which "
                "batcher needs (built in since SQLite 3.38): use a Python built with them"
            ) from None
        return db

    @classmethod
    def _peek(cls, path: Path) -> tuple[str, str, str]:
        """The run's state, creation time and id; DatabaseError when the file is not a run's
        state."""
        if path.stat().st_size == 0:
            return "loading", "unknown", ""  # killed as it started: nothing of it was sent
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            if "meta" not in tables:
                return "loading", "unknown", ""  # killed before its schema was written
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
        return meta.get("state", "loading"), meta.get("created", "unknown"), meta.get("run_id", "")

    @staticmethod
    def _remove(path: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            if self._scratch is not None:
                self._scratch.cleanup()
        finally:
            if self._lock is not None:
                self._lock.release()

    # -- meta ------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if found is None else str(found[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    @_state_errors
    def columns(self) -> tuple[str, ...]:
        """The input's header, as loaded."""
        return tuple(json.loads(self._meta("columns") or "[]"))

    @property
    @_state_errors
    def run_id(self) -> str:
        """The run's id (see `new_run_id`)."""
        return self._meta("run_id") or ""

    @property
    @_state_errors
    def invocation(self) -> int:
        """Which command of the run this is: 1 for the one that started it, 2 for the next..."""
        return int(self._meta("invocation") or "1")

    @_state_errors
    def save_counts(self, counts: Mapping[str, int], *, finished: bool) -> None:
        """Keep the rows by status (for `batcher status` and other runs' summaries); with
        `finished`, mark the run finished: the same command will start a new run, not continue
        this one."""
        with _transaction(self._db):
            self._set_meta("counts", json.dumps(dict(counts), sort_keys=True))
            if finished:
                self._set_meta("state", "finished")
                self._set_meta("finished", _now())

    @_state_errors
    def record_report(self, path: Path, *, rows: int, complete: bool, sha256: str) -> None:
        """Keep the report this invocation wrote (its file is written and synced, `sha256` its
        bytes' digest), and name in the meta the run's report: the latest complete one (no row
        pending), or the latest one when none is complete."""
        with _transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self.invocation,
                    str(path.resolve()),
                    path.suffix.lower().removeprefix("."),
                    rows,
                    int(complete),
                    sha256,
                    _now(),
                ),
            )
            (report,) = self._db.execute(
                "SELECT path FROM reports ORDER BY complete DESC, invocation DESC LIMIT 1"
            ).fetchone()
            self._set_meta("report", report)

    @_state_errors
    def reports(self) -> list[ReportRecord]:
        """The reports of the run's invocations, oldest first."""
        return _reports(self._db)

    # -- loading ---------------------------------------------------------------------------

    @_state_errors
    def load(self, columns: Sequence[str], chunks: Iterable[Chunk]) -> int:
        """Write every input row once, then order each contact's rows. Returns the row count.

        A chunk goes in with one `executemany` over its columns zipped together, its valid rows
        apart from its invalid ones (which are few and carry more fields); no Python work per
        row beyond what C-level `map`s do: group ids and tag JSON are worked out per distinct
        value.
        """
        if len(columns) > MAX_INPUT_COLUMNS:
            raise UsageError(
                f"the input has {len(columns):,} columns; batcher keeps every column for the "
                f"report and takes at most {MAX_INPUT_COLUMNS:,}: remove the columns you do not "
                "need"
            )
        groups = _GroupIds(self._db)
        # Imported here: numpy is only needed to load, and the report's helper process (see
        # rendering.py) reads a ledger without it, starting sooner and smaller.
        from batcher.repeats import RepeatFinder

        count = committed = 0
        db = self._db
        cells = "".join(f",\n    c{i} TEXT NOT NULL" for i in range(len(columns)))
        marks = ", ?" * len(columns)
        insert_settled = (
            f"INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?{marks})"
        )
        with RepeatFinder() as repeats, _written_once(db, self.path), _transaction(db):
            db.execute("DROP TABLE rows")
            db.execute(ROWS_TABLE.format(cells=cells))
            db.execute("DROP TABLE IF EXISTS temp.maybe")  # left by a load that failed
            db.execute("CREATE TEMP TABLE maybe (row INTEGER PRIMARY KEY)")
            for chunk in chunks:
                if len(chunk.cells) != len(columns):
                    raise ValueError(f"{len(chunk.cells)} cell columns for {len(columns)} columns")
                maybe = repeats.add(chunk.rows, chunk.contact_ids)
                if maybe:
                    db.executemany("INSERT INTO temp.maybe VALUES (?)", zip(maybe, strict=True))
                valid = chunk
                settled = chunk.before_sending()
                if settled:
                    valid = chunk.take([i for i in range(len(chunk)) if i not in settled])
                    bad = chunk.take(sorted(settled))
                    verdicts = [settled[i] for i in sorted(settled)]
                    db.executemany(
                        insert_settled,
                        zip(
                            bad.rows,
                            bad.lines,
                            bad.contact_ids,
                            bad.location_ids,
                            bad.actions,
                            _dumped(bad.tags),
                            [status.value for status, _ in verdicts],
                            [why for _, why in verdicts],
                            *bad.cells,
                            strict=True,
                        ),
                    )
                _insert_valid(db, valid, groups, marks)
                count += len(chunk)
                if count >= committed + _LOAD_COMMIT_ROWS:
                    # Committed in parts: one transaction of a whole big file grows the WAL to
                    # the database's size, and SQLite finds pages in a big WAL ever more slowly.
                    # A run killed between parts is still "loading", and discarded as before.
                    db.execute("COMMIT")
                    db.execute("BEGIN")
                    committed = count
            _script(db, INDEXES)
            if db.execute("SELECT EXISTS (SELECT 1 FROM temp.maybe)").fetchone()[0]:
                _order_contacts(db, repeats)
            else:
                db.execute("DROP TABLE temp.maybe")
            self._set_meta("columns", _encode(tuple(columns)))
            self._set_meta("rows", str(count))
            self._set_meta("state", "ready")
        return count

    @_state_errors
    def status_counts(self) -> dict[str, int]:
        """Rows by status as the report would show them, counted in SQL (for a plan).

        A row sent in several parts counts by its first part's answer.
        """
        # No scan of the rows: those settled before sending come from their small index, the
        # answered ones from the results (a sent row has no pre-status), the rest are pending.
        db = self._db
        counts: dict[str, int] = dict(
            db.execute(
                "SELECT pre_status, COUNT(*) FROM rows WHERE pre_status IS NOT NULL GROUP BY 1"
            ).fetchall()
        )
        for status, count in db.execute(
            "SELECT status, COUNT(*) FROM results WHERE part = 0 GROUP BY 1"
        ).fetchall():
            counts[status] = counts.get(status, 0) + count
        pending = self.row_count() - sum(counts.values())
        if pending:
            counts["pending"] = pending
        return counts

    @_state_errors
    def first_rows(self, pre_status: str, limit: int) -> list[tuple[int, int, str, str]]:
        """(row, line, contact id, message) of the first rows settled before sending as
        `pre_status` (invalid, duplicate): the examples a plan shows."""
        return self._db.execute(
            "SELECT row, line, contact_id, pre_message FROM rows WHERE pre_status = ? "
            "ORDER BY row LIMIT ?",
            (pre_status, limit),
        ).fetchall()

    @_state_errors
    def row_count(self) -> int:
        """The number of input rows: the report's lines (kept by `load`; counted for a state
        file written before it kept them)."""
        kept = self._meta("rows")
        if kept is not None:
            return int(kept)
        return int(self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    @_state_errors
    def row_at(self, index: int) -> int | None:
        """The number of the input row at `index` (0-based) in row order (a shard's rows keep
        their input numbers, so numbers have gaps); None past the last row."""
        found = self._db.execute(
            "SELECT row FROM rows ORDER BY row LIMIT 1 OFFSET ?", (index,)
        ).fetchone()
        return None if found is None else int(found[0])

    # -- planning --------------------------------------------------------------------------

    def _groups(self) -> dict[int, tuple[Group, int]]:
        return {
            gid: (Group(loc, Action(action), tuple(json.loads(tags)), bool(remove_all)), parts)
            for gid, loc, action, tags, remove_all, parts in self._db.execute(
                "SELECT id, location_id, action, tags, remove_all, parts FROM groups"
            )
        }

    def _items(
        self, query: str, round_: int | None, location_id: str | None = None
    ) -> list[WorkItem]:
        groups = self._groups()
        max_parts = max((parts for _, parts in groups.values()), default=0)
        items = []
        for part in range(max_parts):
            params = {"part": part, "round": round_, "location": location_id}
            for round_k, gid, members in self._db.execute(query, params):
                items.append(WorkItem(gid, groups[gid][0], part, members, round_k))
        items.sort(key=lambda item: (item.round, item.group_id, item.part))
        return items

    @_state_errors
    def work(self) -> list[WorkItem]:
        """Every (round, group, part) with rows still owing a settled answer: what a plan shows.

        Counts assume that each row's earlier rows (of the same contact) will succeed.
        """
        # A run with no answer yet owes every row of a round: counted from the index alone.
        return self._items(COUNT_OWED if self._answered_up_to else COUNT_ALL, None)

    @_state_errors
    def ready_work(self, round_: int, location_id: str | None = None) -> list[WorkItem]:
        """The (group, part) items of `round_` (of one location, if given) whose rows may be
        sent now: each contact's previous row (round - 1) has settled. Rows still waiting are
        left for a later run."""
        if round_ == 1 and not self._answered_up_to:
            # A new run's first round, before any answer: every row is ready (none waits).
            return self._items(COUNT_ALL_OF_ROUND, round_, location_id)
        return self._items(COUNT_READY, round_, location_id)

    @_state_errors
    def rounds(self) -> int:
        """The highest round of any row still to send (0 when nothing is)."""
        return max(self.rounds_by_location().values(), default=0)

    @_state_errors
    def rounds_by_location(self) -> dict[str, int]:
        """Each location with rows to send, and the highest round among them.

        A group's highest round is one look into the (group_id, round, row) index, so this
        costs a lookup per group, not a pass over the rows (duplicates have no round).
        """
        rounds: dict[str, int] = {}
        for location, highest in self._db.execute(
            "SELECT g.location_id, (SELECT MAX(r.round) FROM rows AS r WHERE r.group_id = g.id) "
            "FROM groups AS g ORDER BY g.location_id"
        ):
            if highest is not None:
                rounds[location] = max(rounds.get(location, 0), int(highest))
        return rounds

    def members(self, item: WorkItem) -> Iterator[tuple[int, str]]:
        """`(row, contact_id)` still owing an answer for `item` and free to go, in row order,
        a page at a time. Paging (rather than one long cursor) lets outcomes be written between
        pages safely."""
        after = 0
        while True:
            page = self._page(item, after)
            yield from page
            if len(page) < PAGE_ROWS:
                return
            after = page[-1][0]

    @_state_errors
    def _page(self, item: WorkItem, after: int) -> list[tuple[int, str]]:
        return self._db.execute(
            UNANSWERED_MEMBERS_PAGE if after >= self._answered_up_to else MEMBERS_PAGE,
            {
                "group": item.group_id,
                "part": item.part,
                "round": item.round,
                "after": after,
                "limit": PAGE_ROWS,
            },
        ).fetchall()

    # -- outcomes --------------------------------------------------------------------------

    def record(self, outcome: BatchOutcome) -> None:
        """Write one batch's per-contact outcomes in one transaction.

        Contacts answered alike share one outcome object (the client sees to it): each distinct
        outcome is encoded once and written for all its rows by one statement, the rows passed
        as one JSON array (`json_each`): binding a row's nine fields from Python cost more than
        SQLite's own work for it.

        A row a request of which may have reached the API without an answer (this one's
        attempts, or an earlier invocation's: see `batcher.uncertain`) is judged from its answer
        and written with its `uncertain` mark; the request's exposure is kept in the same
        transaction. Nothing of this is looked at for a batch with no exposure in a ledger with
        none (`_exposed_any`): the common case costs what it did.
        """
        batch = outcome.batch
        self._answered_up_to = max(self._answered_up_to, max(batch.rows, default=0))
        results = by_identity(outcome.outcomes)
        try:
            with _transaction(self._db):
                exposed = self._exposed(outcome, results)
                if exposed:
                    self._record_judged(outcome, results, exposed)
                elif len(results) > _FEW_OUTCOMES:
                    self._record_each(outcome, results)
                else:
                    self._record_alike(outcome, results)
        except (sqlite3.Error, ValueError) as exc:
            # The batch was sent but cannot be recorded: stop, so that no more work is lost; a
            # rerun sends this batch again (adding or removing a tag twice changes nothing).
            raise _state_error(
                self.path, exc, "cannot record outcomes", scratch=self.scratch
            ) from exc

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
                    _encode(rows),
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
            self._db.execute(EXPOSE_ROWS, (batch.part, _encode(newly)))
            self._exposed_any = True
        if outcome.exposed:
            return frozenset(batch.rows)
        if not self._exposed_any:
            return frozenset()
        found = self._db.execute(EXPOSED_AMONG, (batch.part, _encode(batch.rows)))
        return frozenset(row for (row,) in found)

    def _record_judged(
        self,
        outcome: BatchOutcome,
        results: Mapping[int, ContactOutcome],
        exposed: frozenset[int],
    ) -> None:
        """`record` for a batch with exposed rows: a statement a row, each exposed one judged
        (`batcher.uncertain.judge`: once per distinct outcome) and marked uncertain unless its
        answer proves that the lost attempt changed nothing."""
        encoded = {key: _fields(result) for key, result in results.items()}
        judged: dict[int, str | None] = {}
        batch, http_status, attempts = outcome.batch, outcome.http_status, outcome.attempts
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
                (row, batch.part, status, message, *lists, http_status, attempts, unsure)
            )
        self._db.executemany(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", records
        )

    @_state_errors
    def record_exposed(self, batch: Batch) -> None:
        """Keep that a request of `batch` may have reached the API without an answer, for a
        request that ends with no outcome to record (its rows stay pending): the next run's
        answer for them is then judged as `record` judges any exposed row."""
        with _transaction(self._db):
            self._db.execute(EXPOSE_ROWS, (batch.part, _encode(batch.rows)))
        self._exposed_any = True

    def _record_each(self, outcome: BatchOutcome, results: Mapping[int, ContactOutcome]) -> None:
        """`record` for a batch answered in many ways (the API's answers name each contact's
        tags before the change, which differ from contact to contact): a statement a row, in one
        `executemany`, each distinct outcome encoded once; a statement per outcome cost ten
        times more."""
        encoded = {key: _fields(result) for key, result in results.items()}
        batch, http_status, attempts = outcome.batch, outcome.http_status, outcome.attempts
        self._db.executemany(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            [
                (row, batch.part, *encoded[id(result)], http_status, attempts)
                for row, result in zip(batch.rows, outcome.outcomes, strict=True)
            ],
        )

    # -- report ----------------------------------------------------------------------------

    def report_rows(
        self,
        pending_message: str,
        by_location: Mapping[str, str] | None = None,
        inert: Inert | None = None,
        *,
        first: int = 0,
        last: int = LAST_ROW,
    ) -> Iterator[tuple[Cell, ...]]:
        """The report's rows, in input order: the result fields (lists as compact JSON text,
        None where there is no answer), then the input's cells. Only the rows numbered `first`
        to `last` (the report of a part of the input: see `row_at`).

        SQL does the joining and the formatting; only rows of several parts (over 50 tags) are
        merged in Python. Rows never sent get `pending_message`, or their location's own in
        `by_location`. With `inert`, text cells that could start a spreadsheet formula are made
        inert (for CSV): SQL picks the few cells whose first character is suspect, and only
        those go through `inert.make`. The rows are fetched a block at a time and passed on
        with no Python code run per row (`chain`), so that a consumer written in C (the csv
        writer) takes a million of them at C speed.
        """
        blocks = self._report_fetched(pending_message, by_location or {}, inert, (first, last))
        return chain.from_iterable(self._read_errors(blocks))

    def _read_errors(self, blocks: Iterator[_Block]) -> Iterator[_Block]:
        """`blocks`, with an SQLite error while reading them raised as a StateError."""
        try:
            yield from blocks
        except sqlite3.Error as exc:
            raise _state_error(
                self.path, exc, "cannot read the run's state", scratch=self.scratch
            ) from exc

    def _report_fetched(
        self,
        pending_message: str,
        by_location: Mapping[str, str],
        inert: Inert | None,
        span: tuple[int, int],
    ) -> Iterator[_Block]:
        db = self._db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS pending_messages (location_id, message)")
        db.execute("DELETE FROM temp.pending_messages")
        db.executemany("INSERT INTO temp.pending_messages VALUES (?, ?)", by_location.items())
        if inert is not None:
            if any(48 <= ord(c) <= 57 or 65 <= ord(c) <= 126 for c in inert.suspects):
                raise ValueError("a suspect first character among the plain ones")
            db.create_function("inert", 1, inert.make, deterministic=True)

            def text(expr: str) -> str:
                # Letters and digits first (nearly every cell): a range test in SQL; any other
                # first character goes to `inert.make`, which knows the suspect ones.
                plain = f"unicode({expr}) BETWEEN 65 AND 126 OR unicode({expr}) BETWEEN 48 AND 57"
                return f"CASE WHEN {plain} THEN {expr} ELSE inert({expr}) END"
        else:

            def text(expr: str) -> str:
                return expr

        schema = self._schema
        # A state file of a version that kept no exposure has nothing uncertain.
        uncertain = "s.uncertain" if schema.uncertain else "0"
        exposed = _EXPOSED if schema.exposed else "0"
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
            ),
            uncertain=uncertain,
            exposed=exposed,
            cells="".join(f", {text(f'r.c{i}')}" for i in range(len(self.columns))),
        )
        make = inert.make if inert is not None else None
        # Most runs have no row of several parts: their blocks are passed on without a look.
        parted = db.execute("SELECT 1 FROM groups WHERE parts > 1 LIMIT 1").fetchone() is not None
        first, last = span
        cursor = db.execute(
            query, {"pending": pending_message, "lost": NOTE, "first": first, "last": last}
        )
        while block := cursor.fetchmany(REPORT_BLOCK):
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
            _Result(
                part, Status(status), message, _load(old), _load(added), _load(removed), h, n, u
            )
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
        cells[OLD_TAGS] = _dump(results[0].old_tags)
        cells[TAGS_ADDED] = _dump(_union(r.tags_added for r in results))
        cells[TAGS_REMOVED] = _dump(_union(r.tags_removed for r in results))
        cells[HTTP_STATUS] = settling.http_status
        cells[ATTEMPTS] = settling.attempts
        cells[UNCERTAIN] = "true" if unsure else "false"
        return tuple(cells)

    def lines(
        self, pending_message: str, by_location: Mapping[str, str] | None = None
    ) -> Iterator[ReportLine]:
        """The report's rows as ReportLines (lists as tuples): for undo, tests and library
        callers."""
        for cells in self.report_rows(pending_message, by_location):
            tags, old, added = cells[TAGS], cells[OLD_TAGS], cells[TAGS_ADDED]
            removed, http, attempts = cells[TAGS_REMOVED], cells[HTTP_STATUS], cells[ATTEMPTS]
            yield ReportLine(
                row=int(cells[ROW] or 0),
                contact_id=str(cells[CONTACT_ID]),
                location_id=str(cells[LOCATION_ID]),
                action=str(cells[ACTION]),
                tags=_load(None if tags is None else str(tags)) or (),
                status=Status(str(cells[STATUS])),
                message=str(cells[MESSAGE]),
                old_tags=_load(None if old is None else str(old)),
                tags_added=_load(None if added is None else str(added)),
                tags_removed=_load(None if removed is None else str(removed)),
                http_status=None if http is None else int(http),
                attempts=None if attempts is None else int(attempts),
                extra=tuple(str(cell) for cell in cells[INPUT:]),
                line=int(cells[LINE] or 0),
                uncertain=cells[UNCERTAIN] == "true",
            )


def _set_aside(path: Path, label: str) -> Path:
    """Rename a state file (and its -wal/-shm) to `run-<key>.<label>[-n].sqlite`; return it."""
    stem = path.name.removesuffix(".sqlite")
    base, n, target = label, 1, path.with_name(f"{stem}.{label}.sqlite")
    # Runs set aside in the same second must not overwrite each other's record.
    while target.exists():
        target, n = path.with_name(f"{stem}.{base}-{n}.sqlite"), n + 1
    for suffix in ("-wal", "-shm", ""):  # the database last: a crash leaves it findable
        old = Path(f"{path}{suffix}")
        if old.exists():
            old.rename(Path(f"{target}{suffix}"))
    return target


def runs_in(state_dir: Path) -> list[RunInfo]:
    """Every run whose state is in `state_dir`, oldest first; unreadable files are skipped.
    A run taken back by a finished undo in the same directory says so (`RunInfo.undone`).

    Read-only: works while another process holds the directory's lock.
    """
    infos = []
    for path in sorted(state_dir.glob("run-*.sqlite")):
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                keeps = _Schema.of(db).reports
                reports = tuple(_reports(db)) if keeps else ()
            finally:
                db.close()
        except sqlite3.Error:
            continue
        counts = json.loads(meta.get("counts", "{}"))
        infos.append(
            RunInfo(
                path=path,
                state=meta.get("state", "loading"),
                created=meta.get("created", ""),
                input=meta.get("input", ""),
                operation=meta.get("operation", ""),
                target=meta.get("target", ""),
                counts={str(k): int(v) for k, v in counts.items()},
                report=meta.get("report", ""),
                run_id=meta.get("run_id", ""),
                reports=reports,
                keeps_reports=keeps,
                finished=meta.get("finished", ""),
                undoes=meta.get("undoes", ""),
            )
        )
    infos.sort(key=lambda info: info.created)
    undone = {
        info.undoes: Undone(info.finished or info.created, info.report, info.run_id)
        for info in infos  # oldest first: the latest undo of a run is the one kept
        if info.undoes and info.state == "finished"
    }
    return [
        dataclasses.replace(info, undone=undone[info.undo_key]) if info.undo_key in undone else info
        for info in infos
    ]


def _reports(db: sqlite3.Connection) -> list[ReportRecord]:
    return [
        ReportRecord(n, path, kind, rows, bool(complete), digest, written)
        for n, path, kind, rows, complete, digest, written in db.execute(
            "SELECT * FROM reports ORDER BY invocation"
        )
    ]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_file(state_dir: Path, run_key: str) -> Path:
    """Where the run of `run_key` keeps its state (finished or not)."""
    return state_dir / f"run-{run_key}.sqlite"


# Rows by status as the report would give them now (a row of several parts as `_merged` folds
# it): failed if a part failed, pending while a part is unanswered, error if a part was refused.
LIVE_COUNTS = """
WITH answers AS (
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
LEFT JOIN answers AS a ON a.row = r.row
GROUP BY status
"""


def live_counts(path: Path) -> dict[str, int] | None:
    """A run's rows by status now, read from its state file without changing it (None when the
    file cannot be read, or holds no rows yet). Works while another process is sending: the
    counts are those of the outcomes it has recorded so far."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            counts = {str(status): int(n) for status, n in db.execute(LIVE_COUNTS)}
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return counts or None


def prune_finished(state_dir: Path, keep_days: int, *, now: float | None = None) -> list[Path]:
    """Delete finished runs' state files last written more than `keep_days` days ago."""
    horizon = (time.time() if now is None else now) - keep_days * 86_400
    removed = []
    for info in runs_in(state_dir):
        if info.state != "finished":
            continue
        try:
            if info.path.stat().st_mtime >= horizon:
                continue
        except OSError:
            continue
        Ledger._remove(info.path)
        removed.append(info.path)
    return removed


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
