"""An .xlsx/.xlsm package read as a stream: a sheet's rows a block at a time, in bounded memory.

The package is a zip of XML parts. `Book` reads the small ones whole (the workbook, its
relationships, the styles) with ElementTree. A sheet's XML (hundreds of MiB for a full sheet) is
inflated a block at a time and never held whole. Shared strings (xl/sharedStrings.xml, which can
hold millions of ids and emails) are read as far as the cells read so far need, and kept as one
UTF-8 buffer and an array of end offsets: 5.2 million strings of about 14 characters take 72 MB
and 21 MB so, and would take about 380 MB as a list of Python `str`.

Why not an XML parser for the sheet: ElementTree, lxml and expat all make Python objects or calls
for every element (`row`, `c`, `v`, `is`, `t`: four or five a cell). Walking the benchmark's
1,048,575-row sheet (351 MB of XML) and taking each cell's text, one run each on a quiet 2-core
machine: inflating alone 0.8 s; expat with callbacks 10.3 s; ElementTree's XMLPullParser 15.5 s,
or 12.9 s parsing blocks of whole rows with `fromstring`; lxml's iterparse (tag=row) 7.3 s doing
nothing with the rows, 17.9 s taking the cells; a first regular expression over blocks of rows
3.1 s; calamine's walk 4.2 s; this module 2.1 s. So each block of whole rows is split by regular
expressions (a row at a time in a table, see `_SheetReader`) for the cell forms that Excel,
LibreOffice, Google Sheets, openpyxl and xlsxwriter write (`<c r="B7" s="3" t="s"><v>12</v></c>`,
inline strings, formulas with a cached value, empty styled cells), and the text left between the
matches must be nothing but row tags and whitespace; when it is not (a cell
without `r`, rich text in an inline string, a comment, an attribute order no producer uses...),
that block is parsed by ElementTree instead, so the result is always the XML's, only slower for
unusual files. Blocks are cut after a `</row>`, which cannot occur inside text or attributes (`<`
is always escaped there); a block holding `<!` (a comment or CDATA) or `<?` is cut by a scan that
skips those, and parsed.

Text is unescaped as XML does (entities and character references, line ends normalised), then
OOXML's own `_xHHHH_` escapes (control characters) are decoded, as Excel shows them.
"""

from __future__ import annotations

import datetime
import posixpath
import re
import zipfile
import zlib
from array import array
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import IO, cast
from xml.etree import ElementTree

_MAIN_NAMESPACES = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",  # Strict Open XML
)
_REL_NAMESPACES = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",
)
_PACKAGE_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
# Inflated bytes read at a time from a sheet or the shared strings.
_BLOCK = 1 << 16
# A number style's kind: plain number, a date/time, an elapsed time ([h]:mm).
PLAIN, DATE, DURATION = 0, 1, 2
_BUILTIN_DATES = frozenset({*range(14, 23), 45, 47})
_BUILTIN_DURATION = 46


class XlsxError(Exception):
    """The workbook cannot be read; the message says why (the caller names the file)."""


# Everything a damaged package or XML can raise while it is read.
READ_ERRORS = (
    XlsxError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ElementTree.ParseError,
    UnicodeDecodeError,
    NotImplementedError,  # a compression method zipfile does not have
)


@dataclass(frozen=True, slots=True)
class Block:
    """Successive rows of a sheet: their sheet row numbers and cells as text, column by column
    from column A (as many columns as the block's widest row). `numbers` maps the row number of
    each number cell in the watched column to the number as shown in messages."""

    lines: list[int]
    columns: list[list[str]]
    numbers: dict[int, str]


@dataclass(frozen=True, slots=True)
class _Sheet:
    name: str
    member: str


