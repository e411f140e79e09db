"""One run, wired: load → plan → send → report. The CLI parses; this composes; modules do.

`execute()` is the library entry point: it takes settings and a `Job`, and returns a `RunResult`
whatever happens after the input has been accepted (a stopped run still writes its report).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from batcher.client import Answer, BulkTagsClient
from batcher.config import RetrySettings, Settings, read_token
from batcher.errors import (
    ApiError,
    BatcherError,
    FatalApiError,
    Interrupted,
    StateError,
    StopRun,
    TooManyFailuresError,
)
from batcher.ledger import Ledger, WorkItem
from batcher.loading import InputOptions, InputTable, open_input
from batcher.models import Batch, BatchOutcome, ContactOutcome, ReportLine, Status
from batcher.pacing import Pacer
from batcher.planning import PlanStats, count_requests, cut
from batcher.pool import run_pool
from batcher.report import check_report_path, write_report
from batcher.retrying import RetryPolicy
from batcher.sandbox import Sandbox, SandboxConfig


@dataclass(frozen=True)
class Job:
    """What one `batcher run`/`plan` was asked to do."""

    input_path: Path
    input: InputOptions
    report_path: Path | None = None
    fresh: bool = False
    # Set for `--sandbox`: the emulator to start on loopback and send to instead of the API.
    sandbox: SandboxConfig | None = None


@dataclass
class RunResult:
    """What happened: for the summary, the exit code and tests."""

    report_path: Path | None
    counts: Counter[Status] = field(default_factory=Counter)
    plan: PlanStats = field(default_factory=lambda: PlanStats(groups=0, requests=0))
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    resumed: bool = False
    stopped: BatcherError | None = None

    @property
    def exit_code(self) -> int:
        """SPEC "Exit status": 3 stopped early, 1 some rows failed, else 0."""
        if self.stopped is not None:
            return self.stopped.exit_code
        if self.counts[Status.FAILED] or self.counts[Status.PENDING]:
            return 1
        return 0


def default_report_path(input_path: Path) -> Path:
    """`<input name without extensions>-report.csv` in the working directory."""
    name = input_path.name
    for suffix in (".gz", ".csv", ".xlsx", ".xlsm"):
        name = name.removesuffix(suffix)
    return Path(f"{name}-report.csv")


def run_key(table: InputTable, job: Job, target: str) -> str:
    """A run is the input's content, the operation asked and where it goes: same all → same run.

    The target (API base URL, or the sandbox) is part of it so that rows settled against the
    sandbox are never taken as settled against the real service.
    """
    digest = hashlib.sha256()
    with table.path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    operation = asdict(job.input)
    operation.pop("chunk_rows", None)
    operation["target"] = target
    digest.update(json.dumps(operation, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


class BatchSender:
    """Sends one batch with pacing and retries; turns a lost batch into `failed` outcomes.

    Counts requests, retries and 429s into `result` for the summary. `sleep` is the retry
    policy's (tests pass a fake one and never wait).
    """

    def __init__(
        self,
        client: BulkTagsClient,
        pacer: Pacer,
        retry: RetrySettings,
        result: RunResult,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._result = result
        self._policy = RetryPolicy(retry, sleep=sleep, on_retry=self._count_retry)

    def _count_retry(self, error: ApiError, wait_s: float) -> None:
        self._result.retries += 1

    async def _attempt(self, batch: Batch) -> Answer:
        self._result.requests += 1
        try:
            async with self._pacer.slot(batch.location_id):
                answer = await self._client.send(batch)
        except ApiError as exc:
            if exc.status == 429:  # the burst limit, or the daily quota
                self._result.rate_limited += 1
            raise
        self._pacer.observe(batch.location_id, answer.rate)
        return answer

    async def __call__(self, batch: Batch) -> BatchOutcome:
        try:
            answer, attempts = await self._policy.call(lambda: self._attempt(batch))
        except FatalApiError:
            raise
        except ApiError as exc:
            # Rejected (400/422) or retries exhausted: no per-contact answer for these rows.
            lost = ContactOutcome(Status.FAILED, _failure_message(exc))
            return BatchOutcome(batch, (lost,) * len(batch.rows), exc.status, exc.attempts)
        return BatchOutcome(batch, answer.outcomes, answer.http_status, attempts)


def _failure_message(exc: ApiError) -> str:
    tries = "1 attempt" if exc.attempts == 1 else f"{exc.attempts} attempts"
    return f"{exc.message} (after {tries})"


def _batches(ledger: Ledger, work: list[WorkItem], size: int) -> Iterator[Batch]:
    for item in work:
        yield from cut(item.group, item.part, ledger.members(item), size)


@contextlib.asynccontextmanager
async def _signals_stop(
    stop: asyncio.Event, result: RunResult, notify: Callable[[str], None]
) -> AsyncIterator[None]:
    """SIGINT/SIGTERM: take no new batch, let those in flight finish (SPEC, "Runs and resuming")."""
    loop = asyncio.get_running_loop()

    def interrupted(name: str) -> None:
        if result.stopped is None:
            result.stopped = Interrupted(f"interrupted by {name}")
            notify(f"{name} received: finishing the requests in flight, then writing the report")
        stop.set()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, interrupted, sig.name)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


Progress = Callable[[int, int], None]
"""Called with (requests settled, requests planned) as batches settle."""


def _ignore(message: str) -> None:
    """The default `notify`: a library caller that passes none hears nothing."""


async def execute(
    settings: Settings,
    job: Job,
    *,
    dry_run: bool = False,
    on_progress: Progress | None = None,
    notify: Callable[[str], None] = _ignore,
) -> RunResult:
    """Run (or, with `dry_run`, only plan) one job. Usage errors raise before anything is sent.

    `notify` receives one-line notices for the user while the run goes on (a signal received).
    """
    report_path = None if dry_run else (job.report_path or default_report_path(job.input_path))
    if report_path is not None:
        check_report_path(report_path)
    table = open_input(job.input_path, job.input)
    token = None if (dry_run or job.sandbox is not None) else read_token(settings)
    result = RunResult(report_path=report_path)
    state_dir = Path(settings.state.dir)
    target = "sandbox" if job.sandbox is not None else settings.api.base_url.rstrip("/")
    key = run_key(table, job, target)
    with Ledger.open(state_dir, key, fresh=job.fresh, scratch=dry_run) as ledger:
        result.resumed = ledger.resumed
        if not ledger.resumed:
            ledger.load(table.columns, table.chunks())
        work = ledger.work()
        result.plan = count_requests(
            ((item.group, item.part, item.members) for item in work), settings.batch.size
        )
        started = time.monotonic()
        if not dry_run:
            batches = _batches(ledger, work, settings.batch.size)
            await _send(settings, job, token, batches, ledger, result, on_progress, notify)
        result.seconds = time.monotonic() - started
        lines = _counted(ledger.lines(_pending_message(result, dry_run)), result.counts)
        if report_path is None:
            for _ in lines:
                pass
        else:
            try:
                write_report(report_path, ledger.columns, lines)
            except OSError as exc:
                # Every outcome is in the ledger: the next run of the command writes the report.
                raise StateError(f"{report_path}: cannot write the report ({exc})") from exc
        if not dry_run and result.exit_code == 0:
            ledger.finish()
    return result


def _pending_message(result: RunResult, dry_run: bool) -> str:
    if dry_run:
        return "would be sent"
    reason = str(result.stopped) if result.stopped is not None else "the run ended early"
    return f"not sent: {reason}; run the same command again to send it"


def _counted(lines: Iterator[ReportLine], counts: Counter[Status]) -> Iterator[ReportLine]:
    for line in lines:
        counts[line.status] += 1
        yield line


async def _send(
    settings: Settings,
    job: Job,
    token: str | None,
    batches: Iterator[Batch],
    ledger: Ledger,
    result: RunResult,
    on_progress: Progress | None,
    notify: Callable[[str], None],
) -> None:
    stop = asyncio.Event()
    consecutive_failures = 0
    settled = 0

    def on_done(batch: Batch, outcome: BatchOutcome) -> None:
        nonlocal consecutive_failures, settled
        ledger.record(outcome)
        settled += 1
        if on_progress is not None:
            on_progress(settled, result.plan.requests)
        lost = outcome.http_status != 201 and all(
            o.status is Status.FAILED for o in outcome.outcomes
        )
        consecutive_failures = consecutive_failures + 1 if lost else 0
        limit = settings.retry.max_consecutive_failures
        if consecutive_failures >= limit and result.stopped is None:
            result.stopped = TooManyFailuresError(
                f"{limit} requests in a row failed (last: {outcome.outcomes[0].message})"
            )
            stop.set()

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
                max_connections=settings.limits.concurrency,
            )
        )
        pacer = Pacer(settings.limits.requests_per_interval, settings.limits.interval_ms / 1000)
        sender = BatchSender(client, pacer, settings.retry, result)
        await stack.enter_async_context(_signals_stop(stop, result, notify))
        try:
            await run_pool(
                batches, sender, on_done, concurrency=settings.limits.concurrency, stop=stop
            )
        except (StopRun, FatalApiError) as exc:
            if result.stopped is None:
                result.stopped = exc
