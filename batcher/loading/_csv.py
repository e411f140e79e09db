"""CSV text: encoding, delimiter, header and data rows with the physical line each starts on.

The encoding is settled by one scan of the whole file before any row is read (a bad byte deep in
a million-row file stops the run before anything is sent). pandas' C parser then reads the rows in
chunks, blank lines kept so that lines can be counted: a chunk none of whose cells holds a line
break takes one line per row, so numbering it costs nothing per row.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from itertools import accumulate
from pathlib import Path
from typing import IO, cast

import pandas as pd

from batcher.errors import InputError, UsageError
from batcher.loading._common import STRIP, Slice, Source, has_rows, one_line

_DELIMITERS = ",;\t|"
_DELIMITER_WORDS = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
# Enough text for the sniffer to see the header and a few dozen rows; it is slow on big samples.
_SAMPLE_BYTES = 64 * 1024
_SNIFF_LINES = 50
# The encoding scan decodes the whole file in blocks of this size (cheap next to parsing).
_SCAN_BLOCK = 1024 * 1024

# Bytes that UTF-8 cannot decode come out of `surrogateescape` as U+DC80..U+DCFF; any other
# non-ASCII character is a valid multi-byte UTF-8 sequence.
_ESCAPED = re.compile("[\udc80-\udcff]")
_MULTIBYTE = re.compile("[^\x00-\x7f\udc80-\udcff]")
# The five bytes cp1252 leaves undefined.
_CP1252_UNDEFINED = re.compile(b"[\x81\x8d\x8f\x90\x9d]")


def parse_delimiter(value: str) -> str:
    """The delimiter an option names: one character, or tab/comma/semicolon/pipe."""
    word = _DELIMITER_WORDS.get(value.strip().lower())
    if word is not None:
        return word
    if len(value) != 1 or value in '"\r\n':
        raise UsageError(
            f"delimiter {value!r}: give one character (not a quote or line break) "
            "or one of tab, comma, semicolon, pipe"
        )
    return value


def open_csv(path: Path, encoding: str, delimiter: str | None, *, gzipped: bool) -> Source:
    """Settle encoding and delimiter, find the header (the first line with a non-empty cell).

    `delimiter` None means: tab for a .tsv file, else sniffed.
    """
    sample = _read_sample(path, gzipped=gzipped)
    if not sample.strip():
        raise InputError(f"{path}: the file is empty")
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(f"{path}: unknown encoding {encoding!r} (input.encoding)") from None
        _check_decodes(path, encoding, gzipped=gzipped)
    else:
        encoding = _detect_encoding(path, sample, gzipped=gzipped)
    if delimiter is None:
        stem = path.name.lower().removesuffix(".gz")
        if stem.endswith(".tsv"):
            delimiter = "\t"
        else:
            text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
            delimiter = _sniff_delimiter(text)
    csv_file = _CsvFile(path, encoding, delimiter, gzipped)
    return Source(csv_file.header, csv_file.read, has_rows(csv_file.read))


class _CsvFile:
    """One CSV file whose encoding and delimiter are known; finds its header on creation."""

    def __init__(self, path: Path, encoding: str, delimiter: str, gzipped: bool) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.gzipped = gzipped
        # Records (lines, or several lines for quoted line breaks) before the header, the
        # physical line where the data starts.
        self.skip, self.data_line = self._find_header()
        with self._guarded(self._frames(1)) as frames:
            first = next(frames, None)
        if first is None or first.empty:
            raise InputError(f"{path}: the file is empty")
        header = [str(v) for v in first.iloc[0].tolist()]
        header[0] = header[0].lstrip("\ufeff")  # a BOM the configured encoding did not remove
        self.header = header

    def _records(self) -> Generator[tuple[list[str], int, int], None, None]:
        """(cells, first line, last line) of each record, read by the csv module."""
        with (
            _opened(self.path, gzipped=self.gzipped) as raw,
            io.TextIOWrapper(cast("IO[bytes]", raw), encoding=self.encoding, newline="") as text,
            _no_field_limit(),
        ):
            reader = csv.reader(text, delimiter=self.delimiter, strict=False)
            before = 0
            try:
                for cells in reader:
                    yield cells, before + 1, reader.line_num
                    before = reader.line_num
            except (csv.Error, UnicodeDecodeError) as exc:
                raise InputError(f"{self.path}: not readable as CSV ({one_line(exc)})") from exc

    def _find_header(self) -> tuple[int, int]:
        skip = 0
        with closing(self._records()) as records:
            for cells, _first, last in records:
                if any(cell.strip(STRIP) for cell in cells):
                    return skip, last + 1
                skip += 1
        raise InputError(f"{self.path}: the file is empty")

    def _frames(self, chunk_rows: int) -> Generator[pd.DataFrame, None, None]:
        # header=None: the header is read as an ordinary row (pandas would rename repeated
        # names, and with header=0 a row with one field too many silently shifts the columns;
        # this way it is an error naming the line). All cells as text, nothing turned into NaN.
        # Blank lines are kept (they are dropped later) so that lines can be counted.
        with pd.read_csv(
            self.path,
            sep=self.delimiter,
            header=None,
            skiprows=self.skip or None,
            dtype=object,  # text all the same (na_filter off); 15 % cheaper than "str"
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding=self.encoding,
            compression="gzip" if self.gzipped else None,
            chunksize=chunk_rows,
            engine="c",
        ) as reader:
            yield from reader

    def read(self, chunk_rows: int, id_index: int) -> Generator[Slice, None, None]:
        del id_index  # a CSV cell has no type
        line = self.data_line
        first = True
        with self._guarded(self._frames(chunk_rows)) as frames:
            for frame in frames:
                columns = [frame[c].tolist() for c in frame.columns]
                if first:  # the first row is the header
                    columns = [c[1:] for c in columns]
                    first = False
                if not columns or not columns[0]:
                    continue
                count = len(columns[0])
                broken = [c for c in columns if _has_break("".join(c))]
                if not broken:
                    yield Slice(columns, line)
                    line += count
                    continue
                # Rare: some cell holds a line break; the rows after it start further down.
                extra = [
                    sum(cells)
                    for cells in zip(*([_breaks(v) for v in c] for c in broken), strict=True)
                ]
                starts = list(accumulate((1 + e for e in extra[:-1]), initial=line))
                yield Slice(columns, starts)
                line = starts[-1] + 1 + extra[-1]

    @contextmanager
    def _guarded(
        self, frames: Iterator[pd.DataFrame]
    ) -> Iterator[Generator[pd.DataFrame, None, None]]:
        """Pass frames through, turning pandas' and the decoders' errors into an InputError."""
        gen = self._guard(frames)
        try:
            yield gen
        finally:
            gen.close()

    def _guard(self, frames: Iterator[pd.DataFrame]) -> Generator[pd.DataFrame, None, None]:
        path = self.path
        try:
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    return
                except pd.errors.EmptyDataError:
                    return
                except pd.errors.ParserError as exc:
                    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
                    if found:
                        width = int(found.group(1))
                        line, fields = self._long_record(width)
                        raise InputError(
                            f"{path}: line {line or found.group(2)} has "
                            f"{fields or found.group(3)} fields but the header has {width}; "
                            "check the delimiter and quoting"
                        ) from exc
                    raise InputError(f"{path}: not readable as CSV ({one_line(exc)})") from exc
                except UnicodeDecodeError as exc:
                    raise InputError(
                        f"{path}: cannot be decoded as {self.encoding} ({exc.reason}); "
                        "set input.encoding"
                    ) from exc
                except (OSError, EOFError, zlib.error) as exc:
                    raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc
                yield frame
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    def _long_record(self, width: int) -> tuple[int, int]:
        """The physical line and field count of the first data record wider than the header.

        (pandas counts records, not lines: a quoted line break before it would shift it.)
        (0, 0) when the csv module does not see it the way pandas did.
        """
        try:
            with closing(self._records()) as records:
                for index, (cells, first, _last) in enumerate(records):
                    if index > self.skip and len(cells) > width:
                        return first, len(cells)
        except InputError:
            pass
        return 0, 0


def _has_break(text: str) -> bool:
    return "\n" in text or "\r" in text


def _breaks(text: str) -> int:
    """Line breaks in a text: LF, CR LF and a lone CR each count once."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


