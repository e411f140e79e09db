"""Render report lines to a CSV, JSONL or XLSX file (the format follows the path's extension).

Contract: SPEC.md, section "Report". Decisions taken here:

- Columns: the result fields, then the input's own columns. An input column whose name equals a
  result field *ignoring case* is renamed ``input_<name>`` (its own spelling kept, so ``Tags``
  becomes ``input_Tags``), prefixed again while the name is still taken. Case is ignored because
  the input's columns are matched ignoring case (a HighLevel export's ``Tags`` *is* a tags column)
  and because Excel tables, SQL and many import tools treat ``Tags`` and ``tags`` as one name.
  No two report columns are ever equal, even ignoring case.
- Lists (``tags``, ``old_tags``, ``tags_added``, ``tags_removed``) are a compact JSON array in CSV
  and XLSX (``["vip","new"]``): unambiguous when a tag holds a comma or a quote. ``[]`` is an empty
  list, an empty cell is "no answer" (None). JSONL has real arrays and ``null``.
- CSV: UTF-8 *without* BOM (scripts and ``csv``/pandas readers take it as is; Excel users import
  it via Data > From Text/CSV, or use ``.xlsx``), comma, minimal quoting, CRLF line ends (the
  ``csv`` module's default, RFC 4180), a header row.
- Formula safety (OWASP "CSV Injection"): in CSV, every text cell, header included, whose first
  character is ``= + - @``, a tab or a carriage return gets a leading ``'``. In XLSX every text cell
  is written as a string cell (``write_string``, and the workbook never converts strings to
  formulas, numbers or URLs): a spreadsheet only runs a cell that holds a formula, never a string
  cell, so the text is left exactly as it is. JSONL is data for programs and is left unchanged.
- XLSX: constant-memory mode (rows are streamed to disk), bold frozen header; ``row``,
  ``http_status`` and ``attempts`` are numbers. A sheet holds at most 1,048,575 data rows; a
  longer report stops with UsageError (the runner can check first: ``check_report_path(path,
  rows=n)``). Excel caps a cell at 32,767 characters; xlsxwriter truncates longer text.
- Atomic: the report is written to ``<name>.tmp`` beside it, flushed to disk, then renamed over
  ``path``. On any error the temporary file is removed and an older report is left untouched.
- Streaming: lines are written as they come; memory does not grow with the number of lines.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import xlsxwriter

from batcher.errors import UsageError
from batcher.models import ReportLine

__all__ = [
    "FORMATS",
    "RESULT_FIELDS",
    "XLSX_MAX_DATA_ROWS",
    "check_report_path",
    "report_columns",
    "write_report",
]

RESULT_FIELDS: tuple[str, ...] = (
    "row",
    "contact_id",
    "location_id",
    "action",
    "tags",
    "status",
    "message",
    "old_tags",
    "tags_added",
    "tags_removed",
    "http_status",
    "attempts",
)

FORMATS: tuple[str, ...] = (".csv", ".jsonl", ".xlsx")

# Excel's sheet is 1,048,576 rows (Excel specifications and limits); one is the header.
XLSX_MAX_DATA_ROWS = 1_048_575

# OWASP "CSV Injection": cells starting with these are run as formulas by spreadsheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_NUMBER_FIELDS = frozenset({"row", "http_status", "attempts"})
_PREFIX = "input_"

# One line's values in RESULT_FIELDS order then the input's cells: str, int, list or None.
_Value = str | int | tuple[str, ...] | None


def report_columns(input_columns: Sequence[str]) -> tuple[str, ...]:
    """The report's header: RESULT_FIELDS, then the input's columns, renamed where they clash."""
    taken = {name.casefold() for name in RESULT_FIELDS}
    originals = {name.casefold() for name in input_columns}
    renamed: list[str] = []
    for name in input_columns:
        new = name
        # A renamed column must not take the name of another input column either.
        while new.casefold() in taken or (new != name and new.casefold() in originals):
            new = _PREFIX + new
        taken.add(new.casefold())
        renamed.append(new)
    return RESULT_FIELDS + tuple(renamed)


def check_report_path(path: Path, *, rows: int | None = None) -> None:
    """Refuse, before anything is sent, a report path that write_report could not write.

    `rows`, when known, is the number of report lines; it is checked against the XLSX limit.
    """
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"{path}: unknown report format {path.suffix or '(no extension)'!r}; "
            f"the report path must end in {', '.join(FORMATS)}"
        )
    if path.is_dir():
        raise UsageError(f"{path}: the report path is a directory")
    if not path.parent.is_dir():
        raise UsageError(f"{path}: the report's directory {path.parent} does not exist")
    if suffix == ".xlsx" and rows is not None and rows > XLSX_MAX_DATA_ROWS:
        raise _too_many_rows(path)


def write_report(path: Path, input_columns: Sequence[str], lines: Iterable[ReportLine]) -> int:
    """Write `lines` to `path` (format by extension), atomically; return the number written."""
    check_report_path(path)
    columns = report_columns(input_columns)
    writer = _WRITERS[path.suffix.lower()]
    tmp = path.with_name(path.name + ".tmp")
    try:
        count = writer(tmp, path, columns, _values(lines, len(input_columns)))
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _values(lines: Iterable[ReportLine], n_extra: int) -> Iterable[list[_Value]]:
    for line in lines:
        if len(line.extra) != n_extra:
            raise ValueError(
                f"report row {line.row}: {len(line.extra)} input cells for {n_extra} input columns"
            )
        yield [
            line.row,
            line.contact_id,
            line.location_id,
            line.action,
            line.tags,
            str(line.status),
            line.message,
            line.old_tags,
            line.tags_added,
            line.tags_removed,
            line.http_status,
            line.attempts,
            *line.extra,
        ]


# Most rows carry the same few tag lists: encode each distinct one once.
@functools.lru_cache(maxsize=4096)
def _json_array(tags: tuple[str, ...]) -> str:
    return json.dumps(tags, ensure_ascii=False, separators=(",", ":"))


def _cell_text(value: _Value) -> str:
    """A value as spreadsheet text: lists as a JSON array, None as empty."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return _json_array(value)
    return str(value)


