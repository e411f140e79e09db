"""batcher.state.repeats: the filter that spares the ledger from grouping every row by contact."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from batcher.state.repeats import RepeatFinder


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]), max_size=60),
    st.integers(min_value=1, max_value=7),
)
def test_every_row_naming_an_earlier_rows_contact_is_found(ids: list[str], chunk: int) -> None:
    with RepeatFinder() as finder:
        found: set[int] = set()
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            found.update(finder.add(list(range(start + 1, start + 1 + len(part))), part))
        repeats = {row for row, contact in enumerate(ids, 1) if contact in ids[: row - 1]}
        assert repeats <= found


def test_a_file_of_distinct_contacts_leaves_almost_nothing_to_check() -> None:
    with RepeatFinder() as finder:
        ids = [f"contact{n:013d}" for n in range(200_000)]
        found = [
            row
            for start in range(0, len(ids), 50_000)
            for row in finder.add(
                list(range(start + 1, start + 50_001)), ids[start : start + 50_000]
            )
        ]
        # Rows sharing a hash bit by chance: about 200,000 / 2**27 of them, i.e. ~300.
        assert len(found) < 2_000


def test_rows_are_named_by_the_numbers_given_not_by_position() -> None:
    with RepeatFinder() as finder:
        assert finder.add([10, 20], ["x", "y"]) == []
        assert 35 in finder.add([35, 40], ["y", "z"])


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]), max_size=60),
    st.integers(min_value=1, max_value=7),
    st.sets(st.sampled_from(["a", "b", "c", "x"])),
    st.booleans(),
)
def test_earlier_names_every_row_of_the_contacts_asked_for(
    ids: list[str], chunk: int, asked: set[str], gaps: bool
) -> None:
    """`earlier` finds each row naming one of the contacts, by its number (a shard's numbers
    have gaps)."""
    numbers = [n * 3 + 1 if gaps else n + 1 for n in range(len(ids))]
    with RepeatFinder() as finder:
        for start in range(0, len(ids), chunk):
            finder.add(numbers[start : start + chunk], ids[start : start + chunk])
        found = finder.earlier(sorted(asked))
        assert {n for n, contact in zip(numbers, ids, strict=True) if contact in asked} <= set(
            found
        )
        assert len(found) == len(set(found))


def test_earlier_names_few_rows_of_other_contacts() -> None:
    with RepeatFinder() as finder:
        ids = [f"contact{n:013d}" for n in range(100_000)]
        finder.add(list(range(1, 100_001)), ids)
        assert finder.earlier(["contact0000000000007", "someone else"]) == [8]


def test_rows_added_after_a_look_are_found_by_the_next() -> None:
    """The fingerprints live in a file that `earlier` reads from the start: rows added after it
    go on at its end, and the files go when the finder is closed."""
    with RepeatFinder() as finder:
        finder.add([1, 2], ["x", "y"])
        assert finder.earlier(["y"]) == [2]
        finder.add([5, 9], ["y", "z"])  # numbers with a gap: kept in a file of their own
        assert finder.earlier(["y", "z"]) == [2, 5, 9]
        files = [finder._prints, finder._numbers]
    assert all(file is not None and file.closed for file in files)
