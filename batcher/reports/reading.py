"""Reading a report back (CSV, XLSX or JSONL): its input columns, and its rows as the cells a
report is written from (`batcher.reports.formats`), so that reports can be merged.

A CSV report made text cells inert with a leading `'` (see `batcher.reports.formats`); reading
removes that mark, and the writer puts it back for a CSV, so CSV in, CSV out is exact. An XLSX
report is read with loading's streaming sheet reader (`batcher.loading.sheet_rows`: one XLSX
parser in the package).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from batcher.domain.errors import InputError
from batcher.domain.fields import (
    ATTEMPTS,
    HTTP_STATUS,
    LIST_FIELDS,
    NUMBER_FIELDS,
    OLD_TAGS,
    RESOLVED_BY,
    RESULT_FIELDS,
    TAGS_ADDED,
    TAGS_REMOVED,
    UNCERTAIN,
)
from batcher.domain.models import Cell
from batcher.loading import sheet_rows
from batcher.reports.formats import INERT

__all__ = ["ReportFile", "open_report"]

_NUMBERS = frozenset(NUMBER_FIELDS)
_MAYBE = frozenset((OLD_TAGS, TAGS_ADDED, TAGS_REMOVED, HTTP_STATUS, ATTEMPTS))
_LISTS = frozenset(LIST_FIELDS)


@dataclass
class ReportFile:
    """A report being read: its input columns and rows; `file` is closed by the caller."""

    path: Path
    columns: tuple[str, ...] | None  # the input's columns; None: an empty JSONL report
    rows: Iterator[tuple[Cell, ...]]
    bucket: int | None = None  # its shard, once merging has seen a row (batcher.app.merging)
    file: IO[Any] | None = None  # closed by merge_reports, whatever happens


def open_report(path: Path) -> ReportFile:
    """A batcher report (CSV, XLSX or JSONL) opened to be read back: its input columns and its
    rows as the cells a report is written from; InputError when it is not one."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: report not found")
    if suffix == ".csv":
        return _open_csv(path)
    if suffix == ".jsonl":
        return _open_jsonl(path)
    if suffix == ".xlsx":
        return _open_xlsx(path)
    raise InputError(f"{path}: not a batcher report (.csv, .xlsx or .jsonl)")


def _header(path: Path, names: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """The input's columns from a report's header, and whether the report was written before
    Step 16 (no `resolved_by`: its rows are read as if it were there, empty); InputError when
    it is not batcher's."""
    if tuple(names[: len(RESULT_FIELDS)]) == RESULT_FIELDS:
        return tuple(names[len(RESULT_FIELDS) :]), False
    if tuple(names[: len(_BEFORE_STEP_16)]) == _BEFORE_STEP_16:
        return tuple(names[len(_BEFORE_STEP_16) :]), True
    raise InputError(
        f"{path}: not a batcher report (its first columns are not {', '.join(RESULT_FIELDS)})"
    )


# The result fields of a report written before Step 16 added `resolved_by` (the last one).
_BEFORE_STEP_16 = RESULT_FIELDS[:RESOLVED_BY]


def _padded(values: Sequence[Any], legacy: bool) -> Sequence[Any]:
    """A row of a report written before Step 16 with an empty `resolved_by` where it goes."""
    if not legacy:
        return values
    return [*values[:RESOLVED_BY], "", *values[RESOLVED_BY:]]


def _number(path: Path, value: Any, index: int, line: int) -> int | None:
    if value is None or value == "":
        if index in _MAYBE:
            return None
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.strip().isdigit()
    ):
        return int(value)
    raise InputError(
        f"{path}: line {line}: {RESULT_FIELDS[index]} {value!r} is not a number: not a batcher "
        "report, or an edited one"
    )


def _cells(path: Path, values: Sequence[Any], line: int, csv_text: bool) -> tuple[Cell, ...]:
    """A report row read back as the cells a report is written from (lists as JSON text)."""
    out: list[Cell] = []
    for i, value in enumerate(values):
        if i in _NUMBERS:
            out.append(_number(path, value, i, line))
        elif i in _MAYBE and (value is None or value == ""):
            out.append(None)
        elif i in _LISTS and isinstance(value, list):
            out.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        elif i == UNCERTAIN and isinstance(value, bool):
            out.append("true" if value else "false")  # JSONL's boolean, as CSV and XLSX write it
        elif value is None:
            out.append("")
        elif isinstance(value, float) and value.is_integer():
            out.append(str(int(value)))  # an XLSX number cell in an input column
        else:
            text = str(value)
            out.append(_uninert(text) if csv_text else text)
    return tuple(out)


def _uninert(text: str) -> str:
    """A CSV cell without the `'` that made it inert (see the module docstring)."""
    if text[:1] == "'" and INERT.make(text[1:]) == text:
        return text[1:]
    return text


def _open_csv(path: Path) -> ReportFile:
    try:
        fh = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: empty file, not a batcher report")
        columns, legacy = _header(path, [_uninert(name) for name in header])
    except (UnicodeDecodeError, csv.Error) as exc:
        fh.close()
        raise InputError(f"{path}: cannot be read as a CSV report ({exc})") from exc
    except BaseException:
        fh.close()
        raise

    def rows() -> Iterator[tuple[Cell, ...]]:
        try:
            for values in reader:
                yield _cells(path, _padded(values, legacy), reader.line_num, csv_text=True)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{path}: line {reader.line_num}: cannot be read ({exc})") from exc

    return ReportFile(path, columns, rows(), file=fh)


def _open_jsonl(path: Path) -> ReportFile:
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        first = fh.readline()
        if not first.strip():
            # A shard with no rows: no line says its columns.
            return ReportFile(path, None, iter(()), file=fh)
        names = list(_json_line(path, first, 1))
        columns, legacy = _header(path, names)
    except UnicodeDecodeError as exc:
        fh.close()
        raise InputError(f"{path}: cannot be read as a JSONL report ({exc})") from exc
    except BaseException:
        fh.close()
        raise

    def rows() -> Iterator[tuple[Cell, ...]]:
        number = 1
        line = first
        while line:
            if line.strip():
                record = _json_line(path, line, number)
                if list(record) != names:
                    raise InputError(
                        f"{path}: line {number}: its keys differ from the first line's: not "
                        "a batcher report, or an edited one"
                    )
                yield _cells(path, _padded(list(record.values()), legacy), number, csv_text=False)
            number += 1
            try:
                line = fh.readline()
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}: line {number}: not UTF-8 ({exc})") from exc

    return ReportFile(path, columns, rows(), file=fh)


def _json_line(path: Path, line: str, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise InputError(f"{path}: line {number}: not JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise InputError(f"{path}: line {number}: not a JSON object: not a batcher report")
    return record


def _open_xlsx(path: Path) -> ReportFile:
    sheet = sheet_rows(path)
    header = next(sheet, None)
    if header is None:
        raise InputError(f"{path}: empty workbook, not a batcher report")
    columns, legacy = _header(path, [str(name) for name in header])

    def rows() -> Iterator[tuple[Cell, ...]]:
        for number, values in enumerate(sheet, start=2):
            if all(v == "" or v is None for v in values):
                continue
            yield _cells(path, _padded(values, legacy), number, csv_text=False)

    return ReportFile(path, columns, rows())
