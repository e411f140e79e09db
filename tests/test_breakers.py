"""The two breakers on their own (when a run stops for lost requests or for answers of `error`,
and what it then says), and what the sender makes of error answers: their rate headers reach the
pacer, a 429 pauses its location, a lost request is told to machine logs."""

from __future__ import annotations

import pytest
from aioresponses import aioresponses
from test_sending import BATCH, RETRY, URL, Sending, Sleeps, created

from batcher.domain.errors import ErrorRateError, TooManyFailuresError
from batcher.domain.events import Event
from batcher.domain.models import (
    Action,
    Batch,
    BatchOutcome,
    ContactOutcome,
    RateLimitInfo,
    Status,
)
from batcher.sending.breakers import ErrorRateBreaker, FailureBreaker
from batcher.sending.client import BulkTagsClient
from batcher.sending.lanes import Dispatch
from batcher.sending.pacing import Pacer
from batcher.sending.sender import BatchSender, Counters

LOCATION = "asdrwHvLUxlfw5SqKVCN"
OK = ContactOutcome(Status.SUCCESS, "Tags updated", (), ("vip",), ())
DELETED = ContactOutcome(Status.ERROR, "contact is deleted")
ELSEWHERE = ContactOutcome(Status.ERROR, "contact does not belong to account")
LOST = "HTTP 503: Service Unavailable (after 6 attempts)"


def _batch(contacts: int, location: str) -> Batch:
    rows = tuple(range(1, contacts + 1))
    return Batch(location, Action.ADD, ("vip",), False, 0, rows, tuple(f"C{n:019d}" for n in rows))


def answered(
    errors: int,
    contacts: int = 10,
    *,
    location: str = LOCATION,
    error: ContactOutcome = DELETED,
) -> BatchOutcome:
    """An answered request of `contacts` contacts, `errors` of them `error`."""
    outcomes = (error,) * errors + (OK,) * (contacts - errors)
    return BatchOutcome(_batch(contacts, location), outcomes, 201, 1)


def lost(contacts: int = 10, reason: str = LOST) -> BatchOutcome:
    """A request that got no usable answer: every contact `failed`, as BatchSender makes it."""
    failed = ContactOutcome(Status.FAILED, f"{reason}; running the same command again retries it")
    batch = _batch(contacts, LOCATION)
    return BatchOutcome(batch, (failed,) * contacts, 503, 6, answered=False, reason=reason)


# -- FailureBreaker ---------------------------------------------------------------------------


def test_the_failure_breaker_trips_at_exactly_its_limit_of_lost_requests_in_a_row() -> None:
    """Two lost requests in a row pass a limit of 3; the third stops the run, naming the limit
    and the last failure once, with what to do."""
    breaker = FailureBreaker(3)
    breaker.observe(lost())
    breaker.observe(lost())
    with pytest.raises(TooManyFailuresError) as tripped:
        breaker.observe(lost(reason="HTTP 502: Bad Gateway (after 6 attempts)"))
    assert str(tripped.value) == (
        "3 requests in a row failed (last: HTTP 502: Bad Gateway (after 6 attempts)); the rows "
        "not sent stay pending: check the service, then run the same command again to resume"
    )
    assert tripped.value.exit_code == 3


def test_an_answered_request_starts_the_count_of_lost_ones_again() -> None:
    """Lost, lost, answered (even with every contact `error`), lost, lost: never three lost in
    a row, so a limit of 3 never trips; one more lost request does."""
    breaker = FailureBreaker(3)
    for outcome in (lost(), lost(), answered(errors=10), lost(), lost()):
        breaker.observe(outcome)
    with pytest.raises(TooManyFailuresError):
        breaker.observe(lost())