@contextmanager
def _no_field_limit() -> Iterator[None]:
    """The csv module refuses cells over 128 KiB by default; pandas reads any size."""
    old = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _opened(path: Path, *, gzipped: bool) -> io.BufferedIOBase | gzip.GzipFile:
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def _read_sample(path: Path, *, gzipped: bool) -> bytes:
    try:
        with _opened(path, gzipped=gzipped) as fh:
            return fh.read(_SAMPLE_BYTES)
    except gzip.BadGzipFile as exc:
        raise InputError(f"{path}: not a gzip file ({exc}); give a .csv.gz made by gzip") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc


# --- encoding --------------------------------------------------------------------------------


def _detect_encoding(path: Path, sample: bytes, *, gzipped: bool) -> str:
    """UTF-8 (BOM or not), UTF-16 with a BOM, else cp1252; refuse what is not text at all."""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        _check_decodes(path, "utf-16", gzipped=gzipped)
        return "utf-16"
    if sample.startswith(b"PK\x03\x04"):
        raise InputError(
            f"{path}: is a ZIP file (an Excel workbook?), not CSV text; "
            "give it an .xlsx extension if it is a workbook"
        )
    if b"\x00" in sample:
        raise InputError(
            f"{path}: is binary, not CSV text; give a CSV or Excel file "
            "(or set input.encoding for UTF-16 without a BOM)"
        )
    bad, undefined, multibyte = _scan_utf8(path, gzipped=gzipped)
    if bad is None:
        return "utf-8-sig"  # reads UTF-8 with or without a BOM
    if multibyte or sample.startswith(codecs.BOM_UTF8):
        line = _line_at(path, bad, gzipped=gzipped)
        raise InputError(
            f"{path}: line {line}: byte {bad + 1} (0x{_byte_at(path, bad, gzipped=gzipped):02X}) "
            "is not valid UTF-8 in a file that is otherwise UTF-8; fix that byte, or set "
            "input.encoding (e.g. cp1252) if the file is not UTF-8"
        )
    # No valid multi-byte sequence anywhere: a single-byte file, most likely Excel's "CSV" on
    # Western Windows: cp1252 (strictly: its five undefined bytes are refused).
    if undefined is not None:
        line = _line_at(path, undefined, gzipped=gzipped)
        raise InputError(
            f"{path}: not UTF-8 or cp1252 text (byte {undefined + 1}, line {line}); "
            "set input.encoding to the file's encoding"
        )
    return "cp1252"


