"""The exception tree of batcher; every class knows the exit code it ends a run with.

    BatcherError                      exit 2 unless a subclass says otherwise
    ├── UsageError                    2  nothing was sent
    │   ├── ConfigError               2  a bad config key or value (names the key path)
    │   ├── InputError                2  the input file cannot be read or has no id column
    │   ├── NothingToSendError        2  every row invalid, or no rows (without --allow-empty)
    │   └── StateLockedError          2  another run holds the state directory
    ├── ApiError                      an answer (or no answer) that is not a usable 201
    │   ├── TransientError            retried with backoff
    │   │   ├── RateLimitedError      429 (burst)
    │   │   ├── ServerError           5xx
    │   │   ├── TransportError        timeout, refused or dropped connection
    │   │   └── MalformedAnswerError  201 whose body cannot be read
    │   ├── RejectedError             400/422: not retried, the batch's rows are `failed`
    │   └── FatalApiError             3  the whole run stops
    │       ├── AuthError             401
    │       ├── ForbiddenError        403
    │       ├── ExchangeError         the agency exchange refused a location's token (Step 11)
    │       └── DailyQuotaError       429 with X-RateLimit-Daily-Remaining: 0 (only its
    │                                    location stops: see QuotaReachedError)
    └── StopRun                       3  the run stopped early on its own account
        ├── Interrupted               SIGINT/SIGTERM
        ├── TooManyFailuresError      too many batches failed in a row
        ├── ErrorRateError            too many contacts answered `error` (the canary of a
        │                                location, or the recent requests): run.max_error_rate
        ├── QuotaReachedError         a location's daily quota (or its reserve) is reached
        ├── CredentialsRefusedError   some locations' credentials were refused (401/403): their
        │                                rows stay pending, the other locations finished
        ├── WindowEndError            --until-window-end: the send window is closed, or
        │                                nothing more can go before it ends
        └── StateError                the run's state or report cannot be written (disk full…)

A second SIGINT/SIGTERM ends the process at once with exit 3 (see batcher.support.stopping).

A stop (StopRun, FatalApiError) may carry `advice`, what the user does about it; its message is
then "<what happened>; <advice>". Text built on a stop (a pending row's message, the CLI's last
line) adds advice of its own only when the stop has none, so that it is never said twice.

Messages never contain the bearer token: only statuses, the API's own messages and names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Self

from batcher.domain.models import RateLimitInfo

# How a stopped run is resumed (SPEC "Exit status": 3, "running the same command again resumes").
RESUME = "run the same command again to resume"


class BatcherError(Exception):
    exit_code = 2
    # What to do about it, when the message ends with it (see the module's docstring).
    advice = ""
    # Whether a person must act before the same command can succeed (a refused token, a
    # quota, a breaker, a disk): logged at `error`, so that a collector alerting on errors
    # hears of it. An interruption (a cron `timeout`) needs no one: the next run resumes.
    needs_person = True


def _said(message: str, advice: str) -> str:
    return f"{message}; {advice}" if advice else message


class UsageError(BatcherError):
    exit_code = 2


class ConfigError(UsageError):
    """A config key or value is wrong; the message starts with its key path."""


class InputError(UsageError):
    """The input file cannot be used; the message names the file."""


class NoIdColumnError(InputError):
    """No contact id column was found (or none of the name asked for): `columns` is the
    header as read, for a face that lets the user choose one."""

    def __init__(self, message: str, *, columns: tuple[str, ...]) -> None:
        super().__init__(message)
        self.columns = columns


class EncodingUnclearError(InputError):
    """An 8-bit file whose sent cells read differently in the likely code pages: `readings`
    is each code page's reading of the first such cell, for a face that lets the user choose."""

    def __init__(self, message: str, *, readings: tuple[tuple[str, str], ...]) -> None:
        super().__init__(message)
        self.readings = readings


class NothingToSendError(UsageError):
    """The input asks for nothing that can be sent: no rows, or every row invalid."""


