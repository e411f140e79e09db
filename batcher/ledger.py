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
import fcntl
import functools
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import IO, Any, NamedTuple, Self

from batcher.errors import StateError, StateLockedError, UsageError
from batcher.models import (
    Action,
    BatchOutcome,
    Group,
    ReportLine,
    Row,
    Status,
)
from batcher.planning import group_of, tag_parts

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
CREATE TABLE rows (
    row INTEGER PRIMARY KEY,       -- 1-based data row of the input
    contact_id TEXT NOT NULL,
    location_id TEXT NOT NULL,
    action TEXT NOT NULL,
    tags TEXT NOT NULL,            -- JSON array, as the row asked
    group_id INTEGER,              -- NULL when the row is invalid
    pre_status TEXT,               -- 'invalid' or 'duplicate': settled before sending
    pre_message TEXT NOT NULL,
    extra TEXT NOT NULL            -- JSON array: the input's own cells
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
    PRIMARY KEY (row, part)
) WITHOUT ROWID;
"""

# Built after loading: bulk inserts into an unindexed table are several times faster.
INDEXES = """
CREATE INDEX rows_by_group ON rows (group_id, row) WHERE group_id IS NOT NULL;
CREATE INDEX rows_by_contact ON rows (group_id, contact_id, row) WHERE group_id IS NOT NULL;
"""

# A later row of the same group and contact as an earlier valid row is a duplicate of the first.
MARK_DUPLICATES = """
UPDATE rows SET
    pre_status = 'duplicate',
    pre_message = 'duplicate of row ' || (
        SELECT MIN(first.row) FROM rows AS first
        WHERE first.group_id = rows.group_id AND first.contact_id = rows.contact_id
    )
WHERE group_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM rows AS first
    WHERE first.group_id = rows.group_id AND first.contact_id = rows.contact_id
      AND first.row < rows.row
)
"""

# Rows of a group still owing a settled answer for one part; keyset-paginated by row number.
MEMBERS_PAGE = """
SELECT r.row, r.contact_id FROM rows AS r
WHERE r.group_id = :group AND r.pre_status IS NULL AND r.row > :after
  AND NOT EXISTS (
    SELECT 1 FROM results AS s
    WHERE s.row = r.row AND s.part = :part AND s.status IN ('success', 'error')
  )
ORDER BY r.row LIMIT :limit
"""

COUNT_WORK = """
SELECT r.group_id, COUNT(*) FROM rows AS r
WHERE r.pre_status IS NULL
  AND r.group_id IN (SELECT id FROM groups WHERE parts > :part)
  AND NOT EXISTS (
    SELECT 1 FROM results AS s
    WHERE s.row = r.row AND s.part = :part AND s.status IN ('success', 'error')
  )
GROUP BY r.group_id
"""

REPORT_ROWS = """
SELECT r.row, r.contact_id, r.location_id, r.action, r.tags, r.pre_status, r.pre_message,
       r.extra, g.parts, s.part, s.status, s.message, s.old_tags, s.tags_added, s.tags_removed,
       s.http_status, s.attempts
FROM rows AS r
LEFT JOIN groups AS g ON g.id = r.group_id
LEFT JOIN results AS s ON s.row = r.row
ORDER BY r.row, s.part
"""

PAGE_ROWS = 5_000


# Tag lists repeat across rows (every row of a group asks the same tags, most answers look
# alike): each distinct list is encoded and decoded once, not once per row.
@functools.lru_cache(maxsize=4096)
def _dump(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else json.dumps(values, ensure_ascii=False)


@functools.lru_cache(maxsize=4096)
def _load(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


# One encoder for the per-row cells: json.dumps would build a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


class _GroupIds:
    """Group ids while loading, written to the groups table the first time a group is seen.

    Rows asking the same thing usually share one tags tuple, so the row's own fields are looked
    up first and the canonical Group (sorted tags) is built only for a new combination.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._by_fields: dict[tuple[str, str, tuple[str, ...], bool], int] = {}
        self._by_group: dict[Group, int] = {}

    def of(self, row: Row) -> int | None:
        if row.status is not None:
            return None
        fields = (row.location_id, row.action, row.tags, row.remove_all)
        group_id = self._by_fields.get(fields)
        if group_id is None:
            group = group_of(row)
            assert group is not None  # the row is valid
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


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One explicit transaction: the connection is in autocommit mode (isolation_level=None),
    where `with db:` would commit each statement of an executemany on its own."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One (group, part) with rows still to send."""

    group_id: int
    group: Group
    part: int
    members: int