def _scan_utf8(path: Path, *, gzipped: bool) -> tuple[int | None, int | None, bool]:
    """One pass over the file: (offset of the first byte UTF-8 cannot decode, offset of the
    first byte undefined in cp1252, whether any valid multi-byte UTF-8 sequence occurs)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    fed = 0
    bad: int | None = None
    undefined: int | None = None
    multibyte = False
    try:
        with _opened(path, gzipped=gzipped) as fh:
            while True:
                block = fh.read(_SCAN_BLOCK)
                pending = len(decoder.getstate()[0])
                if block and not pending and block.isascii():
                    fed += len(block)  # the common case: nothing to look at
                    continue
                text = decoder.decode(block, final=not block)
                if undefined is None and (found := _CP1252_UNDEFINED.search(block)):
                    undefined = fed + found.start()
                if not multibyte and _MULTIBYTE.search(text):
                    multibyte = True
                if bad is None and (escaped := _ESCAPED.search(text)):
                    before = text[: escaped.start()].encode("utf-8", "surrogateescape")
                    bad = fed - pending + len(before)
                if not block or (bad is not None and multibyte):
                    return bad, undefined, multibyte
                fed += len(block)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc


def _check_decodes(path: Path, encoding: str, *, gzipped: bool) -> None:
    """Decode the whole file strictly; an InputError naming the line at the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    line = 1
    try:
        with _opened(path, gzipped=gzipped) as fh:
            while True:
                block = fh.read(_SCAN_BLOCK)
                try:
                    text = decoder.decode(block, final=not block)
                except UnicodeDecodeError as exc:
                    bad = max(exc.start, 0)
                    before = block[:bad].decode(encoding, errors="replace")
                    line += _breaks(before)
                    raise InputError(
                        f"{path}: not {encoding} text (byte {offset + bad + 1}, "
                        f"line {line}); set input.encoding to the file's encoding"
                    ) from exc
                if not block:
                    return
                offset += len(block)
                line += _breaks(text)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc


def _line_at(path: Path, offset: int, *, gzipped: bool) -> int:
    """The physical line (1-based) holding the byte at `offset` of an 8-bit/UTF-8 file."""
    breaks = 0
    last = b""
    with _opened(path, gzipped=gzipped) as fh:
        left = offset
        while left > 0:
            block = fh.read(min(_SCAN_BLOCK, left))
            if not block:
                break
            left -= len(block)
            breaks += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
            if last == b"\r" and block[:1] == b"\n":
                breaks -= 1  # a CR LF cut in two by the blocks
            last = block[-1:]
    return breaks + 1


def _byte_at(path: Path, offset: int, *, gzipped: bool) -> int:
    with _opened(path, gzipped=gzipped) as fh:
        fh.seek(offset)
        return fh.read(1)[0]


def _sniff_delimiter(text: str) -> str:
    """One of `, ; TAB |`: csv.Sniffer on the first lines, checked against the header.

    The sniffer fails on a one-column file (no delimiter at all: comma is then as good as any)
    and can be misled by delimiters inside cells; the header line, which holds only names, is
    the tie-breaker: a delimiter that leaves it in one piece is wrong if another splits it.
    """
    # Lines of empty cells before the header say nothing about the delimiter.
    lines = [ln for ln in text.splitlines() if ln.strip(STRIP + _DELIMITERS + '"')]
    lines = lines[:_SNIFF_LINES]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines.pop()  # the sample may end mid-line
    if not lines:
        return ","

    def header_fields(delimiter: str) -> int:
        try:
            return len(next(csv.reader([lines[0]], delimiter=delimiter), []))
        except csv.Error:
            return 0

    try:
        sniffed: str | None = (
            csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
        )
    except csv.Error:
        sniffed = None
    if sniffed is not None and sniffed in _DELIMITERS and header_fields(sniffed) > 1:
        return sniffed
    best = max(_DELIMITERS, key=header_fields)  # ties go to the first: comma
    return best if header_fields(best) > 1 else ","
