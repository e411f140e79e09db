"""What the CSV and Excel readers and the row builder share: the slice of cells they pass on."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TypeVar, cast

# Characters trimmed from both ends of ids, tags, actions and locations: all Unicode whitespace
# (NBSP included) plus the invisible ones that spreadsheets and copy-paste leave behind and that
# `str.strip()` keeps: zero-width space/non-joiner/joiner, word joiner, BOM, Mongolian vowel sep.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u180e"
# Every character for which `str.isspace()` is true (tests/test_loading.py checks the list
# against all of Unicode: computing it at import cost 0.4 s of every start).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
STRIP = WHITESPACE + INVISIBLE

T = TypeVar("T")

# Rows read by `open_input` to find the first data row without parsing a whole big chunk.
PROBE_ROWS = 1000


@dataclass(frozen=True, slots=True)
class Slice:
    """Successive data rows of a file, as columns of raw cells (blank lines possibly included).

    `lines` is where each row starts (CSV: physical line, 1-based; Excel: sheet row number): an
    int when the rows take one line each from that line on (the common case, no per-row list),
    else one number per row. `numeric_ids` maps the line of a row whose id cell is a number in an
    Excel sheet to that number as shown in messages.
    """

    columns: list[list[str]]
    lines: int | list[int]
    numeric_ids: dict[int, str] | None = None


# Reads a file's data rows from the start: `read(chunk_rows, id_index)` yields Slices of at most
# `chunk_rows` rows (the id column's index lets Excel keep the type of its cells).
Reader = Callable[[int, int], Iterator[Slice]]


@dataclass(frozen=True)
class Caps:
    """How much of a file is read before it is refused as not a contact list (SPEC "Bounded
    input"): a cell (characters), a line (bytes), and how far a compressed file may inflate
    (times its own size; 0: no cap). Excel's own cell limit is 32,767 characters."""

    cell_chars: int = 4096 * 1024
    line_bytes: int = 16384 * 1024
    inflate_ratio: int = 100


@dataclass(frozen=True, slots=True)
class Source:
    """An opened file: its header as written, its reader, whether any data row has a cell.

    `reading` says how the file was read, for people (`CSV, UTF-8 (BOM), delimiter ","`; a
    workbook's names the sheet). `settle`, when given, is called once with the indices of the
    columns whose cells are sent (id, tags, action, location) before any row is read: it may
    refuse the file (an InputError: an encoding the sent cells do not settle) and returns the
    reading phrase then known.
    """

    header: list[str]
    read: Reader
    has_rows: bool
    reading: str = ""
    settle: Callable[[tuple[int, ...]], str] | None = None


def is_blank(cells: tuple[str, ...] | list[str]) -> bool:
    return not "".join(cells).strip(STRIP)


def one_line(text: object) -> str:
    """An exception's text on one line (library messages sometimes span several)."""
    return " ".join(str(text).split())


def has_rows(read: Reader) -> bool:
    """Whether any data row has a non-empty cell; usually answered by the first few rows."""
    parts = read(PROBE_ROWS, 0)
    try:
        for part in parts:
            for cells in zip(*part.columns, strict=True):
                if not is_blank(cells):
                    return True
    finally:
        close = getattr(parts, "close", None)
        if close is not None:
            close()
    return False


class _Failed:
    """What the read-ahead thread hands over when reading raised."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def read_ahead(
    parts: Iterator[T], depth: int = 1, stop: threading.Event | None = None
) -> Generator[T, None, None]:
    """`parts`, produced by a thread of their own up to `depth` items ahead of the consumer.

    SQLite gives up the GIL while it inserts (and zlib while it unzips): with the file read in a
    thread, the next chunk is read while the ledger writes this one. The thread's
    errors come out of this generator; closing it stops the thread (after the item it is
    reading, or sooner where `parts` watches `stop`, the event set then) and closes `parts`
    there, where it runs.
    """
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event() if stop is None else stop

    def produce() -> None:
        try:
            for item in parts:
                items.put(item)
                if stop.is_set():
                    break
            items.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(_Failed(exc))
        finally:
            close = getattr(parts, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="batcher-read-ahead", daemon=True)
    thread.start()
    try:
        while (value := items.get()) is not _END:
            if isinstance(value, _Failed):
                raise value.error
            yield cast(T, value)
    finally:
        stop.set()
        while thread.is_alive():  # take what it puts until it sees the stop
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.05)
        thread.join()


def shown(text: str, limit: int = 60) -> str:
    """Text for a message: invisible and control characters spelled out, long values cut."""
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text[:limit])
    return shown + "…" if len(text) > limit else shown
