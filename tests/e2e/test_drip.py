"""Whole runs with a drip and a send window, on fake time: 10,000 rows at 1,000 contacts an hour
in a 09:00-17:00 window (America/New_York) over two days, in one run that waits and in runs that
stop at the window's end (`--until-window-end`) and resume.

The client, the sandbox and the window share one clock: the event loop's fake time (see
`test_pacing.VirtualTimeLoop`) plus a fixed starting instant, so days pass in a second and the
sandbox counts contacts per hour on the same clock.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from test_pacing import on_fake_time

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.app.result import RunProgress, RunResult
from batcher.app.resume import resume_job
from batcher.app.status import list_runs
from batcher.domain.config import BatchSettings, LimitSettings, RunSettings, Settings
from batcher.domain.errors import WindowEndError
from batcher.domain.events import Event
from batcher.domain.models import Status
from batcher.loading import InputOptions
from batcher.sandbox import Sandbox, SandboxConfig
from batcher.support.stopping import Stop

from .conftest import LOCATION, contact_ids, fast_settings

NEW_YORK = ZoneInfo("America/New_York")
WINDOW = "Mon-Fri 09:00-17:00 America/New_York"


def at(*parts: int) -> float:
    """An instant given as New York wall time."""
    return datetime(*parts, tzinfo=NEW_YORK).timestamp()  # type: ignore[misc]


def contacts_file(path: Path, count: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["contact_id"])
        writer.writerows([contact] for contact in contact_ids(count))
    return path


def drip_settings(tmp_path: Path, url: str, *, until_window_end: bool) -> Settings:
    return fast_settings(
        tmp_path,
        url,
        batch=BatchSettings(size=500),
        limits=LimitSettings(
            concurrency=4, requests_per_interval=1000, interval_ms=1000, contacts_per_hour=1000
        ),
        run=RunSettings(window=WINDOW, until_window_end=until_window_end),
    )


T = TypeVar("T")


def on_the_clock(
    start: float, scenario: Callable[[Sandbox, Callable[[], float]], Awaitable[T]]
) -> T:
    """Run `scenario(sandbox, clock)` on fake time starting at `start`, with a sandbox on the
    same clock."""

    async def main() -> T:
        loop = asyncio.get_running_loop()

        def clock() -> float:
            return start + loop.time()

        async with Sandbox(SandboxConfig(rate=None), clock=loop.time, wall_clock=clock) as sandbox:
            os.environ["BATCHER_TOKEN"] = sandbox.token
            try:
                return await scenario(sandbox, clock)
            finally:
                os.environ.pop("BATCHER_TOKEN", None)

    return on_fake_time(main)


@dataclass(frozen=True)
class Seen:
    """One invocation: its result, when it ended, and the requests the sandbox had by then."""

    result: RunResult
    ended: float
    requests: int


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return contacts_file(tmp_path / "in.csv", 10_000)


def job(source: Path, tmp_path: Path) -> Job:
    return Job(
        input_path=source,
        input=InputOptions(action="add", tags=("drip",)),
        report_path=tmp_path / "report.csv",
    )


def test_ten_thousand_rows_at_a_thousand_an_hour_finish_on_the_planned_day_and_hour(
    tmp_path: Path, source: Path
) -> None:
    """Started Monday 08:30 before the window opens, one run waits for 09:00, sends 8,000
    contacts by 16:00, waits overnight and ends Tuesday 10:00: the hour `plan` said, never more
    than 1,000 contacts in any hour as the sandbox counts them; its time left is the
    schedule's."""

    async def scenario(
        sandbox: Sandbox, clock: Callable[[], float]
    ) -> tuple[RunResult, RunResult, float]:
        settings = drip_settings(tmp_path, sandbox.url, until_window_end=False)
        planned = await execute(settings, job(source, tmp_path), dry_run=True, clock=clock)
        result = await execute(
            settings,
            job(source, tmp_path),
            clock=clock,
            on_tick=lambda progress: ticks.append((clock(), progress)),
        )
        most.update(sandbox.stats.max_contacts_per_hour)
        return planned, result, clock()

    ticks: list[tuple[float, RunProgress]] = []
    most: dict[str, int] = {}
    planned, result, ended = on_the_clock(at(2026, 6, 1, 8, 30), scenario)
    assert most == {LOCATION: 1000}
    # The time left is the schedule's: from the first answer (09:00 Monday) to Tuesday 10:00.
    first_at, first = ticks[0]
    assert first.eta_s == pytest.approx(at(2026, 6, 2, 10, 0) - first_at)
    assert first_at == pytest.approx(at(2026, 6, 1, 9, 0), abs=60)
    assert ticks[-1][1].eta_s == pytest.approx(0, abs=60)
    assert planned.schedule is not None
    assert planned.schedule.last == at(2026, 6, 2, 10, 0)
    assert result.exit_code == 0
    assert result.requests == 20
    assert ended == pytest.approx(at(2026, 6, 2, 10, 0), abs=60)


