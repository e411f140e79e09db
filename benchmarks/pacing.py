"""How close batcher's pacing comes to the API's rate limit, against naive clients in the same run.

    python benchmarks/pacing.py [SCENARIO ...]     (all six: about 2.5 minutes)

The API's limit is scaled down (30 requests per 1,000 ms instead of 100 per 10,000 ms) so that
each scenario takes seconds. Each one starts a sandbox in its own process (`batcher sandbox
--rate ...`, with a small hook that notes the instant of every request it counts, for the figures
below), runs `python -m batcher run` as a subprocess against it, reads `GET /_sandbox/stats`,
then measures a naive client against a fresh sandbox:

- pace: one location, 600 requests. Figure: the time from the first request's arrival to the
  last one's, over the least the limit allows, `(requests - 1) // max * interval`; also the
  process's wall time over that bound (it adds start-up, loading and the report: the wall time
  of a one-request run is measured too, as "one_request_wall_s"). Naive: a request every
  interval / max seconds, a 429 retried after one interval.
- adapt: the sandbox allows a fifth of what batcher's config says (30 vs 150 per 1,000 ms).
  Figure: the same ratio at the server's real limit, and the share of 429s. Naive: trusts the
  config (a request every 1/150 s), a 429 retried after a fixed 1 s.
- agency: four locations of 300/150/100/50 requests in one file. Figure: the span over the
  busiest location's bound. Naive: batcher run once per location, one after another.
- economy: per-row actions and tags, contacts touched up to four times in mixed order. Figure:
  requests made over the fewest the SPEC allows (per round and group, ceil(rows / batch size)),
  and every contact's final tags, read back from the sandbox, as input order says. Naive
  (counted, not sent): rows in input order, a new request whenever the group changes.
- pace and agency again with the sandbox counting in fixed windows (`window=fixed`).

A batcher run still going after 60 s (none needs more than about 25 s) is stopped with SIGINT and
its scenario reported as HUNG, with what it did until then.

"max_window" is the sandbox's own figure (most requests counted in one of its windows);
"max N/30 per interval" (JSON "densest") is the most arrivals the hook saw within any span of one
interval, which is what a sliding-window server counts (a fixed-window one would allow more).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import csv
import functools
import json
import math
import os
import random
import re
import signal
import string
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

OUT = Path(__file__).resolve().parent / "out" / "pacing"
TOKEN = "sandbox-token"  # the sandbox's own default: no real token is ever used here
VERSION = "2021-07-28"
MAX, INTERVAL_MS = 30, 1000
INTERVAL = INTERVAL_MS / 1000
BATCH = 5  # contacts per request: many requests from few rows
ECONOMY_BATCH = 20
LOCATIONS = [f"benchLocation{n:07d}" for n in range(1, 5)]
TAGS = ["vip", "newsletter", "promo", "churn-risk"]

# `batcher sandbox` itself, with a hook on the limiter noting (instant, location, admitted) for
# every counted request; written as JSON to argv[1] when Ctrl-C (SIGINT) stops it.
SANDBOX = """
import atexit, json, sys, time
from batcher.sandbox import ratelimit
from batcher.cli import main
seen = []
admit = ratelimit.RateLimiter.admit
def noting(self, key):
    verdict = admit(self, key)
    seen.append((time.monotonic(), key, verdict.allowed))
    return verdict
ratelimit.RateLimiter.admit = noting
def save():
    with open(sys.argv[1], "w") as fh:
        json.dump(seen, fh)
