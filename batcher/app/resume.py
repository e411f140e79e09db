"""Finish an unfinished run from its state alone (`batcher resume RUN_ID`): the input file is
not needed.

A night stopped by `timeout` leaves rows pending; the next night's export replaces the input, so
"run the same command again" can no longer name that run (its key is the input's content). The
state holds every row with all its columns, the operation and the target: `resume_job` finds
the run by its id and builds the Job that continues it, with the same pacing, report and exit
status as `batcher run`; the report goes where the run's last report went unless one is given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from batcher.app.emulator import sandbox_config
from batcher.app.jobs import Job, Recorded
from batcher.domain.config import Settings
from batcher.domain.errors import UsageError
from batcher.loading import InputOptions
from batcher.state import RunInfo, run_file, runs_in

__all__ = ["resume_command", "resume_job"]

# The target a sandbox run records (`batcher.app.identity.run_target`).
_SANDBOX = "sandbox"


def resume_command(info: RunInfo, config_file: Path | None = None) -> str:
    """The command that finishes `info`'s run from its state (what `status` and the warnings of
    other unfinished runs name)."""
    config = f" --config {config_file}" if config_file is not None else ""
    return f"batcher resume {info.run_id}{config}"


def resume_job(
    settings: Settings,
    run_id: str,
    *,
    report_path: Path | None = None,
    config_file: Path | None = None,
) -> tuple[Settings, Job]:
    """The settings and Job that finish the unfinished run `run_id` of the state directory:
    sent to the target it recorded (the API base URL it started with, or the sandbox).

    UsageError (exit 2, nothing sent) when there is no such run, it finished, or it was stopped
    while loading (nothing of it was sent: its own command starts it again).
    """
    state_dir = Path(settings.state.dir)
    found = [info for info in _runs(state_dir) if info.run_id == run_id.strip()]
    if not found:
        raise UsageError(
            f"{state_dir}: no run {run_id} in this state directory; `batcher status` lists the "
            "runs (give the --config of the run if it used another state.dir)"
        )
    info = found[-1]
    if info.state == "finished":
        raise UsageError(f"run {run_id} finished {info.finished or ''}: nothing to resume".strip())
    key = info.path.name.removeprefix("run-").removesuffix(".sqlite")
    if info.state != "ready" or info.path != run_file(state_dir, key):
        raise UsageError(
            f"run {run_id} was stopped while loading its input: nothing of it was sent; run its "
            "own command again"
        )
    input_path = Path(info.input)
    job = Job(
        input_path=input_path,
        input=InputOptions(),
        report_path=report_path or (Path(info.latest_report) if info.latest_report else None),
        sandbox=sandbox_config(config_file, input_path) if info.target == _SANDBOX else None,
        input_name=info.input_name or None,
        undoes=info.undoes or None,  # an undo's summary counts the rows it left alone
        resumes=Recorded(key=key, run_id=info.run_id, operation=info.operation, target=info.target),
    )
    if info.target != _SANDBOX and info.target != settings.api.base_url.rstrip("/"):
        # The rows were settled against that API: they go on there, whatever the config says now.
        settings = dataclasses.replace(
            settings, api=dataclasses.replace(settings.api, base_url=info.target)
        )
    return settings, job


def _runs(state_dir: Path) -> list[RunInfo]:
    return runs_in(state_dir) if state_dir.is_dir() else []
