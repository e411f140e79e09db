"""A sheet's rows read as Blocks of text, a block of whole rows at a time.

Why not an XML parser for the sheet: ElementTree, lxml and expat all make Python objects or calls
for every element (`row`, `c`, `v`, `is`, `t`: four or five a cell). Walking the benchmark's
1,048,575-row sheet (351 MB of XML) and taking each cell's text, one run each on a quiet 2-core
machine: inflating alone 0.8 s; expat with callbacks 10.3 s; ElementTree's XMLPullParser 15.5 s,
or 12.9 s parsing blocks of whole rows with `fromstring`; lxml's iterparse (tag=row) 7.3 s doing
nothing with the rows, 17.9 s taking the cells; a first regular expression over blocks of rows
3.1 s; calamine's walk 4.2 s; this module 2.1 s. So each block of whole rows is split by regular
expressions (a row at a time in a table, see `SheetReader`) for the cell forms that Excel,
LibreOffice, Google Sheets, openpyxl and xlsxwriter write (`<c r="B7" s="3" t="s"><v>12</v></c>`,
inline strings, formulas with a cached value, empty styled cells), and the text left between the
matches must be nothing but row tags and whitespace; when it is not (a cell
without `r`, rich text in an inline string, a comment, an attribute order no producer uses...),
that block is parsed by ElementTree instead, so the result is always the XML's, only slower for
unusual files.

Cells become text here: numbers, dates and times by their style's kind (PLAIN, DATE, DURATION).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast
from xml.etree import ElementTree

from batcher.loading._xlsx_part import Limits, Part, Readable, Refused, XlsxError
from batcher.loading._xlsx_strings import (
    PLAIN_T_TEXT,
    T_TEXT,
    SharedStrings,
    fix_text,
    ooxml_text,
    si_text,
    too_long,
)

# A number style's kind: plain number, a date/time, an elapsed time ([h]:mm).
PLAIN, DATE, DURATION = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Block:
    """Successive rows of a sheet: their sheet row numbers and cells as text, column by column
    from column A to the block's rightmost cell with text (empty columns may share one list:
    read a Block's columns, never change them). `numbers` maps the row number of each number
    cell in the watched column to the number as shown in messages."""

    lines: list[int]
    columns: list[list[str]]
    numbers: dict[int, str]


def int_or_none(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _decode_all(raw: list[bytes]) -> list[str]:
    """Raw UTF-8 XML texts as strings, decoded in one go (XML text cannot hold a NUL)."""
    joined = b"\0".join(raw)
    if b"&" in joined or b"\r" in joined or b"_x" in joined:
        return [fix_text(t) for t in joined.decode("utf-8").split("\0")]
    return joined.decode("utf-8").split("\0")


# --- sheets -----------------------------------------------------------------------------------

_EPOCH_1900 = datetime.datetime(1899, 12, 31)
_EPOCH_1904 = datetime.datetime(1904, 1, 1)
_MS_A_DAY = 86_400_000
# A sheet's size (Excel's specifications and limits): rows 1 to 1,048,576, columns A to XFD.
MAX_ROW = 1_048_576
MAX_COLUMNS = 16_384
# Column letters -> 0-based index, filled as columns are met (at most 16,384).
_COLUMNS: dict[bytes, int] = {}
_REF = re.compile(r"([A-Za-z]{1,3})([0-9]+)")


class _OutOfSheet(Exception):
    """A cell right of the last column (the message: its column)."""


def _column_index(letters: bytes) -> int:
    found = _COLUMNS.get(letters)
    if found is None:
        found = 0
        for ch in letters.upper():
            found = found * 26 + ch - 64
        found -= 1
        if found >= MAX_COLUMNS:
            raise _OutOfSheet(letters.decode())
        _COLUMNS[letters] = found
    return found


# A cell's attributes after `r` and its content, as the usual producers write them (attributes
# r, s, t in that order; a value, a formula and its cached value, an inline string, or nothing).
# Groups: style, type, inline text, value.
_CELL_BODY = (
    rb'(?: s="([0-9]+)")?(?: t="([a-zA-Z]+)")?\s*'
    rb"(?:/>|>(?:<%(p)bis>" + T_TEXT + rb"</%(p)bis>"
    rb"|(?:<%(p)bf\b[^>]*?(?:/>|>[^<]*</%(p)bf>))?(?:<%(p)bv>([^<]*)</%(p)bv>|<%(p)bv\s*/>)?)"
    rb"</%(p)bc>)"
)
_CELL_GROUPS = 4


def _cell_pattern(prefix: bytes) -> re.Pattern[bytes]:
    """One cell. Groups: column, row, then `_CELL_BODY`'s."""
    body = _CELL_BODY % {b"p": re.escape(prefix)}
    return re.compile(rb'<%bc r="([A-Z]{1,3})([0-9]+)"' % re.escape(prefix) + body)


