"""N workers pulling work items from an iterator; knows nothing of HTTP (DESIGN.md, aiometer).

Items are pulled lazily, one per free worker, so a plan of a million rows is never materialised:
the iterator is the backpressure. A `StopRun` or `FatalApiError` from any item (or from
`on_done`), or the `stop` event being set from outside (a signal), stops new items from being
taken; items already in flight finish and are handed to `on_done`, then the first such error is
raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from batcher.errors import FatalApiError, StopRun

T = TypeVar("T")
R = TypeVar("R")


async def run_pool(
    items: Iterable[T],
    work: Callable[[T], Awaitable[R]],
    on_done: Callable[[T, R], None],
    *,
    concurrency: int,
    stop: asyncio.Event | None = None,
) -> None:
    """Run `work` over `items` with at most `concurrency` at once, in item order of start."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    stopping = stop if stop is not None else asyncio.Event()
    source = iter(items)
    stopped_by: list[BaseException] = []

    async def worker() -> None:
        while not stopping.is_set():
            try:
                item = next(source)
            except StopIteration:
                return
            try:
                on_done(item, await work(item))
            except (StopRun, FatalApiError) as exc:
                stopped_by.append(exc)
                stopping.set()
                return

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    if stopped_by:
        raise stopped_by[0]
