"""Writes the hand-made files of the CSV corpus (`made/`) and the values each must read as.

    python tests/corpus/csv/make_files.py

Each file is written in the shape its producer is documented to write (encoding, BOM, line
ends, quoting, delimiter); none was exported by the producer itself (see README.md). The
expected values come from the table below, never from batcher: `<name>.expected.json` holds the
cases (options, then the columns and every row's cells, or the start of the one-line refusal).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "made"

IDS = [
    "aB3dE5fG7hJ9kL1mN3pQ",
    "bC4eF6gH8iJ0kL2mN4pR",
    "cD5fG7hI9jK1lM3nO5qS",
    "dE6gH8iJ0kL2mN4oP6rT",
]

# Western names in every Western code page: é, ü, ß, ø, ñ are in cp1252, mac_roman and cp850.
WESTERN = [
    [IDS[0], "Zoë", "Müller", "vip", "add"],
    [IDS[1], "José", "Núñez, Jr.", "vip, newsletter", "add"],
    [IDS[2], "Søren", "Straße 5\nApt 2", "gold", "remove"],
    [IDS[3], "Ann", 'O"Brien', "vip", "add"],
]
HEADER = ["contact_id", "first_name", "last_name", "tags", "action"]


def rows_text(
    rows: list[list[str]],
    *,
    delimiter: str = ",",
    line_end: str = "\r\n",
    quote_all: bool = False,
    header: list[str] = HEADER,
) -> str:
    out = io.StringIO()
    writer = csv.writer(
        out,
        delimiter=delimiter,
        lineterminator=line_end,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def expected_rows(rows: list[list[str]], first_line: int = 2) -> list[dict[str, Any]]:
    found = []
    line = first_line
    for cells in rows:
        found.append({"line": line, "cells": cells})
        line += 1 + sum(len(re.findall(r"\r\n|\r|\n", cell)) for cell in cells)
    return found


def write(name: str, data: bytes, cases: list[dict[str, Any]], source: str) -> None:
    (HERE / name).write_bytes(data)
    document = {"made": source, "cases": cases}
    (HERE / f"{name}.expected.json").write_text(
        json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )


def read_case(
    rows: list[list[str]],
    reading: str,
    options: dict[str, Any] | None = None,
    header: list[str] = HEADER,
    first_line: int = 2,
) -> dict[str, Any]:
    return {
        "options": options or {},
        "columns": header,
        "rows": expected_rows(rows, first_line),
        "reading": reading,
    }


def named(encoding: str) -> str:
    return f'CSV, {encoding} (as named), delimiter "," (sniffed)'


def main() -> None:
    HERE.mkdir(exist_ok=True)
    # Excel "CSV UTF-8 (Comma delimited)": UTF-8 with a BOM, CRLF, quotes where needed.
    text = rows_text(WESTERN)
    write(
        "excel_csv_utf8.csv",
        codecs.BOM_UTF8 + text.encode("utf-8"),
        [read_case(WESTERN, 'CSV, UTF-8 (BOM), delimiter "," (sniffed)')],
        'Excel "CSV UTF-8 (Comma delimited)": UTF-8 with BOM, CRLF, minimal quoting',
    )
    # Excel "CSV (Comma delimited)" on Western Windows: cp1252, CRLF. Only names are not ASCII:
    # read, the code page detected; with a non-ASCII tag see cp1252_tag.csv.
    write(
        "excel_csv_cp1252.csv",
        text.encode("cp1252"),
        [
            read_case(WESTERN, "(detected: the cells sent read the same in "),
            read_case(
                WESTERN, 'CSV, cp1252 (as named), delimiter "," (sniffed)', {"encoding": "cp1252"}
            ),
        ],
        'Excel "CSV (Comma delimited)", Western Windows: cp1252, CRLF',
    )
    # Excel for Mac "CSV (Macintosh)": Mac OS Roman, CR line ends.
    mac_rows = [[cell.replace("\n", "\r") for cell in row] for row in WESTERN]
    mac = rows_text(mac_rows, line_end="\r")
    write(
        "excel_csv_macintosh.csv",
        mac.encode("mac_roman"),
        [
            read_case(
                mac_rows,
                'CSV, mac_roman (as named), delimiter "," (sniffed)',
                {"encoding": "mac_roman"},
            )
        ],
        'Excel "CSV (Macintosh)": mac_roman, CR line ends',
    )
    # Excel "CSV (MS-DOS)": cp850, CRLF.
    write(
        "excel_csv_msdos.csv",
        text.encode("cp850"),
        [
            read_case(
                WESTERN, 'CSV, cp850 (as named), delimiter "," (sniffed)', {"encoding": "cp850"}
            )
        ],
        'Excel "CSV (MS-DOS)": cp850, CRLF',
    )
    # Excel "Unicode Text": UTF-16 LE with a BOM, tab-separated, CRLF.
    tabbed = rows_text(WESTERN, delimiter="\t")
    write(
        "excel_unicode_text.txt",
        codecs.BOM_UTF16_LE + tabbed.encode("utf-16-le"),
        [read_case(WESTERN, "CSV, UTF-16 (BOM), delimiter tab (sniffed)")],
        'Excel "Unicode Text": UTF-16 LE with BOM, tabs, CRLF',
    )
    # European Excel with the "sep=;" line a user (or a tool) puts first so that Excel splits.
    semi = "sep=;\r\n" + rows_text(WESTERN, delimiter=";")
    write(
        "excel_sep_semicolon.csv",
        codecs.BOM_UTF8 + semi.encode("utf-8"),
        [read_case(WESTERN, 'CSV, UTF-8 (BOM), delimiter ";" (its "sep=;" line)', first_line=3)],
        'Excel with a "sep=;" first line, semicolons, UTF-8 with BOM',
    )
    # Google Sheets "Comma-separated values": UTF-8 without BOM, CRLF, no line end at the end.
    sheets = rows_text(WESTERN).removesuffix("\r\n")
    write(
        "google_sheets.csv",
        sheets.encode("utf-8"),
        [read_case(WESTERN, 'CSV, UTF-8 (valid throughout), delimiter "," (sniffed)')],
        "Google Sheets download: UTF-8 without BOM, CRLF, no final line end",
    )
    # LibreOffice Calc "Text CSV" with "Quote all text cells": UTF-8, LF.
    libre = rows_text(WESTERN, line_end="\n", quote_all=True)
    write(
        "libreoffice_quote_all.csv",
        libre.encode("utf-8"),
        [read_case(WESTERN, 'CSV, UTF-8 (valid throughout), delimiter "," (sniffed)')],
        'LibreOffice Calc "Text CSV", UTF-8, LF, every text cell quoted',
    )
    # Non-Western code pages with the tags in them: refused unless named.
    for name, encoding, tag in (
        ("cp1251_tags.csv", "cp1251", "клиент"),
        ("cp1250_tags.csv", "cp1250", "Łódź"),
        ("cp1254_tags.csv", "cp1254", "müşteri"),
        ("cp1257_tags.csv", "cp1257", "Klientų"),
        ("cp1252_tags.csv", "cp1252", "café"),
        ("mac_roman_tags.csv", "mac_roman", "café"),
    ):
        rows = [[IDS[0], "A", "B", tag, "add"], [IDS[1], "C", "D", "vip", "add"]]
        write(
            name,
            rows_text(rows).encode(encoding),
            [
                {
                    "options": {},
                    "refused": "not UTF-8, and which code page it is cannot be told from the "
                    "data: line 2, tags reads ",
                    "shows": f'"{tag}" in {encoding}',
                },
                read_case(
                    rows,
                    f'CSV, {encoding} (as named), delimiter "," (sniffed)',
                    {"encoding": encoding},
                ),
            ],
            f"{encoding} with a non-ASCII tag, CRLF",
        )
    # HubSpot contacts export shape: UTF-8, every field quoted, LF; a contact_id column added.
    hubspot_header = ["Record ID", "First Name", "Last Name", "Email", "contact_id", "Create Date"]
    hubspot_rows = [
        ["501", "Zoë", "Müller", "zoe@example.com", IDS[0], "2024-01-05 10:30"],
        ["502", "Ann", "Lee, MD", "ann@example.com", IDS[1], "2024-02-11 08:00"],
    ]
    write(
        "hubspot_style_export.csv",
        rows_text(hubspot_rows, header=hubspot_header, quote_all=True, line_end="\n").encode(),
        [
            read_case(
                hubspot_rows,
                'CSV, UTF-8 (valid throughout), delimiter "," (sniffed)',
                {"tags": ["vip"], "action": "add"},
                header=hubspot_header,
            )
        ],
        "HubSpot-style contacts export: UTF-8, every field quoted, LF",
    )
    # Salesforce Data Loader shape: UTF-8, every field quoted, CRLF, ids in "Id".
    sf_header = ["Id", "FirstName", "LastName", "Email", "Description"]
    sf_rows = [
        [IDS[0], "Zoë", "Müller", "zoe@example.com", 'Said "call back"\nnext week'],
        [IDS[1], "Ann", "Lee", "ann@example.com", ""],
    ]
    write(
        "salesforce_style_export.csv",
        rows_text(sf_rows, header=sf_header, quote_all=True).encode(),
        [
            read_case(
                sf_rows,
                'CSV, UTF-8 (valid throughout), delimiter "," (sniffed)',
                {"tags": ["vip"], "action": "add"},
                header=sf_header,
            )
        ],
        "Salesforce Data Loader-style export: UTF-8, every field quoted, CRLF",
    )
    # Mailchimp audience export shape: a TAGS column of double-quoted tags in one cell.
    mc_header = ["Email Address", "First Name", "contact_id", "TAGS"]
    mc_rows = [
        ["zoe@example.com", "Zoë", IDS[0], '"vip","newsletter"'],
        ["ann@example.com", "Ann", IDS[1], '"2024 promo"'],
        ["bob@example.com", "Bob", IDS[2], ""],
    ]
    case = read_case(
        mc_rows,
        'CSV, UTF-8 (valid throughout), delimiter "," (sniffed)',
        {"action": "add"},
        header=mc_header,
    )
    case["tags"] = [["vip", "newsletter"], ["2024 promo"], []]
    case["invalid"] = [3]  # no tags to apply
    write(
        "mailchimp_style_export.csv",
        rows_text(mc_rows, header=mc_header, line_end="\n").encode(),
        [case],
        "Mailchimp-style audience export: UTF-8, LF, TAGS as quoted items in one cell",
    )
    # pandas' DataFrame.to_csv of a list column: Python list literals.
    pd_header = ["", "contact_id", "tags", "action"]
    pd_rows = [
        ["0", IDS[0], "['legacy-gold', 'legacy-2019']", "add"],
        ["1", IDS[1], "['old-segment']", "remove"],
        ["2", IDS[2], "[vip, gold]", "add"],
    ]
    case = read_case(
        pd_rows, 'CSV, UTF-8 (valid throughout), delimiter "," (sniffed)', header=pd_header
    )
    case["tags"] = [["legacy-gold", "legacy-2019"], ["old-segment"], []]
    case["invalid"] = [3]
    write(
        "pandas_to_csv_lists.csv",
        rows_text(pd_rows, header=pd_header, line_end="\n").encode(),
        [case],
        "pandas DataFrame.to_csv of a list column (and a hand-typed [vip, gold])",
    )
    # An unclosed quote, issue 21's example.
    quote = f'contact_id,name,tags\n{IDS[0]},"John,vip\n{IDS[1]},Mary,vip\n{IDS[2]},Ann,vip\n'
    write(
        "unclosed_quote.csv",
        quote.encode(),
        [{"options": {"action": "add"}, "refused": "line 2: a quote opens a cell that"}],
        "Issue 21's unclosed quote: never two rows",
    )


if __name__ == "__main__":
    main()
