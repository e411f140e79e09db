"""Fixtures for the sandbox tests: fake clocks and sleep, a sandbox factory, a client session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from batcher.sandbox import Sandbox, SandboxConfig

from .helpers import FakeClock, FakeSleep

SandboxFactory = Callable[..., AbstractAsyncContextManager[Sandbox]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def wall_clock() -> FakeClock:
    return FakeClock(1_767_225_600.0)  # 2026-01-01T00:00:00Z, the start of a UTC day


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_sandbox(clock: FakeClock, wall_clock: FakeClock, sleep: FakeSleep) -> SandboxFactory:
    """`async with make_sandbox(rate=..., faults=...) as sb:` on the fake clocks and sleep."""

    @asynccontextmanager
    async def factory(**config: Any) -> AsyncIterator[Sandbox]:
        sandbox = Sandbox(SandboxConfig(**config), clock=clock, wall_clock=wall_clock, sleep=sleep)
        async with sandbox:
            yield sandbox

    return factory


@pytest.fixture
async def sandbox(make_sandbox: SandboxFactory) -> AsyncIterator[Sandbox]:
    async with make_sandbox() as sb:
        yield sb


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
