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
- ``uncertain`` is the text ``true`` or ``false`` in CSV and XLSX, a JSON boolean in JSONL.
- CSV: UTF-8 *without* BOM (scripts and ``csv``/pandas readers take it as is; Excel users import
  it via Data > From Text/CSV, or use ``.xlsx``), comma, minimal quoting, CRLF line ends (the
  ``csv`` module's default, RFC 4180), a header row.
- Formula safety (OWASP "CSV Injection"): in CSV, a text cell, header included, gets a leading
  ``'`` when it starts with a *trigger* (``= + - @``, tab, CR, LF, NUL, or their fullwidth forms
  U+FF1D, U+FF0B, U+FF0D, U+FF20, which East Asian input methods type and spreadsheets take as
  the ASCII operators), or with *blanks* followed by a trigger (a spreadsheet trims them before it
  looks for a formula). Blanks are the characters ``str.isspace`` calls whitespace (space, NBSP
  U+00A0, the ideographic space U+3000, U+2000..U+200A, U+202F, U+205F, U+1680, U+0085,
  U+2028/U+2029, VT, FF, U+001C..U+001F) and the invisible U+200B..U+200D, U+2060 and U+FEFF; a
  tab, CR or LF among the blanks is a trigger itself. Other cells are left exactly as they are,
  and a cell is only looked at further when its first character is a trigger or a blank (one set
  lookup: a report writes millions of cells). In XLSX every text cell is written as a string cell
  (an inline string: never a formula, a number or a URL): a spreadsheet only runs a cell that
  holds a formula, never a string cell, so the text is left exactly as it is. JSONL is data for
  programs and is left unchanged.
- XLSX (`batcher.reports.xlsx`): rows streamed into the zip, bold frozen header, an autofilter
  over the data, column widths from the header and the first rows (between 8 and 60
  characters), and, when the caller gives one, a ``Summary`` sheet (the run's facts: when,
  input, operation, target, rows by status, requests, top reasons); ``row``, ``line``,
  ``http_status`` and ``attempts`` are numbers. CSV stays plain: data only.
- The summary for scripts: ``write_summary`` writes the run's facts as one JSON object to
  ``<report name without extension>.summary.json`` beside the report (``summary_path``).
- A sheet holds at most 1,048,575 data rows and 16,384 columns; a longer or wider report stops
  with UsageError, and a run checks first: ``check_report_path(path, rows=n, columns=k)``.
  Excel caps a cell at 32,767 characters; longer text is cut there, as xlsxwriter cuts it.
- Created safely, replaced atomically: the report is written to a new file with a random name
  beside it (``.<name>.<random>.tmp``), created with ``O_CREAT | O_EXCL`` (never an existing file,
  never through a symlink someone planted) and mode 0o666 so that the umask (and a default ACL)
  applies as to any new file, or 0o600 in an owner-only folder (the state directory's, where the
  page keeps its report copies); the summary and a rejects file are created the same way. It is
  flushed to disk, then renamed over ``path`` (a symlink at ``path`` is replaced, not written
  through). On any error the temporary file is removed and an older report is left untouched;
  only a killed process can leave a ``.<name>.*.tmp`` behind.
- Streaming: lines are written as they come; memory does not grow with the number of lines.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import operator
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from batcher.domain.errors import UsageError
from batcher.domain.fields import LIST_FIELDS, RESULT_FIELDS, UNCERTAIN
from batcher.domain.models import Cell, Inert, ReportLine
from batcher.reports.xlsx import copy_sheet_rows, write_sheet_rows, write_xlsx
from batcher.support.files import new_file_mode, unfinished

__all__ = [
    "FORMATS",
    "RESULT_FIELDS",
    "XLSX_MAX_COLUMNS",
    "XLSX_MAX_DATA_ROWS",
    "check_report_path",
    "copy_part",
    "report_columns",
    "summary_path",
    "write_report",
    "write_rows",
    "write_summary",
]

FORMATS: tuple[str, ...] = (".csv", ".jsonl", ".xlsx")

# Excel's sheet is 1,048,576 rows by 16,384 columns (Excel specifications and limits); one row
# is the header.
XLSX_MAX_DATA_ROWS = 1_048_575
XLSX_MAX_COLUMNS = 16_384

# OWASP "CSV Injection": cells starting with these are run as formulas by spreadsheets, the
# fullwidth forms too (an IME types them; spreadsheets take them as the ASCII operators).
_TRIGGERS = frozenset("=+-@\t\r\n\x00\uff1d\uff0b\uff0d\uff20")
# Trimmed by spreadsheets before they look for a formula: the characters `str.isspace` calls
# whitespace (Unicode White_Space and the ASCII separators; a test checks the list is whole) and
# the invisible zero-width ones. A trigger behind them is a trigger still.
_BLANKS = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
    "\u200b\u200c\u200d\u2060\ufeff"
)
# A cell is only inspected further when its first character is one of these.
_SUSPECT_FIRST = _TRIGGERS | frozenset(_BLANKS)

