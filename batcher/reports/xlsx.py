"""The XLSX report: its data sheet's XML written here, as a stream; the rest by xlsxwriter.

xlsxwriter's constant-memory mode writes a cell at a time through several Python calls each:
a 600,000-row report took minutes. Here each row is formatted whole from a template of its
cells, and a thousand rows' text is looked at at once, at C speed: only a batch holding
something to escape (``& < >``, a control character, a blank at a cell's edge, a cell over
Excel's 32,767 characters, text in a number column) is written row by row, its awkward cells
escaped one by one, as xlsxwriter escapes them.

The workbook around the data is xlsxwriter's: a skeleton workbook with the same sheets, the
bold frozen header, the column widths, the autofilter and the Summary sheet, whose
``sheet1.xml`` has only the header. Its parts are copied into the report's zip, and its
``sheet1.xml`` is split after the header: the rows are streamed in between. The skeleton is made
twice: once after the first rows (their widths are the columns', and the sheet's XML starts with
them) and once after the last (the autofilter's range and the Summary's facts). The zip is
written by `batcher.reports.zipping`, so that a part of the rows another process deflated goes
into the sheet as it is.

The data sheet's cells:
- text cells are inline strings (``t="inlineStr"``: no shared-string table to hold in memory),
  never formulas: a spreadsheet only runs a cell holding a formula, so any text is safe as it is;
- ``row``, ``line``, ``http_status`` and ``attempts`` are numbers when they are integers;
- an empty cell (None or "") is ``<c/>``; rows and cells carry no ``r`` reference (optional in
  ECMA-376 Part 1, 18.3.1.3 and 18.3.1.4): each takes the next row or column, as readers place
  them. So a part of the rows can be written by another process (`write_sheet_rows`, packed:
  deflated as the sheet's own data is) without knowing where it starts, and appended to the
  sheet's data without being inflated (`copy_sheet_rows`).
"""

from __future__ import annotations

import io
import itertools
import operator
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, cast

from batcher.domain.fields import NUMBER_FIELDS, RESULT_FIELDS
from batcher.domain.models import Cell
from batcher.reports.zipping import ZIP64_FROM, DeflatedMember, Packer, ZipWriter

__all__ = ["copy_sheet_rows", "write_sheet_rows", "write_xlsx"]

# Column widths (in characters): from the header and the first rows, within these bounds.
_WIDTH_SAMPLE = 200
_MIN_WIDTH = 8
_MAX_WIDTH = 60

_SHEET = "xl/worksheets/sheet1.xml"
_OPEN = '<c t="inlineStr"><is><t>'
_CLOSE = "</t></is></c>"
_BETWEEN = _CLOSE + _OPEN
_EMPTY = _OPEN + _CLOSE
_NUMBER = "<c><v>%s</v></c>"
_EMPTY_NUMBER = _NUMBER % ""
_INT = frozenset({int, type(None)})
# What makes a cell need care: XML's three, the control characters XML 1.0 cannot hold and
# Excel's own escape of them (`_xHHHH_`, itself escaped when literal), the two non-characters,
# and the blanks other than the space (a cell starting or ending with one needs
# xml:space="preserve"; the space is looked for at the cells' edges).
_SPECIAL = re.compile(
    "[&<>\x00-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufffe\uffff]|_x"
)
# The same in UTF-8, looked for in the bytes of many cells at once: the ASCII ones deleted by
# `bytes.translate`, the others found as byte strings (a regular expression takes tens of
# nanoseconds a character).
_ASCII_SPECIAL = bytes(range(32)) + b"&<>"
_UTF8_SPECIAL = tuple(
    chr(code).encode("utf-8")
    for code in (0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F,
                 0x3000, 0xFFFE, 0xFFFF)
)  # fmt: skip
_ESCAPED_ESCAPE = re.compile("(_x[0-9A-Fa-f]{4}_)")
_CONTROL = re.compile("([\x00-\x08\x0b-\x1f])")
# Excel caps a cell at 32,767 characters, counted in UTF-16 units; longer text is cut.
_CELL_MAX = 32_767
# Rows are encoded and handed to the zip this many at a time.
_BATCH = 1_000

