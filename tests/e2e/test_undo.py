"""`batcher undo`, end to end against the sandbox: run, undo, and every contact's tags are what
they were before the run (SPEC "Undo")."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.app.result import RunResult
from batcher.app.undo import UndoResult, undo
from batcher.cli import main
from batcher.domain.config import RetrySettings
from batcher.domain.errors import Interrupted, NothingToSendError
from batcher.loading import InputOptions
from batcher.sandbox import Sandbox, SandboxConfig
from batcher.support.stopping import Stop

from .conftest import LOCATION, SandboxFactory, contact_ids, fast_settings, write_csv
from .helpers import Gate, read_csv, write_config

# Lower-cased, as HighLevel (and the sandbox) store tags.
POOL = ("vip", "news", "beta", "old customer")
FROM_COLUMNS = InputOptions(default_location_id=LOCATION)


def write_fixture(
    path: Path, initial: dict[str, Iterable[str]], deleted: Iterable[str] = ()
) -> Path:
    document = {
        "locations": {LOCATION: {contact: list(tags) for contact, tags in initial.items()}},
        "deleted": list(deleted),
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def random_tags(ids: list[str], seed: int) -> dict[str, list[str]]:
    """Each contact starts with a random few of POOL (some with none)."""
    rng = random.Random(seed)
    return {contact: rng.sample(POOL, rng.randint(0, 3)) for contact in ids}


def tags_now(sandbox: Sandbox, ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """Each contact's tags as a set: HighLevel keeps tags as a set, so order is not state."""
    return {contact: frozenset(sandbox.universe.tags(contact) or ()) for contact in ids}


def job(tmp_path: Path, source: Path, options: InputOptions, report: str) -> Job:
    return Job(input_path=source, input=options, report_path=tmp_path / report)


async def run_and_undo(
    tmp_path: Path,
    sandbox: Sandbox,
    source: Path,
    options: InputOptions,
    report: str = "report.csv",
    **settings: Any,
) -> tuple[RunResult, dict[str, frozenset[str]], UndoResult]:
    """Run, note every touched contact's tags, undo (its report: undo.csv)."""
    config = fast_settings(tmp_path, sandbox.url, **settings)
    run = await execute(config, job(tmp_path, source, options, report))
    after_run = tags_now(sandbox, sandbox.stats.changes)
    undone = await undo(config, tmp_path / report, report_path=tmp_path / "undo.csv")
    return run, after_run, undone


@pytest.mark.parametrize("report", ["report.csv", "report.xlsx", "report.jsonl"])
async def test_undo_of_an_add_restores_the_tags_before_the_run(
    tmp_path: Path, make_sandbox: SandboxFactory, report: str
) -> None:
    """Tags a contact already had stay; only the tags the run added are removed."""
    ids = contact_ids(45)
    initial = random_tags(ids, seed=1)
    fixture = write_fixture(tmp_path / "fixture.json", initial)
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="add", tags=("vip", "news"), default_location_id=LOCATION)
    async with make_sandbox(fixture=fixture) as sandbox:
        before = tags_now(sandbox, ids)
        run, after_run, undone = await run_and_undo(tmp_path, sandbox, source, options, report)
        after_undo = tags_now(sandbox, ids)

    assert run.exit_code == 0
    assert undone.exit_code == 0, undone.run.stopped
    assert all({"vip", "news"} <= tags for tags in after_run.values())
    assert len(after_run) == len(ids) - sum(1 for c in ids if {"vip", "news"} <= set(initial[c]))
    assert after_undo == before
    # Contacts whose tags the run did not change are not in the undo at all.
    unchanged = sum(1 for contact in ids if {"vip", "news"} <= set(initial[contact]))
    assert undone.source.undone == len(ids) - unchanged
    assert undone.run.counts["nothing_to_undo"] == unchanged
    assert undone.run.counts["invalid"] == 0


