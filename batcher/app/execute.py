"""One run: prepare → load → plan → confirm → send → report. The faces parse; this composes;
the stages do (`batcher.app.stages`, each returning a small frozen result).

`execute()` is the library entry point: it takes settings and a `Job` (see `batcher.app.jobs`),
and returns a `RunResult` whatever happens after the input has been accepted (a stopped run
still writes its report). Usage errors raise before anything is sent.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from batcher.app.jobs import Job
from batcher.app.rendering import Split
from batcher.app.result import Preview, Progress, RunResult, Tick, pending_message
from batcher.app.stages.confirm import confirm as confirm_stage
from batcher.app.stages.confirm import preview
from batcher.app.stages.load import Loaded, load
from batcher.app.stages.plan import Planned, all_invalid, plan
from batcher.app.stages.prepare import Prepared, prepare
from batcher.app.stages.report import Reported, refuse_all_invalid, report
from batcher.app.stages.send import Sent, send
from batcher.domain.config import Settings
from batcher.domain.errors import BatcherError
from batcher.domain.events import Event, EventSink, notices
from batcher.reports.formats import check_report_path, summary_path, write_summary
from batcher.state import Ledger
from batcher.support.stopping import Stop

__all__ = ["execute"]


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
    (`summary_path`). `clock` (epoch seconds) is the time the drip, the send window and the
    schedule go by (tests pass one on the event loop's fake time).
    """
    emit = events or notices(notify)
    laps = _Laps()
    stop = stop or Stop()
    prepared = prepare(settings, job, stop, dry_run=dry_run, rejects=rejects)
    facts = _facts(settings, job, prepared)
    with _open_ledger(settings, job, prepared, facts, emit, dry_run=dry_run) as ledger:
        loaded = load(ledger, job, prepared.table, settings, stop, dry_run=dry_run)
        laps.lap("load")
        planned = plan(ledger, settings, clock)
        _check_plan(ledger, job, prepared, loaded, planned, dry_run=dry_run)
        sent = Sent()
        if not dry_run and planned.work and not stop.requested:
            laps.lap("plan")
            confirm_stage(confirm, preview(prepared, planned))
            laps.lap("confirm")  # a person's time to answer is no stage of the run
            sent = await send(
                settings, job, prepared, ledger, planned, stop, on_progress, on_tick, emit, clock
            )
            laps.lap("send")
        stopped, pending = sent.outcome(stop)
        laps.lap("plan" if dry_run else "confirm")

        def assembled(reported: Reported, seconds: float = 0.0) -> RunResult:
            return _assembled(job, prepared, loaded, planned, sent, stopped, reported, seconds)

        reported = report(
            ledger,
            prepared.report_path,
            _not_sent(stopped, dry_run=dry_run),
            pending,
            rejects=rejects,
            summary=lambda tallied: assembled(tallied).summary(final=False),
            split=Split(hidden=(settings.api.token_env,)),
            notify=lambda text: emit(Event("notice", text)),
        )
        laps.lap("report")
        _save_counts(ledger, assembled(reported), dry_run=dry_run)
    result = dataclasses.replace(
        assembled(reported, time.monotonic() - laps.began), stages=laps.shown()
    )
    return _finish(result, emit, dry_run)


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
        "reading": prepared.table.reading,
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
        "input": str(job.input_path.resolve()),
        "operation": prepared.operation,
        "target": prepared.identity.target,
        "report": str(prepared.report_path.resolve()) if prepared.report_path is not None else "",
        **({"undoes": job.undoes} if job.undoes is not None else {}),
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
    if planned.work or loaded.resumed or not prepared.table.has_rows or loaded.valid_elsewhere:
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
        requests=sent.requests,
        retries=sent.retries,
        rate_limited=sent.rate_limited,
        seconds=seconds,
        resumed=loaded.resumed,
        stopped=stopped,
        reasons=reported.reasons,
        others=list(loaded.others),
        shard=job.shard,
        rows_per_location=loaded.rows_per_location,
        examples=dict(reported.examples),
        rejects_path=reported.rejects_path,
        reading=prepared.table.reading,
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
                level="warning",
                text=False,
            )
        )
    name = "plan.finished" if dry_run else "run.finished"
    verb = "planned" if dry_run else ("stopped" if result.stopped is not None else "finished")
    emit(Event(name, f"run {verb} in {result.seconds:.1f} s", result.summary(), text=False))
    return result
