"""The collector's threshold while a run works (`batcher.support.collecting`): raised, never
lowered, and given back when the last run of the process ends."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from batcher.support.collecting import FEWER, fewer_collections


@pytest.fixture(autouse=True)
def threshold() -> Iterator[tuple[int, ...]]:
    """The default threshold for each test; the process's own given back after it."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_a_run_raises_the_threshold_and_gives_it_back() -> None:
    with fewer_collections():
        assert gc.get_threshold() == FEWER
    assert gc.get_threshold() == (700, 10, 10)


def test_the_caller_s_threshold_comes_back_after_the_last_of_overlapping_runs() -> None:
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to start ends first: the second still works
    assert gc.get_threshold() == FEWER
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_or_none_at_all_is_left_as_the_caller_set_it() -> None:
    gc.set_threshold(50_000, 5, 100)
    with fewer_collections():
        assert gc.get_threshold() == (50_000, 10, 100)
    gc.set_threshold(0)  # automatic collection off
    with fewer_collections():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold()[0] == 0


def test_the_threshold_comes_back_when_the_run_fails() -> None:
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError
    assert gc.get_threshold() == (700, 10, 10)
