"""Excel workbooks (.xlsx/.xlsm) read as a stream, a chunk of rows at a time (`_xlsx`).

Nothing holds the sheet: its XML is inflated and split a block at a time (see `_xlsx`), so
memory stays flat whatever the sheet's length; only the shared strings are held whole, compactly.
Every read streams the sheet again from the start; `open_excel` reads only as far as the header
and the first data row with a cell.

The sheet read is the one named (`--sheet`: a name, hidden sheets included, or a position among
the visible sheets), else the first visible one (a hidden sheet is not what a person opening the
workbook sees); `Source.reading` says which (`sheet "Contacts", the first visible of 3`), and
every message about a cell names the sheet.

Rows are numbered as Excel shows them (the XML's row numbers). Columns are counted from column A
as a person sees them (a header starting in column B has an empty first column name), and run to
the header's last non-empty cell: a value right of that is an InputError naming its cell (like a
CSV line with more fields than the header), since a column without a name cannot be reported;
a header of more than 1,900 columns is an InputError too (the run keeps every column).

Cells become text as a person sees them: whole numbers without `.0`, booleans TRUE/FALSE, a date
as ISO `2024-01-05`, a date with a time as `2024-01-05 10:30:00`, a time as `10:30:00` (the style's
number format says which numbers are dates; the workbook's 1904 date system is honoured), an
elapsed-time format as Python shows a timedelta, an error cell (#N/A) empty. The id column
remembers which of its cells are numbers: Excel keeps 15 significant digits, so a number there is
never a usable id. Merged cells hold their value in the top-left cell only, the others are empty.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import repeat
from pathlib import Path

from batcher.domain.errors import InputError
from batcher.domain.models import MAX_INPUT_COLUMNS
from batcher.loading._common import Slice, Source, is_blank, one_line, read_ahead
from batcher.loading._xlsx import READ_ERRORS, Block, Book, Refused, Sheet
from batcher.loading._xlsx_part import DEFAULT_LIMITS, Limits
from batcher.loading._xlsx_rows import column_letters

# An OLE compound file (CFB): an old .xls, or an .xlsx that Excel encrypted with a password.
_CFB_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
# The stream every encrypted OOXML package holds (MS-OFFCRYPTO), as its CFB directory spells it.
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_SCAN_BLOCK = 1024 * 1024


def open_excel(path: Path, sheet: str | None, limits: Limits = DEFAULT_LIMITS) -> Source:
    """Pick the sheet and find the header (the first row with a non-empty cell).

    `sheet`: a sheet's name (case ignored when no sheet has it exactly), else, when it is a
    whole number, the visible sheet at that 1-based position; None for the first visible sheet.
    `limits`: how much is read before the workbook is refused.
    """
    found = _find_header(path, sheet, limits)
    if found.line == 0:
        raise InputError(f"{path}: sheet {found.name!r} is empty")
    if found.width > MAX_INPUT_COLUMNS:
        raise InputError(
            f"{path}: sheet {found.name!r} has {found.width:,} columns (to column "
            f"{column_letters(found.width - 1)}); batcher keeps every column for the report and "
            f"takes at most {MAX_INPUT_COLUMNS:,}: remove the columns you do not need"
        )
    top = found.line

    def slices(
        chunk_rows: int, id_index: int, cancel: threading.Event
    ) -> Generator[Slice, None, None]:
        # Rows without cells in the XML are blank rows here, as in the sheet: every sheet row
        # below the header takes its place, so a Slice's rows are always consecutive.
        columns: list[list[str]] = [[] for _ in range(found.width)]
        first = top + 1  # the sheet row of the columns' first cells
        numeric: dict[int, str] = {}
        for block in _blocks(path, found, id_index, limits, cancel):
            numeric.update(block.numbers)
            for line, run in _runs(path, found, block):
                gap = line - first - len(columns[0])
                while gap:
                    take = min(gap, chunk_rows - len(columns[0]))
                    for column in columns:
                        column += repeat("", take)
                    gap -= take
                    if len(columns[0]) == chunk_rows:
                        yield _slice(first, columns, numeric)
                        first += chunk_rows
                        columns = [[] for _ in range(found.width)]
                at = 0
                while at < len(run[0]):
                    take = min(len(run[0]) - at, chunk_rows - len(columns[0]))
                    for column, cells in zip(columns, run, strict=True):
                        column += cells[at : at + take] if at or take < len(cells) else cells
                    at += take
                    if len(columns[0]) == chunk_rows:
                        yield _slice(first, columns, numeric)
                        first += chunk_rows
                        columns = [[] for _ in range(found.width)]
        if columns[0]:
            yield _slice(first, columns, numeric)

    def read(chunk_rows: int, id_index: int) -> Generator[Slice, None, None]:
        # Read in a thread of its own: the sheet's reading (unzipping, cutting rows) then runs
        # while SQLite inserts the chunk before, with the GIL given up (a million rows: plan
        # 1.50x -> 1.46x calamine's walk, +23 MiB). A CSV gained 2 % for as much memory. The
        # thread stops at its next block once the reading is abandoned (a stop while loading).
        cancel = threading.Event()
        return read_ahead(slices(chunk_rows, id_index, cancel), stop=cancel)

    return Source(list(found.header), read, found.has_rows, found.reading)


@dataclass(frozen=True, slots=True)
class _Header:
    index: int  # the sheet's index among the worksheets
    name: str
    reading: str  # which sheet, and why (see the module docstring)
    styles: bytes  # the workbook's cell styles' kinds (`Book.style_kinds`), read once
    line: int = 0  # the header's sheet row (0: the sheet is empty)
    header: tuple[str, ...] = ()  # from column A to its last non-empty cell
    has_rows: bool = False  # whether a later row has a non-empty cell

    @property
    def width(self) -> int:
        return len(self.header)


def _find_header(path: Path, wanted: str | None, limits: Limits) -> _Header:
    """The chosen sheet's header, read as far as the first data row with a cell."""
    _refuse_ole(path)
    with _errors(path), Book(path, limits) as book:
        sheets = book.sheets
        index, reading = _choose_sheet(path, sheets, wanted)
        styles = book.style_kinds()
    found = _Header(index, sheets[index].name, reading, styles)
    for block in _blocks(path, found, None, limits):
        for n, cells in enumerate(zip(*block.columns, strict=True)):
            if is_blank(cells):
                continue
            if found.line:
                return replace(found, has_rows=True)
            # To the last cell with text: empty cells right of it name no column.
            width = max(i for i, text in enumerate(cells) if text) + 1
            found = replace(found, line=block.lines[n], header=cells[:width])
    return found


