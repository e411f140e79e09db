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

numpy is used here only (pandas brings it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_BITS = 27
_MASK = (1 << _BITS) - 1


class RepeatFinder:
    """Fed every loaded row's number and contact id, in input order, a chunk at a time; says
    which rows of each chunk may repeat an earlier row's contact.

    Python's string hash is used as it is: salted per process, which is fine for a set that lives
    only while one process loads one file.
    """

    def __init__(self) -> None:
        self._seen = np.zeros(1 << (_BITS - 3), dtype=np.uint8)

    def add(self, rows: Sequence[int], contact_ids: Sequence[str]) -> list[int]:
        """The numbers of the rows given that may name a contact some earlier row named.

        Handed back a chunk at a time (the ledger writes them down at once), so a file that
        names its contacts many times over costs no memory here.
        """
        count = len(contact_ids)
        if not count:
            return []
        hashes = np.fromiter(map(hash, contact_ids), dtype=np.int64, count=count)
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
