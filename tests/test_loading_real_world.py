"""batcher.loading, Step 10: CSV files as the world writes them are read exactly or refused in
one line (issue 21's reproductions: encodings, unclosed quotes, list-looking tags, `sep=`, bounds).
"""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batcher.domain.errors import InputError, UsageError
from batcher.domain.models import Row, Status
from batcher.loading import Caps, InputOptions, InputTable, open_input, parse_tags

ID1 = "aB3dE5fG7hJ9kL1mN3pQ"
ID2 = "bC4eF6gH8iJ0kL2mN4pR"
ID3 = "cD5fG7hI9jK1lM3nO5qS"
LOC = "LocLocLocLocLocLoc01"


def write(path: Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


def table_of(path: Path, **options: Any) -> InputTable:
    options.setdefault("default_location_id", LOC)
    return open_input(path, InputOptions(**options))


def load(path: Path, **options: Any) -> list[Row]:
    return [row for chunk in table_of(path, **options).chunks() for row in chunk]


def refusal(path: Path, kind: type[Exception] = InputError, **options: Any) -> str:
    with pytest.raises(kind) as info:
        load(path, **options)
    return str(info.value)


# --- encodings: never guessed silently ------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "encoding", "misread"),
    [
        ("клиент", "cp1251", "êëèåíò"),
        ("café", "mac_roman", "cafŽ"),
        ("Łódź", "cp1250", "£ódŸ"),
        ("müşteri", "cp1254", "müþteri"),
    ],
)
def test_a_tag_in_a_code_page_stops_the_run_showing_its_readings(
    tmp_path: Path, word: str, encoding: str, misread: str
) -> None:
    """Issue 21: a tag the likely code pages read differently is never sent as a guess: exit 2
    naming the line, with the tag as each code page reads it (the right one among them)."""
    path = write(tmp_path / "in.csv", f"contact_id,tags,action\n{ID1},{word},add\n", encoding)
    message = refusal(path)
    assert message.startswith(
        f"{path}: not UTF-8, and which code page it is cannot be told from the data: line 2, "
        "tags reads "
    )
    assert f'"{word}" in {encoding}' in message
    assert f'"{misread}" in cp1252' in message or encoding == "cp1252"
    assert message.endswith(
        "--encoding and the code page whose reading is right (or input.encoding)"
    )


@pytest.mark.parametrize(
    ("word", "encoding"),
    [("клиент", "cp1251"), ("café", "mac_roman"), ("Łódź", "cp1250"), ("müşteri", "cp1254")],
)
def test_the_named_encoding_reads_the_tag_right(tmp_path: Path, word: str, encoding: str) -> None:
    """--encoding (input.encoding) reads the file as named, and says so."""
    path = write(tmp_path / "in.csv", f"contact_id,tags,action\n{ID1},{word},add\n", encoding)
    table = table_of(path, encoding=encoding)
    [row] = [row for chunk in table.chunks() for row in chunk]
    assert row.tags == (word,)
    assert table.reading == f'CSV, {encoding} (as named), delimiter "," (sniffed)'


def test_non_ascii_outside_the_sent_cells_is_read_in_the_detectors_pick_and_said(
    tmp_path: Path,
) -> None:
    """Names in a code page do not stop the run when every id, tag, action and location reads
    the same in every likely code page; charset-normalizer's ranking (ties to cp1252, the most
    common producer) reads the names, and the reading says it was detected."""
    text = f"contact_id,name,tags,action\n{ID1},Müller,vip,add\n{ID2},Zoë,gold,add\n"
    path = write(tmp_path / "in.csv", text, "cp1252")
    table = table_of(path)
    rows = [row for chunk in table.chunks() for row in chunk]
    assert [(r.contact_id, r.tags, r.extra[1]) for r in rows] == [
        (ID1, ("vip",), "Müller"),
        (ID2, ("gold",), "Zoë"),
    ]
    assert table.reading.startswith("CSV, cp125")
    assert "(detected: the cells sent read the same in " in table.reading


def test_western_names_are_read_in_cp1252_when_the_code_pages_tie(tmp_path: Path) -> None:
    """Núñez reads Núńez in cp1250, which charset-normalizer scores the same as cp1252 for
    Western names: the tie goes to cp1252, so the report keeps the names as written."""
    names = ["Zoë Müller", "José Núñez", "Søren Straße", "François Côté"] * 50
    text = "contact_id,name,tags,action\n" + "".join(
        f"{ID1[:10]}{n:010d},{name},vip,add\n" for n, name in enumerate(names)
    )
    table = table_of(write(tmp_path / "in.csv", text, "cp1252"))
    rows = [row for chunk in table.chunks() for row in chunk]
    assert [row.extra[1] for row in rows[:4]] == names[:4]
    assert table.reading.startswith("CSV, cp1252 (detected: ")


