"""Step 16: rows given by email instead of a contact id, as loading reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.domain.errors import InputError
from batcher.domain.models import Chunk, Status
from batcher.loading import InputOptions, open_input

ID = "abcdefghij0123456789"


def chunk_of(path: Path, **options: object) -> Chunk:
    table = open_input(
        path, InputOptions(action="add", tags=("vip",), location_id="loc", **options)
    )  # type: ignore[arg-type]
    chunks = list(table.chunks())
    assert len(chunks) == 1
    return chunks[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_of_emails_needs_no_id_column(tmp_path: Path) -> None:
    """An email column alone is enough: each address is trimmed and lower-cased for lookup."""
    path = write(tmp_path / "in.csv", "E-mail,name\n  Ada@Example.COM ,Ada\nbob@x.org,Bob\n")
    table = open_input(path, InputOptions(action="add", tags=("vip",), location_id="loc"))
    assert table.id_column is None
    assert table.email_column == "E-mail"
    chunk = next(iter(table.chunks()))
    assert chunk.emails == {0: "ada@example.com", 1: "bob@x.org"}
    assert chunk.contact_ids == ["", ""]
    assert chunk.invalid == {}


def test_a_row_with_an_id_keeps_its_id(tmp_path: Path) -> None:
    """A row with both an id and an address is sent by its id; only id-less rows are looked up."""
    path = write(tmp_path / "in.csv", f"contact_id,email\n{ID},ada@example.com\n,bob@x.org\n")
    chunk = chunk_of(path)
    assert chunk.contact_ids == [ID, ""]
    assert chunk.emails == {1: "bob@x.org"}


def test_rows_with_neither_id_nor_address_are_invalid(tmp_path: Path) -> None:
    """A row with no id and no address says both are missing."""
    path = write(tmp_path / "in.csv", "contact_id,email,name\n,,Ada\n")
    chunk = chunk_of(path)
    assert chunk.emails == {}
    assert chunk.invalid == {0: "no contact id and no email"}


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("not-an-address", '"not-an-address" is not an email address'),
        ("a@b@c.org", "is not an email address"),
        ("ada lovelace@x.org", "is not an email address"),
        ("a" * 70 + "@x.org", "more than the 75 a search filter takes"),
    ],
)
def test_an_unusable_address_makes_the_row_invalid(
    tmp_path: Path, address: str, problem: str
) -> None:
    """An address that a search cannot take is refused before any search, never looked up."""
    path = write(tmp_path / "in.csv", f"email\n{address}\n")
    chunk = chunk_of(path)
    assert chunk.emails == {}
    assert problem in chunk.invalid[0]


def test_an_otherwise_invalid_row_is_not_looked_up(tmp_path: Path) -> None:
    """A row that could not be sent anyway (no tags) costs no search."""
    path = write(tmp_path / "in.csv", "email,tags,action\nada@x.org,,add\nbob@x.org,vip,add\n")
    table = open_input(path, InputOptions(location_id="loc"))
    chunk = next(iter(table.chunks()))
    assert chunk.emails == {1: "bob@x.org"}
    assert chunk.invalid == {0: "no tags to apply"}
    assert [row.status for row in chunk] == [Status.INVALID, None]


def test_the_email_column_can_be_named(tmp_path: Path) -> None:
    """`--email-column` picks the column; a missing one names the columns there are."""
    path = write(tmp_path / "in.csv", "work mail,name\nada@x.org,Ada\n")
    assert chunk_of(path, email_column="Work Mail").emails == {0: "ada@x.org"}
    with pytest.raises(InputError, match="no column 'mail' for --email-column"):
        open_input(path, InputOptions(action="add", tags=("vip",), email_column="mail"))