def test_runs_stopped_at_the_window_end_resume_and_keep_the_budget(
    tmp_path: Path, source: Path
) -> None:
    """With --until-window-end: at 08:30 the run stops at once (nothing sent, exit 3, naming
    Monday 09:00); at 09:00 it sends 8,000 and stops when the next batch would fall after 17:00;
    a rerun at 16:30 sends nothing (the budget remembers 16:00's batches and the window ends
    first); Tuesday 09:00 finishes at 10:00. The sandbox never counts over 1,000 in an hour."""

    async def scenario(
        sandbox: Sandbox, clock: Callable[[], float]
    ) -> tuple[list[Seen], dict[str, int], list[str]]:
        settings = drip_settings(tmp_path, sandbox.url, until_window_end=True)
        seen: list[Seen] = []
        windows: list[str] = []
        for wake in (
            at(2026, 6, 1, 8, 30),
            at(2026, 6, 1, 9, 0),
            at(2026, 6, 1, 16, 30),
            at(2026, 6, 2, 9, 0),
        ):
            await asyncio.sleep(max(wake - clock(), 0))
            result = await execute(settings, job(source, tmp_path), clock=clock)
            seen.append(Seen(result, clock(), sandbox.stats.total_requests))
            windows.extend(run.window for run in list_runs(tmp_path / "state", clock()))
        return seen, dict(sandbox.stats.max_contacts_per_hour), windows

    (early, first, late, last), most, windows = on_the_clock(at(2026, 6, 1, 8, 30), scenario)
    assert isinstance(early.result.stopped, WindowEndError)
    assert (early.result.exit_code, early.requests) == (3, 0)
    assert "Mon 2026-06-01 09:00 EDT" in str(early.result.stopped)
    assert (first.result.exit_code, first.requests) == (3, 16)
    assert first.ended == pytest.approx(at(2026, 6, 1, 16, 0), abs=60)
    assert "Tue 2026-06-02 09:00 EDT" in str(first.result.stopped)
    assert (late.result.exit_code, late.requests) == (3, 16)
    assert (last.result.exit_code, last.requests, last.result.resumed) == (0, 20, True)
    assert last.ended == pytest.approx(at(2026, 6, 2, 10, 0), abs=60)
    assert most == {LOCATION: 1000}
    # `batcher status` says when an unfinished run's window opens next, or until when it is
    # open (a finished run: nothing).
    assert windows == [
        f"{WINDOW}: opens next at Mon 2026-06-01 09:00 EDT",
        f"{WINDOW}: open now, until Mon 2026-06-01 17:00 EDT",
        f"{WINDOW}: open now, until Mon 2026-06-01 17:00 EDT",
        "",
    ]
    with (tmp_path / "report.csv").open(encoding="utf-8", newline="") as fh:
        assert {row["status"] for row in csv.DictReader(fh)} == {"success"}


def test_a_run_resumed_by_its_id_keeps_the_drip_and_the_window(
    tmp_path: Path, source: Path
) -> None:
    """`batcher resume RUN_ID` (its input gone) goes at the config's drip and stops at the
    window's end as the run did: Monday 09:00 sends 8,000 and stops; the resume at 16:30 sends
    nothing (the window ends before the budget allows more); Tuesday 09:00's finishes at 10:00,
    never more than 1,000 contacts in an hour."""

    async def scenario(sandbox: Sandbox, clock: Callable[[], float]) -> list[Seen]:
        settings = drip_settings(tmp_path, sandbox.url, until_window_end=True)
        result = await execute(settings, job(source, tmp_path), clock=clock)
        seen = [Seen(result, clock(), sandbox.stats.total_requests)]
        os.remove(source)  # the input is not needed
        for wake in (at(2026, 6, 1, 16, 30), at(2026, 6, 2, 9, 0)):
            await asyncio.sleep(max(wake - clock(), 0))
            assert result.run_id is not None
            resumed_settings, resumed = resume_job(settings, result.run_id)
            result = await execute(resumed_settings, resumed, clock=clock)
            seen.append(Seen(result, clock(), sandbox.stats.total_requests))
        most.update(sandbox.stats.max_contacts_per_hour)
        return seen

    most: dict[str, int] = {}
    first, late, last = on_the_clock(at(2026, 6, 1, 9, 0), scenario)
    assert (first.result.exit_code, first.requests) == (3, 16)
    assert isinstance(late.result.stopped, WindowEndError)
    assert (late.result.exit_code, late.requests) == (3, 16)
    assert (last.result.exit_code, last.requests, last.result.resumed) == (0, 20, True)
    assert last.ended == pytest.approx(at(2026, 6, 2, 10, 0), abs=60)
    assert last.result.run_id == first.result.run_id
    assert most == {LOCATION: 1000}


