"""1 process vs 2 and 4 shard processes on one file over many locations, against ONE sandbox.

    python benchmarks/shards.py [--cpu-rows N] [--paced-rows N]

Each configuration gets a fresh sandbox process (`python -m batcher sandbox --port 0 --config
sandbox.toml`, its [sandbox] table listing the 40 locations), so that every run starts from the
same untagged contacts; the shards run as separate `batcher run --shard K/N` processes at once,
each with its own state directory, then `batcher merge` joins their reports. Two parts:

- cpu: the sandbox unthrottled (`--rate off`) and the client's pacing lifted (as in
  benchmarks/million.py): what one process costs, and how much N processes on N cores save.
  Every shard still reads (parses) the whole file and keeps its own rows only.
- paced: the sandbox enforcing a per-location limit (`--rate 30/1000`), the client configured
  to the same limit, small batches (many requests per location): total time / the busiest
  location's bound (its requests at 30 per second: the least any client can take).

For each run: wall time (all shards started together, until the last ends), the merged report
compared row by row (bytes) with the one-process report of the same file.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import string
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from common import serving

OUT = Path(__file__).resolve().parent / "out" / "shards"
ROOT = Path(__file__).resolve().parents[1]
LOCATIONS = [f"benchLocation{i:07d}" for i in range(40)]
SHARD_COUNTS = (1, 2, 4)
RATE = (30, 1000)  # per location: requests per interval_ms


def make_input(path: Path, rows: int, seed: int) -> Path:
    """Rows over 40 locations, unevenly (a few big, many small), each contact once."""
    if path.exists():
        return path
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    weights = [3 if i < 4 else 1 for i in range(len(LOCATIONS))]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["contact_id", "location_id", "email"])
        for n in range(rows):
            contact = "".join(rng.choices(alphabet, k=20))
            location = rng.choices(LOCATIONS, weights)[0]
            writer.writerow([contact, location, f"p{n}@example.com"])
    return path


@contextlib.contextmanager
def sandbox(work: Path, rate: str) -> Iterator[str]:
    """A fresh sandbox process knowing the 40 locations; yields its URL."""
    config = work / "sandbox.toml"
    names = ", ".join(f'"{name}"' for name in LOCATIONS)
    config.write_text(f"[sandbox]\nlocations = [{names}]\nrecord_requests = false\n")
    argv = [sys.executable, "-m", "batcher", "sandbox", "--port", "0", "--rate", rate]
    argv += ["--config", str(config)]
    with serving(argv, env(), quiet=True) as url:
        yield url


def env() -> dict[str, str]:
    return {**os.environ, "BATCHER_TOKEN": "sandbox-token", "PYTHONPATH": str(ROOT)}


def client_config(paced: bool, batch: int) -> str:
    per, interval = RATE if paced else (1_000_000, 1000)
    return (
        f"[batch]\nsize = {batch}\n"
        f"[limits]\nconcurrency = 32\nrequests_per_interval = {per}\ninterval_ms = {interval}\n"
    )


def run_shards(source: Path, work: Path, url: str, count: int, config: str) -> tuple[float, Path]:
    """`count` shard processes at once (one plain run when 1); wall time and the merged report."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "batcher.toml").write_text(config, encoding="utf-8")
    children = []
    reports = []
    started = time.perf_counter()
    for k in range(count):
        report = work / f"report-{k}.csv"
        argv = [sys.executable, "-m", "batcher", "run", str(source), "--action", "add"]
        argv += ["--tags", "vip", "--base-url", url, "--report", str(report), "-q", "--fresh"]
        if count > 1:
            argv += ["--shard", f"{k}/{count}"]
        child_env = {**env(), "BATCHER_STATE_DIR": str(work / f"state-{k}")}
        log = (work / f"shard-{k}.log").open("w")
        children.append((subprocess.Popen(argv, cwd=work, env=child_env, stdout=log,
                                          stderr=subprocess.STDOUT), log))  # fmt: skip
        reports.append(report)
    for child, log in children:
        code = child.wait()
        log.close()
        if code != 0:
            raise SystemExit(f"a shard exited {code}: see {log.name}")
    seconds = time.perf_counter() - started
    if count == 1:
        return seconds, reports[0]
    merged = work / "merged.csv"
    argv = [sys.executable, "-m", "batcher", "merge", *map(str, reports), "--shards", str(count)]
    subprocess.run([*argv, "--report", str(merged)], check=True, env=env(), capture_output=True)
    return seconds, merged


def busiest_bound(source: Path, batch: int) -> tuple[str, int, float]:
    """The busiest location, its requests, and the least seconds they take at RATE."""
    with source.open(encoding="utf-8", newline="") as fh:
        rows = Counter(row["location_id"] for row in csv.DictReader(fh))
    location, count = rows.most_common(1)[0]
    requests = -(-count // batch)
    per, interval_ms = RATE
    # At most `per` requests in any interval: the last one starts after (requests - 1) // per
    # whole intervals.
    return location, requests, (requests - 1) // per * interval_ms / 1000


def part(name: str, source: Path, rate: str, paced: bool, batch: int) -> dict[str, object]:
    config = client_config(paced, batch)
    times: dict[int, float] = {}
    reports: dict[int, Path] = {}
    for count in SHARD_COUNTS:
        work = OUT / name / f"n{count}"
        (OUT / name).mkdir(parents=True, exist_ok=True)
        with sandbox(OUT / name, rate) as url:
            times[count], reports[count] = run_shards(source, work, url, count, config)
    same = {count: reports[count].read_bytes() == reports[1].read_bytes() for count in times}
    figures: dict[str, object] = {
        "part": name,
        "rows": sum(1 for _ in source.open(encoding="utf-8")) - 1,
        "batch": batch,
        "seconds": {n: round(s, 2) for n, s in times.items()},
        "speedup": {n: round(times[1] / s, 2) for n, s in times.items()},
        "merged_identical_to_one_process": same,
    }
    if paced:
        location, requests, bound = busiest_bound(source, batch)
        figures["busiest_location"] = {"id": location, "requests": requests, "bound_s": bound}
        if bound:
            figures["time_over_bound"] = {n: round(s / bound, 2) for n, s in times.items()}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-rows", type=int, default=400_000)
    parser.add_argument("--paced-rows", type=int, default=120_000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs")
    cpu_source = make_input(OUT / f"cpu-{args.cpu_rows}.csv", args.cpu_rows, seed=1)
    paced_source = make_input(OUT / f"paced-{args.paced_rows}.csv", args.paced_rows, seed=2)
    for figures in (
        part("cpu", cpu_source, "off", paced=False, batch=500),
        part("paced", paced_source, f"{RATE[0]}/{RATE[1]}", paced=True, batch=50),
    ):
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
