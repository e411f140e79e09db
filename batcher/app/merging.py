"""Merge the reports of a file's shards into one report, in input order (`batcher merge`).

Each shard's report (CSV, XLSX or JSONL, any mix) holds only its own rows, in input order, with
the input's `row` and `line` numbers; merging is a streaming k-way merge on `row`, so memory does
not grow with the number of rows. The merged report's format follows OUT's extension and is
written like any report (`batcher.reports.formats.write_rows`: atomic, formula-safe).

Reports carry no extra field saying which input and operation they come from; what they hold is
enough to refuse a mix (nothing is written then, UsageError, exit 2):
- the input's columns (names and order) must be the same in every report;
- the result fields must be batcher's (else: not a batcher report);
- a row number may appear in one report only (the same shard given twice, or reports of
  different inputs, or of different shard counts);
- `line` grows with `row` across the merged rows (true of any one input, file or sheet);
- the operation: where the input has no column for it (no `action`, `tags` or `location_id`
  column, so `--action`, `--tags`/`--remove-all-tags` or `--location-id` set it for every row),
  every row of every report must carry the same value;
- with `shards=N`: all rows of a report fall in one bucket of N (`batcher.app.sharding`), no two
  reports in the same bucket, and there are N reports.
Rows missing between reported rows (a shard that has not run yet, or whose report was not
given) are named and nothing is written (`IncompleteMergeError`, exit 1). Rows after the last
reported row cannot be seen missing from the reports alone: `shards=N` closes that gap by
requiring a report for each shard.

Reports are read back by `batcher.reports.reading`. A CSV report made text cells inert with a
leading `'` (see `batcher.reports.formats`); merging removes that mark when reading and the
writer puts it back for a CSV OUT, so CSV in, CSV out is exact. Into XLSX or JSONL, a cell
whose own text began with `'` and a trigger (`'=x`) loses its `'`: a CSV report cannot tell it
from `=x`.
"""

from __future__ import annotations

import contextlib
import heapq
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batcher.app.sharding import Shard, bucket
from batcher.domain.errors import BatcherError, InputError, UsageError
from batcher.domain.fields import (
    LINE,
    LOCATION_ID,
    RESULT_FIELDS,
    ROW,
    STATUS,
    at,
)
from batcher.domain.models import Cell, Inert
from batcher.reports.formats import check_report_path, write_rows
from batcher.reports.reading import ReportFile, open_report

__all__ = ["IncompleteMergeError", "MergeResult", "merge_reports"]

# The result fields an option sets for every row when the input has no column for them, with the
# input column's key (matched like loading matches columns).
_OPERATION = {"action": "action", "tags": "tags", "location_id": "locationid"}
# Missing rows named in the message; the rest are counted.
_NAMED_RANGES = 8


class IncompleteMergeError(BatcherError):
    """Some rows are in no report (a shard has not run yet): nothing was written."""

    exit_code = 1


@dataclass
class MergeResult:
    """What a merge wrote: rows by status, from how many reports."""

    path: Path
    reports: int
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)


def merge_reports(paths: Sequence[Path], out: Path, *, shards: int | None = None) -> MergeResult:
    """Merge the reports at `paths` into `out` (see the module docstring for the checks)."""
    if not paths:
        raise UsageError("give the shards' reports to merge")
    check_report_path(out)
    if shards is not None:
        Shard(0, shards)  # checks the count
    with contextlib.ExitStack() as files:
        reports = []
        for path in paths:
            report = open_report(Path(path))
            if report.file is not None:
                files.callback(report.file.close)
            reports.append(report)
        return _merge(reports, out, shards)


def _merge(reports: list[ReportFile], out: Path, shards: int | None) -> MergeResult:
    columns = _same_columns(reports)
    result = MergeResult(path=out, reports=len(reports))
    width = len(RESULT_FIELDS) + len(columns)
    for report in reports:
        report.rows = _checked_width(report.path, report.rows, width)

    def source(inert: Inert | None) -> Iterator[tuple[Cell, ...]]:
        merged = _Merged(reports, columns, shards)
        for cells in merged:
            result.rows += 1
            result.counts[str(cells[STATUS])] += 1
            yield cells if inert is None else _inerted(cells, inert)
        merged.finish()

    write_rows(out, columns, source)
    return result


# --- checking while merging ------------------------------------------------------------------


