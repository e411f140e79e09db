"""The lookup stage (Step 16), between load and plan: the rows given by email get their
contacts, through `POST /contacts/search` (read-only: it changes nothing in the CRM).

The addresses still without an answer (each once, however often the file repeats it) are
searched for `lookup.emails_per_search` at a time, every location side by side, paced by the
same per-location budgets as the tag requests that follow (the API counts both in one limit);
each search's answers are kept in the ledger as they come, so a run stopped or killed halfway
asks again only for what is still unanswered. Once every address has its answer the rows are
settled (`batcher.state.lookups`): matched, `not_found` or `ambiguous`. A search that fails
(after retries, or refused) stops the run before any tag is sent (exit 3): sending the other
rows first could change a contact's tags out of input order.

Credentials (Step 11): each location is searched with its own credential, as its tag requests
are sent (its `[api.location_tokens]` variable, or a token from the agency exchange); a location
among those searched whose credential is not set is exit 2 before any search. A search refused
for one location's credential (401, 403, or the exchange refusing it) stops the whole run too,
not only that location as a refused tag request does: the rows of that location cannot be
settled, and the others must not be sent ahead of them. The stop names the location and its
credential, and what to fix.

A plan searches too (into its throwaway copy of the state), so that it shows what a run would
send; a plan of an unfinished run shows the answers that run has, and searches nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batcher.app.credentials import RunCredentials
from batcher.app.jobs import Job
from batcher.app.rendering import EXAMPLES
from batcher.app.stages.prepare import Prepared
from batcher.domain.config import Settings
from batcher.domain.errors import (
    RESUME,
    ApiError,
    BatcherError,
    DailyQuotaError,
    ExchangeError,
    FatalApiError,
    Interrupted,
    ProxyAuthError,
    StopRun,
)
from batcher.domain.events import Event, EventSink
from batcher.sending.pacing import Pacer
from batcher.state import Ledger, Resolution
from batcher.support.stopping import Stop, interruptible_sleep

if TYPE_CHECKING:
    from batcher.sending.searcher import Searcher

__all__ = ["Looked", "lookup"]


@dataclass(frozen=True)
class Looked:
    """What the lookup did: searches answered (pages), requests made, retried, refused with
    429; the rows given by email by how they were answered (None: there are none); the error
    that stopped it; the budgets its searches used (for the tag requests to go on with)."""

    searches: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    resolution: Resolution | None = None
    stopped: BatcherError | None = None
    pacer: Pacer | None = None


async def lookup(
    settings: Settings,
    job: Job,
    prepared: Prepared,
    ledger: Ledger,
    stop: Stop,
    emit: EventSink,
    *,
    dry_run: bool,
) -> Looked:
    """Search for every unanswered address, keep each answer, settle the rows once all are in."""
    wanted = ledger.unresolved()
    if dry_run and not ledger.scratch:
        # A plan of an unfinished run reads that run's state: it shows, and changes nothing.
        return Looked(resolution=ledger.resolution(EXAMPLES))
    if not wanted:
        ledger.apply_resolutions()
        return Looked(resolution=ledger.resolution(EXAMPLES))
    addresses = sum(len(emails) for emails in wanted.values())
    emit(
        Event(
            "lookup.started",
            f"looking up {addresses:,} email addresses in {len(wanted)} location"
            f"{'s' if len(wanted) != 1 else ''} (POST /contacts/search, read-only)",
            {"addresses": addresses, "locations": len(wanted)},
        )
    )
    # Imported here: a file without addresses never searches, and the HTTP client (aiohttp,
    # its TLS context) is a fifth of a second of a plan's start.
    from batcher.app.stages.send import make_pacer, open_client
    from batcher.sending.searcher import Searcher
    from batcher.sending.sender import Counters, PacedRequests

    counters = Counters()
    pacer = make_pacer(settings, stop, emit)
    stopped: BatcherError | None = None
    searches = 0
    async with contextlib.AsyncExitStack() as stack:
        client, credentials = await open_client(stack, settings, job, prepared, wanted)
        requests = PacedRequests(
            client=client,
            tokens=None if credentials is None else credentials.tokens,
            pacer=pacer,
            counters=counters,
            retry=settings.retry,
            sleep=functools.partial(interruptible_sleep, stop),
        )
        searcher = Searcher(requests, page_limit=settings.lookup.page_limit)
        size = settings.lookup.emails_per_search
        # The locations' searches taken in turn: a location waiting for its budget holds no
        # worker back from the others (each location has its own limit).
        per_location = [
            [(location_id, emails[at : at + size]) for at in range(0, len(emails), size)]
            for location_id, emails in wanted.items()
        ]
        queue = [
            search
            for turn in itertools.zip_longest(*per_location)
            for search in turn
            if search is not None
        ]
        try:
            await _search_all(searcher, ledger, queue, settings.limits.concurrency, stop)
        except Interrupted as exc:
            # Asked to stop, or a location's daily quota reached while searching.
            stopped = stop.error() if stop.requested else _stopped(str(exc))
        except _SearchFailed as failed:
            stopped = _failed(failed.error, failed.location_id, prepared, credentials)
        searches = searcher.searches
    if stopped is None and stop.requested:
        stopped = stop.error()
    if stopped is None:
        ledger.apply_resolutions()
    return Looked(
        searches,
        counters.requests,
        counters.retries,
        counters.rate_limited,
        ledger.resolution(EXAMPLES),
        stopped,
        pacer,
    )


async def _search_all(
    searcher: Searcher,
    ledger: Ledger,
    queue: list[tuple[str, list[str]]],
    concurrency: int,
    stop: Stop,
) -> None:
    """Run the searches of `queue` with `concurrency` workers (the pacer keeps each location
    within its budget), recording each answer as it comes; the first error ends them all."""
    pending = iter(queue)

    async def worker() -> None:
        for location_id, emails in pending:
            if stop.requested:
                raise Interrupted("stopped")
            try:
                answers = await searcher(location_id, emails)
            except ApiError as exc:
                raise _SearchFailed(location_id, exc) from exc
            ledger.record_resolutions(location_id, answers)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(queue)))]
    try:
        done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def _stopped(why: str) -> StopRun:
    """The stop of a run whose searches could not all be made: nothing was sent."""
    return StopRun(
        f"looking up the rows given by email stopped: {why}; no tag was changed",
        advice="every answer so far is kept: " + RESUME,
    )


def _failed(
    exc: ApiError, location: str, prepared: Prepared, credentials: RunCredentials | None
) -> BatcherError:
    """The stop of the lookup when a search of `location` failed with `exc`."""
    if isinstance(exc, DailyQuotaError):
        return _stopped(f"the API answered 429 with X-RateLimit-Daily-Remaining: 0 ({exc})")
    if isinstance(exc, ProxyAuthError):
        return exc  # about the proxy, not the token: it says so itself
    if isinstance(exc, FatalApiError):
        return _explained(exc, location, prepared, credentials)
    return _stopped(f"a search for the rows given by email failed: {exc.message}")


def _explained(
    exc: FatalApiError, location: str, prepared: Prepared, credentials: RunCredentials | None
) -> FatalApiError:
    """A search refused (401, 403, or the agency exchange refusing `location`'s token): which
    credential, of which location, and what to fix (a search needs the contacts.readonly
    scope). Nothing was sent: the whole run stops, whichever location it was."""
    if credentials is None:  # one token for every location
        text = (
            f"the API refused a search for the rows given by email ({exc.message}); the token "
            f"from {prepared.token_source or 'the sandbox'} needs the contacts.readonly scope "
            "as well as contacts.write"
        )
        advice = "fix the token, then " + RESUME
    else:
        credential = credentials.credential(location)
        if isinstance(exc, ExchangeError):
            what = f"{credential.label} failed for location {location} ({exc.message})"
        else:
            what = f"the API refused {credential.label} for location {location} ({exc.message})"
        text = (
            f"looking up the rows given by email stopped: {what}; a search needs the "
            "contacts.readonly scope as well as contacts.write; no tag was changed"
        )
        advice = f"{credential.fix(location)}, then {RESUME}"
    return exc.reworded(text, advice=advice)


class _SearchFailed(Exception):
    """A search of `location_id` failed with `error`: the lookup stops."""

    def __init__(self, location_id: str, error: ApiError) -> None:
        super().__init__(location_id)
        self.location_id = location_id
        self.error = error
