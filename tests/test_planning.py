"""Grouping rows and cutting batches: every valid row once per tag slice, in the fewest requests."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher.domain.models import Action, Batch, Group, Row, Status
from batcher.domain.planning import PlanStats, count_requests, cut, group_of, tag_parts


def _row(
    n: int,
    *,
    location: str = "LOC1",
    action: str = "add",
    tags: tuple[str, ...] = ("vip",),
    remove_all: bool = False,
    status: Status | None = None,
) -> Row:
    return Row(
        row=n,
        contact_id=f"C{n:019d}",
        location_id=location,
        action=action,
        tags=tags,
        remove_all=remove_all,
        status=status,
        message="bad id" if status is Status.INVALID else "",
    )


def _tags(count: int) -> tuple[str, ...]:
    return tuple(f"t{i:03d}" for i in range(count))


GROUP = Group("LOC1", Action.ADD, ("a", "b"), remove_all=False)


# -- group_of ---------------------------------------------------------------------------------


def _group(row: Row) -> Group:
    return group_of(row.location_id, row.action, row.tags, row.remove_all)


def test_group_holds_location_action_and_sorted_tags() -> None:
    """A valid row's group is its location, action, tags in canonical order and remove-all flag."""
    group = _group(_row(1, location="L9", action="remove", tags=("b", "c", "a")))
    assert group == Group("L9", Action.REMOVE, ("a", "b", "c"), remove_all=False)


def test_tag_order_does_not_change_the_group() -> None:
    """Rows with the same tag set in another order share one group."""
    assert _group(_row(1, tags=("x", "y", "z"))) == _group(_row(2, tags=("z", "x", "y")))


def test_different_tag_set_location_or_action_is_another_group() -> None:
    """A different tag set, location or action gives a different group."""
    base = _group(_row(1, tags=("a", "b")))
    assert _group(_row(2, tags=("a",))) != base
    assert _group(_row(3, tags=("a", "b"), location="LOC2")) != base
    assert _group(_row(4, tags=("a", "b"), action="remove")) != base


def test_tag_case_is_kept() -> None:
    """Tags differing only in case are different tags."""
    assert _group(_row(1, tags=("VIP",))) != _group(_row(2, tags=("vip",)))


def test_remove_all_group_carries_no_tags() -> None:
    """A remove-all row's group has tags () whatever tags the row listed."""
    group = _group(_row(1, action="remove", tags=("ignored",), remove_all=True))
    assert group == Group("LOC1", Action.REMOVE, (), remove_all=True)


# -- tag_parts --------------------------------------------------------------------------------


def test_up_to_fifty_tags_are_one_part() -> None:
    """A group of 50 tags is sent as one part holding all of them."""
    group = Group("L", Action.ADD, _tags(50), remove_all=False)
    assert tag_parts(group) == (_tags(50),)


def test_fifty_one_tags_are_two_parts() -> None:
    """The 51st tag starts a second part."""
    group = Group("L", Action.ADD, _tags(51), remove_all=False)
    assert [len(p) for p in tag_parts(group)] == [50, 1]


def test_120_tags_are_three_parts_in_order() -> None:
    """120 tags are cut into slices of 50, 50 and 20 that together are the tags in order."""
    group = Group("L", Action.ADD, _tags(120), remove_all=False)
    parts = tag_parts(group)
    assert [len(p) for p in parts] == [50, 50, 20]
    assert parts[0][0] == "t000"
    assert parts[2][-1] == "t119"
    assert tuple(tag for part in parts for tag in part) == _tags(120)


def test_remove_all_is_one_empty_part() -> None:
    """A remove-all group is one request carrying tags []."""
    assert tag_parts(Group("L", Action.REMOVE, (), remove_all=True)) == ((),)


# -- cut --------------------------------------------------------------------------------------


def _members(count: int) -> list[tuple[int, str]]:
    return [(n, f"C{n:019d}") for n in range(1, count + 1)]