atexit.register(save)
main(["sandbox", *sys.argv[2:]], prog_name="batcher")
"""


@dataclass
class Seen:
    """What one sandbox saw: its stats and the instant of every counted request."""

    stats: dict[str, Any]
    arrivals: list[tuple[float, str, bool]]

    def admitted(self, location: str | None = None) -> list[float]:
        return [t for t, key, ok in self.arrivals if ok and location in (None, key)]

    @property
    def span(self) -> float:
        times = self.admitted()
        return times[-1] - times[0] if times else 0.0

    @property
    def status(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.stats["by_status"].items()}

    @property
    def refused(self) -> int:
        return self.status.get("429", 0)

    @property
    def max_window(self) -> int:
        return max((int(v) for v in self.stats["max_window"].values()), default=0)

    @property
    def share_refused(self) -> float:
        return self.refused / max(int(self.stats["total_requests"]), 1)

    def densest(self) -> int:
        """The most admitted arrivals of one location within any span of one interval."""
        best = 0
        for location in {key for _, key, _ in self.arrivals}:
            times = self.admitted(location)
            for i, t in enumerate(times):
                best = max(best, i - bisect.bisect_right(times, t - INTERVAL) + 1)
        return best


@contextlib.contextmanager
def sandbox(name: str, rate: str) -> Iterator[tuple[str, list[Seen]]]:
    """A sandbox process serving LOCATIONS at `rate`; yields its URL and, after, what it saw."""
    work = OUT / name
    work.mkdir(parents=True, exist_ok=True)
    config = work / "sandbox.toml"
    config.write_text(
        f"[sandbox]\nlocations = {json.dumps(LOCATIONS)}\nrecord_requests = false\n",
        encoding="utf-8",
    )
    log = work / "arrivals.json"
    argv = [sys.executable, "-c", SANDBOX, str(log), "--port", "0", "--rate", rate,
            "--config", str(config)]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    result: list[Seen] = []
    try:
        url = server.stdout.readline().strip()
        if not url.startswith("http"):
            raise SystemExit(f"the sandbox did not start (rate {rate!r})")
        yield url, result
        stats = asyncio.run(_get_json(f"{url}/_sandbox/stats"))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    arrivals = [(t, key, ok) for t, key, ok in json.loads(log.read_text(encoding="utf-8"))]
    result.append(Seen(stats, arrivals))


async def _get_json(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        data = await answer.json()
    assert isinstance(data, dict)
    return data


# -- inputs ----------------------------------------------------------------------------------


def ids(n: int, rng: random.Random) -> list[str]:
    alphabet = string.ascii_letters + string.digits
    return ["".join(rng.choices(alphabet, k=20)) for _ in range(n)]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def batcher_config(work: Path, per_interval: int, size: int = BATCH) -> None:
    (work / "batcher.toml").write_text(
        f"[limits]\nrequests_per_interval = {per_interval}\ninterval_ms = {INTERVAL_MS}\n"
        f"concurrency = 8\n[batch]\nsize = {size}\n",
        encoding="utf-8",
    )


# -- batcher ---------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    requests: int
    rate_limited: int
    report: Path
    output: str
    hung: bool  # still running after HANG_S: stopped with SIGINT (its rows left pending)


HANG_S = 60.0  # no run here needs more than about 25 s


def run_batcher(work: Path, source: Path, url: str, *options: str) -> Run:
    report = work / f"{source.stem}-report.jsonl"
    # No -q: the request counts are read from the summary, which -q leaves out.
    argv = [sys.executable, "-m", "batcher", "run", str(source), "--base-url", url, "--fresh",
            "--yes", "--report", str(report), *options]  # fmt: skip
    env = {**os.environ, "BATCHER_TOKEN": TOKEN}
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    hung = False
    try:
        output, _ = child.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        hung = True
        child.send_signal(signal.SIGINT)  # a graceful stop: the summary still tells the counts
        output, _ = child.communicate()
        print(f"batcher run of {source.name} HUNG: stopped after {HANG_S:.0f} s", file=sys.stderr)
    seconds = time.perf_counter() - started
    if child.returncode != 0 and not hung:
        raise SystemExit(f"batcher run exited {child.returncode}:\n{output}")
    found = re.search(r"requests ([\d,]+) \(retries [\d,]+, 429s ([\d,]+)\)", output)
    if found is None:
        raise SystemExit(f"no request count in batcher's summary:\n{output}")
    requests, refused = (int(g.replace(",", "")) for g in found.groups())
    return Run(seconds, requests, refused, report, output, hung)


# -- naive clients ---------------------------------------------------------------------------


@dataclass
class Naive:
    seconds: float = 0.0
    requests: int = 0
    refused: int = 0


async def fixed_rate(
    url: str, batches: Sequence[tuple[str, list[str]]], period: float, retry_wait: float
) -> Naive:
    """Send batch i at start + i * period, whatever the answers; a 429 is sent again after
    `retry_wait`. Seconds: from the first send to the last success."""
    naive = Naive()
    headers = {"Authorization": f"Bearer {TOKEN}", "Version": VERSION}
    last_success = 0.0

    async def one(
        session: aiohttp.ClientSession, at: float, location: str, contacts: list[str]
    ) -> None:
        nonlocal last_success
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        body = {"contacts": contacts, "tags": ["vip"], "locationId": location}
        while True:
            naive.requests += 1
            async with session.post(
                f"{url}/contacts/bulk/tags/update/add", json=body, headers=headers
            ) as answer:
                await answer.read()
                if answer.status == 201:
                    last_success = max(last_success, time.monotonic())
                    return
                if answer.status != 429:
                    raise SystemExit(f"naive client: HTTP {answer.status}")
            naive.refused += 1
            await asyncio.sleep(retry_wait)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic() + 0.05
        await asyncio.gather(
            *(one(session, start + i * period, loc, c) for i, (loc, c) in enumerate(batches))
        )
    naive.seconds = last_success - start
    return naive


def bound(requests: int) -> float:
    """The least time from the first to the last of `requests` at MAX per INTERVAL."""
    return (requests - 1) // MAX * INTERVAL


# -- scenarios -------------------------------------------------------------------------------

Figures = dict[str, Any]


def one_location(name: str, requests: int, rate: str, per_interval: int, seed: int) -> Figures:
    """batcher on one location's file of `requests` requests; the sandbox at `rate`."""
    work = OUT / name
    work.mkdir(parents=True, exist_ok=True)
    batcher_config(work, per_interval)
    rows = [[c] for c in ids(requests * BATCH, random.Random(seed))]
    source = write_csv(work / "contacts.csv", ["contact_id"], rows)
    one_row = write_csv(work / "one.csv", ["contact_id"], rows[:1])
    options = ("--action", "add", "--tags", "vip", "--location-id", LOCATIONS[0])
    with sandbox(name, rate) as (url, seen):
        run = run_batcher(work, source, url, *options)
    sb = seen[0]
    assert run.hung or sb.status.get("201") == requests, sb.status
    least = bound(requests)
    figures = {
        "hung": run.hung,
        "requests": run.requests,
        "bound_s": least,
        "span_s": round(sb.span, 3),
        "wall_s": round(run.seconds, 3),
        "ratio": round(sb.span / least, 3),
        "wall_ratio": round(run.seconds / least, 3),
        "429s": sb.refused,
        "429_share": round(sb.share_refused, 4),
        "max_window": sb.max_window,
        "densest": sb.densest(),
    }
    if name == "pace":  # what a run costs besides sending: start-up, loading, the report
        with sandbox(f"{name}-one", rate) as (url, _):
            figures["one_request_wall_s"] = round(
                run_batcher(work, one_row, url, *options).seconds, 3
            )
    return figures