@contextmanager
def _errors(path: Path, sheet: str | None = None) -> Iterator[None]:
    """What reading the workbook (or, named, its sheet) raises, as an InputError naming it."""
    try:
        yield
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc
    except Refused as exc:
        raise InputError(f"{path}: {exc}") from exc
    except READ_ERRORS as exc:
        if sheet is None:
            raise InputError(f"{path}: not a readable Excel workbook ({_reason(exc)})") from exc
        raise InputError(f"{path}: sheet {sheet!r} cannot be read ({_reason(exc)})") from exc


def _blocks(
    path: Path,
    found: _Header,
    watch: int | None,
    limits: Limits,
    cancel: threading.Event | None = None,
) -> Iterator[Block]:
    """The sheet's rows in blocks; a damaged file is an InputError naming it."""
    with _errors(path), Book(path, limits, cancel) as book, _errors(path, found.name):
        yield from book.rows(found.index, watch, found.styles)


def _reason(exc: BaseException) -> str:
    return one_line(exc) or type(exc).__name__


def _fit(path: Path, found: _Header, block: Block, skip: int) -> list[list[str]]:
    """A block's columns from row `skip` on, exactly as wide as the header."""
    width = found.width
    columns = block.columns
    for index in range(width, len(columns)):
        column = columns[index]
        if not any(column):  # C speed: most columns right of the header are empty
            continue
        for n in range(skip, len(block.lines)):
            if column[n] and column[n].strip():
                raise InputError(
                    f"{path}: sheet {found.name!r} row {block.lines[n]} has a value in column "
                    f"{column_letters(index)}, right of the header's last column "
                    f"({column_letters(width - 1)}); give that column a name in the header row "
                    f"(row {found.line}) or delete it"
                )
    rows = len(block.lines) - skip
    fitted = [c[skip:] if skip else c for c in columns[:width]]
    fitted += [[""] * rows for _ in range(width - len(fitted))]
    return fitted


def _slice(first: int, columns: list[list[str]], numeric: dict[int, str]) -> Slice:
    """A Slice of consecutive rows from sheet row `first`; `numeric` loses the rows it hands on."""
    ids: dict[int, str] | None = None
    if numeric:
        end = first + len(columns[0])
        ids = {line: numeric.pop(line) for line in list(numeric) if first <= line < end}
    return Slice(columns, first, ids or None)


