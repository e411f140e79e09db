"""The retry policy retries what may pass later and waits as the server asks, never for real."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from batcher.domain.config import RetrySettings
from batcher.domain.errors import (
    ApiError,
    AuthError,
    DailyQuotaError,
    ForbiddenError,
    MalformedAnswerError,
    RateLimitedError,
    RejectedError,
    ServerError,
    TransportError,
)
from batcher.domain.models import RateLimitInfo
from batcher.sending.retrying import MAX_SERVER_WAIT_S, RetryPolicy

SETTINGS = RetrySettings(attempts=6, initial_backoff_s=1.0, max_backoff_s=5.0)


class FixedRng(random.Random):
    """`uniform(a, b)` is `a + (b - a) * random()`: pin `random()` to pin the jitter."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


class Sleeps:
    """A fake sleep that records how long it was asked to wait and only lets others run."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def script(*steps: ApiError | str) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An attempt that raises or returns the next step each time; also counts its calls."""
    pending = list(steps)
    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        step = pending.pop(0)
        if isinstance(step, ApiError):
            raise step
        return step

    return attempt, calls


def policy(
    settings: RetrySettings = SETTINGS, *, rng: random.Random | None = None
) -> tuple[RetryPolicy, Sleeps]:
    sleeps = Sleeps()
    return RetryPolicy(settings, sleep=sleeps, rng=rng or FixedRng(0.5)), sleeps


def too_many(interval_ms: int | None = None) -> RateLimitedError:
    """A burst 429, with the X-RateLimit-Interval-Milliseconds the client read, if any."""
    return RateLimitedError("HTTP 429", status=429, rate=RateLimitInfo(interval_ms=interval_ms))


async def test_transient_errors_are_retried_until_one_attempt_succeeds() -> None:
    retry, sleeps = policy()
    attempt, calls = script(
        ServerError("HTTP 503", status=503),
        TransportError("no answer"),
        MalformedAnswerError("HTTP 201 without a 'responses' list", status=201),
        too_many(),
        "answer",
    )

    assert await retry.call(attempt) == ("answer", 5)
    assert calls[0] == 5
    assert len(sleeps.waits) == 4


async def test_a_first_time_success_costs_one_attempt_and_no_wait() -> None:
    retry, sleeps = policy()
    attempt, _ = script("answer")

    assert await retry.call(attempt) == ("answer", 1)
    assert sleeps.waits == []


async def test_it_gives_up_after_the_configured_attempts_with_the_last_error() -> None:
    retry, sleeps = policy(RetrySettings(attempts=3, initial_backoff_s=1.0, max_backoff_s=5.0))
    errors = [ServerError(f"HTTP 50{n}", status=500 + n) for n in range(3)]
    attempt, calls = script(*errors)

    with pytest.raises(ServerError) as caught:
        await retry.call(attempt)

    assert caught.value is errors[-1]
    assert caught.value.attempts == 3
    assert calls[0] == 3
    assert len(sleeps.waits) == 2


@pytest.mark.parametrize(
    "error",
    [
        RejectedError("HTTP 400: bad", status=400),
        RejectedError("HTTP 422: contacts must be an array", status=422),
        AuthError("HTTP 401: Invalid token", status=401),
        ForbiddenError("HTTP 403", status=403),
        DailyQuotaError("HTTP 429", status=429, headers={"X-RateLimit-Daily-Remaining": "0"}),
    ],
    ids=["400", "422", "401", "403", "429 daily"],
)
async def test_rejected_and_fatal_answers_are_raised_at_once(error: ApiError) -> None:
    retry, sleeps = policy()
    attempt, calls = script(error, "never reached")

    with pytest.raises(type(error)) as caught:
        await retry.call(attempt)

    assert caught.value is error
    assert caught.value.attempts == 1
    assert calls[0] == 1
    assert sleeps.waits == []


async def test_a_refusal_after_retries_reports_every_attempt_made() -> None:
    retry, _ = policy()
    attempt, _ = script(ServerError("HTTP 502", status=502), RejectedError("HTTP 422", status=422))

    with pytest.raises(RejectedError) as caught:
        await retry.call(attempt)

    assert caught.value.attempts == 2


async def test_an_exception_that_is_not_an_api_error_is_not_retried() -> None:
    retry, sleeps = policy()

    async def broken() -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await retry.call(broken)
    assert sleeps.waits == []


