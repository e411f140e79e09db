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

import functools
from collections.abc import Sequence

from batcher.domain.errors import ApiError, AuthError, MalformedAnswerError
from batcher.sending.client import SearchPage
from batcher.sending.sender import PacedRequests, heard, location_token

__all__ = ["Searcher"]

# The most pages one search follows: a handful of addresses has a handful of contacts (pages
# of up to 500); past this the answers are not what was asked for.
MAX_PAGES = 20


class Searcher:
    """Looks addresses up through `requests` (paced and retried, each location with its
    token), in pages of up to `page_limit` contacts; counts the searches answered in
    `searches`."""

    def __init__(self, requests: PacedRequests, *, page_limit: int) -> None:
        self._requests = requests
        self._page_limit = page_limit
        self.searches = 0

    async def __call__(self, location_id: str, emails: Sequence[str]) -> dict[str, list[str]]:
        """Each of `emails` with the ids of the contacts whose email it is (none, one, several).

        Raises Interrupted when the run stops meanwhile, a FatalApiError (401, 403, the
        exchange's refusal, the daily quota) or the last ApiError once retries are spent: the
        caller stops the run."""
        found: dict[str, list[str]] = {email: [] for email in emails}
        after: list[object] | None = None
        for _ in range(MAX_PAGES):
            page, _attempts = await self._requests.policy.call(
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
            tokens = self._requests.tokens
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
        requests = self._requests
        slot = await requests.pacer.start(location_id)
        try:
            token = None
            if requests.tokens is not None:
                token = await location_token(
                    requests.tokens, requests.client, requests.pacer, location_id, renew
                )
                used[0] = token
            requests.counters.requests += 1
            page = await requests.client.search(
                location_id, emails, page_limit=self._page_limit, search_after=after, token=token
            )
        except ApiError as exc:
            slot.finish()
            heard(requests.pacer, requests.counters, location_id, exc, slot.started)
            raise
        except BaseException:
            slot.finish()
            raise
        slot.finish()
        requests.pacer.observe(location_id, page.rate, since=slot.started)
        return page
