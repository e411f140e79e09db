"""For the people who run it: JSON logs, plan as a preflight, a report people like to open."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.app.result import RunProgress
from batcher.cli import main
from batcher.cli.output import pace as _pace
from batcher.loading import InputOptions
from batcher.sandbox import FaultConfig, SandboxConfig

from .conftest import (
    LOCATION,
    SandboxFactory,
    ThreadedSandbox,
    contact_ids,
    fast_settings,
    write_csv,
)
from .helpers import SECRET

FAST = {
    "BATCHER_LIMITS_INTERVAL_MS": "10",  # a 429 without Retry-After pauses one interval
    "BATCHER_RETRY_INITIAL_BACKOFF_S": "0",
    "BATCHER_RETRY_MAX_BACKOFF_S": "0",
    "BATCHER_BATCH_SIZE": "10",
}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


@pytest.mark.parametrize(
    ("status", "expected"),
    [(429, {"run.started", "location.paused"}), (422, {"request.failed"})],
)
def test_every_json_log_line_parses_carries_an_event_and_never_the_token(
    cli: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    expected: set[str],
) -> None:
    source = write_csv(tmp_path / "in.csv", [*contact_ids(40), "short"])
    faults = FaultConfig(fail_first=2, fail_first_status=status)
    with ThreadedSandbox(SandboxConfig(rate=None, token=SECRET, faults=faults)) as sandbox:
        monkeypatch.setenv("BATCHER_TOKEN", SECRET)
        result = cli.invoke(
            main,
            [
                "run",
                str(source),
                "--action",
                "add",
                "--tags",
                "vip",
                "--location-id",
                LOCATION,
                "--base-url",
                sandbox.url,
                "--log-format",
                "json",
            ],
        )
    assert result.exit_code == (0 if status == 429 else 1), result.output
    lines = result.stderr.splitlines()
    assert lines
    events = [json.loads(line) for line in lines]
    assert all(isinstance(event.get("event"), str) and event["event"] for event in events)
    assert expected <= {event["event"] for event in events}
    assert SECRET.casefold() not in result.stderr.casefold()
    assert SECRET.casefold() not in result.stdout.casefold()
    started = next(e for e in events if e["event"] == "run.started")
    assert started["token_env"] == "BATCHER_TOKEN"
    assert started["target"].startswith("127.0.0.1:")
    # Every line of the run names it, from the first on.
    assert {event.get("run_id") for event in events} == {started["run_id"]}
    # stdout carries JSON only: the summary, as one `run.finished` object.
    (finished,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert finished["event"] == "run.finished"
    assert finished["run_id"] == started["run_id"]
    assert finished["counts"]["invalid"] == 1
    assert finished["exit_code"] == result.exit_code
    assert {"requests", "retries", "rate_limited", "seconds", "stages"} <= set(finished)


def test_json_logs_turn_errors_into_json_too(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(main, ["plan", "missing.csv", "--sandbox", "--log-format", "json"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    event = json.loads(line)
    assert event["event"] == "error"
    assert event["exit_code"] == 2
    assert "missing.csv" in event["message"]


def test_plan_shows_the_first_invalid_rows_and_writes_the_rejects(
    cli: CliRunner, tmp_path: Path
) -> None:
    ids = contact_ids(30)
    bad = ["short", "", "has space in it 0123", "x" * 30, "tooshort2", "abc", "12"]
    source = write_csv(tmp_path / "in.csv", [*ids, *bad, ids[0]])
    result = cli.invoke(
        main,
        [
            "plan",
            str(source),
            "--sandbox",
            "--action",
            "add",
            "--tags",
            "vip",
            "--rejects",
            "rejects.jsonl",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "invalid            6" in out
    # The first five, with their row and line numbers and why; then how many more.
    assert 'row 31 (line 32) "short": contact id "short" does not match' in out
    assert out.count("does not match") == 5
    assert "... and 1 more (listed in rejects.jsonl)" in out
    # The row without an id is looked up by its email (Step 16): no such contact there.
    assert "not_found          1" in out
    assert 'has the email "person31@example.com"' in out
    assert 'row 38 (line 39) "' + ids[0] + '": duplicate of row 1' in out
    assert "to send" in out
    assert "of the daily quota" in out
    rejected = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [line["row"] for line in rejected] == list(range(31, 39))
    assert {line["status"] for line in rejected} == {"invalid", "duplicate", "not_found"}
    assert set(rejected[0]) >= {"row", "line", "contact_id", "status", "message", "email"}
    assert list((tmp_path / ".batcher").glob("*.sqlite")) == []


def test_the_xlsx_report_has_filters_widths_and_a_summary_sheet_and_a_json_summary(
    cli: CliRunner, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "in.csv", [*contact_ids(25), "short"])
    args = ["run", str(source), "--sandbox", "--action", "add", "--tags", "vip"]
    result = cli.invoke(main, [*args, "--report", "report.xlsx"])
    assert result.exit_code == 0, result.output

    book = openpyxl.load_workbook(tmp_path / "report.xlsx")
    assert book.sheetnames == ["report", "Summary"]
    sheet = book["report"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}27"
    widths = {
        sheet.cell(1, col).value: sheet.column_dimensions[sheet.cell(1, col).column_letter].width
        for col in range(1, sheet.max_column + 1)
    }
    assert all(8 <= width <= 61 for width in widths.values())
    assert widths["contact_id"] >= 20  # the ids are 20 characters
    assert widths["message"] > widths["row"]

    facts = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row[0]}
    assert facts["input"] == str(source)
    assert facts["operation"] == 'add ["vip"] at location ' + LOCATION
    assert facts["target"] == "the embedded sandbox"
    assert facts["success"] == 25
    assert facts["invalid"] == 1
    assert facts["requests"] == 3

    summary = json.loads((tmp_path / "report.summary.json").read_text("utf-8"))
    assert summary["counts"] == {
        "success": 25,
        "error": 0,
        "invalid": 1,
        "duplicate": 0,
        "failed": 0,
        "pending": 0,
        "not_found": 0,
        "ambiguous": 0,
    }
    assert summary["requests"] == 3
    assert summary["exit_code"] == 0
    assert summary["report"] == "report.xlsx"
    assert "report.summary.json" in result.stdout

    # CSV stays plain: the data, nothing else.
    result = cli.invoke(main, [*args, "--report", "report.csv"])
    assert result.exit_code == 0, result.output
    with (tmp_path / "report.csv").open(encoding="utf-8", newline="") as fh:
        assert len(list(csv.reader(fh))) == 27
    assert json.loads((tmp_path / "report.summary.json").read_text("utf-8"))["report"] == (
        "report.csv"
    )


async def test_progress_tells_rows_done_of_total_the_pace_429s_and_retries(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    source = write_csv(tmp_path / "in.csv", [*contact_ids(45), "short"])
    ticks: list[RunProgress] = []
    job = Job(
        input_path=source,
        input=InputOptions(action="add", tags=("vip",), default_location_id=LOCATION),
        report_path=tmp_path / "report.csv",
    )
    async with make_sandbox(faults={"fail_first": 1}) as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        result = await execute(settings, job, on_tick=ticks.append)
    assert result.exit_code == 0
    assert [tick.requests_done for tick in ticks] == [1, 2, 3, 4, 5]
    assert {tick.rows_total for tick in ticks} == {45}
    assert {tick.requests_total for tick in ticks} == {5}
    assert sorted(tick.rows_done for tick in ticks) == [tick.rows_done for tick in ticks]
    last = ticks[-1]
    assert last.rows_done == 45
    assert last.retries == 1
    assert last.eta_s == 0.0
    assert last.rows_per_s > 0
    text = _pace(RunProgress(50, 150, 5, 15, retries=2, rate_limited=1, elapsed_s=10.0))
    assert text == "5 rows/s, about 20 s left, 1 429s, 2 retries"