@pytest.mark.parametrize(
    ("error", "wait"),
    [
        pytest.param(
            RateLimitedError("HTTP 429", status=429, retry_after_s=7.5), 7.5, id="429 7.5 s"
        ),
        pytest.param(
            RateLimitedError("HTTP 429", status=429, retry_after_s=120.0),
            120.0,
            id="beyond max_backoff_s",
        ),
        pytest.param(ServerError("HTTP 503", status=503, retry_after_s=3.0), 3.0, id="503"),
        pytest.param(RateLimitedError("HTTP 429", status=429, retry_after_s=0.0), 0.0, id="zero"),
        pytest.param(
            RateLimitedError("HTTP 429", status=429, retry_after_s=-4.0), 0.0, id="negative"
        ),
        pytest.param(
            RateLimitedError("HTTP 429", status=429, retry_after_s=10 * MAX_SERVER_WAIT_S),
            MAX_SERVER_WAIT_S,
            id="capped",
        ),
        pytest.param(
            RateLimitedError(
                "HTTP 429",
                status=429,
                retry_after_s=2.0,
                headers={"X-RateLimit-Interval-Milliseconds": "10000"},
            ),
            2.0,
            id="over the interval header",
        ),
    ],
)
async def test_retry_after_is_waited_exactly(error: ApiError, wait: float) -> None:
    retry, sleeps = policy(rng=FixedRng(0.99))
    attempt, _ = script(error, "answer")

    await retry.call(attempt)

    assert sleeps.waits == [wait]


async def test_a_429_without_retry_after_waits_out_the_interval() -> None:
    retry, sleeps = policy()
    attempt, _ = script(too_many(interval_ms=10_000), "answer")

    await retry.call(attempt)

    assert sleeps.waits == [10.0]


async def test_the_interval_is_a_floor_not_a_ceiling_for_backoff() -> None:
    settings = RetrySettings(attempts=4, initial_backoff_s=8.0, max_backoff_s=60.0)
    retry, sleeps = policy(settings, rng=FixedRng(0.5))
    attempt, _ = script(*(too_many(interval_ms=10_000) for _ in range(3)), "ok")

    await retry.call(attempt)

    # Backoff ceilings 8, 16, 32 -> 6, 12, 24 with the jitter pinned mid-range.
    assert sleeps.waits == [10.0, 12.0, 24.0]


async def test_a_429_without_any_hint_backs_off() -> None:
    retry, sleeps = policy(rng=FixedRng(0.5))
    attempt, _ = script(too_many(), "answer")

    await retry.call(attempt)

    assert sleeps.waits == [0.75]


async def test_backoff_doubles_from_the_initial_wait_and_is_capped() -> None:
    retry, sleeps = policy(rng=FixedRng(0.5))
    attempt, _ = script(*(ServerError("HTTP 500", status=500) for _ in range(5)), "answer")

    await retry.call(attempt)

    # Ceilings 1, 2, 4, 5, 5 (max_backoff_s); the pinned jitter takes 3/4 of each.
    assert sleeps.waits == [0.75, 1.5, 3.0, 3.75, 3.75]


@pytest.mark.parametrize(("value", "share"), [(0.0, 0.5), (0.999, 0.9995)])
async def test_jitter_comes_from_the_injected_rng(value: float, share: float) -> None:
    retry, sleeps = policy(rng=FixedRng(value))
    attempt, _ = script(*(TransportError("no answer") for _ in range(3)), "answer")

    await retry.call(attempt)

    assert sleeps.waits == pytest.approx([share * c for c in (1.0, 2.0, 4.0)])


async def test_the_same_seed_gives_the_same_waits_and_each_stays_in_its_band() -> None:
    runs = []
    for _ in range(2):
        retry, sleeps = policy(rng=random.Random(1234))
        attempt, _ = script(*(TransportError("no answer") for _ in range(5)), "answer")
        await retry.call(attempt)
        runs.append(sleeps.waits)

    assert runs[0] == runs[1]
    for wait, ceiling in zip(runs[0], (1.0, 2.0, 4.0, 5.0, 5.0), strict=True):
        assert ceiling / 2 <= wait <= ceiling


async def test_on_retry_is_told_the_error_and_the_wait_before_each_sleep() -> None:
    events: list[tuple[str, object, float]] = []

    async def sleep(seconds: float) -> None:
        events.append(("sleep", None, seconds))

    first = too_many(interval_ms=10_000)
    second = ServerError("HTTP 503", status=503, retry_after_s=2.0)
    retry = RetryPolicy(
        SETTINGS,
        sleep=sleep,
        rng=FixedRng(0.5),
        on_retry=lambda error, wait: events.append(("retry", error, wait)),
    )
    attempt, _ = script(first, second, "answer")

    await retry.call(attempt)

    assert events == [
        ("retry", first, 10.0),
        ("sleep", None, 10.0),
        ("retry", second, 2.0),
        ("sleep", None, 2.0),
    ]


async def test_one_policy_serves_concurrent_calls_independently() -> None:
    retry, _ = policy()
    slow, slow_calls = script(*(TransportError("no answer") for _ in range(3)), "slow")
    fast, fast_calls = script(TransportError("no answer"), "fast")

    results = await asyncio.gather(retry.call(slow), retry.call(fast))

    assert list(results) == [("slow", 4), ("fast", 2)]
    assert (slow_calls[0], fast_calls[0]) == (4, 2)
