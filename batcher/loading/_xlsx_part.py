"""An XML part of the package streamed as blocks of whole items (a sheet's rows, the shared
strings), never held whole; and the errors every reading step raises.

Blocks are cut after an item's end tag (a `</row>`), which cannot occur inside text or attributes
(`<` is always escaped there); a block holding `<!` (a comment or CDATA) or `<?` is cut by a scan
that skips those, and parsed.

Bounded work: an item longer than a block is read by reading as much again each time (so it is
scanned a few times in all, not once per block: time stays linear in its length), up to the
part's `limit`, past which it is refused (`Refused`), naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol
from xml.etree import ElementTree

MAIN_NAMESPACES = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",  # Strict Open XML
)
# Inflated bytes read at a time from a sheet or the shared strings.
_BLOCK = 1 << 16


class Readable(Protocol):
    """A part's inflated bytes, read a piece at a time."""

    def read(self, size: int = -1, /) -> bytes: ...


class XlsxError(Exception):
    """The workbook cannot be read; the message says why (the caller names the file)."""


class Refused(XlsxError):
    """The workbook is readable, but batcher will not read it: a cap is reached, or it holds what
    no spreadsheet program writes. The message names the place (all but the file) and what to
    do."""


class Cancelled(Exception):
    """The reading was abandoned (its consumer stopped): raised in the reading thread."""


# --- streaming the items of a part ------------------------------------------------------------

# A start tag; attribute values may hold `>`.
_START_TAG = re.compile(rb"<([\w.:-]+)((?:\s+[\w.:-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(/?)>")
_XMLNS = re.compile(rb"""\s(xmlns(?::[\w.-]+)?)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
# What can hide a `</row>` that is not one: comments, CDATA, processing instructions (an
# unclosed one runs to the end of the buffer).
_HIDING = rb"<!--(?:.*?-->|.*)|<!\[CDATA\[(?:.*?\]\]>|.*)|<\?(?:.*?\?>|.*)"
_NOT_UTF8 = re.compile(rb"<\?xml[^>]*encoding\s*=\s*[\"'](?!utf-8[\"'])", re.I)
# A document type declaration: Open XML parts may not have one (ECMA-376 Part 2, 8.1.4), and
# its entities are how an XML bomb multiplies text.
DOCTYPE = b"<!DOCTYPE"


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a workbook is read before it is refused (SPEC "Bounded input"), as the CSV
    reader's caps say it: a cell's text (characters: input.max_cell_kb), one row's or shared
    string's XML (bytes: input.max_line_kb, a row being a sheet's line), and how far a part may
    inflate (times the file's size, at least `FLOOR`; 0: no check: input.max_inflate_ratio).
    Excel's own cells stop at 32,767 characters."""

    cell_chars: int = 4096 * 1024
    line_bytes: int = 16384 * 1024
    inflate_ratio: int = 100


DEFAULT_LIMITS = Limits()


def mib(size: int) -> str:
    """A size in bytes as messages show it."""
    return f"{size / (1 << 20):,.0f} MiB" if size >= 1 << 20 else f"{size / 1024:,.0f} KiB"


class Part:
    """The `item` elements of a part's `container` element (a sheet's rows, the strings of the
    shared strings), streamed as blocks of whole items.

    `limit`: the most bytes of XML one item (or what comes before the container) may take.
    Messages refusing the part begin with `name` (`sheet 'S'`), or, for an item, with
    `place(head)` (`sheet 'S' row 7`), `head` being the item's first bytes.
    """

    def __init__(
        self,
        fh: Readable,
        container: str,
        item: str,
        *,
        limit: int,
        name: str,
        place: Callable[[bytes], str],
    ) -> None:
        self._fh = fh
        self._limit = limit
        self._place = place
        self._rest, self.prefix, declarations, self._empty = _open_container(
            fh, container, limit, name
        )
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
        want = _BLOCK
        long = False  # the buffer holds the start of an item longer than a block
        while True:
            more = self._fh.read(want)
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
            cut = self._cut(buffer, plain, first=long)
            if cut:
                yield buffer[:cut], plain
                buffer = buffer[cut:]
                want, long = _BLOCK, False
            elif len(buffer) > self._limit:
                raise Refused(
                    f"{self._place(buffer[:256])} is over {mib(self._limit)} of XML, more than "
                    "one row or string may take (input.max_line_kb)"
                )
            else:
                # No whole item yet: read as much again (within the limit), so that a long item
                # is scanned a few times in all, not once per block.
                want, long = max(_BLOCK, min(len(buffer), self._limit + 1 - len(buffer))), True

    def parse(self, block: bytes) -> list[ElementTree.Element]:
        """A block's items parsed as XML (with the namespaces declared above them)."""
        root = ElementTree.fromstring(self._wrapper + block + self._close)
        return [e for e in root if e.tag.rpartition("}")[2] == self._item]

    def _cut(self, buffer: bytes, plain: bool, first: bool) -> int:
        """Where the last whole item in the buffer ends (0: none yet); with `first`, where the
        first one ends (the long item just completed: the rest goes in the next blocks)."""
        if plain:
            end = buffer.find(self._close_item) if first else buffer.rfind(self._close_item)
            cut = 0 if end < 0 else end + len(self._close_item)
            hidden = 0
        else:
            cut = hidden = 0
            token = re.compile(_HIDING + b"|" + re.escape(self._close_item), re.S)
            for match in token.finditer(buffer):
                if match.group(0) == self._close_item:
                    cut = match.end()
                    if first:
                        break
                else:
                    hidden = match.end()
        if first and cut:
            return cut
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


def _open_container(
    fh: Readable, container: str, limit: int, name: str
) -> tuple[bytes, bytes, bytes, bool]:
    """Read up to the container's start tag: (the bytes after it, the spreadsheet namespace's
    prefix (b"" or b"x:"), the namespace declarations in scope, whether it is empty)."""
    data = b""
    local_name = container.encode()
    while True:
        # As much again each time: what precedes the container is scanned a few times in all.
        more = fh.read(max(_BLOCK, len(data)))
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
            if n and local != local_name:
                continue
            if n == 0 and DOCTYPE in data[: tag.start()]:
                raise Refused(f"{name} holds a DTD, which Open XML parts may not have")
            for attribute, double, single in _XMLNS.findall(tag.group(2)):
                scopes[attribute] = double or single
            if local != local_name:
                continue
            prefix = tag.group(1)[: -len(local)]
            uri = scopes.get(b"xmlns:" + prefix[:-1] if prefix else b"xmlns", b"").decode()
            if uri not in MAIN_NAMESPACES:
                raise XlsxError(f"<{container}> is not in the spreadsheet namespace")
            declarations = b"".join(b' %b="%b"' % item for item in scopes.items())
            return data[tag.end() :], prefix, declarations, tag.group(3) == b"/"
        if not more:
            raise XlsxError(f"no <{container}> in the part")
        if len(data) > limit:
            raise Refused(
                f"{name} has over {mib(limit)} of XML before its <{container}> (input.max_line_kb)"
            )


def _first_outside(buffer: bytes, needle: bytes) -> int:
    """The first `needle` not inside a comment, CDATA or processing instruction; -1 if none."""
    token = re.compile(_HIDING + b"|" + re.escape(needle), re.S)
    for match in token.finditer(buffer):
        if match.group(0) == needle:
            return match.start()
    return -1


def _drain(fh: Readable) -> None:
    """Read the part to its end: zipfile checks the part's CRC only there."""
    while fh.read(_BLOCK):
        pass