def _row_pattern(prefix: bytes, letters: tuple[bytes, ...], spaced: bool) -> re.Pattern[bytes]:
    """A whole row whose cells are in these columns, each there or not: one match a row instead
    of one a cell, and no column letters or row numbers to capture. Groups: the row's number,
    then for each column an empty group (None: no cell there) and `_CELL_BODY`'s. `spaced`:
    whitespace between the cells (pretty-printed XML; looking for it costs some 5 %)."""
    p = re.escape(prefix)
    body = _CELL_BODY % {b"p": p}
    space = rb"\s*" if spaced else b""
    cells = b"".join(
        rb'%b(?:<%bc r="%b\1"()' % (space, p, column) + body + b")?" for column in letters
    )
    return re.compile(rb'<%brow r="([0-9]+)"[^>]*>%b%b</%brow>' % (p, cells, space, p))


# A column whose cells all have one form: (inline string or not (a value), style, type).
_Shape = tuple[bool, bytes | None, bytes | None]


def _shape(
    there: list[bytes | None],
    styles: list[bytes | None],
    types: list[bytes | None],
    inline: list[bytes | None],
    values: list[bytes | None],
) -> _Shape | None:
    """The single form of a column's cells in a block, if they have one."""
    if None in there or len(set(styles)) != 1 or len(set(types)) != 1:
        return None
    if None not in inline and values.count(None) == len(values):
        return True, styles[0], types[0]
    if None not in values and inline.count(None) == len(inline):
        return False, styles[0], types[0]
    return None


def _shaped_pattern(
    prefix: bytes, letters: tuple[bytes, ...], shapes: list[_Shape], preserved: bool
) -> re.Pattern[bytes]:
    """A row whose cells are all there, each in its column's one form: half the time of the
    row pattern (no alternatives, one group a cell; `preserved`: whether the inline strings may
    say xml:space="preserve"). Groups: the row's number, then each cell's text or value."""
    p = re.escape(prefix)
    t_text = T_TEXT if preserved else PLAIN_T_TEXT
    cells = []
    for column, (inline, style, kind) in zip(letters, shapes, strict=True):
        attributes = b"".join(
            b' %b="%b"' % (name, re.escape(value))
            for name, value in ((b"s", style), (b"t", kind))
            if value is not None
        )
        text = rb"<%(p)bis>" + t_text + rb"</%(p)bis>" if inline else rb"<%(p)bv>([^<]*)</%(p)bv>"
        body = b">" + text
        cells.append(
            rb'<%bc r="%b\1"%b' % (p, column, attributes) + body % {b"p": p} + b"</%bc>" % p
        )
    return re.compile(rb'<%brow r="([0-9]+)"[^>]*>%b</%brow>' % (p, b"".join(cells), p))


_GROUPS = 3 + _CELL_GROUPS  # re.split's pieces per cell: the text before it and its groups
_ROW_GROUPS = 1 + _CELL_GROUPS  # a row pattern's groups per column
# Whitespace between two tags: pretty-printed XML.
_SPACED = re.compile(rb">\s+<")
# The most columns a row pattern is made for (wider sheets are read cell by cell).
_ROW_COLUMNS = 256
# How a block says that some of its text is preserved (see `_learn`).
_PRESERVE = b'xml:space="preserve"'
# A block this large holds a long row (blocks are cut every 64 KiB): its cells are counted.
_LARGE = 1 << 20


