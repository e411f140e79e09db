"""The XLSX report's zip, written here: its data sheet a member deflated as a stream, into which
another process's rows go as that process deflated them, never inflated and deflated again.

Why not `zipfile`: it has no way to take data already deflated. Raw deflate streams (RFC 1951,
no zlib header) join: a stream ended with a sync flush (`Z_SYNC_FLUSH`: an empty stored block,
ending on a byte, the last block not marked final) can be followed by the bytes of another
stream, and a reader inflates them as one, as long as no block looks back into data that came
before its own stream (each stream starts with a fresh compressor: none does) and only the last
stream's last block is final. So the sheet is this process's stream up to the helper's rows,
the helper's part as it is (`Packer`: a stream ended the same way, then its CRC-32 and length),
then a fresh stream for the sheet's end. The member's CRC-32 is the CRCs of its pieces combined
(`crc32_combine`: zlib has one, Python does not expose it), its sizes their sums. Measured on a
million rows, 6 columns, old tags: the copy of the helper's part took about 1.9 s of this
process while the other core idled (py-spy).

The zip is the plain form zipfile writes into a file it can seek in (APPNOTE.TXT 6.3.x): a local
header patched once the member is written (no data descriptor), deflated members, the central
directory, Zip64 records only where a size or an offset needs them, and a Zip64 local header
when the caller asks for one beforehand (the sheet, when it may grow past 2 GiB).
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable
from typing import IO

__all__ = ["ZIP64_FROM", "DeflatedMember", "Packer", "ZipWriter", "crc32_combine"]

# The deflate level: 1 compresses the report's repetitive XML about as well as the default (6),
# in a fraction of the time (benchmarks/million.py: the report stage).
_LEVEL = 1
# Past this, a size or an offset takes a Zip64 record: zipfile's limit (2 GiB: readers that
# take the 32-bit fields as signed), followed here so that a file reads alike in both.
ZIP64_FROM = 2**31 - 1

_RAW = -15  # zlib's window bits for a raw deflate stream: no zlib header, no checksum
_DEFLATED = 8  # the zip's compression method number for deflate
_VERSION = 20  # the zip version a reader needs for deflate...
_VERSION_ZIP64 = 45  # ...and for Zip64 records (APPNOTE.TXT 4.4.3.2)
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_END64 = struct.Struct("<4sQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<4sIQI")
_EXTRA64 = struct.Struct("<HHQQ")  # a local header's Zip64 field: both sizes
_MAX16, _MAX32 = 0xFFFF, 0xFFFFFFFF
# A packed part ends with the CRC-32 and the length of what it holds.
_TRAILER = struct.Struct("<IQ")


# CRC-32 arithmetic: polynomials over GF(2) modulo the CRC's, bits reflected as CRC-32 has them
# (bit 31 the coefficient of x^0).
_POLY = 0xEDB88320


def _multiply(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC-32 polynomial."""
    product = 0
    bit = 1 << 31
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


# x^(2^k) for k up to 66: a length of up to 2^64 bytes is 2^67 bits.
_X_2K = [1 << 30]  # x^1
for _ in range(66):
    _X_2K.append(_multiply(_X_2K[-1], _X_2K[-1]))


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from A's (`crc1`), B's (`crc2`) and B's length: A's CRC moved past
    B's bits (times x^(8 * length2)), then B's added. Memory and time grow with the number of
    bits of `length2`, never with the length itself."""
    if not 0 <= length2 < 1 << 64:
        raise ValueError(f"a length of {length2} bytes is out of range")
    shift = 1 << 31  # x^0
    k = 3  # x^(8n) is the product of x^(2^(j+3)) over the bits j set in n
    while length2:
        if length2 & 1:
            shift = _multiply(_X_2K[k], shift)
        length2 >>= 1
        k += 1
    return _multiply(shift, crc1) ^ crc2


class _Deflater:
    """A raw deflate stream, with the CRC-32 and length of what went in."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _RAW)
        self.crc = 0
        self.size = 0

    def compress(self, data: bytes) -> bytes:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        return self._compressor.compress(data)

    def end(self, *, final: bool) -> bytes:
        """The stream's last bytes: `final`, the end of the member's data; else ending on a
        byte, unmarked, for another stream to follow."""
        return self._compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


