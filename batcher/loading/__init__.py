"""Read a contact file (CSV, gzip CSV or Excel) in chunks and turn each data row into a `Row`.

This package is the only place that imports pandas (`_csv`). `open_input` looks at the
file once (encoding, delimiter, header, one data row) and fails early with an
`InputError`/`UsageError` naming the file and the fix; `InputTable.chunks` then reads the whole
file, `chunk_rows` rows at a time, so memory stays bounded however long a CSV is or an Excel
sheet (streamed by `_excel` through `_xlsx`).

Rules (SPEC "Input"):
- The header is the first line (sheet row) with a non-empty cell; lines of empty cells before it
  are skipped. A file with a header and no data row opens (`InputTable.has_rows` is False: the
  caller decides); a file with no header at all is an InputError.
- Columns are matched ignoring case, spaces, `_` and `-`; blank lines (and lines whose cells are
  all empty) are not rows and take no number; `Row.line` is where a person finds the row (the
  physical line it starts on in a CSV, the row number in a sheet).
- CSV: `.tsv` is tab-separated, `InputOptions.delimiter` forces one, else it is sniffed among
  `, ; TAB |`. Encoding, unless `InputOptions.encoding` names one (then decoded strictly): a BOM
  says UTF-8 or UTF-16; a file valid as UTF-8 is UTF-8; a file holding valid multi-byte UTF-8 and
  invalid bytes is UTF-8 with stray bytes (an InputError naming the first); a file without any
  valid multi-byte sequence is cp1252 (its five undefined bytes refused).
- Ids are trimmed of whitespace and invisible characters; a number cell in an Excel id column is
  never an id (Excel keeps 15 digits). A row that can never be sent is marked INVALID with a
  message saying why, tags with a control character or longer than `max_tag_length` included.
- Contacts by email (Step 16): with an email column (`email`, `E-mail`, `Email Address`... or
  `InputOptions.email_column`), a row with no contact id (no id column, or an empty cell) but an
  address is to be resolved by email (`Chunk.emails`: the address trimmed and lower-cased, as
  searches compare it); a row with both keeps its id. An address that is not one (no single
  `@`, a space) or is longer than a search filter takes (75 characters) makes its row INVALID.
- A tags cell is split on commas, unless its trimmed text is a JSON array of strings (a batcher
  report fed back as input): then it is that list.
- A HighLevel contact export is recognised by its header: a column named `Contact Id` (case and
  spacing ignored) and at least two of `First Name`, `Last Name`, `Phone`, `Email`,
  `Business Name`, `Company Name`, `Created`, `Last Activity` (matched like any column). Its
  `Tags` column holds the contacts' current tags, so it is never the operation: `tags` or
  `remove_all` must be given (else a UsageError), and the column is only carried to the report.
- Mapping: `InputOptions.tags_column`, `action_column`, `location_column` name the column of each
  role when its name is not the usual one (matched like any column; a name not in the header is
  an InputError naming it and the header). A tags column named so is the operation even in a
  HighLevel export: the person said so. `tags`/`remove_all`, `action` and `location_id` given
  still win over the column, as over a detected one.
Duplicates are not found here: that needs the whole input and is the ledger's job.
"""

from __future__ import annotations

import dataclasses
import gc
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import TypeVar

from batcher.domain.config import ApiSettings, InputSettings
from batcher.domain.errors import InputError, NoIdColumnError, UsageError
from batcher.domain.models import Chunk
from batcher.loading._common import INVISIBLE, STRIP, Caps, Reader, Slice, is_blank, shown
from batcher.loading._excel import open_excel, sheet_rows, visible_sheets
from batcher.loading._memory import is_frame, rows_frame, write_rows
from batcher.loading._tags import parse_tags, read_tags, unique_tags
from batcher.loading._xlsx_part import Limits
from batcher.support.printable import UNSAFE

__all__ = [
    "Caps",
    "InputOptions",
    "InputTable",
    "email_problem",
    "is_frame",
    "open_input",
    "parse_tags",
    "rows_frame",
    "sheet_rows",
    "visible_sheets",
    "write_rows",
]

T = TypeVar("T")

_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_EXCEL_SUFFIXES = (".xlsx", ".xlsm")

_ACTIONS = frozenset({"add", "remove"})
_NO_LOCATION = "no location id (give --location-id, a location_id column or api.location_id)"