def test_a_difference_deep_in_the_file_is_found_and_named(tmp_path: Path) -> None:
    """The comparison reads the whole file: a differing tag on line 30,002 stops the run."""
    text = "contact_id,name,tags,action\n" + f"{ID1},Müller,vip,add\n" * 30_000
    text += f"{ID2},x,Straße,add\n"
    path = write(tmp_path / "in.csv", text, "cp1252")
    message = refusal(path)
    assert "line 30,002, tags reads " in message
    assert '"Straße" in cp1252' in message


@pytest.mark.parametrize(
    ("data", "reading"),
    [
        (f"contact_id,tags,action\n{ID1},vip,add\n".encode(), "UTF-8 (valid throughout)"),
        (b"\xef\xbb\xbf" + f"contact_id,tags,action\n{ID1},vip,add\n".encode(), "UTF-8 (BOM)"),
        (f"contact_id\ttags\taction\n{ID1}\tvip\tadd\n".encode("utf-16"), "UTF-16 (BOM)"),
    ],
)
def test_the_reading_names_the_encoding_and_why(tmp_path: Path, data: bytes, reading: str) -> None:
    """A BOM, or UTF-8 valid throughout, is named as the reason for the encoding used."""
    table = table_of(write(tmp_path / "in.csv", data))
    assert reading in table.reading
    assert table.reading.startswith("CSV, ")


# --- CSV structure -----------------------------------------------------------------------------


def test_an_unclosed_quote_over_rows_stops_naming_the_line_it_opened(tmp_path: Path) -> None:
    """Issue 21: the 4-line file whose second line opens a quote is never read as 2 rows."""
    text = f'contact_id,name,tags\n{ID1},"John,vip\n{ID2},Mary,vip\n{ID3},"Ann",vip\n'
    path = write(tmp_path / "in.csv", text)
    assert refusal(path, action="add") == (
        f"{path}: line 2: a quote opens a cell that runs on over line 3, which reads as a row of "
        "its own; close the quote where the cell ends (a quote inside a quoted cell is written "
        'twice: "")'
    )


def test_a_quote_open_at_the_end_of_the_file_names_its_physical_line(tmp_path: Path) -> None:
    """Not pandas' record number: the physical line, after a quoted line break before it."""
    text = f'contact_id,name,tags\n{ID1},"two\nlines",vip\n{ID2},"John,vip\n{ID3},Mary,vip\n'
    path = write(tmp_path / "in.csv", text)
    assert refusal(path, action="add") == (
        f"{path}: line 4: a quote opens a cell that is never closed: the cell runs to the end "
        "of the file; close the quote where the cell ends (a quote inside a quoted cell is "
        'written twice: "")'
    )


def test_a_quoted_address_over_several_lines_is_read(tmp_path: Path) -> None:
    """Cells with line breaks that do not read as rows (no id shaped like the row's) are data."""
    text = (
        "contact_id,address,tags\n"
        f'{ID1},"12 Main St, Apt 4\nSpringfield, IL",vip\n'
        f'{ID2},"note,\nsecond,line",gold\n'
        f"{ID3},x,vip\n"
    )
    rows = load(write(tmp_path / "in.csv", text), action="add")
    assert [(r.line, r.contact_id, r.extra[1]) for r in rows] == [
        (2, ID1, "12 Main St, Apt 4\nSpringfield, IL"),
        (4, ID2, "note,\nsecond,line"),
        (6, ID3, "x"),
    ]


def test_excels_sep_line_names_the_delimiter_and_is_not_the_header(tmp_path: Path) -> None:
    """Issue 21: `sep=;` is honoured; lines are still physical lines."""
    text = f"sep=;\r\ncontact_id;name;tags\r\n{ID1};Smith, J;vip\r\n{ID2};Doe;gold\r\n"
    table = table_of(write(tmp_path / "in.csv", text), action="add")
    rows = [row for chunk in table.chunks() for row in chunk]
    assert table.columns == ("contact_id", "name", "tags")
    assert [(r.line, r.contact_id, r.tags) for r in rows] == [
        (3, ID1, ("vip",)),
        (4, ID2, ("gold",)),
    ]
    assert table.reading == 'CSV, UTF-8 (valid throughout), delimiter ";" (its "sep=;" line)'


def test_a_line_with_too_many_fields_after_a_sep_line_names_the_physical_line(
    tmp_path: Path,
) -> None:
    """The `sep=` line counts as line 1, as a person sees the file."""
    text = f"sep=;\ncontact_id;tags\n{ID1};vip\n{ID2};a;b\n"
    path = write(tmp_path / "in.csv", text)
    assert refusal(path, action="add") == (
        f"{path}: line 4 has 3 fields but the header has 2; check the delimiter and quoting"
    )


