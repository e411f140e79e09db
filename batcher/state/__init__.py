"""The run's state over SQLite: one file per run in the state directory (see `ledger`)."""

from batcher.state.directory import (
    RunInfo,
    StateLock,
    Undone,
    moved_report,
    prepare_state_dir,
    prune_finished,
    run_file,
    runs_in,
)
from batcher.state.ledger import Ledger
from batcher.state.lookups import Match, Resolution
from batcher.state.reading import LAST_ROW, REPORT_BLOCK, live_counts
from batcher.state.schema import ReportRecord

__all__ = [
    "LAST_ROW",
    "REPORT_BLOCK",
    "Ledger",
    "Match",
    "ReportRecord",
    "Resolution",
    "RunInfo",
    "StateLock",
    "Undone",
    "live_counts",
    "moved_report",
    "prepare_state_dir",
    "prune_finished",
    "run_file",
    "runs_in",
]