def test_a_stop_ends_the_wait_for_the_window_at_once(tmp_path: Path, source: Path) -> None:
    """Waiting at 08:00 for a 09:00 window (and saying so, once), a stop a minute later ends
    the run then: exit 3, nothing sent, every row pending."""

    async def scenario(sandbox: Sandbox, clock: Callable[[], float]) -> tuple[RunResult, float]:
        settings = drip_settings(tmp_path, sandbox.url, until_window_end=False)
        stop = Stop()
        asyncio.get_running_loop().call_later(60, stop.request, "SIGTERM")
        result = await execute(
            settings, job(source, tmp_path), clock=clock, stop=stop, events=told.append
        )
        return result, clock()

    told: list[Event] = []
    result, ended = on_the_clock(at(2026, 6, 1, 8, 0), scenario)
    waiting = [event for event in told if event.name == "window.waiting"]
    assert [event.message for event in waiting] == [
        f"outside the send window ({WINDOW}): waiting until Mon 2026-06-01 09:00 EDT"
    ]
    assert result.exit_code == 3
    assert (result.requests, result.counts[Status.PENDING]) == (0, 10_000)
    assert ended == pytest.approx(at(2026, 6, 1, 8, 1), abs=5)


def test_a_small_drip_sends_batches_of_its_size_one_period_apart(tmp_path: Path) -> None:
    """100 contacts per 15 minutes: 300 rows go as three requests of 100, at 0, 15 and 30
    minutes, not one of 300 (the API's 500 is a maximum, not a rule)."""
    source = contacts_file(tmp_path / "small.csv", 300)

    async def scenario(sandbox: Sandbox, clock: Callable[[], float]) -> tuple[RunResult, float]:
        settings = fast_settings(
            tmp_path,
            sandbox.url,
            batch=BatchSettings(size=500),
            limits=LimitSettings(drip="100/15m"),
        )
        result = await execute(settings, job(source, tmp_path), clock=clock)
        sizes.extend(len(request.update.contacts) for request in sandbox.stats.applied)
        return result, clock()

    sizes: list[int] = []
    start = at(2026, 6, 1, 12, 0)
    result, ended = on_the_clock(start, scenario)
    assert result.exit_code == 0
    assert sizes == [100, 100, 100]
    assert ended == pytest.approx(start + 30 * 60, abs=5)


@pytest.mark.parametrize(
    ("window", "start", "rows", "last"),
    [
        # A night window over the spring-forward night is 7 hours: 7,000 contacts, the other
        # 3,000 the next night (22:00, 23:00, and midnight into Monday).
        ("22:00-06:00 America/New_York", (2026, 3, 7, 12, 0), 10_000, (2026, 3, 9, 0, 0, 0)),
        ("22:00-06:00 Europe/Berlin", (2026, 3, 28, 12, 0), 10_000, (2026, 3, 30, 0, 0, 0)),
        # Over the fall-back night it is 9 hours: 9,000, and the last 1,000 at 22:00 Sunday.
        ("22:00-06:00 America/New_York", (2026, 10, 31, 12, 0), 10_000, (2026, 11, 1, 22, 0, 0)),
        ("22:00-06:00 Europe/Berlin", (2026, 10, 24, 12, 0), 10_000, (2026, 10, 25, 22, 0, 0)),
        # A boundary in the skipped hour opens when the clock jumps (03:00): 03, 04, 05.
        ("Sun 02:30-06:00 America/New_York", (2026, 3, 8, 0, 0), 3_000, (2026, 3, 8, 5, 0, 0)),
        # A boundary in the repeated hour is its first occurrence: 01:30 EDT, 01:30 EST, 02:30.
        ("Sun 01:30-03:00 America/New_York", (2026, 11, 1, 0, 0), 3_000, (2026, 11, 1, 2, 30, 0)),
        ("Sun 02:30-04:00 Europe/Berlin", (2026, 10, 25, 0, 0), 3_000, (2026, 10, 25, 3, 30, 0)),
    ],
)
def test_a_drip_over_a_clock_change_ends_when_planned_and_keeps_the_budget(
    tmp_path: Path,
    window: str,
    start: tuple[int, ...],
    rows: int,
    last: tuple[int, int, int, int, int, int],
) -> None:
    """1,000 contacts an hour in a window whose night or boundary has a clock change: `plan`'s
    last request is when the run really ends, at the wall time a person there expects, and no
    hour counts more than 1,000 at the sandbox."""
    zone = ZoneInfo(window.split()[-1])
    source = contacts_file(tmp_path / "in.csv", rows)

    async def scenario(
        sandbox: Sandbox, clock: Callable[[], float]
    ) -> tuple[RunResult, RunResult, float, dict[str, int]]:
        settings = dataclasses.replace(
            drip_settings(tmp_path, sandbox.url, until_window_end=False),
            run=RunSettings(window=window),
        )
        planned = await execute(settings, job(source, tmp_path), dry_run=True, clock=clock)
        result = await execute(settings, job(source, tmp_path), clock=clock)
        return planned, result, clock(), dict(sandbox.stats.max_contacts_per_hour)

    *wall, fold = last
    expected = datetime(*wall, tzinfo=zone, fold=fold).timestamp()  # type: ignore[misc]
    planned, result, ended, most = on_the_clock(
        datetime(*start, tzinfo=zone).timestamp(),  # type: ignore[misc]
        scenario,
    )
    assert planned.schedule is not None
    assert planned.schedule.last == expected
    assert result.exit_code == 0
    assert ended == pytest.approx(expected, abs=60)
    assert most == {LOCATION: 1000}
