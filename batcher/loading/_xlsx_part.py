"""An XML part of the package streamed as blocks of whole items (a sheet's rows, the shared
strings), never held whole; and `XlsxError`, which every reading step raises.

Blocks are cut after an item's end tag (a `</row>`), which cannot occur inside text or attributes
(`<` is always escaped there); a block holding `<!` (a comment or CDATA) or `<?` is cut by a scan
that skips those, and parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO
from xml.etree import ElementTree

MAIN_NAMESPACES = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",  # Strict Open XML
)
# Inflated bytes read at a time from a sheet or the shared strings.
_BLOCK = 1 << 16


class XlsxError(Exception):
    """The workbook cannot be read; the message says why (the caller names the file)."""


# --- streaming the items of a part ------------------------------------------------------------

# A start tag; attribute values may hold `>`.
_START_TAG = re.compile(rb"<([\w.:-]+)((?:\s+[\w.:-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(/?)>")
_XMLNS = re.compile(rb"""\s(xmlns(?::[\w.-]+)?)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
# What can hide a `</row>` that is not one: comments, CDATA, processing instructions (an
# unclosed one runs to the end of the buffer).
_HIDING = rb"<!--(?:.*?-->|.*)|<!\[CDATA\[(?:.*?\]\]>|.*)|<\?(?:.*?\?>|.*)"
_NOT_UTF8 = re.compile(rb"<\?xml[^>]*encoding\s*=\s*[\"'](?!utf-8[\"'])", re.I)


class Part:
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
            if uri not in MAIN_NAMESPACES:
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
