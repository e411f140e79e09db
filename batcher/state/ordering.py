"""Each contact's rows in input order (SPEC "Input"): duplicates, rounds and waits, after a load.

Only contacts (a location's contact id) with more than one valid row need any of this;
`temp.maybe` holds the rows that may repeat an earlier row's contact (see `repeats.py`: every
real repeat is there, with a few rows that merely share a hash bit), so only their contacts
(`multi`) are looked at. Their rows are found among `{source}`: every row, or the rows the
repeat filter names as possibly theirs (`temp.candidates`), which spares reading every row when
there are few such contacts. For those, in row order: a row asking exactly what the contact's
previous row asked (same group) is a duplicate of the row that carries it, and every other row
is the contact's next operation: round k+1, waiting for the row of round k. (A contact named
once that is in `multi` by chance gets round 1 and no wait: no change.)
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from batcher.state.db import script

if TYPE_CHECKING:
    from batcher.state.repeats import RepeatFinder

__all__ = ["order_contacts"]

FIND_MULTI = """
CREATE TEMP TABLE multi (location_id, contact_id, PRIMARY KEY (location_id, contact_id))
WITHOUT ROWID;

INSERT OR IGNORE INTO multi
SELECT m.location_id, m.contact_id
FROM temp.maybe CROSS JOIN rows AS m ON m.row = maybe.row
WHERE m.group_id IS NOT NULL;
"""
ALL_ROWS = "rows AS r NOT INDEXED"
CANDIDATE_ROWS = "temp.candidates AS c CROSS JOIN rows AS r ON r.row = c.row"
# A duplicate's message names the row that carries it: the contact's latest row up to it that
# is no duplicate, carried along by a running MAX over the contact's rows (one pass; looking
# back from each duplicate for it was quadratic in a contact's rows: a file naming one contact
# a million times took minutes).
ORDER_CONTACTS = """
CREATE TEMP TABLE touches AS
SELECT r.row, r.location_id, r.contact_id, r.group_id,
       r.group_id IS LAG(r.group_id) OVER contact AS repeats
FROM {source}
JOIN temp.multi USING (location_id, contact_id)
WHERE r.group_id IS NOT NULL
WINDOW contact AS (PARTITION BY r.location_id, r.contact_id ORDER BY r.row);

CREATE INDEX temp.touches_by_contact ON touches (location_id, contact_id, row);

CREATE TEMP TABLE sequence AS
SELECT row, ROW_NUMBER() OVER contact AS round, LAG(row) OVER contact AS wait_row
FROM touches WHERE NOT repeats
WINDOW contact AS (PARTITION BY location_id, contact_id ORDER BY row);

CREATE TEMP TABLE carried AS
SELECT row, carrier FROM (
    SELECT row, repeats,
           MAX(CASE WHEN repeats THEN NULL ELSE row END) OVER contact AS carrier
    FROM touches
    WINDOW contact AS (PARTITION BY location_id, contact_id ORDER BY row)
) WHERE repeats;

UPDATE rows SET round = sequence.round, wait_row = sequence.wait_row
FROM sequence WHERE rows.row = sequence.row;

UPDATE rows SET
    round = NULL,
    pre_status = 'duplicate',
    pre_message = 'duplicate of row ' || carried.carrier
FROM carried WHERE rows.row = carried.row;

DROP TABLE touches;
DROP TABLE sequence;
DROP TABLE carried;
DROP TABLE multi;
DROP TABLE maybe;
DROP TABLE IF EXISTS temp.candidates;
"""
# Contacts that may repeat, at most, for their rows to be looked for as candidates (a few rows
# each, kept in a list) rather than by reading every row.
_FEW_CONTACTS = 20_000


def order_contacts(db: sqlite3.Connection, repeats: RepeatFinder) -> None:
    """Run ORDER_CONTACTS, on the rows of the contacts that may repeat."""
    script(db, FIND_MULTI)
    source = ALL_ROWS
    if db.execute("SELECT COUNT(*) FROM temp.multi").fetchone()[0] <= _FEW_CONTACTS:
        contacts = [contact for (contact,) in db.execute("SELECT contact_id FROM temp.multi")]
        db.execute("DROP TABLE IF EXISTS temp.candidates")  # left by a load that failed
        db.execute("CREATE TEMP TABLE candidates (row INTEGER PRIMARY KEY)")
        db.executemany(
            "INSERT OR IGNORE INTO temp.candidates VALUES (?)",
            zip(repeats.earlier(contacts), strict=True),
        )
        source = CANDIDATE_ROWS
    script(db, ORDER_CONTACTS.format(source=source))
