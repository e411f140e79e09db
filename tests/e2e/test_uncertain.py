"""Answers lost after the API applied the change (the sandbox's `drop_after` fault): every row a
lost attempt changed is `uncertain`, undo never guesses, `--uncertain revert` reverts them
(SPEC "Report", "Undo"; issue 20).

The sandbox keeps, per contact, the changes made by requests whose answer was lost
(`stats.lost_changes`): the truth the report is checked against. One request at a time, so that
the seeded faults fall on the same requests every time.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.app.undo import undo
from batcher.domain.config import BatchSettings, LimitSettings, RetrySettings, Settings
from batcher.domain.errors import Interrupted
from batcher.loading import InputOptions
from batcher.sandbox import FaultConfig, Sandbox, SandboxConfig
from batcher.support.stopping import Stop

from .conftest import LOCATION, SandboxFactory, contact_ids, fast_settings, write_csv
from .helpers import Gate, read_csv
from .test_undo import tags_now, write_fixture

# Many attempts, so that no request fails for good by chance of the draw.
PATIENT = RetrySettings(attempts=20, initial_backoff_s=0.0, max_backoff_s=0.0)


def settings(tmp_path: Path, sandbox: Sandbox, size: int = 10, **sections: Any) -> Settings:
    one_at_a_time = LimitSettings(concurrency=1, requests_per_interval=1000, interval_ms=1000)
    sections.setdefault("retry", PATIENT)
    return fast_settings(
        tmp_path, sandbox.url, batch=BatchSettings(size=size), limits=one_at_a_time, **sections
    )


def job(tmp_path: Path, source: Path, options: InputOptions, report: str = "report.csv") -> Job:
    return Job(input_path=source, input=options, report_path=tmp_path / report)


def uncertain_contacts(report: Path) -> set[str]:
    return {line["contact_id"] for line in read_csv(report) if line["uncertain"] == "true"}


async def check_undo(
    tmp_path: Path,
    config: Settings,
    sandbox: Sandbox,
    before: dict[str, frozenset[str]],
    unsure: set[str],
    *,
    exact_revert: bool,
) -> None:
    """Undo leaves the uncertain contacts alone (named, exit 1) and restores every other one
    exactly; then `--uncertain revert` (again) restores them too when the operation asked was
    what changed them (`exact_revert`)."""
    report = tmp_path / "report.csv"
    left = await undo(config, report, report_path=tmp_path / "undo.csv")
    after = tags_now(sandbox, before)
    assert left.exit_code == 1
    assert left.run.counts["skipped"] == len(unsure) == left.source.skipped
    assert left.run.counts["failed"] == left.run.counts["pending"] == 0
    assert {c: t for c, t in after.items() if c not in unsure} == {
        c: t for c, t in before.items() if c not in unsure
    }
    lines = read_csv(tmp_path / "undo.csv")
    skipped = {line["contact_id"] for line in lines if line["status"] == "skipped"}
    assert skipped == unsure
    assert all(
        line["message"].startswith("uncertain: ") for line in lines if line["status"] == "skipped"
    )

    reverted = await undo(
        config, report, report_path=tmp_path / "undo2.csv", uncertain="revert", again=True
    )
    if exact_revert:
        assert reverted.exit_code == 0
        assert tags_now(sandbox, before) == before
    else:
        assert reverted.exit_code == 1  # a remove-all's old tags are unknown: never invented
        assert reverted.run.counts["skipped"] == len(unsure)


async def test_an_add_whose_answers_were_lost_marks_every_changed_row_uncertain(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """40 new contacts, 60 % of the answers dropped after applying: the rows whose contact a
    lost attempt changed are exactly the uncertain ones (before, they recorded `tags_added []`
    and undo left `vip` on them)."""
    ids = contact_ids(40, seed=20)
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)
    async with make_sandbox(faults={"drop_after": 0.6, "seed": 3}) as sandbox:
        config = settings(tmp_path, sandbox)
        before = {contact: frozenset[str]() for contact in ids}
        run = await execute(config, job(tmp_path, source, options))
        lost = set(sandbox.stats.lost_changes)
        unsure = uncertain_contacts(tmp_path / "report.csv")
        assert run.exit_code == 0
        assert lost, "the seed drops some answers after applying"
        assert unsure == lost
        assert run.uncertain == len(unsure)
        for line in read_csv(tmp_path / "report.csv"):
            if line["uncertain"] == "true":
                assert line["tags_added"] == "[]"  # what the report alone would have said
                assert line["message"].startswith("Tags updated (uncertain: ")
                assert "it now has every tag asked for" in line["message"]
            else:
                assert line["tags_added"] == '["vip"]'
        await check_undo(tmp_path, config, sandbox, before, unsure, exact_revert=True)


async def test_a_remove_whose_answers_were_lost_marks_every_changed_row_uncertain(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    ids = contact_ids(30, seed=21)
    initial = {contact: ("vip", "news", f"own{n}") for n, contact in enumerate(ids)}
    fixture = write_fixture(tmp_path / "fixture.json", initial)
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="remove", tags=("vip", "news"), default_location_id=LOCATION)
    async with make_sandbox(fixture=fixture, faults={"drop_after": 0.5, "seed": 5}) as sandbox:
        config = settings(tmp_path, sandbox)
        before = tags_now(sandbox, ids)
        run = await execute(config, job(tmp_path, source, options))
        lost = set(sandbox.stats.lost_changes)
        unsure = uncertain_contacts(tmp_path / "report.csv")
        assert run.exit_code == 0
        assert lost
        assert unsure == lost
        await check_undo(tmp_path, config, sandbox, before, unsure, exact_revert=True)


async def test_a_remove_all_whose_answers_were_lost_names_the_rows_it_cannot_restore(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """20 contacts with 3 tags each, batches of 5, half the answers dropped: a row whose answer
    came after a lost one records `old_tags []` (its 3 tags gone for good); it is uncertain, and
    undo names it instead of saying "nothing to undo"."""
    ids = contact_ids(20, seed=22)
    initial = {contact: (f"a{n}", f"b{n}", "c") for n, contact in enumerate(ids)}
    fixture = write_fixture(tmp_path / "fixture.json", initial)
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="remove", remove_all=True, default_location_id=LOCATION)
    async with make_sandbox(fixture=fixture, faults={"drop_after": 0.5, "seed": 4}) as sandbox:
        config = settings(tmp_path, sandbox, size=5)
        before = tags_now(sandbox, ids)
        run = await execute(config, job(tmp_path, source, options))
        lost = set(sandbox.stats.lost_changes)
        lines = read_csv(tmp_path / "report.csv")
        unsure = uncertain_contacts(tmp_path / "report.csv")
        assert run.exit_code == 0
        assert lost
        assert unsure == lost
        for line in lines:
            if line["contact_id"] in unsure:
                assert line["old_tags"] == "[]"
                assert "its tags before the run are unknown" in line["message"]
        await check_undo(tmp_path, config, sandbox, before, unsure, exact_revert=False)
        skipped = [line for line in read_csv(tmp_path / "undo2.csv") if line["status"] == "skipped"]
        assert {line["contact_id"] for line in skipped} == unsure
        assert all("it invents none" in line["message"] for line in skipped)


async def test_at_scale_every_contact_a_lost_answer_changed_is_named(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """2,349 rows, 30 % of the answers dropped after applying: before, hundreds of changed
    contacts were in no way marked, and undo left the run's tag on them."""
    ids = contact_ids(2349, seed=23)
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)
    async with make_sandbox(faults={"drop_after": 0.3, "seed": 8}) as sandbox:
        config = settings(tmp_path, sandbox, size=50)
        before = {contact: frozenset[str]() for contact in ids}
        run = await execute(config, job(tmp_path, source, options))
        lost = set(sandbox.stats.lost_changes)
        unsure = uncertain_contacts(tmp_path / "report.csv")
        assert run.exit_code == 0
        assert len(lost) > 300
        assert unsure == lost
        await check_undo(tmp_path, config, sandbox, before, unsure, exact_revert=True)


