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
from typing import IO, Any, cast
from xml.etree import ElementTree

from batcher.loading._xlsx_part import Part, XlsxError
from batcher.loading._xlsx_strings import SharedStrings, fix_text, ooxml_text, si_text

# A number style's kind: plain number, a date/time, an elapsed time ([h]:mm).
PLAIN, DATE, DURATION = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Block:
    """Successive rows of a sheet: their sheet row numbers and cells as text, column by column
    from column A (as many columns as the block's widest row). `numbers` maps the row number of
    each number cell in the watched column to the number as shown in messages."""

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
# Column letters -> 0-based index, filled as columns are met (at most 16,384).
_COLUMNS: dict[bytes, int] = {}
_REF = re.compile(r"([A-Za-z]{1,3})([0-9]+)")


def _column_index(letters: bytes) -> int:
    found = _COLUMNS.get(letters)
    if found is None:
        found = 0
        for ch in letters.upper():
            found = found * 26 + ch - 64
        found -= 1
        _COLUMNS[letters] = found
    return found


# A cell's attributes after `r` and its content, as the usual producers write them (attributes
# r, s, t in that order; a value, a formula and its cached value, an inline string, or nothing).
# Groups: style, type, inline text, value.
_CELL_BODY = (
    rb'(?: s="([0-9]+)")?(?: t="([a-zA-Z]+)")?\s*'
    rb"(?:/>|>(?:<%(p)bis><%(p)bt(?: xml:space=\"preserve\")?>([^<]*)</%(p)bt></%(p)bis>"
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
    prefix: bytes, letters: tuple[bytes, ...], shapes: list[_Shape]
) -> re.Pattern[bytes]:
    """A row whose cells are all there, each in its column's one form: half the time of the
    row pattern (no alternatives, one group a cell). Groups: the row's number, then each cell's
    text or value."""
    p = re.escape(prefix)
    cells = []
    for column, (inline, style, kind) in zip(letters, shapes, strict=True):
        attributes = b"".join(
            b' %b="%b"' % (name, re.escape(value))
            for name, value in ((b"s", style), (b"t", kind))
            if value is not None
        )
        if inline:
            body = rb'><%(p)bis><%(p)bt(?: xml:space="preserve")?>([^<]*)</%(p)bt></%(p)bis>'
        else:
            body = rb"><%(p)bv>([^<]*)</%(p)bv>"
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


