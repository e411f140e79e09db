"""The last good report is never lost: a run that writes a partial report (rows pending: a
stop, a refused token, a cron `timeout`) over the complete report of another run keeps that
report beside it, as `<name>.<its run id>.<suffix>` (and its summary), and says so.

The earlier report is recognised by its bytes: each run records the SHA-256 of every report it
writes (`batcher.state.ReportRecord`), so a file at the path is another run's complete report
when its digest is one that run recorded as complete. Before the report is rendered, the file is
hard-linked to its kept name (no copy: a report may be hundreds of megabytes; a copy only where
links are not possible); once the new report is written, the link stays if the new report is
partial and goes if it is complete (a complete report replacing a complete one is an ordinary
undated rerun: the README's crontab line dates its reports instead).
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
from batcher.state import RunInfo, runs_in

__all__ = ["Kept", "keep_earlier"]


@dataclass(frozen=True)
class Kept:
    """An earlier run's complete report, linked to a name of its own before it is replaced."""

    original: Path
    aside: Path
    run_id: str
    links: tuple[Path, ...]

    def settle(self, *, partial: bool, warn: Callable[[str], None]) -> None:
        """Keep the links when the new report is partial (and say so), else drop them."""
        if partial:
            warn(
                f"{self.original} held the complete report of run {self.run_id}; this run's "
                f"report is partial (rows pending), so that report is kept as {self.aside} "
                "(undo takes it as it is)"
            )
            return
        for link in self.links:
            with contextlib.suppress(OSError):
                link.unlink()


def keep_earlier(state_dir: Path, report_path: Path, run_id: str) -> Kept | None:
    """Link aside the file at `report_path` if it is a complete report of another run in
    `state_dir` (and its summary beside it); None when there is nothing to keep."""
    try:
        with report_path.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None  # no file there (or none we can read): nothing to lose
    owner = _owner(runs_in(state_dir), digest, run_id)
    if owner is None:
        return None
    aside = report_path.with_name(f"{report_path.stem}.{owner}{report_path.suffix}")
    links = []
    for source, target in ((report_path, aside), (summary_path(report_path), summary_path(aside))):
        if source.is_file() and _link(source, target):
            links.append(target)
    if aside not in links:
        return None
    return Kept(report_path, aside, owner, tuple(links))


def _owner(runs: list[RunInfo], digest: str, run_id: str) -> str | None:
    """The id of the other run whose complete report has these bytes."""
    for info in reversed(runs):  # newest first
        if info.run_id == run_id:
            continue
        if any(kept.complete and kept.sha256 == digest for kept in info.reports):
            return info.run_id or info.path.name
    return None


def _link(source: Path, target: Path) -> bool:
    """`target` is `source`'s bytes under another name: a hard link, else a copy."""
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        try:
            shutil.copy2(source, target)
        except OSError:
            return False
    return True