class Book:
    """An opened workbook: its worksheets (chart sheets are not sheets of rows) in order."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path)
        try:
            if any(info.flag_bits & 1 for info in self._zip.infolist()):
                raise XlsxError("its parts are encrypted (a zip password, not Excel's)")
            self._names = {name.lower(): name for name in self._zip.namelist()}
            workbook = self._main_part()
            root = self._xml(workbook)
            rels = self._relationships(workbook)
            pr = _child(root, "workbookPr")
            self.date1904 = pr is not None and pr.get("date1904", "").lower() in ("1", "true")
            sheets: list[_Sheet] = []
            holder = _child(root, "sheets")
            for sheet in [] if holder is None else _children(holder, "sheet"):
                rel = next((sheet.get(f"{{{ns}}}id") for ns in _REL_NAMESPACES), None)
                kind, target = rels.get(rel or "", ("", ""))
                if kind.endswith("/worksheet"):
                    sheets.append(_Sheet(sheet.get("name", ""), target))
            self.sheets = sheets
            styles = next((t for k, t in rels.values() if k.endswith("/styles")), None)
            self._styles_member = styles
            strings = next((t for k, t in rels.values() if k.endswith("/sharedStrings")), None)
            self._strings_member = strings
        except BaseException:
            self._zip.close()
            raise

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> Book:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self, index: int, watch: int | None) -> Iterator[Block]:
        """The sheet's rows in blocks; `watch`: the column whose number cells are reported."""
        styles = self._style_kinds()
        member = self._member(self.sheets[index].member)
        with ExitStack() as stack:
            strings = SharedStrings()
            if self._strings_member is not None and self._strings_member.lower() in self._names:
                part = self._zip.open(self._member(self._strings_member))
                strings = SharedStrings(_string_blocks(stack.enter_context(part)))
            fh = stack.enter_context(self._zip.open(member))
            yield from _SheetReader(fh, styles, strings, self.date1904, watch).blocks()

    # --- parts ---------------------------------------------------------------------------

    def _member(self, name: str) -> str:
        """A part's name in the zip (part names are case-insensitive in a package)."""
        found = self._names.get(name.lower())
        if found is None:
            raise XlsxError(f"the workbook lists a part {name!r} that is not in the file")
        return found

    def _xml(self, name: str) -> ElementTree.Element:
        with self._zip.open(self._member(name)) as fh:
            return ElementTree.parse(fh).getroot()

    def _main_part(self) -> str:
        rels = self._relationships("")
        found = next((t for k, t in rels.values() if k.endswith("/officeDocument")), None)
        if found is None:
            raise XlsxError("no workbook part (not an Excel workbook)")
        return found

    def _relationships(self, part: str) -> dict[str, tuple[str, str]]:
        """A part's relationships: id -> (type, target part name)."""
        folder, base = posixpath.split(part)
        rels_name = posixpath.join(folder, "_rels", base + ".rels")
        if rels_name.lower() not in self._names:
            return {}
        found: dict[str, tuple[str, str]] = {}
        for rel in self._xml(rels_name).iter(_PACKAGE_RELS):
            target = rel.get("Target", "")
            if rel.get("TargetMode") == "External":
                continue
            if target.startswith("/"):
                name = target[1:]
            else:
                name = posixpath.normpath(posixpath.join(folder, target))
            found[rel.get("Id", "")] = (rel.get("Type", ""), name)
        return found

    def _style_kinds(self) -> list[int]:
        """For each cell style (`s` of a cell), whether its number format is a date or time."""
        if self._styles_member is None or self._styles_member.lower() not in self._names:
            return []
        root = self._xml(self._styles_member)
        codes: dict[int, str] = {}
        formats = _child(root, "numFmts")
        for fmt in [] if formats is None else _children(formats, "numFmt"):
            number = _int(fmt.get("numFmtId"))
            if number is not None:
                codes[number] = fmt.get("formatCode", "")
        kinds: list[int] = []
        xfs = _child(root, "cellXfs")
        for xf in [] if xfs is None else _children(xfs, "xf"):
            number = _int(xf.get("numFmtId")) or 0
            if number in codes:
                kinds.append(format_kind(codes[number]))
            elif number in _BUILTIN_DATES:
                kinds.append(DATE)
            else:
                kinds.append(DURATION if number == _BUILTIN_DURATION else PLAIN)
        return kinds


def _child(element: ElementTree.Element, name: str) -> ElementTree.Element | None:
    return next(_children(element, name), None)


def _children(element: ElementTree.Element, name: str) -> Iterator[ElementTree.Element]:
    """Children named `name` in the spreadsheet namespace (transitional or strict)."""
    for ns in _MAIN_NAMESPACES:
        yield from element.iterfind(f"{{{ns}}}{name}")


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def format_kind(code: str) -> int:
    """Whether a number format shows a date/time (DATE), an elapsed time (DURATION) or not.

    Only the first section counts (`yyyy-mm-dd;@`); quoted text, `\\x`, `_x` and `*x` are
    literals; a bracket holding only h, m or s (`[h]`, `[mm]`) is an elapsed time; other
    brackets (colours, conditions, locales such as `[$-409]`) say nothing; a date code (d m y h s,
    AM/PM or A/P) outside them makes a date.
    """
    i, n = 0, len(code)
    while i < n:
        ch = code[i]
        if ch in "\\_*":
            i += 2
        elif ch == '"':
            end = code.find('"', i + 1)
            i = n if end < 0 else end + 1
        elif ch == ";":
            return PLAIN
        elif ch == "[":
            end = code.find("]", i + 1)
            inner = (code[i + 1 :] if end < 0 else code[i + 1 : end]).lower()
            if inner and len(set(inner)) == 1 and inner[0] in "hms":
                return DURATION
            i = n if end < 0 else end + 1
        elif (
            ch in "dDmMyYhHsS"
            or code[i : i + 5].upper() == "AM/PM"
            or code[i : i + 3].upper() == "A/P"
        ):
            return DATE
        else:
            i += 1
    return PLAIN


