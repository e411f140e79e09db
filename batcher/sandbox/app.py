"""The emulator's HTTP side: the endpoint's handler, the Sandbox context manager, serve().

A request goes through the checks in the real service's order, and the first that fails answers:
1 token (401: unknown, expired, revoked), 2 rate limits (429; counted from here on), 3 Version
header (400), 4 `{type}` and 5 body (422; a body not sent as `application/json` is read as
empty), 6 location access (403, or 401 for a location token: see `tokens.py`), 7 injected
faults, 8 the update itself (201). Every answer of the endpoint carries the five X-RateLimit-*
headers. `POST /contacts/search` (Step 16) goes through the same checks, 1 to 6 (its own body
rules at 5: `batcher.sandbox.search`), then answers, no fault injected. `POST /oauth/locationToken`
exchanges the agency token for a location token (not rate limited here). `GET /_sandbox/stats` is
the bookkeeping.

A sandbox listens on loopback unless its config says `allow_public`; then, once listening, it
hands one warning line to `warn` (by default the `batcher.sandbox` logger, which Python prints
on stderr when nothing else is set up).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from types import TracebackType

from aiohttp import web

from batcher.sandbox.config import SandboxConfig
from batcher.sandbox.faults import Fate, Fault, FaultPlan
from batcher.sandbox.ratelimit import RateLimiter
from batcher.sandbox.search import Search, parse_search
from batcher.sandbox.stats import AppliedRequest, SandboxStats
from batcher.sandbox.tokens import INVALID_JWT, Refusal, Tokens
from batcher.sandbox.universe import Universe
from batcher.sandbox.validation import (
    FORM,
    OAUTH_VERSIONS,
    exchange_problems,
    parse_update,
    read_body,
    version_problem,
)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Warn = Callable[[str], None]

_logger = logging.getLogger("batcher.sandbox")

UPDATE_PATH = "/contacts/bulk/tags/update/{type}"
EXCHANGE_PATH = "/oauth/locationToken"
SEARCH_PATH = "/contacts/search"
STATS_PATH = "/_sandbox/stats"

# Bodies as documented in API-NOTES.md ("Response", "Rate limits") and the task's 403 wording.
_UNAUTHORIZED = {
    "statusCode": 401,
    "message": "Invalid token: access token is invalid",
    "error": "Unauthorized",
}
_TOO_MANY = {"statusCode": 429, "message": "Too Many Requests"}


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[len("Bearer ") :] if header.startswith("Bearer ") else None


def _refused(refusal: Refusal) -> dict[str, object]:
    """The body of a refusal: a 401 as UnauthorizedDTO (with `error`), others as reported."""
    body: dict[str, object] = {"statusCode": refusal.status, "message": refusal.message}
    if refusal.status == HTTPStatus.UNAUTHORIZED:
        body["error"] = "Unauthorized"
    return body


class _Endpoint:
    """The bulk tags endpoint: one handler over the sandbox's state."""

    def __init__(
        self,
        config: SandboxConfig,
        universe: Universe,
        stats: SandboxStats,
        clock: Clock,
        wall_clock: Clock,
        sleep: Sleep,
    ) -> None:
        self.config = config
        self.universe = universe
        self.stats = stats
        self.limiter = RateLimiter(config.rate, clock, wall_clock)
        self._wall_clock = wall_clock
        self.plan = FaultPlan(config.faults)
        self.stopping = asyncio.Event()  # set at shutdown: releases the "slow" requests
        self._sleep = sleep
        self.tokens = Tokens(config, clock)

    async def update_tags(self, request: web.Request) -> web.StreamResponse:
        self.stats.arrived()
        try:
            return await self._update_tags(request)
        finally:
            self.stats.answered()

    async def _update_tags(self, request: web.Request) -> web.StreamResponse:
        fate = self.plan.draw()  # before the first await: draws follow the arrival order
        self.stats.total_requests += 1
        admitted = await self._admit(request, fate)
        if isinstance(admitted, web.Response):
            return admitted
        body, token, headers = admitted
        version = request.headers.get("Version")

        update = parse_update(request.match_info["type"], body)
        if isinstance(update, list):
            unprocessable = {"statusCode": 422, "message": update, "error": "Unprocessable Entity"}
            return await self._answer(fate, 422, unprocessable, headers)

        if (refusal := self.tokens.reach(token, update.location_id)) is not None:
            return await self._answer(fate, refusal.status, _refused(refusal), headers)

        fate = self.plan.settle(fate)
        if fate.fault is not Fault.NONE:
            self.stats.faults[fate.fault.value] += 1
        if fate.fault in (Fault.ERROR, Fault.FAIL_FIRST):
            status = fate.error_status
            failure = {"statusCode": status, "message": HTTPStatus(status).phrase}
            return await self._answer(fate, status, failure, headers)
        if fate.fault is Fault.SLOW:
            await self.stopping.wait()  # longer than any client's timeout
            return self._drop(request)
        if fate.fault is Fault.DROP_BEFORE:
            await self._sleep(fate.latency_s)
            return self._drop(request)

        if fate.fault in (Fault.DROP_AFTER, Fault.MALFORMED):
            # Applied, but the client will not read the answer: kept apart, so that a test can
            # tell which contacts a lost answer changed.
            lost: Counter[str] = Counter()
            entries, errors = self.universe.apply(update, lost)
            self.stats.changes.update(lost)
            self.stats.lost_changes.update(lost)
        else:
            entries, errors = self.universe.apply(update, self.stats.changes)
        self.stats.note_contacts(update.location_id, len(update.contacts), self._wall_clock())
        if self.config.record_requests:
            assert version is not None  # checked by `_admit`
            self.stats.applied.append(AppliedRequest(version, update, body))
        if fate.fault is Fault.DROP_AFTER:
            await self._sleep(fate.latency_s)
            return self._drop(request)

        # "succeded" is the API's spelling; v3 adds "succeeded" beside it (API-NOTES.md).
        result: dict[str, object] = {"succeded": errors == 0}
        if version == "v3":
            result["succeeded"] = errors == 0
        result["errorCount"] = errors
        result["responses"] = entries
        raw = _dumps(result)
        if fate.fault is Fault.MALFORMED:
            raw = raw[: len(raw) // 2]
        return await self._answer(fate, 201, raw, headers)

    async def _admit(
        self, request: web.Request, fate: Fate
    ) -> tuple[object, str, dict[str, str]] | web.Response:
        """The checks a tag request and a search share, in this order: the token (known, then
        not refused), the rate limit it is counted in (a 429, with Retry-After when the config
        says so), then Version. The answer that refuses the request, or its body (read only as
        `application/json`), its token and the rate-limit headers the rest of its answer
        carries."""
        body = read_body(request.content_type, await request.read())
        location = body.get("locationId") if isinstance(body, dict) else None
        token = _bearer(request)
        # Requests whose locationId cannot be read are counted against the token itself.
        bucket = location if isinstance(location, str) else f"token:{token}"

        if token is None or not self.tokens.known(token):
            return await self._answer(fate, 401, _UNAUTHORIZED, self.limiter.peek(bucket).headers)
        if (refusal := self.tokens.use(token)) is not None:
            headers = self.limiter.peek(bucket).headers
            return await self._answer(fate, refusal.status, _refused(refusal), headers)

        verdict = self.limiter.admit(bucket)
        self.stats.note_window(bucket, verdict.window_count)
        headers = verdict.headers
        if not verdict.allowed:
            if self.limiter.config.retry_after:
                headers["Retry-After"] = str(verdict.retry_after_s)
            return await self._answer(fate, 429, _TOO_MANY, headers)

        problem = version_problem(request.headers.get("Version"))
        if problem is not None:
            return await self._answer(fate, 400, {"statusCode": 400, "message": problem}, headers)
        return body, token, headers

    async def exchange(self, request: web.Request) -> web.Response:
        """`POST /oauth/locationToken`: the agency token, a form with `companyId` and
        `locationId`, `Version: 2021-07-28` (oauth.openapi.json) -> a location token."""
        self.stats.exchange_requests += 1
        token = _bearer(request)
        if token is None or not self.tokens.is_agency(token):
            return self._plain(
                401, _UNAUTHORIZED if token is None else _refused(Refusal(401, INVALID_JWT))
            )
        problem = version_problem(request.headers.get("Version"), OAUTH_VERSIONS)
        if problem is not None:
            return self._plain(400, {"statusCode": 400, "message": problem})
        # Like JSON, a form is parsed only when it says it is one (Express's urlencoded parser).
        form = await request.post() if request.content_type == FORM else {}
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if problems := exchange_problems(fields):
            unprocessable = {
                "statusCode": 422,
                "message": problems,
                "error": "Unprocessable Entity",
            }
            return self._plain(422, unprocessable)
        issued = self.tokens.exchange(fields["companyId"], fields["locationId"])
        if isinstance(issued, Refusal):
            return self._plain(issued.status, _refused(issued))
        access_token, expires_in = issued
        return self._plain(
            200,
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "scope": "contacts.write contacts.readonly",
                "locationId": fields["locationId"],
                "userId": "sandboxUser000000001",
            },
        )

    def _plain(self, status: int, payload: object) -> web.Response:
        self.stats.by_status[status] += 1
        return web.Response(status=status, body=_dumps(payload), content_type="application/json")

    async def search(self, request: web.Request) -> web.StreamResponse:
        """`POST /contacts/search` (see `batcher.sandbox.search`): the same checks in the same
        order as a tag request (the token, the rate limit it is counted in, Version, the body
        read only as `application/json`, the location the token may reach); no faults are
        injected."""
        fate = Fate(0.0, Fault.NONE, 0)  # no latency, no fault: a search is only read
        self.stats.searches += 1
        admitted = await self._admit(request, fate)
        if isinstance(admitted, web.Response):
            return admitted
        body, token, headers = admitted
        search = parse_search(body)
        if not isinstance(search, Search):
            status, message = search
            return await self._answer(
                fate, status, {"statusCode": status, "message": message}, headers
            )
        if (refusal := self.tokens.reach(token, search.location_id)) is not None:
            return await self._answer(fate, refusal.status, _refused(refusal), headers)
        contacts, total = self.universe.search(
            search.location_id, search.groups, search.after, search.page_limit
        )
        self.stats.searches_answered += 1
        answer = {"contacts": contacts, "total": total, "traceId": f"sandbox-{self.stats.searches}"}
        return await self._answer(fate, 200, answer, headers)

    async def report_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=_dumps(self.stats.to_json()), content_type="application/json")

    async def _answer(
        self, fate: Fate, status: int, payload: object, headers: dict[str, str]
    ) -> web.Response:
        await self._sleep(fate.latency_s)
        self.stats.by_status[status] += 1
        raw = payload if isinstance(payload, bytes) else _dumps(payload)
        return web.Response(
            status=status, body=raw, headers=headers, content_type="application/json"
        )

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        """Close the connection with no answer: the client sees the server disconnect.

        The returned response is never sent: aiohttp finds the transport closing and gives up.
        """
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)


