"""The layers' import contracts (pyproject.toml, checked by `lint-imports` in .ci/run) cover the
whole package: every module sits in a layer, and `domain` is kept from every dependency."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import batcher

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(batcher.__file__).parent
# Modules of the package's root: the public API, `python -m batcher`, the console script.
ROOT_MODULES = {"__init__", "__main__", "launch"}


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _contracts() -> dict[str, dict[str, object]]:
    tool = _project()["tool"]
    assert isinstance(tool, dict)
    return {contract["id"]: contract for contract in tool["importlinter"]["contracts"]}


def test_every_module_is_in_a_layer_or_the_sandbox() -> None:
    """No module sits beside the layers: each package of batcher is a layer of the layers
    contract (or the sandbox, which has contracts of its own), and the root holds only the
    public API and the entry points."""
    layers = _contracts()["layers"]["layers"]
    assert isinstance(layers, list)
    named = {part.strip() for layer in layers for part in layer.split("|")}
    packages = {f"batcher.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    assert packages - named == {"batcher.sandbox"}
    assert {p.stem for p in PACKAGE.glob("*.py")} == ROOT_MODULES


def test_domain_is_kept_from_every_dependency() -> None:
    """Each third-party package the project depends on is forbidden to `domain` (a dependency
    added to pyproject.toml must be added to the contract too)."""
    project = _project()["project"]
    assert isinstance(project, dict)
    names = {
        re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower().replace("-", "_")
        for requirement in project["dependencies"]
    }
    forbidden = _contracts()["domain"]["forbidden_modules"]
    assert isinstance(forbidden, list)
    assert names <= set(forbidden)
