"""Stopping a run: a graceful stop that every wait obeys, and the signals that ask for one.

SPEC "Stopping": on SIGINT/SIGTERM no new request starts, every wait (pacing, backoff,
Retry-After) ends at once, the requests in flight finish, the report is written with the rest
`pending`, exit 3. A second signal exits at once (exit 3, one line; a half-written report is
deleted), unless it comes within `SAME_SIGNAL_S` of the first: GNU `timeout` (cron's) sends its
signal to the command and then to the command's process group, so one stop arrives twice, back
to back, and must stay graceful; a person pressing Ctrl-C twice is slower. The web page's stop
button and a library caller ask for the same graceful stop through `Stop.request`.

From the input's opening until it is loaded (`Stop.loading` to `Stop.loaded`) nothing has been
sent: a signal then ends the run at once, with Interrupted (exit 3, one line; no report, as the
rows are not all read), raised where it lands in the main thread, which is where the CLI loads,
so that a hostile file cannot hold off cron's `timeout` (in another thread, at the next chunk:
`Stop.watch`). A stop asked otherwise (the page's button, a library caller) stays graceful:
the loading ends first, so that the report lists every row.

`Stop` is safe to call from a signal handler or another thread: the event it sets lives in the
run's event loop and is set through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import TypeVar

from batcher.domain.errors import Interrupted
from batcher.support import logs
from batcher.support.files import discard_unfinished

__all__ = ["SAME_SIGNAL_S", "Stop", "interruptible_sleep", "signals_stop"]

# A repeat within this long is the same stop (see the module); a person's second Ctrl-C takes
# longer than this to come.
SAME_SIGNAL_S = 1.0

T = TypeVar("T")


class Stop:
    """A request to stop, and an event that coroutines of the run can wait on."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._loading: int | None = None  # the thread loading the input, meanwhile
        self._at_once = False  # a signal asked: while loading, the run ends at once

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str, *, at_once: bool = False) -> None:
        """Ask the run to stop gracefully (the first reason given is kept); `at_once` (a signal):
        while the input loads, the run ends at once (see the module)."""
        self._at_once = self._at_once or at_once
        if self.reason is None:
            self.reason = reason
        loop, event = self._loop, self._event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def event(self) -> asyncio.Event:
        """The event of the running loop, set once a stop is requested (call inside the loop)."""
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop:
            self._loop, self._event = loop, asyncio.Event()
            if self.requested:
                self._event.set()
        return self._event

    def error(self) -> Interrupted:
        return Interrupted(self.reason or "stopped")

    def loading(self) -> None:
        """The input is being opened and loaded by this thread: a signal ends the run at once,
        until `loaded` (see the module). (Left set by an error, it is cleared by `signals_stop`,
        the only one to act on it outside `watch`.)"""
        self.check_loading()
        self._loading = threading.get_ident()

    def loaded(self) -> None:
        """The input is loaded: a stop is graceful again."""
        self._loading = None

    def loading_here(self) -> bool:
        """Whether this thread is loading the input (a signal handler asks: the main thread)."""
        return self._loading == threading.get_ident()

    def check_loading(self) -> None:
        """Raise the error of a signal's stop while loading, if one was asked for."""
        if self.reason is not None and self._at_once:
            raise Interrupted(
                f"{self.reason} while loading the input: nothing was sent; run the same command "
                "again to start over"
            )

    def watch(self, items: Iterable[T]) -> Iterator[T]:
        """`items` (the input's chunks), ending with the error of a signal's stop meanwhile."""
        for item in items:
            self.check_loading()
            yield item


async def interruptible_sleep(stop: Stop, seconds: float) -> None:
    """Sleep `seconds`, or raise Interrupted as soon as a stop is requested."""
    event = stop.event()
    if event.is_set():
        raise stop.error()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(seconds, 0.0))
    if event.is_set():
        raise stop.error()


@contextlib.contextmanager
def signals_stop(stop: Stop, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """SIGINT/SIGTERM: the first asks `stop` for a graceful stop, the second aborts at once
    (one within `SAME_SIGNAL_S` of the first is the same stop: see the module).

    Installed with `signal.signal` (not the loop's handlers) so that a signal also lands while
    the process is busy outside the event loop: loading a file (where it raises, see the
    module) or writing the report. The notice is written with one `os.write`, which is safe
    inside a signal handler.
    """

    first_at: list[float] = []  # when the first signal came

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if first_at and clock() - first_at[0] < SAME_SIGNAL_S:
            return  # the same stop, delivered twice (`timeout` and its process group)
        if stop.requested:
            # At once, from wherever the process is: raising here could land in an asyncio task
            # that nobody awaits (aiohttp writing a body) and be lost. Everything recorded is
            # committed (SQLite rolls back a half-done transaction); a half-written report goes.
            discard_unfinished()
            with contextlib.suppress(OSError):
                os.write(
                    2,
                    f"{logs.name()}: error: {name} received again: stopped at once; what was "
                    "saved is "
                    "kept: run the same command again to resume\n".encode(),
                )
            os._exit(3)  # SPEC "Exit status": stopped early
        first_at.append(clock())
        stop.request(f"interrupted by {name}", at_once=True)
        del frame
        if stop.loading_here():
            stop.check_loading()  # raised here, in the loading: its line is the only one
        with contextlib.suppress(OSError):
            os.write(
                2,
                f"{logs.name()}: {name} received: finishing what is in flight, then writing the "
                f"report ({name} again to stop at once)\n".encode(),
            )

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        stop.loaded()
        for sig, old in previous.items():
            signal.signal(sig, old)
