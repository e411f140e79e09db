"""How the state file keeps lists of tags: compact JSON text, each distinct list encoded once.

Tag lists repeat across rows (every row of a group asks the same tags, most answers look alike):
each distinct list is encoded and decoded once, not once per row, and the encoders are made
once (json.dumps would build a new one per call: a third of the cost of recording answers that
differ from contact to contact).
"""

from __future__ import annotations

import functools
import json

from batcher.domain.models import by_identity

__all__ = ["compact", "dump", "dumped", "encode", "load"]

# One encoder for the per-row cells, one for the report's lists.
encode = json.JSONEncoder(ensure_ascii=False).encode
compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# Room for each contact's own old tags, which answers name (0 to 3 tags of 40: about 60,000
# lists): a million such answers encoded in 0.35-0.43 s instead of 0.59-0.72 s with 4,096
# entries, for 12 MiB.
@functools.lru_cache(maxsize=1 << 16)
def dump(values: tuple[str, ...] | None) -> str | None:
    """A list as the report shows it: compact JSON text (`["vip","new"]`)."""
    return None if values is None else compact(values)


def dumped(lists: list[tuple[str, ...]]) -> list[str | None]:
    """`dump` of each list; loading shares one tuple among the rows asking the same tags, so
    each distinct tuple is encoded once (looked up by identity: no hashing of its contents)."""
    distinct = by_identity(lists)
    texts = {key: dump(tags) for key, tags in distinct.items()}
    return list(map(texts.__getitem__, map(id, lists)))


@functools.lru_cache(maxsize=4096)
def load(text: str | None) -> tuple[str, ...] | None:
    """A list kept by `dump`, back as a tuple (None stays None)."""
    return None if text is None else tuple(json.loads(text))
