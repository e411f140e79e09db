"""Every way a run stops leaves its pending rows (and the CLI's last line) saying why and what to
do once: the stop's own advice when it has one, else "run the same command again"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from test_sending import BATCH

from batcher.app.result import pending_message
from batcher.app.stages.report import unwritable as _unwritable
from batcher.cli.output import with_advice as _with_advice
from batcher.domain.config import RetrySettings
from batcher.domain.errors import (
    ApiError,
    AuthError,
    BatcherError,
    ErrorRateError,
    FatalApiError,
    ForbiddenError,
    RejectedError,
    ServerError,
    StateError,
    TooManyFailuresError,
)
from batcher.domain.models import BatchOutcome, ContactOutcome, RateLimitInfo, Status
from batcher.sending.breakers import ErrorRateBreaker, FailureBreaker
from batcher.sending.lanes import Dispatch
from batcher.sending.pacing import Pacer
from batcher.sending.sender import BatchSender, Counters
from batcher.sending.stops import credentials_refused, quota_message, quota_reached
from batcher.state import Ledger
from batcher.support.stopping import Stop

ADVICE = "the same command again"
ONE_ATTEMPT = RetrySettings(attempts=1, initial_backoff_s=0.0, max_backoff_s=0.0)
DELETED = ContactOutcome(Status.ERROR, "contact is deleted")
OK = ContactOutcome(Status.SUCCESS, "Tags updated", (), ("vip",), ())


class Answering:
    """A client whose every request ends in `error` (as the real client raises it)."""

    def __init__(self, error: ApiError) -> None:
        self.error = error

    async def send(self, batch: object) -> None:
        raise self.error


async def _no_sleep(seconds: float) -> None:
    """Retries never wait here."""


async def sent(error: ApiError) -> BatchOutcome | None:
    """What BatchSender makes of a request answered with `error` (it raises a run's stop)."""
    pacer = Pacer(100, 10.0)
    client = Answering(error)
    sender = BatchSender(
        client,  # type: ignore[arg-type]
        pacer,
        ONE_ATTEMPT,
        Counters(),
        token_source="$BATCHER_TOKEN",
        sleep=_no_sleep,
    )
    slot = pacer.try_start(BATCH.location_id)
    assert slot is not None
    return await sender(Dispatch(BATCH, slot))


async def refused(error: FatalApiError) -> BatcherError:
    """The stop BatchSender raises for a request answered with `error` (401, 403)."""
    with pytest.raises(FatalApiError) as stopped:
        await sent(error)
    return stopped.value


async def failures(error: ApiError) -> BatcherError:
    """The failure breaker's stop after one request lost to `error`."""
    lost = await sent(error)
    assert lost is not None
    assert not lost.answered
    with pytest.raises(TooManyFailuresError) as stopped:
        FailureBreaker(1).observe(lost)
    return stopped.value


def errors_in(*counts: int) -> BatcherError:
    """The error-rate breaker's stop after answers to BATCH (2 contacts) with `counts` errors."""

    def answered(errors: int) -> BatchOutcome:
        return BatchOutcome(BATCH, (DELETED,) * errors + (OK,) * (2 - errors), 201, 1)

    breaker = ErrorRateBreaker(0.5, window=2)
    *before, last = counts
    for count in before:
        breaker.observe(answered(count))
    with pytest.raises(ErrorRateError) as stopped:
        breaker.observe(answered(last))
    return stopped.value


def daily_quota() -> BatcherError:
    """The run's stop when a location's daily quota is reached (from the pacer's reason)."""
    pacer = Pacer(100, 10.0)
    pacer.observe(BATCH.location_id, RateLimitInfo(daily_remaining=0))
    reason = pacer.exhausted(BATCH.location_id)
    assert reason is not None
    return quota_reached({BATCH.location_id: reason})


def interrupted(reason: str) -> BatcherError:
    """The stop a signal or the page's stop button asks for."""
    stop = Stop()
    stop.request(reason)
    return stop.error()


def unrecordable(tmp_path: Path) -> BatcherError:
    """The ledger cannot write an answer (its database is gone from under it)."""
    with Ledger.open(tmp_path / "state", "k") as ledger:
        ledger.close()
        outcome = BatchOutcome(BATCH, (DELETED,) * len(BATCH.rows), 201, 1)
        with pytest.raises(StateError) as stopped:
            ledger.record(outcome)
    return stopped.value


Stopper = Callable[[Path], BatcherError | Awaitable[BatcherError]]
STOPS: dict[str, Stopper] = {
    "401": lambda _: refused(AuthError("HTTP 401: Invalid JWT", status=401)),
    "403": lambda _: refused(ForbiddenError("HTTP 403: no access to location", status=403)),
    "daily quota": lambda _: daily_quota(),
    "a location's credential": lambda _: credentials_refused({BATCH.location_id: "$TOKEN_B"}),
    "lost requests": lambda _: failures(ServerError("HTTP 503: unavailable", status=503)),
    "refused requests": lambda _: failures(RejectedError("HTTP 422: tags must be", status=422)),
    "canary": lambda _: errors_in(2),
    "error window": lambda _: errors_in(1, 2),
    "SIGINT": lambda _: interrupted("interrupted by SIGINT"),
    "the page's stop": lambda _: interrupted("stopped from the page"),
    "state not recorded": unrecordable,
    "report not written": lambda _: _unwritable(Path("r.csv"), OSError(28, "No space left")),
}


@pytest.mark.parametrize("name", list(STOPS))
async def test_a_stop_s_pending_rows_and_last_line_say_what_to_do_once(
    name: str, tmp_path: Path
) -> None:
    """The pending rows' message is "not sent: " and the stop's whole text, with the advice
    once (the stop's own, else "run the same command again to send it"); the CLI's last line
    likewise says it once."""
    made = STOPS[name](tmp_path)
    stop = await made if asyncio.iscoroutine(made) else made
    assert isinstance(stop, BatcherError)
    message = pending_message(stop)
    assert message.startswith(f"not sent: {stop}")
    assert message.count(ADVICE) == 1, message
    assert _with_advice(stop).count(ADVICE) == 1, _with_advice(stop)
    if not stop.advice:
        assert message == f"not sent: {stop}; run the same command again to send it"


def test_a_run_that_ended_early_without_a_stop_says_to_run_again() -> None:
    """No stop recorded (the pool ended with rows never handed out): the advice, once."""
    assert pending_message(None) == (
        "not sent: the run ended early; run the same command again to send it"
    )


def test_a_location_s_daily_quota_pending_rows_say_when_to_run_again_once() -> None:
    """Rows of a location whose daily quota is reached have their own message: why, and to run
    again when it resets, once."""
    pacer = Pacer(100, 10.0)
    pacer.observe(BATCH.location_id, RateLimitInfo(daily_remaining=0))
    reason = pacer.exhausted(BATCH.location_id)
    assert reason is not None
    message = quota_message(reason)
    assert message.startswith("not sent: the location's daily request quota is reached (")
    assert message.endswith("; run the same command again when it resets")
    assert message.count(ADVICE) == 1
