"""Every kind of answer the endpoint gives has the shape the published OpenAPI describes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from referencing import Registry, Resource

from batcher.sandbox import RateConfig, Sandbox

from .conftest import SandboxFactory
from .helpers import CONTACT, OTHER_CONTACT, body, post

OPENAPI = Path(__file__).resolve().parents[1] / "reference" / "bulk-tags.openapi.json"


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
    # The one correction: the published UpdateTagsResponseDTO types `responses.items` as string,
    # while its own example (and the seed page, and the service) return objects.
    corrected = copy.deepcopy(document)
    responses = corrected["components"]["schemas"]["UpdateTagsResponseDTO"]["properties"]
    responses["responses"]["items"] = {
        "type": "object",
        "required": ["contactId", "message", "type"],
        "properties": {
            "contactId": {"type": "string"},
            "message": {"type": "string"},
            "type": {"enum": ["success", "error"]},
            "oldTags": {"type": "array", "items": {"type": "string"}},
            "tagsAdded": {"type": "array", "items": {"type": "string"}},
            "tagsRemoved": {"type": "array", "items": {"type": "string"}},
        },
    }
    return corrected


def _validate(instance: Any, schema_name: str, *required: str) -> None:
    """Validate against a component schema; the error DTOs declare no `required`, so say which."""
    registry: Registry[Any] = Registry().with_resource("urn:openapi", Resource.opaque(_document()))
    schema = {
        "allOf": [
            {"$ref": f"urn:openapi#/components/schemas/{schema_name}"},
            {"required": list(required)},
        ]
    }
    jsonschema.Draft202012Validator(schema, registry=registry).validate(instance)


def test_the_published_response_schema_really_needs_the_correction() -> None:
    published = json.loads(OPENAPI.read_text(encoding="utf-8"))
    dto = published["components"]["schemas"]["UpdateTagsResponseDTO"]
    assert dto["properties"]["responses"]["items"] == {"type": "string"}
    example = {
        "succeded": False,
        "errorCount": 3,
        "responses": dto["properties"]["responses"]["example"],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, dto)
    _validate(example, "UpdateTagsResponseDTO")


async def test_201_matches_update_tags_response_dto(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    sandbox.universe.add_contact("otherLocation0000002", OTHER_CONTACT)
    sandbox.universe.add_contact("sandboxLocation00001", CONTACT, ["tag-1", "tag-2"])
    answer = await post(session, sandbox, body([CONTACT, "abcdef", OTHER_CONTACT]))
    assert answer.status == 201
    _validate(answer.body, "UpdateTagsResponseDTO")
    assert {entry["type"] for entry in answer.body["responses"]} == {"success", "error"}


async def test_400_matches_bad_request_dto(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    answer = await post(session, sandbox, body(), headers={"Version": "2020-01-01"})
    assert answer.status == 400
    _validate(answer.body, "BadRequestDTO", "statusCode", "message")


async def test_401_matches_unauthorized_dto(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    answer = await post(session, sandbox, body(), headers={"Authorization": "Bearer nope"})
    assert answer.status == 401
    _validate(answer.body, "UnauthorizedDTO", "statusCode", "message", "error")


async def test_403_is_bad_request_shaped(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    answer = await post(session, sandbox, body(locationId="otherLocation0000002"))
    assert answer.status == 403
    _validate(answer.body, "BadRequestDTO", "statusCode", "message")


async def test_422_matches_unprocessable_dto(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    answer = await post(session, sandbox, {"contacts": "x"})
    assert answer.status == 422
    _validate(answer.body, "UnprocessableDTO", "statusCode", "message", "error")


async def test_429_is_bad_request_shaped(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession
) -> None:
    async with make_sandbox(rate=RateConfig(max=1)) as sandbox:
        await post(session, sandbox, body())
        answer = await post(session, sandbox, body())
    assert answer.status == 429
    _validate(answer.body, "BadRequestDTO", "statusCode", "message")
