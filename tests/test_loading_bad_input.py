"""batcher.loading on hostile input: it reads the file or says why, never anything else."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batcher.domain.errors import InputError, UsageError
from batcher.domain.models import Row, Status
from batcher.loading import Caps, InputOptions, InputTable, open_input

ID1 = "AbCdEfGhIj0123456789"
ID2 = "ZyXwVuTsRq9876543210"
LOC = "LocLocLocLocLocLoc01"
OPTIONS = InputOptions(action="add", default_location_id=LOC)
FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def read_all(path: Path, options: InputOptions = OPTIONS) -> list[Row]:
    """open_input + every chunk; only batcher's own errors may come out."""
    try:
        table = open_input(path, options)
        return [row for chunk in table.chunks() for row in chunk]
    except (InputError, UsageError):
        return []


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def open_error(path: Path, **options: Any) -> str:
    with pytest.raises(InputError) as info:
        open_input(path, InputOptions(**options))
    return str(info.value)


def rows_of(table: InputTable) -> list[Row]:
    return [row for chunk in table.chunks() for row in chunk]


# --- arbitrary input -------------------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_anything_but_batchers_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name in ("in.csv", "in.tsv", "in.csv.gz"):
            read_all(write(Path(folder) / name, data))


@FAST
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_after_a_good_header_never_raise_anything_but_batchers_errors(
    data: bytes,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "in.csv", b"contact_id,tags,action\n" + data)
        read_all(path, InputOptions(default_location_id=LOC))
        read_all(path, InputOptions(default_location_id=LOC, encoding="utf-8"))


@FAST
@given(cells=st.lists(st.lists(st.text(max_size=20), min_size=3, max_size=3), max_size=8))
def test_arbitrary_cell_text_written_as_csv_is_read_back_or_refused(
    cells: list[list[str]],
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["contact_id", "tags", "action"])
    writer.writerows(cells)
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "in.csv", buffer.getvalue().encode("utf-8", "surrogatepass"))
        rows = read_all(path, InputOptions(default_location_id=LOC))
        assert len(rows) <= len(cells)


# --- named cases -----------------------------------------------------------------------------


def test_a_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "in.csv"
    folder.mkdir()
    assert open_error(folder) == f"{folder}: is a directory, not a CSV or Excel file"


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", b"")
    assert open_error(path) == f"{path}: the file is empty"


def test_a_header_only_file_opens_without_rows(tmp_path: Path) -> None:
    table = open_input(write(tmp_path / "in.csv", "contact_id,tags,action\r\n"), OPTIONS)
    assert (table.has_rows, rows_of(table)) == (False, [])