# Normalised header name -> role; the id names are in order of preference (SPEC "Input").
_ID_NAMES = ("contactid", "id")
_EMAIL_NAMES = ("email", "emailaddress")
# A search filter's value holds at most 75 characters (LOOKUP-NOTES.md, from a mirror of
# HighLevel's search docs: UNVERIFIED): a longer address cannot be looked up.
MAX_EMAIL_CHARS = 75
_TAGS_NAME = "tags"
_ACTION_NAME = "action"
_LOCATION_NAME = "locationid"
# A HighLevel contact export (see the module docstring): its id column, and the columns of
# which it has at least two (normalised like every column name).
_EXPORT_ID = "contact id"
_EXPORT_COLUMNS = frozenset(
    {
        "firstname",
        "lastname",
        "phone",
        "email",
        "businessname",
        "companyname",
        "created",
        "lastactivity",
    }
)
# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


# Rows read and handed on at a time. Measured on a million-row CSV, 10,000 loads faster than
# 50,000 (2.75 s against 2.97 s: the chunk's columns stay in the processor's caches) and holds
# 31 MiB less at its peak; on a million-row sheet the same time and 56 MiB less. Smaller
# chunks cost more per row (2,000: 3.0 s; 1,000: 3.3 s).
CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class InputOptions:
    """What the command line and config say about reading the input (see SPEC "Commands").

    `delimiter`: None to sniff (tab for .tsv); else one character or tab/comma/semicolon/pipe.
    `max_tag_length`: a longer tag makes its row invalid (`--tags`: a UsageError).
    `caps`: how much of a file is read before it is refused (`input.max_cell_kb`...).

    The fields the settings also say (`default_location_id` from `api.location_id`, and
    `id_pattern`, `encoding`, `max_tag_length`, `caps` from `[input]`) are None when the caller
    did not give them: a run takes them from its settings (`batcher.app.jobs.input_options`),
    and `open_input` alone takes the settings' defaults.
    """

    id_column: str | None = None
    email_column: str | None = None
    # The columns of the tags, the action and the location when not named as usual (mapping).
    tags_column: str | None = None
    action_column: str | None = None
    location_column: str | None = None
    sheet: str | None = None
    action: str | None = None
    tags: tuple[str, ...] | None = None
    remove_all: bool = False
    location_id: str | None = None
    default_location_id: str | None = None
    id_pattern: str | None = None
    encoding: str | None = None
    chunk_rows: int = CHUNK_ROWS
    delimiter: str | None = None
    max_tag_length: int | None = None
    caps: Caps | None = None

    def completed(self) -> InputOptions:
        """These options, each one not given taken from the settings' defaults."""
        defaults = InputSettings()
        return dataclasses.replace(
            self,
            default_location_id=_given(self.default_location_id, ApiSettings().location_id),
            id_pattern=_given(self.id_pattern, defaults.id_pattern),
            encoding=_given(self.encoding, defaults.encoding),
            max_tag_length=_given(self.max_tag_length, defaults.max_tag_length),
            caps=_given(self.caps, Caps()),
        )


def _given(value: T | None, default: T) -> T:
    return default if value is None else value


@dataclass(frozen=True)
class _Plan:
    """How to turn the raw cells of a chunk into Rows; built once by `open_input`."""

    id_index: int | None
    email_index: int | None
    tags_index: int | None
    action_index: int | None
    location_index: int | None
    action: str | None
    tags: tuple[str, ...] | None
    location_id: str | None
    default_location_id: str
    remove_all: bool
    id_regex: re.Pattern[str]
    id_pattern: str
    max_tag_length: int


