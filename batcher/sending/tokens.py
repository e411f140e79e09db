"""Each location's bearer token while a run sends: given, or obtained through the agency.

A location sends with its own token (its variable, read before the run), or with a location
token obtained from the agency's (`BulkTagsClient.exchange`). An obtained token is kept in
memory only, for its lifetime (`expires_in`: 86399 s at HighLevel, oauth.openapi.json) less a
margin, so that a new one is obtained before it expires: 5 minutes, or a tenth of a short
lifetime. After a 401 on its location, the sender asks once for a new one (`renew`).

The exchange is paced like any request, on a budget of its own (`EXCHANGE_BUDGET`): HighLevel's
burst limit (100 requests per 10 s) is counted per app per resource (API-NOTES.md, "Rate
limits"), and the exchange is the agency app's request about the company, not about a location,
so it shares no location's budget. That limit is the one assumed: HighLevel documents no other
for this endpoint. One exchange per location at a time: workers that need the same location's
token wait for the one exchange in progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a plan reads credentials without importing the HTTP client
    from batcher.sending.client import BulkTagsClient
    from batcher.sending.pacing import Pacer

__all__ = ["EXCHANGE_BUDGET", "Agency", "Tokens"]

# The pacer's key of the exchange's own budget: no location id looks like a path.
EXCHANGE_BUDGET = "/oauth/locationToken"
# A token is renewed this long before it expires (or a tenth of its lifetime, if shorter).
RENEW_MARGIN_S = 300.0


@dataclass(frozen=True)
class Agency:
    """The agency's token and company id, for the locations that use the exchange."""

    token: str = field(repr=False)
    company_id: str


@dataclass
class _Obtained:
    token: str = field(repr=False)
    renew_at: float


class Tokens:
    """The token each location sends with. `given` maps a location to its token; others use
    the agency exchange when `agency` is set and `exchanged` names them, else `default`."""

    def __init__(
        self,
        default: str,
        *,
        given: Mapping[str, str] | None = None,
        agency: Agency | None = None,
        exchanged: frozenset[str] = frozenset(),
        clock: Callable[[], float],
    ) -> None:
        self._default = default
        self._given = dict(given or {})
        self._agency = agency
        self._exchanged = exchanged if agency is not None else frozenset()
        self._clock = clock
        self._obtained: dict[str, _Obtained] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        given, exchanged = len(self._given), len(self._exchanged)
        return f"{type(self).__name__}(<{given} given, {exchanged} exchanged>)"

    def exchanged(self, location_id: str) -> bool:
        """Whether `location_id`'s token comes from the agency exchange."""
        return location_id in self._exchanged

    async def token(self, location_id: str, client: BulkTagsClient, pacer: Pacer) -> str:
        """The token to send `location_id`'s next request with."""
        if location_id not in self._exchanged:
            return self._given.get(location_id, self._default)
        obtained = self._obtained.get(location_id)
        if obtained is not None and self._clock() < obtained.renew_at:
            return obtained.token
        return await self._obtain(location_id, client, pacer, stale=obtained)

    async def renew(
        self, location_id: str, refused: str, client: BulkTagsClient, pacer: Pacer
    ) -> str:
        """A new token for `location_id` after `refused` got a 401 (unless another worker
        has obtained one meanwhile)."""
        obtained = self._obtained.get(location_id)
        if obtained is not None and obtained.token != refused:
            return obtained.token
        return await self._obtain(location_id, client, pacer, stale=obtained)

    async def _obtain(
        self,
        location_id: str,
        client: BulkTagsClient,
        pacer: Pacer,
        *,
        stale: _Obtained | None,
    ) -> str:
        assert self._agency is not None
        lock = self._locks.setdefault(location_id, asyncio.Lock())
        async with lock:
            current = self._obtained.get(location_id)
            if current is not None and current is not stale:  # obtained while we waited
                return current.token
            async with pacer.slot(EXCHANGE_BUDGET):
                answer = await client.exchange(
                    self._agency.token, self._agency.company_id, location_id
                )
            margin = min(RENEW_MARGIN_S, answer.expires_in / 10)
            self._obtained[location_id] = _Obtained(
                answer.token, self._clock() + answer.expires_in - margin
            )
            return answer.token
