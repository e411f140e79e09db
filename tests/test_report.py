"""The report file: one line per input row, as CSV, JSONL or XLSX; formula-safe; atomic."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import openpyxl  # test-only: reads the XLSX back independently of xlsxwriter
import pytest

from batcher.domain.errors import UsageError
from batcher.domain.models import ReportLine, Status
from batcher.reports import formats as report
from batcher.reports.formats import RESULT_FIELDS, check_report_path, report_columns, write_report

INPUT_COLUMNS = ("email", "status", "Tags")

SUCCESS = ReportLine(
    row=1,
    contact_id="C0000000000000000001",
    location_id="LOC1",
    action="add",
    tags=("vip", "new"),
    status=Status.SUCCESS,
    message="Tags added",
    old_tags=("old",),
    tags_added=("vip", "new"),
    tags_removed=(),
    http_status=201,
    attempts=1,
    extra=("ann@example.com", "active", "old"),
    line=2,
)
ERROR = ReportLine(
    row=2,
    contact_id="C0000000000000000002",
    location_id="LOC1",
    action="add",
    tags=("a,b", "café ✓"),
    status=Status.ERROR,
    message="Contact not found",
    http_status=201,
    attempts=2,
    extra=("=1+1", "-5", "@SUM(A1)"),
    line=3,
)
INVALID = ReportLine(
    row=3,
    contact_id="",
    location_id="LOC1",
    action="add",
    tags=(),
    status=Status.INVALID,
    message="empty contact id",
    extra=("", "\rx", "\tx"),
    line=5,
)
FAILED = ReportLine(
    row=4,
    contact_id="C0000000000000000004",
    location_id="LOC1",
    action="remove",
    tags=("vip",),
    status=Status.FAILED,
    message="=cmd|' /C calc'!A0",
    http_status=503,
    attempts=6,
    extra=("b@example.com", "", ""),
    line=7,
    uncertain=True,
)
LINES = (SUCCESS, ERROR, INVALID, FAILED)

HEADER = (
    "row,line,contact_id,location_id,action,tags,status,message,old_tags,tags_added,tags_removed,"
    "http_status,attempts,uncertain,resolved_by,email,input_status,input_Tags"
)


def simple_line(row: int) -> ReportLine:
    return ReportLine(
        row=row,
        contact_id=f"C{row:019d}",
        location_id="LOC1",
        action="add",
        tags=("vip",),
        status=Status.PENDING,
        message="",
        extra=(f"e{row}", "", ""),
        line=row + 1,
    )


def only_note(path: Path) -> str:
    """The `note` cell of a CSV report of one line, read back with the csv module."""
    with path.open(encoding="utf-8", newline="") as f:
        [record] = csv.DictReader(f)
    return record["note"]


# --- columns -------------------------------------------------------------------------------------


def test_columns_are_the_result_fields_then_the_input_columns() -> None:
    assert report_columns(["email", "phone"]) == (*RESULT_FIELDS, "email", "phone")


def test_an_input_column_named_like_a_result_field_is_prefixed_with_input() -> None:
    assert report_columns(["status", "tags"])[-2:] == ("input_status", "input_tags")


def test_the_clash_ignores_case_and_keeps_the_inputs_spelling() -> None:
    assert report_columns(["Tags", "Contact_ID"])[-2:] == ("input_Tags", "input_Contact_ID")


def test_a_renamed_column_that_clashes_again_is_prefixed_again() -> None:
    columns = report_columns(["status", "input_status", "email"])
    assert columns[-3:] == ("input_input_status", "input_status", "email")


def test_no_two_report_columns_are_equal_even_ignoring_case() -> None:
    columns = report_columns(["email", "Email", "input_email", "row", "ROW"])
    assert columns[-5:] == (
        "email",
        "input_input_Email",
        "input_email",
        "input_row",
        "input_input_ROW",
    )
    assert len({c.casefold() for c in columns}) == len(columns)


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    assert write_report(path, INPUT_COLUMNS, iter(LINES)) == 4
    assert path.read_bytes().decode("utf-8") == (
        HEADER + "\r\n"
        '1,2,C0000000000000000001,LOC1,add,"[""vip"",""new""]",success,Tags added,"[""old""]",'
        '"[""vip"",""new""]",[],201,1,false,,ann@example.com,active,old\r\n'
        '2,3,C0000000000000000002,LOC1,add,"[""a,b"",""café ✓""]",error,Contact not found,,,,'
        "201,2,false,,"
        "'=1+1,'-5,'@SUM(A1)\r\n"
        "3,5,,LOC1,add,[],invalid,empty contact id,,,,,,false,,,\"'\rx\",'\tx\r\n"
        '4,7,C0000000000000000004,LOC1,remove,"[""vip""]",failed,'
        "'=cmd|' /C calc'!A0,,,,503,6,true,,"
        "b@example.com,,\r\n"
    )


def test_csv_has_no_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    write_report(path, INPUT_COLUMNS, [SUCCESS])
    assert path.read_bytes().startswith(b"row,")


def test_csv_header_cells_are_made_inert_too(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    write_report(path, ["=HYPERLINK(1)"], [])
    assert path.read_bytes().decode("utf-8") == HEADER.split(",email")[0] + ",'=HYPERLINK(1)\r\n"


@pytest.mark.parametrize(
    "cell",
    [
        "=1+1",
        "+1",
        "-1",
        "@SUM(A1)",
        "\tx",
        "\rx",
        "\nx",
        "\x00x",
        "\uff1dSUM(A1)",  # fullwidth = + - @
        "\uff0b1",
        "\uff0d1",
        "\uff20SUM(A1)",
        " =1+1",
        "\xa0=1+1",  # NBSP
        "\u3000=1+1",  # ideographic space
        "\u2003@x",  # em space
        "\u200b=1+1",  # zero-width space
        "\ufeff=1+1",  # a byte order mark
        "\n=1+1",
        "  \t x",  # a tab among the blanks
        " \r\n x",
        " \x00",
        " \uff1d1",
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "report.csv"
    write_report(path, ["note"], [dataclasses.replace(SUCCESS, extra=(cell,))])
    assert only_note(path) == "'" + cell


@pytest.mark.parametrize(
    "cell",
    ["", " ", "\xa0\u3000", "plain", " plain", "\xa0a=b", "a=b", "'=already", "1-2", "[1]", "£5"],
)
def test_a_safe_cell_is_written_unchanged(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "report.csv"
    write_report(path, ["note"], [dataclasses.replace(SUCCESS, extra=(cell,))])
    assert only_note(path) == cell


def test_a_header_behind_blanks_is_made_inert_too(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    write_report(path, ["\xa0=HYPERLINK(1)"], [])
    assert path.read_bytes().decode("utf-8").endswith(",'\xa0=HYPERLINK(1)\r\n")


def test_the_blanks_are_every_character_python_calls_whitespace() -> None:
    whitespace = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert whitespace <= set(report._BLANKS)


def test_csv_of_no_lines_is_the_header_alone(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    assert write_report(path, [], []) == 0
    assert path.read_bytes().decode("utf-8") == ",".join(RESULT_FIELDS) + "\r\n"


# --- JSONL ---------------------------------------------------------------------------------------


def test_jsonl_has_one_object_per_line_with_arrays_nulls_and_numbers(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    assert write_report(path, INPUT_COLUMNS, LINES) == 4
    text = path.read_text(encoding="utf-8")
    assert "café ✓" in text  # not \u-escaped
    records = [json.loads(line) for line in text.splitlines()]
    assert records[0] == {
        "row": 1,
        "line": 2,
        "contact_id": "C0000000000000000001",
        "location_id": "LOC1",
        "action": "add",
        "tags": ["vip", "new"],
        "status": "success",
        "message": "Tags added",
        "old_tags": ["old"],
        "tags_added": ["vip", "new"],
        "tags_removed": [],
        "http_status": 201,
        "attempts": 1,
        "uncertain": False,
        "resolved_by": "",
        "email": "ann@example.com",
        "input_status": "active",
        "input_Tags": "old",
    }
    assert records[1]["tags"] == ["a,b", "café ✓"]
    assert records[1]["email"] == "=1+1"  # data, not a spreadsheet: unchanged
    assert records[2]["old_tags"] is None
    assert records[2]["http_status"] is None
    assert records[2]["attempts"] is None
    assert records[2]["input_status"] == "\rx"
    assert records[3]["message"] == "=cmd|' /C calc'!A0"
    assert records[3]["uncertain"] is True  # a JSON boolean
    assert list(records[3]) == list(report_columns(INPUT_COLUMNS))


# --- XLSX ----------------------------------------------------------------------------------------


def test_xlsx_reads_back_with_string_cells_numbers_and_no_formula(tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    assert write_report(path, INPUT_COLUMNS, LINES) == 4
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None
    rows = [list(row) for row in sheet.iter_rows()]

    assert [c.value for c in rows[0]] == HEADER.split(",")
    assert all(c.font.b for c in rows[0])
    assert sheet.freeze_panes == "A2"

    values = [[c.value for c in row] for row in rows[1:]]
    assert values[0] == [
        1, 2, "C0000000000000000001", "LOC1", "add", '["vip","new"]', "success", "Tags added",
        '["old"]', '["vip","new"]', "[]", 201, 1, "false", None, "ann@example.com", "active", "old",
    ]  # fmt: skip
    assert values[1][5] == '["a,b","café ✓"]'
    assert values[1][8:11] == [None, None, None]
    assert values[1][15:] == ["=1+1", "-5", "@SUM(A1)"]  # left as they are: string cells
    assert values[2][11:13] == [None, None]
    assert values[3][7] == "=cmd|' /C calc'!A0"
    assert values[3][13] == "true"

    formula_cell = rows[2][15]
    assert formula_cell.value == "=1+1"
    assert formula_cell.data_type == "s"
    assert rows[2][16].data_type == "s"  # "-5" stays text, not a number
    for number in (0, 1, 11, 12):  # row, line, http_status, attempts
        assert rows[1][number].data_type == "n"
    for row in rows[1:]:
        for cell in row[2:11] + row[13:]:
            assert cell.value is None or cell.data_type == "s"


def test_xlsx_with_more_rows_than_a_sheet_holds_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "XLSX_MAX_DATA_ROWS", 3)
    path = tmp_path / "report.xlsx"
    write_report(path, INPUT_COLUMNS, [simple_line(n) for n in (1, 2, 3)])  # exactly full: fine
    with pytest.raises(UsageError, match=r"do not fit in an XLSX sheet; use --report with \.csv"):
        write_report(path, INPUT_COLUMNS, [simple_line(n) for n in (1, 2, 3, 4)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xlsx"]


def test_the_xlsx_row_limit_is_excels() -> None:
    assert report.XLSX_MAX_DATA_ROWS == 1_048_575


# --- order, atomicity, paths ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".xlsx"])
def test_lines_are_written_in_the_order_given(tmp_path: Path, suffix: str) -> None:
    order = [5, 1, 4, 2, 3, *range(6, 300)]
    path = tmp_path / f"report{suffix}"
    assert write_report(path, INPUT_COLUMNS, (simple_line(n) for n in order)) == len(order)
    if suffix == ".csv":
        rows = [int(line.split(",")[0]) for line in path.read_text(encoding="utf-8").split()[1:]]
    elif suffix == ".jsonl":
        rows = [json.loads(line)["row"] for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        book = openpyxl.load_workbook(path, read_only=True)
        sheet = book.active
        assert sheet is not None
        rows = [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)]
        book.close()
    assert rows == order


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".xlsx"])
def test_a_written_report_leaves_no_temporary_file(tmp_path: Path, suffix: str) -> None:
    write_report(tmp_path / f"r{suffix}", INPUT_COLUMNS, LINES)
    assert [p.name for p in tmp_path.iterdir()] == [f"r{suffix}"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".xlsx"])
def test_a_failing_iterator_leaves_no_report_and_no_temporary_file(
    tmp_path: Path, suffix: str
) -> None:
    def lines() -> Iterator[ReportLine]:
        yield SUCCESS
        raise RuntimeError("ledger gone")

    with pytest.raises(RuntimeError, match="ledger gone"):
        write_report(tmp_path / f"r{suffix}", INPUT_COLUMNS, lines())
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_an_older_report_untouched(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("older report\n", encoding="utf-8")

    def lines() -> Iterator[ReportLine]:
        yield SUCCESS
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_report(path, INPUT_COLUMNS, lines())
    assert path.read_text(encoding="utf-8") == "older report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_a_file_named_like_an_old_temporary_file_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl.tmp").write_text("someone else's", encoding="utf-8")
    write_report(tmp_path / "r.jsonl", INPUT_COLUMNS, [SUCCESS])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "r.jsonl.tmp"]
    assert (tmp_path / "r.jsonl.tmp").read_text(encoding="utf-8") == "someone else's"
    assert (tmp_path / "r.jsonl").read_text(encoding="utf-8").count("\n") == 1


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".xlsx"])
def test_a_symlink_planted_as_the_temporary_file_is_not_written_through(
    tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("precious", encoding="utf-8")
    (tmp_path / f"report{suffix}.tmp").symlink_to(target)
    write_report(tmp_path / f"report{suffix}", INPUT_COLUMNS, LINES)
    assert target.read_text(encoding="utf-8") == "precious"
    assert (tmp_path / f"report{suffix}").is_file()
    assert not (tmp_path / f"report{suffix}").is_symlink()


def test_a_symlink_at_the_report_path_is_replaced_by_the_report(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("precious", encoding="utf-8")
    path = tmp_path / "report.csv"
    path.symlink_to(target)
    write_report(path, INPUT_COLUMNS, LINES)
    assert target.read_text(encoding="utf-8") == "precious"
    assert not path.is_symlink()
    assert path.read_text(encoding="utf-8").startswith("row,line,")


def test_the_temporary_file_is_a_new_hidden_file_beside_the_report(tmp_path: Path) -> None:
    seen: list[str] = []

    def lines() -> Iterator[ReportLine]:
        seen.extend(p.name for p in tmp_path.iterdir())
        yield SUCCESS

    write_report(tmp_path / "r.csv", INPUT_COLUMNS, lines())
    assert len(seen) == 1
    assert seen[0].startswith(".r.csv.")
    assert seen[0].endswith(".tmp")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_the_reports_permissions_follow_the_umask(
    tmp_path: Path, umask: int, mode: int, suffix: str
) -> None:
    """In a folder others may enter (pytest's own are 700: owner-only, see tests/test_modes.py)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    previous = os.umask(umask)
    try:
        write_report(shared / f"r{suffix}", INPUT_COLUMNS, [SUCCESS])
    finally:
        os.umask(previous)
    assert stat.S_IMODE((shared / f"r{suffix}").stat().st_mode) == mode


def test_a_line_whose_input_cells_do_not_match_the_columns_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="report row 1: 3 input cells for 1 input columns"):
        write_report(tmp_path / "r.csv", ["email"], [SUCCESS])
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_extension_is_a_usage_error_naming_the_path_and_the_formats(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.txt"
    with pytest.raises(UsageError, match=r"report\.txt.*\.csv, \.jsonl, \.xlsx"):
        write_report(path, INPUT_COLUMNS, LINES)
    with pytest.raises(UsageError, match="no extension"):
        check_report_path(tmp_path / "report")
    assert list(tmp_path.iterdir()) == []


def test_the_extension_is_matched_ignoring_case(tmp_path: Path) -> None:
    check_report_path(tmp_path / "REPORT.CSV")
    write_report(tmp_path / "REPORT.JSONL", INPUT_COLUMNS, [SUCCESS])
    assert json.loads((tmp_path / "REPORT.JSONL").read_text(encoding="utf-8"))["row"] == 1


def test_a_report_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        check_report_path(tmp_path / "nowhere" / "report.csv")


def test_a_report_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        check_report_path(tmp_path / "out.csv")


def test_the_row_count_can_be_checked_against_the_xlsx_limit_before_sending(
    tmp_path: Path,
) -> None:
    check_report_path(tmp_path / "r.xlsx", rows=1_048_575)
    check_report_path(tmp_path / "r.csv", rows=5_000_000)
    with pytest.raises(UsageError, match="1,048,575 rows do not fit"):
        check_report_path(tmp_path / "r.xlsx", rows=1_048_576)


def test_an_xlsx_report_wider_than_a_sheet_is_refused_before_sending(tmp_path: Path) -> None:
    fitting = report.XLSX_MAX_COLUMNS - len(RESULT_FIELDS)
    check_report_path(tmp_path / "r.xlsx", columns=fitting)
    check_report_path(tmp_path / "r.csv", columns=fitting + 1)
    with pytest.raises(UsageError) as refused:
        check_report_path(tmp_path / "r.xlsx", columns=fitting + 1)
    assert str(refused.value) == (
        f"{tmp_path / 'r.xlsx'}: 16,385 columns (15 result fields and 16,370 input columns) do "
        "not fit in an XLSX sheet, which holds at most 16,384; use --report with .csv or .jsonl"
    )


def test_writing_a_too_wide_xlsx_report_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    columns = [f"c{n}" for n in range(report.XLSX_MAX_COLUMNS)]
    with pytest.raises(UsageError, match="do not fit in an XLSX sheet"):
        write_report(tmp_path / "r.xlsx", columns, [])
    assert list(tmp_path.iterdir()) == []


def test_the_xlsx_column_limit_is_excels() -> None:
    assert report.XLSX_MAX_COLUMNS == 16_384


def test_csv_lists_read_back_exactly_with_the_csv_and_json_modules(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    write_report(path, INPUT_COLUMNS, LINES)
    with path.open(encoding="utf-8", newline="") as f:
        records = list(csv.DictReader(f))
    assert [tuple(json.loads(r["tags"])) for r in records] == [line.tags for line in LINES]
    assert [r["old_tags"] for r in records] == ['["old"]', "", "", ""]
    assert records[0]["tags_removed"] == "[]"