# --- text -------------------------------------------------------------------------------------

_ENTITY = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+));|&")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _entity(match: re.Match[str]) -> str:
    name, decimal, hexadecimal = match.groups()
    if name:
        return _NAMED[name]
    if decimal is None and hexadecimal is None:
        raise XlsxError("a bare '&' in the XML (not well-formed)")
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if not (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ):
        raise XlsxError(f"a reference to an invalid XML character ({match.group(0)})")
    return chr(code)


def _fix_text(text: str) -> str:
    """Raw XML text as an XML parser gives it, then with OOXML's `_xHHHH_` escapes decoded."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in text:
        text = _ENTITY.sub(_entity, text)
    return _ooxml_text(text)


def _ooxml_text(text: str) -> str:
    """OOXML's escapes decoded: `_x000D_` is a carriage return, `_x005F_` a literal `_`."""
    if "_x" in text:
        return _OOXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return text


def _decode_all(raw: list[bytes]) -> list[str]:
    """Raw UTF-8 XML texts as strings, decoded in one go (XML text cannot hold a NUL)."""
    joined = b"\0".join(raw)
    if b"&" in joined or b"\r" in joined or b"_x" in joined:
        return [_fix_text(t) for t in joined.decode("utf-8").split("\0")]
    return joined.decode("utf-8").split("\0")


# --- shared strings ---------------------------------------------------------------------------


class SharedStrings:
    """The workbook's shared strings as one UTF-8 buffer and their end offsets, read from the
    part as far as the cells read so far need (opening a file reads the first few only)."""

    def __init__(self, blocks: Iterator[list[bytes]] | None = None) -> None:
        self._blocks = blocks
        self._data = bytearray()
        # 4 bytes an offset: a workbook's strings stay far below 4 GiB.
        self._ends = array("I", [0])
        # `_x0000_` can put a NUL in a string: then `many` cannot join on NUL.
        self._has_nul = False

    def __len__(self) -> int:
        return len(self._ends) - 1

    def get(self, index: int) -> str:
        self._read_to(index)
        if index < 0:
            raise XlsxError(f"a cell refers to shared string {index}, which does not exist")
        return self._data[self._ends[index] : self._ends[index + 1]].decode("utf-8")

    def many(self, raw: list[bytes]) -> list[str]:
        """The strings of raw `<v>` indices."""
        try:
            indices = list(map(int, raw))
        except ValueError as exc:
            raise XlsxError(f"a shared string index that is not a number ({exc})") from None
        if not indices:
            return []
        if min(indices) < 0:  # a negative index would count from the end
            raise XlsxError(f"a cell refers to shared string {min(indices)}, which does not exist")
        self._read_to(max(indices))
        data, ends = self._data, self._ends
        if self._has_nul:
            return [data[ends[i] : ends[i + 1]].decode("utf-8") for i in indices]
        return b"\0".join([data[ends[i] : ends[i + 1]] for i in indices]).decode().split("\0")

    def _read_to(self, index: int) -> None:
        """Read the part until it has string `index`."""
        while index >= len(self._ends) - 1:
            batch = None if self._blocks is None else next(self._blocks, None)
            if batch is None:
                raise XlsxError(f"a cell refers to shared string {index}, which does not exist")
            self.add(batch)

    def add(self, items: list[bytes]) -> None:
        """Append strings (UTF-8, unescaped)."""
        joined = b"".join(items)
        self._has_nul = self._has_nul or b"\0" in joined
        self._data += joined
        try:
            self._ends.extend(accumulate(map(len, items), initial=self._ends[-1]))
        except OverflowError:
            raise XlsxError("more than 4 GiB of shared strings") from None
        del self._ends[len(self._ends) - len(items) - 1]


# --- streaming the items of a part ------------------------------------------------------------