# The facts a report's Summary sheet shows (`RunResult.summary(final=False)`).
Summary = Callable[[], Mapping[str, object]]
_PREFIX = "input_"


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


def check_report_path(path: Path, *, rows: int | None = None, columns: int | None = None) -> None:
    """Refuse, before anything is sent, a report path that write_report could not write.

    `rows`, when known, is the number of report lines, and `columns` the number of the *input's*
    columns (the result fields are added here); both are checked against the XLSX limits.
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
    if (
        suffix == ".xlsx"
        and columns is not None
        and len(RESULT_FIELDS) + columns > XLSX_MAX_COLUMNS
    ):
        raise UsageError(
            f"{path}: {len(RESULT_FIELDS) + columns:,} columns ({len(RESULT_FIELDS)} result fields "
            f"and {columns:,} input columns) do not fit in an XLSX sheet, which holds at most "
            f"{XLSX_MAX_COLUMNS:,}; use --report with .csv or .jsonl"
        )


def write_report(path: Path, input_columns: Sequence[str], lines: Iterable[ReportLine]) -> int:
    """Write `lines` to `path` (format by extension), atomically; return the number written."""
    n_extra = len(input_columns)
    return write_rows(path, input_columns, lambda inert: _cells(lines, n_extra, inert))


# Where the rows of a report come from: called once, with how to make text cells inert when the
# format needs it (CSV), it yields each row's cells in `report_columns` order, lists as their
# compact JSON text. The ledger's `report_rows` is one; `write_report` makes one of ReportLines.
RowSource = Callable[[Inert | None], Iterable[Sequence[Cell]]]

# What a CSV report does to text cells that a spreadsheet would run as a formula.
INERT = Inert(suspects=_SUSPECT_FIRST, make=lambda text: _inert(text), triggers=_TRIGGERS)


# Writes more rows at the end of a report (another process's part, see `batcher.app.rendering`):
# called with the file (an XLSX report's sheet) once `rows` are written; returns how many it wrote.
Rest = Callable[[IO[bytes]], int]


def write_rows(
    path: Path,
    input_columns: Sequence[str],
    rows: RowSource,
    *,
    summary: Summary | None = None,
    rest: Rest | None = None,
) -> int:
    """Write the rows `rows` gives to `path` (format by extension), atomically; return the
    number written. Memory stays flat: rows are written as they come. `summary`, called once
    the rows are written, gives the facts of an XLSX report's Summary sheet; `rest` writes the
    report's last rows after them."""
    check_report_path(path, columns=len(input_columns))
    columns = report_columns(input_columns)
    streamed = _STREAMED.get(path.suffix.lower())
    fd, tmp = _create_temporary(path)
    try:
        with unfinished(tmp), open(fd, "wb") as f:
            if streamed is None:
                limit = XLSX_MAX_DATA_ROWS
                too_many = functools.partial(_too_many_rows, path)
                count = write_xlsx(f, columns, rows(None), summary, limit, too_many, rest)
            else:
                count = streamed(f, columns, rows, True)
                if rest is not None:
                    count += rest(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename publishes it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def write_part(
    file: IO[bytes],
    suffix: str,
    input_columns: Sequence[str],
    rows: RowSource,
    *,
    packed: bool = False,
) -> int:
    """Write rows of a report (`suffix`: ".csv", ".jsonl" or ".xlsx") without its header,
    exactly as `write_rows` writes them: a part that goes after another's rows (`Rest`). An
    XLSX part is its sheet's rows; `packed` (a part written into a file of its own, for
    `copy_part`) deflates them: their XML is several times a CSV's size."""
    columns = report_columns(input_columns)
    if suffix == ".xlsx":
        return write_sheet_rows(file, columns, rows(None), packed=packed)
    return _STREAMED[suffix](file, columns, rows, False)


def copy_part(part: IO[bytes], out: IO[bytes], suffix: str) -> None:
    """Copy a part `write_part` wrote with `packed` (read from its start) into the report."""
    if suffix == ".xlsx":
        copy_sheet_rows(part, out)
    else:
        shutil.copyfileobj(part, out, 1 << 20)


def create_beside(path: Path) -> tuple[int, Path]:
    """A new, empty file of our own beside `path` (as the report's temporary file), open for
    reading and writing: for a part written by another process. Returns its descriptor and
    path."""
    return _create_temporary(path, os.O_RDWR)


# Flags for a file that is ours alone: O_EXCL fails on any existing name, a symlink included.
_CREATE_FLAGS = (
    os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _create_temporary(path: Path, access: int = os.O_WRONLY) -> tuple[int, Path]:
    """A new, empty file beside `path` with a random name: its descriptor and its path.

    Like `tempfile.mkstemp`, but with mode 0o666 so that the kernel applies the umask (and a
    directory's default ACL) as for any new file; reading the umask would mean setting it, for
    the whole process, for a moment. In an owner-only folder (the state directory's: the page's
    report copies) it is 0o600 whatever the umask (`batcher.support.files.new_file_mode`).
    """
    mode = new_file_mode(path.parent)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, _CREATE_FLAGS | access, mode), tmp
        except FileExistsError:
            continue  # 48 random bits taken: another writer's, or planted; draw again
    raise FileExistsError(f"{path.parent}: no free temporary name for the report")


def _cells(
    lines: Iterable[ReportLine], n_extra: int, inert: Inert | None
) -> Iterable[Sequence[Cell]]:
    make = inert.make if inert is not None else None

    def text(value: str) -> str:
        return make(value) if make is not None else value

    for line in lines:
        if len(line.extra) != n_extra:
            raise ValueError(
                f"report row {line.row}: {len(line.extra)} input cells for {n_extra} input columns"
            )
        fields: dict[str, Cell] = {
            "row": line.row,
            "line": line.line,
            "contact_id": text(line.contact_id),
            "location_id": text(line.location_id),
            "action": text(line.action),
            "tags": _json_array(line.tags),
            "status": str(line.status),
            "message": text(line.message),
            "old_tags": None if line.old_tags is None else _json_array(line.old_tags),
            "tags_added": None if line.tags_added is None else _json_array(line.tags_added),
            "tags_removed": None if line.tags_removed is None else _json_array(line.tags_removed),
            "http_status": line.http_status,
            "attempts": line.attempts,
            "uncertain": "true" if line.uncertain else "false",
            "resolved_by": line.resolved_by,
        }
        yield (*(fields[name] for name in RESULT_FIELDS), *(text(cell) for cell in line.extra))


# Most rows carry the same few tag lists: encode (and decode) each distinct one once.
@functools.lru_cache(maxsize=4096)
def _json_array(tags: tuple[str, ...]) -> str:
    return json.dumps(tags, ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=4096)
def _json_list(text: str) -> list[str]:
    value: list[str] = json.loads(text)
    return value


def _inert(text: str) -> str:
    """Make a CSV cell that a spreadsheet would run as a formula into plain text."""
    if text[:1] not in _SUSPECT_FIRST:
        return text  # the hot path: almost every cell
    if text[0] in _TRIGGERS:
        return "'" + text
    rest = text.lstrip(_BLANKS)
    if rest[:1] in _TRIGGERS or any(ch in _TRIGGERS for ch in text[: len(text) - len(rest)]):
        return "'" + text
    return text


def _write_csv(file: IO[bytes], columns: tuple[str, ...], rows: RowSource, header: bool) -> int:
    f = io.TextIOWrapper(file, encoding="utf-8", newline="")
    # Rows counted as `writerows` takes them, at C speed: `zip` draws a number for each row
    # (and none once the rows run out).
    numbers = itertools.count()
    counted = map(_first, zip(rows(INERT), numbers, strict=False))  # cells come inert already
    try:
        out = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        if header:
            out.writerow([_inert(name) for name in columns])
        out.writerows(counted)
        f.flush()
    finally:
        f.detach()  # the caller owns, syncs and closes the file
    return next(numbers)


_first = operator.itemgetter(0)


def _write_jsonl(file: IO[bytes], columns: tuple[str, ...], rows: RowSource, header: bool) -> int:
    del header  # JSONL has none: each line names its fields
    count = 0
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    f = io.TextIOWrapper(file, encoding="utf-8", newline="\n")
    try:
        for cells in rows(None):
            values: list[Any] = list(cells)
            for i in LIST_FIELDS:
                if values[i] is not None:
                    values[i] = _json_list(values[i])
            values[UNCERTAIN] = values[UNCERTAIN] == "true"  # a JSON boolean
            f.write(encode(dict(zip(columns, values, strict=True))) + "\n")
            count += 1
        f.flush()
    finally:
        f.detach()
    return count


def summary_path(report_path: Path) -> Path:
    """Where the JSON summary of the run that wrote `report_path` goes: beside it."""
    return report_path.with_name(f"{report_path.stem}.summary.json")


def write_summary(path: Path, facts: Mapping[str, object]) -> None:
    """Write `facts` as one JSON object to `path`, atomically (as the report)."""
    text = json.dumps(facts, ensure_ascii=False, indent=2, default=str) + "\n"
    fd, tmp = _create_temporary(path)
    try:
        with unfinished(tmp), open(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _too_many_rows(path: Path) -> UsageError:
    return UsageError(
        f"{path}: more than {XLSX_MAX_DATA_ROWS:,} rows do not fit in an XLSX sheet; "
        "use --report with .csv or .jsonl"
    )


# The formats written as a stream of lines: (file, columns, rows, header?) -> rows written.
_Writer = Callable[[IO[bytes], tuple[str, ...], RowSource, bool], int]
_STREAMED: dict[str, _Writer] = {".csv": _write_csv, ".jsonl": _write_jsonl}
