"""Excel workbooks (.xlsx/.xlsm) through python-calamine, a chunk of rows at a time.

calamine parses a sheet whole into its own (Rust) memory when the sheet is opened; `iter_rows`
then makes the Python cells of one row at a time, so the Python side holds one chunk of rows,
never the sheet. The sheet parsed by `open_excel` to find the header is kept for the first read
(the ledger's load, right after) and let go when that read ends; a later read parses it again.

Rows are numbered as Excel shows them: `iter_rows` yields the empty rows above the sheet's first
cell too, so the n-th row it yields is sheet row n. It does not yield the empty columns left of
the first cell: those are put back, so that columns are named from column A as a person sees
them (a header starting in column B has an empty first column name).

Cells become text (see `_excel_text`), except that the id column remembers which of its cells
are numbers: Excel keeps 15 significant digits, so a number there is never a usable id.
Merged cells hold their value in the top-left cell only, the others are empty (calamine's view).
"""

from __future__ import annotations

import datetime
from collections.abc import Generator, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from python_calamine import CalamineSheet, CalamineWorkbook, SheetTypeEnum

from batcher.errors import InputError
from batcher.loading._common import Slice, Source, is_blank, one_line

# An OLE compound file (CFB): an old .xls, or an .xlsx that Excel encrypted with a password.
_CFB_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
# The stream every encrypted OOXML package holds (MS-OFFCRYPTO), as its CFB directory spells it.
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_SCAN_BLOCK = 1024 * 1024


def open_excel(path: Path, sheet: str | None) -> Source:
    """Pick the sheet and find the header (the first row with a non-empty cell).

    `sheet`: a sheet's name (case ignored when no sheet has it exactly), else, when it is a
    whole number, the sheet at that 1-based position; None for the first sheet.
    """
    _refuse_ole(path)
    names, index = _choose_sheet(path, sheet)
    name = names[index]
    parsed: list[CalamineSheet] = [_parse(path, index, name)]
    lead = _leading_columns(parsed[0])
    if lead is None:
        raise InputError(f"{path}: sheet {name!r} is empty")
    rows = _rows(parsed[0], lead)
    try:
        # The header's sheet row (0-based) and cells; then whether any later row has a cell.
        found = next(((n, cells) for n, cells in enumerate(rows) if not _blank(cells)), None)
        if found is None:
            raise InputError(f"{path}: sheet {name!r} is empty")
        top, cells = found
        header = [_excel_text(v) for v in cells]
        has_rows = any(not _blank(cells) for cells in rows)
    finally:
        del rows  # the probe stops here: its iterator (and its rows) go at once

    def read(chunk_rows: int, id_index: int) -> Generator[Slice, None, None]:
        # The first read takes the sheet parsed above and lets it go when done; others parse.
        sheet_data = parsed.pop() if parsed else _parse(path, index, name)
        data = _rows(sheet_data, lead)
        del sheet_data
        line = top + 2  # the header is on sheet row top + 1; data starts on the next one
        next(islice(data, top + 1, top + 1), None)  # skip to the first data row
        while part := list(islice(data, chunk_rows)):
            # Every row of a sheet has the header's width (calamine pads them to its range).
            columns: list[list[Any]] = [list(column) for column in zip(*part, strict=True)]
            del part
            numeric: dict[int, str] | None = None
            for i, column in enumerate(columns):
                if set(map(type, column)) == {str}:
                    continue  # the common case: every cell already text
                if i == id_index:
                    numeric = _numbers_shown(column, line)
                columns[i] = [v if type(v) is str else _excel_text(v) for v in column]
            yield Slice(columns, line, numeric or None)
            line += len(columns[0])

    return Source(header, read, has_rows)


