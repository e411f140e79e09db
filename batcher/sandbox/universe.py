"""The contact universe: which contacts exist where, which are deleted, and their tags.

Fixture format (JSON, UTF-8)::

    {
      "locations": {
        "sandboxLocation00001": {"qFSqySFkVvNzOSqgGqFi": ["tag-1", "tag-2"], "...": []},
        "otherLocation0000002": {"3ualbhnV7j3n3a9r2moD": []}
      },
      "deleted": ["aDeletedContact00001"],
      "tokens": {"token-of-other-location": ["otherLocation0000002"]},
      "emails": {"qFSqySFkVvNzOSqgGqFi": "ada@example.com"}
    }

`locations` maps a location id to its contacts, each to its tags in stored order; `deleted` lists
contacts that answer "contact is deleted"; `tokens` (optional) binds more sub-account tokens to
the locations each may reach, as `[sandbox.tokens]` does. Every id must be 20 letters/digits, and
appear once. `emails` (optional, Step 16) gives contacts of `locations` an address for
`POST /contacts/search`; two contacts may share one (an account that allows duplicates), in any
case.

An id absent from the fixture that is well-formed is, on first touch, created as a tagless contact
of the requesting location (unless `strict_unknown`): a client can push any number of generated
ids through the sandbox without a fixture.

Tags are stored as the service stores them: trimmed and lower-cased (HighLevel's import help:
"UPPERCASE ... will be lowercased"; API-NOTES.md, "Tags and what a change sets off"), so `VIP`,
`vip` and `Vip ` are one tag, in a request, in the fixture and in `oldTags`/`tagsAdded`.

Memory: one dict entry per touched contact, whose value is an interned tuple of tags shared by every
contact with the same tags. Tuples rather than frozensets so that `oldTags` keeps the stored order
and answers are byte-for-byte reproducible (frozenset order changes with PYTHONHASHSEED).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Tags = tuple[str, ...]
Entry = dict[str, object]

# Ids seen in the spec and in the wild are 20 characters of [A-Za-z0-9] (API-NOTES.md).
_FIREBASE_ID = re.compile(r"[A-Za-z0-9]{20}")

# The per-contact messages of the seed page's example (bulk-tags-endpoint.seed.txt).
UPDATED = "Tags updated"
INVALID_ID = "contact id is not a valid firebase id"
DELETED = "contact is deleted"
FOREIGN = "contact does not belong to account"


@dataclass(frozen=True, slots=True)
class TagUpdate:
    """One validated request body, with the path's operation."""

    type: Literal["add", "remove"]
    location_id: str
    contacts: list[str]
    tags: list[str]
    remove_all_tags: bool


def stored(tag: str) -> str:
    """A tag as the service keeps it: trimmed, lower-cased (JavaScript's toLowerCase, which
    Python's `lower` matches; not `casefold`, which would also turn "ß" into "ss")."""
    return tag.strip().lower()


def is_valid_id(contact_id: str) -> bool:
    return _FIREBASE_ID.fullmatch(contact_id) is not None


