"""One search for a few addresses (Step 16), through pacing and retrying, every page of it.

A search is a request like any other to the API's rate limit (100 per 10 s per location, as
the tag requests: LOOKUP-NOTES.md, "Rate limits"), so it takes a slot of its location's budget
from the same `Pacer` as the tag requests, follows the answers' X-RateLimit-* headers, and a
429 pauses the location. It is retried as a tag request is (`RetryPolicy`): a search changes
nothing, so resending one is always safe. An address that no contact of any page has is
answered with no contact: `not_found` (the caller decides).

With `tokens` (Step 11), a search goes with its location's own credential, as that location's
tag requests do: its given token, or one obtained through the agency exchange (obtained again
once after a 401, `location_token`); the exchange's refusal is an ExchangeError.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence

from batcher.domain.config import RetrySettings
from batcher.domain.errors import ApiError, AuthError, MalformedAnswerError
from batcher.sending.client import BulkTagsClient, SearchPage
from batcher.sending.pacing import Pacer
from batcher.sending.retrying import RetryPolicy
from batcher.sending.sender import Counters, heard, location_token
from batcher.sending.tokens import Tokens

__all__ = ["Searcher"]

# The most pages one search follows: a handful of addresses has a handful of contacts (pages
# of up to 500); past this the answers are not what was asked for.
MAX_PAGES = 20


class Searcher:
    """Looks addresses up, paced and retried, each location with its token from `tokens`
    (None: the client's own); counts its requests in `counters` (and `searches`, the
    searches answered)."""

    def __init__(
        self,
        client: BulkTagsClient,
        pacer: Pacer,
        retry: RetrySettings,
        counters: Counters,
        *,
        page_limit: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tokens: Tokens | None = None,
    ) -> None:
        self._client = client
        self._tokens = tokens
        self._pacer = pacer
        self._counters = counters
        self._page_limit = page_limit
        self._policy = RetryPolicy(retry, sleep=sleep, on_retry=self._count_retry)
        self.searches = 0

    def _count_retry(self, error: ApiError, wait_s: float) -> None:
        self._counters.retries += 1

    async def __call__(self, location_id: str, emails: Sequence[str]) -> dict[str, list[str]]:
        """Each of `emails` with the ids of the contacts whose email it is (none, one, several).

        Raises Interrupted when the run stops meanwhile, a FatalApiError (401, 403, the
        exchange's refusal, the daily quota) or the last ApiError once retries are spent: the
        caller stops the run."""
        found: dict[str, list[str]] = {email: [] for email in emails}
        after: list[object] | None = None
        for _ in range(MAX_PAGES):
            page, _attempts = await self._policy.call(
                functools.partial(self._page, location_id, emails, after, [])
            )
            self.searches += 1
            for email, ids in page.matches.items():
                known = found[email]
                known.extend(i for i in ids if i not in known)
            after = page.next_after
            if after is None:
                return found
        raise MalformedAnswerError(
            f"a search of location {location_id} for {len(emails)} addresses had more than "
            f"{MAX_PAGES} full pages of answers: not what was asked for"
        )

    async def _page(
        self,
        location_id: str,
        emails: Sequence[str],
        after: list[object] | None,
        renewed: list[bool],
    ) -> SearchPage:
        """One attempt; a location token obtained through the agency and refused with a 401 is
        obtained again, once per page (`renewed` says it was), as a tag request's is."""
        used: list[str | None] = [None]
        try:
            return await self._attempt(location_id, emails, after, used)
        except AuthError:
            tokens = self._tokens
            if renewed or tokens is None or not tokens.exchanged(location_id):
                raise
            renewed.append(True)
            return await self._attempt(location_id, emails, after, used, renew=used[0])

    async def _attempt(
        self,
        location_id: str,
        emails: Sequence[str],
        after: list[object] | None,
        used: list[str | None],
        *,
        renew: str | None = None,
    ) -> SearchPage:
        slot = await self._pacer.start(location_id)
        try:
            token = None
            if self._tokens is not None:
                token = await location_token(
                    self._tokens, self._client, self._pacer, location_id, renew
                )
                used[0] = token
            self._counters.requests += 1
            page = await self._client.search(
                location_id, emails, page_limit=self._page_limit, search_after=after, token=token
            )
        except ApiError as exc:
            slot.finish()
            heard(self._pacer, self._counters, location_id, exc, slot.started)
            raise
        except BaseException:
            slot.finish()
            raise
        slot.finish()
        self._pacer.observe(location_id, page.rate, since=slot.started)
        return page
