"""The repository's copy of the API reference is the shared original, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

COPY = Path(__file__).resolve().parent / "reference"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.mark.parametrize("name", sorted(p.name for p in COPY.iterdir()))
def test_the_copy_matches_the_shared_reference(name: str) -> None:
    original = SHARED / name
    if not original.is_file():
        pytest.skip(f"no shared reference beside this checkout ({SHARED})")
    assert (COPY / name).read_bytes() == original.read_bytes()
