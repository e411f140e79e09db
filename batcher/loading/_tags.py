"""A tags cell (or `--tags`) as people write it: the tags it holds, or why it cannot be read.

Plain text is split on commas: `vip, newsletter`. Text that looks like a list is read as the
list it clearly is, or refused, so that no tag ever carries list punctuation by accident:
- `[...]`: a JSON array of strings (a batcher report fed back as input: `["a,b","c"]`), else a
  Python list of strings, as `DataFrame.to_csv` writes a list: `['legacy-gold', 'legacy-2019']`.
  The Python form is read from its syntax tree, a list or tuple of string constants and nothing
  else; nothing is ever evaluated. Anything else in brackets (`[vip, gold]`) is refused.
- text starting with a double quote: a sequence of double-quoted items, as Mailchimp-style
  exports write them (`"vip","newsletter"`), else refused.
- text starting and ending with a single quote: Python strings (`'vip', 'gold'`), else refused.
- `(...)` that is a Python tuple of strings: its items (other text in parentheses is plain text).
- plain text whose pieces open a bracket they do not close (`[vip, gold`) is refused too.
Tags are then trimmed, empty ones dropped and repeats dropped (compared ignoring case: HighLevel
stores tags lower-cased; the first spelling and the order of first occurrences are kept).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable

from batcher.loading._common import STRIP, shown

__all__ = ["parse_tags", "read_tags", "unique_tags"]

# A Python list literal longer than this is not parsed (a tags cell is a few hundred
# characters; the parser's memory grows with the text).
_MAX_LITERAL = 100_000
# Characters that make a cell worth a closer look; most cells hold none of them.
_LISTY = frozenset("[]\"'(")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def read_tags(text: str) -> tuple[tuple[str, ...], str]:
    """(the tags of `text`, "") or ((), why the text cannot be read as tags).

    `why` names the text and says how to write it; it never contains "; " (the separator of a
    row's problems).
    """
    # Runs once per distinct tags cell: the common clean case (no list punctuation, no empty,
    # no repeat) costs one split, one strip per tag and one set.
    if _LISTY.isdisjoint(text):
        return _split(text), ""
    trimmed = text.strip(STRIP)
    items: list[str] | None
    if trimmed.startswith("[") and trimmed.endswith("]"):
        items = _json_strings(trimmed)
        if items is None:
            items = _python_strings(trimmed)
        if items is None:
            return (), (
                f'"{shown(trimmed)}" look like a list but are not one (a JSON list needs each tag '
                "in double quotes): write the tags comma-separated, or as a JSON list"
            )
        return unique_tags(items), ""
    if trimmed.startswith('"'):
        items = _json_strings(f"[{trimmed}]")
        if items is None:
            return (), (
                f"{shown(trimmed)} look like quoted tags but are not a list of them: put each tag "
                "in double quotes, separated by commas, or drop the quotes"
            )
        return unique_tags(items), ""
    if trimmed.startswith("'") and trimmed.endswith("'") and len(trimmed) > 1:
        items = _python_strings(trimmed)
        if items is None:
            return (), (
                f"{shown(trimmed)} look like quoted tags but are not a list of them: write them "
                "comma-separated without quotes, or as a JSON list"
            )
        return unique_tags(items), ""
    if trimmed.startswith("(") and trimmed.endswith(")"):
        items = _python_strings(trimmed)
        if items is not None:
            return unique_tags(items), ""
    tags = _split(text)
    for tag in tags:
        # A tag with a control character is invalid anyway, and says so (an ANSI colour code,
        # ESC [31m, is not a list).
        if ("[" in tag) != ("]" in tag) and _CONTROL.search(tag) is None:
            return (), (
                f'"{shown(trimmed)}" look like a broken list (a bracket is not closed): write the '
                "tags comma-separated, or as a JSON list"
            )
    return tags, ""


def parse_tags(text: str) -> tuple[str, ...]:
    """The tags of `text` (see `read_tags`); a ValueError saying why when it cannot be read."""
    tags, problem = read_tags(text)
    if problem:
        raise ValueError(problem)
    return tags


def _split(text: str) -> tuple[str, ...]:
    parts = [part.strip(STRIP) for part in text.split(",")]
    if len(parts) == 1:
        return (parts[0],) if parts[0] else ()
    if all(parts) and len({part.lower() for part in parts}) == len(parts):
        return tuple(parts)
    return unique_tags(parts)


def _json_strings(text: str) -> list[str] | None:
    """The items of a JSON array of strings, or None when the text is not one."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _python_strings(text: str) -> list[str] | None:
    """The strings of a Python list, tuple or string literal, read from its syntax tree (never
    evaluated); None when the text is anything else."""
    if len(text) > _MAX_LITERAL:
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    body = tree.body
    if isinstance(body, ast.Constant):
        return [body.value] if isinstance(body.value, str) else None
    if not isinstance(body, ast.List | ast.Tuple):
        return None
    items = []
    for element in body.elts:
        if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
            return None
        items.append(element.value)
    return items


def unique_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags trimmed, empties and repeats (ignoring case) dropped, first spellings kept.

    Case is ignored as HighLevel ignores it: it stores tags lower-cased (API-NOTES.md, "Tags
    and what a change sets off"; JavaScript's toLowerCase, which `str.lower` matches), so `VIP`
    and `vip` are one tag, while `Straße` and `STRASSE` stay two (`casefold` would merge them).
    """
    seen: set[str] = set()
    out: list[str] = []
    for raw in tags:
        tag = raw.strip(STRIP)
        key = tag.lower()
        if tag and key not in seen:
            seen.add(key)
            out.append(tag)
    return tuple(out)
