"""What `batcher status` shows (SPEC "Status"): the runs in the state directory, how far each got.

Read-only, always: the state files are opened read-only (`ledger.runs_in`, `ledger.live_counts`),
the directory's lock is never taken (a run going on holds it, and status must not make the next
run wait or fail), nothing is created. An unfinished run's rows are counted from its state file as
they are now (a run that is sending shows its progress); a finished run shows the counts it saved
when it ended.

With an input file and the options of `run` that identify a run, `input_status` identifies the
run as `execute` does (`batcher.app.identity`: input content, operation, target, shard) and
finds the run that the same `batcher run` command would continue, and what it still has to
send.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from batcher.app.identity import identify
from batcher.app.jobs import Job, describe_operation, input_options
from batcher.app.sharding import missing_index
from batcher.app.undo import undone_report
from batcher.domain.config import Settings
from batcher.domain.windows import parse_window
from batcher.loading import open_input
from batcher.state import RunInfo, live_counts, runs_in

__all__ = ["InputStatus", "RunStatus", "input_status", "list_runs"]

# Loading, ready (started, not finished) and finished, as the ledger's meta says.
FINISHED = "finished"
LOADING = "loading"


@dataclass(frozen=True)
class RunStatus:
    """One run: what the state directory says of it, and its rows by status.

    `counts` are live (counted now from the state file) for an unfinished run, and the ones
    saved when it ended for a finished one; `live` says which.
    """

    info: RunInfo
    counts: dict[str, int] = field(default_factory=dict)
    live: bool = False
    # For an unfinished run with a send window: when it opens next, or that it is open now.
    window: str = ""

    @property
    def state(self) -> str:
        return self.info.state

    @property
    def finished(self) -> bool:
        return self.info.state == FINISHED

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def to_send(self) -> int:
        """Rows the next run of the same command would send: pending and failed ones."""
        return self.counts.get("pending", 0) + self.counts.get("failed", 0)

    @property
    def undo_of(self) -> str | None:
        """For an undo run, the name of the report it undoes."""
        return undone_report(self.info.input)


def _status(info: RunInfo, now: float) -> RunStatus:
    if info.state == FINISHED or info.state == LOADING:
        return RunStatus(info, dict(info.counts), live=False)
    counts = live_counts(info.path)
    window = _window(info.window, now)
    if counts is None:
        return RunStatus(info, dict(info.counts), live=False, window=window)
    return RunStatus(info, counts, live=True, window=window)


def _window(text: str, now: float) -> str:
    """An unfinished run's send window, and when it opens next (or until when it is open)."""
    if not text:
        return ""
    try:
        window = parse_window(text)
    except ValueError:  # kept by a run that accepted it: only a zone gone from the system
        return text
    closes = window.closes_at(now)
    if closes is None:
        return f"{text}: opens next at {window.describe(window.open_at(now))}"
    return f"{text}: open now, until {window.describe(closes)}"


def list_runs(state_dir: Path, now: float | None = None) -> list[RunStatus]:
    """Every run in `state_dir`, oldest first; none when the directory does not exist. `now`
    (epoch seconds, default the time now) is when a run's send window is judged."""
    if not state_dir.is_dir():
        return []
    moment = time.time() if now is None else now
    return [_status(info, moment) for info in runs_in(state_dir)]


@dataclass(frozen=True)
class InputStatus:
    """What `batcher run` would do with an input and options.

    `run` is the run it would continue (unfinished), `last` the latest finished run of the same
    input, operation and target (the command would start a new one), `others` unfinished runs of
    the same input file with another content, operation or target.
    """

    input_path: Path
    operation: str
    target: str
    key: str
    run: RunStatus | None
    last: RunStatus | None
    others: list[RunStatus]


def input_status(settings: Settings, job: Job) -> InputStatus:
    """The run that `batcher run` with this job would continue, if any. Reads only."""
    if job.shards is not None and job.shard is None:
        raise missing_index(job.shards)  # as `run` refuses: a shard count names no run
    options = input_options(settings, job)
    table = open_input(job.input_path, options)
    identity = identify(settings, job, options)
    state_dir = Path(settings.state.dir)
    path = identity.state_file(state_dir)
    runs = list_runs(state_dir)
    current = next((run for run in runs if run.info.path == path), None)
    same_key = [
        run
        for run in runs
        if run.info.path.name.startswith(path.name.removesuffix(".sqlite") + ".")
        or run.info.path == path
    ]
    finished = [run for run in same_key if run.finished]
    resolved = str(job.input_path.resolve())
    others = [
        run
        for run in runs
        if run.info.input == resolved and not run.finished and run.info.path != path
    ]
    return InputStatus(
        input_path=job.input_path,
        operation=describe_operation(job, options, table),
        target=identity.target,
        key=identity.key,
        run=current if current is not None and current.state == "ready" else None,
        last=finished[-1] if finished else None,
        others=others,
    )
