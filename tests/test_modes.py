"""The report, its summary.json and a rejects file follow one rule: owner-only in an owner-only
folder (the state directory's), the umask elsewhere."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.cli import main
from tests.e2e.conftest import contact_ids, write_csv


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The common umask, under which a file follows 0644 unless batcher says otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("folder_mode", "expected"), [(0o755, 0o644), (0o700, 0o600)])
def test_report_summary_and_rejects_get_the_same_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder_mode: int, expected: int
) -> None:
    """In a 755 folder the three follow the umask (644); in a 700 folder they are 600."""
    monkeypatch.chdir(tmp_path)
    ids = contact_ids(5)
    write_csv(tmp_path / "in.csv", [*ids, "not-an-id"])
    out = tmp_path / "out"
    out.mkdir(mode=folder_mode)
    out.chmod(folder_mode)
    cli = CliRunner()
    common = ["in.csv", "--action", "add", "--tags", "vip", "--sandbox", "-q"]
    result = cli.invoke(main, ["run", *common, "--report", str(out / "report.csv")])
    assert result.exit_code == 0, result.output
    result = cli.invoke(main, ["plan", *common, "--rejects", str(out / "rejects.csv")])
    assert result.exit_code == 0, result.output
    written = sorted(out.iterdir())
    assert [p.name for p in written] == ["rejects.csv", "report.csv", "report.summary.json"]
    assert {p.name: mode(p) for p in written} == {p.name: expected for p in written}