async def test_an_exposure_before_a_stop_is_kept_for_the_run_that_resumes(
    tmp_path: Path, sandboxes: list[Sandbox], monkeypatch: Any
) -> None:
    """Stopped right after an attempt whose answer was lost: the rows stay pending, marked
    uncertain; the run that resumes them gets an answer showing the tag already there, and the
    rows stay uncertain."""
    ids = contact_ids(10, seed=24)
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)
    stop = Stop()
    gate = Gate(on_answer=lambda n: stop.request("stopped by the test") if n == 1 else None)
    faults = FaultConfig(drop_after=0.5, seed=9)  # the first answer is dropped, then none
    async with Sandbox(SandboxConfig(rate=None, faults=faults), sleep=gate) as sandbox:
        sandboxes.append(sandbox)
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        config = settings(tmp_path, sandbox)
        first = await execute(config, job(tmp_path, source, options, "first.csv"), stop=stop)
        second = await execute(config, job(tmp_path, source, options, "second.csv"))
        lost = set(sandbox.stats.lost_changes)

    assert isinstance(first.stopped, Interrupted)
    assert lost == set(ids)
    stopped = read_csv(tmp_path / "first.csv")
    assert {(line["status"], line["uncertain"]) for line in stopped} == {("pending", "true")}
    noted = (
        " (uncertain: an attempt to send this row may have changed the contact without an answer)"
    )
    assert all(line["message"].endswith(noted) for line in stopped)
    assert second.resumed
    assert second.exit_code == 0
    resumed = read_csv(tmp_path / "second.csv")
    assert {(line["status"], line["uncertain"]) for line in resumed} == {("success", "true")}
    assert second.uncertain == len(ids)


async def test_a_row_failed_by_lost_answers_stays_uncertain_when_a_rerun_settles_it(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """Both attempts dropped after applying: `failed` and uncertain; the rerun's answer shows
    the tag already there: uncertain still, from the first run's record."""
    ids = contact_ids(10, seed=25)
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)
    two = RetrySettings(attempts=2, initial_backoff_s=0.0, max_backoff_s=0.0)
    async with make_sandbox(faults={"drop_after": 0.5, "seed": 4}) as sandbox:  # 2 drops first
        config = settings(tmp_path, sandbox, retry=two)
        first = await execute(config, job(tmp_path, source, options, "first.csv"))
        second = await execute(config, job(tmp_path, source, options, "second.csv"))

    assert first.exit_code == 1
    failed = read_csv(tmp_path / "first.csv")
    assert Counter((line["status"], line["uncertain"]) for line in failed) == {
        ("failed", "true"): 10
    }
    assert second.resumed
    assert second.exit_code == 0
    settled = read_csv(tmp_path / "second.csv")
    assert {(line["status"], line["uncertain"], line["tags_added"]) for line in settled} == {
        ("success", "true", "[]")
    }