Summary = Callable[[], Mapping[str, object]]
TooMany = Callable[[], Exception]
# Writes the sheet's last rows (another process's part) into it; returns how many.
Rest = Callable[[IO[bytes]], int]


def write_xlsx(
    file: IO[bytes],
    columns: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    summary: Summary | None,
    max_rows: int,
    too_many: TooMany,
    rest: Rest | None = None,
) -> int:
    """Write the report of `rows` (cells in `columns` order) into `file` as an XLSX workbook;
    return the number of rows. More than `max_rows` rows raise `too_many()`; `rest` writes the
    last rows after them; `summary`, called once all rows are written, gives the Summary
    sheet's facts."""
    source = iter(rows)
    sample = list(itertools.islice(source, _WIDTH_SAMPLE))
    widths = _widths(columns, sample)
    head, _ = _split(_skeleton(columns, widths, len(sample), {} if summary else None)[_SHEET])
    head = re.sub(rb"<dimension ref=\"[^\"]*\"/>", b"", head, count=1)  # rows still unknown
    encode = _RowEncoder(columns)
    sample_bytes = len(encode.rows(sample).encode("utf-8"))
    # Past 2 GiB, a zip member needs a Zip64 record, which must be asked for before it is
    # written; asked for only then: Excel takes such a record in a small file for damage (Apache
    # POI's documentation of Zip64Mode.Always).
    big = sample_bytes * 2 * max_rows // max(len(sample), 1) >= ZIP64_FROM
    count = 0
    with ZipWriter(file) as book:
        with book.stream(_SHEET, zip64=big) as sheet:
            sheet.write(head)
            for batch in _batches(itertools.chain(sample, source)):
                if count + len(batch) > max_rows:
                    raise too_many()
                sheet.write(encode.rows(batch).encode("utf-8"))
                count += len(batch)
            if rest is not None:
                # A file object to `rest`, as a zip member is to zipfile's callers: it writes
                # rows into it, or appends a packed part (`copy_sheet_rows`).
                count += rest(cast(IO[bytes], sheet))
                if count > max_rows:
                    raise too_many()
            parts = _skeleton(columns, widths, count, summary() if summary else None)
            sheet.write(_split(parts[_SHEET])[1])
        for name, data in parts.items():
            if name != _SHEET:
                book.add(name, data)
    return count


def write_sheet_rows(
    file: IO[bytes], columns: Sequence[str], rows: Iterable[Sequence[Cell]], *, packed: bool
) -> int:
    """Write the `<row>` elements of `rows` to `file` (into the sheet, or `packed`: into a part
    another process writes, for `copy_sheet_rows`); return the number of rows."""
    encode = _RowEncoder(columns)
    packer = Packer(file) if packed else None
    write = file.write if packer is None else packer.write
    count = 0
    for batch in _batches(iter(rows)):
        write(encode.rows(batch).encode("utf-8"))
        count += len(batch)
    if packer is not None:
        packer.close()
    return count


def copy_sheet_rows(part: IO[bytes], sheet: IO[bytes] | DeflatedMember) -> None:
    """Append a part `write_sheet_rows` packed (the file `part`) to the sheet `write_xlsx`
    gives its `rest`, as it is: deflated."""
    if not isinstance(sheet, DeflatedMember):
        raise TypeError("a packed part goes into the sheet write_xlsx gives its rest")
    sheet.append_packed(part)


def _batches(rows: Iterator[Sequence[Cell]]) -> Iterator[list[Sequence[Cell]]]:
    while batch := list(itertools.islice(rows, _BATCH)):
        yield batch


def _widths(columns: Sequence[str], sample: list[Sequence[Cell]]) -> list[int]:
    """Readable widths: the header's and the first rows' (a sample: a million rows stream)."""
    widths = [max(len(name) + 2, _MIN_WIDTH) for name in columns]
    for values in sample:
        for col, value in enumerate(values):
            if value is not None and value != "":
                widths[col] = max(widths[col], min(len(str(value)), _MAX_WIDTH) + 1)
    return [min(width, _MAX_WIDTH) for width in widths]