def _inert(text: str) -> str:
    """Make a CSV cell that a spreadsheet would run as a formula into plain text."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_cell(value: _Value) -> str:
    """One CSV cell (the hot path: one call per cell). Only text can look like a formula: the
    JSON arrays start with `[` and numbers are unsigned."""
    return _inert(value) if isinstance(value, str) else _cell_text(value)


def _write_csv(
    tmp: Path, path: Path, columns: tuple[str, ...], rows: Iterable[list[_Value]]
) -> int:
    count = 0
    with tmp.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        out.writerow([_inert(name) for name in columns])
        for values in rows:
            out.writerow([_csv_cell(value) for value in values])
            count += 1
    return count


def _write_jsonl(
    tmp: Path, path: Path, columns: tuple[str, ...], rows: Iterable[list[_Value]]
) -> int:
    count = 0
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for values in rows:
            record = dict(zip(columns, values, strict=True))
            f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    return count


def _write_xlsx(
    tmp: Path, path: Path, columns: tuple[str, ...], rows: Iterable[list[_Value]]
) -> int:
    options: dict[str, Any] = {
        "constant_memory": True,  # rows are flushed as written: 1M rows in bounded memory
        "strings_to_formulas": False,  # a text cell is never a formula...
        "strings_to_numbers": False,  # ...nor silently a number (ids such as "00123")
        "strings_to_urls": False,  # ...nor a link (and Excel's 65,530-URL limit)
    }
    number_columns = [name in _NUMBER_FIELDS for name in columns[: len(RESULT_FIELDS)]]
    workbook = xlsxwriter.Workbook(str(tmp), options)
    count = 0
    try:
        sheet = workbook.add_worksheet("report")
        bold = workbook.add_format({"bold": True})
        for col, name in enumerate(columns):
            sheet.write_string(0, col, name, bold)
        sheet.freeze_panes(1, 0)
        for values in rows:
            if count == XLSX_MAX_DATA_ROWS:
                raise _too_many_rows(path)
            count += 1
            for col, value in enumerate(values):
                if value is None or value == "":
                    continue  # an empty cell
                if col < len(number_columns) and number_columns[col] and isinstance(value, int):
                    sheet.write_number(count, col, value)
                else:
                    sheet.write_string(count, col, _cell_text(value))
    finally:
        workbook.close()
    return count


def _too_many_rows(path: Path) -> UsageError:
    return UsageError(
        f"{path}: more than {XLSX_MAX_DATA_ROWS:,} rows do not fit in an XLSX sheet; "
        "use --report with .csv or .jsonl"
    )


def _fsync(path: Path) -> None:
    """Flush the file to disk, so that the rename never publishes a half-written report."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_Writer = Callable[[Path, Path, tuple[str, ...], Iterable[list[_Value]]], int]
_WRITERS: dict[str, _Writer] = {".csv": _write_csv, ".jsonl": _write_jsonl, ".xlsx": _write_xlsx}