def naive_fixed_rate(name: str, requests: int, rate: str, per_interval: int, seed: int) -> Figures:
    rng = random.Random(seed)
    batches = [(LOCATIONS[0], ids(BATCH, rng)) for _ in range(requests)]
    with sandbox(name, rate) as (url, seen):
        naive = asyncio.run(fixed_rate(url, batches, INTERVAL / per_interval, INTERVAL))
    sb = seen[0]
    return {
        "seconds": round(naive.seconds, 3),
        "ratio": round(naive.seconds / bound(requests), 3),
        "requests": naive.requests,
        "429s": sb.refused,
        "429_share": round(naive.refused / naive.requests, 4),
        "densest": sb.densest(),
    }


AGENCY = dict(zip(LOCATIONS, (300, 150, 100, 50), strict=True))


def agency_file(work: Path) -> Path:
    rng = random.Random(3)
    rows = [[c, location] for location, n in AGENCY.items() for c in ids(n * BATCH, rng)]
    rng.shuffle(rows)  # the locations' rows mixed, as an agency's export would have them
    return write_csv(work / "agency.csv", ["contact_id", "location_id"], rows)


def agency(name: str, rate: str) -> Figures:
    work = OUT / name
    work.mkdir(parents=True, exist_ok=True)
    batcher_config(work, MAX)
    source = agency_file(work)
    with sandbox(name, rate) as (url, seen):
        run = run_batcher(work, source, url, "--action", "add", "--tags", "vip")
    sb = seen[0]
    least = bound(max(AGENCY.values()))
    per_location = {
        location: round(times[-1] - times[0], 3)
        for location in LOCATIONS
        if (times := sb.admitted(location))
    }
    return {
        "hung": run.hung,
        "requests": run.requests,
        "bound_s": least,
        "span_s": round(sb.span, 3),
        "wall_s": round(run.seconds, 3),
        "ratio": round(sb.span / least, 3),
        "wall_ratio": round(run.seconds / least, 3),
        "location_spans_s": per_location,
        "429s": sb.refused,
        "max_window": sb.max_window,
        "densest": sb.densest(),
    }


