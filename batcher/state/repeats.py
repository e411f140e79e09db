"""Which input rows may name a contact that an earlier row named: a filter for the ledger.

Putting each contact's rows in order (SPEC "Input": a contact's k-th change goes in round k)
concerns only the contacts named more than once, usually a small share of a big file. Asking SQL
for them means grouping every row by contact: a sort of the whole input, two of the five seconds
a million rows took to load. Here each contact id is hashed as it is loaded and marked in a bit
set at two places (a Bloom filter: two 27-bit slices of the one 64-bit hash); a row whose two
bits were both already set *may* repeat an earlier row, or share them by chance, and only the
contacts of those rows go to SQL, which then checks exactly. Chance costs SQL work that grows
with its share of the rows: 0.01 % of a million distinct contacts and 0.2 % of five million
(measured), against 0.7 % and 3.7 % with one bit a contact. A row with a bit not set certainly names
a contact not seen before, so nothing is missed. Memory is the bit set (16 MiB), whatever the row
count.

SQL then needs every row of the contacts that may repeat, the first ones included, and without
an index on contact ids it could only find them by reading every row (a third of a second a
million rows). So each row's 32 other bits of the hash are kept as well, in a temporary file (4
bytes a row: memory stays flat), and `earlier` names the rows whose bits match one of the given
contacts': all of their rows, plus a few that match by chance (about one in four billion rows
per contact), which SQL drops when it compares the ids.

numpy is used here only (pandas brings it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import IO, Any, Self

import numpy as np

_BITS = 27
_MASK = (1 << _BITS) - 1
_Hashes = np.ndarray[Any, np.dtype[np.int64]]
_Fingerprints = np.ndarray[Any, np.dtype[np.uint32]]


class RepeatFinder:
    """Fed every loaded row's number and contact id, in input order, a chunk at a time; says
    which rows of each chunk may repeat an earlier row's contact.

    Python's string hash is used as it is: salted per process, which is fine for a set that lives
    only while one process loads one file.
    """

    def __init__(self) -> None:
        self._seen = np.zeros(1 << (_BITS - 3), dtype=np.uint8)
        # Each row's fingerprint (see `earlier`), in input order; each chunk's row count and
        # the number of its first row when its numbers follow on, as they do except in a shard
        # (None: its numbers are in `_numbers`, 8 bytes each).
        self._prints: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (see close)
        self._numbers: IO[bytes] | None = None
        self._chunks: list[tuple[int, int | None]] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary files."""
        self._prints.close()
        if self._numbers is not None:
            self._numbers.close()

    def add(self, rows: Sequence[int], contact_ids: Sequence[str]) -> list[int]:
        """The numbers of the rows given that may name a contact some earlier row named.

        Handed back a chunk at a time (the ledger writes them down at once), so a file that
        names its contacts many times over costs no memory here.
        """
        count = len(contact_ids)
        if not count:
            return []
        hashes = np.fromiter(map(hash, contact_ids), dtype=np.int64, count=count)
        self._prints.write(_fingerprints(hashes).tobytes())
        if rows[-1] - rows[0] == count - 1:
            self._chunks.append((count, rows[0]))
        else:
            if self._numbers is None:
                self._numbers = tempfile.TemporaryFile()  # noqa: SIM115 (see close)
            self._numbers.write(np.array(rows, dtype=np.int64).tobytes())
            self._chunks.append((count, None))
        places = [
            (buckets >> 3, np.left_shift(1, buckets & 7).astype(np.uint8))
            for buckets in (hashes & _MASK, (hashes >> _BITS) & _MASK)
        ]
        before = np.ones(count, dtype=bool)
        for bytes_, bits in places:
            before &= (self._seen[bytes_] & bits) != 0
        for bytes_, bits in places:
            np.bitwise_or.at(self._seen, bytes_, bits)
        # A hash met twice within this chunk: every meeting after its first may repeat (the
        # bits above were set by the whole chunk at once).
        _, first = np.unique(hashes, return_index=True)
        again = np.ones(count, dtype=bool)
        again[first] = False
        return [rows[i] for i in np.flatnonzero(before | again).tolist()]

    def earlier(self, contact_ids: Sequence[str]) -> list[int]:
        """The numbers of the rows added that may name one of `contact_ids`: every row that
        does, and rarely one that does not (see the module's note)."""
        if not contact_ids:
            return []
        wanted = _fingerprints(np.fromiter(map(hash, contact_ids), dtype=np.int64))
        self._prints.seek(0)
        if self._numbers is not None:
            self._numbers.seek(0)
        found: list[int] = []
        for count, first in self._chunks:
            prints = np.frombuffer(self._prints.read(count * 4), dtype=np.uint32)
            at = np.flatnonzero(np.isin(prints, wanted))
            if first is not None:
                found.extend((at + first).tolist())
            else:
                assert self._numbers is not None
                numbers = np.frombuffer(self._numbers.read(count * 8), dtype=np.int64)
                found.extend(numbers[at].tolist())
        self._prints.seek(0, 2)  # where the next chunk's go
        if self._numbers is not None:
            self._numbers.seek(0, 2)
        return found


def _fingerprints(hashes: _Hashes) -> _Fingerprints:
    """A contact's 32 bits kept per row: the hash's high half."""
    return (hashes >> 32).astype(np.uint32)
