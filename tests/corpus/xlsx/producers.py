"""How the producer workbooks in `producers/` were made (run by hand: `python producers.py`).

The same contact list, with the traps the workbook readers met in the wild, written by three
real producers: xlsxwriter (shared strings, as Excel saves them), openpyxl, and LibreOffice Calc
(`soffice --convert-to xlsx` of the xlsxwriter file: LibreOffice's own writer, when installed).
A hidden first sheet ("Old", as a workbook's previous export often stays) comes before the
visible "Contacts". Each workbook's expected reading is in the JSON beside it.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "producers"
HEADER = ["Contact Id", "Tags", "Action", "Name", "Joined", "Score", "Active", "Note", "Since"]
OLD = [["Contact Id", "Tags"], ["OLDoldOLDoldOLDold00", "stale"]]


def rows() -> list[list[object]]:
    """The data rows (None: no cell). Dates and durations are styled by the writers."""
    return [
        ["AbCdEfGhIj0123456789", "vip, newsletter", "add", "Zoë Ångström",
         datetime.datetime(2024, 1, 5), 7, True, "  padded  ", 1.5],
        ["ZyXwVuTsRq9876543210", "lead", "remove", "王小明",
         datetime.datetime(2024, 1, 5, 10, 30), 2.5, False, "a & <b>", 1e10],
        [12345678901234567890, "x", "add", "typed as a number", None, None, None,
         "line one\nline two", None],
        None,  # an empty row: the next row keeps its sheet row number
        ["qFSqySFkVvNzOSqgGqFi", "=tags", "add", " lead space", None, -3, None, "", 0.25],
    ]  # fmt: skip


def with_xlsxwriter(path: Path) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    old = book.add_worksheet("Old")
    for r, cells in enumerate(OLD):
        old.write_row(r, 0, cells)
    old.hide()
    sheet = book.add_worksheet("Contacts")
    sheet.activate()
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    stamp = book.add_format({"num_format": "d mmm yyyy h:mm"})
    elapsed = book.add_format({"num_format": "[h]:mm:ss"})
    sheet.write_row(0, 0, HEADER)
    for r, cells in enumerate(rows(), start=1):
        for c, value in enumerate(cells or []):
            if value is None:
                continue
            if isinstance(value, datetime.datetime):
                sheet.write_datetime(r, c, value, stamp if value.hour else date)
            elif c == 8:
                sheet.write_number(r, c, value, elapsed)  # type: ignore[arg-type]
            elif isinstance(value, str) and value.startswith("="):
                sheet.write_formula(r, c, '="vip"&",x"', None, "vip,x")
            else:
                sheet.write(r, c, value)
    book.close()


def with_openpyxl(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    old = book.active
    assert old is not None
    old.title = "Old"
    for cells in OLD:
        old.append(cells)
    old.sheet_state = "hidden"
    sheet = book.create_sheet("Contacts")
    book.active = 1
    sheet.append(HEADER)
    for r, cells in enumerate(rows(), start=2):
        for c, value in enumerate(cells or [], start=1):
            if value is None:
                continue
            if isinstance(value, str) and value.startswith("="):
                value = '="vip"&",x"'
            cell = sheet.cell(r, c, value)
            if c == 9:
                cell.number_format = "[h]:mm:ss"
    book.save(path)


def with_libreoffice(source: Path, path: Path) -> bool:
    soffice = shutil.which("soffice")
    if soffice is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [soffice, "--headless", "--convert-to", "xlsx:Calc MS Excel 2007 XML",
             "--outdir", folder, str(source)],
            check=True, capture_output=True,
        )  # fmt: skip
        shutil.move(Path(folder) / source.name, path)
    return True


def main() -> None:
    HERE.mkdir(exist_ok=True)
    with_xlsxwriter(HERE / "xlsxwriter.xlsx")
    with_openpyxl(HERE / "openpyxl.xlsx")
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "libreoffice.xlsx"
        shutil.copy(HERE / "xlsxwriter.xlsx", copy)
        if not with_libreoffice(copy, HERE / "libreoffice.xlsx"):
            print("soffice not found: libreoffice.xlsx kept as it was", file=sys.stderr)


if __name__ == "__main__":
    main()
