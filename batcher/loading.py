"""Read a contact file (CSV, gzip CSV or Excel) in chunks and turn each data row into a `Row`.

This is the only module that imports pandas. `open_input` looks at the file once (encoding,
delimiter, header, one data row) and fails early with an `InputError`/`UsageError` naming the file
and the fix; `InputTable.chunks` then reads the whole file, `chunk_rows` rows at a time, so memory
stays bounded however long a CSV is (Excel sheets are read whole: calamine cannot stream, and a
sheet holds at most 1,048,576 rows anyway).

Rules (SPEC "Input"): columns matched ignoring case, spaces, `_` and `-`; blank lines (and lines
whose cells are all empty) are not rows and take no number; ids are trimmed of whitespace and
invisible characters; a row that can never be sent is marked INVALID with a message saying why.
Duplicates are not found here: that needs the whole input and is the ledger's job.
"""

from __future__ import annotations

import codecs
import csv
import gc
import gzip
import io
import re
import sys
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import pandas as pd

from batcher.errors import InputError, UsageError
from batcher.models import Row, Status

__all__ = ["InputOptions", "InputTable", "open_input", "parse_tags"]

# Characters trimmed from both ends of ids, tags, actions and locations: all Unicode whitespace
# (NBSP included) plus the invisible ones that spreadsheets and copy-paste leave behind and that
# `str.strip()` keeps: zero-width space/non-joiner/joiner, word joiner, BOM, Mongolian vowel sep.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u180e"
_STRIP = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()) + _INVISIBLE

_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_EXCEL_SUFFIXES = (".xlsx", ".xlsm")
_DELIMITERS = ",;\t|"
# Enough text for the sniffer to see the header and a few dozen rows; it is slow on big samples.
_SAMPLE_BYTES = 64 * 1024
_SNIFF_LINES = 50
# The encoding check decodes the whole file in blocks of this size (cheap next to parsing), so a
# non-UTF-8 byte deep in a million-row file is found before any row is read, not halfway through.
_SCAN_BLOCK = 1024 * 1024
# Rows read by `open_input` to find the first data row without parsing a whole big chunk.
_PROBE_ROWS = 1000
# Per-chunk caches of parsed cells (tags repeat a lot); cleared when they grow past this.
_CACHE_LIMIT = 100_000

# Successive slices of a file's data rows, each as its columns of raw cells.
_Columns = Generator[list[list[str]], None, None]

_ACTIONS = frozenset({"add", "remove"})
_NO_LOCATION = "no location id (give --location-id, a location_id column or api.location_id)"

# Normalised header name -> role; the id names are in order of preference (SPEC "Input").
_ID_NAMES = ("contactid", "id")
_TAGS_NAME = "tags"
_ACTION_NAME = "action"
_LOCATION_NAME = "locationid"


@dataclass(frozen=True)
class InputOptions:
    """What the command line and config say about reading the input (see SPEC "Commands")."""

    id_column: str | None = None
    sheet: str | None = None
    action: str | None = None
    tags: tuple[str, ...] | None = None
    remove_all: bool = False
    location_id: str | None = None
    default_location_id: str = ""
    id_pattern: str = r"^[A-Za-z0-9]{20}$"
    encoding: str = ""
    chunk_rows: int = 50_000


@dataclass(frozen=True)
class _Plan:
    """How to turn the raw cells of a chunk into Rows; built once by `open_input`."""

    id_index: int
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


