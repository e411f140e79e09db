"""batcher is a typed package (PEP 561): a downstream script type-checks against it with
`mypy --strict`, as a project that installed it would."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import batcher

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(batcher.__file__).parent
EXAMPLE = ROOT / "tests" / "downstream" / "example.py"


def test_the_package_ships_its_py_typed_marker() -> None:
    """`py.typed` is in the package and in its package data (so wheels carry it)."""
    assert (PACKAGE / "py.typed").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["batcher"]


def test_a_downstream_script_passes_mypy_strict(tmp_path: Path) -> None:
    """mypy --strict accepts tests/downstream/example.py, which uses the public API, with
    batcher found as an installed package (a site directory, not the sources), which mypy
    reads only because of its py.typed marker (without it: "missing library stubs or
    py.typed marker")."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "batcher").symlink_to(PACKAGE)
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("MYPYPATH", None)
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(
        [*command, str(EXAMPLE)],
        cwd=tmp_path,  # not the repository: batcher must come from the site directory
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found in 1 source file" in done.stdout
