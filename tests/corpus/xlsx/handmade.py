"""How the workbooks in `handmade/` were made (run by hand: `python handmade.py`): the odd XML
forms found in real files, each small and named for what it holds. Each workbook's expected
reading is in the JSON beside it.
"""

from __future__ import annotations

from pathlib import Path

from xlsx_make import ID, MAIN, package, sst, worksheet

HERE = Path(__file__).resolve().parent / "handmade"
ID2 = "ZyXwVuTsRq9876543210"


def inline(ref: str, text: str, attributes: str = "") -> str:
    return f'<c r="{ref}" t="inlineStr"{attributes}><is><t>{text}</t></is></c>'


SPACED = "\t\n lead and trail \n"
NBSP = "\u00a0nbsp\u00a0"
HEADER = f'<row r="1">{inline("A1", "contact_id")}{inline("B1", "tags")}</row>'


def main() -> None:
    HERE.mkdir(exist_ok=True)

    # An inline string cell with a <v> and no <is>: empty, as LibreOffice and calamine show it,
    # on every path (the second sheet's comment sends its block to the XML parser).
    rows = (
        HEADER + f'<row r="2"><c r="A2" t="inlineStr"><v>{ID}</v></c>{inline("B2", "vip")}</row>'
        f'<row r="3">{inline("A3", ID2)}<c r="B3" t="inlineStr"><is><t>lead</t></is>'
        "<v>ignored</v></c></row>"
    )
    package(
        HERE / "inline_string_with_v.xlsx",
        [("Plain", worksheet(rows)), ("Commented", worksheet(rows + "<!-- a comment -->"))],
    )

    # Cells written out of column order (C, then A, then B), as openspout writes them.
    rows = "".join(
        f'<row r="{r}">{inline(f"C{r}", f"c{r}")}{inline(f"A{r}", f"a{r}")}'
        f"{inline(f'B{r}', f'b{r}')}</row>"
        for r in range(1, 5)
    )
    package(HERE / "cells_out_of_order.xlsx", [("Sheet1", worksheet(rows))])

    # 20,000 rows without cells, then rows without `r`: their numbers are 20,002 and 20,003.
    empty = "".join(f'<row r="{r}"/>' for r in range(2, 20_002))
    rows = (
        HEADER
        + empty
        + f'<row><c t="inlineStr"><is><t>{ID}</t></is></c><c t="inlineStr"><is><t>vip</t></is>'
        f'</c></row><row><c t="inlineStr"><is><t>{ID2}</t></is></c></row>'
    )
    package(HERE / "rows_without_r_after_empty_rows.xlsx", [("Sheet1", worksheet(rows))])

    # A row number going backwards far down the sheet (another block): refused, as inside one.
    rows = HEADER + "".join(
        f'<row r="{r}">{inline(f"A{r}", ID)}{inline(f"B{r}", "vip")}</row>' for r in range(2, 3001)
    )
    rows += f'<row r="5">{inline("A5", ID2)}</row>'
    package(HERE / "row_number_backwards.xlsx", [("Sheet1", worksheet(rows))])

    # Numbers under date and elapsed-time formats that no date or duration holds: read as the
    # numbers they are.
    styles = (
        f'<styleSheet xmlns="{MAIN}"><numFmts><numFmt numFmtId="164" formatCode="[h]:mm:ss"/>'
        '</numFmts><cellXfs><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="14"/>'
        "</cellXfs></styleSheet>"
    )
    rows = (
        f'<row r="1">{inline("A1", "contact_id")}{inline("B1", "elapsed")}'
        f"{inline('C1', 'date')}</row>"
        f'<row r="2">{inline("A2", ID)}<c r="B2" s="1"><v>1.5</v></c><c r="C2" s="2"><v>45296'
        "</v></c></row>"
        f'<row r="3">{inline("A3", ID)}<c r="B3" s="1"><v>1e10</v></c><c r="C3" s="2"><v>1e10'
        "</v></c></row>"
        f'<row r="4">{inline("A4", ID)}<c r="B4" s="1"><v>1e300</v></c><c r="C4" s="2"><v>-1e300'
        "</v></c></row>"
    )
    package(HERE / "huge_durations_and_dates.xlsx", [("Sheet1", worksheet(rows))], styles=styles)

    # Strict Open XML: the purl.oclc.org namespaces for the parts and the relationships.
    strict_styles = (
        '<styleSheet xmlns="http://purl.oclc.org/ooxml/spreadsheetml/main"><cellXfs>'
        '<xf numFmtId="0"/><xf numFmtId="14"/></cellXfs></styleSheet>'
    )
    rows = (
        f'<row r="1">{inline("A1", "contact_id")}{inline("B1", "tags")}'
        f'{inline("C1", "joined")}</row><row r="2">{inline("A2", ID)}<c r="B2" t="s"><v>0</v>'
        '</c><c r="C2" s="1"><v>45296</v></c></row>'
    )
    package(
        HERE / "strict_open_xml.xlsx",
        [("Contacts", worksheet(rows, strict=True))],
        strings=sst("<si><t>vip</t></si>", strict=True),
        styles=strict_styles,
        strict=True,
    )

    # Part names written with backslashes (xl\workbook.xml), as some Windows tools zip them.
    rows = HEADER + f'<row r="2">{inline("A2", ID)}<c r="B2" t="s"><v>0</v></c></row>'
    package(
        HERE / "backslash_part_names.xlsx",
        [("Contacts", worksheet(rows))],
        strings=sst("<si><t>vip</t></si>"),
        backslash=True,
    )

    # Whitespace at the ends of a <t> without xml:space="preserve" is trimmed, as Excel shows
    # it; with it, kept; a no-break space is no XML whitespace; each rich text run is trimmed.
    items = (
        "<si><t>  shared  </t></si>"
        '<si><t xml:space="preserve">  kept  </t></si>'
        "<si><r><t>run </t></r><r><t> two</t></r></si>"
        "<si><t>&#32;ref&#x9;</t></si>"
    )
    rows = (
        f'<row r="1">{inline("A1", "contact_id")}{inline("B1", "inline")}'
        f"{inline('C1', 'shared')}</row>"
        f'<row r="2">{inline("A2", f"  {ID}")}{inline("B2", SPACED)}'
        '<c r="C2" t="s"><v>0</v></c></row>'
        f'<row r="3">{inline("A3", ID)}<c r="B3" t="inlineStr"><is><t xml:space="preserve">'
        '  kept  </t></is></c><c r="C3" t="s"><v>1</v></c></row>'
        f'<row r="4">{inline("A4", ID)}{inline("B4", NBSP)}'
        '<c r="C4" t="s"><v>2</v></c></row>'
        f'<row r="5">{inline("A5", ID)}{inline("B5", "&#32;ref&#32;")}'
        '<c r="C5" t="s"><v>3</v></c></row>'
    )
    package(HERE / "unpreserved_whitespace.xlsx", [("Sheet1", worksheet(rows))], strings=sst(items))

    # A header 16,384 columns wide (A to XFD): more than the 1,900 columns a run keeps.
    letters = []
    for n in range(16_384):
        name, k = "", n + 1
        while k:
            k, rest = divmod(k - 1, 26)
            name = chr(65 + rest) + name
        letters.append(name)
    rows = '<row r="1">' + "".join(inline(f"{c}1", f"h{c}") for c in letters) + "</row>"
    rows += f'<row r="2">{inline("A2", ID)}</row>'
    package(HERE / "header_16384_columns.xlsx", [("Wide", worksheet(rows))])

    # A cell right of column XFD, and a row below row 1,048,576: outside any sheet.
    rows = HEADER + f'<row r="2">{inline("A2", ID)}{inline("XFE2", "beyond")}</row>'
    package(HERE / "cell_beyond_xfd.xlsx", [("Sheet1", worksheet(rows))])
    rows = HEADER + f'<row r="2000000">{inline("A2000000", ID)}</row>'
    package(HERE / "row_beyond_1048576.xlsx", [("Sheet1", worksheet(rows))])

    # A document type declaration (with an entity, how an XML bomb grows): no Open XML part may
    # hold one.
    xml = worksheet(HEADER).replace(
        b"<worksheet", b'<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa">]><worksheet', 1
    )
    package(HERE / "dtd.xlsx", [("Sheet1", xml)])


if __name__ == "__main__":
    main()
