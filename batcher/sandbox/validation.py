"""Request checks, worded like the NestJS service behind the API.

The service validates `UpdateTagsDTO` with class-validator under `whitelist` and
`forbidNonWhitelisted`, which collects every failed constraint (one message each, unknown
properties first) into a 422 (API-NOTES.md, "Response"). The messages are class-validator's default
wordings. Two choices of ours, documented here:

- an unknown `{type}` is a 422 like any other failed constraint (the OpenAPI declares it an enum
  `[add, remove]`), with class-validator's `IsEnum` wording;
- a body that is not JSON, or JSON but not an object, is a 422 ("body must be a JSON object").
"""

from __future__ import annotations

from typing import Literal

from batcher.sandbox.universe import TagUpdate

# `Version: 2021-07-28` for v2, `Version: v3` for v3 (API-NOTES.md, "Request").
VERSIONS = ("2021-07-28", "v3")
TYPES: tuple[Literal["add", "remove"], ...] = ("add", "remove")

# The OpenAPI's maxItems for UpdateTagsDTO (bulk-tags.openapi.json).
MAX_CONTACTS = 500
MAX_TAGS = 50

_FIELDS = ("contacts", "tags", "locationId", "removeAllTags")


def version_problem(version: str | None) -> str | None:
    """The 400 message for a missing or unknown Version header, or None."""
    if version is None:
        return "Version header was not found"
    if version not in VERSIONS:
        return f"Version header must be one of: {', '.join(VERSIONS)}"
    return None


def parse_update(type_: str, body: object) -> TagUpdate | list[str]:
    """The validated request, or the 422's list of messages."""
    if type_ not in TYPES:
        return [f"type must be one of the following values: {', '.join(TYPES)}"]
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    problems = [f"property {key} should not exist" for key in body if key not in _FIELDS]
    contacts = body.get("contacts")
    tags = body.get("tags")
    location_id = body.get("locationId")
    remove_all = body.get("removeAllTags")  # @IsOptional: null is the same as absent
    problems += _string_array_problems("contacts", contacts, MAX_CONTACTS)
    problems += _string_array_problems("tags", tags, MAX_TAGS)
    if not isinstance(location_id, str):
        problems.append("locationId must be a string")
    if remove_all is not None and not isinstance(remove_all, bool):
        problems.append("removeAllTags must be a boolean value")
    if remove_all is True and type_ == "add":
        problems.append("removeAllTags can only be used with remove type")
    if problems:
        return problems
    assert isinstance(contacts, list)
    assert isinstance(tags, list)
    assert isinstance(location_id, str)
    operation = TYPES[TYPES.index(type_)]  # the Literal, for the type checker
    return TagUpdate(operation, location_id, contacts, tags, remove_all is True)


def _string_array_problems(name: str, value: object, max_items: int) -> list[str]:
    if not isinstance(value, list):
        return [f"{name} must be an array"]
    problems = []
    if not all(isinstance(item, str) for item in value):
        problems.append(f"each value in {name} must be a string")
    if len(value) > max_items:
        problems.append(f"{name} must contain no more than {max_items} elements")
    return problems
