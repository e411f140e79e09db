"""The program's entry point: Ctrl-C works from the first instant, not only once loaded.

Importing the CLI brings in pandas, aiohttp and rich, which takes a noticeable moment; a Ctrl-C
or SIGTERM then would end in a KeyboardInterrupt traceback. Until a command installs its own
handlers (run and plan while they work, the sandbox for its whole life), a signal ends the
program with one line and exit status 3.
"""

from __future__ import annotations

import os
import signal
from types import FrameType


def _too_early(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    os.write(2, f"batcher: {name} received: stopped\n".encode())
    os._exit(3)


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _too_early)
    from batcher.cli import main as cli

    cli()
