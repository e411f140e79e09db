"""How a CSV file's bytes become text, settled by one pass over the whole file before any row is
read, with the checks made on the way.

- A BOM says UTF-8 or UTF-16; a file valid as UTF-8 is UTF-8; a file holding valid multi-byte
  UTF-8 and invalid bytes is UTF-8 with stray bytes (refused, naming the first).
- An encoding the user named is decoded strictly.
- Any other file (8-bit text) is never guessed at silently: the code pages that decode it
  (`CODE_PAGES` and charset-normalizer's free pick), ranked by charset-normalizer, are its
  `candidates`; the CSV reader then decodes
  the cells that are sent (ids, tags, actions, locations) under each, and stops the run when they
  disagree on any of them (`disagreement`).
- The same pass refuses what is not text or not bounded: a NUL byte anywhere, a line longer than
  `Caps.line_bytes`, and a gzip file inflating beyond `Caps.inflate_ratio` times its size.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from batcher.domain.errors import InputError
from batcher.loading._common import Caps, one_line, shown

__all__ = ["CODE_PAGES", "Decided", "breaks", "check_named", "detect", "opened", "read_sample"]

# The 8-bit code pages a contact list is saved in by Excel's "CSV" and "CSV (Macintosh)" and by
# MS-DOS tools: Western, Central European, Cyrillic, Turkish and Baltic Windows, Mac OS Roman,
# DOS Latin-1. Each reads ASCII as ASCII; they differ on every byte above 0x7F.
CODE_PAGES = ("cp1252", "cp1250", "cp1251", "cp1254", "cp1257", "mac_roman", "cp850")

_SAMPLE_BYTES = 64 * 1024
# The encoding scan decodes the whole file in blocks of this size (cheap next to parsing).
_SCAN_BLOCK = 1024 * 1024
# Text handed to the detector: lines holding bytes above 0x7F, up to this much.
_DETECTOR_BYTES = 64 * 1024
# A gzip file may always inflate this far, whatever its size: a small file of a few distinct
# lines compresses far better than a contact list (measured: 2-3x for samples/, 1,028x for
# blank lines, gzip's best).
_INFLATE_FLOOR = 64 * 1024 * 1024

# Bytes that UTF-8 cannot decode come out of `surrogateescape` as U+DC80..U+DCFF; any other
# non-ASCII character is a valid multi-byte UTF-8 sequence.
_ESCAPED = re.compile("[\udc80-\udcff]")
_MULTIBYTE = re.compile("[^\x00-\x7f\udc80-\udcff]")
_HIGH_LINES = re.compile(rb"[^\r\n]*[\x80-\xff][^\r\n]*")
_ASCII = bytes(range(128))


@dataclass(frozen=True)
class Decided:
    """The encoding to read with, and why (for the reading phrase).

    `candidates`: for 8-bit text, every code page that decodes the file (`encoding` first, the
    detector's pick when it is one of them); the sent cells must read the same in all of them.
    """

    encoding: str
    why: str
    candidates: tuple[str, ...] = ()
    # The scan saw a record (quotes followed by parity) longer than the line cap: the CSV
    # reader measures its records before reading any row.
    long_record: bool = False

    @property
    def name(self) -> str:
        """The encoding as people name it: UTF-8, UTF-16, cp1252."""
        return {"utf-8-sig": "UTF-8", "utf-8": "UTF-8", "utf-16": "UTF-16"}.get(
            self.encoding, self.encoding
        )


def opened(path: Path, *, gzipped: bool) -> io.BufferedIOBase | gzip.GzipFile:
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def read_sample(path: Path, *, gzipped: bool) -> bytes:
    try:
        with opened(path, gzipped=gzipped) as fh:
            return fh.read(_SAMPLE_BYTES)
    except gzip.BadGzipFile as exc:
        raise InputError(f"{path}: not a gzip file ({exc}); give a .csv.gz made by gzip") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc


def breaks(text: str) -> int:
    """Line breaks in a text: LF, CR LF and a lone CR each count once."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def detect(path: Path, sample: bytes, caps: Caps, *, gzipped: bool) -> Decided:
    """The encoding of a file nobody named (see the module docstring)."""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        long_record = check_named(path, "utf-16", caps, gzipped=gzipped)
        return Decided("utf-16", "BOM", long_record=long_record)
    if sample.startswith(b"PK\x03\x04"):
        raise InputError(
            f"{path}: is a ZIP file (an Excel workbook?), not CSV text; "
            "give it an .xlsx extension if it is a workbook"
        )
    scan = _Scan(path, caps, gzipped=gzipped)
    scan.run()
    if scan.bad is None:
        # utf-8-sig reads UTF-8 with or without a BOM.
        why = "BOM" if sample.startswith(codecs.BOM_UTF8) else "valid UTF-8"
        return Decided("utf-8-sig", why, long_record=scan.long_record)
    if scan.multibyte or sample.startswith(codecs.BOM_UTF8):
        line = _line_at(path, scan.bad, gzipped=gzipped)
        raise InputError(
            f"{path}: line {line}: byte {scan.bad + 1} (0x{scan.bad_byte:02X}) is not valid UTF-8 "
            "in a file that is otherwise UTF-8; fix that byte, or name the file's encoding "
            "(--encoding, input.encoding) if the file is not UTF-8"
        )
    high = bytes(sorted(scan.high))
    text = bytes(scan.detector_text)
    guess = _detector_guess(text)
    plausible = [
        name
        for name in dict.fromkeys(CODE_PAGES + ((guess,) if guess else ()))
        if _decodes(high, name)
    ]
    # The pick is the best ranked of the likely code pages; the free guess is compared too.
    ranked = _detector_rank(text, [name for name in plausible if name in CODE_PAGES])
    candidates = tuple(dict.fromkeys(ranked + plausible))
    if not candidates:
        raise InputError(
            f"{path}: not UTF-8, nor any of {', '.join(CODE_PAGES)}; name the file's encoding "
            "(--encoding, input.encoding)"
        )
    return Decided(candidates[0], "detected", candidates, scan.long_record)


def check_named(path: Path, encoding: str, caps: Caps, *, gzipped: bool) -> bool:
    """Decode the whole file strictly in `encoding`; an InputError naming the line at the first
    byte it cannot decode, or at a NUL character (and the scan's bounds). Returns whether a
    record seemed longer than the line cap (`Decided.long_record`)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    blocks = _Blocks(path, caps, gzipped=gzipped, encoding=encoding)
    for offset, block in blocks:
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            bad = max(exc.start, 0)
            before = block[:bad].decode(encoding, errors="replace")
            raise InputError(
                f"{path}: line {line + breaks(before)}: not {encoding} text (byte "
                f"{offset + bad + 1}); name the file's encoding (--encoding, input.encoding)"
            ) from exc
        if "\x00" in text:
            raise _binary(path, line + breaks(text[: text.index("\x00")]))
        line += breaks(text)
    return blocks.long_record


def _binary(path: Path, line: int) -> InputError:
    return InputError(
        f"{path}: is binary, not CSV text (a NUL byte on line {line}); give a CSV or Excel file "
        "(or name its encoding, e.g. --encoding utf-16, for UTF-16 without a BOM)"
    )


class _Scan:
    """One pass over an unnamed file's bytes: the first byte UTF-8 cannot decode, whether any
    valid multi-byte UTF-8 occurs, the bytes above 0x7F seen, and text for the detector."""

    def __init__(self, path: Path, caps: Caps, *, gzipped: bool) -> None:
        self.path = path
        self.caps = caps
        self.gzipped = gzipped
        self.bad: int | None = None
        self.bad_byte = 0
        self.multibyte = False
        self.high: set[int] = set()
        self.detector_text = bytearray()
        self.long_record = False

    def run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        blocks = _Blocks(self.path, self.caps, gzipped=self.gzipped)
        for offset, block in blocks:
            if b"\x00" in block:
                at = offset + block.index(b"\x00")
                raise _binary(self.path, _line_at(self.path, at, gzipped=self.gzipped))
            pending = len(decoder.getstate()[0])
            if block and not pending and block.isascii():
                continue  # the common case: nothing to look at
            text = decoder.decode(block, final=not block)
            # Only bytes not seen before survive the translation: one pass in C per block.
            self.high.update(block.translate(None, _ASCII + bytes(self.high)))
            if len(self.detector_text) < _DETECTOR_BYTES:
                for found in _HIGH_LINES.finditer(block):
                    self.detector_text += found.group() + b"\n"
                    if len(self.detector_text) >= _DETECTOR_BYTES:
                        break
            if not self.multibyte and _MULTIBYTE.search(text):
                self.multibyte = True
            if self.bad is None and (escaped := _ESCAPED.search(text)):
                before = text[: escaped.start()].encode("utf-8", "surrogateescape")
                self.bad = offset - pending + len(before)
                self.bad_byte = ord(text[escaped.start()]) - 0xDC00
        self.long_record = blocks.long_record


class _Blocks:
    """(offset, block) over the whole file, then (size, b"") at its end; refuses a line longer
    than `caps.line_bytes` and a gzip file inflating beyond its cap, naming them.

    Blocks are never longer than the line cap, so a line within one block is within the cap:
    only the line running across block ends is measured (a few operations per block). The same
    goes for records (a line break inside quotes does not end one), followed by the parity of
    the quotes seen: `long_record` is set when a record seems longer than the cap. Parity is
    exact for quotes as RFC 4180 writes them; a stray quote inside a cell (5'11") can make a
    record seem long, so `long_record` only asks the CSV reader to measure the records itself.
    """

    def __init__(
        self, path: Path, caps: Caps, *, gzipped: bool, encoding: str | None = None
    ) -> None:
        self.path = path
        self.caps = caps
        self.gzipped = gzipped
        self.encoding = encoding
        self.long_record = False

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        path, caps = self.path, self.caps
        cap = caps.line_bytes
        size = min(_SCAN_BLOCK, cap)
        inflated_cap = None
        if self.gzipped and caps.inflate_ratio:
            inflated_cap = max(_INFLATE_FLOOR, caps.inflate_ratio * os.path.getsize(path))
        offset = 0
        line_start = 0  # where the line being read started
        record_start = 0  # where the record being read started, as the quotes' parity says
        odd = False  # an odd number of quotes so far: inside a quoted cell
        try:
            with opened(path, gzipped=self.gzipped) as fh:
                while block := fh.read(size):
                    first = _break_in(block, 0, len(block))
                    if offset + (len(block) if first < 0 else first) - line_start > cap:
                        raise self._long_line(line_start)
                    if first >= 0:
                        line_start = offset + _last_break_in(block, 0, len(block)) + 1
                    if not self.long_record:
                        ends = _record_ends(block, odd)
                        reach = len(block) if ends is None else ends[0]
                        if offset + reach - record_start > cap:
                            self.long_record = True
                        if ends is not None:
                            record_start = offset + ends[1] + 1
                        odd ^= block.count(b'"') % 2 == 1
                    yield offset, block
                    offset += len(block)
                    if inflated_cap is not None and offset > inflated_cap:
                        raise InputError(
                            f"{path}: inflates to more than {offset // 2**20:,} MiB from "
                            f"{os.path.getsize(path) / 2**20:,.1f} MiB, over "
                            f"input.max_inflate_ratio ({caps.inflate_ratio}x): refused as a "
                            "likely gzip bomb; if it is a real contact list, unpack it and give "
                            "the .csv"
                        )
                yield offset, b""
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: cannot be read ({one_line(exc)})") from exc

    def _long_line(self, start: int) -> InputError:
        line = _line_at(self.path, start, gzipped=self.gzipped, encoding=self.encoding)
        return InputError(
            f"{self.path}: line {line} is longer than input.max_line_kb "
            f"({self.caps.line_bytes // 1024:,} KiB): not a line of a contact list; fix the "
            "file (or raise input.max_line_kb)"
        )


def _break_in(block: bytes, start: int, end: int) -> int:
    """The first CR or LF in block[start:end], or -1."""
    lf, cr = block.find(b"\n", start, end), block.find(b"\r", start, end)
    if lf < 0 or cr < 0:
        return max(lf, cr)
    return min(lf, cr)


def _last_break_in(block: bytes, start: int, end: int) -> int:
    return max(block.rfind(b"\n", start, end), block.rfind(b"\r", start, end))


def _record_ends(block: bytes, odd: bool) -> tuple[int, int] | None:
    """The first and the last line break of `block` outside quotes (`odd`: the block starts
    inside a quoted cell), or None when every line break in it is inside quotes.

    Walks from quote to quote with C-level finds, from each end, until a line break outside
    quotes turns up: a few steps for a block of ordinary rows.
    """
    position, inside = 0, odd
    while True:
        quote = block.find(b'"', position)
        end = len(block) if quote < 0 else quote
        if not inside and (first := _break_in(block, position, end)) >= 0:
            break
        if quote < 0:
            return None
        position, inside = quote + 1, not inside
    position, inside = len(block), odd ^ (block.count(b'"') % 2 == 1)
    while True:
        quote = block.rfind(b'"', 0, position)
        if not inside and (last := _last_break_in(block, quote + 1, position)) >= 0:
            return first, last
        position, inside = quote, not inside  # a break outside quotes exists: so does a quote


def _line_at(path: Path, offset: int, *, gzipped: bool, encoding: str | None = None) -> int:
    """The physical line (1-based) holding the byte at `offset`: of text in `encoding` if given,
    else of an 8-bit or UTF-8 file (whose line breaks are the bytes CR and LF)."""
    decode = codecs.getincrementaldecoder(encoding or "latin-1")(errors="replace").decode
    count = 0
    last = ""
    with opened(path, gzipped=gzipped) as fh:
        left = offset
        while left > 0 and (block := fh.read(min(_SCAN_BLOCK, left))):
            left -= len(block)
            text = decode(block)
            count += breaks(text)
            if last == "\r" and text[:1] == "\n":
                count -= 1  # a CR LF cut in two by the blocks
            last = text[-1:] or last
    return count + 1


def _decodes(high: bytes, encoding: str) -> bool:
    """Whether a single-byte, ASCII-compatible `encoding` decodes every byte in `high`."""
    try:
        codecs.lookup(encoding)
        if _ASCII.decode(encoding) != _ASCII.decode("ascii"):
            return False
        if len(bytes(range(256)).decode(encoding, errors="replace")) != 256:
            return False  # a multi-byte encoding (a CJK guess): only a name settles it
        high.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return False
    return True


def _detector_rank(text: bytes, names: list[str]) -> list[str]:
    """`names` as charset-normalizer ranks them for the lines holding bytes above 0x7F, best
    first (those it finds too messy left out), ties in `names`' order. Its free pick on a few
    short lines is often an odd one (cp775, mac-latin2 for Western names); among the likely code
    pages Western names tie in cp1250, cp1252 and cp1257, Cyrillic ones rank cp1251 alone."""
    if not text or not names:
        return []
    from charset_normalizer import from_bytes  # only for 8-bit files

    spelled = {codecs.lookup(name).name: name for name in names}
    scored = []
    for match in from_bytes(text, cp_isolation=names):
        with contextlib.suppress(LookupError):
            name = spelled.get(codecs.lookup(match.encoding).name)
            if name is not None:
                # Ties (Western names score the same in cp1250, cp1252 and cp1257) go to the
                # order of `names`: CODE_PAGES', the most common producer first.
                key = (round(match.chaos, 3), -round(match.coherence, 3), names.index(name))
                scored.append((key, name))
    return [name for _, name in sorted(scored)]


def _detector_guess(text: bytes) -> str | None:
    """charset-normalizer's pick for the lines holding bytes above 0x7F (None: no opinion)."""
    if not text:
        return None
    from charset_normalizer import from_bytes  # only for 8-bit files

    best = from_bytes(text).best()
    if best is None:
        return None
    try:
        name = codecs.lookup(best.encoding).name
    except LookupError:
        return None
    # The spelling of CODE_PAGES for one of them (codecs says mac-roman for mac_roman).
    return next((page for page in CODE_PAGES if codecs.lookup(page).name == name), name)


def disagreement(value: str, candidates: tuple[str, ...]) -> dict[str, str] | None:
    """`value` (a cell read as latin-1, i.e. its bytes) under each candidate, or None when they
    all read it the same."""
    raw = value.encode("latin-1")
    readings = {name: raw.decode(name) for name in candidates}
    if len(set(readings.values())) == 1:
        return None
    return readings


def describe(readings: dict[str, str]) -> str:
    """`"клиент" in cp1251, "êëèåíò" in cp1252, ...` for a message."""
    return ", ".join(f'"{shown(text, 30)}" in {name}' for name, text in readings.items())
