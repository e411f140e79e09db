"""Time and peak memory of `batcher run` on a large CSV, against a baseline of the same run.

    python benchmarks/million.py [--rows N] [--shape narrow|wide] [--old-tags] [--repeat N]
    (default 1,000,000 rows, narrow; 5000000 for 5M)

Three measurements on one generated file, each a fresh process, the sandbox unthrottled and the
client's own pacing lifted (so the figures are batcher's own cost, not the API's rate limit):

- baseline: the least any client could do: read the ids with the csv module and POST them 500 at
  a time, 8 at once, to a sandbox in another process, keeping nothing; timed just before and
  just after `run --base-url`, and the ratios taken against the mean of the two;
- `batcher run --base-url` against a sandbox in another process: the same conditions as the
  baseline, plus everything batcher does (ledger, retries, pacing, report);
- `batcher run --sandbox`: as a user runs the demo, the sandbox inside batcher's process (its
  memory and CPU then count too).
- `batcher plan` on the same file, next to pandas alone reading it (all cells as text);
- the report stage alone, from the `--base-url` run's ledger, writing CSV (two processes, as a
  run does) and XLSX, each in a fresh process.
`--shape wide` makes a CRM export's six columns (id, first and last name, email, phone, company)
instead of three short ones.
Ratios are batcher / baseline, each the wall time of its whole process (Python's start
included, as for a command a user runs). Each batcher run's stage breakdown (load, plan, send,
report) comes from its summary; its requests per second while sending are compared with the
baseline's while reading and sending (its time after Python's start).
By default every contact is new to the sandbox, so the 500 answers of a request are alike;
`--old-tags` gives the contacts tags of their own first (0 to 3 of 40), so that each answer names
its contact's old tags, as the API's do (the baseline then meets the same sandbox).
`--repeat N` times the baseline and `run --base-url` N times, alternating, and prints each ratio
and their median: on a machine whose speed swings, one ratio moves by 0.3x from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import re
import resource
import shutil
import statistics
import string
import sys
import time
from pathlib import Path

import aiohttp
from common import LOCATION, OUT, TOKEN, UNTHROTTLED, Measured, external_sandbox, run_child

# A CRM export's columns, with realistic widths (the `wide` shape).
_FIRST = (
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Charlotte",
    "Oliver",
    "Amelia",
    "Elijah",
    "Sophia",
    "Mateo",
    "Isabella",
    "Lucas",
    "Mia",
    "Levi",
    "Evelyn",
    "Asher",
    "Harper",
    "James",
)
_LAST = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Moore",
)
_COMPANY = (
    "Acme Widgets LLC",
    "Northwind Traders",
    "Globex Corporation",
    "Initech",
    "Umbrella Health Partners",
    "Stark Industrial Supply",
    "Wayne Logistics Inc.",
    "Hooli",
    "Vandelay Imports",
    "Soylent Foods Co.",
    "Cyberdyne Systems",
)


def make_input(rows: int, shape: str = "narrow") -> Path:
    """The generated CSV: `narrow` (id, first name, email) or `wide` (id, first and last name,
    email, phone, company: a CRM export's width)."""
    path = OUT / (f"contacts-{rows}.csv" if shape == "narrow" else f"contacts-{shape}-{rows}.csv")
    if path.exists():
        return path
    rng = random.Random(42)
    alphabet = string.ascii_letters + string.digits
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if shape == "narrow":
            writer.writerow(["contact_id", "first_name", "email"])
            for n in range(rows):
                contact = "".join(rng.choices(alphabet, k=20))
                writer.writerow([contact, f"Name{n}", f"p{n}@example.com"])
            return path
        writer.writerow(["contact_id", "first_name", "last_name", "email", "phone", "company"])
        for n in range(rows):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            writer.writerow(
                [
                    "".join(rng.choices(alphabet, k=20)),
                    first,
                    last,
                    f"{first.lower()}.{last.lower()}{n}@example.com",
                    f"+1 ({rng.randint(200, 999)}) 555-{rng.randint(0, 9999):04d}",
                    rng.choice(_COMPANY),
                ]
            )
    return path


def make_fixture(source: Path) -> Path:
    """The sandbox's contacts for `source`, each with 0 to 3 tags of 40 (as a CRM's contacts
    are): each contact's answer then names its own old tags, as the API's answers do, instead of
    all 500 answers of a request being alike."""
    path = OUT / f"{source.stem}-old-tags.json"
    if path.exists():
        return path
    rng = random.Random(7)
    pool = [f"tag{k:02d}" for k in range(40)]
    # Written a contact at a time: a dict of them all would raise this process's peak memory,
    # which Linux then counts in every child's peak (see run_baseline).
    with source.open(encoding="utf-8", newline="") as fh, path.open("w", encoding="utf-8") as out:
        reader = csv.reader(fh)
        next(reader)
        out.write(f'{{"locations": {{"{LOCATION}": {{')
        for n, row in enumerate(reader):
            tags = json.dumps(rng.sample(pool, rng.randint(0, 3)))
            out.write(f"{',' if n else ''}\n{json.dumps(row[0])}: {tags}")
        out.write("\n}}}\n")
    return path


def run_batcher(source: Path, command: str, *target: str, fixture: Path | None = None) -> Measured:
    work = OUT / "run"
    # No state from an earlier run: `--fresh` would keep each under a dated name (a gigabyte
    # for 5M rows), and a run looks through the kept ones when it tidies the directory.
    shutil.rmtree(work / ".batcher", ignore_errors=True)
    work.mkdir(exist_ok=True)
    sandbox = f'fixture = "{fixture}"\n' if fixture is not None else ""
    (work / "batcher.toml").write_text(UNTHROTTLED + sandbox, encoding="utf-8")
    (work / "batcher.toml").chmod(0o600)
    report = ["--report", "report.csv", "--yes"] if command == "run" else []
    # No -q: the stage times are read from the summary -q would leave out (and there is no
    # progress bar to silence: stderr is not a terminal).
    argv = [sys.executable, "-m", "batcher", command, str(source), "--fresh", *target,
            "--action", "add", "--tags", "vip,2026-promo", "--location-id", LOCATION,
            *report]  # fmt: skip
    return run_child(argv, work, {**os.environ, "BATCHER_TOKEN": TOKEN})


def stages(output: str) -> dict[str, float]:
    """The stage times of a batcher summary's `time` line: {"load": 1.2, ...}."""
    found = re.search(r"^  time +(.*)$", output, re.M)
    if found is None:
        return {}
    return {name: float(value) for name, value in re.findall(r"(\w+) ([\d.]+) s", found[1])}


# The report stage alone, as a run's (`batcher.app.stages.report.tallied`: rows, counting, the
# file; a CSV written by two processes as a run writes it), from a finished run's ledger; prints
# its seconds.
REPORT_ALONE = """
import sys, time
from pathlib import Path
from batcher.app.rendering import Split
from batcher.app.result import pending_message
from batcher.app.stages.report import tallied
from batcher.state import Ledger

ledger, report = Ledger.reader(Path(sys.argv[1])), Path(sys.argv[2])
started = time.perf_counter()
tallied(ledger, report, pending_message(None), {}, summary=lambda tallied: {}, split=Split(),
        notify=lambda text: None)
print(time.perf_counter() - started)
"""


def run_report(ledger: Path, suffix: str) -> tuple[Measured, float]:
    """The report of a finished run (its `ledger`) written alone, in a process of its own: the
    process's figures and the report stage's seconds."""
    measured = run_child(
        [sys.executable, "-c", REPORT_ALONE, str(ledger), str(OUT / "run" / f"again{suffix}")],
        OUT,
        dict(os.environ),
    )
    return measured, float(measured.output.split()[-1])


PANDAS_ALONE = """
import sys, pandas

for _ in pandas.read_csv(sys.argv[1], dtype=str, keep_default_na=False, chunksize=50_000):
    pass
"""


async def bare_client(source: Path, url: str) -> None:
    with source.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        ids = [row[0] for row in reader]
    headers = {"Authorization": f"Bearer {TOKEN}", "Version": "2021-07-28"}
    batches = iter([ids[i : i + 500] for i in range(0, len(ids), 500)])

    async def worker(session: aiohttp.ClientSession) -> None:
        for batch in batches:
            body = {"contacts": batch, "tags": ["vip", "2026-promo"], "locationId": LOCATION}
            async with session.post(
                f"{url}/contacts/bulk/tags/update/add", json=body, headers=headers
            ) as answer:
                if answer.status != 201:
                    raise SystemExit(f"baseline: HTTP {answer.status}")
                await answer.read()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(8)))


