"""Whole runs against a rate-limited sandbox: locations side by side within their limits, a stop
during a long Retry-After, and a daily quota reached by one location of two.

Where the limits are short windows, client and sandbox run on one fake clock (the event loop's
virtual time), so no test waits for real windows or depends on how fast this machine is.
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import sys
import time
from pathlib import Path

from test_pacing import on_fake_time

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.domain.config import BatchSettings, LimitSettings
from batcher.domain.errors import QuotaReachedError
from batcher.loading import InputOptions
from batcher.sandbox import RateConfig, Sandbox, SandboxConfig

from .conftest import LOCATION, contact_ids, fast_settings

LOCATIONS = ("locationAAAAAAAAAAAA", "locationBBBBBBBBBBBB", "locationCCCCCCCCCCCC")
ROOT = Path(__file__).resolve().parents[2]


def per_location_file(path: Path, counts: dict[str, int]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["contact_id", "location_id"])
        seed = 1
        for location, count in counts.items():
            for contact in contact_ids(count, seed=seed):
                writer.writerow([contact, location])
            seed += 1
    return path


def read_statuses(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def test_locations_run_side_by_side_each_within_its_limit(tmp_path: Path) -> None:
    """40, 20 and 8 contacts in batches of 2 at 4 requests per second per location: no 429,
    no window over 4 for any location, and the small locations are not kept waiting behind the
    big one (they finish within its first requests)."""
    source = per_location_file(tmp_path / "in.csv", dict(zip(LOCATIONS, (40, 20, 8), strict=True)))

    async def scenario() -> tuple[Sandbox, int]:
        loop = asyncio.get_running_loop()
        config = SandboxConfig(
            rate=RateConfig(max=4, interval_ms=1000), locations=frozenset(LOCATIONS)
        )
        async with Sandbox(config, clock=loop.time) as sandbox:
            os.environ["BATCHER_TOKEN"] = sandbox.token
            settings = fast_settings(
                tmp_path,
                sandbox.url,
                batch=BatchSettings(size=2),
                limits=LimitSettings(concurrency=6, requests_per_interval=4, interval_ms=1000),
            )
            options = InputOptions(action="add", tags=("vip",))
            job = Job(input_path=source, input=options, report_path=tmp_path / "report.csv")
            result = await execute(settings, job)
            return sandbox, result.exit_code

    try:
        sandbox, exit_code = on_fake_time(scenario)
    finally:
        os.environ.pop("BATCHER_TOKEN", None)
    assert exit_code == 0
    assert sandbox.stats.by_status == {201: 34}
    assert all(count <= 4 for count in sandbox.stats.max_window.values())
    arrivals = [request.update.location_id for request in sandbox.stats.applied]
    last_c = max(i for i, location in enumerate(arrivals) if location == LOCATIONS[2])
    a_before = sum(1 for location in arrivals[:last_c] if location == LOCATIONS[0])
    assert a_before < 8  # location C's 4 requests went out within location A's first windows
    assert read_statuses(tmp_path / "report.csv") == {"success": 68}


def test_the_client_never_trips_the_servers_rate_limit(tmp_path: Path) -> None:
    """The pacer counts a request until an interval after its answer, so even at the server's
    exact limit no 429 comes back."""
    source = per_location_file(tmp_path / "in.csv", {LOCATION: 120})

    async def scenario() -> tuple[Sandbox, int, int]:
        loop = asyncio.get_running_loop()
        config = SandboxConfig(rate=RateConfig(max=4, interval_ms=100))
        async with Sandbox(config, clock=loop.time) as sandbox:
            os.environ["BATCHER_TOKEN"] = sandbox.token
            limits = LimitSettings(concurrency=4, requests_per_interval=4, interval_ms=100)
            settings = fast_settings(tmp_path, sandbox.url, limits=limits)
            options = InputOptions(action="add", tags=("vip",))
            job = Job(input_path=source, input=options, report_path=tmp_path / "report.csv")
            result = await execute(settings, job)
            return sandbox, result.exit_code, result.rate_limited

    try:
        sandbox, exit_code, rate_limited = on_fake_time(scenario)
    finally:
        os.environ.pop("BATCHER_TOKEN", None)
    assert (exit_code, rate_limited) == (0, 0)
    assert sandbox.stats.by_status == {201: 12}
    assert max(sandbox.stats.max_window.values()) <= 4


async def test_the_daily_quota_of_one_location_stops_only_that_location(
    tmp_path: Path, sandboxes: list[Sandbox]
) -> None:
    """A 3-request day: location B's 2 requests complete, location A stops after 3 of its 5
    (its rows pending, saying so), exit 3; the next day the same command finishes A."""
    source = per_location_file(tmp_path / "in.csv", {LOCATIONS[0]: 50, LOCATIONS[1]: 20})
    day = [0.0]
    config = SandboxConfig(
        rate=RateConfig(max=1000, interval_ms=1000, daily=3), locations=LOCATIONS
    )
    async with Sandbox(config, wall_clock=lambda: day[0]) as sandbox:
        sandboxes.append(sandbox)
        os.environ["BATCHER_TOKEN"] = sandbox.token
        try:
            settings = fast_settings(tmp_path, sandbox.url)  # batches of 10
            options = InputOptions(action="add", tags=("vip",))
            job = Job(input_path=source, input=options, report_path=tmp_path / "report.csv")
            first = await execute(settings, job)
            assert isinstance(first.stopped, QuotaReachedError)
            assert first.exit_code == 3
            assert LOCATIONS[0] in str(first.stopped)
            assert LOCATIONS[1] not in str(first.stopped)
            assert read_statuses(tmp_path / "report.csv") == {"success": 50, "pending": 20}
            day[0] += 86_400  # the sandbox's next UTC day
            second = await execute(settings, job)
        finally:
            os.environ.pop("BATCHER_TOKEN", None)
    assert second.exit_code == 0
    assert second.resumed
    assert second.requests == 2
    assert read_statuses(tmp_path / "report.csv") == {"success": 70}


async def test_sigterm_during_a_long_retry_after_stops_at_once_and_the_rerun_completes(
    tmp_path: Path, sandboxes: list[Sandbox]
) -> None:
    """The second request gets a 429 with Retry-After 60: SIGTERM ends that wait at once, the
    process exits 3 with its rows pending, and a rerun (once the window has passed) finishes."""
    ids = contact_ids(4)
    with (tmp_path / "in.csv").open("w", encoding="utf-8") as fh:
        fh.write("contact_id\n" + "\n".join(ids) + "\n")
    offset = [0.0]
    config = SandboxConfig(rate=RateConfig(max=1, interval_ms=60_000, retry_after=True))
    async with Sandbox(config, clock=lambda: time.monotonic() + offset[0]) as sandbox:
        sandboxes.append(sandbox)
        # No canary (max_error_rate 1): both requests go at once, so that the second meets the
        # 429 (a canary would hold it until the first's headers had taught the pacer the limit).
        (tmp_path / "batcher.toml").write_text(
            f'[api]\nlocation_id = "{LOCATION}"\n[batch]\nsize = 2\n[limits]\nconcurrency = 2\n'
            "[run]\nmax_error_rate = 1\n",
            encoding="utf-8",
        )
        argv = [sys.executable, "-m", "batcher", "run", "in.csv", "--action", "add",
                "--tags", "vip", "--base-url", sandbox.url, "-q"]  # fmt: skip
        env = {**os.environ, "BATCHER_TOKEN": sandbox.token, "PYTHONPATH": str(ROOT)}
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        # A condition, not a timing: wait (bounded) until the 429 was answered.
        for _ in range(2000):
            if sandbox.stats.by_status.get(429):
                break
            await asyncio.sleep(0.005)
        assert sandbox.stats.by_status == {201: 1, 429: 1}
        process.send_signal(signal.SIGTERM)
        # Far below the 60 s Retry-After: only a wait that ends at once gets here in time.
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 3, stderr.decode()
        assert "interrupted by SIGTERM" in stderr.decode()
        assert read_statuses(tmp_path / "in-report.csv") == {"success": 2, "pending": 2}

        offset[0] += 61.0  # the sandbox's window has passed
        rerun = await asyncio.create_subprocess_exec(
            *argv, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(rerun.communicate(), timeout=60)
    assert rerun.returncode == 0, stderr.decode()
    assert read_statuses(tmp_path / "in-report.csv") == {"success": 4}