class Universe:
    """Contact state, and the tag arithmetic of one bulk update."""

    def __init__(self, *, strict_unknown: bool = False) -> None:
        self.strict_unknown = strict_unknown
        self._by_location: dict[str, dict[str, Tags]] = {}
        self._deleted: set[str] = set()
        self._interned: dict[Tags, Tags] = {(): ()}
        # The fixture's `tokens`: more sub-account tokens and the locations each may reach.
        self.tokens: dict[str, frozenset[str]] = {}
        # Step 16: contact id -> its email address as stored, and each address (lower-cased)
        # -> its contacts, for searches.
        self.emails: dict[str, str] = {}
        self._by_email: dict[str, list[str]] = {}

    @classmethod
    def from_fixture(cls, path: Path, *, strict_unknown: bool = False) -> Universe:
        """Load the JSON fixture described in the module docstring; ValueError names the fault."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read fixture {path}: {exc}") from None
        universe = cls(strict_unknown=strict_unknown)
        try:
            keys = {"locations", "deleted", "tokens", "emails"}
            if not isinstance(document, dict) or set(document) - keys:
                raise ValueError(
                    "the top level must be an object with 'locations', 'deleted', 'tokens', "
                    "'emails'"
                )
            tokens = document.get("tokens", {})
            if not isinstance(tokens, dict) or not all(
                isinstance(t, str)
                and t
                and isinstance(v, list)
                and all(isinstance(x, str) for x in v)
                for t, v in tokens.items()
            ):
                raise ValueError("'tokens' must map tokens to lists of location ids")
            universe.tokens = {token: frozenset(places) for token, places in tokens.items()}
            deleted = document.get("deleted", [])
            if not isinstance(deleted, list) or not all(isinstance(c, str) for c in deleted):
                raise ValueError("'deleted' must be a list of contact ids")
            for contact_id in deleted:
                universe.delete_contact(contact_id)
            locations = document.get("locations", {})
            if not isinstance(locations, dict):
                raise ValueError("'locations' must map location ids to objects")
            for location_id, contacts in locations.items():
                if not isinstance(contacts, dict):
                    raise ValueError(f"locations.{location_id} must map contact ids to tag lists")
                for contact_id, tags in contacts.items():
                    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                        raise ValueError(f"locations.{location_id}.{contact_id} must be a list")
                    universe.add_contact(location_id, contact_id, tags)
            emails = document.get("emails", {})
            if not isinstance(emails, dict) or not all(
                isinstance(e, str) and universe.location_of(c) is not None
                for c, e in emails.items()
            ):
                raise ValueError("'emails' must map contacts of 'locations' to addresses")
            for contact_id, email in emails.items():
                universe.set_email(contact_id, email)
        except ValueError as exc:
            raise ValueError(f"fixture {path}: {exc}") from None
        return universe

    def add_contact(self, location_id: str, contact_id: str, tags: Iterable[str] = ()) -> None:
        """Create a contact; an id that is malformed, live or deleted raises ValueError."""
        if not is_valid_id(contact_id):
            raise ValueError(f"contact id {contact_id!r} is not 20 letters/digits")
        if contact_id in self._deleted or self.location_of(contact_id) is not None:
            raise ValueError(f"contact {contact_id} is given twice")
        contacts = self._by_location.setdefault(location_id, {})
        contacts[contact_id] = self._intern(tuple(dict.fromkeys(map(stored, tags))))

    def delete_contact(self, contact_id: str) -> None:
        """Mark a contact deleted (wherever it was): it then answers "contact is deleted"."""
        if not is_valid_id(contact_id):
            raise ValueError(f"contact id {contact_id!r} is not 20 letters/digits")
        for contacts in self._by_location.values():
            contacts.pop(contact_id, None)
        self._deleted.add(contact_id)

    def tags(self, contact_id: str) -> Tags | None:
        """The contact's tags, or None if it is deleted or was never created/touched."""
        for contacts in self._by_location.values():
            if (tags := contacts.get(contact_id)) is not None:
                return tags
        return None

    def location_of(self, contact_id: str) -> str | None:
        return next((loc for loc, c in self._by_location.items() if contact_id in c), None)

    def set_email(self, contact_id: str, email: str) -> None:
        """Give a contact an address (several contacts may share one)."""
        self.emails[contact_id] = email
        self._by_email.setdefault(email.lower(), []).append(contact_id)

    def search(
        self, location_id: str, groups: Iterable[frozenset[str]], after: str | None, limit: int
    ) -> tuple[list[Entry], int]:
        """The location's contacts whose address (ignoring case) is in every one of `groups`,
        in id order, after the contact `after`, at most `limit`; and how many there are.
        Without a group, every contact of the location with an address."""
        wanted = list(groups)
        own = self._by_location.get(location_id, {})
        candidates: Iterable[str] = self.emails
        if wanted:
            smallest = min(wanted, key=len)
            candidates = [c for email in smallest for c in self._by_email.get(email, ())]
        matching = sorted(
            contact_id
            for contact_id in candidates
            if contact_id in own
            and all(self.emails[contact_id].lower() in group for group in wanted)
        )
        total = len(matching)
        if after is not None:
            matching = [contact_id for contact_id in matching if contact_id > after]
        return [
            {
                "id": contact_id,
                "email": self.emails[contact_id],
                "phone": None,
                "locationId": location_id,
                "searchAfter": [contact_id],
            }
            for contact_id in matching[:limit]
        ], total

    def is_deleted(self, contact_id: str) -> bool:
        return contact_id in self._deleted

    def __len__(self) -> int:
        """Number of live contacts created so far."""
        return sum(len(contacts) for contacts in self._by_location.values())

    def apply(self, update: TagUpdate, changes: Counter[str]) -> tuple[list[Entry], int]:
        """Apply one request: its per-contact entries in request order, and the error count.

        A duplicate id gets an entry each time, the second seeing the first one's effect.
        `changes` counts, per contact, the updates that actually changed its tags.
        The hot path per contact is a dict lookup plus a lookup in a per-request cache of
        transitions (most contacts share a few tag sets), so 500-id requests stay cheap.
        """
        own = self._by_location.setdefault(update.location_id, {})
        steps: dict[Tags, tuple[Tags, list[str], list[str]]] = {}
        entries: list[Entry] = []
        errors = 0
        for contact_id in update.contacts:
            old = own.get(contact_id)
            if old is None:
                problem = self._problem(contact_id)
                if problem is not None:
                    entries.append({"contactId": contact_id, "message": problem, "type": "error"})
                    errors += 1
                    continue
                old = own[contact_id] = ()
            step = steps.get(old)
            if step is None:
                step = steps[old] = self._step(old, update)
            new, added, removed = step
            if new is not old:
                own[contact_id] = new
                changes[contact_id] += 1
            entries.append(
                {
                    "contactId": contact_id,
                    "message": UPDATED,
                    "type": "success",
                    "oldTags": old,
                    "tagsAdded": added,
                    "tagsRemoved": removed,
                }
            )
        return entries, errors

    def _problem(self, contact_id: str) -> str | None:
        """Why an id absent from the request's location fails, or None to create it there."""
        if not is_valid_id(contact_id):
            return INVALID_ID
        if contact_id in self._deleted:
            return DELETED
        if self.strict_unknown or self.location_of(contact_id) is not None:
            return FOREIGN
        return None

    def _step(self, old: Tags, update: TagUpdate) -> tuple[Tags, list[str], list[str]]:
        """New tags, tags added, tags removed: only real changes are reported (tags as stored)."""
        wanted = dict.fromkeys(map(stored, update.tags))
        if update.type == "add":
            added = [tag for tag in wanted if tag not in old]
            return self._intern(old + tuple(added)), added, []
        if update.remove_all_tags:
            return (), [], list(old)
        removed = [tag for tag in wanted if tag in old]
        return self._intern(tuple(t for t in old if t not in wanted)), [], removed

    def _intern(self, tags: Tags) -> Tags:
        return self._interned.setdefault(tags, tags)
