"""Take a run back (SPEC "Undo"): the API's own answers, kept in the run's ledger, turned into a
new run.

The bulk endpoint answers every contact with `oldTags`, `tagsAdded` and `tagsRemoved`, and the
run's ledger keeps them. The inverse of a row is therefore exact: remove the tags it added, add
back the tags it removed (after a remove-all whose answer lists no `tags_removed`: its
`old_tags`). Tags the contact already had (so not in `tags_added`) are left alone, and so are
tags a remove did not find. Changes made by others since the run are not looked at: undo
restores what *this run* changed, nothing else.

**Which run.** The ledger is the source of truth, never a file that may have been overwritten or
edited. `batcher undo REPORT` hashes the file and looks in the state directory for the run that
wrote exactly these bytes (`ReportRecord.sha256`, kept by the run for each command's report):
the run's latest report identifies it, and the operations are read from the run's own records;
an earlier command's report is refused, naming the latest one; a file no run wrote (edited, or
written with another state directory, or pruned) is refused. The page names the run itself
(`undo(settings, run=info)`). A run already undone is refused unless `again`.

**Uncertain rows** (`batcher.domain.uncertain`: an attempt may have changed the contact without an
answer, so the answers may not show everything the run did) are never guessed at: by default
each is left alone, as a `skipped` line whose message starts `uncertain:` and says what to do
(the undo then exits 1). With `uncertain="revert"` they are reverted by the operation that was
asked: the tags it asked to add are removed, the tags it asked to remove are added back; a
remove-all's tags before the run are unknown: named, never invented (`skipped`).

How an undo runs: `write_undo_input` writes the run's inverse as an ordinary input file
(`contact_id, location_id, action, tags` as a JSON list, plus `undoes_row`, the run's row, and
`undo`, what the line does); `undo` runs that file through `execute`, so an undo is batched by
(location, action, tag set), paced, retried, stoppable and reported like any run.

- **Resumable.** The generated file depends only on the run's records (and `uncertain`), and a
  run is identified by its input's content, options, target and the run it undoes
  (`batcher.app.identity`): the same `batcher undo REPORT` command continues the same
  unfinished undo run. The file itself is written to a private folder under the state directory
  and deleted when the command ends: the next command writes it again, byte for byte. An undo
  that ends with nothing left to send marks its run undone (`RunInfo.undone`).
- **Order.** The pipeline applies a contact's rows in input order. A run may hold several rows
  for one contact (add `vip` on row 3, remove it on row 9): undoing them must go backwards (add
  `vip` back for row 9, then remove it for row 3). Each contact's operations are therefore written
  in reverse, in the places its rows had: other rows keep the run's order, so the undo's report
  reads like the run's. A row whose answer both added and removed tags gives two operations.
- **Rows with nothing to undo** (never applied: `invalid`, `duplicate`, `failed`, `error`,
  `pending`; or applied and changing no tag) are in the file too, and in the undo's report as
  `nothing_to_undo` with a message starting "nothing to undo". A row of several requests (over
  50 tags) that ended `failed`, `error` or `pending` may have had some parts applied: the
  changes its answered parts report are undone too. The status of each line settled before
  sending is handed to the undo's run beside the file (`Chunk.settled`), not read from text.

The reordering sorts on disk with SQLite (in the same private folder): a million-row run is
reversed per contact without holding it in memory.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from batcher.app.directory import workspace
from batcher.app.emulator import sandbox_config
from batcher.app.execute import RowsReader, execute
from batcher.app.jobs import Job, RowsFilter
from batcher.app.result import Preview, RunResult, Tick
from batcher.domain.config import Settings
from batcher.domain.errors import InputError, NothingToSendError, UsageError
from batcher.domain.models import Chunk, ReportLine, Status
from batcher.loading import Caps, InputOptions
from batcher.state import Ledger, RunInfo, runs_in
from batcher.support.files import open_private
from batcher.support.stopping import Stop

__all__ = [
    "NOTHING_TO_UNDO",
    "UNCERTAIN_CHOICES",
    "UNDO_COLUMNS",
    "UndoInput",
    "UndoResult",
    "default_undo_report_path",
    "find_run",
    "report_of",
    "undo",
    "undone_report",
    "write_undo_input",
]

# The generated input's header: the columns loading recognises, then the run's row and what
# the line does (both carried to the undo's report).
UNDO_COLUMNS = ("contact_id", "location_id", "action", "tags", "undoes_row", "undo")
_NOTE = UNDO_COLUMNS.index("undo")
NOTHING_TO_UNDO = "nothing to undo"
# What undo does with uncertain rows: leave them alone (the default), or revert them by the
# operation that was asked.
UNCERTAIN_CHOICES = ("leave", "revert")
# The generated file's name: the report's name and this suffix (see `undone_report`).
_SUFFIX = ".undo.csv"
UNDO_DIR = "undo"
# A generated line's status when it is settled before sending (see `_settled`): 0 is sent.
_SETTLED = (None, Status.NOTHING_TO_UNDO, Status.SKIPPED)

_REPORT_SUFFIXES = (".csv", ".xlsx", ".xlsm", ".jsonl")
_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class _Entry:
    """One row of the run, as much of it as undo needs. Lists are None where there was no
    answer to take them from."""

    row: str  # the run's input row
    contact_id: str
    location_id: str
    action: str
    tags: tuple[str, ...] | None
    status: str
    old_tags: tuple[str, ...] | None
    tags_added: tuple[str, ...] | None
    tags_removed: tuple[str, ...] | None
    uncertain: bool = False

    @classmethod
    def of(cls, line: ReportLine) -> _Entry:
        return cls(
            str(line.row),
            line.contact_id,
            line.location_id,
            line.action,
            line.tags,
            line.status.value,
            line.old_tags,
            line.tags_added,
            line.tags_removed,
            line.uncertain,
        )


# (action, tags, what the line does) for each operation one row needs.
_Operation = tuple[str, tuple[str, ...], str]
# Why a row sends nothing: its undo line's status and message.
_Settled = tuple[Status, str]


def inverse(entry: _Entry, *, revert: bool = False) -> tuple[list[_Operation], _Settled | None]:
    """The operations that take one row back, or none and the status and message of its undo
    line (nothing to undo, or an uncertain row left alone).

    Remove exactly what the API says it added; add back exactly what it says it removed. A
    remove-all (`remove` with no tags) whose answer lists no removed tags removed every tag the
    contact had: its `old_tags`. An uncertain row is left alone, or with `revert` reverted by
    the operation that was asked (see the module docstring).
    """
    remove_all = entry.action == "remove" and not entry.tags
    if entry.uncertain:
        return _uncertain(entry, remove_all, revert)
    added = entry.tags_added or ()
    removed = entry.tags_removed or ()
    applied = entry.status == Status.SUCCESS.value
    note = ""
    if applied and remove_all and not removed and entry.old_tags:
        removed = entry.old_tags
        note = " (a remove-all: its old_tags)"
    operations: list[_Operation] = []
    if added:
        operations.append(("remove", added, f"remove the tags row {entry.row} added"))
    if removed:
        operations.append(("add", removed, f"add back the tags row {entry.row} removed{note}"))
    if operations:
        return operations, None
    if applied:
        why = f"{NOTHING_TO_UNDO}: row {entry.row} changed no tag"
    else:
        why = f"{NOTHING_TO_UNDO}: row {entry.row} is {entry.status or 'without status'}"
    return [], (Status.NOTHING_TO_UNDO, why)


def _uncertain(
    entry: _Entry, remove_all: bool, revert: bool
) -> tuple[list[_Operation], _Settled | None]:
    """`inverse` of a row an attempt of which may have changed the contact unanswered."""
    row, tags = entry.row, entry.tags or ()
    if remove_all:
        return [], (
            Status.SKIPPED,
            f"uncertain: an attempt to send row {row} may have removed every tag of the "
            "contact without an answer: the tags it had before the run are unknown, so undo "
            "cannot put them back (it invents none); restore them from the CRM (the contact's "
            "history, an export)",
        )
    listed = json.dumps(list(tags), ensure_ascii=False, separators=(",", ":"))
    if entry.action == "add":
        if revert:
            note = f"remove the tags row {row} asked to add (uncertain: reverted as asked)"
            return [("remove", tags, note)], None
        did, then = "added", f"remove the tags it asked to add ({listed})"
    else:
        if revert:
            note = f"add back the tags row {row} asked to remove (uncertain: reverted as asked)"
            return [("add", tags, note)], None
        did, then = "removed", f"add back the tags it asked to remove ({listed})"
    return [], (
        Status.SKIPPED,
        f"uncertain: an attempt to send row {row} may have changed the contact without an "
        f"answer, so the run's records may not show every tag it {did}: left alone; check the "
        f"contact, or undo with --uncertain revert to {then}",
    )


# -- which run -------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a report file")
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def find_run(
    settings: Settings, report: Path, notify: Callable[[str], None] = lambda message: None
) -> RunInfo:
    """The run whose latest report is exactly the file `report` (its bytes' SHA-256), from the
    runs in the state directory (read-only). UsageError (exit 2) when the file is an earlier
    command's report of its run (naming the latest), or no run wrote it as it is.

    A run of an earlier version of batcher kept no fingerprint of its reports: when exactly one
    such run names the file as its report (and no run's fingerprint matches), it is that run
    (`notify` says so); its records, not the file, are undone all the same.
    """
    digest = _sha256(report)
    state_dir = Path(settings.state.dir)
    runs = runs_in(state_dir) if state_dir.is_dir() else []
    matches = [
        (info, record) for info in runs for record in info.reports if record.sha256 == digest
    ]
    latest = [info for info, record in matches if record is info.reports[-1]]
    if latest:
        return latest[-1]  # the same bytes as several runs' latest report: the newest run
    if matches:
        info, record = matches[-1]
        last = info.reports[-1]
        partial = "" if record.complete else "partial "
        raise UsageError(
            f"{report}: the {partial}report of an earlier command of its run (command "
            f"{record.invocation} of {last.invocation}, written {_when(record.written)}); the "
            f"run's latest report is {last.path}: undo that one (the run's records are undone, "
            "whichever report names it)"
        )
    resolved = str(report.resolve())
    older = [info for info in runs if not info.keeps_reports and info.report == resolved]
    if len(older) == 1:
        notify(
            f"{report}: written by an earlier version of batcher, which kept no fingerprint of "
            f"its reports; undoing the run that names it (started {_when(older[0].created)}) "
            "from that run's own records"
        )
        return older[0]
    raise UsageError(
        f"{report}: no run in {state_dir} wrote this file as it is now: it was edited, or it "
        "was written by a run whose state is not in this state directory (another state.dir, "
        f"or pruned after state.keep_days = {settings.state.keep_days} days), or it is not a "
        "batcher report; give the report exactly as batcher wrote it, with the state.dir its "
        "run used"
    )


def _when(stamp: str) -> str:
    return stamp.replace("T", " ").replace("Z", " UTC") if stamp else "at an unknown time"


def _entries(info: RunInfo) -> Iterator[_Entry]:
    """The run's rows, as its report gives them, read from its state file (read-only)."""
    with Ledger.reader(info.path) as ledger:
        for line in ledger.lines("not sent"):
            yield _Entry.of(line)


# -- the generated input ---------------------------------------------------------------------


@dataclass(frozen=True)
class UndoInput:
    """The input file written for an undo, and what the run held.

    `report` names the run (the report given, or the run's own); `settled` holds, for each line
    of the file (in order), 0 when it is sent, else the index in `_SETTLED` of its status.
    """

    report: Path
    run: RunInfo
    path: Path
    rows: int  # rows of the run
    undone: int  # rows with something to undo
    operations: int  # lines of the generated file that send something
    skipped: int  # uncertain rows left alone
    statuses: Counter[str]  # the run's rows by status
    settled: bytes = b""

    @property
    def nothing(self) -> int:
        """Rows of the run with nothing to undo."""
        return self.rows - self.undone - self.skipped


# Each contact's operations go in reverse into the places they had (see the module docstring):
# the k-th of n operations of a contact takes the place of its (n + 1 - k)-th.
_ORDER = """
CREATE TABLE ranked (seq INTEGER PRIMARY KEY, location_id, contact_id, k, n);
INSERT INTO ranked
SELECT seq, location_id, contact_id,
       ROW_NUMBER() OVER contact, COUNT(*) OVER (PARTITION BY location_id, contact_id)
FROM lines WHERE action != ''
WINDOW contact AS (PARTITION BY location_id, contact_id ORDER BY seq);
CREATE INDEX ranked_by_contact ON ranked (location_id, contact_id, k);
"""
_ORDERED = """
SELECT o.contact_id, o.location_id, o.action, o.tags, o.undoes_row, o.note, o.settled
FROM lines AS place
LEFT JOIN ranked AS here ON here.seq = place.seq
LEFT JOIN ranked AS there ON there.location_id = here.location_id
    AND there.contact_id = here.contact_id AND there.k = here.n + 1 - here.k
JOIN lines AS o ON o.seq = COALESCE(there.seq, place.seq)
ORDER BY place.seq
"""


@functools.lru_cache(maxsize=4096)
def _dump(tags: tuple[str, ...]) -> str:
    return json.dumps(list(tags), ensure_ascii=False, separators=(",", ":"))


def write_undo_input(
    entries: Iterable[_Entry],
    folder: Path,
    report: Path,
    run: RunInfo,
    *,
    revert: bool = False,
) -> UndoInput:
    """Write the undo's input file of the run's rows `entries` into `folder` (which must be
    private), named after `report`; `revert`: revert uncertain rows (see `inverse`).

    The file's bytes depend on the run's records and `revert` only (see the module docstring).
    """
    path = folder / f"{report.name}{_SUFFIX}"
    statuses: Counter[str] = Counter()
    undone = operations = skipped = 0
    work = folder / "order.sqlite"
    settled = bytearray()
    db = sqlite3.connect(work, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(
            "CREATE TABLE lines (seq INTEGER PRIMARY KEY, contact_id, location_id, action, "
            "tags, undoes_row, note, settled)"
        )
        db.execute("BEGIN")
        batch: list[tuple[str, str, str, str, str, str, int]] = []
        for entry in entries:
            statuses[entry.status] += 1
            found, why = inverse(entry, revert=revert)
            if found:
                undone += 1
                operations += len(found)
            for action, tags, note in found:
                batch.append(
                    (entry.contact_id, entry.location_id, action, _dump(tags), entry.row, note, 0)
                )
            if why is not None:
                status, message = why
                skipped += status is Status.SKIPPED
                kind = _SETTLED.index(status)
                batch.append(
                    (entry.contact_id, entry.location_id, "", "", entry.row, message, kind)
                )
            if len(batch) >= _CHUNK:
                db.executemany("INSERT INTO lines VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)", batch)
                batch.clear()
        db.executemany("INSERT INTO lines VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)", batch)
        db.execute("COMMIT")
        db.executescript(_ORDER)
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(UNDO_COLUMNS)
            for *line, kind in db.execute(_ORDERED):
                writer.writerow(line)
                settled.append(kind)
    finally:
        db.close()
        with contextlib.suppress(OSError):
            work.unlink()
    return UndoInput(
        report=report,
        run=run,
        path=path,
        rows=sum(statuses.values()),
        undone=undone,
        operations=operations,
        skipped=skipped,
        statuses=statuses,
        settled=bytes(settled),
    )


def undone_report(input_path: str | Path) -> str | None:
    """The report's name when `input_path` is an undo's generated input (for `batcher status`)."""
    path = Path(input_path)
    if path.parent.parent.name == UNDO_DIR and path.name.endswith(_SUFFIX):
        return path.name.removesuffix(_SUFFIX)
    return None


def _settle(settled: bytes) -> RowsFilter:
    """The generated input's lines that send nothing get their status (nothing to undo, or
    left alone as uncertain) and their `undo` cell as their message; loading had found them
    invalid (no action)."""

    def rows(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        for chunk in chunks:
            notes = chunk.cells[_NOTE]
            kinds = [settled[row - 1] for row in chunk.rows]
            if not any(kinds):
                yield chunk
                continue
            verdicts: dict[int, tuple[Status, str]] = {}
            for i, kind in enumerate(kinds):
                status = _SETTLED[kind]
                if status is not None:
                    verdicts[i] = (status, notes[i])
            yield dataclasses.replace(chunk, settled=verdicts)

    return rows


# -- the undo run ----------------------------------------------------------------------------


def default_undo_report_path(report: Path) -> Path:
    """`<report name without extension>-undo.csv` in the working directory."""
    name = report.name
    for suffix in _REPORT_SUFFIXES:
        name = name.removesuffix(suffix)
    return Path(f"{name}-undo.csv")


@dataclass
class UndoResult:
    """The undo's run (its summary and exit code) and what the run held."""

    run: RunResult
    source: UndoInput

    @property
    def exit_code(self) -> int:
        return self.run.exit_code


def _ignore(message: str) -> None:
    """The default `notify`: a library caller that passes none hears nothing."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _check_report_path(out: Path, report: Path) -> None:
    if _same_file(out, report) or out.resolve() == report.resolve():
        raise UsageError(
            f"{out}: the undo's report would replace the run's report; give --report another path"
        )


def undo_job(
    settings: Settings,
    source: UndoInput,
    *,
    report_path: Path | None,
    sandbox: bool = False,
    config_file: Path | None = None,
    fresh: bool = False,
    write_report: bool = True,
) -> Job:
    """The Job that runs an undo's generated input, named after the report it takes back.

    Every option that is part of the run's identity is fixed (the file says everything), so the
    same run gives the same undo whatever the config's location or encoding say (the id
    pattern and the longest tag are the settings', as for the run).
    """
    options = InputOptions(
        id_column="contact_id",
        default_location_id="",
        encoding="utf-8",
        delimiter=",",
        caps=Caps(),
    )
    return Job(
        input_path=source.path,
        input=options,
        report_path=report_path,
        fresh=fresh,
        sandbox=sandbox_config(config_file, source.report) if sandbox else None,
        rows=_settle(source.settled),
        undoes=source.run.undo_key,
        shown_as=source.report,
        described_as=f"undo the changes in {source.report}",
        write_report=write_report,
    )


def report_of(info: RunInfo | None) -> Path:
    """The report that names a run given itself (the page): its latest complete one (or, for
    a run that kept none, a name made from its state file's)."""
    assert info is not None
    return Path(info.report or info.path.with_suffix(".csv").name)


async def undo(
    settings: Settings,
    report: Path | None = None,
    *,
    run: RunInfo | None = None,
    report_path: Path | None = None,
    sandbox: bool = False,
    config_file: Path | None = None,
    fresh: bool = False,
    dry_run: bool = False,
    uncertain: str = "leave",
    again: bool = False,
    on_tick: Tick | None = None,
    notify: Callable[[str], None] = _ignore,
    confirm: Callable[[Preview], bool] | None = None,
    stop: Stop | None = None,
    write_report: bool = True,
    read_rows: RowsReader | None = None,
) -> UndoResult:
    """Undo a run (or, with `dry_run`, show what that would send): the run whose latest report
    is the file `report` (see `find_run`), or `run` itself (the page); its records are read
    from its state file, never from a report.

    `report_path` is the undo's own report (default `<report name>-undo.csv` here);
    `uncertain` is "leave" or "revert" (see `inverse`); `again` undoes a run already undone.
    `write_report` False: no report file (`read_rows` reads the rows). The rest is as for
    `batcher.app.execute.execute`. Raises UsageError (exit 2, nothing sent)
    for a file no run in the state directory wrote as it is, an earlier command's report, a run
    already undone (without `again`), or a run with nothing to undo.
    """
    if (report is None) == (run is None):
        raise UsageError("undo takes a run's report, or the run itself")
    if uncertain not in UNCERTAIN_CHOICES:
        raise UsageError(f"--uncertain {uncertain!r}: give one of {', '.join(UNCERTAIN_CHOICES)}")
    named = report if report is not None else report_of(run)
    out = None if dry_run or not write_report else (report_path or default_undo_report_path(named))
    if out is not None:
        _check_report_path(out, named)
    run = _undoable(settings, named, run, again, notify)
    with workspace(Path(settings.state.dir), UNDO_DIR, keep_home=not dry_run) as folder:
        source = write_undo_input(_entries(run), folder, named, run, revert=uncertain == "revert")
        if not source.operations and not source.skipped:
            counts = ", ".join(f"{n:,} {status}" for status, n in source.statuses.most_common())
            raise NothingToSendError(
                f"{named}: nothing to undo: no row of the run changed a tag ({counts or 'no rows'})"
            )
        job = undo_job(
            settings,
            source,
            report_path=out,
            sandbox=sandbox,
            config_file=config_file,
            fresh=fresh,
            write_report=write_report,
        )
        result = await execute(
            settings,
            job,
            dry_run=dry_run,
            on_tick=on_tick,
            notify=notify,
            confirm=confirm,
            stop=stop,
            read_rows=read_rows,
        )
    return UndoResult(run=result, source=source)


def _undoable(
    settings: Settings,
    named: Path,
    run: RunInfo | None,
    again: bool,
    notify: Callable[[str], None],
) -> RunInfo:
    """The run to undo: `run`, or the one whose latest report is `named`; refused when it was
    undone already, unless `again`."""
    if run is None:
        run = find_run(settings, named, notify)
    if run.undone is not None and not again:
        raise UsageError(
            f"{named}: its run (started {_when(run.created)}) was undone on "
            f"{_when(run.undone.finished)} by {run.undone.by}; "
            "give --again to undo it again"
        )
    return run
