"""An .xlsx/.xlsm package read as a stream: a sheet's rows a block at a time, in bounded memory.

The package is a zip of XML parts. `Book` streams the small ones (the relationships, the
workbook, the styles) through expat, keeping only what it needs: which sheets there are and
whether each is visible, which cell styles are dates, the date system. A sheet's XML (hundreds
of MiB for a full sheet) is inflated a block at a time and never held whole (`_xlsx_part`) and
split into rows by regular expressions (`_xlsx_rows`, which says why). Shared strings are read
as far as the cells read so far need (`_xlsx_strings`).

Read as every producer writes it, Strict Open XML (`http://purl.oclc.org/ooxml/...`) included,
and part names written with backslashes (`xl\\workbook.xml`, as some Windows tools zip them).

Bounded work on any file (`Limits`): a part is refused before it is inflated when the zip says
it inflates to more than `input.max_inflate_ratio` (100) times the file's size (1 MiB at least:
a zip bomb; a part may never inflate beyond what the zip says), or when it is compressed by a
method no spreadsheet program uses (bzip2 and LZMA inflate without bound); a cell's text, a
row's XML and a shared string's have caps (`input.max_cell_kb`, `input.max_line_kb`); the
styles part is streamed, and refused past 262,144 formats (Excel allows 64,000).

This module is the package: the zip, its relationships, the workbook's sheets, the styles and
the 1904 date system; and what callers use (`Book`, `Block`, `XlsxError`, `Refused`,
`READ_ERRORS`).
"""

from __future__ import annotations

import os
import posixpath
import threading
import zipfile
import zlib
from collections.abc import Collection, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree
from xml.parsers import expat

from batcher.loading._xlsx_part import DEFAULT_LIMITS, MAIN_NAMESPACES, Cancelled, Limits, mib
from batcher.loading._xlsx_part import Refused as Refused
from batcher.loading._xlsx_part import XlsxError as XlsxError
from batcher.loading._xlsx_rows import DATE, DURATION, PLAIN, SheetReader, int_or_none
from batcher.loading._xlsx_rows import Block as Block
from batcher.loading._xlsx_strings import SharedStrings, string_blocks

_REL_NAMESPACES = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",  # Strict Open XML
)
_PACKAGE = ("http://schemas.openxmlformats.org/package/2006/relationships",)
_BUILTIN_DATES = frozenset({*range(14, 23), 45, 47})
_BUILTIN_DURATION = 46
# A part may inflate to `Limits.inflate_ratio` times the file's size (100 by default), and to
# this many bytes whatever the file's size. Real sheets inflate 5 to 45 times the size of their
# own compressed bytes (measured: rows of xlsxwriter and LibreOffice, of styled empty cells, of
# one shared string each), and less against the whole file; Apache POI refuses an entry past
# 100 times its own compressed size, a stricter rule than this one. A gzip CSV may inflate to
# 64 MiB whatever its size; a workbook part only to 1 MiB, so that a 4 KB workbook holding a
# 2 MiB cell is refused at once (it is not a contact list's).
FLOOR = 1 << 20
# Cell formats taken from the styles: 4 times what Excel allows (64,000).
_MAX_FORMATS = 1 << 18
_READ = 1 << 16  # bytes read at a time from a small part

# Everything a damaged package or XML can raise while it is read.
READ_ERRORS = (
    XlsxError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ElementTree.ParseError,
    expat.ExpatError,
    UnicodeDecodeError,
    NotImplementedError,  # a compression method zipfile does not have
)


@dataclass(frozen=True, slots=True)
class Sheet:
    name: str
    member: str
    visible: bool  # not state="hidden" or "veryHidden"


