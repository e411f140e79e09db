"""Wrong arguments to the Python API raise batcher errors with a clear message, and the forms a
script naturally writes (a path as text, tags as a list, a token in a mapping) are accepted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import batcher
from batcher.domain.config import read_token

ID = "a" * 20


def test_build_job_takes_a_path_as_text_and_tags_as_a_list(tmp_path: Path) -> None:
    """`build_job(settings, "x.csv", sandbox=True, tags=[...])` builds the job: the path becomes
    a Path (the fixture looked for beside it) and the list the tags, checked as the file's."""
    settings = batcher.Settings()
    job = batcher.build_job(
        settings, str(tmp_path / "x.csv"), sandbox=True, tags=["vip", " new ", "VIP"]
    )
    assert job.input_path == tmp_path / "x.csv"
    assert job.sandbox is not None
    assert job.input.tags == ("vip", "new")
    with pytest.raises(batcher.UsageError, match="each tag must be text"):
        batcher.build_job(settings, "x.csv", tags=["vip", 3])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "rows", [[{"contact_id": ID}], pd.DataFrame([{"contact_id": ID}])], ids=["dicts", "frame"]
)
def test_build_job_refuses_rows_and_names_apply(rows: object) -> None:
    """Rows in memory given to `build_job` (which reads a file) raise UsageError saying to use
    `batcher.apply`, not an AttributeError."""
    with pytest.raises(batcher.UsageError, match=r"batcher\.apply"):
        batcher.build_job(batcher.Settings(), rows)  # type: ignore[arg-type]


def test_a_mistyped_override_names_the_key_and_the_known_ones() -> None:
    """An override key that is no setting is a ConfigError naming it and listing the known
    key paths, not a bare KeyError."""
    with pytest.raises(batcher.ConfigError) as caught:
        batcher.load_settings(overrides={"base_ur": "http://127.0.0.1:1"})
    assert str(caught.value).startswith("base_ur: unknown setting")
    assert "api.base_url" in str(caught.value)
    with pytest.raises(batcher.ConfigError, match=r"api\.base_ur: unknown setting"):
        batcher.load_settings(overrides={"api.base_ur": "x"})