# A start tag; attribute values may hold `>`.
_START_TAG = re.compile(rb"<([\w.:-]+)((?:\s+[\w.:-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(/?)>")
_XMLNS = re.compile(rb"""\s(xmlns(?::[\w.-]+)?)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
# What can hide a `</row>` that is not one: comments, CDATA, processing instructions (an
# unclosed one runs to the end of the buffer).
_HIDING = rb"<!--(?:.*?-->|.*)|<!\[CDATA\[(?:.*?\]\]>|.*)|<\?(?:.*?\?>|.*)"
_NOT_UTF8 = re.compile(rb"<\?xml[^>]*encoding\s*=\s*[\"'](?!utf-8[\"'])", re.I)


class _Part:
    """The `item` elements of a part's `container` element (a sheet's rows, the strings of the
    shared strings), streamed as blocks of whole items."""

    def __init__(self, fh: IO[bytes], container: str, item: str) -> None:
        self._fh = fh
        self._rest, self.prefix, declarations, self._empty = _open_container(fh, container)
        p, c, i = self.prefix, container.encode(), item.encode()
        self._open_item = b"<%b%b" % (p, i)
        self._close_item = b"</%b%b>" % (p, i)
        self._close = b"</%b%b>" % (p, c)
        self._wrapper = b"<%b%b%b>" % (p, c, declarations)
        self._container = container
        self._item = item

    def blocks(self) -> Iterator[tuple[bytes, bool]]:
        """Blocks of whole items, each with whether it is plain: free of comments, CDATA and
        processing instructions (the fast paths read plain blocks only)."""
        if self._empty:
            _drain(self._fh)
            return
        buffer, self._rest = self._rest, b""
        while True:
            more = self._fh.read(_BLOCK)
            buffer += more
            plain = not _hides(buffer)
            end = buffer.find(self._close) if plain else _first_outside(buffer, self._close)
            if end >= 0:
                if buffer[:end].strip():
                    yield buffer[:end], plain
                _drain(self._fh)
                return
            if not more:
                raise XlsxError(f"the XML ends inside <{self._container}> (the file is cut short)")
            cut = self._cut(buffer, plain)
            if cut:
                yield buffer[:cut], plain
                buffer = buffer[cut:]

    def parse(self, block: bytes) -> list[ElementTree.Element]:
        """A block's items parsed as XML (with the namespaces declared above them)."""
        root = ElementTree.fromstring(self._wrapper + block + self._close)
        return [e for e in root if e.tag.rpartition("}")[2] == self._item]

    def _cut(self, buffer: bytes, plain: bool) -> int:
        """Where the last whole item in the buffer ends (0: none yet)."""
        if plain:
            end = buffer.rfind(self._close_item)
            cut = 0 if end < 0 else end + len(self._close_item)
            hidden = 0
        else:
            cut = hidden = 0
            token = re.compile(_HIDING + b"|" + re.escape(self._close_item), re.S)
            for match in token.finditer(buffer):
                if match.group(0) == self._close_item:
                    cut = match.end()
                else:
                    hidden = match.end()
        start = buffer.rfind(self._open_item)
        if start > max(cut, hidden):
            tag = _START_TAG.match(buffer, start)
            if tag is not None and tag.group(3):
                cut = tag.end()  # the last item is empty: <row r="7"/>
        return cut


def _hides(buffer: bytes) -> bool:
    """Whether the buffer holds `<!` or `<?`. (Looking for the rare `!` and `?` first is many
    times faster than looking for `<!`: `<` is everywhere in XML.)"""
    for mark in b"!?":
        at = buffer.find(mark)
        while at >= 0:
            if at and buffer[at - 1] == 0x3C:  # <
                return True
            at = buffer.find(mark, at + 1)
    return False


def _open_container(fh: IO[bytes], container: str) -> tuple[bytes, bytes, bytes, bool]:
    """Read up to the container's start tag: (the bytes after it, the spreadsheet namespace's
    prefix (b"" or b"x:"), the namespace declarations in scope, whether it is empty)."""
    data = b""
    name = container.encode()
    while True:
        more = fh.read(_BLOCK)
        data += more
        if more and (len(data) < 2 or (data.startswith(b"<?") and b"?>" not in data)):
            continue  # not yet the whole XML declaration
        if data[:2] in (b"\xff\xfe", b"\xfe\xff") or _NOT_UTF8.match(data):
            raise XlsxError("an XML part not in UTF-8 (no spreadsheet program writes those)")
        # The namespaces in scope at the container: the root's and its own (XLSX nests no
        # other element between them).
        scopes: dict[bytes, bytes] = {}
        for n, tag in enumerate(_START_TAG.finditer(data)):
            local = tag.group(1).rpartition(b":")[2]
            if n and local != name:
                continue
            for attribute, double, single in _XMLNS.findall(tag.group(2)):
                scopes[attribute] = double or single
            if local != name:
                continue
            prefix = tag.group(1)[: -len(local)]
            uri = scopes.get(b"xmlns:" + prefix[:-1] if prefix else b"xmlns", b"").decode()
            if uri not in _MAIN_NAMESPACES:
                raise XlsxError(f"<{container}> is not in the spreadsheet namespace")
            declarations = b"".join(b' %b="%b"' % item for item in scopes.items())
            return data[tag.end() :], prefix, declarations, tag.group(3) == b"/"
        if not more:
            raise XlsxError(f"no <{container}> in the part")


