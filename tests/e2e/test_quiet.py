"""For cron and log collectors: `-q` is silent on success, JSON logs keep stdout JSON only, a
stop that needs a person is an error, and every line names its run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.cli import main
from batcher.domain.errors import AuthError, Interrupted, StateError
from batcher.sandbox import SandboxConfig

from .conftest import LOCATION, ThreadedSandbox, contact_ids, write_csv
from .helpers import SECRET

RUN_LINE = re.compile(r"^batcher\[run ([0-9a-f]{16})\]: ")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BATCHER_TOKEN", SECRET)
    return CliRunner()


def _run(cli: CliRunner, source: Path, url: str, *extra: str) -> tuple[int, str, str]:
    args = ["run", str(source), "--action", "add", "--tags", "vip", "--location-id", LOCATION]
    result = cli.invoke(main, [*args, "--base-url", url, *extra])
    return result.exit_code, result.stdout, result.stderr


def test_quiet_prints_nothing_at_all_on_success(cli: CliRunner, tmp_path: Path) -> None:
    """`run -q` that settles every row writes nothing on stdout or stderr (the summary file
    still has it all)."""
    source = write_csv(tmp_path / "in.csv", contact_ids(30))
    with ThreadedSandbox(SandboxConfig(rate=None, token=SECRET)) as sandbox:
        code, out, err = _run(cli, source, sandbox.url, "-q")
    assert (code, out, err) == (0, "", "")
    summary = json.loads((tmp_path / "in-report.summary.json").read_text("utf-8"))
    assert summary["counts"]["success"] == 30


def test_json_logs_keep_stdout_json_only(cli: CliRunner, tmp_path: Path) -> None:
    """With `--log-format json` stdout is one JSON object, the summary (`run.finished`), and
    every stderr line is JSON carrying the run's id."""
    source = write_csv(tmp_path / "in.csv", contact_ids(30))
    with ThreadedSandbox(SandboxConfig(rate=None, token=SECRET)) as sandbox:
        code, out, err = _run(cli, source, sandbox.url, "--log-format", "json")
    assert code == 0
    (summary,) = [json.loads(line) for line in out.splitlines()]
    assert summary["event"] == "run.finished"
    assert summary["counts"]["success"] == 30
    events = [json.loads(line) for line in err.splitlines()]
    assert events
    assert {event["run_id"] for event in events} == {summary["run_id"]}


def test_a_plan_in_json_has_exit_code_0_with_rows_to_send(cli: CliRunner, tmp_path: Path) -> None:
    """`plan.finished` says exit_code 0 for a plan with rows to send (a plan refuses or not)."""
    source = write_csv(tmp_path / "in.csv", contact_ids(30))
    result = cli.invoke(
        main,
        [
            "plan",
            str(source),
            "--sandbox",
            "--tags",
            "vip",
            "--action",
            "add",
            "--log-format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    (summary,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["event"] == "plan.finished"
    assert summary["counts"]["pending"] == 30
    assert summary["exit_code"] == 0


def test_a_refused_token_is_logged_at_error_on_every_run_line(
    cli: CliRunner, tmp_path: Path
) -> None:
    """A 401 stop needs a person: `run.stopped` and the last word are at `error`, in JSON and
    in text (even with `-q`), and each text line of the run names it."""
    source = write_csv(tmp_path / "in.csv", contact_ids(30))
    with ThreadedSandbox(SandboxConfig(rate=None, token="another-token")) as sandbox:
        code, out, err = _run(cli, source, sandbox.url, "--log-format", "json")
        assert code == 3
        events = {event["event"]: event for event in map(json.loads, err.splitlines())}
        assert events["run.stopped"]["level"] == "error"
        assert events["advice"]["level"] == "error"
        code, out, err = _run(cli, source, sandbox.url, "-q")
    assert (code, out) == (3, "")
    lines = err.splitlines()
    assert lines
    assert all(RUN_LINE.match(line) for line in lines)
    assert ": error: stopped: the API refused the token" in lines[-1]


def test_an_interruption_is_a_warning_not_an_error() -> None:
    """A stop by a signal (a cron `timeout`) needs no one: the next run resumes it."""
    assert not Interrupted("SIGTERM").needs_person
    assert AuthError("401").needs_person
    assert StateError("disk full").needs_person
