"""Undo's own parts: the inverse of one row of a run, uncertain rows, the generated input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from batcher.app.undo import (
    UNDO_COLUMNS,
    UndoInput,
    _Entry,
    _settle,
    default_undo_report_path,
    inverse,
    undone_report,
    write_undo_input,
)
from batcher.domain.models import Chunk, Row, Status
from batcher.state import RunInfo

A = "A" * 20
B = "B" * 20
C = "C" * 20
LOC = "L" * 20
RUN = RunInfo(Path("run-x.sqlite"), "finished", "", "in.csv", "add", "sandbox", {}, run_id="r1")


def entry(
    status: str = "success",
    action: str = "add",
    tags: tuple[str, ...] | None = ("vip",),
    old: tuple[str, ...] | None = (),
    added: tuple[str, ...] | None = (),
    removed: tuple[str, ...] | None = (),
    row: str = "7",
    contact: str = A,
    uncertain: bool = False,
) -> _Entry:
    return _Entry(row, contact, LOC, action, tags, status, old, added, removed, uncertain)


def test_an_add_is_undone_by_removing_exactly_the_tags_it_added() -> None:
    operations, why = inverse(entry(added=("vip",), old=("news", "vip2")))
    assert operations == [("remove", ("vip",), "remove the tags row 7 added")]
    assert why is None


def test_a_remove_is_undone_by_adding_back_exactly_the_tags_it_removed() -> None:
    found = entry(action="remove", tags=("vip", "gone"), old=("vip", "x"), removed=("vip",))
    assert inverse(found)[0] == [("add", ("vip",), "add back the tags row 7 removed")]


def test_a_remove_all_is_undone_from_tags_removed_else_from_old_tags() -> None:
    listed = entry(action="remove", tags=(), old=("a", "b"), removed=("a", "b"))
    assert inverse(listed)[0] == [("add", ("a", "b"), "add back the tags row 7 removed")]
    for removed in (None, ()):
        unlisted = entry(action="remove", tags=(), old=("a", "b"), removed=removed)
        operations, _ = inverse(unlisted)
        assert operations == [
            ("add", ("a", "b"), "add back the tags row 7 removed (a remove-all: its old_tags)")
        ]


def test_an_answer_that_added_and_removed_gives_two_operations() -> None:
    operations, _ = inverse(entry(added=("x",), removed=("y",)))
    assert [(action, tags) for action, tags, _ in operations] == [
        ("remove", ("x",)),
        ("add", ("y",)),
    ]


@pytest.mark.parametrize(
    ("found", "why"),
    [
        (entry(), "nothing to undo: row 7 changed no tag"),
        (entry(action="remove", tags=(), old=()), "nothing to undo: row 7 changed no tag"),
        (entry("error", old=None, added=None, removed=None), "nothing to undo: row 7 is error"),
        (entry("failed", old=None, added=None, removed=None), "nothing to undo: row 7 is failed"),
        (entry("invalid", old=None, added=None, removed=None), "nothing to undo: row 7 is invalid"),
        (
            entry("duplicate", old=None, added=None, removed=None),
            "nothing to undo: row 7 is duplicate",
        ),
        # Never applied: old_tags of a failed row do not make a remove-all to undo.
        (
            entry("pending", action="remove", tags=(), old=None, added=None, removed=None),
            "nothing to undo: row 7 is pending",
        ),
    ],
)
def test_rows_that_changed_nothing_have_nothing_to_undo(found: _Entry, why: str) -> None:
    """Their undo line's status says so (not `invalid`), and the message says why."""
    assert inverse(found) == ([], (Status.NOTHING_TO_UNDO, why))


def test_a_failed_row_of_several_requests_undoes_what_its_answered_parts_changed() -> None:
    operations, _ = inverse(entry("failed", added=("t1", "t2"), removed=None))
    assert [(action, tags) for action, tags, _ in operations] == [("remove", ("t1", "t2"))]


@pytest.mark.parametrize(
    "found",
    [
        entry(added=(), old=("vip",), uncertain=True),
        entry("failed", old=None, added=None, removed=None, uncertain=True),
        entry("pending", old=None, added=None, removed=None, uncertain=True),
        entry("error", old=None, added=None, removed=None, uncertain=True),
        entry(action="remove", tags=("vip",), old=(), removed=(), uncertain=True),
    ],
)
def test_an_uncertain_row_is_left_alone_by_default_saying_what_to_do(found: _Entry) -> None:
    """Never a guess: no operation, a `skipped` line whose message starts `uncertain:` and names
    --uncertain revert."""
    operations, why = inverse(found)
    assert operations == []
    assert why is not None
    status, message = why
    assert status is Status.SKIPPED
    assert message.startswith("uncertain: an attempt to send row 7 may have changed the contact")
    assert "check the contact, or undo with --uncertain revert to " in message
    assert '(["vip"])' in message  # the tags revert would send