@dataclass(frozen=True)
class InputTable:
    """An input file that `open_input` has checked; `chunks()` yields its rows.

    `columns` is the header as written (all of it, for the report); the `*_column` fields name the
    columns actually used (None when absent or overridden by an option). `has_rows` is False for
    a file with a header and no data row (the caller decides whether that is an error);
    `highlevel_export` says the file is a HighLevel contact export (see the module docstring);
    `reading` says how it was read (format, encoding and why, delimiter; a workbook's sheet).
    """

    path: Path
    columns: tuple[str, ...]
    id_column: str | None
    tags_column: str | None
    action_column: str | None
    location_column: str | None
    _plan: _Plan = field(repr=False, compare=False)
    # Reads the data rows (header excluded, blank lines possibly included) from the start.
    _read: Reader = field(repr=False, compare=False)
    _chunk_rows: int = field(default=CHUNK_ROWS, repr=False, compare=False)
    has_rows: bool = True
    highlevel_export: bool = False
    # How the file was read, for people: `CSV, UTF-8 (BOM), delimiter "," (sniffed)`.
    reading: str = ""
    # The column of the addresses of rows without a contact id (Step 16), if any.
    email_column: str | None = None

    def chunks(self) -> Iterator[Chunk]:
        """Yield the file's rows in input order, about `chunk_rows` at a time, as columns.

        Re-readable: each call reads the file again. A file that turns unreadable halfway
        (a malformed line, a truncated gzip) raises InputError naming the file.
        """
        number = 0
        plan = self._plan
        watched = plan.id_index if plan.id_index is not None else plan.email_index
        assert watched is not None  # open_input found one of them
        for part in self._read(self._chunk_rows, watched):
            chunk = _to_chunk(part, self._plan, number)
            if len(chunk):
                number = chunk.rows[-1]
                yield chunk


def _tag_problem(tags: tuple[str, ...], max_length: int) -> str:
    """Why tags cannot be sent ("" when they can): a control character, or too long."""
    problems = []
    for tag in tags:
        if _CONTROL.search(tag):
            problems.append(f'tag "{shown(tag)}" contains a control character')
        elif len(tag) > max_length:
            problems.append(
                f'tag "{shown(tag)}" has {len(tag)} characters, more than '
                f"input.max_tag_length ({max_length})"
            )
    return "; ".join(problems)


def open_input(path: Path, options: InputOptions) -> InputTable:
    """Check the input file and work out how to read it; reads only its start.

    Raises InputError (the file cannot be used) or UsageError (the options and columns together
    do not say what to do), each with a one-line message naming the file and the fix.
    """
    path = Path(path)
    options = options.completed()
    assert options.max_tag_length is not None
    assert options.id_pattern is not None
    assert options.encoding is not None
    assert options.default_location_id is not None
    if options.tags is not None and options.remove_all:
        raise UsageError("--tags and --remove-all-tags do not go together: give one of them")
    if options.chunk_rows < 1:
        raise UsageError("chunk_rows must be at least 1")
    if options.max_tag_length < 1:
        raise UsageError("input.max_tag_length must be at least 1")
    fixed_tags: tuple[str, ...] | None = None
    if options.tags is not None:
        fixed_tags = unique_tags(options.tags)
        problem = _tag_problem(fixed_tags, options.max_tag_length)
        if problem:
            raise UsageError(f"--tags: {problem}")
    # pandas (0.3 s to import) comes in with the CSV reader only: an Excel input never needs it.
    delimiter = None
    if options.delimiter is not None:
        from batcher.loading._csv import parse_delimiter

        delimiter = parse_delimiter(options.delimiter)
    for name, value in (
        ("--location-id", options.location_id or ""),
        ("api.location_id", options.default_location_id),
    ):
        if UNSAFE.search(value):
            raise UsageError(f'{name} "{shown(value)}" contains a control character')
    try:
        id_regex = re.compile(options.id_pattern)
    except re.error as exc:
        raise UsageError(f"input.id_pattern: not a valid regular expression ({exc})") from None
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a CSV or Excel file")

    name = path.name.lower()
    if name.endswith(_EXCEL_SUFFIXES):
        caps = options.caps
        assert caps is not None
        limits = Limits(caps.cell_chars, caps.line_bytes, caps.inflate_ratio)
        source = open_excel(path, options.sheet, limits)
    elif name.endswith(_CSV_SUFFIXES) or name.endswith(tuple(s + ".gz" for s in _CSV_SUFFIXES)):
        from batcher.loading._csv import open_csv

        source = open_csv(
            path, options.encoding, delimiter, gzipped=name.endswith(".gz"), caps=options.caps
        )
    elif name.endswith(".xls"):
        raise InputError(
            f"{path}: old binary Excel format (.xls): open it in Excel and save as .xlsx"
        )
    else:
        raise InputError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; "
            "give a .csv, .csv.gz, .xlsx or .xlsm file"
        )

    columns = tuple(source.header)
    keys = [_column_key(c) for c in columns]
    email_index = _find_email_column(path, columns, keys, options.email_column)
    id_index = _find_id_column(path, columns, keys, options.id_column, email_index)
    named_tags = _named(path, columns, keys, options.tags_column, "--tags-column")
    named_action = _named(path, columns, keys, options.action_column, "--action-column")
    named_location = _named(path, columns, keys, options.location_column, "--location-column")
    export = _is_highlevel_export(columns, keys)
    if export and options.tags is None and not options.remove_all and named_tags is None:
        raise UsageError(
            f"{path} is a HighLevel contact export: its Tags column holds the contacts' current "
            'tags, not tags to apply; give --tags "a,b" (or --remove-all-tags)'
        )
    tags_index = (
        None
        if options.tags is not None or options.remove_all
        else _given(named_tags, _find(keys, _TAGS_NAME))
    )
    action_index = (
        None if options.action is not None else _given(named_action, _find(keys, _ACTION_NAME))
    )
    location_index = (
        None
        if options.location_id is not None
        else _given(named_location, _find(keys, _LOCATION_NAME))
    )

    if options.action is None and action_index is None:
        raise UsageError(
            f"{path}: no action column; give --action add or --action remove, "
            "or add an action column (or name it with --action-column)"
        )
    if options.tags is None and tags_index is None and not options.remove_all:
        raise UsageError(
            f"{path}: no tags column; give --tags, --remove-all-tags or add a tags column (or "
            "name it with --tags-column)"
        )

    sent = tuple(
        index
        for index in (id_index, email_index, tags_index, action_index, location_index)
        if index is not None
    )
    reading = source.reading if source.settle is None else source.settle(sent)

    plan = _Plan(
        id_index=id_index,
        email_index=email_index,
        tags_index=tags_index,
        action_index=action_index,
        location_index=location_index,
        action=options.action,
        tags=fixed_tags,
        location_id=options.location_id,
        default_location_id=options.default_location_id.strip(STRIP),
        remove_all=options.remove_all,
        id_regex=id_regex,
        id_pattern=options.id_pattern,
        max_tag_length=options.max_tag_length,
    )

    def name_of(index: int | None) -> str | None:
        return None if index is None else columns[index]

    return InputTable(
        path=path,
        columns=columns,
        id_column=name_of(id_index),
        tags_column=name_of(tags_index),
        action_column=name_of(action_index),
        location_column=name_of(location_index),
        _plan=plan,
        email_column=name_of(email_index),
        _read=source.read,
        _chunk_rows=options.chunk_rows,
        has_rows=source.has_rows,
        highlevel_export=export,
        reading=reading,
    )


