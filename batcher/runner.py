"""One run, wired: load → plan → send → report. The faces parse; this composes; modules do.

`execute()` is the library entry point: it takes settings and a `Job` (see `batcher.jobs`), and
returns a `RunResult` whatever happens after the input has been accepted (a stopped run still
writes its report). Usage errors raise before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from batcher.client import BulkTagsClient
from batcher.config import Settings, read_token
from batcher.errors import (
    BatcherError,
    FatalApiError,
    NothingToSendError,
    StateError,
    StopRun,
    UsageError,
)
from batcher.events import Event, EventSink, notices
from batcher.fields import STATUS
from batcher.jobs import Job, default_report_path
from batcher.lanes import Dispatch, Lanes
from batcher.ledger import Ledger, RunInfo, WorkItem, prune_finished, runs_in
from batcher.loading import InputTable, open_input
from batcher.models import RUN_STATUSES, UNDO_STATUSES, BatchOutcome, Cell, Inert, Status
from batcher.pacing import Pacer
from batcher.planning import PlanStats, count_requests
from batcher.pool import run_pool
from batcher.rendering import EXAMPLES, NOT_SENT, Example, Split, Tally, render
from batcher.report import RowSource, check_report_path, summary_path, write_rows, write_summary
from batcher.sandbox import Sandbox
from batcher.sending import (
    BatchSender,
    Counters,
    ErrorRateBreaker,
    FailureBreaker,
    Wire,
    quota_message,
    quota_reached,
)
from batcher.sharding import Selection, Shard, missing_index
from batcher.stopping import Stop, interruptible_sleep

__all__ = ["Example", "Job", "Preview", "RunProgress", "RunResult", "TagOperation", "execute"]

# The reasons the summary lists for `failed`/`error` rows.
TOP_REASONS = 3
# The distinct operations a plan, the confirmation and the summary list, most rows first.
TOP_OPERATIONS = 5


@dataclass(frozen=True)
class TagOperation:
    """One distinct operation of a run: an action and its tag set, and how many rows ask it
    (over every location)."""

    action: str
    tags: tuple[str, ...]
    remove_all: bool
    rows: int

    def __str__(self) -> str:
        if self.remove_all:
            return "remove all tags"
        return f"{self.action} {json.dumps(list(self.tags), ensure_ascii=False)}"


# What the summary says of the rows marked uncertain (see batcher.uncertain).
UNCERTAIN_MEANS = (
    "an attempt to send these rows may have reached the API without an answer and changed "
    "their contacts, so old_tags/tags_added/tags_removed may not show that change; undo "
    "leaves them alone unless told --uncertain revert"
)


@dataclass(frozen=True)
class Preview:
    """What a run is about to send: for the confirmation asked on a terminal.

    `reading`: how the input was read; `operations`: the most frequent distinct operations
    (`operation_count` in all).
    """

    operation: str
    rows: int
    requests: int
    locations: int
    target: str
    least_seconds: float
    reading: str = ""
    operations: tuple[TagOperation, ...] = ()
    operation_count: int = 0


@dataclass(frozen=True)
class RunProgress:
    """How far a run has got, for a progress display (`execute(on_tick=...)`)."""

    rows_done: int
    rows_total: int
    requests_done: int
    requests_total: int
    retries: int
    rate_limited: int
    elapsed_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far; None before there is a pace."""
        rate = self.rows_per_s
        if rate <= 0:
            return None
        return max(self.rows_total - self.rows_done, 0) / rate


