"""The streaming XLSX reader (`batcher.loading._xlsx`): the XML as producers write it, read right
whatever the block boundaries, and damaged files as one clear InputError."""

from __future__ import annotations

import datetime
import random
import threading
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlsxwriter
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont

from batcher.domain.errors import InputError
from batcher.loading import InputOptions, open_input
from batcher.loading import _xlsx as xlsx
from batcher.loading import _xlsx_part as xlsx_part
from batcher.loading._excel import open_excel, sheet_rows
from batcher.loading._xlsx import format_kind
from batcher.loading._xlsx_part import Limits
from batcher.loading._xlsx_rows import DATE, DURATION, PLAIN
from batcher.loading._xlsx_strings import SharedStrings

ID1 = "AbCdEfGhIj0123456789"
ID2 = "ZyXwVuTsRq9876543210"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"


def package(
    path: Path,
    sheets: list[tuple[str, str | bytes]],
    strings: str | None = None,
    styles: str | None = None,
    workbook_pr: str = "",
    states: dict[str, str] | None = None,
    chart: bool = False,
) -> Path:
    """A workbook from raw XML: sheets as (name, the worksheet's XML), each stored under an
    unusual part name (so nothing can assume sheet1.xml)."""
    states = states or {}
    entries = "".join(
        f'<sheet name="{name}" sheetId="{n + 1}" r:id="rId{n + 1}"'
        + (f' state="{states[name]}"' if name in states else "")
        + "/>"
        for n, (name, _) in enumerate(sheets)
    )
    rels = "".join(
        f'<Relationship Id="rId{n + 1}" Type="{RELS}/worksheet" Target="sheets/s{n + 1}.xml"/>'
        for n in range(len(sheets))
    )
    if chart:
        entries += '<sheet name="Chart" sheetId="99" r:id="rId99"/>'
        rels += f'<Relationship Id="rId99" Type="{RELS}/chartsheet" Target="charts/c.xml"/>'
    if strings is not None:
        rels += f'<Relationship Id="rS" Type="{RELS}/sharedStrings" Target="strings.xml"/>'
    if styles is not None:
        rels += f'<Relationship Id="rY" Type="{RELS}/styles" Target="/xl/looks.xml"/>'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{PACKAGE}"><Relationship Id="r1" '
            f'Type="{RELS}/officeDocument" Target="xl/book.xml"/></Relationships>',
        )
        z.writestr(
            "xl/book.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" xmlns:r="{RELS}">'
            f"{workbook_pr}<sheets>{entries}</sheets></workbook>",
        )
        z.writestr(
            "xl/_rels/book.xml.rels", f'<Relationships xmlns="{PACKAGE}">{rels}</Relationships>'
        )
        for n, (_, xml) in enumerate(sheets):
            z.writestr(f"xl/sheets/s{n + 1}.xml", xml)
        if strings is not None:
            z.writestr("xl/strings.xml", strings)
        if styles is not None:
            z.writestr("xl/looks.xml", styles)
    return path


def worksheet(rows: str, prefix: str = "") -> str:
    p = f"{prefix}:" if prefix else ""
    declare = f"xmlns:{prefix}" if prefix else "xmlns"
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<{p}worksheet {declare}="{MAIN}" xmlns:r="{RELS}"><{p}dimension ref="A1:D9"/>'
        f'<{p}sheetData>{rows}</{p}sheetData><{p}pageMargins left="0.7"/></{p}worksheet>'
    )


def sst(items: str, prefix: str = "") -> str:
    p = f"{prefix}:" if prefix else ""
    declare = f"xmlns:{prefix}" if prefix else "xmlns"
    return f'<?xml version="1.0"?><{p}sst {declare}="{MAIN}" count="9">{items}</{p}sst>'


def read_rows(path: Path) -> list[list[str]]:
    return list(sheet_rows(path))


