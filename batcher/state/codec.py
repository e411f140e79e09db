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


@functools.lru_cache(maxsize=4096)
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
