"""One HTTP attempt at the bulk contact-tags endpoint, and the translation of its answer.

This is the only module that imports aiohttp (client side): everything that can go wrong on the
wire or in an answer leaves here as a `batcher.errors` exception ("Translate errors at the edge",
DESIGN.md), so nothing above catches `aiohttp.*`. Retrying and pacing live elsewhere: `send` makes
exactly one attempt.

Wire facts (reference/API-NOTES.md, bulk-tags.openapi.json):
- `POST {base}/contacts/bulk/tags/update/{add|remove}` with `Authorization: Bearer <token>`,
  `Version: 2021-07-28` (or `v3`) and a JSON `UpdateTagsDTO` body.
- `201` carries one entry per contact in `responses`; a batch with failed contacts still answers
  201 (`succeded: false`). v3 adds the correctly spelt `succeeded` beside `succeded`.
- `400`/`422` NestJS errors (`message` is a list for 422), `401`, `403`, and `429` for both the
  burst and the daily limit, told apart by `X-RateLimit-Daily-Remaining: 0`.

The bearer token never appears in a message, a log line or a repr: messages are built from
statuses, the API's own words and exception class names, and are scrubbed of the token anyway in
case a server or a proxy echoes it back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

import aiohttp

from batcher.errors import (
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
from batcher.models import Batch, ContactOutcome, RateLimitInfo, Status

DEFAULT_VERSION = "2021-07-28"
NO_ENTRY_MESSAGE = "no per-contact answer in the API's response"

# Response headers that describe the limits actually applied (API-NOTES.md, "Rate limits").
_RATE_HEADERS = {
    "max": "x-ratelimit-max",
    "remaining": "x-ratelimit-remaining",
    "interval_ms": "x-ratelimit-interval-milliseconds",
    "daily_limit": "x-ratelimit-limit-daily",
    "daily_remaining": "x-ratelimit-daily-remaining",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """One usable 201: the per-contact outcomes, aligned with `batch.contact_ids`.

    The API's own summary (`succeded`/`succeeded`, `errorCount`) is not kept: the per-contact
    entries say everything it says, row by row.
    """

    outcomes: tuple[ContactOutcome, ...]
    http_status: int
    rate: RateLimitInfo


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo:
    """Read the X-RateLimit-* headers (any case); an absent or unreadable one is None."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return RateLimitInfo(
        **{field: _non_negative_int(lowered.get(header)) for field, header in _RATE_HEADERS.items()}
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delay-seconds or an HTTP-date (RFC 9110, 10.2.3).

    A date is measured from `now` (the answer's own `Date` header when the caller has it, which
    sidesteps clock skew between us and the server; else our clock). A date in the past means 0.
    Unreadable values are None: the retry policy then falls back to its own backoff.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is not a delay
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    reference = now or datetime.now(UTC)
    return max((_aware(when) - _aware(reference)).total_seconds(), 0.0)


