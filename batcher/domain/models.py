"""The values that flow through batcher: frozen, typed, free of I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, TypeVar


class Action(StrEnum):
    ADD = "add"
    REMOVE = "remove"


class Status(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    PENDING = "pending"
    # A row given by email (no contact id) that no contact, or several contacts, answered to
    # (Step 16): never sent, as batcher never guesses which contact was meant.
    NOT_FOUND = "not_found"
    AMBIGUOUS = "ambiguous"
    # Only in an undo's report: a row left alone because what the run did to its contact is
    # uncertain (the message says what to do), and a row of the run that changed nothing.
    SKIPPED = "skipped"
    NOTHING_TO_UNDO = "nothing_to_undo"


# The statuses of a run's report; an undo's report may also hold UNDO_STATUSES.
RUN_STATUSES = (
    Status.SUCCESS,
    Status.ERROR,
    Status.INVALID,
    Status.DUPLICATE,
    Status.FAILED,
    Status.PENDING,
    Status.NOT_FOUND,
    Status.AMBIGUOUS,
)
UNDO_STATUSES = (Status.SKIPPED, Status.NOTHING_TO_UNDO)


# The API takes at most this many contacts and tags per request (OpenAPI maxItems).
MAX_CONTACTS_PER_REQUEST = 500
MAX_TAGS_PER_REQUEST = 50
# The most columns an input may have: every column is kept for the report in the run's rows
# table, and SQLite's default limit is 2,000 columns per table, 11 of them the table's own.
MAX_INPUT_COLUMNS = 1_900


@dataclass(frozen=True, slots=True)
class Row:
    """One input data row, normalised by loading.

    `status` is INVALID (with `message` saying why) when the row can never be sent, or the
    status its producer settled it with before sending (see `Chunk.settled`), else None;
    duplicates are found later, across the whole input, by the ledger.
    `extra` holds all of the input's cells for the row as text, in the order of its header.
    `line` is where a person finds the row: its first physical line in a CSV file (the header's
    line counted, 1-based), or its row number in an Excel sheet.
    """

    row: int
    contact_id: str
    location_id: str
    action: str
    tags: tuple[str, ...]
    remove_all: bool
    status: Status | None = None
    message: str = ""
    extra: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """Successive input rows, normalised by loading, as columns (the shape the ledger stores).

    Lists are aligned: `rows[i]` is the data row number of the i-th row, `cells[c][i]` its cell
    in the input's c-th column. `invalid` maps the index of a row that can never be sent to why
    (loading's verdict). `settled` maps the index of a row its producer settles before sending
    to its status and why (an undo's `skipped` and `nothing_to_undo` rows); it wins over
    `invalid`. Iterating gives the rows as `Row`s (for tests and small callers; the ledger uses
    the columns).
    """

    rows: list[int]
    lines: list[int]
    contact_ids: list[str]
    location_ids: list[str]
    actions: list[str]
    tags: list[tuple[str, ...]]
    remove_all: bool
    invalid: dict[int, str]
    cells: list[list[str]]
    settled: dict[int, tuple[Status, str]] = field(default_factory=dict)
    # Rows without a contact id to be resolved by email (Step 16): index -> the address,
    # normalised (`batcher.loading`); their `contact_ids` entry is empty until resolved.
    emails: dict[int, str] = field(default_factory=dict)

    def before_sending(self) -> dict[int, tuple[Status, str]]:
        """Every row settled before sending (invalid, or as its producer says), by index."""
        if not self.settled:
            return {i: (Status.INVALID, why) for i, why in self.invalid.items()}
        return {**{i: (Status.INVALID, why) for i, why in self.invalid.items()}, **self.settled}

    @classmethod
    def of_rows(cls, rows: Sequence[Row], width: int) -> Chunk:
        """The chunk holding `rows` (each with `width` input cells): for tests and callers
        that build rows one by one."""
        return cls(
            [r.row for r in rows],
            [r.line or r.row for r in rows],
            [r.contact_id for r in rows],
            [r.location_id for r in rows],
            [r.action for r in rows],
            [r.tags for r in rows],
            any(r.remove_all for r in rows),
            {i: r.message for i, r in enumerate(rows) if r.status is Status.INVALID},
            [[r.extra[c] for r in rows] for c in range(width)],
            {
                i: (r.status, r.message)
                for i, r in enumerate(rows)
                if r.status is not None and r.status is not Status.INVALID
            },
        )

    def take(self, indices: Sequence[int]) -> Chunk:
        """The chunk of the rows at `indices` (ascending), their numbers kept."""
        where = {old: new for new, old in enumerate(indices)}
        return Chunk(
            [self.rows[i] for i in indices],
            [self.lines[i] for i in indices],
            [self.contact_ids[i] for i in indices],
            [self.location_ids[i] for i in indices],
            [self.actions[i] for i in indices],
            [self.tags[i] for i in indices],
            self.remove_all,
            {where[i]: message for i, message in self.invalid.items() if i in where},
            [[column[i] for i in indices] for column in self.cells],
            {where[i]: settled for i, settled in self.settled.items() if i in where},
            {where[i]: email for i, email in self.emails.items() if i in where},
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        records = zip(*self.cells, strict=True) if self.cells else ((),) * len(self.rows)
        settled = self.before_sending()
        for i, extra in enumerate(records):
            status, message = settled.get(i, (None, ""))
            yield Row(
                self.rows[i],
                self.contact_ids[i],
                self.location_ids[i],
                self.actions[i],
                self.tags[i],
                self.remove_all,
                status,
                message,
                tuple(extra),
                self.lines[i],
            )


@dataclass(frozen=True, slots=True)
class Group:
    """Rows that can share requests: same location, action, tag set and remove-all flag."""

    location_id: str
    action: Action
    tags: tuple[str, ...]
    remove_all: bool


@dataclass(frozen=True, slots=True)
class Batch:
    """One request's worth: at most 500 contacts and at most 50 tags.

    `part` numbers the 50-tag slices of a group whose tag set is longer than 50.
    `rows[i]` is the input row number of `contact_ids[i]`.
    """

    location_id: str
    action: Action
    tags: tuple[str, ...]
    remove_all: bool
    part: int
    rows: tuple[int, ...]
    contact_ids: tuple[str, ...]


class ContactOutcome(NamedTuple):
    """What became of one contact of a batch: the API's per-contact answer, or why none came.

    A NamedTuple, not a frozen dataclass: one is made for each contact the API answers in its
    own way (a million a run when answers name each contact's old tags), and a frozen
    dataclass's `__init__` (an `object.__setattr__` per field) took 1.9 µs to the tuple's 0.8.
    """

    status: Status
    message: str
    old_tags: tuple[str, ...] | None = None
    tags_added: tuple[str, ...] | None = None
    tags_removed: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """The X-RateLimit-* headers of one answer; None where a header was absent or unreadable."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily_limit: int | None = None
    daily_remaining: int | None = None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """The settled result of one batch: one outcome per contact, aligned with `batch.rows`.

    `answered` is False when no usable answer came (the outcomes are then `failed` ones made by
    batcher, not the API's). `exposed` is True when an attempt of the request may have reached
    the API without an answer (a timeout, a connection lost after sending, a 5xx, an unreadable
    201): what that attempt changed is not in the outcomes (see `batcher.domain.uncertain`).
    `reason` says why the outcomes are `failed`, without the advice their message gives;
    `permanent` that sending the request again cannot help (`ApiError.permanent`: the API
    refused it), so its `failed` rows are to be fixed in the input, not retried.
    """

    batch: Batch
    outcomes: tuple[ContactOutcome, ...]
    http_status: int | None
    attempts: int
    answered: bool = True
    exposed: bool = False
    reason: str = ""
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One line of the report: what was asked for one input row and what became of it.

    `extra` holds the input's own cells, in the order of the input's header; `line` is the row's
    line in the file (or row in the sheet), as in `Row.line`. `uncertain`: an attempt to send
    the row may have changed its contact without an answer (see `batcher.domain.uncertain`).
    """

    row: int
    contact_id: str
    location_id: str
    action: str
    tags: tuple[str, ...]
    status: Status
    message: str
    old_tags: tuple[str, ...] | None = None
    tags_added: tuple[str, ...] | None = None
    tags_removed: tuple[str, ...] | None = None
    http_status: int | None = None
    attempts: int | None = None
    extra: tuple[str, ...] = ()
    line: int = 0
    uncertain: bool = False
    # `id`, `email` (found by email, Step 16), or "" (no contact id).
    resolved_by: str = ""


# A report cell: text, a number, or None (no value). Lists travel as their compact JSON text.
Cell = str | int | None


@dataclass(frozen=True)
class Inert:
    """How to make text cells inert for a spreadsheet: cells starting with one of `suspects`
    are passed to `make` (which returns them unchanged when they are harmless after all).
    `make` puts an apostrophe before a cell starting with one of `triggers` (a subset of
    `suspects`) whatever follows, so a reader may do that itself without calling it."""

    suspects: frozenset[str]
    make: Callable[[str], str]
    triggers: frozenset[str] = frozenset()


T = TypeVar("T")


def by_identity(items: Sequence[T]) -> dict[int, T]:
    """The distinct objects of `items`, by identity, under their `id`.

    Loading shares one tags tuple among the rows asking the same tags, and the client one outcome
    among the contacts answered alike: work done per distinct object is done once, and looking
    objects up by `id` hashes nothing of their contents.
    """
    return dict(zip(map(id, items), items, strict=True))