def test_revert_reverts_an_uncertain_row_by_the_operation_that_was_asked() -> None:
    """After an add, the tags asked for are removed (even those the answer says were there);
    after a remove, the tags asked for are added back."""
    added = entry(tags=("vip", "new"), added=("new",), old=("vip",), uncertain=True)
    assert inverse(added, revert=True) == (
        [
            (
                "remove",
                ("vip", "new"),
                "remove the tags row 7 asked to add (uncertain: reverted as asked)",
            )
        ],
        None,
    )
    removed = entry("failed", "remove", ("vip",), None, None, None, uncertain=True)
    assert inverse(removed, revert=True)[0] == [
        ("add", ("vip",), "add back the tags row 7 asked to remove (uncertain: reverted as asked)")
    ]


@pytest.mark.parametrize("revert", [False, True])
def test_an_uncertain_remove_all_is_named_and_never_invented(revert: bool) -> None:
    """Its tags before the run are unknown: left alone either way, saying so."""
    found = entry(action="remove", tags=(), old=(), removed=(), uncertain=True)
    operations, why = inverse(found, revert=revert)
    assert operations == []
    assert why is not None
    assert why[0] is Status.SKIPPED
    assert why[1].startswith("uncertain: an attempt to send row 7 may have removed every tag")
    assert "it invents none" in why[1]


def test_a_proven_row_is_undone_as_usual_with_revert_or_not() -> None:
    proven = entry(added=("vip",), old=("x",))
    assert inverse(proven, revert=True) == inverse(proven)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write(
    tmp_path: Path, entries: list[_Entry], name: str = "work", revert: bool = False
) -> UndoInput:
    folder = tmp_path / name
    folder.mkdir()
    return write_undo_input(entries, folder, Path("r.csv"), RUN, revert=revert)


def test_each_contacts_operations_are_reversed_in_their_own_places(tmp_path: Path) -> None:
    """A's rows 1, 3, 5 are taken back as 5, 3, 1 in the places 1, 3, 5 had; B, the row with
    nothing to undo and the uncertain one keep their places, each with its status beside the
    file."""
    entries = [
        entry(row="1", added=("one",)),
        entry(row="2", contact=B, added=("b",)),
        entry(row="3", action="remove", tags=("one",), removed=("one",)),
        entry("error", row="4", contact=C, old=None, added=None, removed=None),
        entry(row="5", added=("two",)),
        entry(row="6", contact=C, old=("vip",), uncertain=True),
    ]
    source = write(tmp_path, entries)
    rows = read_rows(source.path)
    assert list(rows[0]) == list(UNDO_COLUMNS)
    assert [(r["contact_id"], r["undoes_row"]) for r in rows] == [
        (A, "5"),
        (B, "2"),
        (A, "3"),
        (C, "4"),
        (A, "1"),
        (C, "6"),
    ]
    assert [r["action"] for r in rows] == ["remove", "remove", "add", "", "remove", ""]
    assert [json.loads(r["tags"]) if r["tags"] else None for r in rows] == [
        ["two"],
        ["b"],
        ["one"],
        None,
        ["one"],
        None,
    ]
    assert rows[3]["undo"] == "nothing to undo: row 4 is error"
    assert rows[5]["undo"].startswith("uncertain: an attempt to send row 6 ")
    assert source.settled == bytes([0, 0, 0, 1, 0, 2])
    counts = (source.rows, source.undone, source.operations, source.nothing, source.skipped)
    assert counts == (6, 4, 4, 1, 1)
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["r.csv.undo.csv"]
    assert undone_report(source.path) is None  # not under the state directory's undo/
    assert undone_report(tmp_path / "undo" / "undo-1" / "r.csv.undo.csv") == "r.csv"


def test_the_same_records_give_the_same_file_byte_for_byte(tmp_path: Path) -> None:
    """What makes an undo resumable: its input, hence its run key, depends on the run's records
    (and on what is done with uncertain rows)."""
    entries = [
        entry(row=str(n), contact=[A, B, C][n % 3], added=(f"t{n}",), uncertain=n % 7 == 0)
        for n in range(1, 40)
    ]
    one = write(tmp_path, entries, "one")
    two = write(tmp_path, entries, "two")
    reverted = write(tmp_path, entries, "three", revert=True)
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.path.read_bytes() != reverted.path.read_bytes()


def test_the_lines_that_send_nothing_get_their_status_from_beside_the_file() -> None:
    """Not from their message: the status handed over with the file decides."""
    rows = [
        Row(
            n,
            A,
            LOC,
            "",
            (),
            False,
            Status.INVALID,
            "action is empty",
            (A, LOC, "", "", str(n), note),
        )
        for n, note in ((1, "nothing to undo: x"), (2, "uncertain: y"), (3, "uncertain: z"))
    ]
    chunk = Chunk.of_rows(rows, len(UNDO_COLUMNS))
    (settled,) = _settle(bytes([1, 2, 0]))(iter([chunk]))
    assert [(row.status, row.message) for row in settled] == [
        (Status.NOTHING_TO_UNDO, "nothing to undo: x"),
        (Status.SKIPPED, "uncertain: y"),
        (Status.INVALID, "action is empty"),
    ]


def test_the_default_undo_report_is_beside_the_working_directory() -> None:
    assert default_undo_report_path(Path("/x/in-report.csv")) == Path("in-report-undo.csv")
    assert default_undo_report_path(Path("r.xlsx")) == Path("r-undo.csv")
    assert default_undo_report_path(Path("r.jsonl")) == Path("r-undo.csv")