class BulkTagsClient:
    """Sends one batch per call over one pooled aiohttp session; use it as `async with`."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        version: str = DEFAULT_VERSION,
        timeout_s: float = 30.0,
        max_connections: int = 8,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._version = version
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        # Deliberately not the default: the token must never reach a log through a repr.
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, version={self._version!r}, "
            f"timeout_s={self._timeout_s!r}, max_connections={self._max_connections!r})"
        )

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections),
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            headers={
                "Authorization": f"Bearer {self._token}",
                "Version": self._version,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, batch: Batch) -> str:
        return f"{self._base_url}/contacts/bulk/tags/update/{batch.action.value}"

    async def send(self, batch: Batch) -> Answer:
        """Make ONE attempt for `batch`; return its usable 201 or raise an ApiError subclass."""
        if self._session is None:
            raise RuntimeError("BulkTagsClient.send() outside 'async with BulkTagsClient(...)'")
        try:
            async with self._session.post(
                self._url(batch), data=_encode_body(batch), allow_redirects=False
            ) as response:
                status = response.status
                reason = response.reason or ""
                headers = dict(response.headers)
                raw = await response.read()
        # aiohttp's own timeouts subclass TimeoutError (asyncio.TimeoutError is TimeoutError).
        except TimeoutError as exc:
            raise TransportError(f"no answer within {self._timeout_s:g} s (timeout)") from exc
        # Refused, reset, dropped (ServerDisconnectedError), TLS and payload errors.
        except aiohttp.ClientError as exc:
            raise TransportError(self._scrub(f"no answer: {type(exc).__name__}: {exc}")) from exc

        if status == HTTPStatus.CREATED:
            return _parse_created(batch, raw, headers)
        raise self._error_for(status, reason, headers, raw)

    def _error_for(
        self, status: int, reason: str, headers: Mapping[str, str], raw: bytes
    ) -> ApiError:
        """The typed error for any answer other than 201 (API-NOTES.md, "Response")."""
        if status >= HTTPStatus.BAD_REQUEST:
            detail = _body_message(raw)
        elif status >= HTTPStatus.MULTIPLE_CHOICES:
            # A redirect may point anywhere; following it could send the batch (and, same-origin,
            # the token) somewhere we never chose. The API never redirects: report it instead.
            where = _header(headers, "location")
            detail = "redirect not followed" + (f" (Location: {where})" if where else "")
        else:
            detail = f"unexpected status (the API answers {HTTPStatus.CREATED.value})"
        message = f"HTTP {status}: {detail}" if detail else f"HTTP {status} {reason}".rstrip()
        rate = parse_rate_limit(headers)
        return _error_class(status, rate)(
            self._scrub(message),
            status=status,
            headers=headers,
            retry_after_s=parse_retry_after(
                _header(headers, "retry-after"), now=_http_date(_header(headers, "date"))
            ),
            rate=rate,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text


def _encode_body(batch: Batch) -> bytes:
    """The `UpdateTagsDTO` body, serialised once.

    `removeAllTags` is a JSON boolean (the seed's curl sends the string "false", which a real
    client must not copy) and is only sent when true; such a batch carries `tags: []`.
    """
    body: dict[str, Any] = {
        "contacts": list(batch.contact_ids),
        "tags": list(batch.tags),
        "locationId": batch.location_id,
    }
    if batch.remove_all:
        body["removeAllTags"] = True
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _error_class(status: int, rate: RateLimitInfo) -> type[ApiError]:
    if status == HTTPStatus.UNAUTHORIZED:
        return AuthError
    if status == HTTPStatus.FORBIDDEN:
        return ForbiddenError
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        # Burst and daily exhaustion both answer 429; the daily one says so in its headers.
        return DailyQuotaError if rate.daily_remaining == 0 else RateLimitedError
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return ServerError
    if status >= HTTPStatus.MULTIPLE_CHOICES:  # 400, 422, any other 4xx, and unfollowed 3xx
        return RejectedError
    return MalformedAnswerError  # 1xx/2xx other than 201: not an answer the API documents


def _parse_created(batch: Batch, raw: bytes, headers: Mapping[str, str]) -> Answer:
    """Match the 201's `responses` to the batch's contacts by `contactId`."""
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise MalformedAnswerError(
            "HTTP 201 with a body that is not JSON", status=201, headers=headers
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("responses"), list):
        raise MalformedAnswerError(
            "HTTP 201 without a 'responses' list", status=201, headers=headers
        )

    entries: dict[str, Mapping[str, Any]] = {}
    for entry in data["responses"]:
        if isinstance(entry, dict) and isinstance(entry.get("contactId"), str):
            entries.setdefault(entry["contactId"], entry)
    outcomes = tuple(_outcome(entries.get(contact_id)) for contact_id in batch.contact_ids)
    return Answer(outcomes=outcomes, http_status=201, rate=parse_rate_limit(headers))


def _outcome(entry: Mapping[str, Any] | None) -> ContactOutcome:
    if entry is None:
        return ContactOutcome(Status.FAILED, NO_ENTRY_MESSAGE)
    message = entry.get("message")
    text = message if isinstance(message, str) else ""
    kind = entry.get("type")
    if kind == "success":
        return ContactOutcome(
            Status.SUCCESS,
            text,
            old_tags=_tags(entry.get("oldTags")),
            tags_added=_tags(entry.get("tagsAdded")),
            tags_removed=_tags(entry.get("tagsRemoved")),
        )
    if kind == "error":
        return ContactOutcome(Status.ERROR, text)
    # Neither documented type: we cannot tell whether the change was applied. `failed` rows are
    # sent again by the next run, which is safe because adding/removing tags is idempotent.
    return ContactOutcome(Status.FAILED, f"unrecognised per-contact answer type {kind!r}: {text}")


def _tags(value: object) -> tuple[str, ...] | None:
    return tuple(str(tag) for tag in value) if isinstance(value, list) else None


def _body_message(raw: bytes) -> str:
    """The API's `message` (a 422's list joined with "; "), or "" when the body has none."""
    try:
        data = json.loads(raw)
    except ValueError:
        return ""
    message = data.get("message") if isinstance(data, dict) else None
    if isinstance(message, list):
        return "; ".join(str(part) for part in message)
    return message if isinstance(message, str) else ""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _aware(moment: datetime) -> datetime:
    # HTTP dates are always GMT (RFC 9110, 5.6.7); a naive result means "-0000": still UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _non_negative_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


__all__ = [
    "NO_ENTRY_MESSAGE",
    "Answer",
    "BulkTagsClient",
    "parse_rate_limit",
    "parse_retry_after",
]
