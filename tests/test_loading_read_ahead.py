"""batcher.loading._common.read_ahead: a reader run in a thread of its own, a chunk ahead."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest

from batcher.domain.errors import InputError
from batcher.loading._common import read_ahead


def test_items_come_in_order_and_the_readers_error_after_them() -> None:
    def parts() -> Iterator[int]:
        yield 1
        yield 2
        raise InputError("data.xlsx: broken halfway")

    got = []
    with pytest.raises(InputError, match="broken halfway"):
        got.extend(read_ahead(parts()))
    assert got == [1, 2]


def test_closing_it_early_stops_the_thread_and_closes_the_reader_there() -> None:
    closed_in: list[str] = []

    def parts() -> Iterator[int]:
        try:
            yield from itertools.count()
        finally:
            closed_in.append(threading.current_thread().name)

    items = read_ahead(parts())
    assert next(items) == 0
    items.close()

    assert closed_in == ["batcher-read-ahead"]
    assert not [t for t in threading.enumerate() if t.name == "batcher-read-ahead"]


def test_an_empty_reader_gives_nothing() -> None:
    assert list(read_ahead(iter(()))) == []


def test_a_reader_in_the_middle_of_an_item_sees_the_stop_when_the_consumer_goes() -> None:
    """The event passed as `stop` is set as the consumer goes, while the reader is still
    working on an item: a long item's reading can end at its next step, not at its end."""
    stop = threading.Event()
    working = threading.Event()
    steps: list[int] = []

    def parts() -> Iterator[int]:
        yield 0
        working.set()
        for step in itertools.count():  # one long item, watching the stop between steps
            if stop.wait(0.01):
                break
            steps.append(step)
        yield 1

    items = read_ahead(parts(), stop=stop)
    assert next(items) == 0
    assert working.wait(timeout=60)
    items.close()
    assert stop.is_set()
