"""End-to-end fixtures: a contact file, settings for a fast run, the sandbox on loopback."""

from __future__ import annotations

import asyncio
import csv
import random
import string
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from batcher.domain.config import (
    ApiSettings,
    BatchSettings,
    LimitSettings,
    RetrySettings,
    Settings,
    StateSettings,
)
from batcher.sandbox import DEFAULT_LOCATION, FaultConfig, Sandbox, SandboxConfig

LOCATION = DEFAULT_LOCATION


def contact_ids(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    return ["".join(rng.choices(alphabet, k=20)) for _ in range(count)]


def write_csv(path: Path, ids: list[str], **columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["contact_id", "email", *columns])
        for i, contact in enumerate(ids):
            writer.writerow([contact, f"person{i}@example.com", *(v[i] for v in columns.values())])
    return path


def fast_settings(tmp_path: Path, base_url: str, **sections: Any) -> Settings:
    """Small batches (many requests from few rows) and zero backoff (no real waiting)."""
    defaults: dict[str, Any] = {
        "api": ApiSettings(base_url=base_url, location_id=LOCATION, timeout_s=10.0),
        "batch": BatchSettings(size=10),
        "limits": LimitSettings(concurrency=4, requests_per_interval=1000, interval_ms=1000),
        "retry": RetrySettings(attempts=8, initial_backoff_s=0.0, max_backoff_s=0.0),
        "state": StateSettings(dir=str(tmp_path / "state")),
    }
    return Settings(**{**defaults, **sections})


SandboxFactory = Callable[..., AbstractAsyncContextManager[Sandbox]]


@pytest.fixture(autouse=True)
def sandboxes(update_tags_schema: Draft7Validator) -> Iterator[list[Sandbox]]:
    """Every sandbox an end-to-end test starts; afterwards, every request body batcher sent
    to one of them must validate against the OpenAPI excerpt's UpdateTagsDTO."""
    started: list[Sandbox] = []
    yield started
    for sandbox in started:
        for request in sandbox.stats.applied:
            update_tags_schema.validate(request.body)
            assert isinstance(request.body, dict)
            assert isinstance(request.body.get("removeAllTags", False), bool)


@pytest.fixture
def make_sandbox(monkeypatch: pytest.MonkeyPatch, sandboxes: list[Sandbox]) -> SandboxFactory:
    """`async with make_sandbox(faults=...) as sb:` — unthrottled unless `rate` is given; the
    runner finds the sandbox's token in BATCHER_TOKEN as it would a real one."""

    @asynccontextmanager
    async def factory(**config: Any) -> AsyncIterator[Sandbox]:
        config.setdefault("rate", None)
        if isinstance(config.get("faults"), dict):
            config["faults"] = FaultConfig(**config["faults"])
        async with Sandbox(SandboxConfig(**config)) as sandbox:
            sandboxes.append(sandbox)
            monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
            yield sandbox

    return factory


class ThreadedSandbox:
    """A sandbox serving from its own thread and event loop, for tests that drive the CLI
    synchronously (click's CliRunner) and then look at what the sandbox saw."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.sandbox: Sandbox | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Sandbox:
        self._thread.start()
        self.sandbox = Sandbox(self.config)
        asyncio.run_coroutine_threadsafe(self.sandbox.start(), self._loop).result()
        return self.sandbox

    def __exit__(self, *exc: object) -> None:
        assert self.sandbox is not None
        asyncio.run_coroutine_threadsafe(self.sandbox.stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, sandboxes: list[Sandbox]) -> Iterator[Sandbox]:
    """An unthrottled sandbox in a thread, its token in BATCHER_TOKEN."""
    with ThreadedSandbox(SandboxConfig(rate=None)) as sandbox:
        sandboxes.append(sandbox)
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        yield sandbox
