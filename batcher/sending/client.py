"""One HTTP attempt at the bulk contact-tags endpoint, and the translation of its answer.

This is the only module that imports aiohttp (client side): everything that can go wrong on the
wire or in an answer leaves here as a `batcher.domain.errors` exception ("Translate errors at the
edge", DESIGN.md), so nothing above catches `aiohttp.*`. Retrying and pacing live elsewhere:
`send` makes exactly one attempt.

Wire facts (reference/API-NOTES.md, bulk-tags.openapi.json):
- `POST {base}/contacts/bulk/tags/update/{add|remove}` with `Authorization: Bearer <token>`,
  `Version: 2021-07-28` (or `v3`) and a JSON `UpdateTagsDTO` body.
- `201` carries one entry per contact in `responses`; a batch with failed contacts still answers
  201 (`succeded: false`). v3 adds the correctly spelt `succeeded` beside `succeded`.
- `400`/`422` NestJS errors (`message` is a list for 422), `401`, `403`, and `429` for both the
  burst and the daily limit, told apart by `X-RateLimit-Daily-Remaining: 0`.

Contacts by email (Step 16, LOOKUP-NOTES.md): `search` makes ONE attempt at
`POST {base}/contacts/search` (scope `contacts.readonly`, read-only) with `locationId`,
`pageLimit`, `filters` (one OR group of `eq` filters on `email`) and, past the first page,
`searchAfter`; the answer is `{"contacts": [{"id", "email", "searchAfter", ...}], "total": N}`.
The body and the answer are documented only outside the official spec (UNVERIFIED): only the
`id` and `email` of each contact are read, and only a contact whose email is exactly an
address asked for (ignoring case) is kept, whatever else the search matched.

Everything that comes from the server is untrusted (a proxy, a captive portal or a hostile host
can answer in the API's place):
- an answer's body is read in chunks and refused past MAX_ANSWER_BYTES (MalformedAnswerError,
  transient), whatever Content-Length says or does not say;
- a body that does not parse (invalid UTF-8, not JSON, nested too deep for the parser) is a
  MalformedAnswerError for a 201 and an empty detail for an error;
- every text that leaves this module (per-contact messages and tags, error messages, Location
  headers, transport error texts, a proxy's reason phrase, the headers an error carries) goes
  through `sanitize` (no control characters, no lone surrogates) and then through the `Scrubber`
  (the token, or any 8+ character piece of it, in any case, becomes "[token]"; the proxy's
  credentials become "[secret]"; a URL's `user:password@` is dropped);
- exceptions that hold the request (aiohttp's ClientResponseError and its subclasses carry
  `request_info`, whose headers include `Authorization`) are never str()'d or repr()'d into a
  message: only their class name, status and reason phrase are used;
- redirects are never followed.

Credentials: a batch is sent with its location's token (`send(batch, token)`; the client's own
`token` when none is given), in the `Authorization` header of that request only; a search too
(`search(..., token=)`), with the token of the location it searches. `exchange`
obtains a location's token with an agency token (`POST /oauth/locationToken`, form-encoded
`companyId` and `locationId`, `Version: 2021-07-28`: oauth.openapi.json); the token obtained is
learnt by the Scrubber before it is returned, so no text leaving here can hold it.

Proxies: for a base URL that is not loopback, HTTPS_PROXY/HTTP_PROXY/NO_PROXY are honoured as
aiohttp's `trust_env` reads them; a loopback base URL (127.0.0.0/8, ::1, localhost: the sandbox)
never goes through a proxy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from batcher.domain.errors import (
    ApiError,
    AuthError,
    DailyQuotaError,
    ForbiddenError,
    MalformedAnswerError,
    ProxyAuthError,
    RateLimitedError,
    RejectedError,
    ServerError,
    TransportError,
)
from batcher.domain.models import Batch, ContactOutcome, RateLimitInfo, Status, by_identity
from batcher.domain.net import is_loopback
from batcher.support.secrets import Scrubber, sanitize

DEFAULT_VERSION = "2021-07-28"
# The only Version the location-token exchange lists (oauth.openapi.json), whatever api.version.
EXCHANGE_VERSION = "2021-07-28"
EXCHANGE_PATH = "/oauth/locationToken"
NO_ENTRY_MESSAGE = "no per-contact answer in the API's response"

# The largest answer body read, 201 or error alike. A 201 for 500 contacts (the most one request
# carries) is well under 1 MiB even with long tag lists; 4 MiB leaves room for any honest answer
# and keeps a broken or hostile server from filling memory (a 108 MiB answer once took the
# process to 2.8 GB). Past it the answer is a MalformedAnswerError: retried, then `failed`.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
TOO_LARGE_MESSAGE = "answer larger than 4 MiB"
# Bodies are read this much at a time: at most MAX_ANSWER_BYTES + one chunk is ever held.
_CHUNK_BYTES = 64 * 1024
# How much of an unexpected JSON value (an unknown per-contact `type`) a message quotes.
_QUOTE_CHARS = 60

# Response headers that describe the limits actually applied (API-NOTES.md, "Rate limits").
_RATE_HEADERS = {
    "max": "x-ratelimit-max",
    "remaining": "x-ratelimit-remaining",
    "interval_ms": "x-ratelimit-interval-milliseconds",
    "daily_limit": "x-ratelimit-limit-daily",
    "daily_remaining": "x-ratelimit-daily-remaining",
}


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One usable answer of a search: each address asked for that some contact of the page
    has, with those contacts' ids (in the answer's order); the cursor of the next page when
    this one was full (`searchAfter` of its last contact), else None."""

    matches: dict[str, tuple[str, ...]]
    next_after: list[Any] | None
    http_status: int
    rate: RateLimitInfo


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


