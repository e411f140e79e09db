"""Runs whose input is gone: `batcher resume RUN_ID` finishes them from their state, `run
--strict` makes them cron's business, and a partial report never replaces another run's
complete one."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.app.execute import execute
from batcher.app.jobs import build_job
from batcher.app.status import list_runs
from batcher.cli import main
from batcher.cli.output import run_lines
from batcher.sandbox import SandboxConfig

from .conftest import LOCATION, ThreadedSandbox, contact_ids, fast_settings, write_csv
from .helpers import SECRET, read_csv, untagged

RESUME = re.compile(r"`batcher resume ([0-9a-f]{16})`")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BATCHER_TOKEN", SECRET)
    return CliRunner()


@pytest.fixture
def api() -> ThreadedSandbox:
    return ThreadedSandbox(SandboxConfig(rate=None, token=SECRET))


def _run(cli: CliRunner, source: Path, url: str, *extra: str) -> tuple[int, str, str]:
    args = ["run", str(source), "--action", "add", "--tags", "vip", "--location-id", LOCATION]
    result = cli.invoke(main, [*args, "--base-url", url, *extra])
    return result.exit_code, result.stdout, untagged(result.stderr)


def _stranded(
    cli: CliRunner, tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Path]:
    """A run stopped by a refused token, its input then deleted: its id and report."""
    source = write_csv(tmp_path / "monday.csv", contact_ids(20, seed=5))
    monkeypatch.setenv("BATCHER_TOKEN", "a-rotated-token")
    code, _, err = _run(cli, source, url, "--report", "monday-report.csv")
    monkeypatch.setenv("BATCHER_TOKEN", SECRET)
    assert code == 3, err
    found = RESUME.search(err)
    assert found is not None, err
    source.unlink()
    return found.group(1), tmp_path / "monday-report.csv"


def test_resume_finishes_a_run_whose_input_is_gone(
    cli: CliRunner, tmp_path: Path, api: ThreadedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`batcher resume RUN_ID` sends the stranded rows from the state alone, to the target the
    run recorded, into the run's own report; exit 0, and the run is finished."""
    with api as sandbox:
        run_id, report = _stranded(cli, tmp_path, sandbox.url, monkeypatch)
        assert {row["status"] for row in read_csv(report)} == {"pending"}
        result = cli.invoke(main, ["resume", run_id, "-q"])
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
        assert len(sandbox.stats.applied) == 1
    rows = read_csv(report)
    assert [row["status"] for row in rows] == ["success"] * 20
    assert [row["contact_id"] for row in rows] == contact_ids(20, seed=5)
    summary = json.loads((tmp_path / "monday-report.summary.json").read_text("utf-8"))
    assert (summary["run_id"], summary["resumed"], summary["exit_code"]) == (run_id, True, 0)
    (run,) = list_runs(tmp_path / ".batcher")
    assert run.finished