class Packer:
    """Writes a packed part into `file`: what is written, deflated as a stream another can
    follow, then its CRC-32 and length (`DeflatedMember.append_packed` takes it in)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._deflater = _Deflater()

    def write(self, data: bytes) -> None:
        self._file.write(self._deflater.compress(data))

    def close(self) -> None:
        deflater = self._deflater
        self._file.write(deflater.end(final=False) + _TRAILER.pack(deflater.crc, deflater.size))


class _Entry:
    """A member as the central directory lists it."""

    def __init__(self, name: bytes, offset: int, zip64: bool) -> None:
        self.name = name
        self.offset = offset
        self.zip64 = zip64  # its local header has a Zip64 field
        self.crc = 0
        self.size = 0
        self.compressed = 0


class ZipWriter:
    """A zip written into `file` (seekable: each member's local header is completed once the
    member is written), its members deflated. Closed (the `with` block ends without an error),
    it writes the central directory; on an error nothing more is written."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._entries: list[_Entry] = []
        self._open: DeflatedMember | None = None
        now = time.localtime()
        self._time = now.tm_hour << 11 | now.tm_min << 5 | now.tm_sec // 2
        self._date = max(now.tm_year - 1980, 0) << 9 | now.tm_mon << 5 | now.tm_mday

    def add(self, name: str, data: bytes) -> None:
        """A member holding `data`."""
        with self.stream(name) as member:
            member.write(data)

    def stream(self, name: str, *, zip64: bool = False) -> DeflatedMember:
        """A member written as a stream; `zip64` when it may reach `ZIP64_FROM` bytes (a Zip64
        local header must be asked for before the member is written)."""
        if self._open is not None:
            raise ValueError("a member of the zip is still being written")
        entry = _Entry(name.encode("ascii"), self._file.tell(), zip64)
        self._entries.append(entry)
        self._file.write(self._local_header(entry))
        self._open = DeflatedMember(self._file, entry, self._closed)
        return self._open

    def _closed(self, entry: _Entry) -> None:
        """A member is written: its local header completed."""
        self._open = None
        if not entry.zip64 and max(entry.size, entry.compressed) > ZIP64_FROM:
            raise ValueError(f"{entry.name.decode()}: too large for a zip member without Zip64")
        end = self._file.tell()
        self._file.seek(entry.offset)
        self._file.write(self._local_header(entry))
        self._file.seek(end)

    def _local_header(self, entry: _Entry) -> bytes:
        version, sizes, extra = _VERSION, (entry.compressed, entry.size), b""
        if entry.zip64:  # the sizes in the Zip64 field
            version, sizes = _VERSION_ZIP64, (_MAX32, _MAX32)
            extra = _EXTRA64.pack(1, 16, entry.size, entry.compressed)
        fields = (version, 0, _DEFLATED, self._time, self._date, entry.crc, *sizes)
        return _LOCAL.pack(b"PK\x03\x04", *fields, len(entry.name), len(extra)) + entry.name + extra

    def close(self) -> None:
        """Write the central directory (and the Zip64 records, when needed)."""
        if self._open is not None:
            raise ValueError("a member of the zip is still being written")
        start = self._file.tell()
        directory = b"".join(map(self._central, self._entries))
        self._file.write(directory)
        count, size = len(self._entries), len(directory)
        if count > _MAX16 or max(start, size) > ZIP64_FROM:
            at = self._file.tell()
            fields = (_END64.size - 12, _VERSION_ZIP64, _VERSION_ZIP64, 0, 0, count, count)
            self._file.write(_END64.pack(b"PK\x06\x06", *fields, size, start))
            self._file.write(_LOCATOR64.pack(b"PK\x06\x07", 0, at, 1))
            count, size, start = min(count, _MAX16), _MAX32, _MAX32
        self._file.write(_END.pack(b"PK\x05\x06", 0, 0, count, count, size, start, 0))

    def _central(self, entry: _Entry) -> bytes:
        """A member's entry in the central directory: a Zip64 field holds what needs one."""
        big: list[int] = []
        compressed, size, offset = entry.compressed, entry.size, entry.offset
        if max(size, compressed) > ZIP64_FROM:
            big += (size, compressed)
            compressed = size = _MAX32
        if offset > ZIP64_FROM:
            big.append(offset)
            offset = _MAX32
        extra = struct.pack(f"<HH{len(big)}Q", 1, 8 * len(big), *big) if big else b""
        version = _VERSION_ZIP64 if big or entry.zip64 else _VERSION
        fields = (version, version, 0, _DEFLATED, self._time, self._date, entry.crc)
        lengths = (len(entry.name), len(extra), 0)  # name, extra field, comment
        header = _CENTRAL.pack(b"PK\x01\x02", *fields, compressed, size, *lengths, 0, 0, 0, offset)
        return header + entry.name + extra

    def __enter__(self) -> ZipWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            self.close()


class DeflatedMember(io.BufferedIOBase):
    """A member of a `ZipWriter` being written: what is written is deflated into it;
    `append_packed` appends a packed part as it is. Closed, it ends its data."""

    def __init__(self, file: IO[bytes], entry: _Entry, closed: Callable[[_Entry], None]) -> None:
        super().__init__()
        self._file = file
        self._entry = entry
        self._on_close = closed
        self._deflater = _Deflater()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._put(self._deflater.compress(data))
        return len(data)

    def append_packed(self, part: IO[bytes]) -> None:
        """Append the part a `Packer` wrote into `part` (a file read from its start), its
        deflated bytes as they are: the member's stream so far ends unmarked, and a fresh one
        starts after the part."""
        end = part.seek(0, io.SEEK_END)
        if end < _TRAILER.size:
            raise ValueError("the report's part ends early")
        part.seek(end - _TRAILER.size)
        crc, size = _TRAILER.unpack(part.read(_TRAILER.size))
        part.seek(0)
        self._end_stream(final=False)
        left = end - _TRAILER.size
        while left:
            chunk = part.read(min(left, 1 << 20))
            if not chunk:
                raise ValueError("the report's part ends early")
            self._put(chunk)
            left -= len(chunk)
        self._add(crc, size)

    def close(self) -> None:
        if not self.closed:
            self._end_stream(final=True)
            super().close()
            self._on_close(self._entry)

    def _end_stream(self, *, final: bool) -> None:
        """End this process's stream, and start a fresh one for what follows."""
        deflater = self._deflater
        self._put(deflater.end(final=final))
        self._add(deflater.crc, deflater.size)
        self._deflater = _Deflater()

    def _add(self, crc: int, size: int) -> None:
        entry = self._entry
        entry.crc = crc32_combine(entry.crc, crc, size)
        entry.size += size

    def _put(self, data: bytes) -> None:
        self._file.write(data)
        self._entry.compressed += len(data)
