"""The drip on the command line: `plan` shows the schedule and warns of automations, `--drip`
and `--until-window-end` reach the run, and a wrong one is one line with exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.app.result import Preview
from batcher.cli import main
from batcher.cli.output import preview_lines, schedule_lines
from batcher.domain.drip import Drip, Due, Schedule
from batcher.domain.windows import parse_window

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PLAN = ["plan", "--sandbox", str(SAMPLES / "contacts.csv"), "--action", "add", "--tags", "vip"]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in ("BATCHER_RUN_WINDOW", "BATCHER_LIMITS_DRIP", "BATCHER_LIMITS_CONTACTS_PER_HOUR"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_a_large_plan_without_a_drip_warns_of_automations(cli: CliRunner) -> None:
    """2,993 contacts and no drip: the warning names the automations and the way out."""
    result = cli.invoke(main, PLAN)
    assert result.exit_code == 0, result.output
    assert "warning: 2,993 contacts with no drip" in result.output
    assert '"Tag Added" workflows' in result.output
    assert "--drip N/PERIOD" in result.output


def test_a_plan_with_a_drip_and_a_window_shows_the_schedule(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--drip 100/15m: batches of 100, 30 requests, the last due in the window's zone; no
    warning (the drip is the way out)."""
    monkeypatch.setenv("BATCHER_RUN_WINDOW", "Mon-Fri 09:00-17:00 America/New_York")
    result = cli.invoke(main, [*PLAN, "--drip", "100/15m"])
    assert result.exit_code == 0, result.output
    assert (
        "drip 100 contacts per 15 min per location, in batches of at most 100; window "
        "Mon-Fri 09:00-17:00 America/New_York"
    ) in result.output
    assert re.search(
        r"sandboxLocation00001\s+2,993 contacts in 30 requests: the last due "
        r"(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d \d\d:\d\d E[SD]T",
        result.output,
    )
    assert "30 requests in 1 group" in result.output
    assert "warning" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drip", "lots"], "limits.drip: 'lots' is not N/PERIOD"),
        (["--until-window-end"], "run.until_window_end: needs a send window"),
    ],
)
def test_a_wrong_drip_option_is_one_line_and_exit_2(
    cli: CliRunner, args: list[str], message: str
) -> None:
    """A drip or a window stop that cannot work is refused before anything is read or sent,
    by `plan` and by `resume` alike (a resumed run takes the same options)."""
    for command in (PLAN, ["resume", "0123456789abcdef"]):
        result = cli.invoke(main, [*command, *args])
        assert result.exit_code == 2, command
        assert message in result.output, command
        assert "Traceback" not in result.output


def test_the_confirmation_shows_the_schedule_and_a_small_run_gets_no_warning() -> None:
    """The confirmation carries the same schedule lines; 1,000 contacts or fewer: no warning."""
    window = parse_window("Mon-Fri 09:00-17:00 Europe/Berlin")
    paced = Schedule(Drip(500, 3600), window, 500, 0.0, (Due("loc", 800, 2, 1780297200.0),))
    preview = Preview('add ["vip"]', 800, 2, 1, "the sandbox", 0.0, schedule=paced)
    lines = list(preview_lines(preview))
    assert lines[-2:] == [
        "  drip 500 contacts per hour per location, in batches of at most 500; window Mon-Fri "
        "09:00-17:00 Europe/Berlin",
        "  loc        800 contacts in 2 requests: the last due Mon 2026-06-01 09:00 CEST",
    ]
    small = Schedule(None, None, 500, 0.0, (Due("loc", 1000, 2, 0.0),))
    assert list(schedule_lines(small)) == []


def test_a_window_without_a_drip_shows_when_the_last_request_is_due_and_still_warns(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window alone paces nothing: the plan shows the window and the last request's time (at
    the rate limit, within the window), and the warning of automations all the same."""
    monkeypatch.setenv("BATCHER_RUN_WINDOW", "Sat,Sun 10:00-11:00 Europe/Berlin")
    result = cli.invoke(main, PLAN)
    assert result.exit_code == 0, result.output
    assert "  window Sat,Sun 10:00-11:00 Europe/Berlin\n" in result.output
    assert re.search(r"6 requests: the last due (Sat|Sun) \S+ 10:00 CES?T", result.output)
    assert "warning: 2,993 contacts with no drip" in result.output
