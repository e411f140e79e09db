"""The workbook's shared strings, and XML text decoded as Excel shows it.

Shared strings (xl/sharedStrings.xml, which can hold millions of ids and emails) are read as far as
the cells read so far need, and kept as one UTF-8 buffer and an array of end offsets: 5.2 million
strings of about 14 characters take 72 MB and 21 MB so, and would take about 380 MB as a list of
Python `str`.

Text is unescaped as XML does (entities and character references, line ends normalised), then
OOXML's own `_xHHHH_` escapes (control characters) are decoded, as Excel shows them. A `<t>`
without `xml:space="preserve"` loses the whitespace (space, tab, line ends) at its ends, as Excel
shows it: every producer writes `preserve` on text that keeps such spaces.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from itertools import accumulate, repeat
from xml.etree import ElementTree

from batcher.loading._xlsx_part import Limits, Part, Readable, Refused, XlsxError

# --- text -------------------------------------------------------------------------------------

# A `<t>` element and its text as the fast paths take it (`%(p)b`: the namespace prefix): with
# xml:space="preserve", any text; without, text with nothing at either end that the parser's
# reading trims (whitespace, or a character reference that may stand for some): that rare text
# goes to the parser (producers mark text that keeps end spaces "preserve"). The lookahead
# runs once to the text's end and looks at its last character: a fraction of the pattern's time.
T_TEXT = (
    rb'<%(p)bt(?: xml:space="preserve">|>(?![ \t\r\n]|&#)(?=[^<]*(?<![ \t\r\n;])<))'
    rb"([^<]*)</%(p)bt>"
)
# T_TEXT without xml:space: where no text is preserved (as most producers write most blocks),
# the shaped row pattern has no alternative to try per cell: as fast as before text was trimmed.
PLAIN_T_TEXT = rb"<%(p)bt>(?![ \t\r\n]|&#)([^<]*)(?<![ \t\r\n;])</%(p)bt>"
# What an unpreserved `<t>` loses at its ends (XML's whitespace).
XML_SPACE = " \t\n\r"
_SPACE_BYTES = XML_SPACE.encode()
_PRESERVE = "{http://www.w3.org/XML/1998/namespace}space"

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


def fix_text(text: str) -> str:
    """Raw XML text as an XML parser gives it, then with OOXML's `_xHHHH_` escapes decoded."""
    return ooxml_text(xml_text(text))


def xml_text(text: str) -> str:
    """Raw XML text as an XML parser gives it: line ends normalised, references resolved."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in text:
        text = _ENTITY.sub(_entity, text)
    return text


def ooxml_text(text: str) -> str:
    """OOXML's escapes decoded: `_x000D_` is a carriage return, `_x005F_` a literal `_`."""
    if "_x" in text:
        return _OOXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return text


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


def string_blocks(fh: Readable, limits: Limits) -> Iterator[list[bytes]]:
    """The shared strings part's strings (UTF-8, unescaped), a block at a time; a string over
    the limits is refused."""
    count = 0  # strings read so far: the next one's index

    def place(head: bytes) -> str:
        return f"the workbook's shared string {count:,}"

    part = Part(fh, "sst", "si", limit=limits.line_bytes, name="the shared strings", place=place)
    p = re.escape(part.prefix)
    item = re.compile(
        (rb"<%(p)bsi>(?:" + T_TEXT + rb"|<%(p)bt\s*/>)</%(p)bsi>|<%(p)bsi\s*/>") % {b"p": p}
    )
    gaps = re.compile(rb"[\s\0]*+")
    # The commonest block of all: nothing but plain strings, back to back. A bytes split on the
    # markup between them is several times faster than the pattern; it is the right reading
    # when no other `<` is left in the texts.
    start = b"<%bsi><%bt>" % (part.prefix, part.prefix)
    end = b"</%bt></%bsi>" % (part.prefix, part.prefix)
    between = end + start
    for block, plain in part.blocks():
        raw = None
        if plain and block.startswith(start) and block.endswith(end):
            inner = block[len(start) : -len(end)]
            raw = inner.split(between)
            if inner.count(b"<") != between.count(b"<") * (len(raw) - 1):
                raw = None
            elif b"&" in inner or b"\r" in inner or b"_x" in inner:
                raw = [_trimmed(t) for t in raw]
            else:  # unpreserved, every one: trimmed (bytes.strip hands back an untouched one)
                raw = list(map(bytes.strip, raw, repeat(_SPACE_BYTES)))
        if raw is None and plain:
            pieces = item.split(block)
            if gaps.fullmatch(b"\0".join(pieces[::2])):
                raw = [t or b"" for t in pieces[1::2]]
                if b"&" in block or b"\r" in block or b"_x" in block:
                    raw = [fix_text(t.decode("utf-8")).encode("utf-8") for t in raw]
        if raw is None:
            raw = [si_text(si).encode("utf-8") for si in part.parse(block)]
        if len(block) > limits.cell_chars:  # only then can one string be over it
            for n, text in enumerate(raw):
                if len(text) > limits.cell_chars:  # bytes: perhaps over it in characters
                    length = len(text.decode("utf-8"))
                    if length > limits.cell_chars:
                        count += n
                        raise too_long(place(b""), length, limits)
        count += len(raw)
        yield raw


def _trimmed(raw: bytes) -> bytes:
    """An unpreserved `<t>`'s raw text as it reads (UTF-8): unescaped, trimmed, then decoded."""
    return ooxml_text(xml_text(raw.decode("utf-8")).strip(XML_SPACE)).encode("utf-8")


def too_long(place: str, length: int, limits: Limits) -> Refused:
    """The error for a cell's text of `length` characters, over the limit."""
    return Refused(
        f"{place} holds {length:,} characters, more than input.max_cell_kb "
        f"({limits.cell_chars // 1024:,} KiB of text; Excel's own cells stop at 32,767 "
        "characters): shorten it, or raise input.max_cell_kb"
    )


def t_text(t: ElementTree.Element) -> str:
    """A parsed `<t>`'s text, trimmed unless it says xml:space="preserve"."""
    text = t.text or ""
    return text if t.get(_PRESERVE) == "preserve" else text.strip(XML_SPACE)


def si_text(si: ElementTree.Element) -> str:
    """A string item's text: its `t`, or its rich-text runs' `t`s (phonetic runs left out)."""
    parts: list[str] = []
    for child in si:
        local = child.tag.rpartition("}")[2]
        if local == "t":
            parts.append(t_text(child))
        elif local == "r":
            parts.extend(t_text(t) for t in child if t.tag.rpartition("}")[2] == "t")
    return ooxml_text("".join(parts))
