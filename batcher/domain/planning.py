"""Grouping rows and cutting batches: pure functions, no I/O.

Rows that share (location, action, tag set, remove-all) can share requests. Each group is cut into
requests of at most `size` contacts; a group whose tag set is longer than the API's 50 tags per
request is sent once per 50-tag slice ("part"), and a row's report line merges its parts.
Cutting a group's members in order into full batches leaves at most one partly filled batch per
(group, part): no plan can use fewer requests, since every request carries one tag slice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from batcher.domain.models import (
    MAX_CONTACTS_PER_REQUEST,
    MAX_TAGS_PER_REQUEST,
    Action,
    Batch,
    Group,
)


def group_of(location_id: str, action: str, tags: tuple[str, ...], remove_all: bool) -> Group:
    """The group a valid row asking this is sent in.

    Tags are put in one canonical order so that rows with the same set in another order share it
    (SPEC: "same ... tag set (order ignored)").
    """
    return Group(
        location_id=location_id,
        action=Action(action),
        tags=() if remove_all else tuple(sorted(tags)),
        remove_all=remove_all,
    )


def tag_parts(group: Group) -> tuple[tuple[str, ...], ...]:
    """The group's tags in slices the API accepts; remove-all (no tags) is one part."""
    if not group.tags:
        return ((),)
    step = MAX_TAGS_PER_REQUEST
    return tuple(group.tags[i : i + step] for i in range(0, len(group.tags), step))


def cut(
    group: Group,
    part: int,
    members: Iterable[tuple[int, str]],
    size: int = MAX_CONTACTS_PER_REQUEST,
) -> Iterator[Batch]:
    """Cut one (group, part)'s members, `(row, contact_id)` in order, into batches of `size`."""
    if not 1 <= size <= MAX_CONTACTS_PER_REQUEST:
        raise ValueError(f"batch size {size} is outside 1..{MAX_CONTACTS_PER_REQUEST}")
    tags = tag_parts(group)[part]
    it = iter(members)
    while chunk := list(islice(it, size)):
        rows, contact_ids = zip(*chunk, strict=True)
        yield Batch(
            location_id=group.location_id,
            action=group.action,
            tags=tags,
            remove_all=group.remove_all,
            part=part,
            rows=rows,
            contact_ids=contact_ids,
        )


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One (round, group, part) with rows still to send: `members` of them, `group_id` the
    group's number in the run's state."""

    group_id: int
    group: Group
    part: int
    members: int
    round: int = 1


@dataclass(frozen=True, slots=True)
class PlanStats:
    """What a plan amounts to, for `batcher plan` and the run's progress bar."""

    groups: int
    requests: int

    def seconds_at(self, requests_per_interval: int, interval_s: float) -> float:
        """Least time the requests take when at most `requests_per_interval` start per interval.

        The first window's requests start at once, each later window's one interval after.
        """
        if self.requests == 0:
            return 0.0
        return ((self.requests - 1) // requests_per_interval) * interval_s


def count_requests(work: Iterable[tuple[Group, int, int]], size: int) -> PlanStats:
    """Count the requests for `(group, part, member count)` triples without building batches."""
    groups: set[Group] = set()
    requests = 0
    for group, _, members in work:
        groups.add(group)
        requests += math.ceil(members / size)
    return PlanStats(groups=len(groups), requests=requests)
