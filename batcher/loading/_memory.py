"""Rows held in memory (a Python caller's list of dicts, or a pandas DataFrame) as an input
file, and a run's rows back as a DataFrame: the Python API's way in and out (`batcher.app.api`).

Rows in memory are written as a UTF-8 CSV file that `open_input` reads back as the same rows,
so that they go through every rule a file goes through (SPEC "Input") and a run of them is
identified, and resumed, like a run of a file: by the file's bytes, which depend only on the
rows (the same rows always give the same bytes).

- The header is every column in order of first appearance; a row without a column has it empty.
- A cell is its text: None and NaN are empty; a list or tuple of text is its JSON array (a
  `tags` cell then reads as that list); a DataFrame's index is not a column.
- A row whose every cell is empty is refused (a file's blank line is no row: the results
  would no longer be one per row given), and so is a NUL character (a file holding one is
  taken for binary).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from batcher.domain.errors import UsageError
from batcher.loading._common import is_blank

if TYPE_CHECKING:  # pandas (0.4 s to import) only when rows come as or go to a DataFrame
    import pandas as pd

__all__ = ["is_frame", "rows_frame", "write_rows"]


def is_frame(rows: object) -> TypeGuard[pd.DataFrame]:
    """Whether `rows` is a pandas DataFrame (none can be while pandas is not imported)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(rows, pandas.DataFrame)


def write_rows(rows: object, path: Path) -> int:
    """Write `rows` (an iterable of mappings, or a DataFrame) to `path` as a CSV file; the
    number of rows. UsageError naming the row for what cannot be a row."""
    header, records = _frame(rows) if is_frame(rows) else _mappings(rows)
    if not header:
        raise UsageError("rows: no columns; give at least a contact id column")
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        for count, values in enumerate(records, 1):
            cells = [
                value if value.__class__ is str else _cell(value, count, column)
                for value, column in zip(values, header, strict=True)
            ]
            if "\x00" in "".join(cells):
                column = header[next(i for i, cell in enumerate(cells) if "\x00" in cell)]
                raise UsageError(
                    f"rows: row {count}, column {column!r}: a NUL character (a file would be "
                    "taken for binary); remove it"
                )
            if is_blank(cells):
                raise UsageError(
                    f"rows: row {count} has no value in any column; drop it (a blank line is "
                    "no row in a file either)"
                )
            writer.writerow(cells)
    return count


def rows_frame(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A run's result rows as a DataFrame with `columns`."""
    import pandas as pd

    return pd.DataFrame.from_records(list(rows), columns=list(columns))


def _frame(frame: pd.DataFrame) -> tuple[list[str], Iterator[Sequence[Any]]]:
    header = _header(frame.columns)
    return header, frame.itertuples(index=False, name=None)


def _mappings(rows: object) -> tuple[list[str], Iterator[Sequence[Any]]]:
    if isinstance(rows, str | bytes | os.PathLike):
        raise UsageError(
            "rows: give the rows themselves (a list of dicts or a DataFrame), not a file path; "
            "to run a file, use batcher.build_job and batcher.execute, or `batcher run`"
        )
    if isinstance(rows, Mapping) or not isinstance(rows, Iterable):
        raise UsageError(
            f"rows: give a list of mappings (one per row) or a DataFrame, not {type(rows).__name__}"
        )
    listed = list(rows)
    columns: dict[object, None] = {}
    for number, row in enumerate(listed, 1):
        if not isinstance(row, Mapping):
            raise UsageError(
                f"rows: row {number} is a {type(row).__name__}, not a mapping of column to value"
            )
        columns.update(dict.fromkeys(row))
    keys = list(columns)
    header = _header(keys)
    return header, ([row.get(key) for key in keys] for row in listed)


def _header(columns: Iterable[object]) -> list[str]:
    header = [str(column) for column in columns]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise UsageError(f"rows: the column {name!r} is named twice")
        seen.add(name)
    return header


def _cell(value: object, row: int, column: str) -> str:
    if value is None:
        return ""
    pandas = sys.modules.get("pandas")  # NA and NaT exist only once pandas is imported
    if pandas is not None and (value is pandas.NA or value is pandas.NaT):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, list | tuple):
        if not all(isinstance(item, str) for item in value):
            raise UsageError(f"rows: row {row}, column {column!r}: a list must hold text only")
        return json.dumps(list(value), ensure_ascii=False)
    return str(value)
