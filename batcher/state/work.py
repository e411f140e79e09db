"""The work queue: which (round, group, part) still owe answers, and their rows, a page at a time.

A row is settled when every part of it has a final answer (success or error); a contact's row of
round k+1 is free to go once its row of round k has settled. Counts come from the
(group_id, round, row) index; a run with no answer yet is counted without looking at the
results at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from batcher.domain.models import Action, Group
from batcher.domain.planning import WorkItem
from batcher.state.db import Named

__all__ = ["PAGE_ROWS", "Answered", "WorkQueue"]

# A row is settled when every part of it has a final answer (success or error).
_SETTLED = """(
    SELECT COUNT(*) FROM results AS s
    WHERE s.row = {row} AND s.status IN ('success', 'error')
) >= (SELECT g.parts FROM rows AS w JOIN groups AS g ON g.id = w.group_id WHERE w.row = {row})"""

# Free to go: the contact's previous row (if any) has settled.
_FREE = f"(r.wait_row IS NULL OR {_SETTLED.format(row='r.wait_row')})"

# Still owing an answer for `:part`, and free to go.
_OWED = f"""
r.pre_status IS NULL
AND NOT EXISTS (
    SELECT 1 FROM results AS s
    WHERE s.row = r.row AND s.part = :part AND s.status IN ('success', 'error')
)
AND {_FREE}
"""

# Rows of a group and round still to send for one part; keyset-paginated by row number.
MEMBERS_PAGE = f"""
SELECT r.row, r.contact_id FROM rows AS r
WHERE r.group_id = :group AND r.round = :round AND r.row > :after AND {_OWED}
ORDER BY r.row LIMIT :limit
"""
# The same for a page after which no row can have an answer yet (see `WorkQueue._page`):
# looking for one was a third of the paging cost (1M rows, outcomes written between pages).
UNANSWERED_MEMBERS_PAGE = f"""
SELECT r.row, r.contact_id FROM rows AS r
WHERE r.group_id = :group AND r.round = :round AND r.row > :after
  AND r.pre_status IS NULL AND {_FREE}
ORDER BY r.row LIMIT :limit
"""

# What is still owed per (round, group) for one part: free to go now, or (for a plan) at all.
COUNT_READY = f"""
SELECT r.round, r.group_id, COUNT(*) FROM rows AS r
WHERE r.group_id IN (
    SELECT id FROM groups
    WHERE parts > :part AND (:location IS NULL OR location_id = :location)
  )
  AND r.round = :round AND {_OWED}
GROUP BY r.round, r.group_id
"""
# COUNT_OWED for a run without answers: a row with a round is valid and not a duplicate.
COUNT_ALL = """
SELECT r.round, r.group_id, COUNT(*) FROM rows AS r
WHERE r.group_id IN (SELECT id FROM groups WHERE parts > :part) AND r.round IS NOT NULL
GROUP BY r.round, r.group_id
"""
# COUNT_READY for round 1 of a run without answers (see `WorkQueue.ready_work`).
COUNT_ALL_OF_ROUND = """
SELECT r.round, r.group_id, COUNT(*) FROM rows AS r
WHERE r.group_id IN (
    SELECT id FROM groups
    WHERE parts > :part AND (:location IS NULL OR location_id = :location)
  )
  AND r.round = :round
GROUP BY r.round, r.group_id
"""
COUNT_OWED = """
SELECT r.round, r.group_id, COUNT(*) FROM rows AS r
WHERE r.group_id IN (SELECT id FROM groups WHERE parts > :part) AND r.pre_status IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM results AS s
    WHERE s.row = r.row AND s.part = :part AND s.status IN ('success', 'error')
  )
GROUP BY r.round, r.group_id
"""

# Rows handed out per page (see `WorkQueue.members`).
PAGE_ROWS = 5_000


@dataclass
class Answered:
    """No row past `up_to` has an answer: a new run starts with none and recording raises it
    (`Outcomes.record`); a resumed run may have answers anywhere (infinity)."""

    up_to: float


class WorkQueue:
    """The run's work over its state file (`named` in errors); `answered` is shared with the
    outcomes' recorder."""

    def __init__(self, db: sqlite3.Connection, named: Named, answered: Answered) -> None:
        self._db = db
        self._named = named
        self._answered = answered

    def _groups(self) -> dict[int, tuple[Group, int]]:
        return {
            gid: (Group(loc, Action(action), tuple(json.loads(tags)), bool(remove_all)), parts)
            for gid, loc, action, tags, remove_all, parts in self._db.execute(
                "SELECT id, location_id, action, tags, remove_all, parts FROM groups"
            )
        }

    def _items(
        self, query: str, round_: int | None, location_id: str | None = None
    ) -> list[WorkItem]:
        groups = self._groups()
        max_parts = max((parts for _, parts in groups.values()), default=0)
        items = []
        for part in range(max_parts):
            params = {"part": part, "round": round_, "location": location_id}
            for round_k, gid, members in self._db.execute(query, params):
                items.append(WorkItem(gid, groups[gid][0], part, members, round_k))
        items.sort(key=lambda item: (item.round, item.group_id, item.part))
        return items

    def work(self) -> list[WorkItem]:
        """Every (round, group, part) with rows still owing a settled answer: what a plan shows.

        Counts assume that each row's earlier rows (of the same contact) will succeed.
        """
        # A run with no answer yet owes every row of a round: counted from the index alone.
        return self._items(COUNT_OWED if self._answered.up_to else COUNT_ALL, None)

    def ready_work(self, round_: int, location_id: str | None = None) -> list[WorkItem]:
        """The (group, part) items of `round_` (of one location, if given) whose rows may be
        sent now: each contact's previous row (round - 1) has settled. Rows still waiting are
        left for a later run."""
        if round_ == 1 and not self._answered.up_to:
            # A new run's first round, before any answer: every row is ready (none waits).
            return self._items(COUNT_ALL_OF_ROUND, round_, location_id)
        return self._items(COUNT_READY, round_, location_id)

    def rounds_by_location(self) -> dict[str, int]:
        """Each location with rows to send, and the highest round among them.

        A group's highest round is one look into the (group_id, round, row) index, so this
        costs a lookup per group, not a pass over the rows (duplicates have no round).
        """
        rounds: dict[str, int] = {}
        for location, highest in self._db.execute(
            "SELECT g.location_id, (SELECT MAX(r.round) FROM rows AS r WHERE r.group_id = g.id) "
            "FROM groups AS g ORDER BY g.location_id"
        ):
            if highest is not None:
                rounds[location] = max(rounds.get(location, 0), int(highest))
        return rounds

    def members(self, item: WorkItem) -> Iterator[tuple[int, str]]:
        """`(row, contact_id)` still owing an answer for `item` and free to go, in row order,
        a page at a time. Paging (rather than one long cursor) lets outcomes be written between
        pages safely."""
        after = 0
        while True:
            with self._named.errors():
                page = self._page(item, after)
            yield from page
            if len(page) < PAGE_ROWS:
                return
            after = page[-1][0]

    def _page(self, item: WorkItem, after: int) -> list[tuple[int, str]]:
        return self._db.execute(
            UNANSWERED_MEMBERS_PAGE if after >= self._answered.up_to else MEMBERS_PAGE,
            {
                "group": item.group_id,
                "part": item.part,
                "round": item.round,
                "after": after,
                "limit": PAGE_ROWS,
            },
        ).fetchall()