class StateLock:
    """An exclusive flock on `state.dir/lock`, released when the process ends, however it ends."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = self.path.open("a+", encoding="ascii")
        except OSError as exc:
            raise UsageError(
                f"{self.path.parent}: cannot use state directory ({exc.strerror}); "
                "set state.dir to a writable directory"
            ) from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StateLockedError(
                f"{self.path.parent}: another batcher run (pid {holder}) is using this state "
                "directory; wait for it to finish or set another state.dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class Ledger:
    """One run's SQLite state. Use `Ledger.open(...)` as a context manager."""

    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        lock: StateLock,
        *,
        resumed: bool,
        scratch: tempfile.TemporaryDirectory[str] | None = None,
    ):
        self._db = db
        self.path = path
        self._lock = lock
        self.resumed = resumed
        self._scratch = scratch

    @classmethod
    def open(
        cls, state_dir: Path, run_key: str, *, fresh: bool = False, scratch: bool = False
    ) -> Self:
        """Continue the unfinished run of `run_key`, or start a new one.

        A finished run, or any run when `fresh`, is kept under a dated name and a new one starts;
        a run killed while loading is discarded (nothing of it was sent). With `scratch` (a plan)
        nothing is changed in `state_dir`: a run that would start anew lives in a temporary file.
        """
        lock = StateLock(state_dir)
        lock.acquire()
        try:
            path = state_dir / f"run-{run_key}.sqlite"
            resumed = False
            scratch_dir = None
            state, created = cls._peek(path) if path.exists() else ("absent", "")
            if scratch and (fresh or state != "ready"):
                scratch_dir = tempfile.TemporaryDirectory(prefix="batcher-plan-")
                path = Path(scratch_dir.name) / path.name
            elif path.exists():
                if state == "loading":
                    cls._remove(path)
                elif state == "finished" or fresh:
                    stamp = created.replace(":", "").replace("-", "")
                    # Runs created in the same second must not overwrite each other's record.
                    base, n = stamp, 1
                    while (state_dir / f"run-{run_key}.{stamp}.sqlite").exists():
                        stamp, n = f"{base}-{n}", n + 1
                    for suffix in ("", "-wal", "-shm"):
                        old = Path(f"{path}{suffix}")
                        if old.exists():
                            old.rename(state_dir / f"run-{run_key}.{stamp}.sqlite{suffix}")
                else:
                    resumed = True
            db = cls._connect(path)
            if not resumed:
                db.executescript(SCHEMA)
                with _transaction(db):
                    db.executemany(
                        "INSERT INTO meta VALUES (?, ?)",
                        [
                            ("state", "loading"),
                            ("created", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
                        ],
                    )
            return cls(db, path, lock, resumed=resumed, scratch=scratch_dir)
        except BaseException:
            lock.release()
            raise

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None)
        # WAL + NORMAL: a committed transaction survives the process being killed (only a power
        # cut may lose the last ones), at a fraction of FULL's fsync cost per batch.
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    @classmethod
    def _peek(cls, path: Path) -> tuple[str, str]:
        db = sqlite3.connect(path)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            meta = {}
        finally:
            db.close()
        return meta.get("state", "loading"), meta.get("created", "unknown")

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
            self._db.close()
            if self._scratch is not None:
                self._scratch.cleanup()
        finally:
            self._lock.release()

    # -- meta ------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if found is None else str(found[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def columns(self) -> tuple[str, ...]:
        """The input's header, as loaded."""
        return tuple(json.loads(self._meta("columns") or "[]"))

    def finish(self) -> None:
        """Mark the run finished: the same command will start a new run, not continue this one."""
        with _transaction(self._db):
            self._set_meta("state", "finished")

    # -- loading ---------------------------------------------------------------------------

    def load(self, columns: Sequence[str], chunks: Iterable[list[Row]]) -> int:
        """Write every input row once, then mark duplicates. Returns the number of rows."""
        groups = _GroupIds(self._db)
        count = 0
        db = self._db
        with _transaction(db):
            for chunk in chunks:
                records = [
                    (
                        row.row,
                        row.contact_id,
                        row.location_id,
                        row.action,
                        _dump(row.tags),
                        groups.of(row),
                        row.status.value if row.status is not None else None,
                        row.message,
                        _encode(row.extra),
                    )
                    for row in chunk
                ]
                db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", records)
                count += len(records)
            for statement in INDEXES.strip().split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(MARK_DUPLICATES)
            self._set_meta("columns", _encode(tuple(columns)))
            self._set_meta("state", "ready")
        return count

    # -- planning --------------------------------------------------------------------------

    def work(self) -> list[WorkItem]:
        """Every (group, part) with rows still owing a settled answer, in group order."""
        groups = {
            gid: (Group(loc, Action(action), tuple(json.loads(tags)), bool(remove_all)), parts)
            for gid, loc, action, tags, remove_all, parts in self._db.execute(
                "SELECT id, location_id, action, tags, remove_all, parts FROM groups"
            )
        }
        max_parts = max((parts for _, parts in groups.values()), default=0)
        items = []
        for part in range(max_parts):
            for gid, members in self._db.execute(COUNT_WORK, {"part": part}):
                items.append(WorkItem(gid, groups[gid][0], part, members))
        items.sort(key=lambda item: (item.group_id, item.part))
        return items

    def members(self, item: WorkItem) -> Iterator[tuple[int, str]]:
        """`(row, contact_id)` still owing an answer for `item`, in row order, a page at a time.

        Paging (rather than one long cursor) lets outcomes be written between pages safely.
        """
        after = 0
        while True:
            page: list[tuple[int, str]] = self._db.execute(
                MEMBERS_PAGE,
                {"group": item.group_id, "part": item.part, "after": after, "limit": PAGE_ROWS},
            ).fetchall()
            yield from page
            if len(page) < PAGE_ROWS:
                return
            after = page[-1][0]

    # -- outcomes --------------------------------------------------------------------------

    def record(self, outcome: BatchOutcome) -> None:
        """Write one batch's per-contact outcomes in one transaction."""
        batch = outcome.batch
        records = [
            (
                row,
                batch.part,
                result.status.value,
                result.message,
                _dump(result.old_tags),
                _dump(result.tags_added),
                _dump(result.tags_removed),
                outcome.http_status,
                outcome.attempts,
            )
            for row, result in zip(batch.rows, outcome.outcomes, strict=True)
        ]
        try:
            with _transaction(self._db):
                self._db.executemany(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", records
                )
        except sqlite3.Error as exc:
            # The batch was sent but cannot be recorded: stop, so that no more work is lost; a
            # rerun sends this batch again (adding or removing a tag twice changes nothing).
            raise StateError(f"{self.path}: cannot record outcomes ({exc})") from exc

    # -- report ----------------------------------------------------------------------------

    def lines(self, pending_message: str) -> Iterator[ReportLine]:
        """One ReportLine per input row, in input order, parts merged."""
        cursor = self._db.execute(REPORT_ROWS)
        for _, records in groupby(cursor, key=lambda record: record[0]):
            yield _merge(list(records), pending_message)


