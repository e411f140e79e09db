"""The send stage: every location's batches side by side, paced, retried, each answer recorded
in the ledger as it comes; the breakers stop a run going wrong."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable

from batcher.app.credentials import (
    RunCredentials,
    credentials_of,
    read_credentials,
    require,
    uses_one_credential,
)
from batcher.app.emulator import embedded
from batcher.app.jobs import Job
from batcher.app.result import Progress, RunProgress, Tick
from batcher.app.stages.plan import Planned
from batcher.app.stages.prepare import Prepared
from batcher.app.stages.sent import Sent
from batcher.domain.config import Settings, drip_of, read_token, window_of
from batcher.domain.errors import BatcherError, FatalApiError, StopRun
from batcher.domain.events import EventSink
from batcher.domain.models import BatchOutcome
from batcher.domain.planning import PlanStats
from batcher.sending.breakers import ErrorRateBreaker, FailureBreaker
from batcher.sending.client import BulkTagsClient
from batcher.sending.lanes import Dispatch, Lanes
from batcher.sending.pacing import ContactBudget, Pacer
from batcher.sending.pool import run_pool
from batcher.sending.sender import BatchSender, Counters, Wire
from batcher.state import Ledger
from batcher.support.stopping import Stop, interruptible_sleep

__all__ = ["make_pacer", "open_client", "send"]


class _Progress:
    """Tells the caller how far sending has got, as batches settle, and the least time the
    requests left take at the rate limit: the busiest location's (locations go side by side).

    The busiest count is kept in O(1) a request: counts only go down, one at a time, so the
    largest drops by one exactly when the last location holding it sends a request.
    """

    def __init__(
        self,
        planned: Planned,
        settings: Settings,
        on_progress: Progress | None,
        on_tick: Tick | None,
        clock: Callable[[], float],
    ) -> None:
        self._requests = planned.stats.requests
        # With a drip or a window the time left is the schedule's (SPEC "Drip").
        schedule = planned.schedule
        self._due = schedule.last if schedule.paced else None
        self._clock = clock
        self._rows = planned.rows
        self._on_progress = on_progress
        self._on_tick = on_tick
        self._settled = 0
        self._rows_done = 0
        self._began = time.monotonic()
        self._left = dict(planned.per_location)
        self._holding = Counter(self._left.values())  # locations by requests left
        self._busiest = max(self._left.values(), default=0)
        self._pace = (settings.limits.requests_per_interval, settings.limits.interval_ms / 1000)

    def _sent_one(self, location: str) -> None:
        left = self._left.get(location, 0)
        if left <= 0:
            return
        self._left[location] = left - 1
        self._holding[left] -= 1
        self._holding[left - 1] += 1
        if left == self._busiest and not self._holding[left]:
            self._busiest -= 1

    def least_left_s(self) -> float:
        return PlanStats(groups=1, requests=self._busiest).seconds_at(*self._pace)

    def settled(self, outcome: BatchOutcome, counters: Counters) -> None:
        self._settled += 1
        self._sent_one(outcome.batch.location_id)
        if outcome.batch.part == 0:
            self._rows_done += len(outcome.batch.rows)
        if self._on_progress is not None:
            self._on_progress(self._settled, self._requests)
        if self._on_tick is not None:
            self._on_tick(
                RunProgress(
                    self._rows_done,
                    self._rows,
                    self._settled,
                    self._requests,
                    counters.retries,
                    counters.rate_limited,
                    time.monotonic() - self._began,
                    self.least_left_s(),
                    None if self._due is None else max(self._due - self._clock(), 0.0),
                )
            )


class _Sending:
    """One run's sending: the lanes hand out batches, the sender sends them, each answer is
    recorded, heard by the breakers, and told as progress."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        stop: Stop,
        progress: _Progress,
        emit: EventSink,
        pacer: Pacer | None,
        clock: Callable[[], float],
    ) -> None:
        limits = settings.limits
        self.stop_event = stop.event()
        self.sleep = functools.partial(interruptible_sleep, stop)
        self.counters = Counters()
        self.ledger = ledger
        self.progress = progress
        self.failures = FailureBreaker(settings.retry.max_consecutive_failures)
        self.error_rate = ErrorRateBreaker(settings.run.max_error_rate, settings.run.error_window)
        self.pacer = pacer or make_pacer(settings, stop, emit)
        # The canary: each location's first request goes alone, so that the error-rate breaker
        # can stop a wrong location or file after one request.
        self.lanes = Lanes(
            ledger,
            settings.batch.size,
            self.pacer,
            self.stop_event,
            canary=self.error_rate.enabled,
            contacts=_contact_budget(settings, ledger, clock, emit),
        )
        self.wire = Wire(limits.concurrency, self.stop_event)
        self.sender: BatchSender | None = None

    async def send(self, dispatch: Dispatch) -> BatchOutcome | None:
        assert self.sender is not None
        try:
            return await self.sender(dispatch)
        except BaseException:
            self.wire.close()  # the run ends: no batch still waiting for the wire goes out
            self.lanes.settled(dispatch.batch)  # no answer to record: the pool is stopping
            raise

    def recorded(self, dispatch: Dispatch, outcome: BatchOutcome | None) -> None:
        try:
            self._record(dispatch, outcome)
        except BaseException:
            self.wire.close()  # a breaker tripped, or the ledger failed: the run ends
            raise

    def _record(self, dispatch: Dispatch, outcome: BatchOutcome | None) -> None:
        if outcome is None:  # stopped before an answer came; the rows stay pending
            self.lanes.settled(dispatch.batch)
            return
        self.ledger.record(outcome)
        self.progress.settled(outcome, self.counters)
        # Before the lane hears of it: a tripped canary lets no second batch of its lane out.
        self.error_rate.observe(outcome)
        # After recording: the lane's next round reads which rows have settled.
        self.lanes.settled(dispatch.batch)
        self.failures.observe(outcome)


