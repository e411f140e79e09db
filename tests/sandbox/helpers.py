"""Helpers for the sandbox tests: fake clocks, request bodies, one POST."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from batcher.sandbox import Sandbox

TOKEN = "sandbox-token"
LOCATION = "sandboxLocation00001"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Version": "2021-07-28"}
# Ids from the seed page's example (bulk-tags-endpoint.seed.txt).
CONTACT = "qFSqySFkVvNzOSqgGqFi"
OTHER_CONTACT = "3ualbhnV7j3n3a9r2moD"
RATE_HEADERS = (
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
    "X-RateLimit-Interval-Milliseconds",
    "X-RateLimit-Limit-Daily",
    "X-RateLimit-Daily-Remaining",
)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeSleep:
    """Records the latency the sandbox adds, without waiting."""

    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def body(contacts: Any = None, tags: Any = None, **extra: Any) -> Any:
    """A valid request body for the default location, with overrides."""
    return {
        "contacts": [CONTACT] if contacts is None else contacts,
        "tags": ["tag-1"] if tags is None else tags,
        "locationId": LOCATION,
        **extra,
    }


async def post(
    session: aiohttp.ClientSession,
    sandbox: Sandbox,
    payload: Any,
    *,
    type_: str = "add",
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Answer:
    """POST to the bulk endpoint; `raw` sends bytes as they are instead of `payload` as JSON."""
    data = raw if raw is not None else json.dumps(payload).encode()
    async with session.post(
        f"{sandbox.url}/contacts/bulk/tags/update/{type_}",
        data=data,
        headers={**HEADERS, "Content-Type": "application/json", **(headers or {})},
    ) as response:
        return Answer(response.status, dict(response.headers), await response.json())
