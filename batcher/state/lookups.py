"""Rows given by email (Step 16): the addresses still to look up, each answer kept as it comes,
and, once every address is answered, the rows given their contacts.

Loading writes such a row without a contact, group or round (pending, never sent) and its
address in `lookups`. Each search's answers go into `resolutions` in one transaction as they
arrive, so a run killed halfway searches again only for the addresses not yet answered. Once
every address has its answer, `apply` settles the rows in one transaction: one contact is the
row's contact (round 1, its group), none is `not_found`, several `ambiguous` (never sent:
batcher never guesses); then the resolved contacts' rows are put in input order again, as
loading does for the rows given by id (`batcher.state.ordering`), so that a contact named by id
on one row and by email on another is one contact: a repeat is a `duplicate`, a change a later
round.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from batcher.state.db import script, transaction
from batcher.state.ordering import ORDER_CONTACTS
from batcher.state.schema import get_meta, set_meta

__all__ = ["Match", "Resolution", "apply", "record", "summary", "unresolved"]

# How many ids an `ambiguous` row's message names (the rest are counted).
_NAMED_IDS = 3
# Applied: every row given by email has been settled (`meta.lookups`).
_APPLIED = "applied"

_UNRESOLVED = """
SELECT DISTINCT l.location_id, l.email FROM lookups AS l
LEFT JOIN resolutions AS s USING (location_id, email)
WHERE s.email IS NULL
ORDER BY l.location_id, l.email
"""
_RESOLVED = """
UPDATE rows SET contact_id = json_extract(s.contact_ids, '$[0]'), group_id = l.group_id,
    round = 1, wait_row = NULL
FROM lookups AS l JOIN resolutions AS s USING (location_id, email)
WHERE rows.row = l.row AND json_array_length(s.contact_ids) = 1
"""
_NOT_FOUND = """
UPDATE rows SET pre_status = 'not_found',
    pre_message = 'not sent: no contact of location ' || l.location_id || ' has the email "'
        || l.email || '"; check the address, or give the contact id'
FROM lookups AS l JOIN resolutions AS s USING (location_id, email)
WHERE rows.row = l.row AND json_array_length(s.contact_ids) = 0
"""
_AMBIGUOUS = """
UPDATE rows SET pre_status = 'ambiguous', pre_message = :message
WHERE row IN (SELECT row FROM lookups WHERE location_id = :location_id AND email = :email)
"""
# The contacts of the rows just resolved, with every valid row of theirs set back to what
# loading gives a row (round 1, no wait, a duplicate no longer), to be ordered afresh.
_RESET = """
CREATE TEMP TABLE maybe (row INTEGER PRIMARY KEY);
INSERT INTO temp.maybe
SELECT l.row FROM lookups AS l CROSS JOIN rows AS r ON r.row = l.row WHERE r.group_id IS NOT NULL;

CREATE TEMP TABLE multi (location_id, contact_id, PRIMARY KEY (location_id, contact_id))
WITHOUT ROWID;
INSERT OR IGNORE INTO multi
SELECT r.location_id, r.contact_id FROM temp.maybe CROSS JOIN rows AS r ON r.row = maybe.row;

UPDATE rows SET round = 1, wait_row = NULL, pre_status = NULL, pre_message = ''
WHERE group_id IS NOT NULL AND (pre_status IS NULL OR pre_status = 'duplicate')
  AND (location_id, contact_id) IN (SELECT location_id, contact_id FROM temp.multi);
