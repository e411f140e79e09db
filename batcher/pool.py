"""N workers pulling work items from an iterator; knows nothing of HTTP (DESIGN.md, aiometer).

Items are pulled lazily, one per free worker, so a plan of a million rows is never materialised:
the iterator is the backpressure. The `stop` event being set from outside (a signal), or a
`StopRun`/`FatalApiError` from any item or from `on_done`, stops new items from being taken;
items already in flight finish and are handed to `on_done`, then the first such error is raised.

Any other exception (a bug, a disk error in `on_done`) also stops the pool the same way and is
raised as itself after the other workers finished their items: never an ExceptionGroup, so the
caller sees one error it can explain in one line.
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
    errors: list[BaseException] = []

    async def worker() -> None:
        while not stopping.is_set() and not errors:
            try:
                item = next(source)
            except StopIteration:
                return
            except Exception as exc:  # the iterator itself failed (the ledger, say)
                errors.append(exc)
                return
            try:
                on_done(item, await work(item))
            except Exception as exc:  # StopRun and FatalApiError included
                errors.append(exc)
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
        # A run-ending error explains itself better than whatever it caused elsewhere.
        ending = [e for e in errors if isinstance(e, StopRun | FatalApiError)]
        raise (ending or errors)[0]