class SheetReader:
    """A sheet's rows as Blocks. Four ways, fastest first: when the last block's columns each
    kept one cell form (a table), rows in those forms are matched whole by a pattern made for
    them; rows whose cells are all in the columns met so far are matched whole by the row
    pattern (both convert a column at a time); a block the cell pattern covers (which gives the
    columns for the row pattern) is converted cell by cell; anything else is parsed by
    ElementTree. Each way hands a block it cannot read whole to the next, and all read a cell
    alike (the fast ways take only the forms whose reading they share with the parser).

    Where cells go, as LibreOffice places them: a row's number is its `r`, else the previous
    row's plus one; a cell with `r` goes where that says (written in any column order), one
    without in its row, right of the cell before it. Rows are refused (Refused) when their
    numbers go backwards or repeat (Excel never writes that), or leave rows 1 to 1,048,576, or
    a cell leaves columns A to XFD; and a cell whose text, or a row whose XML, is over its
    limit (`Limits`), or a row of more cells than a row has columns.
    """

    def __init__(
        self,
        fh: Readable,
        styles: bytes,
        strings: SharedStrings,
        date1904: bool,
        watch: int | None,
        limits: Limits,
        sheet: str,
    ) -> None:
        self._fh = fh
        self._sheet = sheet  # how messages name it: sheet 'Contacts'
        self._styles = styles
        self._strings = strings
        self._epoch = _EPOCH_1904 if date1904 else _EPOCH_1900
        self._date1904 = date1904
        self._watch = watch
        self._limits = limits
        self._last_row = 0  # the last row element's number (a row without `r` is the next)
        self._last_line = 0  # the last row with cells handed on (rows only go forwards)
        # The row pattern: the columns it knows (as indices) and the pattern.
        self._row: tuple[tuple[int, ...], re.Pattern[bytes]] | None = None
        self._letters: set[bytes] = set()
        self._ordered: tuple[bytes, ...] = ()  # the letters in column order
        self._spaced = False
        self._prefix = b""
        # The row pattern made for the shapes the last block's columns had, one group a cell.
        self._shaped: tuple[tuple[list[_Shape], bool], re.Pattern[bytes]] | None = None

    def blocks(self) -> Iterator[Block]:
        part = Part(
            self._fh,
            "sheetData",
            "row",
            limit=self._limits.line_bytes,
            name=self._sheet,
            place=self._place,
        )
        self._prefix = part.prefix
        self._cell = _cell_pattern(part.prefix)
        p = re.escape(part.prefix)
        # A row's start tag as the fast paths take it: `r` first (the row's number is then in
        # the tag: a row without one is numbered by the parser, in order).
        row_tag = rb"<%brow r=\"[0-9]+\"(?:[^>\"'<]|\"[^\"<]*\"|'[^'<]*')*" % p
        # Between the cells the cell pattern found: row tags and whitespace only (joined on
        # NUL, which XML cannot hold, so that two pieces cannot make a tag together).
        self._gaps = re.compile(rb"(?:\s|\0|%b>|</%brow>)*+" % (row_tag, p))
        # Between the rows the row pattern found: rows without cells and whitespace only.
        self._row_gaps = re.compile(rb"(?:\s|\0|%b/>)*+" % row_tag)
        self._last_tag = re.compile(rb'<%brow r="([0-9]+)"' % p)
        for block, plain in part.blocks():
            try:
                found = self._read(part, block, plain)
            except _OutOfSheet as exc:
                raise Refused(
                    f"{self._sheet} has a cell in column {exc}, right of Excel's last column (XFD)"
                ) from None
            if found.lines:
                self._check(found, len(block))
                yield found

    def _read(self, part: Part, block: bytes, plain: bool) -> Block:
        """One block's rows, the fastest way that reads it whole. (The part is not kept: it
        refers to this reader, and a cycle would keep both, and the part's file, until the
        garbage collector runs, which it does not while loading.)"""
        if len(block) > _LARGE:
            self._count_cells(block)
        row_gaps = self._row_gaps
        found = None
        if plain and self._shaped is not None:
            found = self._by_shape(block, row_gaps)
        if found is None and plain and self._row is not None:
            found = self._by_rows(block, row_gaps)
        if found is None and plain:
            parts = self._cell.split(block)
            if self._gaps.fullmatch(b"\0".join(parts[::_GROUPS])):
                # The row pattern grows to every column met (so it is made again only
                # when a new column turns up), up to `_ROW_COLUMNS`.
                letters = self._letters | set(parts[1::_GROUPS])
                spaced = self._spaced or _SPACED.search(block) is not None
                new = letters != self._letters or spaced != self._spaced
                if new and len(letters) <= _ROW_COLUMNS:
                    self._letters, self._spaced = letters, spaced
                    self._ordered = tuple(sorted(letters, key=_column_index))
                    self._row = (
                        tuple(map(_column_index, self._ordered)),
                        _row_pattern(part.prefix, self._ordered, spaced),
                    )
                    self._shaped = None
                    found = self._by_rows(block, row_gaps)
                if found is None:
                    found = self._cells(parts)
        if found is None:
            found = self._parsed(part.parse(block))  # numbers its rows as it goes
        else:  # every row tag of the block has `r` first: the last one numbers the next
            tag = self._last_tag.match(block, block.rfind(b"<%brow " % part.prefix))
            if tag is not None:
                self._last_row = int(tag.group(1))
        return found

    def _count_cells(self, block: bytes) -> None:
        """A large block (a long row in it) holds at most a full row of cells per row: reading
        a million cells of one row would take a second and hundreds of MiB."""
        p = self._prefix
        rows = block.count(b"<%brow" % p)
        cells = sum(block.count(b"<%bc%b" % (p, end)) for end in (b" ", b">", b"/"))
        if cells > MAX_COLUMNS * max(rows, 1):
            raise Refused(
                f"{self._place(block[:256])} has more cells than a row has columns "
                f"({MAX_COLUMNS:,}): open the file in Excel and save it again"
            )

    def _place(self, head: bytes) -> str:
        """The row a refused item starts (`head`: its first bytes)."""
        number = re.search(rb'<(?:\w+:)?row\b[^>]*?\sr="([0-9]+)"', head)
        return f"{self._sheet} row {int(number.group(1)) if number else self._last_row + 1:,}"

    def _check(self, block: Block, size: int) -> None:
        """Rows only go forwards, within the sheet; cells within their limit."""
        lines = block.lines
        if lines[0] < 1 or lines[-1] > MAX_ROW:
            beyond = min(lines) if min(lines) < 1 else max(lines)
            raise Refused(
                f"{self._sheet} has a row {beyond:,}, outside Excel's rows (1 to {MAX_ROW:,})"
            )
        previous = self._last_line
        if lines[0] <= previous or lines[-1] - lines[0] != len(lines) - 1:
            for line in lines:
                if line <= previous:
                    raise Refused(
                        f"{self._sheet}: row {line:,} comes after row {previous:,} in the file, "
                        "which Excel never writes; open the file in Excel and save it again"
                    )
                previous = line
        self._last_line = lines[-1]
        cap = self._limits.cell_chars
        if size > cap:  # only then can one cell's text be over it
            for index, column in enumerate(block.columns):
                if len(max(column, key=len)) > cap:
                    n = next(n for n, text in enumerate(column) if len(text) > cap)
                    place = f"{self._sheet} cell {column_letters(index)}{lines[n]}"
                    raise too_long(place, len(column[n]), self._limits)

    def _split(
        self, block: bytes, row: re.Pattern[bytes], per_cell: int, row_gaps: re.Pattern[bytes]
    ) -> tuple[list[Any], int, list[int]] | None:
        """`block` split by a row pattern with `per_cell` groups a column: the pieces, the step
        from one row's pieces to the next, the rows' numbers; None when some row does not
        match (what lies between the matches is not only row tags and whitespace)."""
        assert self._row is not None
        parts = row.split(block)
        step = 2 + per_cell * len(self._row[0])
        if not row_gaps.fullmatch(b"\0".join(parts[::step])):
            return None
        return parts, step, list(map(int, parts[1::step]))

    def _by_rows(self, block: bytes, row_gaps: re.Pattern[bytes]) -> Block | None:
        """A block split by the row pattern, converted a column at a time; None when some of
        its rows do not match (a cell in another column, or in another form)."""
        assert self._row is not None
        indices, row = self._row
        split = self._split(block, row, _ROW_GROUPS, row_gaps)
        if split is None:
            return None
        parts, step, lines = split
        count = len(lines)
        blank = [""] * count
        columns = [blank] * (indices[-1] + 1)  # the columns without cells share one list
        numbers: dict[int, str] = {}
        shapes: list[_Shape | None] = []
        for k, index in enumerate(indices):
            at = 2 + _ROW_GROUPS * k
            there = parts[at::step]
            styles, types, inline, values = (parts[at + g :: step] for g in range(1, 5))
            shapes.append(_shape(there, styles, types, inline, values))
            watched = numbers if index == self._watch else None
            if None in there:  # some rows have no cell here: those stay empty
                rows = [n for n, mark in enumerate(there) if mark is not None]
                styles, types, inline, values = (
                    [group[n] for n in rows] for group in (styles, types, inline, values)
                )
                found = self._texts(
                    styles, types, inline, values, [lines[n] for n in rows], watched
                )
                column = [""] * count
                for n, text in zip(rows, found, strict=True):
                    column[n] = text
                columns[index] = column
            else:
                columns[index] = self._texts(styles, types, inline, values, lines, watched)
        self._learn(shapes, _PRESERVE in block)
        return Block(lines, _trimmed(columns, blank), numbers)

    def _learn(self, shapes: list[_Shape | None], preserved: bool) -> None:
        """The shaped row pattern for the next blocks, when every column of this one had a
        single shape; else none."""
        known = [shape for shape in shapes if shape is not None]
        if len(known) < len(shapes):
            self._shaped = None
        elif self._shaped is None or self._shaped[0] != (known, preserved):
            pattern = _shaped_pattern(self._prefix, self._ordered, known, preserved)
            self._shaped = (known, preserved), pattern

    def _by_shape(self, block: bytes, row_gaps: re.Pattern[bytes]) -> Block | None:
        """A block split by the shaped row pattern (one group a cell); None when some of its
        rows do not match."""
        assert self._row is not None
        assert self._shaped is not None
        indices = self._row[0]
        (shapes, _), row = self._shaped
        split = self._split(block, row, 1, row_gaps)
        if split is None:
            return None
        parts, step, lines = split
        count = len(lines)
        blank = [""] * count
        columns = [blank] * (indices[-1] + 1)
        numbers: dict[int, str] = {}
        none: list[bytes | None] = [None] * count
        for k, (index, (inline, style, kind)) in enumerate(zip(indices, shapes, strict=True)):
            found = parts[2 + k :: step]
            texts: list[bytes | None] = found if inline else none
            values: list[bytes | None] = none if inline else found
            watched = numbers if index == self._watch else None
            columns[index] = self._texts(
                [style] * count, [kind] * count, texts, values, lines, watched
            )
        return Block(lines, _trimmed(columns, blank), numbers)

    def _texts(
        self,
        styles: list[bytes | None],
        types: list[bytes | None],
        inline: list[bytes | None],
        values: list[bytes | None],
        lines: list[int],
        numbers: dict[int, str] | None,
    ) -> list[str]:
        """A column's cells as text: in one go when they are all strings of one kind; else cell
        by cell, noting the number cells in `numbers` when given."""
        kinds = set(types)
        if kinds == {b"inlineStr"}:
            return _decode_all([t or b"" for t in inline])
        if kinds == {b"s"} and None not in values:
            return self._strings.many(cast(list[bytes], values))
        if kinds == {b"str"}:
            return _decode_all([v or b"" for v in values])
        out: list[str] = []
        for n, line in enumerate(lines):
            text, shown = self._raw(types[n], styles[n], inline[n], values[n])
            out.append(text)
            if numbers is not None and shown is not None:
                numbers[line] = shown
        return out

    def _cells(self, parts: list[bytes]) -> Block:
        rows: list[tuple[int, list[tuple[int, str]]]] = []
        numbers: dict[int, str] = {}
        current = b""
        cells: list[tuple[int, str]] = []
        for at in range(1, len(parts) - 1, _GROUPS):
            col, num, style, kind, inline, value = parts[at : at + 6]
            if num != current:
                current = num
                cells = []
                rows.append((int(num), cells))
            index = _column_index(col)
            text, shown = self._raw(kind, style, inline, value)
            cells.append((index, text))
            if shown is not None and index == self._watch:
                numbers[rows[-1][0]] = shown
        return _assemble(rows, numbers)

    def _parsed(self, elements: list[ElementTree.Element]) -> Block:
        rows: list[tuple[int, list[tuple[int, str]]]] = []
        numbers: dict[int, str] = {}
        for row in elements:
            number = int_or_none(row.get("r"))
            number = self._last_row + 1 if number is None else number
            self._last_row = number
            index = -1
            for c in row:
                if c.tag.rpartition("}")[2] != "c":
                    continue
                line = number
                ref = _REF.fullmatch(c.get("r", ""))
                if ref is not None:
                    index = _column_index(ref.group(1).encode())
                    line = int(ref.group(2))
                elif index + 1 < MAX_COLUMNS:
                    index += 1
                else:
                    raise _OutOfSheet(f"{column_letters(MAX_COLUMNS)} (no r)")
                inline = value = None
                for part in c:
                    local = part.tag.rpartition("}")[2]
                    if local == "v":
                        value = ooxml_text(part.text or "")
                    elif local == "is":
                        inline = si_text(part)
                text, shown = self._value(
                    c.get("t", ""), int_or_none(c.get("s")) or 0, inline, value
                )
                if not rows or rows[-1][0] != line:
                    rows.append((line, []))
                rows[-1][1].append((index, text))
                if shown is not None and index == self._watch:
                    numbers[line] = shown
        return _assemble(rows, numbers)

    def _raw(
        self, kind: bytes | None, style: bytes | None, inline: bytes | None, value: bytes | None
    ) -> tuple[str, str | None]:
        """A cell from the fast pattern's groups."""
        return self._value(
            kind.decode() if kind else "",
            int(style) if style else 0,
            None if inline is None else fix_text(inline.decode("utf-8")),
            None if value is None else fix_text(value.decode("utf-8")),
        )

    def _value(
        self, kind: str, style: int, inline: str | None, value: str | None
    ) -> tuple[str, str | None]:
        """A cell as text, and, for a number cell, the number as messages show it.

        An inline string is its `<is>` only: a `<v>` beside it (or instead of it) is left out,
        as LibreOffice and calamine read it (it is empty when there is no `<is>`).
        """
        if kind == "inlineStr":
            return inline or "", None
        if not value:
            return "", None
        if kind == "s":
            try:
                return self._strings.get(int(value)), None
            except ValueError:
                raise XlsxError(f"a shared string index that is not a number: {value!r}") from None
        if kind == "b":
            return ("TRUE" if value.strip() in ("1", "true") else "FALSE"), None
        if kind == "e":
            return "", None  # an error (#N/A, #DIV/0!...): an empty cell, as calamine had it
        if kind == "d":
            return _iso_text(value), None
        if kind in ("", "n"):
            return self._number(value, style)
        return value, None  # "str": a formula's text; an unknown type: its text

    def _number(self, value: str, style: int) -> tuple[str, str | None]:
        try:
            number = float(value)
        except ValueError:
            raise XlsxError(f"a number cell holding {value!r}") from None
        if number != number:
            return "", None  # NaN: an empty cell
        kind = self._styles[style] if 0 <= style < len(self._styles) else PLAIN
        if kind:
            text = self._moment(number, kind)
            if text is not None:
                return text, None
        whole = number.is_integer()
        text = str(int(number)) if whole else repr(number)
        return text, (text if whole and abs(number) < 1e15 else repr(number))

    def _moment(self, number: float, kind: int) -> str | None:
        """A date, date and time, time or elapsed time as text (None: beyond what Python's
        dates and durations hold, such as a number of days in the billions: then the number).

        To the millisecond. In the 1900 system Excel counts a 29 February 1900 that never was:
        from serial 60 on, a day less. A serial below 1 is a time of day.
        """
        try:
            if kind == DURATION:
                return str(datetime.timedelta(milliseconds=round(number * _MS_A_DAY)))
            if not self._date1904 and number >= 60:
                number -= 1
            moment = self._epoch + datetime.timedelta(milliseconds=round(number * _MS_A_DAY))
        except (OverflowError, ValueError):  # ValueError: an infinite number
            return None
        if number < 1:
            return str(moment.time())
        if number.is_integer():
            return moment.date().isoformat()
        return str(moment)


