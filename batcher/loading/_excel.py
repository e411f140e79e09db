"""Excel workbooks (.xlsx/.xlsm) through pandas and calamine.

A sheet is read whole (calamine cannot stream, and a sheet holds at most 1,048,576 rows anyway).
pandas gives the sheet from cell A1 (`skip_empty_area=False`), blank rows kept, so a row's index
plus one is its row number as Excel shows it. Cells become text, except that the id column
remembers which of its cells are numbers: Excel keeps 15 significant digits, so a number there is
never a usable id.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pandas as pd

from batcher.errors import InputError
from batcher.loading._common import PROBE_ROWS, Slice, Source, is_blank, one_line

# An OLE compound file (CFB): an old .xls, or an .xlsx that Excel encrypted with a password.
_CFB_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
# The stream every encrypted OOXML package holds (MS-OFFCRYPTO), as its CFB directory spells it.
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_SCAN_BLOCK = 1024 * 1024


def open_excel(path: Path, sheet: str | None) -> Source:
    """Pick the sheet and find the header (the first row with a non-empty cell)."""
    _refuse_ole(path)
    try:
        with pd.ExcelFile(path, engine="calamine") as book:
            sheets = [str(s) for s in book.sheet_names]
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc
    except Exception as exc:  # calamine raises its own bare CalamineError for corrupt files
        raise InputError(f"{path}: not a readable Excel workbook ({one_line(exc)})") from exc
    if not sheets:
        raise InputError(f"{path}: the workbook has no sheets")
    if sheet is None:
        name = sheets[0]
    elif sheet in sheets:
        name = sheet
    else:
        folded = [s for s in sheets if s.casefold() == sheet.casefold()]
        if not folded:
            raise InputError(
                f"{path}: no sheet {sheet!r} (sheets: {', '.join(repr(s) for s in sheets)}); "
                "give one of them with --sheet"
            )
        name = folded[0]

    def load(nrows: int | None = None) -> list[list[Any]]:
        """The sheet's rows from row 1 (blank ones included), cells as calamine gives them."""
        try:
            frame = pd.read_excel(
                path,
                sheet_name=name,
                engine="calamine",
                header=None,
                dtype=object,
                keep_default_na=False,
                na_filter=False,
                nrows=nrows,
            )
        except Exception as exc:  # calamine errors have no common base worth naming
            raise InputError(f"{path}: sheet {name!r} cannot be read ({one_line(exc)})") from exc
        return [list(values) for values in frame.itertuples(index=False)]

    def header_index(rows: list[list[Any]]) -> int | None:
        for index, values in enumerate(rows):
            if not is_blank([_excel_text(v) for v in values]):
                return index
        return None

    # calamine parses the whole sheet anyway; `nrows` only spares turning it all into text twice.
    head = load(nrows=PROBE_ROWS)
    found = header_index(head)
    if found is None and len(head) >= PROBE_ROWS:
        head = load()
        found = header_index(head)
    if found is None:
        raise InputError(f"{path}: sheet {name!r} is empty")
    top = found
    header = [_excel_text(v) for v in head[top]]
    width = len(header)

    def read(chunk_rows: int, id_index: int) -> Generator[Slice, None, None]:
        rows = load()[top + 1 :]
        for start in range(0, len(rows), chunk_rows):
            part = rows[start : start + chunk_rows]
            first_line = top + 2 + start  # the header is on sheet row top + 1
            numeric: dict[int, str] = {}
            for offset, values in enumerate(part):
                shown = _number_shown(values[id_index]) if id_index < len(values) else None
                if shown is not None:
                    numeric[first_line + offset] = shown
            # Columns, padded/cut to the header's width (cells right of the header have no name).
            texts = [[_excel_text(v) for v in values] for values in part]
            columns = [[r[i] if i < len(r) else "" for r in texts] for i in range(width)]
            yield Slice(columns, first_line, numeric or None)

    rest = head[top + 1 :]
    has_rows = any(not is_blank([_excel_text(v) for v in values]) for values in rest)
    if not has_rows and len(head) >= PROBE_ROWS:
        # Past the probe's rows only blank ones: look at the rest of the sheet.
        has_rows = any(
            not is_blank([_excel_text(v) for v in values]) for values in load()[top + 1 :]
        )
    return Source(header, read, has_rows)


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


def _number_shown(value: Any) -> str | None:
    """A number cell as a message shows it (as Excel stores it); None for any other cell."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and value != value:
        return None  # NaN: an empty cell
    if abs(value) >= 1e15:
        return repr(float(value))  # pandas made a whole float an int: show the stored double
    return repr(value)


def _excel_text(value: Any) -> str:
    """A cell as text; whole numbers without `.0`, so numeric cells survive as written."""
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
    return str(value)
