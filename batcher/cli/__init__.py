"""The command line (click, rich): `options` (every option, defined once), `commands` (parse,
call `batcher.app`, print), `output` (what is printed, as pure text), `terminal` (lines, logs,
progress and the confirmation on a terminal), `failures` (one line and the exit code)."""

from batcher.cli.commands import main

__all__ = ["main"]
