"""The canary and the error-rate breaker (run.max_error_rate): a wrong location or a run gone bad
stops early, resumable, instead of burning the whole list."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.domain.config import LimitSettings, RunSettings
from batcher.domain.errors import ErrorRateError
from batcher.loading import InputOptions
from batcher.sandbox import EXAMPLE_LOCATION

from .conftest import LOCATION, SandboxFactory, contact_ids, fast_settings, write_csv
from .test_runs import read_report, statuses

ONE_AT_A_TIME = LimitSettings(concurrency=1, requests_per_interval=1000, interval_ms=1000)


def add_vip(location: str) -> InputOptions:
    return InputOptions(action="add", tags=("vip",), location_id=location)


def fixture(path: Path, location: str, ids: list[str]) -> Path:
    path.write_text(json.dumps({"locations": {location: {key: [] for key in ids}}}), "utf-8")
    return path


async def test_the_canary_stops_a_run_against_the_wrong_location_after_one_request(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """The contacts live in another location: the first request's contacts all come back
    "contact does not belong to account"; the run stops there (exit 3) with the rest pending,
    and the same file against the right location then completes."""
    ids = contact_ids(100)
    source = write_csv(tmp_path / "in.csv", ids)
    universe = fixture(tmp_path / "universe.json", EXAMPLE_LOCATION, ids)
    report = tmp_path / "report.csv"
    async with make_sandbox(fixture=universe) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)  # 4 workers: the canary still goes alone
        wrong = Job(input_path=source, input=add_vip(LOCATION), report_path=report)
        result = await execute(settings, wrong)

        assert isinstance(result.stopped, ErrorRateError)
        assert result.exit_code == 3
        assert len(sandbox.stats.applied) == 1
        assert statuses(report) == {"error": 10, "pending": 90}
        assert "contact does not belong to account" in str(result.stopped)
        assert "check the location id" in str(result.stopped)
        pending = read_report(report)[-1]["message"]
        assert "run the same command again" in pending

        right = Job(input_path=source, input=add_vip(EXAMPLE_LOCATION), report_path=report)
        result = await execute(settings, right)
    assert result.exit_code == 0, result.stopped
    assert statuses(report) == {"success": 100}


async def test_the_breaker_stops_a_run_whose_second_half_goes_bad_and_it_resumes(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """The second half of the file's contacts were deleted: once more than half of the contacts
    of the last 20 requests come back `error`, the run stops (exit 3), resumable; with the
    breaker off (max_error_rate 1) the same command sends only the rows left."""
    ids = contact_ids(300)
    source = write_csv(tmp_path / "in.csv", ids)
    report = tmp_path / "report.csv"
    job = Job(input_path=source, input=add_vip(LOCATION), report_path=report)
    async with make_sandbox() as sandbox:
        for contact in ids[150:]:
            sandbox.universe.delete_contact(contact)
        settings = fast_settings(tmp_path, sandbox.url, limits=ONE_AT_A_TIME)
        result = await execute(settings, job)

        # Requests 1-15 succeed, 16 on fail: at request 26, 110 of the last 200 contacts erred.
        assert isinstance(result.stopped, ErrorRateError)
        assert result.exit_code == 3
        assert len(sandbox.stats.applied) == 26
        assert statuses(report) == {"success": 150, "error": 110, "pending": 40}
        assert "last 20 requests" in str(result.stopped)

        off = dataclasses.replace(settings, run=RunSettings(max_error_rate=1.0))
        result = await execute(off, job)
    assert result.resumed
    assert result.exit_code == 0, result.stopped
    assert len(sandbox.stats.applied) == 30
    assert statuses(report) == {"success": 150, "error": 150}


async def test_a_few_errors_do_not_trip_the_canary_or_the_breaker(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """A fifth of the contacts deleted, spread through the file: the run goes to the end."""
    ids = contact_ids(250)
    source = write_csv(tmp_path / "in.csv", ids)
    report = tmp_path / "report.csv"
    async with make_sandbox() as sandbox:
        for contact in ids[::5]:
            sandbox.universe.delete_contact(contact)
        settings = fast_settings(tmp_path, sandbox.url)
        result = await execute(
            settings, Job(input_path=source, input=add_vip(LOCATION), report_path=report)
        )
    assert result.exit_code == 0, result.stopped
    assert statuses(report) == {"success": 200, "error": 50}
