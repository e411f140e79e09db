"""Loading: every input row written to the state file once, then each contact's rows ordered.

A chunk goes in with one `executemany` over its columns zipped together, its valid rows apart
from its invalid ones (which are few and carry more fields), many rows a statement; no Python
work per row beyond what C-level `map`s do: group ids and tag JSON are worked out per distinct
value.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from batcher.domain.errors import UsageError
from batcher.domain.models import MAX_INPUT_COLUMNS, Chunk, Group
from batcher.domain.planning import group_of, tag_parts
from batcher.state.codec import dump, dumped, encode
from batcher.state.db import insert_many, transaction, written_once
from batcher.state.ordering import order_contacts
from batcher.state.schema import ROWS_TABLE, SETTLED_INDEX, WORK_INDEX, get_meta, set_meta

__all__ = ["load", "row_at", "row_count"]

# Rows loaded between commits (see `load`).
_LOAD_COMMIT_ROWS = 250_000


class _GroupIds:
    """Group ids while loading, written to the groups table the first time a group is seen.

    Rows asking the same thing share one tags tuple (loading parses each distinct tags cell
    once), so the row's own fields are looked up first and the canonical Group (sorted tags) is
    built only for a new combination.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._by_fields: dict[tuple[str, str, tuple[str, ...], bool], int] = {}
        self._by_group: dict[Group, int] = {}

    def of(self, location_id: str, action: str, tags: tuple[str, ...], remove_all: bool) -> int:
        fields = (location_id, action, tags, remove_all)
        group_id = self._by_fields.get(fields)
        if group_id is None:
            group = group_of(location_id, action, tags, remove_all)
            group_id = self._by_group.get(group)
            if group_id is None:
                group_id = self._by_group[group] = len(self._by_group) + 1
                self._db.execute(
                    "INSERT INTO groups VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        group_id,
                        group.location_id,
                        group.action.value,
                        dump(group.tags),
                        int(group.remove_all),
                        len(tag_parts(group)),
                    ),
                )
            self._by_fields[fields] = group_id
        return group_id

    def column(self, chunk: Chunk) -> list[int]:
        """The group id of each row of `chunk`, whose rows are all valid.

        Rows asking the same thing share their fields' objects (loading parses each distinct
        cell once), so each distinct (location, action, tags object) is looked up once.
        """
        locations, actions, tags = chunk.location_ids, chunk.actions, chunk.tags
        if chunk.rows and _uniform(locations) and _uniform(actions) and _uniform(tags):
            # Common: one location, action and tags for the whole chunk (options, or columns
            # holding one value).
            return [self.of(locations[0], actions[0], tags[0], chunk.remove_all)] * len(locations)
        keys = list(zip(chunk.location_ids, chunk.actions, map(id, chunk.tags), strict=True))
        # The last row of each distinct key, whose fields stand for all of its rows.
        last = dict(zip(keys, range(len(keys)), strict=True))
        found = {
            key: self.of(chunk.location_ids[i], chunk.actions[i], chunk.tags[i], chunk.remove_all)
            for key, i in last.items()
        }
        if len(found) == 1:
            return [next(iter(found.values()))] * len(keys)
        return list(map(found.__getitem__, keys))


def load(
    db: sqlite3.Connection,
    path: Path,
    columns: Sequence[str],
    chunks: Iterable[Chunk],
    *,
    cells: bool = True,
    sending: bool = True,
) -> int:
    """Write every input row once, then order each contact's rows. Returns the row count.

    `path` is the state file (synced once the load is written: `db.written_once`). Without
    `cells`, the input's cells are not kept (a plan that gives no rows back: they were half of
    its writing, 0.9 s of a million six-column rows); the columns are, and such a ledger can
    give no report rows. Without `sending` (a plan's), the index the work queue pages by is
    not built: a plan counts its work in one pass over the rows (0.35 s a million rows), where
    sorting them into the index took 0.6 s.
    """
    if len(columns) > MAX_INPUT_COLUMNS:
        raise UsageError(
            f"the input has {len(columns):,} columns; batcher keeps every column for the "
            f"report and takes at most {MAX_INPUT_COLUMNS:,}: remove the columns you do not "
            "need"
        )
    groups = _GroupIds(db)
    # Imported here: numpy is only needed to load, and the report's helper process (see
    # batcher.app.rendering) reads a ledger without it, starting sooner and smaller.
    from batcher.state.repeats import RepeatFinder

    count = committed = 0
    kept = len(columns) if cells else 0
    marks = ", ?" * kept
    insert_settled = f"INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?{marks})"
    # A row given by email: no group, round or status until its contact is known (Step 16,
    # `batcher.state.lookups`): pending, never sent, until then.
    insert_lookup = (
        f"INSERT INTO rows VALUES (?, ?, '', ?, ?, ?, NULL, NULL, NULL, NULL, ''{marks})"
    )
    with RepeatFinder() as repeats, written_once(db, path), transaction(db):
        db.execute("DROP TABLE rows")
        db.execute(
            ROWS_TABLE.format(cells="".join(f",\n    c{i} TEXT NOT NULL" for i in range(kept)))
        )
        db.execute("DROP TABLE IF EXISTS temp.maybe")  # left by a load that failed
        db.execute("CREATE TEMP TABLE maybe (row INTEGER PRIMARY KEY)")
        for chunk in chunks:
            if len(chunk.cells) != len(columns):
                raise ValueError(f"{len(chunk.cells)} cell columns for {len(columns)} columns")
            if not cells:
                chunk = dataclasses.replace(chunk, cells=[])
            rows_of = chunk.rows
            if chunk.emails:  # their contacts are ordered once known (`batcher.state.lookups`)
                chunk = _insert_lookups(db, chunk, groups, insert_lookup)
            maybe = repeats.add(chunk.rows, chunk.contact_ids)
            if maybe:
                db.executemany("INSERT INTO temp.maybe VALUES (?)", zip(maybe, strict=True))
            valid = chunk
            settled = chunk.before_sending()
            if settled:
                valid = chunk.take([i for i in range(len(chunk)) if i not in settled])
                bad = chunk.take(sorted(settled))
                verdicts = [settled[i] for i in sorted(settled)]
                db.executemany(
                    insert_settled,
                    zip(
                        bad.rows,
                        bad.lines,
                        bad.contact_ids,
                        bad.location_ids,
                        bad.actions,
                        dumped(bad.tags),
                        [status.value for status, _ in verdicts],
                        [why for _, why in verdicts],
                        *bad.cells,
                        strict=True,
                    ),
                )
            _insert_valid(db, valid, groups, marks)
            count += len(rows_of)
            if count >= committed + _LOAD_COMMIT_ROWS:
                # Committed in parts: one transaction of a whole big file grows the WAL to the
                # database's size, and SQLite finds pages in a big WAL ever more slowly. A run
                # killed between parts is still "loading", and discarded as before.
                db.execute("COMMIT")
                db.execute("BEGIN")
                committed = count
        db.execute(SETTLED_INDEX)
        if sending:
            db.execute(WORK_INDEX)
        if db.execute("SELECT EXISTS (SELECT 1 FROM temp.maybe)").fetchone()[0]:
            order_contacts(db, repeats)
        else:
            db.execute("DROP TABLE temp.maybe")
        set_meta(db, "columns", encode(tuple(columns)))
        set_meta(db, "rows", str(count))
        set_meta(db, "state", "ready")
    return count


