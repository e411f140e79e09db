"""Fixtures shared by every test module: the OpenAPI excerpt's schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

# The reference lives in ../shared beside the repository (as on every machine and in CI).
OPENAPI = Path(__file__).resolve().parents[2] / "shared" / "reference" / "bulk-tags.openapi.json"


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
    if not OPENAPI.is_file():
        pytest.skip(f"the API reference is not at {OPENAPI}")
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


@pytest.fixture(scope="session")
def update_tags_schema(openapi_schemas: dict[str, Any]) -> Draft7Validator:
    """The request body schema, UpdateTagsDTO, as a validator."""
    return Draft7Validator(inline_refs(openapi_schemas["UpdateTagsDTO"], openapi_schemas))