async def test_undo_of_a_remove_adds_back_only_what_was_removed(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    ids = contact_ids(33, seed=2)
    initial = random_tags(ids, seed=2)
    fixture = write_fixture(tmp_path / "fixture.json", initial)
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="remove", tags=("vip", "beta"), default_location_id=LOCATION)
    async with make_sandbox(fixture=fixture) as sandbox:
        before = tags_now(sandbox, ids)
        run, after_run, undone = await run_and_undo(tmp_path, sandbox, source, options)
        after_undo = tags_now(sandbox, ids)
        added_back = {
            contact
            for request in sandbox.stats.applied[run.requests :]
            for contact in request.update.contacts
        }

    assert not any(tags & {"vip", "beta"} for tags in after_run.values())
    assert after_undo == before
    assert undone.exit_code == 0
    assert added_back == {c for c in ids if set(initial[c]) & {"vip", "beta"}}


async def test_undo_of_a_remove_all_puts_every_tag_back(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """The sandbox answers a remove-all with the removed tags in tagsRemoved; undo adds them
    back (an answer without them falls back to old_tags: see test_undo.py)."""
    ids = contact_ids(27, seed=3)
    initial = random_tags(ids, seed=3)
    fixture = write_fixture(tmp_path / "fixture.json", initial)
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="remove", remove_all=True, default_location_id=LOCATION)
    async with make_sandbox(fixture=fixture) as sandbox:
        before = tags_now(sandbox, ids)
        settings = fast_settings(tmp_path, sandbox.url)
        run = await execute(settings, job(tmp_path, source, options, "report.csv"))
        lines = read_csv(tmp_path / "report.csv")
        assert all(
            json.loads(line["tags_removed"]) == initial[line["contact_id"]] for line in lines
        )
        after_run = tags_now(sandbox, ids)
        undone = await undo(settings, tmp_path / "report.csv", report_path=tmp_path / "undo.csv")
        after_undo = tags_now(sandbox, ids)

    assert run.exit_code == 0
    assert set(after_run.values()) == {frozenset()}
    assert undone.exit_code == 0
    assert after_undo == before


def per_row_file(path: Path, ids: list[str], seed: int) -> Path:
    """Contacts touched one to five times with adds and removes of overlapping tags, rows of
    different contacts interleaved."""
    rng = random.Random(seed)
    rows = []
    for contact in ids:
        for _ in range(rng.randint(1, 5)):
            tags = rng.sample(POOL, rng.randint(1, 2))
            rows.append((contact, json.dumps(tags), rng.choice(["add", "remove"])))
    rng.shuffle(rows)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["contact_id", "tags", "action"])
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_undo_of_a_per_row_file_takes_each_contacts_rows_back_in_reverse(
    tmp_path: Path, make_sandbox: SandboxFactory, seed: int
) -> None:
    """Add vip on one row and remove it on a later one: the undo adds it back, then removes it,
    so that each contact ends as before the run, however its rows overlapped."""
    ids = contact_ids(30, seed=seed)
    initial = random_tags(ids, seed=seed)
    fixture = write_fixture(tmp_path / "fixture.json", initial)
    source = per_row_file(tmp_path / "changes.csv", ids, seed)
    async with make_sandbox(fixture=fixture) as sandbox:
        before = tags_now(sandbox, ids)
        run, after_run, undone = await run_and_undo(tmp_path, sandbox, source, FROM_COLUMNS)
        after_undo = tags_now(sandbox, ids)

    assert run.exit_code == 0
    assert any(after_run[contact] != before[contact] for contact in after_run)
    assert undone.exit_code == 0, undone.run.stopped
    assert after_undo == before
    # The undo's report names the report row each line takes back, every success row once.
    lines = read_csv(tmp_path / "undo.csv")
    changed = [line for line in read_csv(tmp_path / "report.csv") if line["status"] == "success"]
    undone_rows = {line["undoes_row"] for line in lines if line["status"] == "success"}
    assert undone_rows == {
        line["row"]
        for line in changed
        if line["tags_added"] != "[]" or line["tags_removed"] != "[]"
    }


