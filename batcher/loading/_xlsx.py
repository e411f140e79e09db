"""An .xlsx/.xlsm package read as a stream: a sheet's rows a block at a time, in bounded memory.

The package is a zip of XML parts. `Book` reads the small ones whole (the workbook, its
relationships, the styles) with ElementTree. A sheet's XML (hundreds of MiB for a full sheet) is
inflated a block at a time and never held whole (`_xlsx_part`) and split into rows by regular
expressions (`_xlsx_rows`, which says why). Shared strings are read as far as the cells read so
far need (`_xlsx_strings`).

This module is the package: the zip, its relationships, the workbook's sheets, the styles (which
number formats are dates) and the 1904 date system; and what callers use (`Book`, `Block`,
`XlsxError`, `READ_ERRORS`).
"""

from __future__ import annotations

import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from batcher.loading._xlsx_part import MAIN_NAMESPACES
from batcher.loading._xlsx_part import XlsxError as XlsxError
from batcher.loading._xlsx_rows import DATE, DURATION, PLAIN, SheetReader, int_or_none
from batcher.loading._xlsx_rows import Block as Block
from batcher.loading._xlsx_strings import SharedStrings, string_blocks

_REL_NAMESPACES = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",
)
_PACKAGE_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_BUILTIN_DATES = frozenset({*range(14, 23), 45, 47})
_BUILTIN_DURATION = 46


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
                strings = SharedStrings(string_blocks(stack.enter_context(part)))
            fh = stack.enter_context(self._zip.open(member))
            yield from SheetReader(fh, styles, strings, self.date1904, watch).blocks()

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
            number = int_or_none(fmt.get("numFmtId"))
            if number is not None:
                codes[number] = fmt.get("formatCode", "")
        kinds: list[int] = []
        xfs = _child(root, "cellXfs")
        for xf in [] if xfs is None else _children(xfs, "xf"):
            number = int_or_none(xf.get("numFmtId")) or 0
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
    for ns in MAIN_NAMESPACES:
        yield from element.iterfind(f"{{{ns}}}{name}")


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
