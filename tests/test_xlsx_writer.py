"""The XLSX report's own sheet writer, read back by openpyxl cell for cell against the same rows
written by xlsxwriter's cell-at-a-time writer (what the report used before)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import openpyxl  # test-only: reads the XLSX back independently of the writer
import pytest
import xlsxwriter

from batcher.domain.models import Cell
from batcher.reports import xlsx, zipping
from batcher.reports.formats import RESULT_FIELDS, XLSX_MAX_DATA_ROWS, report_columns, write_rows

COLUMNS = report_columns(["email", "note"])


def row(n: int, *, message: str = "Tags added", email: str = "", note: str = "") -> list[Cell]:
    return [
        n, n + 1, f"C{n:019d}", "LOC1", "add", '["vip"]', "success", message, '["old"]',
        '["vip"]', "[]", 201, 1, "false", "id", email or f"p{n}@example.com", note,
    ]  # fmt: skip


# Every kind of text a cell can hold that XML or Excel treats specially.
AWKWARD = [
    "=1+1",
    "-5",
    "@SUM(A1)",
    "+cmd",
    "a & b < c > d",
    "bell\x07 and nul\x00 and cr\r",
    "literal _x0041_ escape",
    "_xFFFF_",
    "non-characters \ufffe\uffff",
    " leading blank",
    "trailing blank ",
    "\u3000ideographic",
    "tab\tand\nnewline",
    "café ✓ 😀",
    "00123",
    "1e5",
    "TRUE",
]


def reference(path: Path, columns: Sequence[str], rows: list[list[Cell]]) -> None:
    """The rows as the report wrote them with xlsxwriter, a cell at a time."""
    options = {"constant_memory": True, "strings_to_formulas": False,
               "strings_to_numbers": False, "strings_to_urls": False}  # fmt: skip
    book = xlsxwriter.Workbook(str(path), options)
    sheet = book.add_worksheet("report")
    for col, name in enumerate(columns):
        sheet.write_string(0, col, name)
    for n, values in enumerate(rows, 1):
        for col, value in enumerate(values):
            if value is None or value == "":
                continue
            if col in (0, 1, 11, 12) and isinstance(value, int):
                sheet.write_number(n, col, value)
            else:
                sheet.write_string(n, col, str(value))
    book.close()


def cells(path: Path) -> list[list[tuple[Any, str]]]:
    sheet = openpyxl.load_workbook(path)["report"]
    width = sheet.max_column
    return [
        [(cell.value, cell.data_type) for cell in line][:width]
        for line in sheet.iter_rows(min_row=1, max_col=width)
    ]


def test_awkward_text_reads_back_exactly_as_xlsxwriter_wrote_it(tmp_path: Path) -> None:
    """Escapes, control characters, blanks at the edges, formulas-as-text, empty cells between
    full ones and numbers read back cell for cell as from xlsxwriter's own writer."""
    rows = [row(n, email=text, note=AWKWARD[-n]) for n, text in enumerate(AWKWARD, 1)]
    rows.append([*row(99)[:8], None, None, None, None, None, "true", "", "", "last"])
    rows.append([*row(100)[:11], "503", 2, "false", "id", "x", ""])  # text in a number column
    ours, theirs = tmp_path / "ours.xlsx", tmp_path / "theirs.xlsx"
    write_rows(ours, ["email", "note"], lambda inert: rows)
    reference(theirs, COLUMNS, rows)

    got, expected = cells(ours), cells(theirs)
    assert got == expected
    assert got[1][15] == ("=1+1", "s")  # a string cell, never a formula
    assert got[1][0] == (1, "n")  # numbers as numbers
    assert got[-2][8:13] == [(None, "n")] * 5  # empty cells stay empty
    assert got[-1][11] == ("503", "s")


def test_text_that_looks_like_a_rich_string_stays_text(tmp_path: Path) -> None:
    """xlsxwriter wrote `<r>...</r>` unescaped into the sheet (its rich-string shortcut): the
    cell read back as other text than the input's; here it reads back as written."""
    path = tmp_path / "r.xlsx"
    write_rows(path, ["email", "note"], lambda inert: [row(1, email="<r><t>rich?</t></r>")])
    assert cells(path)[1][15] == ("<r><t>rich?</t></r>", "s")