# --- columns ---------------------------------------------------------------------------------


def _column_key(name: str) -> str:
    """The name columns are matched by: no case, spaces, `_`, `-` or invisible characters."""
    return re.sub(r"[\s_\-" + INVISIBLE + "]", "", name).casefold()


def _find(keys: list[str], key: str) -> int | None:
    """The first column whose key is `key` (a repeated column name: the first one wins)."""
    try:
        return keys.index(key)
    except ValueError:
        return None


def _is_highlevel_export(columns: tuple[str, ...], keys: list[str]) -> bool:
    """A `Contact Id` column and at least two of the export's usual columns."""
    if not any(" ".join(c.split()).casefold() == _EXPORT_ID for c in columns):
        return False
    return len(_EXPORT_COLUMNS.intersection(keys)) >= 2


def _find_id_column(
    path: Path,
    columns: tuple[str, ...],
    keys: list[str],
    wanted: str | None,
    email_index: int | None,
) -> int | None:
    """The id column's index; None when there is none but an email column (Step 16)."""
    seen = ", ".join(repr(c) for c in columns)
    if wanted is not None:
        index = _find(keys, _column_key(wanted))
        if index is None:
            raise NoIdColumnError(
                f"{path}: no column {wanted!r} for --id-column (columns: {seen})", columns=columns
            )
        return index
    for key in _ID_NAMES:
        index = _find(keys, key)
        if index is not None:
            return index
    if email_index is not None:
        return None
    raise NoIdColumnError(
        f"{path}: no contact id column (looked for contact_id, contactId, Contact Id or id, "
        f"and for an email column; columns: {seen}); name it with --id-column (or "
        "--email-column)",
        columns=columns,
    )


def _named(
    path: Path, columns: tuple[str, ...], keys: list[str], wanted: str | None, option: str
) -> int | None:
    """The index of the column named `wanted` for `option` (None: not named); an InputError
    naming the column and the header when there is none of that name."""
    if wanted is None:
        return None
    index = _find(keys, _column_key(wanted))
    if index is None:
        seen = ", ".join(repr(c) for c in columns)
        raise InputError(f"{path}: no column {wanted!r} for {option} (columns: {seen})")
    return index