def _insert_lookups(db: sqlite3.Connection, chunk: Chunk, groups: _GroupIds, insert: str) -> Chunk:
    """Insert the rows of `chunk` to be resolved by email, and their addresses and groups in
    `lookups`; return the chunk's other rows."""
    at = sorted(chunk.emails)
    found = chunk.take(at)
    db.executemany(
        insert,
        zip(
            found.rows,
            found.lines,
            found.location_ids,
            found.actions,
            dumped(found.tags),
            *found.cells,
            strict=True,
        ),
    )
    db.executemany(
        "INSERT INTO lookups VALUES (?, ?, ?, ?)",
        zip(
            found.rows,
            found.location_ids,
            [chunk.emails[i] for i in at],
            groups.column(found),
            strict=True,
        ),
    )
    taken = set(at)
    return chunk.take([i for i in range(len(chunk)) if i not in taken])


def _insert_valid(db: sqlite3.Connection, chunk: Chunk, groups: _GroupIds, marks: str) -> None:
    """Insert the rows of `chunk`, all valid; `marks` holds one `, ?` per input cell."""
    # Round 1, no wait, no status: a valid row's defaults until ordering says more.
    same = _same_ask(chunk)
    cells = len(chunk.cells)
    if same is not None:
        # One location, action and tags for the chunk (the common case: options, or columns
        # holding one value): SQL literals, not bound for each row (a sixth of the time).
        location, action, tags = same
        group = groups.of(location, action, tags, chunk.remove_all)
        asked = f"{_sql_text(location)}, {_sql_text(action)}, {_sql_text(tags)}, {group}"
        insert_many(
            db,
            "INSERT INTO rows",
            f"(?, ?, ?, {asked}, 1, NULL, NULL, ''{marks})",
            3 + cells,
            zip(chunk.rows, chunk.lines, chunk.contact_ids, *chunk.cells, strict=True),
        )
    elif len(chunk):
        insert_many(
            db,
            "INSERT INTO rows",
            f"(?, ?, ?, ?, ?, ?, ?, 1, NULL, NULL, ''{marks})",
            7 + cells,
            zip(
                chunk.rows,
                chunk.lines,
                chunk.contact_ids,
                chunk.location_ids,
                chunk.actions,
                dumped(chunk.tags),
                groups.column(chunk),
                *chunk.cells,
                strict=True,
            ),
        )


def _same_ask(chunk: Chunk) -> tuple[str, str, tuple[str, ...]] | None:
    """The location, action and tags of every row of `chunk`, if one for all; else None."""
    locations, actions, tags = chunk.location_ids, chunk.actions, chunk.tags
    if not (chunk.rows and _uniform(locations) and _uniform(actions) and _uniform(tags)):
        return None
    if "\0" in "".join((locations[0], actions[0], *tags[0])):
        return None  # SQL text would end at the NUL: such values are bound
    return locations[0], actions[0], tags[0]


def _sql_text(value: str | tuple[str, ...]) -> str:
    """A text (or a tag list, as its JSON) as an SQL string literal."""
    text = value if isinstance(value, str) else str(dump(value))
    return "'" + text.replace("'", "''") + "'"


def _uniform(values: Sequence[object]) -> bool:
    """All values equal (a list's `count` compares by identity first, at C speed)."""
    return values.count(values[0]) == len(values)


def row_count(db: sqlite3.Connection) -> int:
    """The number of input rows: the report's lines (kept by `load`; counted for a state file
    written before it kept them)."""
    kept = get_meta(db, "rows")
    if kept is not None:
        return int(kept)
    return int(db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])


def row_at(db: sqlite3.Connection, index: int) -> int | None:
    """The number of the input row at `index` (0-based) in row order (a shard's rows keep their
    input numbers, so numbers have gaps); None past the last row."""
    found = db.execute("SELECT row FROM rows ORDER BY row LIMIT 1 OFFSET ?", (index,)).fetchone()
    return None if found is None else int(found[0])
