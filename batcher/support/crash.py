"""An unexpected error: one line for the user, the details in a file, never the token.

`write_crash_file` keeps the traceback under the state directory (owner-only, the token, the
other secrets the scrubber knows (proxy credentials) and every URL's `user:password@` scrubbed),
so that the terminal or cron's mail gets one line naming the file.
"""

from __future__ import annotations

import os
import platform
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from batcher import __version__
from batcher.support.files import open_private, private_dir
from batcher.support.secrets import Scrubber

__all__ = ["write_crash_file"]


def write_crash_file(state_dir: Path, exc: BaseException, scrubber: Scrubber) -> Path | None:
    """Write `exc`'s traceback to `state_dir/crash-<time>-<pid>.txt`; None if it cannot be."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = state_dir / f"crash-{stamp}-{os.getpid()}.txt"
    text = "".join(
        [
            f"batcher {__version__}, Python {platform.python_version()}, {sys.platform}\n",
            f"command: {' '.join(sys.argv)}\n\n",
            *traceback.format_exception(exc),
        ]
    )
    try:
        private_dir(state_dir)
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
            fh.write(scrubber.scrub(text))
    except OSError:
        return None
    return path
