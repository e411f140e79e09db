"""Fixtures shared by every test module: the OpenAPI excerpt's schemas, aioresponses."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from jsonschema import Draft7Validator
from yarl import URL

# A verbatim copy of shared/reference/ (the OpenAPI excerpt is CC0), so that a clone tests alone;
# test_reference.py checks it still matches the shared original wherever that is beside the repo.
REFERENCE = Path(__file__).resolve().parent / "reference"
OPENAPI = REFERENCE / "bulk-tags.openapi.json"


def inline_refs(node: Any, schemas: dict[str, Any]) -> Any:
    """The schema with every `#/components/schemas/X` reference replaced by X itself."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return inline_refs(schemas[ref.rsplit("/", 1)[-1]], schemas)
        return {key: inline_refs(value, schemas) for key, value in node.items()}
    if isinstance(node, list):
        return [inline_refs(item, schemas) for item in node]
    return node


@pytest.fixture(scope="session")
def openapi_schemas() -> dict[str, Any]:
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


@pytest.fixture(scope="session")
def update_tags_schema(openapi_schemas: dict[str, Any]) -> Draft7Validator:
    """The request body schema, UpdateTagsDTO, as a validator."""
    return Draft7Validator(inline_refs(openapi_schemas["UpdateTagsDTO"], openapi_schemas))


class CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 does not pass the `stream_writer` that aiohttp 3.14 requires
    (pnuckowski/aioresponses#289, open); a response that was never streamed needs only its
    `output_size`."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        monkeypatch.setattr("aioresponses.core.ClientResponse", CompatResponse)
    with aioresponses() as mock:
        yield mock