def test_a_limit_of_one_trips_on_the_first_lost_request() -> None:
    """`retry.max_consecutive_failures = 1`: the first lost request stops the run; answered
    ones before it never do."""
    breaker = FailureBreaker(1)
    breaker.observe(answered(errors=0))
    with pytest.raises(TooManyFailuresError, match=r"^1 requests in a row failed"):
        breaker.observe(lost())


# -- ErrorRateBreaker: the canary ---------------------------------------------------------------


def test_the_canary_trips_on_more_than_max_rate_errors_in_a_location_s_first_request() -> None:
    """6 of 10 contacts `error` in the first request is more than 0.5: the run stops, and the
    message names the location, the count, the most common message, the threshold and what to
    do, once."""
    breaker = ErrorRateBreaker(0.5, window=20)
    outcome = answered(errors=6, error=ELSEWHERE)
    with pytest.raises(ErrorRateError) as tripped:
        breaker.observe(outcome)
    assert str(tripped.value) == (
        f"the first request to location {LOCATION} came back with 6 of 10 contacts `error` "
        '(most often: "contact does not belong to account"), more than run.max_error_rate 0.5: '
        "check the location id (--location-id, the location_id column or api.location_id) and "
        "that this is the right file; the rows not sent stay pending: run the same command "
        "again to resume (set run.max_error_rate = 1 to turn this check off)"
    )


def test_the_canary_does_not_trip_at_exactly_max_rate() -> None:
    """5 of 10 is not more than 0.5: the first request passes."""
    ErrorRateBreaker(0.5, window=20).observe(answered(errors=5))


def test_only_each_location_s_first_request_is_a_canary() -> None:
    """Location A's second request with 6 of 10 `error` is no canary (the window is not full);
    location B's first request with as many is, and trips."""
    breaker = ErrorRateBreaker(0.5, window=20)
    breaker.observe(answered(errors=0, location="locationA"))
    breaker.observe(answered(errors=6, location="locationA"))
    with pytest.raises(ErrorRateError, match="the first request to location locationB"):
        breaker.observe(answered(errors=6, location="locationB"))


def test_a_max_rate_of_one_turns_both_checks_off() -> None:
    """`run.max_error_rate = 1`: every contact `error`, in the first request and in a full
    window, never stops the run."""
    breaker = ErrorRateBreaker(1.0, window=2)
    assert not breaker.enabled
    for _ in range(5):
        breaker.observe(answered(errors=10))


# -- ErrorRateBreaker: the window ---------------------------------------------------------------


def test_the_window_is_judged_only_once_full() -> None:
    """Window of 3: after the canary (5 of 10) and a request of 10 `error` (15 of 20, more than
    half) nothing trips, as the window is not full; the third request fills it: 16 of 30 trips,
    and the message says so and what to do, once."""
    breaker = ErrorRateBreaker(0.5, window=3)
    breaker.observe(answered(errors=5))
    breaker.observe(answered(errors=10))
    with pytest.raises(ErrorRateError) as tripped:
        breaker.observe(answered(errors=1))
    assert str(tripped.value) == (
        "16 of the 30 contacts of the last 3 requests came back `error` (most often: "
        '"contact is deleted"), more than run.max_error_rate 0.5: the contacts may have been '
        "deleted or moved, or the file is not the one meant; the rows not sent stay pending: "
        "run the same command again to resume (set run.max_error_rate = 1 to turn this check "
        "off)"
    )


def test_a_full_window_at_exactly_max_rate_does_not_trip() -> None:
    """Window of 2: 5 + 5 of 20 is exactly half, not more: no stop; one more error does."""
    breaker = ErrorRateBreaker(0.5, window=2)
    breaker.observe(answered(errors=5))
    breaker.observe(answered(errors=5))
    with pytest.raises(ErrorRateError, match=r"^11 of the 20 contacts"):
        breaker.observe(answered(errors=6))


