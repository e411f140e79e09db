"""Where the sandbox listens: loopback quietly; beyond it only when allowed, and then it warns.

No test binds anything but loopback: a "public" sandbox here binds 127.0.0.1 through a fake site
that records the host it was asked for.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from batcher.sandbox import Sandbox, SandboxConfig, public_warning, serve
from batcher.sandbox import app as sandbox_app

from .helpers import body, post

PUBLIC = SandboxConfig(host="0.0.0.0", allow_public=True)


@pytest.fixture
def asked_hosts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hosts the sandbox asks to listen on; it really listens on 127.0.0.1."""
    hosts: list[str] = []

    class LoopbackSite(web.TCPSite):
        def __init__(self, runner: web.BaseRunner, host: str, port: int, **kw: Any) -> None:
            hosts.append(host)
            super().__init__(runner, "127.0.0.1", port, **kw)

    monkeypatch.setattr(sandbox_app.web, "TCPSite", LoopbackSite)
    return hosts


async def test_a_loopback_sandbox_says_nothing() -> None:
    said: list[str] = []
    async with Sandbox(SandboxConfig(), warn=said.append) as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
    assert said == []


async def test_a_public_sandbox_warns_once_listening(asked_hosts: list[str]) -> None:
    said: list[str] = []
    async with Sandbox(PUBLIC, warn=said.append) as sandbox:
        port = int(sandbox.url.rsplit(":", 1)[1])
        assert asked_hosts == ["0.0.0.0"]
        assert said == [public_warning("0.0.0.0", port)]
    assert said[0] == (
        f"warning: the sandbox listens on 0.0.0.0 port {port}, not only on loopback "
        "(allow_public): anyone who can reach this machine can send it requests"
    )


async def test_a_sandbox_on_every_interface_gives_a_loopback_url(
    asked_hosts: list[str], session: aiohttp.ClientSession
) -> None:
    async with Sandbox(PUBLIC, warn=lambda _: None) as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        answer = await post(session, sandbox, body())
    assert answer.status == 201


async def test_the_warning_goes_to_the_log_unless_told_otherwise(
    asked_hosts: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="batcher.sandbox"):
        async with Sandbox(PUBLIC):
            pass
    assert [(r.name, r.levelno) for r in caplog.records] == [("batcher.sandbox", logging.WARNING)]
    assert caplog.records[0].getMessage().startswith("warning: the sandbox listens on 0.0.0.0")


async def test_serve_warns_before_it_announces(asked_hosts: list[str]) -> None:
    said: list[str] = []
    announced = asyncio.Event()

    def announce(url: str) -> None:
        said.append(f"announce {url}")
        announced.set()

    server = asyncio.create_task(serve(PUBLIC, announce, warn=said.append))
    await asyncio.wait_for(announced.wait(), 5)
    server.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server
    assert [line.split(" ", 1)[0] for line in said] == ["warning:", "announce"]