"""


def unresolved(db: sqlite3.Connection) -> dict[str, list[str]]:
    """The addresses with no answer yet, by location (each address once: an address repeated
    in the file is searched for once)."""
    found: dict[str, list[str]] = {}
    for location_id, email in db.execute(_UNRESOLVED):
        found.setdefault(location_id, []).append(email)
    return found


def record(db: sqlite3.Connection, location_id: str, answers: Mapping[str, Sequence[str]]) -> None:
    """Keep one search's answers: each address's matching contacts (none, one or several)."""
    with transaction(db):
        db.executemany(
            "INSERT OR REPLACE INTO resolutions VALUES (?, ?, ?)",
            [(location_id, email, json.dumps(list(ids))) for email, ids in answers.items()],
        )


def applied(db: sqlite3.Connection) -> bool:
    """Whether the rows given by email have been settled (or there were none)."""
    return get_meta(db, "lookups") == _APPLIED


def apply(db: sqlite3.Connection) -> None:
    """Settle every row given by email from its address's answer, then order the resolved
    contacts' rows (see the module docstring). Every address must have its answer."""
    if applied(db):
        return
    if not db.execute("SELECT EXISTS (SELECT 1 FROM lookups)").fetchone()[0]:
        return  # nothing given by email: no scan of the rows
    if unresolved(db):
        raise ValueError("rows given by email are settled only once every address is answered")
    with transaction(db):
        db.execute(_RESOLVED)
        db.execute(_NOT_FOUND)
        ambiguous = [
            {"location_id": location_id, "email": email, "message": _ambiguous(email, ids)}
            for location_id, email, ids in db.execute(
                "SELECT location_id, email, contact_ids FROM resolutions "
                "WHERE json_array_length(contact_ids) > 1"
            ).fetchall()
        ]
        db.executemany(_AMBIGUOUS, ambiguous)
        db.execute("DROP TABLE IF EXISTS temp.maybe")
        db.execute("DROP TABLE IF EXISTS temp.multi")
        script(db, _RESET)
        # Every row of those contacts is read: resolving is rare, and a full scan of a million
        # rows is a third of a second.
        script(db, ORDER_CONTACTS.format(source="rows AS r NOT INDEXED"))
        set_meta(db, "lookups", _APPLIED)


def _ambiguous(email: str, ids_json: str) -> str:
    ids: list[str] = json.loads(ids_json)
    named = ", ".join(ids[:_NAMED_IDS])
    more = f" and {len(ids) - _NAMED_IDS} more" if len(ids) > _NAMED_IDS else ""
    return (
        f'not sent: {len(ids)} contacts have the email "{email}" ({named}{more}); batcher never '
        "guesses: give the contact id of the one you mean"
    )


@dataclass(frozen=True)
class Match:
    """One address and the contact it resolved to: what `plan` shows, to check a few live."""

    location_id: str
    email: str
    contact_id: str


@dataclass(frozen=True)
class Resolution:
    """The rows given by email, by location: resolved, not found, ambiguous, not yet answered
    (rows, not addresses); and the first few matches."""

    matched: dict[str, int]
    not_found: dict[str, int]
    ambiguous: dict[str, int]
    unanswered: dict[str, int]
    first: tuple[Match, ...]

    @property
    def rows(self) -> int:
        return sum(
            sum(counts.values())
            for counts in (self.matched, self.not_found, self.ambiguous, self.unanswered)
        )


_SUMMARY = """
SELECT l.location_id,
       CASE WHEN s.email IS NULL THEN 'unanswered'
            WHEN json_array_length(s.contact_ids) = 0 THEN 'not_found'
            WHEN json_array_length(s.contact_ids) = 1 THEN 'matched'
            ELSE 'ambiguous' END AS kind,
       COUNT(*)
FROM lookups AS l LEFT JOIN resolutions AS s USING (location_id, email)
GROUP BY 1, 2
"""


def summary(db: sqlite3.Connection, examples: int) -> Resolution:
    """The rows given by email as their answers leave them, and the first `examples` matched
    addresses in input order (each once)."""
    kinds: dict[str, dict[str, int]] = {
        "matched": {},
        "not_found": {},
        "ambiguous": {},
        "unanswered": {},
    }
    for location_id, kind, count in db.execute(_SUMMARY):
        kinds[kind][location_id] = count
    first = tuple(
        Match(location_id, email, contact_id)
        for location_id, email, contact_id in db.execute(
            "SELECT l.location_id, l.email, json_extract(s.contact_ids, '$[0]') "
            "FROM lookups AS l JOIN resolutions AS s USING (location_id, email) "
            "WHERE json_array_length(s.contact_ids) = 1 "
            "GROUP BY l.location_id, l.email ORDER BY MIN(l.row) LIMIT ?",
            (examples,),
        )
    )
    return Resolution(
        kinds["matched"], kinds["not_found"], kinds["ambiguous"], kinds["unanswered"], first
    )