@dataclass
class RunResult:
    """What happened: for the summary, the exit code and tests."""

    report_path: Path | None
    input_path: Path | None = None
    operation: str = ""
    target: str = ""
    token_source: str = ""
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    counts: Counter[Status] = field(default_factory=Counter)
    plan: PlanStats = field(default_factory=lambda: PlanStats(groups=0, requests=0))
    rounds: int = 0
    locations: int = 0
    # Requests each location needs, busiest first (what `plan` shows, with the daily share).
    per_location: list[tuple[str, int]] = field(default_factory=list)
    least_seconds: float = 0.0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    # Where the time went: load, plan, send, report (seconds each).
    stages: dict[str, float] = field(default_factory=dict)
    resumed: bool = False
    stopped: BatcherError | None = None
    # The most common messages of `failed` and `error` rows, most frequent first.
    reasons: list[tuple[Status, str, int]] = field(default_factory=list)
    # Unfinished runs of other inputs in the same state directory.
    others: list[RunInfo] = field(default_factory=list)
    # The shard this run took (None: every row), and, for a plan, the input's rows per location
    # (for `plan --shards N`; empty when the plan continued an unfinished run).
    shard: Shard | None = None
    rows_per_location: Counter[str] = field(default_factory=Counter)
    # The first few rows of each kind never sent (invalid, duplicate), for `plan`.
    examples: dict[Status, list[Example]] = field(default_factory=dict)
    # The file of rows never sent (`rejects=`), and the JSON summary beside the report.
    rejects_path: Path | None = None
    summary_path: Path | None = None
    # How the input was read (format, encoding and why, delimiter or sheet).
    reading: str = ""
    # The distinct operations still to send, most rows first (the first TOP_OPERATIONS), and
    # how many there are in all.
    operations: list[TagOperation] = field(default_factory=list)
    operation_count: int = 0
    # The run's id, and which command of the run this was (1: the one that started it).
    run_id: str = ""
    invocation: int = 0
    # Rows marked uncertain (see batcher.uncertain).
    uncertain: int = 0
    # The SHA-256 of the report this command wrote, and the run's latest complete report
    # (None while no report of the run is complete: a row was pending in each).
    report_sha256: str | None = None
    latest_complete_report: str | None = None
    # For an undo: the id of the run it takes back.
    undoes: str | None = None

    def summary(self, *, final: bool = True) -> dict[str, object]:
        """The summary's facts, JSON-safe: for scripts (the JSON summary file, the
        `run.finished` event) and the report's Summary sheet (`final=False`: before the run's
        time and exit status are known)."""
        statuses = RUN_STATUSES + (UNDO_STATUSES if self.undoes else ())
        facts: dict[str, object] = {
            "run_id": self.run_id,
            "invocation": self.invocation,
            "started": self.started.isoformat(timespec="seconds"),
            "input": None if self.input_path is None else str(self.input_path),
            "reading": self.reading,
            "operation": self.operation,
            "operations": [
                {
                    "action": op.action,
                    "tags": list(op.tags),
                    "remove_all": op.remove_all,
                    "rows": op.rows,
                }
                for op in self.operations
            ],
            "operation_count": self.operation_count,
            "target": self.target,
            "token_env": self.token_source.removeprefix("$") or None,
            "report": None if self.report_path is None else str(self.report_path),
            "resumed": self.resumed,
            "rows": sum(self.counts.values()),
            "counts": {status.value: self.counts[status] for status in statuses},
            "uncertain": self.uncertain,
            "uncertain_means": UNCERTAIN_MEANS,
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "planned_requests": self.plan.requests,
            "rounds": self.rounds,
            "locations": self.locations,
            "reasons": [
                {"status": status.value, "message": message, "rows": rows}
                for status, message, rows in self.reasons
            ],
        }
        if self.undoes:
            facts["undoes"] = self.undoes
        if final:
            facts["report_sha256"] = self.report_sha256
            facts["latest_complete_report"] = self.latest_complete_report
            facts["seconds"] = round(self.seconds, 3)
            facts["stages"] = {stage: round(sec, 3) for stage, sec in self.stages.items()}
            facts["stopped"] = None if self.stopped is None else str(self.stopped)
            facts["exit_code"] = self.exit_code
        return facts

    @property
    def settled(self) -> bool:
        """Nothing left to send: not stopped, no row failed or pending (the run is finished:
        the same command starts a new one)."""
        return self.stopped is None and not (
            self.counts[Status.FAILED] or self.counts[Status.PENDING]
        )

    @property
    def exit_code(self) -> int:
        """SPEC "Exit status": 3 stopped early, 1 some rows failed (or, in an undo, were left
        alone as uncertain), else 0."""
        if self.stopped is not None:
            return self.stopped.exit_code
        if not self.settled or self.counts[Status.SKIPPED]:
            return 1
        return 0


