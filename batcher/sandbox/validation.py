"""Request checks, worded like the NestJS service behind the API.

The service validates `UpdateTagsDTO` with class-validator under `whitelist` and
`forbidNonWhitelisted`, which collects every failed constraint (one message each, unknown
properties first) into a 422 (API-NOTES.md, "Response"). The messages are class-validator's default
wordings. Two choices of ours, documented here:

- an unknown `{type}` is a 422 like any other failed constraint (the OpenAPI declares it an enum
  `[add, remove]`), with class-validator's `IsEnum` wording;
- a body that is not JSON, or JSON but not an object, is a 422 ("body must be a JSON object");
- a body sent with a `Content-Type` other than `application/json` is not read at all: Express's
  JSON parser, which NestJS puts in front of every route, only parses that type and leaves the
  body empty (`{}`) otherwise, so the answer is the 422 of an empty body (every required
  property missing), not a 415, which NestJS never sends on its own;
- an empty tag (`""`, or blanks only: the service trims and lower-cases tags before storing
  them) is a 422 ("each value in tags should not be empty", class-validator's `IsNotEmpty`
  with `each`); `removeAllTags` with `tags: []` has none, and is fine.

The `Version` header is checked against the endpoint's own list (bulk-tags.openapi.json says
`2021-07-28`; the v3 file `v3`): HighLevel's versioning page also lists `2021-04-15` and
`2023-02-21`, which this endpoint's spec does not, so the sandbox refuses them (400).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

from batcher.sandbox.universe import TagUpdate

# `Version: 2021-07-28` for v2, `Version: v3` for v3 (API-NOTES.md, "Request").
VERSIONS = ("2021-07-28", "v3")
# `POST /oauth/locationToken` lists only 2021-07-28 (oauth.openapi.json).
OAUTH_VERSIONS = ("2021-07-28",)
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
TYPES: tuple[Literal["add", "remove"], ...] = ("add", "remove")

# The OpenAPI's maxItems for UpdateTagsDTO (bulk-tags.openapi.json).
MAX_CONTACTS = 500
MAX_TAGS = 50

_FIELDS = ("contacts", "tags", "locationId", "removeAllTags")


def version_problem(version: str | None, versions: tuple[str, ...] = VERSIONS) -> str | None:
    """The 400 message for a missing Version header or one not in `versions`, or None."""
    if version is None:
        return "Version header was not found"
    if version not in versions:
        return f"Version header must be one of: {', '.join(versions)}"
    return None


def read_body(content_type: str, raw: bytes) -> object:
    """The body as the service's JSON parser leaves it: parsed for `application/json`, an empty
    object for any other type (not parsed at all), None for JSON that cannot be read."""
    if content_type != JSON:
        return {}
    try:
        return json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return None


def exchange_problems(fields: Mapping[str, str]) -> list[str]:
    """The 422's messages for a `/oauth/locationToken` form (GetLocationAccessCodeBodyDto)."""
    return [
        f"{name} must be a string" for name in ("companyId", "locationId") if name not in fields
    ]


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
    if isinstance(tags, list) and any(isinstance(t, str) and not t.strip() for t in tags):
        problems.append("each value in tags should not be empty")
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
