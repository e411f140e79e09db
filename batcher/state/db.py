"""The state file's SQLite connection: how it is opened, its pragmas, transactions and errors.

A run's connection is in autocommit mode (`isolation_level=None`) and every change goes through
`transaction`; a committed transaction survives the process being killed (WAL, NORMAL syncing).
A plan's scratch file keeps no journal. Whatever goes wrong with the file (a full disk, a
read-only folder, a file changed under us) becomes one `StateError` naming it (`state_error`).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from batcher.domain.errors import StateError
from batcher.support.files import open_private
from batcher.support.machine import cores

__all__ = [
    "Named",
    "connect",
    "insert_many",
    "now",
    "read_only",
    "reason",
    "script",
    "state_error",
    "transaction",
    "written_once",
]


def connect(path: Path, *, create: bool, throwaway: bool = False) -> sqlite3.Connection:
    """A run's connection to its state file (created owner-only with `create`); `throwaway`:
    a plan's scratch file, deleted when the plan ends."""
    if create:
        # Owner-only from the first byte (it holds the input's emails and phones); SQLite
        # gives its -wal and -shm files the same permissions as the database file.
        os.close(open_private(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC))
    db = sqlite3.connect(path, isolation_level=None)
    if throwaway:
        # Nothing to keep safe, so no journal and no syncing (a twentieth of a plan's time on a
        # million rows). Temporary tables stay on disk: in memory, ordering a file that names
        # each contact ten times took 380 MiB instead of 150.
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


def read_only(path: Path, *, autocommit: bool = False) -> sqlite3.Connection:
    """`path` opened read-only, beside the process that may be writing it; changes nothing.

    `autocommit`: each query reads the latest outcomes (a temporary table filled by a query
    would otherwise open a transaction that pins its snapshot)."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    if autocommit:
        return sqlite3.connect(uri, uri=True, isolation_level=None)
    return sqlite3.connect(uri, uri=True)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
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


# Rows inserted by one statement (a multi-row VALUES), at most: SQLite then steps once for them
# all, where a statement a row steps once a row (a million six-column input rows: 1.4 s of CPU
# instead of 1.9-2.3 s; 500 settled rows: 0.26 ms instead of 0.48 with `executemany`).
_ROWS_A_STATEMENT = 64


def insert_many(
    db: sqlite3.Connection, insert: str, values: str, width: int, rows: Iterable[tuple[object, ...]]
) -> None:
    """`insert` (an INSERT up to its VALUES keyword) of each of `rows`, the `width` values that
    fill the `?`s of `values` (one row's parenthesized values): `_ROWS_A_STATEMENT` rows a
    statement, or as many as SQLite's limit on bound values allows, and the last few a
    statement each."""
    flat = list(itertools.chain.from_iterable(rows))
    limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(_ROWS_A_STATEMENT, limit // width))
    step = per * width
    whole = len(flat) - len(flat) % step
    many = f"{insert} VALUES " + ", ".join([values] * per)
    db.executemany(many, (flat[at : at + step] for at in range(0, whole, step)))
    one = f"{insert} VALUES {values}"
    db.executemany(one, (flat[at : at + width] for at in range(whole, len(flat), width)))


def script(db: sqlite3.Connection, statements: str) -> None:
    """Run `;`-separated statements inside the open transaction (`executescript` commits)."""
    for statement in statements.strip().split(";"):
        if statement.strip():
            db.execute(statement)


@contextlib.contextmanager
def written_once(db: sqlite3.Connection, path: Path) -> Iterator[None]:
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
    """WAL mode with NORMAL syncing (see `connect`), back after a load."""
    db.execute("PRAGMA synchronous = NORMAL")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise sqlite3.OperationalError(f"the journal stays in {mode} mode, not WAL")


def reason(exc: BaseException) -> str:
    """An error's reason for a message: an OSError's own words, else its text."""
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


def state_error(
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
    return StateError(f"{path}: {doing} ({reason(exc)})")


class Named:
    """The state file behind a connection, to name it in errors: `path`, and whether it is a
    plan's scratch file (its full disk is the temporary folder's)."""

    def __init__(self, path: Path, *, scratch: bool) -> None:
        self.path = path
        self.scratch = scratch

    def error(
        self, exc: BaseException, doing: str = "cannot use the run's state file"
    ) -> StateError:
        return state_error(self.path, exc, doing, scratch=self.scratch)

    @contextlib.contextmanager
    def errors(self, doing: str = "cannot use the run's state file") -> Iterator[None]:
        """SQLite's and the OS's errors inside, as one StateError naming the file."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise self.error(exc, doing) from exc


def now() -> str:
    """The time now, UTC, as the state file keeps it (ISO 8601, seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