def test_a_cell_longer_than_excel_holds_is_cut_as_xlsxwriter_cuts_it(tmp_path: Path) -> None:
    """Excel's 32,767 UTF-16 units: a cell past them is cut there, not half a surrogate pair."""
    long_ascii = "x" * 40_000
    long_emoji = "😀" * 20_000  # two units each
    rows = [row(1, email=long_ascii, note=long_emoji)]
    ours, theirs = tmp_path / "ours.xlsx", tmp_path / "theirs.xlsx"
    write_rows(ours, ["email", "note"], lambda inert: rows)
    reference(theirs, COLUMNS, rows)
    got = cells(ours)
    assert got == cells(theirs)
    assert got[1][15] == ("x" * 32_767, "s")
    assert got[1][16] == ("😀" * 16_383, "s")


def test_many_rows_keep_their_order_the_filter_the_header_and_the_widths(tmp_path: Path) -> None:
    """Past the width sample and the batches: every row in order, the autofilter over all of
    them, the bold frozen header, widths from the first rows, and the Summary sheet."""
    rows = [row(n, note="n" * (n % 70)) for n in range(1, 2_502)]
    path = tmp_path / "r.xlsx"
    facts = {"input": "in.csv", "requests": 5, "counts": {"success": 2_501}}
    assert write_rows(path, ["email", "note"], lambda inert: rows, summary=lambda: facts) == 2_501

    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["report", "Summary"]
    sheet = book["report"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:Q2502"
    assert all(cell.font.b for cell in sheet[1])
    assert [cell.value for cell in sheet[1]] == list(COLUMNS)
    read = [list(values) for values in sheet.iter_rows(min_row=2, values_only=True)]
    assert read == [[None if cell == "" else cell for cell in values] for values in rows]
    widths = {sheet.cell(1, col).value: sheet.column_dimensions[sheet.cell(1, col).column_letter]
              for col in range(1, len(COLUMNS) + 1)}  # fmt: skip
    assert 60 < widths["note"].width < 62  # 69 characters in the first 200 rows: the cap
    assert 8 < widths["row"].width < 9
    facts_read = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r[0]}
    assert facts_read["input"] == "in.csv"
    assert facts_read["requests"] == 5
    assert facts_read["success"] == 2_501


def test_an_empty_report_is_a_header_and_a_filter_over_it(tmp_path: Path) -> None:
    """No rows: the header alone, read back, the filter on row 1."""
    path = tmp_path / "r.xlsx"
    assert write_rows(path, ["email"], lambda inert: []) == 0
    sheet = openpyxl.load_workbook(path)["report"]
    assert [list(v) for v in sheet.iter_rows(values_only=True)] == [list(report_columns(["email"]))]
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(RESULT_FIELDS) + 1).column_letter}1"


def test_the_sheet_holds_no_formula_and_no_shared_string_for_data(tmp_path: Path) -> None:
    """The data is inline strings and numbers: no `<f>` anywhere, whatever the text."""
    path = tmp_path / "r.xlsx"
    write_rows(path, ["email", "note"], lambda inert: [row(1, email="=HYPERLINK(1)", note="@x")])
    with zipfile.ZipFile(path) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert "<f>" not in sheet
    assert '<c t="inlineStr"><is><t>=HYPERLINK(1)</t></is></c>' in sheet


def test_more_rows_than_the_limit_are_refused(tmp_path: Path) -> None:
    """One row past `max_rows` raises the caller's error; exactly `max_rows` are written."""
    assert XLSX_MAX_DATA_ROWS == 1_048_575
    rows = [row(n) for n in range(1, 1_002)]

    class TooMany(Exception):
        pass

    def write(limit: int) -> int:
        return xlsx.write_xlsx(io.BytesIO(), COLUMNS, iter(rows), None, limit, TooMany)

    assert write(1_001) == 1_001
    with pytest.raises(TooMany):
        write(1_000)


