"""Nothing from a file reaches a terminal or a text log raw (batcher.support.printable,
batcher.support.logs)."""

from __future__ import annotations

import json
import logging

import pytest

from batcher.support.logs import JsonFormatter, TextFormatter
from batcher.support.printable import escaped, json_escaped
from batcher.support.secrets import Scrubber


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, café, клиент", "plain text, café, клиент"),
        ("\x1b]0;pwned\x07\x1b[2J", "\\x1b]0;pwned\\x07\\x1b[2J"),
        ("a\nbatcher: run finished", "a\\nbatcher: run finished"),
        ("tab\there\r", "tab\\there\\r"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
        (
            "abc\u202edcba\u2066x\u2069\u200e\u200f\u061c",
            "abc\\u202edcba\\u2066x\\u2069\\u200e\\u200f\\u061c",
        ),
    ],
)
def test_controls_and_bidi_characters_are_spelled_out(text: str, shown: str) -> None:
    """C0, DEL, C1 and the bidirectional controls are escaped; other text is left as it is."""
    assert escaped(text) == shown


def test_json_escaping_keeps_the_values_and_hides_c1_and_bidi_characters() -> None:
    """A JSON line keeps its values exactly, with no C1 or bidi character left raw."""
    value = {"location": "a\u202eb\x9b[2Jc\x1b"}
    line = json_escaped(json.dumps(value, ensure_ascii=False))
    assert json.loads(line) == value
    assert all(ch not in line for ch in "\u202e\x9b\x1b")


def record(message: str, **fields: object) -> logging.LogRecord:
    made = logging.LogRecord("batcher", logging.INFO, __file__, 1, "%s", (message,), None)
    made.event = "notice"
    made.fields = fields
    return made


def test_a_newline_in_a_value_cannot_forge_a_line_of_the_text_log() -> None:
    """The text log writes one line per event, whatever the event's text holds."""
    line = TextFormatter(Scrubber(None)).format(
        record("location loc\nbatcher: run finished, nothing to see \x1b[2J")
    )
    assert "\n" not in line
    assert "\x1b" not in line
    assert line == "batcher: location loc\\nbatcher: run finished, nothing to see \\x1b[2J"


def test_the_json_log_escapes_bidi_characters_of_fields() -> None:
    """A field holding a bidi override is written as a JSON escape, the same value."""
    line = JsonFormatter(Scrubber(None)).format(record("m", location="x\u202ey"))
    assert "\u202e" not in line
    assert json.loads(line)["location"] == "x\u202ey"
