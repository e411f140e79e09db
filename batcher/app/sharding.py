"""Shards by location: which rows one of N processes takes, and how a file spreads over N.

The API's budget is per location (100 requests per 10 s, 200,000 a day), and locations share
nothing, so a large file splits cleanly by location: shard K of N takes exactly the rows whose
location falls in bucket K, and no location is ever paced by two processes.

The bucket of a location id is fixed by this formula, the same on every machine, platform and
Python version (no `hash()`, which is salted per process):

    bucket(location_id, N) = int.from_bytes(sha256(location_id.encode("utf-8")).digest()[:8],
                                            "big") % N

`location_id` is the row's location as loading normalised it (trimmed; `--location-id` or
`api.location_id` when the file has no location column; "" for a row with none, which is
invalid and lands in the bucket of ""). Its shell equivalent, for a script that wants to check:
`printf %s "$LOC" | sha256sum | cut -c1-16` gives the 8 bytes in hex; that number mod N.

Numbering: K counts from 0 to N-1 (`--shard 0/4` ... `--shard 3/4`), as the schedulers that map
a task over an index count it: Kubernetes' `JOB_COMPLETION_INDEX`, AWS Batch's
`AWS_BATCH_JOB_ARRAY_INDEX`, Cloud Run's `CLOUD_RUN_TASK_INDEX`, Airflow's `map_index`, Argo's
`withSequence`. So the index a scheduler gives is the K to pass, with no arithmetic.

Where the shard comes from (first found wins; `resolve_shard`):
1. `--shard K/N`;
2. the environment variable `BATCHER_SHARD=K/N`;
3. `--shards N` with K from the scheduler's index variable (`INDEX_VARIABLES`, in that order).
`--shards N` given beside 1 or 2 must agree with their N. A bad value is a UsageError (exit 2)
naming where it came from.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from batcher.domain.errors import UsageError
from batcher.domain.models import Chunk

__all__ = [
    "INDEX_VARIABLES",
    "SHARD_VARIABLE",
    "Selection",
    "Shard",
    "ShardLoad",
    "bucket",
    "dominant_location",
    "missing_index",
    "parse_shard",
    "resolve_shard",
    "spread",
]

SHARD_VARIABLE = "BATCHER_SHARD"
# The 0-based index variables of schedulers that run one task per index, tried in this order.
INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", "CLOUD_RUN_TASK_INDEX")

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
# Far more shards than any agency has locations would be a typo (and a ledger per shard).
MAX_SHARDS = 10_000


def bucket(location_id: str, count: int) -> int:
    """The bucket (0 .. count-1) of a location id: see the module docstring for the formula."""
    digest = hashlib.sha256(location_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`: the rows whose location is in bucket `index`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        problem = _problem(self.index, self.count)
        if problem:
            raise UsageError(f"shard {self.index}/{self.count}: {problem}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def takes(self, location_id: str) -> bool:
        return bucket(location_id, self.count) == self.index


def _problem(index: int, count: int) -> str:
    """Why K/N is not a shard ("" when it is one)."""
    if not 1 <= count <= MAX_SHARDS:
        return f"the number of shards must be from 1 to {MAX_SHARDS:,}"
    if not 0 <= index < count:
        return f"K counts from 0 to {count - 1} ({_range(count)}), as JOB_COMPLETION_INDEX does"
    return ""


def _range(count: int) -> str:
    return f"0/{count}" if count == 1 else f"0/{count} ... {count - 1}/{count}"


def parse_shard(text: str, where: str = "--shard") -> Shard:
    """`K/N` (0 <= K < N) as a Shard; a UsageError naming `where` otherwise."""
    found = _SHARD.fullmatch(text)
    if found is None:
        raise UsageError(
            f"{where} {text!r}: expected K/N, e.g. 0/4 (shard K of N, K from 0 to N-1)"
        )
    index, count = int(found[1]), int(found[2])
    problem = _problem(index, count)
    if problem:
        raise UsageError(f"{where} {text!r}: {problem}")
    return Shard(index, count)


def _parse_count(text: str) -> int:
    try:
        count = int(text.strip())
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_SHARDS:
        raise UsageError(f"--shards {text!r}: expected a whole number from 1 to {MAX_SHARDS:,}")
    return count


def resolve_shard(
    shard: str | None,
    shards: str | int | None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Shard | None, int | None]:
    """The shard this process takes, and the shard count asked (for `plan --shards N`).

    Returns (None, None) when nothing asks for shards; (None, N) when `--shards N` is given and
    no index is found anywhere (a `plan` then shows the spread over N; a `run` refuses).
    """
    env = os.environ if environ is None else environ
    count = None if shards is None else _parse_count(str(shards))
    chosen: Shard | None = None
    if shard is not None:
        chosen = parse_shard(shard, "--shard")
    elif env.get(SHARD_VARIABLE, "").strip():
        chosen = parse_shard(env[SHARD_VARIABLE], f"${SHARD_VARIABLE}")
    elif count is not None:
        for name in INDEX_VARIABLES:
            text = env.get(name, "").strip()
            if text:
                if not text.isdigit() or int(text) >= count:
                    raise UsageError(
                        f"${name} {text!r} with --shards {count}: expected a shard index from 0 "
                        f"to {count - 1}"
                    )
                chosen = Shard(int(text), count)
                break
    if chosen is not None and count is not None and chosen.count != count:
        raise UsageError(
            f"shard {chosen} and --shards {count} disagree on the number of shards: give one"
        )
    return chosen, count


def missing_index(count: int) -> UsageError:
    """`run --shards N` with no index anywhere: say where one can come from."""
    return UsageError(
        f"--shards {count} needs this process's shard index: give --shard K/{count} (K from 0 to "
        f"{count - 1}), set {SHARD_VARIABLE}=K/{count}, or run where "
        f"{' or '.join(INDEX_VARIABLES)} is set"
    )


@dataclass
class Selection:
    """Passes a shard's rows on as they are loaded, keeping their `row` and `line` numbers.

    With `shard` None every row passes. It counts rows per location when `count_rows` (for
    `plan --shards N`), and the valid rows it held back (so that a shard whose own rows are all
    invalid, or that has none, is not mistaken for an input whose rows are all invalid).
    """

    shard: Shard | None = None
    count_rows: bool = True
    rows_per_location: Counter[str] = field(default_factory=Counter)
    valid_elsewhere: int = 0

    def __call__(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        shard = self.shard
        mine: dict[str, bool] = {}  # location -> taken; a file has few distinct locations
        for chunk in chunks:
            if self.count_rows:
                self.rows_per_location.update(chunk.location_ids)
            if shard is None:
                yield chunk
                continue
            kept = []
            for i, location in enumerate(chunk.location_ids):
                taken = mine.get(location)
                if taken is None:
                    taken = mine[location] = shard.takes(location)
                if taken:
                    kept.append(i)
                elif i not in chunk.invalid:
                    self.valid_elsewhere += 1
            if len(kept) == len(chunk):
                yield chunk
            elif kept:
                yield chunk.take(kept)


@dataclass(frozen=True)
class ShardLoad:
    """What one shard of a spread would do."""

    shard: Shard
    rows: int
    requests: int
    locations: int
    busiest_requests: int


def spread(
    rows_per_location: Mapping[str, int], requests_per_location: Mapping[str, int], count: int
) -> list[ShardLoad]:
    """How rows and requests fall over `count` shards, shard 0 first."""
    rows = [0] * count
    requests = [0] * count
    locations = [0] * count
    busiest = [0] * count
    for location in set(rows_per_location) | set(requests_per_location):
        k = bucket(location, count)
        rows[k] += rows_per_location.get(location, 0)
        needed = requests_per_location.get(location, 0)
        requests[k] += needed
        locations[k] += 1
        busiest[k] = max(busiest[k], needed)
    return [
        ShardLoad(Shard(k, count), rows[k], requests[k], locations[k], busiest[k])
        for k in range(count)
    ]


def dominant_location(
    requests_per_location: Mapping[str, int], count: int
) -> tuple[str, int] | None:
    """The busiest location when it alone needs more than an even share of the requests
    (total / count): a location is never split, so more shards cannot finish sooner than it."""
    if not requests_per_location or count < 2:
        return None
    location, needed = max(requests_per_location.items(), key=lambda item: (item[1], item[0]))
    total = sum(requests_per_location.values())
    return (location, needed) if needed * count > total else None
