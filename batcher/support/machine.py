"""What the machine gives this process: for the work that can use a second core."""

from __future__ import annotations

import os


def cores() -> int:
    """The processor cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