@dataclass(frozen=True)
class InputTable:
    """An input file that `open_input` has checked; `chunks()` yields its rows.

    `columns` is the header as written (all of it, for the report); the `*_column` fields name the
    columns actually used (None when absent or overridden by an option).
    """

    path: Path
    columns: tuple[str, ...]
    id_column: str
    tags_column: str | None
    action_column: str | None
    location_column: str | None
    _plan: _Plan = field(repr=False, compare=False)
    # Yields the raw cells, column by column, of successive slices of the data rows (header
    # excluded, blank lines possibly included); a new iterator reads the file from the start.
    _read: Callable[[int], _Columns] = field(repr=False, compare=False)
    _chunk_rows: int = field(default=50_000, repr=False, compare=False)
    has_rows: bool = True

    def chunks(self) -> Iterator[list[Row]]:
        """Yield the file's rows in input order, about `chunk_rows` at a time.

        Re-readable: each call reads the file again. A file that turns unreadable halfway
        (a malformed line, a truncated gzip) raises InputError naming the file.
        """
        number = 0
        for columns in self._read(self._chunk_rows):
            rows = _to_rows(columns, self._plan, number)
            if rows:
                number = rows[-1].row
                yield rows


def parse_tags(text: str) -> tuple[str, ...]:
    """Split a tags cell on commas: trimmed, empties dropped, repeats dropped.

    Repeats are found ignoring case (HighLevel stores tags lower-cased, so "VIP" and "vip" are
    one tag); the first spelling and the order of first occurrences are kept.
    """
    # Runs once per distinct tags cell of a million-row file: the common clean case (no empty,
    # no repeat) costs one split, one strip per tag and one set, nothing per-tag in Python.
    parts = [part.strip(_STRIP) for part in text.split(",")]
    if len(parts) == 1:
        return (parts[0],) if parts[0] else ()
    if all(parts) and len({part.casefold() for part in parts}) == len(parts):
        return tuple(parts)
    seen: set[str] = set()
    out: list[str] = []
    for tag in parts:
        key = tag.casefold()
        if tag and key not in seen:
            seen.add(key)
            out.append(tag)
    return tuple(out)


