"""The documented Python API the CLI and the page share, re-exported from `batcher`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import batcher
from batcher.app.jobs import build_job
from batcher.web.runs import Operation
from tests.web.helpers import SAMPLES, settings_for

ROOT = Path(__file__).resolve().parents[2]


def test_every_documented_name_is_there() -> None:
    for name in batcher.__all__:
        assert getattr(batcher, name) is not None, name
    assert batcher.execute.__module__ == "batcher.app.execute"
    assert batcher.build_job is build_job


def test_importing_batcher_stays_quick() -> None:
    """The API is imported on first use: `import batcher` loads neither pandas nor aiohttp."""
    code = "import sys, batcher; print(sorted({'pandas', 'aiohttp'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT)},
    ).stdout
    assert out.strip() == "[]"


def test_the_page_builds_the_same_job_as_the_command_line(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    source = SAMPLES / "contacts.csv"
    page = Operation(action="remove-all", tags="ignored", location_id=" loc ").job(
        settings, source, config_file=None, sandbox=True
    )
    cli = build_job(settings, source, remove_all_tags=True, location_id="loc", sandbox=True)
    assert page == cli
    page = Operation(action="add", tags="vip, newsletter").job(
        settings, source, config_file=None, sandbox=False
    )
    assert page == build_job(settings, source, action="add", tags="vip, newsletter")
