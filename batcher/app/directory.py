"""The state directory as the faces use it: checked as a run checks it, and whether another
batcher process holds it now."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from batcher.state import StateLock, prepare_state_dir

__all__ = ["check_free", "check_state_dir"]


def check_state_dir(state_dir: Path, warn: Callable[[str], None]) -> None:
    """Create the state directory owner-only, or check that an existing one is the user's own
    (UsageError otherwise, as `run` refuses it); `warn` hears of one its group may write."""
    prepare_state_dir(state_dir, warn)


def check_free(state_dir: Path) -> None:
    """StateLockedError, with the CLI's message, when another batcher run holds the state
    directory now (the lock is taken and given back at once)."""
    lock = StateLock(state_dir)
    lock.acquire()
    lock.release()