def open_input(path: Path, options: InputOptions) -> InputTable:
    """Check the input file and work out how to read it; reads only its start.

    Raises InputError (the file cannot be used) or UsageError (the options and columns together
    do not say what to do), each with a one-line message naming the file and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a CSV or Excel file")
    if options.tags is not None and options.remove_all:
        raise UsageError("--tags and --remove-all-tags do not go together: give one of them")
    if options.chunk_rows < 1:
        raise UsageError("chunk_rows must be at least 1")
    try:
        id_regex = re.compile(options.id_pattern)
    except re.error as exc:
        raise UsageError(f"input.id_pattern: not a valid regular expression ({exc})") from None

    name = path.name.lower()
    read: Callable[[int], _Columns]
    has_data: bool
    if name.endswith(_EXCEL_SUFFIXES):
        header, read, has_data = _open_excel(path, options.sheet)
    elif name.endswith(_CSV_SUFFIXES) or name.endswith(tuple(s + ".gz" for s in _CSV_SUFFIXES)):
        header, read, has_data = _open_csv(path, options.encoding, gzipped=name.endswith(".gz"))
    else:
        raise InputError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; "
            "give a .csv, .csv.gz, .xlsx or .xlsm file"
        )

    columns = tuple(header)
    keys = [_column_key(c) for c in columns]
    id_index = _find_id_column(path, columns, keys, options.id_column)
    tags_index = None if options.tags is not None or options.remove_all else _find(keys, _TAGS_NAME)
    action_index = None if options.action is not None else _find(keys, _ACTION_NAME)
    location_index = None if options.location_id is not None else _find(keys, _LOCATION_NAME)

    if options.action is None and action_index is None:
        raise UsageError(
            f"{path}: no action column; give --action add or --action remove, "
            "or add an action column"
        )
    if options.tags is None and tags_index is None and not options.remove_all:
        raise UsageError(
            f"{path}: no tags column; give --tags, --remove-all-tags or add a tags column"
        )

    plan = _Plan(
        id_index=id_index,
        tags_index=tags_index,
        action_index=action_index,
        location_index=location_index,
        action=options.action,
        tags=options.tags,
        location_id=options.location_id,
        default_location_id=options.default_location_id.strip(_STRIP),
        remove_all=options.remove_all,
        id_regex=id_regex,
        id_pattern=options.id_pattern,
    )
    if not has_data:
        raise InputError(f"{path}: no data rows (only a header); nothing to do")

    def name_of(index: int | None) -> str | None:
        return None if index is None else columns[index]

    return InputTable(
        path=path,
        columns=columns,
        id_column=columns[id_index],
        tags_column=name_of(tags_index),
        action_column=name_of(action_index),
        location_column=name_of(location_index),
        _plan=plan,
        _read=read,
        _chunk_rows=options.chunk_rows,
    )


# --- columns ---------------------------------------------------------------------------------


def _column_key(name: str) -> str:
    """The name columns are matched by: no case, spaces, `_`, `-` or invisible characters."""
    return re.sub(r"[\s_\-" + _INVISIBLE + "]", "", name).casefold()


def _find(keys: list[str], key: str) -> int | None:
    """The first column whose key is `key` (a repeated column name: the first one wins)."""
    try:
        return keys.index(key)
    except ValueError:
        return None


def _find_id_column(
    path: Path, columns: tuple[str, ...], keys: list[str], wanted: str | None
) -> int:
    seen = ", ".join(repr(c) for c in columns)
    if wanted is not None:
        index = _find(keys, _column_key(wanted))
        if index is None:
            raise InputError(f"{path}: no column {wanted!r} for --id-column (columns: {seen})")
        return index
    for key in _ID_NAMES:
        index = _find(keys, key)
        if index is not None:
            return index
    raise InputError(
        f"{path}: no contact id column (looked for contact_id, contactId, Contact Id or id; "
        f"columns: {seen}); name it with --id-column"
    )


def _has_data_row(read: Callable[[int], _Columns]) -> bool:
    """Whether any data row has a non-empty cell; usually answered by the first few rows."""
    with closing(read(_PROBE_ROWS)) as parts:
        for columns in parts:
            for cells in zip(*columns, strict=True):
                if not _is_blank(cells):
                    return True
    return False


# --- rows ------------------------------------------------------------------------------------


def _is_blank(cells: tuple[str, ...]) -> bool:
    return not "".join(cells).strip(_STRIP)


def _to_rows(columns: list[list[str]], plan: _Plan, number: int) -> list[Row]:
    """Normalise and validate one chunk (see `_build_rows`) with the cyclic GC paused.

    A chunk allocates ~3 tracked objects per row (Row, cells tuple, tags tuple) and none of them
    can form a cycle; left on, the collector rescans the young heap over and over while the
    chunk is built and costs about a third of the loading time (measured on 1M rows). It is
    switched back on before returning, so no caller ever runs with it off.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_rows(columns, plan, number)
    finally:
        if enabled:
            gc.enable()


