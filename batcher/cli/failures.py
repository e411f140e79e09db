"""How a command fails: one line and SPEC's exit code, never a traceback (SPEC "Exit status")."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from batcher.cli.terminal import scrubber
from batcher.domain.config import Settings
from batcher.domain.errors import BatcherError
from batcher.domain.events import Event
from batcher.support import logs
from batcher.support.crash import write_crash_file

__all__ = ["fail", "one_line_errors"]


def fail(message: str, code: int) -> NoReturn:
    logs.emit(Event("error", message, {"exit_code": code}, level="error"))
    sys.exit(code)


@contextmanager
def one_line_errors(settings: Callable[[], Settings | None]) -> Iterator[None]:
    """Every way a command can fail ends in one line and SPEC's exit code, never a traceback.

    An unexpected error also leaves its traceback (token scrubbed) in a crash file under the
    state directory, named in the line.
    """
    try:
        yield
    except BatcherError as exc:
        fail(scrubber(settings()).scrub(str(exc)), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted; what was saved is kept: run the same command again to resume", 3)
    except Exception as exc:
        current = settings()
        scrubbing = scrubber(current)
        state_dir = Path(current.state.dir if current is not None else ".batcher")
        crash = write_crash_file(state_dir, exc, scrubbing)
        where = f"details in {crash}" if crash is not None else "no crash file could be written"
        fail(
            scrubbing.scrub(
                f"internal error ({type(exc).__name__}: {exc}); {where}; what was saved is "
                "kept: run the same command again to resume, and please report this"
            ),
            3,
        )
