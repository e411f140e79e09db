"""Undo is tied to the run that wrote the report, and reads that run's own records; `status`
and the summary name the run's latest complete report (SPEC "Undo", "Status"; issue 20)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.app.result import RunResult
from batcher.cli import main
from batcher.domain.config import BatchSettings, LimitSettings
from batcher.loading import InputOptions
from batcher.sandbox import Sandbox
from batcher.support.stopping import Stop

from .conftest import LOCATION, contact_ids, fast_settings, write_csv
from .helpers import read_csv, write_config
from .test_undo import tags_now


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(tmp_path: Path, sandbox: Sandbox, tags: str, report: str, stop_after: int = 0) -> RunResult:
    """`batcher run in.csv --action add --tags TAGS --report REPORT`, one request at a time in
    batches of 10; stopped (as by Ctrl-C) once `stop_after` requests have settled."""
    settings = fast_settings(
        tmp_path,
        sandbox.url,
        batch=BatchSettings(size=10),
        limits=LimitSettings(concurrency=1, requests_per_interval=1000, interval_ms=1000),
    )
    options = InputOptions(action="add", tags=(tags,), default_location_id=LOCATION)
    stop = Stop()

    def progress(done: int, planned: int) -> None:
        if done == stop_after:
            stop.request("stopped by the test")

    job = Job(input_path=tmp_path / "in.csv", input=options, report_path=tmp_path / report)
    return asyncio.run(execute(settings, job, on_progress=progress, stop=stop))


def setup(tmp_path: Path, sandbox: Sandbox, count: int = 50) -> list[str]:
    ids = contact_ids(count, seed=30)
    write_csv(tmp_path / "in.csv", ids)
    write_config(
        tmp_path,
        api={"location_id": LOCATION},
        state={"dir": str(tmp_path / "state")},
        retry={"initial_backoff_s": 0.0, "max_backoff_s": 0.0},
    )
    return ids


def test_a_resumed_run_with_another_report_is_known_by_its_final_report(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Stopped with a.csv partial, finished with b.csv: status and the summary name b.csv;
    undo of a.csv is refused naming b.csv; undo of b.csv takes back every row."""
    ids = setup(tmp_path, served)
    first = run(tmp_path, served, "vip", "a.csv", stop_after=2)
    second = run(tmp_path, served, "vip", "b.csv")
    assert first.exit_code == 3
    assert second.resumed
    assert second.exit_code == 0
    assert {line["status"] for line in read_csv(tmp_path / "a.csv")} == {"success", "pending"}

    summary = json.loads((tmp_path / "b.summary.json").read_text(encoding="utf-8"))
    assert summary["latest_complete_report"] == str(tmp_path / "b.csv")
    assert summary["run_id"] == second.run_id == first.run_id
    assert summary["invocation"] == 2

    status = cli.invoke(main, ["status"])
    assert status.exit_code == 0, status.output
    assert f"report     {tmp_path / 'b.csv'}\n" in status.output
    assert f"command 1: {tmp_path / 'a.csv'} (50 rows, partial" in status.output
    assert f"command 2: {tmp_path / 'b.csv'} (50 rows, complete" in status.output
    named = cli.invoke(
        main, ["status", "in.csv", "--action", "add", "--tags", "vip", "--base-url", served.url]
    )
    assert f"report     {tmp_path / 'b.csv'}" in named.output

    common = ["--base-url", served.url, "--yes"]
    refused = cli.invoke(main, ["undo", "a.csv", *common])
    assert refused.exit_code == 2
    assert "a.csv: the partial report of an earlier command of its run" in refused.output
    assert f"the run's latest report is {tmp_path / 'b.csv'}: undo that one" in refused.output
    assert not (tmp_path / "a-undo.csv").exists()

    undone = cli.invoke(main, ["undo", "b.csv", *common])
    assert undone.exit_code == 0, undone.output
    assert "50 of the run's 50 rows (50 operations)" in undone.output
    assert set(tags_now(served, ids).values()) == {frozenset()}


def test_undo_of_a_report_acts_on_the_run_that_wrote_exactly_those_bytes(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Two runs wrote report.csv (vip, then newsletter): undo of report.csv takes back the
    newsletter run only; a copy of the first run's report takes back the vip run; an edited
    report is refused; a run undone twice is refused unless --again."""
    ids = setup(tmp_path, served, count=20)
    assert run(tmp_path, served, "vip", "report.csv").exit_code == 0
    shutil.copy(tmp_path / "report.csv", tmp_path / "vip-run.csv")
    assert run(tmp_path, served, "newsletter", "report.csv").exit_code == 0
    common = ["--base-url", served.url, "--yes"]

    text = (tmp_path / "report.csv").read_text(encoding="utf-8")
    forged = text.replace('"[""newsletter""]",[],201', '"[""newsletter"",""owner""]",[],201', 1)
    assert forged != text
    (tmp_path / "forged.csv").write_text(forged, encoding="utf-8")  # tags_added edited
    refused = cli.invoke(main, ["undo", "forged.csv", *common])
    assert refused.exit_code == 2
    assert "forged.csv: no run in " in refused.output
    assert "it was edited" in refused.output

    second = cli.invoke(main, ["undo", "report.csv", *common])
    assert second.exit_code == 0, second.output
    assert set(tags_now(served, ids).values()) == {frozenset({"vip"})}

    again = cli.invoke(main, ["undo", "report.csv", *common])
    assert again.exit_code == 2
    assert "report.csv: its run (started " in again.output
    assert "was undone on " in again.output
    assert "report-undo.csv; give --again to undo it again" in again.output

    first = cli.invoke(main, ["undo", "vip-run.csv", *common])
    assert first.exit_code == 0, first.output
    assert set(tags_now(served, ids).values()) == {frozenset()}

    redone = cli.invoke(main, ["undo", "report.csv", "--again", *common])
    assert redone.exit_code == 0, redone.output
    assert set(tags_now(served, ids).values()) == {frozenset()}  # removing again changes nothing
    status = cli.invoke(main, ["status"])
    assert status.output.count("  undone     ") == 2