def _build_rows(columns: list[list[str]], plan: _Plan, number: int) -> list[Row]:
    """Normalise and validate one chunk; `number` is the last row number already given.

    The hot loop of a million-row run: everything constant is worked out once, repeated cells
    (actions, tags, locations) are parsed once per chunk via small caches, and a valid row takes
    one regex match and a few dict lookups. Only invalid rows pay for building a message.
    """
    if not columns or not columns[0]:
        return []
    count = len(columns[0])
    records: Iterable[tuple[str, ...]] = zip(*columns, strict=True)
    ids = columns[plan.id_index]

    actions: Iterable[str]
    if plan.action is not None:
        actions = repeat(plan.action.strip(_STRIP).lower(), count)
    else:
        assert plan.action_index is not None  # open_input guarantees an action source
        actions = columns[plan.action_index]

    tags_cells: Iterable[str | None]
    if plan.remove_all or plan.tags is not None:
        # None: use `fixed_tags`. With remove-all-tags the request carries `tags: []`, so a
        # row's tags are empty and a tags column is only carried to the report.
        tags_cells = repeat(None, count)
    else:
        assert plan.tags_index is not None
        tags_cells = columns[plan.tags_index]
    fixed_tags: tuple[str, ...] = ()
    if plan.tags is not None and not plan.remove_all:
        fixed_tags = parse_tags(",".join(plan.tags))

    locations: Iterable[str]
    if plan.location_id is not None:
        locations = repeat(plan.location_id, count)
    elif plan.location_index is not None:
        locations = columns[plan.location_index]
    else:
        locations = repeat("", count)

    match = plan.id_regex.match
    remove_all = plan.remove_all
    default_location = plan.default_location_id
    action_cache: dict[str, str] = {}
    tags_cache: dict[str, tuple[str, ...]] = {}
    location_cache: dict[str, str] = {}
    rows: list[Row] = []
    append = rows.append

    for cells, raw_id, raw_action, raw_tags, raw_location in zip(
        records, ids, actions, tags_cells, locations, strict=True
    ):
        contact_id = raw_id.strip(_STRIP)
        if not contact_id and _is_blank(cells):
            continue  # a blank line or a line of empty cells is not a row
        number += 1

        action = action_cache.get(raw_action)
        if action is None:
            if len(action_cache) > _CACHE_LIMIT:
                action_cache.clear()
            action = action_cache[raw_action] = raw_action.strip(_STRIP).lower()

        if raw_tags is None:
            tags = fixed_tags
        else:
            cached = tags_cache.get(raw_tags)
            if cached is None:
                if len(tags_cache) > _CACHE_LIMIT:
                    tags_cache.clear()
                cached = tags_cache[raw_tags] = parse_tags(raw_tags)
            tags = cached

        location = location_cache.get(raw_location)
        if location is None:
            if len(location_cache) > _CACHE_LIMIT:
                location_cache.clear()
            location = raw_location.strip(_STRIP) or default_location
            location_cache[raw_location] = location

        if (
            contact_id
            and match(contact_id) is not None
            and action in _ACTIONS
            and (tags or remove_all)
            and location
            and not (remove_all and action == "add")
        ):
            append(Row(number, contact_id, location, action, tags, remove_all, None, "", cells))
        else:
            message = "; ".join(_problems(plan, contact_id, action, tags, location))
            append(
                Row(
                    number,
                    contact_id,
                    location,
                    action,
                    tags,
                    remove_all,
                    Status.INVALID,
                    message,
                    cells,
                )
            )
    return rows


def _problems(
    plan: _Plan, contact_id: str, action: str, tags: tuple[str, ...], location: str
) -> Iterator[str]:
    """Every reason a row cannot be sent, each naming the thing and what it should be."""
    if not contact_id:
        yield "contact id is empty"
    elif plan.id_regex.match(contact_id) is None:
        yield f'contact id "{_shown(contact_id)}" does not match {plan.id_pattern}'
    if not action:
        yield "action is empty (expected add or remove)"
    elif action not in _ACTIONS:
        yield f'action "{_shown(action)}" is not add or remove'
    if not tags and not plan.remove_all:
        yield "no tags to apply"
    if not location:
        yield _NO_LOCATION
    if plan.remove_all and action == "add":
        yield "remove-all-tags goes with action remove"


def _shown(text: str, limit: int = 60) -> str:
    """Text for a message: invisible characters spelled out, long values cut."""
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text[:limit])
    return shown + "…" if len(text) > limit else shown


# --- CSV -------------------------------------------------------------------------------------


