"""`run`, `plan` and `status` name a run with the same options: status can never drift from the
command it reports on (issue 23: `status INPUT` had no `--shard`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

from batcher.app.execute import run_key
from batcher.app.jobs import build_job
from batcher.cli import plan, run, status
from batcher.domain.config import Settings
from batcher.loading import open_input

# The options of `run` and `plan` that do not change which run they mean: how it goes, where the
# report goes, what is printed. Every other option identifies the run, and `status` takes it.
HOW_IT_GOES = {"report_path", "fresh", "allow_empty", "quiet", "log_format"}
ONLY = {run: {"yes"}, plan: {"rejects_path"}, status: set()}


def described(param: click.Parameter) -> dict[str, Any]:
    """What a user sees of an option: its flags, type, help, default (not whether INPUT is
    required: `status` alone lists the runs)."""
    info = param.to_info_dict()
    info.pop("required")
    return info


def identity(command: click.Command) -> dict[str, dict[str, Any]]:
    return {
        param.name: described(param)
        for param in command.params
        if param.name is not None and param.name not in HOW_IT_GOES | ONLY[command]
    }


def test_run_plan_and_status_take_the_same_options_that_identify_a_run() -> None:
    """The options that identify a run are the same, defined alike, on all three commands, and
    include the shard; `run` and `plan` have no other options but the listed ones."""
    names = {command: {param.name for param in command.params} for command in (run, plan)}
    assert identity(run) == identity(plan) == identity(status)
    assert {"input_path", "shard", "shards", "sandbox", "base_url"} <= set(identity(status))
    assert names[run] - set(identity(run)) == HOW_IT_GOES | ONLY[run]
    assert names[plan] - set(identity(plan)) == HOW_IT_GOES | ONLY[plan]


@pytest.mark.parametrize(
    ("option", "value"),
    [("report_path", Path("elsewhere.csv")), ("fresh", True), ("allow_empty", True)],
)
def test_an_option_left_off_status_does_not_change_the_run(
    tmp_path: Path, option: str, value: object
) -> None:
    """The options `status` does not take leave the run's key as it was: the same run."""
    source = tmp_path / "in.csv"
    source.write_text("contact_id\nqFSqySFkVvNzOSqgGqFi\n", encoding="utf-8")
    settings = Settings()
    plain = build_job(settings, source, action="add", tags="vip")
    changed = build_job(settings, source, action="add", tags="vip", **{option: value})
    table = open_input(source, plain.input)
    assert run_key(table, changed, "target") == run_key(table, plain, "target")
