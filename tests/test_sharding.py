"""Shards by location: a stable bucket, a partition of the rows, and where the shard comes from."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batcher.app.sharding import (
    Selection,
    Shard,
    bucket,
    dominant_location,
    parse_shard,
    resolve_shard,
    spread,
)
from batcher.domain.errors import UsageError
from batcher.domain.models import Chunk, Row, Status

ROOT = Path(__file__).resolve().parents[1]


def test_the_bucket_is_the_documented_formula() -> None:
    """bucket = first 8 bytes of SHA-256 of the UTF-8 id, big-endian, mod N."""
    for location in ("asdrwHvLUxlfw5SqKVCN", "sandboxLocation00001", "", "é"):
        digest = hashlib.sha256(location.encode("utf-8")).digest()
        for count in (1, 2, 3, 4, 7, 1000):
            assert bucket(location, count) == int.from_bytes(digest[:8], "big") % count


def test_known_buckets_never_change() -> None:
    """Fixed values: a change here would move locations between shards of a running job."""
    assert [bucket("asdrwHvLUxlfw5SqKVCN", n) for n in (2, 3, 4, 7, 1000)] == [1, 1, 3, 3, 547]
    assert [bucket("sandboxLocation00001", n) for n in (2, 3, 4, 7, 1000)] == [1, 2, 3, 4, 115]
    assert [bucket("", n) for n in (2, 3, 4, 7, 1000)] == [0, 1, 0, 1, 652]


def test_another_process_computes_the_same_buckets() -> None:
    """Stable across processes, whatever their hash seed (no `hash()`)."""
    locations = [f"location{i:03d}xxxxxxxxxx" for i in range(50)] + ["", "é", "ø漢"]
    script = (
        "import json, sys; from batcher.app.sharding import bucket; "
        "locations = json.load(sys.stdin); "
        "print(json.dumps([[bucket(l, n) for n in (2, 3, 4, 16)] for l in locations]))"
    )
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(locations),
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        )
        expected = [[bucket(loc, n) for n in (2, 3, 4, 16)] for loc in locations]
        assert json.loads(done.stdout) == expected


def _rows(locations: list[str]) -> list[Row]:
    return [
        Row(
            row=n,
            contact_id=f"c{n:019d}",
            location_id=location,
            action="add",
            tags=("vip",),
            remove_all=False,
            status=Status.INVALID if n % 5 == 0 else None,
            line=n + 1,
        )
        for n, location in enumerate(locations, start=1)
    ]


@given(
    locations=st.lists(st.sampled_from([f"loc{i}" for i in range(30)] + [""]), max_size=200),
    count=st.integers(min_value=1, max_value=9),
    chunk=st.integers(min_value=1, max_value=50),
)
def test_shards_partition_the_rows_and_never_split_a_location(
    locations: list[str], count: int, chunk: int
) -> None:
    """Every row in exactly one shard, with its own row and line; a location in one shard only."""
    rows = _rows(locations)
    chunks = [Chunk.of_rows(rows[i : i + chunk], 0) for i in range(0, len(rows), chunk)]
    taken: dict[int, int] = {}
    shard_of_location: dict[str, int] = {}
    for k in range(count):
        selection = Selection(Shard(k, count))
        for part in selection(chunks):
            assert len(part), "no empty chunk is passed on"
            for row in part:
                assert row.row not in taken
                taken[row.row] = k
                assert shard_of_location.setdefault(row.location_id, k) == k
                assert row == rows[row.row - 1]  # row and line numbers kept as loaded
    assert sorted(taken) == [row.row for row in rows]


def test_a_selection_counts_rows_per_location_and_the_valid_rows_it_held_back() -> None:
    rows = _rows(["a", "b", "a", "c", "b", "a", "c"])
    shard = Shard(bucket("a", 2), 2)
    selection = Selection(shard)
    kept = [row for part in selection([Chunk.of_rows(rows, 0)]) for row in part]
    assert {row.location_id for row in kept} == {
        loc for loc in "abc" if bucket(loc, 2) == shard.index
    }
    assert selection.rows_per_location == {"a": 3, "b": 2, "c": 2}
    held_back_valid = [r for r in rows if r not in kept and r.status is None]
    assert selection.valid_elsewhere == len(held_back_valid)


def test_without_a_shard_every_chunk_passes_as_it_is() -> None:
    chunk = Chunk.of_rows(_rows(["a", "b"]), 0)
    selection = Selection(None, count_rows=False)
    assert list(selection([chunk])) == [chunk]
    assert not selection.rows_per_location


@pytest.mark.parametrize(
    ("text", "expected"), [("0/4", Shard(0, 4)), (" 3 / 4 ", Shard(3, 4)), ("0/1", Shard(0, 1))]
)
def test_a_shard_is_k_of_n_counted_from_zero(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected
    assert str(expected) == f"{expected.index}/{expected.count}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4/4", "--shard '4/4': K counts from 0 to 3 (0/4 ... 3/4)"),
        ("1/1", "--shard '1/1': K counts from 0 to 0 (0/1)"),
        ("0/0", "--shard '0/0': the number of shards must be from 1"),
        ("-1/4", "--shard '-1/4': expected K/N"),
        ("2", "--shard '2': expected K/N"),
        ("a/b", "--shard 'a/b': expected K/N"),
    ],
)
def test_a_bad_shard_is_one_line_naming_the_fix(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_the_shard_comes_from_the_option_then_batcher_shard_then_the_schedulers_index() -> None:
    env = {"BATCHER_SHARD": "1/3", "JOB_COMPLETION_INDEX": "2"}
    assert resolve_shard("0/3", None, env) == (Shard(0, 3), None)
    assert resolve_shard(None, None, env) == (Shard(1, 3), None)
    assert resolve_shard(None, "3", {"JOB_COMPLETION_INDEX": "2"}) == (Shard(2, 3), 3)
    assert resolve_shard(None, "4", {"AWS_BATCH_JOB_ARRAY_INDEX": "1"}) == (Shard(1, 4), 4)
    assert resolve_shard(None, "4", {"CLOUD_RUN_TASK_INDEX": "3"}) == (Shard(3, 4), 4)
    # An index variable alone (without --shards) selects nothing: N must be said.
    assert resolve_shard(None, None, {"JOB_COMPLETION_INDEX": "2"}) == (None, None)
    # --shards with no index anywhere: the count only (a plan shows the spread).
    assert resolve_shard(None, "4", {}) == (None, 4)


@pytest.mark.parametrize(
    ("shard", "shards", "env", "message"),
    [
        ("1/3", "4", {}, "shard 1/3 and --shards 4 disagree"),
        (None, "4", {"BATCHER_SHARD": "0/2"}, "shard 0/2 and --shards 4 disagree"),
        (None, None, {"BATCHER_SHARD": "x"}, "$BATCHER_SHARD 'x': expected K/N"),
        (None, "0", {}, "--shards '0': expected a whole number from 1"),
        (None, "four", {}, "--shards 'four': expected a whole number"),
        (None, "4", {"JOB_COMPLETION_INDEX": "4"}, "$JOB_COMPLETION_INDEX '4' with --shards 4"),
        (None, "4", {"JOB_COMPLETION_INDEX": "-1"}, "$JOB_COMPLETION_INDEX '-1' with --shards 4"),
    ],
)
def test_conflicting_or_bad_shard_values_are_refused(
    shard: str | None, shards: str | None, env: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_shard(shard, shards, env)
    assert str(caught.value).startswith(message)


def test_the_spread_adds_up_and_each_location_lands_in_its_bucket() -> None:
    rows = {f"loc{i}": 10 * i + 1 for i in range(20)}
    requests = {f"loc{i}": i + 1 for i in range(20)}
    loads = spread(rows, requests, 3)
    assert [load.shard for load in loads] == [Shard(0, 3), Shard(1, 3), Shard(2, 3)]
    assert sum(load.rows for load in loads) == sum(rows.values())
    assert sum(load.requests for load in loads) == sum(requests.values())
    assert sum(load.locations for load in loads) == 20
    for load in loads:
        mine = [loc for loc in requests if bucket(loc, 3) == load.shard.index]
        assert load.busiest_requests == max((requests[loc] for loc in mine), default=0)


def test_a_location_with_more_than_an_even_share_is_named() -> None:
    assert dominant_location({"big": 60, "a": 20, "b": 20}, 2) == ("big", 60)
    assert dominant_location({"big": 40, "a": 30, "b": 30}, 2) is None
    assert dominant_location({"big": 40, "a": 30, "b": 30}, 3) == ("big", 40)
    assert dominant_location({"only": 5}, 1) is None
    assert dominant_location({}, 4) is None
