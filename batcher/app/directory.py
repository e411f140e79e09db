"""The state directory as the faces use it: checked as a run checks it, whether another
batcher process holds it now, and private folders in it for a run's generated input."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from batcher.domain.errors import UsageError
from batcher.state import StateLock, prepare_state_dir
from batcher.support.files import private_dir

__all__ = ["check_free", "check_state_dir", "workspace"]


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


def _ignore(message: str) -> None:
    """A warning the run itself gives again when it opens the state directory."""


@contextlib.contextmanager
def workspace(state_dir: Path, name: str, *, keep_home: bool) -> Iterator[Path]:
    """A private folder of its own under `state_dir/name` for a generated input (an undo's, the
    rows a Python caller gives), removed when the command ends (and `name` with it, unless
    `keep_home`, when it made it). The input holds the rows' columns: it lives where the run's
    state does, owner-only."""
    prepare_state_dir(state_dir, _ignore)  # owner-only, as a run makes it (warned of then)
    home = state_dir / name
    created = not home.exists()
    try:
        private_dir(home)
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=home))
    except OSError as exc:
        raise UsageError(
            f"{home}: cannot write the run's input there ({exc.strerror or exc}); "
            "set state.dir to a writable folder"
        ) from None
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if created and not keep_home:
            with contextlib.suppress(OSError):
                home.rmdir()
