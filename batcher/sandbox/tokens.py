"""Who a bearer token is, and what it may reach: the sandbox's side of credentials.

The service's facts (API-NOTES.md, "Credentials across locations"; oauth.openapi.json):
- the bulk endpoint takes a sub-account credential: a location's Private Integration Token
  (`SandboxConfig.token` and `tokens`, each bound to its locations), or a location access token
  an agency obtains from `POST /oauth/locationToken`; one location's token opens no other;
- an agency token works only at `/oauth/locationToken`; the location token it obtains expires
  after `expires_in` seconds (86399 at HighLevel; `location_token_ttl_s` here);
- refusals seen from the live service: 403 "The token does not have access to this location."
  (a token of another location), 401 "This location is not accessible from this token." (a
  location token, or an agency token, at a location it does not open), 401 "Invalid JWT" (a
  token that expired or was revoked).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from batcher.sandbox.config import SandboxConfig

INVALID_JWT = "Invalid JWT"
NOT_ACCESSIBLE = "This location is not accessible from this token."
NO_ACCESS = "The token does not have access to this location."


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a token may not do what it asks: the status and the service's message."""

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class _Issued:
    location_id: str
    expires_at: float


class Tokens:
    """The tokens the sandbox knows, those it issued, and each one's use."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._issued: dict[str, _Issued] = {}
        self._uses: Counter[str] = Counter()
        self.exchanges = 0

    def known(self, token: str) -> bool:
        """Whether the token is one the sandbox serves or issued (expired or not)."""
        config = self._config
        return (
            config.reach(token) is not None
            or token in self._issued
            or (bool(config.agency_token) and token == config.agency_token)
        )

    def use(self, token: str) -> Refusal | None:
        """A bulk request with `token` (one the sandbox knows): refused if it expired or was
        revoked; counted towards `revoke_after`."""
        issued = self._issued.get(token)
        if issued is not None and self._clock() >= issued.expires_at:
            return Refusal(401, INVALID_JWT)
        limit = self._config.revoke_after.get(token)
        if limit is not None and self._uses[token] >= limit:
            return Refusal(401, INVALID_JWT)
        self._uses[token] += 1
        return None

    def reach(self, token: str, location_id: str) -> Refusal | None:
        """Whether `token` opens `location_id` (None: it does)."""
        issued = self._issued.get(token)
        if issued is not None:
            return None if issued.location_id == location_id else Refusal(401, NOT_ACCESSIBLE)
        locations = self._config.reach(token)
        if locations is None:  # the agency token: good at /oauth/locationToken only
            return Refusal(401, NOT_ACCESSIBLE)
        return None if location_id in locations else Refusal(403, NO_ACCESS)

    @property
    def issued(self) -> tuple[str, ...]:
        """Every location token issued so far (for tests that look for them where they must
        not be)."""
        return tuple(self._issued)

    def is_agency(self, token: str) -> bool:
        return bool(self._config.agency_token) and token == self._config.agency_token

    def exchange(self, company_id: str, location_id: str) -> Refusal | tuple[str, int]:
        """A location token for the agency, and its lifetime in seconds; or why not (400: the
        company or the location is not the agency's)."""
        config = self._config
        if company_id != config.company_id:
            return Refusal(400, "companyId is not the company of this token")
        if location_id not in config.exchangeable:
            return Refusal(400, "Location not found for this company")
        token = "sandbox-location-" + secrets.token_hex(16)
        ttl = config.location_token_ttl_s
        self._issued[token] = _Issued(location_id, self._clock() + ttl)
        self.exchanges += 1
        return token, max(int(ttl), 1)
