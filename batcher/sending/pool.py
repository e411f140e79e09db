"""N workers pulling work items from a source; knows nothing of HTTP or the API (DESIGN.md).

Items are pulled lazily, one per free worker, so a plan of a million rows is never materialised:
the source is the backpressure. A source is an iterable, or an async callable that returns the
next item (waiting as long as it likes: the fair scheduler of `lanes.py` waits for a location
that may send) or None when there is no more.

The `stop` event being set from outside (a signal), or an exception from any item or from
`on_done`, stops new items from being taken; items already in flight finish and are handed to
`on_done`, then the first exception is raised as itself: never an ExceptionGroup, so the caller
sees one error it can explain in one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

Source = Iterable[T] | Callable[[], Awaitable[T | None]]


def _next_of(items: Source[T]) -> Callable[[], Awaitable[T | None]]:
    if callable(items):
        return items
    iterator = iter(items)

    async def take() -> T | None:
        return next(iterator, None)

    return take


async def run_pool(
    items: Source[T],
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
    take = _next_of(items)
    errors: list[BaseException] = []
    # Set at the first error: a worker waiting on the source for its next item gives up.
    halted = asyncio.Event()

    async def next_item() -> T | None:
        getter = asyncio.ensure_future(take())
        if getter.done():
            return getter.result()
        halt = asyncio.ensure_future(halted.wait())
        try:
            await asyncio.wait((getter, halt), return_when=asyncio.FIRST_COMPLETED)
        finally:
            halt.cancel()
        if not getter.done():
            getter.cancel()
            await asyncio.gather(getter, return_exceptions=True)
            return None
        return getter.result()

    async def worker() -> None:
        while not stopping.is_set() and not errors:
            try:
                item = await next_item()
            except Exception as exc:  # the source itself failed (the ledger, say)
                errors.append(exc)
                halted.set()
                return
            if item is None:
                return
            try:
                on_done(item, await work(item))
            except Exception as exc:
                errors.append(exc)
                halted.set()
                return

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    if errors:
        raise errors[0]
