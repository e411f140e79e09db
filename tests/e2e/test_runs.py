"""Whole runs through the runner against the sandbox on loopback."""

from __future__ import annotations

import csv
import functools
import gc
import json
from pathlib import Path
from typing import Any

import pytest

from batcher.app import rendering
from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.app.rendering import Split
from batcher.domain.config import LimitSettings, RetrySettings
from batcher.domain.errors import (
    AuthError,
    ForbiddenError,
    QuotaReachedError,
    StateError,
    TooManyFailuresError,
)
from batcher.domain.models import Status
from batcher.loading import InputOptions
from batcher.sandbox import RateConfig
from batcher.state import Ledger
from batcher.support.collecting import FEWER

from .conftest import LOCATION, SandboxFactory, contact_ids, fast_settings, write_csv

ADD_VIP = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def statuses(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in read_report(path):
        counts[line["status"]] = counts.get(line["status"], 0) + 1
    return counts


def job(tmp_path: Path, source: Path, options: InputOptions = ADD_VIP, **kw: Any) -> Job:
    return Job(input_path=source, input=options, report_path=tmp_path / "report.csv", **kw)


async def test_every_row_is_sent_once_and_reported_once(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    ids = contact_ids(95)
    source = write_csv(tmp_path / "in.csv", [*ids, ids[3], "short"])
    async with make_sandbox() as sandbox:
        result = await execute(fast_settings(tmp_path, sandbox.url), job(tmp_path, source))

    assert result.exit_code == 0
    assert result.requests == 10  # 95 contacts in batches of 10
    lines = read_report(tmp_path / "report.csv")
    assert [line["row"] for line in lines] == [str(n) for n in range(1, 98)]
    assert statuses(tmp_path / "report.csv") == {"success": 95, "duplicate": 1, "invalid": 1}
    assert lines[95]["message"] == "duplicate of row 4"
    assert lines[0]["tags_added"] == '["vip"]'
    assert lines[0]["http_status"] == "201"
    assert lines[0]["attempts"] == "1"
    sent = [c for request in sandbox.stats.applied for c in request.update.contacts]
    assert sorted(sent) == sorted(ids)
    assert set(sandbox.stats.by_status) == {201}


async def test_a_fault_mix_ends_with_every_row_final_and_each_change_applied_once(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    ids = contact_ids(400)
    source = write_csv(tmp_path / "in.csv", ids)
    faults = {
        "error_rate": 0.2,
        "drop_before": 0.1,
        "drop_after": 0.1,
        "malformed": 0.05,
        "fail_first": 2,
        "seed": 7,
    }
    retry = RetrySettings(attempts=15, initial_backoff_s=0.0, max_backoff_s=0.0)
    async with make_sandbox(faults=faults) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url, retry=retry)
        result = await execute(settings, job(tmp_path, source))

    assert result.exit_code == 0, result.stopped
    assert statuses(tmp_path / "report.csv") == {"success": 400}
    assert result.retries > 0
    assert set(sandbox.stats.faults) == {
        "error",
        "fail_first",
        "drop_before",
        "drop_after",
        "malformed",
    }
    # A retried add changes nothing: every contact changed exactly once, however often sent.
    assert dict(sandbox.stats.changes) == dict.fromkeys(ids, 1)


async def test_a_refused_token_stops_the_run_with_every_row_pending(
    tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: Any
) -> None:
    source = write_csv(tmp_path / "in.csv", contact_ids(30))
    async with make_sandbox() as sandbox:
        monkeypatch.setenv("BATCHER_TOKEN", "not-the-sandbox-token")
        result = await execute(fast_settings(tmp_path, sandbox.url), job(tmp_path, source))

    assert isinstance(result.stopped, AuthError)
    assert result.exit_code == 3
    lines = read_report(tmp_path / "report.csv")
    assert {line["status"] for line in lines} == {"pending"}
    assert "HTTP 401" in lines[0]["message"]
    assert "run the same command again" in lines[0]["message"]
    assert "not-the-sandbox-token" not in (tmp_path / "report.csv").read_text(encoding="utf-8")


async def test_a_location_the_token_may_not_use_stops_the_run(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    source = write_csv(tmp_path / "in.csv", contact_ids(5))
    options = InputOptions(action="add", tags=("vip",), location_id="otherLocation0000002")
    async with make_sandbox() as sandbox:
        result = await execute(fast_settings(tmp_path, sandbox.url), job(tmp_path, source, options))
    assert isinstance(result.stopped, ForbiddenError)
    assert result.exit_code == 3


async def test_an_exhausted_daily_quota_stops_the_run(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """Once X-RateLimit-Daily-Remaining reaches the reserve (0), nothing more is sent: no 429
    is needed, the rest stays pending with a message saying why, exit 3."""
    source = write_csv(tmp_path / "in.csv", contact_ids(50))
    settings_limits = LimitSettings(concurrency=1, requests_per_interval=1000, interval_ms=1000)
    async with make_sandbox(rate=RateConfig(max=1000, interval_ms=1000, daily=3)) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url, limits=settings_limits)
        result = await execute(settings, job(tmp_path, source))
    assert isinstance(result.stopped, QuotaReachedError)
    assert result.exit_code == 3
    assert statuses(tmp_path / "report.csv") == {"success": 30, "pending": 20}
    assert sandbox.stats.by_status == {201: 3}
    pending = read_report(tmp_path / "report.csv")[-1]["message"]
    assert pending.startswith("not sent: the location's daily request quota is reached")


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_the_api_never_has_more_requests_at_once_than_limits_concurrency(
    tmp_path: Path, make_sandbox: SandboxFactory, concurrency: int
) -> None:
    """Twice as many workers as `limits.concurrency` record answers while others are on the
    wire, but the API never holds more than `limits.concurrency` of them at once (each answer
    takes the sandbox 1 to 4 ms, so requests overlap there whenever they may)."""
    source = write_csv(tmp_path / "in.csv", contact_ids(400))
    limits = LimitSettings(concurrency=concurrency, requests_per_interval=1000, interval_ms=1000)
    async with make_sandbox(faults={"latency_ms": (1, 4)}) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url, limits=limits)
        result = await execute(settings, job(tmp_path, source))
    assert result.exit_code == 0
    assert result.requests == 40
    assert sandbox.stats.max_in_flight <= concurrency
    assert sandbox.stats.in_flight == 0


async def test_too_many_failures_in_a_row_stop_the_run(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    source = write_csv(tmp_path / "in.csv", contact_ids(100))
    retry = RetrySettings(
        attempts=2, initial_backoff_s=0.0, max_backoff_s=0.0, max_consecutive_failures=3
    )
    limits = LimitSettings(concurrency=1, requests_per_interval=1000, interval_ms=1000)
    async with make_sandbox(faults={"error_rate": 1.0}) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url, retry=retry, limits=limits)
        result = await execute(settings, job(tmp_path, source))
    assert isinstance(result.stopped, TooManyFailuresError)
    assert result.exit_code == 3
    assert statuses(tmp_path / "report.csv") == {"failed": 30, "pending": 70}
    failed = read_report(tmp_path / "report.csv")[0]
    assert failed["attempts"] == "2"
    assert failed["http_status"].startswith("5")


async def test_a_rerun_sends_only_the_failed_rows_then_a_finished_run_starts_anew(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    ids = contact_ids(200)
    source = write_csv(tmp_path / "in.csv", ids)
    retry = RetrySettings(attempts=1, initial_backoff_s=0.0, max_backoff_s=0.0)
    # The first 7 requests fail and, with one attempt each, their rows end `failed`.
    async with make_sandbox(faults={"fail_first": 7}) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url, retry=retry)
        first = await execute(settings, job(tmp_path, source))
        assert first.exit_code == 1
        failed = {
            line["contact_id"]
            for line in read_report(tmp_path / "report.csv")
            if line["status"] == "failed"
        }
        assert len(failed) == 70

        applied = len(sandbox.stats.applied)
        second = await execute(settings, job(tmp_path, source))
        resent = {c for r in sandbox.stats.applied[applied:] for c in r.update.contacts}
        assert second.resumed
        assert second.exit_code == 0
        assert resent == failed
        assert statuses(tmp_path / "report.csv") == {"success": 200}

        applied = len(sandbox.stats.applied)
        third = await execute(settings, job(tmp_path, source))
        assert len(sandbox.stats.applied) - applied == 20
    assert not third.resumed
    assert len(list((tmp_path / "state").glob("run-*.sqlite"))) == 2


async def test_a_row_with_more_than_50_tags_is_sent_in_parts_and_merged(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    tags = [f"t{n:03}" for n in range(120)]
    ids = contact_ids(3)
    source = write_csv(tmp_path / "in.csv", ids, tags=[",".join(tags)] * 3)
    options = InputOptions(action="add", default_location_id=LOCATION)
    async with make_sandbox() as sandbox:
        result = await execute(fast_settings(tmp_path, sandbox.url), job(tmp_path, source, options))
        sizes = [len(request.update.tags) for request in sandbox.stats.applied]
    assert result.exit_code == 0
    assert sorted(sizes) == [20, 50, 50]
    line = read_report(tmp_path / "report.csv")[0]
    assert line["status"] == "success"
    assert json.loads(line["tags_added"]) == sorted(tags)
    assert json.loads(line["old_tags"]) == []


async def test_remove_all_tags_sends_an_empty_tag_list_and_a_boolean(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    ids = contact_ids(4)
    source = write_csv(tmp_path / "in.csv", ids)
    add = InputOptions(action="add", tags=("a", "b"), default_location_id=LOCATION)
    remove_all = InputOptions(action="remove", remove_all=True, default_location_id=LOCATION)
    async with make_sandbox() as sandbox:
        await execute(fast_settings(tmp_path, sandbox.url), job(tmp_path, source, add))
        result = await execute(
            fast_settings(tmp_path, sandbox.url), job(tmp_path, source, remove_all)
        )
        last = sandbox.stats.applied[-1].update
    assert result.exit_code == 0
    assert last.remove_all_tags is True
    assert last.tags == []
    line = read_report(tmp_path / "report.csv")[0]
    assert json.loads(line["tags_removed"]) == ["a", "b"]
    assert line["tags"] == "[]"


async def test_plan_sends_nothing_and_counts_requests(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    ids = contact_ids(25)
    source = write_csv(tmp_path / "in.csv", [*ids, ids[0], ""])
    async with make_sandbox() as sandbox:
        result = await execute(
            fast_settings(tmp_path, sandbox.url), job(tmp_path, source), dry_run=True
        )
        assert sandbox.stats.total_requests == 0
    assert result.plan.requests == 3
    # The row without an id is looked up by its email (Step 16), read-only: no such contact.
    assert result.counts == {Status.PENDING: 25, Status.DUPLICATE: 1, Status.NOT_FOUND: 1}
    assert sandbox.stats.searches_answered == 1
    assert not (tmp_path / "report.csv").exists()


async def test_a_report_that_cannot_be_written_stops_with_exit_3_and_keeps_the_outcomes(
    tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: Any
) -> None:
    """The outcomes stay in the ledger: the next run sends nothing and writes the report."""
    source = write_csv(tmp_path / "in.csv", contact_ids(20))

    def disk_full(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    async with make_sandbox() as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        monkeypatch.setattr("batcher.app.rendering.write_rows", disk_full)
        with pytest.raises(StateError, match="No space left") as raised:
            await execute(settings, job(tmp_path, source))
        assert raised.value.exit_code == 3
        monkeypatch.undo()
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        result = await execute(settings, job(tmp_path, source))
        assert len(sandbox.stats.applied) == 2  # the first run's two requests, none since
    assert result.resumed
    assert statuses(tmp_path / "report.csv") == {"success": 20}


async def test_an_unfinished_run_is_not_continued_against_another_api(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """Rows settled against one base URL are sent again to another (a new run, not a resume)."""
    ids = contact_ids(40)
    source = write_csv(tmp_path / "in.csv", ids)
    retry = RetrySettings(attempts=1, initial_backoff_s=0.0, max_backoff_s=0.0)
    async with make_sandbox(faults={"error_rate": 0.5, "seed": 3}) as first:
        settings = fast_settings(tmp_path, first.url, retry=retry)
        assert (await execute(settings, job(tmp_path, source))).exit_code == 1
    async with make_sandbox() as second:
        result = await execute(fast_settings(tmp_path, second.url), job(tmp_path, source))
        sent = {c for request in second.stats.applied for c in request.update.contacts}
    assert not result.resumed
    assert sent == set(ids)


async def test_a_csv_report_makes_every_formula_cell_inert_and_no_other(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """The report rendered from the ledger guards exactly the cells `_inert` would: formula
    starts (ASCII and fullwidth, each of them: SQL marks these itself), behind blanks too;
    plain text, digits, accents and dashes inside a cell are left alone."""
    from batcher.reports.formats import _inert

    notes = [
        "=HYPERLINK(1)", " =1+1", "\u00a0@SUM(A1)", "\uff1d1", "\tx", "-2", "+1 555",
        "plain", "Zoë", "été", "a-b", "12345", "[x]", "",
        "@x", "\rx", "\uff0b1", "\uff0d1", "\uff201", "\u3000=1",
    ]  # fmt: skip
    ids = contact_ids(len(notes))
    source = write_csv(tmp_path / "in.csv", ids, note=notes)
    async with make_sandbox() as sandbox:
        result = await execute(fast_settings(tmp_path, sandbox.url), job(tmp_path, source))
    assert result.exit_code == 0
    lines = read_report(tmp_path / "report.csv")
    assert [line["note"] for line in lines] == [_inert(note) for note in notes]
    assert [line["note"] for line in lines][:7] == [
        "'=HYPERLINK(1)", "' =1+1", "'\u00a0@SUM(A1)", "'\uff1d1", "'\tx", "'-2", "'+1 555",
    ]  # fmt: skip
    assert [line["note"] for line in lines][7:14] == notes[7:14]
    assert [line["note"] for line in lines][14:] == [f"'{note}" for note in notes[14:]]


async def test_a_report_written_by_two_processes_is_the_one_a_single_process_writes(
    tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: Any
) -> None:
    """A large report is written by batcher and a helper process (batcher.app.rendering): here
    every report is large, and the file and the counts are those of a run that writes it alone."""
    ids = contact_ids(60)
    source = write_csv(tmp_path / "in.csv", [*ids, ids[3], "short", "=cmd", 'a "b", c'])
    monkeypatch.setattr(rendering, "cores", lambda: 2)
    results, notices = [], []
    for name, from_rows in (("one.csv", 10**9), ("two.csv", 2)):
        monkeypatch.setattr(
            "batcher.app.execute.Split", functools.partial(Split, from_rows=from_rows)
        )
        async with make_sandbox() as sandbox:
            result = await execute(
                fast_settings(tmp_path, sandbox.url),
                Job(input_path=source, input=ADD_VIP, report_path=tmp_path / name, fresh=True),
                notify=notices.append,
            )
        results.append(result)
    assert not [notice for notice in notices if notice.startswith("report:")]
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert results[0].counts == results[1].counts
    assert results[1].counts == {Status.SUCCESS: 60, Status.DUPLICATE: 1, Status.INVALID: 3}
    assert results[0].reasons == results[1].reasons


async def test_the_load_runs_without_the_cyclic_collector_which_comes_back_after(
    tmp_path: Path, make_sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading makes millions of short-lived objects and almost no cycles: the collector is
    off while it loads (it cost a fourteenth of the time), and back on for the rest."""
    seen: list[bool] = []
    load = Ledger.load

    def watched(self: Ledger, *args: Any, **kwargs: Any) -> int:
        seen.append(gc.isenabled())
        return load(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "load", watched)
    source = write_csv(tmp_path / "in.csv", contact_ids(30))
    async with make_sandbox() as sandbox:
        result = await execute(fast_settings(tmp_path, sandbox.url), job(tmp_path, source))
    assert result.exit_code == 0
    assert seen == [False]
    assert gc.isenabled()


async def test_a_run_collects_garbage_less_often_while_it_works(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """Raised while the run works (`batcher.support.collecting`), the caller's after it."""
    seen: list[tuple[int, ...]] = []

    def confirm(_: object) -> bool:
        seen.append(gc.get_threshold())
        return True

    before = gc.get_threshold()
    async with make_sandbox() as sandbox:
        source = write_csv(tmp_path / "in.csv", contact_ids(30))
        settings = fast_settings(tmp_path, sandbox.url)
        result = await execute(settings, job(tmp_path, source), confirm=confirm)
    assert result.exit_code == 0
    assert seen == [tuple(max(own, ours) for own, ours in zip(before, FEWER, strict=True))]
    assert gc.get_threshold() == before
