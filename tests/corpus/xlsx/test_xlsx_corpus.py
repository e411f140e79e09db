"""The workbook corpus, each read cell for cell as the JSON beside it says, or refused in one line.

- `calamine/`: workbooks from calamine's bug reports and tests (MIT, `calamine/LICENSE-MIT.md`,
  from github.com/tafia/calamine's `tests/`);
- `producers/`: one contact list written by xlsxwriter, openpyxl and LibreOffice Calc
  (`producers.py`);
- `handmade/`: the odd XML forms of issue 21, small (`handmade.py`).

Each reading is checked with the real block size and with blocks of 61 bytes (rows cut
anywhere), and with every block read by the XML parser instead of the fast paths: the three
agree on every file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batcher.domain.errors import InputError
from batcher.loading import _xlsx_part
from batcher.loading._excel import open_excel
from batcher.loading._xlsx import Book

CORPUS = Path(__file__).resolve().parent
WORKBOOKS = sorted(CORPUS.glob("*/*.xlsx"))


def reading(path: Path, sheet: str | None) -> dict[str, Any]:
    """How batcher reads the sheet: which sheet and why, the header, and each row with a cell
    (its sheet row, its cells as wide as the header); or the one line refusing it."""
    try:
        source = open_excel(path, sheet)
        rows = []
        for part in source.read(1000, 0):
            for n, cells in enumerate(zip(*part.columns, strict=True)):
                if any(cell.strip() for cell in cells):
                    line = part.lines + n if isinstance(part.lines, int) else part.lines[n]
                    rows.append([line, list(cells)])
    except InputError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ")
        assert "\n" not in message
        return {"sheet": sheet, "refused": message[len(f"{path}: ") :]}
    return {"sheet": sheet, "reading": source.reading, "header": source.header, "rows": rows}


def expected(path: Path) -> list[dict[str, Any]]:
    readings: list[dict[str, Any]] = json.loads(
        path.with_name(path.name + ".json").read_text(encoding="utf-8")
    )["readings"]
    return readings


def name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.fixture(params=["parser", 61, 1 << 16], ids=["parser", "block61", "block64k"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> object:
    """Every workbook is read with the real blocks, with blocks cut anywhere, and with every
    block parsed as XML (as if it held a comment): the fast paths must read what the parser
    reads."""
    if request.param == "parser":
        real = _xlsx_part.Part.blocks

        def parsed_only(self: Any) -> Any:
            return ((block, False) for block, _ in real(self))

        monkeypatch.setattr(_xlsx_part.Part, "blocks", parsed_only)
    else:
        monkeypatch.setattr(_xlsx_part, "_BLOCK", request.param)
    return request.param


@pytest.mark.parametrize("path", WORKBOOKS, ids=name)
def test_each_workbook_reads_as_expected_or_is_refused_in_one_line(path: Path, way: object) -> None:
    """Every reading of every corpus workbook is exactly the expected one: which sheet, the
    header, each row's sheet row and cells; or the refusal's one line."""
    for want in expected(path):
        assert reading(path, want["sheet"]) == want


def test_every_workbook_has_its_expected_reading_and_a_source() -> None:
    """No corpus workbook goes unchecked, and each says what it is there for."""
    assert len(WORKBOOKS) >= 30
    for path in WORKBOOKS:
        about = json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))
        assert about["about"], path
        assert about["readings"], path
    assert (CORPUS / "calamine" / "LICENSE-MIT.md").is_file()


def cells(path: Path) -> dict[int, list[str]]:
    """Every cell of a workbook's first sheet, by sheet row (no header rule)."""
    found: dict[int, list[str]] = {}
    with Book(path) as book:
        for block in book.rows(0, None):
            for n, line in enumerate(block.lines):
                found[line] = [column[n] for column in block.columns]
    return found


def test_rows_and_cells_without_r_read_as_excel_placed_them() -> None:
    """calamine issue 261: a sheet whose rows and cells have no `r` reads exactly as the copy
    Excel saved again (which numbers them all), cell for cell."""
    written = cells(CORPUS / "calamine" / "issue_261.xlsx")
    assert written == cells(CORPUS / "calamine" / "issue_261_fixed_by_excel.xlsx")
    assert len(written) > 50


REFUSED = [
    (path, want["sheet"], want["refused"])
    for path in WORKBOOKS
    for want in expected(path)
    if "refused" in want
]


@pytest.mark.parametrize(
    ("path", "sheet", "refusal"), REFUSED, ids=[f"{name(p)}:{s}" for p, s, _ in REFUSED]
)
def test_a_refused_workbook_stops_plan_with_exit_2_and_one_line(
    tmp_path: Path, path: Path, sheet: str | None, refusal: str
) -> None:
    """`batcher plan` on a refused workbook: exit 2, nothing on stdout, and one line on stderr
    naming the file and saying why."""
    try:  # a refusal below the header comes once the header has its id column
        column = next(c for c in open_excel(path, sheet).header if c)
    except InputError:
        column = "id"
    argv = [sys.executable, "-m", "batcher", "plan", str(path), "--action", "add"]
    argv += ["--tags", "vip", "--location-id", "L" * 20, "--id-column", column]
    if sheet is not None:
        argv += ["--sheet", sheet]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr == f"batcher: error: {path}: {refusal}\n"