def _log_warning(text: str) -> None:
    _logger.warning("%s", text)


def public_warning(host: str, port: int) -> str:
    """The line a sandbox listening beyond loopback hands to `warn`."""
    return (
        f"warning: the sandbox listens on {host} port {port}, not only on loopback "
        "(allow_public): anyone who can reach this machine can send it requests"
    )


def _url_host(host: str) -> str:
    """The host part of the URL to reach a sandbox bound to `host` from this machine."""
    if host in ("", "0.0.0.0"):  # every IPv4 interface: loopback is one of them
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Sandbox:
    """The emulator on loopback, as an async context manager.

    `clock` (monotonic seconds) drives the rate window, `wall_clock` (epoch seconds) the daily
    quota's UTC day, and `sleep` the injected latency: tests pass fakes and never really wait.
    `warn` receives the line said when the config makes it listen beyond loopback.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        warn: Warn = _log_warning,
    ) -> None:
        self.config = config or SandboxConfig()
        self._warn = warn
        strict = self.config.strict_unknown
        fixture = self.config.fixture
        self.universe = (
            Universe.from_fixture(fixture, strict_unknown=strict)
            if fixture is not None
            else Universe(strict_unknown=strict)
        )
        if self.universe.tokens:  # the fixture's tokens, under the config's own
            tokens = {**self.universe.tokens, **self.config.tokens}
            self.config = dataclasses.replace(self.config, tokens=tokens)
        self.stats = SandboxStats()
        self._endpoint = _Endpoint(self.config, self.universe, self.stats, clock, wall_clock, sleep)
        self._runner: web.AppRunner | None = None
        self.url = ""  # "http://127.0.0.1:PORT" once started

    @property
    def token(self) -> str:
        return self.config.token

    @property
    def tokens(self) -> Tokens:
        """The tokens it knows and issued (`exchanges`: location tokens issued so far)."""
        return self._endpoint.tokens

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(UPDATE_PATH, self._endpoint.update_tags)
        app.router.add_post(EXCHANGE_PATH, self._endpoint.exchange)
        app.router.add_post(SEARCH_PATH, self._endpoint.search)
        app.router.add_get(STATS_PATH, self._endpoint.report_stats)
        # No access log: a benchmark sends thousands of requests. The shutdown timeout only
        # bounds a handler stuck in the injected `sleep`; slow requests are released by stop().
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        self.url = f"http://{_url_host(self.config.host)}:{port}"
        if self.config.is_public:
            self._warn(public_warning(self.config.host, port))

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._endpoint.stopping.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(
    config: SandboxConfig,
    announce: Callable[[str], None],
    *,
    clock: Clock = time.monotonic,
    wall_clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    warn: Warn = _log_warning,
) -> None:
    """Serve until cancelled (Ctrl-C in `batcher sandbox`); `announce(url)` once listening.

    A config that allows a public host hands its warning line to `warn` before the announcement.
    """
    sandbox = Sandbox(config, clock=clock, wall_clock=wall_clock, sleep=sleep, warn=warn)
    async with sandbox:
        announce(sandbox.url)
        await asyncio.Event().wait()
