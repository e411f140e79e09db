"""The drip's memory (`batcher.domain.drip`): when each batch of a run with a drip completed,
and how many contacts it carried, so that a rerun within the period does not exceed the budget;
and the run's send window, for `batcher status`.

The table is made on first use: only a run with a drip has one, and a state file of an older
batcher gains it when such a run continues it.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict

from batcher.state.schema import get_meta, set_meta

__all__ = ["record_sent", "sent_since", "set_window", "window"]

_TABLE = """
CREATE TABLE IF NOT EXISTS drip_sent (  -- one per request of a run with a drip
    at REAL NOT NULL,                   -- when it completed: epoch seconds, the run's clock
    location_id TEXT NOT NULL,
    contacts INTEGER NOT NULL
)
"""


def record_sent(db: sqlite3.Connection, location_id: str, at: float, contacts: int) -> None:
    db.execute(_TABLE)
    db.execute("INSERT INTO drip_sent VALUES (?, ?, ?)", (at, location_id, contacts))


def sent_since(db: sqlite3.Connection, since: float) -> dict[str, list[tuple[float, int]]]:
    """Each location's requests that completed after `since`: `(at, contacts)`, oldest first
    (read only: a plan's state may be read-only)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'drip_sent'").fetchone() is None:
        return {}
    found: defaultdict[str, list[tuple[float, int]]] = defaultdict(list)
    for at, location_id, contacts in db.execute(
        "SELECT at, location_id, contacts FROM drip_sent WHERE at > ? ORDER BY at", (since,)
    ):
        found[location_id].append((at, contacts))
    return dict(found)


def set_window(db: sqlite3.Connection, text: str) -> None:
    set_meta(db, "window", text)


def window(db: sqlite3.Connection) -> str:
    """The send window of the run's latest invocation ("" without one)."""
    return get_meta(db, "window") or ""