def _choose_sheet(path: Path, wanted: str | None) -> tuple[list[str], int]:
    """The workbook's sheet names and the index of the one asked for."""
    try:
        with CalamineWorkbook.from_path(str(path)) as book:
            # Worksheets only (a chart sheet has no cells), in workbook order, hidden ones too.
            names = [str(m.name) for m in book.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc
    except Exception as exc:  # calamine raises its own bare CalamineError for corrupt files
        raise InputError(f"{path}: not a readable Excel workbook ({one_line(exc)})") from exc
    if not names:
        raise InputError(f"{path}: the workbook has no sheets")
    if wanted is None:
        return names, 0
    if wanted in names:
        return names, names.index(wanted)
    folded = [i for i, s in enumerate(names) if s.casefold() == wanted.casefold()]
    if folded:
        return names, folded[0]
    listed = ", ".join(repr(s) for s in names)
    position = wanted.strip()
    if position.isdecimal() and position.isascii():
        number = int(position)
        if 1 <= number <= len(names):
            return names, number - 1
        count = f"{len(names)} sheet{'s' if len(names) != 1 else ''}"
        raise InputError(
            f"{path}: no sheet {wanted!r}, and the workbook has only {count} ({listed}); "
            f"give a name, or a position from 1 to {len(names)}, with --sheet"
        )
    raise InputError(
        f"{path}: no sheet {wanted!r} (sheets: {listed}); give one of them with --sheet"
    )


def _parse(path: Path, index: int, name: str) -> CalamineSheet:
    """The sheet parsed by calamine (whole, in its own memory); the workbook is closed after."""
    try:
        with CalamineWorkbook.from_path(str(path)) as book:
            return book.get_sheet_by_name(name)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc
    except Exception as exc:  # calamine errors have no common base worth naming
        raise InputError(f"{path}: sheet {name!r} cannot be read ({one_line(exc)})") from exc


def _leading_columns(sheet: CalamineSheet) -> int | None:
    """How many empty columns precede the sheet's first cell; None for a sheet without cells.

    (`iter_rows` fails on a sheet without cells, so this is asked first.)
    """
    start = sheet.start
    if start is None or sheet.height == 0 or sheet.width == 0:
        return None
    return int(start[1])


def _rows(sheet: CalamineSheet, lead: int) -> Iterator[list[Any]]:
    """The sheet's rows from row 1, each from column A, cells as calamine gives them."""
    if not lead:
        return iter(sheet.iter_rows())
    pad = [""] * lead
    return (pad + row for row in sheet.iter_rows())


def _blank(cells: list[Any]) -> bool:
    """A row of empty cells (text of whitespace only counts as empty)."""
    return is_blank([v if type(v) is str else _excel_text(v) for v in cells])


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


def _numbers_shown(column: list[Any], first_line: int) -> dict[int, str]:
    """The sheet rows of a column's number cells, each number as a message shows it."""
    shown: dict[int, str] = {}
    for offset, value in enumerate(column):
        if type(value) is not str:
            number = _number_shown(value)
            if number is not None:
                shown[first_line + offset] = number
    return shown


def _number_shown(value: Any) -> str | None:
    """A number cell as a message shows it (as Excel stores it); None for any other cell.

    Whole numbers below 1e15 without `.0`; beyond, the stored double (`1.234567890123457e+19`):
    Excel keeps 15 significant digits, so those digits are all a person can trust.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value:
        return None  # NaN: an empty cell
    if abs(value) < 1e15 and float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _excel_text(value: Any) -> str:
    """A cell as text: whole numbers without `.0`, so numeric cells survive as written.

    Booleans as Excel shows them (TRUE/FALSE); a date as ISO `2024-01-05`, a date with a time
    as `2024-01-05 10:30:00`, a time as `10:30:00`.
    """
    if type(value) is str:  # most cells: skip the checks below
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value != value:  # NaN: an empty cell
            return ""
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime.datetime):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def sheet_rows(path: Path) -> Iterator[list[Any]]:
    """The first sheet's rows as calamine gives them, from its first cell (for reading a batcher
    XLSX report back, e.g. `batcher merge`). Numbers come as floats, empty cells as ""."""
    _refuse_ole(path)
    names, index = _choose_sheet(path, None)
    sheet = _parse(path, index, names[index])
    if _leading_columns(sheet) is None:
        return iter(())
    return iter(sheet.iter_rows())
