"""Slow and greedy clients are cut off: header, body and idle deadlines, and a cap per client
address, on a real server on loopback with raw sockets.

The deadlines are made small (a fifth of a second) so that each test is quick; what is asserted
is that the server closes the connection, never how soon: the waits below are bounds that turn
a hang into a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from batcher.web import WebOptions, create_app
from batcher.web.connections import serving
from tests.web.helpers import SECRET, settings_for

SMALL = 0.2
BOUND_S = 30.0


@asynccontextmanager
async def server(tmp_path: Path, **serve: object) -> AsyncIterator[int]:
    settings = settings_for(
        tmp_path / ".batcher", **{f"serve.{key}": value for key, value in serve.items()}
    )
    app = create_app(settings, WebOptions(sandbox=True, secret=SECRET))
    async with serving(app, "127.0.0.1", 0) as port:
        yield port


async def closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    async with asyncio.timeout(BOUND_S):
        return await reader.read()


async def test_a_half_sent_request_is_cut_off_at_the_header_deadline(tmp_path: Path) -> None:
    """A client that sends half a request line and headers, a byte now and then, is closed."""
    async with server(tmp_path, header_timeout_s=SMALL, idle_timeout_s=BOUND_S * 2) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        async def trickle() -> None:
            try:
                for _ in range(int(BOUND_S * 20)):
                    await asyncio.sleep(SMALL / 4)
                    writer.write(b"X")
                    await writer.drain()
            except ConnectionError:
                pass

        trickling = asyncio.create_task(trickle())
        assert await closed(reader) == b""  # closed, and not one byte owed
        trickling.cancel()
        writer.close()


async def test_a_connection_that_sends_nothing_is_closed(tmp_path: Path) -> None:
    """Opening a connection and sending nothing holds nothing for long."""
    async with server(tmp_path, header_timeout_s=SMALL) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed(reader) == b""
        writer.close()


async def test_a_kept_alive_connection_is_closed_at_the_idle_deadline(tmp_path: Path) -> None:
    """After a whole request and its answer, an idle kept-alive connection is closed."""
    async with server(tmp_path, idle_timeout_s=SMALL) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        async with asyncio.timeout(BOUND_S):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(
            next(
                line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            ).split(b":")[1]
        )
        await reader.readexactly(length)
        assert await closed(reader) == b""
        writer.close()


async def test_a_stalled_body_gets_408_and_the_connection_closed(tmp_path: Path) -> None:
    """A form whose body stops half-way is answered 408 and closed (no credentials needed to
    send one, so no credentials may be needed to be cut off)."""
    async with server(tmp_path, body_timeout_s=SMALL) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"secret=abc"
        )
        answer = await closed(reader)
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"serve.body_timeout_s" in answer
        writer.close()


async def test_connections_past_the_cap_per_client_are_refused(tmp_path: Path) -> None:
    """With a cap of 3, the fourth connection from one address gets 503 and is closed; once one
    closes, a new one is served."""
    async with server(tmp_path, max_connections_per_client=3, header_timeout_s=BOUND_S) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for _, writer in held:
            writer.write(b"GET / HTTP/1.1\r\n")  # half a request each: held open
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await closed(reader)
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"too many connections from your address" in answer
        writer.close()
        held[0][1].close()
        await closed(held[0][0])
        async with asyncio.timeout(BOUND_S):
            while True:  # until the server has seen the close
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                answer = await closed(reader)
                writer.close()
                if not answer.startswith(b"HTTP/1.1 503"):
                    break
        assert answer.startswith(b"HTTP/1.1 200")
        for _, writer in held[1:]:
            writer.close()
