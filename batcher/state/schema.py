"""What a state file holds: its tables, how a new one is made and an older one migrated, and
the run's own record in it (the `meta` keys, the reports its commands wrote)."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from batcher.domain.models import MAX_INPUT_COLUMNS
from batcher.state.db import now, script, transaction

__all__ = [
    "MAX_INPUT_COLUMNS",
    "ROWS_TABLE",
    "SETTLED_INDEX",
    "WORK_INDEX",
    "ReportRecord",
    "Schema",
    "create",
    "get_meta",
    "migrate",
    "move_report",
    "new_run_id",
    "record_report",
    "reports",
    "save_counts",
    "set_meta",
]

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
"""
# How a state file keeps answers since Step 15: each distinct answer once (as far as the
# recorder remembers: `batcher.state.outcomes`), and a narrow row per (row, part) pointing at it
# (a request's 500 answers differ only in the contacts' old tags, and writing eleven fields a
# row was two fifths of the send's cost). `results` is the view every reader but the report's
# query reads: the table of that name that older files hold (the same columns, one row per
# (row, part)), which `migrate` turns into these when such a file is continued.
ANSWERS = """
CREATE TABLE answers (             -- the ways requests settled rows (most share a few)
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,          -- success, error or failed
    message TEXT NOT NULL,
    tags_added TEXT,
    tags_removed TEXT,
    http_status INTEGER,
    attempts INTEGER NOT NULL,
    uncertain INTEGER NOT NULL,    -- 1: see batcher.domain.uncertain
    permanent INTEGER NOT NULL     -- 1: failed, and sending it again cannot help
);
CREATE TABLE settled (             -- one per (row, part) that a request settled
    row INTEGER NOT NULL,
    part INTEGER NOT NULL,
    answer INTEGER NOT NULL,       -- answers.id
    old_tags TEXT,                 -- the contact's own: kept per row, not in its answer
    PRIMARY KEY (row, part)
) WITHOUT ROWID;
CREATE VIEW results AS
SELECT s.row, s.part, a.status, a.message, s.old_tags, a.tags_added, a.tags_removed,
       a.http_status, a.attempts, a.uncertain, a.permanent
FROM settled AS s JOIN answers AS a ON a.id = s.answer;
"""
# Tables a state file written before Step 9 lacks: created with the others, and added when such
# a file is opened to be continued (see `migrate`).
ADDED_TABLES = """
CREATE TABLE IF NOT EXISTS exposed (  -- (row, part) of a request that may have reached the API
    row INTEGER NOT NULL,             -- without an answer (see batcher.domain.uncertain)
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
CREATE TABLE IF NOT EXISTS lookups (  -- Step 16: rows given by email, without a contact id
    row INTEGER PRIMARY KEY,
    location_id TEXT NOT NULL,
    email TEXT NOT NULL,           -- trimmed and lower-cased (batcher.loading)
    group_id INTEGER NOT NULL      -- the row's group once its contact is known
);
CREATE TABLE IF NOT EXISTS resolutions (  -- each address's answer, kept as it arrives
    location_id TEXT NOT NULL,
    email TEXT NOT NULL,
    contact_ids TEXT NOT NULL,     -- JSON array: the contacts whose email is exactly it
    PRIMARY KEY (location_id, email)
) WITHOUT ROWID;
"""

# Created by `rows.load`, with one column per input column (c0, c1, ...): the report's input
# cells come back as they are, with no encoding per row.
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

# Built after loading: bulk inserts into an unindexed table are several times faster. The
# work queue pages through a group's rows by the first (`batcher.state.work`); a plan, which
# only counts them once, does without it (see `batcher.state.rows.load`).
SETTLED_INDEX = (
    "CREATE INDEX rows_settled_before ON rows (pre_status, row) WHERE pre_status IS NOT NULL"
)
WORK_INDEX = "CREATE INDEX rows_by_group ON rows (group_id, round, row) WHERE group_id IS NOT NULL"


class Schema(NamedTuple):
    """What a state file holds of what this version keeps (an older one's lacks some, and is
    only read, or migrated when it is continued: see `migrate`)."""

    uncertain: bool  # results.uncertain
    exposed: bool  # the exposed table
    reports: bool  # the reports table
    permanent: bool  # results.permanent
    lookups: bool  # the lookups and resolutions tables (Step 16)
    answers: bool  # answers kept once each (`ANSWERS`), not a wide `results` table

    @classmethod
    def of(cls, db: sqlite3.Connection) -> Schema:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
        return cls(
            "uncertain" in columns,
            "exposed" in tables,
            "reports" in tables,
            "permanent" in columns,
            "lookups" in tables,
            "answers" in tables,
        )


def new_run_id() -> str:
    """A run's id: unique per run, also across `--fresh` runs of the same input."""
    return secrets.token_hex(8)