async def test_an_interrupted_undo_is_finished_by_running_it_again(
    tmp_path: Path, sandboxes: list[Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after two answers (exit 3, the rest pending), the same undo continues the same
    undo run: operations already answered are not sent again, and the tags end as before."""
    ids = contact_ids(60, seed=4)
    initial = random_tags(ids, seed=4)
    fixture = write_fixture(tmp_path / "fixture.json", initial)
    source = per_row_file(tmp_path / "changes.csv", ids, seed=4)
    stop = Stop()
    stop_at: list[int] = []

    def answered(number: int) -> None:
        if stop_at and number == stop_at[0]:
            stop.request("stopped by the test")

    gate = Gate(on_answer=answered)
    async with Sandbox(SandboxConfig(rate=None, fixture=fixture), sleep=gate) as sandbox:
        sandboxes.append(sandbox)
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        before = tags_now(sandbox, ids)
        settings = fast_settings(tmp_path, sandbox.url)
        run = await execute(settings, job(tmp_path, source, FROM_COLUMNS, "report.csv"))
        stop_at.append(gate.calls + 2)
        report = tmp_path / "report.csv"
        first = await undo(settings, report, report_path=tmp_path / "undo.csv", stop=stop)
        first_lines = read_csv(tmp_path / "undo.csv")
        sent_by_first = len(sandbox.stats.applied)
        second = await undo(settings, report, report_path=tmp_path / "undo.csv")
        after = tags_now(sandbox, ids)
        second_sent = [
            (request.update.type, contact, frozenset(request.update.tags))
            for request in sandbox.stats.applied[sent_by_first:]
            for contact in request.update.contacts
        ]

    assert run.exit_code == 0
    assert isinstance(first.run.stopped, Interrupted)
    assert first.exit_code == 3
    assert {line["status"] for line in first_lines} >= {"success", "pending"}
    assert second.run.resumed
    assert second.exit_code == 0
    assert after == before
    # What the first undo settled is not sent again.
    settled = {
        (line["action"], line["contact_id"], frozenset(json.loads(line["tags"])))
        for line in first_lines
        if line["status"] == "success"
    }
    assert not settled & set(second_sent)
    assert [line["status"] for line in read_csv(tmp_path / "undo.csv")].count("pending") == 0


async def test_undo_of_a_run_with_failures_undoes_only_the_successes(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """Rows that failed (a request refused outright), errors (a deleted contact) and invalid
    rows changed nothing: the undo leaves them out and says so."""
    ids = contact_ids(40, seed=5)
    deleted = ids[-3:]
    initial = random_tags(ids[:-3], seed=5)
    fixture = write_fixture(tmp_path / "fixture.json", initial, deleted)
    source = write_csv(tmp_path / "in.csv", [*ids, "not-an-id"])
    options = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)
    # The first request is refused (a 400, which nothing is applied before): its ten rows are
    # `failed`, and certain (a 5xx would make them uncertain: see test_uncertain.py).
    retry = RetrySettings(attempts=1, initial_backoff_s=0.0, max_backoff_s=0.0)
    faults = {"fail_first": 1, "fail_first_status": 400}
    async with make_sandbox(fixture=fixture, faults=faults) as sandbox:
        before = tags_now(sandbox, ids)
        run, _, undone = await run_and_undo(
            tmp_path, sandbox, source, options, "report.csv", retry=retry
        )
        after_undo = tags_now(sandbox, ids)
        undo_sent = {
            contact
            for request in sandbox.stats.applied[len(sandbox.stats.applied) - undone.run.requests :]
            for contact in request.update.contacts
        }

    report = read_csv(tmp_path / "report.csv")
    statuses = {line["status"] for line in report}
    assert statuses == {"success", "failed", "error", "invalid"}
    assert run.exit_code == 1
    assert after_undo == before
    changed = {
        line["contact_id"]
        for line in report
        if line["status"] == "success" and line["tags_added"] != "[]"
    }
    assert undo_sent == changed
    lines = read_csv(tmp_path / "undo.csv")
    assert len(lines) == len(report)
    for line, original in zip(lines, report, strict=True):
        assert line["undoes_row"] == original["row"]
        if original["status"] != "success":
            assert line["status"] == "nothing_to_undo"
            assert (
                line["message"] == f"nothing to undo: row {original['row']} is {original['status']}"
            )
        elif original["tags_added"] == "[]":
            assert line["message"] == f"nothing to undo: row {original['row']} changed no tag"
        else:
            assert line["status"] == "success"
            assert line["undo"] == f"remove the tags row {original['row']} added"
    assert undone.exit_code == 0


async def test_a_report_with_nothing_to_undo_sends_nothing(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    ids = contact_ids(5, seed=6)
    fixture = write_fixture(tmp_path / "fixture.json", dict.fromkeys(ids, ("vip",)))
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)
    async with make_sandbox(fixture=fixture) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        await execute(settings, job(tmp_path, source, options, "report.csv"))
        sent = len(sandbox.stats.applied)
        with pytest.raises(NothingToSendError, match="nothing to undo: no row of the run changed"):
            await undo(settings, tmp_path / "report.csv", report_path=tmp_path / "undo.csv")
        assert len(sandbox.stats.applied) == sent
    assert not (tmp_path / "undo.csv").exists()


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_undo_on_the_command_line_restores_the_tags_and_says_what_it_did(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    ids = contact_ids(12, seed=7)
    for contact in ids[:4]:
        served.universe.add_contact(LOCATION, contact, ["vip", "old"])
    before = tags_now(served, ids)
    write_config(tmp_path, api={"location_id": LOCATION}, state={"dir": str(tmp_path / "st")})
    write_csv(tmp_path / "in.csv", ids)
    common = ["--base-url", served.url, "--yes"]
    run = cli.invoke(main, ["run", "in.csv", "--action", "add", "--tags", "vip,new", *common])
    assert run.exit_code == 0, run.output

    planned = cli.invoke(main, ["undo", "in-report.csv", "--plan", "--base-url", served.url])
    assert planned.exit_code == 0, planned.output
    assert "undo plan for in-report.csv" in planned.output
    assert "undo       12 of the run's 12 rows (12 operations)" in planned.output
    assert not (tmp_path / "in-report-undo.csv").exists()
    assert tags_now(served, ids) != before

    result = cli.invoke(main, ["undo", "in-report.csv", *common])
    assert result.exit_code == 0, result.output
    assert "undo the changes in in-report.csv" in result.output
    assert "12 of the run's 12 rows (12 operations); 0 with nothing to undo" in result.output
    assert tags_now(served, ids) == before
    lines = read_csv(tmp_path / "in-report-undo.csv")
    assert [line["action"] for line in lines] == ["remove"] * 12
    assert {line["tags"] for line in lines} == {'["new"]', '["new","vip"]'}
    # The working files of the undo are gone; its run stays in the state directory.
    assert list((tmp_path / "st" / "undo").iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [
        "contact_id,action,tags\nabcdefghij0123456789,add,vip\n",
        "row,line,contact_id,status\n1,2,abcdefghij0123456789,success\n",
    ],
)
def test_undo_of_a_file_that_is_not_a_report_is_exit_2_in_one_line(
    cli: CliRunner, tmp_path: Path, content: str
) -> None:
    """No run in the state directory wrote it: refused, saying what it may be and what to do."""
    (tmp_path / "in.csv").write_text(content, encoding="utf-8")
    result = cli.invoke(main, ["undo", "in.csv", "--sandbox"])
    assert result.exit_code == 2
    assert result.output.startswith("batcher: error: in.csv: no run in .batcher wrote this file")
    assert "or it is not a batcher report" in result.output
    assert result.output.count("\n") == 1
    assert not (tmp_path / "in-undo.csv").exists()


def test_undo_refuses_to_write_its_report_over_the_runs_report(
    cli: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "r.csv").write_text("row\n", encoding="utf-8")
    result = cli.invoke(main, ["undo", "r.csv", "--report", "r.csv", "--sandbox"])
    assert result.exit_code == 2
    assert "would replace the run's report" in result.output
