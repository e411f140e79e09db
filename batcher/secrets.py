"""Keeping the token out of everything batcher stores or prints, and server text harmless.

Two tools, used wherever text from outside (the API's answers, exception messages) is kept or
shown:

- `Scrubber(token).scrub(text)` replaces every piece of the token of `MIN_PIECE` or more
  characters, in any case, with `[token]`. A server or a proxy that echoes the bearer token back
  (whole, upper-cased, or cut) must not get it into a report, a state file, a log or a terminal.
- `sanitize(text)` replaces lone surrogates (they cannot be encoded to UTF-8: SQLite and every
  file writer would fail on them) and control characters (a terminal runs escape sequences; a
  report cell with a line feed breaks naive readers) with U+FFFD.
"""

from __future__ import annotations

import re

__all__ = ["MIN_PIECE", "REDACTED", "Scrubber", "sanitize"]

# A piece of the token this long is as good as the token to anyone guessing the rest: eight
# characters of a random token carry about 48 bits. Shorter pieces match ordinary words.
MIN_PIECE = 8
REDACTED = "[token]"

# Unicode's controls (category Cc: C0, DEL, C1) and surrogates (Cs), mapped to U+FFFD.
_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0xD800, 0xDFFF))
_HARMFUL = {code: "\ufffd" for low, high in _RANGES for code in range(low, high + 1)}
_HARMFUL_RE = re.compile(
    "[" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in _RANGES) + "]"
)


def sanitize(text: str) -> str:
    """`text` with control characters and lone surrogates replaced by U+FFFD."""
    if _HARMFUL_RE.search(text) is None:  # the common case: nothing to copy
        return text
    return text.translate(_HARMFUL)


class Scrubber:
    """Removes the token, or any piece of it of MIN_PIECE+ characters, from text (any case)."""

    def __init__(self, token: str | None) -> None:
        folded = (token or "").casefold()
        self._token = folded
        # Every MIN_PIECE-long piece: a text holds a piece of the token iff it holds one of these.
        self._pieces = (
            {folded[i : i + MIN_PIECE] for i in range(len(folded) - MIN_PIECE + 1)}
            if len(folded) >= MIN_PIECE
            else ({folded} if folded else set())
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{len(self._token)} characters>)"

    def found_in(self, text: str) -> bool:
        """Whether `text` holds the token or a piece of it (a fast test for the common case)."""
        if not self._pieces:
            return False
        folded = text.casefold()
        return any(piece in folded for piece in self._pieces)

    def scrub(self, text: str) -> str:
        """`text` with every run of characters that is a piece of the token replaced."""
        if not self.found_in(text):
            return text
        folded = text.casefold()
        if len(folded) != len(text):  # casefold changed lengths (ß -> ss): mask conservatively
            return self._scrub_aligned(text, [c.casefold() for c in text])
        return self._scrub_aligned(text, list(folded))

    def _scrub_aligned(self, text: str, folded: list[str]) -> str:
        """Mark every position covered by a MIN_PIECE window that is a piece, then replace runs.

        `folded[i]` is the case-folded form of `text[i]` (one or more characters).
        """
        size = min(MIN_PIECE, len(self._token))
        covered = [False] * len(text)
        for start in range(len(text)):
            window = ""
            end = start
            while end < len(text) and len(window) < size:
                window += folded[end]
                end += 1
            if len(window) >= size and window[:size] in self._pieces:
                for i in range(start, end):
                    covered[i] = True
        out: list[str] = []
        i = 0
        while i < len(text):
            if covered[i]:
                out.append(REDACTED)
                while i < len(text) and covered[i]:
                    i += 1
            else:
                out.append(text[i])
                i += 1
        return "".join(out)