@pytest.fixture(params=[7, 61, 1 << 16], ids=["block7", "block61", "block64k"])
def block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every test here runs with blocks that cut tags and rows anywhere, and with the real one."""
    monkeypatch.setattr(xlsx_part, "_BLOCK", request.param)
    return int(request.param)


# --- the XML as producers write it ------------------------------------------------------------

STRINGS = sst(
    "<si><t>contact_id</t></si>"
    '<si><t xml:space="preserve"> tags </t></si>'
    # rich text: the runs' texts joined, their formatting left out
    '<si><r><rPr><b/><sz val="11"/></rPr><t>vi</t></r><r><t xml:space="preserve">p, </t></r>'
    "<r><t>lead</t></r></si>"
    # phonetic runs (Japanese readings) are not part of the text
    '<si><t>漢字</t><rPh sb="0" eb="2"><t>かんじ</t></rPh><phoneticPr fontId="1"/></si>'
    "<si><t>a &amp; b &lt;c&gt; &#233;&#x1F600; _x000D_ _x005F_x0041_</t></si>"
    "<si/><si><t/></si>"
)


def test_cells_of_every_form_read_as_an_xml_parser_reads_them(tmp_path: Path, block: int) -> None:
    rows = (
        '<row r="1" spans="1:4"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
        '<c r="C1" t="inlineStr"><is><t>note</t></is></c><c r="D1" t="str"><v>kind</v></c></row>'
        # a rich inline string; a formula with its cached text; a boolean
        f'<row r="2"><c r="A2" t="inlineStr"><is><t>{ID1}</t></is></c>'
        '<c r="B2" t="s"><v>2</v></c><c r="C2" t="inlineStr"><is><r><t>x</t></r><r><rPr><i/>'
        '</rPr><t xml:space="preserve"> y</t></r></is></c><c r="D2" t="b"><v>1</v></c></row>'
        # row 3 is missing: a blank row; B4 is skipped; an error is empty; attribute order
        f'<row r="4"><c r="A4" t="inlineStr"><is><t>{ID2}</t></is></c>'
        '<c t="s" r="C4"><v>4</v></c><c r="D4" t="e"><v>#N/A</v></c></row>'
        # cells and a row without `r`: positions implied
        '<row><c t="inlineStr"><is><t>no r</t></is></c><c t="s"><v>3</v></c>'
        '<c r="D5" t="b"><v>0</v></c></row>'
        # comments and CDATA, which can hide a `</row>`
        '<!-- a comment </row> --><row r="6"><c r="A6" t="inlineStr"><is><t><![CDATA[a</row>'
        '<b>]]></t></is></c><c r="B6" t="s"><v>5</v></c><c r="C6" t="s"><v>6</v></c></row>'
        '<row r="7" spans="1:4"><c r="A7" s="0"/><c r="B7"><f>1+1</f><v>2</v></c>'
        '<c r="C7" t="str"><f>A1</f><v>a&#13;&#10;b\r\nc</v></c>'
        '<c r="D7" t="d"><v>2024-01-05T10:30:00</v></c></row>'
        '<row r="8" hidden="1"/>'
    )
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows))], strings=STRINGS)
    assert read_rows(path) == [
        ["contact_id", " tags ", "note", "kind"],
        [ID1, "vip, lead", "x y", "TRUE"],
        [],
        [ID2, "", "a & b <c> é😀 \r _x0041_", ""],
        ["no r", "漢字", "", "FALSE"],
        ["a</row><b>", "", "", ""],
        ["", "2", "a\r\nb\nc", "2024-01-05 10:30:00"],
    ]


def test_a_prefixed_namespace_as_the_open_xml_sdk_writes_it(tmp_path: Path, block: int) -> None:
    rows = (
        '<x:row r="1"><x:c r="A1" t="s"><x:v>0</x:v></x:c><x:c r="B1" t="s"><x:v>1</x:v></x:c>'
        f'</x:row><x:row r="2"><x:c r="A2" t="inlineStr"><x:is><x:t>{ID1}</x:t></x:is></x:c>'
        '<x:c r="B2" t="s"><x:v>2</x:v></x:c></x:row>'
    )
    strings = sst(
        "<x:si><x:t>contact_id</x:t></x:si><x:si><x:t>tags</x:t></x:si>"
        "<x:si><x:r><x:t>v</x:t></x:r><x:r><x:t>ip</x:t></x:r></x:si>",
        prefix="x",
    )
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows, prefix="x"))], strings=strings)
    assert read_rows(path) == [["contact_id", "tags"], [ID1, "vip"]]


def test_a_table_and_a_sparse_sheet_read_alike_across_blocks(tmp_path: Path, block: int) -> None:
    """The same cells, written as a full table and with holes, give the same rows whatever the
    block size (the fast table path, the cell-by-cell path and the XML parser agree)."""
    table = "".join(
        f'<row r="{r}">'
        + "".join(
            f'<c r="{col}{r}" t="inlineStr"><is><t>{col}{r}&amp;</t></is></c>' for col in "ABC"
        )
        + "</row>"
        for r in range(1, 40)
    )
    holes = "".join(
        f'<row r="{r}">'
        + "".join(
            f'<c r="{col}{r}" t="inlineStr"><is><t>{col}{r}&amp;</t></is></c>'
            for col in "ABC"
            if r == 1 or (r + ord(col)) % 3
        )
        + "</row>"
        for r in range(1, 40)
        if r % 5
    )
    dense = read_rows(package(tmp_path / "a.xlsx", [("S", worksheet(table))]))
    sparse = read_rows(package(tmp_path / "b.xlsx", [("S", worksheet(holes))]))
    assert len(dense) == len(sparse) == 39
    for n, (full, holed) in enumerate(zip(dense, sparse, strict=True), start=1):
        if n % 5 == 0:
            assert holed == []
        else:
            assert full == [f"{col}{n}&" for col in "ABC"]
            assert holed == [f"{c}{n}&" if n == 1 or (n + ord(c)) % 3 else "" for c in "ABC"]


def random_sheet(seed: int) -> tuple[str, str]:
    """A sheet of random cells (kinds, holes, whole and partial rows) and its shared strings."""
    rng = random.Random(seed)
    strings = [f"s{n} &amp; ü" if n % 5 == 0 else f"s{n}" for n in range(50)]
    # Odd seeds: each column keeps one kind of cell, but for a few (a table, as most are).
    kinds = {col: rng.choice([0.3, 0.5, 0.6, 0.75]) for col in "ABCDEFG"}
    rows = []
    for r in range(1, 400):
        if rng.random() < 0.1:
            continue
        cells = []
        for col in "ABCDEFG":
            roll = kinds[col] if seed % 2 and rng.random() > 0.01 else rng.random()
            ref = f' r="{col}{r}"'
            if roll < 0.15:
                continue
            if roll < 0.35:
                cells.append(f'<c{ref} t="s"><v>{rng.randrange(50)}</v></c>')
            elif roll < 0.55:
                text = rng.choice(["x", " pad ", "a&lt;b", "_x000D_", "", "\tt;", "&#32;r"])
                # preserved or not (then trimmed): the fast paths must read what the parser does
                space = ' xml:space="preserve"' if rng.random() < 0.5 else ""
                cells.append(f'<c{ref} t="inlineStr"><is><t{space}>{text}</t></is></c>')
            elif roll < 0.7:
                cells.append(
                    f'<c{ref} s="{rng.randrange(3)}"><v>{rng.choice(["1", "2.5", "45296"])}</v></c>'
                )
            elif roll < 0.8:
                cells.append(f'<c{ref} t="b"><v>{rng.randrange(2)}</v></c>')
            elif roll < 0.9:
                cells.append(f'<c{ref} s="1"/>')
            else:
                cells.append(f'<c{ref} t="str"><f>A1</f><v>f{r}</v></c>')
        # `r` not first: the row pattern cannot take it, the cell pattern can
        tag = f'<row r="{r}">' if rng.random() < 0.9 else f'<row spans="1:7" r="{r}">'
        rows.append(f"{tag}{''.join(cells)}</row>" if cells else f'<row r="{r}"/>')
    header = (
        '<row r="1">'
        + "".join(f'<c r="{c}1" t="inlineStr"><is><t>{c}</t></is></c>' for c in "ABCDEFG")
        + "</row>"
    )
    items = "".join(f"<si><t>{t}</t></si>" for t in strings)
    if seed % 3 == 0:  # pretty-printed, as some producers write it, and with a BOM
        rows = [row.replace("><c", ">\n    <c").replace("</row>", "\n  </row>") for row in rows]
        return "\ufeff" + worksheet(header + "\n  ".join(rows[1:])), sst(items)
    return worksheet(header + "".join(rows[1:])), sst(items)


@pytest.mark.parametrize("seed", range(8))
def test_the_fast_paths_read_what_the_xml_parser_reads(
    tmp_path: Path, block: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet, strings = random_sheet(seed)
    styles = STYLES if seed % 2 else None
    path = package(tmp_path / "in.xlsx", [("S", sheet)], strings=strings, styles=styles)
    fast = read_rows(path)
    real = xlsx_part.Part.blocks

    def parsed_only(self: Any) -> Any:  # every block as if it held a comment: ElementTree
        return ((part, False) for part, _ in real(self))

    monkeypatch.setattr(xlsx_part.Part, "blocks", parsed_only)
    assert read_rows(path) == fast
    assert len(fast) > 300


# --- dates ------------------------------------------------------------------------------------

STYLES = (
    f'<styleSheet xmlns="{MAIN}"><numFmts count="3">'
    '<numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd"/>'
    '<numFmt numFmtId="165" formatCode="&quot;day &quot;0"/>'
    '<numFmt numFmtId="166" formatCode="[h]:mm"/></numFmts>'
    '<cellXfs count="6"><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="165"/>'
    '<xf numFmtId="22"/><xf numFmtId="21"/><xf numFmtId="166"/></cellXfs></styleSheet>'
)


@pytest.mark.parametrize(
    ("system", "first", "stamp"),
    [
        ("", "2024-01-05", "1900-02-28 12:00:00"),
        ('<workbookPr date1904="1"/>', "2028-01-06", "1904-03-01 12:00:00"),
    ],
)
def test_numbers_styled_as_dates_follow_the_workbooks_date_system(
    tmp_path: Path, block: int, system: str, first: str, stamp: str
) -> None:
    rows = (
        '<row r="1">'
        + "".join(f'<c r="{c}1" t="inlineStr"><is><t>{c}</t></is></c>' for c in "ABCDEFG")
        + "</row>"
        '<row r="2"><c r="A2" s="1"><v>45296</v></c><c r="B2" s="2"><v>45296</v></c>'
        '<c r="C2" s="3"><v>60.5</v></c><c r="D2" s="4"><v>0.4375</v></c>'
        '<c r="E2" s="5"><v>1.5</v></c><c r="F2" s="3"><v>1e7</v></c><c r="G2"><v>3.0</v></c>'
        "</row>"
    )
    path = package(
        tmp_path / "in.xlsx", [("S", worksheet(rows))], styles=STYLES, workbook_pr=system
    )
    assert read_rows(path)[1] == [
        first,
        "45296",
        stamp,
        "10:30:00",
        "1 day, 12:00:00",
        "10000000",
        "3",
    ]


@pytest.mark.parametrize("date1904", [False, True])
def test_dates_written_by_xlsxwriter_in_either_date_system(tmp_path: Path, date1904: bool) -> None:
    path = tmp_path / "in.xlsx"
    book = xlsxwriter.Workbook(str(path), {"date_1904": date1904})
    sheet = book.add_worksheet("S")
    sheet.write_row(0, 0, ["contact_id", "when", "at", "since"])
    sheet.write_string(1, 0, ID1)
    sheet.write_datetime(1, 1, datetime.date(2024, 1, 5), book.add_format({"num_format": 14}))
    sheet.write_datetime(
        1,
        2,
        datetime.datetime(2024, 1, 5, 10, 30),
        book.add_format({"num_format": "d mmm yy h:mm"}),
    )
    sheet.write_datetime(
        1, 3, datetime.time(7, 5, 3), book.add_format({"num_format": "[$-409]h:mm:ss AM/PM"})
    )
    book.close()
    assert read_rows(path)[1] == [ID1, "2024-01-05", "2024-01-05 10:30:00", "07:05:03"]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("General", PLAIN),
        ("0.00", PLAIN),
        ("#,##0.00\\ [$€-407]", PLAIN),
        ('"Day "0', PLAIN),
        ("[Red]0.00;[Blue]-0.00", PLAIN),
        ("0;yyyy", PLAIN),  # only the first section counts
        ("\\d0", PLAIN),
        ("0.00_m", PLAIN),
        ("yyyy-mm-dd", DATE),
        ("[$-409]d-mmm-yy;@", DATE),
        ("h:mm AM/PM", DATE),
        ("[Blue]hh:mm", DATE),
        ("[h]:mm:ss", DURATION),
        ("[mm]:ss", DURATION),
    ],
)
def test_which_number_formats_are_dates(code: str, kind: int) -> None:
    assert format_kind(code) == kind


# --- other producers --------------------------------------------------------------------------


def test_a_workbook_written_by_openpyxl(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Notes"
    first.append(["nothing here"])
    sheet = book.create_sheet("Contacts")
    sheet.append(["Contact Id", "Tags", "Action", "Joined", "Score", "VIP", "Note"])
    sheet.append([ID1, "vip", "add", datetime.datetime(2024, 1, 5), 7, True, " padded "])
    sheet.append([ID2, CellRichText(["le", TextBlock(InlineFont(b=True), "ad")]), "add",
                  datetime.datetime(2024, 1, 5, 10, 30), 2.5, False, "a & <b>"])  # fmt: skip
    sheet.append([123, "x", "add", None, None, None, "=1+1"])
    sheet["A6"] = ID1
    sheet["B6"] = "late"
    sheet["C6"] = "remove"
    book.save(tmp_path / "in.xlsx")
    rows = list(
        open_input(
            tmp_path / "in.xlsx", InputOptions(sheet="Contacts", default_location_id="L" * 20)
        ).chunks()
    )
    got = [(r.line, r.contact_id, r.tags, r.extra) for chunk in rows for r in chunk]
    assert got == [
        (2, ID1, ("vip",), (ID1, "vip", "add", "2024-01-05", "7", "TRUE", " padded ")),
        (3, ID2, ("lead",), (ID2, "lead", "add", "2024-01-05 10:30:00", "2.5", "FALSE", "a & <b>")),
        (4, "123", ("x",), ("123", "x", "add", "", "", "", "")),
        (6, ID1, ("late",), (ID1, "late", "remove", "", "", "", "")),
    ]


def test_shared_strings_written_by_xlsxwriter(tmp_path: Path) -> None:
    path = tmp_path / "in.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    sheet.write_row(0, 0, ["contact_id", "tags"])
    bold = book.add_format({"bold": True})
    for n in range(1, 300):
        sheet.write_string(n, 0, f"id{n % 7}")
        sheet.write_rich_string(
            n, 1, "ta", bold, f"g{n % 3}", " ✓"
        ) if n % 2 else sheet.write_string(n, 1, "tag\r\nnext")
    book.close()
    with zipfile.ZipFile(path) as z:
        assert "<r>" in z.read("xl/sharedStrings.xml").decode()
    rows = read_rows(path)
    assert len(rows) == 300
    assert rows[1] == ["id1", "tag1 ✓"]
    assert rows[2] == ["id2", "tag\r\nnext"]


def test_shared_strings_are_read_only_as_far_as_the_rows_read_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "in.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    sheet.write_row(0, 0, ["contact_id", "tags", "note"])
    for n in range(1, 40_000):
        sheet.write_row(n, 0, [f"{n:020d}", "vip", f"note {n}"])
    book.close()
    with zipfile.ZipFile(path) as z:
        size = z.getinfo("xl/sharedStrings.xml").file_size
    inflated: list[int] = []
    real_read = zipfile.ZipExtFile.read

    def read(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        data = real_read(self, n)
        if self.name == "xl/sharedStrings.xml":
            inflated.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    source = open_excel(path, None)
    assert source.header == ["contact_id", "tags", "note"]
    assert 0 < sum(inflated) < size / 10
    rows = [cells for part in source.read(1000, 0) for cells in zip(*part.columns, strict=True)]
    assert rows[-1] == ("00000000000000039999", "vip", "note 39999")
    assert sum(inflated) >= size


def test_shared_strings_are_one_buffer_and_offsets() -> None:
    strings = SharedStrings()
    strings.add([b"a", "é😀".encode(), b""])
    strings.add([b"x\0y", b"z"])
    assert len(strings) == 5
    assert [strings.get(i) for i in range(5)] == ["a", "é😀", "", "x\0y", "z"]
    assert strings.many([b"4", b"1", b"3", b"0"]) == ["z", "é😀", "x\0y", "a"]
    with pytest.raises(xlsx.XlsxError, match="shared string 5"):
        strings.many([b"5"])


# --- which sheet ------------------------------------------------------------------------------


def one_cell(cell: str) -> str:
    return worksheet(f'<row r="1"><c r="A1" t="inlineStr"><is><t>{cell}</t></is></c></row>')


def test_the_first_visible_sheet_is_read_unless_one_is_named(tmp_path: Path) -> None:
    """Without --sheet the first visible sheet is read, and the reading names it; a hidden sheet
    is read only when named; positions count the visible sheets; a chart sheet is no sheet."""
    path = package(
        tmp_path / "in.xlsx",
        [("Old", one_cell("h")), ("Contacts", one_cell("s")), ("Secret", one_cell("v"))],
        states={"Old": "hidden", "Secret": "veryHidden"},
        chart=True,
    )
    source = open_excel(path, None)
    assert (source.header, source.reading) == (["s"], 'sheet "Contacts", the first visible of 3')
    source = open_excel(path, "old")
    assert (source.header, source.reading) == (["h"], 'sheet "Old" (hidden), named by --sheet')
    assert open_excel(path, "Secret").header == ["v"]
    source = open_excel(path, "1")
    assert (source.header, source.reading) == (["s"], 'sheet "Contacts", visible sheet 1 of 3')
    listed = "'Old' (hidden), 'Contacts', 'Secret' (hidden)"
    with pytest.raises(InputError) as info:
        open_excel(path, "2")
    assert str(info.value) == (
        f"{path}: no sheet '2', and the workbook has only 1 visible sheet ({listed}); give a "
        "name, or a position from 1 to 1, with --sheet"
    )
    with pytest.raises(InputError) as info:
        open_excel(path, "Chart")
    assert str(info.value) == (
        f"{path}: no sheet 'Chart' (sheets: {listed}); give one of them with --sheet"
    )


def test_a_workbook_of_hidden_sheets_only_asks_for_one_by_name(tmp_path: Path) -> None:
    """A workbook whose every sheet is hidden (Excel never saves one) is refused without
    --sheet, naming the sheets; a single visible sheet is "the only sheet"."""
    path = package(tmp_path / "in.xlsx", [("A", one_cell("a"))], states={"A": "hidden"})
    with pytest.raises(InputError) as info:
        open_excel(path, None)
    assert str(info.value) == (
        f"{path}: every sheet is hidden ('A' (hidden)); name the one to read with --sheet"
    )
    path = package(tmp_path / "one.xlsx", [("A", one_cell("a"))])
    assert open_excel(path, None).reading == 'sheet "A", the only sheet'


# --- what cannot be read ----------------------------------------------------------------------


def read_all(path: Path, **options: Any) -> None:
    table = open_input(path, InputOptions(action="add", default_location_id="L" * 20, **options))
    for _ in table.chunks():
        pass


def error_of(path: Path, **options: Any) -> str:
    with pytest.raises(InputError) as info:
        read_all(path, **options)
    return str(info.value)


def test_corrupt_xml_far_down_the_sheet_stops_the_read_naming_the_file(
    tmp_path: Path, block: int
) -> None:
    good = "".join(
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{ID1}</t></is></c>'
        f'<c r="B{r}" t="inlineStr"><is><t>x</t></is></c></row>'
        for r in range(2, 2000)
    )
    header = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>contact_id</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>tags</t></is></c></row>'
    )
    broken = '<row r="2000"><c r="A2000"><v>1</v></row>'  # </c> missing
    path = package(tmp_path / "in.xlsx", [("S", worksheet(header + good + broken))])
    source = open_excel(path, None)  # the top of the sheet is fine
    assert source.has_rows is True
    message = error_of(path)
    assert message.startswith(f"{path}: sheet 'S' cannot be read (")
    assert "\n" not in message


def test_xml_cut_short_is_an_input_error(tmp_path: Path, block: int) -> None:
    xml = worksheet('<row r="1"><c r="A1" t="inlineStr"><is><t>contact_id</t></is></c></row>')
    path = package(tmp_path / "in.xlsx", [("S", xml[: xml.index("</sheetData>")])])
    assert error_of(path) == (
        f"{path}: sheet 'S' cannot be read "
        "(the XML ends inside <sheetData> (the file is cut short))"
    )


def test_a_damaged_compressed_sheet_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "in.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    sheet.write_row(0, 0, ["contact_id", "tags"])
    for n in range(1, 3000):
        sheet.write_row(n, 0, [f"{n:020d}", f"t{n * 7919 % 1000}"])
    book.close()
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("xl/worksheets/sheet1.xml")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle : middle + 16] = bytes(16)
    path.write_bytes(bytes(data))
    message = error_of(path)
    assert message.startswith(f"{path}: sheet 'S' cannot be read (")


def test_a_part_not_in_utf8_is_refused(tmp_path: Path) -> None:
    xml = worksheet('<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c></row>')
    encoded = xml.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    path = package(tmp_path / "in.xlsx", [("S", encoded)])
    assert error_of(path) == (
        f"{path}: sheet 'S' cannot be read "
        "(an XML part not in UTF-8 (no spreadsheet program writes those))"
    )


def test_a_value_right_of_the_header_is_refused_naming_its_cell(tmp_path: Path) -> None:
    rows = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>contact_id</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>tags</t></is></c></row>'
        f'<row r="2"><c r="A2" t="inlineStr"><is><t>{ID1}</t></is></c>'
        '<c r="B2" t="inlineStr"><is><t>x</t></is></c><c r="C2" s="1"/>'  # empty: fine
        '<c r="D2" t="inlineStr"><is><t>stray</t></is></c></row>'
    )
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows))])
    assert error_of(path) == (
        f"{path}: sheet 'S' row 2 has a value in column D, right of the header's last column (B); "
        "give that column a name in the header row (row 1) or delete it"
    )


def test_a_workbook_without_a_workbook_part_is_not_readable(tmp_path: Path) -> None:
    path = tmp_path / "in.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    assert error_of(path) == (
        f"{path}: not a readable Excel workbook (no workbook part (not an Excel workbook))"
    )


def test_a_zip_with_encrypted_parts_is_refused(tmp_path: Path) -> None:
    path = write_zip_encrypted(tmp_path / "in.xlsx")
    assert error_of(path) == (
        f"{path}: not a readable Excel workbook "
        "(its parts are encrypted (a zip password, not Excel's))"
    )


def write_zip_encrypted(path: Path) -> Path:
    """A package whose members carry the zip encryption flag (what `zip -e` makes)."""
    package(
        path, [("S", worksheet('<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c></row>'))]
    )
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    for info in infos:  # the flag in the local header and in the central directory
        data[info.header_offset + 6] |= 1
    central = data.rfind(b"PK\x05\x06")
    at = int.from_bytes(data[central + 16 : central + 20], "little")
    while data[at : at + 4] == b"PK\x01\x02":
        data[at + 8] |= 1
        at += 46 + sum(int.from_bytes(data[at + k : at + k + 2], "little") for k in (28, 30, 32))
    path.write_bytes(bytes(data))
    return path


# --- bounded work -----------------------------------------------------------------------------

HEADER_ROW = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>contact_id</t></is></c>'
    '<c r="B1" t="inlineStr"><is><t>note</t></is></c></row>'
)


def test_an_item_longer_than_a_block_is_read_in_a_few_reads_not_one_per_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 3 MiB cell is read by reads that double (a handful of scans of it in all: time linear
    in its length), not by 48 reads of a 64 KiB block, each rescanning it (quadratic)."""
    text = "x" * (3 << 20)
    rows = HEADER_ROW + f'<row r="2"><c r="A2" t="inlineStr"><is><t>{text}</t></is></c></row>'
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows))])
    reads: list[int] = []
    real = zipfile.ZipExtFile.read

    def read(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        data = real(self, n)
        if self.name.endswith("s1.xml"):
            reads.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    rows_read = list(sheet_rows(path, Limits(inflate_ratio=0)))  # a small file: no ratio
    assert rows_read[1] == [text, ""]
    assert sum(reads) >= 2 * (3 << 20)  # two readings: the header's, then the rows'
    assert len(reads) <= 2 * 10  # block by block: 2 * 48


def test_a_part_that_would_inflate_beyond_the_files_size_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sheet the zip says inflates to more than 100 times the file (and over 1 MiB) is
    refused from the zip's directory: not a byte of it is inflated."""
    rows = HEADER_ROW + '<row r="2"><c r="A2"><v>1</v></c></row>' * 1_000_000
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows))])
    inflated: list[str] = []
    real = zipfile.ZipExtFile.read

    def read(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        inflated.append(self.name)
        return real(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    assert error_of(path) == (
        f"{path}: xl/sheets/s1.xml inflates to 37 MiB, more than input.max_inflate_ratio (100) "
        "times the file's size: refused as a zip bomb (if the workbook is genuine, raise "
        "input.max_inflate_ratio, or save the sheet as CSV)"
    )
    assert not any(name.endswith("s1.xml") for name in inflated)


def test_a_part_compressed_by_a_method_no_spreadsheet_uses_is_refused(tmp_path: Path) -> None:
    """bzip2 and LZMA inflate without bound in one read: a part compressed so is refused."""
    path = package(tmp_path / "in.xlsx", [("S", worksheet(HEADER_ROW))])
    with zipfile.ZipFile(path) as z:
        parts = {info.filename: z.read(info) for info in z.infolist()}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            method = zipfile.ZIP_BZIP2 if name.endswith("s1.xml") else zipfile.ZIP_DEFLATED
            z.writestr(name, data, compress_type=method)
    assert error_of(path) == (
        f"{path}: xl/sheets/s1.xml is compressed by a method no spreadsheet program uses; open "
        "the workbook in Excel and save it again"
    )


@pytest.mark.parametrize("part", ["workbook", "styles"])
def test_a_dtd_in_any_part_is_refused(tmp_path: Path, part: str) -> None:
    """A document type declaration (entities are how an XML bomb grows) is refused in the
    workbook and the styles as in a sheet: Open XML parts may not hold one."""
    path = package(tmp_path / "in.xlsx", [("S", worksheet(HEADER_ROW))], styles=STYLES)
    with zipfile.ZipFile(path) as z:
        parts = {info.filename: z.read(info) for info in z.infolist()}
    name = {"workbook": "xl/book.xml", "styles": "xl/looks.xml"}[part]
    parts[name] = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + parts[name]
    with zipfile.ZipFile(path, "w") as z:
        for member, data in parts.items():
            z.writestr(member, data)
    assert error_of(path) == f"{path}: {name} holds a DTD, which Open XML parts may not have"


def test_a_cell_over_the_limit_is_refused_naming_it_on_every_path(
    tmp_path: Path, block: int
) -> None:
    """A cell whose text is over input.max_cell_kb (characters, not bytes: 1,500 two-byte
    characters are within 2 KiB) is refused naming its cell, whatever the block size and however
    it is written (inline, rich, a formula's text, shared)."""
    limits = Limits(cell_chars=2048)
    within, over = "é" * 1500, "é" * 2100
    for cell in (
        '<c r="B3" t="inlineStr"><is><t>{}</t></is></c>',
        '<c r="B3" t="str"><f>A1</f><v>{}</v></c>',
        '<c r="B3" t="inlineStr"><is><r><t>é</t></r><r><t>{}</t></r></is></c>',
    ):
        head = HEADER_ROW + '<row r="2"><c r="A2"><v>1</v></c></row>'
        path = package(
            tmp_path / "in.xlsx",
            [("S", worksheet(head + f'<row r="3">{cell.format(within)}</row>'))],
        )
        assert len(list(sheet_rows(path, limits))) == 3
        path = package(
            tmp_path / "in.xlsx", [("S", worksheet(head + f'<row r="3">{cell.format(over)}</row>'))]
        )
        with pytest.raises(InputError) as info:
            list(sheet_rows(path, limits))
        length = 2101 if "<r>" in cell else 2100
        assert str(info.value) == (
            f"{path}: sheet 'S' cell B3 holds {length:,} characters, more than input.max_cell_kb "
            "(2 KiB of text; Excel's own cells stop at 32,767 characters): shorten it, or raise "
            "input.max_cell_kb"
        )
    strings = sst(f"<si><t>{within}</t></si><si><t>{over}</t></si>")
    rows = HEADER_ROW + '<row r="2"><c r="B2" t="s"><v>1</v></c></row>'
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows))], strings=strings)
    with pytest.raises(InputError, match="the workbook's shared string 1 holds 2,100 characters"):
        list(sheet_rows(path, limits))