def run_key(table: InputTable, job: Job, target: str) -> str:
    """A run is the input's content, the operation asked and where it goes: same all → same run.

    The target (API base URL, or the sandbox) is part of it so that rows settled against the
    sandbox are never taken as settled against the real service; so is the shard, so that two
    shards (or a shard and a whole run) never share a run.
    """
    digest = hashlib.sha256()
    with table.path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    operation = asdict(job.input)
    operation.pop("chunk_rows", None)
    operation.pop("caps", None)  # how much is read before refusing: the same rows either way
    operation["target"] = target
    if job.shard is not None:
        operation["shard"] = str(job.shard)
    if job.undoes is not None:
        operation["undoes"] = job.undoes  # an undo of each run is its own run
    digest.update(json.dumps(operation, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def describe_operation(job: Job, table: InputTable) -> str:
    """The operation in words (and the shard), for the summary, the confirmation and status."""
    options = job.input
    if options.remove_all:
        what = "remove all tags"
    else:
        action = options.action or f"the {table.action_column} column's action"
        tags = (
            json.dumps(list(options.tags), ensure_ascii=False)
            if options.tags is not None
            else f"the {table.tags_column} column's tags"
        )
        what = f"{action} {tags}"
    where = (
        f"location {options.location_id}"
        if options.location_id is not None
        else (
            f"the {table.location_column} column's location"
            if table.location_column is not None
            else f"location {options.default_location_id or '(none)'}"
        )
    )
    shard = "" if job.shard is None else f", shard {job.shard}"
    return f"{what} at {where}{shard}"


Progress = Callable[[int, int], None]
"""Called with (requests settled, requests planned) as batches settle."""

Tick = Callable[[RunProgress], None]
"""Called with how far the run has got, as batches settle (rows, pace, retries, 429s)."""


def _ignore(message: str) -> None:
    """The default `notify`: a library caller that passes none hears nothing."""


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
) -> RunResult:
    """Run (or, with `dry_run`, only plan) one job.

    `notify` receives one-line notices for the user while the run goes on; `events`, if given,
    receives every event instead (see `batcher.events`: the notices and what log collectors
    want); `confirm` (if given) sees what is about to be sent and may decline (UsageError,
    nothing sent); `stop` lets the caller (a signal handler, the web page) ask for a graceful
    stop at any time. `on_progress` hears (requests settled, planned), `on_tick` a RunProgress.
    `rejects` is a file (CSV, XLSX or JSONL) for the rows that are not sent (invalid, duplicate).
    A run that writes a report also writes its summary beside it (`summary_path`).
    """
    emit = events or notices(notify)
    started = time.monotonic()
    stop = stop or Stop()
    if job.shards is not None and job.shard is None and not dry_run:
        raise missing_index(job.shards)
    last = started
    stages: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal last
        now = time.monotonic()
        stages[stage] = stages.get(stage, 0.0) + now - last
        last = now

    report_path = None if dry_run else (job.report_path or default_report_path(job.input_path))
    if report_path is not None:
        check_report_path(report_path)
        if _same_file(report_path, job.input_path):
            raise UsageError(
                f"{report_path}: the report would replace the input file; give --report "
                "another path"
            )
    for path in (rejects,) if rejects is not None else ():
        check_report_path(path)
        if _same_file(path, job.input_path) or (report_path is not None and path == report_path):
            raise UsageError(f"{path}: the rejects file would replace the input or the report")
    stop.loading()  # until the input is loaded, a stop ends the run at once: nothing is sent yet
    table = open_input(job.input_path, job.input)
    if not table.has_rows and not job.allow_empty:
        raise NothingToSendError(
            f"{job.input_path}: no data rows (only a header); nothing to do. Give --allow-empty "
            "if an empty file is normal (e.g. a quiet night's export)"
        )
    token = None if (dry_run or job.sandbox is not None) else read_token(settings)
    target = "sandbox" if job.sandbox is not None else settings.api.base_url.rstrip("/")
    result = RunResult(
        report_path=report_path,
        input_path=job.input_path,
        operation=describe_operation(job, table),
        target="the embedded sandbox" if job.sandbox is not None else _host(target),
        token_source="" if job.sandbox is not None else f"${settings.api.token_env}",
        shard=job.shard,
        reading=table.reading,
    )
    facts: dict[str, object] = {
        "input": str(job.input_path),
        "reading": table.reading,
        "operation": result.operation,
        "target": result.target,
        "token_env": settings.api.token_env if result.token_source else None,
        "report": None if report_path is None else str(report_path),
    }
    state_dir = Path(settings.state.dir)
    about = {
        "input": str(job.input_path.resolve()),
        "operation": result.operation,
        "target": target,
        "report": str(report_path.resolve()) if report_path is not None else "",
        **({"undoes": job.undoes} if job.undoes is not None else {}),
    }
    result.undoes = job.undoes

    def announce(run_id: str) -> None:
        # As soon as the run's id is known: before its state file is made.
        facts["run_id"] = result.run_id = run_id
        message = f"{result.operation}: sending to {_target_line(result)}"
        emit(Event("run.started", message, {"run_id": run_id, **facts}))

    key = run_key(table, job, target)
    with Ledger.open(
        state_dir,
        key,
        fresh=job.fresh,
        scratch=dry_run,
        notify=lambda message: emit(Event("notice", message)),
        about=about,
        on_start=None if dry_run else announce,
    ) as ledger:
        result.resumed = ledger.resumed
        result.run_id, result.invocation = ledger.run_id, ledger.invocation
        if ledger.resumed and not dry_run:
            emit(Event("run.continued", "continuing an unfinished run", facts, text=False))
        if not dry_run:
            _tidy_state_dir(state_dir, ledger, settings, result)
        # A shard keeps only its own rows (with their input `row` and `line` numbers).
        selection = Selection(job.shard, count_rows=dry_run)
        if not ledger.resumed:
            with _no_collections():
                ledger.load(table.columns, selection(stop.watch(job.chunks(table))))
        stop.loaded()
        result.rows_per_location = selection.rows_per_location
        lap("load")
        work = ledger.work()
        quota: dict[str, str] = {}
        _plan(result, work, settings)
        if report_path is not None:
            check_report_path(report_path, rows=ledger.row_count(), columns=len(ledger.columns))
        if (
            not work
            and not ledger.resumed
            and table.has_rows
            and not selection.valid_elsewhere
            and _all_invalid(ledger)
        ):
            if rejects is not None:  # every row is a reject: the file the user asked for
                _write_rejects(rejects, ledger, result, dry_run, {})
            _refuse_all_invalid(ledger, job, report_path)
        if not dry_run and work and not stop.requested:
            preview = Preview(
                result.operation,
                sum(item.members for item in work if item.part == 0),
                result.plan.requests,
                result.locations,
                _target_line(result),
                result.least_seconds,
                result.reading,
                tuple(result.operations),
                result.operation_count,
            )
            lap("plan")
            if confirm is not None and not confirm(preview):
                raise UsageError("not confirmed: nothing was sent")
            lap("confirm")  # a person's time to answer is no stage of the run
            quota = await _send(
                settings, job, token, ledger, result, stop, on_progress, on_tick, emit, preview
            )
            lap("send")
        if stop.requested and result.stopped is None:
            result.stopped = stop.error()
        if quota and result.stopped is None:
            result.stopped = quota_reached(quota)
        pending = {location: quota_message(reason) for location, reason in quota.items()}
        lap("plan" if dry_run else "confirm")
        _report(
            ledger,
            report_path,
            result,
            dry_run,
            pending,
            split=Split(hidden=(settings.api.token_env,)),
            notify=lambda text: emit(Event("notice", text)),
        )
        if report_path is not None:
            _keep_report(ledger, report_path, result)
        if rejects is not None:
            _write_rejects(rejects, ledger, result, dry_run, pending)
        lap("report")
        if not dry_run:
            ledger.save_counts(
                {status.value: n for status, n in result.counts.items()}, finished=result.settled
            )
    result.seconds = time.monotonic() - started
    result.stages = {stage: seconds for stage, seconds in stages.items() if stage != "confirm"}
    _finish(result, emit, dry_run)
    return result


@contextlib.contextmanager
def _no_collections() -> Iterator[None]:
    """No cyclic garbage collection: loading makes millions of short-lived objects and almost
    no cycles (a few hundred a million rows, collected afterwards); the collector's passes over
    them were a fourteenth of loading a million rows (2.9 s -> 2.7 s). Reference counting frees
    the rest as before, so memory is the same."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _finish(result: RunResult, emit: EventSink, dry_run: bool) -> None:
    """The summary beside the report, for scripts, and the last events."""
    if result.report_path is not None:
        path = summary_path(result.report_path)
        try:
            write_summary(path, result.summary())
            result.summary_path = path
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
    facts = result.summary()
    name = "plan.finished" if dry_run else "run.finished"
    verb = "planned" if dry_run else ("stopped" if result.stopped is not None else "finished")
    emit(Event(name, f"run {verb} in {result.seconds:.1f} s", facts, text=False))


def _write_rejects(
    path: Path, ledger: Ledger, result: RunResult, dry_run: bool, pending: Mapping[str, str]
) -> None:
    """The rows that are not sent (invalid, duplicate), with the report's columns."""
    message = _pending_message(result, dry_run)
    kinds = {status.value for status in NOT_SENT}

    def source(inert: Inert | None) -> Iterator[tuple[Cell, ...]]:
        for cells in ledger.report_rows(message, pending, inert):
            if cells[STATUS] in kinds:
                yield cells

    _write(path, ledger, source)
    result.rejects_path = path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _target_line(result: RunResult) -> str:
    if not result.token_source:
        return result.target
    return f"{result.target} with the token from {result.token_source}"


def _tidy_state_dir(state_dir: Path, ledger: Ledger, settings: Settings, result: RunResult) -> None:
    """Forget finished runs older than state.keep_days; note unfinished runs of other inputs."""
    prune_finished(state_dir, settings.state.keep_days)
    result.others = [
        info
        for info in runs_in(state_dir)
        if info.state == "ready" and info.path.resolve() != ledger.path.resolve()
    ]


def _plan(result: RunResult, work: list[WorkItem], settings: Settings) -> None:
    """Requests, rounds, locations and the least time at the limit (the busiest location's)."""
    size = settings.batch.size
    result.plan = count_requests(((item.group, item.part, item.members) for item in work), size)
    result.rounds = max((item.round for item in work), default=0)
    per_location: Counter[str] = Counter()
    for item in work:
        per_location[item.group.location_id] += -(-item.members // size)
    result.locations = len(per_location)
    result.per_location = per_location.most_common()
    # The distinct operations: each group's rows (its first part's members, every round),
    # summed over locations; counted by the ledger from its index, a lookup per group.
    operations: Counter[tuple[str, tuple[str, ...], bool]] = Counter()
    for item in work:
        if item.part == 0:
            group = item.group
            operations[(group.action.value, group.tags, group.remove_all)] += item.members
    result.operation_count = len(operations)
    result.operations = [
        TagOperation(action, tags, remove_all, rows)
        for (action, tags, remove_all), rows in operations.most_common(TOP_OPERATIONS)
    ]
    busiest = max(per_location.values(), default=0)
    limits = settings.limits
    result.least_seconds = PlanStats(groups=1, requests=busiest).seconds_at(
        limits.requests_per_interval, limits.interval_ms / 1000
    )


_QUOTED = re.compile(r'"[^"]*"')


def _sha256_of(path: Path) -> str:
    """The SHA-256 of a report just written (about 0.06 s per 100 MB, from the page cache)."""
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise _unwritable(path, exc) from exc


def _all_invalid(ledger: Ledger) -> bool:
    """Whether every row of a run with nothing to send is invalid (or a duplicate): not when
    its producer settled rows otherwise (an undo whose rows are all left alone, which is no
    error of the input)."""
    counts = ledger.status_counts()
    invalid = counts.get(Status.INVALID.value, 0) + counts.get(Status.DUPLICATE.value, 0)
    return invalid == sum(counts.values())


def _keep_report(ledger: Ledger, path: Path, result: RunResult) -> None:
    """Record the report this command wrote in the run's ledger, with its bytes' SHA-256 (it
    is written and synced): what ties the file to the run (`batcher undo REPORT` finds the run
    by it), and which report is the run's latest complete one."""
    digest = _sha256_of(path)
    rows = sum(result.counts.values())
    ledger.record_report(path, rows=rows, complete=not result.counts[Status.PENDING], sha256=digest)
    result.report_sha256 = digest
    complete = [report.path for report in ledger.reports() if report.complete]
    result.latest_complete_report = complete[-1] if complete else None


def _refuse_all_invalid(ledger: Ledger, job: Job, report_path: Path | None) -> None:
    """Every row is invalid: nothing would be sent, which is never what the user meant (exit 2).

    The report is written first, so that each row's reason can be looked up.
    """
    reasons: Counter[str] = Counter()
    total = 0
    for line in ledger.lines("not sent"):
        total += 1
        # A row's problems are joined by "; ", which no problem holds (batcher.loading).
        for problem in line.message.split("; "):
            reasons[_QUOTED.sub('"…"', problem)] += 1
    if report_path is not None:
        _write(report_path, ledger, lambda inert: ledger.report_rows("not sent", inert=inert))
        ledger.record_report(report_path, rows=total, complete=True, sha256=_sha256_of(report_path))
    top = "; ".join(f"{reason} ({n:,} rows)" for reason, n in reasons.most_common(TOP_REASONS))
    where = f" (each row's reason is in {report_path})" if report_path is not None else ""
    raise NothingToSendError(
        f"{job.input_path}: all {total:,} rows are invalid, nothing to send: {top}{where}"
    )


async def _send(
    settings: Settings,
    job: Job,
    token: str | None,
    ledger: Ledger,
    result: RunResult,
    stop: Stop,
    on_progress: Progress | None,
    on_tick: Tick | None,
    emit: EventSink,
    preview: Preview,
) -> dict[str, str]:
    """Send every location's rounds side by side; return the locations whose daily quota was
    reached (their rows stay pending), with why."""
    stop_event = stop.event()
    breaker = FailureBreaker(settings.retry.max_consecutive_failures)
    error_rate = ErrorRateBreaker(settings.run.max_error_rate, settings.run.error_window)
    counters = Counters()
    settled = 0
    rows_done = 0
    began = time.monotonic()
    limits = settings.limits
    sleep = functools.partial(interruptible_sleep, stop)
    pacer = Pacer(
        limits.requests_per_interval,
        limits.interval_ms / 1000,
        # The loop's clock (monotonic): the one its sleeps and timeouts run on.
        clock=asyncio.get_running_loop().time,
        sleep=sleep,
        stop=stop_event,
        daily_requests=limits.daily_requests,
        daily_reserve=limits.daily_reserve,
        events=emit,
    )
    # The canary: each location's first request goes alone, so that the error-rate breaker can
    # stop a wrong location or file after one request.
    lanes = Lanes(ledger, settings.batch.size, pacer, stop_event, canary=error_rate.enabled)

    def on_done(dispatch: Dispatch, outcome: BatchOutcome | None) -> None:
        nonlocal settled, rows_done
        if outcome is not None:  # None: stopped before an answer came; the rows stay pending
            ledger.record(outcome)
            settled += 1
            if dispatch.batch.part == 0:
                rows_done += len(dispatch.batch.rows)
            if on_progress is not None:
                on_progress(settled, result.plan.requests)
            if on_tick is not None:
                on_tick(
                    RunProgress(
                        rows_done,
                        preview.rows,
                        settled,
                        result.plan.requests,
                        counters.retries,
                        counters.rate_limited,
                        time.monotonic() - began,
                    )
                )
        if outcome is not None:
            # Before the lane hears of it: a tripped canary lets no second batch of its lane out.
            error_rate.observe(outcome)
        # After recording: the lane's next round reads which rows have settled.
        lanes.settled(dispatch.batch)
        if outcome is not None:
            breaker.observe(outcome)

    async with contextlib.AsyncExitStack() as stack:
        base_url = settings.api.base_url
        if job.sandbox is not None:
            sandbox = await stack.enter_async_context(Sandbox(job.sandbox))
            base_url, token = sandbox.url, sandbox.token
        assert token is not None  # read_token ran unless the sandbox supplies one
        client = await stack.enter_async_context(
            BulkTagsClient(
                base_url=base_url,
                token=token,
                version=settings.api.version,
                timeout_s=settings.api.timeout_s,
                max_connections=limits.concurrency,
            )
        )
        wire = Wire(limits.concurrency, stop_event)
        sender = BatchSender(
            client,
            pacer,
            settings.retry,
            counters,
            token_source=result.token_source or "the sandbox",
            sleep=sleep,
            events=emit,
            wire=wire,
            on_exposed=ledger.record_exposed,
        )

        async def send(dispatch: Dispatch) -> BatchOutcome | None:
            try:
                return await sender(dispatch)
            except BaseException:
                wire.close()  # the run ends: no batch still waiting for the wire goes out
                lanes.settled(dispatch.batch)  # no answer to record: the pool is stopping
                raise

        def recorded(dispatch: Dispatch, outcome: BatchOutcome | None) -> None:
            try:
                on_done(dispatch, outcome)
            except BaseException:
                wire.close()  # a breaker tripped, or the ledger failed: the run ends
                raise

        # Sending allocates a few thousand short-lived objects per answer, and each full
        # collection the allocations set off would walk every object the process holds
        # (modules, config, loading's leftovers), none of which dies while sending: frozen,
        # the collector skips them.
        gc.freeze()
        try:
            # Twice as many workers as requests out at once (see `Wire`): while a worker
            # records its answer, another's request is on the wire (a million rows: sending
            # 4.9-5.4 s -> 3.9-4.2 s, the bare client's rate).
            await run_pool(
                lanes.next, send, recorded, concurrency=2 * limits.concurrency, stop=stop_event
            )
        except (StopRun, FatalApiError) as exc:
            result.stopped = exc
        finally:
            gc.unfreeze()
            result.requests += counters.requests
            result.retries += counters.retries
            result.rate_limited += counters.rate_limited
    return lanes.stopped()


def _report(
    ledger: Ledger,
    report_path: Path | None,
    result: RunResult,
    dry_run: bool,
    pending: Mapping[str, str],
    *,
    split: Split | None = None,
    notify: Callable[[str], None] = _ignore,
) -> None:
    """Render the report (or, for a plan, only count) and gather the summary's reasons.

    `pending` gives the pending rows of some locations their own message (daily quota);
    `split` lets a large report be written by two processes (see `batcher.rendering`).
    """
    tally = Tally()
    message = _pending_message(result, dry_run)

    def totals() -> None:
        result.counts = Counter({Status(status): n for status, n in tally.counts.items()})
        result.uncertain = tally.uncertain
        result.reasons = [
            (Status(status), text, n)
            for (status, text), n in tally.reasons.most_common(TOP_REASONS)
        ]
        result.examples = {Status(status): found for status, found in tally.examples.items()}

    def summary() -> Mapping[str, object]:
        totals()  # every row has been written: the counts are whole
        return result.summary(final=False)

    if report_path is None:  # a plan: no rows to render, only to count and show a few
        tally.counts.update(ledger.status_counts())
        for status in NOT_SENT:
            tally.examples[status.value] = [
                Example(row, line, contact, message)
                for row, line, contact, message in ledger.first_rows(status.value, EXAMPLES)
            ]
    else:
        try:
            render(
                report_path,
                ledger,
                message,
                pending,
                tally,
                summary=summary,
                split=split,
                notify=notify,
            )
        except OSError as exc:
            raise _unwritable(report_path, exc) from exc
    totals()


def _write(report_path: Path, ledger: Ledger, rows: RowSource) -> None:
    try:
        write_rows(report_path, ledger.columns, rows)
    except OSError as exc:
        raise _unwritable(report_path, exc) from exc


def _unwritable(report_path: Path, exc: OSError) -> StateError:
    # Every outcome is in the ledger: the next run of the command writes the report.
    return StateError(
        f"{report_path}: cannot write the report ({exc.strerror or exc})",
        advice="every outcome is saved: run the same command again to write it",
    )


def _pending_message(result: RunResult, dry_run: bool) -> str:
    return "would be sent" if dry_run else pending_message(result.stopped)


def pending_message(stopped: BatcherError | None) -> str:
    """The message of the rows a run did not send: why it stopped, and what to do, said once
    (a stop that says what to do ends with its own advice, which includes running again)."""
    if stopped is None:
        return "not sent: the run ended early; run the same command again to send it"
    if stopped.advice:
        return f"not sent: {stopped}"
    return f"not sent: {stopped}; run the same command again to send it"
