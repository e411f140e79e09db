"""Excel sheets streamed a chunk of rows at a time (SPEC "Input")."""

from __future__ import annotations

import datetime
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

from batcher.domain.errors import InputError
from batcher.domain.models import Row, Status
from batcher.loading import InputOptions, InputTable, open_input
from batcher.loading._excel import open_excel, sheet_rows

ID1 = "AbCdEfGhIj0123456789"
ID2 = "ZyXwVuTsRq9876543210"
LOC = "LocLocLocLocLocLoc01"
NUMBER_ID = (
    "contact id is a number in the sheet (123): Excel keeps only 15 digits, so "
    "format the id column as Text and enter the ids again"
)


def write_xlsx(path: Path, sheets: dict[str, dict[int, list[Any]]]) -> Path:
    """Sheets of {0-based sheet row: cells from column A}; None leaves a cell out."""
    book = xlsxwriter.Workbook(str(path))
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for r, values in rows.items():
            for c, value in enumerate(values):
                if value is not None:
                    sheet.write(r, c, value)
    book.close()
    return path


def listed(rows: list[list[Any]], first: int = 0) -> dict[int, list[Any]]:
    return dict(enumerate(rows, start=first))


def rows_of(table: InputTable) -> list[Row]:
    return [row for chunk in table.chunks() for row in chunk]


def table(path: Path, **options: Any) -> InputTable:
    options.setdefault("default_location_id", LOC)
    return open_input(path, InputOptions(**options))


def input_error(path: Path, **options: Any) -> str:
    with pytest.raises(InputError) as info:
        table(path, **options)
    return str(info.value)


# --- chunks ----------------------------------------------------------------------------------


def test_slices_carry_sheet_row_numbers_and_number_ids_across_chunk_boundaries(
    tmp_path: Path,
) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        {
            "S": listed(
                [
                    ["contact_id", "tags"],
                    [ID1, "a"],
                    [123, "b"],  # sheet row 3
                    [None, None],
                    [456.5, "c"],  # sheet row 5: the second chunk starts here
                    [ID2, 7],
                    [789, "d"],
                ]
            )
        },
    )
    source = open_excel(path, None)
    slices = list(source.read(3, 0))
    assert [(s.lines, s.numeric_ids) for s in slices] == [
        (2, {3: "123"}),
        (5, {5: "456.5", 7: "789"}),
    ]
    assert slices[0].columns == [[ID1, "123", ""], ["a", "b", ""]]
    assert slices[1].columns == [["456.5", ID2, "789"], ["c", "7", "d"]]


def test_rows_and_lines_run_on_across_chunks_of_every_size(tmp_path: Path) -> None:
    data = [["contact_id", "tags", "action"]]
    for n in range(1, 12):
        data.append([ID1 if n % 3 else 123, f"t{n}", "add"])
        if n % 4 == 0:
            data.append([None, None, None])
    path = write_xlsx(tmp_path / "in.xlsx", {"S": listed(data, first=2)})
    expected = [(r.row, r.line, r.status, r.tags) for r in rows_of(table(path, chunk_rows=1000))]
    assert len(expected) == 11
    assert expected[2] == (3, 6, Status.INVALID, ("t3",))
    assert expected[-1][:2] == (11, 16)
    for chunk_rows in (1, 2, 3, 4, 5, 7):
        rows = rows_of(table(path, chunk_rows=chunk_rows))
        assert [(r.row, r.line, r.status, r.tags) for r in rows] == expected


def test_the_sheet_is_read_again_for_every_read(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "in.xlsx", {"S": listed([["contact_id", "tags"], [ID1, "x"]])})
    opened = table(path, action="add", chunk_rows=1)
    first = rows_of(opened)
    assert first == rows_of(opened) == rows_of(opened)
    assert [r.contact_id for r in first] == [ID1]


def big_sheet(path: Path, rows: int) -> Path:
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet("S")
    sheet.write_row(0, 0, ["contact_id", "name", "email", "tags"])
    for n in range(1, rows + 1):
        sheet.write_row(n, 0, [f"{n:020d}", f"Name {n}", f"p{n}@example.com", "vip"])
    book.close()
    return path


