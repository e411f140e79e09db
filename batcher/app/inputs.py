"""A look at an input before it runs, for the page: the columns the loader finds in it, its
first rows as read, and the first rows it finds invalid."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batcher.app.jobs import Job, input_options
from batcher.domain.config import Settings
from batcher.domain.errors import EncodingUnclearError, InputError, NoIdColumnError, UsageError
from batcher.domain.models import Row, Status
from batcher.loading import InputOptions, open_input, visible_sheets

__all__ = ["Columns", "FirstRows", "detect_columns", "first_rows"]


@dataclass(frozen=True)
class Columns:
    """What `batcher.loading` finds in a file, before any operation is chosen.

    `tags`/`action`/`location` are None when the file has no such column; a HighLevel contact
    export's `Tags` column holds current tags and is never the operation (`export` is True).
    """

    all: tuple[str, ...]
    id: str
    tags: str | None
    action: str | None
    location: str | None
    export: bool
    has_rows: bool
    # Why the file cannot be read as it is ("": it can), for a face that lets the user fix it:
    # choose the id column (`all` holds the header then), the sheet, or the encoding.
    problem: str = ""
    # A workbook's visible sheets, in order (empty for a CSV).
    sheets: tuple[str, ...] = ()
    # Each likely code page's reading of a cell they disagree on (empty: the encoding is clear).
    encodings: tuple[tuple[str, str], ...] = ()
    # The tags, action and location columns found by their usual names, whatever was chosen.
    detected: tuple[str | None, str | None, str | None] = (None, None, None)


def detect_columns(
    path: Path,
    *,
    sheet: str | None = None,
    id_column: str | None = None,
    encoding: str = "",
    mapped: tuple[str, str, str] = ("", "", ""),
) -> Columns:
    """The file's columns as the loader sees them; InputError/UsageError when it cannot be used.

    `mapped`: the tags, action and location columns chosen ("": detected); the columns found
    are those, and `detected` the ones found by name. A choice the header does not have (a
    stale one, after another sheet was chosen) is left out here: the plan says what is wrong.

    Three looks at the file's start through the public `open_input`: one with the operation
    given (the id and location columns, and whether the file can be read at all), one without
    tags (the tags column) and one without an action (the action column).

    What a person can settle by choosing is not an error but `problem` (without the stored
    file's path): no id column found (`all` is the header), a code page the data cannot tell
    (`encodings`: each one's reading), a sheet that cannot be read when the workbook has others
    (`sheets`).
    """
    excel = path.name.lower().endswith((".xlsx", ".xlsm"))
    sheets = tuple(visible_sheets(path)) if excel else ()
    try:
        options = InputOptions(sheet=sheet, id_column=id_column, encoding=encoding)
        found = _detect(path, options, sheets)
        tags, action, location = (name.strip() or None for name in mapped)
        if tags is None and action is None and location is None:
            return found
        chosen = _with(options, tags_column=tags, action_column=action, location_column=location)
        with contextlib.suppress(InputError):
            return dataclasses.replace(_detect(path, chosen, sheets), detected=found.detected)
        return found
    except NoIdColumnError as exc:
        return _unread(path, exc, sheets, columns=exc.columns)
    except EncodingUnclearError as exc:
        return _unread(path, exc, sheets, encodings=exc.readings)
    except InputError as exc:
        if len(sheets) > 1:
            return _unread(path, exc, sheets)
        raise


def _unread(
    path: Path,
    exc: InputError,
    sheets: tuple[str, ...],
    *,
    columns: tuple[str, ...] = (),
    encodings: tuple[tuple[str, str], ...] = (),
) -> Columns:
    """Columns of a file that needs a choice before it can be read (see `detect_columns`)."""
    return Columns(
        all=columns,
        id="",
        tags=None,
        action=None,
        location=None,
        export=False,
        has_rows=True,
        problem=str(exc).removeprefix(f"{path}: "),
        sheets=sheets,
        encodings=encodings,
    )


def _detect(path: Path, base: InputOptions, sheets: tuple[str, ...]) -> Columns:
    table = open_input(path, _with(base, action="add", remove_all=True))
    tags: str | None = None
    action: str | None = None
    if not table.highlevel_export or base.tags_column is not None:
        tags = _column(path, _with(base, action="add"), "tags")
    action = _column(path, _with(base, tags=("x",)), "action")
    return Columns(
        all=table.columns,
        id=table.id_column or "",
        tags=tags,
        action=action,
        location=table.location_column,
        export=table.highlevel_export,
        has_rows=table.has_rows,
        sheets=sheets,
        detected=(tags, action, table.location_column),
    )


def _column(path: Path, options: InputOptions, role: str) -> str | None:
    """The tags or action column the loader finds with `options`; None when it finds none (a
    UsageError). A file it cannot read that way (an InputError: the tags read differently in
    the likely code pages, say) is refused."""
    try:
        table = open_input(path, options)
    except InputError:
        raise
    except UsageError:
        return None
    return table.tags_column if role == "tags" else table.action_column


def _with(options: InputOptions, **changes: Any) -> InputOptions:
    return dataclasses.replace(options, **changes)


@dataclass(frozen=True)
class FirstRows:
    """The start of an input as a run reads it: its first rows (as they will be sent, or why
    not), and its first invalid rows (read on until found)."""

    rows: list[Row]
    invalid: list[Row]


def first_rows(settings: Settings, job: Job, rows: int, invalid: int) -> FirstRows:
    """The first `rows` rows of `job`'s input as read, and the first `invalid` invalid ones
    (reads on until found, or to the end when `invalid` rows are not there).

    A dry run's result counts rows and holds a few examples of each kind; the page shows the
    first rows as batcher will send them, and more of the invalid ones, read again here.
    """
    first: list[Row] = []
    found: list[Row] = []
    for chunk in open_input(job.input_path, input_options(settings, job)).chunks():
        for row in chunk:
            if len(first) < rows:
                first.append(row)
            if row.status is Status.INVALID and len(found) < invalid:
                found.append(row)
            if len(first) >= rows and len(found) >= invalid:
                return FirstRows(first, found)
        if len(first) >= rows and not invalid:
            break
    return FirstRows(first, found)