def test_the_window_forgets_requests_older_than_its_length() -> None:
    """Window of 2: three clean requests, then two of 6 `error`: the window holds only those
    two (12 of 20) and trips; counted over all five it would be 12 of 50."""
    breaker = ErrorRateBreaker(0.5, window=2)
    for _ in range(3):
        breaker.observe(answered(errors=0))
    breaker.observe(answered(errors=6))
    with pytest.raises(ErrorRateError, match=r"^12 of the 20 contacts of the last 2 requests"):
        breaker.observe(answered(errors=6))


def test_lost_requests_are_kept_out_of_the_error_window() -> None:
    """Window of 2: the canary (1 of 10 `error`), a lost request (every contact `failed`), then
    10 of 10 `error`: the window is the two answered requests (11 of 20) and trips; a lost
    request counted in it would have pushed the canary out and diluted the rest (10 of 20)."""
    breaker = ErrorRateBreaker(0.5, window=2)
    breaker.observe(answered(errors=1))
    breaker.observe(lost())
    with pytest.raises(ErrorRateError, match=r"^11 of the 20 contacts of the last 2 requests"):
        breaker.observe(answered(errors=10))


def test_a_lost_request_is_never_a_canary() -> None:
    """A location's first request is lost (no per-contact answer): it is the FailureBreaker's,
    and the location's first answered request is still judged as its canary."""
    breaker = ErrorRateBreaker(0.5, window=20)
    breaker.observe(lost())
    with pytest.raises(ErrorRateError, match=r"^the first request to location"):
        breaker.observe(answered(errors=6))


def test_the_message_names_the_most_common_error() -> None:
    """Two kinds of `error`: the one most contacts got is the one quoted."""
    breaker = ErrorRateBreaker(0.5, window=2)
    breaker.observe(answered(errors=2, error=DELETED))
    with pytest.raises(ErrorRateError, match='most often: "contact does not belong to account"'):
        breaker.observe(answered(errors=9, error=ELSEWHERE))


def test_the_message_counts_keep_the_first_hundred_messages_only() -> None:
    """The API's messages are counted for the stop's "most often" up to 100 distinct ones
    (bounded memory whatever the API says): the 100th is still counted, a 101st never is, even
    when it then comes most often."""
    breaker = ErrorRateBreaker(0.9, window=2)
    first = [ContactOutcome(Status.ERROR, f"message {n}") for n in range(100)]
    hundredth = first[99]
    outcomes = (*first, hundredth, hundredth, *(OK,) * 12)  # 102 of 114: not more than 0.9
    breaker.observe(BatchOutcome(_batch(len(outcomes), LOCATION), outcomes, 201, 1))
    late = ContactOutcome(Status.ERROR, "a message after the hundredth")
    with pytest.raises(ErrorRateError) as tripped:
        breaker.observe(BatchOutcome(_batch(200, LOCATION), (late,) * 200, 201, 1))
    assert str(tripped.value).startswith(
        "302 of the 314 contacts of the last 2 requests came back `error` (most often: "
        '"message 99")'
    )


# -- the sender's error answers -------------------------------------------------------------------


async def test_the_rate_headers_of_an_error_answer_reach_the_pacer(
    mocked: aioresponses,
) -> None:
    """A 503 that carries X-RateLimit-* headers is retried, and the pacer hears its headers as
    it hears a 201's: the server's window holds from that answer on."""
    headers = {
        "X-RateLimit-Max": "40",
        "X-RateLimit-Remaining": "39",
        "X-RateLimit-Interval-Milliseconds": "10000",
    }
    mocked.post(URL, status=503, headers=headers, payload={"message": "Service Unavailable"})
    mocked.post(URL, status=201, payload=created())
    async with BulkTagsClient(base_url="https://api.example.test", token="t0ken") as client:
        sending = Sending(client, Sleeps(), Counters())
        heard: list[tuple[str, RateLimitInfo]] = []
        observe = sending.pacer.observe

        def spy(location_id: str, info: RateLimitInfo, *, since: float | None = None) -> None:
            heard.append((location_id, info))
            observe(location_id, info, since=since)

        sending.pacer.observe = spy  # type: ignore[method-assign]
        outcome = await sending(BATCH)

    assert outcome is not None
    assert outcome.attempts == 2
    assert heard[0] == (BATCH.location_id, RateLimitInfo(max=40, remaining=39, interval_ms=10000))


