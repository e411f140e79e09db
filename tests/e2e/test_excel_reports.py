"""The same rows as CSV and as an Excel sheet give the same report, byte for byte."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.loading import InputOptions

from .conftest import LOCATION, SandboxFactory, contact_ids, fast_settings

IDS = contact_ids(30, seed=5)
HEADER = ["Contact ID", "Name", "score", "tags", "action", "note"]


def rows() -> list[list[str | float | None]]:
    """Cells as an Excel user types them: numbers in `score`, None for an empty cell."""
    names = ["Zoë Brontë", "José Núñez", "Łukasz Żółw", "Ærøskøbing", "Renée O'Hara"]
    tags = ["vip, Élan", "newsletter", " lead ,warm, LEAD", "", "café,crème brûlée"]
    scores: list[float | None] = [7, 1.5, -0.25, None, 1234567]
    table: list[list[str | float | None]] = []
    for n, contact in enumerate(IDS):
        table.append(
            [
                contact,
                names[n % 5],
                scores[n % 5],
                tags[n % 5],
                "remove" if n % 7 == 3 else "add",
                None if n % 4 else "=not a formula",
            ]
        )
    table.append([IDS[0], "again", 7, "vip, Élan", "add", None])  # a duplicate of row 1
    table.append(["tooShort", "Bad Id", 2, "x", "add", "kept"])  # invalid
    return table


def as_text(value: str | float | None) -> str:
    """A cell as batcher renders it: whole numbers without `.0`, empty cells empty."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write_both(tmp_path: Path, writer: str = "xlsxwriter") -> tuple[Path, Path]:
    """The rows as CSV and as a workbook: written by xlsxwriter with shared strings (as Excel
    saves them), by xlsxwriter row by row (inline strings), or by openpyxl."""
    source_csv = tmp_path / "contacts.csv"
    with source_csv.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        out.writerows([as_text(v) for v in row] for row in rows())
    source_xlsx = tmp_path / "contacts.xlsx"
    if writer == "openpyxl":
        workbook = openpyxl.Workbook()
        active = workbook.active
        assert active is not None
        active.append(HEADER)
        for values in rows():
            active.append(values)
        for cell in active["F"]:  # openpyxl reads "=..." as a formula; the CSV has the text
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"
        workbook.save(source_xlsx)
        return source_csv, source_xlsx
    options = {"strings_to_formulas": False, "constant_memory": writer == "xlsxwriter-rows"}
    book = xlsxwriter.Workbook(str(source_xlsx), options)
    sheet = book.add_worksheet("Contacts")
    text = book.add_format({"num_format": "@"})
    sheet.set_column(0, 0, 24, text)  # the id column formatted as Text, as it should be
    sheet.write_row(0, 0, HEADER)
    for r, values in enumerate(rows(), start=1):
        for c, value in enumerate(values):
            if isinstance(value, str):
                sheet.write_string(r, c, value)
            elif value is not None:
                sheet.write_number(r, c, value)
    book.close()
    return source_csv, source_xlsx


@pytest.mark.parametrize(
    ("suffix", "writer"),
    [
        (".csv", "xlsxwriter"),
        (".jsonl", "xlsxwriter"),
        (".csv", "xlsxwriter-rows"),
        (".csv", "openpyxl"),
    ],
)
async def test_csv_and_xlsx_of_the_same_rows_give_identical_reports(
    tmp_path: Path, make_sandbox: SandboxFactory, suffix: str, writer: str
) -> None:
    source_csv, source_xlsx = write_both(tmp_path, writer)
    options = InputOptions(default_location_id=LOCATION, chunk_rows=7)
    reports = []
    for source in (source_csv, source_xlsx):
        report = tmp_path / f"{source.suffix[1:]}-report{suffix}"
        # A fresh sandbox each: the contacts start untagged for both runs alike.
        async with make_sandbox() as sandbox:
            result = await execute(
                fast_settings(tmp_path / source.suffix[1:], sandbox.url),
                Job(input_path=source, input=options, report_path=report),
            )
        assert result.exit_code == 0
        reports.append(report.read_bytes())

    assert reports[0] == reports[1]
    text = reports[0].decode("utf-8")
    assert text.count("\n") == len(rows()) + (suffix == ".csv")
    for expected in ("Zoë Brontë", "crème brûlée", "duplicate of row 1", "does not match", "1.5"):
        assert expected in text