def _find_email_column(
    path: Path, columns: tuple[str, ...], keys: list[str], wanted: str | None
) -> int | None:
    """The email column's index (named, or detected like the id column), or None."""
    if wanted is not None:
        return _named(path, columns, keys, wanted, "--email-column")
    for key in _EMAIL_NAMES:
        index = _find(keys, key)
        if index is not None:
            return index
    return None


def email_problem(address: str) -> str:
    """Why a trimmed address cannot be looked up ("" when it can): a search compares it whole,
    so anything but one address is refused rather than searched for."""
    local, at, domain = address.partition("@")
    if not (at and local and domain) or "@" in domain or any(c.isspace() for c in address):
        return f'email "{shown(address)}" is not an email address'
    if UNSAFE.search(address):
        return f'email "{shown(address)}" contains a control character'
    if len(address) > MAX_EMAIL_CHARS:
        return (
            f"email has {len(address)} characters, more than the {MAX_EMAIL_CHARS} a search "
            "filter takes"
        )
    return ""


# --- rows ------------------------------------------------------------------------------------


def _to_chunk(part: Slice, plan: _Plan, number: int) -> Chunk:
    """Normalise and validate one chunk (see `_build_chunk`) with the cyclic GC paused.

    A chunk allocates a few tracked objects per row and none of them can form a cycle; left on,
    the collector rescans the young heap over and over while the chunk is built and costs about
    a third of the loading time (measured on 1M rows). It is switched back on before returning,
    so no caller ever runs with it off.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_chunk(part, plan, number)
    finally:
        if enabled:
            gc.enable()


def _build_chunk(part: Slice, plan: _Plan, number: int) -> Chunk:
    """Normalise and validate one chunk; `number` is the last row number already given.

    The hot path of a million-row run, done a column at a time: ids go through C-level `map`s
    (strip, one regex match), each distinct action, tags or location cell of the chunk is parsed
    once and looked up for the others, and every check is made on distinct values. Python looks
    at single rows only for the rare ones: blank lines, and invalid rows (which pay for their
    messages). The input's own cells stay the columns the reader gave.
    """
    columns = part.columns
    size = len(columns[0]) if columns else 0
    if isinstance(part.lines, int):
        lines = list(range(part.lines, part.lines + size))
    else:
        lines = list(part.lines)
    if plan.id_index is None:
        ids = [""] * size
    else:
        ids = list(map(str.strip, columns[plan.id_index], repeat(STRIP, size))) if size else []
    if not all(ids):
        # A blank line, or a line of empty cells, is not a row and takes no number.
        blank = {i for i, v in enumerate(ids) if not v and is_blank([c[i] for c in columns])}
        if blank:
            keep = [i for i in range(size) if i not in blank]
            columns = [[column[i] for i in keep] for column in columns]
            ids = [ids[i] for i in keep]
            lines = [lines[i] for i in keep]
            size = len(keep)

    actions: list[str]
    if plan.action is not None:
        actions = [plan.action.strip(STRIP).lower()] * size
    else:
        assert plan.action_index is not None  # open_input guarantees an action source
        actions = _parsed(columns[plan.action_index], lambda cell: cell.strip(STRIP).lower())

    tags: list[tuple[str, ...]]
    # Tags cells that cannot be read as tags (see `_tags`), and why.
    unreadable: dict[str, str] = {}
    cells: list[str] = []
    if plan.remove_all:
        # The request carries `tags: []`; a tags column is only carried to the report.
        tags = [()] * size
    elif plan.tags is not None:
        tags = [plan.tags] * size  # trimmed, de-duplicated and checked by open_input
    else:
        assert plan.tags_index is not None
        cells = columns[plan.tags_index]
        read = {cell: read_tags(cell) for cell in set(cells)}
        unreadable = {cell: problem for cell, (_, problem) in read.items() if problem}
        if len(read) == 1:
            tags = [next(iter(read.values()))[0]] * size
        else:
            first = {cell: found for cell, (found, _) in read.items()}
            tags = list(map(first.__getitem__, cells))

    locations: list[str]
    if plan.location_id is not None:
        locations = [plan.location_id] * size
    elif plan.location_index is not None:
        default = plan.default_location_id
        locations = _parsed(columns[plan.location_index], lambda cell: cell.strip(STRIP) or default)
    else:
        locations = [plan.default_location_id] * size

    tag_problems = {t: _tag_problem(t, plan.max_tag_length) for t in set(tags)}
    numeric = (part.numeric_ids or {}) if plan.id_index is not None else {}
    # Rows without an id but with an address (Step 16), and why an address cannot be used.
    emails: dict[int, str] = {}
    email_problems: dict[str, str] = {}
    if plan.email_index is not None and not all(ids):
        cells_of = columns[plan.email_index]
        for i, v in enumerate(ids):
            if not v:
                address = cells_of[i].strip(STRIP)
                if address:
                    emails[i] = address.lower()
        email_problems = {a: p for a in set(emails.values()) if (p := email_problem(a))}
    bad = {i for i, v in enumerate(ids) if not v and i not in emails} if not all(ids) else set()
    if email_problems:
        bad.update(i for i, address in emails.items() if address in email_problems)
    if not all(map(plan.id_regex.match, ids)):
        bad.update(
            i for i, v in enumerate(ids) if plan.id_regex.match(v) is None and i not in emails
        )
    bad.update(_where(actions, lambda v: v not in _ACTIONS or (plan.remove_all and v == "add")))
    bad.update(_where(tags, lambda v: not (v or plan.remove_all) or bool(tag_problems[v])))
    bad.update(_where(locations, lambda v: not v or UNSAFE.search(v) is not None))
    if unreadable:
        bad.update(_where(cells, unreadable.__contains__))
    if numeric:
        bad.update(i for i, line in enumerate(lines) if line in numeric)
    invalid = {
        i: "; ".join(
            _problems(
                plan,
                ids[i],
                actions[i],
                tags[i],
                locations[i],
                tag_problems[tags[i]],
                numeric.get(lines[i]),
                unreadable.get(cells[i], "") if unreadable else "",
                emails.get(i),
                email_problems,
            )
        )
        for i in sorted(bad)
    }
    for i in invalid:  # a row that cannot be sent is not looked up
        emails.pop(i, None)
    return Chunk(
        list(range(number + 1, number + 1 + size)),
        lines,
        ids,
        locations,
        actions,
        tags,
        plan.remove_all,
        invalid,
        columns,
        emails=emails,
    )


def _parsed(cells: list[str], parse: Callable[[str], T]) -> list[T]:
    """`parse` of each cell, called once per distinct cell: equal cells share one value."""
    values = {cell: parse(cell) for cell in set(cells)}
    if len(values) == 1:
        return [next(iter(values.values()))] * len(cells)
    return list(map(values.__getitem__, cells))


def _where(values: list[T], wrong: Callable[[T], bool]) -> set[int]:
    """The positions of the values that are `wrong`, asking once per distinct value."""
    worse = {value for value in set(values) if wrong(value)}
    if not worse:
        return set()
    return {i for i, value in enumerate(values) if value in worse}


def _problems(
    plan: _Plan,
    contact_id: str,
    action: str,
    tags: tuple[str, ...],
    location: str,
    tag_problem: str,
    number: str | None,
    unreadable: str,
    email: str | None,
    email_problems: dict[str, str],
) -> Iterator[str]:
    """Every reason a row cannot be sent, each naming the thing and what it should be.

    No reason contains "; ", which separates them in the row's message.
    """
    if number is not None:
        yield (
            f"contact id is a number in the sheet ({number}): Excel keeps only 15 digits, so "
            "format the id column as Text and enter the ids again"
        )
    elif email is not None:
        if email in email_problems:
            yield email_problems[email]
    elif not contact_id:
        yield "contact id is empty" if plan.email_index is None else "no contact id and no email"
    elif plan.id_regex.match(contact_id) is None:
        yield f'contact id "{shown(contact_id)}" does not match {plan.id_pattern}'
    if not action:
        yield "action is empty (expected add or remove)"
    elif action not in _ACTIONS:
        yield f'action "{shown(action)}" is not add or remove'
    if unreadable:
        yield f"tags {unreadable}"
    elif not tags and not plan.remove_all:
        yield "no tags to apply"
    if tag_problem:
        yield tag_problem
    if not location:
        yield _NO_LOCATION
    elif UNSAFE.search(location):
        yield f'location id "{shown(location)}" contains a control character'
    if plan.remove_all and action == "add":
        yield "remove-all-tags goes with action remove"
