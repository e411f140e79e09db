"""One run: prepare → load → plan → confirm → send → report. The faces parse; this composes;
the stages do (`batcher.app.stages`, each returning a small frozen result).

`execute()` is the library entry point: it takes settings and a `Job` (see `batcher.app.jobs`),
and returns a `RunResult` whatever happens after the input has been accepted (a stopped run
still writes its report). Usage errors raise before anything is sent.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from batcher.app.credentials import LocationCredential, credentials_of, require
from batcher.app.jobs import Job
from batcher.app.rendering import Split
from batcher.app.result import Preview, Progress, RunResult, Tick, pending_message
from batcher.app.stages.confirm import confirm as confirm_stage
from batcher.app.stages.confirm import preview
from batcher.app.stages.load import Loaded, load
from batcher.app.stages.lookup import Looked, lookup
from batcher.app.stages.plan import Planned, all_invalid, plan
from batcher.app.stages.prepare import Prepared, prepare
from batcher.app.stages.report import Reported, refuse_all_invalid, report
from batcher.app.stages.sent import Sent
from batcher.domain.config import Settings
from batcher.domain.credentials import credential_variables
from batcher.domain.errors import BatcherError
from batcher.domain.events import Event, EventSink, notices
from batcher.domain.models import Cell
from batcher.reports.formats import check_report_path, report_columns, summary_path, write_summary
from batcher.state import Ledger
from batcher.support.collecting import fewer_collections
from batcher.support.stopping import Stop

__all__ = ["RowsReader", "execute"]

# Hears the report's header and its rows (as `Ledger.report_rows` gives them), once the run has
# settled: for a Python caller, who gets the rows without a report file.
RowsReader = Callable[[tuple[str, ...], Iterator[tuple[Cell, ...]]], None]


def _ignore(message: str) -> None:
    """The default `notify`: a library caller that passes none hears nothing."""


class _Laps:
    """Where a run's time goes, stage by stage (a stage timed twice adds up)."""

    def __init__(self) -> None:
        self.began = self._last = time.monotonic()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - self._last
        self._last = now

    def shown(self) -> dict[str, float]:
        """The stages' times; a person's time to answer the confirmation is none of them."""
        return {stage: seconds for stage, seconds in self.stages.items() if stage != "confirm"}


async def execute(
    settings: Settings,
    job: Job,
    *,
    dry_run: bool = False,
    on_progress: Progress | None = None,
    notify: Callable[[str], None] = _ignore,
    confirm: Callable[[Preview], bool] | None = None,
    stop: Stop | None = None,
    events: EventSink | None = None,
    on_tick: Tick | None = None,
    rejects: Path | None = None,
    read_rows: RowsReader | None = None,
    clock: Callable[[], float] = time.time,
) -> RunResult:
    """Run (or, with `dry_run`, only plan) one job.

    `notify` receives one-line notices for the user while the run goes on; `events`, if given,
    receives every event instead (see `batcher.domain.events`: the notices and what log
    collectors want); `confirm` (if given) sees what is about to be sent and may decline
    (UsageError, nothing sent); `stop` lets the caller (a signal handler, the web page) ask for a
    graceful stop at any time. `on_progress` hears (requests settled, planned), `on_tick` a
    RunProgress. `rejects` is a file (CSV, XLSX or JSONL) for the rows that are not sent
    (invalid, duplicate). A run that writes a report also writes its summary beside it
    (`summary_path`). `read_rows`, if given, reads the report's rows from the ledger once the
    run (or the plan) has settled, whether or not a report file is written. `clock` (epoch
    seconds) is the time the drip, the send window and the schedule go by (tests pass one on
    the event loop's fake time).
    """
    emit = events or notices(notify)
    laps = _Laps()
    stop = stop or Stop()
    prepared = prepare(settings, job, stop, dry_run=dry_run, rejects=rejects)
    facts = _facts(settings, job, prepared)
    with (
        fewer_collections(),
        _open_ledger(settings, job, prepared, facts, emit, dry_run=dry_run) as ledger,
    ):
        # A plan keeps no input cells unless rows are written or read back (its rejects, the
        # Python API's plan).
        wanted = (prepared.report_path, rejects, read_rows)
        keep = not dry_run or any(rows is not None for rows in wanted)
        loaded = load(ledger, job, prepared.table, settings, stop, dry_run=dry_run, cells=keep)
        laps.lap("load")
        looked = await lookup(settings, job, prepared, ledger, stop, emit, dry_run=dry_run)
        if looked.resolution is not None:
            laps.lap("lookup")
        planned = plan(ledger, settings, clock)
        _check_plan(ledger, job, prepared, loaded, planned, dry_run=dry_run)
        credentials = _credentials(settings, job, planned, dry_run=dry_run)
        sent = Sent(stopped=looked.stopped)
        if not dry_run and planned.work and not stop.requested and looked.stopped is None:
            laps.lap("plan")
            confirm_stage(confirm, preview(prepared, planned, credentials))
            laps.lap("confirm")  # a person's time to answer is no stage of the run
            # Imported here: a plan never sends, and the HTTP client (aiohttp, its TLS context)
            # is a fifth of a second of its start.
            from batcher.app.stages.send import send

            sent = await send(
                settings,
                job,
                prepared,
                ledger,
                planned,
                stop,
                on_progress,
                on_tick,
                emit,
                looked.pacer,
                clock=clock,
            )
            laps.lap("send")
        stopped, pending = sent.outcome(stop)
        laps.lap("plan" if dry_run else "confirm")

        def assembled(reported: Reported, seconds: float = 0.0) -> RunResult:
            result = _assembled(
                job, prepared, loaded, looked, planned, sent, stopped, reported, seconds
            )
            return dataclasses.replace(result, planned_only=dry_run, credentials=credentials)

        reported = report(
            ledger,
            prepared.report_path,
            _not_sent(stopped, dry_run=dry_run),
            pending,
            rejects=rejects,
            summary=lambda tallied: assembled(tallied).summary(final=False),
            split=Split(hidden=credential_variables(settings.api)),
            notify=lambda text: emit(Event("notice", text)),
            warn=lambda text: emit(Event("warning", text, level="warning")),
        )
        laps.lap("report")
        _save_counts(ledger, assembled(reported), dry_run=dry_run)
        if read_rows is not None:
            message = _not_sent(stopped, dry_run=dry_run)
            read_rows(report_columns(ledger.columns), ledger.report_rows(message, pending))
    result = dataclasses.replace(
        assembled(reported, time.monotonic() - laps.began), stages=laps.shown()
    )
    return _finish(result, emit, dry_run)


