"""The XLSX report's own zip writer (batcher.reports.zipping): CRCs combined as zlib computes
them whole, members zipfile reads back with their CRCs right, packed parts appended as they
are, and Zip64 records where sizes or offsets need them."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import random
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

from batcher.reports import zipping
from batcher.reports.zipping import Packer, ZipWriter, crc32_combine

SIZES = [0, 1, 2, 3, 7, 64, 1_000, 65_536, 100_003]
# Past 4 GiB: a length's high bits, which no test can allocate.
HUGE = [2**32 - 1, 2**32, 2**32 + 1, 5 * 2**32 + 12_345, 2**63 + 99, 2**64 - 2**21]


def _data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("first", SIZES)
@pytest.mark.parametrize("second", SIZES)
def test_combined_crc_is_the_crc_of_the_whole(first: int, second: int) -> None:
    """Two pieces' CRCs combined are zlib's CRC-32 of the two end to end, empty pieces too."""
    a, b = _data(first, 1), _data(second, 2)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_combined_crc_over_many_pieces_is_the_crc_of_the_whole() -> None:
    """Combined piece by piece, the CRC of many pieces of random sizes is the whole's."""
    rng = random.Random(3)
    pieces = [rng.randbytes(rng.choice([0, 1, rng.randrange(5_000)])) for _ in range(60)]
    crc = 0
    for piece in pieces:
        crc = crc32_combine(crc, zlib.crc32(piece), len(piece))
    assert crc == zlib.crc32(b"".join(pieces))


@pytest.mark.parametrize("length", HUGE)
def test_combined_crc_past_4_gib_is_zlibs_own(length: int) -> None:
    """Past 4 GiB, combining is associative (A+(B+C) as (A+B)+C) and gives what zlib's own
    crc32_combine64 gives (its C function, loaded when the system has it; lengths it takes)."""
    rng = random.Random(length)
    a, b, c = (rng.getrandbits(32) for _ in range(3))
    small = 1_000_003
    assert crc32_combine(crc32_combine(a, b, length), c, small) == crc32_combine(
        a, crc32_combine(b, c, small), length + small
    )
    found = ctypes.util.find_library("z")
    if found is None:
        pytest.skip("no zlib library for ctypes")
    combine64 = ctypes.CDLL(found).crc32_combine64
    combine64.restype = ctypes.c_ulong
    combine64.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int64]
    if length < 2**63:
        assert crc32_combine(a, b, length) == combine64(a, b, length)


def test_a_length_past_zip64s_is_refused() -> None:
    """A length no zip can hold (2^64 bytes or more, or negative) is an error, not a wrong CRC."""
    for length in (2**64, -1):
        with pytest.raises(ValueError, match="out of range"):
            crc32_combine(0, 0, length)


def _packed(data: bytes) -> io.BytesIO:
    part = io.BytesIO()
    packer = Packer(part)
    for start in range(0, len(data), 4_096):
        packer.write(data[start : start + 4_096])
    packer.close()
    return part


def test_members_and_packed_parts_read_back_with_their_crcs() -> None:
    """Members written whole and as streams, with packed parts (empty ones too) appended
    between writes, read back as written: zipfile checks every CRC (`testzip`)."""
    pieces = [b"<head>", _data(70_000, 4).hex().encode(), b"", b"tail" * 1_000, b"</end>"]
    parts = [_packed(pieces[1]), _packed(pieces[2]), _packed(pieces[3])]
    file = io.BytesIO()
    with ZipWriter(file) as book:
        book.add("first.xml", b"<a/>" * 100)
        with book.stream("sheet.xml") as sheet:
            sheet.write(pieces[0])
            for part in parts:
                sheet.append_packed(part)
            sheet.write(pieces[4])
        book.add("empty.xml", b"")
    with zipfile.ZipFile(file) as read:
        assert read.testzip() is None
        assert read.namelist() == ["first.xml", "sheet.xml", "empty.xml"]
        assert read.read("sheet.xml") == b"".join(pieces)
        assert read.read("first.xml") == b"<a/>" * 100
        assert read.read("empty.xml") == b""
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in read.infolist())
        for info in read.infolist():  # each local header completed: its CRC and sizes
            header = file.getvalue()[info.header_offset : info.header_offset + 30]
            crc, compressed, size = struct.unpack("<III", header[14:26])
            assert (crc, compressed, size) == (info.CRC, info.compress_size, info.file_size)