class _RowEncoder:
    """The XML of report rows: a row formatted at once from a template of its cells."""

    def __init__(self, columns: Sequence[str]) -> None:
        numbers = [i for i in NUMBER_FIELDS if i < min(len(RESULT_FIELDS), len(columns))]
        texts = [i for i in range(len(columns)) if i not in numbers]
        cells = "".join(
            _NUMBER if i in numbers else _OPEN + "%s" + _CLOSE for i in range(len(columns))
        )
        self._template = f"<row>{cells}</row>"
        self._numbers = operator.itemgetter(*numbers) if len(numbers) > 1 else None
        self._texts = operator.itemgetter(*texts) if len(texts) > 1 else None
        self._runs = [
            (group[0][0], group[-1][0] + 1, number)
            for number, grouped in itertools.groupby(
                enumerate(columns), key=lambda item: item[0] in numbers
            )
            for group in [list(grouped)]
        ]

    def rows(self, rows: Sequence[Sequence[Cell]]) -> str:
        """The `<row>` elements of `rows`: each formatted whole from the template (no Python
        code a cell), then all looked at once for anything that needs care (`_plain`); only
        if something does, row by row (`_careful`)."""
        if self._numbers is None or self._texts is None:
            return self._careful(rows)
        # Numbers as numbers: a number column holding anything but integers goes with care.
        kinds = set(map(type, itertools.chain.from_iterable(map(self._numbers, rows))))
        if not kinds <= _INT:
            return self._careful(rows)
        # An empty cell is "" for the template (None would print as "None").
        filled = [
            r if type(r) is tuple and None not in r else tuple("" if v is None else v for v in r)
            for r in rows
        ]
        texts = list(itertools.chain.from_iterable(map(self._texts, filled)))
        if not _plain(texts):
            return self._careful(rows)
        lines = list(map(self._template.__mod__, filled))
        # A cell that may be too long is in a row that long: the cells are measured only then.
        if max(map(len, lines), default=0) > _CELL_MAX // 2 and not _short(texts):
            return self._careful(rows)
        xml = "".join(lines)
        # Empty cells made `<c/>`; a pass over the XML each, skipped when there are none.
        if "" in texts:
            xml = xml.replace(_EMPTY, "<c/>")
        return xml.replace(_EMPTY_NUMBER, "<c/>") if type(None) in kinds else xml

    def _careful(self, rows: Iterable[Sequence[Cell]]) -> str:
        """`rows` for rows with something to take care of: a run of text cells at a time,
        each cell of a run with something in it on its own (`_cell`)."""
        out: list[str] = []
        add = out.append
        for values in rows:
            add("<row>")
            for start, stop, number in self._runs:
                cells = values[start:stop]
                if number:
                    add("".join(map(_number, cells)))
                elif all(type(cell) is str for cell in cells) and _plain(cells):
                    texts: Sequence[str] = cells  # type: ignore[assignment]
                    add(_fast(texts) if _short(texts) else "".join(map(_cell, texts)))
                else:
                    add("".join(map(_cell, cells)))
            add("</row>")
        return "".join(out)


def _number(value: Cell) -> str:
    """A cell of a number column: a number if it is an integer, else text."""
    return _NUMBER % value if type(value) is int else _cell(value)


def _fast(cells: Sequence[str]) -> str:
    """Text cells with nothing in them to take care of (`_plain`), as XML."""
    return (_OPEN + _BETWEEN.join(cells) + _CLOSE).replace(_EMPTY, "<c/>")


def _plain(texts: Sequence[Cell]) -> bool:
    """Whether text cells (str, "" when empty) hold nothing to escape, no blank but the space
    and no space at their edges: looked for in their UTF-8 bytes end to end, each cell after a
    NUL (which a cell holding one fails on anyway), at C speed (the edges looked for in the XML
    took twice as long: `<` is everywhere in it)."""
    try:
        data = "\x00".join(texts).encode("utf-8")  # type: ignore[arg-type]
    except (TypeError, UnicodeEncodeError):  # not text, or half a surrogate pair
        return False
    separators = max(len(texts) - 1, 0)
    if len(data) - len(data.translate(None, _ASCII_SPECIAL)) != separators or b"_x" in data:
        return False
    if data[:1] == b" " or data[-1:] == b" " or b"\x00 " in data or b" \x00" in data:
        return False
    return data.isascii() or not any(special in data for special in _UTF8_SPECIAL)


