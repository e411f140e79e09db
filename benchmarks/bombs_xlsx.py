"""Time and peak memory of `batcher plan` on hostile workbooks, against a normal one.

    python benchmarks/bombs_xlsx.py [--no-series]

The bombs of issue 21, made on the fly under benchmarks/out/bombs/ (a few of them take seconds
to make; none is committed) by tests/corpus/xlsx/xlsx_make.py: each must end in exit 2 naming
the place, in about the time and memory of a normal plan (the baseline: the contact list
xlsxwriter wrote, tests/corpus/xlsx/producers/xlsxwriter.xlsx). Before Step 10 they took:
8/16/32 MB rows 2.9/7.7/28 s (quadratic), a 1.1 GB row never finished, a 2.8 MB styles bomb
ended in MemoryError.

The series then reads one long cell, or one long shared string, of 8 to 64 MiB of text that does
not compress (so that no check refuses it; input.max_cell_kb and input.max_line_kb raised to
128 MiB): the time per MiB must stay flat, each doubling of the size about doubling the time
(linear in the inflated size; it quadrupled before).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from common import LOCATION, OUT, run_child

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "corpus" / "xlsx"))

import xlsx_make  # noqa: E402 - tests/corpus/xlsx makes the bombs for the tests too

MIB = 1 << 20
PADDING = 256 * 1024  # a picture that does not compress: the parts may inflate to 25 MiB
BOMBS: list[tuple[str, Callable[[Path], Path]]] = [
    ("1,100 MiB row of small cells", lambda p: xlsx_make.long_row(p, 1100 * MIB)),
    ("2,800 MiB styles part", lambda p: xlsx_make.styles_bomb(p, 2800 * MIB)),
    ("282 MiB styles part", lambda p: xlsx_make.styles_bomb(p, 282 * MIB)),
    ("32 MiB data cell", lambda p: xlsx_make.long_cell(p, 32 * MIB)),
    ("2 MiB header cell", lambda p: xlsx_make.long_cell(p, 2 * MIB, header=True)),
    ("8 MiB shared string", lambda p: xlsx_make.long_string(p, 8 * MIB)),
    (
        "5 MiB header cell, padded",
        lambda p: xlsx_make.long_cell(p, 5 * MIB, header=True, padding=PADDING),
    ),
    ("5 MiB shared string, padded", lambda p: xlsx_make.long_string(p, 5 * MIB, padding=PADDING)),
    ("15 MiB row of 700,000 cells", lambda p: xlsx_make.long_row(p, 15 * MIB, padding=PADDING)),
    ("17 MiB row of random numbers", lambda p: xlsx_make.random_row(p, 17 * MIB)),
    ("262,145 cell formats", lambda p: xlsx_make.many_formats(p, (1 << 18) + 1)),
    (
        "16 MiB styles of 2.4 M fonts",
        lambda p: xlsx_make.styles_bomb(p, 16 * MIB, padding=PADDING),
    ),
]


def made(name: str, make: Callable[[Path], Path]) -> Path:
    """The bomb, made once (its name says what it is)."""
    folder = OUT / "bombs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name.replace(" ", "-").replace(",", "") + ".xlsx")
    if not path.exists():
        partial = path.with_suffix(".partial.xlsx")
        make(partial)
        partial.rename(path)
    return path


def plan(path: Path, env: dict[str, str], expect: int) -> tuple[float, float, str]:
    argv = [sys.executable, "-m", "batcher", "plan", str(path), "--action", "add"]
    argv += ["--tags", "x", "--location-id", LOCATION]
    work = OUT / "bombs-run"
    work.mkdir(parents=True, exist_ok=True)
    measured = run_child(argv, work, env, expect=expect)
    last = measured.output.strip().splitlines()[-1] if expect else "read"
    return measured.seconds, measured.peak_mib, last.replace(f"batcher: error: {path}: ", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-series", action="store_true", help="the bombs only")
    args = parser.parse_args()
    env = dict(os.environ)
    base_s, base_mib, _ = plan(ROOT / "tests/corpus/xlsx/producers/xlsxwriter.xlsx", env, 0)
    print(f"baseline, a normal workbook's plan: {base_s:5.2f} s  {base_mib:4.0f} MiB peak")
    for name, make in BOMBS:
        path = made(name, make)
        code = 0 if name.startswith("16 MiB styles") else 2
        seconds, peak, said = plan(path, env, code)
        size = path.stat().st_size / 1024
        print(
            f"{name:30} {size:8,.0f} KiB file: exit {code}  {seconds:5.2f} s "
            f"({seconds / base_s:4.2f}x)  {peak:4.0f} MiB ({peak / base_mib:4.2f}x)  {said[:90]}"
        )
    if args.no_series:
        return
    raised = {
        **env,
        "BATCHER_INPUT_MAX_CELL_KB": str(128 * 1024),
        "BATCHER_INPUT_MAX_LINE_KB": str(128 * 1024),
    }
    for shared in (False, True):
        previous = 0.0
        for size in (8, 16, 32, 64):
            kind = "shared string" if shared else "inline cell"
            path = made(
                f"{size} MiB random {kind}",
                lambda p, s=size, sh=shared: xlsx_make.random_cell(p, s * MIB, shared=sh),
            )
            seconds, peak, _ = plan(path, raised, 0)
            reading = seconds - base_s  # the plan's own cost aside
            doubled = f"{reading / previous:4.2f}x the half size's" if previous else " " * 22
            previous = reading
            print(
                f"{size:3} MiB {kind:13} read: {seconds:5.2f} s, {reading / size * 1000:4.0f} ms "
                f"a MiB, {doubled} (linear: 2, quadratic: 4)  {peak:4.0f} MiB peak"
            )


if __name__ == "__main__":
    main()