def _open_csv(
    path: Path, encoding: str, *, gzipped: bool
) -> tuple[list[str], Callable[[int], _Columns], bool]:
    """Settle encoding and delimiter and read the header.

    Returns the header, a chunk reader and whether there is a data row (looking for it also
    reports a malformed line among the first rows before anything is sent).
    """
    sample = _read_sample(path, gzipped=gzipped)
    if not sample.strip():
        raise InputError(f"{path}: the file is empty")
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(f"{path}: unknown encoding {encoding!r} (input.encoding)") from None
        _check_decodes(path, encoding, gzipped=gzipped, fallback=False)
    else:
        encoding = _detect_encoding(path, sample, gzipped=gzipped)
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
    delimiter = _sniff_delimiter(text)

    def frames(chunk_rows: int) -> Generator[pd.DataFrame, None, None]:
        # header=None: the header is read as an ordinary row (pandas would rename repeated
        # names, and with header=0 a row with one field too many silently shifts the columns;
        # this way it is an error naming the line). All cells as text, nothing turned into NaN.
        with pd.read_csv(
            path,
            sep=delimiter,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=True,
            encoding=encoding,
            compression="gzip" if gzipped else None,
            chunksize=chunk_rows,
            engine="c",
        ) as reader:
            yield from reader

    def read(chunk_rows: int) -> _Columns:
        first = True
        for frame in _guarded(path, encoding, frames(chunk_rows)):
            columns = [frame[c].tolist() for c in frame.columns]
            if first:  # the first row pandas gives (blank lines skipped) is the header
                columns = [c[1:] for c in columns]
                first = False
            yield columns

    with closing(_guarded(path, encoding, frames(1))) as first_rows:
        header_frame = next(first_rows, None)
    if header_frame is None or header_frame.empty:
        raise InputError(f"{path}: the file is empty")
    header = [str(v) for v in header_frame.iloc[0].tolist()]
    header[0] = header[0].lstrip("\ufeff")  # a BOM the configured encoding did not remove
    return header, read, _has_data_row(read)


def _guarded(
    path: Path, encoding: str, frames: Iterator[pd.DataFrame]
) -> Generator[pd.DataFrame, None, None]:
    """Pass frames through, turning pandas' and the decoders' errors into an InputError."""
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except pd.errors.EmptyDataError:
            return
        except pd.errors.ParserError as exc:
            found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if found:
                header_fields, line, fields = found.groups()
                raise InputError(
                    f"{path}: line {line} has {fields} fields but the header has "
                    f"{header_fields}; check the delimiter and quoting"
                ) from exc
            raise InputError(f"{path}: not readable as CSV ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path}: cannot be decoded as {encoding} ({exc.reason}); set input.encoding"
            ) from exc
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: cannot be read ({exc})") from exc
        yield frame


def _open_binary(path: Path, *, gzipped: bool) -> io.BufferedIOBase | gzip.GzipFile:
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def _read_sample(path: Path, *, gzipped: bool) -> bytes:
    try:
        with _open_binary(path, gzipped=gzipped) as fh:
            return fh.read(_SAMPLE_BYTES)
    except gzip.BadGzipFile as exc:
        raise InputError(f"{path}: not a gzip file ({exc}); give a .csv.gz made by gzip") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from exc


def _detect_encoding(path: Path, sample: bytes, *, gzipped: bool) -> str:
    """UTF-8 (BOM or not), UTF-16 with a BOM, else cp1252; refuse what is not text at all."""
    if sample.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    elif sample.startswith(b"PK\x03\x04"):
        raise InputError(
            f"{path}: is a ZIP file (an Excel workbook?), not CSV text; "
            "give it an .xlsx extension if it is a workbook"
        )
    elif b"\x00" in sample:
        raise InputError(
            f"{path}: is binary, not CSV text; give a CSV or Excel file "
            "(or set input.encoding for UTF-16 without a BOM)"
        )
    else:
        encoding = "utf-8-sig"  # reads UTF-8 with or without a BOM
    if _check_decodes(path, encoding, gzipped=gzipped, fallback=True):
        return encoding
    # Most non-UTF-8 CSVs are Excel's "CSV" on Western Windows: cp1252.
    _check_decodes(path, "cp1252", gzipped=gzipped, fallback=False, tried="UTF-8 or cp1252")
    return "cp1252"


