"""Time and peak memory of `batcher plan` and `run` on a large XLSX, against calamine alone.

    python benchmarks/excel.py [--rows N] [--shared-strings] [--no-run]
                                                 (default 1,048,575 rows: a full Excel sheet)

One generated workbook (cached under benchmarks/out/), columns Contact Id, Name, Email, Phone,
Tags as a HighLevel contact export has them (ids as text cells): by default written row by row by
xlsxwriter (inline strings); with --shared-strings, every text in xl/sharedStrings.xml as Excel
saves it (5.2 million unique strings: the shared-strings table batcher must hold). Measurements,
each a fresh process whose own peak RSS comes from wait4:

- calamine: the baseline issue 12 names: python-calamine opens the workbook and walks the first
  sheet with `iter_rows`, keeping nothing (calamine parses the sheet whole into Rust memory
  first, hence its peak); batcher streams the sheet instead (batcher/loading/_xlsx.py);
- `batcher plan FILE --action add --tags x --location-id ...`: reading, checking, grouping;
  and the same `plan` on the same rows written as CSV, to tell Excel's own cost from the rest;
- `batcher run --base-url ... --report out.csv -q --yes` against a sandbox in another process,
  unthrottled, the client's own pacing lifted (as in million.py), so the figures are batcher's
  own cost, not the API's rate limit nor the emulator's memory.
Ratios are batcher / calamine. Targets (issue 12): plan and run peak RSS <= 250 MiB, plan time
<= 1.5x calamine's walk.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import string
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from common import LOCATION, OUT, TOKEN, UNTHROTTLED, external_sandbox, run_child

EXCEL_ROWS = 1_048_575  # a sheet's 1,048,576 rows, one of them the header
WALK = """
import sys
from python_calamine import CalamineWorkbook

with CalamineWorkbook.from_path(sys.argv[1]) as book:
    rows = 0
    for _ in book.get_sheet_by_index(0).iter_rows():
        rows += 1
