"""batcher.loading: reading contact files into Rows (SPEC "Input")."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

from batcher.domain.errors import InputError, UsageError
from batcher.domain.models import Row, Status
from batcher.loading import InputOptions, InputTable, open_input, parse_tags
from batcher.loading._common import WHITESPACE

ID1 = "AbCdEfGhIj0123456789"
ID2 = "ZyXwVuTsRq9876543210"
ID3 = "0000000000aaaaaaaaaa"
LOC = "LocLocLocLocLocLoc01"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def rows_of(table: InputTable) -> list[Row]:
    return [row for chunk in table.chunks() for row in chunk]


def load(path: Path, **options: Any) -> list[Row]:
    options.setdefault("default_location_id", LOC)
    return rows_of(open_input(path, InputOptions(**options)))


def write_xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = xlsxwriter.Workbook(str(path))
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for r, values in enumerate(rows):
            for c, value in enumerate(values):
                if value is not None:
                    sheet.write(r, c, value)
    book.close()
    return path


def input_error(path: Path, **options: Any) -> str:
    with pytest.raises(InputError) as info:
        open_input(path, InputOptions(**options))
    return str(info.value)


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_is_recognised(tmp_path: Path, delimiter: str) -> None:
    d = delimiter
    text = f'contact_id{d}tags{d}action\n{ID1}{d}"vip, new"{d}add\n{ID2}{d}old{d}remove\n'
    rows = load(write(tmp_path / "in.csv", text))
    assert rows == [
        Row(1, ID1, LOC, "add", ("vip", "new"), False, None, "", (ID1, "vip, new", "add"), 2),
        Row(2, ID2, LOC, "remove", ("old",), False, None, "", (ID2, "old", "remove"), 3),
    ]


def test_a_comma_inside_cells_does_not_fool_the_sniffer(tmp_path: Path) -> None:
    text = f"contact_id;tags;action\n{ID1};a,b,c;add\n{ID2};d,e;add\n"
    rows = load(write(tmp_path / "in.csv", text))
    assert [r.tags for r in rows] == [("a", "b", "c"), ("d", "e")]


def test_a_single_column_file_is_read(tmp_path: Path) -> None:
    rows = load(
        write(tmp_path / "in.csv", f"contact_id\n{ID1}\n{ID2}\n"), action="add", tags=("x",)
    )
    assert [(r.row, r.contact_id, r.extra) for r in rows] == [(1, ID1, (ID1,)), (2, ID2, (ID2,))]


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"\ufeffcontact_id,tags,action\n{ID1},x,add\n")
    table = open_input(path, InputOptions(default_location_id=LOC))
    assert table.columns == ("contact_id", "tags", "action")
    assert table.id_column == "contact_id"
    assert [r.contact_id for r in rows_of(table)] == [ID1]


def test_cp1252_file_is_detected(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.csv", f"contact_id,name,tags,action\n{ID1},Müller €,x,add\n", "cp1252"
    )
    assert load(path)[0].extra == (ID1, "Müller €", "x", "add")


def test_non_utf8_byte_late_in_a_big_file_is_still_detected(tmp_path: Path) -> None:
    lines = [f"{ID1},plain,x,add"] * 30_000 + [f"{ID2},Müller,x,add"]
    text = "contact_id,name,tags,action\n" + "\n".join(lines) + "\n"
    rows = load(write(tmp_path / "in.csv", text, "cp1252"))
    assert len(rows) == 30_001
    assert rows[-1].extra[1] == "Müller"


def test_configured_encoding_is_used(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,name,tags,action\n{ID1},Ωmega,x,add\n", "utf-16")
    assert load(path, encoding="utf-16")[0].extra[1] == "Ωmega"


def test_configured_encoding_that_does_not_fit_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.csv", f"contact_id,name,tags,action\n{ID1},Müller,x,add\n", "cp1252"
    )
    assert input_error(path, encoding="utf-8") == (
        f"{path}: line 2: not utf-8 text (byte 51); name the file's encoding "
        "(--encoding, input.encoding)"
    )


def test_text_that_no_likely_code_page_decodes_is_refused(tmp_path: Path) -> None:
    """A byte that no candidate code page defines (0x81 is undefined in cp1252, cp1250,
    cp1254 and cp1257, and mac_roman and cp850 read it differently from cp1251) stops the run
    with the readings shown."""
    path = tmp_path / "in.csv"
    path.write_bytes(b"contact_id,tags,action\n" + ID1.encode() + b",\x81,add\n")
    message = input_error(path)
    assert message.startswith(
        f"{path}: not UTF-8, and which code page it is cannot be told from the data: line 2, "
        'tags reads "'
    )
    assert '"Ѓ" in cp1251' in message
    assert '"Å" in mac_roman' in message
    assert message.endswith(
        "name the file's encoding: --encoding and the code page whose reading is right "
        "(or input.encoding)"
    )


def test_gzip_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "in.csv.gz"
    path.write_bytes(gzip.compress(f"contact_id|tags|action\n{ID1}|x|add\n".encode()))
    assert [(r.contact_id, r.tags) for r in load(path)] == [(ID1, ("x",))]


def test_xlsx_first_sheet_by_default(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        {
            "One": [["Contact Id", "Tags", "Action"], [ID1, "a, b", "Add"]],
            "Two": [["contact_id", "tags", "action"], [ID2, "c", "remove"]],
        },
    )
    assert load(path) == [
        Row(1, ID1, LOC, "add", ("a", "b"), False, None, "", (ID1, "a, b", "Add"), 2),
    ]


def test_xlsx_sheet_is_chosen_by_name(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsm",
        {
            "One": [["x"], ["y"]],
            "Two": [["contact_id", "tags", "action"], [ID2, "c", "remove"]],
        },
    )
    assert [r.contact_id for r in load(path, sheet="Two")] == [ID2]
    assert [r.contact_id for r in load(path, sheet="two")] == [ID2]


def test_xlsx_unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "in.xlsx", {"One": [["id"], [ID1]], "Two": [["id"], [ID2]]})
    assert input_error(path, sheet="Three", action="add", tags=("x",)) == (
        f"{path}: no sheet 'Three' (sheets: 'One', 'Two'); give one of them with --sheet"
    )


def test_xlsx_numbers_outside_the_id_column_are_read_as_text_without_decimals(
    tmp_path: Path,
) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        {
            "S": [
                ["id", "score", "flag", "tags", "action"],
                ["123456789012345", 1.5, True, "t", "add"],
                [None, None, None, None, None],
                ["123", 7.0, False, 42, "add"],
                ["12345678901234567890", -0.25, None, "t", "add"],
            ]
        },
    )
    rows = load(path, id_pattern=r"^\d+$")
    assert [(r.row, r.line, r.contact_id, r.extra[1:4], r.tags, r.status) for r in rows] == [
        (1, 2, "123456789012345", ("1.5", "TRUE", "t"), ("t",), None),
        (2, 4, "123", ("7", "FALSE", "42"), ("42",), None),
        (3, 5, "12345678901234567890", ("-0.25", "", "t"), ("t",), None),
    ]


def test_xlsx_short_rows_are_padded_and_leading_blank_rows_skipped(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        {"S": [[None], ["contact_id", "tags", "action", "note"], [ID1, "t", "add"]]},
    )
    assert load(path)[0].extra == (ID1, "t", "add", "")


# --- columns ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["contact_id", "contactId", "Contact Id", "CONTACT-ID", " contact_id ", "id", "ID"]
)
def test_id_column_name_variants(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / "in.csv", f"{name},tags,action\n{ID1},x,add\n")
    table = open_input(path, InputOptions(default_location_id=LOC))
    assert table.id_column == name
    assert rows_of(table)[0].contact_id == ID1


def test_contact_id_is_preferred_over_id(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"id,Contact Id,tags,action\n123,{ID1},x,add\n")
    table = open_input(path, InputOptions(default_location_id=LOC))
    assert table.id_column == "Contact Id"
    assert rows_of(table)[0].contact_id == ID1


EXPORT = (
    "Contact Id,First Name,Last Name,Business Name,Company Name,Phone,Email,"
    "Created,Last Activity,Tags\n"
    f'{ID1},Ann,Lee,,Acme,+15550100,ann@example.com,2024-01-02,,"customer, vip"\n'
)


def test_a_highlevel_export_with_tags_given_carries_its_tags_column_to_the_report(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "export.csv", EXPORT)
    table = open_input(path, InputOptions(action="remove", tags=("lead",), location_id=LOC))
    assert table.highlevel_export is True
    assert (table.id_column, table.tags_column, table.action_column) == ("Contact Id", None, None)
    [row] = rows_of(table)
    assert (row.contact_id, row.action, row.tags, row.location_id) == (
        ID1,
        "remove",
        ("lead",),
        LOC,
    )
    assert row.extra[0] == ID1
    assert row.extra[-1] == "customer, vip"


def test_id_column_option_is_matched_loosely(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"id,Customer Ref,tags,action\n1,{ID1},x,add\n")
    table = open_input(path, InputOptions(id_column="customer_ref", default_location_id=LOC))
    assert table.id_column == "Customer Ref"
    assert rows_of(table)[0].contact_id == ID1


def test_other_columns_location_and_repeated_names_are_kept_as_written(tmp_path: Path) -> None:
    text = f"note,Location-Id,contact_id,TAGS,Action,note\nn1,{LOC},{ID1},x,add,n2\n"
    table = open_input(write(tmp_path / "in.csv", text), InputOptions())
    assert table.columns == ("note", "Location-Id", "contact_id", "TAGS", "Action", "note")
    assert (table.location_column, table.tags_column, table.action_column) == (
        "Location-Id",
        "TAGS",
        "Action",
    )
    assert rows_of(table) == [
        Row(1, ID1, LOC, "add", ("x",), False, None, "", ("n1", LOC, ID1, "x", "add", "n2"), 2)
    ]


# --- normalising -----------------------------------------------------------------------------


def test_ids_are_trimmed_of_whitespace_and_invisible_characters(tmp_path: Path) -> None:
    text = (
        "contact_id,tags,action\n"
        f'" \u200b{ID1}\u00a0\ufeff",x,add\n'
        f"\u2060\u200c{ID2}\u200d\t,x,add\n"
    )
    rows = load(write(tmp_path / "in.csv", text))
    assert [(r.contact_id, r.status) for r in rows] == [(ID1, None), (ID2, None)]
    assert rows[0].extra[0] == f" \u200b{ID1}\u00a0\ufeff"


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("a,b", ("a", "b")),
        ("  a , b  ,c ", ("a", "b", "c")),
        ("a,,b,", ("a", "b")),
        (",, ,", ()),
        ("", ()),
        ("VIP,b,VIP,a,b", ("VIP", "b", "a")),
        ("Vip,vip,VIP", ("Vip",)),
        # As HighLevel compares tags (lower-cased): "straße" and "strasse" are two tags.
        ("Straße,STRASSE,straße", ("Straße", "STRASSE")),
        ("New Lead, \u200bhot\u00a0", ("New Lead", "hot")),
    ],
)
def test_parse_tags(text: str, tags: tuple[str, ...]) -> None:
    assert parse_tags(text) == tags


def test_action_is_trimmed_and_lower_cased(tmp_path: Path) -> None:
    rows = load(
        write(tmp_path / "in.csv", f"contact_id,tags,action\n{ID1},x, ADD \n{ID2},x,Remove\n")
    )
    assert [(r.action, r.status) for r in rows] == [("add", None), ("remove", None)]


def test_options_override_the_columns(tmp_path: Path) -> None:
    text = f"contact_id,Tags,action,location_id\n{ID1},old1,remove,{LOC}\n"
    path = write(tmp_path / "in.csv", text)
    options = InputOptions(tags=("new", "other"), action="add", location_id="OptLocation000000001")
    table = open_input(path, options)
    assert (table.tags_column, table.action_column, table.location_column) == (None, None, None)
    assert rows_of(table) == [
        Row(
            1,
            ID1,
            "OptLocation000000001",
            "add",
            ("new", "other"),
            False,
            None,
            "",
            (ID1, "old1", "remove", LOC),
            2,
        )
    ]


def test_location_comes_from_column_else_default(tmp_path: Path) -> None:
    text = f"contact_id,tags,action,locationId\n{ID1},x,add,ColumnLoc\n{ID2},x,add, \n"
    rows = load(write(tmp_path / "in.csv", text), default_location_id="DefaultLoc")
    assert [r.location_id for r in rows] == ["ColumnLoc", "DefaultLoc"]


def test_remove_all_tags_needs_no_tags_column(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,Tags\n{ID1},old\n")
    table = open_input(path, InputOptions(action="remove", remove_all=True, location_id=LOC))
    assert table.tags_column is None
    assert rows_of(table) == [Row(1, ID1, LOC, "remove", (), True, None, "", (ID1, "old"), 2)]


# --- invalid rows ----------------------------------------------------------------------------


def test_every_invalid_reason_has_its_message(tmp_path: Path) -> None:
    text = (
        "contact_id,tags,action,location_id\n"
        f",x,add,{LOC}\n"
        f"abc,x,add,{LOC}\n"
        f"{ID1},x,delete,{LOC}\n"
        f"{ID1},x,,{LOC}\n"
        f"{ID1}, , add,{LOC}\n"
        f"{ID1},x,add,\n"
        f"abc\u200bdef,,Nope,\n"
    )
    rows = load(write(tmp_path / "in.csv", text), default_location_id="")
    assert [(r.row, r.status, r.message) for r in rows] == [
        (1, Status.INVALID, "contact id is empty"),
        (2, Status.INVALID, 'contact id "abc" does not match ^[A-Za-z0-9]{20}$'),
        (3, Status.INVALID, 'action "delete" is not add or remove'),
        (4, Status.INVALID, "action is empty (expected add or remove)"),
        (5, Status.INVALID, "no tags to apply"),
        (
            6,
            Status.INVALID,
            "no location id (give --location-id, a location_id column or api.location_id)",
        ),
        (
            7,
            Status.INVALID,
            'contact id "abc\\u200bdef" does not match ^[A-Za-z0-9]{20}$; '
            'action "nope" is not add or remove; no tags to apply; '
            "no location id (give --location-id, a location_id column or api.location_id)",
        ),
    ]
    assert rows[2].action == "delete"


def test_remove_all_tags_with_action_add_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,action\n{ID1},add\n{ID2},remove\n")
    rows = load(path, remove_all=True)
    assert [(r.status, r.message) for r in rows] == [
        (Status.INVALID, "remove-all-tags goes with action remove"),
        (None, ""),
    ]


def test_a_long_bad_id_is_cut_in_the_message(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id\n{'x' * 100}\n")
    [row] = load(path, action="add", tags=("t",))
    assert row.message == f'contact id "{"x" * 60}…" does not match ^[A-Za-z0-9]{{20}}$'


def test_id_pattern_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", "contact_id\nabc\n")
    [row] = load(path, action="add", tags=("t",), id_pattern=r"^[a-z]+$")
    assert row.status is None


# --- rows and chunks -------------------------------------------------------------------------


def test_blank_and_empty_lines_are_not_rows(tmp_path: Path) -> None:
    text = f"\n\ncontact_id,tags,action\n\n{ID1},x,add\n\n,,\n  , ,\u200b\n\r\n{ID2},x,add\n,y,\n"
    rows = load(write(tmp_path / "in.csv", text))
    assert [(r.row, r.contact_id, r.status) for r in rows] == [
        (1, ID1, None),
        (2, ID2, None),
        (3, "", Status.INVALID),
    ]


def test_short_lines_get_empty_cells(tmp_path: Path) -> None:
    rows = load(write(tmp_path / "in.csv", f"contact_id,tags,action,note\n{ID1},x,add\n"))
    assert rows[0].extra == (ID1, "x", "add", "")


def test_row_numbers_run_on_across_chunks(tmp_path: Path) -> None:
    lines = [f"{ID1},t{i},add" if i % 3 else ",," for i in range(1, 12)]
    path = write(tmp_path / "in.csv", "contact_id,tags,action\n" + "\n".join(lines) + "\n")
    table = open_input(path, InputOptions(default_location_id=LOC, chunk_rows=2))
    chunks = list(table.chunks())
    assert all(len(c) <= 2 for c in chunks)
    rows = [r for c in chunks for r in c]
    assert [(r.row, r.tags) for r in rows] == [
        (1, ("t1",)),
        (2, ("t2",)),
        (3, ("t4",)),
        (4, ("t5",)),
        (5, ("t7",)),
        (6, ("t8",)),
        (7, ("t10",)),
        (8, ("t11",)),
    ]


def test_xlsx_row_numbers_run_on_across_chunks(tmp_path: Path) -> None:
    data: list[list[Any]] = [["contact_id", "tags", "action"]]
    data += [[ID1, f"t{i}", "add"] for i in range(1, 6)]
    path = write_xlsx(tmp_path / "in.xlsx", {"S": data})
    table = open_input(path, InputOptions(default_location_id=LOC, chunk_rows=2))
    assert [[r.row for r in c] for c in table.chunks()] == [[1, 2], [3, 4], [5]]


def test_chunks_can_be_read_again(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,tags,action\n{ID1},x,add\n{ID2},y,add\n")
    table = open_input(path, InputOptions(default_location_id=LOC, chunk_rows=1))
    first = rows_of(table)
    assert len(first) == 2
    assert rows_of(table) == first


# --- errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert input_error(path) == f"{path}: file not found"


def test_directory(tmp_path: Path) -> None:
    assert input_error(tmp_path) == f"{tmp_path}: is a directory, not a CSV or Excel file"


def test_unsupported_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "in.json", "{}")
    assert input_error(path) == (
        f"{path}: unsupported file type '.json'; give a .csv, .csv.gz, .xlsx or .xlsm file"
    )


def test_binary_file_named_csv(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"\x00\x01\x02binary\xff\x00")
    assert input_error(path) == (
        f"{path}: is binary, not CSV text (a NUL byte on line 1); give a CSV or Excel file "
        "(or name its encoding, e.g. --encoding utf-16, for UTF-16 without a BOM)"
    )


def test_workbook_named_csv(tmp_path: Path) -> None:
    xlsx = write_xlsx(tmp_path / "in.xlsx", {"S": [["id"], [ID1]]})
    path = tmp_path / "in.csv"
    path.write_bytes(xlsx.read_bytes())
    assert input_error(path) == (
        f"{path}: is a ZIP file (an Excel workbook?), not CSV text; "
        "give it an .xlsx extension if it is a workbook"
    )


def test_corrupt_xlsx(tmp_path: Path) -> None:
    path = write(tmp_path / "in.xlsx", "contact_id,tags\n")
    assert input_error(path).startswith(f"{path}: not a readable Excel workbook (")


def test_empty_xlsx_sheet(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "in.xlsx", {"Empty": []})
    assert input_error(path) == f"{path}: sheet 'Empty' is empty"


def test_bad_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv.gz", "contact_id\n")
    assert input_error(path) == (
        f"{path}: not a gzip file (Not a gzipped file (b'co')); give a .csv.gz made by gzip"
    )


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "in.csv.gz"
    lines = b"".join(b"%020d,t,add\n" % i for i in range(20_000))
    path.write_bytes(gzip.compress(b"contact_id,tags,action\n" + lines)[:-1000])
    assert input_error(path) == (
        f"{path}: cannot be read (Compressed file ended before the end-of-stream marker "
        "was reached)"
    )


@pytest.mark.parametrize("text", ["", "\n\n", "  \n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "in.csv", text)
    assert input_error(path) == f"{path}: the file is empty"


@pytest.mark.parametrize("text", ["contact_id,tags,action\n", "contact_id,tags,action\n\n,,\n"])
def test_header_without_data_rows_opens_with_has_rows_false(tmp_path: Path, text: str) -> None:
    table = open_input(write(tmp_path / "in.csv", text), InputOptions())
    assert table.has_rows is False
    assert table.columns == ("contact_id", "tags", "action")
    assert rows_of(table) == []


def test_no_id_column_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", "name,tags,action\nAda,x,add\n")
    assert input_error(path) == (
        f"{path}: no contact id column (looked for contact_id, contactId, Contact Id or id, "
        "and for an email column; columns: 'name', 'tags', 'action'); name it with --id-column "
        "(or --email-column)"
    )


def test_named_id_column_missing(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"id,tags,action\n{ID1},x,add\n")
    assert input_error(path, id_column="ref") == (
        f"{path}: no column 'ref' for --id-column (columns: 'id', 'tags', 'action')"
    )


def test_line_with_too_many_fields_early(tmp_path: Path) -> None:
    text = f"contact_id,tags,action\n{ID1},x,add\n{ID2},x,add,extra\n"
    path = write(tmp_path / "in.csv", text)
    assert input_error(path) == (
        f"{path}: line 3 has 4 fields but the header has 3; check the delimiter and quoting"
    )


def test_line_with_too_many_fields_late_stops_the_reading(tmp_path: Path) -> None:
    text = "contact_id,tags,action\n" + f"{ID1},x,add\n" * 5000 + f"{ID2},x,add,\n"
    path = write(tmp_path / "in.csv", text)
    table = open_input(path, InputOptions(default_location_id=LOC))
    with pytest.raises(InputError) as info:
        rows_of(table)
    assert str(info.value) == (
        f"{path}: line 5002 has 4 fields but the header has 3; check the delimiter and quoting"
    )


def test_no_action_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,tags\n{ID1},x\n")
    with pytest.raises(UsageError) as info:
        open_input(path, InputOptions())
    assert str(info.value) == (
        f"{path}: no action column; give --action add or --action remove, or add an action column "
        "(or name it with --action-column)"
    )


def test_no_tags_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,action\n{ID1},add\n")
    with pytest.raises(UsageError) as info:
        open_input(path, InputOptions())
    assert str(info.value) == (
        f"{path}: no tags column; give --tags, --remove-all-tags or add a tags column (or name it "
        "with --tags-column)"
    )


def test_tags_and_remove_all_together_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,action\n{ID1},remove\n")
    with pytest.raises(UsageError) as info:
        open_input(path, InputOptions(tags=("x",), remove_all=True))
    assert str(info.value) == "--tags and --remove-all-tags do not go together: give one of them"


def test_usage_errors_are_not_input_errors(tmp_path: Path) -> None:
    """The CLI maps both to exit 2, but an input problem must name the file, not an option."""
    path = write(tmp_path / "in.csv", f"contact_id\n{ID1}\n")
    with pytest.raises(UsageError) as info:
        open_input(path, InputOptions(tags=("x",)))
    assert not isinstance(info.value, InputError)


def test_xlsx_header_without_data_rows_opens_with_has_rows_false(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "in.xlsx", {"S": [["contact_id", "tags", "action"], [None]]})
    table = open_input(path, InputOptions())
    assert table.has_rows is False
    assert rows_of(table) == []


def test_xlsx_data_after_many_blank_rows_is_found(tmp_path: Path) -> None:
    data: list[list[Any]] = [["contact_id", "tags", "action"]] + [[None]] * 1500
    path = write_xlsx(tmp_path / "in.xlsx", {"S": [*data, [ID1, "t", "add"]]})
    assert [(r.row, r.contact_id) for r in load(path)] == [(1, ID1)]


def test_utf16_with_bom_is_detected(tmp_path: Path) -> None:
    path = write(tmp_path / "in.tsv", f"contact_id\ttags\taction\n{ID1}\tÜber\tadd\n", "utf-16")
    assert [r.tags for r in load(path)] == [("Über",)]


def test_the_whitespace_list_is_every_space_character_of_unicode() -> None:
    """`WHITESPACE` is written out (computing it at import is slow); it must stay complete."""
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert every == WHITESPACE