def run_baseline(source: Path, fixture: Path | None) -> tuple[Measured, float]:
    """The bare client's process (its time is the whole process's, as batcher's is), and the
    part of its time spent reading the ids and sending, measured in a process of its own.

    Not in this one: Linux counts the RSS a process had when it forked into its child's peak
    (ru_maxrss survives exec), so a benchmark holding 5M ids would inflate every later figure.
    """
    with external_sandbox(fixture) as url:
        measured = run_child(
            [sys.executable, __file__, "--bare-client", url, str(source)], OUT, dict(os.environ)
        )
    return measured, float(measured.output.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows_arg", nargs="?", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated CSV")
    parser.add_argument(
        "--old-tags",
        action="store_true",
        help="give the sandbox's contacts tags of their own, so that answers differ by contact",
    )
    parser.add_argument(
        "--shape",
        choices=("narrow", "wide"),
        default="narrow",
        help="the input's columns: narrow (id, name, email) or wide (6 columns of contact data)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time the bare client and `run --base-url` this many times, alternating, and print "
        "each ratio and their median (the other figures come from the last time)",
    )
    parser.add_argument("--bare-client", nargs=2, help=argparse.SUPPRESS)  # URL FILE
    args = parser.parse_args()
    if args.bare_client:
        url, path = args.bare_client
        started = time.perf_counter()
        asyncio.run(bare_client(Path(path), url))
        print(time.perf_counter() - started)
        return
    rows = args.rows_arg or args.rows
    OUT.mkdir(exist_ok=True)
    source = make_input(rows, args.shape)
    requests = -(-rows // 500)
    fixture = make_fixture(source) if args.old_tags else None
    # The bare client just before and just after `run --base-url`, the ratios against their
    # mean: the sandbox's own speed swings from run to run (8.0 to 9.6 s on an idle machine),
    # and a baseline timed once moved the ratio by 0.2x. On a machine whose speed swings,
    # `--repeat` gives the median of several such ratios.
    ratios, cpus = [], []
    for _ in range(max(args.repeat, 1)):
        base, sending_s = run_baseline(source, fixture)
        with external_sandbox(fixture) as url:
            external = run_batcher(source, "run", "--base-url", url)
        base_after, sending_after_s = run_baseline(source, fixture)
        ratios.append(external.seconds / ((base.seconds + base_after.seconds) / 2))
        cpus.append(external.cpu_s)
    base_s = (base.seconds + base_after.seconds) / 2
    sending_s = (sending_s + sending_after_s) / 2
    (ledger,) = (OUT / "run" / ".batcher").glob("run-*.sqlite")
    csv_report, csv_s = run_report(ledger, ".csv")
    xlsx_report, xlsx_s = run_report(ledger, ".xlsx")
    embedded = run_batcher(source, "run", "--sandbox", fixture=fixture)
    plan = run_batcher(source, "plan")
    pandas_alone = run_child(
        [sys.executable, "-c", PANDAS_ALONE, str(source)], OUT, dict(os.environ)
    )
    own_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"input: {rows:,} rows, {source.stat().st_size / 2**20:.0f} MiB ({source})"
        + (f"; contacts' own tags from {fixture}" if fixture is not None else "")
    )
    print(
        f"baseline, bare client + sandbox process:   {base_s:6.1f} s  "
        f"{requests / sending_s:,.0f} requests/s  peak RSS {base.peak_mib:,.0f} MiB  "
        f"CPU {base.cpu_s:.1f} s  (reading and sending {sending_s:.1f} s, the rest starting "
        f"Python; the mean of {base.seconds:.1f} s before and {base_after.seconds:.1f} s after "
        "run --base-url)"
    )
    for name, m in (
        ("batcher --base-url + sandbox process:", external),
        ("batcher --sandbox (one process):     ", embedded),
    ):
        parts = stages(m.output)
        rate = (
            f"  {requests / parts['send']:,.0f} requests/s while sending"
            if parts.get("send")
            else ""
        )
        print(
            f"{name}     {m.seconds:6.1f} s  {m.seconds / base_s:5.1f}x baseline  "
            f"peak RSS {m.peak_mib:,.0f} MiB  CPU {m.cpu_s:.1f} s  {rows / m.seconds:,.0f} "
            f"rows/s{rate}"
        )
        print("    stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()))
    print(
        f"batcher plan:                              {plan.seconds:6.1f} s  "
        f"peak RSS {plan.peak_mib:,.0f} MiB; pandas alone reading the file: "
        f"{pandas_alone.seconds:.1f} s ({plan.seconds / pandas_alone.seconds:.1f}x)"
    )
    print(
        f"report stage alone, from the run's ledger: CSV {csv_s:.1f} s (peak RSS "
        f"{csv_report.peak_mib:,.0f} MiB), XLSX {xlsx_s:.1f} s (peak RSS "
        f"{xlsx_report.peak_mib:,.0f} MiB): XLSX {xlsx_s / csv_s:.2f}x CSV"
    )
    print(
        f"ratios: run --base-url {external.seconds / base_s:.2f}x bare client, "
        f"run --sandbox {embedded.seconds / base_s:.2f}x, "
        f"plan {plan.seconds / pandas_alone.seconds:.2f}x pandas, XLSX {xlsx_s / csv_s:.2f}x CSV"
    )
    if len(ratios) > 1:
        print(
            f"run --base-url vs bare client, {len(ratios)} times alternating: "
            + ", ".join(f"{ratio:.2f}x" for ratio in ratios)
            + f"; median {statistics.median(ratios):.2f}x (batcher's CPU "
            + ", ".join(f"{cpu:.1f}" for cpu in cpus)
            + " s)"
        )
    external_stages = stages(external.output)
    figures = {
        "rows": rows,
        "shape": args.shape,
        "old_tags": fixture is not None,
        "baseline_s": round(base_s, 2),
        "baseline_before_after_s": [round(base.seconds, 2), round(base_after.seconds, 2)],
        "baseline_sending_s": round(sending_s, 2),
        "external_s": round(external.seconds, 2),
        "external_peak_mib": round(external.peak_mib),
        "external_ratio": round(external.seconds / base_s, 2),
        "external_ratios": [round(ratio, 2) for ratio in ratios],
        "external_ratio_median": round(statistics.median(ratios), 2),
        "external_cpus_s": [round(cpu, 2) for cpu in cpus],
        "external_stages": external_stages,
        "send_rate_vs_baseline": round(
            (requests / external_stages["send"]) / (requests / sending_s), 2
        )
        if external_stages.get("send")
        else None,
        "embedded_s": round(embedded.seconds, 2),
        "embedded_peak_mib": round(embedded.peak_mib),
        "plan_s": round(plan.seconds, 2),
        "plan_peak_mib": round(plan.peak_mib),
        "report_csv_s": round(csv_s, 2),
        "report_xlsx_s": round(xlsx_s, 2),
        "report_xlsx_peak_mib": round(xlsx_report.peak_mib),
        "pandas_alone_s": round(pandas_alone.seconds, 2),
        "baseline_peak_mib": round(base.peak_mib),
        "baseline_cpu_s": round(base.cpu_s, 2),
        "external_cpu_s": round(external.cpu_s, 2),
        "benchmark_process_peak_mib": round(own_mib),
    }
    print(json.dumps(figures))
    print(external.output, end="")


if __name__ == "__main__":
    main()