class _Merged:
    """The reports' rows in row order, checked on the way (see the module docstring)."""

    def __init__(
        self, reports: list[ReportFile], columns: tuple[str, ...], shards: int | None
    ) -> None:
        self._reports = reports
        self._shards = shards
        keys = {_column_key(name) for name in columns}
        # Result field index -> (value, report) that every row must share, or None until seen.
        self._fixed: dict[int, tuple[Cell, Path] | None] = {
            at(name): None for name, key in _OPERATION.items() if key not in keys
        }
        self._missing: list[tuple[int, int]] = []
        self._missing_count = 0

    def __iter__(self) -> Iterator[tuple[Cell, ...]]:
        tagged = [_numbered(n, report.rows) for n, report in enumerate(self._reports)]
        previous: tuple[int, int, Path] | None = None  # row, line, report
        for number, n, cells in heapq.merge(*tagged, key=lambda item: (item[0], item[1])):
            assert isinstance(number, int)
            line = cells[LINE]
            assert isinstance(line, int)
            path = self._reports[n].path
            if previous is not None:
                last, last_line, last_path = previous
                if number == last:
                    raise UsageError(
                        f"row {number} is in both {last_path} and {path}: the same shard's "
                        "report given twice, or reports of different inputs or shard counts; "
                        "nothing was written"
                    )
                if line <= last_line:
                    raise UsageError(
                        f"row {number} of {path} is on line {line}, row {last} of {last_path} on "
                        f"line {last_line}: these are reports of different inputs; nothing was "
                        "written"
                    )
            self._gap(previous[0] if previous is not None else 0, number)
            self._check_operation(cells, path)
            self._check_bucket(cells, n)
            previous = (number, line, path)
            yield cells

    def _gap(self, last: int, number: int) -> None:
        if number > last + 1:
            self._missing_count += number - last - 1
            if len(self._missing) <= _NAMED_RANGES:
                self._missing.append((last + 1, number - 1))

    def _check_operation(self, cells: tuple[Cell, ...], path: Path) -> None:
        for index, seen in self._fixed.items():
            if seen is None:
                self._fixed[index] = (cells[index], path)
            elif cells[index] != seen[0]:
                name = RESULT_FIELDS[index]
                raise UsageError(
                    f"reports of different operations: {seen[1]} has {name} {seen[0]!s}, {path} "
                    f"has {cells[index]!s} (row {cells[ROW]}), and the input has no {name} "
                    "column; nothing was written"
                )

    def _check_bucket(self, cells: tuple[Cell, ...], n: int) -> None:
        if self._shards is None:
            return
        report = self._reports[n]
        k = bucket(str(cells[LOCATION_ID]), self._shards)
        if report.bucket is None:
            report.bucket = k
            for other in self._reports:
                if other is not report and other.bucket == k:
                    raise UsageError(
                        f"{other.path} and {report.path} are both reports of shard "
                        f"{k}/{self._shards}; nothing was written"
                    )
        elif report.bucket != k:
            raise UsageError(
                f"{report.path} holds rows of shards {report.bucket}/{self._shards} and "
                f"{k}/{self._shards} (row {cells[ROW]}): not a report of one shard of "
                f"{self._shards}; nothing was written"
            )

    def finish(self) -> None:
        """After the last row: refuse when rows or whole shards have no report."""
        if self._missing_count:
            ranges = ", ".join(
                str(a) if a == b else f"{a}-{b}" for a, b in self._missing[:_NAMED_RANGES]
            )
            more = " and more" if len(self._missing) > _NAMED_RANGES else ""
            raise IncompleteMergeError(
                f"{self._missing_count:,} rows are in no report (rows {ranges}{more}): a shard "
                "has not run yet, or its report was not given; run it (the same command "
                "resumes it), then merge again; nothing was written"
            )
        if self._shards is not None and len(self._reports) != self._shards:
            seen = {r.bucket for r in self._reports if r.bucket is not None}
            absent = [f"{k}/{self._shards}" for k in range(self._shards) if k not in seen]
            which = f" (none seen of {', '.join(absent)})" if absent else ""
            raise IncompleteMergeError(
                f"{len(self._reports)} reports for {self._shards} shards{which}: a shard has "
                "not run yet, or its report was not given; run it, then merge again; nothing "
                "was written"
            )


def _numbered(
    n: int, rows: Iterator[tuple[Cell, ...]]
) -> Iterator[tuple[Cell, int, tuple[Cell, ...]]]:
    for cells in rows:
        yield cells[ROW], n, cells


def _same_columns(reports: list[ReportFile]) -> tuple[str, ...]:
    """The input's columns, the same in every report (an empty JSONL report has no say)."""
    first: tuple[Path, tuple[str, ...]] | None = None
    for report in reports:
        if report.columns is None:
            continue
        if first is None:
            first = (report.path, report.columns)
        elif report.columns != first[1]:
            raise UsageError(
                f"{first[0]} and {report.path} are reports of different inputs (their input "
                f"columns differ: {_shown(first[1])} and {_shown(report.columns)}); "
                "nothing was written"
            )
    return first[1] if first is not None else ()


def _checked_width(
    path: Path, rows: Iterator[tuple[Cell, ...]], width: int
) -> Iterator[tuple[Cell, ...]]:
    for cells in rows:
        if len(cells) != width:
            raise InputError(
                f"{path}: row {cells[ROW] if cells else '?'} has {len(cells)} cells for "
                f"{width} columns: not a batcher report, or an edited one"
            )
        yield cells


def _shown(columns: tuple[str, ...], limit: int = 6) -> str:
    listed = ", ".join(columns[:limit]) + (", …" if len(columns) > limit else "")
    return f"[{listed}]"


def _column_key(name: str) -> str:
    """An input column's key as loading matches it, a report's `input_` renaming undone."""
    while name[:6].casefold() == "input_" and len(name) > 6:
        name = name[6:]
    return re.sub(r"[\s_\-]", "", name).casefold()


def _inerted(cells: tuple[Cell, ...], inert: Inert) -> tuple[Cell, ...]:
    suspects, make = inert.suspects, inert.make
    return tuple(make(c) if isinstance(c, str) and c[:1] in suspects else c for c in cells)
