"""Text on its way to a terminal or a text log: nothing from a file goes out raw.

A cell, a file name or a location id can hold an escape sequence (ESC `[2J` clears a terminal,
ESC `]0;` retitles it), a line break that forges a log line, or a bidirectional control that
shows the rest of the line reversed (Trojan Source, CVE-2021-42574). `escaped` spells each of
them out (`\\x1b`, `\\n`, `\\u202e`), so that what is shown is what the file holds. Every text
line batcher writes for people goes through it (the CLI's output, the text log formatter);
`json_escaped` does the same for a JSON log line (JSON itself escapes only C0).
"""

from __future__ import annotations

import re

__all__ = ["UNSAFE", "escaped", "json_escaped"]

# C0 controls, DEL, C1 controls (U+009B is an 8-bit CSI), and the bidirectional controls:
# ALM, LRM, RLM, LRE..RLO (embeddings and overrides), LRI..PDI (isolates).
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# In a JSON text the C0 controls are already escaped by JSON, and must stay as JSON wrote them.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _spelled(found: re.Match[str]) -> str:
    char = found.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_spelled(found: re.Match[str]) -> str:
    return f"\\u{ord(found.group()):04x}"


def escaped(text: str) -> str:
    """`text` with every control and bidirectional character spelled out (`\\x1b`, `\\u202e`)."""
    if UNSAFE.search(text) is None:  # nearly always: no copy
        return text
    return UNSAFE.sub(_spelled, text)


def json_escaped(line: str) -> str:
    """A JSON text with DEL, C1 and bidirectional characters as `\\uXXXX` escapes: the same
    JSON values, nothing a terminal acts on."""
    if _UNSAFE_IN_JSON.search(line) is None:
        return line
    return _UNSAFE_IN_JSON.sub(_json_spelled, line)
