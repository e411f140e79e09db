"""Mapped columns end to end (issue 25 item 1): a file calling its tags, action and location
columns "Labels", "Do" and "Sub-account" runs with `--tags-column`, `--action-column` and
`--location-column` on the sandbox, each row sent as its own cells say."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.cli import main

from .conftest import contact_ids

OTHER = "asdrwHvLUxlfw5SqKVCN"  # the sandbox token reaches it and the default one
MAPPING = ["--tags-column", "Labels", "--action-column", "Do", "--location-column", "Sub-account"]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BATCHER_API_LOCATION_ID", "sandboxLocation00001")
    return CliRunner()


def mapped_file(path: Path, ids: list[str]) -> Path:
    """Rows cycling through add/remove, two tag sets and two locations (one left empty:
    the configured location), and one row whose action is neither."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Contact Id", "Labels", "Do", "Sub-account"])
        for i, contact in enumerate(ids):
            writer.writerow(
                [contact, "vip,gold" if i % 2 else "lead", "ADD" if i % 3 else "remove", OTHER]
                if i % 4
                else [contact, "lead", "add", ""]
            )
        writer.writerow(["ZZZZZZZZZZZZZZZZZZZZ", "x", "tag", OTHER])
    return path


def test_a_run_reads_the_columns_named(cli: CliRunner, tmp_path: Path) -> None:
    """Every row is sent with its own tags, action and location from the columns named, and
    the report says so row by row; a bad action in the named column is that row's error."""
    ids = contact_ids(24, seed=25)
    source = mapped_file(tmp_path / "labels.csv", ids)
    args = ["run", str(source), "--sandbox", "--yes", "--report", "out.jsonl", *MAPPING]
    result = cli.invoke(main, args)
    assert result.exit_code == 0, result.output
    report = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(report) == 25
    for i, (line, contact) in enumerate(zip(report, ids, strict=False)):
        expected = (
            (["vip", "gold"] if i % 2 else ["lead"], "add" if i % 3 else "remove", OTHER)
            if i % 4
            else (["lead"], "add", "sandboxLocation00001")
        )
        assert line["contact_id"] == contact
        assert (line["tags"], line["action"], line["location_id"]) == expected
        assert line["status"] == "success", line
    assert report[-1]["status"] == "invalid"
    assert report[-1]["message"] == 'action "tag" is not add or remove'
    # The input's own columns are carried to the report.
    assert (report[1]["Labels"], report[1]["Do"]) == ("vip,gold", "ADD")
    assert report[1]["tags_added"] == ["gold", "vip"]

    # `status` with the same options names the same run: finished.
    status = cli.invoke(main, ["status", str(source), "--sandbox", *MAPPING])
    assert status.exit_code == 0, status.output
    assert "finished" in status.stdout


def test_a_column_name_not_in_the_file_is_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    """A mistyped column name stops before anything is read or sent: one line naming it and the
    header, exit 2."""
    source = mapped_file(tmp_path / "labels.csv", contact_ids(3))
    result = cli.invoke(
        main, ["plan", str(source), "--sandbox", "--action", "add", "--tags-column", "Label"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"batcher: error: {source}: no column 'Label' for --tags-column (columns: 'Contact Id', "
        "'Labels', 'Do', 'Sub-account')"
    )
