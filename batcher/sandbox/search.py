"""`POST /contacts/search` as documented outside the official spec (LOOKUP-NOTES.md, section 2;
UNVERIFIED against the live service): what a client can rehearse against.

Body: `locationId` (required), `pageLimit` (required, 1 to 500), `filters` (a list; each is
`{field, operator, value}` or `{"group": "OR", "filters": [...]}`; top-level filters are ANDed),
`searchAfter` (the cursor of the previous page's last contact). A missing `locationId` or
`pageLimit` is a 422, as reported live (issue #31). Only `field: "email"` with `operator: "eq"`
is answered (a value of at most 75 characters); any other field or operator is a 400
"Invalid field" / "Invalid operator", as issue #289 reports for an unsupported field. An email
`eq` matches the contact's address ignoring case (what the notes call an exact match; the
case rule is this sandbox's assumption). Answer: `{"contacts": [{"id", "email", "phone",
"locationId", "searchAfter"}], "total": N, "traceId": ...}`, contacts in id order.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_PAGE", "Search", "parse_search"]

MAX_PAGE = 500
MAX_VALUE = 75


@dataclass(frozen=True, slots=True)
class Search:
    """One validated search: the location, the page size, the addresses any of which a
    contact's email must be (each group of ORed filters one set, the sets ANDed), the cursor."""

    location_id: str
    page_limit: int
    groups: tuple[frozenset[str], ...]
    after: str | None


def parse_search(body: object) -> Search | tuple[int, str | list[str]]:
    """The validated search, or (400 or 422, the message)."""
    if not isinstance(body, dict):
        return 422, ["body must be a JSON object"]
    problems = []
    location = body.get("locationId")
    if not isinstance(location, str) or not location:
        problems.append("locationId must be a string")
    limit = body.get("pageLimit")
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        problems.append(f"pageLimit must be an integer between 1 and {MAX_PAGE}")
    if problems:
        return 422, problems
    assert isinstance(location, str)
    assert isinstance(limit, int)
    filters = body.get("filters", [])
    if not isinstance(filters, list):
        return 422, ["filters must be an array"]
    groups = []
    for item in filters:
        found = _group(item) if isinstance(item, dict) and "group" in item else _one(item)
        if isinstance(found, str):
            return 400, found
        groups.append(found)
    after = body.get("searchAfter")
    cursor = None
    if after is not None:
        if not (isinstance(after, list) and len(after) == 1 and isinstance(after[0], str)):
            return 422, ["searchAfter must be the searchAfter of a contact of the previous page"]
        cursor = after[0]
    return Search(location, limit, tuple(groups), cursor)


def _group(item: dict[str, object]) -> frozenset[str] | str:
    if item.get("group") != "OR" or not isinstance(item.get("filters"), list):
        return 'a group must be {"group": "OR", "filters": [...]}'
    found: set[str] = set()
    filters = item["filters"]
    assert isinstance(filters, list)
    for inner in filters:
        one = _one(inner)
        if isinstance(one, str):
            return one
        found |= one
    return frozenset(found)


def _one(item: object) -> frozenset[str] | str:
    if not isinstance(item, dict):
        return "a filter must be an object"
    if item.get("field") != "email":
        return f"Invalid field: {item.get('field')!r}"
    if item.get("operator") != "eq":
        return f"Invalid operator: {item.get('operator')!r}"
    value = item.get("value")
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        return f"value must be a string of at most {MAX_VALUE} characters"
    return frozenset((value.lower(),))
