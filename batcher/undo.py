"""Take a run back from its report (SPEC "Undo"): the API's own answers turned into a new run.

The bulk endpoint answers every contact with `oldTags`, `tagsAdded` and `tagsRemoved`, and the
report keeps them. The inverse of a row is therefore exact: remove the tags it added, add back
the tags it removed (after a remove-all whose answer lists no `tags_removed`: its `old_tags`).
Tags the contact already had (so not in `tags_added`) are left alone, and so are tags a remove
did not find. Changes made by others since the run are not looked at: undo restores what *this
run* changed, nothing else.

How an undo runs: `write_undo_input` reads the report (CSV, XLSX or JSONL) and writes an ordinary
input file (`contact_id, location_id, action, tags` as a JSON list, plus `undoes_row`, the
report's row, and `undo`, what the line does); `undo` runs that file through `execute`, so an undo
is batched by (location, action, tag set), paced, retried, stoppable and reported like any run.

- **Resumable.** The generated file depends only on the report's bytes, and a run is identified
  by its input's content, options and target (`runner.run_key`): the same `batcher undo REPORT`
  command on the same report continues the same unfinished undo run. The file itself is written
  to a private folder under the state directory and deleted when the command ends: the next
  command writes it again, byte for byte.
- **Order.** The pipeline applies a contact's rows in input order. A report may hold several rows
  for one contact (add `vip` on row 3, remove it on row 9): undoing them must go backwards (add
  `vip` back for row 9, then remove it for row 3). Each contact's operations are therefore written
  in reverse, in the places its rows had: other rows keep the report's order, so the undo's report
  reads like the run's. A row whose answer both added and removed tags gives two operations.
- **Rows with nothing to undo** (never applied: `invalid`, `duplicate`, `failed`, `error`,
  `pending`; or applied and changing no tag) are in the file too, and in the undo's report as
  `invalid` with a message starting "nothing to undo". A row of several requests (over 50 tags)
  that ended `failed`, `error` or `pending` may have had some parts applied: the changes its
  answered parts report are undone too.
- **Not a report.** A file without the report's result fields is refused (exit 2) before anything
  is sent, and so is a list cell that is not a JSON list of tags: an undo must not guess.

The reordering sorts on disk with SQLite (in the same private folder): a million-row report is
reversed per contact without holding it in memory.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from batcher.config import Settings
from batcher.errors import BatcherError, InputError, NothingToSendError, UsageError
from batcher.files import open_private, private_dir
from batcher.jobs import Job, sandbox_config
from batcher.loading import InputOptions, open_input
from batcher.loading._common import Source, is_blank
from batcher.loading._excel import open_excel
from batcher.models import Chunk, Status
from batcher.report import INERT, RESULT_FIELDS
from batcher.runner import Preview, RunResult, Tick, describe_operation, execute
from batcher.stopping import Stop

__all__ = [
    "NOTHING_TO_UNDO",
    "UNDO_COLUMNS",
    "UndoInput",
    "UndoResult",
    "default_undo_report_path",
    "undo",
    "undone_report",
    "write_undo_input",
]

# The generated input's header: the columns loading recognises, then the report's row and what
# the line does (both carried to the undo's report).
UNDO_COLUMNS = ("contact_id", "location_id", "action", "tags", "undoes_row", "undo")
_NOTE = UNDO_COLUMNS.index("undo")
NOTHING_TO_UNDO = "nothing to undo"
# The generated file's name: the report's name and this suffix (see `undone_report`).
_SUFFIX = ".undo.csv"
UNDO_DIR = "undo"

_REPORT_SUFFIXES = (".csv", ".xlsx", ".xlsm", ".jsonl")
_LIST_FIELDS = ("tags", "old_tags", "tags_added", "tags_removed")
_STATUSES = frozenset(status.value for status in Status)
_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class _Entry:
    """One report line, as much of it as undo needs. Lists are None where the cell is empty."""

    where: int  # the report's line (CSV, JSONL) or sheet row (XLSX), for messages
    row: str  # the report's `row`: the run's input row
    contact_id: str
    location_id: str
    action: str
    tags: tuple[str, ...] | None
    status: str
    old_tags: tuple[str, ...] | None
    tags_added: tuple[str, ...] | None
    tags_removed: tuple[str, ...] | None


# (action, tags, what the line does) for each operation one report line needs.
_Operation = tuple[str, tuple[str, ...], str]


def inverse(entry: _Entry) -> tuple[list[_Operation], str]:
    """The operations that take one report line back, or none and why there is nothing to undo.

    Remove exactly what the API says it added; add back exactly what it says it removed. A
    remove-all (`remove` with no tags) whose answer lists no removed tags removed every tag the
    contact had: its `old_tags`.
    """
    added = entry.tags_added or ()
    removed = entry.tags_removed or ()
    applied = entry.status == Status.SUCCESS.value
    remove_all = entry.action == "remove" and not entry.tags
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
        return operations, ""
    if applied:
        return [], f"{NOTHING_TO_UNDO}: row {entry.row} changed no tag"
    return [], f"{NOTHING_TO_UNDO}: row {entry.row} is {entry.status or 'without status'}"


# -- reading a report ------------------------------------------------------------------------


def _not_a_report(path: Path, missing: list[str]) -> InputError:
    shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
    return InputError(
        f"{path}: not a batcher report (no {shown} column{'s' if len(missing) > 1 else ''}); "
        "give the report file that `batcher run` wrote (.csv, .xlsx or .jsonl)"
    )


@functools.lru_cache(maxsize=4096)
def _json_list(text: str) -> tuple[str, ...] | None:
    """A list cell's tags; None for an empty cell; ValueError when it is not a list of text."""
    if not text.strip():
        return None
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("not a list of text")
    return tuple(value)