def test_load_settings_takes_the_token_from_the_environ_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`load_settings(environ=...)` reads the token from that mapping (api.token_env names
    which variable), not only from os.environ; the Settings' repr never shows it."""
    monkeypatch.delenv("BATCHER_TOKEN", raising=False)
    settings = batcher.load_settings(environ={"BATCHER_TOKEN": "tok-from-mapping"})
    assert read_token(settings) == "tok-from-mapping"
    assert "tok-from-mapping" not in repr(settings)
    renamed = batcher.load_settings(
        environ={"BATCHER_API_TOKEN_ENV": "MY_TOKEN", "MY_TOKEN": "other"}
    )
    assert read_token(renamed) == "other"
    with pytest.raises(batcher.ConfigError, match="BATCHER_TOKEN is not set"):
        read_token(batcher.load_settings(environ={}))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("contacts.csv", "not a file path"),
        (Path("contacts.csv"), "not a file path"),
        ({"contact_id": ID}, "not dict"),
        (42, "not int"),
        ([{"contact_id": ID}, ("x",)], "row 2 is a tuple"),
        ([{"contact_id": ID}, {"contact_id": "", "x": None}], "row 2 has no value"),
        ([{"contact_id": ID, "tags": ["a", 1]}], "a list must hold text only"),
        ([], "no columns"),
        ([{"contact_id": ID, "note": "a\x00b"}], "row 1, column 'note': a NUL character"),
    ],
)
def test_rows_that_cannot_be_rows_are_refused(
    rows: object, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`plan` refuses, with a UsageError naming the row, what cannot be rows: a path, one
    mapping, a row that is not a mapping, a row with no value, a list of non-text."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(batcher.UsageError, match=message):
        batcher.plan(rows, action="add", tags="vip", sandbox=True)  # type: ignore[arg-type]


def test_a_column_named_twice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DataFrame whose columns read the same twice is refused naming the column."""
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame([[ID, "x"]], columns=["contact_id", "contact_id"])
    with pytest.raises(batcher.UsageError, match="'contact_id' is named twice"):
        batcher.plan(frame, action="add", tags="vip", sandbox=True)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"config": 3}, "config: give a TOML file's path or a batcher.Settings"),
        ({"config": "missing.toml"}, "missing.toml: config file not found"),
        ({"state_dir": 3}, "state_dir: give a path"),
        ({"token": ""}, "token: give the API token as non-empty text"),
        ({"tags": 5}, "tags: give a list of tags or one text"),
        ({"action": "ad"}, 'action \'ad\': give "add" or "remove"'),
        ({"base_url": "http://example.com"}, "https"),
    ],
)
def test_wrong_arguments_raise_usage_errors(
    arguments: dict[str, object], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong argument to `apply` raises UsageError (or a subclass) naming it, before
    anything is sent."""
    monkeypatch.chdir(tmp_path)
    given: dict[str, object] = {"action": "add", "tags": "vip", **arguments}
    with pytest.raises(batcher.UsageError, match=message):
        batcher.apply([{"contact_id": ID}], **given)  # type: ignore[arg-type]


def test_undo_refuses_what_is_no_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`undo` of something that is neither Results nor a report path, or with a wrong
    `uncertain`, raises UsageError; a file no run wrote is refused as the CLI refuses it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(batcher.UsageError, match=r"give the Results of batcher\.apply"):
        batcher.undo(3)  # type: ignore[arg-type]
    report = tmp_path / "r.csv"
    report.write_text("row\n1\n", encoding="utf-8")
    with pytest.raises(batcher.UsageError, match="uncertain: give one of leave, revert"):
        batcher.undo(report, uncertain="maybe")
    with pytest.raises(batcher.UsageError, match="no run in"):
        batcher.undo(report)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ({"": "s3cret"}, "each key must be a location id"),
        ({"loc": " "}, "the token of location loc must be non-empty text"),
        ({}, "a mapping of location id to its token"),
        (7, "not int"),
    ],
)
def test_a_wrong_token_mapping_is_refused_without_showing_a_token(
    token: object, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token mapping with an empty location or token, or a token of the wrong type, is a
    UsageError naming what is wrong and never a token."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(batcher.UsageError, match=message) as caught:
        batcher.apply([{"contact_id": ID}], action="add", tags="vip", token=token)  # type: ignore[arg-type]
    assert "s3cret" not in str(caught.value)


def test_a_token_per_location_goes_into_the_settings_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`token={location: token}` names each location's variable in `api.location_tokens`
    (Step 11) and holds the tokens in the settings' environment only, not os.environ; before
    Step 11 it is a UsageError saying to give one token."""
    from batcher.app.api import _settings
    from batcher.domain.config import ApiSettings

    monkeypatch.chdir(tmp_path)
    tokens = {"locationAAAAAAAAAAAAA": "tok-a", "locationBBBBBBBBBBBBB": "tok-b"}
    if not hasattr(ApiSettings(), "location_tokens"):
        with pytest.raises(batcher.UsageError, match="give one token"):
            _settings(None, base_url=None, state_dir=None, token=tokens)
        return
    settings = _settings(None, base_url=None, state_dir=None, token=tokens)
    names = settings.api.location_tokens  # type: ignore[attr-defined]
    assert set(names) == set(tokens)
    assert settings.environ is not None
    assert {settings.environ[names[loc]] for loc in tokens} == {"tok-a", "tok-b"}
    assert not any(names[loc] in os.environ for loc in tokens)
    assert "tok-a" not in repr(settings)


def test_one_token_given_is_read_where_the_cli_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`token="..."` is what `read_token` finds for the run (under api.token_env), while
    os.environ stays as it was."""
    from batcher.app.api import _settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BATCHER_TOKEN", raising=False)
    settings = _settings(None, base_url=None, state_dir=None, token=" tok-1 ")
    assert read_token(settings) == "tok-1"
    assert "BATCHER_TOKEN" not in os.environ


def test_an_input_error_names_the_rows_not_their_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row the loader refuses as input (a cell over `input.max_cell_kb`) is an InputError
    that names "rows" and the line, never the temporary file the rows were written to."""
    from batcher.domain.config import InputSettings

    monkeypatch.chdir(tmp_path)
    settings = batcher.Settings(input=InputSettings(max_cell_kb=1))
    rows = [{"contact_id": ID, "note": "x"}, {"contact_id": ID, "note": "y" * 4096}]
    with pytest.raises(batcher.InputError) as caught:
        batcher.plan(rows, action="add", tags="vip", sandbox=True, config=settings)
    message = str(caught.value)
    assert message.startswith("rows: ")
    assert "line 3" in message
    assert "rows.csv" not in message


def test_the_command_line_starts_without_pandas() -> None:
    """Importing the CLI (and with it the Python API) leaves pandas unimported: it costs about
    0.4 s, and only a CSV input or a DataFrame needs it."""
    code = "import sys, batcher.cli, batcher; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