class _Result(NamedTuple):
    part: int
    status: Status
    message: str
    old_tags: tuple[str, ...] | None
    tags_added: tuple[str, ...] | None
    tags_removed: tuple[str, ...] | None
    http_status: int | None
    attempts: int


def _merge(records: list[Any], pending_message: str) -> ReportLine:
    """Fold one row's results (one per part sent) into its report line.

    SPEC: a row sent in several requests is `success` only if every part succeeded; its
    tags_added/tags_removed are the unions and old_tags comes from the first answer.
    """
    first = records[0]
    row, contact_id, location_id, action, tags, pre_status, pre_message, extra, parts = first[:9]
    asked = (row, contact_id, location_id, action, _load(tags) or ())
    cells = tuple(json.loads(extra))
    if pre_status is not None:
        return ReportLine(*asked, Status(pre_status), pre_message, extra=cells)
    if first[9] is None:  # never answered
        return ReportLine(*asked, Status.PENDING, pending_message, extra=cells)
    if parts == 1:  # the common case: one request settled the row
        _, status, message, old, added, removed, http, attempts = first[9:]
        return ReportLine(
            *asked, Status(status), message, _load(old), _load(added), _load(removed),
            http, attempts, cells,
        )  # fmt: skip
    results = [
        _Result(part, Status(status), message, _load(old), _load(added), _load(removed), http, n)
        for *_, part, status, message, old, added, removed, http, n in records
    ]
    failed = [r for r in results if r.status is Status.FAILED]
    errors = [r for r in results if r.status is Status.ERROR]
    # The request that settled the row: the failed one if any, else the last one answered.
    settling = failed[0] if failed else results[-1]
    if failed:
        status, message = Status.FAILED, failed[0].message
    elif len(results) < parts:
        status, message = Status.PENDING, pending_message
    elif errors:
        status, message = Status.ERROR, errors[0].message
    else:
        status, message = Status.SUCCESS, results[0].message
    return ReportLine(
        *asked,
        status=status,
        message=message,
        old_tags=results[0].old_tags,
        tags_added=_union(r.tags_added for r in results),
        tags_removed=_union(r.tags_removed for r in results),
        http_status=settling.http_status,
        attempts=settling.attempts,
        extra=cells,
    )


def _union(lists: Iterable[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """Tags of every answer in first-seen order; None when no answer carried the list."""
    present = [tags for tags in lists if tags is not None]
    if not present:
        return None
    return tuple(dict.fromkeys(tag for tags in present for tag in tags))