def _as_list(value: object) -> tuple[str, ...] | None:
    """A JSONL list value (an array or null; a JSON text is taken too)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _json_list(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError("not a list of text")


def _uninert(text: str) -> str:
    """A CSV cell as it was before the report made it inert (a `'` before a formula trigger)."""
    if text.startswith("'") and INERT.make(text[1:]) == text:
        return text[1:]
    return text


def _text(value: object) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# The report's fields undo reads, in the order `_entry` takes them.
_USED = (
    "row",
    "contact_id",
    "location_id",
    "action",
    "tags",
    "status",
    "old_tags",
    "tags_added",
    "tags_removed",
)


def _entry(path: Path, where: int, values: Sequence[object], lists: bool) -> _Entry:
    """One line of the report from its `_USED` values (text cells, or JSONL values)."""
    row, contact_id, location_id, action, tags, status, old, added, removed = values
    status = _text(status).strip()
    if status not in _STATUSES:
        raise InputError(
            f"{path}: line {where}: status {status[:40]!r} is not one a report has "
            f"({', '.join(sorted(_STATUSES))}); is this a batcher report?"
        )
    parsed: list[tuple[str, ...] | None] = []
    for name, raw in zip(_LIST_FIELDS, (tags, old, added, removed), strict=True):
        try:
            parsed.append(_as_list(raw) if lists else _json_list(_text(raw)))
        except (ValueError, RecursionError):
            raise InputError(
                f"{path}: line {where}: {name} is not a JSON list of tags "
                f"({_text(raw)[:60]!r}); undo takes the lists as the run wrote them"
            ) from None
    return _Entry(
        where,
        _text(row).strip(),
        _text(contact_id).strip(),
        _text(location_id).strip(),
        _text(action).strip().lower(),
        parsed[0],
        status,
        parsed[1],
        parsed[2],
        parsed[3],
    )


def read_report(path: Path) -> Iterator[_Entry]:
    """The report's lines in order. InputError (exit 2) for a file that is not a report."""
    name = path.name.lower()
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a report file")
    if name.endswith(".jsonl"):
        yield from _read_jsonl(path)
    elif name.endswith((".xlsx", ".xlsm")):
        yield from _read_table(path, open_excel(path, None), inert=False)
    elif name.endswith(".csv"):
        # Imported here, as loading does: pandas costs 0.3 s of every start otherwise.
        from batcher.loading._csv import open_csv

        yield from _read_table(path, open_csv(path, "", None, gzipped=False), inert=True)
    else:
        raise InputError(
            f"{path}: not a report file ({path.suffix or 'no extension'}); give the .csv, "
            ".xlsx or .jsonl report that `batcher run` wrote"
        )


