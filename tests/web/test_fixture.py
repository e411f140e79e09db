"""The page's sandbox uses the fixture the CLI's does: the same counts for the same file."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.app.emulator import serve_fixture
from batcher.cli import main
from batcher.domain.errors import UsageError
from batcher.web import WebOptions
from tests.web.helpers import SAMPLES, page_for, settings_for

FIXTURE = SAMPLES / "sandbox-fixture.json"


def test_serve_finds_the_fixture_as_the_faces_agree(tmp_path: Path) -> None:
    """--fixture wins (and must exist); else sandbox-fixture.json in the working folder, else
    in its samples/ (serving from the repository); else none; a config's [sandbox] fixture
    is left to the sandbox's config (None here)."""
    given = tmp_path / "mine.json"
    given.write_text("{}", encoding="utf-8")
    assert serve_fixture(None, given, tmp_path) == given
    with pytest.raises(UsageError, match="no such file"):
        serve_fixture(None, tmp_path / "missing.json", tmp_path)
    assert serve_fixture(None, None, tmp_path) is None
    (tmp_path / "samples").mkdir()
    shutil.copyfile(FIXTURE, tmp_path / "samples" / "sandbox-fixture.json")
    assert serve_fixture(None, None, tmp_path) == tmp_path / "samples" / "sandbox-fixture.json"
    shutil.copyfile(FIXTURE, tmp_path / "sandbox-fixture.json")
    assert serve_fixture(None, None, tmp_path) == tmp_path / "sandbox-fixture.json"
    config = tmp_path / "batcher.toml"
    config.write_text(f'[sandbox]\nfixture = "{given}"\n', encoding="utf-8")
    config.chmod(0o600)
    assert serve_fixture(config, None, tmp_path) is None


def test_the_page_and_the_cli_count_the_samples_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """samples/contacts.csv, add vip, on the sandbox: the CLI (fixture beside the input) and
    the page (the samples' fixture found by serve) both end with 2,983 successes and 10
    errors."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(SAMPLES / "contacts.csv"),
            "--sandbox",
            "--action",
            "add",
            "--tags",
            "vip",
            "--yes",
            "--report",
            str(tmp_path / "cli-report.csv"),
        ],
        env={"BATCHER_STATE_DIR": str(tmp_path / "cli-state")},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "cli-report.summary.json").read_text(encoding="utf-8"))
    cli_counts = {k: v for k, v in summary["counts"].items() if v}
    assert cli_counts["success"] == 2983
    assert cli_counts["error"] == 10

    assert {k: v for k, v in asyncio.run(_page_counts(tmp_path)).items() if v} == cli_counts


async def _page_counts(tmp_path: Path) -> dict[str, int]:
    """The counts of the same run on the page, serving from the repository's folder."""
    options = WebOptions(sandbox=True, fixture=serve_fixture(None, None, SAMPLES.parent))
    async with page_for(settings_for(tmp_path / ".batcher"), options) as page:
        _, text = await page.get("/")
        assert "sandbox-fixture.json" in text  # the page says which fixture it uses
        data = (SAMPLES / "contacts.csv").read_bytes()
        _, _, upload_id = await page.upload("contacts.csv", data)
        await page.post("/run", {"upload": upload_id, "action": "add", "tags": "vip"})
        snap = await page.wait_for_run()
    counts: dict[str, int] = snap["counts"]
    return counts


def test_serve_refuses_a_fixture_it_cannot_use(tmp_path: Path) -> None:
    """--fixture without --sandbox, or naming no file: one line, exit 2, nothing served."""
    runner = CliRunner()
    alone = runner.invoke(main, ["serve", "--fixture", str(FIXTURE), "--port", "0"])
    assert alone.exit_code == 2
    assert "--fixture goes with --sandbox" in alone.output
    missing = runner.invoke(
        main, ["serve", "--sandbox", "--fixture", str(tmp_path / "none.json"), "--port", "0"]
    )
    assert missing.exit_code == 2
    assert missing.output.strip().count("\n") == 0
    assert "no such file" in missing.output
