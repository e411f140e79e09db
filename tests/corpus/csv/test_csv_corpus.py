"""The CSV corpus: every file is read cell for cell as expected, or refused in one line.

- `spectrum/`: csv-spectrum's edge cases (real files, BSD-2-Clause, see spectrum/LICENSE), each
  checked against csv-spectrum's own JSON of its values; the id is column `a` (or the file's
  first column), so the rows are read, not sent.
- `made/`: files in the shapes Excel, Google Sheets, LibreOffice and CRM exports write (made by
  make_files.py, see README.md), each with `<name>.expected.json`: cases of options and then
  the columns, each row's line and cells (and tags, invalid rows, the reading phrase), or the
  start of the refusal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batcher.domain.errors import InputError, UsageError
from batcher.domain.models import Row, Status
from batcher.loading import InputOptions, InputTable, open_input

HERE = Path(__file__).resolve().parent
SPECTRUM = HERE / "spectrum"
MADE = HERE / "made"
LOCATION = "LocLocLocLocLocLoc01"


def rows_of(table: InputTable) -> list[Row]:
    return [row for chunk in table.chunks() for row in chunk]


def options_of(given: dict[str, Any]) -> InputOptions:
    values = dict(given)
    if "tags" in values:
        values["tags"] = tuple(values["tags"])
    values.setdefault("default_location_id", LOCATION)
    return InputOptions(**values)


@pytest.mark.parametrize("name", sorted(p.stem for p in (SPECTRUM / "csvs").glob("*.csv")))
def test_csv_spectrum_file_reads_as_its_json(name: str) -> None:
    """Each csv-spectrum case reads as csv-spectrum's JSON says, cell for cell."""
    expected = json.loads((SPECTRUM / "json" / f"{name}.json").read_text(encoding="utf-8"))
    if isinstance(expected, dict):
        expected = [expected]
    if name == "location_coordinates":
        # csv-spectrum's JSON gives another phone number than its CSV holds (1234567890).
        expected[0]["Contact Phone Number"] = "2095257564"
    header = list(expected[0])
    options = InputOptions(
        id_column=header[0], action="add", tags=("x",), default_location_id=LOCATION
    )
    table = open_input(SPECTRUM / "csvs" / f"{name}.csv", options)
    assert list(table.columns) == header
    assert [dict(zip(header, row.extra, strict=True)) for row in rows_of(table)] == expected


def made_cases() -> list[Any]:
    cases = []
    for expected in sorted(MADE.glob("*.expected.json")):
        document = json.loads(expected.read_text(encoding="utf-8"))
        name = expected.name.removesuffix(".expected.json")
        for number, case in enumerate(document["cases"]):
            cases.append(pytest.param(name, case, id=f"{name}-{number}"))
    return cases


@pytest.mark.parametrize(("name", "case"), made_cases())
def test_made_file_reads_as_expected_or_is_refused(name: str, case: dict[str, Any]) -> None:
    """A producer's shape is read cell for cell as written, or refused with one clear line."""
    path = MADE / name
    options = options_of(case["options"])
    if "refused" in case:
        with pytest.raises((InputError, UsageError)) as info:
            rows_of(open_input(path, options))
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: {case['refused']}")
        assert case.get("shows", "") in message
        return
    table = open_input(path, options)
    rows = rows_of(table)
    assert list(table.columns) == case["columns"]
    assert [{"line": row.line, "cells": list(row.extra)} for row in rows] == case["rows"]
    assert case["reading"] in table.reading
    if "tags" in case:
        assert [list(row.tags) for row in rows] == case["tags"]
    invalid = [row.row for row in rows if row.status is Status.INVALID]
    assert invalid == case.get("invalid", [])
