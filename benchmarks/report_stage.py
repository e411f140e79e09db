"""Time the report stage alone: render a finished run's report from its ledger, several times.

    python benchmarks/report_stage.py [--rows N] [--shape narrow|wide] [--old-tags]
                                      [--format csv|xlsx|jsonl] [-n RUNS] [--one] [--compare]

The first call makes the run once (the same generated file as `million.py`, sent to the embedded
sandbox) and keeps its ledger under benchmarks/out/report-stage-<N>/; every call then renders
the report from that ledger `-n` times in this process, as a run's report stage does (the
runner's `_report`: rows, counting, the file) and prints each time, then min and median, and the
process's peak RSS (the helper's is not counted: about 31 MiB). A report is written by two
processes, as a run writes it; `--one` keeps it to this one (see batcher/app/rendering.py).
Quicker to iterate on than a whole run, and the ledger is the same each time.

`--compare` renders XLSX and CSV in turn, `-n` times each, and prints XLSX/CSV: alternating in
one process keeps a busy machine's swings out of the ratio as far as can be. Each rendering also
shows the helper's CPU seconds: on a machine shared with other work, the larger of the two
processes' CPU seconds is the steadier figure of what the stage costs on an idle one.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import LOCATION, OUT, TOKEN, UNTHROTTLED
from million import make_fixture, make_input

from batcher.app.rendering import Split
from batcher.app.result import pending_message
from batcher.app.stages.report import tallied
from batcher.state import Ledger


def finished_ledger(rows: int, shape: str, old_tags: bool = False) -> Path:
    """The ledger of a finished run over `rows` generated rows, made on the first call (with
    `old_tags`, against contacts with tags of their own: answers that differ by contact)."""
    name = f"report-stage-{rows}" if shape == "narrow" else f"report-stage-{shape}-{rows}"
    work = OUT / (name + ("-old-tags" if old_tags else ""))
    found = sorted((work / ".batcher").glob("run-*.sqlite"))
    if found:
        return found[0]
    work.mkdir(parents=True, exist_ok=True)
    (work / "batcher.toml").write_text(UNTHROTTLED, encoding="utf-8")
    (work / "batcher.toml").chmod(0o600)
    source = make_input(rows, shape)
    if old_tags:
        fixture = make_fixture(source)
        (work / "batcher.toml").write_text(
            UNTHROTTLED + f'fixture = "{fixture}"\n', encoding="utf-8"
        )
    argv = [sys.executable, "-m", "batcher", "run", str(source), "--sandbox", "-q",
            "--action", "add", "--tags", "vip,2026-promo", "--location-id", LOCATION,
            "--report", "report.csv", "--yes"]  # fmt: skip
    subprocess.run(argv, cwd=work, env={**os.environ, "BATCHER_TOKEN": TOKEN}, check=True)
    return sorted((work / ".batcher").glob("run-*.sqlite"))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shape", choices=("narrow", "wide"), default="narrow")
    parser.add_argument("--old-tags", action="store_true", help="as million.py's")
    parser.add_argument("--format", choices=("csv", "xlsx", "jsonl"), default="csv")
    parser.add_argument("-n", type=int, default=3, help="renderings to time")
    parser.add_argument("--one", action="store_true", help="render in this process alone")
    parser.add_argument("--compare", action="store_true", help="XLSX and CSV in turn: the ratio")
    args = parser.parse_args()
    path = finished_ledger(args.rows, args.shape, args.old_tags)
    ledger = Ledger.reader(path)
    formats = ("xlsx", "csv") if args.compare else (args.format,)
    times: dict[str, list[float]] = {name: [] for name in formats}
    for _ in range(args.n):
        for name in formats:
            report = path.parent.parent / f"report-stage.{name}"
            started, cpu, helper = time.perf_counter(), time.process_time(), _children_cpu()
            result = tallied(
                ledger,
                report,
                pending_message(None),
                {},
                summary=lambda tallied: {},
                split=None if args.one else Split(),
                notify=print,
            )
            times[name].append(time.perf_counter() - started)
            counts = ", ".join(f"{status} {n:,}" for status, n in result.counts.items())
            print(
                f"{name} report {times[name][-1]:.2f} s (CPU {time.process_time() - cpu:.2f} s, "
                f"the helper's {_children_cpu() - helper:.2f} s): {counts}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, taken in times.items():
        print(
            f"{args.rows:,} rows, {name}: min {min(taken):.2f} s, "
            f"median {statistics.median(taken):.2f} s"
        )
    if args.compare:
        medians = {name: statistics.median(taken) for name, taken in times.items()}
        print(
            f"XLSX {medians['xlsx'] / medians['csv']:.2f}x CSV (medians), "
            f"{min(times['xlsx']) / min(times['csv']):.2f}x (minimums)"
        )
    print(f"peak RSS {peak:.0f} MiB")


def _children_cpu() -> float:
    """CPU seconds of this process's children so far (the helpers it waited for)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


if __name__ == "__main__":
    main()
