"""Time and peak memory of `batcher run --sandbox` on a large CSV, against a same-run baseline.

    python benchmarks/million.py [ROWS]        (default 1,000,000)

The run is as a user would start it (a separate process, the embedded sandbox unthrottled, the
client's own pacing lifted), so the figures include loading, the ledger, every request, the report
and the sandbox itself. The baseline, measured in the same run on the same file, is the least any
client could do: read the ids with the csv module and POST them 500 at a time, 8 at once, to the
same unthrottled sandbox in a separate process, keeping nothing. Ratios are batcher / baseline.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import resource
import string
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

OUT = Path(__file__).resolve().parent / "out"
CONFIG = """\
[limits]
concurrency = 8
requests_per_interval = 1000000
interval_ms = 1000
[sandbox]
rate = "off"
record_requests = false
"""


def make_input(rows: int) -> Path:
    path = OUT / f"contacts-{rows}.csv"
    if path.exists():
        return path
    rng = random.Random(42)
    alphabet = string.ascii_letters + string.digits
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["contact_id", "first_name", "email"])
        for n in range(rows):
            writer.writerow(["".join(rng.choices(alphabet, k=20)), f"Name{n}", f"p{n}@example.com"])
    return path


def peak_child_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_batcher(source: Path) -> tuple[float, float, str]:
    work = OUT / "run"
    work.mkdir(exist_ok=True)
    (work / "batcher.toml").write_text(CONFIG, encoding="utf-8")
    argv = [sys.executable, "-m", "batcher", "run", str(source), "--sandbox", "--fresh", "-q",
            "--action", "add", "--tags", "vip,2026-promo", "--report", "report.csv"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=work, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"batcher exited {done.returncode}: {done.stderr}")
    return seconds, peak_child_mib(), done.stdout


async def baseline_client(source: Path, url: str) -> int:
    with source.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        ids = [row[0] for row in reader]
    headers = {"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"}
    batches = [ids[i : i + 500] for i in range(0, len(ids), 500)]
    queue = iter(batches)
    sent = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        for batch in queue:
            body = {
                "contacts": batch,
                "tags": ["vip", "2026-promo"],
                "locationId": "sandboxLocation00001",
            }
            async with session.post(
                f"{url}/contacts/bulk/tags/update/add", json=body, headers=headers
            ) as answer:
                assert answer.status == 201, answer.status
                await answer.read()
                sent += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(8)))
    return sent


def run_baseline(source: Path) -> float:
    """The sandbox in a child process (as batcher's is in-process, both pay for it)."""
    server = subprocess.Popen([sys.executable, "-c", SERVE], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    try:
        started = time.perf_counter()
        asyncio.run(baseline_client(source, url))
        return time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()


SERVE = """
import asyncio, sys
from batcher.sandbox import SandboxConfig, serve
config = SandboxConfig(rate=None, record_requests=False)
asyncio.run(serve(config, lambda url: (print(url), sys.stdout.flush())))
"""


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    OUT.mkdir(exist_ok=True)
    source = make_input(rows)
    size_mib = source.stat().st_size / 2**20
    base_s = run_baseline(source)
    run_s, run_mib, summary = run_batcher(source)
    print(f"input: {rows:,} rows, {size_mib:.0f} MiB ({source})")
    print(f"baseline (csv + bare aiohttp POSTs, no state, no report): {base_s:6.1f} s")
    print(f"batcher run --sandbox:                                    {run_s:6.1f} s  "
          f"peak RSS {run_mib:,.0f} MiB  ({rows / run_s:,.0f} rows/s)")  # fmt: skip
    print(f"ratio batcher / baseline: {run_s / base_s:.2f}x time")
    figures = {
        "rows": rows,
        "baseline_s": round(base_s, 2),
        "batcher_s": round(run_s, 2),
        "batcher_peak_rss_mib": round(run_mib),
        "ratio": round(run_s / base_s, 2),
    }
    print(json.dumps(figures))
    print(summary, end="")


if __name__ == "__main__":
    main()