def create(db: sqlite3.Connection, *, run_id: str, about: Mapping[str, str]) -> None:
    """The tables of a new run, its rows table still without the input's columns (`rows.load`
    gives it them), and its meta: loading, created now, its id, `about` it."""
    db.executescript(SCHEMA + ANSWERS + ADDED_TABLES)
    db.execute(ROWS_TABLE.format(cells=""))
    with transaction(db):
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [
                ("state", "loading"),
                ("created", now()),
                ("run_id", run_id),
                ("invocation", "1"),
                *about.items(),
            ],
        )


def migrate(db: sqlite3.Connection, *, run_id: str, invocation: bool) -> None:
    """Give a state file of an older version what this one keeps (a run it started is being
    continued): the `uncertain` and `permanent` columns, the `exposed` and `reports` tables, its
    `run_id`, its answers kept once each (`ANSWERS`); and, with `invocation`, count this command
    as the run's next invocation.

    A file from before Step 15 said that a failed row's request was refused only in its message
    (`batcher.sending.sender.failure_message`): read once here, into `permanent`."""
    schema = Schema.of(db)
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if all(schema) and "run_id" in meta and not invocation:
        return
    with transaction(db):
        if not schema.uncertain:
            db.execute("ALTER TABLE results ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0")
        if not schema.permanent:
            db.execute("ALTER TABLE results ADD COLUMN permanent INTEGER NOT NULL DEFAULT 0")
            db.execute(
                "UPDATE results SET permanent = 1 WHERE status = 'failed' "
                "AND substr(message, 1, length(:refused)) = :refused",
                {"refused": _REFUSED},
            )
        if not (schema.exposed and schema.reports and schema.lookups):
            script(db, ADDED_TABLES)
        if not schema.answers:
            _narrow(db)
        if "run_id" not in meta:
            db.execute("INSERT INTO meta VALUES ('run_id', ?)", (run_id,))
        if invocation:
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('invocation', ?)",
                (str(int(meta.get("invocation", "1")) + 1),),
            )


def _narrow(db: sqlite3.Connection) -> None:
    """Turn a wide `results` table (before Step 15, its columns complete) into `ANSWERS`: each
    distinct answer once, each row pointing at its own."""
    db.execute("ALTER TABLE results RENAME TO wide_results")
    script(db, ANSWERS)
    fields = ", ".join(_ANSWER_FIELDS)
    db.execute(f"INSERT INTO answers ({fields}) SELECT DISTINCT {fields} FROM wide_results")
    db.execute(f"CREATE INDEX answer_fields ON answers ({fields})")
    same = " AND ".join(f"a.{name} IS w.{name}" for name in _ANSWER_FIELDS)
    db.execute(
        "INSERT INTO settled SELECT w.row, w.part, a.id, w.old_tags "
        f"FROM wide_results AS w JOIN answers AS a ON {same}"
    )
    db.execute("DROP INDEX answer_fields")
    db.execute("DROP TABLE wide_results")


# The fields of an answer (`ANSWERS`), in its table's order.
_ANSWER_FIELDS = (
    "status",
    "message",
    "tags_added",
    "tags_removed",
    "http_status",
    "attempts",
    "uncertain",
    "permanent",
)
# How the message of a row whose request the API refused began before Step 15.
_REFUSED = "the API refused the request:"


def get_meta(db: sqlite3.Connection, key: str) -> str | None:
    found = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if found is None else str(found[0])


def set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def save_counts(db: sqlite3.Connection, counts: Mapping[str, int], *, finished: bool) -> None:
    """Keep the rows by status; with `finished`, mark the run finished."""
    with transaction(db):
        set_meta(db, "counts", json.dumps(dict(counts), sort_keys=True))
        if finished:
            set_meta(db, "state", "finished")
            set_meta(db, "finished", now())


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


def reports(db: sqlite3.Connection) -> list[ReportRecord]:
    """The reports of the run's invocations, oldest first."""
    return [
        ReportRecord(n, path, kind, rows, bool(complete), digest, written)
        for n, path, kind, rows, complete, digest, written in db.execute(
            "SELECT * FROM reports ORDER BY invocation"
        )
    ]


def move_report(db: sqlite3.Connection, old: str, new: str) -> None:
    """A report of the run was moved from `old` to `new` (resolved paths): its record, and the
    meta's report if it is that one, follow it."""
    with transaction(db):
        db.execute("UPDATE reports SET path = ? WHERE path = ?", (new, old))
        if get_meta(db, "report") == old:
            set_meta(db, "report", new)


def record_report(
    db: sqlite3.Connection,
    invocation: int,
    path: Path,
    *,
    rows: int,
    complete: bool,
    sha256: str,
) -> None:
    """Keep the report an invocation wrote, and name in the meta the run's report: the latest
    complete one (no row pending), or the latest one when none is complete."""
    with transaction(db):
        db.execute(
            "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                invocation,
                str(path.resolve()),
                path.suffix.lower().removeprefix("."),
                rows,
                int(complete),
                sha256,
                now(),
            ),
        )
        (report,) = db.execute(
            "SELECT path FROM reports ORDER BY complete DESC, invocation DESC LIMIT 1"
        ).fetchone()
        set_meta(db, "report", report)