def _read_table(path: Path, source: Source, *, inert: bool) -> Iterator[_Entry]:
    header = list(source.header)
    missing = [field for field in RESULT_FIELDS if field not in header]
    if missing:
        raise _not_a_report(path, missing)
    used = [header.index(field) for field in _USED]
    for part in source.read(_CHUNK, used[1]):
        lines = part.lines
        for n, values in enumerate(zip(*(part.columns[i] for i in used), strict=True)):
            if is_blank(values):
                continue
            where = lines + n if isinstance(lines, int) else lines[n]
            if inert and any(value[:1] == "'" for value in values):
                values = tuple(_uninert(value) for value in values)
            yield _entry(path, where, values, lists=False)


def _read_jsonl(path: Path) -> Iterator[_Entry]:
    with path.open(encoding="utf-8-sig") as fh:
        checked = False
        for where, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise InputError(
                    f"{path}: line {where} is not JSON; is this a batcher report?"
                ) from None
            if not isinstance(record, dict):
                raise _not_a_report(path, list(RESULT_FIELDS))
            if not checked:
                missing = [field for field in RESULT_FIELDS if field not in record]
                if missing:
                    raise _not_a_report(path, missing)
                checked = True
            yield _entry(path, where, [record.get(field) for field in _USED], lists=True)


# -- the generated input ---------------------------------------------------------------------


@dataclass(frozen=True)
class UndoInput:
    """The input file written for an undo, and what the report held."""

    report: Path
    path: Path
    rows: int  # lines of the report
    undone: int  # lines with something to undo
    operations: int  # lines of the generated file that send something
    statuses: Counter[str]  # the report's lines by status

    @property
    def nothing(self) -> int:
        """Lines of the report with nothing to undo."""
        return self.rows - self.undone


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
SELECT o.contact_id, o.location_id, o.action, o.tags, o.undoes_row, o.note
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