def test_cut_fills_batches_in_order_and_leaves_one_partial_last() -> None:
    """Seven members in batches of three are cut 3, 3, 1, in member order."""
    batches = list(cut(GROUP, 0, _members(7), size=3))
    assert [b.rows for b in batches] == [(1, 2, 3), (4, 5, 6), (7,)]
    assert batches[2].contact_ids == ("C0000000000000000007",)


def test_cut_keeps_rows_and_contact_ids_aligned() -> None:
    """Each batch's rows[i] is the input row of its contact_ids[i]."""
    members = [(10, "A" * 20), (3, "B" * 20), (7, "C" * 20)]
    (batch,) = cut(GROUP, 0, members, size=500)
    assert batch == Batch(
        location_id="LOC1",
        action=Action.ADD,
        tags=("a", "b"),
        remove_all=False,
        part=0,
        rows=(10, 3, 7),
        contact_ids=("A" * 20, "B" * 20, "C" * 20),
    )


def test_cut_uses_500_by_default() -> None:
    """Without a size, batches hold the API's maximum of 500 contacts."""
    assert [len(b.rows) for b in cut(GROUP, 0, _members(1001))] == [500, 500, 1]


def test_cut_carries_the_parts_tag_slice() -> None:
    """A batch of part 1 carries the second 50-tag slice and says it is part 1."""
    group = Group("L", Action.REMOVE, _tags(120), remove_all=False)
    (batch,) = cut(group, 1, _members(2), size=10)
    assert batch.part == 1
    assert batch.tags == _tags(120)[50:100]
    assert batch.action is Action.REMOVE


def test_cut_of_no_members_is_no_batch() -> None:
    """A group with no members left needs no request."""
    assert list(cut(GROUP, 0, [], size=5)) == []


def test_cut_pulls_members_lazily() -> None:
    """Taking the first batch reads no more members than it holds."""
    pulled: list[int] = []

    def members() -> Iterator[tuple[int, str]]:
        for member in _members(10):
            pulled.append(member[0])
            yield member

    batches = cut(GROUP, 0, members(), size=4)
    next(batches)
    assert pulled == [1, 2, 3, 4]


@pytest.mark.parametrize("size", [0, -1, 501])
def test_cut_refuses_sizes_outside_1_to_500(size: int) -> None:
    """A batch size outside 1..500 is refused with ValueError."""
    with pytest.raises(ValueError, match=r"outside 1\.\.500"):
        list(cut(GROUP, 0, _members(3), size=size))


@pytest.mark.parametrize("size", [1, 500])
def test_cut_accepts_the_size_bounds(size: int) -> None:
    """Sizes 1 and 500 are both allowed."""
    assert sum(len(b.rows) for b in cut(GROUP, 0, _members(3), size=size)) == 3


# -- PlanStats and count_requests -------------------------------------------------------------


@pytest.mark.parametrize(
    ("requests", "expected"),
    [(0, 0.0), (1, 0.0), (100, 0.0), (101, 10.0), (200, 10.0), (201, 20.0), (1000, 90.0)],
)
def test_seconds_at_counts_whole_windows_after_the_first(requests: int, expected: float) -> None:
    """At 100 requests per 10 s the first 100 start at once and each further 100 waits 10 s."""
    assert PlanStats(groups=1, requests=requests).seconds_at(100, 10.0) == expected


def test_seconds_at_one_per_interval() -> None:
    """At one request per 2 s, three requests take 4 s."""
    assert PlanStats(groups=1, requests=3).seconds_at(1, 2.0) == 4.0


def test_count_requests_sums_ceilings_per_group_part() -> None:
    """Requests are ceil(members/size) per (group, part); groups are counted once across parts."""
    other = Group("LOC2", Action.REMOVE, (), remove_all=True)
    work = [(GROUP, 0, 1000), (GROUP, 1, 1), (other, 0, 501)]
    assert count_requests(work, 500) == PlanStats(groups=2, requests=5)


def test_count_requests_of_nothing() -> None:
    """No work is no group and no request."""
    assert count_requests([], 500) == PlanStats(groups=0, requests=0)


def test_count_requests_at_size_one() -> None:
    """At batch size 1 every member is one request."""
    assert count_requests([(GROUP, 0, 7)], 1) == PlanStats(groups=1, requests=7)