@dataclass(frozen=True, slots=True)
class LocationToken:
    """A location's access token from the agency exchange, and its lifetime in seconds."""

    token: str = field(repr=False)
    expires_in: float


class BulkTagsClient:
    """Sends one batch per call over one pooled aiohttp session; use it as `async with`.

    `token` is the default credential; `tokens` every other one the run may send (each
    location's), all scrubbed from any text as the default one is."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        tokens: Iterable[str] = (),
        version: str = DEFAULT_VERSION,
        timeout_s: float = 30.0,
        max_connections: int = 8,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._tokens = tuple(tokens)
        self._version = version
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._scrubber = Scrubber.for_environment(token, tokens=self._tokens)
        # The bulk request's headers; Authorization is replaced for a batch sent with another
        # location's token.
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Version": version,
            "Content-Type": "application/json",
        }
        self._proxy: URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        # Deliberately not the default: the token must never reach a log through a repr.
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, version={self._version!r}, "
            f"timeout_s={self._timeout_s!r}, max_connections={self._max_connections!r})"
        )

    async def __aenter__(self) -> Self:
        # The proxy is chosen here, once, from the environment aiohttp's `trust_env` reads
        # (HTTP(S)_PROXY, NO_PROXY, a proxy's credentials in its URL or in .netrc), rather than by
        # `trust_env=True` on the session: that would also take credentials for the API host
        # from ~/.netrc, which aiohttp refuses to combine with our Authorization header
        # (ValueError on every request for a user whose .netrc names the API host).
        self._proxy, self._proxy_auth = _env_proxy(URL(self._url_for("add")))
        if self._proxy_auth is not None:  # a proxy's credentials are secrets like the token
            self._scrubber = Scrubber.for_environment(
                self._token,
                others=[self._proxy_auth.password],
                names=[self._proxy_auth.login],
                tokens=self._tokens,
            )
        # Authorization goes with each request: a batch carries its own location's token.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections),
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            headers={"Accept": "application/json"},
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

    def _url_for(self, action: str) -> str:
        return f"{self._base_url}/contacts/bulk/tags/update/{action}"

    @property
    def proxy(self) -> str | None:
        """The proxy requests go through (None: direct), without its credentials."""
        return None if self._proxy is None else str(self._proxy.with_user(None))

    async def send(self, batch: Batch, token: str | None = None) -> Answer:
        """Make ONE attempt for `batch` with `token` (else the default one); return its usable
        201 or raise an ApiError subclass."""
        status, reason, answer_headers, raw = await self._post(
            self._url_for(batch.action.value), _encode_body(batch), self._headers_for(token)
        )
        if status == HTTPStatus.CREATED:
            return self._parse_created(batch, raw, answer_headers)
        raise self._error_for(status, reason, answer_headers, raw, expected=HTTPStatus.CREATED)

    def _headers_for(self, token: str | None) -> Mapping[str, str]:
        """The JSON request's headers with `token` (else the default one) as its credential."""
        if token is None or token == self._token:
            return self._headers
        return {**self._headers, "Authorization": f"Bearer {token}"}

    def learn(self, token: str) -> None:
        """Scrub `token` (a location token obtained elsewhere) from every text from now on."""
        self._scrubber = self._scrubber.knowing(token)

    async def exchange(self, agency_token: str, company_id: str, location_id: str) -> LocationToken:
        """ONE attempt at `POST /oauth/locationToken`: `location_id`'s access token obtained
        with `agency_token`, learnt by the scrubber before it is returned; or an ApiError
        (the agency token refused: AuthError; the company or location refused: RejectedError,
        ForbiddenError; or transient)."""
        self._scrubber = self._scrubber.knowing(agency_token)
        headers = {
            "Authorization": f"Bearer {agency_token}",
            "Version": EXCHANGE_VERSION,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        form = urlencode({"companyId": company_id, "locationId": location_id}).encode()
        status, reason, answer_headers, raw = await self._post(
            self._base_url + EXCHANGE_PATH, form, headers
        )
        if status != HTTPStatus.OK:
            raise self._error_for(status, reason, answer_headers, raw, expected=HTTPStatus.OK)
        data = _load_json(raw)
        token = data.get("access_token") if isinstance(data, dict) else None
        expires_in = data.get("expires_in") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise MalformedAnswerError(
                "HTTP 200 from the location-token exchange without an access_token",
                status=status,
                headers=answer_headers,
            )
        self.learn(token)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 0.0
        return LocationToken(token, lifetime if math.isfinite(lifetime) else 0.0)

    async def search(
        self,
        location_id: str,
        emails: Iterable[str],
        *,
        page_limit: int,
        search_after: list[Any] | None = None,
        token: str | None = None,
    ) -> SearchPage:
        """Make ONE attempt at one page of the contacts of `location_id` whose email is one of
        `emails` (lower-cased, as loading gives them), with `token` (else the default one) as
        the batches of that location are sent; return the page or raise an ApiError."""
        wanted = list(emails)
        body: dict[str, Any] = {
            "locationId": location_id,
            "pageLimit": page_limit,
            "filters": [
                {
                    "group": "OR",
                    "filters": [
                        {"field": "email", "operator": "eq", "value": email} for email in wanted
                    ],
                }
            ],
        }
        if search_after is not None:
            body["searchAfter"] = search_after
        status, reason, headers, raw = await self._post(
            f"{self._base_url}/contacts/search",
            json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
            self._headers_for(token),
        )
        if status in (HTTPStatus.OK, HTTPStatus.CREATED):
            return self._parse_search(set(wanted), page_limit, raw, status, headers)
        raise self._error_for(status, reason, headers, raw, expected=HTTPStatus.OK)

    def _parse_search(
        self,
        wanted: set[str],
        page_limit: int,
        raw: bytearray,
        status: int,
        headers: Mapping[str, str],
    ) -> SearchPage:
        """The matches of a search's answer: a contact counts only when its `email`, compared
        ignoring case, is exactly an address asked for (a search may match more loosely)."""
        data = _load_json(raw)
        if not isinstance(data, dict) or not isinstance(data.get("contacts"), list):
            # A search changes nothing: an unreadable answer is only worth asking again.
            raise MalformedAnswerError(
                f"HTTP {status}: a search answer without a 'contacts' list",
                status=status,
                headers=headers,
            )
        contacts = data["contacts"]
        matches: dict[str, list[str]] = {}
        for contact in contacts:
            if not isinstance(contact, dict):
                continue
            contact_id, email = contact.get("id"), contact.get("email")
            if not (isinstance(contact_id, str) and contact_id and isinstance(email, str)):
                continue
            address = email.strip().lower()
            if address in wanted:
                ids = matches.setdefault(address, [])
                clean = self._clean(contact_id)
                if clean not in ids:
                    ids.append(clean)
        next_after = None
        if len(contacts) >= page_limit and isinstance(contacts[-1], dict):
            cursor = contacts[-1].get("searchAfter")
            if isinstance(cursor, list) and cursor:
                next_after = cursor
            else:
                raise MalformedAnswerError(
                    f"HTTP {status}: a full page of a search without a 'searchAfter' to go on",
                    status=status,
                    headers=headers,
                )
        return SearchPage(
            {address: tuple(ids) for address, ids in matches.items()},
            next_after,
            status,
            parse_rate_limit(headers),
        )

    async def _post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str, dict[str, str], bytearray]:
        """One POST: its status, reason phrase, headers (cleaned) and body (capped)."""
        if self._session is None:
            raise RuntimeError("BulkTagsClient used outside 'async with BulkTagsClient(...)'")
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_auth=self._proxy_auth,
            ) as response:
                status = response.status
                reason = response.reason or ""
                answer_headers = self._safe_headers(response.headers)
                raw = await _read_capped(response)
        # aiohttp's own timeouts subclass TimeoutError (asyncio.TimeoutError is TimeoutError).
        # Only ConnectionTimeoutError is known to come before the request was written; the
        # total timeout running out while connecting is told from a read timeout by nothing,
        # so it counts as exposed too (an honest "may have", never a false "did not").
        except TimeoutError as exc:
            raise TransportError(
                f"no answer within {self._timeout_s:g} s (timeout)",
                exposed=not isinstance(exc, aiohttp.ConnectionTimeoutError),
            ) from exc
        except _TooLargeError:
            raise MalformedAnswerError(
                self._clean(f"HTTP {status}: {TOO_LARGE_MESSAGE}"),
                status=status,
                headers=answer_headers,
                exposed=_exposed_status(status),
            ) from None
        except aiohttp.ClientHttpProxyError as exc:
            if exc.status != HTTPStatus.PROXY_AUTHENTICATION_REQUIRED:
                raise self._transport_error(exc) from exc
            # The proxy refused CONNECT for its credentials: nothing reached the API.
            raise ProxyAuthError(
                self._clean(f"the proxy refused its credentials: {_describe(exc)}"),
                status=exc.status,
            ) from exc
        # Refused, reset, dropped (ServerDisconnectedError), TLS, proxy and payload errors.
        except aiohttp.ClientError as exc:
            raise self._transport_error(exc) from exc
        return status, reason, answer_headers, raw

    def _transport_error(self, exc: aiohttp.ClientError) -> TransportError:
        return TransportError(
            self._clean(f"no answer: {_describe(exc)}"), exposed=_may_have_arrived(exc)
        )

    def _error_for(
        self,
        status: int,
        reason: str,
        headers: Mapping[str, str],
        raw: bytearray,
        *,
        expected: HTTPStatus,
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
            detail = f"unexpected status (the API answers {expected.value})"
        message = f"HTTP {status}: {detail}" if detail else f"HTTP {status} {reason}".rstrip()
        if status == HTTPStatus.PROXY_AUTHENTICATION_REQUIRED:  # the proxy's answer, not the API's
            message = f"the proxy refused its credentials: {message}"
        rate = parse_rate_limit(headers)
        return _error_class(status, rate)(
            self._clean(message),
            status=status,
            headers=headers,
            retry_after_s=parse_retry_after(
                _header(headers, "retry-after"), now=_http_date(_header(headers, "date"))
            ),
            rate=rate,
            exposed=_exposed_status(status),
        )

    def _parse_created(self, batch: Batch, raw: bytearray, headers: Mapping[str, str]) -> Answer:
        """Match the 201's `responses` to the batch's contacts by `contactId`."""
        try:
            data, by_orjson = orjson.loads(raw), True
        except orjson.JSONDecodeError:
            data, by_orjson = _load_json(raw), False
        # A 201 says the change was applied: an unreadable one loses what it changed.
        if data is None:
            raise MalformedAnswerError(
                "HTTP 201 with a body that is not readable JSON",
                status=201,
                headers=headers,
                exposed=True,
            )
        if not isinstance(data, dict) or not isinstance(data.get("responses"), list):
            raise MalformedAnswerError(
                "HTTP 201 without a 'responses' list", status=201, headers=headers, exposed=True
            )

        by_contact = _outcomes_by_contact(data["responses"], alike_keys=by_orjson)
        missing = ContactOutcome(Status.FAILED, NO_ENTRY_MESSAGE)
        outcomes = [by_contact.get(contact_id, missing) for contact_id in batch.contact_ids]
        return Answer(
            outcomes=self._clean_outcomes(outcomes), http_status=201, rate=parse_rate_limit(headers)
        )

    def _clean_outcomes(self, outcomes: list[ContactOutcome]) -> tuple[ContactOutcome, ...]:
        """Every kept text sanitized and scrubbed of the token.

        Contacts answered alike share one outcome object, so each distinct outcome is looked at
        once. The common case (nothing harmful, no token) costs one sanitize test and one
        `found_in` over one string joining their texts; only an answer that fails either is
        cleaned text by text. The space joining them is harmless and in no token piece.
        """
        distinct = by_identity(outcomes)
        joined = " ".join(_texts(distinct.values()))
        if sanitize(joined) is joined and not self._scrubber.found_in(joined):
            return tuple(outcomes)
        clean = self._clean
        cleaned = {
            key: ContactOutcome(
                o.status,
                clean(o.message),
                old_tags=_map(clean, o.old_tags),
                tags_added=_map(clean, o.tags_added),
                tags_removed=_map(clean, o.tags_removed),
            )
            for key, o in distinct.items()
        }
        return tuple(map(cleaned.__getitem__, map(id, outcomes)))

    def _clean(self, text: str) -> str:
        """Any text from outside, made harmless and free of the token."""
        return self._scrubber.scrub(sanitize(text))

    def _safe_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The answer's headers as kept on an error: values sanitized and scrubbed."""
        kept = {name: sanitize(value) for name, value in headers.items()}
        if self._scrubber.found_in("\n".join(kept.values())):
            kept = {name: self._scrubber.scrub(value) for name, value in kept.items()}
        return kept


class _TooLargeError(Exception):
    """An answer body past MAX_ANSWER_BYTES (internal: becomes a MalformedAnswerError)."""


async def _read_capped(response: aiohttp.ClientResponse) -> bytearray:
    """The body, read a chunk at a time, refused as soon as it passes MAX_ANSWER_BYTES.

    Content-Length, when given, refuses a body before any of it is read; without it (chunked,
    or a lying length) the running count does. The connection of a refused body is closed, not
    returned to the pool with the rest of the body still on it.
    """
    length = response.content_length
    if length is not None and length > MAX_ANSWER_BYTES:
        response.close()
        raise _TooLargeError
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        if len(body) + len(chunk) > MAX_ANSWER_BYTES:
            response.close()
            raise _TooLargeError
        body += chunk
    return body


def _load_json(raw: bytearray) -> Any:
    """The parsed body, or None when it cannot be parsed.

    orjson parses a 500-contact answer several times faster than the standard library (it was
    a quarter of the sending time); it refuses what the standard library may still read (a lone
    surrogate escape, which `sanitize` then replaces), so a refusal is tried again there.
    Invalid UTF-8 and non-JSON raise ValueError; JSON nested deeper than the parser's recursion
    limit raises RecursionError (a body of 100k "[" is 100 kB): neither may escape.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


# Transport errors raised before a byte of the request left: no connection was made (refused,
# DNS, TLS, a proxy refusing the CONNECT), the server's certificate did not match, or the URL
# was unusable. Every other one (reset, disconnected, an unreadable answer, a read timeout)
# came once the request was, or may have been, written.
_NEVER_SENT = (
    aiohttp.ClientConnectorError,
    aiohttp.ClientHttpProxyError,
    aiohttp.ServerFingerprintMismatch,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
    aiohttp.RedirectClientError,
)


def _may_have_arrived(exc: aiohttp.ClientError) -> bool:
    """Whether the request may have reached the API before this transport error (see
    `ApiError.exposed`); an error not known to come before sending counts as after."""
    return not isinstance(exc, _NEVER_SENT)


def _exposed_status(status: int) -> bool:
    """Whether an answer of this status may come after the API applied the request: a 5xx (a
    500 may follow the commit; a gateway's 502/503/504 may have passed the request on) or a
    1xx/2xx (the API answers 201 only: another one, or an unreadable 201, proves nothing). A
    429 (the limiter answers before applying), a 3xx and the other 4xx are refusals."""
    return status >= HTTPStatus.INTERNAL_SERVER_ERROR or status < HTTPStatus.MULTIPLE_CHOICES


def _describe(exc: aiohttp.ClientError) -> str:
    """Safe text for a transport error.

    A ClientResponseError (and its subclasses: a proxy's refusal, a bad answer line…) holds
    `request_info`, whose headers include our Authorization header: its str() and repr() are
    never used, only its class name, status and reason phrase.
    """
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{name} (HTTP {exc.status} {exc.message})".rstrip()
    return f"{name}: {exc}"


def _env_proxy(url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy for `url` from the environment (None for loopback or NO_PROXY or none set)."""
    if url.host is not None and is_loopback(url.host):
        return None, None
    try:
        return get_env_proxy_for_url(url)
    except LookupError:  # no proxy for this scheme, or NO_PROXY names the host
        return None, None


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
    try:
        return orjson.dumps(body)  # compact UTF-8, as below, several times faster
    except orjson.JSONEncodeError:  # text orjson refuses (a lone surrogate): as it always was
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _error_class(status: int, rate: RateLimitInfo) -> type[ApiError]:
    if status == HTTPStatus.UNAUTHORIZED:
        return AuthError
    if status == HTTPStatus.FORBIDDEN:
        return ForbiddenError
    if status == HTTPStatus.PROXY_AUTHENTICATION_REQUIRED:  # a plain-HTTP URL through a proxy
        return ProxyAuthError
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        # Burst and daily exhaustion both answer 429; the daily one says so in its headers.
        return DailyQuotaError if rate.daily_remaining == 0 else RateLimitedError
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return ServerError
    if status >= HTTPStatus.MULTIPLE_CHOICES:  # 400, 422, any other 4xx, and unfollowed 3xx
        return RejectedError
    return MalformedAnswerError  # 1xx/2xx other than 201: not an answer the API documents


def _outcomes_by_contact(entries: list[Any], *, alike_keys: bool) -> dict[str, ContactOutcome]:
    """Each contact's outcome from a 201's `responses` (the first entry of a contact counts).

    The hot path of sending: 500 entries an answer, nearly all alike but for `contactId`. So
    each entry, its `contactId` taken out, is encoded back by orjson (C speed) into a key, and
    only the first entry of each key is read field by field; the others share its outcome
    object (which the ledger then encodes once too). Only entries orjson parsed are keyed so:
    the standard library's parser (the fallback) also reads NaN and numbers past 64 bits, which
    orjson would encode as null or refuse; those answers are read entry by entry.
    """
    found: dict[str, ContactOutcome] = {}
    alike: dict[bytes, ContactOutcome] = {}
    for entry in entries:
        if type(entry) is not dict:
            continue
        contact_id = entry.pop("contactId", None)
        if type(contact_id) is not str or contact_id in found:
            continue
        key = _alike_key(entry) if alike_keys else None
        if key is None:
            found[contact_id] = _outcome(entry)
            continue
        outcome = alike.get(key)
        if outcome is None:
            outcome = alike[key] = _outcome(entry)
        found[contact_id] = outcome
    return found


def _alike_key(entry: dict[str, Any]) -> bytes | None:
    """The entry encoded, as the key of entries answered alike; None if orjson cannot write it
    (nested deeper than the 254 levels it writes, though it reads 1,024)."""
    try:
        return orjson.dumps(entry)
    except orjson.JSONEncodeError:
        return None


def _outcome(entry: Mapping[str, Any]) -> ContactOutcome:
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
    return ContactOutcome(
        Status.FAILED, f"unrecognised per-contact answer type {_quote(kind)}: {text}"
    )


def _tags(value: object) -> tuple[str, ...] | None:
    # Read for each contact answered in its own way (three lists each): a plain loop, no
    # generator, and no copy per tag for the answer as documented (a list of strings).
    if not isinstance(value, list):
        return None
    tags = tuple(value)
    for tag in tags:
        if type(tag) is not str:
            return tuple(_scalar_text(tag) for tag in tags)
    return tags


def _scalar_text(value: object) -> str:
    """A JSON value as text; a nested one by its kind only (its str() could be huge, or too
    deep to render)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return f"<{type(value).__name__}>"


def _quote(value: object) -> str:
    text = repr(_scalar_text(value))
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 1] + "…"


def _texts(outcomes: Iterable[ContactOutcome]) -> Iterable[str]:
    for outcome in outcomes:
        yield outcome.message
        for tags in (outcome.old_tags, outcome.tags_added, outcome.tags_removed):
            if tags:
                yield from tags


def _map(function: Callable[[str], str], values: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(function(value) for value in values)


def _body_message(raw: bytearray) -> str:
    """The API's `message` (a 422's list joined with "; "), or "" when the body has none.

    An unreadable body (not JSON, invalid UTF-8, nested too deep) has no message.
    """
    data = _load_json(raw)
    message = data.get("message") if isinstance(data, dict) else None
    if isinstance(message, list):
        return "; ".join(_scalar_text(part) for part in message)
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
    "MAX_ANSWER_BYTES",
    "NO_ENTRY_MESSAGE",
    "TOO_LARGE_MESSAGE",
    "Answer",
    "BulkTagsClient",
    "LocationToken",
    "SearchPage",
    "parse_rate_limit",
    "parse_retry_after",
]