def make_pacer(settings: Settings, stop: Stop, emit: EventSink) -> Pacer:
    """The run's per-location budgets: one for its searches (Step 16) and its tag requests,
    which the API counts in the same limit."""
    limits = settings.limits
    return Pacer(
        limits.requests_per_interval,
        limits.interval_ms / 1000,
        # The loop's clock (monotonic): the one its sleeps and timeouts run on.
        clock=asyncio.get_running_loop().time,
        sleep=functools.partial(interruptible_sleep, stop),
        stop=stop.event(),
        daily_requests=limits.daily_requests,
        daily_reserve=limits.daily_reserve,
        events=emit,
    )


async def open_client(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    job: Job,
    prepared: Prepared,
    locations: Iterable[str],
) -> tuple[BulkTagsClient, RunCredentials | None]:
    """The run's client, entered on `stack`: to the API, or to the embedded sandbox (started
    here) for a `--sandbox` run; and, with a credential per location, the tokens `locations`
    send and search with (None: the client's own token serves every location).

    A location of `locations` whose credential is not set is a ConfigError (exit 2) before
    any request."""
    base_url, token, credentials = settings.api.base_url, prepared.token, None
    if job.sandbox is not None:
        sandbox = await stack.enter_async_context(embedded(job.sandbox))
        base_url, token = sandbox.url, sandbox.token
    elif token is None and uses_one_credential(settings):
        # A plan that searches (Step 16): it needs the token a run does.
        token = read_token(settings)
    elif token is None:  # a credential per location
        places = tuple(locations)
        require(credentials_of(settings, places))
        credentials = read_credentials(settings, places, asyncio.get_running_loop().time)
        token = credentials.default
    client = await stack.enter_async_context(
        BulkTagsClient(
            base_url=base_url,
            token=token,
            tokens=credentials.secrets if credentials is not None else (),
            version=settings.api.version,
            timeout_s=settings.api.timeout_s,
            max_connections=settings.limits.concurrency,
        )
    )
    return client, credentials


def _contact_budget(
    settings: Settings, ledger: Ledger, clock: Callable[[], float], emit: EventSink
) -> ContactBudget | None:
    """The drip and the send window, if the run has either: what earlier invocations sent
    within the period counts, each completion is kept, the window is noted for `status`."""
    drip, window = drip_of(settings), window_of(settings)
    if drip is None and window is None:
        return None
    ledger.set_window(window.text if window is not None else "")
    return ContactBudget(
        drip,
        window,
        clock,
        history=None if drip is None else ledger.drip_sent(clock() - drip.period_s),
        until_window_end=settings.run.until_window_end,
        on_sent=ledger.record_drip,
        events=emit,
    )


async def send(
    settings: Settings,
    job: Job,
    prepared: Prepared,
    ledger: Ledger,
    planned: Planned,
    stop: Stop,
    on_progress: Progress | None,
    on_tick: Tick | None,
    emit: EventSink,
    pacer: Pacer | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Sent:
    """Send every location's rounds side by side, until done, stopped or broken; `pacer`, if
    given, holds the budgets the run's searches have used already (`clock`: the drip's and the
    window's time, epoch seconds)."""
    progress = _Progress(planned, settings, on_progress, on_tick, clock)
    sending = _Sending(settings, ledger, stop, progress, emit, pacer, clock)
    limits = settings.limits
    stopped: BatcherError | None = None
    async with contextlib.AsyncExitStack() as stack:
        locations = [location for location, _ in planned.per_location]
        client, credentials = await open_client(stack, settings, job, prepared, locations)
        sending.sender = BatchSender(
            client,
            sending.pacer,
            settings.retry,
            sending.counters,
            token_source=prepared.token_source or "the sandbox",
            sleep=sending.sleep,
            events=emit,
            wire=sending.wire,
            on_exposed=ledger.record_exposed,
            tokens=None if credentials is None else credentials.tokens,
            credential=None if credentials is None else credentials.credential,
            shared=True if credentials is None else credentials.shared,
        )
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
                sending.lanes.next,
                sending.send,
                sending.recorded,
                concurrency=2 * limits.concurrency,
                stop=sending.stop_event,
            )
        except (StopRun, FatalApiError) as exc:
            stopped = exc
        finally:
            gc.unfreeze()
    counters = sending.counters
    refused = dict(sending.sender.refused)
    return Sent(
        counters.requests,
        counters.retries,
        counters.rate_limited,
        stopped,
        {k: why for k, why in sending.lanes.stopped().items() if k not in refused},
        refused,
        windowed=sending.lanes.windowed(),
    )