def _iso_text(value: str) -> str:
    """A `t="d"` cell (ISO 8601 text) as the other dates read."""
    text = value.strip()
    try:
        if "T" not in text and ":" in text:
            return str(datetime.time.fromisoformat(text))
        moment = datetime.datetime.fromisoformat(text.rstrip("Z"))
    except ValueError:
        return value
    if "T" not in text and " " not in text:
        return moment.date().isoformat()
    return str(moment)


def _trimmed(columns: list[list[str]], blank: list[str]) -> list[list[str]]:
    """Columns without the empty ones on the right (`blank`: the list empty columns share):
    a styled empty cell far right in every row, as some files have, would make every block
    that wide."""
    width = len(columns)
    while width and (columns[width - 1] is blank or not any(columns[width - 1])):
        width -= 1
    del columns[width:]
    return columns


def column_letters(index: int) -> str:
    """A 0-based column index as Excel names it (0: A, 26: AA)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _assemble(rows: list[tuple[int, list[tuple[int, str]]]], numbers: dict[int, str]) -> Block:
    """Rows of (column, text) cells as a Block, as wide as its rightmost cell with text (cells
    in any column order; of a column written twice in a row, the last cell counts)."""
    if not rows:
        return Block([], [], numbers)
    width = 1 + max((index for _, cells in rows for index, text in cells if text), default=-1)
    count = len(rows)
    blank = [""] * count
    columns = [blank] * width
    for n, (_, cells) in enumerate(rows):
        for index, text in cells:
            if index >= width:
                continue  # an empty cell right of every text
            column = columns[index]
            if column is blank:
                if not text:
                    continue
                column = columns[index] = [""] * count
            column[n] = text
    return Block([line for line, _ in rows], columns, numbers)
