"""Events as log lines: the text lines people know, or one JSON object each; never the token."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from batcher.domain.events import Event, notices
from batcher.support import logs
from batcher.support.secrets import Scrubber

TOKEN = "pit-0123456789abcdef0123"


@pytest.fixture
def lines() -> Iterator[list[str]]:
    written: list[str] = []
    yield written
    for handler in list(logs.logger().handlers):  # leave no handler writing to this list
        logs.logger().removeHandler(handler)


def test_json_lines_parse_and_carry_the_event_and_its_fields(lines: list[str]) -> None:
    logs.setup("json", lines.append, Scrubber(TOKEN))
    logs.emit(Event("location.paused", "paused", {"location_id": "loc", "seconds": 2.5}))
    logs.emit(Event("run.finished", "done", {"counts": {"success": 3}}, text=False))
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "location.paused"
    assert first["level"] == "info"
    assert first["location_id"] == "loc"
    assert first["seconds"] == 2.5
    assert "time" in first
    assert second["counts"] == {"success": 3}


def test_the_token_is_scrubbed_from_messages_and_fields_whatever_its_case(
    lines: list[str],
) -> None:
    logs.setup("json", lines.append, Scrubber(TOKEN))
    logs.emit(
        Event(
            "request.failed",
            f"proxy said: Bearer {TOKEN}",
            {"reason": TOKEN.upper(), "nested": [{"x": TOKEN[2:]}]},
        )
    )
    (line,) = lines
    event = json.loads(line)
    assert TOKEN.casefold()[:8] not in line.casefold()
    assert event["message"] == "proxy said: Bearer [token]"
    assert event["reason"] == "[token]"


def test_text_keeps_the_lines_people_know_and_leaves_out_machine_only_events(
    lines: list[str],
) -> None:
    logs.setup("text", lines.append, Scrubber(TOKEN))
    logs.emit(Event("notice", 'add ["vip"]: sending to the sandbox'))
    logs.emit(Event("location.paused", "paused", text=False))
    logs.emit(Event("warning", "an unfinished run", level="warning"))
    logs.emit(Event("error", f"bad token {TOKEN}", level="error"))
    assert lines == [
        'batcher: add ["vip"]: sending to the sandbox',
        "batcher: warning: an unfinished run",
        "batcher: error: bad token [token]",
    ]


def test_a_notify_caller_hears_the_events_people_read() -> None:
    heard: list[str] = []
    sink = notices(heard.append)
    sink(Event("run.started", "sending"))
    sink(Event("run.finished", "summary", text=False))
    assert heard == ["sending"]


def test_every_line_of_a_run_names_it_once_its_id_is_known(lines: list[str]) -> None:
    """Text lines say `batcher[run <id>]:` from the run's first event on; before it, `batcher:`."""
    logs.setup("text", lines.append, Scrubber(TOKEN))
    logs.emit(Event("notice", "reading the config"))
    logs.emit(Event("run.started", "sending", {"run_id": "3f2a1b2c4d5e6f70"}))
    logs.emit(Event("error", "token refused", level="error"))
    assert lines == [
        "batcher: reading the config",
        "batcher[run 3f2a1b2c4d5e6f70]: sending",
        "batcher[run 3f2a1b2c4d5e6f70]: error: token refused",
    ]


def test_json_lines_carry_the_run_id_as_a_field(lines: list[str]) -> None:
    """Every JSON object after the run's id is told has `run_id`, an error's too."""
    logs.setup("json", lines.append, Scrubber(TOKEN))
    logs.emit(Event("run.continued", "continuing", {"run_id": "00ff00ff00ff00ff"}))
    logs.emit(Event("location.paused", "paused", text=False))
    logs.emit(Event("error", "disk full", {"exit_code": 3}, level="error"))
    assert [json.loads(line)["run_id"] for line in lines] == ["00ff00ff00ff00ff"] * 3


def test_quiet_keeps_only_warnings_and_errors(lines: list[str]) -> None:
    """`-q`: the start line and notices are gone; a warning and an error still show."""
    logs.setup("text", lines.append, Scrubber(TOKEN), quiet=True)
    logs.emit(Event("run.started", "sending", {"run_id": "3f2a1b2c4d5e6f70"}))
    logs.emit(Event("notice", "a notice"))
    logs.emit(Event("warning", "an unfinished run", level="warning"))
    logs.emit(Event("advice", "stopped: token refused", level="error"))
    assert lines == [
        "batcher[run 3f2a1b2c4d5e6f70]: warning: an unfinished run",
        "batcher[run 3f2a1b2c4d5e6f70]: error: stopped: token refused",
    ]


def test_json_summary_goes_to_stdout_and_nothing_else_does(lines: list[str]) -> None:
    """With JSON logs the summary event is the one object for `out`; the rest go to stderr."""
    out: list[str] = []
    logs.setup("json", lines.append, Scrubber(TOKEN), out=out.append)
    logs.emit(Event("run.started", "sending", {"run_id": "3f2a1b2c4d5e6f70"}))
    logs.emit(Event("run.finished", "done", {"exit_code": 0}, text=False))
    (summary,) = (json.loads(line) for line in out)
    assert summary["event"] == "run.finished"
    assert summary["run_id"] == "3f2a1b2c4d5e6f70"
    assert [json.loads(line)["event"] for line in lines] == ["run.started"]