class StateLockedError(UsageError):
    """Another batcher process is using the same state directory."""


class ApiError(BatcherError):
    """An answer from the API other than a usable 201, or no answer at all."""

    exit_code = 1
    # Sending the same request again cannot help (the API refused the request itself): the
    # rows it leaves `failed` must be fixed in the input, not retried (kept with each outcome).
    permanent = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after_s: float | None = None,
        rate: RateLimitInfo | None = None,
        exposed: bool = False,
        advice: str = "",
    ) -> None:
        super().__init__(_said(message, advice))
        self.message = message
        self.advice = advice
        self.status = status
        self.headers: Mapping[str, str] = MappingProxyType(dict(headers or {}))
        self.retry_after_s = retry_after_s
        # The answer's X-RateLimit-* headers, read by the client (empty when there was none).
        self.rate = rate or RateLimitInfo()
        # HTTP attempts made before this error settled things; set by the retrying policy.
        self.attempts = 1
        # The attempt may have reached the API without an answer (the request was written, or
        # a 5xx or an unreadable 201 came back): the API may have applied it. Set by the client
        # from what happened on the wire, never read from the message.
        self.exposed = exposed

    def reworded(self, message: str, *, advice: str) -> Self:
        """The same error (class, status, rate limit, attempts) told as `message` with what to
        do about it: a stop explained to the user."""
        again = type(self)(
            message,
            status=self.status,
            retry_after_s=self.retry_after_s,
            rate=self.rate,
            advice=advice,
        )
        again.attempts = self.attempts
        return again


class TransientError(ApiError):
    """Worth another attempt: the request may succeed if sent again later."""


class RateLimitedError(TransientError):
    pass


class ServerError(TransientError):
    pass


class TransportError(TransientError):
    pass


class MalformedAnswerError(TransientError):
    pass


class RejectedError(ApiError):
    """The API refused the request itself (400/422); sending it again cannot help."""

    permanent = True


class FatalApiError(ApiError):
    exit_code = 3


class AuthError(FatalApiError):
    pass


class ForbiddenError(FatalApiError):
    pass


class DailyQuotaError(FatalApiError):
    pass


class ProxyAuthError(FatalApiError):
    """The proxy refused its credentials (407): no request reaches the API until the proxy's
    settings are fixed, whichever row or location (never a row's fault, never retried)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault(
            "advice",
            "fix the proxy's user and password (in HTTPS_PROXY / HTTP_PROXY, or ~/.netrc), "
            "then " + RESUME,
        )
        super().__init__(message, **kwargs)


class ExchangeError(FatalApiError):
    """POST /oauth/locationToken refused to give a location's token (the agency token itself,
    status 401: `agency_refused`; or the company or location, 400/403/422): that location
    cannot be sent to."""

    agency_refused = False

    def reworded(self, message: str, *, advice: str) -> Self:
        again = super().reworded(message, advice=advice)
        again.agency_refused = self.agency_refused
        return again


class StopRun(BatcherError):
    exit_code = 3

    def __init__(self, message: str, *, advice: str = "") -> None:
        super().__init__(_said(message, advice))
        self.advice = advice


class Interrupted(StopRun):
    needs_person = False


class TooManyFailuresError(StopRun):
    pass


class ErrorRateError(StopRun):
    """More than run.max_error_rate of the contacts came back `error`: a location's first
    request (the canary), or the recent requests (the run went bad halfway)."""


class QuotaReachedError(StopRun):
    """Some locations' daily quota is reached: their rows stay pending; the others finished."""


class CredentialsRefusedError(StopRun):
    """The API refused some locations' credentials (401/403, or the agency exchange): their rows
    stay pending; the other locations finished."""


class WindowEndError(StopRun):
    """`--until-window-end`: nothing more may go before the send window ends (or it is
    closed); the rows left stay pending for the next run."""


class StateError(StopRun):
    """The run's state file or report cannot be written; what was recorded is kept."""
