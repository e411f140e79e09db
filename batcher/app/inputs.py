"""A look at an input before it runs, for the page: the columns the loader finds in it, and
the first rows it finds invalid."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batcher.app.jobs import Job, input_options
from batcher.domain.config import Settings
from batcher.domain.errors import InputError, UsageError
from batcher.domain.models import Row, Status
from batcher.loading import InputOptions, open_input

__all__ = ["Columns", "detect_columns", "first_invalid_rows"]


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


def detect_columns(
    path: Path, *, sheet: str | None = None, id_column: str | None = None, encoding: str = ""
) -> Columns:
    """The file's columns as the loader sees them; InputError/UsageError when it cannot be used.

    Three looks at the file's start through the public `open_input`: one with the operation
    given (the id and location columns, and whether the file can be read at all), one without
    tags (the tags column) and one without an action (the action column).
    """
    base = InputOptions(sheet=sheet, id_column=id_column, encoding=encoding)
    table = open_input(path, _with(base, action="add", remove_all=True))
    tags: str | None = None
    action: str | None = None
    if not table.highlevel_export:
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


def first_invalid_rows(settings: Settings, job: Job, limit: int) -> list[Row]:
    """The first `limit` rows that the loader marks invalid, with why (reads until found).

    A dry run's result counts them and holds a few examples of each kind; the page lists more
    of the invalid ones, read again here.
    """
    found: list[Row] = []
    for chunk in open_input(job.input_path, input_options(settings, job)).chunks():
        found.extend(row for row in chunk if row.status is Status.INVALID)
        if len(found) >= limit:
            break
    return found[:limit]
