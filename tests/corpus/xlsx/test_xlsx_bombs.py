"""Hostile workbooks end fast in exit 2 naming the place, their time and memory bounded by the
kernel: `batcher plan` runs in a child whose address space (RLIMIT_AS) and CPU time
(RLIMIT_CPU) are limited, so a bomb that is read instead of refused fails by being killed.

The limits are far above what these refusals take (a plan of a normal workbook runs within
them: the first test) and far below what reading the bombs took before they were refused
(`benchmarks/bombs_xlsx.py` prints both). Made on the fly (`xlsx_make.py`), never committed.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import xlsx_make

CORPUS = Path(__file__).resolve().parent
MIB = 1 << 20
ADDRESS_SPACE = 512 * MIB  # a normal plan's whole address space stays below this
CPU_S = 20  # the refusals take a second of CPU or less


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_S, CPU_S))


def plan(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`batcher plan` of `path` in a child limited as above."""
    argv = [sys.executable, "-m", "batcher", "plan", str(path), "--action", "add"]
    argv += ["--tags", "vip", "--location-id", "L" * 20]
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, preexec_fn=limited, timeout=300
    )


def test_a_normal_workbook_plans_within_the_limits(tmp_path: Path) -> None:
    """The limits leave room for a real plan: xlsxwriter's contact list plans (exit 0)."""
    done = plan(CORPUS / "producers" / "xlsxwriter.xlsx", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "to send" in done.stdout


ZIP_BOMB = (
    "inflates to {}, more than input.max_inflate_ratio (100) times the file's size: refused as a "
    "zip bomb (if the workbook is genuine, raise input.max_inflate_ratio, or save the sheet as CSV)"
)
PADDING = 256 * 1024  # a picture that does not compress: the parts may inflate to 25 MiB

BOMBS: list[tuple[str, Callable[[Path], Path], str]] = [
    (
        "a 110 MiB row of cells in a 0.3 MB file",
        lambda p: xlsx_make.long_row(p, 110 * MIB),
        "xl/sheets/sheet1.xml " + ZIP_BOMB.format("110 MiB"),
    ),
    (
        "a 282 MiB styles part in a 0.4 MB file",
        lambda p: xlsx_make.styles_bomb(p, 282 * MIB),
        "xl/styles.xml " + ZIP_BOMB.format("282 MiB"),
    ),
    (
        "a 2 MiB header cell in a 3 KB file",
        lambda p: xlsx_make.long_cell(p, 2 * MIB, header=True),
        "xl/sheets/sheet1.xml " + ZIP_BOMB.format("2 MiB"),
    ),
    (
        "a 5 MiB header cell in a file that may inflate to 25 MiB",
        lambda p: xlsx_make.long_cell(p, 5 * MIB, header=True, padding=PADDING),
        "sheet 'S' cell C1 holds 5,242,880 characters, more than input.max_cell_kb (4,096 KiB "
        "of text; Excel's own cells stop at 32,767 characters): shorten it, or raise "
        "input.max_cell_kb",
    ),
    (
        "a 5 MiB shared string in a file that may inflate to 25 MiB",
        lambda p: xlsx_make.long_string(p, 5 * MIB, padding=PADDING),
        "the workbook's shared string 0 holds 5,242,880 characters, more than input.max_cell_kb "
        "(4,096 KiB of text; Excel's own cells stop at 32,767 characters): shorten it, or raise "
        "input.max_cell_kb",
    ),
    (
        "a row of 700,000 cells (15 MiB)",
        lambda p: xlsx_make.long_row(p, 15 * MIB, padding=PADDING),
        "sheet 'S' row 2 has more cells than a row has columns (16,384): open the file in Excel "
        "and save it again",
    ),
    (
        "a row of 17 MiB that compresses as real data does",
        lambda p: xlsx_make.random_row(p, 17 * MIB),
        "sheet 'S' row 2 is over 16 MiB of XML, more than one row or string may take "
        "(input.max_line_kb)",
    ),
    (
        "262,145 cell formats",
        lambda p: xlsx_make.many_formats(p, (1 << 18) + 1),
        "xl/styles.xml has more than 262,144 cell formats (Excel allows 64,000); open the "
        "workbook in Excel and save it again",
    ),
]


@pytest.mark.parametrize(("what", "make", "refusal"), BOMBS, ids=[b[0] for b in BOMBS])
def test_a_bomb_is_refused_in_one_line_within_the_limits(
    tmp_path: Path, what: str, make: Callable[[Path], Path], refusal: str
) -> None:
    """Each bomb ends in exit 2 and one line naming the file and the place, within the limits."""
    path = make(tmp_path / "bomb.xlsx")
    done = plan(path, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"batcher: error: {path}: {refusal}\n"


def test_a_styles_part_of_millions_of_elements_is_streamed(tmp_path: Path) -> None:
    """A styles part within the inflation check (16 MiB of 2.4 million empty fonts, which
    Python's XML tree held in 261 MiB) is streamed: the plan ends normally within the limits."""
    path = xlsx_make.styles_bomb(tmp_path / "styles.xlsx", 16 * MIB, padding=PADDING)
    done = plan(path, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "to send" in done.stdout