# --- tags as people write them -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "tags"),
    [
        ("['legacy-gold', 'legacy-2019']", ("legacy-gold", "legacy-2019")),
        ('["a,b", "c"]', ("a,b", "c")),
        ('"vip","newsletter"', ("vip", "newsletter")),
        ('"vip", "news letter" ', ("vip", "news letter")),
        ("'vip', 'gold'", ("vip", "gold")),
        ("('vip', 'gold')", ("vip", "gold")),
        ("['old-segment']", ("old-segment",)),
        ("(beta) testers, vip", ("(beta) testers", "vip")),
        ("[2024] promo, vip", ("[2024] promo", "vip")),
        ("it's, vip", ("it's", "vip")),
    ],
)
def test_a_tags_cell_that_is_a_list_is_read_as_that_list(cell: str, tags: tuple[str, ...]) -> None:
    """JSON, a Python list of strings, quoted items: the list it clearly is, no punctuation."""
    assert parse_tags(cell) == tags


@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ("[vip, gold]", '"[vip, gold]" look like a list but are not one'),
        ('["a", 1]', "look like a list but are not one"),
        ("[__import__('os').system('true')]", "look like a list but are not one"),
        ('"vip", newsletter', "look like quoted tags but are not a list of them"),
        ("'vip', gold'", "look like quoted tags but are not a list of them"),
        ("[vip, gold", "look like a broken list (a bracket is not closed)"),
        ("vip, gold]", "look like a broken list (a bracket is not closed)"),
    ],
)
def test_a_tags_cell_that_looks_like_a_list_but_is_not_is_refused(cell: str, why: str) -> None:
    """Nothing is split on commas into tags carrying brackets or quotes; nothing is evaluated."""
    with pytest.raises(ValueError, match=re.escape(why)) as info:
        parse_tags(cell)
    assert "; " not in str(info.value)


def test_list_looking_cells_in_a_file(tmp_path: Path) -> None:
    """Issue 21's rows: a pandas list, a broken list (invalid, saying how to write it), a
    Mailchimp-style cell, and a remove of a pandas list."""
    text = (
        "contact_id,tags,action\n"
        f"{ID1},\"['legacy-gold', 'legacy-2019']\",add\n"
        f'{ID2},"[vip, gold]",add\n'
        f'{ID3},"""vip"",""newsletter""",add\n'
        f"{ID1},\"['old-segment']\",remove\n"
    )
    rows = load(write(tmp_path / "in.csv", text))
    assert [(r.tags, r.status) for r in rows] == [
        (("legacy-gold", "legacy-2019"), None),
        ((), Status.INVALID),
        (("vip", "newsletter"), None),
        (("old-segment",), None),
    ]
    assert rows[1].message == (
        'tags "[vip, gold]" look like a list but are not one (a JSON list needs each tag in '
        "double quotes): write the tags comma-separated, or as a JSON list"
    )


def test_tags_option_that_looks_like_a_broken_list_is_a_usage_error(tmp_path: Path) -> None:
    """--tags goes through the same reading: a broken list stops with exit 2 at once."""
    from batcher.app.jobs import build_job
    from batcher.domain.config import Settings

    with pytest.raises(UsageError, match=r'^--tags: "\[vip, gold\]" look like a list'):
        build_job(Settings(), tmp_path / "in.csv", action="add", tags="[vip, gold]")


# --- locations and printed values ------------------------------------------------------------


def test_a_location_with_a_control_character_is_invalid(tmp_path: Path) -> None:
    """An escape sequence in a location cell is never sent; the reason shows it spelled out."""
    text = (
        "contact_id,tags,action,location_id\n"
        f"{ID1},vip,add,\x1b]0;pwned\x07\x1b[2J\n"
        f'{ID2},vip,add,"loc\nbatcher: run finished"\n'
        f"{ID3},vip,add,{LOC}\n"
    )
    rows = load(write(tmp_path / "in.csv", text))
    assert [r.status for r in rows] == [Status.INVALID, Status.INVALID, None]
    assert rows[0].message == (
        'location id "\\u001b]0;pwned\\u0007\\u001b[2J" contains a control character'
    )
    assert rows[1].message == (
        'location id "loc\\u000abatcher: run finished" contains a control character'
    )


def test_a_location_option_with_a_control_character_is_a_usage_error(tmp_path: Path) -> None:
    """--location-id with ESC stops at once, the value spelled out."""
    path = write(tmp_path / "in.csv", f"contact_id,tags,action\n{ID1},vip,add\n")
    assert refusal(path, UsageError, location_id="x\x1b[2J") == (
        '--location-id "x\\u001b[2J" contains a control character'
    )


# --- bounded work --------------------------------------------------------------------------------