def test_resume_writes_where_report_says(
    cli: CliRunner, tmp_path: Path, api: ThreadedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--report` sends the finished run's report elsewhere; the partial one is left as it was."""
    with api as sandbox:
        run_id, report = _stranded(cli, tmp_path, sandbox.url, monkeypatch)
        before = report.read_bytes()
        result = cli.invoke(main, ["resume", run_id, "--report", "monday-done.jsonl"])
    assert result.exit_code == 0, result.output
    assert report.read_bytes() == before
    lines = (tmp_path / "monday-done.jsonl").read_text("utf-8").splitlines()
    assert {json.loads(line)["status"] for line in lines} == {"success"}


@pytest.mark.parametrize("which", ["unknown", "finished"])
def test_resume_refuses_what_is_not_an_unfinished_run(
    cli: CliRunner, tmp_path: Path, api: ThreadedSandbox, which: str
) -> None:
    """An id that names no run, or a finished one: exit 2, one line, nothing sent."""
    source = write_csv(tmp_path / "in.csv", contact_ids(5))
    with api as sandbox:
        code, _, err = _run(cli, source, sandbox.url, "--log-format", "json")
        assert code == 0, err
        finished_id = json.loads(err.splitlines()[0])["run_id"]
        run_id = "0123456789abcdef" if which == "unknown" else finished_id
        result = cli.invoke(main, ["resume", run_id])
        assert len(sandbox.stats.applied) == 1
    assert result.exit_code == 2
    (line,) = untagged(result.stderr).splitlines()
    expected = "no run 0123456789abcdef" if which == "unknown" else "nothing to resume"
    assert line.startswith("batcher: error: ")
    assert expected in line


def test_strict_exits_4_while_another_input_s_run_waits(
    cli: CliRunner, tmp_path: Path, api: ThreadedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --strict` that settles its own rows exits 4 and says, at error, which command
    finishes the waiting run; without --strict the same run exits 0 with a warning."""
    with api as sandbox:
        run_id, _ = _stranded(cli, tmp_path, sandbox.url, monkeypatch)
        tuesday = write_csv(tmp_path / "tuesday.csv", contact_ids(5, seed=6))
        code, _, err = _run(cli, tuesday, sandbox.url, "--strict", "-q")
        assert code == 4
        assert err.startswith("batcher: error: an unfinished run of another input")
        assert f"`batcher resume {run_id}` finishes it" in err
        code, _, err = _run(cli, tuesday, sandbox.url, "--fresh")
        assert code == 0
        assert "batcher: warning: an unfinished run of another input" in err


def _report_run(
    cli: CliRunner, source: Path, url: str, report: str, *extra: str
) -> tuple[int, str, str]:
    return _run(cli, source, url, "--report", report, *extra)


def test_a_stopped_run_keeps_the_complete_report_it_would_replace(
    cli: CliRunner, tmp_path: Path, api: ThreadedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Undated paths: a run stopped with rows pending keeps the earlier run's complete report
    (and summary) as `<name>.<its run id>.csv`, says so, and undo still takes that file."""
    with api as sandbox:
        monday = write_csv(tmp_path / "nightly.csv", contact_ids(8, seed=1))
        code, _, err = _report_run(cli, monday, sandbox.url, "r.csv", "--log-format", "json")
        assert code == 0
        good_id = json.loads(err.splitlines()[0])["run_id"]
        good = (tmp_path / "r.csv").read_bytes()
        write_csv(tmp_path / "nightly.csv", contact_ids(8, seed=2))  # the next export
        monkeypatch.setenv("BATCHER_TOKEN", "a-rotated-token")
        code, _, err = _report_run(cli, monday, sandbox.url, "r.csv")
        monkeypatch.setenv("BATCHER_TOKEN", SECRET)
        assert code == 3
        kept = tmp_path / f"r.{good_id}.csv"
        assert f"r.csv held the complete report of run {good_id}" in err
        assert kept.read_bytes() == good
        assert json.loads((tmp_path / f"r.{good_id}.summary.json").read_text())["run_id"] == good_id
        assert {row["status"] for row in read_csv(tmp_path / "r.csv")} == {"pending"}
        assert not list(tmp_path.glob(".r*"))  # nothing held is left behind
        # The run that wrote it names it where it is now (status, the page).
        (good_run,) = [run for run in list_runs(tmp_path / ".batcher") if run.finished]
        assert good_run.info.report == str(kept.resolve())
        undone = cli.invoke(main, ["undo", str(kept), "--base-url", sandbox.url, "-q"])
    assert undone.exit_code == 0, undone.output


def test_a_complete_report_replaces_a_complete_report_as_before(
    cli: CliRunner, tmp_path: Path, api: ThreadedSandbox
) -> None:
    """Two good nights at one undated path: the second report replaces the first, nothing
    is kept beside it (that is what dated paths are for)."""
    with api as sandbox:
        for seed in (1, 2):
            source = write_csv(tmp_path / "nightly.csv", contact_ids(8, seed=seed))
            code, _, _ = _report_run(cli, source, sandbox.url, "r.csv")
            assert code == 0
    assert sorted(path.name for path in tmp_path.glob("*r.*")) == ["r.csv", "r.summary.json"]


async def test_status_names_an_upload_by_the_name_its_person_gave(tmp_path: Path) -> None:
    """A page run's input is stored as `input.csv`; status shows the file's own name too."""
    folder = tmp_path / "uploads" / "0123456789abcdef"
    folder.mkdir(parents=True)
    source = write_csv(folder / "input.csv", contact_ids(5))
    settings = fast_settings(tmp_path, "https://example.invalid")
    job = build_job(
        settings, source, action="add", tags="vip", sandbox=True, report_path=tmp_path / "r.csv"
    )
    await execute(settings, dataclasses.replace(job, input_name="Spring leads.csv"))
    (run,) = list_runs(Path(settings.state.dir))
    (line,) = [line for line in run_lines(run) if line.startswith("  input")]
    assert line == f"  input      Spring leads.csv (uploaded, kept as {source.resolve()})"


def test_resume_finishes_a_stopped_undo_as_an_undo(
    cli: CliRunner, tmp_path: Path, api: ThreadedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An undo stopped by a refused token is finished by `resume` as an undo: its summary
    names the run it takes back, and every tag it added is gone."""
    source = write_csv(tmp_path / "in.csv", contact_ids(6))
    with api as sandbox:
        code, _, err = _run(cli, source, sandbox.url, "--log-format", "json")
        assert code == 0, err
        taken_back = json.loads(err.splitlines()[0])["run_id"]
        monkeypatch.setenv("BATCHER_TOKEN", "a-rotated-token")
        undo = cli.invoke(main, ["undo", "in-report.csv", "--base-url", sandbox.url])
        monkeypatch.setenv("BATCHER_TOKEN", SECRET)
        assert undo.exit_code == 3, undo.output
        found = RESUME.search(untagged(undo.stderr))
        assert found is not None, undo.stderr
        result = cli.invoke(main, ["resume", found.group(1), "--log-format", "json"])
        assert result.exit_code == 0, result.output
        last = sandbox.stats.applied[-1].update
    (summary,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["undoes"] == taken_back
    assert summary["counts"]["success"] == 6
    assert (last.type, last.tags, sorted(last.contacts)) == (
        "remove",
        ["vip"],
        sorted(contact_ids(6)),
    )
