"""batcher.support.stopping: a stop while the input loads ends the run at once, one asked by a
signal right where it lands; afterwards a stop is graceful again."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from batcher.domain.errors import Interrupted
from batcher.support.stopping import Stop, signals_stop

LOADING = (
    "interrupted by {} while loading the input: nothing was sent; run the same command again to "
    "start over"
)


def test_a_signals_stop_while_loading_ends_the_chunks_at_the_next_one() -> None:
    """A signal's stop while loading, seen from the loading thread, ends the input's chunks
    before the next one, with the loading's error."""
    stop = Stop()
    stop.loading()
    chunks = stop.watch(iter(range(10)))
    assert next(chunks) == 0
    stop.request("interrupted by SIGTERM", at_once=True)
    with pytest.raises(Interrupted) as info:
        next(chunks)
    assert str(info.value) == LOADING.format("SIGTERM")


def test_a_stop_from_the_page_while_loading_lets_the_loading_end() -> None:
    """A stop asked otherwise (the page's button, a library caller) stays graceful: every chunk
    is loaded, so that the report lists every row."""
    stop = Stop()
    stop.loading()
    chunks = stop.watch(iter(range(3)))
    assert next(chunks) == 0
    stop.request("stopped from the page")
    assert list(chunks) == [1, 2]
    assert stop.requested


def test_a_signals_stop_before_loading_ends_the_run_as_loading_starts() -> None:
    """A signal that came before the input is opened ends the run as it starts loading."""
    stop = Stop()
    stop.request("interrupted by SIGTERM", at_once=True)
    with pytest.raises(Interrupted, match="while loading the input"):
        stop.loading()


def raise_signal(signum: int) -> None:
    os.kill(os.getpid(), signum)


def busy_after(signum: int) -> None:
    """Signal this process, then keep busy: the handler runs between two bytecodes."""
    raise_signal(signum)
    for _ in range(10**9):
        pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_loading_raises_where_it_lands_with_one_line(
    capfd: pytest.CaptureFixture[str], signum: signal.Signals
) -> None:
    """SIGINT/SIGTERM while this thread loads raises the loading's error right there (the
    process's loop, or a file's parsing, is left at once) and writes nothing of its own: the
    error is the one line."""
    stop = Stop()
    with signals_stop(stop):
        stop.loading()
        with pytest.raises(Interrupted) as info:
            busy_after(signum)
    assert str(info.value) == LOADING.format(signum.name)
    assert capfd.readouterr().err == ""


def test_once_loaded_a_signal_asks_for_the_graceful_stop() -> None:
    """After the input is loaded, a signal is the graceful stop again: noted, acknowledged,
    nothing raised."""
    stop = Stop()
    with signals_stop(stop):
        stop.loading()
        stop.loaded()
        raise_signal(signal.SIGINT)
    assert stop.reason == "interrupted by SIGINT"


def test_a_signal_while_another_thread_loads_is_the_graceful_stop() -> None:
    """Loading in another thread (the page's worker), a signal in the main thread raises
    nothing there: the loading thread sees the stop at its next chunk."""
    stop = Stop()
    loaded = threading.Event()
    signalled = threading.Event()
    seen: list[BaseException] = []

    def load() -> None:
        stop.loading()
        loaded.set()
        chunks: Iterator[int] = stop.watch(iter(range(3)))
        next(chunks)
        signalled.wait(timeout=60)
        try:
            next(chunks)
        except Interrupted as exc:
            seen.append(exc)

    worker = threading.Thread(target=load)
    with signals_stop(stop):
        worker.start()
        assert loaded.wait(timeout=60)
        raise_signal(signal.SIGINT)
        signalled.set()
        worker.join(timeout=60)
    assert [str(e) for e in seen] == [LOADING.format("SIGINT")]
