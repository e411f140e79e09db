"""batcher.loading: the traps real files set (lines, encodings, exports, odd cells)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

from batcher.domain.errors import InputError, UsageError
from batcher.domain.models import Status
from batcher.loading import InputOptions, InputTable, open_input, parse_tags

ID1 = "AbCdEfGhIj0123456789"
ID2 = "ZyXwVuTsRq9876543210"
ID3 = "0000000000aaaaaaaaaa"
LOC = "LocLocLocLocLocLoc01"
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CFB_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def table_of(path: Path, **options: Any) -> InputTable:
    options.setdefault("default_location_id", LOC)
    return open_input(path, InputOptions(**options))


def load(path: Path, **options: Any) -> list[Any]:
    return [row for chunk in table_of(path, **options).chunks() for row in chunk]


def error_of(path: Path, kind: type[Exception] = InputError, **options: Any) -> str:
    with pytest.raises(kind) as info:
        table_of(path, **options)
    return str(info.value)


def write_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if value is not None:
                sheet.write(r, c, value)
    book.close()
    return path


# --- 1. Row.line -----------------------------------------------------------------------------


def test_a_csv_rows_line_counts_the_header_and_blank_lines(tmp_path: Path) -> None:
    text = f"contact_id,tags,action\n{ID1},x,add\n\n\n{ID2},x,add\n,,\n{ID3},x,add\n"
    rows = load(write(tmp_path / "in.csv", text))
    assert [(r.row, r.line, r.contact_id) for r in rows] == [(1, 2, ID1), (2, 5, ID2), (3, 7, ID3)]


def test_a_quoted_cell_holding_line_breaks_pushes_later_rows_down(tmp_path: Path) -> None:
    text = (
        "contact_id,note,tags,action\r\n"
        f'{ID1},"two\r\nlines",x,add\r\n'
        f'{ID2},"three\nlines\rhere",x,add\r\n'
        f"{ID3},plain,x,add\r\n"
    )
    rows = load(write(tmp_path / "in.csv", text))
    assert [(r.line, r.contact_id) for r in rows] == [(2, ID1), (4, ID2), (7, ID3)]
    assert rows[1].extra[1] == "three\nlines\rhere"


def test_lines_run_on_across_chunks_with_and_without_line_breaks_in_cells(tmp_path: Path) -> None:
    text = (
        "contact_id,note,tags,action\n"
        f"{ID1},a,x,add\n"
        f'{ID2},"b\n\nc",x,add\n'
        "\n"
        f"{ID3},d,x,add\n"
        f"{ID1},e,y,add\n"
    )
    rows = load(write(tmp_path / "in.csv", text), chunk_rows=2)
    assert [(r.row, r.line) for r in rows] == [(1, 2), (2, 3), (3, 7), (4, 8)]


def test_an_excel_rows_line_is_its_row_number_in_the_sheet(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        [[None], ["contact_id", "tags", "action"], [ID1, "x", "add"], [None], [ID2, "x", "add"]],
    )
    rows = load(path, chunk_rows=2)
    assert [(r.row, r.line, r.contact_id) for r in rows] == [(1, 3, ID1), (2, 5, ID2)]


# --- 2. error lines are physical lines -------------------------------------------------------


def test_a_line_with_too_many_fields_is_named_by_its_physical_line(tmp_path: Path) -> None:
    text = f'contact_id,note,tags,action\n{ID1},"a\nb\nc",x,add\n\n{ID2},n,x,add,extra\n'
    path = write(tmp_path / "in.csv", text)
    assert error_of(path) == (
        f"{path}: line 6 has 5 fields but the header has 4; check the delimiter and quoting"
    )


# --- 3. empty lines before the header --------------------------------------------------------


def test_csv_lines_of_empty_cells_before_the_header_are_skipped(tmp_path: Path) -> None:
    text = f'\n,,\n  \n"",,\ncontact_id,tags,action\n{ID1},x,add\n'
    table = table_of(write(tmp_path / "in.csv", text))
    assert table.columns == ("contact_id", "tags", "action")
    assert [(r.line, r.contact_id) for r in rows_of(table)] == [(6, ID1)]


def test_excel_rows_of_empty_cells_before_the_header_are_skipped(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        [[" ", None, "  "], [], ["contact_id", "tags", "action"], [ID1, "x", "add"]],
    )
    table = table_of(path)
    assert table.columns == ("contact_id", "tags", "action")
    assert [(r.line, r.contact_id) for r in rows_of(table)] == [(4, ID1)]


def test_a_csv_of_only_empty_cells_has_no_header(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", ",,\n\n ,\n")
    assert error_of(path) == f"{path}: the file is empty"


def rows_of(table: InputTable) -> list[Any]:
    return [row for chunk in table.chunks() for row in chunk]


# --- 4. delimiters ---------------------------------------------------------------------------


def test_a_tsv_file_is_tab_separated_whatever_its_cells_hold(tmp_path: Path) -> None:
    text = f"contact_id\ttags\taction\n{ID1}\ta,b,c,d,e,f\tadd\n{ID2}\tg,h,i,j\tadd\n"
    rows = load(write(tmp_path / "in.tsv", text))
    assert [r.tags for r in rows] == [("a", "b", "c", "d", "e", "f"), ("g", "h", "i", "j")]


@pytest.mark.parametrize("given", ["semicolon", "SemiColon", ";"])
def test_the_delimiter_option_forces_the_delimiter(tmp_path: Path, given: str) -> None:
    text = f"contact_id;tags;note,more\n{ID1};x,y;a,b\n"
    table = table_of(write(tmp_path / "in.txt", text), delimiter=given, action="add")
    assert table.columns == ("contact_id", "tags", "note,more")
    assert [(r.tags, r.extra) for r in rows_of(table)] == [(("x", "y"), (ID1, "x,y", "a,b"))]


@pytest.mark.parametrize(("given", "delimiter"), [("tab", "\t"), ("comma", ","), ("pipe", "|")])
def test_the_delimiter_words(tmp_path: Path, given: str, delimiter: str) -> None:
    text = f"contact_id{delimiter}tags{delimiter}action\n{ID1}{delimiter}x{delimiter}add\n"
    assert [r.tags for r in load(write(tmp_path / "in.csv", text), delimiter=given)] == [("x",)]


@pytest.mark.parametrize("given", ["", "::", "space", '"', "\n"])
def test_a_bad_delimiter_is_a_usage_error(tmp_path: Path, given: str) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,tags,action\n{ID1},x,add\n")
    assert error_of(path, UsageError, delimiter=given) == (
        f"delimiter {given!r}: give one character (not a quote or line break) "
        "or one of tab, comma, semicolon, pipe"
    )


def test_a_txt_file_is_still_sniffed(tmp_path: Path) -> None:
    rows = load(write(tmp_path / "in.txt", f"contact_id|tags|action\n{ID1}|x,y|add\n"))
    assert [r.tags for r in rows] == [("x", "y")]


# --- 5. encoding -----------------------------------------------------------------------------


def test_utf8_with_one_stray_byte_stops_naming_line_and_byte(tmp_path: Path) -> None:
    data = f"contact_id,name,tags,action\n{ID1},café,x,add\n{ID2},caf".encode() + b"\xe9,x,add\n"
    path = write(tmp_path / "in.csv", data)
    assert error_of(path) == (
        f"{path}: line 3: byte 86 (0xE9) is not valid UTF-8 in a file that is otherwise UTF-8; "
        "fix that byte, or name the file's encoding (--encoding, input.encoding) if the file is "
        "not UTF-8"
    )


def test_a_stray_byte_past_the_first_megabyte_is_found_at_the_right_offset(
    tmp_path: Path,
) -> None:
    head = f"contact_id,name,tags,action\n{ID1},é,x,add\n".encode()
    filler = f"{ID2},plain,x,add\n".encode() * 60_000
    data = head + filler + b"\x96,x,add\n"
    path = write(tmp_path / "in.csv", data)
    assert error_of(path).startswith(
        f"{path}: line 60003: byte {len(head) + len(filler) + 1} (0x96) is not valid UTF-8"
    )


def test_a_file_with_multibyte_utf8_only_is_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,name,tags,action\n{ID1},Ã© café,x,add\n")
    assert load(path)[0].extra[1] == "Ã© café"


def test_a_utf8_bom_file_with_a_stray_byte_stops(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfcontact_id,tags,action\n" + ID1.encode() + b",caf\xe9,add\n"
    assert "is not valid UTF-8" in error_of(write(tmp_path / "in.csv", data))


def test_a_configured_encoding_is_strict_and_names_line_and_byte(tmp_path: Path) -> None:
    data = f"contact_id,tags,action\n{ID1},x,add\n{ID2},".encode() + b"\x81,add\n"
    path = write(tmp_path / "in.csv", data)
    assert error_of(path, encoding="cp1252") == (
        f"{path}: line 3: not cp1252 text (byte 72); name the file's encoding "
        "(--encoding, input.encoding)"
    )


# --- 6. numeric Excel ids --------------------------------------------------------------------


def test_a_number_in_the_excel_id_column_is_never_an_id(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        [
            ["contact_id", "tags", "action", "score"],
            [12345678901234567890, "x", "add", 1.5],
            [123, "x", "add", 2],
            [ID1, "x", "add", 3],
        ],
    )
    rows = load(path, id_pattern=r"^\d+$|^[A-Za-z0-9]{20}$")
    assert [(r.line, r.status, r.message) for r in rows] == [
        (
            2,
            Status.INVALID,
            "contact id is a number in the sheet (1.234567890123457e+19): Excel keeps only "
            "15 digits, so format the id column as Text and enter the ids again",
        ),
        (
            3,
            Status.INVALID,
            "contact id is a number in the sheet (123): Excel keeps only 15 digits, so "
            "format the id column as Text and enter the ids again",
        ),
        (4, None, ""),
    ]
    assert [r.extra[3] for r in rows] == ["1.5", "2", "3"]


# --- 7. tags ---------------------------------------------------------------------------------


def test_a_tag_with_a_control_character_makes_the_row_invalid(tmp_path: Path) -> None:
    text = f'contact_id,tags,action\n{ID1},"ok, bad\x1bone",add\n{ID2},"a\tb",add\n{ID3},ok,add\n'
    rows = load(write(tmp_path / "in.csv", text))
    assert [(r.status, r.message) for r in rows] == [
        (Status.INVALID, 'tag "bad\\u001bone" contains a control character'),
        (Status.INVALID, 'tag "a\\u0009b" contains a control character'),
        (None, ""),
    ]


def test_a_tag_longer_than_the_limit_makes_the_row_invalid(tmp_path: Path) -> None:
    text = f"contact_id,tags,action\n{ID1},{'t' * 11},add\n{ID2},{'t' * 10},add\n"
    rows = load(write(tmp_path / "in.csv", text), max_tag_length=10)
    assert [(r.status, r.message) for r in rows] == [
        (
            Status.INVALID,
            f'tag "{"t" * 11}" has 11 characters, more than input.max_tag_length (10)',
        ),
        (None, ""),
    ]


def test_a_long_tag_is_cut_in_its_message_and_the_default_limit_is_255(tmp_path: Path) -> None:
    text = f"contact_id,tags,action\n{ID1},{'t' * 256},add\n{ID2},{'t' * 255},add\n"
    rows = load(write(tmp_path / "in.csv", text))
    assert [r.message for r in rows] == [
        f'tag "{"t" * 60}…" has 256 characters, more than input.max_tag_length (255)',
        "",
    ]


def test_bad_tags_given_as_an_option_are_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id\n{ID1}\n")
    assert error_of(path, UsageError, action="add", tags=("ok", "a\x00b")) == (
        '--tags: tag "a\\u0000b" contains a control character'
    )
    assert error_of(path, UsageError, action="add", tags=("abcd",), max_tag_length=3) == (
        '--tags: tag "abcd" has 4 characters, more than input.max_tag_length (3)'
    )


def test_a_max_tag_length_below_one_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id\n{ID1}\n")
    assert error_of(path, UsageError, action="add", tags=("x",), max_tag_length=0) == (
        "input.max_tag_length must be at least 1"
    )


# --- 8. JSON lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ('["florida","lead"]', ("florida", "lead")),
        (' ["a,b", "c", " C ", ""] ', ("a,b", "c")),
        ("[]", ()),
        ("['legacy-gold', 'legacy-2019']", ("legacy-gold", "legacy-2019")),
    ],
)
def test_parse_tags_reads_a_json_array_of_strings_as_the_list(
    text: str, tags: tuple[str, ...]
) -> None:
    assert parse_tags(text) == tags


def test_a_tags_cell_holding_a_json_list_is_read_as_that_list(tmp_path: Path) -> None:
    text = f'contact_id,tags,action\n{ID1},"[""florida"",""lead""]",add\n'
    assert [r.tags for r in load(write(tmp_path / "in.csv", text))] == [("florida", "lead")]


def test_tags_given_as_an_option_keep_their_commas(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id\n{ID1}\n")
    rows = load(path, action="add", tags=parse_tags('["a,b","c"]'))
    assert [r.tags for r in rows] == [("a,b", "c")]


# --- 9. HighLevel contact exports ------------------------------------------------------------


def test_the_sample_highlevel_export_needs_tags_or_remove_all(tmp_path: Path) -> None:
    path = SAMPLES / "highlevel_export.csv"
    assert error_of(path, UsageError, action="remove") == (
        f"{path} is a HighLevel contact export: its Tags column holds the contacts' current "
        'tags, not tags to apply; give --tags "a,b" (or --remove-all-tags)'
    )


def test_a_highlevel_export_with_remove_all_works(tmp_path: Path) -> None:
    table = table_of(SAMPLES / "highlevel_export.csv", action="remove", remove_all=True)
    assert (table.highlevel_export, table.tags_column) == (True, None)
    rows = rows_of(table)
    assert rows[0].tags == ()
    assert rows[0].remove_all is True


def test_contact_id_with_one_export_column_is_not_an_export(tmp_path: Path) -> None:
    text = f"Contact Id,Email,Tags,Action\n{ID1},a@b.c,x,add\n"
    table = table_of(write(tmp_path / "in.csv", text))
    assert (table.highlevel_export, table.tags_column) == (False, "Tags")


def test_contact_id_spelled_otherwise_is_not_an_export(tmp_path: Path) -> None:
    text = f"contact_id,First Name,Last Name,Tags,Action\n{ID1},A,B,x,add\n"
    table = table_of(write(tmp_path / "in.csv", text))
    assert (table.highlevel_export, [r.tags for r in rows_of(table)]) == (False, [("x",)])


# --- 10. header-only files -------------------------------------------------------------------


def test_a_file_with_rows_says_so(tmp_path: Path) -> None:
    table = table_of(write(tmp_path / "in.csv", f"contact_id,tags,action\n\n{ID1},x,add\n"))
    assert table.has_rows is True


# --- 11. old and locked workbooks ------------------------------------------------------------


def test_an_xls_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path / "old.XLS", CFB_MAGIC + b"\x00" * 600)
    assert error_of(path) == (
        f"{path}: old binary Excel format (.xls): open it in Excel and save as .xlsx"
    )


def test_a_password_protected_workbook_is_refused_with_the_fix(tmp_path: Path) -> None:
    data = CFB_MAGIC + b"\x00" * 1000 + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 100
    path = write(tmp_path / "locked.xlsx", data)
    assert error_of(path) == (
        f"{path}: password-protected (encrypted) workbook: remove the password in Excel "
        "and save again"
    )


def test_an_xls_renamed_xlsx_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path / "renamed.xlsx", CFB_MAGIC + b"\x00" * 600)
    assert error_of(path) == (
        f"{path}: old binary Excel format (.xls) under another name: "
        "open it in Excel and save as .xlsx"
    )


def test_a_corrupt_workbook_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.xlsx", b"PK\x03\x04" + b"\x00" * 100)
    message = error_of(path)
    assert message.startswith(f"{path}: not a readable Excel workbook (")
    assert "\n" not in message


def test_a_20_digit_id_typed_in_a_general_cell_is_shown_as_excel_stored_it(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx", [["contact_id", "tags", "action"], [1.23456789012345e19, "x", "add"]]
    )
    [row] = load(path, id_pattern=r"^\d{20}$")
    assert (row.status, row.contact_id) == (Status.INVALID, "12345678901234499584")
    assert row.message.startswith("contact id is a number in the sheet (1.23456789012345e+19): ")
