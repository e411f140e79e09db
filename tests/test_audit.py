"""CI's audit (.ci/audit.py) can fail: a known-vulnerable pin turns it red."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def load_audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


audit = load_audit()

# PyPI as this machine's route serves it (recorded 2026): the project JSON, whose
# `vulnerabilities` concern the newest release (none), and 404 for each release's own JSON.
PYPI_HERE: dict[str, dict[str, Any] | None] = {
    "aiohttp/json": {"info": {"version": "3.14.5"}, "vulnerabilities": []},
    "orjson/json": {"info": {"version": "3.13.0"}, "vulnerabilities": []},
}


def fetch_from(documents: dict[str, dict[str, Any] | None]) -> Any:
    def fetch(path: str) -> dict[str, Any] | None:
        return documents.get(path)

    return fetch


def test_a_pin_below_the_aiohttp_floor_fails_the_audit() -> None:
    """aiohttp 3.14.3 is reported with both advisories its floor answers, and CI exits 1."""
    lines: list[str] = []
    status = audit.run(
        [("aiohttp", "3.14.3"), ("orjson", "3.13.0")],
        fetch_from(PYPI_HERE),
        audit.known_advisories(),
        lines.append,
    )
    assert status == 1
    assert "VULNERABLE: aiohttp 3.14.3: PYSEC-2026-4369 (fixed in: 3.14.4)" in lines
    assert "VULNERABLE: aiohttp 3.14.3: PYSEC-2026-4371 (fixed in: 3.14.4)" in lines
    assert "not audited: aiohttp 3.14.3 (newest is 3.14.5)" in lines
    assert not any("orjson" in line and "VULNERABLE" in line for line in lines)


def test_the_newest_releases_pass() -> None:
    """What a fresh virtual environment installs today passes (CI stays green)."""
    lines: list[str] = []
    status = audit.run(
        [("aiohttp", "3.14.5"), ("orjson", "3.13.0")],
        fetch_from(PYPI_HERE),
        audit.known_advisories(),
        lines.append,
    )
    assert status == 0, lines
    assert lines == [
        "audited against PyPI's advisories and advisories.json; 0 known vulnerabilities"
    ]


@pytest.mark.parametrize(
    "documents",
    [
        # Where PyPI serves a release's own JSON, its advisories are that version's.
        {"somelib/1.0/json": {"vulnerabilities": [{"id": "GHSA-x", "fixed_in": ["1.1"]}]}},
        # Else the project's, for its newest release.
        {"somelib/json": {"info": {"version": "1.0"}, "vulnerabilities": [{"id": "GHSA-x"}]}},
    ],
    ids=["release-json", "project-json"],
)
def test_an_advisory_published_on_pypi_fails_the_audit(documents: dict[str, Any]) -> None:
    """PyPI's own advisories fail the audit, whichever of its documents carries them."""
    lines: list[str] = []
    assert audit.run([("somelib", "1.0")], fetch_from(documents), [], lines.append) == 1
    assert any(line.startswith("VULNERABLE: somelib 1.0: GHSA-x") for line in lines)


def test_a_withdrawn_advisory_is_ignored() -> None:
    """An advisory PyPI marks withdrawn does not fail the audit."""
    documents = {"somelib/1.0/json": {"vulnerabilities": [{"id": "X", "withdrawn": "2026"}]}}
    assert audit.run([("somelib", "1.0")], fetch_from(documents), [], lambda _: None) == 0


def test_every_floor_is_past_the_advisories_it_answers() -> None:
    """pyproject.toml's lower bounds admit no version an advisory of .ci/advisories.json names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    floors = {}
    for text in project["project"]["dependencies"]:
        requirement = Requirement(text)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                floors[requirement.name] = Version(spec.version)
    for advisory in audit.known_advisories():
        assert floors[advisory["package"]] >= Version(advisory["fixed_in"]), advisory