def test_a_reading_abandoned_stops_at_its_next_read(tmp_path: Path) -> None:
    """Once its reader has gone (`cancel` set), a sheet's reading ends at its next read."""
    rows = HEADER_ROW + "".join(
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{ID1}</t></is></c></row>'
        for r in range(2, 20_000)
    )
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows))])
    cancel = threading.Event()
    with xlsx.Book(path, Limits(), cancel) as book:
        blocks = book.rows(0, None)
        next(blocks)
        cancel.set()
        with pytest.raises(xlsx_part.Cancelled):
            next(blocks)


# --- where cells go ---------------------------------------------------------------------------


def test_cells_go_where_their_r_says_in_any_order(tmp_path: Path, block: int) -> None:
    """Cells written right to left, or twice, go where their `r` says (of a column written
    twice, the last cell counts), on every path; a cell without `r` goes right of the one
    before it, in its row."""
    rows = (
        '<row r="1"><c r="C1" t="inlineStr"><is><t>c</t></is></c>'
        '<c r="A1" t="inlineStr"><is><t>a</t></is></c><c t="inlineStr"><is><t>b</t></is></c>'
        "</row>"
        '<row r="2"><c r="B2"><v>1</v></c><c r="B2"><v>2</v></c><c r="A2"><v>3</v></c></row>'
        '<row r="4"><c r="C4"><v>5</v></c><c r="A4"><v>4</v></c></row>'
    )
    assert read_rows(package(tmp_path / "in.xlsx", [("S", worksheet(rows))])) == [
        ["a", "b", "c"],
        ["3", "2", ""],
        [],
        ["4", "", "5"],
    ]