def agency_naive(name: str) -> Figures:
    """batcher once per location, one after another: the busiest's bound is the same."""
    work = OUT / name
    work.mkdir(parents=True, exist_ok=True)
    batcher_config(work, MAX)
    with open(agency_file(work), newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    seconds = 0.0
    hung = False
    with sandbox(name, f"{MAX}/{INTERVAL_MS}") as (url, seen):
        for location in LOCATIONS:
            mine = [[c] for c, loc in rows if loc == location]
            source = write_csv(work / f"{location}.csv", ["contact_id"], mine)
            run = run_batcher(work, source, url, "--action", "add", "--tags", "vip",
                              "--location-id", location)  # fmt: skip
            seconds += run.seconds
            hung = hung or run.hung
    sb = seen[0]
    return {
        "hung": hung,
        "wall_s": round(seconds, 3),
        "span_s": round(sb.span, 3),
        "ratio": round(sb.span / bound(max(AGENCY.values())), 3),
        "wall_ratio": round(seconds / bound(max(AGENCY.values())), 3),
        "429s": sb.refused,
    }


# economy


def economy_rows(contacts: int, seed: int) -> list[list[str]]:
    """Per-row actions and tags: each contact touched 1-4 times, rows mixed across contacts,
    some rows repeating the contact's previous one (duplicates), tag sets in any order."""
    rng = random.Random(seed)
    sets = [["vip"], ["newsletter"], ["vip", "newsletter"], ["promo", "churn-risk"]]
    touches: list[list[list[str]]] = []
    for contact in ids(contacts, rng):
        mine: list[list[str]] = []
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
            if mine and rng.random() < 0.15:
                previous = mine[-1]
                mine.append([contact, previous[1], ",".join(reversed(previous[2].split(",")))])
                continue
            tags = list(rng.choice(sets))
            rng.shuffle(tags)
            mine.append([contact, rng.choice(("add", "remove")), ",".join(tags)])
        touches.append(mine)
    rows: list[list[str]] = []
    while touches:  # interleave: each pick takes the next row of a random contact
        pick = rng.randrange(len(touches))
        rows.append(touches[pick].pop(0))
        if not touches[pick]:
            touches[pick] = touches[-1]
            touches.pop()
    return rows


def fewest_requests(rows: Sequence[Sequence[str]], size: int) -> tuple[int, int]:
    """SPEC "Batching": a contact's k-th distinct change is in round k; per (round, group)
    ceil(rows / size). Also the naive count: input order, a new request when the group changes."""
    previous: dict[str, tuple[str, frozenset[str]]] = {}
    rounds: Counter[str] = Counter()
    members: Counter[tuple[int, str, frozenset[str]]] = Counter()
    naive, run_group, run_length = 0, None, 0
    for contact, action, tags in rows:
        group = (action, frozenset(tags.split(",")))
        if previous.get(contact) == group:
            continue  # a duplicate: not sent
        previous[contact] = group
        rounds[contact] += 1
        members[(rounds[contact], *group)] += 1
        if group != run_group or run_length == size:
            naive, run_group, run_length = naive + 1, group, 0
        run_length += 1
    return sum(math.ceil(n / size) for n in members.values()), naive


def expected_tags(rows: Sequence[Sequence[str]]) -> dict[str, set[str]]:
    """Every contact's tags after its rows, applied one after another in input order."""
    final: dict[str, set[str]] = defaultdict(set)
    for contact, action, tags in rows:
        wanted = set(tags.split(","))
        final[contact] = final[contact] | wanted if action == "add" else final[contact] - wanted
    return final


async def actual_tags(url: str, contacts: Sequence[str]) -> dict[str, set[str]]:
    """Read every contact's tags back: a remove of every tag used says which ones it had."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Version": VERSION}
    found: dict[str, set[str]] = {}
    async with aiohttp.ClientSession() as session:
        for i in range(0, len(contacts), 500):
            body = {"contacts": list(contacts[i : i + 500]), "tags": TAGS,
                    "locationId": LOCATIONS[0]}  # fmt: skip
            while True:
                async with session.post(
                    f"{url}/contacts/bulk/tags/update/remove", json=body, headers=headers
                ) as answer:
                    data = await answer.json()
                if answer.status != 429:
                    break
                await asyncio.sleep(INTERVAL)
            for entry in data["responses"]:
                found[entry["contactId"]] = set(entry["tagsRemoved"])
    return found


def economy(size: int = ECONOMY_BATCH) -> Figures:
    name = "economy"
    work = OUT / name
    work.mkdir(parents=True, exist_ok=True)
    batcher_config(work, MAX, size)
    rows = economy_rows(600, seed=11)
    source = write_csv(work / "touches.csv", ["contact_id", "action", "tags"], rows)
    fewest, naive = fewest_requests(rows, size)
    with sandbox(name, f"{MAX}/{INTERVAL_MS}") as (url, seen):
        run = run_batcher(work, source, url, "--location-id", LOCATIONS[0])
        sent = int(asyncio.run(_get_json(f"{url}/_sandbox/stats"))["total_requests"])
        expected = expected_tags(rows)
        actual = asyncio.run(actual_tags(url, sorted(expected)))
    wrong = sum(1 for contact, tags in expected.items() if actual.get(contact) != tags)
    statuses = Counter(json.loads(line)["status"] for line in run.report.open(encoding="utf-8"))
    return {
        "rows": len(rows),
        "contacts": len(expected),
        "batch_size": size,
        "requests": sent,
        "batcher_says": run.requests,
        "fewest": fewest,
        "ratio": round(sent / fewest, 3),
        "naive_requests": naive,
        "naive_ratio": round(naive / fewest, 3),
        "wrong_final_tags": wrong,
        "statuses": dict(statuses),
        "hung": run.hung,
        "429s": seen[0].refused,
    }


# -- main ------------------------------------------------------------------------------------


Row = tuple[str, str, str, bool, str]  # scenario, batcher's figure, target, met, naive's


def pace(rate: str = f"{MAX}/{INTERVAL_MS}", name: str = "pace") -> tuple[Figures, Row]:
    ours = one_location(name, 600, rate, MAX, seed=1)
    figures = {name: ours}
    text = (
        f"{ours['ratio']:.3f} x bound (wall {ours['wall_ratio']:.3f}), {ours['429s']} 429s, "
        f"max {ours['densest']}/{MAX} per interval (max_window {ours['max_window']})"
    )
    met = ours["ratio"] <= 1.02 and ours["429s"] == 0 and ours["densest"] <= MAX
    if name != "pace":
        return figures, (name, text, "<= 1.02, 0 429s, <= 30", met, "")
    naive = figures["pace_naive"] = naive_fixed_rate("pace-naive", 600, rate, MAX, seed=2)
    theirs = f"{naive['ratio']:.3f} x bound, {naive['429s']} 429s"
    return figures, (name, text, "<= 1.02, 0 429s, <= 30", met, theirs)


def adapt() -> tuple[Figures, Row]:
    rate = f"{MAX}/{INTERVAL_MS}"
    ours = one_location("adapt", 300, rate, 5 * MAX, seed=4)
    naive = naive_fixed_rate("adapt-naive", 300, rate, 5 * MAX, seed=5)
    text = (
        f"{ours['ratio']:.3f} x bound (wall {ours['wall_ratio']:.3f}), "
        f"{100 * ours['429_share']:.1f} % 429s"
    )
    met = ours["ratio"] <= 1.10 and ours["429_share"] <= 0.02
    theirs = f"{naive['ratio']:.3f} x bound, {100 * naive['429_share']:.1f} % 429s"
    return {"adapt": ours, "adapt_naive": naive}, ("adapt", text, "<= 1.10, <= 2 % 429s", met,
                                                    theirs)  # fmt: skip


def agency_scenario(
    rate: str = f"{MAX}/{INTERVAL_MS}", name: str = "agency"
) -> tuple[Figures, Row]:
    ours = agency(name, rate)
    figures = {name: ours}
    text = (
        f"{ours['ratio']:.3f} x busiest (wall {ours['wall_ratio']:.3f}), {ours['429s']} 429s, "
        f"max {ours['densest']}/{MAX} per interval (max_window {ours['max_window']})"
    )
    met = ours["ratio"] <= 1.05 and ours["429s"] == 0 and ours["densest"] <= MAX
    if name != "agency":
        return figures, (name, text, "<= 1.05, 0 429s, <= 30", met, "")
    naive = figures["agency_naive"] = agency_naive("agency-naive")
    theirs = f"{naive['ratio']:.3f} x busiest (wall {naive['wall_ratio']:.3f})"
    return figures, (name, text, "<= 1.05", met, theirs)


def economy_scenario() -> tuple[Figures, Row]:
    ours = economy()
    text = (
        f"{ours['ratio']:.3f} x fewest ({ours['requests']}/{ours['fewest']}), "
        f"{ours['wrong_final_tags']} wrong final tags"
    )
    met = ours["requests"] == ours["fewest"] and ours["wrong_final_tags"] == 0
    theirs = f"{ours['naive_ratio']:.3f} x fewest (counted)"
    return {"economy": ours}, ("economy", text, "1.00, 0 wrong", met, theirs)


FIXED = f"{MAX}/{INTERVAL_MS},window=fixed"
SCENARIOS: dict[str, Callable[[], tuple[Figures, Row]]] = {
    "pace": pace,
    "adapt": adapt,
    "agency": agency_scenario,
    "economy": economy_scenario,
    "pace-fixed": functools.partial(pace, FIXED, "pace-fixed"),
    "agency-fixed": functools.partial(agency_scenario, FIXED, "agency-fixed"),
}


def main() -> None:
    chosen = sys.argv[1:] or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    rows: list[Row] = []
    for name in chosen:
        more, row = SCENARIOS[name]()
        figures.update(more)
        hung = [key for key, value in more.items() if value.get("hung")]
        if hung:  # a run that never finished: its figures are only what it did until stopped
            scenario, ours, target, _, theirs = row
            row = (scenario, f"HUNG ({', '.join(hung)}); {ours}", target, False, theirs)
        rows.append(row)
        (OUT / "figures.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    figures["total_s"] = round(time.perf_counter() - started, 1)
    print(f"limit {MAX} requests per {INTERVAL_MS} ms per location, batch size {BATCH} (economy "
          f"{ECONOMY_BATCH}); {figures['total_s']} s in all")  # fmt: skip
    print("| scenario | batcher | target | met | naive client |")
    print("| --- | --- | --- | --- | --- |")
    for scenario, ours, target, met, theirs in rows:
        print(f"| {scenario} | {ours} | {target} | {'yes' if met else 'NO'} | {theirs} |")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
