"""The breakers that stop a run going wrong (SPEC "Exit status", 3): requests that keep failing
(`FailureBreaker`), and contacts that come back `error` too often (`ErrorRateBreaker`: a
location's first request, the canary, and a window of the last requests)."""

from __future__ import annotations

from collections import Counter, deque

from batcher.domain.errors import RESUME, ErrorRateError, TooManyFailuresError
from batcher.domain.models import BatchOutcome, Status, by_identity

__all__ = ["ErrorRateBreaker", "FailureBreaker"]


class FailureBreaker:
    """Stops the run after `limit` batches in a row were lost (no usable answer at all).

    A large file against a broken service should not burn through every row: after `limit`
    lost batches in a row the run stops (exit 3) and the rest stay `pending`.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_a_row = 0

    def observe(self, outcome: BatchOutcome) -> None:
        self._in_a_row = 0 if outcome.answered else self._in_a_row + 1
        if self._in_a_row >= self._limit:
            raise TooManyFailuresError(
                f"{self._limit} requests in a row failed (last: {outcome.reason})",
                advice="the rows not sent stay pending: check the service, then " + RESUME,
            )


_ERROR_RATE_ADVICE = (
    f"the rows not sent stay pending: {RESUME} (set run.max_error_rate = 1 to turn this check off)"
)


class ErrorRateBreaker:
    """Stops a run whose contacts come back `error` too often: the canary and the window.

    - **Canary.** The first answered request of each location (the scheduler sends it alone,
      see `batcher.sending.lanes`): more than `max_rate` of its contacts `error` means the location
      or the file is wrong, and the run stops after that one request.
    - **Window.** Over the contacts of the last `window` answered requests (all locations), more
      than `max_rate` `error` stops a run that goes bad halfway. Judged only once the window is
      full, so that a few bad rows at the start do not stop a long run.

    Lost requests (no per-contact answer) are the FailureBreaker's, not counted here.
    `max_rate` 1 turns both off. The stop is `ErrorRateError` (exit 3): the rows not sent stay
    pending, and the same command resumes once the cause is fixed.
    """

    def __init__(self, max_rate: float, window: int) -> None:
        self._max_rate = max_rate
        self._window: deque[tuple[int, int]] = deque(maxlen=window)
        self._errors = 0
        self._contacts = 0
        self._seen: set[str] = set()
        self._messages: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return self._max_rate < 1

    def observe(self, outcome: BatchOutcome) -> None:
        if not self.enabled or not outcome.answered or not outcome.outcomes:
            return
        errors = 0
        # Contacts answered alike share one outcome object: most batches have no error at all,
        # which the distinct outcomes tell without a look at each contact.
        distinct = by_identity(outcome.outcomes)
        if any(contact.status is Status.ERROR for contact in distinct.values()):
            for contact in outcome.outcomes:
                if contact.status is Status.ERROR:
                    errors += 1
                    if len(self._messages) < 100 or contact.message in self._messages:
                        self._messages[contact.message] += 1
        contacts = len(outcome.outcomes)
        location = outcome.batch.location_id
        if location not in self._seen:
            self._seen.add(location)
            if errors > self._max_rate * contacts:
                raise ErrorRateError(
                    f"the first request to location {location} came back with {errors:,} of "
                    f"{contacts:,} contacts `error` ({self._top()}), more than "
                    f"run.max_error_rate {self._max_rate:g}: check the location id (--location-id, "
                    "the location_id column or api.location_id) and that this is the right file",
                    advice=_ERROR_RATE_ADVICE,
                )
        if len(self._window) == self._window.maxlen:
            old_errors, old_contacts = self._window[0]
            self._errors -= old_errors
            self._contacts -= old_contacts
        self._window.append((errors, contacts))
        self._errors += errors
        self._contacts += contacts
        full = len(self._window) == self._window.maxlen
        if full and self._errors > self._max_rate * self._contacts:
            raise ErrorRateError(
                f"{self._errors:,} of the {self._contacts:,} contacts of the last "
                f"{len(self._window)} requests came back `error` ({self._top()}), more than "
                f"run.max_error_rate {self._max_rate:g}: the contacts may have been deleted or "
                "moved, or the file is not the one meant",
                advice=_ERROR_RATE_ADVICE,
            )

    def _top(self) -> str:
        message, _ = self._messages.most_common(1)[0]
        return f'most often: "{message}"'
