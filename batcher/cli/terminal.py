"""The terminal: lines out (controls spelled out), the log lines on stderr, the progress bar
and the confirmation, each only where a person can see or answer it (rich, click)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from batcher.app.result import Preview, RunProgress, Tick
from batcher.cli.output import pace, preview_lines
from batcher.domain.config import Settings
from batcher.domain.credentials import credential_variables
from batcher.domain.events import Event
from batcher.support import logs
from batcher.support.printable import escaped
from batcher.support.secrets import Scrubber

__all__ = [
    "advise",
    "confirm",
    "echo",
    "interactive",
    "json_logs",
    "notify",
    "prints_text",
    "progress",
    "scrubber",
    "set_logging",
    "warn",
]

# The log format of this process's lines on stderr (`--log-format`) and whether it is quiet
# (`-q`): set by `set_logging`.
_log_format = "text"
_quiet = False


def echo(text: str, *, err: bool = False) -> None:
    """Print one line, controls spelled out (`batcher.support.printable`: a cell or a file name
    with an escape sequence must not drive the terminal); a closed pipe (`| head -1`) is not an
    error of ours."""
    try:
        click.echo(escaped(text), err=err)
    except BrokenPipeError:
        # Point the stream at /dev/null so that the interpreter's final flush is quiet too.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), (sys.stderr if err else sys.stdout).fileno())


def echo_all(lines: Iterable[str], *, err: bool = False) -> None:
    for line in lines:
        echo(line, err=err)


def notify(message: str) -> None:
    logs.emit(Event("notice", message))


def warn(message: str, *, error: bool = False, **fields: object) -> None:
    """A warning on stderr; with `error`, the same words at `error` (`run --strict`)."""
    if error:
        logs.emit(Event("error", message, fields, level="error"))
    else:
        logs.emit(Event("warning", message, fields, level="warning"))


def advise(message: str, *, error: bool = False) -> None:
    """The summary's last word on stderr: what happened and what to do next; at `error` when a
    person must act."""
    logs.emit(Event("advice", message, level="error" if error else "warning"))


def _err_line(line: str) -> None:
    echo(line, err=True)


def _out_line(line: str) -> None:
    echo(line)


def json_logs() -> bool:
    """Whether the lines are JSON objects (`--log-format json`): stdout carries JSON only."""
    return _log_format == "json"


def prints_text() -> bool:
    """Whether stdout carries the text summary and reports: not with `-q` (nothing on success)
    nor with JSON logs (stdout carries the summary as one JSON object, nothing else)."""
    return _log_format == "text" and not _quiet


def scrubber(settings: Settings | None) -> Scrubber:
    """The scrubber of every token `settings` names (each location's, the agency's; else
    $BATCHER_TOKEN)."""
    names = credential_variables(settings.api) if settings is not None else ("BATCHER_TOKEN",)
    tokens = [os.environ.get(name, "") for name in names]
    return Scrubber.for_environment(None, tokens=[t for t in tokens if t])


def set_logging(log_format: str, settings: Settings | None = None, *, quiet: bool = False) -> None:
    """Lines on stderr as `log_format` says (text: `batcher: ...`; json: one object per event,
    the summary's on stdout), the token of `settings` (else $BATCHER_TOKEN) scrubbed from every
    one; `quiet`: warnings and errors only."""
    global _log_format, _quiet
    _log_format, _quiet = log_format, quiet
    logs.setup(log_format, _err_line, scrubber(settings), quiet=quiet, out=_out_line)


@contextmanager
def progress(quiet: bool) -> Iterator[Tick | None]:
    """Progress on stderr when it is a terminal: rows done of total, rows/s, the time left at
    the pace so far, 429s and retries. Nothing for cron, pipes, --quiet or JSON logs."""
    console = Console(stderr=True)
    if quiet or _log_format != "text" or not console.is_terminal:
        yield None
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[pace]}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("rows", total=None, pace="")

        def update(progress: RunProgress) -> None:
            bar.update(
                task,
                completed=progress.rows_done,
                total=progress.rows_total,
                pace=pace(progress),
            )

        yield update


def interactive() -> bool:
    """Whether someone at a terminal can answer a question (never for cron or a pipe)."""
    return sys.stdin.isatty()


def confirm(yes: bool) -> Callable[[Preview], bool] | None:
    """Ask before sending, on a terminal only; `--yes`, cron and pipes are never asked."""
    if yes or not interactive():
        return None

    def ask(preview: Preview) -> bool:
        echo_all(preview_lines(preview), err=True)
        return click.confirm("Send?", default=False, err=True)

    return ask
