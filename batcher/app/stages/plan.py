"""The plan stage: what is still to send, counted from the ledger's index (requests, rounds,
locations, the distinct operations, the least time at the rate limit)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from batcher.app.result import TOP_OPERATIONS, TagOperation
from batcher.domain.config import Settings, drip_of, window_of
from batcher.domain.drip import Due, Schedule, last_due
from batcher.domain.models import Status
from batcher.domain.planning import PlanStats, WorkItem, count_requests
from batcher.state import Ledger

__all__ = ["Planned", "all_invalid", "plan"]


@dataclass(frozen=True)
class Planned:
    """What is still to send: the work items, its requests and rounds, its locations (requests
    each, busiest first: what `plan` shows, with the daily share), the least time at the limit
    (the busiest location's), and the distinct operations, most rows first (the first
    TOP_OPERATIONS; `operation_count` in all)."""

    work: tuple[WorkItem, ...]
    stats: PlanStats
    rounds: int
    per_location: tuple[tuple[str, int], ...]
    least_seconds: float
    operations: tuple[TagOperation, ...]
    operation_count: int
    schedule: Schedule

    @property
    def rows(self) -> int:
        """The rows to send (a row of several parts counted once)."""
        return sum(item.members for item in self.work if item.part == 0)

    @property
    def locations(self) -> int:
        return len(self.per_location)


def plan(ledger: Ledger, settings: Settings, clock: Callable[[], float]) -> Planned:
    """Count what the ledger still owes, and when it is due (`clock`: now); nothing is sent."""
    work = tuple(ledger.work())
    drip = drip_of(settings)
    size = settings.batch.size if drip is None else drip.batch_size(settings.batch.size)
    per_location: Counter[str] = Counter()
    for item in work:
        per_location[item.group.location_id] += -(-item.members // size)
    operations = _operations(work)
    busiest = max(per_location.values(), default=0)
    limits = settings.limits
    return Planned(
        work=work,
        stats=count_requests(((item.group, item.part, item.members) for item in work), size),
        rounds=max((item.round for item in work), default=0),
        per_location=tuple(per_location.most_common()),
        least_seconds=PlanStats(groups=1, requests=busiest).seconds_at(
            limits.requests_per_interval, limits.interval_ms / 1000
        ),
        operations=tuple(
            TagOperation(action, tags, remove_all, rows)
            for (action, tags, remove_all), rows in operations.most_common(TOP_OPERATIONS)
        ),
        operation_count=len(operations),
        schedule=_schedule(ledger, settings, work, size, clock()),
    )


def _schedule(
    ledger: Ledger, settings: Settings, work: tuple[WorkItem, ...], size: int, start: float
) -> Schedule:
    """When each location's contacts are due, batch by batch as the lanes send them (a round
    at a time), under the drip (with what earlier invocations sent) and the window; with a
    window and no drip, at the rate limit within the window."""
    drip, window = drip_of(settings), window_of(settings)
    sent = {} if drip is None else ledger.drip_sent(start - drip.period_s)
    sizes: defaultdict[str, list[int]] = defaultdict(list)
    contacts: Counter[str] = Counter()
    for item in sorted(work, key=lambda item: item.round):
        location = item.group.location_id
        full, rest = divmod(item.members, size)
        sizes[location].extend([size] * full + ([rest] if rest else []))
        if item.part == 0:
            contacts[location] += item.members
    limits = settings.limits
    due = []
    for location, batches in sizes.items():
        last = last_due(batches, drip, window, start, sent.get(location, ()))
        if drip is None and window is not None and last is not None:
            # Without a drip the API's rate limit sets the pace, and it sends only in the window.
            seconds = PlanStats(groups=1, requests=len(batches)).seconds_at(
                limits.requests_per_interval, limits.interval_ms / 1000
            )
            last = window.after(start, seconds)
        due.append(Due(location, contacts[location], len(batches), last))
    due.sort(key=lambda d: (-d.contacts, d.location_id))
    return Schedule(drip, window, size, start, tuple(due))


def _operations(work: tuple[WorkItem, ...]) -> Counter[tuple[str, tuple[str, ...], bool]]:
    """The distinct operations: each group's rows (its first part's members, every round),
    summed over locations; counted by the ledger from its index, a lookup per group."""
    operations: Counter[tuple[str, tuple[str, ...], bool]] = Counter()
    for item in work:
        if item.part == 0:
            group = item.group
            operations[(group.action.value, group.tags, group.remove_all)] += item.members
    return operations


def all_invalid(ledger: Ledger) -> bool:
    """Whether every row of a run with nothing to send is invalid (or a duplicate): not when
    its producer settled rows otherwise (an undo whose rows are all left alone, which is no
    error of the input)."""
    counts = ledger.status_counts()
    invalid = counts.get(Status.INVALID.value, 0) + counts.get(Status.DUPLICATE.value, 0)
    return invalid == sum(counts.values())
