"""Whole runs that pin what no other test did (issue 23): a long row among short ones, non-ASCII
tags in every report format, the advice of rows a 403 left pending."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.domain.errors import ForbiddenError
from batcher.loading import InputOptions

from .conftest import LOCATION, SandboxFactory, contact_ids, fast_settings, write_csv

FILE_ACTION = InputOptions(action="add", default_location_id=LOCATION)


def read_lines(report: Path) -> list[dict[str, str]]:
    """The report's lines as text cells, whatever its format."""
    if report.suffix == ".csv":
        with report.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    if report.suffix == ".jsonl":
        # JSONL holds real lists: written back as the compact JSON text CSV and XLSX hold.
        compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        return [
            {
                key: value if isinstance(value, str) else compact(value)
                for key, value in line.items()
            }
            for line in map(json.loads, report.read_text(encoding="utf-8").splitlines())
        ]
    workbook = openpyxl.load_workbook(report, read_only=True)
    try:
        cells = workbook.worksheets[0].iter_rows(values_only=True)
        header, *rows = [[str(cell or "") for cell in row] for row in cells]
    finally:
        workbook.close()
    return [dict(zip(header, row, strict=True)) for row in rows]


async def test_a_long_row_among_short_ones_is_sent_in_every_part(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """A file mixing rows of at most 50 tags with one of 60: the long row goes in two requests
    (its first 50 tags, then the other 10), and its line merges both: success, 60 tags added."""
    ids = contact_ids(4)
    long = [f"tag{n:02d}" for n in range(60)]
    source = write_csv(tmp_path / "in.csv", ids, tags=["vip", ",".join(long), "vip,new", "vip"])
    async with make_sandbox() as sandbox:
        settings = fast_settings(tmp_path, sandbox.url)
        result = await execute(
            settings, Job(source, FILE_ACTION, report_path=tmp_path / "report.csv")
        )
        sent = [request.update.tags for request in sandbox.stats.applied]

    assert result.exit_code == 0, result.stopped
    assert sorted(map(tuple, sent)) == sorted(
        [("vip",), tuple(long[:50]), tuple(long[50:]), ("new", "vip")]
    )
    line = read_lines(tmp_path / "report.csv")[1]
    assert line["status"] == "success"
    assert json.loads(line["tags_added"]) == long


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".jsonl"])
async def test_the_report_keeps_non_ascii_tags_as_they_are(
    tmp_path: Path, make_sandbox: SandboxFactory, suffix: str
) -> None:
    """`tags`, `old_tags` and `tags_added` show "été" and "café" as text, never as JSON's
    `\\u00e9` escapes, in a CSV, an XLSX and a JSONL report alike."""
    ids = contact_ids(2)
    universe = tmp_path / "universe.json"
    universe.write_text(
        json.dumps({"locations": {LOCATION: {ids[0]: ["café"], ids[1]: []}}}), encoding="utf-8"
    )
    source = write_csv(tmp_path / "in.csv", ids)
    options = InputOptions(action="add", tags=("été",), default_location_id=LOCATION)
    report = tmp_path / f"report{suffix}"
    async with make_sandbox(fixture=universe) as sandbox:
        result = await execute(
            fast_settings(tmp_path, sandbox.url), Job(source, options, report_path=report)
        )

    assert result.exit_code == 0, result.stopped
    first = read_lines(report)[0]
    assert (first["tags"], first["old_tags"], first["tags_added"]) == (
        '["été"]',
        '["café"]',
        '["été"]',
    )
    assert "\\u00e9" not in report.read_bytes().decode("utf-8", errors="replace")


async def test_rows_a_403_left_pending_say_what_to_do_once(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    """The issue's reproduction: a location the token may not use stops the run, and each
    pending row says why and what to do once ("... then run the same command again to resume"),
    not "...; run the same command again to resume; run the same command again to send it"."""
    source = write_csv(tmp_path / "in.csv", contact_ids(5))
    options = InputOptions(action="add", tags=("vip",), location_id="otherLocation0000002")
    async with make_sandbox() as sandbox:
        result = await execute(
            fast_settings(tmp_path, sandbox.url),
            Job(source, options, report_path=tmp_path / "report.csv"),
        )

    assert isinstance(result.stopped, ForbiddenError)
    messages = {line["message"] for line in read_lines(tmp_path / "report.csv")}
    [message] = messages
    assert message.startswith(
        "not sent: the token has no access to location otherLocation0000002 (HTTP 403"
    )
    assert message.endswith(
        "; check the location id (--location-id, the location_id column or api.location_id) "
        "or use a token of that sub-account, then run the same command again to resume"
    )
    assert message.count("the same command again") == 1