def _short(texts: Sequence[str]) -> bool:
    """Whether no text cell may be too long for Excel (`_cell` cuts those)."""
    return max(map(len, texts), default=0) <= _CELL_MAX // 2


def _cell(value: Cell) -> str:
    """One text cell, escaped as xlsxwriter escapes an inline string."""
    if value is None or value == "":
        return "<c/>"
    text = str(value)
    if len(text) > _CELL_MAX // 2:
        # UTF-16 units: a character past U+FFFF counts two; half a pair is dropped, not kept.
        units = text.encode("utf-16-le", "surrogatepass")[: 2 * _CELL_MAX]
        text = units.decode("utf-16-le", "ignore")
    if _SPECIAL.search(text):
        text = _ESCAPED_ESCAPE.sub(r"_x005F\1", text)
        text = _CONTROL.sub(lambda found: f"_x{ord(found[1]):04X}_", text)
        text = text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if text[0].isspace() or text[-1].isspace():
        return f'<c t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
    return _OPEN + text + _CLOSE


def _split(sheet: bytes) -> tuple[bytes, bytes]:
    """A skeleton's sheet XML cut after its header row: what goes before the rows, and after."""
    at = sheet.index(b"</sheetData>")
    return sheet[:at], sheet[at:]


def _skeleton(
    columns: Sequence[str], widths: list[int], rows: int, facts: Mapping[str, object] | None
) -> dict[str, bytes]:
    """The parts of a workbook like the report with only its header row (`rows` the number of
    data rows the autofilter spans), and a Summary sheet of `facts` when given."""
    # Imported here: only an XLSX report needs it, and every command (a CSV run, a plan, the
    # report's helper) starts without its 50 ms.
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer,
        {
            "in_memory": True,
            "strings_to_formulas": False,  # a text cell is never a formula...
            "strings_to_numbers": False,  # ...nor silently a number
            "strings_to_urls": False,  # ...nor a link
        },
    )
    try:
        sheet = workbook.add_worksheet("report")
        bold = workbook.add_format({"bold": True})
        for col, name in enumerate(columns):
            sheet.write_string(0, col, name, bold)
        sheet.freeze_panes(1, 0)
        for col, width in enumerate(widths):
            sheet.set_column(col, col, width)
        sheet.autofilter(0, 0, rows, len(columns) - 1)
        if facts is not None:
            _summary_sheet(workbook, facts, bold)
    finally:
        workbook.close()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as made:
        return {name: made.read(name) for name in made.namelist()}


def _summary_sheet(workbook: Any, facts: Mapping[str, object], bold: Any) -> None:
    """The `Summary` sheet: one fact per line; rows by status and the top reasons as tables."""
    sheet = workbook.add_worksheet("Summary")
    sheet.set_column(0, 0, 18)
    sheet.set_column(1, 1, 60)
    sheet.set_column(2, 2, 12)
    line = 0

    def put(label: str, value: object, *, label_format: Any = bold) -> None:
        nonlocal line
        sheet.write_string(line, 0, label, label_format)
        if isinstance(value, bool) or value is None:
            sheet.write_string(line, 1, "" if value is None else ("yes" if value else "no"))
        elif isinstance(value, int | float):
            sheet.write_number(line, 1, value)
        else:
            sheet.write_string(line, 1, str(value))
        line += 1

    for key, value in facts.items():
        if key == "counts" and isinstance(value, Mapping):
            line += 1
            sheet.write_string(line, 0, "rows by status", bold)
            line += 1
            for status, rows in value.items():
                put(str(status), rows, label_format=None)
            line += 1
        elif key == "reasons" and isinstance(value, list):
            if not value:
                continue
            line += 1
            sheet.write_string(line, 0, "top reasons", bold)
            sheet.write_string(line, 2, "rows", bold)
            line += 1
            for reason in value:
                if isinstance(reason, Mapping):
                    sheet.write_string(line, 0, str(reason.get("status", "")))
                    sheet.write_string(line, 1, str(reason.get("message", "")))
                    sheet.write_number(line, 2, int(str(reason.get("rows", 0))))
                    line += 1
        elif isinstance(value, Mapping):
            put(key, ", ".join(f"{k} {v}" for k, v in value.items()))
        else:
            put(key.replace("_", " "), value)