def test_a_packed_part_goes_in_as_it_is() -> None:
    """A packed part's deflated bytes are in the zip verbatim: never inflated and deflated
    again."""
    text = _data(50_000, 5).hex().encode()
    part = _packed(text)
    file = io.BytesIO()
    with ZipWriter(file) as book, book.stream("sheet.xml") as sheet:
        sheet.write(b"<start>")
        sheet.append_packed(part)
    deflated = part.getvalue()[:-12]  # without its CRC and length
    assert len(deflated) > 1_000
    assert deflated in file.getvalue()
    with zipfile.ZipFile(file) as read:
        assert read.read("sheet.xml") == b"<start>" + text


def test_a_part_cut_short_is_refused() -> None:
    """A part shorter than its CRC and length is an error, not a damaged sheet."""
    with (
        ZipWriter(io.BytesIO()) as book,
        book.stream("sheet.xml") as sheet,
        pytest.raises(ValueError, match="ends early"),
    ):
        sheet.append_packed(io.BytesIO(b"\x00" * 11))


def test_a_zip64_member_reads_back_and_small_ones_have_no_zip64(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A member asked for with Zip64 has the Zip64 local header; past the limit (lowered here)
    sizes go in the central directory's Zip64 field and the end has Zip64 records, and the zip
    reads back with its CRCs right; below it, no Zip64 anywhere."""
    text = _data(30_000, 6).hex().encode()

    def write() -> bytes:
        file = io.BytesIO()
        with ZipWriter(file) as book:
            with book.stream("sheet.xml", zip64=True) as sheet:
                sheet.write(text[:10_000])
                sheet.append_packed(_packed(text[10_000:]))
            book.add("small.xml", b"<x/>")
        return file.getvalue()

    small = write()
    assert b"PK\x06\x06" not in small  # no Zip64 end record
    with zipfile.ZipFile(io.BytesIO(small)) as read:
        assert read.testzip() is None
        assert read.read("sheet.xml") == text
        assert [info.extract_version for info in read.infolist()] == [45, 20]
    monkeypatch.setattr(zipping, "ZIP64_FROM", 1_000)
    big = write()
    assert b"PK\x06\x06" in big  # the Zip64 end record...
    assert b"PK\x06\x07" in big  # ...and its locator
    with zipfile.ZipFile(io.BytesIO(big)) as read:
        assert read.testzip() is None
        assert read.read("sheet.xml") == text
        assert read.read("small.xml") == b"<x/>"


def test_a_member_too_big_without_zip64_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A member that grows past the limit without asking for Zip64 is an error, as in zipfile."""
    monkeypatch.setattr(zipping, "ZIP64_FROM", 100)
    with (
        pytest.raises(ValueError, match="without Zip64"),
        ZipWriter(io.BytesIO()) as book,
        book.stream("sheet.xml") as sheet,
    ):
        sheet.write(_data(1_000, 7))


def test_members_past_4_gib_into_the_file_read_back(tmp_path: Path) -> None:
    """Members whose local headers lie past 4 GiB (after a hole: a sparse file, nothing
    written there) carry their offsets in Zip64 fields, and zipfile finds and reads them."""
    path = tmp_path / "far.zip"
    with path.open("wb") as file:
        file.seek(5 * 2**30)
        with ZipWriter(file) as book:
            book.add("a.xml", b"<a/>" * 1_000)
            with book.stream("b.xml") as sheet:
                sheet.write(b"<b/>")
                sheet.append_packed(_packed(b"<c/>" * 1_000))
    with zipfile.ZipFile(path) as read:
        assert read.testzip() is None
        assert read.read("a.xml") == b"<a/>" * 1_000
        assert read.read("b.xml") == b"<b/>" + b"<c/>" * 1_000
        assert all(info.header_offset > 2**32 for info in read.infolist())


def test_another_reader_finds_the_zip_sound(tmp_path: Path) -> None:
    """Info-ZIP's `unzip -t` (a reader other than Python's, when the system has it) checks
    every member of a zip with joined streams, Zip64 records and all, and finds no error."""
    unzip = shutil.which("unzip")
    if unzip is None:
        pytest.skip("no unzip on this system")
    path = tmp_path / "joined.zip"
    with path.open("wb") as file, ZipWriter(file) as book:
        with book.stream("sheet.xml", zip64=True) as sheet:
            sheet.write(b"<head>")
            sheet.append_packed(_packed(_data(40_000, 8).hex().encode()))
            sheet.append_packed(_packed(b""))
            sheet.write(b"</end>")
        book.add("other.xml", b"<x/>")
    checked = subprocess.run([unzip, "-t", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No errors detected" in checked.stdout