class SheetReader:
    """A sheet's rows as Blocks. Four ways, fastest first: when the last block's columns each
    kept one cell form (a table), rows in those forms are matched whole by a pattern made for
    them; rows whose cells are all in the columns met so far are matched whole by the row
    pattern (both convert a column at a time); a block the cell pattern covers (which gives the
    columns for the row pattern) is converted cell by cell; anything else is parsed by
    ElementTree. Each way hands a block it cannot read whole to the next."""

    def __init__(
        self,
        fh: IO[bytes],
        styles: list[int],
        strings: SharedStrings,
        date1904: bool,
        watch: int | None,
    ) -> None:
        self._fh = fh
        self._styles = styles
        self._strings = strings
        self._epoch = _EPOCH_1904 if date1904 else _EPOCH_1900
        self._date1904 = date1904
        self._watch = watch
        self._last_row = 0  # for rows without `r`: the row number is then the next one
        # The row pattern: the columns it knows (as indices) and the pattern.
        self._row: tuple[tuple[int, ...], re.Pattern[bytes]] | None = None
        self._letters: set[bytes] = set()
        self._ordered: tuple[bytes, ...] = ()  # the letters in column order
        self._spaced = False
        self._prefix = b""
        # The row pattern made for the shapes the last block's columns had, one group a cell.
        self._shaped: tuple[list[_Shape], re.Pattern[bytes]] | None = None

    def blocks(self) -> Iterator[Block]:
        part = Part(self._fh, "sheetData", "row")
        cell = _cell_pattern(part.prefix)
        p = re.escape(part.prefix)
        # Between the cells the cell pattern found: row tags and whitespace only (joined on
        # NUL, which XML cannot hold, so that two pieces cannot make a tag together).
        gaps = re.compile(
            rb"(?:\s|\0|<%brow\b(?:[^>\"'<]|\"[^\"<]*\"|'[^'<]*')*>|</%brow>)*+" % (p, p)
        )
        # Between the rows the row pattern found: rows without cells and whitespace only.
        row_gaps = re.compile(rb"(?:\s|\0|<%brow\b(?:[^>\"'<]|\"[^\"<]*\"|'[^'<]*')*/>)*+" % p)
        self._prefix = part.prefix
        for block, plain in part.blocks():
            found = None
            if plain and self._shaped is not None:
                found = self._by_shape(block, row_gaps)
            if found is None and plain and self._row is not None:
                found = self._by_rows(block, row_gaps)
            if found is None and plain:
                parts = cell.split(block)
                if gaps.fullmatch(b"\0".join(parts[::_GROUPS])):
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
                found = self._parsed(part.parse(block))
            if found.lines:
                yield found

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
        lines = list(map(int, parts[1::step]))
        if lines:
            self._last_row = lines[-1]
        return parts, step, lines

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
        columns: list[list[str]] = [[""] * count for _ in range(indices[-1] + 1)]
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
                column = columns[index]
                for n, text in zip(rows, found, strict=True):
                    column[n] = text
            else:
                columns[index] = self._texts(styles, types, inline, values, lines, watched)
        self._learn(shapes)
        return Block(lines, columns, numbers)

    def _learn(self, shapes: list[_Shape | None]) -> None:
        """The shaped row pattern for the next blocks, when every column of this one had a
        single shape; else none."""
        known = [shape for shape in shapes if shape is not None]
        if len(known) < len(shapes):
            self._shaped = None
        elif self._shaped is None or self._shaped[0] != known:
            self._shaped = known, _shaped_pattern(self._prefix, self._ordered, known)

    def _by_shape(self, block: bytes, row_gaps: re.Pattern[bytes]) -> Block | None:
        """A block split by the shaped row pattern (one group a cell); None when some of its
        rows do not match."""
        assert self._row is not None
        assert self._shaped is not None
        indices = self._row[0]
        shapes, row = self._shaped
        split = self._split(block, row, 1, row_gaps)
        if split is None:
            return None
        parts, step, lines = split
        count = len(lines)
        columns: list[list[str]] = [[""] * count for _ in range(indices[-1] + 1)]
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
        return Block(lines, columns, numbers)

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
        if rows:
            self._last_row = rows[-1][0]
        return _assemble(rows, numbers)

    def _parsed(self, elements: list[ElementTree.Element]) -> Block:
        rows: list[tuple[int, list[tuple[int, str]]]] = []
        numbers: dict[int, str] = {}
        for row in elements:
            line = int_or_none(row.get("r")) or self._last_row + 1
            cells: list[tuple[int, str]] = []
            index = -1
            for c in row:
                if c.tag.rpartition("}")[2] != "c":
                    continue
                ref = _REF.fullmatch(c.get("r", ""))
                if ref is not None:
                    index = _column_index(ref.group(1).encode())
                    line = int(ref.group(2)) if not cells else line
                else:
                    index += 1
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
                cells.append((index, text))
                if shown is not None and index == self._watch:
                    numbers[line] = shown
            if cells:
                rows.append((line, cells))
            self._last_row = line
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
        """A cell as text, and, for a number cell, the number as messages show it."""
        if kind == "inlineStr":
            return (inline if inline is not None else value or ""), None
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
        kind = self._styles[style] if style < len(self._styles) else PLAIN
        if kind:
            text = self._moment(number, kind)
            if text is not None:
                return text, None
        whole = number.is_integer()
        text = str(int(number)) if whole else repr(number)
        return text, (text if whole and abs(number) < 1e15 else repr(number))

    def _moment(self, number: float, kind: int) -> str | None:
        """A date, date and time, time or elapsed time as text (None: beyond what dates hold).

        To the millisecond. In the 1900 system Excel counts a 29 February 1900 that never was:
        from serial 60 on, a day less. A serial below 1 is a time of day.
        """
        if kind == DURATION:
            return str(datetime.timedelta(milliseconds=round(number * _MS_A_DAY)))
        if not self._date1904 and number >= 60:
            number -= 1
        try:
            moment = self._epoch + datetime.timedelta(milliseconds=round(number * _MS_A_DAY))
        except OverflowError:
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


def _assemble(rows: list[tuple[int, list[tuple[int, str]]]], numbers: dict[int, str]) -> Block:
    """Rows of (column, text) cells as a Block."""
    if not rows:
        return Block([], [], numbers)
    width = 1 + max((cells[-1][0] for _, cells in rows if cells), default=-1)
    columns: list[list[str]] = [[""] * len(rows) for _ in range(width)]
    for n, (_, cells) in enumerate(rows):
        for index, text in cells:
            columns[index][n] = text
    return Block([line for line, _ in rows], columns, numbers)
