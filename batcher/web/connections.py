"""The page's connections: deadlines, and a cap per client address.

Anyone who can connect can hold a connection open, before any password or secret is checked: a
thousand half-sent requests held a thousand descriptors for as long as aiohttp's default
keep-alive (an hour). So (config `[serve]`, `Limits`):

- **header deadline** (`header_timeout_s`): a connection must send a whole request line and
  headers within this of opening, or of the first byte of its next request;
- **idle deadline** (`idle_timeout_s`): a kept-alive connection between two requests is closed
  after this (aiohttp's `keepalive_timeout`, which also closes a connection that has sent no
  whole request by then);
- **body deadline** (`body_timeout_s`): a request's body may pause this long between two pieces
  (a form: arrive whole within it); the page's handlers read bodies through `read_form` and
  `body_deadline`, and answer 408 past it;
- **a cap per client address** (`max_connections_per_client`): a connection past it is answered
  503 and closed at once.

aiohttp's server has no header deadline and no per-address cap, and its `web.TCPSite` takes no
protocol of ours; so `serving` listens itself (`loop.create_server`) with each connection's
protocol (`web.Server` is the documented protocol factory) wrapped in `_Connection`, which keeps
the header deadline and the count. The guard middleware tells it when a request's headers are
complete (`Connections.started`) and when its handler is done (`Connections.answered`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from batcher.domain.config import ServeSettings

__all__ = ["CONNECTIONS", "Connections", "Limits", "body_deadline", "read_form", "serving"]

T = TypeVar("T")

_TOO_MANY_TEXT = b"batcher: too many connections from your address; close some, try again\n"
_TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_TOO_MANY_TEXT), _TOO_MANY_TEXT)
)


# aiohttp's default `lingering_time`.
_LINGERING_S = 10.0


@dataclass(frozen=True)
class Limits:
    """The deadlines (seconds) and the cap per client address (see the module's notes)."""

    header_s: float = 10.0
    body_s: float = 60.0
    idle_s: float = 60.0
    per_client: int = 32

    @classmethod
    def of(cls, serve: ServeSettings) -> Limits:
        return cls(
            header_s=serve.header_timeout_s,
            body_s=serve.body_timeout_s,
            idle_s=serve.idle_timeout_s,
            per_client=serve.max_connections_per_client,
        )


class _Connection(asyncio.Protocol):
    """One connection: aiohttp's protocol for it, behind the header deadline and the cap."""

    def __init__(self, inner: asyncio.Protocol, pool: Connections) -> None:
        self._inner = inner
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._address = ""
        self._admitted = False
        self._deadline: asyncio.TimerHandle | None = None
        self._busy = False  # a request's headers are in, its handler not done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._pool.admit(self._address, transport, self):
            transport.write(_TOO_MANY)
            transport.close()
            return
        self._admitted = True
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._deadline is None and not self._busy:
            self._arm()  # the first byte of the next request: its headers are on the clock
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted and self._transport is not None:
            self._pool.release(self._address, self._transport)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    def started(self) -> None:
        self._busy = True
        self._disarm()

    def answered(self) -> None:
        self._busy = False

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._pool.limits.header_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._transport is not None and not self._busy:
            # Not one whole request line and headers in time: a slow or stalled client (or
            # one holding descriptors on purpose). Nothing is owed to it.
            self._transport.close()


class Connections:
    """The open connections of one server: per client address, and by transport."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._per_address: Counter[str] = Counter()
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}

    def admit(self, address: str, transport: asyncio.Transport, connection: _Connection) -> bool:
        if self._per_address[address] >= self.limits.per_client:
            return False
        self._per_address[address] += 1
        self._by_transport[transport] = connection
        return True

    def release(self, address: str, transport: asyncio.BaseTransport) -> None:
        if self._by_transport.pop(transport, None) is not None:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

    def open_from(self, address: str) -> int:
        return self._per_address[address]

    def started(self, request: web.Request) -> None:
        if request.transport is not None and (found := self._by_transport.get(request.transport)):
            found.started()

    def answered(self, request: web.Request) -> None:
        if request.transport is not None and (found := self._by_transport.get(request.transport)):
            found.answered()


CONNECTIONS: web.AppKey[Connections] = web.AppKey("connections", Connections)


async def body_deadline(limits: Limits, read: Awaitable[T]) -> T:
    """`read` (one piece of a request's body), or 408 when it takes longer than the deadline."""
    try:
        async with asyncio.timeout(limits.body_s):
            return await read
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"batcher: the request's body stopped for more than {limits.body_s:g} s "
            "(serve.body_timeout_s); send it again",
            headers={"Connection": "close"},
        ) from None


async def read_form(request: web.Request) -> Any:
    """The request's form (a small body), within the body deadline."""
    return await body_deadline(request.app[CONNECTIONS].limits, request.post())


@asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve `app` on `host`:`port` with its limits (`app[CONNECTIONS]`); yields the bound port.

    OSError when the address cannot be bound.
    """
    pool = app[CONNECTIONS]
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=pool.limits.idle_s,
        # After an answer, the rest of an unread body is read and dropped (so that the client
        # gets the answer, not a reset) for aiohttp's default 10 s, or the body deadline.
        lingering_time=min(_LINGERING_S, pool.limits.body_s),
    )
    await runner.setup()
    try:
        factory = runner.server
        assert factory is not None  # set up above
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(factory(), pool), host, port)
        try:
            yield int(server.sockets[0].getsockname()[1])
        finally:
            server.close()  # no new connections; the runner's cleanup ends the open ones
    finally:
        await runner.cleanup()