def _first_outside(buffer: bytes, needle: bytes) -> int:
    """The first `needle` not inside a comment, CDATA or processing instruction; -1 if none."""
    token = re.compile(_HIDING + b"|" + re.escape(needle), re.S)
    for match in token.finditer(buffer):
        if match.group(0) == needle:
            return match.start()
    return -1


def _drain(fh: IO[bytes]) -> None:
    """Read the part to its end: zipfile checks the part's CRC only there."""
    while fh.read(_BLOCK):
        pass


def _string_blocks(fh: IO[bytes]) -> Iterator[list[bytes]]:
    """The shared strings part's strings (UTF-8, unescaped), a block at a time."""
    part = _Part(fh, "sst", "si")
    p = re.escape(part.prefix)
    item = re.compile(
        rb"<%(p)bsi>(?:<%(p)bt(?: xml:space=\"preserve\")?>([^<]*)</%(p)bt>|<%(p)bt\s*/>)"
        rb"</%(p)bsi>|<%(p)bsi\s*/>" % {b"p": p}
    )
    gaps = re.compile(rb"[\s\0]*+")
    # The commonest block of all: nothing but plain strings, back to back. A bytes split on the
    # markup between them is several times faster than the pattern; it is the right reading
    # when no other `<` is left in the texts.
    start = b"<%bsi><%bt>" % (part.prefix, part.prefix)
    end = b"</%bt></%bsi>" % (part.prefix, part.prefix)
    between = end + start
    for block, plain in part.blocks():
        if plain and block.startswith(start) and block.endswith(end):
            inner = block[len(start) : -len(end)]
            raw = inner.split(between)
            if inner.count(b"<") == between.count(b"<") * (len(raw) - 1):
                if b"&" in inner or b"\r" in inner or b"_x" in inner:
                    raw = [_fix_text(t.decode("utf-8")).encode("utf-8") for t in raw]
                yield raw
                continue
        if plain:
            pieces = item.split(block)
            if gaps.fullmatch(b"\0".join(pieces[::2])):
                raw = [t or b"" for t in pieces[1::2]]
                if b"&" in block or b"\r" in block or b"_x" in block:
                    raw = [_fix_text(t.decode("utf-8")).encode("utf-8") for t in raw]
                yield raw
                continue
        yield [_si_text(si).encode("utf-8") for si in part.parse(block)]


def _si_text(si: ElementTree.Element) -> str:
    """A string item's text: its `t`, or its rich-text runs' `t`s (phonetic runs left out)."""
    parts: list[str] = []
    for child in si:
        local = child.tag.rpartition("}")[2]
        if local == "t":
            parts.append(child.text or "")
        elif local == "r":
            parts.extend(t.text or "" for t in child if t.tag.rpartition("}")[2] == "t")
    return _ooxml_text("".join(parts))


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


class _SheetReader:
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
        part = _Part(self._fh, "sheetData", "row")
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

    def _by_rows(self, block: bytes, row_gaps: re.Pattern[bytes]) -> Block | None:
        """A block split by the row pattern, converted a column at a time; None when some of
        its rows do not match (a cell in another column, or in another form)."""
        assert self._row is not None
        indices, row = self._row
        parts = row.split(block)
        step = 2 + _ROW_GROUPS * len(indices)
        if not row_gaps.fullmatch(b"\0".join(parts[::step])):
            return None
        lines = list(map(int, parts[1::step]))
        if lines:
            self._last_row = lines[-1]
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
        parts = row.split(block)
        step = 2 + len(indices)
        if not row_gaps.fullmatch(b"\0".join(parts[::step])):
            return None
        lines = list(map(int, parts[1::step]))
        if lines:
            self._last_row = lines[-1]
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
            line = _int(row.get("r")) or self._last_row + 1
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
                        value = _ooxml_text(part.text or "")
                    elif local == "is":
                        inline = _si_text(part)
                text, shown = self._value(c.get("t", ""), _int(c.get("s")) or 0, inline, value)
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
            None if inline is None else _fix_text(inline.decode("utf-8")),
            None if value is None else _fix_text(value.decode("utf-8")),
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
