"""batcher.support.stopping: a stop while the input loads ends the run at once, one asked by a
signal right where it lands; afterwards a stop is graceful again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

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


def _signalled_twice(tmp_path: Path, apart_s: str) -> subprocess.CompletedProcess[str]:
    """A process that takes SIGINT twice, `apart_s` apart by its stop's clock, then says so."""
    script = (
        "import signal\n"
        "from batcher.support.stopping import SAME_SIGNAL_S, Stop, signals_stop\n"
        "now = [0.0]\n"
        "stop = Stop()\n"
        "with signals_stop(stop, clock=lambda: now[0]):\n"
        "    stop.loaded()\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        f"    now[0] = {apart_s}\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "print('went on:', stop.reason)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )


def test_the_same_signal_twice_at_once_is_one_graceful_stop(tmp_path: Path) -> None:
    """GNU timeout signals the command and then its process group: two signals back to back
    are one graceful stop (one notice, the process goes on to write its report), not the
    second signal that ends it at once."""
    done = _signalled_twice(tmp_path, "0.0")
    assert done.returncode == 0, done
    assert done.stdout == "went on: interrupted by SIGINT\n"
    assert done.stderr.count("SIGINT received") == 1


def test_a_second_signal_a_moment_later_still_stops_at_once(tmp_path: Path) -> None:
    """A second signal SAME_SIGNAL_S or more after the first (a person's second Ctrl-C) ends the
    process at once, exit 3, with its one line."""
    done = _signalled_twice(tmp_path, "SAME_SIGNAL_S")
    assert done.returncode == 3, done
    assert "went on" not in done.stdout
    assert "SIGINT received again: stopped at once" in done.stderr
