"""Workbooks made by hand: the odd XML forms of the corpus (`handmade.py`) and the bombs (never
committed: the large ones inflate to gigabytes), for the tests and `benchmarks/bombs_xlsx.py`.

Parts are streamed into the zip a piece at a time, so that making a bomb takes little memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
# Strict Open XML (ISO/IEC 29500 Strict) names the same things otherwise.
STRICT_MAIN = "http://purl.oclc.org/ooxml/spreadsheetml/main"
STRICT_RELS = "http://purl.oclc.org/ooxml/officeDocument/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"
ID = "AbCdEfGhIj0123456789"
MIB = 1 << 20
_PIECE = 1 << 20  # bytes handed to the compressor at a time

# A part's content: bytes, text, or a function giving it piece by piece.
Content = bytes | str | Callable[[], Iterable[bytes]]

HEADER_ROW = (
    b'<row r="1"><c r="A1" t="inlineStr"><is><t>contact_id</t></is></c>'
    b'<c r="B1" t="inlineStr"><is><t>tags</t></is></c>'
    b'<c r="C1" t="inlineStr"><is><t>note</t></is></c></row>'
)
DATA_ROW = (
    b'<row r="2"><c r="A2" t="inlineStr"><is><t>' + ID.encode() + b"</t></is></c>"
    b'<c r="B2" t="inlineStr"><is><t>vip</t></is></c></row>'
)


def worksheet(rows: bytes | str, strict: bool = False) -> bytes:
    """A worksheet part around `rows` (the XML of <sheetData>'s rows)."""
    main, rels = (STRICT_MAIN, STRICT_RELS) if strict else (MAIN, RELS)
    text = rows.encode() if isinstance(rows, str) else rows
    return (
        (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<worksheet xmlns="{main}" xmlns:r="{rels}"><sheetData>'
        ).encode()
        + text
        + b"</sheetData></worksheet>"
    )


def sst(items: str, strict: bool = False) -> bytes:
    """A shared strings part around `items` (its <si> elements)."""
    return f'<sst xmlns="{STRICT_MAIN if strict else MAIN}">{items}</sst>'.encode()


def package(
    path: Path,
    sheets: list[tuple[str, Content]],
    *,
    strings: Content | None = None,
    styles: Content | None = None,
    hidden: dict[str, str] | None = None,
    strict: bool = False,
    backslash: bool = False,
    padding: int = 0,
) -> Path:
    """A workbook of `sheets` (name, worksheet part); `hidden`: sheet name -> state ("hidden",
    "veryHidden"); `strict`: Strict Open XML names; `backslash`: part names written with `\\`
    (as some Windows tools zip them); `padding`: bytes of a picture that does not compress
    (docProps/thumbnail.jpeg, as Excel saves one), to make the file that much larger."""
    main, rels_ns = (STRICT_MAIN, STRICT_RELS) if strict else (MAIN, RELS)
    kind = f"{rels_ns}/" if strict else f"{RELS}/"
    hidden = hidden or {}
    entries = "".join(
        f'<sheet name="{name}" sheetId="{n + 1}" r:id="rId{n + 1}"'
        + (f' state="{hidden[name]}"' if name in hidden else "")
        + "/>"
        for n, (name, _) in enumerate(sheets)
    )
    rels = "".join(
        f'<Relationship Id="rId{n + 1}" Type="{kind}worksheet" Target="sheets/sheet{n + 1}.xml"/>'
        for n in range(len(sheets))
    )
    overrides = "".join(
        f'<Override PartName="/xl/sheets/sheet{n + 1}.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for n in range(len(sheets))
    )
    parts: dict[str, Content] = {}
    if strings is not None:
        rels += f'<Relationship Id="rS" Type="{kind}sharedStrings" Target="strings.xml"/>'
        overrides += (
            '<Override PartName="/xl/strings.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sharedStrings+xml"/>'
        )
        parts["xl/strings.xml"] = strings
    if styles is not None:
        rels += f'<Relationship Id="rY" Type="{kind}styles" Target="styles.xml"/>'
        overrides += (
            '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.styles+xml"/>'
        )
        parts["xl/styles.xml"] = styles
    types = (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        f'officedocument.spreadsheetml.sheet.main+xml"/>{overrides}</Types>'
    )
    parts = {
        "[Content_Types].xml": types,
        "_rels/.rels": f'<Relationships xmlns="{PACKAGE}"><Relationship Id="r1" '
        f'Type="{kind}officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{rels_ns}"><sheets>{entries}'
        "</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{PACKAGE}">{rels}</Relationships>',
        **{f"xl/sheets/sheet{n + 1}.xml": xml for n, (_, xml) in enumerate(sheets)},
        **parts,
    }
    if padding:
        import random

        parts["docProps/thumbnail.jpeg"] = random.Random(padding).randbytes(padding)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, content in parts.items():
            info = zipfile.ZipInfo(name.replace("/", "\\") if backslash else name)
            info.date_time = (2026, 1, 1, 0, 0, 0)  # the same bytes every time it is made
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w", force_zip64=True) as fh:
                for piece in _pieces(content):
                    fh.write(piece)
    return path


def _pieces(content: Content) -> Iterable[bytes]:
    if isinstance(content, str):
        return [content.encode()]
    if isinstance(content, bytes):
        return [content]
    return content()


def repeated(unit: bytes, total: int) -> Iterator[bytes]:
    """`unit` repeated to about `total` bytes (whole units only), a piece at a time."""
    count = max(1, _PIECE // len(unit))
    piece = unit * count
    left = total // len(unit)
    while left > 0:
        yield piece if left >= count else unit * left
        left -= count


def _sheet(*middle: Callable[[], Iterable[bytes]] | bytes) -> Callable[[], Iterator[bytes]]:
    """A worksheet part streamed from pieces (bytes, or functions giving pieces)."""
    head, tail = worksheet(b"\0").split(b"\0")

    def pieces() -> Iterator[bytes]:
        yield head
        for part in middle:
            if isinstance(part, bytes):
                yield part
            else:
                yield from part()
        yield tail

    return pieces


# --- bombs ------------------------------------------------------------------------------------


def long_cell(path: Path, size: int, *, header: bool = False, padding: int = 0) -> Path:
    """A cell (column C) holding `size` bytes of text: in the header row, or in the data row."""
    start = HEADER_ROW[: HEADER_ROW.index(b'<c r="C1"')] if header else HEADER_ROW + DATA_ROW[:-6]
    cell = b'<c r="C%d" t="inlineStr"><is><t>' % (1 if header else 2)
    end = b"</t></is></c></row>" + (DATA_ROW if header else b"")
    sheet = _sheet(start + cell, lambda: repeated(b"note", size), end)
    return package(path, [("S", sheet)], padding=padding)


def long_row(path: Path, size: int, *, padding: int = 0) -> Path:
    """A data row going on for `size` bytes of small cells, all in column C."""
    cells = _sheet(
        HEADER_ROW + DATA_ROW[:-6], lambda: repeated(b'<c r="C2"><v>1</v></c>', size), b"</row>"
    )
    return package(path, [("S", cells)], padding=padding)


def long_string(path: Path, size: int, *, padding: int = 0) -> Path:
    """A shared string of `size` bytes, used by the data row's note."""

    def strings() -> Iterator[bytes]:
        yield f'<sst xmlns="{MAIN}"><si><t>'.encode()
        yield from repeated(b"note", size)
        yield b"</t></si></sst>"

    row = HEADER_ROW + DATA_ROW[:-6] + b'<c r="C2" t="s"><v>0</v></c></row>'
    return package(path, [("S", worksheet(row))], strings=strings, padding=padding)


def styles_bomb(path: Path, size: int, *, padding: int = 0) -> Path:
    """A styles part of `size` bytes, nearly all of it empty fonts (which nothing reads)."""

    def styles() -> Iterator[bytes]:
        yield f'<styleSheet xmlns="{MAIN}"><fonts>'.encode()
        yield from repeated(b"<font/>", size)
        yield b'</fonts><cellXfs count="1"><xf numFmtId="0"/></cellXfs></styleSheet>'

    return package(path, [("S", worksheet(HEADER_ROW + DATA_ROW))], styles=styles, padding=padding)


def many_formats(path: Path, count: int) -> Path:
    """A styles part with `count` cell formats (of varied number formats, so that the part
    does not compress beyond what real styles do)."""
    import random

    rng = random.Random(count)

    def styles() -> Iterator[bytes]:
        yield f'<styleSheet xmlns="{MAIN}"><cellXfs>'.encode()
        for start in range(0, count, 10_000):
            yield b"".join(
                b'<xf numFmtId="%d" fontId="%d"/>' % (rng.randrange(200), rng.randrange(50))
                for _ in range(min(10_000, count - start))
            )
        yield b"</cellXfs></styleSheet>"

    return package(path, [("S", worksheet(HEADER_ROW + DATA_ROW))], styles=styles)


def random_row(path: Path, size: int) -> Path:
    """A data row of `size` bytes of cells holding numbers that do not compress well (so that
    the file passes the inflation check and the row's own cap is what stops it)."""
    import random

    rng = random.Random(size)

    def cells() -> Iterator[bytes]:
        written = 0
        while written < size:
            piece = b"".join(
                b'<c r="C2"><v>%d</v></c>' % rng.randrange(10**15) for _ in range(10_000)
            )
            written += len(piece)
            yield piece

    return package(path, [("S", _sheet(HEADER_ROW + DATA_ROW[:-6], cells, b"</row>"))])


def random_cell(path: Path, size: int, *, shared: bool = False) -> Path:
    """A cell (or, `shared`, a shared string) of `size` bytes of letters that do not compress
    well: for timing a long item's reading, with the cell's cap raised."""
    import base64
    import random

    rng = random.Random(size)

    def text() -> Iterator[bytes]:
        left = size
        while left > 0:
            piece = base64.b64encode(rng.randbytes(min(_PIECE, left) * 3 // 4))
            left -= len(piece)
            yield piece

    if shared:

        def strings() -> Iterator[bytes]:
            yield f'<sst xmlns="{MAIN}"><si><t>'.encode()
            yield from text()
            yield b"</t></si></sst>"

        row = HEADER_ROW + DATA_ROW[:-6] + b'<c r="C2" t="s"><v>0</v></c></row>'
        return package(path, [("S", worksheet(row))], strings=strings)
    start = HEADER_ROW + DATA_ROW[:-6] + b'<c r="C2" t="inlineStr"><is><t>'
    return package(path, [("S", _sheet(start, text, b"</t></is></c></row>"))])
