"""Which batch goes next: one lane per location, fair, paced, a contact's rows in input order.

Every location has its own lane. A lane cuts its batches from the run's work (a `WorkSource`: the
ledger) a round at a time (round k holds each contact's k-th change) and starts round k+1 only
once every batch of round k has settled, so that a contact's rows reach the API in input order.
A free worker asks `Lanes.next()` for work and gets the next batch of a location that may send
*now* (its pacing budget has room), taking the lanes in turn; a location that must wait never
holds up another.
So a file with rows for many locations takes about as long as its busiest location alone.

With `canary=True` each location's first batch is sent alone: the lane hands out its second
batch only once the first has settled, so that a wrong location or a wrong file costs one request
(the error-rate breaker in `breakers.py` judges its answer).

A location whose daily quota is reached (the pacer says it is exhausted) gets no more batches:
its rows stay pending, and `stopped()` tells why.

With a `ContactBudget` (the drip and the send window), a lane's next batch also waits until its
contacts fit the location's budget and the window is open (batches are cut to fit: see
`batcher.domain.drip`); a location the window stops (`--until-window-end`) gets no more batches,
and `windowed()` tells why.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from batcher.domain.models import Batch
from batcher.domain.planning import WorkItem, cut
from batcher.sending.pacing import ContactBudget, Pacer, Slot, first_of

__all__ = ["Dispatch", "Lanes", "WorkSource"]


class WorkSource(Protocol):
    """Where the lanes find their work: the run's ledger (`batcher.state.Ledger`)."""

    def rounds_by_location(self) -> dict[str, int]:
        """Each location with rows to send, and the highest round among them."""
        ...

    def ready_work(self, round_: int, location_id: str | None = None) -> list[WorkItem]:
        """The (group, part) items of a location's round whose rows may be sent now."""
        ...

    def members(self, item: WorkItem) -> Iterator[tuple[int, str]]:
        """`(row, contact_id)` of `item` still to send, in row order."""
        ...


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A batch handed to a worker with the pacing slot of its first attempt already taken."""

    batch: Batch
    slot: Slot


@dataclass
class _Lane:
    location_id: str
    last_round: int
    round: int = 0
    batches: Iterator[Batch] = field(default_factory=lambda: iter(()))
    ahead: Batch | None = None
    in_flight: int = 0
    finished: bool = False
    # The canary (first) batch is out and has not settled yet: nothing more from this lane.
    canary: bool = False
    dispatched: int = 0


class Lanes:
    """Hands out batches fairly across locations, as their budgets allow."""

    def __init__(
        self,
        work: WorkSource,
        batch_size: int,
        pacer: Pacer,
        stop: asyncio.Event,
        *,
        canary: bool,
        contacts: ContactBudget | None = None,
    ) -> None:
        self._work = work
        self._canary = canary
        self._contacts = contacts
        drip = None if contacts is None else contacts.drip
        self._size = batch_size if drip is None else drip.batch_size(batch_size)
        self._pacer = pacer
        self._stop = stop
        self._lanes = [
            _Lane(location_id, last_round)
            for location_id, last_round in work.rounds_by_location().items()
        ]
        self._turn = 0
        self._lock = asyncio.Lock()
        self._settled = asyncio.Event()

    def _peek(self, lane: _Lane) -> Batch | None:
        """The lane's next batch; None while its round waits to settle, or when it is done."""
        while lane.ahead is None and not lane.finished:
            lane.ahead = next(lane.batches, None)
            if lane.ahead is not None:
                break
            if lane.in_flight:
                return None  # round k is still in flight: round k+1 waits for its answers
            if lane.round >= lane.last_round:
                lane.finished = True
                return None
            lane.round += 1
            ready = self._work.ready_work(lane.round, lane.location_id)
            lane.batches = (
                batch
                for item in ready
                for batch in cut(item.group, item.part, self._work.members(item), self._size)
            )
        return lane.ahead

    async def next(self) -> Dispatch | None:
        """The next batch to send and its slot; None when there is nothing more (or a stop)."""
        async with self._lock:
            while not self._stop.is_set():
                # Cleared before looking: a completion or a settled batch from now on wakes us.
                self._pacer.changed.clear()
                self._settled.clear()
                soonest = math.inf
                busy = False
                count = len(self._lanes)
                for step in range(count):
                    lane = self._lanes[(self._turn + step) % count]
                    if lane.finished:
                        continue
                    if self._pacer.exhausted(lane.location_id) is not None:
                        lane.finished = True  # its rows stay pending; stopped() says why
                        continue
                    if lane.canary:
                        busy = True  # its first batch is out alone: the rest waits for it
                        continue
                    batch = self._peek(lane)
                    if batch is None:
                        busy = busy or not lane.finished  # a round still in flight
                        continue
                    if self._contacts is not None:
                        later = self._contacts.delay(lane.location_id, len(batch.rows))
                        if later is not None and math.isinf(later):
                            lane.finished = True  # the window stops it; windowed() says why
                            continue
                        if later != 0:  # None: only a completion makes room, and wakes us
                            busy = True
                            if later is not None:
                                soonest = min(soonest, later)
                            continue
                    busy = True
                    # One reading of the budget: read twice, a wait that ends between the two
                    # readings could be taken for "no wait to time" and never be woken.
                    wait = self._pacer.delay(lane.location_id)
                    if wait == 0:
                        slot = self._pacer.try_start(lane.location_id)
                        if slot is None:
                            continue  # a retry waiting for this location goes first: its
                            # completion wakes us
                        lane.ahead = None
                        lane.in_flight += 1
                        if self._contacts is not None:
                            self._contacts.take(lane.location_id, len(batch.rows))
                        lane.canary = self._canary and lane.dispatched == 0
                        lane.dispatched += 1
                        self._turn = (self._turn + step + 1) % count
                        return Dispatch(batch, slot)
                    if wait is not None:  # None: only a completion makes room, and wakes us
                        soonest = min(soonest, wait)
                if not busy:
                    return None
                await first_of(
                    self._pacer.changed,
                    self._settled,
                    self._stop,
                    within=None if math.isinf(soonest) else max(soonest, 0.0),
                )
            return None

    def settled(self, batch: Batch) -> None:
        """A batch handed out by `next` is done (answered, lost, or given up on a stop)."""
        for lane in self._lanes:
            if lane.location_id == batch.location_id:
                lane.in_flight -= 1
                lane.canary = False
                break
        if self._contacts is not None:
            self._contacts.done(batch.location_id, len(batch.rows))
        self._settled.set()

    def stopped(self) -> dict[str, str]:
        """Locations that got no more batches because their daily quota is reached, and why."""
        return {
            lane.location_id: reason
            for lane in self._lanes
            if (reason := self._pacer.exhausted(lane.location_id)) is not None
        }

    def windowed(self) -> dict[str, str]:
        """Locations that got no more batches because the send window stopped them, and why."""
        return {} if self._contacts is None else self._contacts.stopped()
