"""`run`, `plan` and `status` name a run with the same options: status can never drift from the
command it reports on (issue 23: `status INPUT` had no `--shard`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import pytest

from batcher.app.emulator import SandboxConfig
from batcher.app.identity import identify
from batcher.app.jobs import build_job, input_options
from batcher.cli.commands import plan, run, status
from batcher.domain.config import ApiSettings, Settings

# The options of `run` and `plan` that do not change which run they mean: how it goes, where the
# report goes, what is printed. Every other option identifies the run, and `status` takes it.
HOW_IT_GOES = {
    "report_path",
    "fresh",
    "allow_empty",
    "quiet",
    "log_format",
    "drip",
    "until_window_end",
}
ONLY = {run: {"yes", "strict"}, plan: {"rejects_path"}, status: set()}


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
    assert identify(settings, changed, input_options(settings, changed)) == identify(
        settings, plain, input_options(settings, plain)
    )


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"action": "add"}, "6877ee50bfed82339387"),
        (
            {"action": "remove", "tags": "a,b", "shard": "1/3", "encoding": "cp1252"},
            "bca37fa92d557e06266d",
        ),
        ({"action": "add", "undoes": "abc"}, "5cbc5b899aab1411cb4b"),
    ],
)
def test_a_run_keeps_the_key_earlier_versions_gave_it(
    tmp_path: Path, options: dict[str, str], key: str
) -> None:
    """The key of a file and options is the one batcher gave them before Step 15 (worked out
    by that version): an unfinished run it left is continued, not started again."""
    source = tmp_path / "in.csv"
    source.write_bytes(b"contact_id,tags\nqFSqySFkVvNzOSqgGqFi,vip\n")
    settings = Settings(api=ApiSettings(location_id="loc1"))
    undoes = options.pop("undoes", None)
    job = dataclasses.replace(build_job(settings, source, **options), undoes=undoes)
    if undoes is not None or "shard" in options:
        job = dataclasses.replace(job, sandbox=SandboxConfig())
    assert identify(settings, job, input_options(settings, job)).key == key
