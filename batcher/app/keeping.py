"""The last good report is never lost: a run that writes a partial report (rows pending: a
stop, a refused token, a cron `timeout`) over the complete report of another run keeps that
report beside it, as `<name>.<its run id>.<suffix>` (and its summary), and says so.

Before the report is rendered, the file at its path (and its summary) is hard-linked to a
hidden name beside it: no copy, no read (a report may be hundreds of megabytes; a copy only
where links are not possible). Once the new report is written: if it is complete, the links go
(a complete report replacing a complete one is an ordinary undated rerun: the README's crontab
line dates its reports instead), with nothing hashed; if it is partial, the kept bytes are
looked up among the reports the state directory's runs recorded as complete (each run records
the SHA-256 of every report it writes, `batcher.state.ReportRecord`): another run's complete
report is renamed to its kept name, anything else goes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batcher.reports.formats import summary_path
from batcher.state import RunInfo, moved_report, runs_in

__all__ = ["Earlier", "hold_earlier"]


@dataclass(frozen=True)
class Earlier:
    """The file that was at the report's path (and its summary), held under hidden names
    while the new report is written."""

    original: Path
    held: Path
    held_summary: Path | None

    def release(self) -> None:
        """Let the held files go (the file at the path was not replaced, or need not be kept)."""
        for held in (self.held, self.held_summary):
            if held is not None:
                with contextlib.suppress(OSError):
                    held.unlink()

    def settle(
        self, state_dir: Path, run_id: str, *, partial: bool, warn: Callable[[str], None]
    ) -> Path | None:
        """Keep the earlier file as `<name>.<its run id>.<suffix>` when the new report is
        partial and the earlier one is another run's complete report (and say so); else let
        it go. Returns where it is kept, if it is."""
        owner = _owner(runs_in(state_dir), _sha256(self.held), run_id) if partial else None
        if owner is None:
            self.release()
            return None
        name = owner.undo_key
        kept = self.original.with_name(f"{self.original.stem}.{name}{self.original.suffix}")
        self.held.replace(kept)
        if self.held_summary is not None:
            self.held_summary.replace(summary_path(kept))
        moved_report(owner, self.original, kept)
        warn(
            f"{self.original} held the complete report of run {name}; this run's report is "
            f"partial (rows pending), so that report is kept as {kept} (undo takes it as it is)"
        )
        return kept


def hold_earlier(report_path: Path) -> Earlier | None:
    """Hold the file at `report_path` (and its summary) under hidden names beside it, before a
    new report replaces it; None when there is none."""
    held = _hold(report_path)
    if held is None:
        return None
    return Earlier(report_path, held, _hold(summary_path(report_path)))


def _hold(path: Path) -> Path | None:
    """`path`'s bytes under a hidden name beside it: a hard link, else a copy."""
    if not path.is_file():
        return None
    held = path.with_name(f".{path.name}.earlier")
    with contextlib.suppress(FileNotFoundError):
        held.unlink()
    try:
        os.link(path, held)
    except OSError:
        try:
            shutil.copy2(path, held)
        except OSError:
            return None
    return held


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _owner(runs: list[RunInfo], digest: str, run_id: str) -> RunInfo | None:
    """The other run whose complete report has these bytes."""
    for info in reversed(runs):  # newest first
        if info.run_id == run_id:
            continue
        if any(kept.complete and kept.sha256 == digest for kept in info.reports):
            return info
    return None