async def test_the_daily_quota_s_headers_are_told_as_the_quota_not_as_a_window(
    mocked: aioresponses,
) -> None:
    """A 429 with X-RateLimit-Daily-Remaining: 0 stops its location with when the quota comes
    back; its headers are not passed to the pacer as an ordinary answer's."""
    mocked.post(URL, status=429, headers={"X-RateLimit-Daily-Remaining": "0"}, payload={})
    async with BulkTagsClient(base_url="https://api.example.test", token="t0ken") as client:
        sending = Sending(client, Sleeps(), Counters())
        heard: list[RateLimitInfo] = []
        observe = sending.pacer.observe

        def spy(location_id: str, info: RateLimitInfo, *, since: float | None = None) -> None:
            heard.append(info)
            observe(location_id, info, since=since)

        sending.pacer.observe = spy  # type: ignore[method-assign]
        assert await sending(BATCH) is None

    assert heard == []
    reason = sending.pacer.exhausted(BATCH.location_id)
    assert reason is not None
    assert reason.startswith("the API answered 429 with X-RateLimit-Daily-Remaining: 0")


async def test_a_429_without_retry_after_pauses_its_location_for_the_interval_it_names(
    mocked: aioresponses,
) -> None:
    """A burst 429 with X-RateLimit-Interval-Milliseconds: 4000 and no Retry-After holds the
    location back for those 4 s (not the configured 10 s window)."""
    mocked.post(URL, status=429, headers={"X-RateLimit-Interval-Milliseconds": "4000"}, payload={})
    mocked.post(URL, status=201, payload=created())
    async with BulkTagsClient(base_url="https://api.example.test", token="t0ken") as client:
        sending = Sending(client, Sleeps(), Counters())
        pauses: list[tuple[str, float]] = []
        pause = sending.pacer.pause

        def spy(location_id: str, seconds: float) -> None:
            pauses.append((location_id, seconds))
            pause(location_id, seconds)

        sending.pacer.pause = spy  # type: ignore[method-assign]
        outcome = await sending(BATCH)

    assert outcome is not None
    assert pauses == [(BATCH.location_id, 4.0)]


async def test_a_lost_request_is_told_to_machine_logs_with_its_first_row(
    mocked: aioresponses,
) -> None:
    """Retries exhausted: a `request.failed` event names the location, the contacts, the
    batch's first row, the last status, the attempts and the reason, for log collectors only
    (a person sees the summary's reasons instead)."""
    for _ in range(RETRY.attempts):
        mocked.post(URL, status=500, payload={"statusCode": 500, "message": "Internal"})
    events: list[Event] = []
    sleeps = Sleeps()
    pacer = Pacer(100, 10.0, clock=lambda: sleeps.now, sleep=sleeps)
    async with BulkTagsClient(base_url="https://api.example.test", token="t0ken") as client:
        sender = BatchSender(
            client,
            pacer,
            RETRY,
            Counters(),
            token_source="$BATCHER_TOKEN",
            sleep=sleeps,
            events=events.append,
        )
        slot = pacer.try_start(BATCH.location_id)
        assert slot is not None
        outcome = await sender(Dispatch(BATCH, slot))

    assert outcome is not None
    assert not outcome.answered
    [failed] = [event for event in events if event.name == "request.failed"]
    assert dict(failed.fields) == {
        "location_id": BATCH.location_id,
        "contacts": 2,
        "first_row": 1,
        "http_status": 500,
        "attempts": RETRY.attempts,
        "reason": "HTTP 500: Internal",
    }
    assert failed.text is False
