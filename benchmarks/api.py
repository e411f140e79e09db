"""Time and peak memory of the Python API (`batcher.apply`) against `batcher run` on the same rows.

    python benchmarks/api.py [--rows N]      (default 200,000 rows)

Three measurements, each a fresh process against the embedded sandbox, unthrottled (the
figures are batcher's own cost, not the API's rate limit):

- baseline: `batcher run --sandbox` on a CSV file of the rows, writing its report;
- `batcher.apply(rows, sandbox=True)` on the same rows as a list of dicts (made in the process
  from the same file with the csv module: the time to make them is counted, as a script's is);
- `batcher.apply(frame, sandbox=True)` on the same rows as a pandas DataFrame (read with
  pandas, all cells as text).
Both API calls return every row's result in memory and write no report. Ratios are API /
baseline, each the wall time and peak RSS of its whole process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from common import LOCATION, OUT, UNTHROTTLED, Measured, run_child
from million import make_input

API_CALL = """
import csv, sys, time
import batcher

source, kind = sys.argv[1], sys.argv[2]
if kind == "dicts":
    with open(source, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
else:
    import pandas
    rows = pandas.read_csv(source, dtype=str, keep_default_na=False)
results = batcher.apply(rows, action="add", tags=["vip", "2026-promo"], location_id=sys.argv[3],
                        sandbox=True, config="batcher.toml", fresh=True)
assert len(results) == len(rows) and results.counts["success"] == len(rows), results
print("rows", len(results), "run", results.run.seconds)
"""


def fresh_folder() -> Path:
    work = OUT / "api"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "batcher.toml").write_text(UNTHROTTLED, encoding="utf-8")
    (work / "batcher.toml").chmod(0o600)
    return work


def run_cli(source: Path) -> Measured:
    argv = [sys.executable, "-m", "batcher", "run", str(source), "--sandbox", "-q", "--yes",
            "--action", "add", "--tags", "vip,2026-promo", "--location-id", LOCATION,
            "--report", "report.csv"]  # fmt: skip
    return run_child(argv, fresh_folder(), dict(os.environ))


def run_api(source: Path, kind: str) -> Measured:
    argv = [sys.executable, "-c", API_CALL, str(source), kind, LOCATION]
    return run_child(argv, fresh_folder(), dict(os.environ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    rows = parser.parse_args().rows
    OUT.mkdir(exist_ok=True)
    source = make_input(rows)
    baseline = run_cli(source)
    print(f"{rows:,} rows, the embedded sandbox unthrottled")
    print(
        f"  batcher run --sandbox (report)  {baseline.seconds:6.1f} s  {baseline.peak_mib:7.0f} MiB"
    )
    for kind, label in (("dicts", "apply(list of dicts)"), ("frame", "apply(DataFrame)")):
        measured = run_api(source, kind)
        print(
            f"  {label:<31} {measured.seconds:6.1f} s  {measured.peak_mib:7.0f} MiB"
            f"   x{measured.seconds / baseline.seconds:.2f} time, "
            f"x{measured.peak_mib / baseline.peak_mib:.2f} memory"
        )


if __name__ == "__main__":
    main()