print(rows)
"""
TAGS = ["vip", "newsletter", "lead, warm", "customer", "2026-promo", ""]


def contacts(rows: int) -> Iterator[list[str]]:
    """The header and `rows` generated contacts (the same every time)."""
    rng = random.Random(42)
    alphabet = string.ascii_letters + string.digits
    yield ["Contact Id", "Name", "Email", "Phone", "Tags"]
    for n in range(1, rows + 1):
        contact_id = "".join(rng.choices(alphabet, k=20))
        phone = f"+1555{rng.randrange(10**7):07d}"
        yield [contact_id, f"Name {n}", f"p{n}@example.com", phone, TAGS[n % len(TAGS)]]


def make_input(rows: int, shared: bool = False) -> tuple[Path, Path]:
    """The workbook (xlsxwriter's constant_memory mode: row by row, inline strings; or, `shared`,
    shared strings as Excel writes them) and the same rows as CSV."""
    xlsx = OUT / f"contacts-{rows}{'-shared' if shared else ''}.xlsx"
    if shared and not xlsx.exists():
        write_shared(xlsx, rows)
    elif not xlsx.exists():
        import xlsxwriter  # only to generate the file

        partial = xlsx.with_suffix(".partial.xlsx")
        book = xlsxwriter.Workbook(str(partial), {"constant_memory": True})
        sheet = book.add_worksheet("Contacts")
        for n, cells in enumerate(contacts(rows)):
            for c, text in enumerate(cells):
                sheet.write_string(n, c, text)
        book.close()
        partial.rename(xlsx)
    same = OUT / f"contacts-{rows}-as-xlsx.csv"
    if not same.exists():
        partial = same.with_suffix(".partial")
        with partial.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(contacts(rows))
        partial.rename(same)
    return xlsx, same


def write_shared(path: Path, rows: int) -> None:
    """The rows as Excel saves them: every text in xl/sharedStrings.xml, the cells pointing into
    it (`t="s"`). Written part by part (xlsxwriter would hold every cell in memory first); each
    text is its own shared string, as a sheet of unique ids, names, emails and phones has."""
    from xml.sax.saxutils import escape

    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rels = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    partial = path.with_suffix(".partial.xlsx")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{package}"><Relationship Id="rId1" '
            f'Type="{rels}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{main}" xmlns:r="{rels}"><sheets>'
            '<sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{package}">'
            f'<Relationship Id="rId1" Type="{rels}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{rels}/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>",
        )
        with z.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            fh.write(f'<sst xmlns="{main}">'.encode())
            for cells in contacts(rows):
                fh.write("".join(f"<si><t>{escape(t)}</t></si>" for t in cells).encode())
            fh.write(b"</sst>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            fh.write(f'<worksheet xmlns="{main}"><sheetData>'.encode())
            index = 0
            for n, cells in enumerate(contacts(rows), start=1):
                row = "".join(
                    f'<c r="{col}{n}" t="s"><v>{index + k}</v></c>' for k, col in enumerate("ABCDE")
                )
                index += len(cells)
                fh.write(f'<row r="{n}">{row}</row>'.encode())
            fh.write(b"</sheetData></worksheet>")
    partial.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=EXCEL_ROWS, help="data rows (default: %(default)s)"
    )
    parser.add_argument("--no-run", action="store_true", help="measure calamine and plan only")
    parser.add_argument(
        "--shared-strings",
        action="store_true",
        help="a workbook with shared strings, as Excel saves one (default: inline strings)",
    )
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    source, same_csv = make_input(args.rows, args.shared_strings)
    work = OUT / "excel-run"
    work.mkdir(exist_ok=True)
    (work / "batcher.toml").write_text(UNTHROTTLED, encoding="utf-8")
    env = {**os.environ, "BATCHER_TOKEN": TOKEN}
    options = ["--action", "add", "--tags", "x", "--location-id", LOCATION]

    walk = run_child([sys.executable, "-c", WALK, str(source)], work, env)
    plan = run_child([sys.executable, "-m", "batcher", "plan", str(source), *options], work, env)
    plan_csv = run_child(
        [sys.executable, "-m", "batcher", "plan", str(same_csv), *options], work, env
    )
    run = None
    if not args.no_run:
        with external_sandbox() as url:
            run = run_child(
                [sys.executable, "-m", "batcher", "run", str(source), "--base-url", url,
                 "--fresh", "--report", "out.csv", "--yes", *options],
                work, env,
            )  # fmt: skip

    print(f"input: {args.rows:,} rows, {source.stat().st_size / 2**20:.0f} MiB ({source})")
    print(
        f"calamine alone, iter_rows:       {walk.seconds:6.2f} s  peak RSS {walk.peak_mib:5.0f} MiB"
    )
    figures: dict[str, float] = {
        "rows": args.rows,
        "calamine_s": round(walk.seconds, 2),
        "calamine_peak_mib": round(walk.peak_mib),
    }
    labels = {"plan": "plan", "plan_csv": "plan, same rows as CSV", "run": "run --base-url"}
    for name, m in (("plan", plan), ("plan_csv", plan_csv), ("run", run)):
        if m is None:
            continue
        print(
            f"batcher {labels[name] + ':':<23} {m.seconds:6.2f} s  peak RSS {m.peak_mib:5.0f} MiB  "
            f"{m.seconds / walk.seconds:4.2f}x calamine's time  "
            f"{m.peak_mib / walk.peak_mib:4.2f}x its memory  {args.rows / m.seconds:,.0f} rows/s"
        )
        figures[f"{name}_s"] = round(m.seconds, 2)
        figures[f"{name}_peak_mib"] = round(m.peak_mib)
        figures[f"{name}_time_ratio"] = round(m.seconds / walk.seconds, 2)
    print(json.dumps(figures))
    if run is not None:
        print(run.output, end="")


if __name__ == "__main__":
    main()
