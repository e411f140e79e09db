"""Undo's own parts: the inverse of one report line, reading reports, the generated input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from batcher.errors import InputError
from batcher.models import ReportLine, Status
from batcher.report import write_report
from batcher.undo import (
    UNDO_COLUMNS,
    _Entry,
    default_undo_report_path,
    inverse,
    read_report,
    undone_report,
    write_undo_input,
)

A = "A" * 20
B = "B" * 20
C = "C" * 20
LOC = "L" * 20


def entry(
    status: str = "success",
    action: str = "add",
    tags: tuple[str, ...] | None = ("vip",),
    old: tuple[str, ...] | None = (),
    added: tuple[str, ...] | None = (),
    removed: tuple[str, ...] | None = (),
    row: str = "7",
) -> _Entry:
    return _Entry(1, row, A, LOC, action, tags, status, old, added, removed)


def test_an_add_is_undone_by_removing_exactly_the_tags_it_added() -> None:
    operations, why = inverse(entry(added=("vip",), old=("news", "vip2")))
    assert operations == [("remove", ("vip",), "remove the tags row 7 added")]
    assert why == ""


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
    assert inverse(found) == ([], why)


def test_a_failed_row_of_several_requests_undoes_what_its_answered_parts_changed() -> None:
    operations, _ = inverse(entry("failed", added=("t1", "t2"), removed=None))
    assert [(action, tags) for action, tags, _ in operations] == [("remove", ("t1", "t2"))]


def line(n: int, contact: str, status: Status = Status.SUCCESS, **kw: object) -> ReportLine:
    fields: dict[str, object] = {
        "row": n,
        "line": n + 1,
        "contact_id": contact,
        "location_id": LOC,
        "action": "add",
        "tags": ("vip",),
        "status": status,
        "message": "Tags updated" if status is Status.SUCCESS else "no",
        "old_tags": () if status is Status.SUCCESS else None,
        "tags_added": ("vip",) if status is Status.SUCCESS else None,
        "tags_removed": () if status is Status.SUCCESS else None,
        "http_status": 201,
        "attempts": 1,
        "extra": (f"p{n}@example.com",),
    }
    fields.update(kw)
    return ReportLine(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["r.csv", "r.xlsx", "r.jsonl"])
def test_every_report_format_reads_back_as_written(tmp_path: Path, name: str) -> None:
    lines = [
        line(1, A, tags=("a,b", '"q"'), tags_added=("a,b", '"q"')),
        line(2, B, Status.ERROR),
        line(3, "=cmd|x", Status.INVALID, message="contact id does not match"),
        line(4, C, action="remove", tags=(), old_tags=("x", "y"), tags_removed=("x", "y")),
    ]
    write_report(tmp_path / name, ["email"], lines)
    got = list(read_report(tmp_path / name))
    assert [e.row for e in got] == ["1", "2", "3", "4"]
    assert [e.contact_id for e in got] == [A, B, "=cmd|x", C]  # made inert in CSV, read back
    assert got[0].tags_added == ("a,b", '"q"')
    assert got[1].tags_added is None
    assert got[3].old_tags == ("x", "y")
    assert [e.status for e in got] == ["success", "error", "invalid", "success"]


def test_a_file_without_the_result_fields_is_not_a_report(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("contact_id,action,tags\nx,add,vip\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"in.csv: not a batcher report \(no row, line, "):
        list(read_report(path))
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"contact_id": "x"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="not a batcher report"):
        list(read_report(jsonl))
    other = tmp_path / "in.txt"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="not a report file"):
        list(read_report(other))


def test_a_list_cell_that_is_not_a_json_list_stops_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    write_report(tmp_path / "r.csv", ["email"], [line(1, A), line(2, B)])
    text = (tmp_path / "r.csv").read_text(encoding="utf-8")
    (tmp_path / "r.csv").write_text(text.replace('"[""vip""]",[]', "vip,[]", 1), "utf-8")
    with pytest.raises(InputError, match=r"r\.csv: line 2: tags_added is not a JSON list"):
        list(read_report(tmp_path / "r.csv"))


def test_a_status_no_report_has_is_refused(tmp_path: Path) -> None:
    write_report(tmp_path / "r.csv", ["email"], [line(1, A)])
    text = (tmp_path / "r.csv").read_text(encoding="utf-8").replace(",success,", ",done,")
    (tmp_path / "r.csv").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="line 2: status 'done' is not one a report has"):
        list(read_report(tmp_path / "r.csv"))


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_each_contacts_operations_are_reversed_in_their_own_places(tmp_path: Path) -> None:
    """A's rows 1, 3, 5 are taken back as 5, 3, 1 in the places 1, 3, 5 had; B and the row
    with nothing to undo keep their places."""
    lines = [
        line(1, A, tags_added=("one",)),
        line(2, B, tags_added=("b",)),
        line(3, A, action="remove", tags=("one",), tags_added=(), tags_removed=("one",)),
        line(4, C, Status.ERROR),
        line(5, A, tags_added=("two",)),
    ]
    write_report(tmp_path / "r.csv", ["email"], lines)
    folder = tmp_path / "work"
    folder.mkdir()
    source = write_undo_input(tmp_path / "r.csv", folder)
    rows = read_rows(source.path)
    assert list(rows[0]) == list(UNDO_COLUMNS)
    assert [(r["contact_id"], r["undoes_row"]) for r in rows] == [
        (A, "5"),
        (B, "2"),
        (A, "3"),
        (C, "4"),
        (A, "1"),
    ]
    assert [r["action"] for r in rows] == ["remove", "remove", "add", "", "remove"]
    assert [json.loads(r["tags"]) if r["tags"] else None for r in rows] == [
        ["two"],
        ["b"],
        ["one"],
        None,
        ["one"],
    ]
    assert rows[3]["undo"] == "nothing to undo: row 4 is error"
    assert (source.rows, source.undone, source.operations, source.nothing) == (5, 4, 4, 1)
    assert sorted(p.name for p in folder.iterdir()) == ["r.csv.undo.csv"]
    assert undone_report(source.path) is None  # not under the state directory's undo/
    assert undone_report(tmp_path / "undo" / "undo-1" / source.path.name) == "r.csv"


def test_the_same_report_gives_the_same_file_byte_for_byte(tmp_path: Path) -> None:
    """What makes an undo resumable: its input, hence its run key, depends on the report only."""
    lines = [line(n, [A, B, C][n % 3], tags_added=(f"t{n}",)) for n in range(1, 40)]
    write_report(tmp_path / "r.jsonl", ["email"], lines)
    made = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        made.append(write_undo_input(tmp_path / "r.jsonl", folder).path.read_bytes())
    assert made[0] == made[1]


def test_the_default_undo_report_is_beside_the_working_directory() -> None:
    assert default_undo_report_path(Path("/x/in-report.csv")) == Path("in-report-undo.csv")
    assert default_undo_report_path(Path("r.xlsx")) == Path("r-undo.csv")
    assert default_undo_report_path(Path("r.jsonl")) == Path("r-undo.csv")