def test_the_sheet_is_streamed_never_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening reads only the top of the sheet's XML; a read yields its first rows long before
    the end of the XML, and no read of the XML asks for more than a block."""
    path = big_sheet(tmp_path / "big.xlsx", 20_000)
    with zipfile.ZipFile(path) as package:
        size = package.getinfo("xl/worksheets/sheet1.xml").file_size
    inflated: list[int] = []
    real_read = zipfile.ZipExtFile.read

    def read(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        assert 0 < n <= 1 << 16, "a part is read whole"
        data = real_read(self, n)
        if self.name == "xl/worksheets/sheet1.xml":
            inflated.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    source = open_excel(path, None)
    assert source.has_rows is True
    assert 0 < sum(inflated) < size / 10
    inflated.clear()
    slices = source.read(500, 0)
    first = next(slices)
    assert first.lines == 2
    assert len(first.columns[0]) == 500
    assert sum(inflated) < size / 10
    assert sum(len(s.columns[0]) for s in slices) == 20_000 - 500
    assert sum(inflated) == size  # every read streams the sheet again, to its end


def test_python_memory_holds_a_chunk_not_the_sheet(tmp_path: Path) -> None:
    """Python objects alive while reading stay near one chunk's, whatever the sheet's length."""
    rows = 20_000
    path = big_sheet(tmp_path / "big.xlsx", rows)

    def python_peak(read: Any) -> int:
        tracemalloc.start()
        try:
            read()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def whole() -> None:  # the sheet as Python lists: what reading it whole would hold
        data = list(sheet_rows(path))
        assert len(data) == rows + 1

    def chunked() -> None:
        source = open_excel(path, None)
        assert sum(len(s.columns[0]) for s in source.read(500, 0)) == rows

    assert python_peak(chunked) < python_peak(whole) / 5


# --- which sheet -----------------------------------------------------------------------------


def two_sheets(tmp_path: Path, second: str = "Two") -> Path:
    return write_xlsx(
        tmp_path / "in.xlsx",
        {
            "One": listed([["contact_id", "tags"], [ID1, "x"]]),
            second: listed([["contact_id", "tags"], [ID2, "y"]]),
        },
    )


def test_a_number_that_names_no_sheet_is_a_position_from_1(tmp_path: Path) -> None:
    path = two_sheets(tmp_path)
    assert [r.contact_id for r in rows_of(table(path, action="add", sheet="2"))] == [ID2]
    assert [r.contact_id for r in rows_of(table(path, action="add", sheet="1"))] == [ID1]


def test_a_sheet_named_like_a_number_wins_over_the_position(tmp_path: Path) -> None:
    path = two_sheets(tmp_path, second="1")
    assert [r.contact_id for r in rows_of(table(path, action="add", sheet="1"))] == [ID2]
    assert [r.contact_id for r in rows_of(table(path, action="add", sheet="2"))] == [ID2]


def test_a_position_out_of_range_says_how_many_sheets_there_are(tmp_path: Path) -> None:
    path = two_sheets(tmp_path)
    for position in ("3", "0"):
        assert input_error(path, action="add", sheet=position) == (
            f"{path}: no sheet '{position}', and the workbook has only 2 visible sheets ('One', "
            "'Two'); give a name, or a position from 1 to 2, with --sheet"
        )


def test_a_missing_sheet_name_lists_the_sheets(tmp_path: Path) -> None:
    path = two_sheets(tmp_path)
    assert input_error(path, action="add", sheet="Three") == (
        f"{path}: no sheet 'Three' (sheets: 'One', 'Two'); give one of them with --sheet"
    )


def test_an_empty_sheet_chosen_by_position_is_named(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "in.xlsx", {"One": listed([["id"], [ID1]]), "Empty": {}})
    assert input_error(path, sheet="2") == f"{path}: sheet 'Empty' is empty"


# --- where the header is ---------------------------------------------------------------------


def test_a_header_far_down_the_sheet_is_found_and_rows_keep_their_sheet_numbers(
    tmp_path: Path,
) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        {"S": {4999: ["contact_id", "tags", "action"], 5000: [ID1, "x", "add"]}},
    )
    opened = table(path)
    assert opened.columns == ("contact_id", "tags", "action")
    assert [(r.row, r.line, r.contact_id) for r in rows_of(opened)] == [(1, 5001, ID1)]


def test_a_header_right_of_column_a_keeps_the_empty_columns_before_it(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        {"S": {2: [None, None, "contact_id", "tags"], 3: [None, None, ID1, "x"]}},
    )
    opened = table(path, action="add")
    assert opened.columns == ("", "", "contact_id", "tags")
    assert [(r.line, r.extra) for r in rows_of(opened)] == [(4, ("", "", ID1, "x"))]


def test_a_header_followed_only_by_blank_rows_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    bold = book.add_format({"bold": True})
    sheet.write_row(0, 0, ["contact_id", "tags", "action"])
    for r in range(1, 3000):
        sheet.write_blank(r, 0, None, bold)  # a formatted empty cell
    sheet.write_string(3000, 1, "   ")  # only spaces
    sheet.write_string(3001, 2, "\u00a0")  # a no-break space
    book.close()
    opened = table(path)
    assert opened.has_rows is False
    assert rows_of(opened) == []


def test_a_row_far_below_the_header_counts_as_data(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        {"S": {0: ["contact_id", "tags", "action"], 40_000: [ID1, "x", "add"]}},
    )
    opened = table(path)
    assert opened.has_rows is True
    assert [(r.row, r.line) for r in rows_of(opened)] == [(1, 40_001)]


# --- cells as text ---------------------------------------------------------------------------


def test_cells_of_every_type_become_the_text_a_person_sees(tmp_path: Path) -> None:
    path = tmp_path / "in.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    clock = book.add_format({"num_format": "hh:mm:ss"})
    sheet.write_row(0, 0, ["contact_id", "tags", "action", "when", "n", "flag"])
    sheet.write_row(1, 0, [ID1, "x", "add"])
    sheet.write_datetime(1, 3, datetime.datetime(2024, 1, 5), day)
    sheet.write_number(1, 4, 42)
    sheet.write_boolean(1, 5, True)
    sheet.write_row(2, 0, [ID2, "x", "add"])
    sheet.write_datetime(2, 3, datetime.datetime(2024, 1, 5, 10, 30), stamp)
    sheet.write_number(2, 4, -0.25)
    sheet.write_boolean(2, 5, False)
    sheet.write_row(3, 0, [123, "x", "add"])
    sheet.write_datetime(3, 3, datetime.time(10, 30), clock)
    sheet.write_number(3, 4, 1e16)
    sheet.merge_range(4, 0, 5, 2, ID1)  # merged: the value is in its top-left cell only
    sheet.write_string(4, 3, "merged")
    book.close()
    rows = rows_of(table(path))
    assert [(r.line, r.status, r.extra) for r in rows] == [
        (2, None, (ID1, "x", "add", "2024-01-05", "42", "TRUE")),
        (3, None, (ID2, "x", "add", "2024-01-05 10:30:00", "-0.25", "FALSE")),
        (4, Status.INVALID, ("123", "x", "add", "10:30:00", "10000000000000000", "")),
        (5, Status.INVALID, (ID1, "", "", "merged", "", "")),
    ]
    assert rows[2].message == NUMBER_ID


def test_a_chart_sheet_is_not_a_sheet_of_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.xlsx"
    book = xlsxwriter.Workbook(str(path))
    data = book.add_worksheet("Data")
    data.write_row(0, 0, ["contact_id", "tags"])
    data.write_row(1, 0, [ID1, 5])
    chart = book.add_chart({"type": "column"})
    chart.add_series({"values": "=Data!$B$2:$B$2"})
    book.add_chartsheet("Chart").set_chart(chart)
    book.close()
    assert [r.contact_id for r in rows_of(table(path, action="add", sheet="1"))] == [ID1]
    assert input_error(path, action="add", sheet="Chart") == (
        f"{path}: no sheet 'Chart' (sheets: 'Data'); give one of them with --sheet"
    )
