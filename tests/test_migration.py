"""A state file written before Step 9 (no `uncertain`, no `exposed` or `reports` table, no run
id) is continued by the same command: migrated on open, nothing lost (tests/data/pre-step9)."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.app.identity import identify
from batcher.app.jobs import build_job, input_options
from batcher.app.settings import load_settings
from batcher.cli import main
from batcher.state import runs_in

OLD = Path(__file__).resolve().parent / "data" / "pre-step9"
COMMAND = ["run", "contacts.csv", "--sandbox", "--action", "add", "--tags", "vip"]


@pytest.fixture
def old_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The old run's folder: its input and config, and its state file rebuilt from the dump
    under the run key the current code gives the same command."""
    for name in ("contacts.csv", "batcher.toml"):
        shutil.copy(OLD / name, tmp_path / name)
    (tmp_path / "batcher.toml").chmod(0o600)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(Path("batcher.toml"), environ={})
    job = build_job(
        settings, Path("contacts.csv"), config_file=Path("batcher.toml"), action="add",
        tags="vip", sandbox=True,
    )  # fmt: skip
    state_dir = tmp_path / ".batcher"
    state_dir.mkdir(mode=0o700)
    path = identify(settings, job, input_options(settings, job)).state_file(state_dir)
    db = sqlite3.connect(path)
    db.executescript((OLD / "state.sql").read_text(encoding="utf-8"))
    db.close()
    path.chmod(0o600)
    # The sandbox that answers the continued run refuses nothing (the config is not part of the
    # run's identity).
    config = (OLD / "batcher.toml").read_text(encoding="utf-8")
    (tmp_path / "batcher.toml").write_text(config.split("[sandbox.faults]")[0], encoding="utf-8")
    return path


def test_an_old_state_file_is_continued_and_migrated(old_run: Path) -> None:
    (before,) = runs_in(old_run.parent)
    assert (before.run_id, before.reports, before.keeps_reports) == ("", (), False)

    result = CliRunner().invoke(main, COMMAND)

    assert result.exit_code == 0, result.output
    assert "(continued an unfinished run)" in result.output
    with (old_run.parent.parent / "contacts-report.csv").open(encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    assert [line["status"] for line in lines].count("success") == 11
    assert {line["uncertain"] for line in lines} == {"false"}  # the old run kept no exposure
    summary = json.loads((old_run.parent.parent / "contacts-report.summary.json").read_text())
    (after,) = runs_in(old_run.parent)
    assert after.state == "finished"
    assert after.run_id == summary["run_id"] != ""
    assert summary["invocation"] == 2  # the old run's command was the first
    assert [(r.invocation, r.rows, r.complete) for r in after.reports] == [(2, 12, True)]
    assert after.reports[0].sha256 == summary["report_sha256"]
    db = sqlite3.connect(old_run)
    columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert "uncertain" in columns
    assert {"exposed", "reports"} <= tables


def test_an_old_state_file_is_listed_by_status_as_it_is(old_run: Path) -> None:
    """Status only reads: the old file is shown, not migrated."""
    result = CliRunner().invoke(main, ["status"])

    assert result.exit_code == 0, result.output
    assert "unfinished: 5 rows still to send" in result.output
    db = sqlite3.connect(old_run)
    columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
    db.close()
    assert "uncertain" not in columns


def test_the_report_of_an_old_finished_run_is_undone_from_the_runs_records(
    old_run: Path, tmp_path: Path
) -> None:
    """The old version kept no fingerprint of its reports: the one run that names the file is
    taken (saying so), and what it undoes is read from that run's records, not the file."""
    report = tmp_path / "contacts-report.csv"
    report.write_text("not read: the run's records are\n", encoding="utf-8")
    db = sqlite3.connect(old_run)
    with db:
        db.execute("UPDATE meta SET value = 'finished' WHERE key = 'state'")
        db.execute("UPDATE meta SET value = ? WHERE key = 'report'", (str(report),))
    db.close()

    result = CliRunner().invoke(main, ["undo", "contacts-report.csv", "--sandbox", "--yes"])

    assert result.exit_code == 0, result.output
    assert "written by an earlier version of batcher, which kept no fingerprint" in result.output
    assert "6 of the run's 12 rows (6 operations); 6 with nothing to undo" in result.output
    (old,) = [info for info in runs_in(old_run.parent) if not info.undoes]
    assert old.undone is not None
