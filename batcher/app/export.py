"""The page's XLSX copy of a finished run's report, rendered from the run's state file."""

from __future__ import annotations

from pathlib import Path

from batcher.app.identity import identify
from batcher.app.jobs import Job, input_options
from batcher.app.result import RunResult, pending_message
from batcher.domain.config import Settings
from batcher.reports.formats import check_report_path, write_rows
from batcher.state import Ledger

__all__ = ["export_report"]


def export_report(settings: Settings, job: Job, result: RunResult, target: Path) -> None:
    """The report of `job`'s run again, in `target`'s format (the page: XLSX after a CSV run),
    from its state file, read-only. Pending rows get the run's stop message (the daily quota's
    per-location messages are not repeated here)."""
    state_file = identify(settings, job, input_options(settings, job)).state_file(
        Path(settings.state.dir)
    )
    with Ledger.reader(state_file) as ledger:
        check_report_path(target, rows=ledger.row_count(), columns=len(ledger.columns))
        pending = pending_message(result.stopped)
        write_rows(target, ledger.columns, lambda inert: ledger.report_rows(pending, {}, inert))