def test_empty_cells_far_right_make_no_block_that_wide(tmp_path: Path) -> None:
    """A styled empty cell in column XFD of every row (formatting carried to the sheet's edge)
    gives blocks as wide as their text, not 16,384 columns of empty cells."""
    rows = "".join(
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{ID1}</t></is></c>'
        f'<c r="XFD{r}" s="1"/></row>'
        for r in range(1, 3000)
    )
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows))])
    with xlsx.Book(path) as book:
        widths = {len(block.columns) for block in book.rows(0, None)}
    assert widths == {1}


@pytest.mark.parametrize(
    ("rows", "refusal"),
    [
        ('<row r="0"><c r="A0"><v>1</v></c></row>', "has a row 0, outside Excel's rows"),
        ('<row r="3"><c r="A3"><v>1</v></c></row><row r="3"><c r="A3"><v>2</v></c></row>',
         "row 3 comes after row 3 in the file"),
        ('<row r="1"><c r="ZZZ1"><v>1</v></c></row>', "has a cell in column ZZZ"),
    ],
)  # fmt: skip
def test_rows_and_cells_outside_the_sheet_are_refused_on_every_path(
    tmp_path: Path, block: int, rows: str, refusal: str
) -> None:
    """A row 0, a row repeated, a column past XFD: refused, whichever way the block is read."""
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows))])
    with pytest.raises(InputError, match=refusal):
        read_rows(path)


def test_a_style_number_out_of_range_is_a_plain_number(tmp_path: Path) -> None:
    """A cell whose style index is negative or past the styles reads as a plain number (a
    negative index once picked the last style: a date)."""
    rows = '<row r="1"><c r="A1" s="-1"><v>45296</v></c><c r="B1" s="99"><v>45296</v></c></row>'
    path = package(tmp_path / "in.xlsx", [("S", worksheet(rows))], styles=STYLES)
    assert read_rows(path) == [["45296", "45296"]]
