"""A hostile stand-in for the bulk contact-tags endpoint, on loopback.

It speaks the endpoint's shape (`POST /contacts/bulk/tags/update/{add|remove}`, a 201 whose
`responses` hold `{contactId, message, type, oldTags, tagsAdded, tagsRemoved}`), but what it
answers is up to the test: `server.behaviour` is any `async (request, body) -> response`, and can
be swapped between runs. Every request it gets is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

Behaviour = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]
MIB = 1024 * 1024


@dataclass(frozen=True)
class Seen:
    path: str
    contacts: tuple[str, ...]
    authorization: str | None


def entries(
    contacts: Iterable[str],
    *,
    message: str = "Tags updated",
    kind: str = "success",
    old: Iterable[str] = (),
    added: Iterable[str] = ("vip",),
    removed: Iterable[str] = (),
) -> list[dict[str, Any]]:
    return [
        {
            "contactId": contact,
            "message": message,
            "type": kind,
            "oldTags": list(old),
            "tagsAdded": list(added),
            "tagsRemoved": list(removed),
        }
        for contact in contacts
    ]


def created(responses: list[dict[str, Any]]) -> web.Response:
    body = {"succeded": True, "errorCount": 0, "responses": responses}
    return web.json_response(body, status=201)


async def healthy(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return created(entries(body["contacts"]))


async def stream(
    request: web.Request, *, status: int, total: int, declare_length: bool = False
) -> web.StreamResponse:
    """`total` bytes of a never-ending JSON string, written a MiB at a time from one buffer:
    the server holds one MiB, however large the answer."""
    head = b'{"responses": [], "pad": "'
    piece = b"x" * MIB
    response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
    if declare_length:
        response.content_length = total
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        await response.write(head)
        sent = len(head)
        while sent < total:
            chunk = piece[: total - sent]
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
    except ConnectionError:  # the client hung up once it had seen enough: what should happen
        pass
    return response


class HostileServer:
    """`async with HostileServer(behaviour) as server:` serves on 127.0.0.1 at `server.url`."""

    def __init__(self, behaviour: Behaviour = healthy) -> None:
        self.behaviour = behaviour
        self.requests: list[Seen] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        self.requests.append(
            Seen(request.path, tuple(body["contacts"]), request.headers.get("Authorization"))
        )
        return await self.behaviour(request, body)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/contacts/bulk/tags/update/{action}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