def _runs(path: Path, found: _Header, block: Block) -> Iterator[tuple[int, list[list[str]]]]:
    """A block's rows below the header as runs of consecutive rows: (first row, columns as wide
    as the header)."""
    lines = block.lines
    skip = 0
    while skip < len(lines) and lines[skip] <= found.line:
        skip += 1
    if skip == len(lines):
        return
    columns = _fit(path, found, block, skip)
    if lines[-1] - lines[skip] == len(lines) - 1 - skip:
        yield lines[skip], columns  # the usual block: no row missing (rows only go forwards)
        return
    start = skip
    for n in range(skip + 1, len(lines) + 1):
        if n < len(lines) and lines[n] == lines[n - 1] + 1:
            continue
        yield lines[start], [c[start - skip : n - skip] for c in columns]
        start = n


def _choose_sheet(path: Path, sheets: list[Sheet], wanted: str | None) -> tuple[int, str]:
    """The index of the sheet asked for among the workbook's worksheets, and the reading phrase
    that names it."""
    if not sheets:
        raise InputError(f"{path}: the workbook has no sheets")
    names = [sheet.name for sheet in sheets]
    visible = [i for i, sheet in enumerate(sheets) if sheet.visible]
    listed = ", ".join(repr(s.name) + ("" if s.visible else " (hidden)") for s in sheets)
    of = f"of {len(sheets)}" if len(sheets) > 1 else "the only sheet"
    if wanted is None:
        if not visible:
            raise InputError(
                f"{path}: every sheet is hidden ({listed}); name the one to read with --sheet"
            )
        index = visible[0]
        if len(sheets) == 1:
            return index, f'sheet "{names[index]}", the only sheet'
        return index, f'sheet "{names[index]}", the first visible {of}'
    named = [i for i, s in enumerate(names) if s == wanted] or [
        i for i, s in enumerate(names) if s.casefold() == wanted.casefold()
    ]
    if named:
        index = named[0]
        hidden = "" if sheets[index].visible else " (hidden)"
        return index, f'sheet "{names[index]}"{hidden}, named by --sheet'
    position = wanted.strip()
    if position.isdecimal() and position.isascii():
        # A position counts the sheets a person sees: Excel shows no tab for a hidden one.
        number = int(position)
        if 1 <= number <= len(visible):
            index = visible[number - 1]
            return index, f'sheet "{names[index]}", visible sheet {number} {of}'
        count = f"{len(visible)} visible sheet{'s' if len(visible) != 1 else ''}"
        raise InputError(
            f"{path}: no sheet {wanted!r}, and the workbook has only {count} ({listed}); "
            f"give a name, or a position from 1 to {len(visible)}, with --sheet"
        )
    raise InputError(
        f"{path}: no sheet {wanted!r} (sheets: {listed}); give one of them with --sheet"
    )


def _refuse_ole(path: Path) -> None:
    """An OLE file with an .xlsx name: encrypted by Excel, or an old .xls renamed."""
    try:
        with path.open("rb") as fh:
            if fh.read(len(_CFB_MAGIC)) != _CFB_MAGIC:
                return
            tail = b""
            while block := fh.read(_SCAN_BLOCK):
                if _ENCRYPTION_INFO in tail + block:
                    raise InputError(
                        f"{path}: password-protected (encrypted) workbook: remove the password "
                        "in Excel and save again"
                    )
                tail = block[-len(_ENCRYPTION_INFO) :]
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc
    raise InputError(
        f"{path}: old binary Excel format (.xls) under another name: "
        "open it in Excel and save as .xlsx"
    )


def visible_sheets(path: Path, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """The names of the workbook's visible sheets, in order (the tabs a person sees in Excel);
    an InputError when it cannot be read."""
    _refuse_ole(path)
    with _errors(path), Book(path, limits) as book:
        return [sheet.name for sheet in book.sheets if sheet.visible]


def sheet_rows(path: Path, limits: Limits = DEFAULT_LIMITS) -> Iterator[list[str]]:
    """The first visible sheet's rows as text, from its header on, one list per sheet row (rows
    without cells as empty lists), for reading a batcher XLSX report back (`batcher merge`)."""
    found = _find_header(path, None, limits)
    if found.line == 0:
        return
    yield list(found.header)
    line = found.line
    for part in _rows_below(path, found, limits):
        for number, cells in part:
            while line + 1 < number:
                line += 1
                yield []
            line = number
            yield cells


def _rows_below(
    path: Path, found: _Header, limits: Limits
) -> Iterator[list[tuple[int, list[str]]]]:
    """The data rows below a found header: (sheet row, cells) in blocks."""
    for block in _blocks(path, found, None, limits):
        skip = 0
        while skip < len(block.lines) and block.lines[skip] <= found.line:
            skip += 1
        if skip < len(block.lines):
            columns = _fit(path, found, block, skip)
            yield list(zip(block.lines[skip:], map(list, zip(*columns, strict=True)), strict=True))