def test_nul_bytes_in_a_text_file_are_refused_as_binary(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,tags\n{ID1},a\x00b\n")
    assert open_error(path, action="add").startswith(f"{path}: is binary, not CSV text")


def test_a_nul_byte_past_the_sample_is_refused_as_one_in_the_sample_is(tmp_path: Path) -> None:
    """A NUL anywhere in the file makes it binary, as one in its first 64 KiB does, naming the
    line: nothing of it is sent."""
    text = "contact_id,tags\n" + f"{ID1},x\n" * 20_000 + f"{ID2},a\x00b\n"
    path = write(tmp_path / "in.csv", text)
    assert open_error(path, action="add") == (
        f"{path}: is binary, not CSV text (a NUL byte on line 20002); give a CSV or Excel file "
        "(or name its encoding, e.g. --encoding utf-16, for UTF-16 without a BOM)"
    )


def test_a_10_mb_cell_is_read_when_the_cap_allows_it(tmp_path: Path) -> None:
    """A cell under input.max_cell_kb is read whole, however long."""
    big = "n" * 10_000_000
    path = write(tmp_path / "in.csv", f'contact_id,note,tags\n{ID1},"{big}",x\n{ID2},s,y\n')
    options = dataclasses.replace(OPTIONS, caps=Caps(cell_chars=16 * 2**20))
    rows = rows_of(open_input(path, options))
    assert [(r.contact_id, len(r.extra[1]), r.line) for r in rows] == [
        (ID1, 10_000_000, 2),
        (ID2, 1, 3),
    ]


def test_a_cell_over_the_cap_is_refused_naming_its_line(tmp_path: Path) -> None:
    """A cell longer than input.max_cell_kb (default 4 MiB) stops the run naming its line."""
    big = "n" * 5_000_000
    path = write(tmp_path / "in.csv", f'contact_id,note,tags\n{ID1},s,x\n{ID2},"{big}",y\n')
    assert open_error(path, action="add") == (
        f"{path}: line 3: a cell is longer than input.max_cell_kb (4,096 KiB of text): not a "
        "contact list's cell (a quote opened there and never closed makes one cell of the "
        "rest); fix the file (or raise input.max_cell_kb)"
    )


def test_10000_columns_are_read(tmp_path: Path) -> None:
    header = ["contact_id", "tags"] + [f"c{i}" for i in range(9998)]
    values = [ID1, "x"] + [str(i) for i in range(9998)]
    path = write(tmp_path / "in.csv", ",".join(header) + "\n" + ",".join(values) + "\n")
    table = open_input(path, OPTIONS)
    [row] = rows_of(table)
    assert (len(table.columns), len(row.extra), row.extra[-1]) == (10_000, 10_000, "9997")


def test_id_and_contact_id_both_present_prefers_contact_id(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"id,contact_id,tags\n123,{ID1},x\n")
    table = open_input(path, OPTIONS)
    assert (table.id_column, [r.contact_id for r in rows_of(table)]) == ("contact_id", [ID1])


def test_two_contact_id_columns_use_the_first(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,tags,Contact ID\n{ID1},x,{ID2}\n")
    table = open_input(path, OPTIONS)
    [row] = rows_of(table)
    assert (table.id_column, row.contact_id, row.extra) == ("contact_id", ID1, (ID1, "x", ID2))


def test_a_password_protected_xlsx_is_refused(tmp_path: Path) -> None:
    data = bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 2000
    data += "EncryptionInfo".encode("utf-16-le")
    path = write(tmp_path / "locked.xlsx", data)
    assert "password-protected (encrypted) workbook" in open_error(path, action="add")


def test_commas_quotes_and_line_breaks_inside_quoted_tags_cells(tmp_path: Path) -> None:
    text = f'contact_id,tags\n{ID1},"a, ""quoted"" b,c"\n{ID2},"multi\nline, tag"\n{ID1},after\n'
    rows = rows_of(open_input(write(tmp_path / "in.csv", text), OPTIONS))
    assert [(r.line, r.tags, r.status) for r in rows] == [
        (2, ("a", '"quoted" b', "c"), None),
        (3, ("multi\nline", "tag"), Status.INVALID),
        (5, ("after",), None),
    ]
    assert rows[1].message == 'tag "multi\\u000aline" contains a control character'


def test_a_utf16_file_with_a_bom_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,tags\n{ID1},Über\n\n{ID2},x\n".encode("utf-16"))
    rows = rows_of(open_input(path, OPTIONS))
    assert [(r.line, r.tags) for r in rows] == [(2, ("Über",)), (4, ("x",))]


def test_a_utf16_file_without_a_bom_is_refused_as_binary(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", f"contact_id,tags\n{ID1},x\n".encode("utf-16-le"))
    assert open_error(path, action="add").startswith(f"{path}: is binary, not CSV text")


def test_a_gzip_that_is_not_gzip_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv.gz", f"contact_id,tags\n{ID1},x\n")
    assert open_error(path, action="add") == (
        f"{path}: not a gzip file (Not a gzipped file (b'co')); give a .csv.gz made by gzip"
    )


def test_a_gzip_holding_binary_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv.gz", gzip.compress(b"\x00\x01\x02" * 10))
    assert open_error(path, action="add").startswith(f"{path}: is binary, not CSV text")
