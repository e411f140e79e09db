"""Python's cyclic garbage collector, run less often while a run works.

A run makes millions of short-lived containers: each answer's JSON is 500 dicts and 1,500
lists, each block of report rows 2,000 tuples. At the default threshold (a young collection
every 700 new containers) a collection lands in the middle of nearly every answer, finds the
answer's objects still alive, moves them to the older generations, and so sets off full
collections over everything the process holds: a third of the CPU of reading and recording
answers (`benchmarks/million.py`). At 10,000 an answer is read and freed between two
collections. Garbage in reference cycles is still collected, a little later.

The threshold is the process's: it is raised while any run of the process works and given back
when the last one ends (a page or a script may run several at once).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["FEWER", "fewer_collections"]

# Young collections every 10,000 new containers instead of 700; the older generations as they
# are (10 and 10 collections of the one below).
FEWER = (10_000, 10, 10)


class _Raised:
    """How many runs want the threshold raised, and the one to give back after them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = 0
        self.before: tuple[int, int, int] = gc.get_threshold()


_RAISED = _Raised()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's threshold to `FEWER` for the duration (never lower it: a caller's
    own higher one stays, as does a threshold of 0, which turns automatic collection off), and
    give the caller's back when no run needs it."""
    with _RAISED.lock:
        if _RAISED.runs == 0:
            _RAISED.before = before = gc.get_threshold()
            if before[0]:
                raised = (max(own, ours) for own, ours in zip(before, FEWER, strict=False))
                gc.set_threshold(*raised)
        _RAISED.runs += 1
    try:
        yield
    finally:
        with _RAISED.lock:
            _RAISED.runs -= 1
            if _RAISED.runs == 0:
                gc.set_threshold(*_RAISED.before)