def _credentials(
    settings: Settings, job: Job, planned: Planned, *, dry_run: bool
) -> tuple[LocationCredential, ...]:
    """Each location's credential (none for the sandbox, which gives its own); a run refuses
    (exit 2, nothing sent) a location whose credential is not set."""
    if job.sandbox is not None:
        return ()
    found = credentials_of(settings, (location for location, _ in planned.per_location))
    if not dry_run and planned.work:
        require(found)
    return found


def _not_sent(stopped: BatcherError | None, *, dry_run: bool) -> str:
    """The message of the rows not sent: a plan's would be; a run's say why not."""
    return "would be sent" if dry_run else pending_message(stopped)


def _save_counts(ledger: Ledger, result: RunResult, *, dry_run: bool) -> None:
    """Keep a run's rows by status in its state (a plan keeps nothing); a settled run is
    finished: the same command starts a new one."""
    if not dry_run:
        counts = {status.value: n for status, n in result.counts.items()}
        ledger.save_counts(counts, finished=result.settled)


def _facts(settings: Settings, job: Job, prepared: Prepared) -> dict[str, object]:
    """What the run's first events say of it (`run.started`, `run.continued`)."""
    return {
        "input": str(job.shown_input),
        "reading": prepared.reading,
        "operation": prepared.operation,
        "target": prepared.target,
        "token_env": settings.api.token_env if prepared.token_source else None,
        "report": None if prepared.report_path is None else str(prepared.report_path),
    }


def _open_ledger(
    settings: Settings,
    job: Job,
    prepared: Prepared,
    facts: dict[str, object],
    emit: EventSink,
    *,
    dry_run: bool,
) -> Ledger:
    """The run's ledger, opened (a plan's as a scratch copy): `run.started` is told as soon as
    the run's id is known, before a new run's file is made; `run.continued` once it is open."""
    about = {
        "input": _kept_input(job),
        "operation": prepared.operation,
        "target": prepared.identity.target,
        "report": str(prepared.report_path.resolve()) if prepared.report_path is not None else "",
        **({"undoes": job.undoes} if job.undoes is not None else {}),
        **({"input_name": job.input_name} if job.input_name else {}),
    }

    def announce(run_id: str) -> None:
        facts["run_id"] = run_id
        message = f"{prepared.operation}: sending to {prepared.target_line}"
        emit(Event("run.started", message, {"run_id": run_id, **facts}))

    ledger = Ledger.open(
        Path(settings.state.dir),
        prepared.identity.key,
        fresh=job.fresh,
        scratch=dry_run,
        notify=lambda message: emit(Event("notice", message)),
        about=about,
        on_start=None if dry_run else announce,
    )
    if ledger.resumed and not dry_run:
        try:
            emit(Event("run.continued", "continuing an unfinished run", facts, text=False))
        except BaseException:
            ledger.close()
            raise
    return ledger