def test_rows_written_whole_are_the_xml_of_rows_written_cell_by_cell() -> None:
    """The template path (a row formatted at once, the batch looked at once) gives the very XML
    of the careful path, with empty cells and None, or none at all; a batch with one awkward
    cell, or text in a number column, goes the careful way whole."""
    encoder = xlsx._RowEncoder(COLUMNS)
    plain = [tuple(row(n, note="" if n % 3 else "x")) for n in range(1, 50)]
    plain.append((*row(50)[:8], None, None, None, None, None, "true", "", "", "last"))
    assert encoder.rows(plain) == encoder._careful(plain)
    assert "<c/>" in encoder.rows(plain)
    assert "None" not in encoder.rows(plain)
    full = [tuple(row(n, note="x")) for n in range(1, 50)]  # no empty cell at all
    assert encoder.rows(full) == encoder._careful(full)
    assert "<c/>" not in encoder.rows(full)
    wide = [*full, tuple(row(50, email="e" * 16_000, note="n" * 16_000))]  # long, none too long
    assert encoder.rows(wide) == encoder._careful(wide)
    assert "n" * 16_000 in encoder.rows(wide)
    for odd in ("a & b", " lead", "tail ", " ", "x\x01", "a\x00b", "_x0041_", "\u00a0nbsp",
                "x" * 20_000):  # fmt: skip
        batch = [*plain, tuple(row(51, note=odd))]
        assert encoder.rows(batch) == encoder._careful(batch)
    texty = [*plain, (*row(52)[:11], "503", 2, "false", "id", "x", "")]
    assert encoder.rows(texty) == encoder._careful(texty)
    assert "<t>503</t>" in encoder.rows(texty)


def _two_parts(path: Path, rows: list[list[Cell]], middle: int) -> int:
    """`rows` written as two processes write them: the first ones into the sheet, the others
    into a packed part, appended."""
    part = io.BytesIO()
    assert xlsx.write_sheet_rows(part, COLUMNS, rows[middle:], packed=True) == len(rows) - middle

    def rest(sheet: IO[bytes]) -> int:
        xlsx.copy_sheet_rows(part, sheet)
        return len(rows) - middle

    with path.open("wb") as file:
        return xlsx.write_xlsx(file, COLUMNS, rows[:middle], None, 10_000, Exception, rest)


@pytest.mark.parametrize("middle", [0, 1, 1_200, 2_500])
def test_a_report_written_in_two_parts_is_the_one_written_whole(
    tmp_path: Path, middle: int
) -> None:
    """A sheet whose last rows come from a packed part (none, or all of them, too) reads back
    cell for cell as the one written whole, with every CRC right."""
    rows = [row(n, note=AWKWARD[n % len(AWKWARD)] if n % 5 == 0 else "") for n in range(2_500)]
    with (tmp_path / "whole.xlsx").open("wb") as file:
        xlsx.write_xlsx(file, COLUMNS, rows, None, 10_000, Exception)
    assert _two_parts(tmp_path / "two.xlsx", rows, middle) == 2_500
    for name in ("whole.xlsx", "two.xlsx"):
        with zipfile.ZipFile(tmp_path / name) as book:
            assert book.testzip() is None
    assert cells(tmp_path / "two.xlsx") == cells(tmp_path / "whole.xlsx")
    assert len(cells(tmp_path / "two.xlsx")) == 2_501


def test_a_report_that_may_pass_2_gib_has_zip64_and_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the rows may reach 2 GiB (the limit lowered here), the sheet is a Zip64 member, the
    zip ends with Zip64 records, and the report still reads back cell for cell, CRCs right;
    below it, no Zip64 record at all (Excel takes one in a small file for damage)."""
    rows = [row(n) for n in range(3_000)]
    _two_parts(tmp_path / "small.xlsx", rows, 1_000)
    with zipfile.ZipFile(tmp_path / "small.xlsx") as book:
        assert {info.extract_version for info in book.infolist()} == {20}
    monkeypatch.setattr(xlsx, "ZIP64_FROM", 10_000)
    monkeypatch.setattr(zipping, "ZIP64_FROM", 10_000)
    _two_parts(tmp_path / "big.xlsx", rows, 1_000)
    with zipfile.ZipFile(tmp_path / "big.xlsx") as book:
        assert book.testzip() is None
        assert book.getinfo("xl/worksheets/sheet1.xml").extract_version == 45
        assert book.getinfo("xl/worksheets/sheet1.xml").file_size > 10_000
    assert b"PK\x06\x06" in (tmp_path / "big.xlsx").read_bytes()
    assert cells(tmp_path / "big.xlsx") == cells(tmp_path / "small.xlsx")
