"""The report's result fields, in SPEC order, and where each sits in a report row.

Every module that reads or builds a report row by position (the ledger's report query, the
writers, the report stage's tally, merging) takes the positions from here, never a number of
its own: adding a field then moves every reader with it. The input's own cells follow the
result fields (from `INPUT` on).
"""

from __future__ import annotations

__all__ = [
    "ACTION",
    "ATTEMPTS",
    "CONTACT_ID",
    "HTTP_STATUS",
    "INPUT",
    "LINE",
    "LIST_FIELDS",
    "LOCATION_ID",
    "MESSAGE",
    "NUMBER_FIELDS",
    "OLD_TAGS",
    "RESOLVED_BY",
    "RESULT_FIELDS",
    "ROW",
    "STATUS",
    "TAGS",
    "TAGS_ADDED",
    "TAGS_REMOVED",
    "UNCERTAIN",
    "at",
]

RESULT_FIELDS: tuple[str, ...] = (
    "row",
    "line",
    "contact_id",
    "location_id",
    "action",
    "tags",
    "status",
    "message",
    "old_tags",
    "tags_added",
    "tags_removed",
    "http_status",
    "attempts",
    "uncertain",
    "resolved_by",
)


def at(name: str) -> int:
    """The position of the result field `name` in a report row."""
    return RESULT_FIELDS.index(name)


ROW = at("row")
LINE = at("line")
CONTACT_ID = at("contact_id")
LOCATION_ID = at("location_id")
ACTION = at("action")
TAGS = at("tags")
STATUS = at("status")
MESSAGE = at("message")
OLD_TAGS = at("old_tags")
TAGS_ADDED = at("tags_added")
TAGS_REMOVED = at("tags_removed")
HTTP_STATUS = at("http_status")
ATTEMPTS = at("attempts")
# `true`/`false` text in a report row (CSV and XLSX cells); a JSON boolean in JSONL.
UNCERTAIN = at("uncertain")
# How the row's contact id was found: `id` (the id column), `email` (Step 16), or empty.
RESOLVED_BY = at("resolved_by")
# Where the input's own cells start.
INPUT = len(RESULT_FIELDS)

# The fields holding a list of tags (compact JSON text in a row, an array in JSONL), and those
# holding a number (a number cell in XLSX).
LIST_FIELDS = (TAGS, OLD_TAGS, TAGS_ADDED, TAGS_REMOVED)
NUMBER_FIELDS = (ROW, LINE, HTTP_STATUS, ATTEMPTS)
