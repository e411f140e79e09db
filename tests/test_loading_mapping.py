"""Mapping the tags, action and location columns (issue 25 item 1): `InputOptions.tags_column`,
`action_column`, `location_column` name columns not called as usual; a run keeps its key when
they are not given."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.app.identity import identify
from batcher.app.jobs import build_job, input_options
from batcher.domain.config import ApiSettings, Settings
from batcher.domain.errors import InputError
from batcher.loading import InputOptions, open_input

ID1 = "AbCdEfGhIj0123456789"
ID2 = "ZyXwVuTsRq9876543210"
LOC = "LocLocLocLocLocLoc01"
MAPPED = InputOptions(
    tags_column="Labels", action_column="Do", location_column="Sub-account", default_location_id="x"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_named_columns_carry_the_operation(tmp_path: Path) -> None:
    """Rows take their tags, action and location from the columns named, and the table says
    which columns it used."""
    path = write(
        tmp_path / "in.csv",
        f'contact_id,Labels,Do,Sub-account\n{ID1},"vip,gold",ADD,{LOC}\n{ID2},old,remove,\n',
    )
    table = open_input(path, MAPPED)
    assert (table.tags_column, table.action_column, table.location_column) == (
        "Labels",
        "Do",
        "Sub-account",
    )
    rows = [row for chunk in table.chunks() for row in chunk]
    assert [(r.action, r.tags, r.location_id, r.status) for r in rows] == [
        ("add", ("vip", "gold"), LOC, None),
        ("remove", ("old",), "x", None),  # an empty location cell: the default one
    ]


def test_a_named_column_wins_over_one_of_the_usual_name(tmp_path: Path) -> None:
    """With both a `tags` column and the one named, the named one is read (matched loosely)."""
    path = write(tmp_path / "in.csv", f"contact_id,tags,New Tags,action\n{ID1},old,new,add\n")
    table = open_input(path, InputOptions(tags_column="new_tags", default_location_id=LOC))
    assert table.tags_column == "New Tags"
    assert [row.tags for chunk in table.chunks() for row in chunk] == [("new",)]


def test_options_given_still_win_over_a_named_column(tmp_path: Path) -> None:
    """`action`, `tags` and `location_id` given apply to every row, a named column or not."""
    path = write(tmp_path / "in.csv", f"contact_id,Labels,Do,Sub-account\n{ID1},a,add,{LOC}\n")
    options = InputOptions(
        tags_column="Labels",
        action_column="Do",
        location_column="Sub-account",
        action="remove",
        tags=("z",),
        location_id="other",
    )
    table = open_input(path, options)
    assert (table.tags_column, table.action_column, table.location_column) == (None, None, None)
    row = next(iter(next(table.chunks())))
    assert (row.action, row.tags, row.location_id) == ("remove", ("z",), "other")


@pytest.mark.parametrize(
    ("field", "option"),
    [
        ("tags_column", "--tags-column"),
        ("action_column", "--action-column"),
        ("location_column", "--location-column"),
    ],
)
def test_a_name_not_in_the_header_is_an_input_error(
    tmp_path: Path, field: str, option: str
) -> None:
    """A column named that the file does not have: one line naming it, the option and the
    header."""
    path = write(tmp_path / "in.csv", f"contact_id,tags,action\n{ID1},a,add\n")
    with pytest.raises(InputError) as info:
        open_input(path, InputOptions(**{field: "Labels"}, default_location_id=LOC))
    assert str(info.value) == (
        f"{path}: no column 'Labels' for {option} (columns: 'contact_id', 'tags', 'action')"
    )


def test_a_tags_column_named_in_a_highlevel_export_is_the_operation(tmp_path: Path) -> None:
    """An export's `Tags` are current tags, but a column the person names is what to apply."""
    path = write(
        tmp_path / "export.csv",
        f"Contact Id,First Name,Last Name,Tags,To Add\n{ID1},Ann,Lee,old,new\n",
    )
    table = open_input(
        path, InputOptions(tags_column="To Add", action="add", default_location_id=LOC)
    )
    assert table.highlevel_export
    assert [row.tags for chunk in table.chunks() for row in chunk] == [("new",)]


def test_the_run_key_changes_only_when_a_column_is_named(tmp_path: Path) -> None:
    """Without the options a run keeps the key it had (the detected columns are not part of
    it); naming a column makes another run."""
    source = write(tmp_path / "in.csv", f"contact_id,tags,action\n{ID1},vip,add\n")
    settings = Settings(api=ApiSettings(location_id=LOC))

    def key(**options: str) -> str:
        job = build_job(settings, source, **options)
        return identify(settings, job, input_options(settings, job)).key

    plain = key()
    # The key main gave this file and operation before the options existed (worked out there).
    assert plain == "2620da824e58e2f5dbd7"
    assert len({plain, key(tags_column="tags"), key(action_column="action")}) == 3