def _kept_input(job: Job) -> str:
    """The input as the run's state names it (`batcher status`): the file's path, or, for rows
    a Python caller gave (`shown_as`, and no undo), what the summary calls them: their file is
    gone when the call returns. An undo keeps its generated file's name (it names the report)."""
    if job.shown_as is not None and job.undoes is None:
        return str(job.shown_as)
    return str(job.input_path.resolve())


def _check_plan(
    ledger: Ledger,
    job: Job,
    prepared: Prepared,
    loaded: Loaded,
    planned: Planned,
    *,
    dry_run: bool,
) -> None:
    """Refuse, before anything is sent, a report the planned rows cannot fit, and a file whose
    every row is invalid (its report, and its rejects file if asked, written first)."""
    if prepared.report_path is not None:
        check_report_path(
            prepared.report_path, rows=ledger.row_count(), columns=len(ledger.columns)
        )
    if planned.work or loaded.resumed or not prepared.has_rows or loaded.valid_elsewhere:
        return
    if all_invalid(ledger):
        refuse_all_invalid(
            ledger,
            job.shown_input,
            prepared.report_path,
            prepared.rejects_path,
            _not_sent(None, dry_run=dry_run),
        )


def _assembled(
    job: Job,
    prepared: Prepared,
    loaded: Loaded,
    looked: Looked,
    planned: Planned,
    sent: Sent,
    stopped: BatcherError | None,
    reported: Reported,
    seconds: float,
) -> RunResult:
    """The run's result, from what its stages returned."""
    return RunResult(
        report_path=prepared.report_path,
        input_path=job.shown_input,
        operation=prepared.operation,
        target=prepared.target,
        token_source=prepared.token_source,
        started=prepared.started,
        counts=reported.counts,
        plan=planned.stats,
        rounds=planned.rounds,
        locations=planned.locations,
        per_location=list(planned.per_location),
        least_seconds=planned.least_seconds,
        schedule=planned.schedule,
        requests=sent.requests + looked.requests,
        retries=sent.retries + looked.retries,
        rate_limited=sent.rate_limited + looked.rate_limited,
        searches=looked.searches,
        resolution=looked.resolution,
        seconds=seconds,
        resumed=loaded.resumed,
        stopped=stopped,
        reasons=reported.reasons,
        others=list(loaded.others),
        shard=job.shard,
        rows_per_location=loaded.rows_per_location,
        examples=dict(reported.examples),
        rejects_path=reported.rejects_path,
        reading=prepared.reading,
        operations=list(planned.operations),
        operation_count=planned.operation_count,
        run_id=loaded.run_id,
        invocation=loaded.invocation,
        uncertain=reported.uncertain,
        retryable_failed=reported.retryable_failed,
        report_sha256=reported.report_sha256,
        latest_complete_report=reported.latest_complete_report,
        undoes=job.undoes,
    )


def _finish(result: RunResult, emit: EventSink, dry_run: bool) -> RunResult:
    """The summary beside the report, for scripts, and the last events."""
    if result.report_path is not None:
        path = summary_path(result.report_path)
        try:
            write_summary(path, result.summary())
            result = dataclasses.replace(result, summary_path=path)
        except OSError as exc:
            emit(
                Event(
                    "warning",
                    f"{path}: cannot write the summary ({exc.strerror or exc}); the "
                    "report is complete",
                    level="warning",
                )
            )
    if result.stopped is not None and not dry_run:
        emit(
            Event(
                "run.stopped",
                f"stopped: {result.stopped}",
                {"reason": str(result.stopped), "exit_code": result.exit_code},
                level="error" if result.stopped.needs_person else "warning",
                text=False,
            )
        )
    name = "plan.finished" if dry_run else "run.finished"
    verb = "planned" if dry_run else ("stopped" if result.stopped is not None else "finished")
    emit(Event(name, f"run {verb} in {result.seconds:.1f} s", result.summary(), text=False))
    return result