def write_undo_input(report: Path, folder: Path) -> UndoInput:
    """Read `report` and write the undo's input file into `folder` (which must be private).

    The file's bytes depend on the report's bytes only (see the module docstring).
    """
    path = folder / f"{report.name}{_SUFFIX}"
    statuses: Counter[str] = Counter()
    undone = operations = 0
    work = folder / "order.sqlite"
    db = sqlite3.connect(work, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(
            "CREATE TABLE lines (seq INTEGER PRIMARY KEY, contact_id, location_id, action, "
            "tags, undoes_row, note)"
        )
        db.execute("BEGIN")
        batch: list[tuple[str, str, str, str, str, str]] = []
        for entry in read_report(report):
            statuses[entry.status] += 1
            found, why = inverse(entry)
            if found:
                undone += 1
                operations += len(found)
            for action, tags, note in found:
                batch.append(
                    (entry.contact_id, entry.location_id, action, _dump(tags), entry.row, note)
                )
            if not found:
                batch.append((entry.contact_id, entry.location_id, "", "", entry.row, why))
            if len(batch) >= _CHUNK:
                db.executemany("INSERT INTO lines VALUES (NULL, ?, ?, ?, ?, ?, ?)", batch)
                batch.clear()
        db.executemany("INSERT INTO lines VALUES (NULL, ?, ?, ?, ?, ?, ?)", batch)
        db.execute("COMMIT")
        db.executescript(_ORDER)
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(UNDO_COLUMNS)
            writer.writerows(db.execute(_ORDERED))
    finally:
        db.close()
        with contextlib.suppress(OSError):
            work.unlink()
    return UndoInput(
        report=report,
        path=path,
        rows=sum(statuses.values()),
        undone=undone,
        operations=operations,
        statuses=statuses,
    )


def undone_report(input_path: str | Path) -> str | None:
    """The report's name when `input_path` is an undo's generated input (for `batcher status`)."""
    path = Path(input_path)
    if path.parent.parent.name == UNDO_DIR and path.name.endswith(_SUFFIX):
        return path.name.removesuffix(_SUFFIX)
    return None


def _mark_nothing_to_undo(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Rows with nothing to undo (no action) get their `undo` cell as their message."""
    for chunk in chunks:
        notes = chunk.cells[_NOTE]
        invalid = dict(chunk.invalid)
        for i, (action, note) in enumerate(zip(chunk.actions, notes, strict=True)):
            if not action and note.startswith(NOTHING_TO_UNDO):
                invalid[i] = note
        yield dataclasses.replace(chunk, invalid=invalid)


# -- the undo run ----------------------------------------------------------------------------


def default_undo_report_path(report: Path) -> Path:
    """`<report name without extension>-undo.csv` in the working directory."""
    name = report.name
    for suffix in _REPORT_SUFFIXES:
        name = name.removesuffix(suffix)
    return Path(f"{name}-undo.csv")


@dataclass
class UndoResult:
    """The undo's run (its summary and exit code) and what the report held."""

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
) -> Job:
    """The Job that runs an undo's generated input.

    Every option that is part of the run's identity is fixed (the file says everything), so the
    same report gives the same run whatever the config's location or encoding say.
    """
    options = InputOptions(
        id_column="contact_id",
        id_pattern=settings.input.id_pattern,
        encoding="utf-8",
        delimiter=",",
        max_tag_length=settings.input.max_tag_length,
    )
    return Job(
        input_path=source.path,
        input=options,
        report_path=report_path,
        fresh=fresh,
        sandbox=sandbox_config(config_file, source.report) if sandbox else None,
        rows=_mark_nothing_to_undo,
    )


async def undo(
    settings: Settings,
    report: Path,
    *,
    report_path: Path | None = None,
    sandbox: bool = False,
    config_file: Path | None = None,
    fresh: bool = False,
    dry_run: bool = False,
    on_tick: Tick | None = None,
    notify: Callable[[str], None] = _ignore,
    confirm: Callable[[Preview], bool] | None = None,
    stop: Stop | None = None,
) -> UndoResult:
    """Undo the run whose report is `report` (or, with `dry_run`, show what that would send).

    `report_path` is the undo's own report (default `<report name>-undo.csv` here). The rest is
    as for `runner.execute`. Raises UsageError (exit 2, nothing sent) for a file that is not a
    report, or a report with nothing to undo.
    """
    out = None if dry_run else (report_path or default_undo_report_path(report))
    if out is not None:
        _check_report_path(out, report)
    home = Path(settings.state.dir) / UNDO_DIR
    created = not home.exists()
    try:
        private_dir(home)
        folder = Path(tempfile.mkdtemp(prefix="undo-", dir=home))
    except OSError as exc:
        raise UsageError(
            f"{home}: cannot write the undo's input there ({exc.strerror or exc}); "
            "set state.dir to a writable folder"
        ) from None
    try:
        source = write_undo_input(report, folder)
        if not source.operations:
            counts = ", ".join(f"{n:,} {status}" for status, n in source.statuses.most_common())
            raise NothingToSendError(
                f"{report}: nothing to undo: no row of the run changed a tag "
                f"({counts or 'no rows'})"
            )
        job = undo_job(
            settings,
            source,
            report_path=out,
            sandbox=sandbox,
            config_file=config_file,
            fresh=fresh,
        )
        operation = f"undo the changes in {report}"
        generic = describe_operation(job, open_input(job.input_path, job.input))

        def told(message: str) -> None:
            notify(message.replace(generic, operation, 1))

        def asked(preview: Preview) -> bool:
            assert confirm is not None
            return confirm(dataclasses.replace(preview, operation=operation))

        try:
            result = await execute(
                settings,
                job,
                dry_run=dry_run,
                on_tick=on_tick,
                notify=told,
                confirm=None if confirm is None else asked,
                stop=stop,
            )
        except BatcherError as exc:
            # Name the report, not the generated file nobody has seen.
            message = str(exc).replace(str(source.path), f"{report} (its undo)")
            if message == str(exc):
                raise
            raise type(exc)(message) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if created and dry_run:
            with contextlib.suppress(OSError):
                home.rmdir()
    result.input_path = report
    result.operation = operation
    return UndoResult(run=result, source=source)