# -- properties -------------------------------------------------------------------------------

LOCATIONS = ("LOC1", "LOC2", "LOC3")
FEW_TAGS = ("a", "b", "c", "d")
MANY_TAGS = _tags(130)


@st.composite
def _tag_lists(draw: st.DrawFn) -> tuple[str, ...]:
    if draw(st.booleans()):
        chosen = sorted(draw(st.sets(st.sampled_from(FEW_TAGS), min_size=1, max_size=3)))
    else:  # a long run of tags, often over the 50-per-request limit
        start = draw(st.integers(0, 40))
        chosen = list(MANY_TAGS[start : start + draw(st.integers(45, 90))])
    draw(st.randoms(use_true_random=False)).shuffle(chosen)
    return tuple(chosen)


@st.composite
def _rows(draw: st.DrawFn) -> list[Row]:
    count = draw(st.integers(min_value=0, max_value=40))
    rows = []
    for n in range(1, count + 1):
        action = draw(st.sampled_from(["add", "remove"]))
        remove_all = action == "remove" and draw(st.booleans())
        rows.append(
            Row(
                row=n,
                contact_id=f"C{draw(st.integers(0, 30)):019d}",
                location_id=draw(st.sampled_from(LOCATIONS)),
                action=action,
                tags=() if remove_all else draw(_tag_lists()),
                remove_all=remove_all,
                status=draw(st.sampled_from([None, None, None, Status.INVALID])),
            )
        )
    return rows


@settings(deadline=None, max_examples=150)
@given(rows=_rows(), size=st.one_of(st.integers(1, 6), st.integers(1, 500)))
def test_plan_sends_every_valid_row_once_per_part_in_fewest_requests(
    rows: list[Row], size: int
) -> None:
    """Every valid row is in exactly one batch per part of its group and invalid rows in none;
    batches respect size and 50 tags; there are sum(ceil(members/size)) requests = count_requests.
    """
    groups: dict[Group, list[tuple[int, str]]] = {}
    by_number = {row.row: row for row in rows}
    for row in rows:
        if row.status is None:
            groups.setdefault(_group(row), []).append((row.row, row.contact_id))

    seen: Counter[tuple[int, int]] = Counter()
    work = []
    requests = 0
    for group, members in groups.items():
        for part in range(len(tag_parts(group))):
            work.append((group, part, len(members)))
            batches = list(cut(group, part, members, size))
            requests += len(batches)
            assert len(batches) == math.ceil(len(members) / size)
            assert all(len(b.rows) == size for b in batches[:-1])  # only the last may be partial
            assert [m for b in batches for m in zip(b.rows, b.contact_ids, strict=True)] == members
            for batch in batches:
                assert 1 <= len(batch.contact_ids) <= size
                assert len(batch.tags) <= 50
                assert batch.part == part
                for n in batch.rows:
                    row = by_number[n]
                    assert (batch.location_id, batch.action.value) == (row.location_id, row.action)
                    assert set(batch.tags) <= set(row.tags)
                    seen[(n, part)] += 1
            assert {t for b in batches for t in b.tags} <= set(tag_parts(group)[part])

    expected = {
        (row.row, part)
        for row in rows
        if row.status is None and (group := _group(row)) is not None
        for part in range(len(tag_parts(group)))
    }
    assert set(seen) == expected
    assert set(seen.values()) <= {1}
    assert not {n for n, _ in seen} & {r.row for r in rows if r.status is Status.INVALID}
    assert count_requests(work, size) == PlanStats(groups=len(groups), requests=requests)


@settings(deadline=None)
@given(tags=_tag_lists())
def test_tag_parts_cover_the_group_tags_once_in_slices_of_at_most_50(
    tags: tuple[str, ...],
) -> None:
    """The parts of a group are ceil(n/50) slices of at most 50 that concatenate to its tags."""
    group = _group(_row(1, tags=tags))
    assert group is not None
    parts = tag_parts(group)
    assert len(parts) == math.ceil(len(tags) / 50)
    assert all(1 <= len(part) <= 50 for part in parts)
    assert tuple(tag for part in parts for tag in part) == tuple(sorted(tags))