class _Guarded:
    """A part's file, read through: a reading abandoned (`cancel` set) ends at its next read."""

    def __init__(self, fh: IO[bytes], cancel: threading.Event | None) -> None:
        self._fh = fh
        self._cancel = cancel

    def read(self, size: int = -1, /) -> bytes:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled
        return self._fh.read(size)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> _Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Book:
    """An opened workbook: its worksheets (chart sheets are not sheets of rows) in order.

    `limits`: how much is read before the workbook is refused; `cancel`: set when whoever reads
    has gone (the reading stops at the next block).
    """

    def __init__(
        self, path: Path, limits: Limits = DEFAULT_LIMITS, cancel: threading.Event | None = None
    ) -> None:
        self._limits = limits
        self._cancel = cancel
        self._zip = zipfile.ZipFile(path)
        try:
            if any(info.flag_bits & 1 for info in self._zip.infolist()):
                raise XlsxError("its parts are encrypted (a zip password, not Excel's)")
            ratio = limits.inflate_ratio
            self._largest = max(FLOOR, ratio * os.stat(path).st_size) if ratio else None
            # Part names are case-insensitive, and some tools write `\` for `/`.
            self._names = {name.replace("\\", "/").lower(): name for name in self._zip.namelist()}
            workbook = self._main_part()
            rels = self._relationships(workbook)
            self.date1904 = False
            sheets: list[Sheet] = []
            wanted = {("workbook", "workbookPr"), ("workbook", "sheets", "sheet")}
            for path_, attributes in self._elements(workbook, wanted, MAIN_NAMESPACES):
                if path_[-1] == "workbookPr":
                    self.date1904 = attributes.get("date1904", "").lower() in ("1", "true")
                    continue
                rel = next((r for ns in _REL_NAMESPACES if (r := attributes.get(f"{ns} id"))), "")
                kind, target = rels.get(rel, ("", ""))
                if kind.endswith("/worksheet"):
                    state = attributes.get("state", "visible")
                    sheets.append(Sheet(attributes.get("name", ""), target, state == "visible"))
            self.sheets = sheets
            self._styles_member = next((t for k, t in rels.values() if k.endswith("/styles")), None)
            self._strings_member = next(
                (t for k, t in rels.values() if k.endswith("/sharedStrings")), None
            )
            for member in (
                self._styles_member,
                self._strings_member,
                *(sheet.member for sheet in sheets),
            ):
                if member is not None and member.lower() in self._names:
                    self._check(member)
        except BaseException:
            self._zip.close()
            raise

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> Book:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self, index: int, watch: int | None, styles: bytes | None = None) -> Iterator[Block]:
        """The sheet's rows in blocks; `watch`: the column whose number cells are reported;
        `styles`: `style_kinds()` when already read (every reading of a sheet needs them)."""
        sheet = self.sheets[index]
        styles = self.style_kinds() if styles is None else styles
        with ExitStack() as stack:
            strings = SharedStrings()
            if self._strings_member is not None and self._strings_member.lower() in self._names:
                part = stack.enter_context(self._open(self._strings_member))
                strings = SharedStrings(string_blocks(part, self._limits))
            fh = stack.enter_context(self._open(sheet.member))
            reader = SheetReader(
                fh, styles, strings, self.date1904, watch, self._limits, f"sheet {sheet.name!r}"
            )
            yield from reader.blocks()

    # --- parts ---------------------------------------------------------------------------

    def _member(self, name: str) -> str:
        """A part's name in the zip (part names are case-insensitive in a package)."""
        found = self._names.get(name.lower())
        if found is None:
            raise XlsxError(f"the workbook lists a part {name!r} that is not in the file")
        return found

    def _check(self, name: str) -> zipfile.ZipInfo:
        """The part's entry, refused before it is inflated when it cannot be a real part's."""
        info = self._zip.getinfo(self._member(name))
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise Refused(
                f"{name} is compressed by a method no spreadsheet program uses; open the "
                "workbook in Excel and save it again"
            )
        if self._largest is not None and info.file_size > self._largest:
            raise Refused(
                f"{name} inflates to {mib(info.file_size)}, more than input.max_inflate_ratio "
                f"({self._limits.inflate_ratio}) times the file's size: refused as a zip bomb "
                "(if the workbook is genuine, raise input.max_inflate_ratio, or save the sheet as "
                "CSV)"
            )
        return info

    def _open(self, name: str) -> _Guarded:
        return _Guarded(self._zip.open(self._check(name)), self._cancel)

    def _elements(
        self, name: str, wanted: Collection[tuple[str, ...]], namespaces: tuple[str, ...]
    ) -> Iterator[tuple[tuple[str, ...], dict[str, str]]]:
        """The start tags of a part whose path of local names from the root is in `wanted`
        (every element on it in the same one of `namespaces`), with their attributes (a
        namespaced attribute's name is "URI local"); streamed, nothing else kept."""
        parser = expat.ParserCreate(namespace_separator=" ")
        # The wanted paths as expat names them ("URI local"); the work per element that is
        # not wanted is a list append and a set lookup (a styles part may hold millions).
        keys = {
            tuple(f"{ns} {local}" for local in path): path for ns in namespaces for path in wanted
        }
        lasts = {key[-1] for key in keys}
        stack: list[str] = []
        found: list[tuple[tuple[str, ...], dict[str, str]]] = []

        def start(tag: str, attributes: dict[str, str]) -> None:
            stack.append(tag)
            if tag in lasts:
                path = keys.get(tuple(stack))
                if path is not None:
                    found.append((path, attributes))

        def end(tag: str) -> None:
            stack.pop()

        def doctype(*args: Any) -> None:
            raise Refused(f"{name} holds a DTD, which Open XML parts may not have")

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.StartDoctypeDeclHandler = doctype
        with self._open(name) as fh:
            while piece := fh.read(_READ):
                parser.Parse(piece, False)
                yield from found
                found.clear()
            parser.Parse(b"", True)
            yield from found

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
        wanted = {("Relationships", "Relationship")}
        for _, rel in self._elements(rels_name, wanted, _PACKAGE):
            target = rel.get("Target", "").replace("\\", "/")
            if rel.get("TargetMode") == "External":
                continue
            if target.startswith("/"):
                name = target[1:]
            else:
                name = posixpath.normpath(posixpath.join(folder, target))
            found[rel.get("Id", "")] = (rel.get("Type", ""), name)
        return found

    def style_kinds(self) -> bytes:
        """For each cell style (`s` of a cell), whether its number format is a date or time
        (DATE, DURATION, PLAIN)."""
        if self._styles_member is None or self._styles_member.lower() not in self._names:
            return b""
        kinds: dict[int, int] = {}
        styles = bytearray()
        wanted = {("styleSheet", "numFmts", "numFmt"), ("styleSheet", "cellXfs", "xf")}
        for path, attributes in self._elements(self._styles_member, wanted, MAIN_NAMESPACES):
            if len(styles) + len(kinds) == _MAX_FORMATS:
                raise Refused(
                    f"{self._styles_member} has more than {_MAX_FORMATS:,} cell formats (Excel "
                    "allows 64,000); open the workbook in Excel and save it again"
                )
            number = int_or_none(attributes.get("numFmtId"))
            if path[-1] == "numFmt":
                if number is not None:
                    kinds[number] = format_kind(attributes.get("formatCode", ""))
                continue
            number = number or 0
            if number in kinds:
                styles.append(kinds[number])
            elif number in _BUILTIN_DATES:
                styles.append(DATE)
            else:
                styles.append(DURATION if number == _BUILTIN_DURATION else PLAIN)
        return bytes(styles)


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
