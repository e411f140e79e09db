"""The run's state in one SQLite file: every input row once, each request's outcomes, the lock.

The ledger is the spine of a run (DESIGN.md): loading writes each row here once; planning reads
the rows still to do; each batch's per-contact outcomes are written in one transaction as they
arrive; the report is read back from here. A process killed at any instant therefore loses no
row: a batch is either recorded whole or will be sent again by the next run of the same command.

`Ledger` is a thin façade over the modules of `batcher.state`, one job each (`db`, `schema`,
`directory`, `rows`, `ordering`, `work`, `outcomes`, `reading`), over one connection; it opens
and closes the file and is where their SQLite and OS errors become one `StateError` naming it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import ParamSpec, Self, TypeVar

from batcher.domain.errors import StateError
from batcher.domain.models import Batch, BatchOutcome, Cell, Chunk, Inert, ReportLine
from batcher.domain.planning import WorkItem
from batcher.state import directory, drip, lookups, reading, rows, schema
from batcher.state.db import Named, connect, read_only, reason
from batcher.state.directory import StateLock, prepare_state_dir, run_file
from batcher.state.lookups import Resolution
from batcher.state.outcomes import Outcomes
from batcher.state.reading import LAST_ROW, Block, ReportReader
from batcher.state.schema import ReportRecord, Schema
from batcher.state.work import Answered, WorkQueue

__all__ = ["Ledger"]

P = ParamSpec("P")
T = TypeVar("T")


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
            assert isinstance(ledger, Ledger)
            raise ledger.named.error(exc) from exc

    return wrapper


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
        self.named = Named(path, scratch=scratch is not None)
        kept = Schema.of(db)
        # No row past `answered.up_to` has an answer: a new run starts with none and recording
        # raises it; a resumed run may have answers anywhere.
        answered = Answered(math.inf if resumed else 0)
        self._work = WorkQueue(db, self.named, answered)
        self._outcomes = Outcomes(
            db,
            answered,
            # Whether any request of the run may have reached the API unanswered: looked up
            # once, then kept up to date by the recorder.
            exposed_any=resumed
            and kept.exposed
            and bool(db.execute("SELECT EXISTS (SELECT 1 FROM exposed)").fetchone()[0]),
        )
        self._reader = ReportReader(db, kept)
        self._schema = kept

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
            return cls._open_locked(path, lock, fresh, scratch, notify, about or {}, on_start)
        except (sqlite3.Error, OSError) as exc:
            lock.release()
            raise Named(path, scratch=scratch).error(exc) from exc
        except BaseException:
            lock.release()
            raise

    @classmethod
    def reader(cls, path: Path) -> Self:
        """A run's state file opened read-only, beside the process that holds it: for a second
        process writing part of the report, or a copy of it. Takes no lock (the holder keeps it,
        or none does) and changes nothing in the file."""
        try:
            db = read_only(path, autocommit=True)
            return cls(db, path, None, resumed=True)
        except sqlite3.Error as exc:
            raise StateError(f"{path}: cannot read the run's state ({reason(exc)})") from exc

    @classmethod
    def _open_locked(
        cls,
        path: Path,
        lock: StateLock,
        fresh: bool,
        scratch: bool,
        notify: Callable[[str], None],
        about: dict[str, str],
        on_start: Callable[[str], None] | None,
    ) -> Self:
        state, created, run_id = cls._found(path, scratch, notify)
        resumed = False
        scratch_dir = None
        if scratch and (fresh or state != "ready"):
            scratch_dir = tempfile.TemporaryDirectory(prefix="batcher-plan-")
            path = Path(scratch_dir.name) / path.name
        elif state == "loading":
            directory.remove(path)
        elif state == "finished" or (fresh and state == "ready"):
            directory.set_aside(path, created.replace(":", "").replace("-", ""))
        elif state == "ready":
            resumed = True
        if not resumed or not run_id:  # a new run, or one of a version that kept no id
            run_id = schema.new_run_id()
        if on_start is not None:
            on_start(run_id)
        db = connect(path, create=not resumed, throwaway=scratch_dir is not None)
        if resumed:
            schema.migrate(db, run_id=run_id, invocation=not scratch)
        else:
            schema.create(db, run_id=run_id, about=about)
        return cls(db, path, lock, resumed=resumed, scratch=scratch_dir)

    @staticmethod
    def _found(path: Path, scratch: bool, notify: Callable[[str], None]) -> tuple[str, str, str]:
        """The state, creation time and id of the run in `path` ("absent" when there is none);
        a file that cannot be read is set aside (a plan leaves it, as "unreadable")."""
        if not path.exists():
            return "absent", "", ""
        try:
            return directory.peek(path)
        except sqlite3.DatabaseError as exc:
            if scratch:
                return "unreadable", "", ""
            aside = directory.set_aside(path, "unreadable")
            notify(
                f"{path}: the state file cannot be read ({exc}); set aside as {aside.name}, and "
                "a new run starts (rows it had settled are sent again, which changes nothing "
                "for tags already applied)"
            )
            return "absent", "", ""

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

    # -- the run's own record ----------------------------------------------------------------

    @property
    @_state_errors
    def columns(self) -> tuple[str, ...]:
        """The input's header, as loaded."""
        return tuple(json.loads(schema.get_meta(self._db, "columns") or "[]"))

    @property
    @_state_errors
    def run_id(self) -> str:
        """The run's id (see `schema.new_run_id`)."""
        return schema.get_meta(self._db, "run_id") or ""

    @property
    @_state_errors
    def invocation(self) -> int:
        """Which command of the run this is: 1 for the one that started it, 2 for the next..."""
        return int(schema.get_meta(self._db, "invocation") or "1")

    @_state_errors
    def save_counts(self, counts: Mapping[str, int], *, finished: bool) -> None:
        """Keep the rows by status (for `batcher status` and other runs' summaries); with
        `finished`, mark the run finished: the same command will start a new run, not continue
        this one."""
        schema.save_counts(self._db, counts, finished=finished)

    @_state_errors
    def record_report(self, path: Path, *, rows: int, complete: bool, sha256: str) -> None:
        """Keep the report this invocation wrote (its file is written and synced, `sha256` its
        bytes' digest), and name in the meta the run's report: the latest complete one (no row
        pending), or the latest one when none is complete."""
        schema.record_report(
            self._db, self.invocation, path, rows=rows, complete=complete, sha256=sha256
        )

    @_state_errors
    def reports(self) -> list[ReportRecord]:
        """The reports of the run's invocations, oldest first."""
        return schema.reports(self._db)

    # -- rows -----------------------------------------------------------------------------

    @_state_errors
    def load(self, columns: Sequence[str], chunks: Iterable[Chunk], *, cells: bool = True) -> int:
        """Write every input row once, then order each contact's rows. Returns the row count
        (see `batcher.state.rows`; without `cells`, it gives no report rows). A plan's scratch
        ledger never sends: its rows are not indexed for sending."""
        return rows.load(
            self._db, self.path, columns, chunks, cells=cells, sending=self._scratch is None
        )

    @_state_errors
    def row_count(self) -> int:
        """The number of input rows: the report's lines."""
        return rows.row_count(self._db)

    @_state_errors
    def row_at(self, index: int) -> int | None:
        """The number of the input row at `index` (0-based) in row order; None past the last."""
        return rows.row_at(self._db, index)

    # -- rows given by email (Step 16) ------------------------------------------------------

    @_state_errors
    def unresolved(self) -> dict[str, list[str]]:
        """The addresses still to look up, by location, each once."""
        if not self._schema.lookups:
            return {}
        return lookups.unresolved(self._db)

    @_state_errors
    def record_resolutions(self, location_id: str, answers: Mapping[str, Sequence[str]]) -> None:
        """Keep one search's answers (each address's matching contact ids), in one transaction."""
        lookups.record(self._db, location_id, answers)

    @_state_errors
    def apply_resolutions(self) -> None:
        """Settle the rows given by email once every address has its answer (see
        `batcher.state.lookups`)."""
        if self._schema.lookups:
            lookups.apply(self._db)

    @_state_errors
    def resolution(self, examples: int) -> Resolution | None:
        """The rows given by email, by how their addresses were answered; None when none."""
        if not self._schema.lookups:
            return None
        found = lookups.summary(self._db, examples)
        return found if found.rows else None

    # -- the work queue ---------------------------------------------------------------------

    @_state_errors
    def work(self) -> list[WorkItem]:
        """Every (round, group, part) with rows still owing a settled answer: what a plan shows.

        Counts assume that each row's earlier rows (of the same contact) will succeed.
        """
        return self._work.work()

    @_state_errors
    def ready_work(self, round_: int, location_id: str | None = None) -> list[WorkItem]:
        """The (group, part) items of `round_` (of one location, if given) whose rows may be
        sent now: each contact's previous row (round - 1) has settled."""
        return self._work.ready_work(round_, location_id)

    @_state_errors
    def rounds_by_location(self) -> dict[str, int]:
        """Each location with rows to send, and the highest round among them."""
        return self._work.rounds_by_location()

    def members(self, item: WorkItem) -> Iterator[tuple[int, str]]:
        """`(row, contact_id)` still owing an answer for `item` and free to go, in row order,
        a page at a time."""
        return self._work.members(item)

    # -- outcomes ---------------------------------------------------------------------------

    def record(self, outcome: BatchOutcome) -> None:
        """Write one batch's per-contact outcomes in one transaction (see
        `batcher.state.outcomes`)."""
        try:
            self._outcomes.record(outcome)
        except (sqlite3.Error, ValueError) as exc:
            # The batch was sent but cannot be recorded: stop, so that no more work is lost; a
            # rerun sends this batch again (adding or removing a tag twice changes nothing).
            raise self.named.error(exc, "cannot record outcomes") from exc

    @_state_errors
    def record_exposed(self, batch: Batch) -> None:
        """Keep that a request of `batch` may have reached the API without an answer, for a
        request that ends with no outcome to record (its rows stay pending)."""
        self._outcomes.record_exposed(batch)

    # -- the drip ---------------------------------------------------------------------------

    @_state_errors
    def record_drip(self, location_id: str, at: float, contacts: int) -> None:
        """Keep that a request of `contacts` to `location_id` completed `at` (a run with a drip:
        see `batcher.state.drip`)."""
        drip.record_sent(self._db, location_id, at, contacts)

    @_state_errors
    def drip_sent(self, since: float) -> dict[str, list[tuple[float, int]]]:
        """Each location's requests recorded by `record_drip` that completed after `since`."""
        return drip.sent_since(self._db, since)

    @_state_errors
    def set_window(self, text: str) -> None:
        """Keep the send window this invocation runs in, for `batcher status`."""
        drip.set_window(self._db, text)

    @_state_errors
    def window(self) -> str:
        """The send window the run's latest invocation ran in ("" without one)."""
        return drip.window(self._db)

    # -- reading ----------------------------------------------------------------------------

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

        Rows never sent get `pending_message`, or their location's own in `by_location`. With
        `inert`, text cells that could start a spreadsheet formula are made inert (for CSV).
        The rows are fetched a block at a time and passed on with no Python code run per row
        (`chain`), so that a consumer written in C (the csv writer) takes a million of them at
        C speed.
        """
        blocks = self._reader.blocks(
            len(self.columns), pending_message, by_location or {}, inert, (first, last)
        )
        return chain.from_iterable(self._read_errors(blocks))

    def _read_errors(self, blocks: Iterator[Block]) -> Iterator[Block]:
        """`blocks`, with an SQLite error while reading them raised as a StateError."""
        try:
            yield from blocks
        except sqlite3.Error as exc:
            raise self.named.error(exc, "cannot read the run's state") from exc

    def lines(
        self, pending_message: str, by_location: Mapping[str, str] | None = None
    ) -> Iterator[ReportLine]:
        """The report's rows as ReportLines (lists as tuples): for undo, tests and library
        callers."""
        return reading.lines(self.report_rows(pending_message, by_location))

    @_state_errors
    def status_counts(self) -> dict[str, int]:
        """Rows by status as the report would show them, counted in SQL (for a plan)."""
        return reading.status_counts(self._db, self.row_count())

    @_state_errors
    def retryable_failed(self) -> int:
        """Failed rows that running the same command again may settle (the others' requests
        the API refused: they need fixing in the input)."""
        return reading.retryable_failed(self._db, self._schema)

    @_state_errors
    def first_rows(self, pre_status: str, limit: int) -> list[tuple[int, int, str, str]]:
        """(row, line, contact id, message) of the first rows settled before sending as
        `pre_status` (invalid, duplicate): the examples a plan shows."""
        return reading.first_rows(self._db, pre_status, limit)
