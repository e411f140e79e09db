"""A full disk under the state directory is named as such: one line, exit 3.

SQLite's `max_page_count` makes it answer SQLITE_FULL exactly as on a full device (a 1 MiB tmpfs
gives the same line, checked by hand as root), and a patched `fsync` stands for ENOSPC: no test
needs root or a real full disk.
"""

from __future__ import annotations

import csv
import errno
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batcher.cli import main
from batcher.state import Ledger
from batcher.state import db as db_module
from tests.e2e.conftest import contact_ids
from tests.e2e.helpers import untagged

FULL = "no space left on the device holding the state directory .batcher;"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with an input large enough to need some 300 pages of state."""
    monkeypatch.chdir(tmp_path)
    with (tmp_path / "in.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["contact_id", "email", "note"])
        for i, contact in enumerate(contact_ids(6000)):
            writer.writerow([contact, f"person{i}@example.com", "n" * 60])
    return tmp_path


def run(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(
        main, [*args, "in.csv", "--action", "add", "--tags", "vip", "--sandbox"]
    )
    assert "Traceback" not in result.output
    return result.exit_code, [
        line
        for line in untagged(result.output).splitlines()
        if line.startswith(("batcher: error", "batcher: stopped"))
    ]


def cap_pages(monkeypatch: pytest.MonkeyPatch, pages: int) -> None:
    """Every state file SQLite opens holds at most `pages` pages."""
    connect = db_module.connect

    def capped(path: Path, *, create: bool, throwaway: bool = False) -> sqlite3.Connection:
        db = connect(path, create=create, throwaway=throwaway)
        db.execute(f"PRAGMA max_page_count = {pages}")
        return db

    monkeypatch.setattr("batcher.state.ledger.connect", capped)


def test_a_full_disk_while_loading_is_named_not_a_failed_rollback(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLITE_FULL in the load (SQLite rolls back itself, so a ROLLBACK then finds no
    transaction) gives the full-disk line, not "cannot rollback - no transaction is active"."""
    cap_pages(monkeypatch, 100)
    code, lines = run("run")
    assert code == 3
    assert len(lines) == 1
    assert lines[0].startswith(f"batcher: error: {FULL}")
    assert "run the same command again" in lines[0]
    assert "rollback" not in lines[0]


def test_a_full_temporary_folder_while_planning_is_named(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan's scratch state lives in a temporary folder: the line names that one."""
    cap_pages(monkeypatch, 100)
    code, lines = run("plan")
    assert code == 3
    assert len(lines) == 1
    assert "no space left on the device holding the temporary folder" in lines[0]
    assert "TMPDIR" in lines[0]


def test_a_full_disk_while_recording_answers_stops_the_run_naming_it(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once loaded, the state file may not grow: the first answer cannot be recorded."""
    load = Ledger.load

    def then_full(self: Ledger, columns: Any, chunks: Iterable[Any], **kwargs: Any) -> int:
        count = load(self, columns, chunks, **kwargs)
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages}")
        return count

    monkeypatch.setattr(Ledger, "load", then_full)
    code, lines = run("run")
    assert code == 3
    assert lines == [f"batcher: error: stopped: {FULL}" + lines[0].split(FULL, 1)[1]]
    assert (work / "in-report.csv").is_file()  # the rest is pending, the report written


def test_enospc_when_syncing_the_load_is_named(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError ENOSPC from the state file's sync gives the same line."""

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(db_module.os, "fsync", no_space)
    code, lines = run("run")
    assert code == 3
    assert len(lines) == 1
    assert lines[0].startswith(f"batcher: error: {FULL}")