def _check_decodes(
    path: Path, encoding: str, *, gzipped: bool, fallback: bool, tried: str = ""
) -> bool:
    """Decode the whole file; False (if `fallback`) or an InputError at the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    line = 1
    try:
        with _open_binary(path, gzipped=gzipped) as fh:
            while True:
                block = fh.read(_SCAN_BLOCK)
                try:
                    decoder.decode(block, final=not block)
                except UnicodeDecodeError as exc:
                    if fallback:
                        return False
                    bad = max(exc.start, 0)
                    line += block.count(b"\n", 0, bad)
                    raise InputError(
                        f"{path}: not {tried or encoding} text (byte {offset + bad + 1}, "
                        f"line {line}); set input.encoding to the file's encoding"
                    ) from exc
                if not block:
                    return True
                offset += len(block)
                line += block.count(b"\n")
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from exc


def _sniff_delimiter(text: str) -> str:
    """One of `, ; TAB |`: csv.Sniffer on the first lines, checked against the header.

    The sniffer fails on a one-column file (no delimiter at all: comma is then as good as any)
    and can be misled by delimiters inside cells; the header line, which holds only names, is
    the tie-breaker: a delimiter that leaves it in one piece is wrong if another splits it.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()][:_SNIFF_LINES]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines.pop()  # the sample may end mid-line
    if not lines:
        return ","

    def header_fields(delimiter: str) -> int:
        return len(next(csv.reader([lines[0]], delimiter=delimiter), []))

    try:
        sniffed: str | None = (
            csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
        )
    except csv.Error:
        sniffed = None
    if sniffed is not None and sniffed in _DELIMITERS and header_fields(sniffed) > 1:
        return sniffed
    best = max(_DELIMITERS, key=header_fields)  # ties go to the first: comma
    return best if header_fields(best) > 1 else ","


# --- Excel -----------------------------------------------------------------------------------


def _open_excel(path: Path, sheet: str | None) -> tuple[list[str], Callable[[int], _Columns], bool]:
    """Pick the sheet, read the header; return it, a chunk reader and whether there is data."""
    try:
        with pd.ExcelFile(path, engine="calamine") as book:
            sheets = [str(s) for s in book.sheet_names]
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from exc
    except Exception as exc:  # calamine raises its own bare CalamineError for corrupt files
        raise InputError(f"{path}: not a readable Excel workbook ({exc})") from exc
    if not sheets:
        raise InputError(f"{path}: the workbook has no sheets")
    if sheet is None:
        name = sheets[0]
    elif sheet in sheets:
        name = sheet
    else:
        folded = [s for s in sheets if s.casefold() == sheet.casefold()]
        if not folded:
            raise InputError(
                f"{path}: no sheet {sheet!r} (sheets: {', '.join(repr(s) for s in sheets)}); "
                "give one of them with --sheet"
            )
        name = folded[0]

    def load(nrows: int | None = None) -> tuple[list[list[str]], int]:
        """The sheet's non-blank rows as text (the first is the header), and the rows read."""
        try:
            frame = pd.read_excel(
                path,
                sheet_name=name,
                engine="calamine",
                header=None,
                dtype=object,
                keep_default_na=False,
                na_filter=False,
                nrows=nrows,
            )
        except Exception as exc:  # calamine errors have no common base worth naming
            raise InputError(f"{path}: sheet {name!r} cannot be read ({exc})") from exc
        rows = [[_excel_text(v) for v in values] for values in frame.itertuples(index=False)]
        return [r for r in rows if not _is_blank(tuple(r))], len(rows)

    # calamine parses the whole sheet anyway; `nrows` only spares turning it all into text twice.
    head, read_rows = load(nrows=_PROBE_ROWS)
    if not head:
        raise InputError(f"{path}: sheet {name!r} is empty")
    header = head[0]

    def read(chunk_rows: int) -> _Columns:
        rows = load()[0][1:]
        width = len(header)
        for start in range(0, len(rows), chunk_rows):
            part = rows[start : start + chunk_rows]
            # Columns, padded/cut to the header's width (cells right of the header have no name).
            yield [[r[i] if i < len(r) else "" for r in part] for i in range(width)]

    # Past the probe's rows only blank ones: look at the rest of the sheet before saying "empty".
    has_data = len(head) > 1 or (read_rows >= _PROBE_ROWS and len(load()[0]) > 1)
    return header, read, has_data


def _excel_text(value: Any) -> str:
    """A cell as text; whole numbers without `.0`, so numeric ids survive as written."""
    if type(value) is str:  # most cells: skip the checks below
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value != value:  # NaN: an empty cell
            return ""
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value)