def test_a_line_over_the_cap_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """A line longer than input.max_line_kb stops the run naming it, from the byte scan."""
    text = f"contact_id,tags\n{ID1},vip\n{ID2},{'x' * 5000}\n"
    path = write(tmp_path / "in.csv", text)
    caps = Caps(cell_chars=1024, line_bytes=2048)
    assert refusal(path, action="add", caps=caps) == (
        f"{path}: line 3 is longer than input.max_line_kb (2 KiB): not a line of a contact "
        "list; fix the file (or raise input.max_line_kb)"
    )


def test_a_multi_line_cell_over_the_cap_is_refused_naming_its_line(tmp_path: Path) -> None:
    """A cell over input.max_cell_kb made of short lines is caught once read."""
    big = "\n".join(["y" * 100] * 30)
    text = f'contact_id,note,tags\n{ID1},a,vip\n{ID2},"{big}",vip\n'
    path = write(tmp_path / "in.csv", text)
    caps = Caps(cell_chars=1024, line_bytes=2048)
    assert refusal(path, action="add", caps=caps) == (
        f"{path}: line 3: a cell is longer than input.max_cell_kb (1 KiB of text): not a contact "
        "list's cell (a quote opened there and never closed makes one cell of the rest); fix "
        "the file (or raise input.max_cell_kb)"
    )


def test_stray_quotes_that_only_seem_to_open_a_long_row_are_read(tmp_path: Path) -> None:
    """An inch mark (5'11") inside a cell flips the scan's quote parity; the rows are then
    measured exactly, found short, and read."""
    rows = [f"{ID1},5'11\",vip"] + [f"{ID2},row {n},vip" for n in range(300)]
    rows.append(f"{ID3},6'2\",gold")
    path = write(tmp_path / "in.csv", "contact_id,height,tags\n" + "\n".join(rows) + "\n")
    caps = Caps(cell_chars=1024, line_bytes=2048)
    loaded = load(path, action="add", caps=caps)
    assert (len(loaded), loaded[0].extra[1], loaded[-1].extra[1]) == (302, "5'11\"", "6'2\"")


def test_a_quote_left_open_in_a_long_file_is_refused_before_pandas_holds_the_rest(
    tmp_path: Path,
) -> None:
    """The scan sees a record running past the line cap; the csv module's cell limit stops
    it at the line where the quote opened."""
    rows = [f'{ID1},"John,vip'] + [f"{ID2},row {n},vip" for n in range(300)]
    path = write(tmp_path / "in.csv", "contact_id,name,tags\n" + "\n".join(rows) + "\n")
    caps = Caps(cell_chars=1024, line_bytes=2048)
    assert refusal(path, action="add", caps=caps).startswith(
        f"{path}: line 2: a cell is longer than input.max_cell_kb (1 KiB of text): not a "
        "contact list's cell (a quote opened there and never closed"
    )


def test_a_gzip_bomb_is_refused_naming_the_file(tmp_path: Path) -> None:
    """A .csv.gz inflating beyond input.max_inflate_ratio times its size (past 64 MiB) stops
    before the rows are read."""
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(b"contact_id,tags\n")
        block = b"\n" * (1 << 20)
        for _ in range(200):
            fh.write(block)
    message = refusal(path, action="add")
    assert message.startswith(f"{path}: inflates to more than ")
    assert "over input.max_inflate_ratio (100x): refused as a likely gzip bomb" in message


def test_a_gzip_file_within_its_ratio_is_read(tmp_path: Path) -> None:
    """A small file that compresses well is under the 64 MiB floor: read."""
    path = tmp_path / "in.csv.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(f"contact_id,tags\n{ID1},vip\n".encode() + b"\n" * 100_000)
    assert [r.contact_id for r in load(path, action="add")] == [ID1]


# Opens the file given in a child whose CPU time the kernel caps (RLIMIT_CPU: SIGKILL past it).
BOUNDED_OPEN = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_CPU, ({seconds}, {seconds}))
from batcher.domain.errors import InputError
from batcher.loading import InputOptions, open_input
try:
    open_input(Path(sys.argv[1]), InputOptions(action="add", tags=("x",), default_location_id="L"))
except InputError as exc:
    print(exc)
print("done")
"""


def open_bounded(path: Path, seconds: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BOUNDED_OPEN.format(seconds=seconds), str(path)],
        capture_output=True,
        text=True,
        timeout=300,  # a bound that turns a hang into a failure; the CPU limit is the test
        check=False,
    )


def test_delimiter_detection_is_linear_on_a_crafted_sample(tmp_path: Path) -> None:
    """A first line crafted against csv.Sniffer's regexes (`,'a` repeated: no closing quote and
    delimiter anywhere, so each of them scans to the end; CVE-2026-18503, ~15-21 s on CPython
    3.11.7) is sniffed under a 5 s CPU limit set by the kernel."""
    path = write(tmp_path / "in.csv", "contact_id\n" + ",'a" * 20_000 + "\n" + ID1 + "\n")
    done = open_bounded(path, seconds=5)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "done"
